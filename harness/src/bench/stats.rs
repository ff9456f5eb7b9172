//! Summaries of repeated measurements.

/// Median of a non-empty list of milliseconds.
pub(super) fn median(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied().unwrap_or(0)
}
