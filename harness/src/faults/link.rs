//! A fault-capable link on one hop. The local backend puts a harness-owned TCP proxy there;
//! the container backend acts on the containers' own network (iptables, tc netem).

use async_trait::async_trait;

use super::model::Hop;
use super::proxy::{LinkProxy, LinkState};
use crate::error::{Error, Result};
use crate::node::Endpoint;

/// Whether a harness TCP proxy on `hop` can do what `state` asks.
///
/// # Errors
/// Environment error saying why not and where it can be done.
pub fn proxy_can(hop: Hop, state: &LinkState) -> Result<()> {
    if state.loss > 0.0 {
        return Err(Error::environment(format!(
            "packet loss on {hop} needs a packet network: the local backend's link is a TCP proxy, and a TCP stream never loses bytes (the kernel retransmits)"
        ))
        .with_hint("run loss faults on the docker backend (iptables drops packets at random there), or model a lossy link's retransmission stalls with latency and jitter"));
    }
    Ok(())
}

/// Server settings by which a server gives up on a connection whose peer's TCP stack goes
/// quiet: keepalive probes unanswered, data unacknowledged.
const TCP_LIVENESS: [&str; 4] = [
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "tcp_user_timeout",
];

/// How a partition through a proxy differs from a cut network, for reports.
const PROXY_PARTITION: &str = "a partition stops the bytes in the proxy, whose sockets stay up: the ends' TCP keepalives and tcp_user_timeout do not fire, and new connections complete their handshake before they hang";

/// What a partition through a harness proxy on `hop` does not rehearse, when the hop's upstream
/// server (A for a-b, B for b-c: the one that accepts the hop's connection) sets one of
/// [`TCP_LIVENESS`] in `upstream_settings`. None when it sets none.
///
/// The proxy stops the bytes but keeps its own sockets up, and an unprivileged process cannot
/// do otherwise: both ends' TCP stacks keep talking to a live peer (keepalives answered, data
/// acknowledged), so these settings never fire, and a new connection completes its handshake
/// before it hangs. Across a cut network (iptables DROP on the docker backend) they do.
pub fn proxy_partition_caveat(hop: Hop, upstream_settings: &[(String, String)]) -> Option<String> {
    let set: Vec<&str> = upstream_settings
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| TCP_LIVENESS.iter().any(|l| l.eq_ignore_ascii_case(name)))
        .collect();
    if set.is_empty() {
        return None;
    }
    let upstream = match hop {
        Hop::AB => "a",
        Hop::BC => "b",
    };
    Some(format!(
        "partition on {hop} on the local backend: {upstream}'s {} will not fire, because the harness proxy that stands for the cut keeps both ends' sockets alive (only wal_sender_timeout and wal_receiver_timeout see it); rehearse it on the docker backend, where the cut drops packets",
        set.join(", ")
    ))
}

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
    /// Make sure `state` is in force even if an end lost it (its machine restarted) or missed
    /// a change (it was paused); cheap when nothing was lost.
    async fn reassert(&self, state: &LinkState) -> Result<()> {
        self.apply(state).await
    }
    /// How faults are implemented on this link, for reports.
    async fn mechanism(&self) -> String;
    /// Whether the link is a proxy inside this harness process: it ends when the process does,
    /// so a chain left running (`run --keep`) must stop going through it first.
    fn in_process(&self) -> bool {
        false
    }
}

/// A link through a proxy in the harness process: the local backend's, and the container
/// backend's where the kernel cannot delay packets.
pub struct ProxyLink {
    hop: Hop,
    proxy: LinkProxy,
    mechanism: String,
}

impl ProxyLink {
    /// A proxy for `hop` on 127.0.0.1 forwarding to `upstream`.
    ///
    /// # Errors
    /// Environment error when no local port can be bound.
    pub async fn start(hop: Hop, upstream: Endpoint, seed: u64) -> Result<ProxyLink> {
        let mechanism = format!(
            "harness TCP proxy on {hop} (unprivileged; faults act on the replication connection)"
        );
        Self::start_on(
            hop,
            std::net::Ipv4Addr::LOCALHOST.into(),
            upstream,
            seed,
            mechanism,
        )
        .await
    }

    /// A proxy for `hop` listening on `ip` (where the downstream node can reach it),
    /// forwarding to `upstream`; `mechanism` is how reports describe it (followed by what a
    /// partition through a proxy does not do, whoever started it).
    ///
    /// # Errors
    /// Environment error when no port can be bound on `ip`.
    pub async fn start_on(
        hop: Hop,
        ip: std::net::IpAddr,
        upstream: Endpoint,
        seed: u64,
        mechanism: String,
    ) -> Result<ProxyLink> {
        Ok(ProxyLink {
            hop,
            proxy: LinkProxy::start(hop.as_str(), ip, upstream, seed).await?,
            mechanism: format!("{mechanism}; {PROXY_PARTITION}"),
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
        proxy_can(self.hop, state)
    }
    async fn apply(&self, state: &LinkState) -> Result<()> {
        self.proxy.set(state.clone()).await
    }
    async fn reassert(&self, state: &LinkState) -> Result<()> {
        // The proxy lives in this process: no node's restart or pause takes its state away.
        if self.proxy.current() == *state {
            return Ok(());
        }
        self.apply(state).await
    }
    async fn mechanism(&self) -> String {
        self.mechanism.clone()
    }
    fn in_process(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), "10".to_string()))
            .collect()
    }

    #[test]
    fn a_proxy_partition_warns_of_the_tcp_liveness_settings_it_never_trips() {
        let why = proxy_partition_caveat(
            Hop::BC,
            &settings(&[
                "wal_sender_timeout",
                "TCP_user_timeout",
                "tcp_keepalives_idle",
            ]),
        )
        .expect("tcp_user_timeout and tcp_keepalives_idle are set");
        assert!(
            why.contains("b's TCP_user_timeout, tcp_keepalives_idle will not fire"),
            "{why}"
        );
        assert_eq!(
            proxy_partition_caveat(Hop::AB, &settings(&["wal_sender_timeout"])),
            None
        );
    }
}
