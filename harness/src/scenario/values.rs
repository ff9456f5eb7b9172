//! Checks shared by several sections: durations, seeds, bounded integers, paths.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_spanned::Spanned;

use super::source::Source;
use crate::error::Result;

/// A humantime duration ("30s", "2m", "500ms").
pub(super) fn duration(src: &Source, v: &Spanned<String>, key: &str) -> Result<Duration> {
    let d = humantime::parse_duration(v.get_ref().trim()).map_err(|e| {
        src.error(
            v.span(),
            format!("{key}: invalid duration {:?}: {e}", v.get_ref()),
        )
        .with_hint("durations look like \"30s\", \"2m\", \"1m30s\" or \"500ms\"")
    })?;
    // Clocks are added to these: an absurd one must be an error here, not an overflow later.
    if d > MAX_DURATION {
        return Err(src.error(
            v.span(),
            format!("{key} = {:?}: at most 365 days", v.get_ref()),
        ));
    }
    Ok(d)
}

/// The longest duration a scenario may name.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration within `range`, with `why` naming the rule.
pub(super) fn duration_in(
    src: &Source,
    v: &Spanned<String>,
    key: &str,
    range: std::ops::RangeInclusive<Duration>,
    why: &str,
) -> Result<Duration> {
    let d = duration(src, v, key)?;
    if !range.contains(&d) {
        return Err(src.error(v.span(), format!("{key} = {:?}: {why}", v.get_ref())));
    }
    Ok(d)
}

/// A duration above zero: for periods and delays, where zero would mean "spin" or "nothing".
pub(super) fn positive_duration(
    src: &Source,
    v: &Spanned<String>,
    key: &str,
    why: &str,
) -> Result<Duration> {
    duration_in(src, v, key, Duration::from_nanos(1)..=Duration::MAX, why)
}

/// A seed: an integer from 0 to [`super::MAX_SEED`], also as a string of digits, which files
/// written when seeds could exceed TOML's integer range still hold.
pub(super) fn seed(src: &Source, v: &Spanned<toml::Value>, key: &str) -> Result<u64> {
    let bad = |what: &str| {
        src.error(
            v.span(),
            format!("{key} must be a non-negative integer, found {what}"),
        )
    };
    let seed = match v.get_ref() {
        toml::Value::Integer(i) => u64::try_from(*i).map_err(|_| bad(&i.to_string()))?,
        toml::Value::String(s) => s.parse::<u64>().map_err(|_| bad(&format!("{s:?}")))?,
        other => return Err(bad(other.type_str())),
    };
    match super::seed_too_large(seed) {
        Some(why) => Err(src.error(v.span(), format!("{key} = {seed}: {why}"))),
        None => Ok(seed),
    }
}

/// An integer within `range`, with `why` naming the rule.
pub(super) fn int_in<T: TryFrom<i64>>(
    src: &Source,
    v: &Spanned<i64>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
    why: &str,
) -> Result<T> {
    let n = *v.get_ref();
    if !range.contains(&n) {
        return Err(src.error(v.span(), format!("{key} = {n}: {why}")));
    }
    T::try_from(n).map_err(|_| src.error(v.span(), format!("{key} = {n}: {why}")))
}

/// A non-empty string, trimmed.
pub(super) fn non_empty(src: &Source, v: &Spanned<String>, key: &str) -> Result<String> {
    let s = v.get_ref().trim();
    if s.is_empty() {
        return Err(src.error(v.span(), format!("{key} must not be empty")));
    }
    Ok(s.to_string())
}

/// A path from the file, made absolute against the scenario's folder. Nothing is read.
pub(super) fn path(base: &Path, v: &str) -> PathBuf {
    let p = Path::new(v);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    // Only fails for an empty path, which `non_empty` rules out before.
    std::path::absolute(&joined).unwrap_or(joined)
}
