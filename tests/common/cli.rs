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

/// Run `pgrehearse args...` to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("running pgrehearse")
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
