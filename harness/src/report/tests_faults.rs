//! Reports of fault rehearsals over hand-built observations: a latency window on a → b, WAL
//! pressure that loses the slot, and a primary failure with lost writes. Each new expectation
//! is judged pass / fail / unknown, and every rendering (JSON, Markdown, JUnit, HTML and each
//! SVG) is pinned as an insta snapshot.

use std::time::Duration;

use chrono::DateTime;
use chrono::Utc;

use super::tests::{at, base_report, keys, ledger_ok, matching_tables, table};
use super::*;
use crate::faults::FaultRecord;
use crate::observe::{Failover, Observations, Peak, Peaks, Rpo, SeriesPoint, SlotOutcome};
use crate::scenario::Expectations;
use crate::verdict::Verdict;
use crate::verify::{TableDiff, TableStatus, VerifyReport};
use crate::workload::{LedgerCheck, OpKind, WriteRef};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The maximum of one field over the series, with when it was first reached.
fn peak(series: &[SeriesPoint], f: impl Fn(&SeriesPoint) -> Option<f64>) -> Option<Peak> {
    let mut best: Option<Peak> = None;
    for p in series {
        if let Some(v) = f(p)
            && best.is_none_or(|b| v > b.value)
        {
            best = Some(Peak {
                value: v,
                at_ms: p.t_ms,
            });
        }
    }
    best
}

fn peaks(s: &[SeriesPoint]) -> Peaks {
    let b = |v: Option<u64>| v.map(|v| v as f64);
    Peaks {
        ab_bytes: peak(s, |p| b(p.ab_bytes)),
        ab_s: peak(s, |p| p.ab_s),
        bc_bytes: peak(s, |p| b(p.bc_bytes)),
        bc_s: peak(s, |p| p.bc_s),
        e2e_bytes: peak(s, |p| b(p.e2e_bytes)),
        e2e_s: peak(s, |p| p.e2e_s),
        a_wal_bytes: peak(s, |p| b(p.a_wal_bytes)),
        b_wal_bytes: peak(s, |p| b(p.b_wal_bytes)),
        a_slot_retained: peak(s, |p| b(p.a_slot_retained)),
        b_slot_retained: peak(s, |p| b(p.b_slot_retained)),
    }
}

/// Seconds from milliseconds: the nearest double to a short decimal, as a sampler reading
/// PostgreSQL's text output gets it, so the JSON round trip is exact.
fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn fault(kind: &str, description: &str, injected: u64, healed: Option<u64>) -> FaultRecord {
    FaultRecord {
        kind: kind.into(),
        description: description.into(),
        injected_ms: Some(injected),
        healed_ms: healed,
        error: None,
        churn: None,
        checkpoint: None,
    }
}

fn named(name: &str, description: &str) -> Report {
    let mut r = base_report();
    r.scenario.name = name.into();
    r.scenario.path = format!("/work/scenarios/{name}.toml").into();
    r.scenario.description = Some(description.into());
    r.run_id = format!("20260314-120000-{name}-1a2b");
    r.run_dir = format!("/var/lib/pgrehearse/runs/{}", r.run_id).into();
    r.catchup_ms = Some(700);
    r
}

fn c_vs(reference: &str, verdict: Verdict, tables: Vec<TableDiff>) -> VerifyReport {
    VerifyReport {
        reference: reference.into(),
        target: "c".into(),
        verdict,
        tables,
        sequences: vec![],
        schema: vec![],
        elapsed_ms: 1_210,
    }
}

fn judge(r: &mut Report, expect: &Expectations, finished: DateTime<Utc>) {
    r.expectations = evaluate(expect, &RunFacts::of(r));
    r.conclude(finished);
}

/// 500ms of latency on a → b from 10 s to 20 s: replay lag climbs while the window is open,
/// drains after the heal, and the hops go idle (NULL lag) once the workload stops at 27 s.
/// Slot creation on b was first rehearsed with a idle.
fn lag_run() -> Report {
    let mut series = Vec::new();
    for t in 0..=30i64 {
        let in_window = (10..=20).contains(&t);
        let idle = t >= 27;
        let ab_bytes = if in_window {
            (t as u64 - 10) * 160 * KIB + 4 * KIB
        } else if t == 21 {
            96 * KIB
        } else if idle {
            0
        } else {
            4 * KIB
        };
        let ab_s = if idle {
            None
        } else if in_window {
            Some(secs(20 + 50 * (t - 10)))
        } else if t == 21 {
            Some(0.1)
        } else {
            Some(0.002)
        };
        // The latency is on the wire: write and flush lag carry nearly all of the replay lag.
        let (ab_write_s, ab_flush_s) = if idle {
            (None, None)
        } else if in_window {
            (
                Some(secs(18 + 50 * (t - 10))),
                Some(secs(19 + 50 * (t - 10))),
            )
        } else if t == 21 {
            (Some(0.098), Some(0.099))
        } else {
            (Some(0.001), Some(0.0015))
        };
        let bc_bytes = if idle { 0 } else { 2 * KIB };
        let e2e_bytes = ab_bytes + bc_bytes;
        let e2e_s = if in_window {
            secs(150 + 50 * (t - 10))
        } else {
            0.15
        };
        series.push(SeriesPoint {
            t_ms: t * 1000,
            ab_bytes: Some(ab_bytes),
            ab_s,
            ab_write_s,
            ab_flush_s,
            bc_bytes: Some(bc_bytes),
            bc_s: if idle { None } else { Some(0.003) },
            e2e_bytes: Some(e2e_bytes),
            e2e_s: Some(e2e_s),
            a_wal_bytes: Some(48 * MIB + t as u64 * 512 * KIB),
            b_wal_bytes: Some(48 * MIB + t as u64 * 480 * KIB),
            a_slot_retained: Some(ab_bytes),
            b_slot_retained: Some(e2e_bytes),
            no_seconds: if idle {
                [("b→c".into(), crate::observe::NoSeconds::Idle)].into()
            } else {
                Default::default()
            },
            b_slot_status: Some("reserved".into()),
        });
    }
    let mut r = named("lag-ab", "500ms of latency on a → b for 10 s");
    r.observations = Some(Observations {
        sample_every_ms: 1000,
        heartbeat_every_ms: 200,
        heartbeat_gap_ms: None,
        samples: series.len() as u64,
        peaks: peaks(&series),
        series,
        faults: vec![fault(
            "latency",
            "latency 500ms on a-b",
            10_000,
            Some(20_000),
        )],
        slot: Some(SlotOutcome {
            slot: "pgrehearse_c".into(),
            survived: Some(true),
            invalidation_reason: None,
            invalidated_at_ms: None,
            wal_status_changes: vec![(0, "reserved".into())],
            resync_needed: false,
            ..SlotOutcome::default()
        }),
        failover: None,
        rpo: None,
        convergence_ms: Some(1_840),
        last_heal_ms: Some(20_000),
        findings: vec![
            "a → b latency delays c by the same amount: end-to-end lag peaked 0.50s above its \
             baseline while the window was open"
                .into(),
        ],
    });
    r.idle_primary = Some(IdlePrimary {
        idle_after_ms: 16_000,
        waited_without_nudge_ms: 20_000,
        still_waiting_after_idle_wait: true,
        completed_after_nudge_ms: Some(140),
        a_wrote_wal_during_wait: false,
    });
    r.verify = vec![c_vs("a", Verdict::Valid, matching_tables())];
    r.ledger = vec![ledger_ok()];
    let expect = Expectations {
        max_e2e_lag: Some(Duration::from_secs(1)),
        slot_survives: Some(true),
        consistent_after_heal: true,
        converges_within: Some(Duration::from_secs(10)),
        slot_waits_for_nudge: true,
        ..Expectations::default()
    };
    judge(&mut r, &expect, at(12, 0, 45));
    r
}

/// The b → c consumer stopped at 5 s: b retains WAL for c's slot until, after the checkpoint
/// at 40 s, the slot is lost (wal_removed) at 41 s. Re-enabling the consumer at 50 s cannot
/// help: c needs a full resync.
fn wal_run() -> Report {
    let mut series = Vec::new();
    for i in 0..=30i64 {
        let t = i * 2;
        let stopped = t >= 5;
        let lost = t >= 41;
        let behind = if stopped { (t - 5) as u64 * 4 * MIB } else { 0 };
        series.push(SeriesPoint {
            t_ms: t * 1000,
            ab_bytes: Some(8 * KIB),
            ab_s: Some(0.004),
            ab_write_s: Some(0.001),
            ab_flush_s: Some(0.002),
            bc_bytes: Some(behind),
            bc_s: if stopped { None } else { Some(0.003) },
            e2e_bytes: Some(behind + 8 * KIB),
            e2e_s: Some(if stopped {
                secs((t - 5) * 1000 + 200)
            } else {
                0.2
            }),
            a_wal_bytes: Some(64 * MIB + t as u64 * MIB),
            b_wal_bytes: Some(if lost { 80 * MIB } else { 64 * MIB + behind }),
            a_slot_retained: Some(8 * KIB),
            b_slot_retained: if lost { None } else { Some(behind) },
            no_seconds: Default::default(),
            b_slot_status: Some(
                match t {
                    _ if lost => "lost",
                    30.. => "extended",
                    _ => "reserved",
                }
                .into(),
            ),
        });
    }
    let mut r = named(
        "wal-pressure",
        "consumer stopped with max_slot_wal_keep_size = 128MB on b",
    );
    r.observations = Some(Observations {
        sample_every_ms: 2000,
        heartbeat_every_ms: 500,
        heartbeat_gap_ms: None,
        samples: series.len() as u64,
        peaks: peaks(&series),
        series,
        faults: vec![
            fault(
                "replicator_stop",
                "b → c consumer stopped",
                5_000,
                Some(50_000),
            ),
            fault(
                "checkpoint",
                "checkpoint on a, restartpoint on b",
                40_000,
                None,
            ),
        ],
        slot: Some(SlotOutcome {
            slot: "pgrehearse_c".into(),
            survived: Some(false),
            invalidation_reason: Some("wal_removed".into()),
            invalidated_at_ms: Some(41_000),
            wal_status_changes: vec![
                (0, "reserved".into()),
                (30_000, "extended".into()),
                (41_000, "lost".into()),
            ],
            resync_needed: true,
            ..SlotOutcome::default()
        }),
        failover: None,
        rpo: None,
        convergence_ms: None,
        last_heal_ms: Some(50_000),
        findings: vec![
            "the logical slot on b went from extended to lost (wal_removed) at the restartpoint \
             after max_slot_wal_keep_size was exceeded; re-enabling the subscription fails with \
             \"can no longer get changes from replication slot\""
                .into(),
        ],
    });
    let mut tables = matching_tables();
    tables[0] = TableDiff {
        status: TableStatus::Differ,
        rows_target: 1_500,
        missing: keys(312, &["1501", "1502", "1503"]),
        ..table("rehearse.accounts", 1812)
    };
    r.verify = vec![c_vs("a", Verdict::Invalid, tables)];
    r.ledger = vec![LedgerCheck {
        verdict: Verdict::Invalid,
        lost: keys(312, &["rehearse.accounts 1501 op=2001"]),
        ..ledger_ok()
    }];
    let expect = Expectations {
        consistent: false,
        max_e2e_lag: Some(Duration::from_secs(30)),
        slot_survives: Some(false),
        slot_invalidated: Some("wal_removed".into()),
        consistent_after_heal: true,
        converges_within: Some(Duration::from_secs(60)),
        ..Expectations::default()
    };
    judge(&mut r, &expect, at(12, 1, 10));
    r
}

/// A ledger write on `rehearse.accounts` sent to a, answered 2 ms after it was sent.
fn write(
    op: u64,
    key: &str,
    kind: OpKind,
    done_us: u64,
    applied: Option<bool>,
    found_op: Option<u64>,
) -> WriteRef {
    WriteRef {
        op,
        table: "rehearse.accounts".into(),
        key: key.into(),
        kind,
        node: "a".into(),
        sent_us: done_us - 2_000,
        done_us,
        applied,
        found_op,
    }
}

/// A killed at 15 s, b promoted at 17.3 s; the slot on b carries on (active again in the
/// sample at 18 s), and three writes a had acknowledged (on two keys) never reached b.
fn failover_run() -> Report {
    let mut series = Vec::new();
    for t in 0..=30i64 {
        let a_up = t < 15;
        let switching = (15..18).contains(&t);
        series.push(SeriesPoint {
            t_ms: t * 1000,
            ab_bytes: a_up.then_some(12 * KIB),
            ab_s: a_up.then_some(0.004),
            ab_write_s: a_up.then_some(0.001),
            ab_flush_s: a_up.then_some(0.002),
            bc_bytes: Some(if switching { 0 } else { 3 * KIB }),
            bc_s: if switching { None } else { Some(0.003) },
            e2e_bytes: if a_up { Some(15 * KIB) } else { Some(3 * KIB) },
            e2e_s: Some(if switching {
                secs((t - 14) * 1000 + 200)
            } else {
                0.2
            }),
            a_wal_bytes: a_up.then_some(64 * MIB),
            b_wal_bytes: Some(64 * MIB),
            a_slot_retained: a_up.then_some(12 * KIB),
            b_slot_retained: Some(3 * KIB),
            no_seconds: Default::default(),
            b_slot_status: Some("reserved".into()),
        });
    }
    let mut r = named("failover", "kill a mid-workload, promote b");
    r.observations = Some(Observations {
        sample_every_ms: 1000,
        heartbeat_every_ms: 200,
        heartbeat_gap_ms: None,
        samples: series.len() as u64,
        peaks: peaks(&series),
        series,
        faults: vec![fault(
            "primary_failure",
            "primary failure: kill a, promote b",
            15_000,
            None,
        )],
        slot: Some(SlotOutcome {
            slot: "pgrehearse_c".into(),
            survived: Some(true),
            wal_status_changes: vec![(0, "reserved".into())],
            ..SlotOutcome::default()
        }),
        failover: Some(Failover {
            killed_ms: 15_000,
            promoted_ms: 17_300,
            slot_carried_on: Some(true),
            slot_active_at_ms: Some(18_000),
            first_write_on_b_ms: Some(17_450),
            a_busy_until_us: Some(14_995_000),
            last_write_on_a: Some(write(4419, "8", OpKind::Update, 14_980_000, None, None)),
        }),
        rpo: Some(Rpo {
            node: "b".into(),
            judged_at_ms: Some(17_300),
            lost_writes: 3,
            lost_keys: 2,
            lost: vec![
                write(
                    4411,
                    "17",
                    OpKind::Update,
                    14_870_250,
                    Some(false),
                    Some(4398),
                ),
                write(4415, "42", OpKind::Insert, 14_910_000, Some(false), None),
                write(
                    4418,
                    "17",
                    OpKind::Delete,
                    14_952_499,
                    Some(false),
                    Some(4398),
                ),
            ],
            unknown_applied: 1,
            unknown_not_applied: 1,
            unknown_undetermined: 0,
            unknown: vec![
                write(
                    4420,
                    "51",
                    OpKind::Update,
                    14_990_000,
                    Some(true),
                    Some(4420),
                ),
                write(4421, "?", OpKind::Insert, 14_995_000, Some(false), None),
            ],
            unexplained_keys: 0,
        }),
        convergence_ms: None,
        last_heal_ms: None,
        findings: vec![],
    });
    r.verify = vec![c_vs("b", Verdict::Valid, matching_tables())];
    let expect = Expectations {
        consistent: false,
        max_e2e_lag: Some(Duration::from_secs(5)),
        slot_survives: Some(true),
        rpo_max_writes: Some(0),
        consistent_after_heal: true,
        ..Expectations::default()
    };
    judge(&mut r, &expect, at(12, 0, 50));
    r
}

fn verdicts(r: &Report) -> Vec<(&str, Verdict)> {
    r.expectations
        .iter()
        .map(|e| (e.name.as_str(), e.verdict))
        .collect()
}

fn evidence<'r>(r: &'r Report, name: &str) -> &'r str {
    &r.expectations
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} not judged"))
        .evidence
}

#[test]
fn lag_run_passes_with_its_numbers() {
    use Verdict::*;
    let r = lag_run();
    assert_eq!(
        verdicts(&r),
        [
            ("consistent", Valid),
            ("max_e2e_lag", Valid),
            ("slot_survives", Valid),
            ("consistent_after_heal", Valid),
            ("converges_within", Valid),
            ("slot_waits_for_nudge", Valid),
            ("faults_injected", Valid),
        ]
    );
    assert_eq!(r.verdict, Valid);
    assert_eq!(
        evidence(&r, "max_e2e_lag"),
        "end-to-end lag peaked at 650ms at t=20.0s (within the limit of 1000ms); 31 of 31 \
         samples measured it, one every 1.00s; heartbeat every 200ms, so lag is known to about \
         200ms"
    );
    assert_eq!(
        evidence(&r, "converges_within"),
        "c had applied everything 1.84s after the last heal at t=20.0s (within the limit of \
         10.00s)"
    );
    assert_eq!(
        evidence(&r, "slot_waits_for_nudge"),
        "slot creation on b was still waiting after 20.00s with a idle; it completed 140ms \
         after pg_log_standby_snapshot() on a (within the limit of 5000ms)"
    );
    assert_eq!(
        evidence(&r, "consistent_after_heal"),
        "last fault healed at t=20.0s; c vs a: 5 tables match (10142 rows)"
    );
}

#[test]
fn wal_run_reports_the_lost_slot() {
    use Verdict::*;
    let r = wal_run();
    assert_eq!(
        verdicts(&r),
        [
            ("max_e2e_lag", Invalid),
            ("slot_survives", Valid),
            ("slot_invalidated", Valid),
            ("consistent_after_heal", Invalid),
            ("converges_within", Unknown),
            ("faults_injected", Valid),
        ]
    );
    assert_eq!(r.verdict, Invalid);
    assert_eq!(
        evidence(&r, "slot_invalidated"),
        "slot pgrehearse_c on b: invalidated (wal_removed) at t=41.0s; wal_status t=0.0s \
         reserved → t=30.0s extended → t=41.0s lost; c needs a full resync"
    );
    assert!(
        evidence(&r, "max_e2e_lag")
            .starts_with("end-to-end lag peaked at 55.20s at t=60.0s (over the limit of 30.00s)"),
        "{}",
        evidence(&r, "max_e2e_lag")
    );
    assert_eq!(
        evidence(&r, "converges_within"),
        "no catch-up of c was measured after the last heal at t=50.0s"
    );
    let md = render_markdown(&r);
    assert!(md.contains("**C needs a full resync**"), "{md}");
    assert!(md.contains("![WAL retained](wal.svg)"));
    let wal = &render_plots(&r)[2];
    assert_eq!(wal.0, "wal.svg");
    assert!(wal.1.contains(">slot lost at t=41.0s<"), "{}", wal.1);
    assert!(wal.1.contains(">slot extended at t=30.0s<"));
    // A checkpoint is one-shot: a mark, not a window.
    assert!(wal.1.contains(">checkpoint on a, restartpoint on b<"));
}

#[test]
fn failover_run_counts_lost_writes() {
    use Verdict::*;
    let r = failover_run();
    assert_eq!(
        verdicts(&r),
        [
            ("max_e2e_lag", Valid),
            ("slot_survives", Valid),
            ("rpo_max_writes", Invalid),
            ("consistent_after_heal", Valid),
            ("faults_injected", Valid),
        ]
    );
    assert_eq!(
        evidence(&r, "rpo_max_writes"),
        "at least 3 writes a acknowledged are missing on b at its promotion (t=17.3s) (over the \
         limit of 0): rehearse.accounts 17 update op=4411, rehearse.accounts 42 insert op=4415, \
         rehearse.accounts 17 delete op=4418; unknown outcomes: 1 applied, 1 not applied; a \
         was written to until t=14.995s, 5ms before it was killed at t=15.0s; the last write a \
         acknowledged was rehearse.accounts 8 update op=4419 at t=14.980s, 20ms before"
    );
    // The one-shot failure has no heal: it does not make consistency after healing unknown.
    assert_eq!(
        evidence(&r, "consistent_after_heal"),
        "c vs b: 5 tables match (10142 rows)"
    );
    let md = render_markdown(&r);
    assert!(
        md.contains("| b promoted, accepting writes | t=17.3s | 2.30s |"),
        "{md}"
    );
    assert!(
        md.contains("At least 3 acknowledged writes lost on b (2 keys)"),
        "{md}"
    );
    assert!(
        md.contains("| 4411 | `rehearse.accounts` | `17` | update | t=14.870s | op=4398 |"),
        "{md}"
    );
    assert!(
        md.contains("| 4415 | `rehearse.accounts` | `42` | insert | t=14.910s | no row |"),
        "{md}"
    );
    assert!(
        md.contains("| 4421 | `rehearse.accounts` | `?` | insert | t=14.993s | not applied |"),
        "{md}"
    );
}

#[test]
fn failover_slot_sentence_says_what_the_samples_after_the_promotion_showed() {
    let sentence = |carried: Option<bool>, active: Option<i64>| {
        let mut r = failover_run();
        let f = r
            .observations
            .as_mut()
            .and_then(|o| o.failover.as_mut())
            .unwrap();
        f.slot_carried_on = carried;
        f.slot_active_at_ms = active;
        let md = render_markdown(&r);
        md.lines()
            .find(|l| l.starts_with("Logical slot on b still active"))
            .unwrap_or_else(|| panic!("{md}"))
            .to_string()
    };
    let head = "Logical slot on b still active and not conflicting after the promotion: ";
    assert_eq!(
        sentence(Some(true), Some(18_000)),
        format!(
            "{head}yes, first seen active (a walsender consuming it) at t=18.0s, 700ms after \
             the promotion, and not invalidated afterwards."
        )
    );
    assert_eq!(
        sentence(Some(false), Some(18_000)),
        format!(
            "{head}no, first seen active (a walsender consuming it) at t=18.0s, 700ms after \
             the promotion, but invalidated or dropped afterwards."
        )
    );
    assert_eq!(
        sentence(Some(false), None),
        format!("{head}no, never seen active and usable in the samples after it.")
    );
    assert_eq!(
        sentence(None, None),
        format!("{head}not observed, no sample after it saw b answer.")
    );
}

#[test]
fn lag_seconds_plot_shows_ab_write_and_flush_lag() {
    let r = lag_run();
    let (file, svg) = &render_plots(&r)[0];
    assert_eq!(*file, "lag-seconds.svg");
    for name in [
        ">a → b (replay lag)<",
        ">a → b (write lag)<",
        ">a → b (flush lag)<",
    ] {
        assert!(svg.contains(name), "{name}: {svg}");
    }
    // A failover run has no a → b lag after a died: the lines stop, they do not drop to 0.
    let f = failover_run();
    let o = f.observations.as_ref().unwrap();
    assert!(
        o.series
            .iter()
            .filter(|p| p.t_ms >= 15_000)
            .all(|p| { p.ab_write_s.is_none() && p.ab_flush_s.is_none() })
    );
}

fn obs() -> Observations {
    Observations {
        sample_every_ms: 500,
        heartbeat_every_ms: 200,
        ..Observations::default()
    }
}

/// The expectations `e` judged on observations `o` alone.
fn judge_observations(e: &Expectations, o: &Observations) -> Vec<ExpectationResult> {
    evaluate(
        e,
        &RunFacts {
            observations: Some(o),
            ..RunFacts::default()
        },
    )
}

fn expect_only(f: impl FnOnce(&mut Expectations)) -> Expectations {
    let mut e = Expectations {
        consistent: false,
        ..Expectations::default()
    };
    f(&mut e);
    e
}

/// Judge one expectation over `obs` / `idle` and the given comparisons.
fn one(
    expect: &Expectations,
    obs: Option<&Observations>,
    idle: Option<&IdlePrimary>,
    verify: &[VerifyReport],
) -> ExpectationResult {
    let facts = RunFacts {
        verify,
        observations: obs,
        idle_primary: idle,
        ..RunFacts::default()
    };
    let mut out = evaluate(expect, &facts);
    // Judged whenever there are faults; tested on its own below.
    out.retain(|r| r.name != "faults_injected");
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

#[test]
fn max_e2e_lag_pass_fail_unknown() {
    let e = expect_only(|e| e.max_e2e_lag = Some(Duration::from_secs(2)));
    let mut o = obs();
    o.series = vec![SeriesPoint {
        t_ms: 3_000,
        e2e_s: Some(1.8),
        ..SeriesPoint::default()
    }];
    let with_peak = |o: &mut Observations, value: f64| {
        o.peaks.e2e_s = Some(Peak {
            value,
            at_ms: 3_000,
        })
    };
    // A heartbeat every 200 ms: 1.8 s measured is at most 2.0 s true.
    with_peak(&mut o, 1.8);
    assert_eq!(one(&e, Some(&o), None, &[]).verdict, Verdict::Valid);
    with_peak(&mut o, 2.001);
    let r = one(&e, Some(&o), None, &[]);
    assert_eq!(r.verdict, Verdict::Invalid);
    // Never "2.00s, over the limit of 2.00s".
    assert_eq!(r.observed, "peak 2001ms at t=3.0s");
    assert!(
        r.evidence
            .starts_with("end-to-end lag peaked at 2001ms at t=3.0s (over the limit of 2000ms)"),
        "{}",
        r.evidence
    );
    o.peaks.e2e_s = None;
    assert_eq!(one(&e, Some(&o), None, &[]).verdict, Verdict::Unknown);
    assert_eq!(one(&e, None, None, &[]).verdict, Verdict::Unknown);
}

#[test]
fn an_e2e_lag_within_the_limit_by_less_than_the_heartbeat_gap_is_unknown() {
    let e = expect_only(|e| e.max_e2e_lag = Some(Duration::from_secs(2)));
    let mut o = obs();
    o.peaks.e2e_s = Some(Peak {
        value: 1.9,
        at_ms: 3_000,
    });
    // 100 ms under the limit, heartbeats 200 ms apart: the true peak may have been 2.1 s.
    let r = one(&e, Some(&o), None, &[]);
    assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    assert!(
        r.evidence.ends_with(
            "heartbeat every 200ms, so lag is known to about 200ms; within the limit by less \
             than that, so the true peak may have been over it"
        ),
        "{}",
        r.evidence
    );
    // Heartbeats asked every 200 ms but committed every 450 ms (each commit waited on a slow
    // synchronous standby): 1.6 s is no longer far enough under, and the report says why.
    o.peaks.e2e_s = Some(Peak {
        value: 1.6,
        at_ms: 3_000,
    });
    assert_eq!(one(&e, Some(&o), None, &[]).verdict, Verdict::Valid);
    o.heartbeat_gap_ms = Some(450);
    let r = one(&e, Some(&o), None, &[]);
    assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    assert!(
        r.evidence.contains(
            "heartbeat every 200ms (committed one every 450ms on average), so lag is known to \
             about 450ms"
        ),
        "{}",
        r.evidence
    );
}

fn slot(survived: Option<bool>, reason: Option<&str>) -> Observations {
    Observations {
        slot: Some(SlotOutcome {
            slot: "s".into(),
            survived,
            invalidation_reason: reason.map(str::to_string),
            ..SlotOutcome::default()
        }),
        ..obs()
    }
}

#[test]
fn slot_survives_pass_fail_unknown() {
    use Verdict::*;
    let want = |w: bool| expect_only(|e| e.slot_survives = Some(w));
    let cases = [
        (true, slot(Some(true), None), Valid),
        (true, slot(Some(false), Some("wal_removed")), Invalid),
        (true, slot(None, None), Unknown),
        (false, slot(Some(false), Some("rows_removed")), Valid),
        // A reason says invalidated even when the end state could not be read.
        (false, slot(None, Some("rows_removed")), Valid),
        (false, slot(Some(true), None), Invalid),
        (false, obs(), Unknown),
    ];
    for (w, o, v) in cases {
        assert_eq!(one(&want(w), Some(&o), None, &[]).verdict, v, "{w} {o:?}");
    }
    assert_eq!(one(&want(true), None, None, &[]).verdict, Unknown);
}

#[test]
fn slot_invalidated_pass_fail_unknown() {
    use Verdict::*;
    let want = |r: &str| expect_only(|e| e.slot_invalidated = Some(r.into()));
    let cases = [
        ("wal_removed", slot(Some(false), Some("wal_removed")), Valid),
        ("any", slot(Some(false), Some("rows_removed")), Valid),
        (
            "wal_removed",
            slot(Some(false), Some("rows_removed")),
            Invalid,
        ),
        ("wal_removed", slot(Some(true), None), Invalid),
        ("any", slot(Some(true), None), Invalid),
        // Unusable without a recorded reason (a report from an older pgrehearse).
        ("wal_removed", slot(Some(false), None), Unknown),
        ("any", slot(None, None), Unknown),
        ("any", obs(), Unknown),
    ];
    for (reason, o, v) in cases {
        let r = one(&want(reason), Some(&o), None, &[]);
        assert_eq!(r.verdict, v, "{reason} {o:?}: {r:?}");
    }
    let r = one(
        &want("rows_removed"),
        Some(&slot(Some(false), Some("wal_removed"))),
        None,
        &[],
    );
    assert_eq!(r.observed, "invalidated (wal_removed)");
    assert_eq!(
        r.expected,
        "the logical slot on b ends invalidated for rows_removed"
    );
}

/// A slot gone from b at the end: unusable, but PostgreSQL never said it was invalidated.
fn missing_slot() -> Observations {
    let mut o = slot(Some(false), None);
    let s = o.slot.as_mut().unwrap();
    s.missing = true;
    s.resync_needed = true;
    s.invalidated_at_ms = Some(12_000);
    o
}

#[test]
fn a_missing_slot_is_not_an_invalidation() {
    use Verdict::*;
    let invalidated = |r: &str| expect_only(|e| e.slot_invalidated = Some(r.into()));
    let survives = |w: bool| expect_only(|e| e.slot_survives = Some(w));
    for (e, v) in [
        (invalidated("any"), Unknown),
        (invalidated("wal_removed"), Unknown),
        (survives(false), Unknown),
        // Gone is not usable.
        (survives(true), Invalid),
    ] {
        let r = one(&e, Some(&missing_slot()), None, &[]);
        assert_eq!(r.verdict, v, "{e:?}: {r:?}");
        assert_eq!(r.observed, "missing on b (dropped?) since t=12.0s");
        assert!(
            r.evidence.starts_with(
                "slot s on b: missing on b (dropped?) since t=12.0s; c needs a full resync"
            ),
            "{}",
            r.evidence
        );
        if v == Unknown {
            assert!(
                r.evidence.contains("; slot missing on b (dropped?): "),
                "{}",
                r.evidence
            );
        }
    }
}

#[test]
fn resync_wording_follows_what_is_known_of_the_slot() {
    let e = expect_only(|e| e.slot_survives = Some(true));
    let evidence = |o: &Observations| one(&e, Some(o), None, &[]).evidence;
    assert_eq!(
        evidence(&slot(Some(true), None)),
        "slot s on b: usable at the end; no resync needed"
    );
    let mut lost = slot(Some(false), Some("wal_removed"));
    lost.slot.as_mut().unwrap().resync_needed = true;
    assert_eq!(
        evidence(&lost),
        "slot s on b: invalidated (wal_removed); c needs a full resync"
    );
    assert_eq!(
        evidence(&slot(None, None)),
        "slot s on b: fate not observed; whether c needs a full resync is not known"
    );
}

#[test]
fn a_reason_inferred_on_postgresql_16_says_so_and_stays_unknown_when_ambiguous() {
    use Verdict::*;
    let inferred = |reason: &str| {
        let mut o = slot(Some(false), Some(reason));
        o.slot.as_mut().unwrap().reason_inferred = true;
        o
    };
    let judge = |want: &str, o: &Observations| {
        one(
            &expect_only(|e| e.slot_invalidated = Some(want.into())),
            Some(o),
            None,
            &[],
        )
    };
    // Lost without a conflict is wal_removed on 16, exactly.
    let r = judge("wal_removed", &inferred("wal_removed"));
    assert_eq!(r.verdict, Valid, "{r:?}");
    assert_eq!(
        r.observed,
        "invalidated (wal_removed, inferred: PostgreSQL 16 has no invalidation_reason)"
    );
    assert_eq!(
        judge("rows_removed", &inferred("wal_removed")).verdict,
        Invalid
    );
    // conflicting = t: rows_removed, with the other reading ruled out in words.
    let r = judge("rows_removed", &inferred("rows_removed"));
    assert_eq!(r.verdict, Valid, "{r:?}");
    assert!(
        r.evidence
            .contains("inferred: PostgreSQL 16 has no invalidation_reason")
            && r.evidence
                .contains("wal_level_insufficient too, ruled out here"),
        "{}",
        r.evidence
    );
    // ... but 16 cannot tell it from wal_level_insufficient.
    let r = judge("wal_level_insufficient", &inferred("rows_removed"));
    assert_eq!(r.verdict, Unknown, "{r:?}");
    assert!(
        r.evidence.ends_with("so which one is not known"),
        "{}",
        r.evidence
    );
    assert_eq!(
        judge("wal_removed", &inferred("rows_removed")).verdict,
        Invalid
    );
    assert_eq!(judge("any", &inferred("rows_removed")).verdict, Valid);
    // Reported by 17+: no inference, no hedging.
    let r = judge("rows_removed", &slot(Some(false), Some("rows_removed")));
    assert_eq!(r.observed, "invalidated (rows_removed)");
    assert!(!r.evidence.contains("16"), "{}", r.evidence);
}

#[test]
fn rpo_max_writes_pass_fail_unknown() {
    let e = expect_only(|e| e.rpo_max_writes = Some(2));
    let rpo = |lost: u64| Observations {
        rpo: Some(Rpo {
            node: "b".into(),
            lost_writes: lost,
            lost_keys: lost,
            lost: (1..=lost.min(7))
                .map(|k| write(k, &k.to_string(), OpKind::Update, 10_000, Some(false), None))
                .collect(),
            unknown_not_applied: 3,
            ..Rpo::default()
        }),
        ..obs()
    };
    assert_eq!(one(&e, Some(&rpo(2)), None, &[]).verdict, Verdict::Valid);
    let r = one(&e, Some(&rpo(9)), None, &[]);
    assert_eq!(r.verdict, Verdict::Invalid);
    // A few lost writes, then how many more; and the unknown outcomes.
    assert_eq!(
        r.evidence,
        "at least 9 writes a acknowledged are missing on b (over the limit of 2): \
         rehearse.accounts 1 update op=1, rehearse.accounts 2 update op=2, rehearse.accounts 3 update op=3, \
         rehearse.accounts 4 update op=4, rehearse.accounts 5 update op=5, … and 4 more; unknown \
         outcomes: 0 applied, 3 not applied"
    );
    assert_eq!(one(&e, Some(&obs()), None, &[]).verdict, Verdict::Unknown);
    assert_eq!(one(&e, None, None, &[]).verdict, Verdict::Unknown);
    // Within the limit, but keys the ledger cannot explain may hide more lost writes.
    let mut unexplained = rpo(1);
    unexplained.rpo.as_mut().unwrap().unexplained_keys = 2;
    let r = one(&e, Some(&unexplained), None, &[]);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(
        r.evidence
            .ends_with("2 keys in a state the ledger cannot explain, so more writes may be lost"),
        "{}",
        r.evidence
    );
    // Over the limit is over the limit, whatever else may be lost.
    let mut over = rpo(9);
    over.rpo.as_mut().unwrap().unexplained_keys = 2;
    assert_eq!(one(&e, Some(&over), None, &[]).verdict, Verdict::Invalid);
}

#[test]
fn no_write_lost_in_a_failover_while_nothing_was_written_to_a_is_no_pass() {
    let e = expect_only(|e| e.rpo_max_writes = Some(0));
    let failover = |busy_us: Option<u64>, acked_us: Option<u64>| Observations {
        rpo: Some(Rpo {
            node: "b".into(),
            judged_at_ms: Some(17_300),
            ..Rpo::default()
        }),
        failover: Some(Failover {
            killed_ms: 15_000,
            promoted_ms: 17_300,
            a_busy_until_us: busy_us,
            last_write_on_a: acked_us.map(|us| write(4419, "8", OpKind::Update, us, None, None)),
            ..Failover::default()
        }),
        ..obs()
    };
    let judge = |busy_us: Option<u64>, acked_us: Option<u64>| {
        one(&e, Some(&failover(busy_us, acked_us)), None, &[])
    };
    // Written to up to the kill: nothing lost is a pass, and the evidence names the last
    // write.
    let r = judge(Some(14_400_000), Some(14_400_000));
    assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    assert_eq!(
        r.evidence,
        "no write a acknowledged is seen missing on b at its promotion (t=17.3s) (within the \
         limit of 0); unknown outcomes: 0 applied, 0 not applied; a was written to until \
         t=14.400s, 600ms before it was killed at t=15.0s; the last write a acknowledged was \
         rehearse.accounts 8 update op=4419 at t=14.400s, 600ms before"
    );
    // Cut off from its synchronous standby, a acknowledged nothing for its last seconds but
    // its commits were waiting when it died: nothing lost is the point.
    let r = judge(Some(15_000_000), Some(8_800_000));
    assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    assert!(
        r.evidence
            .contains("a was killed at t=15.0s with a write in flight; the last write a"),
        "{}",
        r.evidence
    );
    // The workload had stopped long before: nothing could be lost.
    let r = judge(Some(9_002_000), Some(9_002_000));
    assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    assert_eq!(r.observed, "nothing written when a was killed; 0 lost");
    assert!(
        r.evidence.ends_with(
            "a was last written to at t=9.002s, 6.00s before it was killed at t=15.0s (more than \
             1.00s; the last write a acknowledged was rehearse.accounts 8 update op=4419 at \
             t=9.002s, 6.00s before): none could be lost, so the failover says nothing about the \
             RPO"
        ),
        "{}",
        r.evidence
    );
    let r = judge(None, None);
    assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    assert!(
        r.evidence
            .contains("no write was sent to a before it was killed at t=15.0s"),
        "{}",
        r.evidence
    );
    // Heartbeats committed only every 500 ms: a few of them is the window.
    let mut slow = failover(Some(13_600_000), None);
    slow.heartbeat_gap_ms = Some(500);
    assert_eq!(one(&e, Some(&slow), None, &[]).verdict, Verdict::Valid);
    // Writes seen lost show a was written to, however long before the kill its last write
    // was sent: the verdict is the count's, and nothing says none could be lost.
    let mut lost = failover(Some(9_002_000), Some(9_002_000));
    lost.rpo.as_mut().unwrap().lost_writes = 2;
    let within = expect_only(|e| e.rpo_max_writes = Some(5));
    let r = one(&within, Some(&lost), None, &[]);
    assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    assert!(!r.evidence.contains("none could be lost"), "{}", r.evidence);
    assert_eq!(r.observed, "2 acknowledged writes lost on b");
    assert_eq!(one(&e, Some(&lost), None, &[]).verdict, Verdict::Invalid);
}

#[test]
fn rpo_on_a_c_that_is_only_behind_is_unknown_not_lost() {
    let e = expect_only(|e| e.rpo_max_writes = Some(0));
    let on_c = |lost: u64, slot_fate: Option<&str>| Observations {
        rpo: Some(Rpo {
            node: "c".into(),
            lost_writes: lost,
            lost_keys: lost,
            ..Rpo::default()
        }),
        slot: Some(SlotOutcome {
            slot: "s".into(),
            survived: Some(slot_fate.is_none()),
            invalidation_reason: slot_fate.map(str::to_string),
            ..SlotOutcome::default()
        }),
        ..obs()
    };
    let missed = |never: bool| crate::report::CatchupMissed {
        waited_ms: 30_000,
        gave_up_at_ms: 60_000,
        never,
        reason: "timed out".into(),
    };
    let judge = |o: &Observations, m: Option<&crate::report::CatchupMissed>| {
        let facts = RunFacts {
            observations: Some(o),
            catchup_missed: m,
            ..RunFacts::default()
        };
        evaluate(&e, &facts).remove(0)
    };
    // The fence timed out with the slot alive: the writes c lacks may still be in flight.
    let r = judge(&on_c(4, None), Some(&missed(false)));
    assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    assert_eq!(r.observed, "4 acknowledged writes not on c yet (c behind)");
    assert!(
        r.evidence.ends_with(
            "; c had not caught up (fence not reached); 4 acknowledged writes not on c yet \
             may still arrive"
        ),
        "{}",
        r.evidence
    );
    // Caught up: missing is lost.
    assert_eq!(judge(&on_c(4, None), None).verdict, Verdict::Invalid);
    // A dead slot never delivers them, whether the fence saw it dead or the samples did.
    assert_eq!(
        judge(&on_c(4, None), Some(&missed(true))).verdict,
        Verdict::Invalid
    );
    assert_eq!(
        judge(&on_c(4, Some("wal_removed")), Some(&missed(false))).verdict,
        Verdict::Invalid
    );
    // Nothing missing: within the limit, however far behind.
    assert_eq!(
        judge(&on_c(0, None), Some(&missed(false))).verdict,
        Verdict::Valid
    );
    // After a failover the RPO is b at its promotion: no later delivery changes it.
    let mut failover = on_c(4, None);
    failover.rpo.as_mut().unwrap().node = "b".into();
    failover.rpo.as_mut().unwrap().judged_at_ms = Some(17_300);
    failover.failover = Some(Failover::default());
    assert_eq!(
        judge(&failover, Some(&missed(false))).verdict,
        Verdict::Invalid
    );
}

#[test]
fn faults_injected_is_judged_whenever_there_are_faults() {
    let e = expect_only(|_| {});
    let judge = |o: &Observations| judge_observations(&e, o);
    // No faults: nothing to judge.
    assert!(judge(&obs()).is_empty());
    let mut o = obs();
    o.faults = vec![fault("partition", "partition a-b", 1_000, Some(3_000))];
    let r = judge(&o);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].name.as_str(), r[0].verdict),
        ("faults_injected", Verdict::Valid)
    );
    assert_eq!(r[0].evidence, "partition a-b at t=1.0s");
    // One the backend could not do: the rehearsal did not rehearse it.
    o.faults.push(FaultRecord {
        injected_ms: None,
        error: Some("injecting: this kernel has no netem".into()),
        ..fault("latency", "latency 500ms on a-b", 0, None)
    });
    let r = judge(&o).remove(0);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.observed, "1 of 2 injected");
    assert_eq!(
        r.evidence,
        "not injected, so the chain's behaviour under them is unknown: latency 500ms on a-b: \
         injecting: this kernel has no netem"
    );
    // Injected, but its heal failed: it may still be in force.
    o.faults.pop();
    o.faults[0].error = Some("healing: iptables: resource busy".into());
    let r = judge(&o).remove(0);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.observed, "1 of 1 injected; 1 with errors");
    assert_eq!(
        r.evidence,
        "injected with errors, so what was in force is unknown: partition a-b: healing: \
         iptables: resource busy"
    );
}

#[test]
fn a_catalog_churn_that_completed_no_round_leaves_faults_injected_unknown() {
    let e = expect_only(|_| {});
    let judge = |o: &Observations| judge_observations(&e, o).remove(0);
    let churn = |rounds: u64, held: u64, first_error: Option<&str>| {
        let mut o = obs();
        o.faults = vec![FaultRecord {
            churn: Some(crate::faults::ChurnRecord {
                rounds,
                failed_rounds: u64::from(first_error.is_some()),
                first_error: first_error.map(str::to_string),
                rounds_horizon_held: held,
                a_physical_slots: (held > 0).then(|| "b: xmin 790, catalog_xmin 785".into()),
            }),
            ..fault(
                "catalog_churn",
                "catalog churn + VACUUM on a every 100ms",
                2_000,
                Some(20_000),
            )
        }];
        o
    };
    // Rounds ran: the evidence says how many, and what a's physical slot held.
    let r = judge(&churn(150, 150, None));
    assert_eq!(r.verdict, Verdict::Valid);
    assert_eq!(
        r.evidence,
        "catalog churn + VACUUM on a every 100ms at t=2.0s: 150 churn rounds completed; a's \
         physical slot held a horizon back after 150 of them (b: xmin 790, catalog_xmin 785)"
    );
    // Every round failed: the fault was in place but removed nothing, so the slot's fate says
    // nothing about it.
    let r = judge(&churn(
        0,
        0,
        Some("VACUUM FULL pg_class: permission denied"),
    ));
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.observed, "1 of 1 injected; 1 without effect");
    assert_eq!(
        r.evidence,
        "injected but without effect, so the chain's behaviour under them is unknown: catalog \
         churn + VACUUM on a every 100ms: no churn round completed (first error: VACUUM FULL \
         pg_class: permission denied)"
    );
}

#[test]
fn a_restartpoint_on_b_that_did_not_move_leaves_faults_injected_unknown() {
    use crate::faults::CheckpointRecord;
    use crate::node::Lsn;
    let e = expect_only(|_| {});
    let judge = |c: CheckpointRecord| {
        let mut o = obs();
        o.faults = vec![FaultRecord {
            checkpoint: Some(c),
            ..fault(
                "checkpoint",
                "checkpoint on a, restartpoint on b",
                15_000,
                None,
            )
        }];
        judge_observations(&e, &o).remove(0)
    };
    let lsn = |s: &str| Some(s.parse::<Lsn>().unwrap());
    let rec = CheckpointRecord {
        primary: "a".into(),
        primary_redo: lsn("0/5000028"),
        primary_lsn: lsn("0/50000D8"),
        b_replayed_in_ms: Some(12),
        b_redo_before: lsn("0/3000028"),
        b_redo_after: lsn("0/5000028"),
        ..CheckpointRecord::default()
    };
    let r = judge(rec.clone());
    assert_eq!(r.verdict, Verdict::Valid);
    assert_eq!(
        r.evidence,
        "checkpoint on a, restartpoint on b at t=15.0s: a checkpointed (redo 0/5000028); b \
         replayed it in 12ms; b's restartpoint moved its redo from 0/3000028 to 0/5000028"
    );
    let ends_with = |evidence: &str, tail: &str| assert!(evidence.ends_with(tail), "{evidence}");
    // B had made that restartpoint itself (max_wal_size reached in replay): still current.
    let r = judge(CheckpointRecord {
        b_redo_before: lsn("0/5000028"),
        ..rec.clone()
    });
    assert_eq!(r.verdict, Verdict::Valid);
    ends_with(
        &r.evidence,
        "b's redo was already at 0/5000028 (b had made that restartpoint on its own)",
    );
    // Replay paused on b: its restartpoint had nothing new to use, and removed no WAL.
    let r = judge(CheckpointRecord {
        b_replayed_in_ms: None,
        b_not_reached: Some("replay paused on b, replay_lsn = 0/4000000".into()),
        b_redo_after: lsn("0/3000028"),
        ..rec.clone()
    });
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.observed, "1 of 1 injected; 1 without effect");
    ends_with(
        &r.evidence,
        "a checkpointed (redo 0/5000028); b had not replayed it (replay paused on b, \
         replay_lsn = 0/4000000); b's restartpoint did not move (redo stays at 0/3000028)",
    );
    // After a failover b is the primary: one checkpoint, no restartpoint to judge.
    let r = judge(CheckpointRecord {
        primary: "b".into(),
        primary_redo: lsn("0/9000028"),
        ..CheckpointRecord::default()
    });
    assert_eq!(r.verdict, Verdict::Valid);
    ends_with(
        &r.evidence,
        "b checkpointed (redo 0/9000028); b is the primary: no restartpoint to make",
    );
}

#[test]
fn consistent_after_heal_pass_fail_unknown() {
    let e = expect_only(|e| e.consistent_after_heal = true);
    let valid = [c_vs("a", Verdict::Valid, vec![table("t", 3)])];
    let invalid = [c_vs("a", Verdict::Invalid, vec![])];
    assert_eq!(one(&e, None, None, &valid).verdict, Verdict::Valid);
    assert_eq!(one(&e, None, None, &invalid).verdict, Verdict::Invalid);
    assert_eq!(one(&e, None, None, &[]).verdict, Verdict::Unknown);
    // A fault still in place: the comparison was not made after healing.
    let mut o = obs();
    o.faults = vec![fault("partition", "partition a-b", 1_000, None)];
    let r = one(&e, Some(&o), None, &valid);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(
        r.evidence
            .ends_with("partition a-b (injected at t=1.0s) was never healed"),
        "{}",
        r.evidence
    );
    assert_eq!(one(&e, Some(&o), None, &invalid).verdict, Verdict::Invalid);
}

#[test]
fn consistent_after_heal_compared_before_c_caught_up_is_unknown_not_failed() {
    let e = expect_only(|e| e.consistent_after_heal = true);
    let differs = [c_vs("a", Verdict::Invalid, vec![])];
    let matches = [c_vs("a", Verdict::Valid, vec![table("t", 3)])];
    let missed = |never: bool| crate::report::CatchupMissed {
        waited_ms: 30_000,
        gave_up_at_ms: 60_000,
        never,
        reason: "timed out".into(),
    };
    let judge = |verify: &[VerifyReport], o: &Observations, m: &crate::report::CatchupMissed| {
        let facts = RunFacts {
            verify,
            observations: Some(o),
            catchup_missed: Some(m),
            ..RunFacts::default()
        };
        evaluate(&e, &facts).remove(0)
    };
    // The fence timed out with the slot alive: the rows c lacks may still arrive.
    let alive = slot(Some(true), None);
    let r = judge(&differs, &alive, &missed(false));
    assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    assert!(r.observed.ends_with("c had not caught up"), "{r:?}");
    assert!(
        r.evidence.ends_with(
            "c had not caught up when it was compared (fence not reached after 30.00s: timed \
             out), so what differs may still have been on its way"
        ),
        "{}",
        r.evidence
    );
    // Matching rows match, caught up or not.
    assert_eq!(
        judge(&matches, &alive, &missed(false)).verdict,
        Verdict::Valid
    );
    // C can never catch up (a dead slot, seen by the fence or by the samples): a failure.
    assert_eq!(
        judge(&differs, &alive, &missed(true)).verdict,
        Verdict::Invalid
    );
    let lost = slot(Some(false), Some("wal_removed"));
    assert_eq!(
        judge(&differs, &lost, &missed(false)).verdict,
        Verdict::Invalid
    );
}

#[test]
fn converges_within_pass_fail_unknown() {
    let e = expect_only(|e| e.converges_within = Some(Duration::from_secs(5)));
    let conv = |heal: Option<i64>, ms: Option<u64>| Observations {
        last_heal_ms: heal,
        convergence_ms: ms,
        ..obs()
    };
    use Verdict::*;
    assert_eq!(
        one(&e, Some(&conv(Some(9_000), Some(5_000))), None, &[]).verdict,
        Valid
    );
    let r = one(&e, Some(&conv(Some(9_000), Some(5_001))), None, &[]);
    assert_eq!(r.verdict, Invalid);
    // Never "5.00s, over the limit of 5.00s".
    assert_eq!(r.observed, "5001ms");
    assert_eq!(
        r.evidence,
        "c had applied everything 5001ms after the last heal at t=9.0s (over the limit of 5000ms)"
    );
    assert_eq!(
        one(&e, Some(&conv(Some(9_000), None)), None, &[]).verdict,
        Unknown
    );
    assert_eq!(one(&e, Some(&conv(None, None)), None, &[]).verdict, Unknown);
    assert_eq!(one(&e, None, None, &[]).verdict, Unknown);
    // The fence given up on: over the limit by then (or never reachable) is a failure, before
    // the limit only unknown.
    let gave_up = |at_ms: i64, never: bool| crate::report::CatchupMissed {
        waited_ms: 0,
        gave_up_at_ms: at_ms,
        never,
        reason: "timed out".into(),
    };
    let judge = |m: &crate::report::CatchupMissed| {
        let o = conv(Some(9_000), None);
        let facts = RunFacts {
            observations: Some(&o),
            catchup_missed: Some(m),
            ..RunFacts::default()
        };
        evaluate(&e, &facts)
            .into_iter()
            .find(|r| r.name == "converges_within")
            .unwrap()
    };
    let r = judge(&gave_up(14_000, false));
    assert_eq!(r.verdict, Invalid);
    assert_eq!(
        r.evidence,
        "c had not caught up 5.00s after the last heal at t=9.0s (timed out)"
    );
    assert_eq!(judge(&gave_up(13_999, false)).verdict, Unknown);
    let r = judge(&gave_up(9_500, true));
    assert_eq!(r.verdict, Invalid);
    assert!(r.evidence.contains("and never can"), "{}", r.evidence);
}

#[test]
fn a_run_cut_short_proves_only_what_the_rest_of_it_could_not_change() {
    use Verdict::*;
    let judge = |e: &Expectations, o: &Observations| {
        let facts = RunFacts {
            observations: Some(o),
            cut_short: true,
            ..RunFacts::default()
        };
        let mut out = evaluate(e, &facts);
        out.retain(|r| r.name != "faults_injected");
        out.remove(0)
    };
    let lag = |value: f64| {
        let mut o = obs();
        o.series = vec![SeriesPoint {
            t_ms: 7_000,
            e2e_s: Some(value),
            ..SeriesPoint::default()
        }];
        o.peaks.e2e_s = Some(Peak {
            value,
            at_ms: 7_000,
        });
        o
    };
    let max_lag = expect_only(|e| e.max_e2e_lag = Some(Duration::from_secs(2)));
    // Within the limit so far: the rest of the run could have broken it.
    let r = judge(&max_lag, &lag(0.3));
    assert_eq!(r.verdict, Unknown, "{r:?}");
    assert_eq!(r.observed, "peak 300ms at t=7.0s (run cut short)");
    assert!(
        r.evidence.ends_with(
            "; the run was cut short (samples end at t=7.0s), so what the rest of it would have \
             shown is not known"
        ),
        "{}",
        r.evidence
    );
    // Over it already: failed, whatever followed.
    assert_eq!(judge(&max_lag, &lag(2.5)).verdict, Invalid);
    // The slot usable so far settles neither way; invalidated is for good.
    let survives = |w: bool| expect_only(|e| e.slot_survives = Some(w));
    let invalidated = |r: &str| expect_only(|e| e.slot_invalidated = Some(r.into()));
    let usable = slot(Some(true), None);
    let lost = slot(Some(false), Some("wal_removed"));
    for (e, o, v) in [
        (survives(true), &usable, Unknown),
        (survives(false), &usable, Unknown),
        (survives(true), &lost, Invalid),
        (survives(false), &lost, Valid),
        (invalidated("wal_removed"), &usable, Unknown),
        (invalidated("wal_removed"), &lost, Valid),
        (invalidated("rows_removed"), &lost, Invalid),
    ] {
        assert_eq!(judge(&e, o).verdict, v, "{e:?} {o:?}");
    }
    // Not cut short: the same observations are judged as they stand.
    assert_eq!(
        one(&survives(true), Some(&usable), None, &[]).verdict,
        Valid
    );
}

#[test]
fn slot_waits_for_nudge_pass_fail_unknown() {
    let e = expect_only(|e| e.slot_waits_for_nudge = true);
    let idle = |waiting: bool, after: Option<u64>| IdlePrimary {
        idle_after_ms: 16_000,
        waited_without_nudge_ms: 20_000,
        still_waiting_after_idle_wait: waiting,
        completed_after_nudge_ms: after,
        a_wrote_wal_during_wait: false,
    };
    // Completed without a nudge while a wrote WAL: the record may have come with that.
    let disturbed = IdlePrimary {
        a_wrote_wal_during_wait: true,
        ..idle(false, None)
    };
    use Verdict::*;
    for (i, v) in [
        (idle(true, Some(5_000)), Valid),
        (idle(true, Some(5_001)), Invalid),
        (idle(true, None), Invalid),
        (idle(false, Some(0)), Invalid),
        (disturbed, Unknown),
    ] {
        assert_eq!(one(&e, None, Some(&i), &[]).verdict, v, "{i:?}");
    }
    assert_eq!(one(&e, None, None, &[]).verdict, Unknown);
}

#[test]
fn junit_marks_unknown_as_its_own_failure_type() {
    let xml = render_junit(&wal_run());
    assert!(xml.contains(
        "<testcase name=\"converges_within\" classname=\"pgrehearse.wal-pressure\" time=\"0\">\n      <failure type=\"unknown\""
    ), "{xml}");
    assert!(xml.contains("<failure type=\"invalid\" message=\"fail: peak 55.20s at t=60.0s\">"));
    assert!(xml.contains(
        "<testcase name=\"slot_invalidated\" classname=\"pgrehearse.wal-pressure\" time=\"0\"/>"
    ));
}

#[test]
fn findings_join_the_notes_once() {
    let mut r = lag_run();
    let finding = r.observations.as_ref().unwrap().findings[0].clone();
    assert!(render_markdown(&r).contains(&format!("- {}", text::md(&finding))));
    r.note(finding.clone());
    let md = render_markdown(&r);
    assert_eq!(md.matches(&text::md(&finding)).count(), 1);
    assert!(render_html(&r).contains(&format!("<li>{}</li>", text::xml(&finding))));
}

#[test]
fn html_is_one_escaped_self_contained_page() {
    let mut r = wal_run();
    r.note("a note with <script>alert(1)</script> & more");
    let html = render_html(&r);
    assert!(html.starts_with("<!DOCTYPE html>\n"));
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
    // Every plot inline, nothing fetched from elsewhere.
    assert_eq!(html.matches("<svg xmlns").count(), 3);
    assert!(!html.contains("src="));
    assert!(!html.contains("href="));
    assert!(html.contains("<header class=\"banner fail\">"));
}

#[test]
fn write_all_writes_the_plots_beside_the_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let r = lag_run();
    let paths = write_all(dir.path(), &r).unwrap();
    let names: Vec<String> = paths
        .plots
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["lag-seconds.svg", "lag-bytes.svg", "wal.svg"]);
    let md = std::fs::read_to_string(&paths.markdown).unwrap();
    for n in &names {
        assert!(md.contains(&format!("]({n})")), "{n} not embedded");
    }
    assert_eq!(
        std::fs::read_to_string(&paths.plots[0]).unwrap(),
        render_plots(&r)[0].1
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 7);
}

#[test]
fn json_with_observations_round_trips() {
    for r in [lag_run(), wal_run(), failover_run()] {
        let json = serde_json::to_string_pretty(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string_pretty(&back).unwrap(), json);
    }
}

fn snapshot_all(name: &str, r: &Report) {
    insta::assert_snapshot!(
        format!("{name}_json"),
        serde_json::to_string_pretty(r).unwrap()
    );
    insta::assert_snapshot!(format!("{name}_md"), render_markdown(r));
    insta::assert_snapshot!(format!("{name}_junit"), render_junit(r));
    insta::assert_snapshot!(format!("{name}_html"), render_html(r));
    for (file, svg) in render_plots(r) {
        let stem = file.trim_end_matches(".svg").replace('-', "_");
        insta::assert_snapshot!(format!("{name}_{stem}_svg"), svg);
    }
}

#[test]
fn snapshot_lag_run() {
    snapshot_all("lag", &lag_run());
}

#[test]
fn snapshot_wal_run() {
    snapshot_all("wal", &wal_run());
}

#[test]
fn snapshot_failover_run() {
    snapshot_all("failover", &failover_run());
}
