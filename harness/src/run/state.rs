//! The state file: what a run left running, so that `status`, `verify` and `down` — separate
//! processes — can find and reach it. Passwords live beside it in a 0600 file, never in
//! state.json.

use std::path::{Path, PathBuf};

use crate::backend::local::{NODES_FILE, ProcState};
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
        self.write(run)?;
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

    /// Write state.json alone, whole or not at all (another process may be reading it).
    ///
    /// # Errors
    /// Environment error naming the file.
    pub(crate) fn write(&self, run: &RunDir) -> Result<()> {
        let path = run.state_file();
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal("serialising state").with_source(e))?;
        crate::util::write_atomic(&path, &text).map_err(|e| io_error("cannot write", &path, e))
    }

    /// Read a run's state and credentials.
    ///
    /// # Errors
    /// Usage error when the directory holds no run state, or no credentials any more.
    pub fn load(run: &RunDir) -> Result<(RunState, Credentials)> {
        let state = Self::load_state(run)?;
        let sp = run.file(SECRETS);
        let creds = std::fs::read(&sp).map_err(|e| {
            if e.kind() != std::io::ErrorKind::NotFound {
                return io_error("cannot read", &sp, e);
            }
            match live_servers(run) {
                // Removed with the chain at teardown.
                None => Error::usage(format!(
                    "run {} is no longer up: its chain was taken down",
                    run.id()
                ))
                .with_hint("its logs and reports are still there; `pgrehearse up SCENARIO` starts a new chain"),
                Some(live) => Error::usage(format!(
                    "run {} has servers running ({live}) but no {SECRETS} any more: pgrehearse cannot log in to them",
                    run.id()
                ))
                .with_hint(take_down_hint(run)),
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
        let text = std::fs::read_to_string(&path).map_err(|e| match live_servers(run) {
            None => Error::usage(format!("no pgrehearse run at {}", run.path().display()))
                .with_source(e),
            Some(live) => no_state_but_servers(run, &live),
        })?;
        serde_json::from_str(&text).map_err(|e| {
            Error::usage(format!("{} is not a pgrehearse state file", path.display()))
                .with_source(e)
        })
    }

    /// The run's nodes, as the backend recorded them when it created each one, with the pid
    /// of each live postmaster (read from its postmaster.pid).
    ///
    /// # Errors
    /// Environment error when the record cannot be read.
    pub fn nodes(run: &RunDir) -> Result<Vec<ProcState>> {
        crate::backend::local::recorded_nodes(run)
    }

    /// Whether any node of the run still has a live process.
    ///
    /// # Errors
    /// Environment error when the record of nodes cannot be read.
    pub fn anything_running(run: &RunDir) -> Result<bool> {
        Ok(Self::nodes(run)?.iter().any(|n| n.pid > 0))
    }

    /// Whether a pgrehearse process other than this one drives the run right now: a `run` in
    /// progress, or an `up` still building (one left up by `up` or `run --keep` is not driven).
    pub fn driven(&self) -> bool {
        !self.detached && !self.owner_gone() && self.owner_pid != std::process::id()
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
                .filter(|p| p.join("state.json").is_file() || p.join(NODES_FILE).is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs
}

/// The local servers of `run` still running, by name ("a, c"), when there are any.
fn live_servers(run: &RunDir) -> Option<String> {
    let live: Vec<String> = RunState::nodes(run)
        .ok()?
        .into_iter()
        .filter(|n| n.pid > 0)
        .map(|n| n.name)
        .collect();
    (!live.is_empty()).then(|| live.join(", "))
}

/// A run whose harness was killed before it wrote its state, servers `live` still running.
fn no_state_but_servers(run: &RunDir, live: &str) -> Error {
    Error::usage(format!(
        "run {} has servers running ({live}) but no state file: its harness stopped before writing it",
        run.id()
    ))
    .with_hint(take_down_hint(run))
}

fn take_down_hint(run: &RunDir) -> String {
    format!(
        "`pgrehearse down --run {}` (or `pgrehearse down --all`) stops them and removes their data; it needs no password",
        run.path().display()
    )
}

/// What a command means to do with the run it picks, which decides whether a rehearsal in
/// progress (a run its harness still drives) may be picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Look at it (`status`): any run that is up, a rehearsal in progress included.
    Observe,
    /// Verify it: `verify` writes a fence of its own on the primary, which would disturb a
    /// rehearsal in progress, so such a run is skipped, and refused when named.
    Verify,
    /// Take it down: a rehearsal in progress is skipped unless named (its harness cleans up
    /// after itself, and the newest chain running is not necessarily the one meant).
    TakeDown,
}

/// The run to look at: `explicit` (an id or a path), else the newest run that is still up.
///
/// # Errors
/// Usage error when there is none.
pub async fn pick_run(explicit: Option<&str>, base: Option<&Path>) -> Result<RunDir> {
    pick_run_for(Purpose::Observe, explicit, base).await
}

/// The run to act on for `purpose`: `explicit` (an id or a path), else the newest run that is
/// still up and that `purpose` may touch.
///
/// # Errors
/// Usage error when there is none (saying what was passed over, and why), or when the run
/// named cannot be used for `purpose`.
pub async fn pick_run_for(
    purpose: Purpose,
    explicit: Option<&str>,
    base: Option<&Path>,
) -> Result<RunDir> {
    let folder = base
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home().join("runs"));
    if let Some(x) = explicit {
        return named_run(purpose, x, &folder);
    }
    let mut driven = Vec::new();
    let mut stranded = Vec::new();
    for dir in list_runs(Some(&folder)) {
        let run = RunDir::open(&dir);
        let state = match RunState::load_state(&run) {
            Ok(state) => state,
            Err(_) => {
                if let Some(live) = live_servers(&run) {
                    stranded.push(format!("{} ({live}; no state file)", run.id()));
                }
                continue;
            }
        };
        let running = match state.backend {
            crate::backend::BackendKind::Local => match RunState::anything_running(&run) {
                Ok(running) => running,
                Err(e) => {
                    stranded.push(format!("{} ({e})", run.id()));
                    continue;
                }
            },
            crate::backend::BackendKind::Docker => {
                crate::backend::docker::run_has_containers(run.id()).await
            }
        };
        if !running {
            continue;
        }
        if purpose != Purpose::Observe && state.driven() {
            driven.push((run.id().to_string(), state.owner_pid));
            continue;
        }
        // `down` needs no password; the others can only reach a chain whose credentials are
        // still there.
        if purpose != Purpose::TakeDown && !run.file(SECRETS).is_file() {
            stranded.push(format!("{} (no {SECRETS})", run.id()));
            continue;
        }
        return Ok(run);
    }
    Err(nothing_to_pick(purpose, &folder, &driven, &stranded))
}

/// The run named `x` (a path, or an id in `folder`), when `purpose` may use it.
fn named_run(purpose: Purpose, x: &str, folder: &Path) -> Result<RunDir> {
    let is_run = |d: &Path| d.join("state.json").is_file() || d.join(NODES_FILE).is_file();
    let p = PathBuf::from(x);
    let dir = if is_run(&p) { p } else { folder.join(x) };
    let run = RunDir::open(&dir);
    if !dir.join("state.json").is_file() {
        // A harness killed before it wrote its state leaves its servers recorded all the same:
        // `down` takes them down from that record alone.
        if purpose == Purpose::TakeDown && dir.join(NODES_FILE).is_file() {
            return Ok(run);
        }
        return Err(match live_servers(&run) {
            Some(live) => no_state_but_servers(&run, &live),
            None => Error::usage(format!(
                "no pgrehearse run {x} (looked for {})",
                dir.join("state.json").display()
            )),
        });
    }
    if purpose == Purpose::Verify
        && let Ok(state) = RunState::load_state(&run)
        && state.driven()
    {
        return Err(Error::usage(format!(
            "run {} is a rehearsal still in progress (pgrehearse pid {}): verify writes a fence of its own on the primary, which would disturb it",
            run.id(),
            state.owner_pid
        ))
        .with_hint(verify_later_hint(run.id())));
    }
    Ok(run)
}

fn verify_later_hint(id: &str) -> String {
    format!(
        "verify it once it is done (`run --keep` leaves its chain up), or watch it meanwhile with `pgrehearse status --run {id}`"
    )
}

/// Nothing in `folder` for `purpose`: what was passed over, and what to do.
fn nothing_to_pick(
    purpose: Purpose,
    folder: &Path,
    driven: &[(String, u32)],
    stranded: &[String],
) -> Error {
    let e = match driven.first() {
        Some((id, _)) => {
            let owners = driven
                .iter()
                .map(|(id, pid)| format!("{id} (pid {pid})"))
                .collect::<Vec<_>>()
                .join(", ");
            let (what, hint) = match purpose {
                Purpose::Verify => ("verify", verify_later_hint(id)),
                _ => (
                    "take down",
                    format!(
                        "stop that rehearsal with Ctrl-C where it runs (it cleans up after itself), or name the run to take it down anyway: pgrehearse down --run {id}"
                    ),
                ),
            };
            Error::usage(format!(
                "no chain to {what} in {}: every chain running there belongs to a pgrehearse process that is still running: {owners}",
                folder.display()
            ))
            .with_hint(hint)
        }
        None => Error::usage(format!("no running chain found in {}", folder.display())).with_hint(
            "start one with `pgrehearse up SCENARIO`, name a run with --run, or give --runs-dir \
                 the folder it was started in",
        ),
    };
    if stranded.is_empty() {
        return e;
    }
    e.with_detail(format!(
        "servers still running that pgrehearse cannot reach: {}; `pgrehearse down --all` takes them down",
        stranded.join(", ")
    ))
}
