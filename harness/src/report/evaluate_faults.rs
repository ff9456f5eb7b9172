//! Judging the expectations of fault rehearsals: lag, the logical slot's fate, the RPO,
//! consistency and convergence after healing, and slot creation on an idle primary. Missing
//! evidence is Unknown, never a pass; the evidence carries the numbers and when they were seen.

use std::time::Duration;

use super::IdlePrimary;
use super::charts::one_shot;
use super::evaluate::{ExpectationResult, RunFacts, verify_summary};
use super::sections::{at_us, lost_list, slot_fate, status_timeline, write_line};
use super::text::{against, at, at_u, count, millis, secs_against};
use crate::faults::FaultRecord;
use crate::observe::{Failover, Observations, SlotOutcome};
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

/// The end-to-end lag (heartbeat) never exceeded `limit`. The heartbeat only shows lag in
/// steps of the gap between heartbeats: a write committed just after the heartbeat C shows was
/// up to one gap older than the lag measured. A peak within the limit by less than that gap
/// settles nothing.
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
        "{measured} of {} measured it, one every {}; {}",
        count(obs.samples, "sample", "samples"),
        millis(obs.sample_every_ms),
        heartbeat_resolution(obs)
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
    let (shown, limit_shown) = secs_against(peak.value, limit);
    let peak_us = (peak.value.max(0.0) * 1e6).round();
    let margin_us = limit.as_micros() as f64 - peak_us;
    let step_ms = obs.e2e_resolution_ms();
    let verdict = if margin_us < 0.0 {
        Verdict::Invalid
    } else if margin_us < (step_ms * 1000) as f64 {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    let mut evidence = format!(
        "end-to-end lag peaked at {shown} at {} ({} the limit of {limit_shown}); {resolution}",
        at(peak.at_ms),
        within(verdict != Verdict::Invalid),
    );
    if verdict == Verdict::Unknown {
        evidence.push_str(
            "; within the limit by less than that, so the true peak may have been over it",
        );
    }
    result(
        NAME,
        verdict,
        &expected,
        format!("peak {shown} at {}", at(peak.at_ms)),
        evidence,
    )
}

/// "heartbeat every 100ms, so lag is known to about 100ms", with the gap achieved when the
/// heartbeats came slower than asked.
pub(super) fn heartbeat_resolution(obs: &Observations) -> String {
    let step = obs.e2e_resolution_ms();
    let achieved = if step > obs.heartbeat_every_ms {
        format!(" (committed one every {} on average)", millis(step))
    } else {
        String::new()
    };
    format!(
        "heartbeat every {}{achieved}, so lag is known to about {}",
        millis(obs.heartbeat_every_ms),
        millis(step)
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
    rpo.judged_at_ms.is_none()
        && obs.failover.is_none()
        && rpo.node == "c"
        && c_may_catch_up(Some(obs), missed).is_some()
}

/// The fence C had not reached, when what C lacks may still be on its way: the harness
/// stopped waiting, C's slot was not seen unusable, and nothing showed C could never catch up.
fn c_may_catch_up<'a>(
    obs: Option<&Observations>,
    missed: Option<&'a super::CatchupMissed>,
) -> Option<&'a super::CatchupMissed> {
    let slot_dead = obs
        .and_then(|o| o.slot.as_ref())
        .is_some_and(|s| slot_usable(s) == Some(false));
    missed.filter(|m| !m.never && !slot_dead)
}

/// Whether the workload was writing to A when it was killed: Ok says so, naming the last
/// write A acknowledged; Err says why a failover then proves nothing about lost writes. A
/// commit still waiting counts: under synchronous replication cut off from B, A acknowledges
/// nothing in its last moments, and an RPO of 0 is then the finding.
fn load_at_kill(f: &Failover, obs: &Observations) -> Result<String, String> {
    // A second, or a few heartbeats when they came slower.
    let window_ms = (3 * obs.e2e_resolution_ms()).max(1_000);
    let killed_us = u64::try_from(f.killed_ms).unwrap_or(0).saturating_mul(1000);
    let before = |us: u64| millis(killed_us.saturating_sub(us) / 1000);
    let acknowledged = match &f.last_write_on_a {
        Some(w) => format!(
            "the last write a acknowledged was {} at {}, {} before",
            write_line(w),
            at_us(w.done_us),
            before(w.done_us)
        ),
        None => "a acknowledged no write".into(),
    };
    let killed = at(f.killed_ms);
    let none_lost = "none could be lost, so the failover says nothing about the RPO";
    match f.a_busy_until_us {
        Some(busy) if busy >= killed_us => Ok(format!(
            "a was killed at {killed} with a write in flight; {acknowledged}"
        )),
        Some(busy) if killed_us - busy <= window_ms * 1000 => Ok(format!(
            "a was written to until {}, {} before it was killed at {killed}; {acknowledged}",
            at_us(busy),
            before(busy)
        )),
        Some(busy) => Err(format!(
            "a was last written to at {}, {} before it was killed at {killed} (more than {}; \
             {acknowledged}): {none_lost}",
            at_us(busy),
            before(busy),
            millis(window_ms)
        )),
        None => Err(format!(
            "no write was sent to a before it was killed at {killed}: {none_lost}"
        )),
    }
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
    // A failover while a was not writing: nothing could be lost, so within the limit is no
    // evidence of anything. Writes seen lost prove it was written to, whatever the ledger's
    // timing says: the idle rule, and its words, are then left out.
    let load = obs
        .failover
        .as_ref()
        .map(|f| load_at_kill(f, obs))
        .filter(|l| l.is_ok() || rpo.lost_writes == 0);
    let idle = matches!(load, Some(Err(_)));
    // Unexplained keys may hide lost writes: within the limit is then only a lower bound.
    let verdict = if ok && (rpo.unexplained_keys > 0 || idle) || !ok && behind {
        Verdict::Unknown
    } else {
        judged(ok)
    };
    let when = match rpo.judged_at_ms {
        Some(ms) => format!(" at its promotion ({})", at(ms)),
        None => String::new(),
    };
    // A lower bound: writes whose effects cancel out are not seen missing.
    let missing = if rpo.lost_writes == 0 {
        "no write a acknowledged is seen missing".to_string()
    } else {
        format!(
            "at least {} missing",
            count(
                rpo.lost_writes,
                "write a acknowledged is",
                "writes a acknowledged are"
            )
        )
    };
    let mut evidence = format!(
        "{missing} on {}{when} ({} the limit of {n})",
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
    if let Some(Ok(said) | Err(said)) = &load {
        evidence.push_str(&format!("; {said}"));
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
    } else if idle && ok {
        format!(
            "nothing written when a was killed; {} lost",
            rpo.lost_writes
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
    // Compared before c had caught up: what differs may still have been on its way. Rows that
    // match are a match all the same.
    if verdict == Verdict::Invalid
        && let Some(m) = c_may_catch_up(facts.observations, facts.catchup_missed)
    {
        verdict = Verdict::Unknown;
        observed.push("c had not caught up".into());
        evidence.push(format!(
            "c had not caught up when it was compared (fence not reached after {}: {}), so \
             what differs may still have been on its way",
            millis(m.waited_ms),
            m.reason
        ));
    }
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
    let (took, limit) = against(Duration::from_millis(ms), limit);
    result(
        NAME,
        judged(ok),
        &expected,
        took.clone(),
        format!(
            "c had applied everything {took} after the last heal at {} ({} the limit of {limit})",
            at(heal),
            within(ok),
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
            let (took, limit) = against(Duration::from_millis(ms), NUDGE_LIMIT);
            result(
                NAME,
                judged(ok),
                &expected,
                format!("waited {waited}; completed {took} after the nudge"),
                format!(
                    "slot creation on b was still waiting after {waited} with a idle; it \
                     completed {took} after pg_log_standby_snapshot() on a ({} the limit of \
                     {limit})",
                    within(ok),
                ),
            )
        }
    }
}
