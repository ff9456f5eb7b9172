//! `[observe]`: how often the chain is sampled while the rehearsal runs.

use std::time::Duration;

use serde_spanned::Spanned;

use super::raw::RawObserve;
use super::source::Source;
use super::values;
use crate::error::Result;

/// The validated `[observe]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservePlan {
    /// Period of the snapshots of every hop (lag, slots, subscription).
    pub sample_every: Duration,
    /// Period of the heartbeat row written on A and read on C (end-to-end lag).
    pub heartbeat_every: Duration,
}

impl Default for ObservePlan {
    fn default() -> Self {
        ObservePlan {
            sample_every: Duration::from_millis(250),
            heartbeat_every: Duration::from_millis(100),
        }
    }
}

/// Longest period accepted: a slower sample misses whole faults, which last seconds.
const MAX_PERIOD: Duration = Duration::from_secs(10);

/// Shortest period accepted: each sample is a round of queries on three servers and each
/// heartbeat a commit; a shorter period only runs them back to back, loading the chain it
/// measures (and the report's millisecond figures would read 0).
const MIN_PERIOD: Duration = Duration::from_millis(10);

pub(super) fn validate(src: &Source, raw: Option<RawObserve>) -> Result<ObservePlan> {
    let d = ObservePlan::default();
    let Some(raw) = raw else {
        return Ok(d);
    };
    Ok(ObservePlan {
        sample_every: period(src, raw.sample_every.as_ref(), "sample_every")?
            .unwrap_or(d.sample_every),
        heartbeat_every: period(src, raw.heartbeat_every.as_ref(), "heartbeat_every")?
            .unwrap_or(d.heartbeat_every),
    })
}

fn period(src: &Source, v: Option<&Spanned<String>>, key: &str) -> Result<Option<Duration>> {
    v.map(|v| {
        values::duration_in(
            src,
            v,
            key,
            MIN_PERIOD..=MAX_PERIOD,
            "the period must be at least 10ms and at most 10s",
        )
    })
    .transpose()
}
