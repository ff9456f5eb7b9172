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
mod widening;

pub use compare::{baseline_scan, compare};
pub use model::*;
pub use options::{Side, VerifyOptions};

use crate::chain::Chain;
use crate::error::{Result, ResultExt};

/// Compare C with the chain's primary and, when `with_standby` and B is still a standby, B with
/// it too — both at once. C's report comes first.
///
/// # Errors
/// The first comparison that could not be made (a node unreachable, a query failing).
pub async fn compare_chain(
    chain: &Chain,
    with_standby: bool,
    opts: &VerifyOptions,
) -> Result<Vec<VerifyReport>> {
    let db = &chain.spec.database;
    let reference = chain.primary();
    let r = Side::of(reference, db);
    let (c_side, b_side) = (Side::of(&chain.c, db), Side::of(&chain.b, db));
    let (c_report, b_report) = tokio::join!(compare(&r, &c_side, opts), async {
        if with_standby && reference.name() != chain.b.name() {
            Some(compare(&r, &b_side, opts).await)
        } else {
            None
        }
    });
    let mut reports = vec![c_report.step("verifying c")?];
    if let Some(b) = b_report {
        reports.push(b.step("verifying b")?);
    }
    Ok(reports)
}
