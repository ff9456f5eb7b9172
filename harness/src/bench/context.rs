//! What a benchmark's figures depend on besides the code measured: when and with which build
//! they were taken, on which server version, machine and settings. A figure without them
//! cannot be compared with the next one.

use crate::error::{Error, Result};
use crate::node::Node;

/// The context every benchmark result carries.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchContext {
    /// When the benchmark ran (UTC, RFC 3339).
    pub timestamp: String,
    /// pgrehearse's version. (No git revision: it would take a build script.)
    pub pgrehearse_version: String,
    /// PostgreSQL's version, as A reports it (`server_version`).
    pub postgres_version: String,
    /// The machine the harness (and, with the local backend, the servers) ran on.
    pub machine: Machine,
    /// A's settings that weigh most on the figures, as `SHOW` prints them.
    pub a_settings: KeySettings,
}

/// The machine's size.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Machine {
    /// Logical CPUs online.
    pub logical_cpus: Option<u64>,
    /// `MemTotal` of /proc/meminfo, in bytes.
    pub memory_total_bytes: Option<u64>,
    /// Kernel name and release ("Linux 6.1.0-18-amd64").
    pub kernel: Option<String>,
}

/// A's settings, as `SHOW` prints them ("128MB", "on").
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeySettings {
    /// `shared_buffers`.
    pub shared_buffers: String,
    /// `synchronous_commit`.
    pub synchronous_commit: String,
    /// `wal_level`.
    pub wal_level: String,
    /// `max_wal_size`.
    pub max_wal_size: String,
    /// `fsync`.
    pub fsync: String,
}

impl BenchContext {
    /// Read the context now, with `a` the chain's primary.
    ///
    /// # Errors
    /// Database error when A cannot be read.
    pub async fn collect(a: &Node) -> Result<BenchContext> {
        // current_setting() returns exactly what SHOW prints, in one round trip.
        let row = a
            .connect("postgres")
            .await?
            .query_one(
                "SELECT current_setting('server_version'), current_setting('shared_buffers'), \
                 current_setting('synchronous_commit'), current_setting('wal_level'), \
                 current_setting('max_wal_size'), current_setting('fsync')",
                &[],
            )
            .await
            .map_err(|e| {
                Error::from(e)
                    .context("reading settings for the benchmark's context")
                    .with_node(a.name())
            })?;
        let get = |i: usize| -> Result<String> {
            row.try_get(i)
                .map_err(|e| Error::from(e).with_node(a.name()))
        };
        Ok(BenchContext {
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            pgrehearse_version: env!("CARGO_PKG_VERSION").to_string(),
            postgres_version: get(0)?,
            machine: Machine::here(),
            a_settings: KeySettings {
                shared_buffers: get(1)?,
                synchronous_commit: get(2)?,
                wal_level: get(3)?,
                max_wal_size: get(4)?,
                fsync: get(5)?,
            },
        })
    }
}

#[cfg(test)]
impl BenchContext {
    /// A fixed context for tests of the summaries.
    pub(super) fn for_tests() -> BenchContext {
        BenchContext {
            timestamp: "2026-01-01T00:00:00Z".into(),
            pgrehearse_version: "0.0.0".into(),
            postgres_version: "17.0".into(),
            machine: Machine {
                logical_cpus: Some(2),
                memory_total_bytes: Some(1 << 30),
                kernel: Some("Linux 6.1.0".into()),
            },
            a_settings: KeySettings {
                shared_buffers: "128MB".into(),
                synchronous_commit: "on".into(),
                wal_level: "logical".into(),
                max_wal_size: "1GB".into(),
                fsync: "on".into(),
            },
        }
    }
}

impl Machine {
    /// This machine; what cannot be read is None.
    pub fn here() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let kernel = match (
            read("/proc/sys/kernel/ostype"),
            read("/proc/sys/kernel/osrelease"),
        ) {
            (Some(t), Some(r)) => Some(format!("{} {}", t.trim(), r.trim())),
            (None, Some(r)) => Some(r.trim().to_string()),
            _ => None,
        };
        Machine {
            logical_cpus: nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
                .ok()
                .flatten()
                .and_then(|n| u64::try_from(n).ok()),
            memory_total_bytes: read("/proc/meminfo").as_deref().and_then(mem_total_bytes),
            kernel,
        }
    }
}

/// `MemTotal` of /proc/meminfo ("MemTotal:       24570952 kB"), in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let rest = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let mut parts = rest.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_total() {
        let meminfo = "MemTotal:       24570952 kB\nMemFree:        21000000 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(24_570_952 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: 12 MB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: 99999999999999999999 kB\n"), None);
    }

    #[test]
    fn this_machine_has_a_size() {
        let m = Machine::here();
        assert!(m.logical_cpus.is_some_and(|n| n >= 1), "{m:?}");
        assert!(m.memory_total_bytes.is_some_and(|b| b > 0), "{m:?}");
        assert!(m.kernel.is_some(), "{m:?}");
    }
}
