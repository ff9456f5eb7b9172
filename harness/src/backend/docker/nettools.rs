//! Where a link fault's `iptables` and `tc` commands run. The image built by
//! `scripts/build-image.sh` carries both, so they run inside the node's container; the official
//! `postgres` image carries neither, so they run in a short-lived helper container joined to the
//! node's network namespace (`--network container:<node>`, NET_ADMIN), from an image that has
//! them. The rules land in the same namespace either way: the node's own traffic is what changes.
//!
//! The helper lives for one command only: a node container that is killed and restarted gets a
//! new namespace, and a long-lived helper would keep shaping the old one.

use std::collections::HashMap;
use std::sync::Mutex;

use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{ContainerCreateBody, HostConfig};

use super::exec::{self, ExecOutput, sh};
use crate::error::{Error, Result};

/// The tools a link fault needs.
const TOOLS: [&str; 2] = ["iptables", "tc"];

/// Runs network commands for the containers of one run.
pub struct NetTools {
    docker: Docker,
    /// The run's labels, so teardown and `down --all` find a helper left behind.
    labels: HashMap<String, String>,
    /// The image for helper containers, when one exists locally.
    helper_image: Option<String>,
    /// Whether a container's own image carries the tools, asked once per container.
    has_tools: Mutex<HashMap<String, bool>>,
}

/// Images that carry iptables and tc, in order of preference. `PGREHEARSE_NET_TOOLS_IMAGE`
/// names one, or is `none` for no helper at all.
fn helper_candidates(major: u32) -> Vec<String> {
    let mut v = Vec::new();
    match std::env::var("PGREHEARSE_NET_TOOLS_IMAGE") {
        Ok(r) if r == "none" => return v,
        Ok(r) => v.push(r),
        Err(_) => {}
    }
    v.push(format!("pgrehearse/postgres:{major}"));
    for pin in crate::pg::PINS {
        let c = format!("pgrehearse/postgres:{}", pin.major);
        if !v.contains(&c) {
            v.push(c);
        }
    }
    v
}

impl NetTools {
    /// Network commands for the containers of a run labelled `labels` (PostgreSQL `major`).
    pub async fn new(docker: Docker, labels: HashMap<String, String>, major: u32) -> NetTools {
        let mut helper_image = None;
        for c in helper_candidates(major) {
            if docker.inspect_image(&c).await.is_ok() {
                helper_image = Some(c);
                break;
            }
        }
        NetTools {
            docker,
            labels,
            helper_image,
            has_tools: Mutex::default(),
        }
    }

    async fn container_has_tools(&self, container: &str) -> Result<bool> {
        if let Some(v) = self.has_tools.lock().expect("has_tools").get(container) {
            return Ok(*v);
        }
        let probe = TOOLS
            .iter()
            .map(|t| format!("command -v {t} >/dev/null"))
            .collect::<Vec<_>>()
            .join(" && ");
        let out = exec::run(&self.docker, container, "root", &sh(probe), &[], None).await?;
        let has = out.code == 0;
        self.has_tools
            .lock()
            .expect("has_tools")
            .insert(container.into(), has);
        Ok(has)
    }

    /// Whether commands can run in `container`'s network namespace at all.
    pub async fn available(&self, container: &str) -> bool {
        self.helper_image.is_some() || self.container_has_tools(container).await.unwrap_or(false)
    }

    /// Whether commands reach a paused container's namespace (through a helper container:
    /// Docker refuses exec in a paused one).
    pub fn reaches_paused(&self) -> bool {
        self.helper_image.is_some()
    }

    /// Where commands for `container` run, for the report.
    pub async fn place(&self, container: &str) -> String {
        match (
            self.container_has_tools(container).await,
            &self.helper_image,
        ) {
            (Ok(true), _) => format!("in {container}"),
            (Ok(false), Some(img)) => format!(
                "in a helper container ({img}) joined to {container}'s network namespace, as {container}'s image has no iptables/tc"
            ),
            (Ok(false), None) => format!(
                "nowhere: {container}'s image has no iptables/tc and no helper image exists"
            ),
            (Err(_), _) => format!("in {container}'s network namespace"),
        }
    }

    /// Run `script` as root in `container`'s network namespace.
    ///
    /// # Errors
    /// Environment error when neither the container's image nor any local image carries the
    /// tools (with the command that builds one), or Docker refuses.
    pub async fn run(&self, container: &str, script: &str, why: &str) -> Result<ExecOutput> {
        // Docker refuses to exec in a paused container (a pause fault), but its network
        // namespace is there to join: a link fault starting or healing meanwhile still lands.
        if let Some(image) = &self.helper_image
            && self.paused(container).await
        {
            return self.in_helper(container, image, script).await;
        }
        if self.container_has_tools(container).await? {
            return exec::run(&self.docker, container, "root", &sh(script), &[], None).await;
        }
        let Some(image) = &self.helper_image else {
            return Err(Error::environment(format!(
                "{why} needs iptables and tc in container {container}'s network namespace: its image has neither, and no image that has them exists locally for a helper container"
            ))
            .with_hint("build one: sudo scripts/build-image.sh (tags pgrehearse/postgres:<major>, which carries iproute2 and iptables), or name one with PGREHEARSE_NET_TOOLS_IMAGE"));
        };
        self.in_helper(container, image, script).await
    }

    async fn paused(&self, container: &str) -> bool {
        exec::running_paused(&self.docker, container).await.1
    }

    async fn in_helper(&self, container: &str, image: &str, script: &str) -> Result<ExecOutput> {
        let name = format!("{container}-net-{:04x}", rand::random::<u16>());
        let body = ContainerCreateBody {
            image: Some(image.into()),
            cmd: Some(vec!["sleep".into(), "600".into()]),
            labels: Some(self.labels.clone()),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{container}")),
                cap_add: Some(vec!["NET_ADMIN".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let what = format!("helper container {name}");
        exec::run_throwaway(&self.docker, Some(&name), body, "root", &sh(script), &what).await
    }
}
