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
    /// wal_level_insufficient; 18: idle_timeout), or "invalidated" on 16.
    pub invalidation_reason: Option<String>,
    /// When it was first seen invalidated / lost.
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
    /// The logical slot was still active and not conflicting after promotion.
    pub slot_carried_on: Option<bool>,
    /// First write acknowledged by B after promotion.
    pub first_write_on_b_ms: Option<i64>,
}

/// Writes A acknowledged that the reference (B after failover, or C) does not have.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rpo {
    /// Node checked.
    pub node: String,
    /// When the node's data was judged (ms since the workload started): after a failover, B's
    /// data as its promotion left it, before any write reached B. None: the node's data at the
    /// end of the run.
    #[serde(default)]
    pub judged_at_ms: Option<i64>,
    /// Acknowledged writes lost, counted one by one (exact).
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
    /// Heartbeat period: the resolution of the end-to-end lag.
    pub heartbeat_every_ms: u64,
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

/// Why a slot is unusable, from what the view shows. PostgreSQL 17+ names it in
/// invalidation_reason; on 16, conflicting = true means a recovery conflict (rows_removed) and
/// wal_status = lost without a conflict means its WAL was removed.
fn invalidation(s: &crate::observe::SlotRow) -> Option<String> {
    if let Some(r) = &s.invalidation_reason {
        return Some(r.clone());
    }
    if s.conflicting == Some(true) {
        return Some("rows_removed".into());
    }
    (s.wal_status.as_deref() == Some("lost")).then(|| "wal_removed".into())
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
            let b_slot = b
                .filter(|b| b.reachable)
                .and_then(|b| b.slots.iter().find(|x| x.slot_name == logical_slot));
            let status = b_slot.map(slot_status);
            if let Some(bs) = b_slot {
                seen_slot = true;
                slot_missing_at = None;
                if let Some(reason) = invalidation(bs)
                    && slot.invalidation_reason.is_none()
                {
                    slot.invalidation_reason = Some(reason);
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
                bc_bytes: bc.bytes,
                bc_s: bc.seconds,
                e2e_bytes: e2e.bytes,
                e2e_s: e2e.seconds,
                a_wal_bytes: a.and_then(|n| n.wal_bytes),
                b_wal_bytes: b.and_then(|n| n.wal_bytes),
                a_slot_retained: a_slot.and_then(|x| x.retained_bytes),
                b_slot_retained: b_slot.and_then(|x| x.retained_bytes),
                b_slot_status: status,
            });
        }
        // The last sample in which B answered decides whether the slot is still there.
        let last_b = samples
            .iter()
            .rev()
            .filter_map(|s| s.node("b"))
            .find(|b| b.reachable);
        slot.survived =
            last_b.map(
                |b| match b.slots.iter().find(|x| x.slot_name == logical_slot) {
                    Some(x) => invalidation(x).is_none(),
                    None => false,
                },
            );
        if slot.survived == Some(false) && slot.invalidation_reason.is_none() {
            slot.invalidation_reason = Some("dropped".into());
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
