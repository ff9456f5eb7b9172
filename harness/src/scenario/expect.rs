//! `[expect]`: what must hold at the end of the run for it to pass.

use std::time::Duration;

use super::raw::RawExpect;
use super::source::Source;
use super::values;
use crate::error::Result;

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

pub(super) fn validate(src: &Source, raw: Option<RawExpect>) -> Result<Expectations> {
    let Some(raw) = raw else {
        return Ok(Expectations::default());
    };
    let defaults = Expectations::default();
    let max_catchup = match &raw.max_catchup {
        None => None,
        Some(v) => Some(values::duration(src, v, "max_catchup")?),
    };
    Ok(Expectations {
        consistent: raw.consistent.unwrap_or(defaults.consistent),
        max_catchup,
        sequences_match: raw.sequences_match.unwrap_or(defaults.sequences_match),
        ..defaults
    })
}
