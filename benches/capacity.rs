//! `cargo bench`: the capacity numbers of the README, on this machine, as JSON lines in
//! target/pgrehearse-bench.jsonl. Sizes are environment-tunable so CI can run a short version:
//! PGREHEARSE_BENCH_ROWS (default 2_000_000), PGREHEARSE_BENCH_SECS (default 20),
//! PGREHEARSE_BENCH_RUNS (default 5).

use std::io::Write;
use std::time::Duration;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}"))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter("warn,harness=info")
        .init();
    let rows = env_u64("PGREHEARSE_BENCH_ROWS", 2_000_000);
    let secs = env_u64("PGREHEARSE_BENCH_SECS", 20);
    let runs = env_u64("PGREHEARSE_BENCH_RUNS", 5) as u32;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let out_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pgrehearse-bench.jsonl");
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .expect("bench output");
    rt.block_on(async {
        let up = harness::bench::chain_up(runs, harness::backend::BackendKind::Local)
            .await
            .expect("chain-up bench");
        println!(
            "chain-up: median {:.0} ms (min {}, max {}) over {} runs",
            up.median_ms,
            up.min_ms,
            up.max_ms,
            up.runs_ms.len()
        );
        writeln!(
            out,
            "{}",
            serde_json::json!({"bench": "chain_up", "result": up})
        )
        .unwrap();

        let v = harness::bench::verify_vs_baseline(rows, 3)
            .await
            .expect("verify bench");
        println!(
            "verify {} rows: ratio {} (verify {:?} ms, baseline {:?} ms)",
            v.rows,
            ratio(v.ratio),
            v.verify_ms,
            v.baseline_ms
        );
        writeln!(
            out,
            "{}",
            serde_json::json!({"bench": "verify", "result": v})
        )
        .unwrap();

        let w = harness::bench::workload_vs_pgbench(4, Duration::from_secs(secs), 2)
            .await
            .expect("workload bench");
        println!(
            "workload {:.0} ops/s = rows/s vs pgbench -N {:.0} tps = {:.0} rows/s: ratio per row {} (target ≥ {}), per commit {}",
            w.median.workload_ops_per_s,
            w.median.pgbench_tps,
            w.median.pgbench_rows_per_s,
            ratio(w.ratio_per_row),
            w.target_ratio_per_row,
            ratio(w.ratio_per_commit)
        );
        writeln!(
            out,
            "{}",
            serde_json::json!({"bench": "workload", "result": w})
        )
        .unwrap();
    });
    println!("results appended to {}", out_path.display());
}
