//! Running the `pgrehearse` binary as a user would, and reading what it left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Path of the built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pgrehearse")
}

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
    let dir = tempfile::tempdir().unwrap();
    let (out_p, err_p) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p).unwrap())
        .stderr(std::fs::File::create(&err_p).unwrap())
        .spawn()
        .expect("running pgrehearse");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pgrehearse {args:?} did not finish within 5 minutes; stderr so far:\n{}",
                std::fs::read_to_string(&err_p).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out_p).unwrap(),
        stderr: std::fs::read(&err_p).unwrap(),
    }
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
