//! Ctrl-C in the middle of a rehearsal stops every server and removes their data.

mod common;

use std::time::Duration;

use common::cli;

const LONG: &str = r#"
version = 1
name = "interrupted"
[workload]
initial_rows = 100
rate = 100
duration = "10m"
"#;

#[test]
fn sigint_during_the_workload_stops_and_removes_everything() {
    let (_d, path) = cli::scenario("long", LONG);
    let mut bg = cli::Background::spawn(&["run", path.to_str().unwrap()]);

    // --- wait until the chain is up and the workload is writing (the ledger grows)
    let run = bg.wait_for_workload(Duration::from_secs(120), |run| {
        let up = harness::backend::local::recorded_nodes(&harness::run::RunDir::open(run))
            .iter()
            .filter(|n| n.pid > 0)
            .count();
        let ledger = std::fs::metadata(run.join("ledger.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0);
        up == 3 && ledger > 100_000
    });

    // --- Ctrl-C
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bg.pid()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();

    let status = bg.wait_exit(Duration::from_secs(60));
    let err = bg.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    cli::assert_cleaned_up(&run);
    assert!(
        run.join("report.json").is_file(),
        "a report records the interrupted run"
    );
}

#[test]
fn a_panic_in_the_harness_still_removes_every_server_and_data_directory() {
    let (_d, path) = cli::scenario("panic", "version = 1\n[workload]\nduration = \"5s\"\n");
    let out = cli::run_with_env(
        &["run", path.to_str().unwrap()],
        &[("PGREHEARSE_FAILPOINT", "panic-after-chain-up")],
    );
    let err = cli::stderr(&out);
    assert!(err.contains("failpoint panic-after-chain-up"), "{err}");
    assert_ne!(out.status.code(), Some(0), "{err}");
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("{err}"));
    cli::assert_cleaned_up(&run);
}
