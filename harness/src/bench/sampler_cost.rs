//! What observing the chain costs A, and how fine the end-to-end lag is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BenchContext, with_chain};
use crate::chain::Chain;
use crate::error::Result;
use crate::pg::Locate;

/// What observing the chain costs A, and how fine the end-to-end lag is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SamplerBench {
    /// Seconds per window.
    pub window_s: u64,
    /// Sampling period.
    pub sample_every_ms: u64,
    /// CPU used by A's processes with nothing observing it, in % of one core.
    pub a_cpu_idle_pct: f64,
    /// The same with the sampler running.
    pub a_cpu_sampling_pct: f64,
    /// Difference: the sampler's cost on A, in % of one core.
    pub overhead_pct_of_core: f64,
    /// Heartbeat period asked for.
    pub heartbeat_every_ms: u64,
    /// Mean gap between committed heartbeats actually achieved (the e2e lag's resolution).
    pub heartbeat_gap_mean_ms: f64,
    /// End-to-end lag readings under a steady 200 ops/s workload: median, p99, max (seconds).
    pub e2e_p50_s: f64,
    /// 99th percentile.
    pub e2e_p99_s: f64,
    /// Maximum.
    pub e2e_max_s: f64,
    /// When, with what and where it was measured.
    pub context: BenchContext,
}

/// CPU ticks (user + system, including reaped children) of a process tree.
fn tree_ticks(root: i32) -> u64 {
    crate::os::process_tree(root)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .collect::<Vec<_>>();
            // After the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
            let f = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            Some(f(11) + f(12) + f(13) + f(14))
        })
        .sum()
}

/// Measure A's CPU over `window` without and then with the sampler (every `every`), on an idle
/// chain; then the heartbeat's achieved period and e2e readings under a 200 ops/s workload.
///
/// # Errors
/// Whatever stops the build or the workload.
pub async fn sampler_overhead(window: Duration, every: Duration) -> Result<SamplerBench> {
    use crate::observe::{Heartbeat, Sampler, SamplerConfig};
    let pg = Locate::from_env(None).find()?;
    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let hb_every = Duration::from_millis(100);
    let measure = move |chain: Arc<Chain>| async move {
        let a_pid = chain.a.control().pid().unwrap_or(0);
        let cpu = |secs: f64, t0: u64, t1: u64| {
            (t1.saturating_sub(t0)) as f64 / ticks_per_s / secs * 100.0
        };
        // Idle window: nothing connected to A.
        let t0 = tree_ticks(a_pid);
        tokio::time::sleep(window).await;
        let idle = cpu(window.as_secs_f64(), t0, tree_ticks(a_pid));
        // Sampling window.
        let dir = std::env::temp_dir().join(format!(
            "pgrehearse-bench-samples-{}.jsonl",
            std::process::id()
        ));
        let cfg = |hb| SamplerConfig {
            nodes: [chain.a.clone(), chain.b.clone(), chain.c.clone()],
            database: "app".into(),
            logical_slot: chain.spec.subscription.clone(),
            every,
            clock: Instant::now(),
            heartbeat: hb,
        };
        let sampler = Sampler::start(cfg(None), &dir)?;
        let t0 = tree_ticks(a_pid);
        tokio::time::sleep(window).await;
        let sampling = cpu(window.as_secs_f64(), t0, tree_ticks(a_pid));
        drop(sampler);
        // Resolution: heartbeat + sampler + workload.
        let (tx, rx) = tokio::sync::watch::channel(chain.a.clone());
        let hb = Heartbeat::start(rx, "app", hb_every, Instant::now());
        let sampler = Sampler::start(cfg(Some(hb.log())), &dir)?;
        let c = chain.a.connect("app").await?;
        let end = Instant::now() + window;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while Instant::now() < end {
            tick.tick().await;
            c.batch_execute("INSERT INTO bench_hb (v) VALUES ('x')")
                .await?;
        }
        let samples = sampler.stop();
        let gap = hb.log().mean_gap_ms();
        drop((hb, tx));
        let _ = std::fs::remove_file(&dir);
        let mut e2e: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.lag("a→c").and_then(|l| l.seconds))
            .collect();
        e2e.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            e2e.get(((e2e.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Ok::<_, crate::Error>((
            idle,
            sampling,
            gap,
            pct(0.5),
            pct(0.99),
            e2e.last().copied().unwrap_or(0.0),
        ))
    };
    // The table exists before C's schema is copied: DDL on A after that would stop C's apply
    // worker ("target relation does not exist"), as it would stop DMS.
    let seed = |a: crate::node::Node| async move {
        a.execute(
            "app",
            "CREATE TABLE bench_hb (id bigserial PRIMARY KEY, v text)",
        )
        .await
    };
    let ((idle, sampling, gap, p50, p99, max), context) =
        with_chain("bench-sampler", &pg, seed, measure).await?;
    Ok(SamplerBench {
        window_s: window.as_secs(),
        sample_every_ms: every.as_millis() as u64,
        a_cpu_idle_pct: idle,
        a_cpu_sampling_pct: sampling,
        overhead_pct_of_core: sampling - idle,
        heartbeat_every_ms: hb_every.as_millis() as u64,
        heartbeat_gap_mean_ms: gap,
        e2e_p50_s: p50,
        e2e_p99_s: p99,
        e2e_max_s: max,
        context,
    })
}
