//! The heartbeat on a real server: the row only ever moves forward, a primary that cannot
//! commit holds one heartbeat (not one per timeout), and `status` tells such a writer from one
//! that stopped, without waiting on a node that does not answer for longer than its patience.

mod common;

use std::time::{Duration, Instant};

use harness::backend::Backend;
use harness::chain::HARNESS_SCHEMA;
use harness::node::Node;
use harness::observe::{
    ChainSnapshot, EndToEnd, Heartbeat, HeartbeatRead, NodeSnapshot, STATUS_PATIENCE, Writer,
    primary_channel, read_heartbeat, render_status, write_heartbeat_sql, writer_connected,
};
use harness::wait::{Check, wait_for};
use serde_json::Value;

use common::report;

/// Longest wait for a condition.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_heartbeat_never_moves_the_row_back() {
    let (backend, x) = common::one_server("hb-order").await;
    x.execute(
        "postgres",
        &format!(
            "CREATE SCHEMA {s};
             CREATE TABLE {s}.heartbeat (id int PRIMARY KEY, seq bigint NOT NULL, ts timestamptz NOT NULL);",
            s = HARNESS_SCHEMA
        ),
    )
    .await
    .unwrap();
    let c = x.connect("postgres").await.unwrap();
    let sql = write_heartbeat_sql();
    let mut seen = Vec::new();
    // 5 commits, then a write of 3 the writer had abandoned commits late, then 7.
    for seq in [5i64, 3, 7] {
        c.execute(sql.as_str(), &[&seq]).await.unwrap();
        seen.push(match read_heartbeat(&c).await.unwrap() {
            HeartbeatRead::Row(r) => r.seq,
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(seen, [5, 5, 7]);
    backend.teardown(false).await.unwrap();
}

/// The heartbeat table, empty, on `x`'s database `postgres`.
async fn heartbeat_table(x: &Node) {
    x.execute(
        "postgres",
        &format!(
            "CREATE SCHEMA {s};
             CREATE TABLE {s}.heartbeat (id int PRIMARY KEY, seq bigint NOT NULL, ts timestamptz NOT NULL);",
            s = HARNESS_SCHEMA
        ),
    )
    .await
    .unwrap();
}

/// A session on `x` holding, in an open transaction, the locks `sql` takes.
async fn holding(x: &Node, sql: &str) -> tokio_postgres::Client {
    let c = x.connect("postgres").await.unwrap();
    c.batch_execute(&format!("BEGIN; {sql}")).await.unwrap();
    c
}

/// Whether the heartbeat writer's session is on `x`, as `status` asks.
async fn writer_on(x: &Node) -> bool {
    writer_connected(&x.connect("postgres").await.unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_cannot_commit_holds_one_heartbeat_not_one_per_timeout() {
    let (backend, x) = common::one_server("hb-stuck").await;
    heartbeat_table(&x).await;
    // --- every commit on x waits for a synchronous standby that does not exist
    for sql in [
        "ALTER SYSTEM SET synchronous_standby_names = 'nobody'",
        "SELECT pg_reload_conf()",
    ] {
        x.execute("postgres", sql).await.unwrap();
    }
    let watcher = x.connect("postgres").await.unwrap();
    wait_for("x to wait for a synchronous standby", WAIT, || async {
        let v = x
            .query_one("postgres", "SHOW synchronous_standby_names")
            .await?;
        Ok(match v.as_deref() {
            Some("nobody") => Check::Done(()),
            other => Check::NotYet(format!("{other:?}")),
        })
    })
    .await
    .unwrap();

    // --- heartbeats every 100 ms for more than three write timeouts (2 s each)
    let (_tx, rx) = primary_channel(&x);
    let hb = Heartbeat::start(rx, "postgres", Duration::from_millis(100), Instant::now());
    let log = hb.log();
    let most = std::sync::atomic::AtomicI64::new(0);
    let count = "SELECT count(*) FROM pg_stat_activity WHERE query = $1";
    wait_for("70 heartbeats issued", WAIT, || async {
        let n: i64 = watcher
            .query_one(count, &[&write_heartbeat_sql()])
            .await?
            .get(0);
        most.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
        Ok(match log.issued() {
            n if n >= 70 => Check::Done(()),
            n => Check::NotYet(format!("{n} issued")),
        })
    })
    .await
    .unwrap();
    let most = most.into_inner();
    // Each heartbeat updates row id = 1: a second INSERT sent while the first waits would queue
    // behind its row lock, one more stuck backend per timeout.
    assert_eq!(most, 1, "heartbeat INSERTs seen at once on x");
    // Still issued every tick while none reaches a standby: the lag grows.
    assert!(log.lag_at(0, 7_000).is_some_and(|s| s >= 6.0));
    drop(hb);
    backend.teardown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_a_writer_that_cannot_commit_from_one_that_stopped() {
    let (backend, x) = common::one_server("hb-stalled").await;
    heartbeat_table(&x).await;
    let old_row = format!(
        "INSERT INTO {HARNESS_SCHEMA}.heartbeat VALUES (1, 1, now() - interval '1 minute')
         ON CONFLICT (id) DO UPDATE SET seq = 1, ts = now() - interval '1 minute'"
    );
    x.execute("postgres", &old_row).await.unwrap();
    // --- a writer whose heartbeats cannot commit (the row is locked; reads still pass)
    let lock = holding(
        &x,
        &format!("LOCK TABLE {HARNESS_SCHEMA}.heartbeat IN SHARE MODE"),
    )
    .await;
    let (_tx, rx) = primary_channel(&x);
    let hb = Heartbeat::start(rx, "postgres", Duration::from_millis(100), Instant::now());
    wait_for("the heartbeat writer on x", WAIT, || async {
        Ok(match writer_on(&x).await {
            true => Check::Done(()),
            false => Check::NotYet("not connected".into()),
        })
    })
    .await
    .unwrap();
    let snap = ChainSnapshot::take(&x, &x, &x, "postgres", "sub", &Writer::MaybeRunning).await;
    let e2e = snap.heartbeat.clone().unwrap();
    assert!(
        matches!(&e2e, EndToEnd::Measured { lag_s, at_least: true, primary_stalled: true, .. } if *lag_s >= 60.0),
        "{e2e:?}"
    );
    assert!(
        render_status(&snap).contains("x commits no heartbeat"),
        "{snap:?}"
    );

    // --- the writer gone: the same old row is no lag at all
    drop(hb);
    drop(lock);
    wait_for("the heartbeat writer to leave x", WAIT, || async {
        Ok(match writer_on(&x).await {
            false => Check::Done(()),
            true => Check::NotYet("still connected".into()),
        })
    })
    .await
    .unwrap();
    x.execute("postgres", &old_row).await.unwrap();
    let snap = ChainSnapshot::take(&x, &x, &x, "postgres", "sub", &Writer::MaybeRunning).await;
    let e2e = snap.heartbeat.unwrap();
    assert!(matches!(e2e, EndToEnd::Stopped { .. }), "{e2e:?}");
    backend.teardown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_snapshot_is_bounded_when_a_node_stops_answering() {
    let (backend, x) = common::one_server("status-bounded").await;
    heartbeat_table(&x).await;
    // A database that does not exist: the node answers, its subscriptions cannot be read.
    let s = NodeSnapshot::take(&x, "nosuchdb").await;
    assert!(s.reachable, "{s:?}");
    assert!(
        s.subscriptions_error
            .as_deref()
            .is_some_and(|e| e.contains("nosuchdb")),
        "{s:?}"
    );
    // --- x answers the connection, then never the subscription or heartbeat queries
    let lock = holding(
        &x,
        &format!(
            "LOCK TABLE pg_subscription IN ACCESS EXCLUSIVE MODE;
             LOCK TABLE {HARNESS_SCHEMA}.heartbeat IN ACCESS EXCLUSIVE MODE"
        ),
    )
    .await;
    let before = std::time::SystemTime::now();
    let t = Instant::now();
    let take = ChainSnapshot::take(&x, &x, &x, "postgres", "sub", &Writer::MaybeRunning);
    let snap = tokio::time::timeout(Duration::from_secs(60), take)
        .await
        .expect("a snapshot within 60 s");
    let took = t.elapsed();
    // Every read bounded by the patience, all at once: one patience, not one per read.
    assert!(
        took >= STATUS_PATIENCE && took < STATUS_PATIENCE + Duration::from_secs(3),
        "took {took:?}"
    );
    for n in &snap.nodes {
        assert!(!n.reachable, "{n:?}");
        assert!(
            n.error.as_deref().unwrap().contains("no answer within"),
            "{n:?}"
        );
    }
    assert!(
        matches!(snap.heartbeat, Some(EndToEnd::Unknown { .. })),
        "{snap:?}"
    );
    // Stamped when the snapshot began, not when its slowest read gave up.
    // (To the second: RFC 3339 from chrono, read back by humantime without the offset.)
    let taken_at = humantime::parse_rfc3339_weak(&snap.taken_at[..19]).unwrap();
    assert!(
        taken_at <= before + Duration::from_secs(1),
        "taken at {} when it began at {}",
        snap.taken_at,
        humantime::format_rfc3339(before)
    );
    drop(lock);
    backend.teardown(false).await.unwrap();
}

/// What the sampler leaves in samples.jsonl as the tests read it.
#[test]
fn only_a_cut_short_last_sample_is_skipped() {
    let ok = "{\"t\":1}\n{\"t\":2}\n";
    assert_eq!(report::parse_samples::<Value>(ok).unwrap().len(), 2);
    let cut = "{\"t\":1}\n{\"t\":2}\n{\"t\":";
    assert_eq!(report::parse_samples::<Value>(cut).unwrap().len(), 2);
    // A bad line anywhere else, or a whole bad last line, is a broken file.
    assert!(report::parse_samples::<Value>("{\"t\":\n{\"t\":2}\n").is_err());
    assert!(report::parse_samples::<Value>("{\"t\":1}\nnot json\n").is_err());
}
