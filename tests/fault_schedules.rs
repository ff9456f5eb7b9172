//! Property: whatever link faults hit A→B and B→C (latency, bandwidth caps, partitions, links
//! going down), once every fault is healed and C has caught up, C equals A row for row and no
//! acknowledged write is lost. A failing case shrinks to a smaller schedule and prints the
//! scenario (seed included) that replays it.
//!
//! Two cases by default to keep CI short; set PGREHEARSE_FAULT_CASES for more.
//! `PGREHEARSE_PROPTEST_SEED` replays a run: the seed is printed at the start and with a failure.

mod common;

use std::sync::Arc;

use harness::Verdict;
use harness::run::{NoProgress, Rehearsal, RunOptions};
use harness::scenario::Scenario;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

#[derive(Debug, Clone)]
struct LinkFault {
    kind: &'static str,
    hop: &'static str,
    at: u32,
    len: u32,
}

fn fault() -> impl Strategy<Value = LinkFault> {
    (
        prop::sample::select(vec!["latency", "bandwidth", "partition", "link_down"]),
        prop::sample::select(vec!["a-b", "b-c"]),
        1u32..10,
        1u32..5,
    )
        .prop_map(|(kind, hop, at, len)| LinkFault { kind, hop, at, len })
}

fn scenario_text(seed: u64, faults: &[LinkFault]) -> String {
    let mut s = format!(
        "version = 1\nname = \"fault-schedule\"\nseed = \"{seed}\"\n\n[workload]\ninitial_rows = 100\nrate = 150\nduration = \"15s\"\n\n\
         [expect]\nconsistent = true\nconsistent_after_heal = true\nconverges_within = \"90s\"\n"
    );
    for f in faults {
        s.push_str(&format!(
            "\n[[faults]]\nkind = \"{}\"\nhop = \"{}\"\nat = \"{}s\"\nheal_at = \"{}s\"\n",
            f.kind,
            f.hop,
            f.at,
            f.at + f.len
        ));
        match f.kind {
            "latency" => s.push_str("latency = \"300ms\"\njitter = \"100ms\"\n"),
            "bandwidth" => s.push_str("rate = \"64KiB/s\"\n"),
            _ => {}
        }
    }
    s
}

fn run_case(rt: &tokio::runtime::Runtime, text: &str) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fault-schedule.toml");
    std::fs::write(&path, text).unwrap();
    let scenario = Scenario::load(&path).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let r = rt
        .block_on(Rehearsal::prepare(
            scenario,
            RunOptions::default(),
            Arc::new(NoProgress),
        ))
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let res = rt.block_on(async {
        let res = r.run().await;
        r.finish(false)
            .await
            .map_err(|e| TestCaseError::fail(format!("cleanup: {e:?}")))?;
        res.map_err(|e| TestCaseError::fail(format!("run failed: {e:?}")))
    })?;
    let (report, _) = res;
    let faults = report
        .observations
        .as_ref()
        .map(|o| o.faults.clone())
        .unwrap_or_default();
    for f in &faults {
        prop_assert!(
            f.injected_ms.is_some() && f.healed_ms.is_some() && f.error.is_none(),
            "every fault injected and healed without error: {:?}; report in {}",
            f,
            report.run_dir.display()
        );
    }
    let lost: u64 = report.ledger.iter().map(|l| l.lost.count).sum();
    prop_assert_eq!(
        lost,
        0,
        "acknowledged writes lost; report in {}",
        report.run_dir.display()
    );
    prop_assert_eq!(
        report.verdict,
        Verdict::Valid,
        "expectations: {:#?}\nreport in {}",
        report.expectations,
        report.run_dir.display()
    );
    Ok(())
}

#[test]
fn c_equals_a_after_any_healed_schedule_of_link_faults() {
    common::init_logging();
    let cases = std::env::var("PGREHEARSE_FAULT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let seed = common::proptest_seed();
    println!(
        "fault_schedules: seed {seed} (replay with PGREHEARSE_PROPTEST_SEED={seed}), {cases} cases"
    );
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    // Each case is a real 15 s rehearsal: shrinking is bounded so a failure reports in minutes.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            max_shrink_iters: 6,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Run seeds stop at 2^53 - 1 (exact in report.json); shifting keeps the cases a given
    // PGREHEARSE_PROPTEST_SEED draws.
    let strategy = (
        any::<u64>().prop_map(|s| s >> 11),
        prop::collection::vec(fault(), 1..4),
    );
    let result = runner.run(&strategy, |(seed, faults)| {
        let text = scenario_text(seed, &faults);
        // What each case ran, shrinking steps included: a replay can be checked against it.
        eprintln!("case: workload seed {seed}, faults {faults:?}");
        run_case(&rt, &text)
            .map_err(|e| TestCaseError::fail(format!("{e}\nscenario that replays it:\n{text}")))
    });
    if let Err(e) = result {
        panic!("{e}\nseed: {seed} (replay with PGREHEARSE_PROPTEST_SEED={seed})");
    }
}
