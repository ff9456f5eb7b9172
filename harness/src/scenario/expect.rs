//! `[expect]`: what must hold at the end of the run for it to pass.

use std::time::Duration;

use serde_spanned::Spanned;

use super::raw::RawExpect;
use super::source::Source;
use super::values;
use super::{ChainPlan, ObservePlan, WorkloadPlan};
use crate::error::Result;
use crate::faults::FaultSpec;

/// The validated `[expect]` section. Each field is one expectation, evaluated by
/// [`crate::report::evaluate`]; new expectations are new fields here and a new arm there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// C equals the reference row for row, and no acknowledged write is lost.
    pub consistent: bool,
    /// Longest acceptable time from the end of the workload until C has applied everything.
    pub max_catchup: Option<Duration>,
    /// Sequences on C equal A's. Off by default: logical replication does not carry sequence
    /// values, so drift is the expected outcome until they are resynced at cutover.
    pub sequences_match: bool,
    /// Largest acceptable end-to-end lag (heartbeat written on A, read on C) at any time.
    pub max_e2e_lag: Option<Duration>,
    /// Some(true): the logical slot on B must be usable at the end. Some(false): it must not.
    pub slot_survives: Option<bool>,
    /// The slot must end invalidated for this reason ("wal_removed", "rows_removed",
    /// "wal_level_insufficient", "idle_timeout", or "any").
    pub slot_invalidated: Option<String>,
    /// At most this many acknowledged writes may be lost (the RPO, counted from the ledger).
    pub rpo_max_writes: Option<u64>,
    /// After every fault is healed and C has caught up, C equals the reference row for row
    /// (lost writes are judged by `rpo_max_writes`, not here).
    pub consistent_after_heal: bool,
    /// After the last heal, C must have caught up within this time.
    pub converges_within: Option<Duration>,
    /// With an idle primary, creating the slot on B must wait until A is nudged.
    pub slot_waits_for_nudge: bool,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            consistent: true,
            max_catchup: None,
            sequences_match: false,
            max_e2e_lag: None,
            slot_survives: None,
            slot_invalidated: None,
            rpo_max_writes: None,
            consistent_after_heal: false,
            converges_within: None,
            slot_waits_for_nudge: false,
        }
    }
}

/// The values `slot_invalidated` takes: PostgreSQL's invalidation reasons (17+; 18 adds
/// `idle_timeout`), or "any" for an invalidation whatever its reason (16 reports none).
pub const SLOT_INVALIDATION_REASONS: [&str; 5] = [
    "wal_removed",
    "rows_removed",
    "wal_level_insufficient",
    "idle_timeout",
    "any",
];

pub(super) fn validate(
    src: &Source,
    raw: Option<RawExpect>,
    chain: &ChainPlan,
    workload: &WorkloadPlan,
    faults: &[FaultSpec],
    observe: &ObservePlan,
) -> Result<Expectations> {
    let Some(raw) = raw else {
        return Ok(Expectations::default());
    };
    let defaults = Expectations::default();
    let duration = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<Duration>> {
        v.as_ref()
            .map(|v| values::duration(src, v, key))
            .transpose()
    };
    let slot_invalidated = match &raw.slot_invalidated {
        None => None,
        Some(v) => Some(slot_invalidated(src, v)?),
    };
    if let (Some(survives), Some(invalidated)) = (&raw.slot_survives, &raw.slot_invalidated)
        && *survives.get_ref()
    {
        // Point at whichever was written second: the first one stated the intent.
        let at = survives.span().start.max(invalidated.span().start);
        return Err(src
            .error(
                at..at,
                format!(
                    "slot_survives = true and slot_invalidated = {:?} contradict each other: the slot cannot both stay usable and end invalidated",
                    invalidated.get_ref()
                ),
            )
            .with_hint(
                "keep one; slot_survives = false only says the slot must end unusable",
            ));
    }
    let rpo_max_writes = match &raw.rpo_max_writes {
        None => None,
        Some(v) => Some(values::int_in(
            src,
            v,
            "rpo_max_writes",
            0..=i64::MAX,
            "the number of lost writes cannot be negative",
        )?),
    };
    if let Some(v) = &raw.rpo_max_writes
        && !workload.enabled
    {
        // The RPO is counted from the workload's ledger; nothing else writes one.
        return Err(src
            .error(
                v.span(),
                "rpo_max_writes counts the acknowledged writes lost, and with [workload] enabled = false nothing is written: it would always end unknown",
            )
            .with_hint("enable the workload, or remove rpo_max_writes"));
    }
    let converges_within = duration(&raw.converges_within, "converges_within")?;
    if let Some(v) = &raw.converges_within
        && !faults.iter().any(|f| !f.kind.one_shot())
    {
        let why = if faults.is_empty() {
            "this scenario has no faults"
        } else {
            "no fault here heals (checkpoint and primary_failure happen once)"
        };
        return Err(src
            .error(
                v.span(),
                format!(
                    "converges_within is timed from the last heal, and {why}: it would always end unknown"
                ),
            )
            .with_hint(
                "add a fault that heals, or use max_catchup (timed from the end of the workload)",
            ));
    }
    let max_e2e_lag = duration(&raw.max_e2e_lag, "max_e2e_lag")?;
    if let (Some(v), Some(limit)) = (&raw.max_e2e_lag, max_e2e_lag)
        && limit <= observe.heartbeat_every
    {
        // The heartbeat shows lag in steps of its period: a limit within one step can never be
        // shown to hold.
        return Err(src
            .error(
                v.span(),
                format!(
                    "max_e2e_lag = {:?} is not above heartbeat_every ({}): end-to-end lag is \
                     measured in steps of one heartbeat, so it could never be shown to stay \
                     within this limit",
                    v.get_ref(),
                    crate::util::fmt_duration(observe.heartbeat_every)
                ),
            )
            .with_hint(
                "raise max_e2e_lag, or lower heartbeat_every under [observe] (a few heartbeats \
                 within the limit)",
            ));
    }
    let slot_waits_for_nudge = match &raw.slot_waits_for_nudge {
        Some(v) if *v.get_ref() && !chain.idle_primary => {
            return Err(src
                .error(
                    v.span(),
                    "slot_waits_for_nudge = true needs an idle primary to wait on",
                )
                .with_hint("set idle_primary = true under [chain]"));
        }
        Some(v) => *v.get_ref(),
        None => defaults.slot_waits_for_nudge,
    };
    Ok(Expectations {
        consistent: raw.consistent.unwrap_or(defaults.consistent),
        max_catchup: duration(&raw.max_catchup, "max_catchup")?,
        sequences_match: raw.sequences_match.unwrap_or(defaults.sequences_match),
        max_e2e_lag,
        slot_survives: raw.slot_survives.map(Spanned::into_inner),
        slot_invalidated,
        rpo_max_writes,
        consistent_after_heal: raw
            .consistent_after_heal
            .unwrap_or(defaults.consistent_after_heal),
        converges_within,
        slot_waits_for_nudge,
    })
}

fn slot_invalidated(src: &Source, v: &Spanned<String>) -> Result<String> {
    let reason = v.get_ref().trim();
    if SLOT_INVALIDATION_REASONS.contains(&reason) {
        return Ok(reason.to_string());
    }
    Err(src
        .error(
            v.span(),
            format!(
                "slot_invalidated: unknown invalidation reason {:?}",
                v.get_ref()
            ),
        )
        .with_hint(format!(
            "use one of {}",
            SLOT_INVALIDATION_REASONS
                .map(|r| format!("\"{r}\""))
                .join(", ")
        )))
}
