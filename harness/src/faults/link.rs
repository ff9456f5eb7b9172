//! A fault-capable link on one hop. The local backend puts a harness-owned TCP proxy there;
//! the container backend acts on the containers' own network (iptables, tc netem).

use async_trait::async_trait;

use super::model::Hop;
use super::proxy::{LinkProxy, LinkState};
use crate::error::{Error, Result};
use crate::node::Endpoint;

/// Controls the network between the two ends of a hop.
#[async_trait]
pub trait LinkControl: Send + Sync {
    /// Which hop.
    fn hop(&self) -> Hop;
    /// Where the downstream node must connect to go through this link (a proxy), or None when
    /// it connects to the upstream node directly.
    fn endpoint(&self) -> Option<Endpoint>;
    /// Whether this link can do what `state` asks at all (checked before a fault is put in
    /// force, so a refusal leaves the faults already in force untouched).
    ///
    /// # Errors
    /// Environment error saying why not and where it can be done.
    fn check(&self, _state: &LinkState) -> Result<()> {
        Ok(())
    }
    /// Make the link behave as `state` (the default state heals it).
    async fn apply(&self, state: &LinkState) -> Result<()>;
    /// How faults are implemented on this link, for reports.
    fn mechanism(&self) -> String;
}

/// The local backend's link: a proxy in the harness process.
pub struct ProxyLink {
    hop: Hop,
    proxy: LinkProxy,
}

impl ProxyLink {
    /// A proxy for `hop` forwarding to `upstream`.
    ///
    /// # Errors
    /// Environment error when no local port can be bound.
    pub async fn start(hop: Hop, upstream: Endpoint, seed: u64) -> Result<ProxyLink> {
        Ok(ProxyLink {
            hop,
            proxy: LinkProxy::start(hop.as_str(), upstream, seed).await?,
        })
    }

    /// The proxy itself (traffic counters).
    pub fn proxy(&self) -> &LinkProxy {
        &self.proxy
    }
}

#[async_trait]
impl LinkControl for ProxyLink {
    fn hop(&self) -> Hop {
        self.hop
    }
    fn endpoint(&self) -> Option<Endpoint> {
        Some(self.proxy.endpoint())
    }
    fn check(&self, state: &LinkState) -> Result<()> {
        if state.loss > 0.0 {
            return Err(Error::environment(format!(
                "packet loss on {} needs a packet network: the local backend's link is a TCP proxy, and a TCP stream never loses bytes (the kernel retransmits)",
                self.hop
            ))
            .with_hint("run loss faults on the docker backend (iptables drops packets at random there), or model a lossy link's retransmission stalls with latency and jitter"));
        }
        Ok(())
    }
    async fn apply(&self, state: &LinkState) -> Result<()> {
        self.proxy.set(state.clone());
        Ok(())
    }
    fn mechanism(&self) -> String {
        format!(
            "harness TCP proxy on {} (unprivileged; faults act on the replication connection)",
            self.hop
        )
    }
}
