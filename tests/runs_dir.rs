//! A chain started with `up --runs-dir DIR` lives outside the default runs folder: `status`,
//! `verify` and `down` given the same `--runs-dir` find it without `--run`, and `down --all`
//! with `--runs-dir` only looks there.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cli;

const UP: &str = r#"
version = 1
name = "runs-dir"

[workload]
initial_rows = 100
"#;

/// A fresh folder the server user can walk into (as root, servers run as another user, and a
/// temporary folder is 0700).
fn runs_folder() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// `down --all --runs-dir runs` says it took `run` down, and nothing of it is left.
fn down_all_takes_down(runs: &Path, run: &Path) {
    let out = cli::run(&["down", "--all", "--runs-dir", arg(runs)]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    let id = run.file_name().unwrap().to_str().unwrap();
    assert!(
        cli::stdout(&out)
            .lines()
            .any(|l| l == format!("took down {id}")),
        "{}",
        cli::stdout(&out)
    );
    cli::assert_cleaned_up(run);
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn status_verify_and_down_find_a_run_in_the_runs_dir_they_are_given() {
    let t0 = Instant::now();
    let (_scenario, path) = cli::scenario("runs-dir", UP);
    let runs = runs_folder();
    let (up, run, _down) = cli::up(&[arg(&path), "--runs-dir", arg(runs.path())]);
    assert_eq!(run.parent(), Some(runs.path()), "{}", cli::stderr(&up));
    let id = run.file_name().unwrap().to_str().unwrap().to_string();
    // What `up` suggests next works from anywhere: it names the runs folder.
    let next = format!("pgrehearse status --runs-dir {}", runs.path().display());
    assert!(cli::stdout(&up).contains(&next), "{}", cli::stdout(&up));
    eprintln!("up: {:?}", t0.elapsed());

    // --- elsewhere (another home, whose runs folder is empty) nothing is found; the error says
    // where it looked
    let home = tempfile::tempdir().unwrap();
    let out = cli::run_with_env(&["status"], &[("PGREHEARSE_HOME", arg(home.path()))]);
    let e = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains(&format!(
            "no running chain found in {}",
            home.path().join("runs").display()
        )) && e.contains("--runs-dir"),
        "{e}"
    );

    // --- status, without --run
    let t = Instant::now();
    let out = cli::run(&["status", "--runs-dir", arg(runs.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    let text = cli::stdout(&out);
    assert_eq!(
        text.lines().next(),
        Some(format!("run {id} ({})", run.display()).as_str()),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("lag a→c")),
        "status shows no hops:\n{text}"
    );
    let out = cli::run(&["status", "--runs-dir", arg(runs.path()), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&cli::stdout(&out)).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{v:#}");
    assert!(nodes.iter().all(|n| n["reachable"] == true), "{v:#}");
    // An id is looked up in that folder too.
    let out = cli::run(&["status", "--runs-dir", arg(runs.path()), "--run", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    eprintln!("status: {:?}", t.elapsed());

    // --- verify, without --run
    let t = Instant::now();
    let out = cli::run(&["verify", "--runs-dir", arg(runs.path()), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    let reports: serde_json::Value = serde_json::from_str(&cli::stdout(&out)).unwrap();
    assert_eq!(reports[0]["target"], "c", "{reports:#}");
    assert_eq!(reports[0]["verdict"], "valid", "{reports:#}");
    eprintln!("verify: {:?}", t.elapsed());

    // --- down --all in another runs folder leaves this chain alone
    let other = runs_folder();
    let out = cli::run(&["down", "--all", "--runs-dir", arg(other.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    assert_eq!(cli::stdout(&out).trim(), "nothing to take down");
    assert!(
        !common::processes_under(&run).is_empty(),
        "down --all --runs-dir {} took down a run of {}",
        other.path().display(),
        runs.path().display()
    );

    // --- down, without --run
    let t = Instant::now();
    let out = cli::run(&["down", "--runs-dir", arg(runs.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    assert!(
        cli::stdout(&out).contains(&run.display().to_string()),
        "{}",
        cli::stdout(&out)
    );
    cli::assert_cleaned_up(&run);
    assert!(
        !run.join("secrets.json").exists(),
        "credentials must not outlive the chain"
    );
    eprintln!("down: {:?}", t.elapsed());

    // --- nothing is left running there
    let out = cli::run(&["status", "--runs-dir", arg(runs.path())]);
    assert_eq!(out.status.code(), Some(2), "{}", cli::stderr(&out));
    let out = cli::run(&["down", "--all", "--runs-dir", arg(runs.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    assert_eq!(cli::stdout(&out).trim(), "nothing to take down");
    eprintln!("total: {:?}", t0.elapsed());
}

#[test]
fn down_all_with_a_runs_dir_takes_down_what_runs_there() {
    let t0 = Instant::now();
    let (_scenario, path) = cli::scenario("runs-dir-all", UP);
    let runs = runs_folder();
    let (_, run, _down) = cli::up(&[arg(&path), "--runs-dir", arg(runs.path())]);
    assert!(!common::processes_under(&run).is_empty());

    down_all_takes_down(runs.path(), &run);
    eprintln!("total: {:?}", t0.elapsed());
}

#[test]
fn a_relative_runs_dir_is_found_again_from_another_working_directory() {
    let (_scenario, path) = cli::scenario("runs-dir-relative", UP);
    let cwd = runs_folder();
    let out = cli::run_in(cwd.path(), &["up", arg(&path), "--runs-dir", "runs"]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("{err}"));
    let _down = cli::DownOnDrop(run.clone());
    assert!(
        run.starts_with(cwd.path().join("runs")),
        "the run directory is printed in full: {}",
        run.display()
    );
    assert!(!common::processes_under(&run).is_empty());

    // From this test's own working directory: the recorded data directories still lead to the
    // servers.
    let id = run.file_name().unwrap().to_str().unwrap();
    let runs = cwd.path().join("runs");
    let out = cli::run(&["down", "--run", id, "--runs-dir", arg(&runs)]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    cli::assert_cleaned_up(&run);
}

#[test]
fn down_all_removes_what_a_run_left_behind_when_its_servers_died_with_its_harness() {
    let (_scenario, path) = cli::scenario("runs-dir-dead", UP);
    let runs = runs_folder();
    let (_, run, _down) = cli::up(&[arg(&path), "--runs-dir", arg(runs.path())]);
    // The machine went down with the chain (or every server crashed): nothing runs, the data
    // directories and the password file are still there.
    for pid in common::processes_under(&run) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    common::wait_until(
        "every server of the run to be gone",
        std::time::Duration::from_secs(30),
        || {
            let left = common::processes_under(&run);
            Ok(if left.is_empty() {
                harness::wait::Check::Done(())
            } else {
                harness::wait::Check::NotYet(format!("still running: {left:?}"))
            })
        },
    );
    assert!(run.join("nodes/a/data").is_dir());
    assert!(run.join("pgpass").is_file());

    down_all_takes_down(runs.path(), &run);
    assert!(!run.join("pgpass").exists(), "the password file stayed");
    assert!(!run.join("secrets.json").exists(), "the secrets stayed");
}

/// `verify` and `down` without `--run` act on the newest chain left up, not on a newer
/// rehearsal still in progress; `verify` refuses that rehearsal even when named (its fence would
/// disturb it), and `status`, which may watch it, writes nothing of it.
#[test]
fn a_rehearsal_in_progress_is_passed_over_by_down_and_verify() {
    let (_scenario, path) = cli::scenario("left-up", UP);
    let runs = runs_folder();
    let (_, kept, _down) = cli::up(&[arg(&path), "--runs-dir", arg(runs.path())]);
    let kept_id = kept.file_name().unwrap().to_str().unwrap().to_string();

    // --- a rehearsal starts in the same folder: the newest run there
    let (_long, long) = cli::scenario("in-progress", cli::LONG);
    let mut bg = cli::Background::spawn(&["run", arg(&long), "--runs-dir", arg(runs.path())]);
    let driven = bg.wait_for_workload(Duration::from_secs(120), |run| cli::servers_up(run) == 3);
    let _down_driven = cli::DownOnDrop(driven.clone());
    let written = |f: &str| {
        std::fs::metadata(driven.join(f))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = (written("pgpass"), written("nodes.json"));

    // --- status may look at it, and changes nothing of it
    let out = cli::run(&["status", "--run", arg(&driven)]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    assert_eq!(
        (written("pgpass"), written("nodes.json")),
        before,
        "status rewrote files of the rehearsal it looked at"
    );

    // --- verify: the chain left up; the rehearsal, named, is refused
    let out = cli::run(&["verify", "--runs-dir", arg(runs.path())]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("verifying run {kept_id}")), "{err}");
    let out = cli::run(&["verify", "--run", arg(&driven)]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("a rehearsal still in progress"), "{err}");

    // --- down: the chain left up, not the rehearsal
    let out = cli::run(&["down", "--runs-dir", arg(runs.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    assert!(
        cli::stdout(&out).contains(&kept.display().to_string()),
        "{}",
        cli::stdout(&out)
    );
    cli::assert_cleaned_up(&kept);
    assert_eq!(
        cli::servers_up(&driven),
        3,
        "down took the rehearsal's servers"
    );
    // ... and nothing else there is its to take
    let out = cli::run(&["down", "--runs-dir", arg(runs.path())]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("still running") && err.contains("--run"),
        "{err}"
    );

    bg.interrupt(&driven);
}

/// Servers whose run has no state file (its harness was killed before writing it), or no
/// secrets any more: `status` and `verify` say so and how to take them down, and `down --run`
/// does, without a password.
#[test]
fn servers_left_without_state_or_secrets_are_named_and_taken_down() {
    use harness::backend::Backend;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (backend, _x) = rt.block_on(common::one_server("no-state"));
    let run = backend.run_dir().clone();
    let dir = arg(run.path()).to_string();

    let refused = |what: &str| {
        for cmd in ["status", "verify"] {
            let out = cli::run(&[cmd, "--run", &dir]);
            let err = cli::stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
            assert!(
                err.contains(&format!("has servers running (x) but {what}")),
                "{cmd}: {err}"
            );
            assert!(err.contains("pgrehearse down --run"), "{cmd}: {err}");
        }
    };
    refused("no state file");

    // --- a state, but no secrets
    let state = harness::run::RunState {
        run_id: run.id().to_string(),
        scenario: "no-state".into(),
        owner_pid: 1,
        owner_start: None,
        detached: true,
        backend: harness::backend::BackendKind::Local,
        pg: Some(common::pg()),
        database: "app".into(),
        subscription: "pgrehearse_sub".into(),
        physical_slot: None,
        started_at: String::new(),
        catchup_timeout_ms: None,
        initial_copy_timeout_ms: None,
    };
    let user = harness::os::ServerUser::resolve().unwrap();
    state.save(&run, None, &user).unwrap();
    refused("no secrets.json any more");

    let out = cli::run(&["down", "--run", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    cli::assert_cleaned_up(run.path());
    // Taken down by another process: nothing for this handle to stop any more.
    backend.detach();
}

/// `down --all` says which runs it could not take down — a folder that would not go, a record
/// of nodes it cannot read — and keeps their secrets, instead of reporting them taken down.
#[test]
fn down_all_names_what_it_could_not_take_down_and_keeps_its_secrets() {
    let runs = runs_folder();
    let run_dir = |id: &str, nodes_json: &str| {
        let dir = runs.path().join(id);
        std::fs::create_dir_all(dir.join("nodes")).unwrap();
        std::fs::write(dir.join("nodes.json"), nodes_json).unwrap();
        std::fs::write(dir.join("secrets.json"), "{}").unwrap();
        std::fs::write(dir.join("pgpass"), "").unwrap();
        dir
    };
    // A file stands where node a's folder is: removing it fails.
    let stuck_id = "20260101-000000-stuck-0001";
    let stuck = runs.path().join(stuck_id);
    let nodes = serde_json::json!([{
        "name": "a",
        "port": 1,
        "pid": 0,
        "data_dir": stuck.join("nodes/a/data"),
        "log": stuck.join("logs/a.log"),
    }]);
    run_dir(stuck_id, &nodes.to_string());
    std::fs::write(stuck.join("nodes/a"), "").unwrap();
    let garbled_id = "20260101-000000-garbled-0002";
    let garbled = run_dir(garbled_id, "[{\"name\": \"a\", \"po");

    let out = cli::run(&["down", "--all", "--runs-dir", arg(runs.path())]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        !cli::stdout(&out).contains("took down"),
        "{}",
        cli::stdout(&out)
    );
    assert!(
        err.contains(&format!("{stuck_id}: a: cannot remove")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{garbled_id}:")) && err.contains("nodes.json is not"),
        "{err}"
    );
    for run in [&stuck, &garbled] {
        assert!(run.join("secrets.json").exists(), "{}", run.display());
    }
}
