//! Faults that cannot share the timeline: rules between `[[faults]]` entries, each valid on
//! its own. An error points at the `kind` of the entry that breaks a rule and names the line
//! of the entry it clashes with.

use std::ops::Range;
use std::time::Duration;

use super::WorkloadPlan;
use super::source::Source;
use crate::error::Result;
use crate::faults::{FaultKind, FaultSpec};

/// The primary failure's rules first: with one, an overlap is often the lesser problem.
pub(super) fn check(
    src: &Source,
    faults: &[FaultSpec],
    kind_spans: &[Range<usize>],
    workload: &WorkloadPlan,
) -> Result<()> {
    after_failover(src, faults, kind_spans, workload)?;
    overlaps(src, faults, kind_spans, workload)
}

/// After a primary failure A is dead and stays down (it is rebuilt, never restarted into the
/// chain), and B is the primary. A fault on A in force at that moment or later would act on a
/// dead server or, healing a kill or stop, start A again as a second primary beside B. B must
/// be running to be promoted, and once promoted it replays no WAL to pause or delay.
fn after_failover(
    src: &Source,
    faults: &[FaultSpec],
    kind_spans: &[Range<usize>],
    workload: &WorkloadPlan,
) -> Result<()> {
    let Some(failover) = faults.iter().find(|f| f.kind == FaultKind::PrimaryFailure) else {
        return Ok(());
    };
    let fail_at = failover.at;
    let line = failover.line.unwrap_or(0);
    let when = humantime::format_duration(fail_at);
    for (f, span) in faults.iter().zip(kind_spans) {
        let ends = in_force(f, workload).end;
        let on = |n: &str| match &f.kind {
            FaultKind::Kill { node } | FaultKind::Stop { node, .. } | FaultKind::Pause { node } => {
                node == n
            }
            _ => false,
        };
        let kind = f.kind.name();
        let (msg, hint) = if on("a") || matches!(f.kind, FaultKind::CatalogChurn { .. }) {
            if f.at < fail_at && ends <= fail_at {
                continue;
            }
            let why = match &f.kind {
                FaultKind::Kill { .. } | FaultKind::Stop { .. } => {
                    "healing it would start A again as a second primary beside the promoted B"
                }
                _ => "A is dead by then",
            };
            (
                format!(
                    "this {kind} acts on A, which the primary_failure on line {line} kills at {when} for good: {why}"
                ),
                format!(
                    "give it heal_at = \"{when}\" or earlier (it heals at the end of the workload without one), or aim it at b (the primary after the failover) or c"
                ),
            )
        } else if on("b") {
            // A heal at the failover's instant comes first: b is back up to be promoted.
            if f.at > fail_at || ends <= fail_at {
                continue;
            }
            (
                format!(
                    "this {kind} of b is in force at {when}, when the primary_failure on line {line} promotes b: a b that is killed, stopped or paused cannot be promoted"
                ),
                format!(
                    "give it heal_at = \"{when}\" or earlier, or start it after {when}, when b is the primary"
                ),
            )
        } else if matches!(
            f.kind,
            FaultKind::ReplayPause | FaultKind::ReplayDelay { .. }
        ) {
            if f.at < fail_at {
                continue;
            }
            (
                format!(
                    "this {kind} acts on b's WAL replay from {}, but the primary_failure on line {line} promotes b at {when}: a primary replays no WAL, so there is none to pause or delay (pg_wal_replay_pause() fails on it)",
                    humantime::format_duration(f.at)
                ),
                format!("make at earlier than {when}, or remove this fault"),
            )
        } else {
            continue;
        };
        return Err(src.error(span.clone(), msg).with_hint(hint));
    }
    Ok(())
}

/// The node a fault with a heal takes hold of while in force. Link faults are not here: the
/// faults on a hop are layered and each heal removes only its own layer. Every other heal
/// acts on the node as a whole (a resume, a restart, a setting reset, the subscription
/// re-enabled), so it would end an overlapping fault on the same node early, or an injection
/// would act on a node another fault has down, and the report would show neither.
fn holds(kind: &FaultKind) -> Option<&str> {
    match kind {
        FaultKind::Kill { node } | FaultKind::Stop { node, .. } | FaultKind::Pause { node } => {
            Some(node)
        }
        FaultKind::ReplayPause | FaultKind::ReplayDelay { .. } => Some("b"),
        // ALTER SUBSCRIPTION runs on C, where the subscription lives.
        FaultKind::ReplicatorStop => Some("c"),
        // Two churns collide on the same table and role names, and a heal's cleanup drops them
        // under the other; on a stopped or paused A no round completes.
        FaultKind::CatalogChurn { .. } => Some("a"),
        _ => None,
    }
}

/// When `f` is in force: from `at` until its heal, which defaults to the end of the workload.
/// A heal happens before an injection at the same instant, so touching intervals are apart.
fn in_force(f: &FaultSpec, workload: &WorkloadPlan) -> Range<Duration> {
    f.at..f.heal_at.unwrap_or(workload.duration)
}

fn overlaps(
    src: &Source,
    faults: &[FaultSpec],
    kind_spans: &[Range<usize>],
    workload: &WorkloadPlan,
) -> Result<()> {
    for (j, later) in faults.iter().enumerate() {
        let Some(node) = holds(&later.kind) else {
            continue;
        };
        let when = in_force(later, workload);
        let earlier = faults[..j].iter().find(|f| {
            let other = in_force(f, workload);
            holds(&f.kind) == Some(node) && other.start < when.end && when.start < other.end
        });
        let Some(earlier) = earlier else {
            continue;
        };
        let span = kind_spans.get(j).cloned().unwrap_or(0..0);
        return Err(src
            .error(
                span,
                format!(
                    "this {} acts on {node} {}, while the {} on line {} acts on it {}: one fault per node at a time (link faults aside), since healing either would end the other early, or act on a node the other has down",
                    later.kind.name(),
                    span_words(&when, workload),
                    earlier.kind.name(),
                    earlier.line.unwrap_or(0),
                    span_words(&in_force(earlier, workload), workload),
                ),
            )
            .with_hint(format!(
                "time them one after the other (a heal_at at or before the other's at), or aim one at another node; without heal_at a fault lasts until the workload ends ({})",
                humantime::format_duration(workload.duration)
            )));
    }
    Ok(())
}

/// "from 2s to 4s", "from 2s to the end of the workload (30s)".
fn span_words(r: &Range<Duration>, workload: &WorkloadPlan) -> String {
    let from = humantime::format_duration(r.start);
    let to = humantime::format_duration(r.end);
    if r.end == workload.duration {
        format!("from {from} to the end of the workload ({to})")
    } else {
        format!("from {from} to {to}")
    }
}
