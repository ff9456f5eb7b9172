//! Every shipped fault scenario, run as a user runs it: `pgrehearse run scenarios/<name>.toml`.
//! Each must pass its own expectations (exit 0), and each test checks one observation that
//! shows the fault really happened, from the report's time series.

mod common;

use common::cli;
use serde_json::Value;

/// Run a shipped scenario with a fixed seed; return the parsed report.
fn run_scenario(name: &str) -> Value {
    let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let out = cli::run(&["run", &path, "--seed", "20261125"]);
    let err = cli::stderr(&out);
    let run =
        cli::run_dir(&err).unwrap_or_else(|| panic!("{name}: no run directory; stderr:\n{err}"));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{name}: no report ({e}); stderr:\n{err}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: expectations did not hold:\n{:#}\nstderr:\n{err}",
        report["expectations"]
    );
    cli::assert_cleaned_up(&run);
    report
}

/// Values of `field` in the series between `from` and `to` seconds (None points skipped).
fn series(r: &Value, field: &str, from: f64, to: f64) -> Vec<f64> {
    r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            let t = p["t_ms"].as_f64().unwrap() / 1000.0;
            t >= from && t <= to
        })
        .filter_map(|p| p[field].as_f64())
        .collect()
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn slot(r: &Value) -> &Value {
    &r["observations"]["slot"]
}

#[test]
fn lag_on_a_to_b_shows_in_replay_lag_and_recovers() {
    let r = run_scenario("lag-ab");
    let during = series(&r, "ab_s", 8.0, 19.0);
    assert!(
        max(&during) >= 0.4,
        "a→b replay lag during 500 ms latency: {during:?}"
    );
    let after = series(&r, "ab_s", 24.0, 30.0);
    assert!(
        !after.is_empty() && after.iter().all(|s| *s < 0.2),
        "a→b replay lag after heal: {after:?}"
    );
}

#[test]
fn lag_on_b_to_c_leaves_a_to_b_flat() {
    let r = run_scenario("lag-bc");
    let e2e = series(&r, "e2e_s", 8.0, 19.0);
    assert!(
        max(&e2e) >= 0.4,
        "end-to-end lag during b→c latency: {e2e:?}"
    );
    let ab = series(&r, "ab_s", 8.0, 19.0);
    assert!(
        ab.iter().all(|s| *s < 0.2),
        "a→b lag must stay flat: {ab:?}"
    );
}

#[test]
fn partition_a_b_starves_b_and_heals() {
    let r = run_scenario("partition-ab");
    let during = series(&r, "ab_bytes", 8.0, 19.0);
    assert!(
        max(&during) > 100_000.0,
        "a→b bytes behind during the partition: {during:?}"
    );
    assert_eq!(r["observations"]["faults"][0]["kind"], "partition");
    assert!(r["observations"]["convergence_ms"].as_u64().is_some());
}

#[test]
fn partition_b_c_grows_b_to_c_lag_while_a_to_b_stays_flat() {
    let r = run_scenario("partition-bc");
    let bc = series(&r, "bc_bytes", 8.0, 19.0);
    let ab = series(&r, "ab_bytes", 8.0, 19.0);
    assert!(
        max(&bc) > 100_000.0,
        "b→c bytes behind during the partition: {bc:?}"
    );
    assert!(
        max(&ab) < max(&bc) / 10.0,
        "a→b must stay flat: a→b {ab:?} vs b→c {bc:?}"
    );
    assert_eq!(slot(&r)["survived"], true);
}

#[test]
fn a_stopped_consumer_makes_b_retain_wal_and_the_slot_survives() {
    let r = run_scenario("wal-pressure-survives");
    let retained = series(&r, "b_slot_retained", 5.0, 23.0);
    assert!(
        max(&retained) > 8.0 * 1024.0 * 1024.0,
        "WAL retained on b for the slot: {retained:?}"
    );
    assert_eq!(slot(&r)["survived"], true);
    assert_eq!(slot(&r)["resync_needed"], false);
}

#[test]
fn a_capped_slot_is_lost_and_c_needs_a_resync() {
    let r = run_scenario("wal-pressure-lost");
    assert_eq!(slot(&r)["survived"], false, "{:#}", slot(&r));
    assert_eq!(slot(&r)["invalidation_reason"], "wal_removed");
    assert_eq!(slot(&r)["resync_needed"], true);
    let changes = slot(&r)["wal_status_changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c[1].as_str().unwrap().contains("lost")
                || c[1].as_str().unwrap().contains("invalidated")),
        "{changes:?}"
    );
}

#[test]
fn after_primary_failure_writes_on_promoted_b_reach_c() {
    let r = run_scenario("primary-failure-async");
    let f = &r["observations"]["failover"];
    assert!(
        f["promoted_ms"].as_i64().unwrap() >= f["killed_ms"].as_i64().unwrap(),
        "{f:#}"
    );
    assert_eq!(f["slot_carried_on"], true);
    assert!(
        f["first_write_on_b_ms"].as_i64().is_some(),
        "the workload must have written to b: {f:#}"
    );
    // C was verified against the promoted B: every write B took is on C.
    let c_vs_b = r["verify"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["target"] == "c")
        .unwrap();
    assert_eq!(c_vs_b["reference"], "b");
    assert_eq!(c_vs_b["verdict"], "valid");
    assert!(r["observations"]["rpo"]["lost_writes"].as_u64().is_some());
}

#[test]
fn synchronous_replication_loses_no_acknowledged_write() {
    let r = run_scenario("primary-failure-sync");
    assert_eq!(
        r["observations"]["rpo"]["lost_writes"], 0,
        "{:#}",
        r["observations"]["rpo"]
    );
    assert!(
        r["observations"]["failover"]["promoted_ms"]
            .as_i64()
            .is_some()
    );
}

#[test]
fn catalog_churn_without_mitigation_invalidates_the_slot() {
    let r = run_scenario("catalog-conflict-unmitigated");
    assert_eq!(slot(&r)["survived"], false, "{:#}", slot(&r));
    assert_eq!(slot(&r)["invalidation_reason"], "rows_removed");
}

#[test]
fn catalog_churn_with_mitigation_leaves_the_slot_alone() {
    let r = run_scenario("catalog-conflict-mitigated");
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
