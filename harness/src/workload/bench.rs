//! One timed run of pgbench's simple-update or of the built-in workload on a server, with the
//! WAL the server wrote meanwhile: the pieces the throughput benchmark alternates.
//!
//! Each run starts right after a `CHECKPOINT`: the first change to a page after a checkpoint
//! logs the whole page, so a run that happened to follow one would write more WAL, and run
//! slower, than one that did not.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use super::config::{Target, WorkloadConfig};
use super::model::WorkloadStats;
use super::runner::run;
use super::schema::create_schema;
use crate::error::{Error, Result, ResultExt};
use crate::node::{LsnKind, Node};

/// Database pgbench initialises and runs in.
const PGBENCH_DB: &str = "pgrehearse_pgbench";
/// Database the workload runs in.
const WORKLOAD_DB: &str = "pgrehearse_bench";

/// Rows one `pgbench -N` transaction writes: its UPDATE of `pgbench_accounts` and its INSERT
/// into `pgbench_history` (its SELECT only reads; BEGIN and END write no row).
pub const PGBENCH_ROWS_PER_TRANSACTION: u64 = 2;

/// One timed `pgbench -N` run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PgbenchRun {
    /// Transactions pgbench counted.
    pub transactions: u64,
    /// pgbench's `tps` (without initial connection time).
    pub tps: f64,
    /// WAL the server wrote from just before the run to just after it.
    pub wal_bytes: u64,
}

/// One timed run of the built-in workload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkloadRun {
    /// The run's statistics.
    pub stats: WorkloadStats,
    /// WAL the server wrote from just before the run to just after it.
    pub wal_bytes: u64,
}

/// Create pgbench's database on `node` and initialise it (`pgbench -i`, scale 1).
///
/// # Errors
/// Database error when the database cannot be created or `pgbench -i` fails.
pub async fn pgbench_init(node: &Node) -> Result<()> {
    recreate_db(node, PGBENCH_DB).await?;
    let mut init = vec!["-i".to_string(), "-q".into()];
    init.extend(pgbench_conn_args(node));
    init.push(PGBENCH_DB.into());
    tracing::info!("pgbench -i on {}", node.name());
    node.control()
        .run_tool("pgbench", &init, None)
        .await
        .step("initialising pgbench")?;
    Ok(())
}

/// Run `pgbench -N -c N -j N -T secs` on `node` (after [`pgbench_init`]), as the server user
/// with the run's password file.
///
/// # Errors
/// Database error when pgbench fails (with its stderr) or its summary cannot be read.
pub async fn pgbench_run(node: &Node, connections: u32, secs: u64) -> Result<PgbenchRun> {
    // What pgbench does before a run unless told not to (-n), done here so its WAL stays out
    // of the measured span. Separately: VACUUM cannot run in a batch's implicit transaction.
    for sql in [
        "VACUUM pgbench_branches",
        "VACUUM pgbench_tellers",
        "TRUNCATE pgbench_history",
    ] {
        node.execute(PGBENCH_DB, sql).await?;
    }
    let n = connections.to_string();
    let mut args = vec![
        "-N".to_string(),
        "-n".into(),
        "-c".into(),
        n.clone(),
        "-j".into(),
        n,
        "-T".into(),
        secs.to_string(),
    ];
    args.extend(pgbench_conn_args(node));
    args.push(PGBENCH_DB.into());
    let start = checkpointed_lsn(node).await?;
    tracing::info!("pgbench -N -c {connections} -T {secs} on {}", node.name());
    let out = node
        .control()
        .run_tool("pgbench", &args, None)
        .await
        .step("running pgbench -N")?;
    let wal_bytes = node.lsn(LsnKind::Write).await?.bytes_since(start);
    let text = String::from_utf8_lossy(&out);
    let summary = || {
        Some(PgbenchRun {
            transactions: parse_transactions(&text)?,
            tps: parse_tps(&text)?,
            wal_bytes,
        })
    };
    summary().ok_or_else(|| {
        Error::database("running pgbench -N: no tps or transaction count in its output")
            .with_detail(text.to_string())
    })
}

/// Run the built-in workload (flat out, `connections` connections, all tables, default mix)
/// for `secs` on `node`, in a database created afresh (a second run of the same seed would
/// insert the same keys again); its ledger goes to `ledger_path`, replaced.
///
/// # Errors
/// Database error when the database cannot be created; whatever [`run`] returns.
pub async fn workload_run(
    node: &Node,
    connections: u32,
    secs: u64,
    seed: u64,
    ledger_path: &Path,
) -> Result<WorkloadRun> {
    recreate_db(node, WORKLOAD_DB).await?;
    let client = node.connect(WORKLOAD_DB).await?;
    create_schema(&client, &super::BuiltinTable::ALL).await?;
    drop(client);
    let _ = std::fs::remove_file(ledger_path);
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
    let start = checkpointed_lsn(node).await?;
    let stats = run(&cfg, target, ledger_path, stop, None).await?;
    let wal_bytes = node.lsn(LsnKind::Write).await?.bytes_since(start);
    Ok(WorkloadRun { stats, wal_bytes })
}

async fn recreate_db(node: &Node, db: &str) -> Result<()> {
    node.execute("postgres", &format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    node.execute("postgres", &format!("CREATE DATABASE {db}"))
        .await
}

/// Checkpoint, then read the WAL position a run's WAL is counted from.
async fn checkpointed_lsn(node: &Node) -> Result<crate::node::Lsn> {
    node.execute("postgres", "CHECKPOINT").await?;
    node.lsn(LsnKind::Write).await
}

fn pgbench_conn_args(node: &Node) -> Vec<String> {
    let ep = &node.admin().endpoint;
    vec![
        "-h".into(),
        ep.host.clone(),
        "-p".into(),
        ep.port.to_string(),
        "-U".into(),
        node.admin().login.user.clone(),
    ]
}

/// The `tps = ...` figure of pgbench's summary.
fn parse_tps(out: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("tps = "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next_back()
}

/// "number of transactions actually processed: 25016" (with -t: "25016/30000").
fn parse_transactions(out: &str) -> Option<u64> {
    out.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("number of transactions actually processed:")
        })
        .filter_map(|rest| rest.trim().split('/').next()?.trim().parse().ok())
        .next_back()
}

#[cfg(test)]
mod tests {
    const SUMMARY: &str = "transaction type: <builtin: simple update>\n\
                           number of transactions actually processed: 25016\n\
                           number of failed transactions: 0 (0.000%)\n\
                           latency average = 1.2 ms\n\
                           initial connection time = 4.5 ms\n\
                           tps = 3312.443211 (without initial connection time)\n";

    #[test]
    fn reads_pgbench_summary() {
        assert_eq!(super::parse_tps(SUMMARY), Some(3312.443211));
        assert_eq!(super::parse_transactions(SUMMARY), Some(25016));
        assert_eq!(
            super::parse_transactions("number of transactions actually processed: 90/100\n"),
            Some(90)
        );
        assert_eq!(super::parse_tps("nothing"), None);
        assert_eq!(super::parse_transactions("tps = 12"), None);
        assert_eq!(
            super::parse_transactions("number of transactions actually processed: many"),
            None
        );
    }
}
