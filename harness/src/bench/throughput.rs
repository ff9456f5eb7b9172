//! The built-in workload's throughput against pgbench's simple-update, in units that compare.
//!
//! A workload operation is one autocommit statement writing one row. A `pgbench -N`
//! transaction is BEGIN, UPDATE, SELECT, INSERT, END: five round trips, two rows written. Per
//! commit the workload looks about twice as fast as it is; per row written the two do the same
//! work. Both are reported, with the WAL each makes A write; the target applies per row.

use std::sync::Arc;
use std::time::Duration;

use super::BenchContext;
use super::stats::{median, ratio};
use super::with_chain;
use crate::chain::Chain;
use crate::error::Result;
use crate::pg::Locate;
use crate::workload::{PGBENCH_ROWS_PER_TRANSACTION, PgbenchRun, WorkloadRun, WorkloadStats};

/// The headline, "workload throughput vs pgbench simple-update ≥ 0.9×", taken per row
/// written: per commit it would compare one row with two.
pub const TARGET_RATIO_PER_ROW: f64 = 0.9;

/// One round: a run of each, pgbench first in odd rounds, the workload first in even ones.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThroughputRound {
    /// 1, 2, …
    pub round: u32,
    /// Whether pgbench ran first in this round.
    pub pgbench_first: bool,
    /// This round's rates.
    #[serde(flatten)]
    pub figures: ThroughputFigures,
    /// The workload run's full statistics.
    pub workload: WorkloadStats,
}

/// The rates of a round, or their medians over the rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ThroughputFigures {
    /// pgbench -N transactions (commits) per second.
    pub pgbench_tps: f64,
    /// Rows pgbench wrote per second: two per transaction.
    pub pgbench_rows_per_s: f64,
    /// WAL A wrote per second while pgbench ran.
    pub pgbench_wal_bytes_per_s: f64,
    /// The workload's acknowledged operations (commits) per second.
    pub workload_ops_per_s: f64,
    /// Rows the workload wrote per second: one per acknowledged operation.
    pub workload_rows_per_s: f64,
    /// WAL A wrote per second while the workload ran.
    pub workload_wal_bytes_per_s: f64,
}

impl ThroughputFigures {
    /// Each rate's median over `rounds` (None when there are none).
    fn median_of(rounds: &[ThroughputRound]) -> Option<ThroughputFigures> {
        let med = |f: fn(&ThroughputFigures) -> f64| {
            median(&rounds.iter().map(|r| f(&r.figures)).collect::<Vec<_>>())
        };
        Some(ThroughputFigures {
            pgbench_tps: med(|f| f.pgbench_tps)?,
            pgbench_rows_per_s: med(|f| f.pgbench_rows_per_s)?,
            pgbench_wal_bytes_per_s: med(|f| f.pgbench_wal_bytes_per_s)?,
            workload_ops_per_s: med(|f| f.workload_ops_per_s)?,
            workload_rows_per_s: med(|f| f.workload_rows_per_s)?,
            workload_wal_bytes_per_s: med(|f| f.workload_wal_bytes_per_s)?,
        })
    }
}

/// pgbench -N and the built-in workload on A of one chain, alternated; figures are medians
/// over the rounds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThroughputBench {
    /// Connections used by both.
    pub connections: u32,
    /// Seconds each run lasted.
    pub seconds_per_run: u64,
    /// Each round's figures.
    pub rounds: Vec<ThroughputRound>,
    /// The medians over the rounds (all 0 when no round ran).
    #[serde(flatten)]
    pub median: ThroughputFigures,
    /// workload_ops_per_s / pgbench_tps (a commit writes 1 row vs 2: not the target's figure).
    pub ratio_per_commit: Option<f64>,
    /// workload_rows_per_s / pgbench_rows_per_s: the figure checked against the target.
    pub ratio_per_row: Option<f64>,
    /// The target for `ratio_per_row`.
    pub target_ratio_per_row: f64,
    /// Whether `ratio_per_row` reaches the target.
    pub meets_target: bool,
    /// When, with what and where it was measured.
    pub context: BenchContext,
}

/// Rates of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rates {
    commits_per_s: f64,
    rows_per_s: f64,
    wal_bytes_per_s: f64,
}

/// pgbench's own tps, over the span it counted (transactions / tps seconds).
fn pgbench_rates(r: &PgbenchRun) -> Rates {
    let seconds = if r.tps > 0.0 {
        r.transactions as f64 / r.tps
    } else {
        0.0
    };
    Rates {
        commits_per_s: r.tps,
        rows_per_s: r.tps * PGBENCH_ROWS_PER_TRANSACTION as f64,
        wal_bytes_per_s: per_s(r.wal_bytes, seconds),
    }
}

/// Each acknowledged operation wrote exactly one row: an insert adds one, an update or delete
/// that matched no row counts as failed (workload/session.rs), and keys are unique (primary
/// keys; events' (stream, seq) by construction).
fn workload_rates(r: &WorkloadRun) -> Rates {
    let seconds = r.stats.duration_ms as f64 / 1000.0;
    Rates {
        commits_per_s: r.stats.throughput,
        rows_per_s: r.stats.throughput,
        wal_bytes_per_s: per_s(r.wal_bytes, seconds),
    }
}

fn per_s(amount: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        amount as f64 / seconds
    } else {
        0.0
    }
}

/// Whether pgbench runs first in 0-based round `i`: pgbench, workload, workload, pgbench, …
/// so neither always runs on the fresher (or more fragmented, more checkpointed) server.
fn pgbench_first(i: u32) -> bool {
    i.is_multiple_of(2)
}

fn round_of(i: u32, pgbench: &PgbenchRun, workload: WorkloadRun) -> ThroughputRound {
    let (p, w) = (pgbench_rates(pgbench), workload_rates(&workload));
    ThroughputRound {
        round: i + 1,
        pgbench_first: pgbench_first(i),
        figures: ThroughputFigures {
            pgbench_tps: p.commits_per_s,
            pgbench_rows_per_s: p.rows_per_s,
            pgbench_wal_bytes_per_s: p.wal_bytes_per_s,
            workload_ops_per_s: w.commits_per_s,
            workload_rows_per_s: w.rows_per_s,
            workload_wal_bytes_per_s: w.wal_bytes_per_s,
        },
        workload: workload.stats,
    }
}

fn summarize(
    connections: u32,
    seconds_per_run: u64,
    rounds: Vec<ThroughputRound>,
    context: BenchContext,
) -> ThroughputBench {
    let m = ThroughputFigures::median_of(&rounds);
    let ratio_per_row = ratio(
        m.map(|m| m.workload_rows_per_s),
        m.map(|m| m.pgbench_rows_per_s),
    );
    ThroughputBench {
        connections,
        seconds_per_run,
        median: m.unwrap_or_default(),
        ratio_per_commit: ratio(m.map(|m| m.workload_ops_per_s), m.map(|m| m.pgbench_tps)),
        ratio_per_row,
        target_ratio_per_row: TARGET_RATIO_PER_ROW,
        meets_target: ratio_per_row.is_some_and(|r| r >= TARGET_RATIO_PER_ROW),
        rounds,
        context,
    }
}

/// Run pgbench -N and the built-in workload on the chain's primary (same connections, same
/// duration, each in its own database; both streams of WAL go to B, neither is published to
/// C), `rounds` times each in alternating order.
///
/// # Errors
/// Whatever stops the build, pgbench or the workload.
pub async fn workload_vs_pgbench(
    connections: u32,
    duration: Duration,
    rounds: u32,
) -> Result<ThroughputBench> {
    let pg = Locate::from_env(None).find()?;
    let secs = duration.as_secs().max(1);
    let ledger = std::env::temp_dir().join(format!(
        "pgrehearse-bench-ledger-{}.jsonl",
        std::process::id()
    ));
    let l2 = ledger.clone();
    let measure = move |chain: Arc<Chain>| async move {
        let a = &chain.a;
        crate::workload::pgbench_init(a).await?;
        let mut out = Vec::new();
        for i in 0..rounds.max(1) {
            let (p, w) = if pgbench_first(i) {
                let p = crate::workload::pgbench_run(a, connections, secs).await?;
                (
                    p,
                    crate::workload::workload_run(a, connections, secs, 1, &l2).await?,
                )
            } else {
                let w = crate::workload::workload_run(a, connections, secs, 1, &l2).await?;
                (crate::workload::pgbench_run(a, connections, secs).await?, w)
            };
            out.push(round_of(i, &p, w));
        }
        Ok(out)
    };
    let res = with_chain("bench-workload", &pg, |_| async { Ok(()) }, measure).await;
    let _ = std::fs::remove_file(&ledger);
    let (rounds, context) = res?;
    Ok(summarize(connections, secs, rounds, context))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pgbench(tps: f64, transactions: u64, wal_bytes: u64) -> PgbenchRun {
        PgbenchRun {
            transactions,
            tps,
            wal_bytes,
        }
    }

    fn workload(ok: u64, duration_ms: u64, wal_bytes: u64) -> WorkloadRun {
        let secs = duration_ms as f64 / 1000.0;
        WorkloadRun {
            stats: WorkloadStats {
                ok,
                duration_ms,
                throughput: ok as f64 / secs,
                ..Default::default()
            },
            wal_bytes,
        }
    }

    #[test]
    fn a_pgbench_transaction_writes_two_rows_a_workload_op_one() {
        let p = pgbench_rates(&pgbench(2500.0, 50_000, 40_000_000));
        assert_eq!(p.commits_per_s, 2500.0);
        assert_eq!(p.rows_per_s, 5000.0);
        // 50 000 transactions at 2500/s: 20 s of pgbench's own counting.
        assert_eq!(p.wal_bytes_per_s, 2_000_000.0);
        let w = workload_rates(&workload(100_000, 20_000, 80_000_000));
        assert_eq!((w.commits_per_s, w.rows_per_s), (5000.0, 5000.0));
        assert_eq!(w.wal_bytes_per_s, 4_000_000.0);
        // Nothing counted: rates of 0, not a division by zero.
        assert_eq!(pgbench_rates(&pgbench(0.0, 0, 100)).wal_bytes_per_s, 0.0);
        assert_eq!(workload_rates(&workload(0, 0, 100)).wal_bytes_per_s, 0.0);
    }

    #[test]
    fn rounds_alternate_and_the_target_is_per_row() {
        assert!(pgbench_first(0) && !pgbench_first(1) && pgbench_first(2));
        // The README's figures: 5048 ops/s against 2502 tps.
        let rounds = vec![
            round_of(0, &pgbench(2502.0, 50_040, 1), workload(100_960, 20_000, 1)),
            round_of(1, &pgbench(2402.0, 48_040, 1), workload(96_960, 20_000, 1)),
        ];
        assert!(!rounds[1].pgbench_first);
        let sum = |rounds| summarize(4, 20, rounds, BenchContext::for_tests());
        let b = sum(rounds);
        assert_eq!(b.median.pgbench_tps, 2452.0);
        assert_eq!(b.median.workload_ops_per_s, 4948.0);
        let per_commit = b.ratio_per_commit.unwrap();
        let per_row = b.ratio_per_row.unwrap();
        assert!((per_commit - 2.018).abs() < 0.001, "{per_commit}");
        assert!((per_row - 1.009).abs() < 0.001, "{per_row}");
        assert!(b.meets_target);
        let slow = sum(vec![round_of(
            0,
            &pgbench(2500.0, 50_000, 1),
            workload(80_000, 20_000, 1),
        )]);
        assert_eq!(slow.ratio_per_row, Some(0.8));
        assert!(
            !slow.meets_target,
            "1.6× per commit, 0.8× per row: below target"
        );
        let none = sum(vec![round_of(
            0,
            &pgbench(0.0, 0, 0),
            workload(10, 1000, 1),
        )]);
        assert_eq!((none.ratio_per_row, none.meets_target), (None, false));
    }
}
