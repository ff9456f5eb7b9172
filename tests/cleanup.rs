//! Ctrl-C in the middle of a rehearsal stops every server and removes their data.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cli;

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
    let (_d, path) = cli::scenario("long", cli::LONG);
    // Its own runs folder, so that a plain `down` below can only find this run.
    let runs = tempfile::tempdir().unwrap();
    let runs_dir = runs.path().to_str().unwrap();
    let mut bg = cli::Background::spawn(&["run", path.to_str().unwrap(), "--runs-dir", runs_dir]);

    // --- wait until the chain is up and the workload is writing (the ledger grows)
    let run = bg.wait_for_workload(Duration::from_secs(120), |run| {
        let up = cli::servers_up(run);
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
        cli::servers_up(&run),
        3,
        "the refused `down` stopped servers"
    );

    // --- Ctrl-C (or the hangup)
    bg.signal(signal);

    let status = bg.wait_exit(Duration::from_secs(60));
    let err = bg.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    cli::assert_cleaned_up(&run);
    // The report says the run was cut short: whatever it had judged so far, it is no pass.
    let report = common::report::read(&run);
    assert_eq!(report["verdict"], "unknown", "{report:#}");
    assert_eq!(report["exit_code"], 130, "{report:#}");
    assert_eq!(report["error"], "interrupted", "{report:#}");
    // What was observed until the interrupt is still there to look at.
    let series = report["observations"]["series"].as_array();
    assert!(
        series.is_some_and(|s| !s.is_empty()),
        "no lag series in the report of an interrupted run: {report:#}"
    );
}

/// Ctrl-C in `run --keep` while faults are in force: they are healed before the chain is let
/// go of, so the kept chain is usable — `verify` on it reaches C through the subscription, which
/// it could not with the replicator still stopped or B still frozen.
#[test]
fn sigint_in_run_keep_heals_the_faults_in_force_and_keeps_the_chain() {
    const KEPT: &str = r#"
version = 1
name = "kept"
[workload]
rate = 100
duration = "10m"
[[faults]]
kind = "replicator_stop"
at = "1s"
[[faults]]
kind = "pause"
node = "b"
at = "1s"
[expect]
consistent = false
max_e2e_lag = "10m"
"#;
    let (_d, path) = cli::scenario("kept", KEPT);
    let runs = tempfile::tempdir().unwrap();
    let runs_dir = runs.path().to_str().unwrap();
    let mut bg = cli::Background::spawn(&[
        "run",
        path.to_str().unwrap(),
        "--keep",
        "--runs-dir",
        runs_dir,
    ]);
    let run = bg.wait_for_workload(Duration::from_secs(120), |_| true);
    let _down = cli::DownOnDrop(run.clone());
    common::wait_until("both faults in force", Duration::from_secs(60), || {
        let err = bg.stderr();
        Ok(
            if err.contains("injecting b → c consumer stopped")
                && err.contains("pausing b (SIGSTOP)")
            {
                harness::wait::Check::Done(())
            } else {
                harness::wait::Check::NotYet(harness::node::tail(&err, 10))
            },
        )
    });
    bg.signal(nix::sys::signal::Signal::SIGINT);
    let status = bg.wait_exit(Duration::from_secs(60));
    let err = bg.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("healing the faults in force and keeping the chain"),
        "{err}"
    );
    assert!(err.contains("--keep: the chain is still running"), "{err}");
    // The report of the run cut short has the faults as far as they got, and passes nothing
    // the rest of the run could have broken: a lag within the limit so far is only so far.
    let report = common::report::read(&run);
    assert_eq!(report["cut_short"], true, "{report:#}");
    for kind in ["replicator_stop", "pause"] {
        assert!(
            common::report::fault_ms(&report, kind, "injected_ms") >= 1_000,
            "{report:#}"
        );
    }
    let judged = |name: &str| common::report::expectation(&report, name)["verdict"].clone();
    assert_eq!(judged("faults_injected"), "valid", "{report:#}");
    assert_eq!(judged("max_e2e_lag"), "unknown", "{report:#}");

    let verify = cli::run(&["verify", "--run", run.to_str().unwrap()]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "the kept chain does not replicate:\n{}\n{}",
        cli::stdout(&verify),
        cli::stderr(&verify)
    );
    let down = cli::run(&["down", "--run", run.to_str().unwrap()]);
    assert_eq!(down.status.code(), Some(0), "{}", cli::stderr(&down));
    cli::assert_cleaned_up(&run);
}

/// `--keep` keeps a chain, not the pieces of one: a build that fails half way (the seed script
/// errors once A and C are up) removes what it started, as without `--keep`.
#[test]
fn run_keep_removes_a_chain_that_was_not_fully_built() {
    let (d, path) = cli::scenario(
        "half",
        "version = 1\nname = \"half\"\n[data]\nsql = \"broken.sql\"\n",
    );
    std::fs::write(d.path().join("broken.sql"), "SELECT 1/0;\n").unwrap();
    let out = cli::run(&["run", path.to_str().unwrap(), "--keep"]);
    let err = cli::stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("division by zero"), "{err}");
    assert!(err.contains("not fully built"), "{err}");
    assert!(!err.contains("still running"), "{err}");
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("{err}"));
    cli::assert_cleaned_up(&run);
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

/// Servers that log every statement log the harness's `CREATE ROLE ... PASSWORD` and the
/// subscription's connection string; the logs stay in the run directory, the passwords must not.
#[test]
fn passwords_never_stay_in_the_server_logs() {
    passwords_are_scrubbed_by(|run, _| {
        vec!["down".into(), "--run".into(), run.display().to_string()]
    });
}

#[test]
fn passwords_never_stay_in_the_server_logs_after_down_all() {
    passwords_are_scrubbed_by(|_, runs| {
        vec![
            "down".into(),
            "--all".into(),
            "--runs-dir".into(),
            runs.display().to_string(),
        ]
    });
}

/// `down` is what `down_args(run, runs folder)` says.
fn passwords_are_scrubbed_by(down_args: impl Fn(&Path, &Path) -> Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let (_d, path) = cli::scenario(
        "logged",
        "version = 1\nname = \"logged\"\n[workload]\nenabled = false\n\
         [chain.a.settings]\nlog_statement = \"all\"\n[chain.c.settings]\nlog_statement = \"all\"\n",
    );
    // A folder of its own: `down --all` takes down every chain left up in it.
    let runs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(runs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_out, run, _down) = cli::up(&[
        path.to_str().unwrap(),
        "--runs-dir",
        runs.path().to_str().unwrap(),
    ]);
    let passwords: Vec<String> = std::fs::read_to_string(run.join("pgpass"))
        .unwrap()
        .lines()
        .filter_map(|l| l.rsplit(':').next().map(str::to_string))
        .filter(|p| p.len() >= 16)
        .collect();
    assert_eq!(passwords.len(), 3, "one password per login");
    // Until teardown scrubs them, the logs are for their owner's eyes only.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&run.join("logs")), 0o700);
    for log in walk(&run.join("logs")) {
        assert_eq!(mode(&log), 0o600, "{}", log.display());
    }

    let args = down_args(&run, runs.path());
    let down = cli::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(down.status.code(), Some(0), "{}", cli::stderr(&down));
    cli::assert_cleaned_up(&run);
    let mut logged = String::new();
    for e in walk(&run.join("logs")) {
        logged.push_str(&std::fs::read_to_string(e).unwrap_or_default());
    }
    assert!(
        logged.contains("CREATE SUBSCRIPTION"),
        "the servers logged the statements"
    );
    for p in &passwords {
        assert!(
            !logged.contains(p.as_str()),
            "a password stayed in the logs"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `pgrehearse bench` builds chain after chain; Ctrl-C in the middle of one stops and removes
/// its servers like a rehearsal's.
#[test]
fn ctrl_c_during_a_benchmark_removes_its_servers() {
    use std::os::unix::fs::PermissionsExt;
    // Its own home: the benchmark's run folders are the only ones there.
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut bg = cli::Background::spawn_with_env(
        &["bench", "chain-up", "--runs", "1000"],
        &[("PGREHEARSE_HOME", home.path().to_str().unwrap())],
    );
    let runs = home.path().join("runs");
    common::wait_until(
        "a benchmark chain with a server running",
        Duration::from_secs(120),
        || {
            let up: usize = harness::run::list_runs(Some(&runs))
                .iter()
                .map(|r| cli::servers_up(r))
                .sum();
            Ok(if up > 0 {
                harness::wait::Check::Done(())
            } else {
                harness::wait::Check::NotYet(format!(
                    "no server yet; stderr:\n{}",
                    harness::node::tail(&bg.stderr(), 10)
                ))
            })
        },
    );
    // --- `down --all` leaves a benchmark that is still running alone (it keeps no run state)
    let down = cli::run_with_env(
        &["down", "--all", "--runs-dir", runs.to_str().unwrap()],
        &[("PGREHEARSE_HOME", home.path().to_str().unwrap())],
    );
    assert_eq!(down.status.code(), Some(0), "{}", cli::stderr(&down));
    assert_eq!(
        cli::stdout(&down).trim(),
        "nothing to take down",
        "down --all took a running benchmark's chain down"
    );

    bg.signal(nix::sys::signal::Signal::SIGINT);
    let status = bg.wait_exit(Duration::from_secs(60));
    let err = bg.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    let left = common::processes_under(home.path());
    assert!(
        left.is_empty(),
        "benchmark servers still running: {left:?}\n{err}"
    );
    for r in harness::run::list_runs(Some(&runs)) {
        cli::assert_cleaned_up(&r);
    }
}

/// A harness killed while it seeds A leaves A and C running and no B: `status` and `verify` say
/// the chain was never whole and how to remove it, and a plain `down` removes what it started.
#[test]
fn a_chain_whose_harness_was_killed_before_b_is_taken_down() {
    let (_d, path, _release) = cli::held_seed_scenario("killed-building");
    let runs = tempfile::tempdir().unwrap();
    let runs_dir = runs.path().to_str().unwrap();
    let mut bg = cli::Background::spawn(&["run", path.to_str().unwrap(), "--runs-dir", runs_dir]);
    bg.wait_for_stderr("seeding a from", Duration::from_secs(120));
    let run = cli::run_dir(&bg.stderr()).unwrap();
    let _down = cli::DownOnDrop(run.clone());
    // --- kill -9 the harness while A is being seeded: a and c are up, b was never made
    bg.kill();
    assert_eq!(cli::servers_up(&run), 2);

    for cmd in ["status", "verify"] {
        let out = cli::run(&[cmd, "--runs-dir", runs_dir]);
        let err = cli::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("has no node b") && err.contains("pgrehearse down --run"),
            "{cmd}: {err}"
        );
    }

    let out = cli::run(&["down", "--runs-dir", runs_dir]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    cli::assert_cleaned_up(&run);
    assert!(!run.join("secrets.json").exists(), "the secrets stayed");
}

/// `nohup pgrehearse run ... &` is meant to outlive the terminal: a hangup does not stop it (a
/// Ctrl-C still does).
#[test]
fn a_rehearsal_started_under_nohup_runs_on_through_a_hangup() {
    let (_d, path) = cli::scenario("nohup", cli::LONG);
    let runs = tempfile::tempdir().unwrap();
    let runs_dir = runs.path().to_str().unwrap();
    let mut bg =
        cli::Background::spawn_nohup(&["run", path.to_str().unwrap(), "--runs-dir", runs_dir]);
    let ledger_len = |run: &Path| {
        std::fs::metadata(run.join("ledger.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let run = bg.wait_for_workload(Duration::from_secs(120), |run| {
        cli::servers_up(run) == 3 && ledger_len(run) > 0
    });

    // --- the terminal closes
    bg.signal(nix::sys::signal::Signal::SIGHUP);
    // The workload keeps writing: 100 ops/s add far more than this in a few seconds, and a
    // harness that took the hangup would have stopped it at once.
    let hung_up_at = ledger_len(&run);
    bg.wait_for_workload(Duration::from_secs(60), |run| {
        ledger_len(run) > hung_up_at + 50_000
    });
    assert!(
        !bg.stderr().contains("pgrehearse: interrupted"),
        "{}",
        bg.stderr()
    );
    assert_eq!(cli::servers_up(&run), 3);
    bg.interrupt(&run);
}

/// A cleanup that takes long (held here by a failpoint) hears the signals sent meanwhile: the
/// first says it is still cleaning up, the next forces it — the servers are killed and their
/// data removed all the same.
#[test]
fn a_signal_during_a_long_cleanup_is_heard_and_the_next_one_forces_it() {
    use nix::sys::signal::Signal;
    let (_d, path) = cli::scenario("long-cleanup", cli::LONG);
    let runs = tempfile::tempdir().unwrap();
    let mut bg = cli::Background::spawn_with_env(
        &[
            "run",
            path.to_str().unwrap(),
            "--runs-dir",
            runs.path().to_str().unwrap(),
        ],
        &[("PGREHEARSE_FAILPOINT", "hold-cleanup")],
    );
    let run = bg.wait_for_workload(Duration::from_secs(120), |run| cli::servers_up(run) == 3);
    bg.signal(Signal::SIGINT);
    bg.wait_for_stderr(
        "interrupted; stopping servers and removing their data",
        Duration::from_secs(60),
    );
    // The cleanup listens from when it starts, a moment after that line: a signal sent before
    // is not for it, so send until it is heard.
    let still = "still cleaning up (stopping the servers and removing their data); press Ctrl-C again to force";
    common::wait_until(
        "the cleanup to hear a signal",
        Duration::from_secs(60),
        || {
            let err = bg.stderr();
            if err.contains(still) {
                return Ok(harness::wait::Check::Done(()));
            }
            if bg.exited() {
                return Err(format!("pgrehearse exited without saying so:\n{err}"));
            }
            bg.signal(Signal::SIGINT);
            Ok(harness::wait::Check::NotYet(harness::node::tail(&err, 5)))
        },
    );
    force_cleanup(&mut bg);
    let status = bg.wait_exit(Duration::from_secs(5));
    let err = bg.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("forced: killing what still runs"), "{err}");
    assert!(!err.contains("left behind"), "{err}");
    cli::assert_cleaned_up(&run);
    assert!(!run.join("secrets.json").exists(), "the secrets stayed");
}

/// A rehearsal that had finished before its cleanup was forced keeps its verdict: a proven
/// failure exits 1, not 130, and report.json says the same code.
#[test]
fn a_failed_rehearsal_whose_cleanup_is_forced_still_exits_1() {
    // Native logical replication never carries sequences: this expectation always fails.
    let (_d, path) = cli::scenario(
        "forced-after-fail",
        "version = 1\nname = \"forced-after-fail\"\n[workload]\ninitial_rows = 10\nrate = 50\nduration = \"2s\"\n[expect]\nsequences_match = true\n",
    );
    let runs = tempfile::tempdir().unwrap();
    let mut bg = cli::Background::spawn_with_env(
        &[
            "run",
            path.to_str().unwrap(),
            "--runs-dir",
            runs.path().to_str().unwrap(),
        ],
        &[("PGREHEARSE_FAILPOINT", "hold-cleanup")],
    );
    bg.wait_for_stderr(
        "failpoint hold-cleanup: the cleanup waits",
        Duration::from_secs(240),
    );
    force_cleanup(&mut bg);
    let status = bg.wait_exit(Duration::from_secs(5));
    let err = bg.stderr();
    assert!(err.contains("forced: killing what still runs"), "{err}");
    assert_eq!(status.code(), Some(1), "{err}");
    let run = std::fs::read_dir(runs.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("report.json").exists())
        .expect("a run with a report");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 1, "{report}");
    assert_eq!(report["verdict"], "invalid", "{report}");
    cli::assert_cleaned_up(&run);
}

/// Send Ctrl-C until pgrehearse exits: the cleanup it holds is forced.
fn force_cleanup(bg: &mut cli::Background) {
    common::wait_until("the cleanup to be forced", Duration::from_secs(60), || {
        if bg.exited() {
            return Ok(harness::wait::Check::Done(()));
        }
        bg.signal(nix::sys::signal::Signal::SIGINT);
        Ok(harness::wait::Check::NotYet(harness::node::tail(
            &bg.stderr(),
            5,
        )))
    });
}
