//! Measuring the built-in workload against pgbench's simple-update run on the same server.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use super::config::{Target, WorkloadConfig};
use super::model::WorkloadStats;
use super::runner::run;
use super::schema::create_schema;
use crate::error::{Error, Result, ResultExt};
use crate::node::Node;

/// Database pgbench initialises and runs in.
const PGBENCH_DB: &str = "pgrehearse_pgbench";
/// Database the workload runs in.
const WORKLOAD_DB: &str = "pgrehearse_bench";

/// pgbench and the built-in workload, same server, same connection count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchComparison {
    /// Connections used by both.
    pub connections: u32,
    /// Seconds each ran.
    pub seconds: u64,
    /// pgbench -N transactions per second (without initial connection time).
    pub pgbench_tps: f64,
    /// The workload's acknowledged operations per second.
    pub workload_ops: f64,
    /// workload_ops / pgbench_tps.
    pub ratio: f64,
    /// The workload run's full statistics.
    pub workload: WorkloadStats,
}

/// Run `pgbench -N -c N -j N -T secs` and then the built-in workload (flat out, `connections`
/// connections, all tables, default mix) for the same time on `node`, each in its own fresh
/// database, and compare their rates. pgbench runs as the server user with the run's password
/// file; the workload's ledger goes to `ledger_path`.
///
/// # Errors
/// Database error when a database cannot be created or pgbench fails (with its stderr);
/// whatever [`run`] returns.
pub async fn pgbench_compare(
    node: &Node,
    connections: u32,
    secs: u64,
    seed: u64,
    ledger_path: &Path,
) -> Result<BenchComparison> {
    for db in [PGBENCH_DB, WORKLOAD_DB] {
        node.execute("postgres", &format!("DROP DATABASE IF EXISTS {db}"))
            .await?;
        node.execute("postgres", &format!("CREATE DATABASE {db}"))
            .await?;
    }
    let ep = node.admin().endpoint.clone();
    let common: Vec<String> = vec![
        "-h".into(),
        ep.host.clone(),
        "-p".into(),
        ep.port.to_string(),
        "-U".into(),
        node.admin().login.user.clone(),
    ];
    let mut init = vec!["-i".to_string(), "-q".into()];
    init.extend(common.iter().cloned());
    init.push(PGBENCH_DB.into());
    tracing::info!("pgbench -i on {}", node.name());
    node.control()
        .run_tool("pgbench", &init, None)
        .await
        .step("initialising pgbench")?;

    let n = connections.to_string();
    let mut bench = vec![
        "-N".to_string(),
        "-c".into(),
        n.clone(),
        "-j".into(),
        n,
        "-T".into(),
        secs.to_string(),
    ];
    bench.extend(common);
    bench.push(PGBENCH_DB.into());
    tracing::info!("pgbench -N -c {connections} -T {secs} on {}", node.name());
    let out = node
        .control()
        .run_tool("pgbench", &bench, None)
        .await
        .step("running pgbench -N")?;
    let text = String::from_utf8_lossy(&out);
    let pgbench_tps = parse_tps(&text).ok_or_else(|| {
        Error::database("running pgbench -N: no tps line in its output")
            .with_detail(text.to_string())
    })?;

    let client = node.connect(WORKLOAD_DB).await?;
    create_schema(&client, &super::BuiltinTable::ALL).await?;
    drop(client);
    let cfg = WorkloadConfig {
        seed,
        connections,
        duration: Duration::from_secs(secs),
        database: WORKLOAD_DB.into(),
        ..Default::default()
    };
    let (_target_tx, target) = watch::channel(Target {
        node: node.name().to_string(),
        conn: node.admin().clone(),
    });
    let (_stop_tx, stop) = watch::channel(false);
    let workload = run(&cfg, target, ledger_path, stop, None).await?;
    let ratio = if pgbench_tps > 0.0 {
        workload.throughput / pgbench_tps
    } else {
        0.0
    };
    Ok(BenchComparison {
        connections,
        seconds: secs,
        pgbench_tps,
        workload_ops: workload.throughput,
        ratio,
        workload,
    })
}

/// The `tps = ...` figure of pgbench's summary.
fn parse_tps(out: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("tps = "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next_back()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_pgbench_tps() {
        let out = "transaction type: <builtin: simple update>\n\
                   latency average = 1.2 ms\n\
                   initial connection time = 4.5 ms\n\
                   tps = 3312.443211 (without initial connection time)\n";
        assert_eq!(super::parse_tps(out), Some(3312.443211));
        assert_eq!(super::parse_tps("nothing"), None);
    }
}
