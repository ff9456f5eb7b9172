//! The capacity benchmarks (`pgrehearse bench`, `cargo bench`) work end to end, at small sizes.
//! Their numbers are measured by the benchmarks themselves, on a quiet machine, not judged here;
//! this proves each one builds its chain, measures something real and tears down.

mod common;

use std::time::Duration;

use harness::backend::BackendKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_benchmark_measures_a_real_chain() {
    common::init_logging();

    let up = harness::bench::chain_up(1, BackendKind::Local)
        .await
        .unwrap();
    assert_eq!(up.runs_ms.len(), 1);
    assert!(up.phases[0].replicate_ms > 0, "{up:?}");

    let v = harness::bench::verify_vs_baseline(20_000, 1).await.unwrap();
    assert_eq!((v.verify_ms.len(), v.baseline_ms.len()), (1, 1));
    assert!(v.ratio.is_some_and(|r| r.is_finite() && r > 0.0), "{v:?}");

    let w = harness::bench::workload_vs_pgbench(2, Duration::from_secs(2), 2)
        .await
        .unwrap();
    assert!(
        w.median.pgbench_tps > 0.0 && w.median.workload_ops_per_s > 0.0,
        "{w:?}"
    );
    assert!(
        w.median.pgbench_wal_bytes_per_s > 0.0 && w.median.workload_wal_bytes_per_s > 0.0,
        "{w:?}"
    );
    assert_eq!(w.median.pgbench_rows_per_s, 2.0 * w.median.pgbench_tps);
    assert_eq!(w.rounds.len(), 2);
    assert!(w.rounds[0].pgbench_first && !w.rounds[1].pgbench_first);
    assert_eq!(w.rounds[0].workload.connections, 2);
}
