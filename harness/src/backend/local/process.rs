//! One local `postgres` process: initdb, base backup, start, stop, signals, log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU16, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use tokio::sync::Mutex;

use crate::error::{Error, Result, io_error};
use crate::node::{ConnInfo, Endpoint, Login, NodeControl, StopMode, ToolInput, tail};
use crate::os::{ServerUser, pid_alive, signal_tree};
use crate::pg::PgInstall;
use crate::wait::{Check, wait_for};

/// How long a server may take to accept connections after being started.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stop may take before the harness escalates to SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// What to do about a fixed port something else holds.
pub(crate) const PORT_HINT: &str =
    "stop whatever listens there, or leave the node's port unset so pgrehearse picks a free one";

/// What the state file records about a local node.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProcState {
    /// Node name.
    pub name: String,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Postmaster pid (also its process group), 0 when not running.
    pub pid: i32,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Server log.
    pub log: PathBuf,
}

/// A local server process and its files.
pub struct LocalProc {
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    log: PathBuf,
    pg: PgInstall,
    user: ServerUser,
    passfile: PathBuf,
    port: AtomicU16,
    pid: AtomicI32,
    child: Mutex<Option<tokio::process::Child>>,
    port_in_use: AtomicBool,
    login: std::sync::Mutex<Option<Login>>,
}

impl LocalProc {
    pub(crate) fn new(
        name: &str,
        data_dir: PathBuf,
        log: PathBuf,
        pg: PgInstall,
        user: ServerUser,
        passfile: PathBuf,
    ) -> LocalProc {
        LocalProc {
            name: name.to_string(),
            data_dir,
            log,
            pg,
            user,
            passfile,
            port: AtomicU16::new(0),
            pid: AtomicI32::new(0),
            child: Mutex::new(None),
            port_in_use: AtomicBool::new(false),
            login: std::sync::Mutex::new(None),
        }
    }

    /// The login used to decide that the server is ready: a real session, not just a port.
    pub(crate) fn set_login(&self, login: Login) {
        *self.login.lock().expect("login lock") = Some(login);
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.load(Ordering::SeqCst)
    }

    pub(crate) fn set_port(&self, p: u16) {
        self.port.store(p, Ordering::SeqCst);
    }

    pub(crate) fn adopt_pid(&self, pid: i32) {
        // Only a live postmaster of this data directory counts; a stale pid is dropped.
        if pid > 0 && pid_alive(pid) && cmdline_mentions(pid, &self.data_dir) {
            self.pid.store(pid, Ordering::SeqCst);
        }
    }

    pub(crate) fn port_in_use_last_start(&self) -> bool {
        self.port_in_use.load(Ordering::SeqCst)
    }

    pub(crate) fn state(&self) -> ProcState {
        ProcState {
            name: self.name.clone(),
            port: self.port(),
            pid: self.pid.load(Ordering::SeqCst),
            data_dir: self.data_dir.clone(),
            log: self.log.clone(),
        }
    }

    /// Run a PostgreSQL program as the server user and fail with its stderr if it fails.
    pub(crate) async fn run(
        &self,
        tool: &str,
        args: &[String],
        stdin: Option<ToolInput>,
    ) -> Result<Vec<u8>> {
        let input = match &stdin {
            Some(i) => Some(i.open().await?),
            None => None,
        };
        let mut cmd = self.user.command(self.pg.tool(tool));
        cmd.args(args)
            .env("PGPASSFILE", &self.passfile)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own, killed whole if the tool is dropped before it ends: the
            // processes a tool forks (pg_basebackup's WAL streamer) would otherwise outlive
            // it, still writing into the node's folder while it is being removed.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| io_error("cannot run", self.pg.tool(tool), e))?;
        let mut group = KillGroupOnDrop(child.id().map(|p| p as i32));
        let pipe = child.stdin.take();
        let feed = async move {
            match (input, pipe) {
                (Some(mut input), Some(mut w)) => crate::node::feed(&mut input, &mut w).await,
                _ => Ok(()),
            }
        };
        let (fed, out) = tokio::join!(feed, child.wait_with_output());
        // It ended (and took what it forked with it); its group id may be reused from now on.
        group.0 = None;
        let out = out.map_err(|e| io_error("cannot wait for", self.pg.tool(tool), e))?;
        fed.map_err(|e| {
            Error::environment(format!("{tool}: reading its input failed part way")).with_source(e)
        })?;
        if !out.status.success() {
            let err = crate::secret::redact(String::from_utf8_lossy(&out.stderr).trim());
            return Err(Error::database(format!(
                "{tool} failed ({}): {}",
                out.status,
                tail(&err, 15)
            )));
        }
        Ok(out.stdout)
    }

    pub(crate) async fn initdb(&self, superuser: &Login) -> Result<()> {
        let pwfile = self.data_dir.with_extension("pw");
        self.user
            .private_file(&pwfile, superuser.password.expose().as_bytes())?;
        let mut args: Vec<String> = vec![
            "-D".into(),
            self.data_dir.display().to_string(),
            "-U".into(),
            superuser.user.clone(),
            format!("--pwfile={}", pwfile.display()),
        ];
        args.extend(super::template::INITDB_ARGS.iter().map(|a| a.to_string()));
        let res = self.run("initdb", &args, None).await;
        let _ = std::fs::remove_file(&pwfile);
        // initdb fails on this machine's account (disk, locale, permissions), not on a run's.
        res.map(|_| ())
            .map_err(|e| e.context("initdb").with_kind(crate::ErrorKind::Environment))
    }

    pub(crate) async fn basebackup(
        &self,
        via: &Endpoint,
        replicator: &Login,
        slot: &str,
    ) -> Result<()> {
        let args = crate::backend::basebackup_args(
            via,
            replicator,
            &self.data_dir.display().to_string(),
            slot,
        );
        self.run("pg_basebackup", &args, None)
            .await
            .map(|_| ())
            .map_err(|e| e.context("pg_basebackup"))
    }

    fn open_log(&self) -> Result<std::fs::File> {
        let f = crate::util::open_private_log(&self.log)
            .map_err(|e| io_error("cannot open log", &self.log, e))?;
        Ok(f)
    }

    pub(crate) async fn start_server(&self) -> Result<()> {
        let mut guard = self.child.lock().await;
        if let Some(c) = guard.as_mut()
            && c.try_wait().ok().flatten().is_none()
        {
            return Err(Error::internal("start: the server is already running"));
        }
        self.port_in_use.store(false, Ordering::SeqCst);
        let log_start = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let log = self.open_log()?;
        let log2 = log
            .try_clone()
            .map_err(|e| io_error("cannot open log", &self.log, e))?;
        let mut cmd = self.user.command(self.pg.tool("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .env("PGPASSFILE", &self.passfile)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Own process group: a terminal Ctrl-C reaches only the harness, which then shuts
            // the servers down in order; and kill/pause can address every backend at once.
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| io_error("cannot start", self.pg.tool("postgres"), e))?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        self.pid.store(pid, Ordering::SeqCst);
        *guard = Some(child);
        drop(guard);

        let port = self.port();
        let what = format!("{} to accept connections on 127.0.0.1:{port}", self.name);
        let res = wait_for(&what, START_TIMEOUT, || async {
            if let Some(status) = self
                .child
                .lock()
                .await
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                // Reaped: the pid is free for the system to reuse, so nothing may signal it.
                self.pid.store(0, Ordering::SeqCst);
                return Err(self.start_failure(status, log_start));
            }
            let Some(login) = self.login.lock().expect("login lock").clone() else {
                return Err(Error::internal("start: no login to check readiness with"));
            };
            let conn = ConnInfo {
                endpoint: Endpoint {
                    host: "127.0.0.1".into(),
                    port,
                },
                login,
                dbname: "postgres".into(),
            };
            // Ready means a session can be opened: a hot standby accepts them only once
            // consistent, and "the database system is starting up" is not ready.
            let client = match conn.connect(Duration::from_secs(2)).await {
                Ok(client) => client,
                Err(e) => return Ok(Check::NotYet(e.to_string())),
            };
            // Whoever answers must be this node: another server on a fixed port that lets our
            // login in (trust auth) would otherwise get the chain's roles, slots and faults.
            match self.answered_by_other(&client).await {
                Some(theirs) => {
                    self.port_in_use.store(true, Ordering::SeqCst);
                    Err(Error::environment(format!(
                        "port {port} on 127.0.0.1 is already in use: another PostgreSQL server \
                         answers there (data directory {theirs}), not {}",
                        self.name
                    ))
                    .with_hint(PORT_HINT))
                }
                None => Ok(Check::Done(())),
            }
        })
        .await;
        if let Err(e) = res {
            if e.kind() == crate::ErrorKind::Timeout {
                let t = self.log_text(log_start).unwrap_or_default();
                return Err(e.with_detail(format!(
                    "server log ({}):\n{}",
                    self.log.display(),
                    tail(&t, 20)
                )));
            }
            return Err(e);
        }
        tracing::debug!("{} is up on 127.0.0.1:{port} (pid {pid})", self.name);
        Ok(())
    }

    /// None when the server behind `client` runs on this node's data directory; otherwise what
    /// it says its data directory is.
    async fn answered_by_other(&self, client: &tokio_postgres::Client) -> Option<String> {
        let theirs: String = match client.query_one("SHOW data_directory", &[]).await {
            Ok(row) => row.get(0),
            // Our own superuser may always read it; a server that refuses is not ours.
            Err(e) => {
                return Some(format!(
                    "not shown: {}",
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_string())
                ));
            }
        };
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        (!same(Path::new(&theirs), &self.data_dir)).then_some(theirs)
    }

    fn log_text(&self, from: u64) -> Result<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = match std::fs::File::open(&self.log) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
            Err(e) => return Err(io_error("cannot read", &self.log, e)),
        };
        f.seek(SeekFrom::Start(from))
            .map_err(|e| io_error("cannot read", &self.log, e))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| io_error("cannot read", &self.log, e))?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn start_failure(&self, status: std::process::ExitStatus, log_start: u64) -> Error {
        let text = self.log_text(log_start).unwrap_or_default();
        let port = self.port();
        if text.contains("Address already in use") {
            self.port_in_use.store(true, Ordering::SeqCst);
            return Error::environment(format!("port {port} on 127.0.0.1 is already in use"))
                .with_detail(tail(&text, 10))
                .with_hint(PORT_HINT);
        }
        Error::environment(format!("postgres exited during startup ({status})")).with_detail(
            format!("server log ({}):\n{}", self.log.display(), tail(&text, 20)),
        )
    }

    async fn signal_and_wait(&self, sig: Signal, timeout: Duration) -> Result<bool> {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid <= 0 {
            return Ok(true);
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        let mut guard = self.child.lock().await;
        let exited = match guard.as_mut() {
            Some(c) => tokio::time::timeout(timeout, c.wait()).await.is_ok(),
            // Started by another harness process (`down`): not our child to wait on.
            None => wait_gone(pid, timeout).await,
        };
        if exited {
            *guard = None;
            self.pid.store(0, Ordering::SeqCst);
        }
        Ok(exited)
    }

    pub(crate) async fn stop_server(&self, mode: StopMode) -> Result<()> {
        let sig = match mode {
            StopMode::Smart => Signal::SIGTERM,
            StopMode::Fast => Signal::SIGINT,
            StopMode::Immediate => Signal::SIGQUIT,
        };
        // A paused server cannot act on a signal until it runs again.
        signal_tree(self.pid.load(Ordering::SeqCst), Signal::SIGCONT);
        if self.signal_and_wait(sig, STOP_TIMEOUT).await? {
            return Ok(());
        }
        let log = self.log_text(0).unwrap_or_default();
        self.kill_tree().await?;
        Err(Error::timeout(format!(
            "stop ({mode:?}) did not finish in {}s; killed it",
            STOP_TIMEOUT.as_secs()
        ))
        .with_detail(tail(&log, 20)))
    }

    pub(crate) async fn stop_for_teardown(&self) -> Result<()> {
        if self.pid.load(Ordering::SeqCst) <= 0 {
            return Ok(());
        }
        let pid = self.pid.load(Ordering::SeqCst);
        if !quit_tree(pid).await {
            return Err(Error::environment(format!(
                "{} (pid {pid}) is still running after SIGKILL",
                self.name
            )));
        }
        // Reap our child, if it is ours.
        if let Some(mut c) = self.child.lock().await.take() {
            let _ = c.wait().await;
        }
        self.pid.store(0, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) async fn kill_tree(&self) -> Result<()> {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid <= 0 {
            return Ok(());
        }
        // A crash: the postmaster and every backend die at once, in-flight commits included.
        signal_tree(pid, Signal::SIGKILL);
        let mut guard = self.child.lock().await;
        if let Some(c) = guard.as_mut() {
            let _ = c.wait().await;
        } else {
            wait_gone(pid, Duration::from_secs(10)).await;
        }
        *guard = None;
        self.pid.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// Synchronous kill for Drop paths (no runtime needed).
    pub(crate) fn kill_now(&self) {
        let pid = self.pid.swap(0, Ordering::SeqCst);
        signal_tree(pid, Signal::SIGKILL);
    }

    pub(crate) fn remove_data(&self) -> Result<()> {
        remove_node_folder(node_folder(&self.data_dir))
    }
}

/// The node's folder in the run (its data directory and what sits beside it).
pub(crate) fn node_folder(data_dir: &Path) -> &Path {
    data_dir.parent().unwrap_or(data_dir)
}

/// Remove a node's folder (gone already is fine).
pub(crate) fn remove_node_folder(dir: &Path) -> Result<()> {
    // A process killed a moment ago may finish the file it was writing while the folder is
    // being emptied ("directory not empty"): go again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && attempts < 5 => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(io_error("cannot remove", dir, e)),
        }
    }
}

#[async_trait]
impl NodeControl for LocalProc {
    async fn start(&self) -> Result<()> {
        self.start_server().await
    }
    async fn stop(&self, mode: StopMode) -> Result<()> {
        self.stop_server(mode).await
    }
    async fn kill(&self) -> Result<()> {
        self.kill_tree().await
    }
    async fn pause(&self) -> Result<()> {
        signal_tree(self.pid.load(Ordering::SeqCst), Signal::SIGSTOP);
        Ok(())
    }
    async fn resume(&self) -> Result<()> {
        signal_tree(self.pid.load(Ordering::SeqCst), Signal::SIGCONT);
        Ok(())
    }
    async fn is_running(&self) -> bool {
        pid_alive(self.pid.load(Ordering::SeqCst))
    }
    async fn log_since(&self, offset: u64) -> Result<(String, u64)> {
        let len = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        if offset >= len {
            return Ok((String::new(), len));
        }
        Ok((self.log_text(offset)?, len))
    }
    fn log_location(&self) -> String {
        self.log.display().to_string()
    }
    async fn run_tool(
        &self,
        tool: &str,
        args: &[String],
        stdin: Option<ToolInput>,
    ) -> Result<Vec<u8>> {
        self.run(tool, args, stdin).await
    }
    async fn stage_dir(&self, dir: &Path) -> Result<String> {
        // Next to the data directory, in the run: the server user may not be able to read the
        // user's folder (a harness started as root runs tools as another user).
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let dest = self
            .data_dir
            .with_file_name(format!("staged-{}", name.trim_start_matches('.')));
        let _ = std::fs::remove_dir_all(&dest);
        // Small (a seed file's folder), and awaited: nothing to stop.
        super::files::copy_tree(dir, &dest, &AtomicBool::new(false))
            .map_err(|e| io_error("cannot copy", dir, e))?;
        self.user.own(&dest)?;
        Ok(dest.display().to_string())
    }
    fn data_dir(&self) -> Option<PathBuf> {
        Some(self.data_dir.clone())
    }
    fn pid(&self) -> Option<i32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|p| *p > 0)
    }
}

/// The process group of a tool still running, SIGKILLed when dropped (None: nothing to kill).
struct KillGroupOnDrop(Option<i32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.filter(|p| *p > 0) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Wait until process `pid` is gone; false if it is still there after `timeout`.
async fn wait_gone(pid: i32, timeout: Duration) -> bool {
    wait_for(format!("process {pid} to exit"), timeout, || async {
        Ok(if crate::os::pid_running(pid) {
            Check::NotYet(format!("pid {pid} running"))
        } else {
            Check::Done(())
        })
    })
    .await
    .is_ok()
}

/// Stop a server for good, whoever started it: SIGQUIT (immediate shutdown) to the postmaster,
/// SIGKILL after 10 s, then SIGKILL to any backend left behind. The tree is listed first:
/// children are orphaned once the postmaster exits. Returns whether the postmaster is gone.
pub(crate) async fn quit_tree(pid: i32) -> bool {
    if pid <= 0 {
        return true;
    }
    let tree = crate::os::process_tree(pid);
    signal_tree(pid, Signal::SIGCONT);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGQUIT);
    let mut gone = wait_gone(pid, Duration::from_secs(10)).await;
    if !gone {
        signal_tree(pid, Signal::SIGKILL);
    }
    for p in tree.into_iter().filter(|p| pid_alive(*p)) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
    }
    if !gone {
        gone = wait_gone(pid, Duration::from_secs(10)).await;
    }
    gone
}

/// The pid of the postmaster running on `data_dir`, from its postmaster.pid, if alive.
pub(crate) fn live_postmaster(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    (pid_alive(pid) && cmdline_mentions(pid, data_dir)).then_some(pid)
}

fn cmdline_mentions(pid: i32, data_dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&*data_dir.to_string_lossy()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tool dropped before it ends (Ctrl-C while pg_basebackup runs) takes with it what it
    /// forked: pg_basebackup's WAL streamer would otherwise go on writing into B's folder.
    #[tokio::test]
    async fn a_tool_dropped_before_it_ends_takes_its_children_with_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let child_pid = dir.path().join("child.pid");
        // Forks a child that would run for ten minutes, says which, and waits for it.
        let tool = dir.path().join("pg_basebackup");
        std::fs::write(
            &tool,
            format!(
                "#!/bin/sh\nsleep 600 &\necho $! > {}.tmp\nmv {0}.tmp {0}\nwait\n",
                child_pid.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pg = PgInstall {
            bin_dir: dir.path().to_path_buf(),
            version: crate::pg::PgVersion {
                major: 17,
                minor: 0,
            },
            source: "test".into(),
        };
        let user = ServerUser {
            switch: false,
            ..ServerUser::resolve().unwrap()
        };
        let p = LocalProc::new(
            "b",
            dir.path().join("data"),
            dir.path().join("b.log"),
            pg,
            user,
            dir.path().join("pgpass"),
        );

        let forked = tokio::select! {
            res = p.run("pg_basebackup", &[], None) => panic!("the tool ended: {res:?}"),
            pid = wait_for("the tool to fork its child", Duration::from_secs(30), || async {
                Ok(match std::fs::read_to_string(&child_pid) {
                    Ok(t) => Check::Done(t.trim().parse::<i32>().unwrap()),
                    Err(e) => Check::NotYet(e.to_string()),
                })
            }) => pid.unwrap(),
        };
        // The tool's future is dropped here, as a cancelled build drops it.
        assert!(
            wait_gone(forked, Duration::from_secs(30)).await,
            "the tool's child {forked} outlived it"
        );
    }
}
