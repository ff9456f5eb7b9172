//! What verification finds, as plain data for reports.

use crate::verdict::Verdict;

/// A capped list of keys with the exact total.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeySample {
    /// Exact number of keys in this class.
    pub count: u64,
    /// The first keys (at most the configured cap), rendered as text: `42` for a one-column
    /// key, `(eu,sku-7)` for a composite key, the row itself for tables without a key.
    pub keys: Vec<String>,
}

impl KeySample {
    /// Add a key, keeping at most `cap` of them listed.
    pub fn push(&mut self, key: String, cap: usize) {
        self.count += 1;
        if self.keys.len() < cap {
            self.keys.push(key);
        }
    }

    /// No keys at all.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// How a table was compared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CompareMethod {
    /// Chunked hashes over the primary key range, recursing into chunks that differ.
    PrimaryKey {
        /// Key columns, in key order.
        columns: Vec<String>,
    },
    /// Multiset of row hashes (no primary key).
    RowMultiset,
    /// Not compared (the table is missing on one side, or its key differs).
    NotCompared,
}

/// Outcome for one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    /// Same rows on both sides.
    Match,
    /// Rows differ (see the key lists).
    Differ,
    /// The comparison failed (see `error`); the verdict is unknown.
    Error,
}

/// Row-level comparison of one table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableDiff {
    /// `schema.table`.
    pub table: String,
    /// How it was compared.
    pub method: CompareMethod,
    /// Outcome.
    pub status: TableStatus,
    /// Rows on the reference side.
    pub rows_reference: u64,
    /// Rows on the target side.
    pub rows_target: u64,
    /// Keys on the reference side and not on the target.
    pub missing: KeySample,
    /// Keys on the target and not on the reference side.
    pub extra: KeySample,
    /// Keys on both sides with different values.
    pub changed: KeySample,
    /// Why the comparison failed, when it did.
    pub error: Option<String>,
}

/// Sequence state on both sides.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SequenceDiff {
    /// `schema.sequence`.
    pub sequence: String,
    /// last_value on the reference (None: never used, or missing).
    pub reference: Option<i64>,
    /// last_value on the target.
    pub target: Option<i64>,
    /// Match, drift or missing.
    pub status: SequenceStatus,
    /// Why drift is or is not expected here (native logical replication and DMS do not carry
    /// sequence values: they must be resynced at cutover).
    pub note: String,
}

/// Sequence comparison outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceStatus {
    /// Same value.
    Match,
    /// Different value; expected with logical replication, reported, not a failure by itself.
    Drift,
    /// Present on one side only.
    Missing,
}

/// A difference in table definitions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchemaDrift {
    /// `schema.table` or `schema.table.column`.
    pub object: String,
    /// What kind of drift.
    pub kind: DriftKind,
    /// Definition on the reference side.
    pub reference: Option<String>,
    /// Definition on the target.
    pub target: Option<String>,
}

/// Kinds of schema drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// Table on the reference only.
    TableMissing,
    /// Table on the target only.
    TableExtra,
    /// Column on the reference only.
    ColumnMissing,
    /// Column on the target only.
    ColumnExtra,
    /// Same column, different type.
    TypeChanged,
    /// Same column, a type on the target that keeps every value as it is (int → bigint,
    /// varchar(n) → text): reported, not a failure; the rows are still compared.
    TypeWidened,
    /// Different primary key.
    PrimaryKeyChanged,
}

/// Everything one comparison found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// Reference node name ("a", or "b" after failover).
    pub reference: String,
    /// Compared node name ("c", or "b").
    pub target: String,
    /// Valid when every table matches and there is no schema drift; Unknown when a table
    /// could not be compared.
    pub verdict: Verdict,
    /// Per table, sorted by name.
    pub tables: Vec<TableDiff>,
    /// Per sequence, sorted by name.
    pub sequences: Vec<SequenceDiff>,
    /// Schema differences.
    pub schema: Vec<SchemaDrift>,
    /// Wall time of the comparison.
    pub elapsed_ms: u64,
}
