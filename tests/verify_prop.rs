//! Property: whatever the table shape and whatever differences are injected on the target, the
//! verifier reports exactly those differences — never more, never fewer.
//!
//! Two real servers are started once; each case gets a fresh database on both. The expected
//! result is computed here, independently of the verifier: rows are rendered in Rust the way
//! PostgreSQL prints them (values are drawn from ranges where that is simple), then compared by
//! key (or as multisets for tables without a key).
//!
//! `PGREHEARSE_PROPTEST_CASES` sets the number of cases (default 12),
//! `PGREHEARSE_PROPTEST_SEED` replays a run. A failure prints the shrunk case and the seed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use harness::backend::Backend;
use harness::node::Node;
use harness::verify::{self, Side, TableStatus, VerifyOptions};
use harness::{Verdict, verify::VerifyReport};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// bigint primary key.
    Int,
    /// text primary key.
    Text,
    /// (text, int) primary key.
    Composite,
    /// No key: a multiset.
    NoKey,
}

#[derive(Debug, Clone, Copy)]
enum Ty {
    Int,
    Text,
    Numeric,
    Float,
    Bool,
    Ts,
    Jsonb,
    Bytea,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Int(i64),
    Text(String),
    /// Hundredths.
    Numeric(i64),
    /// Quarters (exact in binary, printed the same by Rust and PostgreSQL).
    Float(i32),
    Bool(bool),
    /// Seconds since the epoch.
    Ts(i64),
    Jsonb(i32),
    Bytea(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    key: Vec<Val>,
    cols: Vec<Option<Val>>,
}

#[derive(Debug, Clone)]
enum Edit {
    /// Delete a row on the target.
    Remove(Index),
    /// Flip one column between NULL and a value on the target.
    Change(Index, Index),
    /// Insert (or, for an existing key, replace) a row on the target.
    Add(Row),
    /// One more copy of a row on the target (tables without a key).
    Copy(Index),
}

#[derive(Debug, Clone)]
struct Case {
    shape: Shape,
    tys: Vec<Ty>,
    rows: Vec<Row>,
    edits: Vec<Edit>,
    /// Per side [reference, target]: the text key column has collation "C.utf8" instead of
    /// the database's "C" (so that side's key is compared with COLLATE "C").
    key_collation: [bool; 2],
    buckets: usize,
    leaf_rows: u64,
    max_split_ranges: usize,
}

// ---- generation

fn val(ty: Ty) -> BoxedStrategy<Val> {
    match ty {
        Ty::Int => any::<i32>().prop_map(|v| Val::Int(v.into())).boxed(),
        Ty::Text => "[ a-z,()\"\\\\'é]{0,6}".prop_map(Val::Text).boxed(),
        Ty::Numeric => (-100_000i64..100_000).prop_map(Val::Numeric).boxed(),
        Ty::Float => (-400i32..400).prop_map(Val::Float).boxed(),
        Ty::Bool => any::<bool>().prop_map(Val::Bool).boxed(),
        Ty::Ts => (0i64..4_000_000_000).prop_map(Val::Ts).boxed(),
        Ty::Jsonb => (-50i32..50).prop_map(Val::Jsonb).boxed(),
        Ty::Bytea => prop::collection::vec(any::<u8>(), 0..4)
            .prop_map(Val::Bytea)
            .boxed(),
    }
}

fn key(shape: Shape) -> BoxedStrategy<Vec<Val>> {
    match shape {
        // Small values collide and cluster; any i64 makes spans wider than an int8 difference.
        Shape::Int => prop_oneof![3 => -60i64..60, 1 => any::<i64>()]
            .prop_map(|v| vec![Val::Int(v)])
            .boxed(),
        Shape::Text => prop_oneof!["[abc]{0,3}", "[ a-zA-Z0-9,()\"\\\\'é-]{0,6}"]
            .prop_map(|v| vec![Val::Text(v)])
            .boxed(),
        // Few first-key values: ranges that cannot be cut by the first column.
        Shape::Composite => ("[ab]{0,2}", -20i64..20)
            .prop_map(|(a, b)| vec![Val::Text(a), Val::Int(b)])
            .boxed(),
        Shape::NoKey => Just(Vec::new()).boxed(),
    }
}

fn row(shape: Shape, tys: &[Ty]) -> BoxedStrategy<Row> {
    let cols: Vec<BoxedStrategy<Option<Val>>> = tys
        .iter()
        .map(|t| prop::option::weighted(0.8, val(*t)).boxed())
        .collect();
    (key(shape), cols)
        .prop_map(|(key, cols)| Row { key, cols })
        .boxed()
}

fn case() -> impl Strategy<Value = Case> {
    let shape = prop_oneof![
        Just(Shape::Int),
        Just(Shape::Text),
        Just(Shape::Composite),
        Just(Shape::NoKey)
    ];
    let ty = prop_oneof![
        Just(Ty::Int),
        Just(Ty::Text),
        Just(Ty::Numeric),
        Just(Ty::Float),
        Just(Ty::Bool),
        Just(Ty::Ts),
        Just(Ty::Jsonb),
        Just(Ty::Bytea)
    ];
    (shape, prop::collection::vec(ty, 1..4))
        .prop_flat_map(|(shape, tys)| {
            let r = row(shape, &tys);
            let edit = prop_oneof![
                any::<Index>().prop_map(Edit::Remove),
                (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Change(a, b)),
                r.clone().prop_map(Edit::Add),
                any::<Index>().prop_map(Edit::Copy),
            ];
            (
                Just(shape),
                Just(tys),
                prop::collection::vec(r, 0..150),
                prop::collection::vec(any::<Index>(), 0..4),
                prop::collection::vec(edit, 0..10),
                any::<[bool; 2]>(),
                (2usize..7, 1u64..40, 0usize..40),
            )
        })
        .prop_map(
            |(shape, tys, mut rows, copies, edits, key_collation, tuning)| {
                let (buckets, leaf_rows, max_split_ranges) = tuning;
                if shape == Shape::NoKey {
                    // Duplicates on the reference too.
                    if !rows.is_empty() {
                        for i in copies {
                            rows.push(rows[i.index(rows.len())].clone());
                        }
                    }
                } else {
                    let mut seen = Vec::new();
                    rows.retain(|r| {
                        let fresh = !seen.contains(&r.key);
                        seen.push(r.key.clone());
                        fresh
                    });
                }
                Case {
                    shape,
                    tys,
                    rows,
                    edits,
                    key_collation,
                    buckets,
                    leaf_rows,
                    max_split_ranges,
                }
            },
        )
}

/// The target's rows: the reference's with the edits applied.
fn target_rows(c: &Case) -> Vec<Row> {
    let mut t = c.rows.clone();
    for e in &c.edits {
        match e {
            Edit::Remove(i) if !t.is_empty() => {
                let i = i.index(t.len());
                t.remove(i);
            }
            Edit::Change(i, col) if !t.is_empty() => {
                let i = i.index(t.len());
                let col = col.index(c.tys.len());
                let r = &mut t[i];
                r.cols[col] = match r.cols[col] {
                    Some(_) => None,
                    None => Some(some_value(c.tys[col])),
                };
            }
            Edit::Add(r) => match t.iter().position(|x| x.key == r.key) {
                Some(pos) if c.shape != Shape::NoKey => t[pos] = r.clone(),
                _ => t.push(r.clone()),
            },
            Edit::Copy(i) if !t.is_empty() && c.shape == Shape::NoKey => {
                let r = t[i.index(t.len())].clone();
                t.push(r);
            }
            _ => {}
        }
    }
    t
}

fn some_value(ty: Ty) -> Val {
    match ty {
        Ty::Int => Val::Int(7),
        Ty::Text => Val::Text("changed".into()),
        Ty::Numeric => Val::Numeric(123),
        Ty::Float => Val::Float(3),
        Ty::Bool => Val::Bool(true),
        Ty::Ts => Val::Ts(86_400),
        Ty::Jsonb => Val::Jsonb(1),
        Ty::Bytea => Val::Bytea(vec![0xab]),
    }
}

// ---- rendering as PostgreSQL prints (TimeZone UTC, DateStyle ISO, bytea hex)

fn civil(days: i64) -> (i64, i64, i64) {
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn text(v: &Val) -> String {
    match v {
        Val::Int(n) => n.to_string(),
        Val::Text(s) => s.clone(),
        Val::Numeric(c) => {
            let sign = if *c < 0 { "-" } else { "" };
            format!("{sign}{}.{:02}", c.abs() / 100, c.abs() % 100)
        }
        Val::Float(q) => format!("{}", f64::from(*q) / 4.0),
        Val::Bool(b) => if *b { "t" } else { "f" }.into(),
        Val::Ts(s) => {
            let (y, m, d) = civil(s.div_euclid(86_400));
            let t = s.rem_euclid(86_400);
            format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}+00",
                t / 3600,
                t % 3600 / 60,
                t % 60
            )
        }
        Val::Jsonb(n) => format!("{{\"k\": {n}}}"),
        Val::Bytea(b) => format!(
            "\\x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

fn literal(v: &Val) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match v {
        Val::Int(n) => n.to_string(),
        Val::Text(s) => q(s),
        Val::Numeric(_) => format!("{}::numeric", q(&text(v))),
        Val::Float(_) => format!("{}::float8", q(&text(v))),
        Val::Bool(b) => b.to_string(),
        Val::Ts(_) => format!("{}::timestamptz", q(&text(v))),
        Val::Jsonb(_) => format!("{}::jsonb", q(&text(v))),
        Val::Bytea(_) => format!("{}::bytea", q(&text(v))),
    }
}

/// A field inside PostgreSQL's row text.
fn field(v: Option<&str>) -> String {
    let Some(v) = v else { return String::new() };
    let quote = v.is_empty()
        || v.chars()
            .any(|c| "\"\\(),".contains(c) || c.is_ascii_whitespace() || c == '\x0B');
    if quote {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

fn row_text(vals: &[Option<String>]) -> String {
    let f: Vec<String> = vals.iter().map(|v| field(v.as_deref())).collect();
    format!("({})", f.join(","))
}

fn key_text(k: &[Val]) -> String {
    match k {
        [one] => text(one),
        many => row_text(&many.iter().map(|v| Some(text(v))).collect::<Vec<_>>()),
    }
}

/// A key's place in report order: integers numerically, text by bytes.
type Order = Vec<(i64, Vec<u8>)>;

fn key_order(k: &[Val]) -> Order {
    k.iter()
        .map(|v| match v {
            Val::Int(n) => (*n, Vec::new()),
            other => (0, text(other).into_bytes()),
        })
        .collect()
}

fn full_text(r: &Row) -> String {
    let mut vals: Vec<Option<String>> = r.key.iter().map(|v| Some(text(v))).collect();
    vals.extend(r.cols.iter().map(|c| c.as_ref().map(text)));
    row_text(&vals)
}

// ---- SQL

fn column_defs(c: &Case, side: usize) -> Vec<(String, &'static str)> {
    let text_key = if c.key_collation[side] {
        "text COLLATE \"C.utf8\""
    } else {
        "text"
    };
    let mut cols = match c.shape {
        Shape::Int => vec![("k".to_string(), "bigint")],
        Shape::Text => vec![("k".to_string(), text_key)],
        Shape::Composite => vec![("k1".to_string(), text_key), ("k2".to_string(), "integer")],
        Shape::NoKey => vec![],
    };
    for (i, t) in c.tys.iter().enumerate() {
        let ty = match t {
            Ty::Int => "integer",
            Ty::Text => "text",
            Ty::Numeric => "numeric",
            Ty::Float => "float8",
            Ty::Bool => "boolean",
            Ty::Ts => "timestamptz",
            Ty::Jsonb => "jsonb",
            Ty::Bytea => "bytea",
        };
        cols.push((format!("c{i}"), ty));
    }
    cols
}

fn create_sql(c: &Case, side: usize, rows: &[Row]) -> String {
    let cols = column_defs(c, side);
    let mut defs: Vec<String> = cols.iter().map(|(n, t)| format!("{n} {t}")).collect();
    let nkeys = match c.shape {
        Shape::Int | Shape::Text => 1,
        Shape::Composite => 2,
        Shape::NoKey => 0,
    };
    let keys: Vec<&str> = cols[..nkeys].iter().map(|(n, _)| n.as_str()).collect();
    if !keys.is_empty() {
        defs.push(format!("PRIMARY KEY ({})", keys.join(", ")));
    }
    let mut sql = format!("CREATE TABLE t ({});", defs.join(", "));
    if !rows.is_empty() {
        let values: Vec<String> = rows
            .iter()
            .map(|r| {
                let mut v: Vec<String> = r.key.iter().map(literal).collect();
                v.extend(
                    r.cols
                        .iter()
                        .map(|x| x.as_ref().map_or("NULL".to_string(), literal)),
                );
                format!("({})", v.join(", "))
            })
            .collect();
        sql.push_str(&format!("INSERT INTO t VALUES {};", values.join(", ")));
    }
    sql
}

// ---- the expected report, computed independently

struct Expected {
    missing: Vec<String>,
    extra: Vec<String>,
    changed: Vec<String>,
}

fn expected(c: &Case, target: &[Row]) -> Expected {
    if c.shape == Shape::NoKey {
        let count = |rows: &[Row]| {
            let mut m: BTreeMap<String, i64> = BTreeMap::new();
            for r in rows {
                *m.entry(full_text(r)).or_default() += 1;
            }
            m
        };
        let (r, t) = (count(&c.rows), count(target));
        let surplus = |a: &BTreeMap<String, i64>, b: &BTreeMap<String, i64>| {
            let mut out = Vec::new();
            for (text, n) in a {
                for _ in 0..(n - b.get(text).copied().unwrap_or(0)).max(0) {
                    out.push(text.clone());
                }
            }
            out
        };
        return Expected {
            missing: surplus(&r, &t),
            extra: surplus(&t, &r),
            changed: Vec::new(),
        };
    }
    let by_key = |rows: &[Row]| -> HashMap<String, (Order, String)> {
        rows.iter()
            .map(|r| (key_text(&r.key), (key_order(&r.key), full_text(r))))
            .collect()
    };
    let (r, t) = (by_key(&c.rows), by_key(target));
    let sorted = |mut v: Vec<(Order, String)>| {
        v.sort();
        v.into_iter().map(|(_, k)| k).collect::<Vec<_>>()
    };
    let mut missing = Vec::new();
    let mut changed = Vec::new();
    for (k, (o, row)) in &r {
        match t.get(k) {
            None => missing.push((o.clone(), k.clone())),
            Some((_, trow)) if trow != row => changed.push((o.clone(), k.clone())),
            Some(_) => {}
        }
    }
    let extra = t
        .iter()
        .filter(|(k, _)| !r.contains_key(*k))
        .map(|(k, (o, _))| (o.clone(), k.clone()))
        .collect();
    Expected {
        missing: sorted(missing),
        extra: sorted(extra),
        changed: sorted(changed),
    }
}

// ---- one case against the servers

static CASE_NO: AtomicUsize = AtomicUsize::new(0);

async fn check(x: &Node, y: &Node, c: &Case) -> Result<(), TestCaseError> {
    let db = format!("prop_{}", CASE_NO.fetch_add(1, Ordering::SeqCst));
    let target = target_rows(c);
    let fail = |what: &str, e: harness::Error| TestCaseError::fail(format!("{what}: {e:?}"));
    for (side, n, rows) in [(0, x, &c.rows), (1, y, &target)] {
        n.execute("postgres", &format!("CREATE DATABASE {db}"))
            .await
            .map_err(|e| fail("creating the database", e))?;
        n.execute(&db, &create_sql(c, side, rows))
            .await
            .map_err(|e| fail("loading rows", e))?;
    }
    let opts = VerifyOptions {
        max_keys_listed: 100_000,
        buckets: c.buckets,
        leaf_rows: c.leaf_rows,
        max_split_ranges: c.max_split_ranges,
        ..VerifyOptions::default()
    };
    let report = verify::compare(&Side::of(x, &db), &Side::of(y, &db), &opts)
        .await
        .map_err(|e| fail("verifying", e))?;
    for n in [x, y] {
        n.execute("postgres", &format!("DROP DATABASE {db}"))
            .await
            .map_err(|e| fail("dropping the database", e))?;
    }
    compare_report(c, &target, &report)
}

fn compare_report(c: &Case, target: &[Row], r: &VerifyReport) -> Result<(), TestCaseError> {
    let want = expected(c, target);
    prop_assert_eq!(r.tables.len(), 1, "{:#?}", r);
    let t = &r.tables[0];
    prop_assert_eq!(t.error.as_deref(), None);
    prop_assert_eq!(t.rows_reference, c.rows.len() as u64);
    prop_assert_eq!(t.rows_target, target.len() as u64);
    prop_assert_eq!(&t.missing.keys, &want.missing, "missing");
    prop_assert_eq!(&t.extra.keys, &want.extra, "extra");
    prop_assert_eq!(&t.changed.keys, &want.changed, "changed");
    prop_assert_eq!(t.missing.count, want.missing.len() as u64);
    prop_assert_eq!(t.extra.count, want.extra.len() as u64);
    prop_assert_eq!(t.changed.count, want.changed.len() as u64);
    let same = want.missing.is_empty() && want.extra.is_empty() && want.changed.is_empty();
    let (status, verdict) = if same {
        (TableStatus::Match, Verdict::Valid)
    } else {
        (TableStatus::Differ, Verdict::Invalid)
    };
    prop_assert_eq!(t.status, status);
    prop_assert_eq!(r.verdict, verdict);
    Ok(())
}

#[test]
fn verifier_finds_exactly_the_injected_differences() {
    let cases: u32 = std::env::var("PGREHEARSE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed = common::proptest_seed();
    println!(
        "verify_prop: seed {seed} (replay with PGREHEARSE_PROPTEST_SEED={seed}), {cases} cases"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (backend, x, y) = rt.block_on(common::two_servers("verify-prop"));

    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let result = runner.run(&case(), |c| rt.block_on(check(&x, &y, &c)));

    rt.block_on(backend.teardown(false)).unwrap();
    if let Err(e) = result {
        panic!("{e}\nseed: {seed} (replay with PGREHEARSE_PROPTEST_SEED={seed})");
    }
}
