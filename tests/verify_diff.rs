//! The row-level verifier against two real servers: identical data is Valid; injected
//! differences are reported exactly (which keys, which class, how many); schema drift,
//! sequence drift and a table that cannot be read are reported with the right verdict.

mod common;

use harness::backend::Backend;
use harness::node::{Node, StopMode};
use harness::verify::{
    self, CompareMethod, DriftKind, KeySample, SequenceStatus, Side, TableDiff, TableStatus,
    VerifyOptions, VerifyReport,
};
use harness::{ErrorKind, Verdict};

const DB: &str = "app";

/// The same schema and rows on both servers. Deterministic data from generate_series.
const SETUP: &str = r#"
CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2),
                     note text);
INSERT INTO orders
  SELECT g, 'cust-' || (g % 97), g * 1.25, CASE WHEN g % 10 = 0 THEN NULL ELSE md5(g::text) END
  FROM generate_series(1, 5000) g;

CREATE TABLE stock (region text, sku text, qty int NOT NULL, PRIMARY KEY (region, sku));
INSERT INTO stock
  SELECT r, 'sku-' || g, g % 50
  FROM unnest(ARRAY['eu', 'us', 'ap', 'sa']) r, generate_series(1, 1000) g;

CREATE TABLE docs (id int PRIMARY KEY, body jsonb, blob bytea, price numeric,
                   at timestamptz, big text);
INSERT INTO docs
  SELECT g, jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g % 3)),
         decode(md5(g::text), 'hex'), g / 7.0,
         '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute 0.5 second',
         repeat(md5(g::text), 200)
  FROM generate_series(1, 2000) g;

-- No key; every row but the first and the last is there twice.
CREATE TABLE events (kind text, payload text, n int);
INSERT INTO events
  SELECT 'k' || ((g / 2) % 3), 'p' || (g / 2), nullif((g / 2) % 4, 0)
  FROM generate_series(1, 3000) g;

CREATE TABLE measurements (region text, id int, v int, PRIMARY KEY (region, id))
  PARTITION BY LIST (region);
CREATE TABLE measurements_eu PARTITION OF measurements FOR VALUES IN ('eu');
CREATE TABLE measurements_us PARTITION OF measurements FOR VALUES IN ('us');
INSERT INTO measurements SELECT r, g, g * 3 FROM unnest(ARRAY['eu', 'us']) r,
  generate_series(1, 500) g;

-- Big enough that the first thresholds come from a sample of pages; a collation other than
-- the database's "C" makes the verifier compare keys with COLLATE "C".
CREATE TABLE labels (k text COLLATE "C.utf8" PRIMARY KEY, v int);
INSERT INTO labels
  SELECT CASE WHEN g % 2 = 0 THEN upper(md5(g::text)) ELSE md5(g::text) END, g
  FROM generate_series(1, 120000) g;

-- An array key is bucketed by its text.
CREATE TABLE tags (t text[] PRIMARY KEY, n int);
INSERT INTO tags SELECT ARRAY['t' || (g % 100), 'u' || g], g FROM generate_series(1, 3000) g;

CREATE SEQUENCE ticket_seq;
SELECT setval('ticket_seq', 100);

-- The harness's own schema is never compared.
CREATE SCHEMA pgrehearse;
CREATE TABLE pgrehearse.heartbeat (id int PRIMARY KEY, at timestamptz);
"#;

fn keys(s: &KeySample) -> Vec<&str> {
    s.keys.iter().map(String::as_str).collect()
}

/// The schema drift found: which object, what kind.
fn drift(r: &VerifyReport) -> Vec<(&str, DriftKind)> {
    r.schema
        .iter()
        .map(|d| (d.object.as_str(), d.kind))
        .collect()
}

fn table<'r>(r: &'r VerifyReport, name: &str) -> &'r TableDiff {
    r.tables
        .iter()
        .find(|t| t.table == name)
        .unwrap_or_else(|| panic!("{name} not in the report: {r:#?}"))
}

/// Two servers, each with database DB made by `setup`.
async fn same_database(label: &str, setup: &str) -> (harness::backend::LocalBackend, Node, Node) {
    let (backend, x, y) = common::two_servers(label).await;
    for n in [&x, &y] {
        n.execute("postgres", &format!("CREATE DATABASE {DB}"))
            .await
            .unwrap();
        n.execute(DB, setup).await.unwrap();
    }
    (backend, x, y)
}

async fn run(x: &Node, y: &Node, opts: &VerifyOptions) -> VerifyReport {
    verify::compare(&Side::of(x, DB), &Side::of(y, DB), opts)
        .await
        .unwrap_or_else(|e| panic!("verify failed: {e:?}"))
}

/// Tiny buckets and leaves: the same table diffs must come out of deep recursion, and out of
/// reading every differing range at once.
fn stress_options() -> [VerifyOptions; 2] {
    [
        VerifyOptions {
            buckets: 3,
            leaf_rows: 4,
            max_split_ranges: 10_000,
            ..VerifyOptions::default()
        },
        VerifyOptions {
            buckets: 64,
            leaf_rows: 1,
            max_split_ranges: 0,
            ..VerifyOptions::default()
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_reports_exactly_the_injected_differences() {
    // --- same schema and rows on both servers
    let (backend, x, y) = same_database("verify-diff", SETUP).await;
    // The harness schema may differ freely.
    y.execute(DB, "INSERT INTO pgrehearse.heartbeat VALUES (1, now())")
        .await
        .unwrap();

    // --- identical: Valid, every table matches
    let r = run(&x, &y, &VerifyOptions::default()).await;
    assert_eq!(r.verdict, Verdict::Valid, "{r:#?}");
    assert_eq!((r.reference.as_str(), r.target.as_str()), ("x", "y"));
    let names: Vec<&str> = r.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "public.docs",
            "public.events",
            "public.labels",
            "public.measurements",
            "public.orders",
            "public.stock",
            "public.tags"
        ],
        "partitions and the pgrehearse schema are not listed"
    );
    for t in &r.tables {
        assert_eq!(t.status, TableStatus::Match, "{t:#?}");
        assert_eq!(t.rows_reference, t.rows_target);
    }
    assert_eq!(table(&r, "public.orders").rows_reference, 5000);
    assert_eq!(table(&r, "public.measurements").rows_reference, 1000);
    assert_eq!(
        table(&r, "public.stock").method,
        CompareMethod::PrimaryKey {
            columns: vec!["region".into(), "sku".into()]
        }
    );
    assert_eq!(
        table(&r, "public.events").method,
        CompareMethod::RowMultiset
    );
    assert!(r.schema.is_empty(), "{:#?}", r.schema);
    assert_eq!(r.sequences.len(), 1);
    assert_eq!(r.sequences[0].status, SequenceStatus::Match);
    assert_eq!(r.sequences[0].reference, Some(100));

    // --- sequence drift alone: reported, verdict unaffected
    y.execute(DB, "SELECT setval('ticket_seq', 150)")
        .await
        .unwrap();
    let r = run(&x, &y, &VerifyOptions::default()).await;
    assert_eq!(r.verdict, Verdict::Valid, "{r:#?}");
    let s = &r.sequences[0];
    assert_eq!(s.sequence, "public.ticket_seq");
    assert_eq!(s.status, SequenceStatus::Drift);
    assert_eq!((s.reference, s.target), (Some(100), Some(150)));
    assert!(
        s.note.contains("do not replicate sequence values") && s.note.contains("cutover"),
        "{}",
        s.note
    );

    // --- a table that cannot be read: that table is an error, the others are still
    // compared, the verdict is Unknown
    y.execute(DB, "ALTER DATABASE app SET lock_timeout = '200ms'")
        .await
        .unwrap();
    let locker = y.connect(DB).await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE docs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let r = run(&x, &y, &VerifyOptions::default()).await;
    assert_eq!(r.verdict, Verdict::Unknown, "{r:#?}");
    let docs = table(&r, "public.docs");
    assert_eq!(docs.status, TableStatus::Error);
    let err = docs.error.as_deref().unwrap_or_default();
    assert!(
        err.contains("lock") && err.contains("public.docs") && err.starts_with("y: "),
        "error names node, table and cause: {err}"
    );
    for t in r.tables.iter().filter(|t| t.table != "public.docs") {
        assert_eq!(t.status, TableStatus::Match, "{t:#?}");
    }
    locker.batch_execute("ROLLBACK").await.unwrap();
    drop(locker);
    y.execute(DB, "ALTER DATABASE app RESET lock_timeout")
        .await
        .unwrap();

    // --- inject differences on the target
    y.execute(
        DB,
        r#"
        UPDATE orders SET amount = amount + 1 WHERE id = 10;
        UPDATE orders SET note = NULL WHERE id = 2501;
        UPDATE orders SET customer = 'someone else' WHERE id = 4999;
        DELETE FROM orders WHERE id IN (7, 3000);
        INSERT INTO orders VALUES (5001, 'new', 1, NULL);

        UPDATE stock SET qty = qty + 1 WHERE region = 'eu' AND sku = 'sku-5';
        DELETE FROM stock WHERE region = 'us' AND sku = 'sku-100';
        INSERT INTO stock VALUES ('zz', 'sku-1', 1), ('eu', 'sku 1', 2);

        UPDATE docs SET body = body || '{"x": 1}' WHERE id = 77;
        UPDATE docs SET blob = '\x00' WHERE id = 1500;

        DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE payload = 'p10' LIMIT 1);
        DELETE FROM events WHERE payload = 'p20';
        INSERT INTO events VALUES ('k0', 'p30', 2);
        UPDATE events SET payload = 'p40x'
          WHERE ctid = (SELECT ctid FROM events WHERE payload = 'p40' LIMIT 1);

        UPDATE measurements SET v = -1 WHERE region = 'us' AND id = 250;

        UPDATE labels SET v = 0 WHERE k IN (upper(md5('10')), md5('99999'));
        DELETE FROM labels WHERE k = md5('5');
        INSERT INTO labels VALUES ('Zebra', 1);

        UPDATE tags SET n = 0 WHERE t = ARRAY['t5', 'u5'];
        "#,
    )
    .await
    .unwrap();

    let r = run(&x, &y, &VerifyOptions::default()).await;
    assert_eq!(r.verdict, Verdict::Invalid, "{r:#?}");
    assert!(r.schema.is_empty());
    let check = |r: &VerifyReport| {
        let o = table(r, "public.orders");
        assert_eq!(o.status, TableStatus::Differ);
        assert_eq!((o.rows_reference, o.rows_target), (5000, 4999));
        assert_eq!(keys(&o.changed), vec!["10", "2501", "4999"]);
        assert_eq!(keys(&o.missing), vec!["7", "3000"]);
        assert_eq!(keys(&o.extra), vec!["5001"]);
        assert_eq!((o.changed.count, o.missing.count, o.extra.count), (3, 2, 1));

        let s = table(r, "public.stock");
        assert_eq!(keys(&s.changed), vec!["(eu,sku-5)"]);
        assert_eq!(keys(&s.missing), vec!["(us,sku-100)"]);
        assert_eq!(keys(&s.extra), vec![r#"(eu,"sku 1")"#, "(zz,sku-1)"]);

        let d = table(r, "public.docs");
        assert_eq!(keys(&d.changed), vec!["77", "1500"]);
        assert!(d.missing.is_empty() && d.extra.is_empty());

        let e = table(r, "public.events");
        assert_eq!(e.status, TableStatus::Differ);
        assert_eq!((e.rows_reference, e.rows_target), (3000, 2998));
        assert_eq!(
            keys(&e.missing),
            vec!["(k1,p10,2)", "(k1,p40,)", "(k2,p20,)", "(k2,p20,)"]
        );
        assert_eq!(keys(&e.extra), vec!["(k0,p30,2)", "(k1,p40x,)"]);
        assert_eq!((e.missing.count, e.extra.count), (4, 2));
        assert!(e.changed.is_empty(), "rows without a key have no identity");

        // md5('99999') = d3eb9a92..., md5('10') = d3d94468..., md5('5') = e4da3b7f...
        let l = table(r, "public.labels");
        assert_eq!(
            keys(&l.changed),
            vec![
                "D3D9446802A44259755D38E6D163E820",
                "d3eb9a9233e52948740d7eb8c3062d14"
            ]
        );
        assert_eq!(keys(&l.missing), vec!["e4da3b7fbbce2345d7772b0674a318d5"]);
        assert_eq!(keys(&l.extra), vec!["Zebra"]);

        assert_eq!(keys(&table(r, "public.tags").changed), vec!["{t5,u5}"]);

        let m = table(r, "public.measurements");
        assert_eq!(keys(&m.changed), vec!["(us,250)"]);
    };
    check(&r);
    for opts in stress_options() {
        check(&run(&x, &y, &opts).await);
    }

    // Lists are capped, counts are not.
    let capped = run(
        &x,
        &y,
        &VerifyOptions {
            max_keys_listed: 1,
            ..VerifyOptions::default()
        },
    )
    .await;
    let o = table(&capped, "public.orders");
    assert_eq!((keys(&o.changed), o.changed.count), (vec!["10"], 3));

    // --- schema drift: an extra column, a changed type, a missing table, a new key
    y.execute(
        DB,
        "ALTER TABLE orders ADD COLUMN extra int; \
         ALTER TABLE docs ALTER COLUMN price TYPE numeric(28,6); \
         ALTER TABLE measurements DROP CONSTRAINT measurements_pkey; \
         ALTER TABLE measurements ADD PRIMARY KEY (id, region);",
    )
    .await
    .unwrap();
    x.execute(
        DB,
        "CREATE TABLE only_ref (id int PRIMARY KEY); INSERT INTO only_ref VALUES (1), (2);",
    )
    .await
    .unwrap();
    let r = run(&x, &y, &VerifyOptions::default()).await;
    assert_eq!(r.verdict, Verdict::Invalid);
    let drift = drift(&r);
    assert_eq!(
        drift,
        vec![
            ("public.docs.price", DriftKind::TypeChanged),
            ("public.measurements", DriftKind::PrimaryKeyChanged),
            ("public.only_ref", DriftKind::TableMissing),
            ("public.orders.extra", DriftKind::ColumnExtra),
        ],
        "{:#?}",
        r.schema
    );
    let price = &r.schema[0];
    assert_eq!(
        (price.reference.as_deref(), price.target.as_deref()),
        (Some("numeric"), Some("numeric(28,6)"))
    );
    let only = table(&r, "public.only_ref");
    assert_eq!(only.method, CompareMethod::NotCompared);
    assert_eq!((only.rows_reference, only.rows_target), (2, 0));
    assert_eq!(
        table(&r, "public.measurements").method,
        CompareMethod::NotCompared
    );
    // Common columns are still compared: the orders diff is unchanged by the extra column.
    let o = table(&r, "public.orders");
    assert_eq!((o.changed.count, o.missing.count, o.extra.count), (3, 2, 1));
    // Every docs price renders differently at the new scale.
    assert_eq!(table(&r, "public.docs").changed.count, 2000);

    // --- an unreachable side is an error naming it
    y.stop(StopMode::Fast).await.unwrap();
    let e = verify::compare(
        &Side::of(&x, DB),
        &Side::of(&y, DB),
        &VerifyOptions::default(),
    )
    .await
    .expect_err("y is down");
    assert_eq!(e.node(), Some("y"), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Database, "{e:?}");

    backend.teardown(false).await.unwrap();
}

/// Differences scattered all over a big text-keyed table: more differing ranges than are read
/// with OR-ed predicates (the single-pass bucket lookup reads them), every one still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differences_scattered_over_a_big_table_are_all_found() {
    let (backend, x, y) = same_database(
        "verify-scattered",
        "CREATE TABLE words (k text PRIMARY KEY, v int);
         INSERT INTO words SELECT md5(g::text), g FROM generate_series(1, 200000) g;",
    )
    .await;
    // 40 changed, 3 missing, 2 extra, spread over the whole key range.
    y.execute(
        DB,
        "UPDATE words SET v = -v WHERE v % 5000 = 0;
         DELETE FROM words WHERE v IN (17, 100001, 199999);
         INSERT INTO words VALUES ('0', 0), ('zzz', 0);",
    )
    .await
    .unwrap();
    let expected_changed: Vec<String> = {
        let c = x.connect(DB).await.unwrap();
        c.query(
            "SELECT k FROM words WHERE v % 5000 = 0 ORDER BY k COLLATE \"C\"",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    assert_eq!(expected_changed.len(), 40);
    let opts = VerifyOptions {
        max_keys_listed: 100,
        ..VerifyOptions::default()
    };
    let r = run(&x, &y, &opts).await;
    assert_eq!(r.verdict, Verdict::Invalid, "{r:#?}");
    let w = table(&r, "public.words");
    assert_eq!(
        (w.changed.count, w.missing.count, w.extra.count),
        (40, 3, 2),
        "{w:#?}"
    );
    assert_eq!(keys(&w.changed), expected_changed);
    assert_eq!(keys(&w.extra), vec!["0", "zzz"]);
    backend.teardown(false).await.unwrap();
}

/// A primary key with INCLUDE columns is keyed by its key columns only, and a type in a schema
/// that only A's database puts on the search_path is the same type on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_columns_and_a_search_path_on_one_side_change_nothing() {
    let (backend, x, y) = same_database(
        "verify-include",
        "CREATE SCHEMA app;
         CREATE TYPE app.state AS ENUM ('new', 'done');
         CREATE TABLE app.notes (id int, note text, s app.state,
                                 PRIMARY KEY (id) INCLUDE (note));",
    )
    .await;
    // Set on A by the user's own seed; the schema copy to C does not carry database settings.
    x.execute(DB, "ALTER DATABASE app SET search_path = app, public")
        .await
        .unwrap();
    x.execute(
        DB,
        "INSERT INTO app.notes VALUES (1, 'x', 'new'), (2, NULL, 'done'), (3, 'same', 'new')",
    )
    .await
    .unwrap();
    y.execute(
        DB,
        "INSERT INTO app.notes VALUES (1, 'y', 'new'), (2, NULL, 'done'), (3, 'same', 'new')",
    )
    .await
    .unwrap();

    let r = run(&x, &y, &VerifyOptions::default()).await;
    assert!(r.schema.is_empty(), "no drift: {:#?}", r.schema);
    let notes = table(&r, "app.notes");
    assert_eq!(
        notes.method,
        CompareMethod::PrimaryKey {
            columns: vec!["id".into()]
        },
        "{notes:#?}"
    );
    assert_eq!(notes.status, TableStatus::Differ, "{notes:#?}");
    assert_eq!(keys(&notes.changed), vec!["1"], "{notes:#?}");
    assert_eq!(notes.missing.count + notes.extra.count, 0, "{notes:#?}");
    backend.teardown(false).await.unwrap();
}

/// Names with dots and capitals: `x."a.b"` and `"x.a".b` are two tables, compared apart and
/// named so that a reader can tell them apart; a differing row is reported in the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotted_and_mixed_case_names_are_two_tables() {
    let (backend, x, y) = same_database(
        "verify-names",
        r#"CREATE SCHEMA x; CREATE SCHEMA "x.a";
           CREATE TABLE x."a.b" (id int PRIMARY KEY, v text);
           CREATE TABLE "x.a".b (id int PRIMARY KEY, v text);
           CREATE TABLE x."Mixed" ("Id" int PRIMARY KEY, "V.w" text);
           INSERT INTO x."a.b" SELECT g, 'ab' || g FROM generate_series(1, 50) g;
           INSERT INTO "x.a".b SELECT g, 'xa' || g FROM generate_series(1, 50) g;
           INSERT INTO x."Mixed" VALUES (1, 'm');"#,
    )
    .await;
    y.execute(DB, r#"UPDATE "x.a".b SET v = 'changed' WHERE id = 7"#)
        .await
        .unwrap();
    y.execute(DB, r#"ALTER TABLE x."Mixed" ADD COLUMN "New" int"#)
        .await
        .unwrap();

    let r = run(&x, &y, &VerifyOptions::default()).await;
    assert_eq!(table(&r, r#"x."a.b""#).status, TableStatus::Match, "{r:#?}");
    let xa = table(&r, r#""x.a".b"#);
    assert_eq!(xa.status, TableStatus::Differ, "{xa:#?}");
    assert_eq!(keys(&xa.changed), vec!["7"], "{xa:#?}");
    let drift = drift(&r);
    assert_eq!(
        drift,
        vec![(r#"x."Mixed"."New""#, DriftKind::ColumnExtra)],
        "{r:#?}"
    );
    backend.teardown(false).await.unwrap();
}

/// A target that widens types on purpose (int → bigint, varchar(n) → text, numeric(p,s) →
/// numeric) holds the same values: the widening is reported and the verdict stays Valid; a
/// narrowing is a type change and fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widened_type_is_reported_without_failing_a_narrowed_one_fails() {
    let (backend, x, y) = same_database(
        "verify-widen",
        "CREATE TABLE w (id int PRIMARY KEY, name varchar(10), amount numeric(8,2), note text);
         INSERT INTO w SELECT g, 'n' || g, g * 1.5, 'note ' || g FROM generate_series(1, 300) g;",
    )
    .await;
    y.execute(
        DB,
        "ALTER TABLE w ALTER COLUMN id TYPE bigint, ALTER COLUMN name TYPE text, \
         ALTER COLUMN amount TYPE numeric",
    )
    .await
    .unwrap();
    let r = run(&x, &y, &VerifyOptions::default()).await;
    let drift = drift(&r);
    assert_eq!(
        drift,
        vec![
            ("public.w.id", DriftKind::TypeWidened),
            ("public.w.name", DriftKind::TypeWidened),
            ("public.w.amount", DriftKind::TypeWidened),
        ],
        "{r:#?}"
    );
    assert_eq!(table(&r, "public.w").status, TableStatus::Match, "{r:#?}");
    assert_eq!(r.verdict, Verdict::Valid, "{r:#?}");

    y.execute(DB, "ALTER TABLE w ALTER COLUMN note TYPE varchar(20)")
        .await
        .unwrap();
    let r = run(&x, &y, &VerifyOptions::default()).await;
    assert!(
        r.schema
            .iter()
            .any(|d| d.object == "public.w.note" && d.kind == DriftKind::TypeChanged),
        "{r:#?}"
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{r:#?}");
    backend.teardown(false).await.unwrap();
}
