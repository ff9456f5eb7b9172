//! The local backend: each node is a `postgres` process on 127.0.0.1, its data directory under
//! the run directory, run as the server user.

pub(crate) mod conf;
mod files;
mod process;
mod template;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Backend, BackendKind, Credentials};
use crate::error::{Error, Result, ResultExt};
use crate::node::{Endpoint, Login, Node, NodeSpec, Role};
use crate::os::ServerUser;
use crate::pg::PgInstall;
use crate::run::RunDir;

pub(crate) use process::PORT_HINT;
pub use process::{LocalProc, ProcState};
pub(crate) use template::INITDB_ARGS;

/// File in the run directory listing the nodes this backend created.
pub(crate) const NODES_FILE: &str = "nodes.json";

/// The nodes recorded in a run directory, each with the pid of its live postmaster (0 when it
/// is not running); none when the run recorded none (no `nodes.json`).
///
/// # Errors
/// Environment error when `nodes.json` cannot be read or is not a list of nodes: what runs of
/// that run cannot be told then, and taking for none would leave its servers running.
pub fn recorded_nodes(run: &RunDir) -> Result<Vec<ProcState>> {
    let path = run.file(NODES_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::error::io_error("cannot read", &path, e)),
    };
    let mut nodes: Vec<ProcState> = serde_json::from_str(&text).map_err(|e| {
        Error::environment(format!(
            "{} is not pgrehearse's record of the run's nodes",
            path.display()
        ))
        .with_source(e)
        .with_hint(
            "stop its servers by hand (`ps -ef | grep postgres`, look for the run directory), \
             then remove the file",
        )
    })?;
    for n in &mut nodes {
        n.pid = process::live_postmaster(&n.data_dir).unwrap_or(0);
    }
    Ok(nodes)
}

/// Stop (SIGQUIT, then SIGKILL) every live server recorded in `run` and remove its node
/// folder, without needing credentials or a whole chain: for runs whose harness died, even
/// before it had built every node. Returns what it did.
///
/// # Errors
/// When the record cannot be read, or (after trying every node) a server that is still alive
/// or a folder that could not be removed: then nothing of the run is to be forgotten yet.
pub async fn down_recorded(run: &RunDir) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let mut first_err: Option<Error> = None;
    for n in recorded_nodes(run)? {
        if n.pid > 0 {
            if process::quit_tree(n.pid).await {
                done.push(format!("stopped {} (pid {})", n.name, n.pid));
            } else {
                first_err.get_or_insert(
                    Error::environment(format!(
                        "{} (pid {}) is still running after SIGKILL",
                        n.name, n.pid
                    ))
                    .with_node(&n.name),
                );
                continue;
            }
        }
        let dir = process::node_folder(&n.data_dir);
        if dir.exists() {
            match process::remove_node_folder(dir) {
                Ok(()) => done.push(format!("removed {}", dir.display())),
                Err(e) => {
                    first_err.get_or_insert(e.with_node(&n.name));
                }
            }
        }
    }
    if let Some(e) = first_err {
        let e = e.with_hint(format!(
            "see what is left in {}, then run `pgrehearse down --run {}` again",
            run.path().display(),
            run.id()
        ));
        return Err(if done.is_empty() {
            e
        } else {
            e.with_detail(format!("done meanwhile: {}", done.join("; ")))
        });
    }
    let _ = std::fs::remove_file(run.passfile());
    Ok(done)
}

/// Runs nodes as local processes.
pub struct LocalBackend {
    pg: PgInstall,
    user: ServerUser,
    run: RunDir,
    creds: Credentials,
    procs: Arc<Mutex<Vec<Arc<LocalProc>>>>,
    finished: AtomicBool,
    primaries: AtomicUsize,
    /// Template copies into node folders, stopped before the folders are removed.
    copies: Arc<files::Copies>,
    /// The servers belong to a chain another process started (`status`, `verify`, `down`):
    /// only an explicit teardown stops them, never a drop — an error or a panic in `status`
    /// must not take a kept chain down.
    adopted: bool,
}

impl LocalBackend {
    /// A backend that runs `pg` as `user`, keeping everything under `run`.
    ///
    /// # Errors
    /// Environment error when the password file cannot be written.
    pub fn new(
        pg: PgInstall,
        user: ServerUser,
        run: RunDir,
        creds: Credentials,
    ) -> Result<LocalBackend> {
        user.can_reach(&run.node_dir("a"))?;
        user.private_file(&run.passfile(), creds.pgpass().as_bytes())?;
        Ok(LocalBackend::of(pg, user, run, creds, false))
    }

    fn of(
        pg: PgInstall,
        user: ServerUser,
        run: RunDir,
        creds: Credentials,
        adopted: bool,
    ) -> LocalBackend {
        LocalBackend {
            pg,
            user,
            run,
            creds,
            procs: Arc::default(),
            finished: AtomicBool::new(false),
            primaries: AtomicUsize::new(0),
            copies: Arc::default(),
            adopted,
        }
    }

    /// Take over the nodes of a run started by another harness process (for `status`,
    /// `verify`, `down`). Processes are addressed by the pids in the state file. Nothing of the
    /// run is written: its password file and its record of nodes are the owner's (which may
    /// still be running).
    pub fn adopt(
        pg: PgInstall,
        user: ServerUser,
        run: RunDir,
        creds: Credentials,
        nodes: &[ProcState],
    ) -> (LocalBackend, Vec<Node>) {
        let b = LocalBackend::of(pg, user, run, creds, true);
        let mut out = Vec::new();
        for st in nodes {
            // B may have been promoted since; the role is read from the server when it matters.
            let role = match st.name.as_str() {
                "a" => Role::Primary,
                "b" => Role::Standby,
                _ => Role::Target,
            };
            let p = b.new_proc(&st.name, st.data_dir.clone(), st.log.clone());
            p.set_port(st.port);
            p.adopt_pid(st.pid);
            b.procs.lock().expect("procs lock").push(p.clone());
            out.push(b.node(p, role, &b.creds.superuser.clone()));
        }
        (b, out)
    }

    /// The installation in use.
    pub fn pg(&self) -> &PgInstall {
        &self.pg
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// What is running, for the state file.
    pub fn states(&self) -> Vec<ProcState> {
        self.procs
            .lock()
            .expect("procs lock")
            .iter()
            .map(|p| p.state())
            .collect()
    }

    fn new_proc(&self, name: &str, data_dir: PathBuf, log: PathBuf) -> Arc<LocalProc> {
        let p = Arc::new(LocalProc::new(
            name,
            data_dir,
            log,
            self.pg.clone(),
            self.user.clone(),
            self.run.passfile(),
        ));
        p.set_login(self.creds.superuser.clone());
        p
    }

    fn check_name(&self, name: &str) -> Result<()> {
        if self
            .procs
            .lock()
            .expect("procs lock")
            .iter()
            .any(|p| p.name == name)
        {
            return Err(Error::internal(format!(
                "node {name} already exists in this run"
            )));
        }
        Ok(())
    }

    fn used_ports(&self) -> Vec<u16> {
        self.procs
            .lock()
            .expect("procs lock")
            .iter()
            .map(|p| p.port())
            .collect()
    }

    fn track(&self, p: Arc<LocalProc>) -> Result<()> {
        self.procs.lock().expect("procs lock").push(p);
        self.record()
    }

    /// Write `nodes.json`: every data directory this backend created, as soon as it exists, so
    /// that `pgrehearse down --all` finds the servers of a harness that was killed mid-build.
    /// Whole or not at all (a harness killed while writing it must not leave half a list).
    ///
    /// # Errors
    /// Environment error naming the file: a node nobody could find again is not started.
    fn record(&self) -> Result<()> {
        let path = self.run.file(NODES_FILE);
        let text = serde_json::to_vec_pretty(&self.states())
            .map_err(|e| Error::internal("serialising the nodes").with_source(e))?;
        crate::util::write_atomic(&path, &text)
            .map_err(|e| crate::error::io_error("cannot write", &path, e))
    }

    fn node(&self, proc_: Arc<LocalProc>, role: Role, superuser: &Login) -> Node {
        let ep = Endpoint {
            host: "127.0.0.1".into(),
            port: proc_.port(),
        };
        let admin = crate::node::ConnInfo {
            endpoint: ep.clone(),
            login: superuser.clone(),
            dbname: "postgres".into(),
        };
        Node::new(
            &proc_.name.clone(),
            role,
            admin,
            ep,
            self.pg.version.clone(),
            true,
            proc_,
        )
    }

    /// Start `p` on its port; with an automatic port, move to another free port when the chosen
    /// one was taken between choosing and binding.
    async fn start_with_port(
        &self,
        p: &Arc<LocalProc>,
        spec: &NodeSpec,
        extra: &[(String, String)],
    ) -> Result<()> {
        let attempts = if spec.port.is_some() { 1 } else { 4 };
        let mut last = None;
        for _ in 0..attempts {
            let port = match spec.port {
                Some(port) => port,
                None => crate::backend::ports::free_port(&self.used_ports())?,
            };
            p.set_port(port);
            conf::write_node_conf(
                &p.data_dir,
                &self.user,
                &spec.name,
                port,
                extra,
                &spec.settings,
            )?;
            match p.start_server().await {
                Ok(()) => return self.record(),
                Err(e)
                    if e.kind() == crate::ErrorKind::Environment
                        && spec.port.is_none()
                        && p.port_in_use_last_start() =>
                {
                    tracing::debug!(
                        "port {port} taken before {} could bind it; picking another",
                        spec.name
                    );
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::internal("no start attempt")))
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    async fn init_primary(&self, spec: &NodeSpec) -> Result<Node> {
        self.check_name(&spec.name)?;
        let dir = self.run.node_dir(&spec.name);
        self.user.private_dir(&dir)?;
        let p = self.new_proc(&spec.name, dir.join("data"), self.run.log(&spec.name));
        self.track(p.clone())?;
        tracing::info!(
            "initialising {} (PostgreSQL {})",
            spec.name,
            self.pg.version
        );
        if crate::util::env_flag("PGREHEARSE_NO_TEMPLATE") {
            p.initdb(&spec.superuser).await.on_node(&spec.name)?;
        } else {
            // Alternate templates so that A and C get different system identifiers.
            let slot = (self.primaries.fetch_add(1, Ordering::SeqCst) % 2) as u8;
            template::instantiate(
                &self.pg,
                &self.user,
                slot,
                &p.data_dir,
                &spec.superuser,
                self.copies.clone(),
            )
            .await
            .on_node(&spec.name)?;
        }
        conf::write_hba(&p.data_dir, &self.user, &["127.0.0.1/32", "::1/128"])?;
        self.start_with_port(&p, spec, &[])
            .await
            .on_node(&spec.name)?;
        Ok(self.node(p, spec.role, &spec.superuser))
    }

    async fn init_standby(
        &self,
        spec: &NodeSpec,
        upstream: &Node,
        via: &Endpoint,
        replicator: &Login,
        slot: &str,
    ) -> Result<Node> {
        self.check_name(&spec.name)?;
        let dir = self.run.node_dir(&spec.name);
        self.user.private_dir(&dir)?;
        let p = self.new_proc(&spec.name, dir.join("data"), self.run.log(&spec.name));
        self.track(p.clone())?;
        tracing::info!(
            "taking a base backup of {} for {} (pg_basebackup -R -X stream{})",
            upstream.name(),
            spec.name,
            if slot.is_empty() {
                " without a slot".to_string()
            } else {
                format!(" -S {slot}")
            }
        );
        p.basebackup(via, replicator, slot)
            .await
            .on_node(&spec.name)?;
        self.start_with_port(&p, spec, &[])
            .await
            .on_node(&spec.name)?;
        Ok(self.node(p, Role::Standby, &spec.superuser))
    }

    async fn teardown(&self, keep: bool) -> Result<()> {
        // Marked finished only once done: a teardown cut short (Ctrl-C while the servers stop,
        // as in a benchmark's loop) leaves the rest to Drop.
        if self.finished.load(Ordering::SeqCst) {
            return Ok(());
        }
        // A copy cut off by Ctrl-C may still be writing into a node folder.
        let copies = self.copies.clone();
        if tokio::task::spawn_blocking(move || copies.stop_and_wait())
            .await
            .is_err()
        {
            // No blocking thread to be had (the runtime is shutting down): wait here.
            self.copies.stop_and_wait();
        }
        let procs: Vec<Arc<LocalProc>> = self.procs.lock().expect("procs lock").clone();
        let mut first_err = None;
        for p in procs.iter().rev() {
            if keep {
                continue;
            }
            if let Err(e) = p.stop_for_teardown().await {
                first_err.get_or_insert(e);
            }
            if let Err(e) = p.remove_data() {
                first_err.get_or_insert(e);
            }
        }
        if !keep {
            let _ = std::fs::remove_file(self.run.passfile());
            if first_err.is_none() {
                // The servers are gone: nothing writes the logs any more.
                crate::run::scrub_logs(&self.run, &self.creds);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                self.finished.store(true, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    fn detach(&self) {
        self.finished.store(true, Ordering::SeqCst);
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        if self.finished.load(Ordering::SeqCst) || self.adopted {
            return;
        }
        // Teardown was never reached (panic or early exit): kill and remove synchronously.
        self.copies.stop_and_wait();
        for p in self.procs.lock().map(|v| v.clone()).unwrap_or_default() {
            p.kill_now();
            let _ = p.remove_data();
        }
        let _ = std::fs::remove_file(self.run.passfile());
        crate::run::scrub_logs(&self.run, &self.creds);
    }
}

/// Credentials accessor for the run (used by the chain to create roles).
impl LocalBackend {
    /// The run's logins.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// Data directories of every node.
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.procs
            .lock()
            .expect("procs lock")
            .iter()
            .map(|p| p.data_dir.clone())
            .collect()
    }
}
