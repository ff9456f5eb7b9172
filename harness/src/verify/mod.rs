//! Row-level verification: which keys are missing, extra or different on C, plus sequences and
//! schema drift; and the ledger check of acknowledged writes.
//!
//! [`compare`] reads both sides concurrently, never writes (B may be a hot standby) and reports
//! per table the exact counts of missing, extra and changed keys with a capped, sorted sample
//! of them. Tables with a primary key are compared by chunked hashes over the key range
//! (`diff`), tables without one as multisets of row hashes (`multiset`).

mod catalog;
mod chunk;
mod compare;
mod diff;
mod keys;
mod model;
mod multiset;
mod options;
mod schema;
mod sequences;
mod session;
mod sql;

pub use compare::{baseline_scan, compare};
pub use model::*;
pub use options::{Side, VerifyOptions};
