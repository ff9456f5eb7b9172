//! Notes derived from what a run observed: PostgreSQL behaviour a migration plan must account
//! for, stated once, in plain words.

use super::Report;
use crate::verify::{CompareMethod, SequenceStatus};

/// The notes the reports show: the report's own, then the observer's findings not already
/// among them.
pub(super) fn shown(report: &Report) -> Vec<&str> {
    let mut out: Vec<&str> = report.notes.iter().map(String::as_str).collect();
    let findings = report.observations.iter().flat_map(|o| &o.findings);
    for f in findings {
        if !out.contains(&f.as_str()) {
            out.push(f);
        }
    }
    out
}

/// Notes the observations call for, in a fixed order.
pub(super) fn observed(report: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    let drift = report
        .verify
        .iter()
        .flat_map(|r| &r.sequences)
        .filter(|s| s.status != SequenceStatus::Match)
        .count();
    if drift > 0 {
        notes.push(
            "sequences are not replicated by logical replication (nor by AWS DMS): their values \
             on the target stay behind; resync them at cutover, before the application writes there"
                .to_string(),
        );
    }
    let mut no_key: Vec<&str> = report
        .verify
        .iter()
        .flat_map(|r| &r.tables)
        .filter(|t| t.method == CompareMethod::RowMultiset)
        .map(|t| t.table.as_str())
        .collect();
    no_key.sort_unstable();
    no_key.dedup();
    if !no_key.is_empty() {
        notes.push(format!(
            "tables without a primary key ({}): a publication rejects their UPDATE and DELETE \
             unless REPLICA IDENTITY is FULL (each change then scans the table on the target), \
             and AWS DMS does not carry their UPDATE and DELETE at all",
            no_key.join(", ")
        ));
    }
    let unknown: u64 = report
        .ledger
        .iter()
        .map(|l| l.unknown_applied + l.unknown_not_applied)
        .max()
        .unwrap_or(0);
    if unknown > 0 {
        notes.push(format!(
            "{} an unknown outcome (the connection broke while the commit was in flight): \
             either result is correct, and the ledger check accepts both",
            super::text::count(unknown, "write had", "writes had")
        ));
    }
    notes
}
