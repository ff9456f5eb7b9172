//! The human summary, report.md: verdict and seed first, then timings, workload, what the
//! chain did under faults (with the plots beside it as SVG files), verification, ledger,
//! expectations and notes. Short enough to read in a CI log.

use std::fmt::Write;

use chrono::SecondsFormat;

use super::text::{cell, code, differing_keys, key_list_with, md, millis};
use super::{Report, sections};
use crate::verify::{CompareMethod, DriftKind, SequenceStatus, TableStatus, VerifyReport};
use crate::workload::LedgerCheck;

/// Render the Markdown summary of `report`.
pub fn render_markdown(r: &Report) -> String {
    let mut out = String::new();
    header(&mut out, r);
    let mut shared = vec![sections::timings(r), sections::workload(r)];
    shared.extend(sections::observed(r));
    out.push_str(&super::doc::markdown(&shared));
    if r.verify.is_empty() {
        out.push_str("## Verification\n\nNot run.\n\n");
    }
    for v in &r.verify {
        verification(&mut out, v);
    }
    ledger(&mut out, &r.ledger);
    expectations(&mut out, r);
    let notes = super::notes::shown(r);
    if !notes.is_empty() {
        out.push_str("## Notes\n\n");
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn upper(v: crate::Verdict) -> String {
    v.word().to_uppercase()
}

fn header(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "# {} · {} · seed {}\n",
        upper(r.verdict),
        md(&r.scenario.name),
        r.seed
    );
    let _ = writeln!(out, "Replay: {}\n", code(&r.replay_command()));
    if let Some(e) = &r.error {
        let _ = writeln!(out, "**The run stopped early:** {}\n", md(e.trim()));
    }
    if let Some(d) = &r.scenario.description {
        // Plain text, line by line: a `<!--` or `|` in it must not hide or break the report.
        let quoted: Vec<String> = d.trim().lines().map(md).collect();
        let _ = writeln!(out, "> {}\n", quoted.join("\n> "));
    }
    let ts = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let finished = match r.finished_at {
        Some(f) => {
            let ms = (f - r.started_at).num_milliseconds().max(0) as u64;
            format!("{} ({})", ts(&f), millis(ms))
        }
        None => "not finished".into(),
    };
    let pg = match &r.postgres {
        Some(p) => format!(
            "PostgreSQL {} from {} ({})",
            p.version,
            code(&p.bin_dir.to_string_lossy()),
            p.source
        ),
        None => "PostgreSQL not located".into(),
    };
    let _ = writeln!(out, "| | |\n|---|---|");
    let rows = [
        ("run", code(&r.run_id)),
        ("run directory", code(&r.run_dir.to_string_lossy())),
        ("scenario", code(&r.scenario.path.to_string_lossy())),
        ("started", ts(&r.started_at)),
        ("finished", finished),
        ("backend", r.backend.clone()),
        ("postgres", pg),
        ("pgrehearse", r.tool_version.clone()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {} |", cell(&v));
    }
    out.push('\n');
}

fn verification(out: &mut String, v: &VerifyReport) {
    let (a, c) = (&v.reference, &v.target);
    let _ = writeln!(out, "## Verification: {c} vs {a} — {}\n", upper(v.verdict));
    if v.tables.is_empty() {
        out.push_str("No tables compared.\n\n");
    } else {
        let _ = writeln!(
            out,
            "| table | status | rows {a} | rows {c} | missing | extra | changed |\n|---|---|---:|---:|---:|---:|---:|"
        );
        for t in &v.tables {
            let status = match (t.status, &t.method) {
                (TableStatus::Match, CompareMethod::RowMultiset) => "match (no key)",
                (TableStatus::Match, _) => "match",
                (TableStatus::Differ, _) => "DIFFER",
                (TableStatus::Error, _) => "ERROR",
            };
            let _ = writeln!(
                out,
                "| {} | {status} | {} | {} | {} | {} | {} |",
                cell(&t.table),
                t.rows_reference,
                t.rows_target,
                t.missing.count,
                t.extra.count,
                t.changed.count
            );
        }
        out.push('\n');
    }
    let mut keys = String::new();
    let mut failed = String::new();
    for t in &v.tables {
        match t.status {
            TableStatus::Differ => {
                let _ = writeln!(keys, "- {}: {}", code(&t.table), differing_keys(t, md));
            }
            TableStatus::Error => {
                let _ = writeln!(
                    failed,
                    "- {}: {}",
                    code(&t.table),
                    md(t.error.as_deref().unwrap_or("no reason recorded"))
                );
            }
            TableStatus::Match => {}
        }
    }
    if !keys.is_empty() {
        let _ = writeln!(
            out,
            "Keys that differ (missing: on {a} but not on {c}; extra: on {c} but not on {a}):\n\n{keys}"
        );
    }
    if !failed.is_empty() {
        let _ = writeln!(out, "Not compared (verdict unknown):\n\n{failed}");
    }
    if !v.sequences.is_empty() {
        let _ = writeln!(
            out,
            "Sequences:\n\n| sequence | {a} | {c} | status |\n|---|---:|---:|---|"
        );
        let show = |x: Option<i64>| x.map_or("—".to_string(), |x| x.to_string());
        let mut why: Vec<&str> = Vec::new();
        for s in &v.sequences {
            let status = match s.status {
                SequenceStatus::Match => "match",
                SequenceStatus::Drift => "drift",
                SequenceStatus::Missing => "missing",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {status} |",
                cell(&s.sequence),
                show(s.reference),
                show(s.target)
            );
            if s.status != SequenceStatus::Match && !s.note.is_empty() && !why.contains(&&*s.note) {
                why.push(&s.note);
            }
        }
        out.push('\n');
        for w in why {
            let _ = writeln!(out, "Sequence drift: {}\n", md(w));
        }
    }
    if !v.schema.is_empty() {
        out.push_str("Schema drift:\n\n");
        let show = |x: &Option<String>| x.as_deref().map_or("—".to_string(), code);
        for d in &v.schema {
            let _ = writeln!(
                out,
                "- {}: {} ({a}: {}, {c}: {})",
                code(&d.object),
                drift_words(d.kind),
                show(&d.reference),
                show(&d.target)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Compared in {}.\n", millis(v.elapsed_ms));
}

/// A drift kind in words.
pub(super) fn drift_words(k: DriftKind) -> &'static str {
    match k {
        DriftKind::TableMissing => "table missing on the target",
        DriftKind::TableExtra => "table only on the target",
        DriftKind::ColumnMissing => "column missing on the target",
        DriftKind::ColumnExtra => "column only on the target",
        DriftKind::TypeChanged => "type changed",
        DriftKind::TypeWidened => "type widened on the target (every value fits: not a failure)",
        DriftKind::PrimaryKeyChanged => "primary key changed",
    }
}

fn ledger(out: &mut String, checks: &[LedgerCheck]) {
    out.push_str("## Ledger check (acknowledged writes)\n\n");
    if checks.is_empty() {
        out.push_str("Not run.\n\n");
        return;
    }
    for l in checks {
        let _ = writeln!(
            out,
            "- {}: {} — {} keys checked; {}; unknown outcomes: {} applied, {} not applied; {}",
            l.node,
            upper(l.verdict),
            l.keys_checked,
            key_list_with("lost writes", &l.lost, md),
            l.unknown_applied,
            l.unknown_not_applied,
            key_list_with("unexplained", &l.unexplained, md),
        );
    }
    out.push('\n');
}

fn expectations(out: &mut String, r: &Report) {
    out.push_str("## Expectations\n\n");
    if r.expectations.is_empty() {
        out.push_str("None judged.\n\n");
        return;
    }
    out.push_str("| expectation | verdict | expected | observed |\n|---|---|---|---|\n");
    for e in &r.expectations {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&e.name),
            upper(e.verdict),
            cell(&e.expected),
            cell(&e.observed)
        );
    }
    out.push('\n');
    for e in r
        .expectations
        .iter()
        .filter(|e| e.verdict != crate::Verdict::Valid)
    {
        let _ = writeln!(out, "- **{}**: {}", e.name, md(&e.evidence));
    }
    if r.expectations
        .iter()
        .any(|e| e.verdict != crate::Verdict::Valid)
    {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use crate::report::Report;

    #[test]
    fn the_scenario_name_and_description_are_text_not_markup() {
        let scenario = crate::scenario::Scenario::parse(
            "version = 1\nname = \"*bold* <b>\"\ndescription = \"<!-- hides the rest\\r\\n| breaks a table\"\n",
            std::path::Path::new("marked.toml"),
        )
        .unwrap();
        let mut r = Report::new("run", std::path::Path::new("/runs/run"), &scenario, 7);
        r.conclude(r.started_at);
        let md = super::render_markdown(&r);
        assert!(md.contains("\\*bold\\* \\<b\\>"), "{md}");
        assert!(
            md.contains("> \\<!-- hides the rest\n> \\| breaks a table\n"),
            "{md}"
        );
        assert!(!md.contains('\r'), "{md:?}");
    }
}
