//! Ctrl-C in the middle of a rehearsal stops every server and removes their data.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(cli::bin())
        .args(["run", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();

    // --- wait until the chain is up and the workload is writing (the ledger grows)
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = loop {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        if let Some(run) = cli::run_dir(&err) {
            let up = harness::backend::local::recorded_nodes(&harness::run::RunDir::open(&run))
                .iter()
                .filter(|n| n.pid > 0)
                .count();
            let ledger = std::fs::metadata(run.join("ledger.jsonl"))
                .map(|m| m.len())
                .unwrap_or(0);
            if up == 3 && ledger > 100_000 && err.contains("workload: seed") {
                break run;
            }
        }
        assert!(
            Instant::now() < deadline,
            "chain never came up; stderr:\n{err}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "pgrehearse exited early:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "pgrehearse did not exit within 60s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    cli::assert_cleaned_up(&run);
    assert!(
        run.join("report.json").is_file(),
        "a report records the interrupted run"
    );
}
