//! Reaching a chain that another harness process started (`up`, `--keep`): for `status`,
//! `verify` and `down`.

use std::path::Path;

use crate::backend::local::LocalBackend;
use crate::backend::{Backend, BackendKind};
use crate::chain::Chain;
use crate::error::{Error, Result};
use crate::node::Node;
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
    /// Adopt the run in `run`. Nothing of the run is changed: it may still be driven by its own
    /// harness (`status` during a rehearsal).
    ///
    /// # Errors
    /// Usage error when the directory is not a run, or a run whose chain was never whole;
    /// environment error when its backend is not supported here.
    pub async fn open(run: RunDir) -> Result<Attached> {
        let (state, creds) = RunState::load(&run)?;
        let (nodes, backend) = if state.backend == BackendKind::Docker {
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
            (nodes, Adopted::Docker)
        } else {
            let pg: PgInstall = state.pg.clone().ok_or_else(|| {
                Error::internal(format!(
                    "run {} records no PostgreSQL install",
                    state.run_id
                ))
            })?;
            let user = ServerUser::resolve()?;
            let (backend, nodes) = LocalBackend::adopt(
                pg,
                user,
                run.clone(),
                creds.clone(),
                &RunState::nodes(&run)?,
            );
            (nodes, Adopted::Local(Box::new(backend)))
        };
        let chain = Chain::attach(nodes, &state, creds).await.map_err(|e| {
            e.context(format!("run {}", run.id())).with_hint(format!(
                "`pgrehearse down --run {}` stops what it started and removes its data",
                run.path().display()
            ))
        })?;
        Ok(Attached {
            chain,
            state,
            run,
            backend,
        })
    }

    /// Fail unless each of `nodes` answers: against servers that are down, `verify` could
    /// only fail, which would read as a difference found.
    ///
    /// # Errors
    /// Environment error naming the first node that does not answer, with what to do.
    pub async fn require_answering(&self, nodes: &[&Node]) -> Result<()> {
        for n in nodes {
            if let Err(e) = n.connect("postgres").await {
                let id = self.run.path().display();
                return Err(Error::environment(format!(
                    "{} of run {} does not answer",
                    n.name(),
                    self.run.id()
                ))
                .with_source(e)
                .with_hint(format!(
                    "`pgrehearse status --run {id}` shows which nodes are up; `pgrehearse down --run {id}` removes the chain"
                )));
            }
        }
        Ok(())
    }

    /// Stop the servers and remove their data; the run directory keeps logs and reports.
    ///
    /// # Errors
    /// The first failure while stopping or removing.
    pub async fn down(self) -> Result<()> {
        match &self.backend {
            Adopted::Local(b) => {
                b.teardown(false).await?;
                taken_down(&self.run, self.state);
                Ok(())
            }
            Adopted::Docker => down_containers(self.run, self.state).await,
        }
    }

    /// Leave the chain running (after status / verify).
    pub fn release(self) {
        if let Adopted::Local(b) = &self.backend {
            b.detach();
        }
    }
}

/// Take down the chain of `run` (`pgrehearse down --run`). Containers go by the run's label,
/// so nodes already gone (killed, removed by hand) do not stand in the way; local servers go by
/// the run's record of nodes, which needs no password and no whole chain (a harness killed
/// while building it leaves some nodes only, or no state at all).
///
/// # Errors
/// Usage error when `run` is not a run; the failure while stopping or removing, in which case
/// the run's credentials are kept so that `down` can be tried again.
pub async fn down_run(run: RunDir) -> Result<()> {
    let state = match RunState::load_state(&run) {
        Ok(state) => Some(state),
        // Its containers are found by their label alone.
        Err(e) if run.file("containers.json").exists() => {
            return Err(e.with_hint("`pgrehearse down --all` finds its containers by their label"));
        }
        Err(_) if run.file(crate::backend::local::NODES_FILE).is_file() => None,
        Err(e) => return Err(e),
    };
    if let Some(state) = state.as_ref().filter(|s| s.backend == BackendKind::Docker) {
        return down_containers(run, state.clone()).await;
    }
    for line in crate::backend::local::down_recorded(&run).await? {
        tracing::info!("{}: {line}", run.id());
    }
    match state {
        Some(state) => taken_down(&run, state),
        None => scrub_and_forget(&run),
    }
    Ok(())
}

async fn down_containers(run: RunDir, state: RunState) -> Result<()> {
    let docker = crate::backend::docker::connect().await?;
    // The server logs live in the containers: kept with the run, as a run's own teardown does.
    crate::backend::docker::save_logs(&docker, &run).await;
    crate::backend::docker::remove_by_label(&docker, crate::backend::docker::RUN_LABEL, run.id())
        .await?;
    let _ = std::fs::remove_file(run.passfile());
    taken_down(&run, state);
    Ok(())
}

/// Once nothing of `run` is left: its passwords are scrubbed from the logs it keeps, its
/// secrets go, and its state says it is no longer up.
fn taken_down(run: &RunDir, mut state: RunState) {
    scrub_and_forget(run);
    state.detached = false;
    if let Err(e) = state.write(run) {
        tracing::warn!("{e}");
    }
}

/// The run's passwords scrubbed from the logs it keeps (while its secrets still say what they
/// are), then its secrets removed.
fn scrub_and_forget(run: &RunDir) {
    if let Ok((_, creds)) = RunState::load(run) {
        super::scrub_logs(run, &creds);
    }
    forget_secrets(run);
}

/// Once nothing of container run `run` is left in Docker (its server logs saved): its password
/// file goes, its passwords are scrubbed from those logs, and its secrets go.
fn forget_container_run(run: &RunDir) {
    let _ = std::fs::remove_file(run.passfile());
    scrub_and_forget(run);
}

fn is_docker(run: &RunDir) -> bool {
    RunState::load_state(run).is_ok_and(|s| s.backend == BackendKind::Docker)
}

/// Whether a run whose servers are all down still holds data directories or its password
/// file (its harness was killed, and the servers died with the machine or crashed).
fn left_behind(run: &RunDir) -> Result<bool> {
    Ok(run.passfile().exists()
        || crate::backend::local::recorded_nodes(run)?
            .iter()
            .any(|n| n.data_dir.exists()))
}

/// Whether anything of local run `run` is still there to take down.
fn anything_left(run: &RunDir) -> Result<bool> {
    Ok(RunState::anything_running(run)? || left_behind(run)?)
}

/// Stop every run whose servers are still up, or whose data is still there, and which nobody
/// owns any more (left by `up`,
/// `--keep`, or a harness that was killed). Works from the recorded data directories alone,
/// so it also cleans up runs whose state or credentials were never written. Returns the run
/// ids it took down.
///
/// `base` is the runs folder (default: `home()/runs`). Containers are found by label wherever
/// their run directory is; when `base` is given, only those of runs in it are removed. Those
/// another host made (a shared Docker engine) are removed only if `any_host`.
///
/// # Errors
/// Environment error when the Docker engine cannot be reached although it is expected (a
/// socket exists, `DOCKER_HOST` is set, or a run here used containers), or when some run could
/// not be taken down: its record of nodes unreadable, a server that would not stop, a folder
/// that would not go, containers or networks that could not be removed (after trying every
/// run; what was taken down meanwhile is in the error's detail).
pub async fn down_all(base: Option<&Path>, any_host: bool) -> Result<Vec<String>> {
    // Another harness is running this rehearsal (or benchmark, which keeps no state) right now.
    let owned_elsewhere = |run: &RunDir| match RunState::load_state(run) {
        Ok(st) => st.driven(),
        Err(_) => run.creator().is_some_and(|(pid, start)| {
            pid != std::process::id() as i32 && crate::os::same_process_alive(pid, start)
        }),
    };
    let dirs = list_runs(base);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for dir in &dirs {
        let run = RunDir::open(dir);
        // Containers are found by label below; the run's secrets stay until its logs are
        // saved out of them and scrubbed.
        if owned_elsewhere(&run) || is_docker(&run) {
            continue;
        }
        let res = match anything_left(&run) {
            Ok(false) => continue,
            Ok(true) => crate::backend::local::down_recorded(&run).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(lines) => {
                for line in lines {
                    tracing::info!("{}: {line}", run.id());
                }
                scrub_and_forget(&run);
                done.push(run.id().to_string());
            }
            // Its secrets stay: whatever is left may still need them.
            Err(e) => failed.push(format!("{}: {e}", run.id())),
        }
    }
    let err = match down_container_runs(base, any_host, &dirs, &owned_elsewhere).await {
        Ok(taken) => {
            for r in taken {
                if !done.contains(&r) {
                    done.push(r);
                }
            }
            None
        }
        Err(e) => Some(e),
    };
    let err = match (err, failed.is_empty()) {
        (None, true) => return Ok(done),
        (Some(e), true) => e,
        (e, false) => {
            let local = Error::environment(format!(
                "could not take down every run: {}",
                failed.join("; ")
            ))
            .with_hint(
                "see what is left in those run directories, then run `pgrehearse down --all` again",
            );
            match e {
                Some(e) => local.also(&e),
                None => local,
            }
        }
    };
    if done.is_empty() {
        return Err(err);
    }
    let also = format!("taken down: {}", done.join(", "));
    let detail = err.detail().map(|d| format!("{d}\n{also}")).unwrap_or(also);
    Err(err.with_detail(detail))
}

/// The container runs of `dirs` (and, by label, of any runs folder unless `base` names one)
/// that nobody owns any more, taken down. Returns the run ids taken down.
///
/// # Errors
/// As [`down_all`], for containers.
async fn down_container_runs(
    base: Option<&Path>,
    any_host: bool,
    dirs: &[std::path::PathBuf],
    owned_elsewhere: &impl Fn(&RunDir) -> bool,
) -> Result<Vec<String>> {
    // Containers of runs that are gone (or detached): found by label, whatever the state files say.
    let docker = match crate::backend::docker::connect().await {
        Ok(d) => d,
        // No engine on this machine and no run here ever used one: nothing to look for.
        Err(e) if !crate::backend::docker::engine_expected(dirs) => {
            tracing::debug!("no Docker leftovers to look for: {e}");
            return Ok(Vec::new());
        }
        Err(e) => {
            return Err(e
                .context("looking for containers of runs left behind")
                .with_hint("start Docker and run `pgrehearse down --all` again"));
        }
    };
    let is_live = |run_id: &str, dir: Option<&Path>| {
        // Left alone: runs of another runs folder than the one asked for.
        if base.is_some_and(|b| !in_folder(b, run_id, dir)) {
            return true;
        }
        dir.map(std::path::Path::to_path_buf)
            .or_else(|| dirs.iter().find(|d| d.ends_with(run_id)).cloned())
            .is_some_and(|d| owned_elsewhere(&RunDir::open(&d)))
    };
    // Wherever its directory is (a run made with another --runs-dir is found by label too),
    // a run whose containers are gone keeps no password behind.
    let runs =
        crate::backend::docker::down_leftovers(&docker, any_host, is_live, forget_container_run)
            .await?;
    // Container runs: their logs are saved now (or the containers were gone already).
    let mut done = Vec::new();
    for dir in dirs {
        let run = RunDir::open(dir);
        if is_docker(&run) && left_behind(&run).unwrap_or(true) && !owned_elsewhere(&run) {
            forget_container_run(&run);
            if !runs.iter().any(|r| r == run.id()) {
                done.push(run.id().to_string());
            }
        }
    }
    done.extend(runs);
    Ok(done)
}

/// Whether run `run_id`, whose directory its containers name as `dir` (when they do), belongs to
/// the runs folder `base`.
fn in_folder(base: &Path, run_id: &str, dir: Option<&Path>) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match dir {
        Some(d) => d
            .parent()
            .is_some_and(|p| p == base || canon(p) == canon(base)),
        None => base.join(run_id).is_dir(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_run_outside_the_runs_folder_keeps_no_password_once_taken_down() {
        // A run made with another --runs-dir, found by its containers' label alone.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("elsewhere/r1");
        std::fs::create_dir_all(path.join("logs")).unwrap();
        std::fs::write(path.join("containers.json"), "{}").unwrap();
        let run = RunDir::recognise(&path, "r1").unwrap();
        let creds = crate::backend::Credentials::generate();
        let state = RunState {
            run_id: "r1".into(),
            scenario: "s".into(),
            owner_pid: 1,
            owner_start: None,
            detached: false,
            backend: BackendKind::Docker,
            pg: None,
            database: "app".into(),
            subscription: "sub".into(),
            physical_slot: None,
            started_at: String::new(),
            catchup_timeout_ms: None,
            initial_copy_timeout_ms: None,
        };
        let me = ServerUser {
            switch: false,
            ..ServerUser::resolve().unwrap()
        };
        state.save(&run, Some(&creds), &me).unwrap();
        std::fs::write(run.passfile(), creds.pgpass()).unwrap();
        let pw = creds.superuser.password.expose().to_string();
        std::fs::write(
            run.log("c"),
            format!("LOG:  statement: CREATE SUBSCRIPTION s CONNECTION 'password={pw}'\n"),
        )
        .unwrap();

        forget_container_run(&run);
        let log = std::fs::read_to_string(run.log("c")).unwrap();
        assert!(
            !log.contains(&pw) && log.contains("CREATE SUBSCRIPTION"),
            "{log}"
        );
        assert!(!run.passfile().exists() && !run.file("secrets.json").exists());
    }

    #[test]
    fn containers_belong_to_the_runs_folder_their_directory_is_in() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("runs");
        std::fs::create_dir_all(base.join("r1")).unwrap();
        assert!(in_folder(&base, "r1", Some(&base.join("r1"))));
        // The same folder reached another way.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&base, &link).unwrap();
        assert!(in_folder(&link, "r1", Some(&base.join("r1"))));
        // A directory already removed still names its folder.
        assert!(in_folder(&base, "gone", Some(&base.join("gone"))));
        assert!(!in_folder(&base, "r2", Some(&tmp.path().join("other/r2"))));
        // Containers that name no directory: by the run id.
        assert!(in_folder(&base, "r1", None));
        assert!(!in_folder(&base, "r2", None));
    }
}
