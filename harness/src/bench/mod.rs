//! Benchmarks for capacity planners: how long a chain takes to build, what verification costs
//! against a plain checksum scan, and how the built-in workload compares with pgbench. Each
//! builds its own chain, measures, and tears it down; results are plain data for JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Credentials, LocalBackend};
use crate::chain::{BuildTimings, Chain, ChainSpec};
use crate::error::{Result, ResultExt};
use crate::os::ServerUser;
use crate::pg::{Locate, PgInstall};
use crate::run::RunDir;
use crate::verify::{self, Side, VerifyOptions};
use crate::workload::BenchComparison;

/// Median of a non-empty list of milliseconds.
fn median(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied().unwrap_or(0)
}

async fn with_chain<F, Fut, T, S, SFut>(
    label: &str,
    pg: &PgInstall,
    seed: S,
    f: F,
) -> Result<(T, BuildTimings, u64)>
where
    S: FnOnce(crate::node::Node) -> SFut,
    SFut: std::future::Future<Output = Result<()>>,
    F: FnOnce(Arc<Chain>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let user = ServerUser::resolve()?;
    let run = RunDir::create(None, label, &user)?;
    let creds = Credentials::generate();
    let backend = LocalBackend::new(pg.clone(), user, run, creds.clone())?;
    let t = Instant::now();
    let res = async {
        let chain = Chain::build(&backend, ChainSpec::default(), creds, seed).await?;
        let up = t.elapsed().as_millis() as u64;
        let timings = chain.timings.clone();
        let out = f(Arc::new(chain)).await?;
        Ok::<_, crate::Error>((out, timings, up))
    }
    .await;
    let down = backend.teardown(false).await;
    let out = res?;
    down?;
    Ok(out)
}

/// Chain-up times for an empty database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainUpBench {
    /// Backend measured.
    pub backend: String,
    /// PostgreSQL version used.
    pub postgres: String,
    /// Wall time of each build, start of initdb to C subscribed and caught up.
    pub runs_ms: Vec<u64>,
    /// Phase timings of each build.
    pub phases: Vec<BuildTimings>,
    /// Median of `runs_ms`.
    pub median_ms: u64,
    /// Fastest build.
    pub min_ms: u64,
    /// Slowest build.
    pub max_ms: u64,
}

/// Build an empty chain `runs` times on `kind` (containers: images must exist already; the
/// time is from the first container to C subscribed and caught up).
///
/// # Errors
/// Whatever stops a build.
pub async fn chain_up(runs: u32, kind: crate::backend::BackendKind) -> Result<ChainUpBench> {
    let mut runs_ms = Vec::new();
    let mut phases = Vec::new();
    let mut postgres = String::new();
    for i in 0..runs.max(1) {
        let user = ServerUser::resolve()?;
        let run = RunDir::create(None, "bench-chain-up", &user)?;
        let creds = Credentials::generate();
        let backend: Box<dyn Backend> = match kind {
            crate::backend::BackendKind::Local => {
                let pg = Locate::from_env(None).find()?;
                postgres = pg.version.to_string();
                Box::new(LocalBackend::new(pg, user, run, creds.clone())?)
            }
            crate::backend::BackendKind::Docker => {
                let docker = crate::backend::docker::connect().await?;
                let image =
                    crate::backend::docker::pick_image(&docker, crate::pg::DEFAULT_MAJOR).await?;
                let b =
                    crate::backend::docker::DockerBackend::new(run, creds.clone(), docker, image)
                        .await?;
                postgres = format!("{} ({})", b.image().version, b.image().reference());
                Box::new(b)
            }
        };
        let spec = ChainSpec {
            aurora_like: kind == crate::backend::BackendKind::Docker,
            ..ChainSpec::default()
        };
        let t = Instant::now();
        let res = Chain::build(backend.as_ref(), spec, creds, |_| async { Ok(()) }).await;
        let up = t.elapsed().as_millis() as u64;
        let down = backend.teardown(false).await;
        let chain = res.step_with(|| format!("chain-up run {}", i + 1))?;
        down?;
        tracing::info!("chain-up run {}: {up} ms", i + 1);
        runs_ms.push(up);
        phases.push(chain.timings.clone());
    }
    Ok(ChainUpBench {
        backend: kind.as_str().to_string(),
        postgres,
        median_ms: median(&runs_ms),
        min_ms: runs_ms.iter().copied().min().unwrap_or(0),
        max_ms: runs_ms.iter().copied().max().unwrap_or(0),
        runs_ms,
        phases,
    })
}

/// Verification cost against the cheapest possible full comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyBench {
    /// Rows in the table.
    pub rows: u64,
    /// `verify::compare` C vs A, per run.
    pub verify_ms: Vec<u64>,
    /// `SELECT sum(hashtext(t::text)) FROM t` on A and C concurrently, per run.
    pub baseline_ms: Vec<u64>,
    /// median(verify) / median(baseline); the target is ≤ 1.2.
    pub ratio: f64,
}

/// Load `rows` rows into A, let the initial copy carry them to C, then time verification of
/// that table (no differences) against the baseline scan, alternating, `runs` times each.
///
/// # Errors
/// Whatever stops the build or a query.
pub async fn verify_vs_baseline(rows: u64, runs: u32) -> Result<VerifyBench> {
    let pg = Locate::from_env(None).find()?;
    let seed = move |a: crate::node::Node| async move {
        tracing::info!("loading {rows} rows into a");
        a.execute(
            "app",
            &format!(
                "CREATE TABLE bench (id bigint PRIMARY KEY, owner text, amount numeric(12,2), at timestamptz, note text);
                 INSERT INTO bench SELECT g, 'owner-' || (g % 1000), g * 0.01, '2026-01-01'::timestamptz + g * interval '1 s',
                   md5(g::text) FROM generate_series(1, {rows}) g;"
            ),
        )
        .await?;
        // Separately: VACUUM cannot run inside the implicit transaction of a batch.
        a.execute("app", "VACUUM ANALYZE bench").await
    };
    let measure = move |chain: Arc<Chain>| async move {
        let (a, c) = (Side::of(&chain.a, "app"), Side::of(&chain.c, "app"));
        c.conn
            .connect(Duration::from_secs(10))
            .await?
            .batch_execute("VACUUM ANALYZE bench")
            .await?;
        let opts = VerifyOptions::default();
        // One untimed pass each warms both caches the same way.
        verify::baseline_scan(&a, &c, "public.bench").await?;
        verify::compare(&a, &c, &opts).await?;
        let (mut v, mut b) = (Vec::new(), Vec::new());
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let r = verify::compare(&a, &c, &opts).await?;
            v.push(t.elapsed().as_millis() as u64);
            if r.verdict != crate::Verdict::Valid {
                return Err(crate::Error::internal(format!(
                    "verify bench: tables differ: {r:?}"
                )));
            }
            b.push(
                verify::baseline_scan(&a, &c, "public.bench")
                    .await?
                    .as_millis() as u64,
            );
        }
        Ok((v, b))
    };
    let ((verify_ms, baseline_ms), _, _) = with_chain("bench-verify", &pg, seed, measure).await?;
    let ratio = median(&verify_ms) as f64 / median(&baseline_ms).max(1) as f64;
    Ok(VerifyBench {
        rows,
        verify_ms,
        baseline_ms,
        ratio,
    })
}

/// Run the built-in workload and pgbench -N on the chain's primary (same connections, same
/// duration), each in its own database.
///
/// # Errors
/// Whatever stops the build, pgbench or the workload.
pub async fn workload_vs_pgbench(connections: u32, duration: Duration) -> Result<BenchComparison> {
    let pg = Locate::from_env(None).find()?;
    let ledger = std::env::temp_dir().join(format!(
        "pgrehearse-bench-ledger-{}.jsonl",
        std::process::id()
    ));
    let l2 = ledger.clone();
    let (cmp, _, _) = with_chain(
        "bench-workload",
        &pg,
        |_| async { Ok(()) },
        move |chain: Arc<Chain>| async move {
            crate::workload::pgbench_compare(
                &chain.a,
                connections,
                duration.as_secs().max(1),
                1,
                &l2,
            )
            .await
        },
    )
    .await?;
    let _ = std::fs::remove_file(&ledger);
    Ok(cmp)
}

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
    let ((idle, sampling, gap, p50, p99, max), _, _) =
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
    })
}
