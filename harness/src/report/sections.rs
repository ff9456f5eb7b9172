//! The report sections both formats share: timings, the workload, and what the chain did while
//! faults were applied (the faults and their windows, lag, WAL retained and the slot's fate,
//! failover timings, the RPO and slot creation on an idle primary). Built once, rendered as
//! Markdown and as HTML.

use super::charts::{PLOTS, one_shot};
use super::doc::{Block, Section, Table, Text};
use super::text::{at, at_u, bytes, count, micros, millis, secs};
use super::{IdlePrimary, Report};
use crate::observe::{Failover, Observations, Peak, Rpo, SlotOutcome};
use crate::workload::{OpKind, WriteRef};

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
        "{}, one every {}. End-to-end lag comes from a heartbeat written on a every {} and read \
         on c, so it is known to about {}. A hop with nothing to send reports no lag (NULL, not \
         0): those samples are gaps in the plots.",
        count(obs.samples, "sample", "samples"),
        millis(obs.sample_every_ms),
        millis(obs.heartbeat_every_ms),
        millis(obs.heartbeat_every_ms),
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
fn at_us(us: u64) -> String {
    let ms = (us + 500) / 1000;
    format!("t={}.{:03}s", ms / 1000, ms % 1000)
}

/// "rehearse.accounts 17 update op=4411": one ledger write in a line.
fn write_line(w: &WriteRef) -> String {
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
            "{} on {node} ({}): a acknowledged them, and {node} does not have them.",
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
