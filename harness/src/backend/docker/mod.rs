//! The container backend: A, B and C each in a container on a per-run Docker network, reaching
//! each other by container name; the harness reaches them on ports published on 127.0.0.1.
//!
//! Containers are created with testcontainers and controlled with its bollard client. There is
//! no reaper container: teardown removes every container and the network, `Drop` does the same
//! if teardown never ran, and `pgrehearse down --all` removes leftovers of killed runs by label.

mod exec;
mod image;
mod link;
mod nettools;
mod node;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{NetworkCreateRequest, PortBinding};
use testcontainers::bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};
use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

pub use image::{ImageChoice, pick_image};
pub use link::DockerLink;
pub use node::DockerNode;

use super::{Backend, BackendKind, Credentials};
use crate::error::{Error, Result, ResultExt};
use crate::faults::{Hop, LinkControl};
use crate::node::{Endpoint, Login, Node, NodeControl, NodeSpec};
use crate::pg::PgVersion;
use crate::run::RunDir;

/// Label on everything pgrehearse creates in Docker.
pub const LABEL: &str = "org.pgrehearse";
/// Label naming the run a container or network belongs to.
pub const RUN_LABEL: &str = "org.pgrehearse.run";
/// Label naming the harness process that made it: `<host>/<pid>/<start>`, `start` from
/// [`crate::os::pid_start`] (older versions wrote `<host>/<pid>`).
const OWNER_LABEL: &str = "org.pgrehearse.owner";
/// Label naming the run's directory, wherever it is (`--runs-dir`, another home).
const DIR_LABEL: &str = "org.pgrehearse.dir";

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The labels on everything of `run` in Docker: `down --all` tells live runs from leftovers
/// by them, even before the run's state file exists and wherever its directory is.
fn run_labels(run: &RunDir) -> HashMap<String, String> {
    let mut labels = owned_labels(run.id());
    labels.insert(DIR_LABEL.to_string(), run.path().display().to_string());
    labels
}

/// The labels of anything this process creates in Docker for `run_id`: `down --all` finds it
/// by them, and leaves it alone while this process lives.
fn owned_labels(run_id: &str) -> HashMap<String, String> {
    [
        (LABEL.to_string(), "1".to_string()),
        (RUN_LABEL.to_string(), run_id.to_string()),
        (OWNER_LABEL.to_string(), this_owner()),
    ]
    .into()
}

/// The owner label of this process.
fn this_owner() -> String {
    let pid = std::process::id();
    // Without /proc there is no start time to tell a reused pid by: the pid alone, as before.
    match crate::os::pid_start(pid as i32) {
        Some(start) => format!("{}/{pid}/{start}", this_host()),
        None => format!("{}/{pid}", this_host()),
    }
}

/// The harness process an owner label names.
#[derive(Debug, PartialEq)]
struct Owner<'a> {
    host: &'a str,
    pid: i32,
    /// When it started; absent from labels of older versions.
    start: Option<u64>,
}

impl Owner<'_> {
    fn parse(label: &str) -> Option<Owner<'_>> {
        let mut parts = label.split('/');
        let host = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let start = match parts.next() {
            Some(s) => Some(s.parse().ok()?),
            None => None,
        };
        parts.next().is_none().then_some(Owner { host, pid, start })
    }

    /// Whether it still runs (and is not this process), as this host sees it: `alive` says
    /// whether a pid exists, `start_of` when it started. A pid that exists with another start
    /// time was reused by an unrelated process after the harness died.
    fn alive(&self, alive: impl Fn(i32) -> bool, start_of: impl Fn(i32) -> Option<u64>) -> bool {
        self.pid != std::process::id() as i32
            && crate::os::same_process(self.pid, self.start, alive, start_of)
    }
}

/// Whether the harness named by an owner label runs on this host (not this process).
fn owner_alive(owner: &Owner<'_>) -> bool {
    owner.host == this_host() && owner.alive(crate::os::pid_alive, crate::os::pid_start)
}

/// What the state file records about a container node.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ContainerState {
    /// Node name.
    pub name: String,
    /// Container name.
    pub container: String,
    /// Port published on 127.0.0.1.
    pub host_port: u16,
}

/// Runs nodes in containers.
pub struct DockerBackend {
    docker: Docker,
    run: RunDir,
    prefix: String,
    network: String,
    image: ImageChoice,
    version: PgVersion,
    creds: Credentials,
    /// On everything of this run in Docker ([`run_labels`]).
    labels: HashMap<String, String>,
    net: Arc<nettools::NetTools>,
    nodes: Mutex<Vec<Arc<DockerNode>>>,
    containers: tokio::sync::Mutex<Vec<ContainerAsync<GenericImage>>>,
    /// Removes the run's containers and network if the backend is dropped before a teardown
    /// finished (panic, interrupt).
    sweep: Sweep,
}

/// Connect to the Docker engine and check that it answers.
///
/// # Errors
/// Environment error with a hint when there is no engine.
pub async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults().map_err(|e| {
        Error::environment(format!("cannot reach the Docker engine: {e}"))
            .with_hint("start Docker, or use the local backend")
    })?;
    docker.ping().await.map_err(|e| {
        Error::environment(format!("the Docker engine does not answer: {e}"))
            .with_hint("start Docker, or use the local backend")
    })?;
    Ok(docker)
}

impl DockerBackend {
    /// A backend for one run on `docker` (from [`connect`]) with `image` (from [`pick_image`]):
    /// creates the run's network.
    ///
    /// # Errors
    /// Environment errors: the network cannot be created.
    pub async fn new(
        run: RunDir,
        creds: Credentials,
        docker: Docker,
        image: ImageChoice,
    ) -> Result<DockerBackend> {
        // Short, unique, valid as a container name; the run id itself is in the labels.
        let prefix =
            format!("pgrh-{}", &run.id()[run.id().len().saturating_sub(4)..]).to_lowercase();
        let prefix = format!("{prefix}-{:04x}", rand::random::<u16>());
        let network = format!("{prefix}-net");
        let labels = run_labels(&run);
        // For users' psql against the published ports (the printed PGPASSFILE). Before the
        // network: nothing is left to remove when this fails.
        let me = crate::os::ServerUser {
            switch: false,
            ..crate::os::ServerUser::resolve()?
        };
        me.private_file(&run.passfile(), creds.pgpass().as_bytes())?;
        // From here on, whatever stops this function (an error, an interrupt dropping it)
        // leaves nothing behind.
        let sweep = Sweep::new(run.id());
        docker
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                // The password file was for a chain that will not exist.
                let _ = std::fs::remove_file(run.passfile());
                Error::environment(format!("cannot create Docker network {network}: {e}"))
            })?;
        tracing::info!("docker: network {network}, image {}", image.reference());
        let net = Arc::new(
            nettools::NetTools::new(docker.clone(), labels.clone(), image.version.major).await,
        );
        let b = DockerBackend {
            net,
            labels,
            docker,
            run,
            prefix,
            network,
            version: image.version.clone(),
            image,
            creds,
            nodes: Mutex::default(),
            containers: tokio::sync::Mutex::default(),
            sweep,
        };
        b.record();
        Ok(b)
    }

    /// The host's address on the run's network (the bridge gateway): containers reach a
    /// harness proxy there.
    async fn gateway(&self) -> Result<std::net::IpAddr> {
        let net = self
            .docker
            .inspect_network(&self.network, None)
            .await
            .map_err(|e| {
                Error::environment(format!(
                    "cannot inspect Docker network {}: {e}",
                    self.network
                ))
            })?;
        net.ipam
            .and_then(|i| i.config)
            .into_iter()
            .flatten()
            .filter_map(|c| c.gateway)
            .find_map(|g| g.parse::<std::net::Ipv4Addr>().ok())
            .map(std::net::IpAddr::V4)
            .ok_or_else(|| {
                Error::environment(format!(
                    "Docker network {} has no IPv4 gateway for a proxy on the host",
                    self.network
                ))
            })
    }

    /// The image in use.
    pub fn image(&self) -> &ImageChoice {
        &self.image
    }

    /// Containers of this run, for the state file.
    pub fn states(&self) -> Vec<ContainerState> {
        self.nodes
            .lock()
            .expect("nodes")
            .iter()
            .map(|n| ContainerState {
                name: n.name.clone(),
                container: n.container.clone(),
                host_port: n.host_port,
            })
            .collect()
    }

    fn record(&self) {
        let state = serde_json::json!({ "network": self.network, "containers": self.states() });
        // Written whole or not at all: `down` reads it back, and a torn file would hide every
        // container of the run from it (the label search of `down --all` still finds them).
        let path = self.run.file("containers.json");
        if let Err(e) = crate::util::write_atomic(&path, state.to_string().as_bytes()) {
            tracing::warn!(
                "cannot record the run's containers in {}: {e}",
                path.display()
            );
        }
    }

    fn node_handle(&self, n: Arc<DockerNode>, spec: &NodeSpec) -> Node {
        let admin = crate::node::ConnInfo {
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: n.host_port,
            },
            login: spec.superuser.clone(),
            dbname: "postgres".into(),
        };
        let peer = Endpoint {
            host: n.container.clone(),
            port: node::PORT,
        };
        Node::new(
            &spec.name,
            spec.role,
            admin,
            peer,
            self.version.clone(),
            true,
            n,
        )
    }

    /// Create and start the container for `spec` (PostgreSQL not started yet).
    async fn container(&self, spec: &NodeSpec) -> Result<Arc<DockerNode>> {
        let cname = format!("{}-{}", self.prefix, spec.name);
        tracing::info!(
            "docker: starting container {cname} ({}) for {}",
            self.image.reference(),
            spec.name
        );
        let (c, host_port) = match spec.port {
            Some(p) => match self.start_container(&cname, p).await {
                Ok(c) => (c, p),
                Err(msg) => return Err(start_error(&cname, p, true, &msg)),
            },
            None => self.start_on_free_port(&cname).await?,
        };
        self.containers.lock().await.push(c);
        let n = Arc::new(DockerNode::new(
            &spec.name,
            &cname,
            host_port,
            self.docker.clone(),
            spec.superuser.clone(),
        ));
        self.nodes.lock().expect("nodes").push(n.clone());
        self.record();
        n.run(
            "root",
            exec::sh(format!(
                "mkdir -p {h} && chown postgres:postgres {h} && chmod 700 {h}",
                h = node::HOME
            )),
            None,
        )
        .await?;
        n.write_file(node::PGPASS, self.creds.pgpass().as_bytes())
            .await?;
        Ok(n)
    }

    /// Start container `cname` publishing PostgreSQL on 127.0.0.1:`host_port`.
    ///
    /// The port is pinned rather than left to Docker (host port 0): Docker picks a new one
    /// each time a container starts, and a node killed and started again must keep the
    /// address the harness, the state file and the user's psql know it by.
    async fn start_container(
        &self,
        cname: &str,
        host_port: u16,
    ) -> std::result::Result<ContainerAsync<GenericImage>, String> {
        GenericImage::new(self.image.name.clone(), self.image.tag.clone())
            .with_exposed_port(ContainerPort::Tcp(node::PORT))
            .with_wait_for(WaitFor::Nothing)
            // The harness runs everything with exec: no image entrypoint takes part.
            .with_entrypoint("sleep")
            .with_cmd(["infinity"])
            .with_network(self.network.clone())
            .with_container_name(cname)
            .with_labels(self.labels.clone())
            // tc and iptables inside the container need it (link faults).
            .with_cap_add("NET_ADMIN")
            .with_host_config_modifier(move |hc| {
                // Published on loopback only: the harness is the only outside client.
                let binding = PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(host_port.to_string()),
                };
                hc.port_bindings =
                    Some([(format!("{}/tcp", node::PORT), Some(vec![binding]))].into());
            })
            .start()
            .await
            .map_err(|e| e.to_string())
    }

    /// Start container `cname` on a free host port of the harness's choosing. A port free when
    /// picked can be taken before Docker binds it (the other node starting alongside, a parallel
    /// run): then the container, created but not started, is removed and another port tried.
    async fn start_on_free_port(&self, cname: &str) -> Result<(ContainerAsync<GenericImage>, u16)> {
        const TRIES: usize = 5;
        let mut taken = Vec::new();
        loop {
            let p = crate::backend::ports::free_port(&taken)?;
            let msg = match self.start_container(cname, p).await {
                Ok(c) => return Ok((c, p)),
                Err(msg) => msg,
            };
            if !port_taken(&msg) {
                return Err(start_error(cname, p, false, &msg));
            }
            taken.push(p);
            if taken.len() >= TRIES {
                return Err(start_error(cname, p, false, &msg)
                    .with_detail(format!("ports tried: {taken:?}")));
            }
            tracing::debug!("port {p} was taken before {cname} could bind it: {msg}");
            if let Err(e) = force_remove(&self.docker, cname).await {
                return Err(Error::environment(format!(
                    "cannot remove container {cname}, which could not bind port {p}, to try another port: {e}"
                )));
            }
        }
    }

    async fn configure(&self, n: &DockerNode, spec: &NodeSpec, hba: bool) -> Result<()> {
        use crate::backend::local::conf;
        let text = conf::node_conf_text(&spec.name, "*", node::PORT, &[], &spec.settings);
        n.write_file(
            &format!("{}/{}", node::DATA, conf::CONF_FILE),
            text.as_bytes(),
        )
        .await?;
        n.run(
            "postgres",
            exec::sh(format!(
                "grep -qF \"{inc}\" {d}/postgresql.conf || echo \"{inc}\" >> {d}/postgresql.conf",
                inc = conf::include_line(),
                d = node::DATA
            )),
            None,
        )
        .await?;
        if hba {
            // Containers on the run network and the host (through the published port) connect
            // with passwords; the network is private to this run.
            n.write_file(
                &format!("{}/pg_hba.conf", node::DATA),
                conf::hba_text(&["0.0.0.0/0", "::/0"]).as_bytes(),
            )
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    async fn init_primary(&self, spec: &NodeSpec) -> Result<Node> {
        let n = self.container(spec).await.on_node(&spec.name)?;
        tracing::info!(
            "initialising {} in {} (initdb, {})",
            spec.name,
            n.container,
            self.version
        );
        let pw = format!("{}/.pw", node::HOME);
        n.write_file(&pw, spec.superuser.password.expose().as_bytes())
            .await?;
        let mut cmd: Vec<String> = vec![
            "initdb".into(),
            "-D".into(),
            node::DATA.into(),
            "-U".into(),
            spec.superuser.user.clone(),
            format!("--pwfile={pw}"),
        ];
        cmd.extend(
            crate::backend::local::INITDB_ARGS
                .iter()
                .map(|s| s.to_string()),
        );
        let res = n.run("postgres", cmd, None).await;
        // Best effort: initdb's own result is what the user needs to see, and the file goes
        // with the container at teardown anyway.
        if let Err(e) = n
            .run("postgres", vec!["rm".into(), "-f".into(), pw.clone()], None)
            .await
        {
            tracing::warn!("{}: cannot remove {pw} in {}: {e}", spec.name, n.container);
        }
        res.step("initdb").on_node(&spec.name)?;
        self.configure(&n, spec, true).await.on_node(&spec.name)?;
        n.start().await.on_node(&spec.name)?;
        Ok(self.node_handle(n, spec))
    }

    async fn init_standby(
        &self,
        spec: &NodeSpec,
        upstream: &Node,
        via: &Endpoint,
        replicator: &Login,
        slot: &str,
    ) -> Result<Node> {
        let n = self.container(spec).await.on_node(&spec.name)?;
        tracing::info!(
            "taking a base backup of {} for {} inside {}",
            upstream.name(),
            spec.name,
            n.container
        );
        let mut cmd = vec!["pg_basebackup".to_string()];
        cmd.extend(super::basebackup_args(via, replicator, node::DATA, slot));
        n.run("postgres", cmd, None)
            .await
            .step("pg_basebackup")
            .on_node(&spec.name)?;
        self.configure(&n, spec, false).await.on_node(&spec.name)?;
        n.start().await.on_node(&spec.name)?;
        Ok(self.node_handle(n, spec))
    }

    async fn open_link(
        &self,
        hop: Hop,
        upstream: &Node,
        downstream: &str,
        seed: u64,
        needs_delay: bool,
    ) -> Result<Arc<dyn LinkControl>> {
        let down = format!("{}-{}", self.prefix, downstream);
        let up = upstream.peer().host.clone();
        // Where the containers' network cannot do what the scenario asks, the hop goes through a
        // harness proxy on the host, on the run network's gateway, so its faults still happen.
        let major = self.version.major;
        let no_tools_hint = format!(
            "build an image with iptables and tc (sudo scripts/build-image.sh {major} builds pgrehearse/postgres:{major}, which also serves as the helper for the official image), or name one in PGREHEARSE_NET_TOOLS_IMAGE"
        );
        let why_proxy = if !self.net.available(&up).await {
            Some((
                "the image has no iptables/tc and no image with them exists for a helper container (scripts/build-image.sh builds one)",
                no_tools_hint.as_str(),
            ))
        } else if needs_delay && !link::can_delay(&self.net, &up).await {
            Some((
                "the containers' network cannot delay packets here (this kernel has no netem, CONFIG_NET_SCH_NETEM)",
                "without latency faults on this hop, or on a kernel with netem, iptables drops packets at random in the containers' network",
            ))
        } else {
            None
        };
        if let Some((why, hint)) = why_proxy {
            let gateway = self.gateway().await?;
            // The upstream's port published on the host, not its address on the run network:
            // a container that is killed and started again may come back with another
            // address (another node restarted first can take the old one), while the published
            // port stays the same.
            let target = upstream.admin().endpoint.clone();
            let mechanism = format!(
                "harness TCP proxy on the host ({gateway}) between the containers, as {why}; every link fault on {hop} acts on the proxied replication connection, and packet loss is not available there"
            );
            tracing::warn!("{hop}: link faults go through a proxy on the host: {why}");
            let l =
                crate::faults::ProxyLink::start_on(hop, gateway, target, seed, mechanism).await?;
            return Ok(Arc::new(link::ProxiedHop::new(l, why, hint)));
        }
        Ok(Arc::new(DockerLink::new(
            self.docker.clone(),
            self.net.clone(),
            hop,
            &up,
            &down,
            &self.network,
        )))
    }

    async fn teardown(&self, keep: bool) -> Result<()> {
        if self.sweep.done() {
            return Ok(());
        }
        if keep {
            // Kept means handed over, as `up` does: neither the sweep nor the container
            // handles may remove anything when they drop.
            keep_running(&mut *self.containers.lock().await);
            self.sweep.disarm();
            return Ok(());
        }
        let nodes: Vec<Arc<DockerNode>> = self.nodes.lock().expect("nodes").clone();
        for n in nodes {
            // The server log lives in the container; keep it with the run, as the local
            // backend does.
            if let Err(e) = n.save_log(&self.run.log(&n.name)).await {
                tracing::warn!("{e}");
            }
        }
        let containers: Vec<ContainerAsync<GenericImage>> =
            std::mem::take(&mut *self.containers.lock().await);
        for c in containers {
            let id = c.id().to_string();
            // rm stops (SIGKILL) and removes; data inside the container goes with it. A failure
            // here is not the last word: the sweep by label below tries again and says what
            // is left.
            if let Err(e) = c.rm().await {
                tracing::warn!("cannot remove container {id}: {e}");
            }
        }
        remove_by_label(&self.docker, RUN_LABEL, self.run.id()).await?;
        // Only once nothing is left: the passfile still lets the user reach what remains.
        let _ = std::fs::remove_file(self.run.passfile());
        // Not before: a teardown cut short leaves the sweep by label to Drop.
        self.sweep.disarm();
        Ok(())
    }

    fn detach(&self) {
        self.sweep.disarm();
        if let Ok(mut v) = self.containers.try_lock() {
            keep_running(&mut v);
        }
    }
}

/// Let go of container handles without removing the containers: testcontainers removes them
/// when their handles drop.
fn keep_running(containers: &mut Vec<ContainerAsync<GenericImage>>) {
    for c in containers.drain(..) {
        std::mem::forget(c);
    }
}

/// Everything of one run in Docker, removed by label when dropped before it was disarmed.
struct Sweep {
    run: String,
    done: AtomicBool,
}

impl Sweep {
    fn new(run: &str) -> Sweep {
        Sweep {
            run: run.to_string(),
            done: AtomicBool::new(false),
        }
    }

    /// Nothing to remove on drop: torn down, or handed over (kept).
    fn disarm(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    fn done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        if self.done() {
            return;
        }
        // Teardown was never reached (panic, interrupt): remove everything of this run.
        let run = self.run.clone();
        on_own_runtime(async move {
            let res = match Docker::connect_with_local_defaults() {
                Ok(d) => remove_by_label(&d, RUN_LABEL, &run).await,
                Err(e) => Err(Error::environment(format!(
                    "cannot reach the Docker engine to remove run {run}'s containers: {e}"
                ))
                .with_hint("once Docker answers: pgrehearse down --all")),
            };
            // Nobody is left to return this to: say it where the user will see it.
            if let Err(e) = res {
                tracing::warn!("{e:?}");
            }
        });
    }
}

/// Run `work` to its end from a `Drop`, whatever context that runs in (a runtime's worker, a
/// runtime shutting down, none): on a thread of its own with a runtime of its own, waited for.
fn on_own_runtime(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join();
}

/// The containers `run` recorded in `containers.json`.
///
/// # Errors
/// Usage error when there is no record; internal error when it cannot be read.
fn recorded(run: &RunDir) -> Result<Vec<ContainerState>> {
    let path = run.file("containers.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::usage(format!("no container record in {}", run.path().display())).with_source(e)
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::internal(format!("reading {}", path.display())).with_source(e))?;
    Ok(serde_json::from_value(v["containers"].clone()).unwrap_or_default())
}

/// Keep the server log of each container `run` recorded in its `logs/` folder, before the
/// containers are removed, as teardown does. Best effort, like there: each failure is a
/// warning (a container removed by hand took its log with it).
pub async fn save_logs(docker: &Docker, run: &RunDir) {
    let states = match recorded(run) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("no server logs kept for run {}: {e}", run.id());
            return;
        }
    };
    for st in states {
        if let Err(e) = node::save_log(docker, &st.container, &run.log(&st.name)).await {
            tracing::warn!("{}'s server log is not kept: {e}", st.name);
        }
    }
}

/// Node handles for the containers of a run left running (`up`), from `containers.json`.
///
/// # Errors
/// Usage error when the run has no container record; environment error without Docker.
pub async fn adopt_nodes(
    run: &RunDir,
    creds: &Credentials,
    version: &PgVersion,
) -> Result<Vec<Node>> {
    let states = recorded(run)?;
    let docker = connect().await?;
    let mut nodes = Vec::new();
    for st in states {
        if let Err(e) = docker.inspect_container(&st.container, None).await {
            return Err(Error::environment(format!(
                "container {} of run {} is gone: {e}",
                st.container,
                run.id()
            )));
        }
        let role = match st.name.as_str() {
            "a" => crate::node::Role::Primary,
            "b" => crate::node::Role::Standby,
            _ => crate::node::Role::Target,
        };
        let n = Arc::new(DockerNode::new(
            &st.name,
            &st.container,
            st.host_port,
            docker.clone(),
            creds.superuser.clone(),
        ));
        let admin = crate::node::ConnInfo {
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: st.host_port,
            },
            login: creds.superuser.clone(),
            dbname: "postgres".into(),
        };
        let peer = Endpoint {
            host: st.container.clone(),
            port: node::PORT,
        };
        nodes.push(Node::new(
            &st.name,
            role,
            admin,
            peer,
            version.clone(),
            true,
            n,
        ));
    }
    Ok(nodes)
}

/// The settings the image's server knows (`postgres --describe-config`), asked in a
/// short-lived container with no network, so that a scenario's settings are checked before any
/// node starts, as the local backend checks them against its binaries.
///
/// The probe carries a run label of its own and its owner, so `down --all` removes it should
/// this process die before it does; it also stops (and Docker removes it) by itself after a
/// minute.
///
/// # Errors
/// Environment error when the container cannot run or `postgres --describe-config` fails.
pub async fn known_settings(
    docker: &Docker,
    image: &ImageChoice,
    names: &[&str],
) -> Result<crate::pg::KnownSettings> {
    use testcontainers::bollard::models::{ContainerCreateBody, HostConfig};
    let labels = owned_labels(&format!(
        "settings-probe-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    ));
    let body = ContainerCreateBody {
        image: Some(image.reference()),
        entrypoint: Some(vec!["sleep".into()]),
        cmd: Some(vec!["60".into()]),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            auto_remove: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let what = format!(
        "cannot ask image {} which settings its server knows",
        image.reference()
    );
    // Every plain name is asked in the same container, after a line that cannot be a
    // setting's (the ones `--describe-config` lists answer too, harmlessly).
    let asked = crate::pg::KnownSettings::default().unlisted(names.iter().copied());
    let script = format!(
        "postgres --describe-config || exit $?; echo '{PROBE_MARK}'; {}",
        crate::pg::PROBE_SCRIPT
    );
    let mut cmd = vec![
        "sh".to_string(),
        "-c".into(),
        script,
        "probe".into(),
        "postgres".into(),
    ];
    cmd.extend(asked);
    // It also stops by itself within a minute, and Docker then removes it.
    let out = exec::run_throwaway(docker, None, body, "postgres", &cmd, &what).await?;
    if out.code != 0 {
        return Err(Error::environment(format!(
            "{what}: postgres --describe-config exited {}: {}",
            out.code,
            out.stderr_text()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (described, asked) = text.split_once(PROBE_MARK).unwrap_or((&text, ""));
    let mut known = crate::pg::KnownSettings::parse(described);
    for name in asked.lines().filter(|l| !l.is_empty()) {
        known.add_unlisted(name);
    }
    Ok(known)
}

/// Separates `--describe-config`'s output from the probe's in the settings container.
const PROBE_MARK: &str = "--- pgrehearse: settings the server knows besides ---";

/// Whether this machine is expected to have a Docker engine: a socket or `DOCKER_HOST` says
/// so, or one of the run directories `runs` recorded containers. When none does, an engine that
/// does not answer simply means there is nothing of pgrehearse in Docker.
pub fn engine_expected(runs: &[std::path::PathBuf]) -> bool {
    std::env::var_os("DOCKER_HOST").is_some()
        || std::path::Path::new("/var/run/docker.sock").exists()
        || runs.iter().any(|d| d.join("containers.json").exists())
}

/// Whether any container of run `run_id` is running (false when Docker is not reachable).
pub async fn run_has_containers(run_id: &str) -> bool {
    let Ok(docker) = Docker::connect_with_local_defaults() else {
        return false;
    };
    let filter: HashMap<String, Vec<String>> =
        [("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])].into();
    docker
        .list_containers(Some(ListContainersOptions {
            all: false,
            filters: Some(filter),
            ..Default::default()
        }))
        .await
        .is_ok_and(|v| !v.is_empty())
}

/// Containers and networks carrying `label=value`.
async fn labelled(
    docker: &Docker,
    label: &str,
    value: &str,
) -> Result<(
    Vec<testcontainers::bollard::models::ContainerSummary>,
    Vec<testcontainers::bollard::models::Network>,
)> {
    let filter: HashMap<String, Vec<String>> =
        [("label".to_string(), vec![format!("{label}={value}")])].into();
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        }))
        .await
        .map_err(|e| Error::environment(format!("cannot list containers: {e}")))?;
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filter),
        }))
        .await
        .map_err(|e| Error::environment(format!("cannot list networks: {e}")))?;
    Ok((containers, networks))
}

/// Whether Docker refused to start a container because its host port is taken.
fn port_taken(msg: &str) -> bool {
    msg.contains("port is already allocated") || msg.contains("address already in use")
}

/// The error for container `cname` failing to start on host port `port`; `port_set` says
/// whether the scenario chose that port (only then is leaving it unset a way out).
fn start_error(cname: &str, port: u16, port_set: bool, msg: &str) -> Error {
    if !port_taken(msg) {
        return Error::environment(format!("cannot start container {cname}: {msg}"));
    }
    if port_set {
        Error::environment(format!(
            "port {port} on 127.0.0.1 is already in use (container {cname})"
        ))
        .with_hint("stop whatever listens there, or leave the node's port unset so pgrehearse picks a free one")
    } else {
        Error::environment(format!(
            "every free port pgrehearse picked on 127.0.0.1 for container {cname} was taken before Docker could bind it, the last {port}"
        ))
        .with_hint("something on this machine keeps taking new ports: run again, or set the node's port in the scenario")
    }
}

/// Stop (SIGKILL) and remove container `id` with its anonymous volumes; one already gone is
/// not an error.
pub(super) async fn force_remove(
    docker: &Docker,
    id: &str,
) -> std::result::Result<(), testcontainers::bollard::errors::Error> {
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(opts)).await {
        Err(e) if !already_gone(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Whether a removal failed only because the thing was already gone.
fn already_gone(e: &testcontainers::bollard::errors::Error) -> bool {
    matches!(
        e,
        testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Remove every container and network carrying `label=value`, going past individual failures
/// (each is a warning), then look again.
///
/// # Errors
/// Environment error when Docker cannot list them, or when some are still there afterwards:
/// it names them and how to remove them.
pub async fn remove_by_label(docker: &Docker, label: &str, value: &str) -> Result<()> {
    let (containers, networks) = labelled(docker, label, value).await?;
    for c in containers {
        let Some(id) = c.id.clone() else { continue };
        if let Err(e) = force_remove(docker, &id).await {
            tracing::warn!("cannot remove container {}: {e}", container_name(&c));
        }
    }
    for n in networks {
        let Some(name) = n.name else { continue };
        if let Err(e) = docker.remove_network(&name).await
            && !already_gone(&e)
        {
            tracing::warn!("cannot remove network {name}: {e}");
        }
    }
    let (containers, networks) = labelled(docker, label, value).await?;
    let containers: Vec<String> = containers.iter().map(container_name).collect();
    let networks: Vec<String> = networks.into_iter().filter_map(|n| n.name).collect();
    match remaining(&format!("{label}={value}"), &containers, &networks) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn container_name(c: &testcontainers::bollard::models::ContainerSummary) -> String {
    c.names
        .iter()
        .flatten()
        .next()
        .map(|n| n.trim_start_matches('/').to_string())
        .or_else(|| c.id.clone())
        .unwrap_or_else(|| "(unnamed)".into())
}

/// The error for what is still there after removing everything labelled `what`, if anything is.
fn remaining(what: &str, containers: &[String], networks: &[String]) -> Option<Error> {
    if containers.is_empty() && networks.is_empty() {
        return None;
    }
    let mut left = Vec::new();
    let mut commands = Vec::new();
    if !containers.is_empty() {
        left.push(format!("containers {}", containers.join(", ")));
        commands.push(format!("docker rm -f {}", containers.join(" ")));
    }
    if !networks.is_empty() {
        left.push(format!("networks {}", networks.join(", ")));
        commands.push(format!("docker network rm {}", networks.join(" ")));
    }
    Some(
        Error::environment(format!(
            "Docker still has {} (label {what}) after removing them",
            left.join(" and ")
        ))
        .with_hint(format!(
            "remove them by hand ({}), or run `pgrehearse down --all` once the engine lets them go",
            commands.join("; ")
        )),
    )
}

/// Remove everything pgrehearse ever created in Docker whose run is not owned by a live harness
/// process: neither its owner label names a live harness on this host, nor does `is_live`
/// (given the run id and the run directory from its label) say so. Runs another host made
/// (an engine shared between machines) are left alone, with a warning, unless `any_host`:
/// whether their harness lives cannot be told from here. Each run's server logs are kept in
/// its directory when that is a run directory on this machine, which `taken_down` is then
/// given once nothing of the run is left in Docker. Returns the run ids cleaned.
///
/// # Errors
/// Environment error when Docker cannot be reached or listed.
pub async fn down_leftovers(
    docker: &Docker,
    any_host: bool,
    is_live: impl Fn(&str, Option<&std::path::Path>) -> bool,
    taken_down: impl Fn(&RunDir),
) -> Result<Vec<String>> {
    let (containers, networks) = labelled(docker, LABEL, "1").await?;
    let mut runs: HashMap<String, HashMap<String, String>> = HashMap::new();
    let labels = containers
        .into_iter()
        .filter_map(|c| c.labels)
        .chain(networks.into_iter().filter_map(|n| n.labels));
    for l in labels {
        if let Some(run) = l.get(RUN_LABEL).cloned() {
            runs.entry(run).or_default().extend(l);
        }
    }
    let here = this_host();
    let dirs: HashMap<String, String> = runs
        .iter()
        .filter_map(|(run, l)| Some((run.clone(), l.get(DIR_LABEL)?.clone())))
        .collect();
    let mut gone: Vec<String> = runs
        .into_iter()
        .filter(|(run, l)| {
            let owner = l.get(OWNER_LABEL).and_then(|o| Owner::parse(o));
            if let Some(o) = owner.as_ref().filter(|o| o.host != here && !any_host) {
                tracing::warn!(
                    "left run {run} alone: pgrehearse on host {:?} made its containers, and this host ({here:?}) cannot tell whether that harness still runs; `pgrehearse down --all --any-host` removes them anyway",
                    o.host
                );
                return false;
            }
            let owned = owner.as_ref().is_some_and(owner_alive);
            let dir = l.get(DIR_LABEL).map(std::path::Path::new);
            !owned && !is_live(run, dir)
        })
        .map(|(run, _)| run)
        .collect();
    gone.sort();
    // One stuck run must not keep the others: each failure is reported, and all of them
    // together at the end.
    let mut failed = Vec::new();
    let mut removed = Vec::new();
    for r in gone {
        // The server logs live in the containers: kept with the run, when its directory is
        // on this machine, as `down --run` does. A label is only a claim: nothing is written
        // or removed where it points unless that is the run's directory.
        let dir = dirs
            .get(&r)
            .and_then(|d| RunDir::recognise(std::path::Path::new(d), &r));
        if let Some(dir) = &dir {
            save_logs(docker, dir).await;
        }
        match remove_by_label(docker, RUN_LABEL, &r).await {
            Ok(()) => {
                if let Some(dir) = &dir {
                    taken_down(dir);
                }
                removed.push(r)
            }
            Err(e) => {
                tracing::warn!("run {r}: {e:?}");
                failed.push(e);
            }
        }
    }
    let mut err = match failed.len() {
        0 => return Ok(removed),
        1 => failed.remove(0),
        n => {
            let join = |f: &dyn Fn(&Error) -> Option<String>| {
                failed.iter().filter_map(f).collect::<Vec<_>>().join("; ")
            };
            Error::environment(format!(
                "could not remove everything of {n} runs from Docker: {}",
                join(&|e| Some(e.to_string()))
            ))
            .with_hint(join(&|e| e.hint().map(str::to_string)))
        }
    };
    if !removed.is_empty() {
        err = err.with_detail(format!("taken down: {}", removed.join(", ")));
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaving_the_port_unset_is_suggested_only_when_it_was_set() {
        let taken = "Bind for 127.0.0.1:5500 failed: port is already allocated";
        let set = start_error("pgrh-x-a", 5500, true, taken);
        assert!(set.to_string().contains("port 5500"), "{set}");
        assert!(set.hint().unwrap().contains("leave the node's port unset"));
        let picked = start_error("pgrh-x-a", 5500, false, taken);
        assert!(
            !picked
                .hint()
                .unwrap()
                .contains("leave the node's port unset"),
            "{picked:?}"
        );
        // Anything else is not about ports at all.
        let other = start_error("pgrh-x-a", 5500, true, "no such image");
        assert!(other.hint().is_none(), "{other:?}");
        assert!(!port_taken("no such image"));
        assert!(port_taken(
            "listen tcp4 127.0.0.1:5500: bind: address already in use"
        ));
    }

    #[test]
    fn an_owner_label_names_host_pid_and_start_time() {
        let o = |host, pid, start| Some(Owner { host, pid, start });
        assert_eq!(Owner::parse("h1/42/9000"), o("h1", 42, Some(9000)));
        // Labels of older versions carry no start time.
        assert_eq!(Owner::parse("h1/42"), o("h1", 42, None));
        assert_eq!(Owner::parse("/42/7"), o("", 42, Some(7)));
        for bad in ["", "h1", "h1/x", "h1/42/x", "h1/42/7/8"] {
            assert_eq!(Owner::parse(bad), None, "{bad:?}");
        }
        // The label this process writes reads back as this process.
        let label = this_owner();
        let me = Owner::parse(&label).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert_eq!(me.start, crate::os::pid_start(me.pid));
    }

    #[test]
    fn a_reused_pid_does_not_keep_a_dead_harness_alive() {
        let owner = |start| Owner {
            host: "h1",
            pid: 4242,
            start,
        };
        let exists = |_: i32| true;
        let started_at = |t: u64| move |_: i32| Some(t);
        assert!(owner(Some(9000)).alive(exists, started_at(9000)));
        // Another process got pid 4242 after the harness died.
        assert!(!owner(Some(9000)).alive(exists, started_at(9100)));
        assert!(!owner(Some(9000)).alive(|_| false, started_at(9000)));
        // Nothing to compare (an old label, /proc hidden): the pid decides.
        assert!(owner(None).alive(exists, started_at(9100)));
        assert!(owner(Some(9000)).alive(exists, |_| None));
        // This process never counts as another live harness.
        let me = Owner {
            host: "h1",
            pid: std::process::id() as i32,
            start: None,
        };
        assert!(!me.alive(exists, |_| None));
    }

    #[test]
    fn what_is_left_after_removal_is_named_with_the_commands_that_remove_it() {
        assert!(remaining("org.pgrehearse.run=r1", &[], &[]).is_none());
        let e = remaining(
            "org.pgrehearse.run=r1",
            &["pgrh-r1-a".into(), "pgrh-r1-b".into()],
            &["pgrh-r1-net".into()],
        )
        .unwrap();
        let msg = e.to_string();
        assert!(msg.contains("pgrh-r1-a, pgrh-r1-b"), "{msg}");
        assert!(msg.contains("pgrh-r1-net"), "{msg}");
        let hint = e.hint().unwrap();
        assert!(hint.contains("docker rm -f pgrh-r1-a pgrh-r1-b"), "{hint}");
        assert!(hint.contains("docker network rm pgrh-r1-net"), "{hint}");
        assert!(hint.contains("pgrehearse down --all"), "{hint}");
        assert_eq!(e.exit_code(), 2);
    }
}
