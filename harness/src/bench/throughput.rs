//! The built-in workload's throughput against pgbench's simple-update.

use std::sync::Arc;
use std::time::Duration;

use super::with_chain;
use crate::chain::Chain;
use crate::error::Result;
use crate::pg::Locate;
use crate::workload::BenchComparison;

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
