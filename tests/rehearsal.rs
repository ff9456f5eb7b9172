//! The rehearsal as a newcomer runs it: `pgrehearse run`, `up`, `verify`, `down`, on real
//! servers, with the exit codes CI relies on.

mod common;

use common::cli;

const UP: &str = r#"
version = 1
name = "drift"

[workload]
initial_rows = 200
"#;

#[test]
fn changes_made_on_c_behind_the_subscriptions_back_are_reported_key_by_key() {
    let (_d, path) = cli::scenario("drift", UP);
    let (out, run, _down) = cli::up(&[path.to_str().unwrap(), "--json"]);
    let run_arg = run.to_str().unwrap().to_string();
    // `up --json`: the run and where to connect, for scripts; the passwords stay in the file.
    let up: serde_json::Value = serde_json::from_str(&cli::stdout(&out)).unwrap();
    assert_eq!(up["run_dir"].as_str(), Some(run_arg.as_str()), "{up:#}");
    let nodes: Vec<&str> = up["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["a", "b", "c"], "{up:#}");
    for n in up["nodes"].as_array().unwrap() {
        let conninfo = n["conninfo"].as_str().unwrap();
        assert!(conninfo.contains("dbname=app"), "{conninfo}");
        assert!(!conninfo.contains("password"), "{conninfo}");
    }
    assert!(std::path::Path::new(up["passfile"].as_str().unwrap()).is_file());

    // --- once caught up, C is identical to A, and so is B
    let ok = cli::run(&["verify", "--run", &run_arg, "--json", "--with-standby"]);
    assert_eq!(ok.status.code(), Some(0), "{}", cli::stderr(&ok));
    let both: serde_json::Value = serde_json::from_str(&cli::stdout(&ok)).unwrap();
    let pairs: Vec<(String, String)> = both
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["target"].to_string(), r["reference"].to_string()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("\"c\"".to_string(), "\"a\"".to_string()),
            ("\"b\"".to_string(), "\"a\"".to_string())
        ],
        "{both:#}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();

    // --- every login takes the run's SCRAM password: none and a wrong one are refused
    rt.block_on(async {
        let attached = harness::run::Attached::open(harness::run::RunDir::open(&run))
            .await
            .unwrap();
        for n in up["nodes"].as_array().unwrap() {
            let conninfo = n["conninfo"].as_str().unwrap();
            let none = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await;
            assert!(
                none.is_err(),
                "{conninfo} let a login in without a password"
            );
            let wrong = tokio_postgres::connect(
                &format!("{conninfo} password=wrong"),
                tokio_postgres::NoTls,
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{conninfo} took a wrong password"));
            assert_eq!(
                wrong.as_db_error().map(|d| d.code().code()),
                Some("28P01"),
                "{conninfo}: {wrong:?}"
            );
        }
        for node in [&attached.chain.a, &attached.chain.b, &attached.chain.c] {
            let methods = node
                .query_one(
                    "postgres",
                    "SELECT string_agg(DISTINCT auth_method, ',') FROM pg_hba_file_rules",
                )
                .await
                .unwrap();
            assert_eq!(methods.as_deref(), Some("scram-sha-256"), "{}", node.name());
        }
        attached.release();
    });

    // --- change C directly: 3 updates, 2 deletes, 1 insert in a keyed and in the keyless table
    rt.block_on(async {
        let attached = harness::run::Attached::open(harness::run::RunDir::open(&run)).await.unwrap();
        attached
            .chain
            .c
            .execute(
                "app",
                "UPDATE rehearse.accounts SET owner = 'changed on c' WHERE id IN (1, 2, 3);
                 DELETE FROM rehearse.accounts WHERE id IN (10, 11);
                 INSERT INTO rehearse.accounts (id, owner, balance, op_id, updated_at)
                   VALUES (424242, 'only on c', 0, 0, '2026-01-01');
                 UPDATE rehearse.events SET payload = 'changed on c' WHERE stream = 0 AND seq IN (1, 2, 3);
                 DELETE FROM rehearse.events WHERE stream = 0 AND seq IN (10, 11);
                 INSERT INTO rehearse.events (stream, seq, payload, op_id) VALUES (99, 1, 'only on c', 0);",
            )
            .await
            .unwrap();
        attached.release();
    });

    let out = cli::run(&["verify", "--run", &run_arg, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", cli::stderr(&out));
    let reports: serde_json::Value = serde_json::from_str(&cli::stdout(&out)).unwrap();
    let tables = reports[0]["tables"].as_array().unwrap();
    let table = |name: &str| tables.iter().find(|t| t["table"] == name).unwrap().clone();
    let keys = |t: &serde_json::Value, class: &str| -> (u64, Vec<String>) {
        let ks = &t[class];
        (
            ks["count"].as_u64().unwrap(),
            ks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect(),
        )
    };

    let acc = table("rehearse.accounts");
    assert_eq!(acc["status"], "differ");
    assert_eq!(
        keys(&acc, "changed"),
        (3, vec!["1".into(), "2".into(), "3".into()])
    );
    assert_eq!(keys(&acc, "missing"), (2, vec!["10".into(), "11".into()]));
    assert_eq!(keys(&acc, "extra"), (1, vec!["424242".into()]));

    // Without a key, an updated row is one copy missing and one extra.
    let ev = table("rehearse.events");
    assert_eq!(ev["status"], "differ");
    let (missing, mk) = keys(&ev, "missing");
    let (extra, ek) = keys(&ev, "extra");
    assert_eq!((missing, extra), (5, 4), "missing {mk:?} extra {ek:?}");
    // The missing copies are exactly the rows C changed or deleted: (stream, seq) of each.
    let mut lost: Vec<(i64, i64)> = mk
        .iter()
        .map(|row| {
            let mut cols = row.trim_start_matches('(').split(',');
            let mut next = || cols.next().and_then(|c| c.parse().ok()).expect(row);
            (next(), next())
        })
        .collect();
    lost.sort();
    assert_eq!(lost, [(0, 1), (0, 2), (0, 3), (0, 10), (0, 11)], "{mk:?}");
    assert_eq!(
        ek.iter().filter(|k| k.contains("changed on c")).count(),
        3,
        "{ek:?}"
    );
    assert_eq!(
        ek.iter().filter(|k| k.contains("only on c")).count(),
        1,
        "{ek:?}"
    );
    assert_eq!(keys(&ev, "changed").0, 0);
    for other in [
        "rehearse.documents",
        "rehearse.invoices",
        "rehearse.order_lines",
    ] {
        assert_eq!(table(other)["status"], "match", "{other}");
    }

    let down = cli::run(&["down", "--run", &run_arg]);
    assert_eq!(down.status.code(), Some(0), "{}", cli::stderr(&down));
    cli::assert_cleaned_up(&run);
}

/// A short rehearsal on PostgreSQL `major`. 17 is what every other test uses; the other
/// supported majors get one each (CI fetches their pinned builds before the tests; elsewhere
/// the run fetches them on first use, and a failed fetch fails the test).
fn the_chain_runs_on(major: u32) {
    if harness::pg::PINS
        .iter()
        .all(|p| p.major != major || p.arch != std::env::consts::ARCH)
    {
        eprintln!(
            "SKIPPED: pgrehearse pins no PostgreSQL {major} build for {}",
            std::env::consts::ARCH
        );
        return;
    }
    let (_d, path) = cli::scenario(
        "majors",
        &format!(
            "version = 1\nname = \"pg{major}\"\nseed = 3\n[chain]\npg_version = {major}\n\
             [workload]\ninitial_rows = 100\nrate = 100\nduration = \"3s\"\n[expect]\nconsistent = true\n"
        ),
    );
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "PostgreSQL {major}:\n{err}");
    let run = cli::run_dir(&err).unwrap();
    let report = common::report::read(&run);
    assert_eq!(report["postgres"]["version"]["major"], major);
    cli::assert_cleaned_up(&run);
}

#[test]
fn postgresql_16_runs_the_chain_too() {
    the_chain_runs_on(16);
}

#[test]
fn postgresql_18_runs_the_chain_too() {
    the_chain_runs_on(18);
}
