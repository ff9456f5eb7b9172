//! The state file: what a run left running, so that `status`, `verify` and `down` — separate
//! processes — can find and reach it. Passwords live beside it in a 0600 file, never in
//! state.json.

use std::path::{Path, PathBuf};

use crate::backend::local::ProcState;
use crate::backend::{BackendKind, Credentials};
use crate::error::{Error, Result, io_error};
use crate::os::ServerUser;
use crate::pg::PgInstall;

use super::{RunDir, home};

/// What `state.json` records.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// Run id (directory name).
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Pid of the harness process that owns the run.
    pub owner_pid: u32,
    /// When that process started ([`crate::os::pid_start`]): a pid reused after the harness
    /// died must not keep the run "owned" (None: not known, or a state of an older version).
    #[serde(default)]
    pub owner_start: Option<u64>,
    /// True when the run was left running on purpose (`up`, `--keep`).
    pub detached: bool,
    /// Backend kind.
    pub backend: BackendKind,
    /// PostgreSQL installation (local backend).
    pub pg: Option<PgInstall>,
    /// Replicated database.
    pub database: String,
    /// Subscription on C (also the logical slot name on B).
    pub subscription: String,
    /// Physical slot on A, if any.
    pub physical_slot: Option<String>,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// The scenario's catch-up limit, in ms, for `verify` on the kept chain (None: the
    /// default; a state written before it was recorded).
    #[serde(default)]
    pub catchup_timeout_ms: Option<u64>,
    /// The scenario's initial-copy limit, in ms (as `catchup_timeout_ms`).
    #[serde(default)]
    pub initial_copy_timeout_ms: Option<u64>,
}

const SECRETS: &str = "secrets.json";

impl RunState {
    /// Write state.json and, when given, the run's credentials (0600, beside it; `None` once
    /// the servers are gone and nobody needs them).
    ///
    /// # Errors
    /// Environment error naming the file.
    pub fn save(&self, run: &RunDir, creds: Option<&Credentials>, user: &ServerUser) -> Result<()> {
        let path = run.state_file();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::internal("serialising state").with_source(e))?;
        std::fs::write(&tmp, text).map_err(|e| io_error("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_error("cannot write", &path, e))?;
        let Some(creds) = creds else { return Ok(()) };
        let secrets = serde_json::to_vec(creds)
            .map_err(|e| Error::internal("serialising credentials").with_source(e))?;
        // The harness itself reads it back; the server user does not need it.
        let me = ServerUser {
            switch: false,
            ..user.clone()
        };
        me.private_file(&run.file(SECRETS), &secrets)
    }

    /// Read a run's state and credentials.
    ///
    /// # Errors
    /// Usage error when the directory holds no run state.
    pub fn load(run: &RunDir) -> Result<(RunState, Credentials)> {
        let state = Self::load_state(run)?;
        let sp = run.file(SECRETS);
        let creds = std::fs::read(&sp).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                // Removed with the chain at teardown.
                Error::usage(format!(
                    "run {} is no longer up: its chain was taken down",
                    run.id()
                ))
                .with_hint("its logs and reports are still there; `pgrehearse up SCENARIO` starts a new chain")
            } else {
                io_error("cannot read", &sp, e)
            }
        })?;
        let creds: Credentials = serde_json::from_slice(&creds)
            .map_err(|e| Error::internal(format!("reading {}", sp.display())).with_source(e))?;
        Ok((state, creds))
    }

    /// Read a run's state alone: enough to take down its containers, which needs no password.
    ///
    /// # Errors
    /// Usage error when the directory holds no run state.
    pub fn load_state(run: &RunDir) -> Result<RunState> {
        let path = run.state_file();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::usage(format!("no pgrehearse run at {}", run.path().display())).with_source(e)
        })?;
        serde_json::from_str(&text).map_err(|e| {
            Error::usage(format!("{} is not a pgrehearse state file", path.display()))
                .with_source(e)
        })
    }

    /// The run's nodes, as the backend recorded them when it created each one, with the pid
    /// of each live postmaster (read from its postmaster.pid).
    pub fn nodes(run: &RunDir) -> Vec<ProcState> {
        crate::backend::local::recorded_nodes(run)
    }

    /// Whether any node of the run still has a live process.
    pub fn anything_running(run: &RunDir) -> bool {
        Self::nodes(run).iter().any(|n| n.pid > 0)
    }

    /// Who may be writing this run's heartbeat. Only the harness process that owns a run writes
    /// it (while its workload runs): once that process is gone (`up`, `run --keep`), the
    /// heartbeat row only ages.
    pub fn heartbeat_writer(&self) -> crate::observe::Writer {
        if self.owner_gone() {
            crate::observe::Writer::Gone(format!(
                "the pgrehearse process that ran the chain (pid {}) has exited; only it writes heartbeats",
                self.owner_pid
            ))
        } else {
            crate::observe::Writer::MaybeRunning
        }
    }

    /// Whether the owning harness process is gone.
    pub fn owner_gone(&self) -> bool {
        !crate::os::same_process_alive(self.owner_pid as i32, self.owner_start)
    }
}

/// Scrub the run's passwords out of the server logs it keeps (after teardown, when no server
/// writes them any more).
pub fn scrub_logs(run: &RunDir, creds: &crate::backend::Credentials) {
    let logs = run.path().join("logs");
    if let Err(e) = crate::secret::scrub_dir(&logs, &creds.secrets()) {
        tracing::warn!(
            "could not scrub passwords from the server logs in {}: {e}",
            logs.display()
        );
    }
}

/// Remove the run's secrets (on teardown).
pub fn forget_secrets(run: &RunDir) {
    let _ = std::fs::remove_file(run.file(SECRETS));
}

/// Every run directory under the runs folder, newest first.
pub fn list_runs(base: Option<&Path>) -> Vec<PathBuf> {
    let base = base
        .map(super::dir::absolute)
        .unwrap_or_else(|| home().join("runs"));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&base)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("state.json").is_file() || p.join("nodes.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs
}

/// For `down` without `--run`: refuse a run whose harness process is still alive (a `run` in
/// progress, or an `up` still building) — the newest running chain is not necessarily the one
/// the user means, and tearing down a live rehearsal under its harness ruins it.
///
/// # Errors
/// Usage error naming the run and its process.
pub fn refuse_if_driven(run: &RunDir) -> Result<()> {
    let Ok((state, _)) = RunState::load(run) else {
        return Ok(());
    };
    if state.detached || state.owner_gone() || state.owner_pid == std::process::id() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "the newest running chain, {}, belongs to a pgrehearse process that is still running (pid {})",
        run.id(),
        state.owner_pid
    ))
    .with_hint(format!(
        "stop that rehearsal with Ctrl-C where it runs (it cleans up after itself), or name the run to take it down anyway: pgrehearse down --run {}",
        run.id()
    )))
}

/// The run to act on: `explicit` (an id or a path), else the newest run that is still running.
///
/// # Errors
/// Usage error when there is none.
pub async fn pick_run(explicit: Option<&str>, base: Option<&Path>) -> Result<RunDir> {
    if let Some(x) = explicit {
        let p = PathBuf::from(x);
        let dir = if p.join("state.json").is_file() {
            p
        } else {
            base.map(Path::to_path_buf)
                .unwrap_or_else(|| home().join("runs"))
                .join(x)
        };
        if !dir.join("state.json").is_file() {
            return Err(Error::usage(format!(
                "no pgrehearse run {x} (looked for {})",
                dir.join("state.json").display()
            )));
        }
        return Ok(RunDir::open(&dir));
    }
    let folder = base
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home().join("runs"));
    for dir in list_runs(Some(&folder)) {
        let run = RunDir::open(&dir);
        // Only chains that status/verify/down can reach: credentials still there.
        let Ok((state, _)) = RunState::load(&run) else {
            continue;
        };
        let running = match state.backend {
            crate::backend::BackendKind::Local => RunState::anything_running(&run),
            crate::backend::BackendKind::Docker => {
                crate::backend::docker::run_has_containers(run.id()).await
            }
        };
        if running {
            return Ok(run);
        }
    }
    Err(
        Error::usage(format!("no running chain found in {}", folder.display())).with_hint(
            "start one with `pgrehearse up SCENARIO`, name a run with --run, or give --runs-dir \
             the folder it was started in",
        ),
    )
}
