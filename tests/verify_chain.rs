//! The verifier on the real chain: B is a hot standby and can only be read, C is fed by a
//! subscription. After a fence, C matches both A and B (sequences aside, which replication
//! does not carry); a row lost on C is reported against B.

mod common;

use harness::Verdict;
use harness::backend::Backend;
use harness::chain::ChainSpec;
use harness::node::Node;
use harness::verify::{self, SequenceStatus, Side, TableStatus, VerifyOptions};

const DB: &str = "app";

async fn seed(a: Node) -> harness::Result<()> {
    a.execute(
        DB,
        "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric);
         INSERT INTO accounts SELECT g, 'owner-' || g, g * 10 FROM generate_series(1, 3000) g;
         CREATE TABLE notes (body text);
         INSERT INTO notes SELECT 'note ' || (g % 100) FROM generate_series(1, 500) g;
         CREATE SEQUENCE invoice_seq;
         SELECT setval('invoice_seq', 42);",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_reads_the_standby_and_finds_what_c_lost() {
    let (backend, chain) = common::chain("verify-chain", ChainSpec::default(), seed).await;

    // --- changes on A after the initial copy, carried through B to C
    chain
        .a
        .execute(
            DB,
            "UPDATE accounts SET balance = balance + 1 WHERE id <= 10;
             INSERT INTO accounts VALUES (3001, 'late', 0);
             INSERT INTO notes VALUES ('note 7');",
        )
        .await
        .unwrap();
    chain.fence().await.unwrap();

    let (a, b, c) = (
        Side::of(&chain.a, DB),
        Side::of(&chain.b, DB),
        Side::of(&chain.c, DB),
    );
    let opts = VerifyOptions::default();

    // --- B (hot standby, read-only) as the reference: C matches it
    let r = verify::compare(&b, &c, &opts).await.unwrap();
    assert_eq!(r.verdict, Verdict::Valid, "{r:#?}");
    let names: Vec<&str> = r.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, vec!["public.accounts", "public.notes"]);
    assert_eq!(r.tables[0].rows_reference, 3001);
    assert_eq!(r.tables[1].rows_target, 501);
    // The schema copy carries the sequence, not its value.
    let s = &r.sequences[0];
    assert_eq!(s.sequence, "public.invoice_seq");
    assert_eq!(
        (s.status, s.reference, s.target),
        (SequenceStatus::Drift, Some(42), None)
    );

    // --- B as the target: it matches A
    let r = verify::compare(&a, &b, &opts).await.unwrap();
    assert_eq!(r.verdict, Verdict::Valid, "{r:#?}");
    assert!(r.tables.iter().all(|t| t.status == TableStatus::Match));

    // --- a row lost on C is reported against B
    chain
        .c
        .execute(DB, "DELETE FROM accounts WHERE id = 5")
        .await
        .unwrap();
    let r = verify::compare(&b, &c, &opts).await.unwrap();
    assert_eq!(r.verdict, Verdict::Invalid);
    let acc = &r.tables[0];
    assert_eq!(acc.missing.keys, vec!["5"]);
    assert!(acc.extra.is_empty() && acc.changed.is_empty());

    backend.teardown(false).await.unwrap();
}

/// A fence C never reaches: the wait gives up at its timeout and says what it waited for and
/// what every node showed, as TAP's wait_for_catchup dumps pg_stat_replication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_that_never_arrives_times_out_showing_the_replication_state() {
    let (backend, mut chain) =
        common::chain("fence-timeout", ChainSpec::default(), |a| async move {
            a.execute(DB, "CREATE TABLE t (id int PRIMARY KEY)").await
        })
        .await;
    chain
        .c
        .execute(
            DB,
            &format!("ALTER SUBSCRIPTION {} DISABLE", chain.spec.subscription),
        )
        .await
        .unwrap();
    chain.spec.catchup_timeout = std::time::Duration::from_secs(2);

    let e = chain.fence().await.unwrap_err();
    backend.teardown(false).await.unwrap();

    assert_eq!(e.kind(), harness::ErrorKind::Timeout, "{e:?}");
    let shown = format!("{e:?}");
    for part in [
        "fence ",
        "to appear on c",
        "pg_stat_subscription on c",
        "pg_stat_wal_receiver on b",
        "pg_stat_replication on a",
        "pg_replication_slots on b",
    ] {
        assert!(shown.contains(part), "{part:?} missing from:\n{shown}");
    }
    // The disabled subscription shows: its row has no apply worker.
    assert!(
        shown.contains(&chain.spec.subscription),
        "the subscription is named:\n{shown}"
    );
}
