//! What the terminal shows at the end of a run and of `pgrehearse verify`: the verdict first,
//! then one line per fact, with the exact counts (the Markdown and HTML reports have the rest).

use std::time::Duration;

use super::Report;
use super::text::{count, key_list};
use crate::util::fmt_duration;
use crate::verify::{DriftKind, SequenceStatus, TableStatus, VerifyReport};

/// The end of `pgrehearse run`: verdict, workload, catch-up, each comparison, the ledger, each
/// expectation with its evidence, findings and the error if any.
pub fn run_summary(r: &Report) -> String {
    let mut out = vec![format!(
        "{}  {}  (seed {})",
        r.verdict.word().to_uppercase(),
        r.scenario.name,
        r.seed
    )];
    if let Some(w) = &r.workload {
        out.push(format!(
            "  workload: {} ok, {} failed, {} unknown in {} ({:.0} ops/s)",
            w.ok,
            w.failed,
            w.unknown,
            fmt_duration(Duration::from_millis(w.duration_ms)),
            w.throughput
        ));
    }
    if let Some(c) = r.catchup_ms {
        out.push(format!(
            "  catch-up after the workload: {}",
            fmt_duration(Duration::from_millis(c))
        ));
    }
    for v in &r.verify {
        out.push(format!(
            "  {} vs {}: {}",
            v.target,
            v.reference,
            verify_line(v)
        ));
    }
    for l in &r.ledger {
        out.push(format!(
            "  ledger on {}: {} keys with acknowledged writes lost, {} keys in an unexplained \
             state",
            l.node, l.lost.count, l.unexplained.count
        ));
    }
    for e in &r.expectations {
        out.push(format!(
            "  expect {}: {} ({})",
            e.name,
            e.verdict.word(),
            e.observed
        ));
    }
    if let Some(o) = &r.observations {
        for f in &o.findings {
            out.push(format!("  finding: {f}"));
        }
    }
    if let Some(e) = &r.error {
        out.push(format!("  error: {e}"));
    }
    out.join("\n")
}

fn verify_line(v: &VerifyReport) -> String {
    let with = |status: TableStatus| v.tables.iter().filter(move |t| t.status == status);
    let differ: Vec<String> = with(TableStatus::Differ)
        .map(|t| {
            format!(
                "{} ({} missing, {} extra, {} changed)",
                t.table, t.missing.count, t.extra.count, t.changed.count
            )
        })
        .collect();
    // A table that could not be compared neither matches nor differs: it says why.
    let failed: Vec<String> = with(TableStatus::Error)
        .map(|t| {
            format!(
                "{} ({})",
                t.table,
                t.error.as_deref().unwrap_or("no reason recorded")
            )
        })
        .collect();
    let of_all = count(v.tables.len() as u64, "table", "tables");
    let parts: Vec<String> = [(differ, "differ"), (failed, "could not be compared")]
        .into_iter()
        .filter(|(tables, _)| !tables.is_empty())
        .map(|(tables, what)| format!("{} of {of_all} {what}: {}", tables.len(), tables.join(", ")))
        .collect();
    let mut s = if parts.is_empty() {
        format!("all {} tables match", v.tables.len())
    } else {
        parts.join("; ")
    };
    let widened = v
        .schema
        .iter()
        .filter(|d| d.kind == DriftKind::TypeWidened)
        .count();
    let n = v.schema.len() - widened;
    if n > 0 {
        s.push_str(&format!(
            "; {n} schema difference{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    if widened > 0 {
        s.push_str(&format!(
            "; {} on the target (not a failure)",
            count(widened as u64, "type widened", "types widened")
        ));
    }
    let drift = v
        .sequences
        .iter()
        .filter(|q| q.status != SequenceStatus::Match)
        .count();
    if drift > 0 {
        s.push_str(&format!(
            "; {} (expected, see the report's notes)",
            count(drift as u64, "sequence differs", "sequences differ")
        ));
    }
    s
}

/// `pgrehearse verify`: the verdict line of one comparison, then each table's differing keys
/// (a capped list with the exact count).
pub fn verify_summary(v: &VerifyReport) -> String {
    let mut out = vec![format!(
        "{} vs {}: {} — {}",
        v.target,
        v.reference,
        v.verdict.word().to_uppercase(),
        verify_line(v)
    )];
    for t in &v.tables {
        for (what, ks) in [
            ("missing", &t.missing),
            ("extra", &t.extra),
            ("changed", &t.changed),
        ] {
            if ks.count > 0 {
                out.push(format!("  {} {}", t.table, key_list(what, ks)));
            }
        }
    }
    out.join("\n")
}
