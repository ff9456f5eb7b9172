//! The report's sections, shared by both formats: the run, timings, the workload, what the
//! chain did while faults were applied (the faults and their windows, lag, WAL retained and
//! the slot's fate, failover timings, the RPO and slot creation on an idle primary), each
//! verification, the ledger, the expectations with their evidence and the notes. Built once,
//! rendered as Markdown and as HTML, so both say the same thing and escape it the same way.

use chrono::SecondsFormat;

use super::charts::{PLOTS, one_shot};
use super::doc::{Block, Section, Table, Text};
use super::text::{at, at_u, bytes, count, differing_keys, key_list, micros, millis, secs};
use super::{IdlePrimary, Report};
use crate::observe::{Failover, Observations, Peak, Rpo, SlotOutcome};
use crate::verdict::Verdict;
use crate::verify::{CompareMethod, DriftKind, SequenceStatus, TableStatus, VerifyReport};
use crate::workload::{LedgerCheck, OpKind, WriteRef};

/// Every section of `report`, in reading order: what comes before the first heading (replay
/// command, the error, the description), the run, timings, workload, what was observed, the
/// verification, the ledger, the expectations and the notes.
pub(super) fn all(r: &Report) -> Vec<Section> {
    let mut out = vec![preamble(r), run(r), timings(r), workload(r)];
    out.extend(observed(r));
    if r.verify.is_empty() {
        let mut s = Section::new("Verification");
        s.para("Not run.");
        out.push(s);
    }
    out.extend(r.verify.iter().map(verification));
    out.push(ledger(&r.ledger));
    out.push(expectations(r));
    out.extend(notes(r));
    out
}

/// "FAIL · smoke · seed 42": the report's title.
pub(super) fn title(r: &Report) -> String {
    format!(
        "{} · {} · seed {}",
        upper(r.verdict),
        r.scenario.name,
        r.seed
    )
}

/// "PASS", "FAIL", "UNKNOWN".
fn upper(v: Verdict) -> String {
    v.word().to_uppercase()
}

/// A verdict in a table: set apart unless it passed.
fn verdict_cell(v: Verdict) -> Text {
    if v == Verdict::Valid {
        Text::plain(upper(v))
    } else {
        Text::strong(upper(v))
    }
}

fn timestamp(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The lines before the first heading: how to replay the run, why it stopped early, and the
/// scenario's description (text, line by line: a `<!--` or `|` in it must not hide or break
/// the report).
fn preamble(r: &Report) -> Section {
    let mut s = Section::new("");
    s.para(Text::plain("Replay: ").then_code(r.replay_command()));
    if let Some(e) = &r.error {
        s.push(Block::Alert(
            Text::strong("The run stopped early:").then(format!(" {}", e.trim())),
        ));
    }
    if let Some(d) = &r.scenario.description {
        s.push(Block::Quote(d.trim().lines().map(Text::plain).collect()));
    }
    s
}

/// Which run this was: seed, where its files are, when it ran, on what.
fn run(r: &Report) -> Section {
    let finished = match r.finished_at {
        Some(f) => {
            let ms = (f - r.started_at).num_milliseconds().max(0) as u64;
            format!("{} ({})", timestamp(&f), millis(ms))
        }
        None => "not finished".into(),
    };
    let pg = match &r.postgres {
        Some(p) => Text::plain(format!("PostgreSQL {} from ", p.version))
            .then_code(p.bin_dir.to_string_lossy())
            .then(format!(" ({})", p.source)),
        None => "PostgreSQL not located".into(),
    };
    let mut t = Table::new(&["", ""]);
    let rows: [(&str, Text); 10] = [
        ("verdict", verdict_cell(r.verdict)),
        ("seed", r.seed.to_string().into()),
        ("run", Text::code(&r.run_id)),
        ("run directory", Text::code(r.run_dir.to_string_lossy())),
        ("scenario", Text::code(r.scenario.path.to_string_lossy())),
        ("started", timestamp(&r.started_at).into()),
        ("finished", finished.into()),
        ("backend", r.backend.clone().into()),
        ("postgres", pg),
        ("pgrehearse", r.tool_version.clone().into()),
    ];
    for (k, v) in rows {
        t.row(vec![k.into(), v]);
    }
    let mut s = Section::new("Run");
    s.push(Block::Table(t));
    s
}

/// A table's outcome in a few words.
fn table_status(status: TableStatus, method: &CompareMethod) -> &'static str {
    match (status, method) {
        (TableStatus::Match, CompareMethod::RowMultiset) => "match (no key)",
        (TableStatus::Match, _) => "match",
        (TableStatus::Differ, _) => "DIFFER",
        (TableStatus::Error, _) => "ERROR",
    }
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

/// One comparison: each table's counts, the keys that differ, tables not compared, sequences
/// and schema drift.
fn verification(v: &VerifyReport) -> Section {
    let (a, c) = (&v.reference, &v.target);
    let mut s = Section::new(format!("Verification: {c} vs {a} — {}", upper(v.verdict)));
    if v.tables.is_empty() {
        s.para("No tables compared.");
    } else {
        let (ra, rc) = (format!(">rows {a}"), format!(">rows {c}"));
        let mut t = Table::new(&[
            "table", "status", &ra, &rc, ">missing", ">extra", ">changed",
        ]);
        for d in &v.tables {
            t.row(vec![
                Text::code(&d.table),
                table_status(d.status, &d.method).into(),
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
            TableStatus::Differ => keys.push(
                Text::code(&d.table).then(format!(": {}", differing_keys(d, str::to_string))),
            ),
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
    sequences(&mut s, v);
    if !v.schema.is_empty() {
        s.para("Schema drift:");
        let show = |t: Text, x: &Option<String>| match x {
            Some(x) => t.then_code(x),
            None => t.then(NONE),
        };
        s.push(Block::List(
            v.schema
                .iter()
                .map(|d| {
                    let t = Text::code(&d.object).then(format!(": {} ({a}: ", drift_words(d.kind)));
                    show(show(t, &d.reference).then(format!(", {c}: ")), &d.target).then(")")
                })
                .collect(),
        ));
    }
    s.para(format!("Compared in {}.", millis(v.elapsed_ms)));
    s
}

/// The sequences of one comparison, then why each kind of drift is expected (once each).
fn sequences(s: &mut Section, v: &VerifyReport) {
    if v.sequences.is_empty() {
        return;
    }
    let (a, c) = (&v.reference, &v.target);
    s.para("Sequences:");
    let (ra, rc) = (format!(">{a}"), format!(">{c}"));
    let mut t = Table::new(&["sequence", &ra, &rc, "status"]);
    let show = |x: Option<i64>| x.map_or(NONE.to_string(), |x| x.to_string());
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

/// The ledger check of acknowledged writes, node by node.
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
                    .then_strong(upper(l.verdict))
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

/// Each expectation judged, then the evidence of every one of them (numbers and times), the
/// passing ones too.
fn expectations(r: &Report) -> Section {
    let mut s = Section::new("Expectations");
    if r.expectations.is_empty() {
        s.para("None judged.");
        return s;
    }
    let mut t = Table::new(&["expectation", "verdict", "expected", "observed"]);
    for e in &r.expectations {
        t.row(vec![
            Text::code(&e.name),
            verdict_cell(e.verdict),
            e.expected.clone().into(),
            e.observed.clone().into(),
        ]);
    }
    s.push(Block::Table(t));
    s.para("Evidence:");
    s.push(Block::List(
        r.expectations
            .iter()
            .map(|e| Text::code(&e.name).then(format!(": {}", e.evidence)))
            .collect(),
    ));
    s
}

/// The report's notes and the observer's findings, when there are any.
fn notes(r: &Report) -> Option<Section> {
    let notes = super::notes::shown(r);
    if notes.is_empty() {
        return None;
    }
    let mut s = Section::new("Notes");
    s.push(Block::List(notes.into_iter().map(Text::plain).collect()));
    Some(s)
}

/// The sections for `report`, in reading order; none when nothing was observed.
pub(super) fn observed(r: &Report) -> Vec<Section> {
    let mut out = Vec::new();
    if let Some(obs) = &r.observations {
        out.push(faults(obs));
        out.push(lag(obs));
        out.push(wal(obs));
        if let Some(f) = &obs.failover {
            out.push(failover(f));
        }
        if let Some(rpo) = &obs.rpo {
            out.push(rpo_section(rpo));
        }
    }
    if let Some(i) = &r.idle_primary {
        out.push(idle_primary(i));
    }
    out
}

/// How long each phase of the run took.
pub(super) fn timings(r: &Report) -> Section {
    let ms = |v: Option<u64>| v.map_or("—".to_string(), millis);
    let c = r.chain.as_ref();
    let mut t = Table::new(&["phase", ">time"]);
    for (k, v) in [
        ("A and C created", ms(c.map(|c| c.primary_ms))),
        ("B cloned from A and caught up", ms(c.map(|c| c.standby_ms))),
        ("schema copied to C", ms(c.map(|c| c.schema_ms))),
        (
            "subscription and initial copy",
            ms(c.map(|c| c.replicate_ms)),
        ),
        ("workload", ms(r.workload.as_ref().map(|w| w.duration_ms))),
        ("catch-up after the workload (fence)", ms(r.catchup_ms)),
    ] {
        t.row(vec![k.into(), v.into()]);
    }
    let mut s = Section::new("Timings");
    s.push(Block::Table(t));
    s
}

/// What the workload did.
pub(super) fn workload(r: &Report) -> Section {
    let mut s = Section::new("Workload");
    let Some(w) = &r.workload else {
        s.para("No workload ran.");
        return s;
    };
    let target = w
        .target_rate
        .map_or("flat out".to_string(), |r| format!("target {r}/s"));
    s.para(format!(
        "{} ok · {} failed · {} unknown outcome in {}: {:.1} ops/s ({target}, {} connections, \
         workload seed {}); latency p50 {}, p99 {}.",
        w.ok,
        w.failed,
        w.unknown,
        millis(w.duration_ms),
        w.throughput,
        w.connections,
        w.seed,
        micros(w.latency_p50_us),
        micros(w.latency_p99_us),
    ));
    s
}

fn plot(file: &'static str) -> Block {
    let alt = PLOTS
        .iter()
        .find(|p| p.file == file)
        .map_or(file, |p| p.alt);
    Block::Plot { file, alt }
}

const NONE: &str = "—";

fn faults(obs: &Observations) -> Section {
    let mut s = Section::new("Faults");
    if obs.faults.is_empty() {
        s.para("No faults injected.");
    } else {
        let mut t = Table::new(&["kind", "description", "injected", "healed", "error"]);
        for f in &obs.faults {
            let injected = f.injected_ms.map_or("never".to_string(), at_u);
            let healed = match (f.healed_ms, f.injected_ms) {
                (Some(h), _) => at_u(h),
                (None, Some(_)) if one_shot(&f.kind) => "— (one-shot)".into(),
                (None, Some(_)) => "not healed".into(),
                (None, None) => NONE.into(),
            };
            let description = match &f.churn {
                Some(c) => format!("{} — {}", f.description, c.describe()),
                None => f.description.clone(),
            };
            t.row(vec![
                Text::code(&f.kind),
                description.into(),
                injected.into(),
                healed.into(),
                f.error.clone().unwrap_or_else(|| NONE.into()).into(),
            ]);
        }
        s.push(Block::Table(t));
    }
    if let Some(h) = obs.last_heal_ms {
        let then = match obs.convergence_ms {
            Some(c) => format!("c had applied everything {} later.", millis(c)),
            None => "no catch-up of c was measured after it.".into(),
        };
        s.para(format!("Last fault healed at {}; {then}", at(h)));
    }
    s
}

fn peak_cells(p: Option<Peak>, show: fn(f64) -> String) -> [Text; 2] {
    match p {
        Some(p) => [show(p.value).into(), at(p.at_ms).into()],
        None => [NONE.into(), NONE.into()],
    }
}

fn lag(obs: &Observations) -> Section {
    let mut s = Section::new("Lag");
    s.para(format!(
        "{}, one every {}. End-to-end lag comes from a heartbeat written on a and read on c \
         ({}). A hop with nothing to send reports no lag (NULL, not 0): those samples are gaps \
         in the plots.",
        count(obs.samples, "sample", "samples"),
        millis(obs.sample_every_ms),
        super::evaluate_faults::heartbeat_resolution(obs),
    ));
    let mut t = Table::new(&["hop", ">peak (bytes)", "at", ">peak (time)", "at"]);
    let p = &obs.peaks;
    for (hop, b, s) in [
        ("a → b", p.ab_bytes, p.ab_s),
        ("b → c", p.bc_bytes, p.bc_s),
        ("end to end", p.e2e_bytes, p.e2e_s),
    ] {
        let mut row = vec![Text::plain(hop)];
        row.extend(peak_cells(b, bytes));
        row.extend(peak_cells(s, secs));
        t.row(row);
    }
    s.push(Block::Table(t));
    s.push(plot("lag-seconds.svg"));
    s.push(plot("lag-bytes.svg"));
    s
}

/// "t=0.0s reserved → t=41.0s lost".
pub(super) fn status_timeline(slot: &SlotOutcome) -> String {
    slot.wal_status_changes
        .iter()
        .map(|(t, st)| format!("{} {st}", at(*t)))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The slot's fate in a few words: "usable at the end", "invalidated (wal_removed) at t=41.0s".
pub(super) fn slot_fate(slot: &SlotOutcome) -> String {
    let when = slot
        .invalidated_at_ms
        .map(|t| format!(" at {}", at(t)))
        .unwrap_or_default();
    match (&slot.invalidation_reason, slot.survived) {
        (Some(r), _) if slot.reason_inferred => {
            format!("invalidated ({r}, inferred: PostgreSQL 16 has no invalidation_reason){when}")
        }
        (Some(r), _) => format!("invalidated ({r}){when}"),
        (None, Some(false)) if slot.missing => {
            let since = slot
                .invalidated_at_ms
                .map(|t| format!(" since {}", at(t)))
                .unwrap_or_default();
            format!("missing on b (dropped?){since}")
        }
        (None, Some(false)) => format!("no longer usable{when}"),
        (None, Some(true)) => "usable at the end".into(),
        (None, None) => "fate not observed".into(),
    }
}

fn wal(obs: &Observations) -> Section {
    let mut s = Section::new("WAL retained");
    let p = &obs.peaks;
    let mut t = Table::new(&["what", ">peak", "at"]);
    for (what, peak) in [
        ("pg_wal on a", p.a_wal_bytes),
        ("pg_wal on b", p.b_wal_bytes),
        ("retained on a for b's physical slot", p.a_slot_retained),
        ("retained on b for c's logical slot", p.b_slot_retained),
    ] {
        let mut row = vec![Text::plain(what)];
        row.extend(peak_cells(peak, bytes));
        t.row(row);
    }
    s.push(Block::Table(t));
    match &obs.slot {
        None => s.para("The logical slot on b was not observed."),
        Some(slot) => {
            s.para(
                Text::plain("Logical slot ")
                    .then_code(&slot.slot)
                    .then(format!(" on b: {}.", slot_fate(slot))),
            );
            if !slot.wal_status_changes.is_empty() {
                s.para(
                    Text::code("wal_status")
                        .then(format!(" over the run: {}.", status_timeline(slot))),
                );
            }
            if slot.resync_needed {
                s.para(Text::strong("C needs a full resync").then(
                    ": the slot can no longer give c the changes it missed. Drop the \
                     subscription, create a new slot and copy the tables again.",
                ));
            }
        }
    }
    s.push(plot("wal.svg"));
    s
}

fn failover(f: &Failover) -> Section {
    let mut s = Section::new("Failover");
    let since = |t: i64| millis(u64::try_from(t - f.killed_ms).unwrap_or(0));
    let mut t = Table::new(&["event", "at", ">after a was killed"]);
    if let Some(w) = &f.last_write_on_a {
        let killed_us = u64::try_from(f.killed_ms).unwrap_or(0).saturating_mul(1000);
        t.row(vec![
            "last write acknowledged by a".into(),
            at_us(w.done_us).into(),
            format!(
                "{} before",
                millis(killed_us.saturating_sub(w.done_us) / 1000)
            )
            .into(),
        ]);
    }
    t.row(vec!["a killed".into(), at(f.killed_ms).into(), NONE.into()]);
    t.row(vec![
        "b promoted, accepting writes".into(),
        at(f.promoted_ms).into(),
        since(f.promoted_ms).into(),
    ]);
    let (first, after) = match f.first_write_on_b_ms {
        Some(w) => (at(w), since(w)),
        None => ("none".into(), NONE.into()),
    };
    t.row(vec![
        "first write acknowledged by b".into(),
        first.into(),
        after.into(),
    ]);
    s.push(Block::Table(t));
    s.para(format!(
        "Logical slot on b still active and not conflicting after the promotion: {}.",
        slot_after_promotion(f)
    ));
    s
}

/// What the samples after the promotion showed of the logical slot on b: "yes, first seen
/// active (a walsender consuming it) at t=6.1s, 1.1s after the promotion, and not invalidated
/// afterwards".
fn slot_after_promotion(f: &Failover) -> String {
    let active = f.slot_active_at_ms.map(|t| {
        format!(
            "first seen active (a walsender consuming it) at {}, {} after the promotion",
            at(t),
            millis(u64::try_from(t - f.promoted_ms).unwrap_or(0))
        )
    });
    match (f.slot_carried_on, active) {
        (Some(true), Some(a)) => format!("yes, {a}, and not invalidated afterwards"),
        (Some(false), Some(a)) => format!("no, {a}, but invalidated or dropped afterwards"),
        (Some(_), None) => "no, never seen active and usable in the samples after it".into(),
        (None, _) => "not observed, no sample after it saw b answer".into(),
    }
}

/// "t=9.812s": a ledger time (microseconds since the workload started), to the millisecond.
pub(super) fn at_us(us: u64) -> String {
    let ms = (us + 500) / 1000;
    format!("t={}.{:03}s", ms / 1000, ms % 1000)
}

/// "rehearse.accounts 17 update op=4411": one ledger write in a line.
pub(super) fn write_line(w: &WriteRef) -> String {
    format!("{} {} {} op={}", w.table, w.key, kind(w.kind), w.op)
}

fn kind(k: OpKind) -> &'static str {
    match k {
        OpKind::Insert => "insert",
        OpKind::Update => "update",
        OpKind::Delete => "delete",
    }
}

/// What the node's row for a write's key holds: "op=4410", "no row".
fn found(w: &WriteRef) -> String {
    w.found_op
        .map_or("no row".to_string(), |op| format!("op={op}"))
}

/// The first few lost writes, then how many more.
pub(super) fn lost_list(rpo: &Rpo, show: usize) -> Vec<String> {
    let mut items: Vec<String> = rpo.lost.iter().take(show).map(write_line).collect();
    let shown = items.len() as u64;
    if rpo.lost_writes > shown && shown > 0 {
        items.push(format!("… and {} more", rpo.lost_writes - shown));
    }
    items
}

/// Writes listed in the report's tables; report.json lists more.
const LISTED: usize = 20;

/// "… and 80 more (report.json lists 100)" under a table cut at [`LISTED`] rows.
fn more(total: u64, listed: usize) -> Option<String> {
    let shown = listed.min(LISTED) as u64;
    (total > shown).then(|| {
        if listed > LISTED {
            format!(
                "… and {} more (report.json lists the first {listed}).",
                total - shown
            )
        } else {
            format!("… and {} more.", total - shown)
        }
    })
}

fn rpo_section(rpo: &Rpo) -> Section {
    let mut s = Section::new("RPO");
    let node = &rpo.node;
    if let Some(ms) = rpo.judged_at_ms {
        s.para(format!(
            "Judged on {node}'s data as its promotion left it ({}), before any write reached \
             {node}, against every write sent to a: a write {node} never got counts as lost even \
             if a later write on {node} covered its key.",
            at(ms)
        ));
    }
    if rpo.lost_writes == 0 {
        s.para(format!(
            "No acknowledged write lost on {node}: every write a acknowledged is there."
        ));
    } else {
        s.para(format!(
            "At least {} on {node} ({}): a acknowledged them, and {node} does not have them \
             (writes whose effects cancel out, an insert and the delete of one key, are not \
             seen missing).",
            count(
                rpo.lost_writes,
                "acknowledged write lost",
                "acknowledged writes lost"
            ),
            count(rpo.lost_keys, "key", "keys"),
        ));
        let head = format!("{node}'s row");
        let mut t = Table::new(&[">op", "table", "key", "write", "acknowledged", &head]);
        for w in rpo.lost.iter().take(LISTED) {
            t.row(vec![
                w.op.to_string().into(),
                Text::code(&w.table),
                Text::code(&w.key),
                kind(w.kind).into(),
                at_us(w.done_us).into(),
                found(w).into(),
            ]);
        }
        s.push(Block::Table(t));
        if let Some(m) = more(rpo.lost_writes, rpo.lost.len()) {
            s.para(m);
        }
    }
    s.para(format!(
        "Writes with an unknown outcome (in flight when the connection broke): {} applied, {} not \
         applied, {} undetermined. Either is correct; they are not counted as lost.",
        rpo.unknown_applied, rpo.unknown_not_applied, rpo.unknown_undetermined
    ));
    if !rpo.unknown.is_empty() {
        let head = format!("on {node}");
        let mut t = Table::new(&[">op", "table", "key", "write", "sent", &head]);
        for w in rpo.unknown.iter().take(LISTED) {
            let fate = match w.applied {
                Some(true) => "applied",
                Some(false) => "not applied",
                None => "cannot tell",
            };
            t.row(vec![
                w.op.to_string().into(),
                Text::code(&w.table),
                Text::code(&w.key),
                kind(w.kind).into(),
                at_us(w.sent_us).into(),
                fate.into(),
            ]);
        }
        s.push(Block::Table(t));
        if let Some(m) = more(rpo.unknown_total(), rpo.unknown.len()) {
            s.para(m);
        }
    }
    s
}

fn idle_primary(i: &IdlePrimary) -> Section {
    let mut s = Section::new("Idle primary");
    let mut t = Table::new(&["step", "slot creation on b"]);
    t.row(vec![
        format!(
            "a idle and not nudged for {}",
            millis(i.waited_without_nudge_ms)
        )
        .into(),
        if i.still_waiting_after_idle_wait {
            "still waiting".into()
        } else if i.a_wrote_wal_during_wait {
            "completed, but a wrote WAL meanwhile (inconclusive)".into()
        } else {
            "completed without a nudge".into()
        },
    ]);
    if i.still_waiting_after_idle_wait {
        t.row(vec![
            Text::code("SELECT pg_log_standby_snapshot()").then(" on a"),
            match i.completed_after_nudge_ms {
                Some(ms) => format!("completed {} later", millis(ms)).into(),
                None => "still waiting".into(),
            },
        ]);
    }
    s.push(Block::Table(t));
    s.para(
        Text::plain(
            "Creating a logical slot on a standby waits for a running-xacts record from the \
             primary; the primary logs one at most every 15 s, and only after it wrote \
             something: an idle primary writes none. Run ",
        )
        .then_code("SELECT pg_log_standby_snapshot()")
        .then(" on a while the slot (and the slot each table sync creates for its copy) is being created."),
    );
    s
}
