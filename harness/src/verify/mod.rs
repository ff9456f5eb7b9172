//! Row-level verification: which keys are missing, extra or different on C, plus sequences and
//! schema drift; and the ledger check of acknowledged writes.

mod model;

pub use model::*;
