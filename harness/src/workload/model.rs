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
    /// Microseconds since workload start when the operation was sent (in a rehearsal: since
    /// the zero of the report's timeline, like fault and sample times).
    pub sent_us: u64,
    /// Microseconds since workload start when the outcome was known (same zero as `sent_us`).
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
    /// Keys whose state lacks at least one acknowledged write, as `table key op=<id>` with the
    /// key's last acknowledged op. One entry per key: a key can lack several writes, which
    /// [`LedgerJudgement`](super::LedgerJudgement) counts and lists one by one.
    pub lost: KeySample,
    /// Unknown-outcome writes that turned out applied.
    pub unknown_applied: u64,
    /// Unknown-outcome writes that turned out not applied.
    pub unknown_not_applied: u64,
    /// Rows carrying an op id the ledger never issued, or a state no ledger order explains.
    pub unexplained: KeySample,
    /// Keys written on two nodes: after a failover that lost WAL, the promoted standby's
    /// sequence hands out invoice ids the old primary had already used (PostgreSQL logs a
    /// sequence 32 values ahead, and the lost WAL took that record with it). Each is judged by
    /// the later node's writes alone; the old primary's writes to it are the failover's loss,
    /// counted in the RPO at promotion.
    #[serde(default)]
    pub reissued_keys: u64,
}

/// One ledger operation, as a judgement lists it: a lost write, or a write whose outcome the
/// client never learnt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteRef {
    /// Ledger op id (also the row's `op_id` for inserts and updates).
    pub op: u64,
    /// `schema.table`.
    pub table: String,
    /// Key as text (`?` for an invoice insert whose id never came back).
    pub key: String,
    /// Insert, update or delete.
    pub kind: OpKind,
    /// Node it was sent to.
    pub node: String,
    /// When it was sent: microseconds since the ledger's zero (a rehearsal's timeline zero).
    pub sent_us: u64,
    /// When its outcome was known (same zero): for an acknowledged write, when the commit was
    /// acknowledged.
    pub done_us: u64,
    /// Whether the node holds its effect: false for a lost write; for an unknown outcome, what
    /// the node's data shows, or None when the data cannot tell.
    pub applied: Option<bool>,
    /// The op id in the node's row for this key; None when the node has no row for it.
    pub found_op: Option<u64>,
}

/// What the ledger says about a node's data, write by write: the per-key summary reports
/// show as the ledger check, and every acknowledged write the node lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerJudgement {
    /// The per-key summary.
    pub check: LedgerCheck,
    /// Acknowledged writes the node lacks, counted one by one: at least this many (writes
    /// whose effects cancel out, an insert and the delete of one key, are not seen missing).
    pub lost_writes: u64,
    /// The first of them (capped), in the order they were acknowledged.
    pub lost: Vec<WriteRef>,
    /// Writes with an unknown outcome (exact).
    pub unknown_total: u64,
    /// The first of them (capped), in the order they were sent, each with whether it turned
    /// out applied.
    pub unknown: Vec<WriteRef>,
}

impl LedgerJudgement {
    /// Unknown-outcome writes whose fate the node's data cannot tell.
    pub fn unknown_undetermined(&self) -> u64 {
        self.unknown_total
            .saturating_sub(self.check.unknown_applied + self.check.unknown_not_applied)
    }
}
