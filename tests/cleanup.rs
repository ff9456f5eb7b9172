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
    interrupt_during_the_workload(nix::sys::signal::Signal::SIGINT);
}

/// A closed terminal or a dropped SSH session: the servers run in their own process group, so
/// only the harness can stop them.
#[test]
fn a_hangup_during_the_workload_stops_and_removes_everything() {
    interrupt_during_the_workload(nix::sys::signal::Signal::SIGHUP);
}

fn interrupt_during_the_workload(signal: nix::sys::signal::Signal) {
    let (_d, path) = cli::scenario("long", LONG);
    // Its own runs folder, so that a plain `down` below can only find this run.
    let runs = tempfile::tempdir().unwrap();
    let runs_dir = runs.path().to_str().unwrap();
    let mut bg = cli::Background::spawn(&["run", path.to_str().unwrap(), "--runs-dir", runs_dir]);

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

    // --- a plain `down` elsewhere does not pull the chain from under its live harness
    let down = cli::run(&["down", "--runs-dir", runs_dir]);
    let err = cli::stderr(&down);
    assert_eq!(down.status.code(), Some(2), "{err}");
    assert!(
        err.contains("still running") && err.contains("--run"),
        "{err}"
    );
    assert_eq!(
        harness::backend::local::recorded_nodes(&harness::run::RunDir::open(&run))
            .iter()
            .filter(|n| n.pid > 0)
            .count(),
        3,
        "the refused `down` stopped servers"
    );

    // --- Ctrl-C (or the hangup)
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(bg.pid()), signal).unwrap();

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
