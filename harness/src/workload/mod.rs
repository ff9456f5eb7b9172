//! The workload: deterministic, seeded writes against the primary, each recorded in a ledger.
//!
//! Five built-in tables in schema `rehearse` ([`BuiltinTable`]) cover what a migration must
//! carry: a plain bigint key, a composite text key, large jsonb/bytea/text values, a table
//! without a primary key (REPLICA IDENTITY FULL) and a sequence-backed key. Every row holds the
//! op id of its last write, so [`check_ledger`] can tell which acknowledged writes a node holds.
//!
//! Connection `i` draws its operations from its own RNG seeded from `(seed, i)` and touches
//! only keys it created (or seeded rows assigned to it), so what it attempts depends on the
//! seed and its own outcomes only, and the ledger orders every key's writes.

mod bench;
mod check;
mod config;
mod ledger;
mod model;
mod ops;
mod runner;
mod schema;
mod session;
mod stats;
mod table;

pub use bench::{
    PGBENCH_ROWS_PER_TRANSACTION, PgbenchRun, WorkloadRun, pgbench_init, pgbench_run, workload_run,
};
pub use check::{PinnedRows, RowSnapshot, check_ledger, judge_ledger, judge_rows, last_writes};
pub use config::{Mix, Progress, Target, WorkloadConfig};
pub use ledger::{append_ledger, read_ledger};
pub use model::*;
pub use runner::run;
pub use schema::{create_schema, seed_initial};
pub use table::{BuiltinTable, OP_CONN_SHIFT, SEED_CONN, SEED_NODE, WORKLOAD_SCHEMA};
