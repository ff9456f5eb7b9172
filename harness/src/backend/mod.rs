//! Backends create nodes: local processes (default), containers, or existing servers on AWS.
//!
//! A backend owns everything it starts and removes it in [`Backend::teardown`]; if teardown is
//! never reached (panic, early return) its `Drop` kills what is left.

pub mod docker;
pub mod local;
mod ports;

use async_trait::async_trait;

use crate::error::Result;
use crate::node::{Endpoint, Login, Node, NodeSpec};

pub use local::LocalBackend;

/// Logins every node of a run shares: the harness's superuser and the replication role.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    /// Superuser used by the harness.
    pub superuser: Login,
    /// Role with REPLICATION used by B (physical) and by the subscription on C (logical).
    pub replicator: Login,
    /// On an Aurora-like C: the migration role, which is not a superuser.
    #[serde(default = "migrator_login")]
    pub migrator: Login,
}

fn migrator_login() -> Login {
    Login {
        user: "rehearse_migrator".into(),
        password: crate::secret::Secret::generate(),
    }
}

impl Credentials {
    /// Fresh random passwords for `postgres` and `rehearse_repl`.
    pub fn generate() -> Credentials {
        Credentials {
            superuser: Login {
                user: "postgres".into(),
                password: crate::secret::Secret::generate(),
            },
            replicator: Login {
                user: "rehearse_repl".into(),
                password: crate::secret::Secret::generate(),
            },
            migrator: migrator_login(),
        }
    }

    /// Every password of the run, to scrub from what it leaves behind.
    pub fn secrets(&self) -> [&crate::secret::Secret; 3] {
        [
            &self.superuser.password,
            &self.replicator.password,
            &self.migrator.password,
        ]
    }

    /// libpq password-file lines for every login (any host, port and database).
    pub fn pgpass(&self) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        [&self.superuser, &self.replicator, &self.migrator]
            .iter()
            .map(|l| format!("*:*:*:{}:{}\n", esc(&l.user), esc(l.password.expose())))
            .collect()
    }
}

/// Arguments of `pg_basebackup` making B: a standby config (-R), WAL streamed alongside (-X
/// stream), an immediate checkpoint on A, through physical slot `slot` when there is one.
pub(crate) fn basebackup_args(
    via: &Endpoint,
    replicator: &Login,
    data_dir: &str,
    slot: &str,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-h".into(),
        via.host.clone(),
        "-p".into(),
        via.port.to_string(),
        "-U".into(),
        replicator.user.clone(),
        "-D".into(),
        data_dir.into(),
        "-R".into(),
        "-X".into(),
        "stream".into(),
        "-c".into(),
        "fast".into(),
        "--no-sync".into(),
    ];
    // Without a slot (the unmitigated set-up) B streams unprotected: A may recycle WAL B still
    // needs, and hot_standby_feedback holds nothing while B is disconnected.
    if !slot.is_empty() {
        args.extend(["-S".to_string(), slot.to_string()]);
    }
    args
}

/// Which backend a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// PostgreSQL processes on this machine.
    #[default]
    Local,
    /// One container per node.
    Docker,
}

impl BackendKind {
    /// "local" or "docker", as written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Docker => "docker",
        }
    }
}

/// Creates, and later removes, the servers of a chain.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Create a fresh cluster with `spec`'s settings and start it.
    async fn init_primary(&self, spec: &NodeSpec) -> Result<Node>;

    /// Create a standby of `upstream` by base backup over `via` as `replicator`, streaming
    /// from physical slot `slot`, and start it.
    async fn init_standby(
        &self,
        spec: &NodeSpec,
        upstream: &Node,
        via: &Endpoint,
        replicator: &Login,
        slot: &str,
    ) -> Result<Node>;

    /// A fault-capable link on `hop` from `upstream` to the node that will be called
    /// `downstream` (it may not exist yet). `needs_delay`: the scenario adds latency there.
    ///
    /// # Errors
    /// Environment error when the link cannot be set up.
    async fn open_link(
        &self,
        hop: crate::faults::Hop,
        upstream: &Node,
        downstream: &str,
        seed: u64,
        needs_delay: bool,
    ) -> Result<std::sync::Arc<dyn crate::faults::LinkControl>> {
        let _ = (downstream, needs_delay);
        let link = crate::faults::ProxyLink::start(hop, self.peer_endpoint(upstream), seed).await?;
        Ok(std::sync::Arc::new(link))
    }

    /// How a node reaches `node` (the address other servers use in conninfo).
    fn peer_endpoint(&self, node: &Node) -> Endpoint {
        node.peer().clone()
    }

    /// Stop every server this backend started and remove their data (unless `keep`).
    async fn teardown(&self, keep: bool) -> Result<()>;

    /// Leave everything running after this process exits (`up`, `--keep`); state stays in the
    /// run directory for `status` and `down`.
    fn detach(&self);
}
