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

/// One end of a hop as the engine sees it now.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// Not running (or gone): its network namespace went with it, and the one it boots with
    /// holds no rules.
    Down,
    /// Running since `started` (a restart gives it a fresh network namespace), at `ip` on the
    /// run network when it has an address there; `frozen` when it is paused and nothing can
    /// run commands in its namespace meanwhile (no helper image to join it).
    Up {
        started: String,
        ip: Option<String>,
        frozen: bool,
    },
}

impl End {
    /// How the engine sees `container` on `network`; `reach_paused` says whether commands can
    /// reach a paused container's namespace.
    ///
    /// # Errors
    /// Environment error when the engine cannot say (a container that no longer exists is
    /// Down).
    async fn of(
        docker: &Docker,
        container: &str,
        network: &str,
        reach_paused: bool,
    ) -> Result<End> {
        let c = match docker.inspect_container(container, None).await {
            Ok(c) => c,
            Err(e) if super::already_gone(&e) => return Ok(End::Down),
            Err(e) => {
                return Err(Error::environment(format!(
                    "cannot inspect container {container}: {e}"
                )));
            }
        };
        let state = c.state.unwrap_or_default();
        if !state.running.unwrap_or(false) {
            return Ok(End::Down);
        }
        let ip = c
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|n| n.get(network).and_then(|e| e.ip_address.clone()))
            .filter(|ip| !ip.is_empty());
        Ok(End::Up {
            started: state.started_at.unwrap_or_default(),
            ip,
            frozen: state.paused.unwrap_or(false) && !reach_paused,
        })
    }

    fn ip(&self) -> Option<&str> {
        match self {
            End::Up { ip, .. } => ip.as_deref(),
            End::Down => None,
        }
    }
}

/// What one side's network namespace holds: `rules`, set in the container started at
/// `started` (None: no namespace, so none), naming the other end at `peer` (None: it had no
/// address, so only the old rules were cleared).
#[derive(Debug, Clone, PartialEq, Default)]
struct Setting<T> {
    started: Option<String>,
    peer: Option<String>,
    rules: T,
}

/// tc's part of a link state: latency, jitter, bandwidth.
type Shaping = (std::time::Duration, std::time::Duration, Option<u64>);
/// iptables' part: connectivity and loss.
type Filter = (LinkMode, f64);

fn shaping(s: &LinkState) -> Shaping {
    (s.latency, s.jitter, s.bandwidth)
}

fn filter(s: &LinkState) -> Filter {
    (s.mode, s.loss)
}

/// What to do on one side of a hop.
#[derive(Debug, PartialEq)]
enum Step<T> {
    /// Nothing to run; the side holds this now (None: unknown, set it next time).
    Keep(Option<Setting<T>>),
    /// Set the side to this.
    Set(Setting<T>),
}

/// What one side needs so that it holds `want`, given what was last set there (`last`, None
/// when unknown), its container (`end`) and the other end's address (`peer`).
fn step<T: Clone + PartialEq + Default>(
    last: Option<&Setting<T>>,
    end: &End,
    peer: Option<&str>,
    want: &T,
) -> Step<T> {
    let End::Up {
        started, frozen, ..
    } = end
    else {
        // Nothing to run commands in, and nothing to undo: the container boots with a fresh
        // namespace, and the next change (the heal that boots it puts the hop's faults back)
        // sets what is wanted then.
        return Step::Keep(Some(Setting::default()));
    };
    let now = Setting {
        started: Some(started.clone()),
        peer: peer.map(str::to_string),
        rules: want.clone(),
    };
    let none = T::default();
    match last {
        Some(l) if *l == now => Step::Keep(Some(now)),
        // No rules then and none wanted: a fresh namespace holds none either.
        Some(l) if l.rules == none && *want == none => Step::Keep(Some(now)),
        // Until it resumes: its pause's heal puts the hop's state in force then, this change
        // included. Meanwhile the container exchanges nothing anyway.
        _ if *frozen => Step::Keep(None),
        _ => Step::Set(now),
    }
}

/// Whether iptables failed to flush only because there is nothing to flush: the chain or its
/// table does not exist. Not when iptables itself is missing (the shell's "not found", 127).
fn no_chain(code: i64, stderr: &str) -> bool {
    code != 127
        && (stderr.contains("No chain/target/match by that name")
            || stderr.contains("Table does not exist"))
}

/// What both sides of a hop hold.
#[derive(Debug, Default)]
struct Applied {
    /// tc in the upstream container.
    shaping: Option<Setting<Shaping>>,
    /// iptables in the downstream container.
    filter: Option<Setting<Filter>>,
}

impl Applied {
    fn fresh() -> Applied {
        Applied {
            shaping: Some(Setting::default()),
            filter: Some(Setting::default()),
        }
    }
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
    /// What each side holds now: only a side that changes is touched (each command may cost a
    /// helper container).
    applied: tokio::sync::Mutex<Applied>,
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
            applied: tokio::sync::Mutex::new(Applied::fresh()),
        }
    }

    async fn end(&self, container: &str) -> Result<End> {
        let reach_paused = self.net.reaches_paused();
        End::of(&self.docker, container, &self.network, reach_paused).await
    }

    fn note_deferred<T>(&self, kept: &Option<Setting<T>>, container: &str) {
        if kept.is_none() {
            tracing::info!(
                "{}: {container} is paused and no helper container can reach its network namespace: the change is made when it resumes",
                self.hop
            );
        }
    }

    async fn root(&self, container: &str, script: String) -> Result<exec::ExecOutput> {
        let why = format!("a link fault on {}", self.hop);
        self.net.run(container, &script, &why).await
    }

    /// Set the downstream side's iptables rules against the upstream container at `up` (None:
    /// it has no address, being down: only the old rules go, and the rules are set again
    /// when it is back).
    async fn set_filter(&self, state: &LinkState, up: Option<&str>) -> Result<()> {
        // Only the harness touches these chains in a container's own network namespace.
        let flush = "iptables -F INPUT && iptables -F OUTPUT".to_string();
        let mode = state.mode;
        let healed = mode == LinkMode::Up && state.loss <= 0.0;
        let up = match up {
            Some(up) if !healed => up,
            _ => {
                let out = self.root(&self.downstream, flush).await?;
                return if out.code == 0 || no_chain(out.code, &out.stderr_text()) {
                    Ok(())
                } else {
                    Err(Error::environment(format!(
                        "{} in {}: clearing the iptables rules failed: {}",
                        self.hop,
                        self.downstream,
                        out.stderr_text()
                    )))
                };
            }
        };
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

    /// Set the upstream side's tc shaping of traffic to the downstream container at `down`
    /// (None: it has no address, being down: only the old shaping goes, and it is set again
    /// when it is back).
    async fn set_shaping(&self, state: &LinkState, down: Option<&str>) -> Result<()> {
        let _ = self
            .root(
                &self.upstream,
                "tc qdisc del dev eth0 root 2>/dev/null; true".into(),
            )
            .await?;
        let Some(down) = down.filter(|_| !state.latency.is_zero() || state.bandwidth.is_some())
        else {
            return Ok(());
        };
        let script = shaping_script(state, down);
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
        let (up, down) = (
            self.end(&self.upstream).await?,
            self.end(&self.downstream).await?,
        );
        // Each side on its own: a container that is down at one end must not keep the rules
        // of the other from changing.
        let shaped = match step(applied.shaping.as_ref(), &up, down.ip(), &shaping(state)) {
            Step::Keep(s) => {
                self.note_deferred(&s, &self.upstream);
                applied.shaping = s;
                Ok(())
            }
            Step::Set(s) => {
                let res = self.set_shaping(state, s.peer.as_deref()).await;
                applied.shaping = res.is_ok().then_some(s);
                res
            }
        };
        let filtered = match step(applied.filter.as_ref(), &down, up.ip(), &filter(state)) {
            Step::Keep(s) => {
                self.note_deferred(&s, &self.downstream);
                applied.filter = s;
                Ok(())
            }
            Step::Set(s) => {
                let res = self.set_filter(state, s.peer.as_deref()).await;
                applied.filter = res.is_ok().then_some(s);
                res
            }
        };
        match (shaped, filtered) {
            (Err(a), Err(b)) => Err(a.also(&b)),
            (a, b) => a.and(b),
        }
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

    fn up(started: &str) -> End {
        End::Up {
            started: started.into(),
            ip: Some("10.0.0.2".into()),
            frozen: false,
        }
    }

    const CUT: Filter = (LinkMode::Blackhole, 0.0);

    #[test]
    fn a_side_is_set_again_only_when_its_container_the_peer_or_the_rules_changed() {
        let fresh = Setting::default();
        let none = Filter::default();
        assert!(matches!(
            step(Some(&fresh), &up("t1"), Some("10.0.0.3"), &none),
            Step::Keep(Some(_))
        ));
        let Step::Set(cut) = step(Some(&fresh), &up("t1"), Some("10.0.0.3"), &CUT) else {
            panic!("a partition must be set");
        };
        assert_eq!(cut.peer.as_deref(), Some("10.0.0.3"));
        assert_eq!(
            step(Some(&cut), &up("t1"), Some("10.0.0.3"), &CUT),
            Step::Keep(Some(cut.clone()))
        );
        // Restarted: a fresh namespace without the rules.
        assert!(matches!(
            step(Some(&cut), &up("t2"), Some("10.0.0.3"), &CUT),
            Step::Set(_)
        ));
        // The peer came back at another address, which the rules name.
        assert!(matches!(
            step(Some(&cut), &up("t1"), Some("10.0.0.9"), &CUT),
            Step::Set(_)
        ));
        // The peer has no address (it is down): set without it, and again once it has one.
        let Step::Set(waiting) = step(Some(&cut), &up("t1"), None, &CUT) else {
            panic!("the old rules must go");
        };
        assert!(matches!(
            step(Some(&waiting), &up("t1"), Some("10.0.0.3"), &CUT),
            Step::Set(_)
        ));
        // Unknown (a command failed): set, even to no rules.
        assert!(matches!(
            step(None, &up("t1"), Some("10.0.0.3"), &none),
            Step::Set(_)
        ));
    }

    #[test]
    fn a_paused_container_nothing_can_reach_gets_the_change_when_it_resumes() {
        let cut = Setting {
            started: Some("t1".into()),
            peer: Some("10.0.0.3".into()),
            rules: CUT,
        };
        let frozen = End::Up {
            started: "t1".into(),
            ip: Some("10.0.0.2".into()),
            frozen: true,
        };
        // Healed while paused: nothing runs now, and the side is unknown from then on ...
        assert_eq!(
            step(Some(&cut), &frozen, Some("10.0.0.3"), &Filter::default()),
            Step::Keep(None)
        );
        // ... so that the heal is done once it resumes, though nothing is wanted any more.
        assert!(matches!(
            step(None, &up("t1"), Some("10.0.0.3"), &Filter::default()),
            Step::Set(_)
        ));
        // Nothing to change: nothing deferred either.
        assert_eq!(
            step(Some(&cut), &frozen, Some("10.0.0.3"), &CUT),
            Step::Keep(Some(cut.clone()))
        );
    }

    #[test]
    fn only_a_missing_chain_or_table_counts_as_nothing_to_flush() {
        assert!(no_chain(1, "iptables: No chain/target/match by that name."));
        assert!(no_chain(
            3,
            "iptables: Table does not exist (do you need to insmod?)"
        ));
        assert!(!no_chain(127, "sh: 1: iptables: not found"));
        assert!(!no_chain(
            4,
            "iptables v1.8.11 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)"
        ));
    }

    #[test]
    fn a_container_that_is_down_needs_nothing_and_gets_the_rules_in_force_when_back() {
        let cut = Setting {
            started: Some("t1".into()),
            peer: Some("10.0.0.3".into()),
            rules: CUT,
        };
        // Injected or healed while it is down: no namespace to run anything in.
        for want in [CUT, Filter::default()] {
            assert_eq!(
                step(Some(&cut), &End::Down, Some("10.0.0.3"), &want),
                Step::Keep(Some(Setting::default()))
            );
        }
        let gone = Setting::default();
        // Booted again: what is in force then is set; nothing when nothing is.
        assert!(matches!(
            step(Some(&gone), &up("t2"), Some("10.0.0.3"), &CUT),
            Step::Set(_)
        ));
        assert!(matches!(
            step(Some(&gone), &up("t2"), Some("10.0.0.3"), &Filter::default()),
            Step::Keep(Some(_))
        ));
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
