//! How long an empty chain takes to build.

use std::time::Instant;

use super::BenchContext;
use super::stats::{as_f64, median};
use crate::backend::{Backend, Credentials, LocalBackend};
use crate::chain::{BuildTimings, Chain, ChainSpec};
use crate::error::{Error, Result, ResultExt};
use crate::os::ServerUser;
use crate::pg::Locate;
use crate::run::RunDir;

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
    /// Median of `runs_ms` (for an even count, the mean of the two middle builds).
    pub median_ms: f64,
    /// Fastest build.
    pub min_ms: u64,
    /// Slowest build.
    pub max_ms: u64,
    /// When, with what and where it was measured (read from the first chain).
    pub context: BenchContext,
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
    let mut context = None;
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
        // From the first chain, once its time is taken.
        let read = match (&res, &context) {
            (Ok(chain), None) => Some(BenchContext::collect(&chain.a).await),
            _ => None,
        };
        let down = backend.teardown(false).await;
        let chain = res.step_with(|| format!("chain-up run {}", i + 1))?;
        down?;
        if let Some(c) = read {
            context = Some(c?);
        }
        tracing::info!("chain-up run {}: {up} ms", i + 1);
        runs_ms.push(up);
        phases.push(chain.timings.clone());
    }
    let context = context.ok_or_else(|| Error::internal("chain-up bench: no chain was built"))?;
    Ok(ChainUpBench {
        context,
        backend: kind.as_str().to_string(),
        postgres,
        median_ms: median(&as_f64(&runs_ms)).unwrap_or_default(),
        min_ms: runs_ms.iter().copied().min().unwrap_or(0),
        max_ms: runs_ms.iter().copied().max().unwrap_or(0),
        runs_ms,
        phases,
    })
}
