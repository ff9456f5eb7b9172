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
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            consistent: true,
            max_catchup: None,
            sequences_match: false,
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
    })
}
