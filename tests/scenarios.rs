//! Every shipped scenario (smoke and each fault scenario), run as a user runs it: `pgrehearse run scenarios/<name>.toml`.
//! Each must pass its own expectations (exit 0), and each test checks one observation that
//! shows the fault really happened, from the report's time series.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{cli, report};
use harness::faults::FaultKind;
use harness::scenario::Scenario;
use serde_json::Value;

/// Run a shipped scenario with a fixed seed; return the parsed report.
fn run_scenario(name: &str) -> Value {
    let (report, run) = run_shipped(name, &[]);
    cli::assert_cleaned_up(&run);
    report
}

/// A shipped scenario's file.
fn shipped_path(name: &str) -> String {
    format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"))
}

/// A shipped scenario as the harness reads it.
fn shipped(name: &str) -> Scenario {
    let path = shipped_path(name);
    Scenario::load(Path::new(&path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Run a shipped scenario with a fixed seed and `extra` arguments; return the parsed report
/// and the run directory once the run passed its expectations.
fn run_shipped(name: &str, extra: &[&str]) -> (Value, PathBuf) {
    let path = shipped_path(name);
    let mut args = vec!["run", &path, "--seed", "20261125"];
    args.extend_from_slice(extra);
    let out = cli::run(&args);
    let err = cli::stderr(&out);
    let run =
        cli::run_dir(&err).unwrap_or_else(|| panic!("{name}: no run directory; stderr:\n{err}"));
    // The seed is printed before anything else happens: a run cut short can still be replayed.
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.contains("seed 20261125")),
        "{name}: {err}"
    );
    // A kept chain goes down with the test, whatever the test finds.
    let down = extra
        .contains(&"--keep")
        .then(|| cli::DownOnDrop(run.clone()));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{name}: no report ({e}); stderr:\n{err}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: expectations did not hold:\n{:#}\nstderr:\n{err}",
        report["expectations"]
    );
    for f in report["observations"]["faults"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert!(
            f["injected_ms"].as_u64().is_some() && f["error"].is_null(),
            "{name}: every fault injected without error: {f:#}"
        );
    }
    // A scenario that names no major runs the default, 17.
    let text = std::fs::read_to_string(&path).unwrap();
    if !text
        .lines()
        .any(|l| l.trim_start().starts_with("pg_version"))
    {
        assert_eq!(
            report["postgres"]["version"]["major"], 17,
            "{name}: {:#}",
            report["postgres"]
        );
    }
    std::mem::forget(down);
    (report, run)
}

/// The run's ledger (ledger.jsonl), by op id.
fn ledger(run: &Path) -> HashMap<u64, Value> {
    std::fs::read_to_string(run.join("ledger.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            (e["op"].as_u64().unwrap(), e)
        })
        .collect()
}

/// When the fault of `kind` was injected (ms since the workload started).
fn injected_ms(r: &Value, kind: &str) -> i64 {
    report::fault_ms(r, kind, "injected_ms")
}

/// Every listed unknown-outcome write is one the ledger records as unknown, sent to a; the
/// count is every such write.
fn unknown_writes_match_the_ledger(rpo: &Value, ledger: &HashMap<u64, Value>) -> Vec<Value> {
    let on_a = ledger
        .values()
        .filter(|e| e["outcome"] == "unknown" && e["node"] == "a")
        .count() as u64;
    let total = [
        "unknown_applied",
        "unknown_not_applied",
        "unknown_undetermined",
    ]
    .iter()
    .map(|k| rpo[*k].as_u64().unwrap())
    .sum::<u64>();
    assert_eq!(total, on_a, "unknown outcomes on a: {rpo:#}");
    let listed = rpo["unknown"].as_array().unwrap().clone();
    assert_eq!(listed.len() as u64, on_a.min(100), "{rpo:#}");
    for w in &listed {
        let e = &ledger[&w["op"].as_u64().unwrap()];
        assert_eq!(e["outcome"], "unknown", "{w:#} vs the ledger's {e:#}");
        assert_eq!((&e["table"], &e["key"]), (&w["table"], &w["key"]), "{w:#}");
        assert!(w["applied"].is_boolean() || w["applied"].is_null(), "{w:#}");
    }
    listed
}

/// (t in seconds, value) of `field` in the series between `from` and `to` seconds (None
/// points skipped).
fn timed_series(r: &Value, field: &str, from: f64, to: f64) -> Vec<(f64, f64)> {
    r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p["t_ms"].as_f64()? / 1000.0, p[field].as_f64()?)))
        .filter(|(t, _)| (from..=to).contains(t))
        .collect()
}

/// Values of `field` in the series between `from` and `to` seconds (None points skipped).
fn series(r: &Value, field: &str, from: f64, to: f64) -> Vec<f64> {
    timed_series(r, field, from, to)
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MAX, f64::min)
}

/// The middle value: what a hop typically showed, unmoved by a sample that caught a
/// scheduling hiccup on a loaded machine. NaN for no values, which fails any comparison.
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// While the fault of `kind` was in force, in seconds since the workload started, from the
/// report's record of it: from its injection (plus `settle`, for what was already in flight
/// to arrive) to its heal.
fn fault_window(r: &Value, kind: &str, settle: f64) -> (f64, f64) {
    (
        report::fault_ms(r, kind, "injected_ms") as f64 / 1000.0 + settle,
        report::fault_ms(r, kind, "healed_ms") as f64 / 1000.0,
    )
}

/// The delay a scenario's latency fault adds, in seconds.
fn injected_latency(s: &Scenario) -> f64 {
    s.faults
        .iter()
        .find_map(|f| match &f.kind {
            FaultKind::Latency { latency, .. } => Some(latency.as_secs_f64()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{}: no latency fault", s.path.display()))
}

/// How long after the injection of a latency fault its lag is fully there: data already in
/// flight arrives at the old speed, and the first delayed reply is still on its way.
const SETTLE_S: f64 = 1.0;

/// How long after a heal a hop may take to drain what the fault held back.
const RECOVERY_S: f64 = 5.0;

fn slot(r: &Value) -> &Value {
    &r["observations"]["slot"]
}

/// The README's first command, as shipped: the whole chain, every workload table, 30 s of writes.
#[test]
fn the_smoke_scenario_the_readme_runs_ends_consistent() {
    let (r, run) = run_shipped("smoke", &[]);
    cli::assert_cleaned_up(&run);
    assert_eq!(r["verdict"], "valid", "{:#}", r["expectations"]);
    assert_eq!(r["seed"], 20261125);
    let w = &r["workload"];
    assert!(w["ok"].as_u64().unwrap() > 3000, "{w:#}");
    for v in r["verify"].as_array().unwrap() {
        assert_eq!(v["verdict"], "valid", "{v:#}");
        assert_eq!(v["tables"].as_array().unwrap().len(), 5, "{v:#}");
    }
    assert_eq!(report::verify_of(&r, "c")["reference"], "a");
    // The ledger's times count from a wall-clock instant, to line up with the server logs.
    let zero = r["timeline_zero"].as_str().expect("timeline_zero");
    let started = r["started_at"].as_str().unwrap();
    assert!(
        zero > started,
        "timeline zero {zero} before the run started {started}"
    );
    assert!(run.join("report.md").is_file() && run.join("report.junit.xml").is_file());
    assert!(
        !run.join("secrets.json").exists(),
        "credentials must not outlive the run"
    );
}

#[test]
fn lag_on_a_to_b_shows_in_replay_lag_and_recovers() {
    let r = run_scenario("lag-ab");
    let (from, healed) = fault_window(&r, "latency", SETTLE_S);
    let during = series(&r, "ab_s", from, healed);
    assert!(
        max(&during) >= 0.4,
        "a→b replay lag from {from}s to {healed}s under 500 ms latency: {during:?}"
    );
    // Back under 0.2 s soon after the heal, and typically there from then on.
    let end = shipped("lag-ab").workload.duration.as_secs_f64();
    let after = timed_series(&r, "ab_s", healed, end);
    let back = after.iter().position(|(_, lag)| *lag < 0.2);
    let Some(back) = back.filter(|i| after[*i].0 - healed <= RECOVERY_S) else {
        panic!(
            "a→b replay lag not under 0.2 s within {RECOVERY_S}s of the heal at {healed}s: {after:?}"
        );
    };
    let rest: Vec<f64> = after[back..].iter().map(|(_, lag)| *lag).collect();
    assert!(
        median(&rest) < 0.2,
        "a→b replay lag from {}s, when it was back under 0.2 s, to {end}s (median {}): {rest:?}",
        after[back].0,
        median(&rest)
    );
    eprintln!(
        "lag-ab: a→b during: peak {:.3}s, median {:.3}s ({} samples); back under 0.2 s {:.1}s after \
         the heal; median after {:.3}s ({} samples)",
        max(&during),
        median(&during),
        during.len(),
        after[back].0 - healed,
        median(&rest),
        rest.len()
    );
}

#[test]
fn an_end_to_end_lag_budget_the_fault_breaks_fails_the_run_with_its_evidence() {
    let (_d, path) = cli::scenario(
        "lag-budget",
        "version = 1\nname = \"lag-budget\"\n[workload]\ninitial_rows = 200\nrate = 200\nduration = \"12s\"\n\
         [[faults]]\nkind = \"latency\"\nhop = \"b-c\"\nlatency = \"500ms\"\nat = \"3s\"\nheal_at = \"8s\"\n\
         [expect]\nconsistent = true\nmax_e2e_lag = \"200ms\"\n",
    );
    let out = cli::run(&["run", path.to_str().unwrap(), "--seed", "7"]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let run = cli::run_dir(&err).unwrap();
    cli::assert_cleaned_up(&run);
    let r = common::report::read(&run);
    let e = report::expectation(&r, "max_e2e_lag");
    assert_eq!(e["verdict"], "invalid", "{e:#}");
    // The evidence names the peak and when it happened.
    let observed = e["observed"].as_str().unwrap();
    assert!(
        observed.starts_with("peak ") && observed.contains(" at t="),
        "{e:#}"
    );
    let consistent = report::expectation(&r, "consistent");
    assert_eq!(consistent["verdict"], "valid", "only the lag budget fails");
}

/// Without a workload there is no end of writing to time catch-up from: it is timed from the
/// end of the fault schedule, so an 8 s fault does not count against a 5 s max_catchup.
#[test]
fn without_a_workload_catch_up_is_timed_from_the_end_of_the_faults() {
    let (_d, path) = cli::scenario(
        "no-writes",
        "version = 1\nname = \"no-writes\"\n[workload]\nenabled = false\n\
         [[faults]]\nkind = \"latency\"\nhop = \"b-c\"\nlatency = \"50ms\"\nat = \"0s\"\nheal_at = \"8s\"\n\
         [expect]\nmax_catchup = \"5s\"\n",
    );
    let out = cli::run(&["run", path.to_str().unwrap(), "--seed", "7"]);
    let err = cli::stderr(&out);
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("{err}"));
    cli::assert_cleaned_up(&run);
    let r = common::report::read(&run);
    let e = report::expectation(&r, "max_catchup");
    assert_eq!(e["verdict"], "valid", "{e:#}\n{err}");
    assert!(
        e["evidence"]
            .as_str()
            .is_some_and(|s| s.contains("after the fault schedule ended")),
        "{e:#}"
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn lag_on_b_to_c_leaves_a_to_b_flat() {
    let r = run_scenario("lag-bc");
    let latency = injected_latency(&shipped("lag-bc"));
    let (from, healed) = fault_window(&r, "latency", SETTLE_S);
    let e2e = series(&r, "e2e_s", from, healed);
    assert!(
        max(&e2e) >= 0.4,
        "end-to-end lag during b→c latency: {e2e:?}"
    );
    // The hop itself shows it: b's walsender for c reports a replay lag of about the 500 ms
    // (a few ms without the fault). Some samples read it between replies, lower: most are
    // still over half the latency, and the peak near all of it.
    let bc = series(&r, "bc_s", from, healed);
    assert!(
        max(&bc) >= 0.4 && median(&bc) >= 0.25,
        "b→c replay lag during 500 ms latency on b→c (peak ≥ 0.4 s, median ≥ 0.25 s): {bc:?}"
    );
    // Flat: typically a small fraction of what b→c shows, and of the latency put on b→c.
    let ab = series(&r, "ab_s", from, healed);
    let (ab_median, bc_median) = (median(&ab), median(&bc));
    assert!(
        ab_median < bc_median / 4.0 && ab_median < latency / 5.0,
        "a→b replay lag must stay flat (and be measured): median {ab_median}s against b→c's \
         {bc_median}s and the {latency}s injected: {ab:?}"
    );
    eprintln!(
        "lag-bc: e2e peak {:.3}s; b→c peak {:.3}s median {bc_median:.3}s; a→b median {ab_median:.4}s peak {:.3}s",
        max(&e2e),
        max(&bc),
        max(&ab)
    );
}

#[test]
fn partition_a_b_starves_b_and_heals() {
    let r = run_scenario("partition-ab");
    let (from, healed) = fault_window(&r, "partition", 0.0);
    let during = series(&r, "ab_bytes", from, healed);
    assert!(
        max(&during) > 100_000.0,
        "a→b bytes behind during the partition: {during:?}"
    );
    // B received nothing, so A kept the WAL for B's physical slot...
    let retained = series(&r, "a_slot_retained", from, healed);
    let peak = max(&retained);
    assert!(
        peak > 1_000_000.0,
        "a must retain WAL for b's slot while b is cut off: {retained:?}"
    );
    // ... and let go of it once the heal let B catch up.
    let end = shipped("partition-ab").workload.duration.as_secs_f64();
    let after = series(&r, "a_slot_retained", healed, end);
    assert!(
        min(&after) < peak / 10.0,
        "a still retained most of the {peak} bytes it kept for b after the heal at {healed}s: {after:?}"
    );
    eprintln!(
        "partition-ab: a→b bytes peak {}; a retained peak {peak}, least after the heal {}",
        max(&during),
        min(&after)
    );
}

#[test]
fn partition_b_c_grows_b_to_c_lag_while_a_to_b_stays_flat() {
    let r = run_scenario("partition-bc");
    let (from, healed) = fault_window(&r, "partition", 0.0);
    let bc = series(&r, "bc_bytes", from, healed);
    let ab = series(&r, "ab_bytes", from, healed);
    assert!(
        max(&bc) > 100_000.0,
        "b→c bytes behind during the partition: {bc:?}"
    );
    assert!(
        median(&ab) < median(&bc) / 10.0,
        "a→b must stay flat: a→b {ab:?} vs b→c {bc:?}"
    );
    let ab_s = series(&r, "ab_s", from, healed);
    assert!(
        median(&ab_s) < 0.1,
        "a→b replay lag must stay flat (and be measured): {ab_s:?}"
    );
    eprintln!(
        "partition-bc: b→c bytes median {} peak {}; a→b bytes median {} peak {}; a→b seconds median {:.4} peak {:.3}",
        median(&bc),
        max(&bc),
        median(&ab),
        max(&ab),
        median(&ab_s),
        max(&ab_s)
    );
    assert_eq!(slot(&r)["survived"], true);
}

/// When the fault of `kind` was healed (ms since the workload started).
fn healed_ms(r: &Value, kind: &str) -> i64 {
    report::fault_ms(r, kind, "healed_ms")
}

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn a_stopped_consumer_makes_b_retain_wal_and_the_slot_survives() {
    let r = run_scenario("wal-pressure-survives");
    let (stop, resume) = (
        injected_ms(&r, "replicator_stop") as f64 / 1000.0,
        healed_ms(&r, "replicator_stop") as f64 / 1000.0,
    );
    let retained = series(&r, "b_slot_retained", stop, resume);
    assert!(
        max(&retained) > 8.0 * MIB,
        "WAL retained on b for the slot: {retained:?}"
    );
    // B's pg_wal itself (the sampler's size of pg_wal on b) grows while nobody consumes the
    // slot: the retained WAL takes up disk there, beyond the segments b already had.
    let wal = series(&r, "b_wal_bytes", stop, resume);
    let first = *wal
        .first()
        .unwrap_or_else(|| panic!("no size of b's pg_wal sampled from {stop}s to {resume}s"));
    assert!(
        max(&wal) - first >= 16.0 * MIB,
        "b's pg_wal from {stop}s to {resume}s: {wal:?}"
    );
    // Kept across the restartpoint on b: pg_wal still holds all the slot retains, and the
    // slot stayed reserved or extended throughout, never unreserved or lost.
    let checkpoint = injected_ms(&r, "checkpoint");
    let after: Vec<(i64, u64, u64)> = r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let t = p["t_ms"].as_i64()?;
            (t > checkpoint + 1_000 && (t as f64) < resume * 1000.0).then_some((
                t,
                p["b_wal_bytes"].as_u64()?,
                p["b_slot_retained"].as_u64()?,
            ))
        })
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|(_, wal, kept)| wal >= kept),
        "(t, b's pg_wal, retained for the slot) after the restartpoint: {after:?}"
    );
    let statuses: Vec<(i64, String)> = r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            Some((
                p["t_ms"].as_i64()?,
                p["b_slot_status"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert!(
        !statuses.is_empty()
            && statuses
                .iter()
                .all(|(_, s)| s == "reserved" || s == "extended"),
        "{statuses:?}"
    );
    assert_eq!(slot(&r)["survived"], true);
    assert_eq!(slot(&r)["resync_needed"], false);
}

/// How far a wal_status has gone towards loss; None for a status a slot cannot have.
fn wal_status_rank(status: &str) -> Option<u8> {
    match status {
        "reserved" => Some(0),
        "extended" => Some(1),
        "unreserved" => Some(2),
        "lost" | "invalidated (wal_removed)" => Some(3),
        _ => None,
    }
}

#[test]
fn a_capped_slot_is_lost_and_c_needs_a_resync() {
    let r = run_scenario("wal-pressure-lost");
    assert_eq!(slot(&r)["survived"], false, "{:#}", slot(&r));
    assert_eq!(slot(&r)["invalidation_reason"], "wal_removed");
    assert_eq!(slot(&r)["resync_needed"], true);
    // The slot's wal_status sample by sample: healthy (reserved or extended) once the consumer
    // stopped, then worse and worse until lost, and never back — a lost slot does not recover.
    let stop = injected_ms(&r, "replicator_stop");
    let statuses: Vec<(i64, String)> = r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["t_ms"].as_i64().unwrap() >= stop)
        .filter_map(|p| {
            Some((
                p["t_ms"].as_i64()?,
                p["b_slot_status"].as_str()?.to_string(),
            ))
        })
        .collect();
    let ranks: Vec<u8> = statuses
        .iter()
        .map(|(t, s)| {
            wal_status_rank(s).unwrap_or_else(|| panic!("status {s:?} at {t} ms: {statuses:?}"))
        })
        .collect();
    assert!(
        ranks.first().is_some_and(|r| *r <= 1),
        "the slot must start healthy after the stop: {statuses:?}"
    );
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "wal_status went back towards reserved: {statuses:?}"
    );
    assert_eq!(ranks.last(), Some(&3), "{statuses:?}");
    // The report's list of changes is the same story.
    let changes: Vec<String> = slot(&r)["wal_status_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[1].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        changes.last().map(String::as_str),
        statuses.last().map(|(_, s)| s.as_str()),
        "{changes:?}"
    );
    // C can never catch up from a lost slot; what it lacks is the migration's RPO, judged on
    // C (no failover here).
    assert_eq!(
        r["catchup_missed"]["never"], true,
        "{:#}",
        r["catchup_missed"]
    );
    let rpo = &r["observations"]["rpo"];
    assert_eq!(rpo["node"], "c", "{rpo:#}");
    assert!(rpo["lost_writes"].as_u64().unwrap() > 0, "{rpo:#}");
}

#[test]
fn after_primary_failure_writes_on_promoted_b_reach_c_and_the_lost_ones_are_listed() {
    // Kept running after the run, so that b's data can be checked against the list.
    let (r, run) = run_shipped("primary-failure-async", &["--keep"]);
    let _down = cli::DownOnDrop(run.clone());
    // Every row on b and c is one some ledger order explains — also an invoice id b's
    // sequence issued again after the promotion (judged by its second history).
    for l in r["ledger"].as_array().unwrap() {
        assert_eq!(l["unexplained"]["count"], 0, "{l:#}");
    }
    let f = &r["observations"]["failover"];
    let (killed, promoted) = (
        f["killed_ms"].as_i64().unwrap(),
        f["promoted_ms"].as_i64().unwrap(),
    );
    assert!(promoted >= killed, "{f:#}");
    // Judged from the samples after the promotion: the slot was seen active (a walsender
    // consuming it), not conflicting and not lost after b was promoted, and stayed usable.
    assert_eq!(f["slot_carried_on"], true, "{f:#}");
    let active = f["slot_active_at_ms"].as_i64();
    assert!(
        active.is_some_and(|t| t >= promoted),
        "the slot must have been seen active after the promotion: {f:#}"
    );
    telemetry_is_kept(&r, &run, killed);
    // Ledger and fault times share one timeline: b acknowledged nothing before it was promoted.
    let first_on_b = f["first_write_on_b_ms"].as_i64();
    assert!(
        first_on_b.is_some_and(|w| w >= promoted),
        "the workload must have written to b once it was promoted: {f:#}"
    );
    // C was verified against the promoted B: every write B took is on C.
    let c_vs_b = report::verify_of(&r, "c");
    assert_eq!(c_vs_b["reference"], "b");
    assert_eq!(c_vs_b["verdict"], "valid");

    // --- the RPO: judged on b as its promotion left it, every lost write counted and listed
    let rpo = &r["observations"]["rpo"];
    assert_eq!(rpo["node"], "b");
    assert_eq!(rpo["judged_at_ms"].as_i64(), Some(promoted), "{rpo:#}");
    let lost_writes = rpo["lost_writes"].as_u64().unwrap();
    let lost = rpo["lost"].as_array().unwrap();
    // a acknowledged ~200 writes/s for the second b could not hear from it.
    assert!(lost_writes >= 20, "{rpo:#}");
    assert_eq!(lost.len() as u64, lost_writes.min(100), "{rpo:#}");
    assert!(rpo["lost_keys"].as_u64().unwrap() <= lost_writes);

    // Each listed write is one a acknowledged before it died, in the window the partition
    // opened (200 ms of delayed WAL before it, nothing after it; 2 s of slack for a slow
    // machine) — not earlier.
    let ledger = ledger(&run);
    let partition = injected_ms(&r, "partition");
    for w in lost {
        let e = &ledger[&w["op"].as_u64().unwrap()];
        assert_eq!(e["outcome"], "ok", "{w:#} vs the ledger's {e:#}");
        assert_eq!(e["node"], "a", "{e:#}");
        for k in ["table", "key", "kind", "done_us"] {
            assert_eq!(e[k], w[k], "{k}: {w:#} vs the ledger's {e:#}");
        }
        let done_ms = e["done_us"].as_i64().unwrap() / 1000;
        assert!(
            done_ms <= killed && done_ms >= partition - 2_000,
            "acknowledged at {done_ms} ms; partition at {partition}, kill at {killed}: {w:#}"
        );
        assert_eq!(w["applied"], false);
    }
    let unknown = unknown_writes_match_the_ledger(rpo, &ledger);
    // a was partitioned from b: nothing in flight when it died reached b.
    assert!(
        unknown.iter().all(|w| w["applied"] == false),
        "{unknown:#?}"
    );

    // Each listed write is truly absent from b: no row on b carries an inserted or updated
    // op id, and a row a deleted is still on b (with the op id b had at promotion; its
    // connection never touched the key again).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let attached = harness::run::Attached::open(harness::run::RunDir::open(&run))
            .await
            .unwrap();
        let (b, db) = (&attached.chain.b, attached.state.database.as_str());
        let rows_with = |table: &str, op: u64| {
            let sql = format!("SELECT count(*) FROM {table} WHERE op_id = {op}");
            async move { b.query_one(db, &sql).await.unwrap().unwrap() }
        };
        let mut deletes = 0;
        for w in lost {
            let (table, op) = (w["table"].as_str().unwrap(), w["op"].as_u64().unwrap());
            if w["kind"] == "delete" {
                let found = w["found_op"].as_u64().expect("a lost delete leaves a row");
                assert_eq!(rows_with(table, found).await, "1", "{w:#}");
                deletes += 1;
            } else {
                assert_eq!(rows_with(table, op).await, "0", "on b: {w:#}");
                assert_ne!(w["found_op"].as_u64(), Some(op), "{w:#}");
            }
        }
        eprintln!(
            "checked {} lost writes on b ({deletes} deletes) of {lost_writes}",
            lost.len()
        );
        attached.down().await.unwrap();
    });
    cli::assert_cleaned_up(&run);
}

/// The raw replication telemetry survives into samples.jsonl and the report's series: b's
/// replay timestamp (as a time, not only an age), the subscription's latest_end_time and
/// last_msg_send_time, and a → b write and flush lag while a was up (None once it died, never
/// 0 for a NULL).
fn telemetry_is_kept(r: &Value, run: &Path, killed: i64) {
    let utc = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$").unwrap();
    let rfc3339 = |v: &Value| v.as_str().is_some_and(|s| utc.is_match(s));
    let samples: Vec<Value> = report::samples(run);
    let node = |s: &Value, name: &str| -> Value {
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        samples
            .iter()
            .any(|s| rfc3339(&node(s, "b")["replay_timestamp"])),
        "no sample kept b's replay timestamp"
    );
    let sub_times = samples.iter().any(|s| {
        node(s, "c")["subscriptions"]
            .as_array()
            .is_some_and(|subs| {
                subs.iter()
                    .any(|x| rfc3339(&x["latest_end_time"]) && rfc3339(&x["last_msg_send_time"]))
            })
    });
    assert!(
        sub_times,
        "no sample kept the subscription's latest_end_time / last_msg_send_time"
    );
    let series = r["observations"]["series"].as_array().unwrap();
    for k in ["ab_write_s", "ab_flush_s"] {
        assert!(
            series
                .iter()
                .any(|p| p["t_ms"].as_i64() < Some(killed) && p[k].is_f64()),
            "{k}: no a → b lag while a was up"
        );
        // After a died there is nobody to report it: no lag, not 0.
        assert!(
            series
                .iter()
                .filter(|p| p["t_ms"].as_i64() > Some(killed + 1_000))
                .all(|p| p[k].is_null()),
            "{k} after a died"
        );
    }
}

#[test]
fn primary_failure_with_synchronous_replication_loses_no_acknowledged_write() {
    let (r, run) = run_shipped("primary-failure-sync", &[]);
    cli::assert_cleaned_up(&run);
    let rpo = &r["observations"]["rpo"];
    assert_eq!(rpo["lost_writes"], 0, "{rpo:#}");
    assert_eq!(rpo["lost"].as_array().map(Vec::len), Some(0), "{rpo:#}");
    let promoted = r["observations"]["failover"]["promoted_ms"].as_i64();
    assert!(promoted.is_some());
    assert_eq!(rpo["judged_at_ms"].as_i64(), promoted, "{rpo:#}");
    // The commits a was waiting on when it died: unknown to the client, at most one per
    // connection (each waits for its own acknowledgement). Whether b has one depends on whether
    // its WAL crossed before the cut swallowed the acknowledgement: not a loss either way.
    let unknown = unknown_writes_match_the_ledger(rpo, &ledger(&run));
    assert!((1..=4).contains(&unknown.len()), "{unknown:#?}");
}

/// The catalog churn fault's record: rounds completed (at least one: churn that never ran
/// proves nothing about the slot), and the record itself.
fn churn(r: &Value) -> &Value {
    let f = report::fault(r, "catalog_churn");
    let c = &f["churn"];
    assert!(
        c["rounds"].as_u64().is_some_and(|n| n > 0),
        "no churn round completed: {f:#}"
    );
    c
}

#[test]
fn catalog_churn_without_mitigation_invalidates_the_slot() {
    let r = run_scenario("catalog-conflict-unmitigated");
    // Nothing on a held its horizon back for b: no physical slot there.
    let c = churn(&r);
    assert_eq!(c["rounds_horizon_held"], 0, "{c:#}");
    assert!(c["a_physical_slots"].is_null(), "{c:#}");
    assert_eq!(slot(&r)["survived"], false, "{:#}", slot(&r));
    assert_eq!(slot(&r)["invalidation_reason"], "rows_removed");
}

#[test]
fn catalog_churn_with_mitigation_leaves_the_slot_alone() {
    let r = run_scenario("catalog-conflict-mitigated");
    // The churn ran all along, not just once, and the slot still survived.
    let c = churn(&r);
    let rounds = c["rounds"].as_u64().unwrap();
    assert!(rounds >= 10, "{c:#}");
    assert_eq!(c["failed_rounds"], 0, "{c:#}");
    // Why it survived: b's hot_standby_feedback, through its physical slot on a, held a's
    // horizon back (xmin, then catalog_xmin once b reports it apart) after every round.
    assert_eq!(c["rounds_horizon_held"].as_u64(), Some(rounds), "{c:#}");
    assert_eq!(slot(&r)["survived"], true, "{:#}", slot(&r));
}

#[test]
fn slot_creation_on_b_waits_for_an_idle_primary_to_be_nudged() {
    let r = run_scenario("idle-primary");
    let i = &r["idle_primary"];
    assert_eq!(i["still_waiting_after_idle_wait"], true, "{i:#}");
    assert!(
        i["completed_after_nudge_ms"].as_u64().unwrap() < 5_000,
        "{i:#}"
    );
}
