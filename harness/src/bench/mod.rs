//! Benchmarks for capacity planners: how long a chain takes to build, what verification costs
//! against a plain checksum scan, and how the built-in workload compares with pgbench. Each
//! builds its own chain, measures, and tears it down; results are plain data for JSON.

mod chain_up;
mod sampler_cost;
mod stats;
mod throughput;
mod verify_cost;

use std::sync::Arc;
use std::time::Instant;

pub use chain_up::{ChainUpBench, chain_up};
pub use sampler_cost::{SamplerBench, sampler_overhead};
pub use throughput::{TARGET_RATIO_PER_ROW, ThroughputBench, ThroughputRound, workload_vs_pgbench};
pub use verify_cost::{VerifyBench, verify_vs_baseline};

use crate::backend::{Backend, Credentials, LocalBackend};
use crate::chain::{BuildTimings, Chain, ChainSpec};
use crate::error::Result;
use crate::os::ServerUser;
use crate::pg::PgInstall;
use crate::run::RunDir;

/// Build a chain for one benchmark (`seed` loads A before C copies the schema), run `f` on
/// it and tear it down, whether `f` succeeded or not.
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
