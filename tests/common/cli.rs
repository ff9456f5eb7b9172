//! Running the `pgrehearse` binary as a user would, and reading what it left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use harness::wait::Check;

/// Path of the built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pgrehearse")
}

/// A rehearsal that writes for ten minutes: one that is still in progress when the test acts.
pub const LONG: &str = r#"
version = 1
name = "long"
[workload]
initial_rows = 100
rate = 100
duration = "10m"
"#;

/// Write a scenario file into a fresh temporary folder and return (folder guard, path).
pub fn scenario(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Run `pgrehearse args...` to completion (at most 5 minutes: a hang fails the test with the
/// output so far instead of stalling CI).
pub fn run(args: &[&str]) -> Output {
    run_with_env(args, &[])
}

/// [`run`] in working directory `cwd`.
pub fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("running pgrehearse")
}

/// [`run`] with extra environment variables.
pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut bg = Background::spawn_with_env(args, env);
    let status = bg.wait_exit(Duration::from_secs(300));
    Output {
        status,
        stdout: std::fs::read(&bg.out_path).unwrap(),
        stderr: std::fs::read(&bg.err_path).unwrap(),
    }
}

/// Stop `child` if it still runs, and reap it: SIGINT first, as Ctrl-C would, so pgrehearse
/// takes down what it started; SIGKILL if it has not exited within `grace`. For guards that run
/// when a test ends early: a child left running would load every later test on a small machine.
pub fn interrupt_and_reap(child: &mut Child, grace: Duration) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Reaped by a thread that blocks on it, so the exit is seen the moment it happens.
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = nix::sys::wait::waitpid(pid, None);
        let _ = exited.send(());
    });
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    if exit.recv_timeout(grace).is_err() {
        let _ = child.kill();
        let _ = exit.recv_timeout(Duration::from_secs(10));
    }
}

/// A child process stopped and reaped ([`interrupt_and_reap`]) when the test ends, however it
/// ends.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        interrupt_and_reap(&mut self.0, Duration::from_secs(10));
    }
}

/// How long a pgrehearse left running by a failed test gets to tear down its chain after
/// SIGINT before it is killed.
const TEARDOWN_GRACE: Duration = Duration::from_secs(60);

/// `pgrehearse` running in the background, its output in files the test can read meanwhile.
/// Stopped and reaped when dropped, should the test fail before it exited.
pub struct Background {
    child: Child,
    out_path: PathBuf,
    err_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Background {
    /// Start `pgrehearse args...`.
    pub fn spawn(args: &[&str]) -> Background {
        Background::spawn_with_env(args, &[])
    }

    /// Start `pgrehearse args...` with extra environment variables; an empty value removes the
    /// variable, so the test does not depend on what the caller's environment holds.
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Background {
        Background::spawn_command(Command::new(bin()), args, env)
    }

    /// Start `nohup pgrehearse args...`: as from a terminal the user means to close.
    pub fn spawn_nohup(args: &[&str]) -> Background {
        let mut nohup = Command::new("nohup");
        nohup.arg(bin());
        Background::spawn_command(nohup, args, &[])
    }

    fn spawn_command(mut command: Command, args: &[&str], env: &[(&str, &str)]) -> Background {
        let dir = tempfile::tempdir().unwrap();
        let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
        command.args(args).env("RUST_LOG", "info");
        for (name, value) in env {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("running pgrehearse");
        Background {
            child,
            out_path,
            err_path,
            _dir: dir,
        }
    }

    /// stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err_path).unwrap_or_default()
    }

    /// Send `sig` to pgrehearse, as Ctrl-C, a closed terminal or `kill` would.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Whether pgrehearse has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Wait until stderr says `what`; fail if pgrehearse exits first or it does not within
    /// `timeout`.
    pub fn wait_for_stderr(&mut self, what: &str, timeout: Duration) {
        let (child, err_path) = (&mut self.child, &self.err_path);
        super::wait_until(&format!("pgrehearse to say {what:?}"), timeout, || {
            let err = std::fs::read_to_string(err_path).unwrap_or_default();
            if err.contains(what) {
                return Ok(Check::Done(()));
            }
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("pgrehearse exited early ({status}):\n{err}"));
            }
            Ok(Check::NotYet(harness::node::tail(&err, 10)))
        });
    }

    /// Wait until the run's workload has started and `ready` holds for its run directory;
    /// return that directory. Fails if pgrehearse exits first.
    pub fn wait_for_workload(
        &mut self,
        timeout: Duration,
        ready: impl Fn(&Path) -> bool,
    ) -> PathBuf {
        let (child, err_path) = (&mut self.child, &self.err_path);
        super::wait_until(
            "the chain to be up and the workload writing",
            timeout,
            || {
                let err = std::fs::read_to_string(err_path).unwrap_or_default();
                if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                    return Err(format!("pgrehearse exited early ({status}):\n{err}"));
                }
                Ok(match run_dir(&err) {
                    Some(run) if err.contains("workload: seed") && ready(&run) => Check::Done(run),
                    _ => {
                        Check::NotYet(format!("stderr so far:\n{}", harness::node::tail(&err, 10)))
                    }
                })
            },
        )
    }

    /// Wait for the process to exit; kill it and fail the test after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let (child, err_path) = (&mut self.child, &self.err_path);
        let res = super::try_wait_until("pgrehearse to exit", timeout, || {
            Ok(match child.try_wait().map_err(|e| e.to_string())? {
                Some(s) => Check::Done(s),
                None => Check::NotYet(harness::node::tail(
                    &std::fs::read_to_string(err_path).unwrap_or_default(),
                    10,
                )),
            })
        });
        match res {
            Ok(s) => s,
            Err(e) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{e}");
            }
        }
    }

    /// Ctrl-C it: it must exit 130, having removed every server and data directory of `run`.
    pub fn interrupt(&mut self, run: &Path) {
        self.signal(nix::sys::signal::Signal::SIGINT);
        let status = self.wait_exit(Duration::from_secs(60));
        assert_eq!(status.code(), Some(130), "{}", self.stderr());
        assert_cleaned_up(run);
    }

    /// SIGKILL it: none of its cleanup code runs.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        interrupt_and_reap(&mut self.child, TEARDOWN_GRACE);
    }
}

/// `pgrehearse up args...`, which must succeed: its output, the run directory, and a guard that
/// takes the chain down when the test ends, pass or fail.
pub fn up(args: &[&str]) -> (Output, PathBuf, DownOnDrop) {
    let mut all = vec!["up"];
    all.extend_from_slice(args);
    let out = run(&all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let dir = run_dir(&err).unwrap_or_else(|| panic!("no run directory:\n{err}"));
    let down = DownOnDrop(dir.clone());
    (out, dir, down)
}

/// Runs `pgrehearse down --run <dir>` when dropped, so a failing test does not leave a chain
/// started with `up` behind.
pub struct DownOnDrop(pub PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(bin())
            .args(["down", "--run", self.0.to_str().unwrap()])
            .output();
    }
}

/// A scenario whose seed script holds the build on A (A and C up, B not made yet) until the
/// returned file exists, then fails with "division by zero". Returns the scenario's folder (keep
/// it), the scenario and the file that releases the seed.
pub fn held_seed_scenario(name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = scenario(
        name,
        &format!("version = 1\nname = \"{name}\"\n[data]\nsql = \"held.sql\"\n"),
    );
    // The server runs as another user when the tests run as root: it must see the file appear.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let release = dir.path().join("release");
    std::fs::write(
        dir.path().join("held.sql"),
        format!(
            "DO $$ BEGIN\n  WHILE pg_stat_file('{}', true) IS NULL LOOP PERFORM pg_sleep(0.05); END LOOP;\nEND $$;\nSELECT 1/0;\n",
            release.display()
        ),
    )
    .unwrap();
    (dir, path, release)
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The run directory the binary announced on stderr.
pub fn run_dir(stderr: &str) -> Option<PathBuf> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("pgrehearse: run directory "))
        .map(|p| PathBuf::from(p.trim()))
}

/// How many servers of the run in `run` are running, from its record of nodes.
pub fn servers_up(run: &Path) -> usize {
    harness::backend::local::recorded_nodes(&harness::run::RunDir::open(run))
        .expect("the run's record of nodes")
        .iter()
        .filter(|n| n.pid > 0)
        .count()
}

/// Assert that no process of the run is alive and its data directories are gone.
pub fn assert_cleaned_up(run: &Path) {
    let left = super::processes_under(run);
    assert!(
        left.is_empty(),
        "processes of {} still running: {left:?}",
        run.display()
    );
    let nodes = run.join("nodes");
    let data: Vec<_> = std::fs::read_dir(&nodes)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        data.is_empty(),
        "data directories left in {}: {data:?}",
        nodes.display()
    );
}
