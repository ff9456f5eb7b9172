//! Reaching a chain that another harness process started (`up`, `--keep`): for `status`,
//! `verify` and `down`.

use crate::backend::local::LocalBackend;
use crate::backend::{Backend, BackendKind};
use crate::chain::Chain;
use crate::error::{Error, Result};
use crate::os::ServerUser;
use crate::pg::PgInstall;

use super::{RunDir, RunState, forget_secrets, list_runs};

/// A running chain adopted from its state file.
pub struct Attached {
    /// The chain's nodes and names.
    pub chain: Chain,
    /// What the state file says.
    pub state: RunState,
    /// The run directory.
    pub run: RunDir,
    backend: Adopted,
}

/// The backend side of an adopted run.
enum Adopted {
    Local(Box<LocalBackend>),
    /// Containers are found again by the run's label.
    Docker,
}

impl Attached {
    /// Adopt the run in `run`.
    ///
    /// # Errors
    /// Usage error when the directory is not a run; environment error when its backend is not
    /// supported here.
    pub async fn open(run: RunDir) -> Result<Attached> {
        let (state, creds) = RunState::load(&run)?;
        if state.backend == BackendKind::Docker {
            let version =
                state
                    .pg
                    .as_ref()
                    .map(|p| p.version.clone())
                    .unwrap_or(crate::pg::PgVersion {
                        major: crate::pg::DEFAULT_MAJOR,
                        minor: 0,
                    });
            let nodes = crate::backend::docker::adopt_nodes(&run, &creds, &version).await?;
            let chain = Chain::attach(nodes, &state, creds)?;
            return Ok(Attached {
                chain,
                state,
                run,
                backend: Adopted::Docker,
            });
        }
        let pg: PgInstall = state.pg.clone().ok_or_else(|| {
            Error::internal(format!(
                "run {} records no PostgreSQL install",
                state.run_id
            ))
        })?;
        let user = ServerUser::resolve()?;
        let (backend, nodes) =
            LocalBackend::adopt(pg, user, run.clone(), creds.clone(), &RunState::nodes(&run))?;
        let chain = Chain::attach(nodes, &state, creds)?;
        Ok(Attached {
            chain,
            state,
            run,
            backend: Adopted::Local(Box::new(backend)),
        })
    }

    /// Stop the servers and remove their data; the run directory keeps logs and reports.
    ///
    /// # Errors
    /// The first failure while stopping or removing.
    pub async fn down(self) -> Result<()> {
        let res = match &self.backend {
            Adopted::Local(b) => b.teardown(false).await,
            Adopted::Docker => {
                let _ = std::fs::remove_file(self.run.passfile());
                let docker = crate::backend::docker::connect().await?;
                crate::backend::docker::remove_by_label(
                    &docker,
                    crate::backend::docker::RUN_LABEL,
                    self.run.id(),
                )
                .await
            }
        };
        forget_secrets(&self.run);
        let mut state = self.state;
        state.detached = false;
        if let Ok(text) = serde_json::to_string_pretty(&state) {
            let _ = std::fs::write(self.run.state_file(), text);
        }
        res
    }

    /// Leave the chain running (after status / verify).
    pub fn release(self) {
        if let Adopted::Local(b) = &self.backend {
            b.detach();
        }
    }
}

/// Stop every run whose servers are still up and which nobody owns any more (left by `up`,
/// `--keep`, or a harness that was killed). Works from the recorded data directories alone,
/// so it also cleans up runs whose state or credentials were never written. Returns the run
/// ids it took down.
///
/// # Errors
/// None today; the signature leaves room for backends that can fail (containers).
pub async fn down_all(base: Option<&std::path::Path>) -> Result<Vec<String>> {
    // Another harness is running this rehearsal right now.
    let owned_elsewhere = |run: &RunDir| {
        RunState::load(run).is_ok_and(|(st, _)| {
            !st.owner_gone() && st.owner_pid != std::process::id() && !st.detached
        })
    };
    let dirs = list_runs(base);
    let mut done = Vec::new();
    for dir in &dirs {
        let run = RunDir::open(dir);
        if !RunState::anything_running(&run) || owned_elsewhere(&run) {
            continue;
        }
        for line in crate::backend::local::down_recorded(&run).await {
            tracing::info!("{}: {line}", run.id());
        }
        forget_secrets(&run);
        done.push(run.id().to_string());
    }
    // Containers of runs that are gone (or detached): found by label, whatever the state files say.
    if let Ok(runs) = crate::backend::docker::down_leftovers(|run_id, dir| {
        dir.map(std::path::Path::to_path_buf)
            .or_else(|| dirs.iter().find(|d| d.ends_with(run_id)).cloned())
            .is_some_and(|d| owned_elsewhere(&RunDir::open(&d)))
    })
    .await
    {
        for r in runs {
            if !done.contains(&r) {
                done.push(r);
            }
        }
    }
    Ok(done)
}
