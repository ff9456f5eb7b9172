//! Reports over fixed, hand-built runs: expectation evidence asserted exactly, and the JSON,
//! Markdown and JUnit renderings pinned as insta snapshots.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::chain::BuildTimings;
use crate::pg::{PgInstall, PgVersion};
use crate::scenario::{Expectations, Scenario};
use crate::verdict::Verdict;
use crate::verify::{
    CompareMethod, DriftKind, KeySample, SchemaDrift, SequenceDiff, SequenceStatus, TableDiff,
    TableStatus, VerifyReport,
};
use crate::workload::{LedgerCheck, TableOps, WorkloadStats};

pub(super) fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, h, m, s).unwrap()
}

pub(super) fn keys(count: u64, keys: &[&str]) -> KeySample {
    KeySample {
        count,
        keys: keys.iter().map(|k| k.to_string()).collect(),
    }
}

pub(super) fn table(name: &str, rows: u64) -> TableDiff {
    TableDiff {
        table: name.into(),
        method: CompareMethod::PrimaryKey {
            columns: vec!["id".into()],
        },
        status: TableStatus::Match,
        rows_reference: rows,
        rows_target: rows,
        missing: KeySample::default(),
        extra: KeySample::default(),
        changed: KeySample::default(),
        error: None,
    }
}

pub(super) fn matching_tables() -> Vec<TableDiff> {
    let mut events = table("rehearse.events", 3100);
    events.method = CompareMethod::RowMultiset;
    vec![
        table("rehearse.accounts", 1812),
        table("rehearse.documents", 1490),
        events,
        table("rehearse.invoices", 1533),
        TableDiff {
            method: CompareMethod::PrimaryKey {
                columns: vec!["order_id".into(), "line".into()],
            },
            ..table("rehearse.order_lines", 2207)
        },
    ]
}

fn sequence_drift() -> SequenceDiff {
    SequenceDiff {
        sequence: "rehearse.accounts_id_seq".into(),
        reference: Some(2311),
        target: Some(1000),
        status: SequenceStatus::Drift,
        note: "logical replication does not carry sequence values: resync at cutover".into(),
    }
}

pub(super) fn workload_stats() -> WorkloadStats {
    let mut tables = BTreeMap::new();
    tables.insert(
        "rehearse.accounts".to_string(),
        TableOps {
            inserts: 1311,
            updates: 902,
            deletes: 388,
        },
    );
    WorkloadStats {
        seed: 9_876_543_210,
        connections: 4,
        target_rate: Some(200.0),
        duration_ms: 30_004,
        ok: 5_996,
        failed: 3,
        unknown: 1,
        throughput: 199.84,
        latency_p50_us: 1_240,
        latency_p99_us: 8_730,
        tables,
    }
}

pub(super) fn ledger_ok() -> LedgerCheck {
    LedgerCheck {
        node: "c".into(),
        verdict: Verdict::Valid,
        keys_checked: 10_142,
        lost: KeySample::default(),
        unknown_applied: 1,
        unknown_not_applied: 0,
        unexplained: KeySample::default(),
        reissued_keys: 0,
    }
}

/// A report for the smoke scenario with fixed identity and times.
pub(super) fn base_report() -> Report {
    let scenario = Scenario::parse(
        "version = 1\nname = \"smoke\"\ndescription = \"PG17 chain, 30 s of writes\"\n",
        Path::new("/work/scenarios/smoke.toml"),
    )
    .unwrap();
    let mut r = Report::new(
        "20260314-120000-smoke-1a2b",
        "/var/lib/pgrehearse/runs/20260314-120000-smoke-1a2b",
        &scenario,
        42,
    );
    r.tool_version = "0.0.0-test".into();
    r.started_at = at(12, 0, 0);
    r.postgres = Some(PgInstall {
        bin_dir: "/var/cache/pgrehearse/pg/17.10-x86_64/bin".into(),
        version: PgVersion {
            major: 17,
            minor: 10,
        },
        source: "cache".into(),
    });
    r.chain = Some(BuildTimings {
        primary_ms: 1_830,
        standby_ms: 2_410,
        schema_ms: 460,
        replicate_ms: 3_120,
    });
    r.workload = Some(workload_stats());
    r
}

fn expect_all() -> Expectations {
    Expectations {
        consistent: true,
        max_catchup: Some(Duration::from_secs(30)),
        sequences_match: false,
        ..Expectations::default()
    }
}

fn judge(r: &mut Report, expect: &Expectations, finished: DateTime<Utc>) {
    r.expectations = evaluate(expect, &RunFacts::of(r));
    r.conclude(finished);
}

fn consistent_run() -> Report {
    let mut r = base_report();
    r.catchup_ms = Some(640);
    r.verify = vec![VerifyReport {
        reference: "a".into(),
        target: "c".into(),
        verdict: Verdict::Valid,
        tables: matching_tables(),
        sequences: vec![sequence_drift()],
        schema: vec![],
        elapsed_ms: 1_275,
    }];
    r.ledger = vec![ledger_ok()];
    judge(&mut r, &expect_all(), at(12, 0, 48));
    r
}

fn inconsistent_run() -> Report {
    let mut r = base_report();
    r.catchup_ms = Some(45_200);
    let mut tables = matching_tables();
    tables[0] = TableDiff {
        status: TableStatus::Differ,
        rows_target: 1811,
        missing: keys(2, &["17", "42"]),
        changed: keys(3, &["5", "6", "7"]),
        extra: keys(1, &["9001"]),
        ..table("rehearse.accounts", 1812)
    };
    tables[4] = TableDiff {
        status: TableStatus::Differ,
        rows_target: 2087,
        missing: keys(120, &["(1,1)", "(1,2)", "(2,1)", "(3,<sku&7>)", "(4,1)"]),
        ..tables[4].clone()
    };
    r.verify = vec![
        VerifyReport {
            reference: "a".into(),
            target: "c".into(),
            verdict: Verdict::Invalid,
            tables,
            sequences: vec![
                sequence_drift(),
                SequenceDiff {
                    sequence: "rehearse.invoices_id_seq".into(),
                    reference: Some(1533),
                    target: None,
                    status: SequenceStatus::Missing,
                    note: String::new(),
                },
            ],
            schema: vec![SchemaDrift {
                object: "rehearse.documents.body".into(),
                kind: DriftKind::TypeChanged,
                reference: Some("text".into()),
                target: Some("character varying(255)".into()),
            }],
            elapsed_ms: 1_904,
        },
        VerifyReport {
            reference: "a".into(),
            target: "b".into(),
            verdict: Verdict::Valid,
            tables: matching_tables(),
            sequences: vec![],
            schema: vec![],
            elapsed_ms: 1_101,
        },
    ];
    r.ledger = vec![LedgerCheck {
        verdict: Verdict::Invalid,
        lost: keys(
            2,
            &[
                "rehearse.accounts 17 op=4411",
                "rehearse.accounts 42 op=4415",
            ],
        ),
        ..ledger_ok()
    }];
    r.note("c was built with an Aurora-like target: no superuser");
    let expect = Expectations {
        sequences_match: true,
        ..expect_all()
    };
    judge(&mut r, &expect, at(12, 1, 30));
    r
}

fn unknown_run() -> Report {
    let mut r = base_report();
    let mut tables = matching_tables();
    tables[1] = TableDiff {
        status: TableStatus::Error,
        error: Some("reading rehearse.documents on c: connection reset by peer".into()),
        rows_target: 0,
        ..table("rehearse.documents", 1490)
    };
    r.verify = vec![VerifyReport {
        reference: "a".into(),
        target: "c".into(),
        verdict: Verdict::Unknown,
        tables,
        sequences: vec![],
        schema: vec![],
        elapsed_ms: 30_001,
    }];
    r.record_error(&crate::Error::timeout(
        "waiting for fence 00ab to appear on c: timed out after 2m",
    ));
    judge(&mut r, &expect_all(), at(12, 3, 10));
    r
}

#[test]
fn consistent_run_passes_every_expectation() {
    let r = consistent_run();
    assert_eq!(r.verdict, Verdict::Valid);
    assert_eq!(r.exit_code, 0);
    let e = &r.expectations;
    assert_eq!(
        e.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["consistent", "max_catchup"]
    );
    assert_eq!(
        e[0].evidence,
        "c vs a: 5 tables match (10142 rows); ledger on c: 10142 keys checked, lost (0), \
         unknown outcomes: 1 applied, 0 not applied"
    );
    assert_eq!(
        e[1].evidence,
        "c applied everything 640ms after the workload ended (within the limit of 30.00s)"
    );
}

#[test]
fn inconsistent_run_carries_the_numbers() {
    let r = inconsistent_run();
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(r.exit_code, 1);
    let consistent = &r.expectations[0];
    assert_eq!(consistent.verdict, Verdict::Invalid);
    assert!(
        consistent.evidence.starts_with(
            "c vs a: 2 tables differ (rehearse.accounts: 2 missing, 3 changed, 1 extra; \
             rehearse.order_lines: 120 missing); 1 schema difference \
             (rehearse.documents.body: type changed)"
        ),
        "{}",
        consistent.evidence
    );
    assert!(consistent.evidence.contains(
        "ledger on c: 10142 keys checked, lost (2): rehearse.accounts 17 op=4411, rehearse.accounts 42 op=4415"
    ));
    assert_eq!(r.expectations[1].verdict, Verdict::Invalid);
    assert_eq!(r.expectations[1].observed, "45.20s");
    let seq = &r.expectations[2];
    assert_eq!(seq.verdict, Verdict::Invalid);
    assert_eq!(
        seq.evidence,
        "c vs a: 2 sequences differ (rehearse.accounts_id_seq: a=2311 c=1000; \
         rehearse.invoices_id_seq: a=1533 c=none)"
    );
}

#[test]
fn unknown_run_never_passes() {
    let r = unknown_run();
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.exit_code, 1);
    assert_eq!(r.expectations[0].verdict, Verdict::Unknown);
    assert_eq!(r.expectations[1].verdict, Verdict::Unknown);
    assert_eq!(r.expectations[1].observed, "not measured");
    // No expectations judged and no error still is not a pass.
    let mut empty = base_report();
    empty.conclude(at(12, 0, 1));
    assert_eq!(empty.verdict, Verdict::Unknown);
}

#[test]
fn the_terminal_lists_a_table_that_could_not_be_compared_apart_from_differing_ones() {
    let r = unknown_run();
    let line = verify_summary(&r.verify[0]);
    assert!(
        line.contains(
            "1 of 5 tables could not be compared: rehearse.documents (reading \
             rehearse.documents on c: connection reset by peer)"
        ),
        "{line}"
    );
    assert!(!line.contains("differ"), "{line}");
    // The ledger counts keys, not rows.
    let summary = run_summary(&consistent_run());
    assert!(
        summary.contains(
            "ledger on c: 0 keys with acknowledged writes lost, 0 keys in an unexplained state"
        ),
        "{summary}"
    );
}

#[test]
fn names_and_notes_from_the_data_are_text_not_markup_in_both_reports() {
    let mut r = consistent_run();
    r.verify[0].tables[0].table = "s.<b>t|x</b>".into();
    r.verify[0].sequences[0].sequence = "s.*seq*".into();
    r.verify[0].sequences[0].note = "drift <!-- hides the rest".into();
    r.note("a note with <!-- and | and *stars*");
    let md = render_markdown(&r);
    for shown in [
        "| `s.<b>t\\|x</b>` | match |",
        "| `s.*seq*` | 2311 | 1000 | drift |",
        "Sequence drift: drift \\<!-- hides the rest",
        "- a note with \\<!-- and \\| and \\*stars\\*",
    ] {
        assert!(md.contains(shown), "{shown:?} not in:\n{md}");
    }
    let html = render_html(&r);
    for shown in [
        "<td><code>s.&lt;b&gt;t|x&lt;/b&gt;</code></td>",
        "<li>a note with &lt;!-- and | and *stars*</li>",
    ] {
        assert!(html.contains(shown), "{shown:?} not in:\n{html}");
    }
}

#[test]
fn every_expectation_shows_its_evidence_passing_or_not() {
    let r = consistent_run();
    assert_eq!(r.verdict, Verdict::Valid);
    let md = render_markdown(&r);
    let html = render_html(&r);
    for e in &r.expectations {
        let line = format!("- `{}`: {}", e.name, e.evidence);
        assert!(md.contains(&line), "{line:?} not in:\n{md}");
        let item = format!("<li><code>{}</code>: {}</li>", e.name, e.evidence);
        assert!(html.contains(&item), "{item:?} not in:\n{html}");
    }
}

#[test]
fn consistency_without_verification_of_c_is_unknown() {
    let b_only = [VerifyReport {
        reference: "a".into(),
        target: "b".into(),
        verdict: Verdict::Valid,
        tables: vec![],
        sequences: vec![],
        schema: vec![],
        elapsed_ms: 1,
    }];
    let facts = RunFacts {
        verify: &b_only,
        ..RunFacts::default()
    };
    let out = evaluate(&expect_all(), &facts);
    assert_eq!(out[0].verdict, Verdict::Unknown);
    assert_eq!(out[0].observed, "c was not verified");
}

#[test]
fn max_catchup_fails_when_c_had_not_caught_up_by_the_limit() {
    let expect = Expectations {
        consistent: false,
        max_catchup: Some(Duration::from_secs(30)),
        ..Expectations::default()
    };
    let judge = |waited_ms: u64, never: bool| {
        let missed = crate::report::CatchupMissed {
            waited_ms,
            gave_up_at_ms: 0,
            never,
            reason: "fence 01 not on c".into(),
        };
        let facts = RunFacts {
            catchup_missed: Some(&missed),
            workload_ran: true,
            ..RunFacts::default()
        };
        evaluate(&expect, &facts).remove(0)
    };
    let r = judge(120_000, false);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(
        r.evidence,
        "c had not caught up 2m00s after the workload ended, over the limit of 30.00s (fence 01 not on c)"
    );
    // Stopped waiting before the limit: nothing is known.
    assert_eq!(judge(29_999, false).verdict, Verdict::Unknown);
    // A dead slot: c never gets there, however soon that was seen.
    let r = judge(1_000, true);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.evidence
            .starts_with("c can never catch up (fence 01 not on c)")
    );
    // Without a workload catch-up is timed from the end of the faults, and says so.
    let obs = crate::observe::Observations {
        faults: vec![crate::faults::FaultRecord {
            kind: "partition".into(),
            description: "partition a-b".into(),
            injected_ms: Some(1_000),
            healed_ms: Some(9_000),
            error: None,
            churn: None,
            checkpoint: None,
        }],
        ..Default::default()
    };
    let facts = RunFacts {
        catchup: Some(Duration::from_millis(800)),
        observations: Some(&obs),
        ..RunFacts::default()
    };
    assert_eq!(
        evaluate(&expect, &facts)[0].evidence,
        "c applied everything 800ms after the fault schedule ended (within the limit of 30.00s)"
    );
}

#[test]
fn consistent_rows_without_a_ledger_check_are_not_a_pass() {
    // A run cut short after verification, before the ledger check: equal rows do not show that
    // no acknowledged write was lost.
    let r = consistent_run();
    let facts = RunFacts {
        ledger: &[],
        workload_ran: true,
        ..RunFacts::of(&r)
    };
    let out = evaluate(&expect_all(), &facts);
    assert_eq!(out[0].verdict, Verdict::Unknown);
    assert!(
        out[0].observed.ends_with("ledger not checked"),
        "{:?}",
        out[0]
    );
}

#[test]
fn the_report_exit_code_is_the_process_exit_code() {
    for (e, code) in [
        (crate::Error::interrupted(), 130),
        (crate::Error::environment("port 5432 already in use"), 2),
        (crate::Error::timeout("fence"), 1),
    ] {
        let mut r = consistent_run();
        r.record_error(&e);
        r.conclude(at(12, 5, 0));
        assert_eq!(r.verdict, Verdict::Unknown);
        assert_eq!(r.exit_code, code, "{e}");
    }
}

#[test]
fn a_proven_failure_keeps_exit_1_whatever_error_follows_short_of_an_interrupt() {
    let env = crate::Error::environment("docker: no such container");
    let mut r = inconsistent_run();
    r.record_error(&env);
    r.conclude(at(12, 5, 0));
    assert_eq!((r.verdict, r.exit_code), (Verdict::Invalid, 1));
    let mut r = inconsistent_run();
    r.record_error(&crate::Error::interrupted());
    r.conclude(at(12, 5, 0));
    assert_eq!(r.exit_code, 130);
    // A teardown failing after the verdict: a pass becomes the teardown's code, a failure
    // stays 1, and the report says what went wrong.
    let mut r = consistent_run();
    r.record_cleanup_error(&env);
    r.conclude(at(12, 5, 0));
    assert_eq!((r.verdict, r.exit_code), (Verdict::Valid, 2));
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("tearing the chain down failed")),
        "{:?}",
        r.notes
    );
    let mut r = inconsistent_run();
    r.record_cleanup_error(&env);
    r.conclude(at(12, 5, 0));
    assert_eq!(r.exit_code, 1);
}

#[test]
fn sequences_match_is_judged_only_when_asked() {
    let facts = RunFacts::default();
    let names: Vec<_> = evaluate(&Expectations::default(), &facts)
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["consistent"]);
}

#[test]
fn replay_command_quotes_odd_paths() {
    let mut r = base_report();
    r.scenario.path = "/home/me/my scenarios/smoke.toml".into();
    assert_eq!(
        r.replay_command(),
        "pgrehearse run '/home/me/my scenarios/smoke.toml' --seed 42 --backend local"
    );
    // A run whose backend was overridden on the command line replays on that backend.
    r.backend = "docker".into();
    assert!(r.replay_command().ends_with("--seed 42 --backend docker"));
}

#[test]
fn json_round_trips() {
    for r in [consistent_run(), inconsistent_run(), unknown_run()] {
        let json = serde_json::to_string_pretty(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string_pretty(&back).unwrap(), json);
    }
}

#[test]
fn write_all_writes_the_four_files() {
    let dir = tempfile::tempdir().unwrap();
    let r = inconsistent_run();
    let paths = write_all(dir.path(), &r).unwrap();
    let md = std::fs::read_to_string(&paths.markdown).unwrap();
    assert_eq!(md, render_markdown(&r));
    assert!(md.starts_with("# FAIL · smoke · seed 42\n"));
    let xml = std::fs::read_to_string(&paths.junit).unwrap();
    assert_eq!(xml, render_junit(&r));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&paths.json).unwrap()).unwrap();
    assert_eq!(json["seed"], 42);
    assert_eq!(json["verdict"], "invalid");
    let html = std::fs::read_to_string(&paths.html).unwrap();
    assert_eq!(html, render_html(&r));
    // No observations, no plots.
    assert!(paths.plots.is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
}

fn snapshot_all(name: &str, r: &Report) {
    insta::assert_snapshot!(
        format!("{name}_json"),
        serde_json::to_string_pretty(r).unwrap()
    );
    insta::assert_snapshot!(format!("{name}_md"), render_markdown(r));
    insta::assert_snapshot!(format!("{name}_junit"), render_junit(r));
    let mut terminal = run_summary(r);
    for v in &r.verify {
        terminal.push_str("\n--- pgrehearse verify\n");
        terminal.push_str(&verify_summary(v));
    }
    insta::assert_snapshot!(format!("{name}_terminal"), terminal);
}

#[test]
fn snapshot_consistent_run() {
    snapshot_all("consistent", &consistent_run());
}

#[test]
fn snapshot_inconsistent_run() {
    snapshot_all("inconsistent", &inconsistent_run());
}

#[test]
fn snapshot_unknown_run() {
    snapshot_all("unknown", &unknown_run());
}
