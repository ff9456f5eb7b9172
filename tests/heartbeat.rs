//! The heartbeat row on a real server: it only ever moves forward.

mod common;

use harness::backend::Backend;
use harness::chain::HARNESS_SCHEMA;
use harness::observe::{HeartbeatRead, read_heartbeat, write_heartbeat_sql};

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
