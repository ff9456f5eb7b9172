//! The workload: deterministic, seeded writes against the primary, each recorded in a ledger.

mod model;

pub use model::*;
