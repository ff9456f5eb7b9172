//! The chain's own waits on real servers: each ends, in its time, with the reason, instead of
//! hanging on a state PostgreSQL will not leave by itself. And B gets what a hot standby of
//! this A needs.

mod common;

use std::time::{Duration, Instant};

use harness::ErrorKind;
use harness::backend::{Backend, Credentials, LocalBackend};
use harness::chain::{Chain, ChainSpec, NativeSubscription, Replicator};
use harness::faults::FaultKind;
use harness::node::{Node, StopMode};

const DB: &str = "app";

async fn seed(a: Node) -> harness::Result<()> {
    a.execute(
        DB,
        "CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL);
         INSERT INTO accounts SELECT g, g FROM generate_series(1, 200) g;",
    )
    .await
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A, B and C with the schema on C, everything but the subscription (which the test starts
/// itself).
async fn chain_without_subscription(
    label: &str,
    spec: &ChainSpec,
) -> (LocalBackend, Credentials, Node, Node, Node) {
    let (backend, creds) = common::backend(label);
    let (a, c) = Chain::init_primary_and_target(&backend, spec, &creds)
        .await
        .expect("a and c");
    seed(a.clone()).await.expect("seed");
    Chain::publish(&a, spec).await.expect("publication");
    let via = backend.peer_endpoint(&a);
    let b = Chain::init_standby(&backend, &a, &via, spec, &creds)
        .await
        .expect("b");
    Chain::init_target_schema(&b, &c, spec, &creds)
        .await
        .expect("schema on c");
    (backend, creds, a, b, c)
}

fn subscription(
    spec: &ChainSpec,
    creds: &Credentials,
    sync_timeout: Duration,
) -> NativeSubscription {
    NativeSubscription {
        name: spec.subscription.clone(),
        publication: spec.publication.clone(),
        database: spec.database.clone(),
        login: creds.replicator.clone(),
        sync_timeout,
        owner: None,
    }
}

async fn rows(n: &Node, sql: &str) -> Vec<String> {
    let client = n.connect(DB).await.unwrap();
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_gets_the_primarys_values_of_the_settings_a_hot_standby_needs() {
    // --- A with more connections, walsenders and locks than B would have by default
    let spec = ChainSpec {
        a_settings: pairs(&[
            ("max_connections", "150"),
            ("max_wal_senders", "25"),
            ("max_locks_per_transaction", "128"),
        ]),
        b_settings: pairs(&[("max_locks_per_transaction", "256")]),
        ..ChainSpec::default()
    };
    let (_backend, chain) = common::chain("chain-standby-floor", spec, seed).await;

    // --- B runs as A's hot standby with at least A's values; its own higher value stands
    let show = |name: &'static str| {
        let b = chain.b.clone();
        async move {
            b.query_one("postgres", &format!("SHOW {name}"))
                .await
                .unwrap()
        }
    };
    assert_eq!(show("max_connections").await.as_deref(), Some("150"));
    assert_eq!(show("max_wal_senders").await.as_deref(), Some("25"));
    assert_eq!(
        show("max_locks_per_transaction").await.as_deref(),
        Some("256")
    );
    assert!(chain.b.in_recovery().await.unwrap());

    // --- the subscription pins what 18 would otherwise change
    assert_eq!(
        rows(
            &chain.c,
            "SELECT substream::text || ' ' || subdisableonerr::text FROM pg_subscription"
        )
        .await,
        ["f false"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_synchronous_primary_whose_standby_is_down_the_fence_and_the_churn_cleanup_return() {
    // --- A waits for B to apply every commit
    let spec = ChainSpec {
        a_settings: pairs(&[
            ("synchronous_standby_names", "b"),
            ("synchronous_commit", "remote_apply"),
        ]),
        ..ChainSpec::default()
    };
    let (_backend, mut chain) = common::chain("chain-sync-fence", spec, seed).await;
    chain.spec.catchup_timeout = Duration::from_secs(5);

    // --- B cannot apply: every commit on A that waits for it waits for ever
    chain.b.stop(StopMode::Fast).await.unwrap();

    // --- the fence is written and then not seen on C: a timeout that says so
    let t = Instant::now();
    let fence = tokio::time::timeout(Duration::from_secs(60), chain.fence())
        .await
        .expect("the fence returned (a commit waiting for b would never return)");
    let e = fence.expect_err("c cannot see a fence while b is down");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e:?}");
    assert!(e.to_string().contains("to appear on c"), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(60));

    // --- a churn round cut short left its table behind (created while committing locally)
    chain
        .a
        .execute(
            DB,
            "SET synchronous_commit = local; CREATE TABLE pgrehearse.churn ()",
        )
        .await
        .unwrap();
    let env = common::fault_env(&chain, DB);
    let churn = harness::faults::build(&FaultKind::CatalogChurn {
        every: Duration::from_secs(3600),
    });
    churn.inject(&env).await.unwrap();

    // --- healing cleans it up without waiting for b
    tokio::time::timeout(Duration::from_secs(60), churn.heal(&env))
        .await
        .expect("the heal returned (a cleanup waiting for b would never return)")
        .unwrap();
    assert_eq!(
        chain
            .a
            .query_one(DB, "SELECT to_regclass('pgrehearse.churn') IS NULL")
            .await
            .unwrap()
            .as_deref(),
        Some("t")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_whose_slot_never_comes_is_cancelled_and_says_why() {
    let spec = ChainSpec::default();
    let (backend, creds, a, b, c) = chain_without_subscription("chain-slot-never", &spec).await;

    // --- A is down: no running-xacts record can come, and nudging it fails
    a.stop(StopMode::Fast).await.unwrap();
    let sub = subscription(&spec, &creds, Duration::from_secs(5));
    let via = backend.peer_endpoint(&b);
    let t = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(120), sub.start(Some(&a), &b, &c, &via))
        .await
        .expect("creating the subscription gave up in time")
        .expect_err("no slot can be created on b without a running-xacts record");

    // --- nothing goes on behind the harness's back: C runs no CREATE SUBSCRIPTION any more,
    // has no subscription, and B has no slot
    assert_eq!(
        rows(
            &c,
            "SELECT pid::text FROM pg_stat_activity WHERE query ILIKE 'CREATE SUBSCRIPTION%'"
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        rows(&c, "SELECT subname::text FROM pg_subscription").await,
        Vec::<String>::new()
    );
    assert_eq!(
        rows(&b, "SELECT slot_name::text FROM pg_replication_slots").await,
        Vec::<String>::new()
    );

    // --- the error says what happened, and why
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("was not created within 5.00s"), "{msg}");
    assert!(msg.contains("no slot on b when checked"), "{msg}");
    assert!(
        msg.contains("nudging a (pg_log_standby_snapshot()) failed"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(120));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_copy_that_keeps_failing_stops_early_with_the_error_c_logged() {
    // C retries a failed table sync after a second, not five
    let spec = ChainSpec {
        c_settings: pairs(&[("wal_retrieve_retry_interval", "1s")]),
        ..ChainSpec::default()
    };
    let (backend, creds, a, b, c) = chain_without_subscription("chain-sync-fails", &spec).await;

    // --- C's copy of the table refuses every row A has
    c.execute(
        DB,
        "ALTER TABLE accounts ADD CONSTRAINT never CHECK (balance < 0)",
    )
    .await
    .unwrap();

    // --- the initial copy fails over and over; the wait stops long before its timeout
    let sub = subscription(&spec, &creds, Duration::from_secs(600));
    let via = backend.peer_endpoint(&b);
    let e = tokio::time::timeout(Duration::from_secs(180), sub.start(Some(&a), &b, &c, &via))
        .await
        .expect("the wait for the initial copy stopped before its 10 min timeout")
        .expect_err("the copy cannot succeed");
    let msg = e.to_string();
    assert!(msg.contains("keep failing"), "{e:?}");
    assert!(msg.contains("sync_error_count 0 →"), "{e:?}");
    assert!(msg.contains("violates check constraint"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_an_idle_primary_the_slot_is_left_waiting_only_once_no_record_can_be_owed() {
    let spec = ChainSpec {
        idle_primary: Some(Duration::from_secs(5)),
        ..ChainSpec::default()
    };
    let (_backend, chain) = common::chain("chain-idle-primary", spec, seed).await;
    let i = chain.idle_primary.expect("the idle primary was rehearsed");

    // --- A's bgwriter can still owe a running-xacts record 15 s + 51 × bgwriter_delay (200 ms)
    // after A's last write: slot creation is left without a nudge only after that
    assert!(i.idle_after_ms >= 25_200, "{i:?}");
    assert!(i.still_waiting_after_idle_wait, "{i:?}");
    assert!(!i.a_wrote_wal_during_wait, "{i:?}");
    assert!(i.completed_after_nudge_ms.is_some(), "{i:?}");

    // --- autovacuum, off while A had to stay idle, is A's own again
    assert_eq!(
        chain
            .a
            .query_one("postgres", "SHOW autovacuum")
            .await
            .unwrap()
            .as_deref(),
        Some("on")
    );
}
