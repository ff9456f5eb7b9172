//! Benchmarks for capacity planners: how long a chain takes to build, what verification costs
//! against a plain checksum scan, how the built-in workload compares with pgbench, and what
//! observing costs A. Each builds its own chain, measures, and tears it down; results are
//! plain data for JSON, each with the [`BenchContext`] it was measured in.

mod chain_up;
mod context;
mod cpu;
mod sampler_cost;
mod stats;
mod throughput;
mod verify_cost;

use std::sync::Arc;

pub use chain_up::{ChainUpBench, chain_up};
pub use context::{BenchContext, KeySettings, Machine};
pub use sampler_cost::{SamplerBench, sampler_overhead};
pub use throughput::{
    TARGET_RATIO_PER_ROW, ThroughputBench, ThroughputFigures, ThroughputRound, workload_vs_pgbench,
};
pub use verify_cost::{VerifyBench, verify_vs_baseline};

use crate::backend::{Backend, Credentials, LocalBackend};
use crate::chain::{Chain, ChainSpec};
use crate::error::Result;
use crate::os::ServerUser;
use crate::pg::PgInstall;
use crate::run::RunDir;

/// Build a chain for one benchmark (`seed` loads A before C copies the schema), read the
/// context, run `f` on it and tear it down, whether `f` succeeded or not.
async fn with_chain<F, Fut, T, S, SFut>(
    label: &str,
    pg: &PgInstall,
    seed: S,
    f: F,
) -> Result<(T, BenchContext)>
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
    let res = async {
        let chain = Chain::build(&backend, ChainSpec::default(), creds, seed).await?;
        let context = BenchContext::collect(&chain.a).await?;
        let out = f(Arc::new(chain)).await?;
        Ok::<_, crate::Error>((out, context))
    }
    .await;
    let down = backend.teardown(false).await;
    let out = res?;
    down?;
    Ok(out)
}
