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
                for (i, (ms, p)) in r.runs_ms.iter().zip(&r.phases).enumerate() {
                    ui.out(format!(
                        "  run {}: {ms} ms (a+c {} ms, b {} ms, schema {} ms, subscription {} ms)",
                        i + 1,
                        p.primary_ms,
                        p.standby_ms,
                        p.schema_ms,
                        p.replicate_ms
                    ));
                }
                print_context(ui, &r.context);
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
                print_context(ui, &r.context);
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
                print_sampler(ui, &r);
                print_context(ui, &r.context);
            }
        }
        BenchCommand::Workload {
            connections,
            duration,
            rounds,
            json,
        } => {
            let r = harness::bench::workload_vs_pgbench(connections, duration, rounds).await?;
            if json {
                ui.out(to_json(&r)?);
            } else {
                print_throughput(ui, &r);
                print_context(ui, &r.context);
            }
        }
    }
    Ok(0)
}

fn print_sampler(ui: &Ui, r: &harness::bench::SamplerBench) {
    let pct = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:+.2}"));
    ui.out(format!(
        "observing (sampler every {} ms + heartbeat every {} ms, as a rehearsal does), {} idle/observed pairs of {:.1} s: a's CPU {}% of a core on average (min {}, max {}; one clock tick is {:.2}% in a window)",
        r.sample_every_ms,
        r.heartbeat_every_ms,
        r.pairs,
        r.window_s / f64::from(r.pairs.max(1)),
        pct(r.overhead_mean_pct_of_core),
        pct(r.overhead_min_pct_of_core),
        pct(r.overhead_max_pct_of_core),
        r.cpu_tick_pct_of_core
    ));
    ui.out(format!(
        "  a's CPU, % of a core: idle {}; observed {}",
        fmt_list(&r.a_cpu_idle_pct, 2),
        fmt_list(&r.a_cpu_observed_pct, 2)
    ));
    let secs = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}s"));
    ui.out(format!(
        "  under {:.0} inserts/s on a ({:.0} asked): heartbeat every {:.0} ms achieved (asked {}); e2e lag p50 {}, p99 {} (n={}), max {}",
        r.load_achieved_ops_per_s,
        r.load_target_ops_per_s,
        r.heartbeat_gap_mean_ms,
        r.heartbeat_every_ms,
        secs(r.e2e_p50_s),
        secs(r.e2e_p99_s),
        r.e2e_samples,
        secs(r.e2e_max_s)
    ));
}

/// One line of what the figures above depend on (JSON has it all, as `context`).
fn print_context(ui: &Ui, c: &harness::bench::BenchContext) {
    let m = &c.machine;
    let s = &c.a_settings;
    let cpus = m
        .logical_cpus
        .map_or_else(|| "? CPUs".into(), |n| count(n as usize, "CPU", "CPUs"));
    let mem = m
        .memory_total_bytes
        .map_or_else(|| "? memory".into(), harness::util::fmt_bytes);
    ui.out(format!(
        "  context: {} · pgrehearse {} · PostgreSQL {} · {cpus}, {mem}, {} · a: shared_buffers {}, synchronous_commit {}, wal_level {}, max_wal_size {}, fsync {}",
        c.timestamp,
        c.pgrehearse_version,
        c.postgres_version,
        m.kernel.as_deref().unwrap_or("unknown kernel"),
        s.shared_buffers,
        s.synchronous_commit,
        s.wal_level,
        s.max_wal_size,
        s.fsync
    ));
}

fn print_throughput(ui: &Ui, r: &harness::bench::ThroughputBench) {
    let order = r
        .rounds
        .iter()
        .map(|x| {
            if x.pgbench_first {
                "pgbench, workload"
            } else {
                "workload, pgbench"
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    ui.out(format!(
        "built-in workload vs pgbench -N on a, {} connections, {} s per run, {} ({order}); medians:",
        r.connections,
        r.seconds_per_run,
        count(r.rounds.len(), "round", "rounds"),
    ));
    ui.out(format!(
        "  pgbench -N: {:.0} tps (commits/s; 5 round trips and 2 rows each), {:.0} rows/s, WAL {}",
        r.median.pgbench_tps,
        r.median.pgbench_rows_per_s,
        wal(
            r.median.pgbench_wal_bytes_per_s,
            r.median.pgbench_rows_per_s
        )
    ));
    ui.out(format!(
        "  workload:   {:.0} ops/s (commits/s; 1 statement and 1 row each), {:.0} rows/s, WAL {}",
        r.median.workload_ops_per_s,
        r.median.workload_rows_per_s,
        wal(
            r.median.workload_wal_bytes_per_s,
            r.median.workload_rows_per_s
        )
    ));
    let verdict = match (r.ratio_per_row, r.meets_target) {
        (None, _) => "not measured",
        (Some(_), true) => "met",
        (Some(_), false) => "NOT met",
    };
    ui.out(format!(
        "  workload/pgbench: {} per commit, {} per row written; target ≥ {} per row: {verdict}",
        fmt_ratio3(r.ratio_per_commit),
        fmt_ratio3(r.ratio_per_row),
        r.target_ratio_per_row
    ));
    for x in &r.rounds {
        ui.out(format!(
            "  round {} ({} first): pgbench {:.0} tps, {:.0} rows/s, WAL {}/s; workload {:.0} ops/s, {:.0} rows/s, WAL {}/s",
            x.round,
            if x.pgbench_first { "pgbench" } else { "workload" },
            x.figures.pgbench_tps,
            x.figures.pgbench_rows_per_s,
            harness::util::fmt_bytes(x.figures.pgbench_wal_bytes_per_s.max(0.0) as u64),
            x.figures.workload_ops_per_s,
            x.figures.workload_rows_per_s,
            harness::util::fmt_bytes(x.figures.workload_wal_bytes_per_s.max(0.0) as u64),
        ));
    }
}

/// "3.1 MiB/s (650 B per row)".
fn wal(bytes_per_s: f64, rows_per_s: f64) -> String {
    let rate = format!(
        "{}/s",
        harness::util::fmt_bytes(bytes_per_s.max(0.0) as u64)
    );
    if rows_per_s > 0.0 {
        let per_row = (bytes_per_s / rows_per_s).max(0.0) as u64;
        format!("{rate} ({} per row)", harness::util::fmt_bytes(per_row))
    } else {
        rate
    }
}

/// "1 round", "2 rounds".
fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// "0.898": three decimals where two would print 0.90 for a ratio below a 0.9 target.
fn fmt_ratio3(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{r:.3}"))
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
