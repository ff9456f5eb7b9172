//! Host ports picked for servers (local backend) and published container ports (docker
//! backend). A node keeps its port across a kill or stop and start, so the port is taken below
//! the kernel's ephemeral range: there, no outgoing connection can be given it while its node
//! is down, and the restart cannot fail with "port is already allocated".

use std::ops::Range;

use crate::error::{Error, Result};

/// The lowest port picked: below are the registered ports most services use.
const LOWEST: u16 = 20000;

/// Kubernetes' default NodePort range: kube-proxy may listen on any of them.
const NODE_PORTS: Range<u16> = 30000..32768;

/// Well-known services above [`LOWEST`]: MongoDB, its shards and config servers, CockroachDB,
/// RethinkDB, Minecraft, Gerrit's SSH.
const WELL_KNOWN: [u16; 7] = [27017, 27018, 27019, 26257, 28015, 25565, 29418];

/// How many random ports are tried before falling back to one the kernel picks.
const DRAWS: usize = 64;

const RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// A free TCP port on 127.0.0.1, not in `avoid`: a random one between [`LOWEST`] and the start of
/// the ephemeral range, checked free by binding it; where that range is empty (or unknown), or
/// every draw is taken, one the kernel picks from the ephemeral range.
///
/// # Errors
/// Environment error when no port can be bound at all.
pub(crate) fn free_port(avoid: &[u16]) -> Result<u16> {
    let start = std::fs::read_to_string(RANGE_FILE)
        .ok()
        .and_then(|t| ephemeral_start(&t));
    if let Some(range) = start.and_then(candidates) {
        for _ in 0..DRAWS {
            let p = rand::random_range(range.clone());
            if acceptable(p, avoid) && bindable(p) {
                return Ok(p);
            }
        }
    }
    kernel_port(avoid)
}

/// The first port of the ephemeral range, from `ip_local_port_range`'s text ("32768\t60999").
fn ephemeral_start(text: &str) -> Option<u16> {
    text.split_whitespace().next()?.parse().ok()
}

/// Where to draw from when the ephemeral range starts at `start` (None: nowhere).
fn candidates(start: u16) -> Option<Range<u16>> {
    (start > LOWEST).then_some(LOWEST..start)
}

fn acceptable(p: u16, avoid: &[u16]) -> bool {
    !avoid.contains(&p) && !WELL_KNOWN.contains(&p) && !NODE_PORTS.contains(&p)
}

/// Whether nothing listens on (or holds) `port` on 127.0.0.1 now: another run's node, or any
/// other program.
fn bindable(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free port the kernel picks (from the ephemeral range), not in `avoid`.
fn kernel_port(avoid: &[u16]) -> Result<u16> {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| {
            Error::environment("cannot find a free port on 127.0.0.1").with_source(e)
        })?;
        let p = l
            .local_addr()
            .map_err(|e| Error::environment("cannot read local port").with_source(e))?
            .port();
        if !avoid.contains(&p) {
            return Ok(p);
        }
    }
    Err(Error::environment("cannot find a free port on 127.0.0.1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_drawn_below_the_ephemeral_range_and_clear_of_known_services() {
        assert_eq!(ephemeral_start("32768\t60999\n"), Some(32768));
        assert_eq!(ephemeral_start("1024 65535"), Some(1024));
        assert_eq!(ephemeral_start(""), None);
        assert_eq!(candidates(32768), Some(LOWEST..32768));
        // An ephemeral range that starts low leaves nothing below it: the kernel picks.
        assert_eq!(candidates(LOWEST), None);
        assert_eq!(candidates(1024), None);
        for p in [27017, 30000, 32767, 25000] {
            assert!(!acceptable(p, &[25000]), "{p}");
        }
        assert!(acceptable(25001, &[25000]));
    }

    #[test]
    fn a_picked_port_is_free_outside_the_ephemeral_range_and_not_one_to_avoid() {
        let start = std::fs::read_to_string(RANGE_FILE)
            .ok()
            .and_then(|t| ephemeral_start(&t))
            .unwrap_or(0);
        let avoid: Vec<u16> = (0..8).map(|_| free_port(&[]).unwrap()).collect();
        let mut taken_since = Vec::new();
        for _ in 0..20 {
            let p = free_port(&avoid).unwrap();
            assert!(!avoid.contains(&p), "{p}");
            if candidates(start).is_some() {
                assert!((LOWEST..start).contains(&p) && acceptable(p, &avoid), "{p}");
            }
            // Free: it can be listened on — unless a test running beside this one took it in
            // the moment since (the race the harness retries a start for), which is rare.
            if !bindable(p) {
                taken_since.push(p);
            }
        }
        assert!(
            taken_since.len() <= 2,
            "ports not free right after the pick: {taken_since:?}"
        );
    }
}
