//! One node in a container: the container runs `sleep infinity`; the harness runs initdb,
//! pg_basebackup and postgres inside it with `docker exec`, as the image's `postgres` user —
//! so the official image and a locally built one behave the same, entrypoint or not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::{
    DownloadFromContainerOptions, KillContainerOptions, UploadToContainerOptions,
};

use super::exec::{self, sh};
use crate::error::{Error, Result};
use crate::node::{ConnInfo, Endpoint, Login, NodeControl, StopMode, ToolInput};
use crate::wait::{Check, wait_for};

/// Folder for everything the harness keeps inside a container.
pub const HOME: &str = "/var/lib/pgrehearse";
/// Data directory inside the container.
pub const DATA: &str = "/var/lib/pgrehearse/data";
/// Server log inside the container.
pub const LOG: &str = "/var/lib/pgrehearse/postgres.log";
/// libpq password file inside the container.
pub const PGPASS: &str = "/var/lib/pgrehearse/pgpass";
/// Exit status of the last postgres started in the container, written when it exits.
const EXIT: &str = "/var/lib/pgrehearse/postgres.exit";
/// PostgreSQL's port inside the container.
pub const PORT: u16 = 5432;

/// A node's container.
pub struct DockerNode {
    pub(crate) name: String,
    pub(crate) container: String,
    pub(crate) host_port: u16,
    docker: Docker,
    login: Login,
    /// [`NodeControl::boot`] started the container again since postgres last started in it.
    rebooted: AtomicBool,
}

impl DockerNode {
    pub(crate) fn new(
        name: &str,
        container: &str,
        host_port: u16,
        docker: Docker,
        login: Login,
    ) -> DockerNode {
        DockerNode {
            name: name.to_string(),
            container: container.to_string(),
            host_port,
            docker,
            login,
            rebooted: AtomicBool::new(false),
        }
    }

    /// Run a command as `user`, failing with its stderr when it fails.
    pub(crate) async fn run(
        &self,
        user: &str,
        cmd: Vec<String>,
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let input = stdin.map(|b| Box::new(std::io::Cursor::new(b.to_vec())) as exec::Input);
        self.run_reading(user, cmd, input).await
    }

    /// [`run`](Self::run), streaming stdin from a reader.
    async fn run_reading(
        &self,
        user: &str,
        cmd: Vec<String>,
        stdin: Option<exec::Input>,
    ) -> Result<Vec<u8>> {
        let env = vec![
            format!("PGPASSFILE={PGPASS}"),
            "PGCONNECT_TIMEOUT=10".to_string(),
        ];
        let out = exec::run_reading(&self.docker, &self.container, user, &cmd, &env, stdin).await?;
        if out.code != 0 {
            let what = cmd.iter().take(3).cloned().collect::<Vec<_>>().join(" ");
            return Err(Error::database(format!(
                "{what} failed in {} (exit {}): {}",
                self.container,
                out.code,
                crate::node::tail(&out.stderr_text(), 15)
            )));
        }
        Ok(out.stdout)
    }

    /// Copy the server log out of the container to `dest`, before the container goes. Docker's
    /// archive API reads a stopped (killed) container too, which `exec` cannot.
    ///
    /// # Errors
    /// Environment error when the container or its log cannot be read, or `dest` written.
    pub(crate) async fn save_log(&self, dest: &std::path::Path) -> Result<()> {
        save_log(&self.docker, &self.container, dest).await
    }

    /// Write `contents` to `path` inside the container (mode 0600, owned by postgres).
    pub(crate) async fn write_file(&self, path: &str, contents: &[u8]) -> Result<()> {
        self.run(
            "postgres",
            sh(format!("umask 077 && cat > {path}")),
            Some(contents),
        )
        .await
        .map(|_| ())
    }

    async fn container_running(&self) -> bool {
        exec::running_paused(&self.docker, &self.container).await.0
    }

    async fn container_paused(&self) -> bool {
        exec::running_paused(&self.docker, &self.container).await.1
    }

    /// Unpause the container if it is paused, as SIGCONT thaws a local server: one that is not
    /// paused (a kill or stop since thawed it, or it never was) needs nothing — Docker would
    /// refuse with 409 "is not paused".
    async fn thaw(&self) -> Result<()> {
        if !self.container_paused().await {
            return Ok(());
        }
        match self.docker.unpause_container(&self.container).await {
            Err(e) if self.container_paused().await => Err(Error::environment(format!(
                "cannot unpause container {}: {e}",
                self.container
            ))),
            _ => Ok(()),
        }
    }

    /// Whether the postmaster is among the container's processes. Docker lists them for a
    /// paused container too, where it refuses exec.
    async fn postmaster_listed(&self) -> bool {
        let Ok(top) = self.docker.top_processes(&self.container, None).await else {
            return false;
        };
        let Some(cmd) = top
            .titles
            .unwrap_or_default()
            .iter()
            .position(|t| t == "CMD")
        else {
            return false;
        };
        let postmaster = format!("postgres -D {DATA}");
        top.processes
            .unwrap_or_default()
            .iter()
            .any(|p| p.get(cmd).is_some_and(|c| c.trim() == postmaster))
    }

    /// The exit status of the postgres [`NodeControl::start`] started, once it has exited.
    async fn exit_status(&self) -> Result<Option<i32>> {
        let out = self
            .run(
                "postgres",
                sh(format!("cat {EXIT} 2>/dev/null; true")),
                None,
            )
            .await?;
        Ok(String::from_utf8_lossy(&out).trim().parse().ok())
    }

    async fn postgres_running(&self) -> bool {
        match exec::running_paused(&self.docker, &self.container).await {
            (false, _) => return false,
            // Frozen, not down: as a local server stopped with SIGSTOP still counts as running.
            (true, true) => return self.postmaster_listed().await,
            (true, false) => {}
        }
        self.run(
            "postgres",
            vec!["pg_ctl".into(), "status".into(), "-D".into(), DATA.into()],
            None,
        )
        .await
        .is_ok()
    }
}

/// Copy the server log out of container `container` to `dest`. Docker's archive API reads a
/// stopped (killed) container too, which `exec` cannot.
///
/// # Errors
/// Environment error when the container or its log cannot be read, or `dest` written.
pub(crate) async fn save_log(
    docker: &Docker,
    container: &str,
    dest: &std::path::Path,
) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| {
        Error::environment(format!(
            "cannot copy {LOG} out of container {container}: {e}"
        ))
    };
    let bytes: Vec<u8> = docker
        .download_from_container(
            container,
            Some(DownloadFromContainerOptions { path: LOG.into() }),
        )
        .map_ok(|b| b.to_vec())
        .try_concat()
        .await
        .map_err(|e| fail(&e))?;
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entry = archive
        .entries()
        .map_err(|e| fail(&e))?
        .next()
        .ok_or_else(|| fail(&"empty archive"))?
        .map_err(|e| fail(&e))?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    // Replaced, not appended to: the container's log holds the whole story.
    let _ = std::fs::remove_file(dest);
    let mut out = crate::util::open_private_log(dest).map_err(|e| fail(&e))?;
    std::io::copy(&mut entry, &mut out).map_err(|e| fail(&e))?;
    Ok(())
}

#[async_trait]
impl NodeControl for DockerNode {
    async fn start(&self) -> Result<()> {
        // A container booted again (here, or by a fault's heal that put link faults back first)
        // still holds the postmaster.pid of the postgres killed with it. Pids start over in the
        // fresh container, so that pid may now be another process of the postgres user, and
        // postgres would refuse to start beside "another postmaster". Nothing of the old
        // container runs any more: the file is only stale.
        self.boot().await?;
        // A paused container refuses exec: a stop's heal can come while a later pause is
        // still in force.
        self.thaw().await?;
        if self.rebooted.load(Ordering::SeqCst) {
            self.run("postgres", sh(format!("rm -f {DATA}/postmaster.pid")), None)
                .await?;
            // Only once it is gone: a start retried after a failed removal tries again.
            self.rebooted.store(false, Ordering::SeqCst);
        }
        // The shell outlives postgres to record how it ended: a server that exits during
        // startup (a bad setting, a broken data directory) is then told from one still starting,
        // at once instead of at the end of the connect timeout. Cleared first, so a status left
        // by an earlier start is never read as this one's.
        self.run("postgres", sh(format!("rm -f {EXIT}")), None)
            .await?;
        exec::spawn(
            &self.docker,
            &self.container,
            "postgres",
            &sh(format!(
                "postgres -D {DATA} >> {LOG} 2>&1; echo $? > {EXIT}"
            )),
        )
        .await?;
        let conn = ConnInfo {
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: self.host_port,
            },
            login: self.login.clone(),
            dbname: "postgres".into(),
        };
        let what = format!(
            "{} to accept connections (container {}, 127.0.0.1:{})",
            self.name, self.container, self.host_port
        );
        let res = wait_for(&what, Duration::from_secs(120), || async {
            match conn.connect(Duration::from_secs(2)).await {
                Ok(_) => Ok(Check::Done(())),
                Err(e) => match self.exit_status().await? {
                    Some(code) => Err(Error::environment(format!(
                        "postgres exited during startup (exit status {code})"
                    ))),
                    None => Ok(Check::NotYet(e.to_string())),
                },
            }
        })
        .await;
        if let Err(e) = res {
            let (log, _) = self.log_since(0).await.unwrap_or_default();
            return Err(e.with_detail(format!(
                "server log in {}:\n{}",
                self.container,
                crate::node::tail(&log, 20)
            )));
        }
        Ok(())
    }

    async fn stop(&self, mode: StopMode) -> Result<()> {
        self.thaw().await?;
        let m = match mode {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        self.run(
            "postgres",
            vec![
                "pg_ctl".into(),
                "stop".into(),
                "-D".into(),
                DATA.into(),
                "-m".into(),
                m.into(),
                "-w".into(),
                "-t".into(),
                "60".into(),
            ],
            None,
        )
        .await
        .map(|_| ())
    }

    async fn kill(&self) -> Result<()> {
        // A crash of the whole machine: every process of the container dies at once.
        match self
            .docker
            .kill_container(
                &self.container,
                Some(KillContainerOptions {
                    signal: "SIGKILL".into(),
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if !self.container_running().await => {
                tracing::debug!("{} already stopped: {e}", self.container);
                Ok(())
            }
            Err(e) => Err(Error::environment(format!(
                "cannot kill container {}: {e}",
                self.container
            ))),
        }
    }

    async fn pause(&self) -> Result<()> {
        self.docker
            .pause_container(&self.container)
            .await
            .map_err(|e| {
                Error::environment(format!("cannot pause container {}: {e}", self.container))
            })
    }

    async fn resume(&self) -> Result<()> {
        self.thaw().await
    }

    async fn is_running(&self) -> bool {
        self.postgres_running().await
    }

    async fn log_since(&self, offset: u64) -> Result<(String, u64)> {
        if !self.container_running().await {
            return Ok((String::new(), offset.min(u64::MAX - 1)));
        }
        let size: u64 = String::from_utf8_lossy(
            &self
                .run(
                    "postgres",
                    sh(format!("stat -c %s {LOG} 2>/dev/null || echo 0")),
                    None,
                )
                .await?,
        )
        .trim()
        .parse()
        .unwrap_or(0);
        if offset >= size {
            return Ok((String::new(), size));
        }
        let text = self
            .run(
                "postgres",
                sh(format!("tail -c +{} {LOG}", offset + 1)),
                None,
            )
            .await?;
        Ok((String::from_utf8_lossy(&text).into_owned(), size))
    }

    fn log_location(&self) -> String {
        format!("{LOG} in container {}", self.container)
    }

    async fn run_tool(
        &self,
        tool: &str,
        args: &[String],
        stdin: Option<ToolInput>,
    ) -> Result<Vec<u8>> {
        let mut cmd = vec![tool.to_string()];
        cmd.extend(args.iter().cloned());
        let input = match &stdin {
            Some(i) => Some(i.open().await?),
            None => None,
        };
        self.run_reading("postgres", cmd, input).await
    }

    async fn boot(&self) -> Result<bool> {
        if self.container_running().await {
            return Ok(false);
        }
        self.docker
            .start_container(&self.container, None)
            .await
            .map_err(|e| {
                Error::environment(format!("cannot start container {}: {e}", self.container))
            })?;
        self.rebooted.store(true, Ordering::SeqCst);
        Ok(true)
    }

    async fn stage_dir(&self, dir: &std::path::Path) -> Result<String> {
        let dest = format!("{HOME}/staged");
        let fail = |e: &dyn std::fmt::Display| {
            Error::environment(format!(
                "cannot copy {} into container {}: {e}",
                dir.display(),
                self.container
            ))
        };
        let mut tar = tar::Builder::new(Vec::new());
        tar.append_dir_all("staged", dir).map_err(|e| fail(&e))?;
        let bytes = tar.into_inner().map_err(|e| fail(&e))?;
        self.run("root", sh(format!("rm -rf {dest}")), None).await?;
        self.docker
            .upload_to_container(
                &self.container,
                Some(UploadToContainerOptions {
                    path: HOME.into(),
                    ..Default::default()
                }),
                testcontainers::bollard::body_full(bytes.into()),
            )
            .await
            .map_err(|e| fail(&e))?;
        self.run("root", sh(format!("chown -R postgres: {dest}")), None)
            .await?;
        Ok(dest)
    }

    fn data_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
}
