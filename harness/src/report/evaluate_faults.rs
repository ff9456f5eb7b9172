//! Judging the expectations of fault rehearsals: lag, the logical slot's fate, the RPO,
//! consistency and convergence after healing, and slot creation on an idle primary. Missing
//! evidence is Unknown, never a pass; the evidence carries the numbers and when they were seen.

use std::time::Duration;

use super::IdlePrimary;
use super::charts::one_shot;
use super::evaluate::{ExpectationResult, RunFacts, verify_summary};
use super::sections::{lost_list, slot_fate, status_timeline};
use super::text::{at, at_u, count, millis, secs};
use crate::faults::FaultRecord;
use crate::observe::{Observations, SlotOutcome};
use crate::util::fmt_duration;
use crate::verdict::Verdict;

/// Slot creation must complete this soon after A is nudged.
pub(super) const NUDGE_LIMIT: Duration = Duration::from_secs(5);

fn result(
    name: &str,
    verdict: Verdict,
    expected: &str,
    observed: impl Into<String>,
    evidence: impl Into<String>,
) -> ExpectationResult {
    ExpectationResult {
        name: name.into(),
        verdict,
        expected: expected.into(),
        observed: observed.into(),
        evidence: evidence.into(),
    }
}

fn judged(ok: bool) -> Verdict {
    if ok { Verdict::Valid } else { Verdict::Invalid }
}

fn within(ok: bool) -> &'static str {
    if ok { "within" } else { "over" }
}

/// Unknown: the run recorded no outcome of the logical slot.
fn slot_not_observed(name: &str, expected: &str) -> ExpectationResult {
    result(
        name,
        Verdict::Unknown,
        expected,
        "slot not observed",
        "no outcome of the logical slot on b was recorded",
    )
}

/// Unknown: the run has no observations to judge `name` by.
fn not_observed(name: &str, expected: &str) -> ExpectationResult {
    result(
        name,
        Verdict::Unknown,
        expected,
        "not observed",
        "the run recorded no observations of the chain",
    )
}

/// The end-to-end lag (heartbeat) never exceeded `limit`.
pub(super) fn max_e2e_lag(limit: Duration, obs: Option<&Observations>) -> ExpectationResult {
    const NAME: &str = "max_e2e_lag";
    let expected = format!(
        "end-to-end lag at most {} at all times",
        fmt_duration(limit)
    );
    let Some(obs) = obs else {
        return not_observed(NAME, &expected);
    };
    let measured = obs.series.iter().filter(|p| p.e2e_s.is_some()).count();
    let resolution = format!(
        "{measured} of {} measured it, one every {}; heartbeat every {}, so lag is known to \
         about {}",
        count(obs.samples, "sample", "samples"),
        millis(obs.sample_every_ms),
        millis(obs.heartbeat_every_ms),
        millis(obs.heartbeat_every_ms)
    );
    let Some(peak) = obs.peaks.e2e_s else {
        return result(
            NAME,
            Verdict::Unknown,
            &expected,
            "no end-to-end lag measured",
            format!("no heartbeat from a was measured on c: {resolution}"),
        );
    };
    let ok = peak.value <= limit.as_secs_f64();
    result(
        NAME,
        judged(ok),
        &expected,
        format!("peak {} at {}", secs(peak.value), at(peak.at_ms)),
        format!(
            "end-to-end lag peaked at {} at {} ({} the limit of {}); {resolution}",
            secs(peak.value),
            at(peak.at_ms),
            within(ok),
            fmt_duration(limit)
        ),
    )
}

/// Why an injected fault did nothing, when the run can tell: a catalog churn that never
/// completed a round removed no catalog rows; a restartpoint on b that did not move removed no
/// WAL there.
fn idle_fault(f: &FaultRecord) -> Option<String> {
    if let Some(c) = &f.checkpoint {
        return (c.restartpoint_idle() == Some(true))
            .then(|| format!("{}: {}", f.description, c.describe()));
    }
    let churn = f.churn.as_ref()?;
    (churn.rounds == 0).then(|| {
        let why = churn
            .first_error
            .as_deref()
            .map_or(String::new(), |e| format!(" (first error: {e})"));
        format!("{}: no churn round completed{why}", f.description)
    })
}

/// Every fault of the scenario was injected (the backend could do it here) and, where the run
/// can tell, did something.
pub(super) fn faults_injected(obs: &Observations) -> ExpectationResult {
    const NAME: &str = "faults_injected";
    let expected = "every fault of the scenario is injected";
    let missing: Vec<String> = obs
        .faults
        .iter()
        .filter(|f| f.injected_ms.is_none())
        .map(|f| match &f.error {
            Some(e) => format!("{}: {e}", f.description),
            None => format!(
                "{}: its time never came (the run ended first)",
                f.description
            ),
        })
        .collect();
    // Injected, but injecting or healing went wrong: half in force, or never lifted.
    let errored: Vec<String> = obs
        .faults
        .iter()
        .filter(|f| f.injected_ms.is_some())
        .filter_map(|f| Some(format!("{}: {}", f.description, f.error.as_ref()?)))
        .collect();
    let idle: Vec<String> = obs.faults.iter().filter_map(idle_fault).collect();
    let injected = obs.faults.len() - missing.len();
    let mut observed = format!("{injected} of {} injected", obs.faults.len());
    if !errored.is_empty() {
        observed.push_str(&format!("; {} with errors", errored.len()));
    }
    if !idle.is_empty() {
        observed.push_str(&format!("; {} without effect", idle.len()));
    }
    if missing.is_empty() && errored.is_empty() && idle.is_empty() {
        let evidence = obs
            .faults
            .iter()
            .map(|f| {
                let mut s = format!(
                    "{} at {}",
                    f.description,
                    at_u(f.injected_ms.unwrap_or_default())
                );
                if let Some(c) = &f.churn {
                    s.push_str(&format!(": {}", c.describe()));
                }
                if let Some(c) = &f.checkpoint {
                    s.push_str(&format!(": {}", c.describe()));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ");
        return result(NAME, Verdict::Valid, expected, observed, evidence);
    }
    let mut evidence = Vec::new();
    if !missing.is_empty() {
        evidence.push(format!(
            "not injected, so the chain's behaviour under them is unknown: {}",
            missing.join("; ")
        ));
    }
    if !errored.is_empty() {
        evidence.push(format!(
            "injected with errors, so what was in force is unknown: {}",
            errored.join("; ")
        ));
    }
    if !idle.is_empty() {
        evidence.push(format!(
            "injected but without effect, so the chain's behaviour under them is unknown: {}",
            idle.join("; ")
        ));
    }
    result(
        NAME,
        Verdict::Unknown,
        expected,
        observed,
        evidence.join("; "),
    )
}

/// The slot's story for evidence: name, fate, reason, wal_status changes, resync.
fn slot_evidence(slot: &SlotOutcome) -> String {
    let mut parts = vec![format!("slot {} on b: {}", slot.slot, slot_fate(slot))];
    if !slot.wal_status_changes.is_empty() {
        parts.push(format!("wal_status {}", status_timeline(slot)));
    }
    parts.push(match (slot.resync_needed, slot.survived) {
        (true, _) => "c needs a full resync".into(),
        (false, Some(true)) => "no resync needed".into(),
        // Invalidated by the samples but not seen at the end, or never seen: what c needs is
        // as unknown as the slot's fate.
        (false, _) => "whether c needs a full resync is not known".into(),
    });
    parts.join("; ")
}

/// Some(true): usable at the end; Some(false): invalidated or gone; None: not known.
fn slot_usable(slot: &SlotOutcome) -> Option<bool> {
    if slot.invalidation_reason.is_some() || slot.missing {
        return Some(false);
    }
    slot.survived
}

/// Why a missing slot settles nothing about an invalidation.
const MISSING: &str = "slot missing on b (dropped?): PostgreSQL reported no invalidation, \
                       and a slot that is gone may have been dropped while usable";

/// The logical slot on B ends usable (`want`) or invalidated (`!want`).
pub(super) fn slot_survives(want: bool, obs: Option<&Observations>) -> ExpectationResult {
    const NAME: &str = "slot_survives";
    let expected = if want {
        "the logical slot on b is still usable at the end"
    } else {
        "the logical slot on b is invalidated by the end"
    };
    let Some(slot) = obs.and_then(|o| o.slot.as_ref()) else {
        return slot_not_observed(NAME, expected);
    };
    let mut evidence = slot_evidence(slot);
    let verdict = match slot_usable(slot) {
        None => Verdict::Unknown,
        // Gone is not usable, but neither is it an invalidation.
        Some(false) if slot.missing && !want => {
            evidence.push_str(&format!("; {MISSING}"));
            Verdict::Unknown
        }
        Some(usable) => judged(usable == want),
    };
    result(NAME, verdict, expected, slot_fate(slot), evidence)
}

/// The logical slot on B ends invalidated for `reason` ("any": for any reason).
pub(super) fn slot_invalidated(reason: &str, obs: Option<&Observations>) -> ExpectationResult {
    const NAME: &str = "slot_invalidated";
    let any = reason == "any";
    let expected = if any {
        "the logical slot on b ends invalidated (any reason)".to_string()
    } else {
        format!("the logical slot on b ends invalidated for {reason}")
    };
    let Some(slot) = obs.and_then(|o| o.slot.as_ref()) else {
        return slot_not_observed(NAME, &expected);
    };
    let mut evidence = slot_evidence(slot);
    let verdict = match (slot.invalidation_reason.as_deref(), slot.survived) {
        (Some(r), _) if any || r == reason => {
            if slot.reason_inferred && r == "rows_removed" && !any {
                evidence.push_str(
                    "; PostgreSQL 16 shows conflicting = t for wal_level_insufficient too, ruled \
                     out here: a runs at wal_level = logical throughout (pgrehearse sets it)",
                );
            }
            Verdict::Valid
        }
        // The one reason PostgreSQL 16 cannot tell apart from the one inferred.
        (Some("rows_removed"), _) if slot.reason_inferred && reason == "wal_level_insufficient" => {
            evidence.push_str(
                "; PostgreSQL 16 shows conflicting = t for rows_removed and \
                 wal_level_insufficient alike, so which one is not known",
            );
            Verdict::Unknown
        }
        (Some(_), _) | (None, Some(true)) => Verdict::Invalid,
        (None, Some(false)) if slot.missing => {
            evidence.push_str(&format!("; {MISSING}"));
            Verdict::Unknown
        }
        // Unusable, but no reason was recorded (a report from an older pgrehearse).
        (None, Some(false)) => {
            evidence.push_str("; no invalidation reason was recorded");
            Verdict::Unknown
        }
        (None, None) => Verdict::Unknown,
    };
    result(NAME, verdict, &expected, slot_fate(slot), evidence)
}

/// Whether C's missing writes may still be on their way: the RPO was judged on C as it stood
/// (no failover), C had not reached the catch-up fence, and nothing shows its slot on B dead.
/// A dead slot can never deliver them, and after a failover the RPO is judged on B at its
/// promotion, which no later delivery changes.
fn c_still_behind(
    rpo: &crate::observe::Rpo,
    obs: &Observations,
    missed: Option<&super::CatchupMissed>,
) -> bool {
    let slot_dead = obs
        .slot
        .as_ref()
        .is_some_and(|s| slot_usable(s) == Some(false));
    rpo.judged_at_ms.is_none()
        && obs.failover.is_none()
        && rpo.node == "c"
        && missed.is_some_and(|m| !m.never)
        && !slot_dead
}

/// At most `n` acknowledged writes lost.
pub(super) fn rpo_max_writes(
    n: u64,
    obs: Option<&Observations>,
    missed: Option<&super::CatchupMissed>,
) -> ExpectationResult {
    const NAME: &str = "rpo_max_writes";
    let expected = format!(
        "at most {} lost",
        count(n, "acknowledged write", "acknowledged writes")
    );
    let Some((rpo, obs)) = obs.and_then(|o| Some((o.rpo.as_ref()?, o))) else {
        return result(
            NAME,
            Verdict::Unknown,
            &expected,
            "RPO not measured",
            "no ledger check of the writes a acknowledged was recorded",
        );
    };
    let ok = rpo.lost_writes <= n;
    // C only behind: what it lacks counts every write still in flight, so the count is an upper
    // bound. Within the limit it settles the RPO; over it, it proves nothing.
    let behind = c_still_behind(rpo, obs, missed) && rpo.lost_writes > 0;
    // Unexplained keys may hide lost writes: within the limit is then only a lower bound.
    let verdict = if ok && rpo.unexplained_keys > 0 || !ok && behind {
        Verdict::Unknown
    } else {
        judged(ok)
    };
    let when = match rpo.judged_at_ms {
        Some(ms) => format!(" at its promotion ({})", at(ms)),
        None => String::new(),
    };
    let mut evidence = format!(
        "{} missing on {}{when} ({} the limit of {n})",
        count(
            rpo.lost_writes,
            "write a acknowledged is",
            "writes a acknowledged are"
        ),
        rpo.node,
        within(ok)
    );
    let lost = lost_list(rpo, 5);
    if !lost.is_empty() {
        evidence.push_str(&format!(": {}", lost.join(", ")));
    }
    evidence.push_str(&format!(
        "; unknown outcomes: {} applied, {} not applied",
        rpo.unknown_applied, rpo.unknown_not_applied
    ));
    if rpo.unknown_undetermined > 0 {
        evidence.push_str(&format!(", {} undetermined", rpo.unknown_undetermined));
    }
    if rpo.unexplained_keys > 0 {
        evidence.push_str(&format!(
            "; {} in a state the ledger cannot explain, so more writes may be lost",
            count(rpo.unexplained_keys, "key", "keys")
        ));
    }
    if behind {
        evidence.push_str(&format!(
            "; c had not caught up (fence not reached); {} not on c yet may still arrive",
            count(rpo.lost_writes, "acknowledged write", "acknowledged writes")
        ));
    }
    let observed = if behind {
        format!(
            "{} not on c yet (c behind)",
            count(rpo.lost_writes, "acknowledged write", "acknowledged writes")
        )
    } else {
        format!(
            "{} on {}",
            count(
                rpo.lost_writes,
                "acknowledged write lost",
                "acknowledged writes lost"
            ),
            rpo.node
        )
    };
    result(NAME, verdict, &expected, observed, evidence)
}

/// Every row comparison matched once the faults were healed. The ledger is left out: writes
/// lost in a failover are the RPO's business.
pub(super) fn consistent_after_heal(facts: &RunFacts) -> ExpectationResult {
    const NAME: &str = "consistent_after_heal";
    let expected = "after every fault is healed, c equals the reference row for row (lost \
                    writes are judged by rpo_max_writes)";
    if !facts.verify.iter().any(|r| r.target == "c") {
        return result(
            NAME,
            Verdict::Unknown,
            expected,
            "c was not verified",
            "no row comparison of c was recorded",
        );
    }
    let mut verdict = Verdict::all(facts.verify.iter().map(|r| r.verdict));
    let (mut observed, mut evidence): (Vec<String>, Vec<String>) =
        facts.verify.iter().map(verify_summary).unzip();
    if let Some(obs) = facts.observations {
        if let Some(h) = obs.last_heal_ms {
            evidence.insert(0, format!("last fault healed at {}", at(h)));
        }
        // A fault still in place means the comparison was not made after healing.
        for f in &obs.faults {
            if f.injected_ms.is_some() && f.healed_ms.is_none() && !one_shot(&f.kind) {
                verdict = verdict.merge(Verdict::Unknown);
                let injected = f.injected_ms.map(at_u).unwrap_or_default();
                observed.push(format!("{} never healed", f.kind));
                evidence.push(format!(
                    "{} (injected at {injected}) was never healed",
                    f.description
                ));
            }
        }
    }
    result(
        NAME,
        verdict,
        expected,
        observed.join("; "),
        evidence.join("; "),
    )
}

/// C caught up within `limit` of the last heal.
pub(super) fn converges_within(
    limit: Duration,
    obs: Option<&Observations>,
    missed: Option<&super::CatchupMissed>,
) -> ExpectationResult {
    const NAME: &str = "converges_within";
    let expected = format!(
        "c caught up within {} of the last heal",
        fmt_duration(limit)
    );
    let Some(obs) = obs else {
        return not_observed(NAME, &expected);
    };
    let Some(heal) = obs.last_heal_ms else {
        return result(
            NAME,
            Verdict::Unknown,
            &expected,
            "no fault was healed",
            "no heal was recorded, so there was nothing to converge from",
        );
    };
    let Some(ms) = obs.convergence_ms else {
        // Not converged when the harness stopped waiting, the limit already past (or never
        // reachable): that is the finding, not a gap in the evidence.
        if let Some(m) = missed {
            let since_heal = (m.gave_up_at_ms - heal).max(0) as u64;
            if m.over(since_heal, limit) {
                return result(
                    NAME,
                    Verdict::Invalid,
                    &expected,
                    "c did not catch up",
                    format!(
                        "c had not caught up {} after the last heal at {}{} ({})",
                        millis(since_heal),
                        at(heal),
                        if m.never { ", and never can" } else { "" },
                        m.reason
                    ),
                );
            }
        }
        return result(
            NAME,
            Verdict::Unknown,
            &expected,
            "not measured",
            format!(
                "no catch-up of c was measured after the last heal at {}",
                at(heal)
            ),
        );
    };
    let ok = Duration::from_millis(ms) <= limit;
    result(
        NAME,
        judged(ok),
        &expected,
        millis(ms),
        format!(
            "c had applied everything {} after the last heal at {} ({} the limit of {})",
            millis(ms),
            at(heal),
            within(ok),
            fmt_duration(limit)
        ),
    )
}

/// With A idle, slot creation on B waited, and completed soon after A was nudged.
pub(super) fn slot_waits_for_nudge(idle: Option<&IdlePrimary>) -> ExpectationResult {
    const NAME: &str = "slot_waits_for_nudge";
    let expected = format!(
        "with a idle, creating the slot on b waits until a is nudged, then completes within {}",
        fmt_duration(NUDGE_LIMIT)
    );
    let Some(i) = idle else {
        return result(
            NAME,
            Verdict::Unknown,
            &expected,
            "not rehearsed",
            "the run recorded no slot creation with an idle primary",
        );
    };
    let waited = millis(i.waited_without_nudge_ms);
    if !i.still_waiting_after_idle_wait && i.a_wrote_wal_during_wait {
        return result(
            NAME,
            Verdict::Unknown,
            &expected,
            "inconclusive: a was not idle",
            format!(
                "slot creation on b completed within the {waited} a was left without a nudge, \
                 but a wrote WAL meanwhile (something other than the harness ran on it): the \
                 running-xacts record may have come with that"
            ),
        );
    }
    if !i.still_waiting_after_idle_wait {
        return result(
            NAME,
            Verdict::Invalid,
            &expected,
            "completed without a nudge",
            format!(
                "slot creation on b completed within the {waited} a was left idle: a wrote a \
                 running-xacts record on its own"
            ),
        );
    }
    match i.completed_after_nudge_ms {
        None => result(
            NAME,
            Verdict::Invalid,
            &expected,
            "still waiting after the nudge",
            format!(
                "slot creation on b was still waiting after {waited} with a idle, and did not \
                 complete after pg_log_standby_snapshot() on a"
            ),
        ),
        Some(ms) => {
            let ok = Duration::from_millis(ms) <= NUDGE_LIMIT;
            result(
                NAME,
                judged(ok),
                &expected,
                format!("waited {waited}; completed {} after the nudge", millis(ms)),
                format!(
                    "slot creation on b was still waiting after {waited} with a idle; it \
                     completed {} after pg_log_standby_snapshot() on a ({} the limit of {})",
                    millis(ms),
                    within(ok),
                    fmt_duration(NUDGE_LIMIT)
                ),
            )
        }
    }
}
