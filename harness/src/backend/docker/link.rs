//! Link faults between containers, on their real network: partitions and random packet loss
//! with iptables in the downstream container's network namespace (packets dropped: connections
//! hang, as across a cut cable), a link "down" with TCP resets, and bandwidth (tc htb) and
//! latency (tc netem) on the upstream container's traffic to the downstream one. [`NetTools`]
//! decides whether the commands run in the container itself or in a helper joined to it.

use std::sync::Arc;

use async_trait::async_trait;
use testcontainers::bollard::Docker;

use super::exec;
use super::nettools::NetTools;
use crate::error::{Error, Result};
use crate::faults::{Hop, LinkControl, LinkMode, LinkState, ProxyLink};
use crate::node::Endpoint;

/// The address of `container` on `network`.
///
/// # Errors
/// Environment error when it cannot be inspected or has no address there.
pub async fn container_ip(docker: &Docker, container: &str, network: &str) -> Result<String> {
    let c = docker
        .inspect_container(container, None)
        .await
        .map_err(|e| Error::environment(format!("cannot inspect container {container}: {e}")))?;
    c.network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get(network).and_then(|e| e.ip_address.clone()))
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| {
            Error::environment(format!("container {container} has no address on {network}"))
        })
}

/// Whether `container`'s kernel can delay packets (tc netem), tried on its loopback. No tc at
/// all counts as no.
pub async fn can_delay(net: &NetTools, container: &str) -> bool {
    net.run(
        container,
        "tc qdisc add dev lo root netem delay 1ms && tc qdisc del dev lo root",
        "probing for netem",
    )
    .await
    .is_ok_and(|out| out.code == 0)
}

/// A hop between two containers.
pub struct DockerLink {
    docker: Docker,
    net: Arc<NetTools>,
    hop: Hop,
    upstream: String,
    downstream: String,
    network: String,
    /// What is in force now: only the part that changes is touched (each command may cost a
    /// helper container).
    applied: tokio::sync::Mutex<LinkState>,
}

impl DockerLink {
    /// The hop from container `upstream` to container `downstream` on `network`.
    pub fn new(
        docker: Docker,
        net: Arc<NetTools>,
        hop: Hop,
        upstream: &str,
        downstream: &str,
        network: &str,
    ) -> DockerLink {
        DockerLink {
            docker,
            net,
            hop,
            upstream: upstream.into(),
            downstream: downstream.into(),
            network: network.into(),
            applied: tokio::sync::Mutex::default(),
        }
    }

    async fn ip(&self, container: &str) -> Result<String> {
        container_ip(&self.docker, container, &self.network).await
    }

    async fn running(&self, container: &str) -> bool {
        exec::running_paused(&self.docker, container).await.0
    }

    async fn root(&self, container: &str, script: String) -> Result<exec::ExecOutput> {
        let why = format!("a link fault on {}", self.hop);
        self.net.run(container, &script, &why).await
    }

    async fn set_filter(&self, state: &LinkState) -> Result<()> {
        // Only the harness touches these chains in a container's own network namespace.
        let flush = "iptables -F INPUT && iptables -F OUTPUT".to_string();
        let mode = state.mode;
        if mode == LinkMode::Up && state.loss <= 0.0 {
            let out = self.root(&self.downstream, flush).await?;
            return if out.code == 0 || out.stderr_text().contains("not found") {
                Ok(())
            } else {
                Err(Error::environment(format!(
                    "healing {}: {}",
                    self.hop,
                    out.stderr_text()
                )))
            };
        }
        let up = self.ip(&self.upstream).await?;
        let rule = match mode {
            LinkMode::Up => format!(
                "-m statistic --mode random --probability {:.4} -j DROP",
                state.loss.min(1.0)
            ),
            LinkMode::Blackhole => "-j DROP".to_string(),
            LinkMode::Down => "-p tcp -j REJECT --reject-with tcp-reset".to_string(),
        };
        let script = format!(
            "{flush} && iptables -A INPUT -s {up} {rule} && iptables -A OUTPUT -d {up} {rule}"
        );
        let out = self.root(&self.downstream, script).await?;
        if out.code != 0 {
            return Err(Error::environment(format!(
                "{} in {}: iptables failed: {}",
                self.hop,
                self.downstream,
                out.stderr_text()
            )));
        }
        Ok(())
    }

    async fn set_shaping(&self, state: &LinkState) -> Result<()> {
        let _ = self
            .root(
                &self.upstream,
                "tc qdisc del dev eth0 root 2>/dev/null; true".into(),
            )
            .await?;
        if state.latency.is_zero() && state.bandwidth.is_none() {
            return Ok(());
        }
        let down = self.ip(&self.downstream).await?;
        let script = shaping_script(state, &down);
        let out = self.root(&self.upstream, script).await?;
        if out.code != 0 {
            let err = out.stderr_text();
            let _ = self
                .root(
                    &self.upstream,
                    "tc qdisc del dev eth0 root 2>/dev/null; true".into(),
                )
                .await;
            let e = Error::environment(format!(
                "{}: tc failed in {}: {err}",
                self.hop, self.upstream
            ));
            return Err(
                if err.contains("Specified qdisc kind is unknown") || err.contains("No such file") {
                    e.with_hint("this kernel has no netem (CONFIG_NET_SCH_NETEM), so containers cannot be given latency (bandwidth caps still work): run latency faults on the local backend, where the harness proxy delays traffic")
                } else {
                    e
                },
            );
        }
        Ok(())
    }
}

#[async_trait]
impl LinkControl for DockerLink {
    fn hop(&self) -> Hop {
        self.hop
    }
    fn endpoint(&self) -> Option<Endpoint> {
        None
    }
    async fn apply(&self, state: &LinkState) -> Result<()> {
        let mut applied = self.applied.lock().await;
        let shaping = |s: &LinkState| (s.latency, s.jitter, s.bandwidth);
        let filter = |s: &LinkState| (s.mode, s.loss);
        // Healing a container that is not running (killed by a primary failure): there are no
        // rules left to remove.
        let healing = *state == LinkState::default();
        if shaping(&applied) != shaping(state) && (!healing || self.running(&self.upstream).await) {
            self.set_shaping(state).await?;
        }
        if filter(&applied) != filter(state) && (!healing || self.running(&self.downstream).await) {
            self.set_filter(state).await?;
        }
        *applied = state.clone();
        Ok(())
    }
    async fn reassert(&self, state: &LinkState) -> Result<()> {
        // A restarted container has a fresh network namespace: nothing of `applied` is there.
        *self.applied.lock().await = LinkState::default();
        self.apply(state).await
    }
    async fn mechanism(&self) -> String {
        format!(
            "the containers' network: iptables for partitions and loss {}; tc (htb, netem) for bandwidth and latency {}",
            self.net.place(&self.downstream).await,
            self.net.place(&self.upstream).await
        )
    }
}

/// The tc commands that shape the upstream container's traffic to `down` as `state` asks.
fn shaping_script(state: &LinkState, down: &str) -> String {
    // Only traffic to the downstream container is shaped (an htb class chosen by a u32
    // filter; everything else bypasses htb): A keeps talking to the workload and the harness
    // at full speed. htb caps bandwidth on kernels without netem; netem, as the class's
    // leaf, adds the delay.
    let rate = state.bandwidth.map_or_else(
        || "10gbit".to_string(),
        |bw| format!("{}bit", bw.saturating_mul(8)),
    );
    let mut script = format!(
        "tc qdisc add dev eth0 root handle 1: htb && \
         tc class add dev eth0 parent 1: classid 1:20 htb rate {rate} quantum 60000 && \
         tc filter add dev eth0 protocol ip parent 1: prio 1 u32 match ip dst {down}/32 flowid 1:20"
    );
    if !state.latency.is_zero() {
        script.push_str(&format!(
            // Microseconds: a sub-millisecond delay must not round to none.
            " && tc qdisc add dev eth0 parent 1:20 handle 20: netem limit {} delay {}us",
            netem_limit(
                state.bandwidth.unwrap_or(UNCAPPED),
                state.latency + state.jitter
            ),
            state.latency.as_micros()
        ));
        if !state.jitter.is_zero() {
            script.push_str(&format!(" {}us", state.jitter.as_micros()));
        }
    }
    script
}

/// The htb class's rate when the link has no cap (10gbit), in bytes per second.
const UNCAPPED: u64 = 10_000_000_000 / 8;

/// How many packets netem may hold. Its default, 1000, tail-drops what a long delay keeps in
/// flight at speed (1000 full-size packets are 1.5 MB: 12 MB/s over 125 ms), a loss the
/// scenario did not ask for and the local backend's proxy never has. Twice the full-size packets
/// in flight at `rate` bytes per second over `longest_delay`, at least 100 000: small packets
/// count as many as full ones, and the endpoints' TCP windows bound what is really queued.
fn netem_limit(rate: u64, longest_delay: std::time::Duration) -> u64 {
    const PACKET: f64 = 1500.0;
    let in_flight = rate as f64 * longest_delay.as_secs_f64() / PACKET;
    // Saturating: a float beyond u64 converts to u64::MAX; netem's limit is a u32.
    ((2.0 * in_flight) as u64).clamp(100_000, u64::from(u32::MAX))
}

/// A hop that goes through a harness proxy on the host because the containers' network cannot
/// do what the scenario asks. Faults act on the proxied connection; one a proxy cannot do is
/// refused saying why this hop is proxied and how to have it in the containers' network.
pub struct ProxiedHop {
    inner: ProxyLink,
    /// Why the hop is proxied.
    why: String,
    /// How to get the containers' network instead.
    hint: String,
}

impl ProxiedHop {
    /// `inner` stands for the hop because of `why`; `hint` says how to do without it.
    pub fn new(inner: ProxyLink, why: &str, hint: &str) -> ProxiedHop {
        ProxiedHop {
            inner,
            why: why.into(),
            hint: hint.into(),
        }
    }
}

#[async_trait]
impl LinkControl for ProxiedHop {
    fn hop(&self) -> Hop {
        self.inner.hop()
    }
    fn endpoint(&self) -> Option<Endpoint> {
        self.inner.endpoint()
    }
    fn check(&self, state: &LinkState) -> Result<()> {
        // The local backend's refusal would send the user to the docker backend: this is it.
        if state.loss > 0.0 {
            let hop = self.inner.hop();
            return Err(Error::environment(format!(
                "packet loss on {hop} needs a packet network, but {hop} goes through a harness TCP proxy on the host here, as {}; a TCP stream never loses bytes",
                self.why
            ))
            .with_hint(self.hint.clone()));
        }
        self.inner.check(state)
    }
    async fn apply(&self, state: &LinkState) -> Result<()> {
        self.inner.apply(state).await
    }
    async fn reassert(&self, state: &LinkState) -> Result<()> {
        self.inner.reassert(state).await
    }
    async fn mechanism(&self) -> String {
        self.inner.mechanism().await
    }
    fn in_process(&self) -> bool {
        self.inner.in_process()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_holds_what_a_long_delay_keeps_in_flight() {
        let ms = std::time::Duration::from_millis;
        let slow = LinkState {
            latency: ms(400),
            jitter: ms(100),
            ..Default::default()
        };
        // 10 Gbit/s over 500 ms (latency + jitter): 625 MB, 416 666 full-size packets.
        assert_eq!(
            shaping_script(&slow, "10.0.0.3"),
            "tc qdisc add dev eth0 root handle 1: htb && \
             tc class add dev eth0 parent 1: classid 1:20 htb rate 10gbit quantum 60000 && \
             tc filter add dev eth0 protocol ip parent 1: prio 1 u32 match ip dst 10.0.0.3/32 flowid 1:20 && \
             tc qdisc add dev eth0 parent 1:20 handle 20: netem limit 833333 delay 400000us 100000us"
        );
        let capped = LinkState {
            bandwidth: Some(32 * 1024),
            latency: ms(500),
            ..Default::default()
        };
        let script = shaping_script(&capped, "10.0.0.3");
        assert!(script.contains(" htb rate 262144bit "), "{script}");
        assert!(
            script.ends_with(" netem limit 100000 delay 500000us"),
            "{script}"
        );
        let cap_only = LinkState {
            bandwidth: Some(32 * 1024),
            ..Default::default()
        };
        assert!(
            !shaping_script(&cap_only, "10.0.0.3").contains("netem"),
            "a cap alone needs no netem"
        );
        assert_eq!(netem_limit(u64::MAX, ms(10_000_000)), u64::from(u32::MAX));
    }

    #[tokio::test]
    async fn a_proxied_hop_refuses_loss_saying_why_it_is_proxied_and_does_the_rest() {
        let upstream = Endpoint {
            host: "127.0.0.1".into(),
            port: 9,
        };
        let proxy = ProxyLink::start(Hop::BC, upstream, 1).await.unwrap();
        let hop = ProxiedHop::new(proxy, "the kernel has no netem", "use a kernel with netem");
        let lossy = LinkState {
            loss: 0.05,
            ..Default::default()
        };
        let e = hop.check(&lossy).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("packet loss on b-c"), "{msg}");
        assert!(msg.contains("the kernel has no netem"), "{msg}");
        assert_eq!(e.hint(), Some("use a kernel with netem"));
        assert_eq!(e.exit_code(), 2);
        let cut = LinkState {
            mode: LinkMode::Blackhole,
            ..Default::default()
        };
        assert!(hop.check(&cut).is_ok());
        assert!(hop.in_process() && hop.endpoint().is_some());
    }
}
