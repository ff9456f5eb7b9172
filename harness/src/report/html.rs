//! report.html: everything report.md says, in one self-contained page (inline CSS, the plots as
//! inline SVG, no script), with the evidence of every expectation in the table.

use std::fmt::Write;

use chrono::SecondsFormat;

use super::doc::{self, Block, Section, Table, Text};
use super::text::{differing_keys, key_list, millis, xml};
use super::{Report, charts, notes, sections};
use crate::verdict::Verdict;
use crate::verify::{CompareMethod, SequenceStatus, TableStatus, VerifyReport};
use crate::workload::LedgerCheck;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:1.5em auto;\
padding:0 1em;color:#222;line-height:1.4}\
h1{margin:0;font-size:1.4em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\
.banner{padding:.6em 1em;border-radius:4px;color:#fff}\
.pass{background:#2e7d32}.fail{background:#c62828}.unknown{background:#e65100}\
table{border-collapse:collapse;margin:.5em 0 1em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f5f5f5}.num{text-align:right}\
code{background:#f3f3f3;padding:0 .2em;border-radius:2px}\
blockquote{margin:1em 0;padding-left:1em;border-left:3px solid #ccc;color:#555}\
.error{border:1px solid #c62828;padding:.5em 1em;background:#fdecea}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}";

/// Render the HTML report of `report`: a single file with everything inline.
pub fn render_html(r: &Report) -> String {
    html_with(r, &charts::render_plots(r))
}

/// [`render_html`] with the plots already rendered (file name → SVG document).
pub(super) fn html_with(r: &Report, plots: &[(&'static str, String)]) -> String {
    let title = format!(
        "{} · {} · seed {}",
        r.verdict.word().to_uppercase(),
        r.scenario.name,
        r.seed
    );
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n");
    let _ = writeln!(
        out,
        "<meta charset=\"utf-8\">\n<title>{}</title>",
        xml(&title)
    );
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(
        out,
        "<header class=\"banner {}\"><h1>{}</h1></header>",
        r.verdict.word(),
        xml(&title)
    );
    let _ = writeln!(
        out,
        "<p>Replay: <code>{}</code></p>",
        xml(&r.replay_command())
    );
    if let Some(e) = &r.error {
        let _ = writeln!(
            out,
            "<p class=\"error\"><strong>The run stopped early:</strong> {}</p>",
            xml(e.trim())
        );
    }
    if let Some(d) = &r.scenario.description {
        let _ = writeln!(out, "<blockquote>{}</blockquote>", xml(d.trim()));
    }
    let mut all = vec![summary(r), sections::timings(r), sections::workload(r)];
    all.extend(sections::observed(r));
    if r.verify.is_empty() {
        let mut s = Section::new("Verification");
        s.para("Not run.");
        all.push(s);
    }
    all.extend(r.verify.iter().map(verification));
    all.push(ledger(&r.ledger));
    all.push(expectations(r));
    let notes = notes::shown(r);
    if !notes.is_empty() {
        let mut s = Section::new("Notes");
        s.push(Block::List(notes.into_iter().map(Text::plain).collect()));
        all.push(s);
    }
    out.push_str(&doc::html(&all, plots));
    out.push_str("</body>\n</html>\n");
    out
}

fn ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn summary(r: &Report) -> Section {
    let mut s = Section::new("Run");
    let mut t = Table::new(&["", ""]);
    let finished = match r.finished_at {
        Some(f) => {
            let ms = (f - r.started_at).num_milliseconds().max(0) as u64;
            format!("{} ({})", ts(&f), millis(ms))
        }
        None => "not finished".into(),
    };
    let pg = match &r.postgres {
        Some(p) => Text::plain(format!("PostgreSQL {} from ", p.version))
            .then_code(p.bin_dir.to_string_lossy())
            .then(format!(" ({})", p.source)),
        None => "PostgreSQL not located".into(),
    };
    let rows: [(&str, Text); 10] = [
        ("verdict", Text::strong(r.verdict.word())),
        ("seed", r.seed.to_string().into()),
        ("run", Text::code(&r.run_id)),
        ("run directory", Text::code(r.run_dir.to_string_lossy())),
        ("scenario", Text::code(r.scenario.path.to_string_lossy())),
        ("started", ts(&r.started_at).into()),
        ("finished", finished.into()),
        ("backend", r.backend.clone().into()),
        ("postgres", pg),
        ("pgrehearse", r.tool_version.clone().into()),
    ];
    for (k, v) in rows {
        t.row(vec![k.into(), v]);
    }
    s.push(Block::Table(t));
    s
}

fn verification(v: &VerifyReport) -> Section {
    let (a, c) = (&v.reference, &v.target);
    let mut s = Section::new(format!(
        "Verification: {c} vs {a} — {}",
        v.verdict.word().to_uppercase()
    ));
    if v.tables.is_empty() {
        s.para("No tables compared.");
    } else {
        let (ra, rc) = (format!(">rows {a}"), format!(">rows {c}"));
        let mut t = Table::new(&[
            "table", "status", &ra, &rc, ">missing", ">extra", ">changed",
        ]);
        for d in &v.tables {
            let status = match (d.status, &d.method) {
                (TableStatus::Match, CompareMethod::RowMultiset) => "match (no key)",
                (TableStatus::Match, _) => "match",
                (TableStatus::Differ, _) => "DIFFER",
                (TableStatus::Error, _) => "ERROR",
            };
            t.row(vec![
                Text::code(&d.table),
                status.into(),
                d.rows_reference.to_string().into(),
                d.rows_target.to_string().into(),
                d.missing.count.to_string().into(),
                d.extra.count.to_string().into(),
                d.changed.count.to_string().into(),
            ]);
        }
        s.push(Block::Table(t));
    }
    let mut keys = Vec::new();
    let mut failed = Vec::new();
    for d in &v.tables {
        match d.status {
            TableStatus::Differ => {
                keys.push(
                    Text::code(&d.table).then(format!(": {}", differing_keys(d, str::to_string))),
                );
            }
            TableStatus::Error => failed.push(Text::code(&d.table).then(format!(
                ": {}",
                d.error.as_deref().unwrap_or("no reason recorded")
            ))),
            TableStatus::Match => {}
        }
    }
    if !keys.is_empty() {
        s.para(format!(
            "Keys that differ (missing: on {a} but not on {c}; extra: on {c} but not on {a}):"
        ));
        s.push(Block::List(keys));
    }
    if !failed.is_empty() {
        s.para("Not compared (verdict unknown):");
        s.push(Block::List(failed));
    }
    if !v.sequences.is_empty() {
        let (ra, rc) = (format!(">{a}"), format!(">{c}"));
        let mut t = Table::new(&["sequence", &ra, &rc, "status"]);
        let show = |x: Option<i64>| x.map_or("—".to_string(), |x| x.to_string());
        let mut why: Vec<&str> = Vec::new();
        for q in &v.sequences {
            let status = match q.status {
                SequenceStatus::Match => "match",
                SequenceStatus::Drift => "drift",
                SequenceStatus::Missing => "missing",
            };
            t.row(vec![
                Text::code(&q.sequence),
                show(q.reference).into(),
                show(q.target).into(),
                status.into(),
            ]);
            if q.status != SequenceStatus::Match && !q.note.is_empty() && !why.contains(&&*q.note) {
                why.push(&q.note);
            }
        }
        s.push(Block::Table(t));
        for w in why {
            s.para(format!("Sequence drift: {w}"));
        }
    }
    if !v.schema.is_empty() {
        s.para("Schema drift:");
        let show = |x: &Option<String>| x.clone().unwrap_or_else(|| "—".into());
        s.push(Block::List(
            v.schema
                .iter()
                .map(|d| {
                    Text::code(&d.object).then(format!(
                        ": {} ({a}: {}, {c}: {})",
                        super::markdown::drift_words(d.kind),
                        show(&d.reference),
                        show(&d.target)
                    ))
                })
                .collect(),
        ));
    }
    s.para(format!("Compared in {}.", millis(v.elapsed_ms)));
    s
}

fn ledger(checks: &[LedgerCheck]) -> Section {
    let mut s = Section::new("Ledger check (acknowledged writes)");
    if checks.is_empty() {
        s.para("Not run.");
        return s;
    }
    s.push(Block::List(
        checks
            .iter()
            .map(|l| {
                Text::plain(format!("{}: ", l.node))
                    .then_strong(l.verdict.word().to_uppercase())
                    .then(format!(
                        " — {} keys checked; {}; unknown outcomes: {} applied, {} not applied; {}",
                        l.keys_checked,
                        key_list("lost writes", &l.lost),
                        l.unknown_applied,
                        l.unknown_not_applied,
                        key_list("unexplained", &l.unexplained)
                    ))
            })
            .collect(),
    ));
    s
}

fn expectations(r: &Report) -> Section {
    let mut s = Section::new("Expectations");
    if r.expectations.is_empty() {
        s.para("None judged.");
        return s;
    }
    let mut t = Table::new(&["expectation", "verdict", "expected", "observed", "evidence"]);
    for e in &r.expectations {
        let verdict = e.verdict.word().to_uppercase();
        t.row(vec![
            Text::code(&e.name),
            if e.verdict == Verdict::Valid {
                verdict.into()
            } else {
                Text::strong(verdict)
            },
            e.expected.clone().into(),
            e.observed.clone().into(),
            e.evidence.clone().into(),
        ]);
    }
    s.push(Block::Table(t));
    s
}
