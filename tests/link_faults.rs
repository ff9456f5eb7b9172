//! Link faults on one hop at once: they add up, and healing one leaves the others in force. A
//! fault the backend cannot do (packet loss through the local TCP proxy) is reported with the
//! reason, and the rehearsal does not pass as if it had happened.

mod common;

use common::cli;
use serde_json::Value;

#[test]
fn overlapping_faults_on_a_hop_compose_and_an_impossible_one_is_not_a_pass() {
    let (_d, path) = cli::scenario(
        "overlap",
        r#"version = 1
name = "overlap"
seed = 7
[workload]
initial_rows = 100
rate = 150
duration = "14s"

[[faults]]
kind = "loss"
hop = "a-b"
loss = "5%"
at = "1s"
heal_at = "13s"

[[faults]]
kind = "latency"
hop = "a-b"
latency = "600ms"
at = "2s"
heal_at = "12s"

[[faults]]
kind = "partition"
hop = "a-b"
at = "4s"
heal_at = "6s"

[expect]
consistent = true
consistent_after_heal = true
converges_within = "60s"
"#,
    );
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("{err}"));
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    cli::assert_cleaned_up(&run);

    // Loss needs a packet network: refused on the local backend, with where it can be done.
    let loss = &r["observations"]["faults"][0];
    assert!(loss["injected_ms"].is_null(), "{loss:#}");
    assert!(
        loss["error"].as_str().unwrap().contains("docker backend"),
        "{loss:#}"
    );
    // ... so the run is not a pass, though the chain itself stayed consistent.
    let verdict = |name: &str| {
        r["expectations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} not judged: {:#}", r["expectations"]))["verdict"]
            .clone()
    };
    assert_eq!(verdict("faults_injected"), "unknown");
    assert_eq!(verdict("consistent"), "valid");
    assert_eq!(verdict("consistent_after_heal"), "valid");
    assert_eq!(out.status.code(), Some(1), "{err}");

    // The latency outlives the partition healed at 6 s: B still replays late afterwards.
    let after_partition: Vec<f64> = r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| (8_000..=11_500).contains(&p["t_ms"].as_u64().unwrap()))
        .filter_map(|p| p["ab_s"].as_f64())
        .collect();
    assert!(
        after_partition.iter().copied().fold(0.0, f64::max) >= 0.4,
        "a→b replay lag between the partition's heal and the latency's: {after_partition:?}"
    );
}
