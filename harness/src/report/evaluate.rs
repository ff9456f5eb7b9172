//! Judging a scenario's expectations against what the run observed.

use std::time::Duration;

use super::IdlePrimary;
use super::evaluate_faults as faults;
use super::text::{against, at, count, key_list, millis};
use crate::observe::Observations;
use crate::scenario::Expectations;
use crate::util::fmt_duration;
use crate::verdict::Verdict;
use crate::verify::{DriftKind, SequenceStatus, TableStatus, VerifyReport};
use crate::workload::LedgerCheck;

/// One expectation, judged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExpectationResult {
    /// The expectation's key in the scenario file ("consistent", "max_catchup", ...).
    pub name: String,
    /// Whether it held.
    pub verdict: Verdict,
    /// What the scenario asked for, in words.
    pub expected: String,
    /// What the run saw, in a few words.
    pub observed: String,
    /// The numbers behind the verdict.
    pub evidence: String,
}

/// What the run observed, as far as expectations care.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFacts<'a> {
    /// Time from the end of the workload until C had applied everything, if measured.
    pub catchup: Option<Duration>,
    /// The fence C did not reach, if it did not.
    pub catchup_missed: Option<&'a super::CatchupMissed>,
    /// Whether the workload ran (then its ledger must have been checked).
    pub workload_ran: bool,
    /// Row-level comparisons.
    pub verify: &'a [VerifyReport],
    /// Ledger checks.
    pub ledger: &'a [LedgerCheck],
    /// Lag, WAL, faults, slot fate, failover and RPO, if the chain was observed.
    pub observations: Option<&'a Observations>,
    /// Slot creation on B with an idle A, if rehearsed.
    pub idle_primary: Option<&'a IdlePrimary>,
    /// The run was cut short: `observations` cover only part of it.
    pub cut_short: bool,
}

impl<'a> RunFacts<'a> {
    /// The facts recorded in a report so far.
    pub fn of(report: &'a super::Report) -> RunFacts<'a> {
        RunFacts {
            catchup: report.catchup_ms.map(Duration::from_millis),
            catchup_missed: report.catchup_missed.as_ref(),
            workload_ran: report.workload.is_some(),
            verify: &report.verify,
            ledger: &report.ledger,
            observations: report.observations.as_ref(),
            idle_primary: report.idle_primary.as_ref(),
            cut_short: report.cut_short,
        }
    }
}

/// Judge every expectation the scenario sets, in the order of [`Expectations`]' fields. Only
/// `consistent` is on by default; the others are judged when the scenario asks for them.
pub fn evaluate(expect: &Expectations, facts: &RunFacts) -> Vec<ExpectationResult> {
    let mut out = Vec::new();
    if expect.consistent {
        out.push(consistent(facts));
    }
    if let Some(limit) = expect.max_catchup {
        out.push(max_catchup(limit, facts));
    }
    if expect.sequences_match {
        out.push(sequences_match(facts));
    }
    // Over the whole run: a run cut short proves no more than what it saw. A lag peak over the
    // limit and a slot invalidated are for good; a lag within it and a slot usable so far are
    // only so far.
    if let Some(limit) = expect.max_e2e_lag {
        let r = faults::max_e2e_lag(limit, facts.observations);
        out.push(so_far(r, Verdict::Valid, facts));
    }
    if let Some(want) = expect.slot_survives {
        let r = faults::slot_survives(want, facts.observations);
        let usable_so_far = if want {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
        out.push(so_far(r, usable_so_far, facts));
    }
    if let Some(reason) = &expect.slot_invalidated {
        let r = faults::slot_invalidated(reason, facts.observations);
        let invalidated = facts
            .observations
            .and_then(|o| o.slot.as_ref())
            .is_some_and(|s| s.invalidation_reason.is_some());
        out.push(if invalidated {
            r
        } else {
            so_far(r, Verdict::Invalid, facts)
        });
    }
    if let Some(n) = expect.rpo_max_writes {
        out.push(faults::rpo_max_writes(
            n,
            facts.observations,
            facts.catchup_missed,
        ));
    }
    if expect.consistent_after_heal {
        out.push(faults::consistent_after_heal(facts));
    }
    if let Some(limit) = expect.converges_within {
        out.push(faults::converges_within(
            limit,
            facts.observations,
            facts.catchup_missed,
        ));
    }
    if expect.slot_waits_for_nudge {
        out.push(faults::slot_waits_for_nudge(facts.idle_primary));
    }
    // Always judged when the scenario has faults: a rehearsal whose fault could not be
    // injected here did not rehearse what it says, whatever the other expectations found.
    if let Some(obs) = facts.observations
        && !obs.faults.is_empty()
    {
        out.push(faults::faults_injected(obs));
    }
    out
}

/// `r` as a run cut short leaves it: `unproven` (what the rest of the run could have changed)
/// becomes Unknown, and the evidence says why.
fn so_far(mut r: ExpectationResult, unproven: Verdict, facts: &RunFacts) -> ExpectationResult {
    if !facts.cut_short || r.verdict != unproven {
        return r;
    }
    r.verdict = Verdict::Unknown;
    let until = facts
        .observations
        .and_then(|o| o.series.last())
        .map_or(String::new(), |p| {
            format!(" (samples end at {})", at(p.t_ms))
        });
    r.observed.push_str(" (run cut short)");
    r.evidence.push_str(&format!(
        "; the run was cut short{until}, so what the rest of it would have shown is not known"
    ));
    r
}

/// C equals the reference, and the ledger finds no acknowledged write missing.
fn consistent(facts: &RunFacts) -> ExpectationResult {
    let expected = "c equals the reference row for row; no acknowledged write lost".to_string();
    if !facts.verify.iter().any(|r| r.target == "c") {
        return ExpectationResult {
            name: "consistent".into(),
            verdict: Verdict::Unknown,
            expected,
            observed: "c was not verified".into(),
            evidence: "no row comparison of c was recorded".into(),
        };
    }
    let mut verdict = Verdict::all(
        facts
            .verify
            .iter()
            .map(|r| r.verdict)
            .chain(facts.ledger.iter().map(|l| l.verdict)),
    );
    let mut observed = Vec::new();
    let mut evidence = Vec::new();

    for r in facts.verify {
        let (short, long) = verify_summary(r);
        observed.push(short);
        evidence.push(long);
    }
    for l in facts.ledger {
        let (short, long) = ledger_summary(l);
        observed.push(short);
        evidence.push(long);
    }
    // Equal rows do not show that no acknowledged write was lost: only the ledger does.
    if facts.workload_ran && facts.ledger.is_empty() {
        verdict = verdict.merge(Verdict::Unknown);
        observed.push("ledger not checked".to_string());
        evidence.push("the run ended before the ledger of acknowledged writes was checked".into());
    }
    ExpectationResult {
        name: "consistent".into(),
        verdict,
        expected,
        observed: observed.join("; "),
        evidence: evidence.join("; "),
    }
}

/// A few words and the full numbers for one comparison.
pub(super) fn verify_summary(r: &VerifyReport) -> (String, String) {
    let who = format!("{} vs {}", r.target, r.reference);
    let rows: u64 = r.tables.iter().map(|t| t.rows_reference).sum();
    let differ: Vec<_> = r
        .tables
        .iter()
        .filter(|t| t.status == TableStatus::Differ)
        .collect();
    let failed: Vec<_> = r
        .tables
        .iter()
        .filter(|t| t.status == TableStatus::Error)
        .collect();
    let mut short = Vec::new();
    let mut long = Vec::new();
    if !differ.is_empty() {
        let n = count(differ.len() as u64, "table differs", "tables differ");
        short.push(n.clone());
        let detail: Vec<String> = differ
            .iter()
            .map(|t| {
                let mut parts = Vec::new();
                for (n, what) in [
                    (t.missing.count, "missing"),
                    (t.changed.count, "changed"),
                    (t.extra.count, "extra"),
                ] {
                    if n > 0 {
                        parts.push(format!("{n} {what}"));
                    }
                }
                format!("{}: {}", t.table, parts.join(", "))
            })
            .collect();
        long.push(format!("{n} ({})", detail.join("; ")));
    }
    if !failed.is_empty() {
        let n = count(
            failed.len() as u64,
            "table could not be compared",
            "tables could not be compared",
        );
        short.push(n.clone());
        let detail: Vec<String> = failed
            .iter()
            .map(|t| {
                format!(
                    "{}: {}",
                    t.table,
                    t.error.as_deref().unwrap_or("no reason recorded")
                )
            })
            .collect();
        long.push(format!("{n} ({})", detail.join("; ")));
    }
    let (widened, drift): (Vec<_>, Vec<_>) = r
        .schema
        .iter()
        .partition(|d| d.kind == DriftKind::TypeWidened);
    if !drift.is_empty() {
        let n = count(
            drift.len() as u64,
            "schema difference",
            "schema differences",
        );
        short.push(n.clone());
        let detail: Vec<String> = drift
            .iter()
            .map(|d| format!("{}: {}", d.object, super::sections::drift_words(d.kind)))
            .collect();
        long.push(format!("{n} ({})", detail.join("; ")));
    }
    if short.is_empty() {
        let mut what = format!(
            "{} match ({})",
            count(r.tables.len() as u64, "table", "tables"),
            count(rows, "row", "rows")
        );
        if !widened.is_empty() {
            let cols: Vec<&str> = widened.iter().map(|d| d.object.as_str()).collect();
            what.push_str(&format!(
                "; {} on the target ({})",
                count(widened.len() as u64, "type widened", "types widened"),
                cols.join(", ")
            ));
        }
        if r.verdict == Verdict::Valid {
            return (format!("{who}: {what}"), format!("{who}: {what}"));
        }
        // A verdict the tables do not explain: say so rather than guess.
        let s = format!("{who}: verdict {}", r.verdict);
        return (s.clone(), format!("{s}; {what}"));
    }
    (
        format!("{who}: {}", short.join(", ")),
        format!("{who}: {}", long.join("; ")),
    )
}

/// A few words and the full numbers for one ledger check.
fn ledger_summary(l: &LedgerCheck) -> (String, String) {
    let who = format!("ledger on {}", l.node);
    let short = if !l.lost.is_empty() {
        // The final state shows a key's last acknowledged write missing, not how many writes
        // before it never arrived: the count is of keys.
        format!(
            "{who}: acknowledged writes lost on {}",
            count(l.lost.count, "key", "keys")
        )
    } else if !l.unexplained.is_empty() {
        format!(
            "{who}: {} in a state no order of the acknowledged writes explains",
            count(l.unexplained.count, "key", "keys")
        )
    } else {
        format!(
            "{who}: no acknowledged write lost ({} checked)",
            count(l.keys_checked, "key", "keys")
        )
    };
    let mut long = vec![format!("{} checked", count(l.keys_checked, "key", "keys"))];
    long.push(key_list("lost", &l.lost));
    if !l.unexplained.is_empty() {
        long.push(key_list("unexplained", &l.unexplained));
    }
    if l.unknown_applied + l.unknown_not_applied > 0 {
        long.push(format!(
            "unknown outcomes: {} applied, {} not applied",
            l.unknown_applied, l.unknown_not_applied
        ));
    }
    if l.verdict == Verdict::Unknown {
        long.push("verdict unknown".into());
    }
    (short, format!("{who}: {}", long.join(", ")))
}

/// C caught up within the limit once the workload stopped (without a workload: once the
/// faults' schedule ended).
fn max_catchup(limit: Duration, facts: &RunFacts) -> ExpectationResult {
    let expected = format!("c caught up within {}", fmt_duration(limit));
    let faults = facts.observations.is_some_and(|o| !o.faults.is_empty());
    let since = match (facts.workload_ran, faults) {
        (true, _) => "the workload ended",
        (false, true) => "the fault schedule ended",
        (false, false) => "the chain was built",
    };
    let missed = facts.catchup_missed;
    match facts.catchup {
        // Not caught up when the limit had already passed, or never can: over the limit.
        None if let Some(m) = missed.filter(|m| m.over(m.waited_ms, limit)) => ExpectationResult {
            name: "max_catchup".into(),
            verdict: Verdict::Invalid,
            expected,
            observed: "c did not catch up".into(),
            evidence: if m.never {
                format!(
                    "c can never catch up ({}), as seen {} after {since}",
                    m.reason,
                    millis(m.waited_ms)
                )
            } else {
                let (waited, limit) = against(Duration::from_millis(m.waited_ms), limit);
                format!(
                    "c had not caught up {waited} after {since}, over the limit of {limit} ({})",
                    m.reason
                )
            },
        },
        None => ExpectationResult {
            name: "max_catchup".into(),
            verdict: Verdict::Unknown,
            expected,
            observed: "not measured".into(),
            evidence: "the run ended before the catch-up fence was measured".into(),
        },
        Some(d) => {
            let ok = d <= limit;
            let (took, limit) = against(d, limit);
            ExpectationResult {
                name: "max_catchup".into(),
                verdict: if ok { Verdict::Valid } else { Verdict::Invalid },
                expected,
                observed: took.clone(),
                evidence: format!(
                    "c applied everything {took} after {since} ({} the limit of {limit})",
                    if ok { "within" } else { "over" },
                ),
            }
        }
    }
}

/// Every sequence on C has A's value.
fn sequences_match(facts: &RunFacts) -> ExpectationResult {
    let expected = "sequences on c equal the reference".to_string();
    let reports: Vec<_> = facts.verify.iter().filter(|r| r.target == "c").collect();
    if reports.is_empty() {
        return ExpectationResult {
            name: "sequences_match".into(),
            verdict: Verdict::Unknown,
            expected,
            observed: "c was not verified".into(),
            evidence: "no comparison of c was recorded".into(),
        };
    }
    let mut verdict = Verdict::Valid;
    let mut observed = Vec::new();
    let mut evidence = Vec::new();
    for r in reports {
        let bad: Vec<_> = r
            .sequences
            .iter()
            .filter(|s| s.status != SequenceStatus::Match)
            .collect();
        let who = format!("{} vs {}", r.target, r.reference);
        if bad.is_empty() {
            let n = count(
                r.sequences.len() as u64,
                "sequence matches",
                "sequences match",
            );
            observed.push(format!("{who}: {n}"));
            evidence.push(format!("{who}: {n}"));
            continue;
        }
        verdict = Verdict::Invalid;
        let n = count(bad.len() as u64, "sequence differs", "sequences differ");
        observed.push(format!("{who}: {n}"));
        let show = |v: Option<i64>| v.map_or("none".to_string(), |v| v.to_string());
        let detail: Vec<String> = bad
            .iter()
            .map(|s| {
                format!(
                    "{}: {}={} {}={}",
                    s.sequence,
                    r.reference,
                    show(s.reference),
                    r.target,
                    show(s.target)
                )
            })
            .collect();
        evidence.push(format!("{who}: {n} ({})", detail.join("; ")));
    }
    ExpectationResult {
        name: "sequences_match".into(),
        verdict,
        expected,
        observed: observed.join("; "),
        evidence: evidence.join("; "),
    }
}
