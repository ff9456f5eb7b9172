//! What a link does (latency, cap, connectivity), how faults in force together add up, and
//! the proxy's traffic counters.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// What the link does right now.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct LinkState {
    /// Extra one-way delay on the data direction.
    pub latency: Duration,
    /// Spread of the delay: each chunk is delayed uniformly in [latency − jitter, latency +
    /// jitter] (clamped at 0), as tc netem's `delay latency jitter` does; order preserved as
    /// TCP would.
    pub jitter: Duration,
    /// Bytes per second on the data direction; None = unlimited.
    pub bandwidth: Option<u64>,
    /// Share of packets dropped each way (0.0 to 1.0). Only a packet network can lose packets:
    /// the proxy's TCP streams cannot, so proxies refuse it.
    pub loss: f64,
    /// Connectivity.
    pub mode: LinkMode,
}

impl LinkState {
    /// What several faults in force on one hop add up to: delays add, the tightest bandwidth
    /// cap wins, losses compound, and the worst connectivity wins (down over blackhole).
    pub fn combine<'a>(states: impl IntoIterator<Item = &'a LinkState>) -> LinkState {
        let mut out = LinkState::default();
        let mut kept = 1.0;
        for s in states {
            out.latency += s.latency;
            out.jitter += s.jitter;
            out.bandwidth = match (out.bandwidth, s.bandwidth) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            kept *= 1.0 - s.loss.clamp(0.0, 1.0);
            out.mode = out.mode.max(s.mode);
        }
        out.loss = 1.0 - kept;
        out
    }
}

/// Connectivity of a link.
/// Ordered from harmless to worst, so that combining faults keeps the worst.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    /// Bytes flow.
    #[default]
    Up,
    /// Connections stay open; no bytes pass in either direction (queued until healed).
    Blackhole,
    /// Existing connections are reset; new ones are refused.
    Down,
}

/// Counters for reports.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Bytes forwarded upstream → downstream.
    pub bytes_down: AtomicU64,
    /// Bytes forwarded downstream → upstream.
    pub bytes_up: AtomicU64,
    /// Bytes read from upstream for the data direction; beyond `bytes_down`, what the proxy
    /// holds back (latency, bandwidth cap, blackhole) or dropped with a reset connection.
    pub bytes_down_read: AtomicU64,
    /// Bytes read from downstream for the feedback direction (as `bytes_down_read`).
    pub bytes_up_read: AtomicU64,
}
/// Human description of a link state, for logs and reports.
pub fn describe(s: &LinkState) -> String {
    let mut parts = Vec::new();
    match s.mode {
        LinkMode::Up => {}
        LinkMode::Blackhole => parts.push("blackhole (no bytes pass)".to_string()),
        LinkMode::Down => parts.push("down (connections reset/refused)".to_string()),
    }
    match (s.latency.is_zero(), s.jitter.is_zero()) {
        (true, true) => {}
        (_, true) => parts.push(format!("latency {}", crate::util::fmt_duration(s.latency))),
        (_, false) => parts.push(format!(
            "latency {} ± {}",
            crate::util::fmt_duration(s.latency),
            crate::util::fmt_duration(s.jitter)
        )),
    }
    if let Some(b) = s.bandwidth {
        parts.push(format!("bandwidth {}/s", crate::util::fmt_bytes(b)));
    }
    if s.loss > 0.0 {
        parts.push(format!("loss {}%", s.loss * 100.0));
    }
    if parts.is_empty() {
        "healed (transparent)".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_in_force_together_add_up() {
        let ms = Duration::from_millis;
        let latency = LinkState {
            latency: ms(300),
            jitter: ms(50),
            ..Default::default()
        };
        let cap = |b| LinkState {
            bandwidth: Some(b),
            ..Default::default()
        };
        let loss = |l| LinkState {
            loss: l,
            ..Default::default()
        };
        let partition = LinkState {
            mode: LinkMode::Blackhole,
            ..Default::default()
        };
        let down = LinkState {
            mode: LinkMode::Down,
            ..Default::default()
        };
        assert_eq!(LinkState::combine([]), LinkState::default());
        let all = LinkState::combine([
            &latency,
            &latency,
            &cap(1000),
            &cap(500),
            &loss(0.5),
            &loss(0.5),
            &partition,
        ]);
        assert_eq!(all.latency, ms(600));
        assert_eq!(all.jitter, ms(100));
        assert_eq!(all.bandwidth, Some(500));
        assert!((all.loss - 0.75).abs() < 1e-9, "{}", all.loss);
        assert_eq!(all.mode, LinkMode::Blackhole);
        assert_eq!(LinkState::combine([&down, &partition]).mode, LinkMode::Down);
        // Healing the partition leaves the latency in force.
        assert_eq!(LinkState::combine([&latency]), latency);
    }
}
