//! `pgrehearse bench`: runs one benchmark and prints its result, as text or JSON.

use harness::{Error, Result};

use super::BenchCommand;
use super::commands::{shutdown_signal, to_json};
use super::ui::{Ui, say};

pub async fn bench(cmd: BenchCommand, ui: &Ui) -> Result<i32> {
    // Dropping the bench on Ctrl-C drops its backends, whose Drop stops and removes what they
    // started; without a handler the signal would end the process with servers left running.
    tokio::select! {
        res = bench_inner(cmd, ui) => res,
        _ = shutdown_signal() => {
            say("pgrehearse: interrupted; the bench's servers are stopped and removed");
            Err(Error::interrupted())
        }
    }
}

async fn bench_inner(cmd: BenchCommand, ui: &Ui) -> Result<i32> {
    match cmd {
        BenchCommand::ChainUp {
            runs,
            backend,
            json,
        } => {
            let r = harness::bench::chain_up(runs, backend).await?;
            if json {
                ui.out(to_json(&r)?);
            } else {
                ui.out(format!(
                    "chain-up on {} (empty database, PostgreSQL {}): median {:.0} ms, min {} ms, max {} ms over {} runs",
                    r.backend,
                    r.postgres,
                    r.median_ms,
                    r.min_ms,
                    r.max_ms,
                    r.runs_ms.len()
                ));
                for (i, p) in r.phases.iter().enumerate() {
                    ui.out(format!(
                        "  run {}: {} ms (a+c {} ms, b {} ms, schema {} ms, subscription {} ms)",
                        i + 1,
                        r.runs_ms[i],
                        p.primary_ms,
                        p.standby_ms,
                        p.schema_ms,
                        p.replicate_ms
                    ));
                }
            }
        }
        BenchCommand::Verify { rows, runs, json } => {
            let r = harness::bench::verify_vs_baseline(rows, runs).await?;
            if json {
                ui.out(to_json(&r)?);
            } else {
                ui.out(format!(
                    "verify of {} rows (no differences): median {:.1} ms (connecting, both catalogs, every table); baseline sum(hashtext(t::text)) on both sides: median {:.1} ms (the two scans only); ratio {} (target ≤ 1.2)",
                    r.rows,
                    r.verify_median_ms,
                    r.baseline_median_ms,
                    fmt_ratio(r.ratio)
                ));
                ui.out(format!(
                    "  runs: verify {} ms; baseline {} ms",
                    fmt_list(&r.verify_ms, 1),
                    fmt_list(&r.baseline_ms, 1)
                ));
            }
        }
        BenchCommand::Sampler {
            window,
            every,
            json,
        } => {
            let r = harness::bench::sampler_overhead(window, every).await?;
            if json {
                ui.out(to_json(&r)?);
            } else {
                ui.out(format!(
                    "sampler every {} ms: a uses {:.2}% of a core idle, {:.2}% while sampled (+{:.2}); heartbeat every {:.0} ms achieved (asked {}); e2e lag at 200 ops/s: p50 {:.3}s p99 {:.3}s max {:.3}s",
                    r.sample_every_ms,
                    r.a_cpu_idle_pct,
                    r.a_cpu_sampling_pct,
                    r.overhead_pct_of_core,
                    r.heartbeat_gap_mean_ms,
                    r.heartbeat_every_ms,
                    r.e2e_p50_s,
                    r.e2e_p99_s,
                    r.e2e_max_s
                ));
            }
        }
        BenchCommand::Workload {
            connections,
            duration,
            json,
        } => {
            let r = harness::bench::workload_vs_pgbench(connections, duration).await?;
            if json {
                ui.out(to_json(&r)?);
            } else {
                ui.out(format!(
                    "{} connections, {} s each: built-in workload {:.0} ops/s; pgbench -N {:.0} tps; ratio {:.2} (target ≥ 0.9)",
                    r.connections, r.seconds, r.workload_ops, r.pgbench_tps, r.ratio
                ));
            }
        }
    }
    Ok(0)
}

/// "0.96", or "n/a" when one side measured nothing.
fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}"))
}

/// "812.3, 790.1": each value with `decimals` decimals.
fn fmt_list(values: &[f64], decimals: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}
