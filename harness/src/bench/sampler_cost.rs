//! What observing the chain costs A, and how fine the end-to-end lag is.
//!
//! A rehearsal observes with the sampler (every node, every `sample_every`) and the heartbeat
//! (a row written on A every `heartbeat_every`), so the cost measured is of both together.
//! Idle and observed windows alternate (idle first in odd pairs, observed first in even ones),
//! so a drift in what else the machine does weighs on both alike; CPU is counted in clock
//! ticks, so a window's resolution is one tick (reported).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::cpu::{pct_of_core, ticks_per_s, tree_ticks};
use super::stats::{Quantiles, mean};
use super::{BenchContext, with_chain};
use crate::chain::Chain;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::observe::{Heartbeat, Sampler, SamplerConfig};
use crate::pg::Locate;
use crate::wait::{Check, wait_for};

/// Idle/observed window pairs the measurement is split into.
const PAIRS: u32 = 3;
/// The steady load under which the end-to-end lag is read.
const LOAD_OPS_PER_S: u32 = 200;
/// How long the observers may take to connect and make their first round.
const WARM_UP_PATIENCE: Duration = Duration::from_secs(30);

/// What observing the chain costs A, and how fine the end-to-end lag is. CPU figures are
/// percentages of one core used by A's processes (the postmaster, its children, and the
/// children it reaped).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SamplerBench {
    /// Seconds of idle windows in all, and of observed ones; also the load phase's length.
    pub window_s: f64,
    /// Idle/observed pairs the windows are split into (each window: `window_s / pairs`).
    pub pairs: u32,
    /// Sampling period.
    pub sample_every_ms: u64,
    /// Heartbeat period (a rehearsal's default).
    pub heartbeat_every_ms: u64,
    /// A's CPU in each idle window (nothing observing it).
    pub a_cpu_idle_pct: Vec<f64>,
    /// A's CPU in each observed window (sampler and heartbeat running, connected beforehand).
    pub a_cpu_observed_pct: Vec<f64>,
    /// Observed minus idle, pair by pair: what observing costs A.
    pub overhead_pct_of_core: Vec<f64>,
    /// Mean of `overhead_pct_of_core`.
    pub overhead_mean_pct_of_core: Option<f64>,
    /// Smallest of `overhead_pct_of_core`.
    pub overhead_min_pct_of_core: Option<f64>,
    /// Largest of `overhead_pct_of_core`.
    pub overhead_max_pct_of_core: Option<f64>,
    /// One CPU clock tick over one window: no window's figure is finer than this.
    pub cpu_tick_pct_of_core: f64,
    /// Mean gap between committed heartbeats during the load (the e2e lag's resolution).
    pub heartbeat_gap_mean_ms: f64,
    /// Inserts per second the load asked for.
    pub load_target_ops_per_s: f64,
    /// Inserts per second the load achieved (one at a time: a slow insert delays the next).
    pub load_achieved_ops_per_s: f64,
    /// End-to-end lag readings taken under the load.
    pub e2e_samples: usize,
    /// Median end-to-end lag, seconds; None without readings.
    pub e2e_p50_s: Option<f64>,
    /// 99th percentile (nearest rank: with under 100 readings, the largest).
    pub e2e_p99_s: Option<f64>,
    /// Largest.
    pub e2e_max_s: Option<f64>,
    /// When, with what and where it was measured.
    pub context: BenchContext,
}

/// The sampler and the heartbeat, as a rehearsal runs them: one clock origin for both, so the
/// lag the sampler derives from the heartbeat's log is on the heartbeat's own timeline.
struct Observers {
    sampler: Sampler,
    heartbeat: Heartbeat,
    _primary: watch::Sender<Node>,
}

impl Observers {
    fn start(
        chain: &Chain,
        every: Duration,
        hb_every: Duration,
        clock: Instant,
        out: &Path,
    ) -> Result<Observers> {
        let (primary, rx) = watch::channel(chain.a.clone());
        let heartbeat = Heartbeat::start(rx, &chain.spec.database, hb_every, clock);
        let sampler = Sampler::start(
            SamplerConfig {
                nodes: [chain.a.clone(), chain.b.clone(), chain.c.clone()],
                database: chain.spec.database.clone(),
                logical_slot: chain.spec.subscription.clone(),
                every,
                clock,
                heartbeat: Some(heartbeat.log()),
            },
            out,
        )?;
        Ok(Observers {
            sampler,
            heartbeat,
            _primary: primary,
        })
    }

    /// Once both have connected and made a first round (a sample taken, a heartbeat committed):
    /// a window measures what observing costs while it goes on, not the connecting, which a
    /// rehearsal pays once.
    async fn warmed_up(&self) -> Result<()> {
        let samples = self.sampler.samples();
        let log = self.heartbeat.log();
        wait_for(
            "the sampler's first sample and the first heartbeat",
            WARM_UP_PATIENCE,
            || {
                let taken = samples.lock().map(|s| s.len()).unwrap_or(0);
                let beats = log.len();
                async move {
                    Ok(if taken > 0 && beats > 0 {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!("{taken} samples, {beats} heartbeats committed"))
                    })
                }
            },
        )
        .await
    }
}

/// A's CPU over `span`, in % of one core.
async fn a_cpu(a_pid: i32, span: Duration, tps: f64) -> f64 {
    let t0 = tree_ticks(a_pid);
    let start = Instant::now();
    tokio::time::sleep(span).await;
    let ticks = tree_ticks(a_pid).saturating_sub(t0);
    pct_of_core(ticks, start.elapsed().as_secs_f64(), tps)
}

/// Whether pair `i` (0-based) measures the idle window first: idle, observed, observed, idle…
fn idle_first(i: u32) -> bool {
    i.is_multiple_of(2)
}

/// Measure A's CPU in `PAIRS` idle and observed windows (sampler every `every` and heartbeat
/// together, `window` of each in all), on an idle chain; then the heartbeat's achieved period
/// and the end-to-end lag under a steady 200 inserts/s on A for `window`.
///
/// # Errors
/// Usage error with a backend whose servers are not processes of this machine; whatever
/// stops the build, the observers or the load.
pub async fn sampler_overhead(window: Duration, every: Duration) -> Result<SamplerBench> {
    let pg = Locate::from_env(None).find()?;
    let tps = ticks_per_s();
    let hb_every = crate::scenario::ObservePlan::default().heartbeat_every;
    let span = window / PAIRS;
    let out = std::env::temp_dir().join(format!(
        "pgrehearse-bench-samples-{}.jsonl",
        std::process::id()
    ));
    let out2 = out.clone();
    let measure = move |chain: Arc<Chain>| async move {
        let a_pid = chain.a.control().pid().ok_or_else(|| {
            Error::usage("the sampler bench counts the CPU of a's processes: it needs a's postmaster pid on this machine (local backend)")
                .with_node(chain.a.name())
        })?;
        let clock = Instant::now();
        let (mut idle, mut observed) = (Vec::new(), Vec::new());
        for i in 0..PAIRS {
            for idle_now in [idle_first(i), !idle_first(i)] {
                if idle_now {
                    idle.push(a_cpu(a_pid, span, tps).await);
                } else {
                    let obs = Observers::start(&chain, every, hb_every, clock, &out2)?;
                    obs.warmed_up().await?;
                    observed.push(a_cpu(a_pid, span, tps).await);
                }
            }
        }
        let load = under_load(&chain, every, hb_every, clock, window, &out2).await?;
        Ok::<_, Error>((idle, observed, load))
    };
    // The table exists before C's schema is copied: DDL on A after that would stop C's apply
    // worker ("target relation does not exist"), as it would stop DMS.
    let seed = |a: Node| async move {
        a.execute(
            "app",
            "CREATE TABLE bench_hb (id bigserial PRIMARY KEY, v text)",
        )
        .await
    };
    let res = with_chain("bench-sampler", &pg, seed, measure).await;
    let _ = std::fs::remove_file(&out);
    let ((idle, observed, load), context) = res?;
    let overhead: Vec<f64> = observed.iter().zip(&idle).map(|(o, i)| o - i).collect();
    let e2e = Quantiles::of(&load.e2e_s);
    Ok(SamplerBench {
        window_s: window.as_secs_f64(),
        pairs: PAIRS,
        sample_every_ms: every.as_millis() as u64,
        heartbeat_every_ms: hb_every.as_millis() as u64,
        overhead_mean_pct_of_core: mean(&overhead),
        overhead_min_pct_of_core: overhead.iter().copied().min_by(f64::total_cmp),
        overhead_max_pct_of_core: overhead.iter().copied().max_by(f64::total_cmp),
        cpu_tick_pct_of_core: pct_of_core(1, span.as_secs_f64(), tps),
        a_cpu_idle_pct: idle,
        a_cpu_observed_pct: observed,
        overhead_pct_of_core: overhead,
        heartbeat_gap_mean_ms: load.heartbeat_gap_mean_ms,
        load_target_ops_per_s: f64::from(LOAD_OPS_PER_S),
        load_achieved_ops_per_s: load.achieved_ops_per_s,
        e2e_samples: e2e.n,
        e2e_p50_s: e2e.p50,
        e2e_p99_s: e2e.p99,
        e2e_max_s: e2e.max,
        context,
    })
}

/// What the load phase saw.
struct LoadPhase {
    achieved_ops_per_s: f64,
    heartbeat_gap_mean_ms: f64,
    /// End-to-end lag readings (seconds) taken while the load ran.
    e2e_s: Vec<f64>,
}

/// Observe while one session inserts into A at `LOAD_OPS_PER_S` for `window`.
async fn under_load(
    chain: &Chain,
    every: Duration,
    hb_every: Duration,
    clock: Instant,
    window: Duration,
    out: &Path,
) -> Result<LoadPhase> {
    let obs = Observers::start(chain, every, hb_every, clock, out)?;
    obs.warmed_up().await?;
    let c = chain.a.connect(&chain.spec.database).await?;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / LOAD_OPS_PER_S);
    // The default (Burst) would catch up on missed ticks with back-to-back inserts, above the
    // rate asked for; Delay keeps the period and lets the achieved rate show a slow server.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    let start_ms = clock.elapsed().as_millis() as u64;
    let end = start + window;
    let mut inserts = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        c.batch_execute("INSERT INTO bench_hb (v) VALUES ('x')")
            .await
            .map_err(|e| {
                Error::from(e)
                    .context("inserting the bench's load")
                    .with_node(chain.a.name())
            })?;
        inserts += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let Observers {
        sampler, heartbeat, ..
    } = obs;
    let samples = sampler.stop();
    Ok(LoadPhase {
        achieved_ops_per_s: if secs > 0.0 {
            inserts as f64 / secs
        } else {
            0.0
        },
        heartbeat_gap_mean_ms: heartbeat.log().mean_gap_ms(),
        e2e_s: samples
            .iter()
            .filter(|s| s.t_ms >= start_ms)
            .filter_map(|s| s.lag("a→c")?.seconds)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_alternate_which_comes_first() {
        let order: Vec<bool> = (0..super::PAIRS)
            .flat_map(|i| [super::idle_first(i), !super::idle_first(i)])
            .collect();
        assert_eq!(order, [true, false, false, true, true, false]);
    }
}
