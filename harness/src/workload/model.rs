//! The ledger of workload operations, and what the ledger check concludes.

use std::collections::BTreeMap;

use crate::verdict::Verdict;
use crate::verify::KeySample;

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// INSERT of a new key.
    Insert,
    /// UPDATE of an existing key.
    Update,
    /// DELETE of an existing key.
    Delete,
}

/// How an operation ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Committed: the server acknowledged the commit.
    Ok,
    /// Definitely not committed (the server returned an error before commit).
    Failed,
    /// Indeterminate: the connection broke while the commit was in flight; it may or may not
    /// have been applied.
    Unknown,
}

/// One line of the ledger (ledger.jsonl).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    /// Operation id, unique in the run; also written into the row's `op_id` column.
    pub op: u64,
    /// Workload connection that ran it.
    pub conn: u32,
    /// `schema.table`.
    pub table: String,
    /// Key as text (same rendering as verification's key lists).
    pub key: String,
    /// Insert, update or delete.
    pub kind: OpKind,
    /// Ok, failed or unknown.
    pub outcome: Outcome,
    /// Microseconds since workload start when the operation was sent.
    pub sent_us: u64,
    /// Microseconds since workload start when the outcome was known.
    pub done_us: u64,
    /// Node the operation was sent to ("a", or "b" after failover).
    pub node: String,
    /// Server error or connection error text, for failed and unknown operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableOps {
    /// Acknowledged inserts.
    pub inserts: u64,
    /// Acknowledged updates.
    pub updates: u64,
    /// Acknowledged deletes.
    pub deletes: u64,
}

/// Summary of a workload run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadStats {
    /// Seed the workload ran with.
    pub seed: u64,
    /// Connections used.
    pub connections: u32,
    /// Target rate in operations per second (None: flat out).
    pub target_rate: Option<f64>,
    /// Wall time spent running operations.
    pub duration_ms: u64,
    /// Acknowledged operations.
    pub ok: u64,
    /// Operations that definitely failed.
    pub failed: u64,
    /// Operations with an unknown outcome.
    pub unknown: u64,
    /// Acknowledged operations per second.
    pub throughput: f64,
    /// Median latency of acknowledged operations, microseconds.
    pub latency_p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub latency_p99_us: u64,
    /// Per table.
    pub tables: BTreeMap<String, TableOps>,
}

/// What the ledger says about one node's data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LedgerCheck {
    /// Node checked.
    pub node: String,
    /// Invalid when an acknowledged write is missing.
    pub verdict: Verdict,
    /// Keys whose final state the ledger determines (last operation acknowledged).
    pub keys_checked: u64,
    /// Acknowledged writes whose effect is not on the node (the RPO, in writes), as
    /// `table key op=<id>`.
    pub lost: KeySample,
    /// Unknown-outcome writes that turned out applied.
    pub unknown_applied: u64,
    /// Unknown-outcome writes that turned out not applied.
    pub unknown_not_applied: u64,
    /// Rows carrying an op id the ledger never issued, or a state no ledger order explains.
    pub unexplained: KeySample,
}
