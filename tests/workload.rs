//! The built-in workload against real servers: determinism, the ledger check, following the
//! target, pacing, and unknown outcomes after a crash.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harness::Verdict;
use harness::backend::Backend;
use harness::node::Node;
use harness::wait::{Check, wait_for};
use harness::workload::{
    BuiltinTable, LedgerEntry, OpKind, Outcome, Progress, SEED_CONN, Target, WorkloadConfig,
    WorkloadStats, append_ledger, check_ledger, create_schema, read_ledger, run, seed_initial,
};
use tokio::sync::watch;

/// Create database `db` on `node` with every built-in table and `rows` seeded rows per table;
/// return the seeded rows' ledger entries.
async fn prepare(node: &Node, db: &str, rows: u64, seed: u64) -> Vec<LedgerEntry> {
    node.execute("postgres", &format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let c = node.connect(db).await.unwrap();
    create_schema(&c, &BuiltinTable::ALL).await.unwrap();
    seed_initial(&c, &BuiltinTable::ALL, rows, seed)
        .await
        .unwrap()
}

fn target(node: &Node) -> Target {
    Target {
        node: node.name().to_string(),
        conn: node.admin().clone(),
    }
}

/// Run to completion against `node` (no stop, no re-pointing).
async fn run_on(node: &Node, cfg: &WorkloadConfig, ledger: &Path) -> WorkloadStats {
    let (_t, trx) = watch::channel(target(node));
    let (_s, srx) = watch::channel(false);
    run(cfg, trx, ledger, srx, None)
        .await
        .unwrap_or_else(|e| panic!("workload on {}: {e:?}", node.name()))
}

/// Per connection, what it attempted: (table, kind, key). Invoice ids come from the server's
/// sequence, so only their table and kind are compared.
fn attempts(entries: &[LedgerEntry]) -> BTreeMap<u32, Vec<(String, OpKind, String)>> {
    let mut m: BTreeMap<u32, Vec<_>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.conn != SEED_CONN) {
        let key = if e.table == BuiltinTable::Invoices.name() {
            String::new()
        } else {
            e.key.clone()
        };
        m.entry(e.conn)
            .or_default()
            .push((e.table.clone(), e.kind, key));
    }
    m
}

/// A workload running in the background against `node`, counting outcomes live.
struct Running {
    task: tokio::task::JoinHandle<harness::Result<WorkloadStats>>,
    progress: Arc<Progress>,
    /// Send true to stop it.
    stop: watch::Sender<bool>,
    /// Kept so that the workload's target never closes.
    _target: watch::Sender<Target>,
}

impl Running {
    fn start(node: &Node, cfg: &WorkloadConfig, ledger: &Path) -> Running {
        let (target_tx, trx) = watch::channel(target(node));
        let (stop, srx) = watch::channel(false);
        let progress = Arc::new(Progress::default());
        let task = {
            let (cfg, ledger, progress) = (cfg.clone(), ledger.to_path_buf(), progress.clone());
            tokio::spawn(async move { run(&cfg, trx, &ledger, srx, Some(progress)).await })
        };
        Running {
            task,
            progress,
            stop,
            _target: target_tx,
        }
    }
}

async fn wait_for_ok(progress: &Arc<Progress>, what: &str, at_least: u64) {
    wait_for(what, Duration::from_secs(60), || {
        let p = progress.clone();
        async move {
            Ok(if p.ok() >= at_least {
                Check::Done(())
            } else {
                Check::NotYet(format!(
                    "{} ok, {} failed, {} unknown",
                    p.ok(),
                    p.failed(),
                    p.unknown()
                ))
            })
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_attempts_the_same_operations() {
    let (backend, x, y) = common::two_servers("wl-determinism").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = WorkloadConfig {
        seed: 42,
        connections: 4,
        duration: Duration::from_secs(120),
        max_ops: Some(1200),
        seeded_rows: 20,
        ..Default::default()
    };

    // Same seed, two fresh servers.
    prepare(&x, "app", 20, 42).await;
    prepare(&y, "app", 20, 42).await;
    builtin_schema_is_what_the_issue_asks_for(&x).await;
    let sx = run_on(&x, &cfg, &dir.path().join("x.jsonl")).await;
    let sy = run_on(&y, &cfg, &dir.path().join("y.jsonl")).await;
    assert_eq!((sx.seed, sy.seed), (42, 42));
    assert_eq!((sx.ok, sx.failed, sx.unknown), (1200, 0, 0));
    assert_eq!((sy.ok, sy.failed, sy.unknown), (1200, 0, 0));
    let ax = attempts(&read_ledger(&dir.path().join("x.jsonl")).unwrap());
    let ay = attempts(&read_ledger(&dir.path().join("y.jsonl")).unwrap());
    assert_eq!(ax.len(), 4);
    for (conn, seq) in &ax {
        assert_eq!(seq.len(), 300, "connection {conn}");
        assert_eq!(
            Some(seq),
            ay.get(conn),
            "connection {conn} attempted other operations"
        );
    }
    // The sequence exercises every kind on several tables, seeded rows included.
    let all: Vec<_> = ax.values().flatten().collect();
    for kind in [OpKind::Insert, OpKind::Update, OpKind::Delete] {
        assert!(all.iter().any(|(_, k, _)| *k == kind), "no {kind:?}");
    }
    let tables: std::collections::BTreeSet<_> = all.iter().map(|(t, _, _)| t.clone()).collect();
    assert_eq!(tables.len(), 5, "{tables:?}");
    assert!(
        all.iter()
            .any(|(t, _, k)| t == "rehearse.events" && k.starts_with("(0,"))
    );

    // Another seed, fresh database: other operations.
    prepare(&x, "app2", 20, 43).await;
    let other = WorkloadConfig {
        seed: 43,
        database: "app2".into(),
        ..cfg.clone()
    };
    let so = run_on(&x, &other, &dir.path().join("x2.jsonl")).await;
    assert_eq!(so.seed, 43);
    let ao = attempts(&read_ledger(&dir.path().join("x2.jsonl")).unwrap());
    for (conn, seq) in &ax {
        assert_ne!(
            Some(seq),
            ao.get(conn),
            "connection {conn}: seed 43 attempted the same"
        );
    }
    backend.teardown(false).await.unwrap();
}

/// The last entry per (table, key) and the ops on it, in ledger order.
fn history(entries: &[LedgerEntry]) -> HashMap<(String, String), Vec<&LedgerEntry>> {
    let mut m: HashMap<(String, String), Vec<&LedgerEntry>> = HashMap::new();
    for e in entries {
        m.entry((e.table.clone(), e.key.clone()))
            .or_default()
            .push(e);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_check_names_lost_writes() {
    let (backend, x) = common::one_server("wl-check").await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.jsonl");

    // Seed, record the seeded rows, run.
    let seeded = prepare(&x, "app", 30, 7).await;
    append_ledger(&ledger, &seeded).unwrap();
    let cfg = WorkloadConfig {
        seed: 7,
        connections: 3,
        duration: Duration::from_secs(120),
        max_ops: Some(1500),
        seeded_rows: 30,
        ..Default::default()
    };
    let stats = run_on(&x, &cfg, &ledger).await;
    assert_eq!(stats.ok, 1500);
    let entries = read_ledger(&ledger).unwrap();
    assert_eq!(entries.len(), 1500 + 5 * 30);

    // The untouched server holds exactly what the ledger says.
    let conn = x.admin().with_db("app");
    let check = check_ledger(&entries, "x", &conn, 10).await.unwrap();
    assert_eq!(check.verdict, Verdict::Valid, "{check:?}");
    assert!(
        check.lost.is_empty() && check.unexplained.is_empty(),
        "{check:?}"
    );
    assert!(check.keys_checked > 150, "{check:?}");
    assert_eq!((check.unknown_applied, check.unknown_not_applied), (0, 0));

    // Behind the workload's back: delete one acknowledged account, and put an event row back
    // to the op id of its earlier write.
    let hist = history(&entries);
    let mut present_accounts: Vec<_> = hist
        .iter()
        .filter(|((t, _), ops)| {
            t == "rehearse.accounts" && ops.last().unwrap().kind != OpKind::Delete
        })
        .collect();
    present_accounts.sort_by_key(|((_, k), _)| k.clone());
    let ((_, acc_key), acc_ops) = present_accounts[0];
    let acc_last = acc_ops.last().unwrap().op;
    let mut updated_events: Vec<_> = hist
        .iter()
        .filter(|((t, _), ops)| {
            t == "rehearse.events" && ops.len() >= 2 && ops.last().unwrap().kind == OpKind::Update
        })
        .collect();
    updated_events.sort_by_key(|((_, k), _)| k.clone());
    let ((_, ev_key), ev_ops) = updated_events[0];
    let ev_last = ev_ops.last().unwrap().op;
    let ev_earlier = ev_ops[ev_ops.len() - 2].op;
    let (stream, seq) = ev_key
        .trim_matches(|c| c == '(' || c == ')')
        .split_once(',')
        .unwrap();
    x.execute(
        "app",
        &format!(
            "DELETE FROM rehearse.accounts WHERE id = {acc_key};
             UPDATE rehearse.events SET op_id = {ev_earlier} WHERE stream = {stream} AND seq = {seq};"
        ),
    )
    .await
    .unwrap();

    let check = check_ledger(&entries, "x", &conn, 10).await.unwrap();
    assert_eq!(check.verdict, Verdict::Invalid);
    let mut want = vec![
        format!("rehearse.accounts {acc_key} op={acc_last}"),
        format!("rehearse.events {ev_key} op={ev_last}"),
    ];
    want.sort();
    let mut got = check.lost.keys.clone();
    got.sort();
    assert_eq!(check.lost.count, 2, "{check:?}");
    assert_eq!(got, want);
    assert!(check.unexplained.is_empty(), "{check:?}");
    backend.teardown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_follow_the_target() {
    let (backend, x, y) = common::two_servers("wl-repoint").await;
    prepare(&x, "app", 0, 1).await;
    prepare(&y, "app", 0, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger: PathBuf = dir.path().join("ledger.jsonl");
    // x and y are unrelated servers (this only proves connections follow the target), so
    // sequence-generated keys collide between them: leave the sequence-backed table out.
    let cfg = WorkloadConfig {
        seed: 11,
        connections: 3,
        rate: Some(600.0),
        duration: Duration::from_secs(120),
        tables: BuiltinTable::ALL
            .into_iter()
            .filter(|t| *t != BuiltinTable::Invoices)
            .collect(),
        ..Default::default()
    };
    let (ttx, trx) = watch::channel(target(&x));
    let (stx, srx) = watch::channel(false);
    let progress = Arc::new(Progress::default());

    // Writes go to x.
    let task = {
        let (cfg, ledger, progress) = (cfg.clone(), ledger.clone(), progress.clone());
        tokio::spawn(async move { run(&cfg, trx, &ledger, srx, Some(progress)).await })
    };
    wait_for_ok(&progress, "100 writes acknowledged by x", 100).await;

    // Re-point at y; the workload keeps going there.
    ttx.send(target(&y)).unwrap();
    let switched_at = progress.ok();
    wait_for_ok(&progress, "200 more writes acknowledged", switched_at + 200).await;
    stx.send(true).unwrap();
    let stats = task.await.unwrap().unwrap();
    assert!(stats.ok >= switched_at + 200);

    let entries = read_ledger(&ledger).unwrap();
    for conn in 0..3u32 {
        let nodes: Vec<&str> = entries
            .iter()
            .filter(|e| e.conn == conn)
            .map(|e| e.node.as_str())
            .collect();
        let first_y = nodes
            .iter()
            .position(|n| *n == "y")
            .unwrap_or_else(|| panic!("connection {conn} never wrote to y"));
        assert!(first_y > 0, "connection {conn} started on y");
        assert!(nodes[..first_y].iter().all(|n| *n == "x"));
        assert!(
            nodes[first_y..].iter().all(|n| *n == "y"),
            "connection {conn} went back to x"
        );
    }
    let ok_on_y = entries
        .iter()
        .filter(|e| e.node == "y" && e.outcome == Outcome::Ok)
        .count();
    assert!(ok_on_y >= 150, "only {ok_on_y} writes acknowledged by y");
    // What y acknowledged is really on y.
    let on_y: Vec<LedgerEntry> = entries.iter().filter(|e| e.node == "y").cloned().collect();
    let check = check_ledger(&on_y, "y", &y.admin().with_db("app"), 5)
        .await
        .unwrap();
    assert!(
        check.lost.is_empty() && check.unexplained.is_empty(),
        "{check:?}"
    );
    backend.teardown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_rate_paces_the_workload() {
    let (backend, x) = common::one_server("wl-rate").await;
    prepare(&x, "app", 0, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = WorkloadConfig {
        seed: 5,
        connections: 4,
        rate: Some(200.0),
        duration: Duration::from_secs(2),
        ..Default::default()
    };
    let ledger = dir.path().join("ledger.jsonl");
    let stats = run_on(&x, &cfg, &ledger).await;
    // Never faster than asked: 400 slots in 2 s (and a few in flight at the end).
    assert!(
        stats.ok <= 450,
        "{} ops acknowledged at 200 ops/s for 2 s",
        stats.ok
    );
    assert_eq!(stats.target_rate, Some(200.0));
    // Paced, not bursts: connection c's k-th operation is sent no earlier than its slot,
    // (c + 4k) / 200 s after the start, so the four interleave evenly. A stall on a loaded
    // machine can only make an operation later than its slot, never earlier.
    let entries = read_ledger(&ledger).unwrap();
    let rate = cfg.rate.unwrap();
    for conn in 0..cfg.connections {
        let mut sent: Vec<u64> = entries
            .iter()
            .filter(|e| e.conn == conn)
            .map(|e| e.sent_us)
            .collect();
        sent.sort_unstable();
        // At least two, so that the spacing between a connection's own sends is judged too.
        assert!(sent.len() >= 2, "connection {conn} sent at {sent:?} µs");
        for (k, at) in sent.iter().enumerate() {
            let slot = (f64::from(conn) + k as f64 * f64::from(cfg.connections)) / rate;
            // The ledger's microseconds are truncated: a microsecond of rounding.
            assert!(
                *at as f64 + 1.0 >= slot * 1e6,
                "connection {conn}'s operation {k} sent at {at} µs, before its slot at {slot} s: {sent:?}"
            );
        }
    }
    backend.teardown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_leaves_unknown_outcomes_the_check_accepts() {
    let (backend, x) = common::one_server("wl-crash").await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.jsonl");
    append_ledger(&ledger, &prepare(&x, "app", 10, 3).await).unwrap();
    let cfg = WorkloadConfig {
        seed: 3,
        connections: 4,
        duration: Duration::from_secs(120),
        seeded_rows: 10,
        ..Default::default()
    };
    let Running {
        task,
        progress,
        stop: stx,
        _target,
    } = Running::start(&x, &cfg, &ledger);

    // Flat out on x, then a crash with operations in flight: SIGKILL one workload backend and
    // the postmaster resets every session and recovers from WAL by itself.
    wait_for_ok(&progress, "500 writes acknowledged by x", 500).await;
    let pid: i32 = x
        .query_one(
            "postgres",
            "SELECT pid FROM pg_stat_activity WHERE datname = 'app' AND backend_type = 'client backend' LIMIT 1",
        )
        .await
        .unwrap()
        .expect("a workload backend")
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let after = progress.ok();
    wait_for_ok(
        &progress,
        "writes acknowledged after the restart",
        after + 200,
    )
    .await;
    stx.send(true).unwrap();
    let stats = task.await.unwrap().unwrap();
    assert!(stats.unknown >= 1, "{stats:?}");

    // Every acknowledged write survived; in-flight ones may or may not have.
    let entries = read_ledger(&ledger).unwrap();
    let unknown = entries
        .iter()
        .filter(|e| e.outcome == Outcome::Unknown)
        .count() as u64;
    assert_eq!(unknown, stats.unknown);
    let check = check_ledger(&entries, "x", &x.admin().with_db("app"), 10)
        .await
        .unwrap();
    assert_eq!(check.verdict, Verdict::Valid, "{check:?}");
    assert_eq!(
        check.unknown_applied + check.unknown_not_applied,
        unknown,
        "{check:?}"
    );
    backend.teardown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_longer_than_the_reconnect_timeout_does_not_end_the_workload() {
    let (backend, x) = common::one_server("wl-outage").await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.jsonl");
    append_ledger(&ledger, &prepare(&x, "app", 10, 5).await).unwrap();
    let cfg = WorkloadConfig {
        seed: 5,
        connections: 2,
        rate: Some(200.0),
        duration: Duration::from_secs(120),
        seeded_rows: 10,
        reconnect_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let Running {
        task,
        progress,
        stop: stx,
        _target,
    } = Running::start(&x, &cfg, &ledger);

    // The primary goes away for three times the reconnect timeout, as a stop fault with a
    // heal_at would: the workload waits for it instead of giving up.
    wait_for_ok(&progress, "100 writes acknowledged by x", 100).await;
    x.stop(harness::node::StopMode::Fast).await.unwrap();
    let down = std::time::Instant::now();
    let outage = cfg.reconnect_timeout * 3;
    wait_for(
        "the workload to outlive three reconnect timeouts of x being down",
        outage * 10,
        || {
            let p = progress.clone();
            let ended = task.is_finished();
            async move {
                let seen = format!(
                    "x down for {:?}; {} ok, {} unknown so far",
                    down.elapsed(),
                    p.ok(),
                    p.unknown()
                );
                if ended {
                    return Err(harness::Error::internal(format!(
                        "the workload ended while x was down ({seen})"
                    )));
                }
                Ok(if down.elapsed() >= outage {
                    Check::Done(())
                } else {
                    Check::NotYet(seen)
                })
            }
        },
    )
    .await
    .unwrap();
    x.start().await.unwrap();
    let after = progress.ok();
    wait_for_ok(
        &progress,
        "writes acknowledged after x is back",
        after + 100,
    )
    .await;
    stx.send(true).unwrap();
    let stats = task
        .await
        .unwrap()
        .expect("the workload rides out an outage longer than its reconnect timeout");
    let check = check_ledger(
        &read_ledger(&ledger).unwrap(),
        "x",
        &x.admin().with_db("app"),
        10,
    )
    .await
    .unwrap();
    assert_eq!(check.verdict, Verdict::Valid, "{check:?} after {stats:?}");
    backend.teardown(false).await.unwrap();
}

/// The built-in tables cover the shapes replication gets wrong: a text composite key, every
/// awkward type, tens of KB of text per row, no key at all, a sequence.
async fn builtin_schema_is_what_the_issue_asks_for(x: &harness::node::Node) {
    let one = |sql: &'static str| async move { x.query_one("app", sql).await.unwrap().unwrap() };
    assert_eq!(
        one(
            "SELECT string_agg(a.attname || ':' || format_type(a.atttypid, NULL), ',' ORDER BY k.n)
             FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(att, n), pg_attribute a
             WHERE i.indrelid = 'rehearse.order_lines'::regclass AND i.indisprimary
               AND a.attrelid = i.indrelid AND a.attnum = k.att"
        )
        .await,
        "region:text,order_no:text,line:integer"
    );
    assert_eq!(
        one(
            "SELECT string_agg(DISTINCT format_type(atttypid, NULL), ',')
             FROM pg_attribute WHERE attrelid = 'rehearse.documents'::regclass
               AND attname IN ('body', 'blob', 'amount', 'happened_at')"
        )
        .await,
        "bytea,jsonb,numeric,timestamp with time zone"
    );
    let content: i64 = one("SELECT max(octet_length(content)) FROM rehearse.documents")
        .await
        .parse()
        .unwrap();
    assert!(
        content >= 10_000,
        "largest documents.content: {content} bytes"
    );
    assert_eq!(
        one(
            "SELECT relreplident::text || ',' || (SELECT count(*) FROM pg_index
                 WHERE indrelid = c.oid AND indisprimary)
             FROM pg_class c WHERE oid = 'rehearse.events'::regclass"
        )
        .await,
        "f,0",
        "events: REPLICA IDENTITY FULL and no primary key"
    );
    assert_eq!(
        one("SELECT pg_get_serial_sequence('rehearse.invoices', 'id')").await,
        "rehearse.invoices_id_seq"
    );
}
