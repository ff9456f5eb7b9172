//! The chain's own waits on real servers: each ends, in its time, with the reason, instead of
//! hanging on a state PostgreSQL will not leave by itself. And B gets what a hot standby of
//! this A needs.

mod common;

use std::time::{Duration, Instant};

use harness::ErrorKind;
use harness::chain::ChainSpec;
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
