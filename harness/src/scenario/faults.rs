//! `[[faults]]`: the fault timeline, in file order. Which keys an entry takes depends on its
//! `kind`, so the raw entry accepts every key and this file checks them per kind, naming the
//! kind in each message.

use std::ops::Range;
use std::time::Duration;

use serde_spanned::Spanned;

use super::raw::RawFault;
use super::source::Source;
use super::values;
use super::{ChainPlan, WorkloadPlan};
use crate::error::{Error, Result};
use crate::faults::{FaultKind, FaultSpec, Hop};
use crate::node::StopMode;

/// The keys one kind takes besides `kind` and `at`.
struct KindKeys {
    name: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
}

/// One row per [`FaultKind::NAMES`], same order.
const KINDS: [KindKeys; 14] = [
    kind("latency", &["hop", "latency"], &["jitter"]),
    kind("bandwidth", &["hop", "rate"], &[]),
    kind("loss", &["hop", "loss"], &[]),
    kind("partition", &["hop"], &[]),
    kind("link_down", &["hop"], &[]),
    kind("kill", &["node"], &[]),
    kind("stop", &["node"], &["mode"]),
    kind("pause", &["node"], &[]),
    kind("replay_pause", &[], &[]),
    kind("replay_delay", &["delay"], &[]),
    kind("replicator_stop", &[], &[]),
    kind("primary_failure", &[], &[]),
    kind("catalog_churn", &[], &["every"]),
    kind("checkpoint", &[], &[]),
];

const fn kind(
    name: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
) -> KindKeys {
    KindKeys {
        name,
        required,
        optional,
    }
}

/// Default pause between catalog churn rounds.
const CHURN_EVERY: Duration = Duration::from_millis(200);

const RATE_HINT: &str = "rates look like \"1MB/s\", \"512KiB/s\" or 1000000 (bytes per second); KB/s, MB/s, GB/s count in 1000s, KiB/s, MiB/s, GiB/s in 1024s";

pub(super) fn validate(
    src: &Source,
    raw: Option<Vec<Spanned<RawFault>>>,
    workload: &WorkloadPlan,
    chain: &ChainPlan,
) -> Result<Vec<FaultSpec>> {
    let mut out = Vec::new();
    let mut kind_spans = Vec::new();
    let mut first_failover: Option<usize> = None;
    for entry in raw.unwrap_or_default() {
        let entry_span = entry.span();
        let raw = entry.into_inner();
        let spec = Entry::new(src, entry_span.clone(), &raw)?.fault(workload, chain)?;
        if spec.kind == FaultKind::PrimaryFailure {
            // The entry passed validation, so its `kind` is there.
            let at = raw.kind.as_ref().map_or(0..0, Spanned::span);
            if let Some(line) = first_failover {
                return Err(src
                    .error(
                        at,
                        format!(
                            "primary_failure can happen only once (the first is on line {line}): after it A is gone and B is the primary"
                        ),
                    )
                    .with_hint("keep one primary_failure entry"));
            }
            first_failover = Some(src.line_col(at.start).0);
        }
        kind_spans.push(raw.kind.as_ref().map_or(entry_span, Spanned::span));
        out.push(spec);
    }
    super::clashes::check(src, &out, &kind_spans, workload)?;
    Ok(out)
}

/// One `[[faults]]` entry whose kind is known.
struct Entry<'a> {
    src: &'a Source<'a>,
    raw: &'a RawFault,
    keys: &'static KindKeys,
    /// Where the `kind` value is: missing keys are reported there.
    kind_span: Range<usize>,
}

impl<'a> Entry<'a> {
    /// Check the kind, and that every key written belongs to it.
    fn new(src: &'a Source<'a>, entry_span: Range<usize>, raw: &'a RawFault) -> Result<Self> {
        let Some(kind) = &raw.kind else {
            return Err(src
                .error(entry_span, "[[faults]] entry without `kind`")
                .with_hint(kinds_hint()));
        };
        let name = kind.get_ref().trim();
        let Some(keys) = KINDS.iter().find(|k| k.name == name) else {
            return Err(src
                .error(
                    kind.span(),
                    format!("unknown fault kind {:?}", kind.get_ref()),
                )
                .with_hint(kinds_hint()));
        };
        let mut stray: Vec<(&str, Range<usize>)> = written(raw)
            .into_iter()
            .filter(|(key, _)| !keys.required.contains(key) && !keys.optional.contains(key))
            .collect();
        stray.sort_by_key(|(_, span)| span.start);
        if let Some((key, span)) = stray.into_iter().next() {
            return Err(src
                .error(
                    span,
                    format!("`{key}` does not apply to a {} fault", keys.name),
                )
                .with_hint(takes(keys)));
        }
        Ok(Entry {
            src,
            raw,
            keys,
            kind_span: kind.span(),
        })
    }

    /// The validated fault.
    fn fault(&self, workload: &WorkloadPlan, chain: &ChainPlan) -> Result<FaultSpec> {
        let (src, raw) = (self.src, self.raw);
        let kind = match self.keys.name {
            "latency" => FaultKind::Latency {
                hop: self.hop()?,
                latency: values::positive_duration(
                    src,
                    self.need(&raw.latency, "latency")?,
                    "latency",
                    "a latency fault needs a delay above zero",
                )?,
                jitter: match &raw.jitter {
                    None => Duration::ZERO,
                    Some(v) => values::duration(src, v, "jitter")?,
                },
            },
            "bandwidth" => FaultKind::Bandwidth {
                hop: self.hop()?,
                bytes_per_sec: rate(src, self.need(&raw.rate, "rate")?)?,
            },
            "loss" => FaultKind::Loss {
                hop: self.hop()?,
                percent: percent(src, self.need(&raw.loss, "loss")?)?,
            },
            "partition" => FaultKind::Partition { hop: self.hop()? },
            "link_down" => FaultKind::LinkDown { hop: self.hop()? },
            "kill" => FaultKind::Kill { node: self.node()? },
            "stop" => FaultKind::Stop {
                node: self.node()?,
                mode: match &raw.mode {
                    None => StopMode::Fast,
                    Some(v) => stop_mode(src, v)?,
                },
            },
            "pause" => FaultKind::Pause { node: self.node()? },
            "replay_pause" => FaultKind::ReplayPause,
            "replay_delay" => FaultKind::ReplayDelay {
                delay: values::positive_duration(
                    src,
                    self.need(&raw.delay, "delay")?,
                    "delay",
                    "a replay delay must be above zero",
                )?,
            },
            "replicator_stop" => FaultKind::ReplicatorStop,
            "primary_failure" => FaultKind::PrimaryFailure,
            "catalog_churn" => FaultKind::CatalogChurn {
                every: match &raw.every {
                    None => CHURN_EVERY,
                    Some(v) => values::positive_duration(
                        src,
                        v,
                        "every",
                        "catalog churn needs a pause above zero between rounds",
                    )?,
                },
            },
            "checkpoint" => FaultKind::Checkpoint,
            other => {
                return Err(Error::internal(format!(
                    "fault kind {other} has keys but no validation"
                )));
            }
        };
        let (at, heal_at) = self.timing(workload, chain, kind.one_shot())?;
        Ok(FaultSpec {
            kind,
            at,
            heal_at,
            line: Some(self.src.line_col(self.kind_span.start).0),
        })
    }

    /// `at` within the workload, and `heal_at` after it but no later than the end of the
    /// workload plus `catchup_timeout`: the run waits for every heal before it waits for C, and
    /// C cannot catch up past a fault still in force, so a later heal only makes the run wait
    /// longer than the scenario allows C to catch up.
    fn timing(
        &self,
        workload: &WorkloadPlan,
        chain: &ChainPlan,
        one_shot: bool,
    ) -> Result<(Duration, Option<Duration>)> {
        let src = self.src;
        let at_raw = self.need(&self.raw.at, "at")?;
        let at = values::duration(src, at_raw, "at")?;
        if at >= workload.duration {
            let ends = humantime::format_duration(workload.duration);
            return Err(src
                .error(
                    at_raw.span(),
                    format!(
                        "at = {:?} is not before the end of the workload ({ends} after its start): the fault would never happen",
                        at_raw.get_ref()
                    ),
                )
                .with_hint(format!(
                    "faults are timed from the start of the workload: make at earlier than {ends}, or [workload] duration longer"
                )));
        }
        let Some(heal_raw) = &self.raw.heal_at else {
            return Ok((at, None));
        };
        if one_shot {
            return Err(src
                .error(
                    heal_raw.span(),
                    format!(
                        "a {} fault happens once and has nothing to heal",
                        self.keys.name
                    ),
                )
                .with_hint("remove heal_at"));
        }
        let heal_at = values::duration(src, heal_raw, "heal_at")?;
        if heal_at <= at {
            return Err(src
                .error(
                    heal_raw.span(),
                    format!(
                        "heal_at = {:?} is not after at = {:?}",
                        heal_raw.get_ref(),
                        at_raw.get_ref()
                    ),
                )
                .with_hint(
                    "heal_at is timed from the start of the workload, like at, not from the fault",
                ));
        }
        let limit = workload.duration + chain.catchup_timeout;
        if heal_at > limit {
            let fmt = humantime::format_duration;
            return Err(src
                .error(
                    heal_raw.span(),
                    format!(
                        "heal_at = {:?} is past the limit of {}, the end of the workload ({}) plus catchup_timeout ({}): the run waits for every heal before it gives C up to catchup_timeout to catch up, which C cannot do past a fault in force",
                        heal_raw.get_ref(),
                        fmt(limit),
                        fmt(workload.duration),
                        fmt(chain.catchup_timeout)
                    ),
                )
                .with_hint(format!(
                    "heal it by {}, or lengthen [workload] duration or [chain] catchup_timeout",
                    fmt(limit)
                )));
        }
        Ok((at, Some(heal_at)))
    }

    /// A key the kind requires, or an error at the entry's kind naming it.
    fn need<'v, T>(&self, v: &'v Option<Spanned<T>>, key: &str) -> Result<&'v Spanned<T>> {
        v.as_ref().ok_or_else(|| {
            self.src
                .error(
                    self.kind_span.clone(),
                    format!("a {} fault needs `{key}`", self.keys.name),
                )
                .with_hint(format!("add {}", example(key)))
        })
    }

    fn hop(&self) -> Result<Hop> {
        let v = self.need(&self.raw.hop, "hop")?;
        Hop::parse(v.get_ref()).ok_or_else(|| {
            self.src
                .error(v.span(), format!("hop: unknown hop {:?}", v.get_ref()))
                .with_hint(
                    "hops are \"a-b\" (A → B, physical streaming) and \"b-c\" (B → C, logical replication)",
                )
        })
    }

    fn node(&self) -> Result<String> {
        let v = self.need(&self.raw.node, "node")?;
        let node = v.get_ref().trim().to_ascii_lowercase();
        if ["a", "b", "c"].contains(&node.as_str()) {
            return Ok(node);
        }
        Err(self
            .src
            .error(v.span(), format!("node: unknown node {:?}", v.get_ref()))
            .with_hint("nodes are \"a\" (the primary), \"b\" (the standby) and \"c\" (the target)"))
    }
}

/// The kind-specific keys present in the entry, with where their values are.
fn written(raw: &RawFault) -> Vec<(&'static str, Range<usize>)> {
    fn at<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
        v.as_ref().map(Spanned::span)
    }
    [
        ("hop", at(&raw.hop)),
        ("latency", at(&raw.latency)),
        ("jitter", at(&raw.jitter)),
        ("rate", at(&raw.rate)),
        ("loss", at(&raw.loss)),
        ("node", at(&raw.node)),
        ("mode", at(&raw.mode)),
        ("delay", at(&raw.delay)),
        ("every", at(&raw.every)),
    ]
    .into_iter()
    .filter_map(|(key, span)| span.map(|s| (key, s)))
    .collect()
}

fn kinds_hint() -> String {
    format!("fault kinds are {}", FaultKind::NAMES.join(", "))
}

/// "a latency fault takes hop, latency, at, jitter (optional) and heal_at (optional)".
fn takes(k: &KindKeys) -> String {
    let mut keys: Vec<String> = k.required.iter().map(|s| s.to_string()).collect();
    keys.push("at".into());
    keys.extend(k.optional.iter().map(|s| format!("{s} (optional)")));
    // Every kind but the one-shot ones takes `heal_at`.
    if !FaultKind::ONE_SHOT.contains(&k.name) {
        keys.push("heal_at (optional)".into());
    }
    let list = match keys.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => keys.join(""),
    };
    format!("a {} fault takes {list}", k.name)
}

/// A line to add for a missing key.
fn example(key: &str) -> String {
    let line = match key {
        "hop" => "hop = \"a-b\" (or \"b-c\")",
        "at" => "at = \"10s\" (from the start of the workload)",
        "latency" => "latency = \"500ms\"",
        "rate" => "rate = \"1MB/s\"",
        "loss" => "loss = \"5%\"",
        "node" => "node = \"a\" (or \"b\", \"c\")",
        "delay" => "delay = \"2s\"",
        other => return format!("{other} = ..."),
    };
    line.to_string()
}

/// `loss = "5%"` or `loss = 5` (percent of packets, above 0 and at most 100).
fn percent(src: &Source, v: &Spanned<toml::Value>) -> Result<f64> {
    const HINT: &str = "loss is a percentage of packets dropped: \"5%\", \"0.5%\" or 5";
    let parsed = match v.get_ref() {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        toml::Value::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(p) if p > 0.0 && p <= 100.0 => Ok(p),
        Some(p) => Err(src
            .error(
                v.span(),
                format!("loss = {p}%: must be above 0% and at most 100%"),
            )
            .with_hint(HINT)),
        None => Err(src
            .error(
                v.span(),
                format!("loss = {}: not a percentage", v.get_ref()),
            )
            .with_hint(HINT)),
    }
}

/// The stop modes a fault may use. `smart` is refused: it waits for every session to end, and the
/// harness's own sessions (the sampler's and the heartbeat's on every node, the workload's on A)
/// last as long as the run, so the server would never go down — locally it would be SIGKILLed
/// after 60 s (a late crash, not a stop), in a container it would stay in shutdown refusing
/// connections, which the heal cannot undo.
fn stop_mode(src: &Source, v: &Spanned<String>) -> Result<StopMode> {
    const MODES: &str = "modes are \"fast\" (the default) and \"immediate\", as pg_ctl stop -m";
    match v.get_ref().trim() {
        "smart" => Err(src
            .error(
                v.span(),
                "mode = \"smart\" cannot stop a node during a rehearsal: a smart stop waits for \
                 every session to end, and the harness's own sessions (sampler and heartbeat on \
                 every node, the workload on a) stay open until the run ends",
            )
            .with_hint(format!(
                "use \"fast\" (sessions are ended, then a clean shutdown); {MODES}"
            ))),
        "fast" => Ok(StopMode::Fast),
        "immediate" => Ok(StopMode::Immediate),
        _ => Err(src
            .error(
                v.span(),
                format!("mode: unknown stop mode {:?}", v.get_ref()),
            )
            .with_hint(MODES)),
    }
}

/// `rate`: an integer number of bytes per second, or a string with a unit.
fn rate(src: &Source, v: &Spanned<toml::Value>) -> Result<u64> {
    let (shown, parsed) = match v.get_ref() {
        toml::Value::Integer(i) => (
            i.to_string(),
            u64::try_from(*i).map_err(|_| RateError::NotPositive),
        ),
        toml::Value::String(s) => (format!("{s:?}"), parse_rate(s)),
        other => {
            return Err(src
                .error(
                    v.span(),
                    format!(
                        "rate must be a string like \"1MB/s\" or an integer number of bytes per second, found {}",
                        other.type_str()
                    ),
                )
                .with_hint(RATE_HINT));
        }
    };
    let why = match parsed {
        Ok(0) | Err(RateError::NotPositive) => "the rate must be positive",
        Ok(n) => return Ok(n),
        Err(RateError::Invalid) => "not a rate",
        Err(RateError::TooLarge) => "the rate is too large",
    };
    Err(src
        .error(v.span(), format!("rate = {shown}: {why}"))
        .with_hint(RATE_HINT))
}

#[derive(Debug, PartialEq)]
enum RateError {
    Invalid,
    NotPositive,
    TooLarge,
}

/// "1MB/s" → 1_000_000, "1MiB/s" → 1_048_576, "1000" → 1000; fractions are rounded to whole
/// bytes ("1.5KB/s" → 1500).
fn parse_rate(s: &str) -> std::result::Result<u64, RateError> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (number, unit) = (s[..split].trim(), s[split..].trim());
    let scale: u64 = match unit {
        "" | "B/s" => 1,
        "KB/s" | "kB/s" => 1_000,
        "MB/s" => 1_000_000,
        "GB/s" => 1_000_000_000,
        "KiB/s" => 1 << 10,
        "MiB/s" => 1 << 20,
        "GiB/s" => 1 << 30,
        _ => return Err(RateError::Invalid),
    };
    // Whole numbers exactly; fractions through f64, which is exact enough for a rate.
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(scale).ok_or(RateError::TooLarge);
    }
    let n: f64 = number.parse().map_err(|_| RateError::Invalid)?;
    if !n.is_finite() {
        return Err(RateError::Invalid);
    }
    let bytes = (n * scale as f64).round();
    if bytes < 1.0 {
        return Err(RateError::NotPositive);
    }
    if bytes >= u64::MAX as f64 {
        return Err(RateError::TooLarge);
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_table_follows_the_model() {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        assert_eq!(names, FaultKind::NAMES);
    }

    #[test]
    fn rates_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_rate("1MB/s"), Ok(1_000_000));
        assert_eq!(parse_rate("1MiB/s"), Ok(1_048_576));
        assert_eq!(parse_rate("512 KiB/s"), Ok(524_288));
        assert_eq!(parse_rate("2GB/s"), Ok(2_000_000_000));
        assert_eq!(parse_rate("1GiB/s"), Ok(1 << 30));
        assert_eq!(parse_rate("1.5KB/s"), Ok(1500));
        assert_eq!(parse_rate("250B/s"), Ok(250));
        assert_eq!(parse_rate("4096"), Ok(4096));
        assert_eq!(parse_rate("0MB/s"), Ok(0));
        assert_eq!(parse_rate("-1MB/s"), Err(RateError::NotPositive));
        assert_eq!(parse_rate("0.1B/s"), Err(RateError::NotPositive));
        assert_eq!(parse_rate("1Mb/s"), Err(RateError::Invalid));
        assert_eq!(parse_rate("fast"), Err(RateError::Invalid));
        assert_eq!(parse_rate("MB/s"), Err(RateError::Invalid));
        assert_eq!(parse_rate("99999999999999GB/s"), Err(RateError::TooLarge));
    }

    #[test]
    fn takes_lists_required_then_optional_keys() {
        assert_eq!(
            takes(&KINDS[0]),
            "a latency fault takes hop, latency, at, jitter (optional) and heal_at (optional)"
        );
        assert_eq!(takes(&KINDS[13]), "a checkpoint fault takes at");
    }
}
