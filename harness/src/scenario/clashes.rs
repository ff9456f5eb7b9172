//! Faults that cannot share the timeline: rules between `[[faults]]` entries, each valid on
//! its own. The error points at the later entry's `kind` and names the other's line.

use std::ops::Range;
use std::time::Duration;

use super::WorkloadPlan;
use super::source::Source;
use crate::error::Result;
use crate::faults::{FaultKind, FaultSpec};

/// Every rule, in file order of the entries they report.
pub(super) fn check(
    src: &Source,
    faults: &[FaultSpec],
    kind_spans: &[Range<usize>],
    workload: &WorkloadPlan,
) -> Result<()> {
    overlaps(src, faults, kind_spans, workload)
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
