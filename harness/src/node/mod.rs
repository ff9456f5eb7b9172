//! The node handle: one PostgreSQL server, whatever runs it.
//!
//! Modelled on PostgreSQL's TAP `Cluster.pm`: short verbs (`start`, `stop`, `kill`, `promote`,
//! `lsn`) on a handle, peers passed as handles, and waits named after the replication fact they
//! check (`wait_for_catchup`). A [`Backend`](crate::backend::Backend) creates nodes; the process
//! or container side lives behind [`NodeControl`].

mod conn;
pub mod conninfo;
mod lsn;
mod waits;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::Client;

pub use conn::{ConnInfo, Endpoint, Login, batch_execute_within, finish_within, quote_conn};
pub use lsn::Lsn;
pub use waits::CatchupMode;
pub(crate) use waits::{append_detail, dump as dump_rows};

use crate::error::{Error, Result, ResultExt};
use crate::pg::PgVersion;

/// What a client program run next to a node reads on stdin.
#[derive(Debug, Clone)]
pub enum ToolInput {
    /// These bytes (a schema dump, a short script).
    Bytes(Vec<u8>),
    /// This file, streamed: a user's data can be larger than memory.
    File(PathBuf),
}

impl ToolInput {
    /// A reader over the input.
    ///
    /// # Errors
    /// Usage error when the file cannot be opened (it is the user's).
    pub async fn open(&self) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
        Ok(match self {
            ToolInput::Bytes(b) => Box::new(std::io::Cursor::new(b.clone())),
            ToolInput::File(p) => Box::new(tokio::fs::File::open(p).await.map_err(|e| {
                Error::usage(format!("cannot read {}", p.display())).with_source(e)
            })?),
        })
    }
}

/// Copy `input` into a program's stdin. The program may stop reading early (it failed; its exit
/// status tells why), so a write error ends the copy quietly; a read error is returned: the
/// program would otherwise see a short input as a complete one.
pub(crate) async fn feed<R, W>(input: &mut R, stdin: &mut W) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin + ?Sized,
    W: tokio::io::AsyncWrite + Unpin + ?Sized,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 || stdin.write_all(&buf[..n]).await.is_err() {
            return Ok(());
        }
    }
}

/// What a node is in the chain. B becomes a primary when promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes writes (A; B after promotion).
    Primary,
    /// Replays WAL from a primary (B).
    Standby,
    /// Receives logical changes (C).
    Target,
}

/// How to stop a server, as `pg_ctl stop -m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMode {
    /// Wait for sessions to end.
    Smart,
    /// Roll back sessions, checkpoint, exit.
    Fast,
    /// Exit at once; recovery runs at the next start.
    Immediate,
}

/// Which WAL position to read, as TAP's `lsn($mode)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LsnKind {
    /// pg_current_wal_insert_lsn() (primary).
    Insert,
    /// pg_current_wal_lsn() (primary).
    Write,
    /// pg_current_wal_flush_lsn() (primary).
    Flush,
    /// pg_last_wal_receive_lsn() (standby).
    Receive,
    /// pg_last_wal_replay_lsn() (standby).
    Replay,
}

/// The process (or container) side of a node, implemented by each backend.
#[async_trait]
pub trait NodeControl: Send + Sync {
    /// Start the server and return once it accepts connections.
    async fn start(&self) -> Result<()>;
    /// Stop the server in `mode` and return once it is gone.
    async fn stop(&self, mode: StopMode) -> Result<()>;
    /// SIGKILL every process of the server (a crash, not a shutdown).
    async fn kill(&self) -> Result<()>;
    /// SIGSTOP every process of the server (it hangs, connections stay open).
    async fn pause(&self) -> Result<()>;
    /// SIGCONT after [`NodeControl::pause`].
    async fn resume(&self) -> Result<()>;
    /// Whether the server process exists.
    async fn is_running(&self) -> bool;
    /// Server log text from byte `offset` on, and the new end offset.
    async fn log_since(&self, offset: u64) -> Result<(String, u64)>;
    /// Where the server log is kept (for messages and reports).
    fn log_location(&self) -> String;
    /// Run a PostgreSQL client program (pg_dump, psql, ...) next to this node, as the server
    /// user, with `PGPASSFILE` pointing at the run's password file, feeding `stdin` while its
    /// output is read (a program that writes much before it has read all its input must not
    /// block on a full pipe). Returns stdout.
    async fn run_tool(
        &self,
        tool: &str,
        args: &[String],
        stdin: Option<ToolInput>,
    ) -> Result<Vec<u8>>;
    /// Bring the node's machine back up if it went down with the server (a container after
    /// SIGKILL), without starting the server; whether it had to.
    async fn boot(&self) -> Result<bool> {
        Ok(false)
    }
    /// Copy folder `dir` of this machine to where this node's client programs (run by
    /// [`run_tool`](Self::run_tool), as the server user) can read it; returns the path they
    /// see. For inputs that cannot go through stdin, such as a directory-format dump.
    async fn stage_dir(&self, dir: &std::path::Path) -> Result<String>;
    /// Data directory, when the backend has one on this machine.
    fn data_dir(&self) -> Option<PathBuf>;
    /// The postmaster's pid on this machine (local processes only).
    fn pid(&self) -> Option<i32> {
        None
    }
}

struct NodeInner {
    name: String,
    role: Mutex<Role>,
    admin: ConnInfo,
    peer: Endpoint,
    version: PgVersion,
    owned: bool,
    /// Shared: the backend keeps a handle on the same server for teardown.
    ctl: Arc<dyn NodeControl>,
}

/// A handle on one server. Cloning shares the handle.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.name)
            .field("role", &self.role())
            .field("admin", &self.inner.admin.display())
            .finish()
    }
}

/// A position in a node's server log, from [`Node::log_mark`].
#[derive(Debug, Clone, Copy)]
pub struct LogMark(pub u64);

/// Default timeout for connecting to a node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Node {
    /// Assemble a handle (backends call this).
    pub fn new(
        name: &str,
        role: Role,
        admin: ConnInfo,
        peer: Endpoint,
        version: PgVersion,
        owned: bool,
        ctl: Arc<dyn NodeControl>,
    ) -> Node {
        Node {
            inner: Arc::new(NodeInner {
                name: name.to_string(),
                role: Mutex::new(role),
                admin,
                peer,
                version,
                owned,
                ctl,
            }),
        }
    }

    /// Short name: "a", "b", "c".
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Current role.
    pub fn role(&self) -> Role {
        *self.inner.role.lock().expect("role lock")
    }

    /// Take note that this standby was promoted before this process adopted it (a kept run
    /// after a primary failure): it takes the writes now.
    pub(crate) fn found_promoted(&self) {
        *self.inner.role.lock().expect("role lock") = Role::Primary;
    }

    /// Server version.
    pub fn version(&self) -> &PgVersion {
        &self.inner.version
    }

    /// Whether the harness created this server (only such servers take destructive faults
    /// unless the user allows otherwise).
    pub fn owned(&self) -> bool {
        self.inner.owned
    }

    /// How the harness connects (superuser, default database).
    pub fn admin(&self) -> &ConnInfo {
        &self.inner.admin
    }

    /// How other nodes reach this one.
    pub fn peer(&self) -> &Endpoint {
        &self.inner.peer
    }

    /// The backend-specific control side.
    pub fn control(&self) -> &dyn NodeControl {
        self.inner.ctl.as_ref()
    }

    /// Open a superuser session on database `db`.
    ///
    /// # Errors
    /// Database error naming the node when it cannot be reached.
    pub async fn connect(&self, db: &str) -> Result<Client> {
        self.inner
            .admin
            .with_db(db)
            .connect(CONNECT_TIMEOUT)
            .await
            .on_node(self.name())
    }

    /// Run one statement on `db` and return the first column of its only row, as text.
    ///
    /// # Errors
    /// Database error naming the node and the statement.
    pub async fn query_one(&self, db: &str, sql: &str) -> Result<Option<String>> {
        let c = self.connect(db).await?;
        let rows = c.simple_query(sql).await.map_err(|e| {
            Error::from(e)
                .context(crate::secret::redact(sql))
                .with_node(self.name())
        })?;
        for m in rows {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                return Ok(r.get(0).map(str::to_string));
            }
        }
        Err(
            Error::database(format!("{}: no row returned", crate::secret::redact(sql)))
                .with_node(self.name()),
        )
    }

    /// Run SQL (one or more statements) on `db`.
    ///
    /// # Errors
    /// Database error naming the node and the statement.
    pub async fn execute(&self, db: &str, sql: &str) -> Result<()> {
        let c = self.connect(db).await?;
        c.batch_execute(sql).await.map_err(|e| {
            Error::from(e)
                .context(crate::secret::redact(sql))
                .with_node(self.name())
        })
    }

    /// Start the server.
    ///
    /// # Errors
    /// Whatever kept it from accepting connections, with the log tail.
    pub async fn start(&self) -> Result<()> {
        tracing::info!("starting {}", self.name());
        self.inner.ctl.start().await.on_node(self.name())
    }

    /// Stop the server.
    ///
    /// # Errors
    /// When it does not go away.
    pub async fn stop(&self, mode: StopMode) -> Result<()> {
        tracing::info!("stopping {} ({mode:?})", self.name());
        self.inner.ctl.stop(mode).await.on_node(self.name())
    }

    /// Stop (fast) and start again.
    ///
    /// # Errors
    /// As [`Node::stop`] and [`Node::start`].
    pub async fn restart(&self) -> Result<()> {
        self.stop(StopMode::Fast).await?;
        self.start().await
    }

    /// SIGKILL the server: a crash.
    ///
    /// # Errors
    /// When the signal cannot be delivered.
    pub async fn kill(&self) -> Result<()> {
        tracing::info!("killing {} (SIGKILL)", self.name());
        self.inner.ctl.kill().await.on_node(self.name())
    }

    /// Freeze the server's processes (SIGSTOP).
    ///
    /// # Errors
    /// When the signal cannot be delivered.
    pub async fn pause(&self) -> Result<()> {
        tracing::info!("pausing {} (SIGSTOP)", self.name());
        self.inner.ctl.pause().await.on_node(self.name())
    }

    /// Thaw the server's processes (SIGCONT).
    ///
    /// # Errors
    /// When the signal cannot be delivered.
    pub async fn resume(&self) -> Result<()> {
        tracing::info!("resuming {} (SIGCONT)", self.name());
        self.inner.ctl.resume().await.on_node(self.name())
    }

    /// Promote a standby and wait until it accepts writes.
    ///
    /// # Errors
    /// When the node is not a standby or promotion does not finish in 60 s.
    pub async fn promote(&self) -> Result<()> {
        tracing::info!("promoting {}", self.name());
        let done = self
            .query_one("postgres", "SELECT pg_promote(true, 60)")
            .await?;
        if done.as_deref() != Some("t") {
            return Err(
                Error::timeout("promotion did not finish within 60s").with_node(self.name())
            );
        }
        *self.inner.role.lock().expect("role lock") = Role::Primary;
        Ok(())
    }

    /// Read a WAL position.
    ///
    /// # Errors
    /// Database error, or when the position does not exist on this node (receive LSN on a
    /// primary, for instance).
    pub async fn lsn(&self, kind: LsnKind) -> Result<Lsn> {
        let f = match kind {
            LsnKind::Insert => "pg_current_wal_insert_lsn()",
            LsnKind::Write => "pg_current_wal_lsn()",
            LsnKind::Flush => "pg_current_wal_flush_lsn()",
            LsnKind::Receive => "pg_last_wal_receive_lsn()",
            LsnKind::Replay => "pg_last_wal_replay_lsn()",
        };
        let v = self.query_one("postgres", &format!("SELECT {f}")).await?;
        v.ok_or_else(|| Error::database(format!("{f} is NULL")).with_node(self.name()))?
            .parse()
            .map_err(|e: String| Error::internal(e).with_node(self.name()))
    }

    /// Whether the server is in recovery (a standby).
    ///
    /// # Errors
    /// Database error.
    pub async fn in_recovery(&self) -> Result<bool> {
        Ok(self
            .query_one("postgres", "SELECT pg_is_in_recovery()")
            .await?
            .as_deref()
            == Some("t"))
    }

    /// Write `n` WAL segments' worth of switches (TAP's advance_wal).
    ///
    /// # Errors
    /// Database error.
    pub async fn advance_wal(&self, n: u32) -> Result<()> {
        let c = self.connect("postgres").await?;
        c.batch_execute("CREATE TEMP TABLE IF NOT EXISTS pgrehearse_advance(x int)")
            .await?;
        for _ in 0..n {
            c.batch_execute("INSERT INTO pgrehearse_advance VALUES (1); SELECT pg_switch_wal();")
                .await?;
        }
        Ok(())
    }

    /// Mark the current end of the server log.
    ///
    /// # Errors
    /// When the log cannot be read.
    pub async fn log_mark(&self) -> Result<LogMark> {
        Ok(LogMark(self.inner.ctl.log_since(u64::MAX).await?.1))
    }

    /// Log text written since `mark`.
    ///
    /// # Errors
    /// When the log cannot be read.
    pub async fn log_since(&self, mark: LogMark) -> Result<String> {
        Ok(self.inner.ctl.log_since(mark.0).await?.0)
    }

    /// Wait until the log, since `mark`, matches `re`.
    ///
    /// # Errors
    /// Timeout quoting the log lines seen.
    pub async fn wait_for_log(
        &self,
        re: &regex::Regex,
        mark: LogMark,
        timeout: Duration,
    ) -> Result<()> {
        crate::wait::wait_for(
            format!("{} log to match /{re}/", self.name()),
            timeout,
            || async {
                let text = self.log_since(mark).await?;
                Ok(if re.is_match(&text) {
                    crate::wait::Check::Done(())
                } else {
                    crate::wait::Check::NotYet(tail(&text, 20))
                })
            },
        )
        .await
    }

    /// The last lines of the server log (for error messages).
    pub async fn log_tail(&self, lines: usize) -> String {
        match self.inner.ctl.log_since(0).await {
            Ok((t, _)) => tail(&t, lines),
            Err(e) => format!("(cannot read log: {e})"),
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a backend needs to create a node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// "a", "b", "c".
    pub name: String,
    /// Server settings, in order; later entries win.
    pub settings: Vec<(String, String)>,
    /// A fixed port, or None to pick a free one.
    pub port: Option<u16>,
    /// The superuser's login.
    pub superuser: Login,
    /// The role the node starts in (a primary or the target).
    pub role: Role,
}

impl NodeSpec {
    /// A spec with no settings and an automatic port.
    pub fn new(name: &str, superuser: Login) -> NodeSpec {
        NodeSpec {
            name: name.to_string(),
            settings: Vec::new(),
            port: None,
            superuser,
            role: Role::Primary,
        }
    }

    /// Add a setting (later ones override earlier ones).
    pub fn with_conf(mut self, key: &str, value: impl Into<String>) -> NodeSpec {
        self.settings.push((key.to_string(), value.into()));
        self
    }

    /// Set the starting role.
    pub fn with_role(mut self, role: Role) -> NodeSpec {
        self.role = role;
        self
    }

    /// Fix the port.
    pub fn with_port(mut self, port: Option<u16>) -> NodeSpec {
        self.port = port;
        self
    }
}
