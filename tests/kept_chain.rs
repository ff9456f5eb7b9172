//! A chain left running (`up`, `run --keep`) by a scenario with link faults keeps replicating
//! after the harness exits: the link proxies live in the harness process and die with it, so no
//! hop of a kept chain may go through one.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cli;
use harness::wait::Check;

/// Both hops partitioned for a second during a short workload: each hop gets a link proxy.
const LINK_FAULTS: &str = r#"
version = 1
name = "kept-links"

[workload]
initial_rows = 50
rate = 50
duration = "3s"

[[faults]]
kind = "partition"
hop = "a-b"
at = "1s"
heal_at = "2s"

[[faults]]
kind = "partition"
hop = "b-c"
at = "1s"
heal_at = "2s"

[expect]
consistent = true
"#;

/// Wait until `status --json` shows A streaming to B, B streaming to C's subscription and the
/// subscription's worker running; fail with the last status seen.
fn wait_streaming(run: &str) {
    common::wait_until(
        "status to show a→b and b→c streaming",
        Duration::from_secs(60),
        || {
            // Not cli::run: it waits on a runtime of its own, which cannot nest in this one.
            let out = std::process::Command::new(cli::bin())
                .args(["status", "--run", run, "--json"])
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.code() != Some(0) {
                return Err(format!("status failed:\n{}", cli::stderr(&out)));
            }
            let v: serde_json::Value =
                serde_json::from_str(&cli::stdout(&out)).map_err(|e| e.to_string())?;
            let streaming = |node: usize| {
                v["nodes"][node]["senders"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|w| w["state"] == "streaming"))
            };
            let worker = v["nodes"][2]["subscriptions"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|w| w["relid"].is_null() && w["pid"].is_number())
            });
            Ok(if streaming(0) && streaming(1) && worker {
                Check::Done(())
            } else {
                Check::NotYet(format!("{v:#}"))
            })
        },
    );
}

/// `verify` on the running chain: C matches A.
fn verify_valid(run: &str) {
    let out = cli::run(&["verify", "--run", run, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    let reports: serde_json::Value = serde_json::from_str(&cli::stdout(&out)).unwrap();
    assert_eq!(reports[0]["target"], "c", "{reports:#}");
    assert_eq!(reports[0]["verdict"], "valid", "{reports:#}");
}

/// Every password of the run, from its secrets file.
fn passwords(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("secrets.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object()
        .unwrap()
        .values()
        .filter_map(|login| login["password"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn up_with_link_faults_builds_direct_hops_that_outlive_it() {
    let t0 = Instant::now();
    let (_dir, path) = cli::scenario("kept-links", LINK_FAULTS);
    let (up, run, _down) = cli::up(&[path.to_str().unwrap()]);
    let err = cli::stderr(&up);
    assert!(err.contains("faults are not run by up"), "{err}");
    assert!(!err.contains("link faults on"), "up opened links:\n{err}");
    let run_arg = run.to_str().unwrap();
    wait_streaming(run_arg);
    verify_valid(run_arg);
    eprintln!("total: {:?}", t0.elapsed());
}

#[test]
fn run_keep_with_link_faults_leaves_direct_hops_that_outlive_it() {
    let t0 = Instant::now();
    let (_dir, path) = cli::scenario("kept-links", LINK_FAULTS);
    let out = cli::run(&["run", path.to_str().unwrap(), "--keep"]);
    let err = cli::stderr(&out);
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("no run directory:\n{err}"));
    // Taken down at the end, pass or fail.
    let _down = cli::DownOnDrop(run.clone());
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("kept chain: a→b: b streams from a at"),
        "{err}"
    );
    assert!(err.contains("kept chain: b→c: subscription"), "{err}");
    let printed = format!("{}{err}", cli::stdout(&out));
    for p in passwords(&run) {
        assert!(!printed.contains(&p), "a password was printed:\n{printed}");
    }
    eprintln!("run --keep: {:?}", t0.elapsed());

    let run_arg = run.to_str().unwrap();
    wait_streaming(run_arg);
    verify_valid(run_arg);

    let down = cli::run(&["down", "--run", run_arg]);
    assert_eq!(down.status.code(), Some(0), "{}", cli::stderr(&down));
    cli::assert_cleaned_up(&run);
    eprintln!("total: {:?}", t0.elapsed());
}

/// A short primary failure: A killed and B promoted a second into the workload.
const FAILOVER: &str = r#"
version = 1
name = "kept-failover"

[workload]
initial_rows = 50
rate = 50
duration = "3s"

[[faults]]
kind = "primary_failure"
at = "1s"

[expect]
consistent = false
slot_survives = true
"#;

/// The chain `run --keep` leaves after a primary failure has B as its primary: `verify` fences
/// and compares against B, not the dead A. Servers that are down make `verify` an environment
/// error (exit 2) with what to do, not a difference found (exit 1).
#[test]
fn verify_on_a_chain_kept_after_a_failover_compares_with_the_promoted_b() {
    let (_dir, path) = cli::scenario("kept-failover", FAILOVER);
    let out = cli::run(&["run", path.to_str().unwrap(), "--keep"]);
    let err = cli::stderr(&out);
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("no run directory:\n{err}"));
    let _down = cli::DownOnDrop(run.clone());
    assert!(err.contains("--keep: the chain is still running"), "{err}");
    let run_arg = run.to_str().unwrap();

    // --- verify: fenced on b, c compared with b
    let out = cli::run(&["verify", "--run", run_arg, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    let reports: serde_json::Value = serde_json::from_str(&cli::stdout(&out)).unwrap();
    assert_eq!(reports[0]["target"], "c", "{reports:#}");
    assert_eq!(reports[0]["reference"], "b", "{reports:#}");
    assert_eq!(reports[0]["verdict"], "valid", "{reports:#}");

    // --- c goes down: nothing can be compared, and that is not a difference
    let nodes = harness::backend::local::recorded_nodes(&harness::run::RunDir::open(&run))
        .expect("the run's record of nodes");
    let c = nodes.iter().find(|n| n.name == "c").unwrap();
    assert!(c.pid > 0, "c is not running: {nodes:?}");
    harness::os::signal_tree(c.pid, nix::sys::signal::Signal::SIGKILL);
    common::wait_until("c to be gone", Duration::from_secs(30), || {
        Ok(if harness::os::pid_running(c.pid) {
            Check::NotYet(format!("pid {} running", c.pid))
        } else {
            Check::Done(())
        })
    });
    let out = cli::run(&["verify", "--run", run_arg]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("c of run") && err.contains("does not answer"),
        "{err}"
    );
    assert!(err.contains("pgrehearse status --run"), "{err}");

    let down = cli::run(&["down", "--run", run_arg]);
    assert_eq!(down.status.code(), Some(0), "{}", cli::stderr(&down));
    cli::assert_cleaned_up(&run);
}
