//! The run directory: everything one rehearsal creates lives under it.
//!
//! ```text
//! <run>/
//!   state.json      what is running (for status/verify/down from another process)
//!   pgpass          passwords for client programs (0600, server user)
//!   logs/<node>.log server logs (kept)
//!   nodes/<node>/   data directories (removed at teardown unless --keep)
//!   ledger.jsonl    every workload operation and its outcome
//!   report.json, report.md
//! ```

use std::path::{Path, PathBuf};

use crate::error::{Result, io_error};
use crate::os::ServerUser;

/// Root of all runs: `PGREHEARSE_HOME`, else `$XDG_STATE_HOME/pgrehearse` or
/// `~/.local/state/pgrehearse`; as root `/var/lib/pgrehearse` (the server user must be able to
/// walk down to the data directories, and cannot enter /root).
pub fn home() -> PathBuf {
    if let Some(d) = std::env::var_os("PGREHEARSE_HOME").filter(|v| !v.is_empty()) {
        return absolute(Path::new(&d));
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/pgrehearse");
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(d).join("pgrehearse");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/pgrehearse"),
        None => std::env::temp_dir().join("pgrehearse"),
    }
}

/// The file naming the process that created a run directory.
const OWNER: &str = "owner.pid";

/// `path` made absolute against the working directory (as it is, if there is none).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// One run's directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    id: String,
}

impl RunDir {
    /// Create a fresh run directory under `base` (default: `home()/runs`), named
    /// `<timestamp>-<label>-<random>`.
    ///
    /// # Errors
    /// Environment error when the directory cannot be created.
    pub fn create(base: Option<&Path>, label: &str, user: &ServerUser) -> Result<RunDir> {
        let base = base
            .map(Path::to_path_buf)
            .unwrap_or_else(|| home().join("runs"));
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let id = format!(
            "{}-{label}-{:04x}",
            chrono::Utc::now().format("%Y%m%d-%H%M%S"),
            rand::random::<u16>()
        );
        Self::create_at(&base.join(&id), &id, user)
    }

    /// Create (or reuse, when empty) exactly `root` as the run directory.
    ///
    /// # Errors
    /// Environment error when the directory cannot be created.
    pub fn create_at(root: &Path, id: &str, user: &ServerUser) -> Result<RunDir> {
        use std::os::unix::fs::PermissionsExt;
        // Absolute: the recorded data directories are found again by `status` and `down` run
        // from another working directory.
        let root = &absolute(root);
        for d in [root.to_path_buf(), root.join("logs"), root.join("nodes")] {
            std::fs::create_dir_all(&d)
                .map_err(|e| io_error("cannot create run directory", &d, e))?;
            // Readable by the server user, which writes nothing here but its own subfolders;
            // the server logs only by their owner (they can hold a password until scrubbed).
            let mode = if d.ends_with("logs") { 0o700 } else { 0o755 };
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_error("cannot chmod", &d, e))?;
        }
        if user.switch {
            let mut cur = root.parent();
            while let Some(d) = cur {
                if d.starts_with(home()) {
                    let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
                }
                cur = d.parent();
            }
        }
        user.own(&root.join("logs"))?;
        user.own(&root.join("nodes"))?;
        // Who is using the run, before any state exists (a bench never writes any): `down
        // --all` leaves a run alone while this process lives.
        let owner = root.join(OWNER);
        let me = std::process::id();
        // With its start time, so that a pid reused after this process died is not taken
        // for it.
        let start = crate::os::pid_start(me as i32).map_or_else(String::new, |s| format!(" {s}"));
        std::fs::write(&owner, format!("{me}{start}"))
            .map_err(|e| io_error("cannot write", &owner, e))?;
        Ok(RunDir {
            root: root.to_path_buf(),
            id: id.to_string(),
        })
    }

    /// The process that created the run directory, if it recorded itself, and when it started
    /// (None: not recorded).
    pub fn creator(&self) -> Option<(i32, Option<u64>)> {
        let text = std::fs::read_to_string(self.root.join(OWNER)).ok()?;
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse().ok()?;
        Some((pid, parts.next().and_then(|s| s.parse().ok())))
    }

    /// Open an existing run directory.
    pub fn open(root: &Path) -> RunDir {
        let root = &absolute(root);
        let id = root
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        RunDir {
            root: root.to_path_buf(),
            id,
        }
    }

    /// The run directory of run `id` at `path`, when it really is one: an absolute path to a
    /// real directory (no symlink) named after the run, whose state names the run or which
    /// holds the docker backend's record of its containers. For a path that only a label says
    /// is the run's, before anything in it is changed or removed.
    pub fn recognise(path: &Path, id: &str) -> Option<RunDir> {
        let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        if !path.is_absolute() || !is_dir || path.file_name()? != id {
            return None;
        }
        let named = std::fs::read_to_string(path.join("state.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["run_id"] == id);
        (named || path.join("containers.json").is_file()).then(|| RunDir::open(path))
    }

    /// The run id (the directory name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Data directory parent of node `name`.
    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.root.join("nodes").join(name)
    }

    /// Server log of node `name`.
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{name}.log"))
    }

    /// The libpq password file for client programs.
    pub fn passfile(&self) -> PathBuf {
        self.root.join("pgpass")
    }

    /// The state file read by `status`, `verify` and `down`.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Any file in the run directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_directory_that_is_the_run_s_is_recognised_as_its_run_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |name: &str, files: &[(&str, &str)]| {
            let d = tmp.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            for (f, text) in files {
                std::fs::write(d.join(f), text).unwrap();
            }
            d
        };
        let state = dir("r1", &[("state.json", r#"{"run_id": "r1"}"#)]);
        assert_eq!(RunDir::recognise(&state, "r1").unwrap().path(), state);
        // Killed before its state was written: the containers' record marks it.
        let record = dir("r2", &[("containers.json", "{}")]);
        assert!(RunDir::recognise(&record, "r2").is_some());
        // Named after another run, a state of another run, or nothing of pgrehearse at all.
        assert!(RunDir::recognise(&state, "r9").is_none());
        let other = dir("r3", &[("state.json", r#"{"run_id": "r1"}"#)]);
        assert!(RunDir::recognise(&other, "r3").is_none());
        let plain = dir("r4", &[("notes.txt", "")]);
        assert!(RunDir::recognise(&plain, "r4").is_none());
        // Not a real directory there, or not said where.
        let link = tmp.path().join("elsewhere").join("r1");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&state, &link).unwrap();
        assert!(RunDir::recognise(&link, "r1").is_none());
        assert!(RunDir::recognise(Path::new("r1"), "r1").is_none());
        assert!(RunDir::recognise(&tmp.path().join("gone/r5"), "r5").is_none());
    }
}
