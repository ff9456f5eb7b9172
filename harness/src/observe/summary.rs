//! What a run observed, condensed for reports and expectations: the lag / WAL time series (one
//! point per sample), fault windows, peaks, the logical slot's fate, failover timings and the
//! RPO. Times are milliseconds since the workload started (negative: before it).

use std::time::Duration;

use crate::faults::FaultRecord;
use crate::workload::{LedgerJudgement, WriteRef};

/// One point of the time series.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesPoint {
    /// Milliseconds since the workload started.
    pub t_ms: i64,
    /// A → B lag in bytes (A's WAL position − B's replay position).
    pub ab_bytes: Option<u64>,
    /// A → B replay lag in seconds as A's pg_stat_replication reports it; None = idle/unknown.
    pub ab_s: Option<f64>,
    /// A → B write_lag in seconds (until B wrote the WAL); None = idle (NULL) or unknown.
    #[serde(default)]
    pub ab_write_s: Option<f64>,
    /// A → B flush_lag in seconds (until B flushed the WAL); None = idle (NULL) or unknown.
    #[serde(default)]
    pub ab_flush_s: Option<f64>,
    /// B → C lag in bytes (B's replayed position − the slot's confirmed_flush_lsn).
    pub bc_bytes: Option<u64>,
    /// B → C lag in seconds (B's walsender for the subscription); None = idle/unknown.
    pub bc_s: Option<f64>,
    /// End-to-end lag in bytes (A's WAL position − confirmed_flush_lsn on B).
    pub e2e_bytes: Option<u64>,
    /// End-to-end lag in seconds from the heartbeat (age of the oldest heartbeat C lacks).
    pub e2e_s: Option<f64>,
    /// Size of A's pg_wal.
    pub a_wal_bytes: Option<u64>,
    /// Size of B's pg_wal.
    pub b_wal_bytes: Option<u64>,
    /// WAL A retains for B's physical slot.
    pub a_slot_retained: Option<u64>,
    /// WAL B retains for C's logical slot.
    pub b_slot_retained: Option<u64>,
    /// Why `ab_s`, `bc_s` or `e2e_s` is missing (idle, not streaming, no heartbeat, unknown),
    /// per hop ("a→b", "b→c", "a→c"); only the hops without seconds.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub no_seconds: std::collections::BTreeMap<String, crate::observe::NoSeconds>,
    /// The logical slot's wal_status on B (reserved, extended, unreserved, lost), or
    /// "invalidated (<reason>)".
    pub b_slot_status: Option<String>,
}

/// A maximum and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Peak {
    /// The value (bytes or seconds, per field).
    pub value: f64,
    /// When, in ms since the workload started.
    pub at_ms: i64,
}

/// Maxima over the run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Peaks {
    /// A → B lag, bytes.
    pub ab_bytes: Option<Peak>,
    /// A → B lag, seconds.
    pub ab_s: Option<Peak>,
    /// B → C lag, bytes.
    pub bc_bytes: Option<Peak>,
    /// B → C lag, seconds.
    pub bc_s: Option<Peak>,
    /// End-to-end lag, bytes.
    pub e2e_bytes: Option<Peak>,
    /// End-to-end lag, seconds (heartbeat).
    pub e2e_s: Option<Peak>,
    /// pg_wal on A.
    pub a_wal_bytes: Option<Peak>,
    /// pg_wal on B.
    pub b_wal_bytes: Option<Peak>,
    /// WAL retained on A for B's physical slot.
    pub a_slot_retained: Option<Peak>,
    /// WAL retained on B for C's logical slot.
    pub b_slot_retained: Option<Peak>,
}

/// The fate of the logical slot on B that feeds C.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SlotOutcome {
    /// Slot name.
    pub slot: String,
    /// Still usable at the end; None when it could not be observed.
    pub survived: Option<bool>,
    /// PostgreSQL's invalidation_reason (17+: wal_removed, rows_removed,
    /// wal_level_insufficient; 18: idle_timeout); on 16, inferred from conflicting and
    /// wal_status (rows_removed, wal_removed), and `reason_inferred` says so.
    pub invalidation_reason: Option<String>,
    /// `invalidation_reason` was inferred, not reported: PostgreSQL 16 has no
    /// invalidation_reason column. Its wal_removed is exact (lost without a conflict can be
    /// nothing else on 16); its rows_removed stands for conflicting = true, which 16 also
    /// shows for wal_level_insufficient.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reason_inferred: bool,
    /// The slot was gone from b's pg_replication_slots at the end (dropped: by hand, by a
    /// DROP DATABASE on a, ...). Gone is not invalidated: PostgreSQL never said why.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
    /// When it was first seen invalidated / lost, or gone when `missing`.
    pub invalidated_at_ms: Option<i64>,
    /// Every wal_status change: (ms, status).
    pub wal_status_changes: Vec<(i64, String)>,
    /// C cannot continue from this slot and needs a full resync (new slot + initial copy).
    pub resync_needed: bool,
}

/// Primary failure timings.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Failover {
    /// A killed at (ms since workload start).
    pub killed_ms: i64,
    /// B accepting writes at.
    pub promoted_ms: i64,
    /// The logical slot on B carried on after the promotion: some sample after `promoted_ms`
    /// saw it active (a walsender consuming it), not conflicting and not lost, and no later
    /// sample saw it invalidated or gone. None when no sample after the promotion saw B.
    pub slot_carried_on: Option<bool>,
    /// When the logical slot was first seen active, not conflicting and not lost after the
    /// promotion (ms since workload start); None when no sample saw it so.
    #[serde(default)]
    pub slot_active_at_ms: Option<i64>,
    /// First write acknowledged by B after promotion.
    pub first_write_on_b_ms: Option<i64>,
    /// Until when A was handling a write before it was killed, whatever the outcome (µs on the
    /// ledger's timeline; the kill itself when a commit was still waiting; None: no write, or
    /// not read): a failover with nothing being written to A could lose nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_busy_until_us: Option<u64>,
    /// The last write A acknowledged before it was killed (None: none, or not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_write_on_a: Option<WriteRef>,
}

impl Failover {
    /// The failover timings, with whether the logical slot `logical_slot` on B carried on
    /// after the promotion judged from the samples (times relative to the workload start),
    /// not from its state at the end of the run: the first sample at or after `promoted_ms` in
    /// which B answered as a primary and showed the slot active, not conflicting and not lost
    /// sets `slot_active_at_ms`; a later sample showing it invalidated or dropped makes
    /// `slot_carried_on` false, as does B answering after the promotion without ever showing
    /// the slot so. Unknown (None) when no sample after the promotion saw B answer.
    pub fn from_samples(
        samples: &[crate::observe::Sample],
        logical_slot: &str,
        killed_ms: i64,
        promoted_ms: i64,
        first_write_on_b_ms: Option<i64>,
    ) -> Failover {
        let mut active_at: Option<i64> = None;
        let mut seen = false;
        let mut broken_after = false;
        for s in samples {
            let t = s.t_ms as i64;
            if t < promoted_ms {
                continue;
            }
            let Some(b) = s
                .node("b")
                .filter(|b| b.reachable && b.in_recovery == Some(false))
            else {
                continue;
            };
            seen = true;
            let usable = b
                .slots
                .iter()
                .find(|x| x.slot_name == logical_slot)
                .map(|x| (x.active, invalidation(x).is_none()));
            match usable {
                Some((true, true)) if active_at.is_none() => active_at = Some(t),
                Some((_, true)) => {}
                // Invalidated, lost, conflicting or dropped.
                Some((_, false)) | None => {
                    if active_at.is_some() {
                        broken_after = true;
                    }
                }
            }
        }
        let slot_carried_on = match (active_at, seen) {
            (Some(_), _) => Some(!broken_after),
            (None, true) => Some(false),
            (None, false) => None,
        };
        Failover {
            killed_ms,
            promoted_ms,
            slot_carried_on,
            slot_active_at_ms: active_at,
            first_write_on_b_ms,
            a_busy_until_us: None,
            last_write_on_a: None,
        }
    }
}

/// Writes A acknowledged that B (as its promotion left it, after a failover) or C (without a
/// failover) does not have.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rpo {
    /// Node checked.
    pub node: String,
    /// When the node's data was judged (ms since the workload started): after a failover, B's
    /// data as its promotion left it, before any write reached B. None: the node's data at the
    /// end of the run.
    #[serde(default)]
    pub judged_at_ms: Option<i64>,
    /// Acknowledged writes lost, counted one by one: at least this many (see
    /// [`LedgerJudgement::lost_writes`]).
    pub lost_writes: u64,
    /// Keys with at least one lost write.
    #[serde(default)]
    pub lost_keys: u64,
    /// The first lost writes (capped), in the order they were acknowledged.
    #[serde(default)]
    pub lost: Vec<WriteRef>,
    /// Writes whose outcome was unknown (in flight when A died), and what became of them.
    pub unknown_applied: u64,
    /// Unknown-outcome writes not applied.
    pub unknown_not_applied: u64,
    /// Unknown-outcome writes whose fate the node's data cannot tell.
    #[serde(default)]
    pub unknown_undetermined: u64,
    /// The first unknown-outcome writes (capped), in the order they were sent, each with
    /// whether it turned out applied.
    #[serde(default)]
    pub unknown: Vec<WriteRef>,
    /// Keys in a state no order of the ledger's writes explains: their lost writes cannot be
    /// counted, so the RPO is not known exactly while there are any.
    #[serde(default)]
    pub unexplained_keys: u64,
}

impl Rpo {
    /// The RPO a ledger judgement of one node's data shows, judged at `judged_at_ms` (None: at
    /// the end of the run).
    pub fn from_judgement(j: &LedgerJudgement, judged_at_ms: Option<i64>) -> Rpo {
        Rpo {
            node: j.check.node.clone(),
            judged_at_ms,
            lost_writes: j.lost_writes,
            lost_keys: j.check.lost.count,
            lost: j.lost.clone(),
            unknown_applied: j.check.unknown_applied,
            unknown_not_applied: j.check.unknown_not_applied,
            unknown_undetermined: j.unknown_undetermined(),
            unknown: j.unknown.clone(),
            unexplained_keys: j.check.unexplained.count,
        }
    }

    /// Unknown-outcome writes, whatever became of them.
    pub fn unknown_total(&self) -> u64 {
        self.unknown_applied + self.unknown_not_applied + self.unknown_undetermined
    }
}

/// Everything observed, for the report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Observations {
    /// Sampling period.
    pub sample_every_ms: u64,
    /// Heartbeat period asked for.
    pub heartbeat_every_ms: u64,
    /// Mean time between the heartbeats the primary actually committed (None: not recorded, or
    /// fewer than two committed). Longer than `heartbeat_every_ms` when each commit waits
    /// (synchronous replication over a slow link, a paused node): the end-to-end lag is then
    /// only known to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_gap_ms: Option<u64>,
    /// Samples actually taken.
    pub samples: u64,
    /// The time series.
    pub series: Vec<SeriesPoint>,
    /// Fault windows.
    pub faults: Vec<FaultRecord>,
    /// Maxima.
    pub peaks: Peaks,
    /// The logical slot's fate.
    pub slot: Option<SlotOutcome>,
    /// Primary failure, if one was injected.
    pub failover: Option<Failover>,
    /// Lost writes by the ledger.
    pub rpo: Option<Rpo>,
    /// Time from the last heal until C had applied everything (None: never, or no fault).
    pub convergence_ms: Option<u64>,
    /// When the last fault was healed (ms since workload start).
    pub last_heal_ms: Option<i64>,
    /// Plain statements of what PostgreSQL did that the user should know.
    pub findings: Vec<String>,
}

impl Observations {
    /// How finely the end-to-end lag is known: the gap between heartbeats achieved, never
    /// finer than the period asked for.
    pub fn e2e_resolution_ms(&self) -> u64 {
        self.heartbeat_gap_ms
            .unwrap_or(0)
            .max(self.heartbeat_every_ms)
    }

    /// Worst end-to-end lag seen.
    pub fn max_e2e_lag(&self) -> Option<Duration> {
        self.peaks
            .e2e_s
            .map(|p| Duration::from_secs_f64(p.value.max(0.0)))
    }
}

/// The logical slot's status in one sample: wal_status, or "invalidated (<reason>)".
fn slot_status(s: &crate::observe::SlotRow) -> String {
    match (&s.invalidation_reason, s.conflicting) {
        (Some(r), _) => format!("invalidated ({r})"),
        (None, Some(true)) => "invalidated (rows_removed)".into(),
        _ => s.wal_status.clone().unwrap_or_else(|| "unknown".into()),
    }
}

/// A usable slot seen at most this long before the last sample shows it survived; an older
/// sight of it (B unreachable since) proves nothing about the end.
const SURVIVAL_EVIDENCE_MS: u64 = 2_000;

/// Why a slot is unusable, from what the view shows, and whether that was inferred.
/// PostgreSQL 17+ names it in invalidation_reason. On 16, conflicting = true means
/// rows_removed or wal_level_insufficient; the chain keeps A at wal_level = logical throughout
/// (a lower one fails at slot creation on B), so it is taken for rows_removed. wal_status =
/// lost without a conflict can only be wal_removed there (16 has no other cause).
fn invalidation(s: &crate::observe::SlotRow) -> Option<(String, bool)> {
    if let Some(r) = &s.invalidation_reason {
        return Some((r.clone(), false));
    }
    if s.conflicting == Some(true) {
        return Some(("rows_removed".into(), true));
    }
    (s.wal_status.as_deref() == Some("lost")).then(|| ("wal_removed".into(), true))
}

fn peak_u64<'a>(pts: impl Iterator<Item = (i64, Option<u64>)> + 'a) -> Option<Peak> {
    peak_f64(pts.map(|(t, v)| (t, v.map(|v| v as f64))))
}

fn peak_f64<'a>(pts: impl Iterator<Item = (i64, Option<f64>)> + 'a) -> Option<Peak> {
    pts.filter_map(|(t, v)| v.map(|v| Peak { value: v, at_ms: t }))
        .fold(None, |acc: Option<Peak>, p| match acc {
            Some(a) if a.value >= p.value => Some(a),
            _ => Some(p),
        })
}

impl Observations {
    /// Condense samples (times relative to the workload start) into the time series, peaks and
    /// the fate of `logical_slot` on B. `physical_slot` names A's slot for B, if any.
    pub fn from_samples(
        samples: &[crate::observe::Sample],
        logical_slot: &str,
        physical_slot: Option<&str>,
        sample_every: Duration,
        heartbeat_every: Duration,
    ) -> Observations {
        let mut series = Vec::with_capacity(samples.len());
        let mut slot = SlotOutcome {
            slot: logical_slot.to_string(),
            ..Default::default()
        };
        let mut last_status: Option<String> = None;
        let mut seen_slot = false;
        let mut slot_missing_at: Option<i64> = None;
        for s in samples {
            let t = s.t_ms as i64;
            let lag = |h: &str| s.lag(h).cloned().unwrap_or_default();
            let (ab, bc, e2e) = (lag("a→b"), lag("b→c"), lag("a→c"));
            let a = s.node("a");
            let b = s.node("b");
            let a_slot = a.and_then(|a| {
                physical_slot.and_then(|p| a.slots.iter().find(|x| x.slot_name == p))
            });
            let a_sender = a.and_then(|a| a.sender("b"));
            let b_slot = b
                .filter(|b| b.reachable)
                .and_then(|b| b.slots.iter().find(|x| x.slot_name == logical_slot));
            let status = b_slot.map(slot_status);
            if let Some(bs) = b_slot {
                seen_slot = true;
                slot_missing_at = None;
                if let Some((reason, inferred)) = invalidation(bs)
                    && slot.invalidation_reason.is_none()
                {
                    slot.invalidation_reason = Some(reason);
                    slot.reason_inferred = inferred;
                    slot.invalidated_at_ms = Some(t);
                }
            } else if seen_slot && b.is_some_and(|b| b.reachable) && slot_missing_at.is_none() {
                slot_missing_at = Some(t);
            }
            if status.is_some() && status != last_status {
                slot.wal_status_changes
                    .push((t, status.clone().unwrap_or_default()));
                last_status = status.clone();
            }
            series.push(SeriesPoint {
                t_ms: t,
                ab_bytes: ab.bytes,
                ab_s: ab.seconds,
                ab_write_s: a_sender.and_then(|w| w.write_lag_s),
                ab_flush_s: a_sender.and_then(|w| w.flush_lag_s),
                bc_bytes: bc.bytes,
                bc_s: bc.seconds,
                e2e_bytes: e2e.bytes,
                e2e_s: e2e.seconds,
                a_wal_bytes: a.and_then(|n| n.wal_bytes),
                b_wal_bytes: b.and_then(|n| n.wal_bytes),
                a_slot_retained: a_slot.and_then(|x| x.retained_bytes),
                b_slot_retained: b_slot.and_then(|x| x.retained_bytes),
                no_seconds: [ab, bc, e2e]
                    .iter()
                    .filter(|h| h.seconds.is_none())
                    .filter_map(|h| h.why_no_seconds.map(|w| (h.hop.clone(), w)))
                    .collect(),
                b_slot_status: status,
            });
        }
        // The last sample in which B answered decides whether the slot is still there. A lost
        // slot stays lost, so an old sample showing it lost is evidence; one showing it usable
        // is only evidence if it was taken near the end.
        let end_ms = samples.last().map_or(0, |s| s.t_ms);
        let last_b = samples
            .iter()
            .rev()
            .filter_map(|s| s.node("b").map(|b| (s.t_ms, b)))
            .find(|(_, b)| b.reachable);
        slot.survived = last_b.and_then(|(t, b)| {
            let usable = match b.slots.iter().find(|x| x.slot_name == logical_slot) {
                Some(x) => invalidation(x).is_none(),
                None => false,
            };
            (!usable || t + SURVIVAL_EVIDENCE_MS >= end_ms).then_some(usable)
        });
        if slot.survived == Some(false) && slot.invalidation_reason.is_none() {
            slot.missing = true;
            slot.invalidated_at_ms = slot_missing_at;
        }
        slot.resync_needed = slot.survived == Some(false);
        let pts = &series;
        let peaks = Peaks {
            ab_bytes: peak_u64(pts.iter().map(|p| (p.t_ms, p.ab_bytes))),
            ab_s: peak_f64(pts.iter().map(|p| (p.t_ms, p.ab_s))),
            bc_bytes: peak_u64(pts.iter().map(|p| (p.t_ms, p.bc_bytes))),
            bc_s: peak_f64(pts.iter().map(|p| (p.t_ms, p.bc_s))),
            e2e_bytes: peak_u64(pts.iter().map(|p| (p.t_ms, p.e2e_bytes))),
            e2e_s: peak_f64(pts.iter().map(|p| (p.t_ms, p.e2e_s))),
            a_wal_bytes: peak_u64(pts.iter().map(|p| (p.t_ms, p.a_wal_bytes))),
            b_wal_bytes: peak_u64(pts.iter().map(|p| (p.t_ms, p.b_wal_bytes))),
            a_slot_retained: peak_u64(pts.iter().map(|p| (p.t_ms, p.a_slot_retained))),
            b_slot_retained: peak_u64(pts.iter().map(|p| (p.t_ms, p.b_slot_retained))),
        };
        Observations {
            sample_every_ms: sample_every.as_millis() as u64,
            heartbeat_every_ms: heartbeat_every.as_millis() as u64,
            samples: samples.len() as u64,
            series,
            peaks,
            slot: (!samples.is_empty()).then_some(slot),
            ..Default::default()
        }
    }
}

/// A hop whose lag in seconds comes from its upstream's pg_stat_replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagHop {
    /// A's walsender for B.
    AB,
    /// B's walsender for C's subscription.
    BC,
}

impl LagHop {
    /// (seconds shown, bytes behind) of this hop in `p`.
    fn of(self, p: &SeriesPoint) -> (Option<f64>, Option<u64>) {
        match self {
            LagHop::AB => (p.ab_s, p.ab_bytes),
            LagHop::BC => (p.bc_s, p.bc_bytes),
        }
    }
}

/// A stretch where a hop's replay_lag stood still while its downstream fell further behind in
/// bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrozenLag {
    /// When the column stopped moving.
    pub from_ms: i64,
    /// The last sample with the same value while the bytes kept growing.
    pub to_ms: i64,
    /// The value it kept showing, in seconds.
    pub shown_s: f64,
    /// How far behind B was in bytes at the end of the stretch.
    pub behind_bytes: u64,
}

/// The longest stretch (at least `min`) in which `hop`'s replay_lag kept one value while its
/// byte lag grew. PostgreSQL updates the lag columns only when the downstream replies: a
/// stalled stream (lost replies, a hung link) shows the last lag measured, however long the
/// stall.
pub fn frozen_lag(series: &[SeriesPoint], hop: LagHop, min: Duration) -> Option<FrozenLag> {
    let mut best: Option<FrozenLag> = None;
    let mut cur: Option<FrozenLag> = None;
    for w in series.windows(2) {
        let ((ps, pb), (qs, qb)) = (hop.of(&w[0]), hop.of(&w[1]));
        let frozen = matches!((ps, qs), (Some(a), Some(b)) if a == b)
            && matches!((pb, qb), (Some(a), Some(b)) if b > a);
        cur = match (frozen, cur) {
            (true, Some(c)) => Some(FrozenLag {
                to_ms: w[1].t_ms,
                behind_bytes: qb.unwrap_or(0),
                ..c
            }),
            (true, None) => Some(FrozenLag {
                from_ms: w[0].t_ms,
                to_ms: w[1].t_ms,
                shown_s: qs.unwrap_or(0.0),
                behind_bytes: qb.unwrap_or(0),
            }),
            (false, _) => None,
        };
        if let Some(c) = cur
            && best.is_none_or(|b| c.to_ms - c.from_ms > b.to_ms - b.from_ms)
        {
            best = Some(c);
        }
    }
    best.filter(|b| b.to_ms - b.from_ms >= min.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{NodeSnapshot, Sample, SlotRow, WalSenderRow};

    const SLOT: &str = "pgrehearse_sub";

    /// B as a sample shows it: a primary once promoted, with the logical slot in the given
    /// state (None: no such slot).
    fn b(promoted: bool, slot: Option<SlotRow>) -> NodeSnapshot {
        NodeSnapshot {
            name: "b".into(),
            reachable: true,
            in_recovery: Some(!promoted),
            slots: slot.into_iter().collect(),
            ..Default::default()
        }
    }

    fn slot(active: bool) -> SlotRow {
        SlotRow {
            slot_name: SLOT.into(),
            slot_type: "logical".into(),
            active,
            wal_status: Some("reserved".into()),
            conflicting: Some(false),
            ..Default::default()
        }
    }

    fn sample(t_ms: u64, nodes: Vec<NodeSnapshot>) -> Sample {
        Sample {
            t_ms,
            nodes,
            lags: vec![],
            heartbeat_seq_on_c: None,
            heartbeat_read_ms: None,
        }
    }

    fn judge(samples: &[Sample]) -> (Option<bool>, Option<i64>) {
        let f = Failover::from_samples(samples, SLOT, 1_000, 2_000, None);
        assert_eq!((f.killed_ms, f.promoted_ms), (1_000, 2_000));
        (f.slot_carried_on, f.slot_active_at_ms)
    }

    fn unreachable_b() -> NodeSnapshot {
        NodeSnapshot {
            name: "b".into(),
            error: Some("connection refused".into()),
            ..Default::default()
        }
    }

    #[test]
    fn slot_carried_on_needs_an_active_usable_slot_after_the_promotion() {
        // Active before the promotion only, then inactive on the promoted b, active again.
        let samples = [
            sample(500, vec![b(false, Some(slot(true)))]),
            sample(2_250, vec![b(true, Some(slot(false)))]),
            sample(2_500, vec![unreachable_b()]),
            sample(2_750, vec![b(true, Some(slot(true)))]),
            sample(3_000, vec![b(true, Some(slot(false)))]),
        ];
        assert_eq!(judge(&samples), (Some(true), Some(2_750)));
    }

    #[test]
    fn a_sample_taken_before_the_promotion_does_not_count() {
        // Active in a sample before promoted_ms (b still a standby, or the promotion not yet
        // acknowledged), and never again.
        let samples = [
            sample(1_500, vec![b(false, Some(slot(true)))]),
            sample(1_900, vec![b(true, Some(slot(true)))]),
            sample(2_250, vec![b(true, Some(slot(false)))]),
        ];
        assert_eq!(judge(&samples), (Some(false), None));
    }

    #[test]
    fn a_conflicting_or_lost_slot_does_not_carry_on() {
        let conflicting = SlotRow {
            conflicting: Some(true),
            ..slot(true)
        };
        assert_eq!(
            judge(&[sample(2_250, vec![b(true, Some(conflicting))])]),
            (Some(false), None)
        );
        let lost = SlotRow {
            wal_status: Some("lost".into()),
            ..slot(true)
        };
        assert_eq!(
            judge(&[sample(2_250, vec![b(true, Some(lost))])]),
            (Some(false), None)
        );
    }

    #[test]
    fn invalidated_or_dropped_afterwards_is_not_carried_on() {
        let invalidated = SlotRow {
            invalidation_reason: Some("wal_removed".into()),
            wal_status: Some("lost".into()),
            ..slot(false)
        };
        let samples = [
            sample(2_250, vec![b(true, Some(slot(true)))]),
            sample(4_000, vec![b(true, Some(invalidated))]),
        ];
        assert_eq!(judge(&samples), (Some(false), Some(2_250)));
        let samples = [
            sample(2_250, vec![b(true, Some(slot(true)))]),
            sample(4_000, vec![b(true, None)]),
        ];
        assert_eq!(judge(&samples), (Some(false), Some(2_250)));
    }

    #[test]
    fn no_sample_of_b_after_the_promotion_is_unknown() {
        assert_eq!(judge(&[]), (None, None));
        let samples = [
            sample(500, vec![b(false, Some(slot(true)))]),
            sample(2_250, vec![unreachable_b()]),
            sample(2_500, vec![]),
        ];
        assert_eq!(judge(&samples), (None, None));
    }

    #[test]
    fn a_usable_slot_seen_long_before_the_end_is_no_evidence_it_survived() {
        let survived = |samples: &[Sample]| outcome(samples).survived;
        let lost = SlotRow {
            wal_status: Some("lost".into()),
            ..slot(false)
        };
        // Seen usable at the end: survived.
        let fresh = [sample(0, vec![b(false, Some(slot(true)))])];
        assert_eq!(survived(&fresh), Some(true));
        // Seen usable, then B never answered again for 10 s: unknown.
        let stale = [
            sample(0, vec![b(false, Some(slot(true)))]),
            sample(10_000, vec![unreachable_b()]),
        ];
        assert_eq!(survived(&stale), None);
        // Within the last 2 s: still evidence.
        let recent = [
            sample(8_000, vec![b(false, Some(slot(true)))]),
            sample(10_000, vec![unreachable_b()]),
        ];
        assert_eq!(survived(&recent), Some(true));
        // Seen lost, however long ago: a lost slot stays lost.
        let gone = [
            sample(0, vec![b(false, Some(lost))]),
            sample(10_000, vec![unreachable_b()]),
        ];
        assert_eq!(survived(&gone), Some(false));
    }

    fn outcome(samples: &[Sample]) -> SlotOutcome {
        Observations::from_samples(
            samples,
            SLOT,
            None,
            Duration::from_millis(250),
            Duration::from_millis(100),
        )
        .slot
        .unwrap()
    }

    #[test]
    fn a_slot_that_disappears_is_missing_not_invalidated() {
        let o = outcome(&[
            sample(0, vec![b(false, Some(slot(true)))]),
            sample(1_000, vec![b(false, None)]),
        ]);
        assert_eq!(
            (o.survived, o.missing, o.invalidation_reason.as_deref()),
            (Some(false), true, None)
        );
        assert_eq!((o.invalidated_at_ms, o.resync_needed), (Some(1_000), true));
        // Invalidated first, then dropped: the invalidation is what happened.
        let lost = SlotRow {
            invalidation_reason: Some("wal_removed".into()),
            wal_status: Some("lost".into()),
            ..slot(false)
        };
        let o = outcome(&[
            sample(0, vec![b(false, Some(lost))]),
            sample(1_000, vec![b(false, None)]),
        ]);
        assert!(!o.missing);
        assert_eq!(o.invalidation_reason.as_deref(), Some("wal_removed"));
    }

    #[test]
    fn on_postgresql_16_the_reason_is_marked_inferred() {
        // 16: no invalidation_reason column (NULL), conflicting and wal_status only.
        let conflicting = SlotRow {
            conflicting: Some(true),
            wal_status: Some("lost".into()),
            ..slot(false)
        };
        let o = outcome(&[sample(0, vec![b(false, Some(conflicting))])]);
        assert_eq!(o.invalidation_reason.as_deref(), Some("rows_removed"));
        assert!(o.reason_inferred);
        let lost = SlotRow {
            wal_status: Some("lost".into()),
            ..slot(false)
        };
        let o = outcome(&[sample(0, vec![b(false, Some(lost))])]);
        assert_eq!(o.invalidation_reason.as_deref(), Some("wal_removed"));
        assert!(o.reason_inferred);
        // 17+: reported.
        let reported = SlotRow {
            conflicting: Some(true),
            invalidation_reason: Some("rows_removed".into()),
            wal_status: Some("lost".into()),
            ..slot(false)
        };
        let o = outcome(&[sample(0, vec![b(false, Some(reported))])]);
        assert_eq!(o.invalidation_reason.as_deref(), Some("rows_removed"));
        assert!(!o.reason_inferred);
    }

    #[test]
    fn series_keeps_ab_write_and_flush_lag_with_null_as_none() {
        let a = |w: Option<f64>, f: Option<f64>| NodeSnapshot {
            name: "a".into(),
            reachable: true,
            in_recovery: Some(false),
            senders: vec![WalSenderRow {
                application_name: "b".into(),
                write_lag_s: w,
                flush_lag_s: f,
                replay_lag_s: f.map(|f| f + 0.001),
                ..Default::default()
            }],
            ..Default::default()
        };
        let samples = [
            sample(0, vec![a(Some(0.001), Some(0.002))]),
            sample(250, vec![a(None, None)]),
            sample(
                500,
                vec![NodeSnapshot {
                    name: "a".into(),
                    error: Some("gone".into()),
                    ..Default::default()
                }],
            ),
        ];
        let o = Observations::from_samples(
            &samples,
            SLOT,
            None,
            Duration::from_millis(250),
            Duration::from_millis(200),
        );
        let got: Vec<_> = o
            .series
            .iter()
            .map(|p| (p.ab_write_s, p.ab_flush_s))
            .collect();
        assert_eq!(
            got,
            [(Some(0.001), Some(0.002)), (None, None), (None, None)]
        );
    }

    #[test]
    fn a_replay_lag_that_stands_still_while_bytes_grow_is_found() {
        let pt = |t_ms, ab_s, ab_bytes| SeriesPoint {
            t_ms,
            ab_s: Some(ab_s),
            ab_bytes: Some(ab_bytes),
            ..Default::default()
        };
        let series = vec![
            pt(0, 0.001, 0),
            pt(250, 0.013, 50_000),
            pt(500, 0.013, 90_000),
            pt(750, 0.013, 140_000),
            pt(1000, 0.013, 200_000),
            pt(1250, 0.002, 0),
        ];
        let f = frozen_lag(&series, LagHop::AB, Duration::from_millis(500)).unwrap();
        assert_eq!(
            (f.from_ms, f.to_ms, f.shown_s, f.behind_bytes),
            (250, 1000, 0.013, 200_000)
        );
        assert_eq!(
            frozen_lag(&series, LagHop::AB, Duration::from_secs(1)),
            None
        );
        assert_eq!(frozen_lag(&series, LagHop::BC, Duration::ZERO), None);
        // The same value with nothing falling behind is an idle, caught-up standby.
        let idle = vec![pt(0, 0.01, 0), pt(250, 0.01, 0), pt(500, 0.01, 0)];
        assert_eq!(frozen_lag(&idle, LagHop::AB, Duration::ZERO), None);
        // B → C the same way: B's walsender for C keeps its last value while C falls behind.
        let bc: Vec<SeriesPoint> = series
            .iter()
            .map(|p| SeriesPoint {
                t_ms: p.t_ms,
                bc_s: p.ab_s,
                bc_bytes: p.ab_bytes,
                ..Default::default()
            })
            .collect();
        let f = frozen_lag(&bc, LagHop::BC, Duration::from_millis(500)).unwrap();
        assert_eq!((f.from_ms, f.to_ms, f.shown_s), (250, 1000, 0.013));
    }
}
