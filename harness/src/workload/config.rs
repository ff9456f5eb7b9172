//! What a workload run is asked to do, and where its writes go.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::table::BuiltinTable;
use crate::error::{Error, Result};
use crate::node::ConnInfo;

/// Relative weights of inserts, updates and deletes. An update or delete drawn while a
/// connection owns no live row of the chosen table becomes an insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mix {
    /// Weight of inserts.
    pub insert: u32,
    /// Weight of updates.
    pub update: u32,
    /// Weight of deletes.
    pub delete: u32,
}

impl Default for Mix {
    /// More inserts than deletes, so the tables grow slowly while most writes are updates.
    fn default() -> Self {
        Mix {
            insert: 50,
            update: 35,
            delete: 15,
        }
    }
}

impl Mix {
    pub(crate) fn total(&self) -> u32 {
        self.insert
            .saturating_add(self.update)
            .saturating_add(self.delete)
    }
}

/// A workload run's settings. Everything a connection attempts follows from these and from
/// that connection's own outcomes.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Concurrent connections; each owns its keys, so they never wait on each other's locks.
    pub connections: u32,
    /// Total operations per second across connections; None runs flat out.
    pub rate: Option<f64>,
    /// How long to run (operations in flight at the end still complete).
    pub duration: Duration,
    /// Stop after this many attempted operations in total (split evenly across connections),
    /// whatever the duration.
    pub max_ops: Option<u64>,
    /// Tables written.
    pub tables: Vec<BuiltinTable>,
    /// Insert/update/delete weights.
    pub mix: Mix,
    /// Database holding the `rehearse` schema.
    pub database: String,
    /// Rows per table written by [`seed_initial`](super::seed_initial) before the run; the
    /// connections adopt them (seeded row `k` goes to connection `(k - 1) mod connections`) and
    /// update or delete them like their own. 0 when nothing was seeded.
    pub seeded_rows: u64,
    /// An operation without an answer after this long counts as unknown and its connection is
    /// dropped.
    pub op_timeout: Duration,
    /// How long each connection keeps trying to reach the target before the workload starts.
    /// Once it runs, a connection that loses its server keeps trying until the workload ends.
    pub reconnect_timeout: Duration,
    /// The instant the ledger's times (`sent_us`, `done_us`) count from. None: the start of the
    /// run, once the connections are open. A rehearsal passes the zero of its own timeline, so
    /// ledger times line up with fault and sample times.
    pub epoch: Option<std::time::Instant>,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            seed: 1,
            connections: 4,
            rate: None,
            duration: Duration::from_secs(10),
            max_ops: None,
            tables: BuiltinTable::ALL.to_vec(),
            mix: Mix::default(),
            database: "app".into(),
            seeded_rows: 0,
            op_timeout: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(60),
            epoch: None,
        }
    }
}

impl WorkloadConfig {
    /// Reject settings that cannot run.
    ///
    /// # Errors
    /// Usage error naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.connections == 0 {
            return Err(Error::usage("workload: connections must be at least 1"));
        }
        if self.tables.is_empty() {
            return Err(Error::usage("workload: no tables to write"));
        }
        if self.mix.total() == 0 || self.mix.insert == 0 {
            return Err(Error::usage(
                "workload: the mix needs a non-zero insert weight (updates and deletes need rows)",
            ));
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(Error::usage(format!(
                "workload: rate must be a positive number of operations per second, not {r}"
            )));
        }
        if self.seeded_rows >= 1 << 32 {
            return Err(Error::usage(
                "workload: at most 2^32 - 1 seeded rows per table",
            ));
        }
        Ok(())
    }

    /// Attempts allowed to connection `conn` (None: no limit).
    pub(crate) fn ops_for(&self, conn: u32) -> Option<u64> {
        let n = self.connections as u64;
        self.max_ops
            .map(|m| m / n + u64::from((conn as u64) < m % n))
    }
}

/// Where the writes go. Sent through a watch channel so a fault can re-point the workload (A
/// killed, B promoted): connections move to the new target before their next operation.
#[derive(Debug, Clone)]
pub struct Target {
    /// Node name recorded in the ledger ("a", "b").
    pub node: String,
    /// How to reach it (the database is taken from the config).
    pub conn: ConnInfo,
}

/// Live counters a caller can read during a run (progress bars, waits in tests).
#[derive(Debug, Default)]
pub struct Progress {
    ok: AtomicU64,
    failed: AtomicU64,
    unknown: AtomicU64,
}

impl Progress {
    /// Acknowledged operations so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Failed operations so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Operations with an unknown outcome so far.
    pub fn unknown(&self) -> u64 {
        self.unknown.load(Ordering::Relaxed)
    }

    /// All finished operations.
    pub fn total(&self) -> u64 {
        self.ok() + self.failed() + self.unknown()
    }

    pub(crate) fn count(&self, outcome: super::Outcome) {
        let c = match outcome {
            super::Outcome::Ok => &self.ok,
            super::Outcome::Failed => &self.failed,
            super::Outcome::Unknown => &self.unknown,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_ops_split_evenly() {
        let cfg = WorkloadConfig {
            connections: 3,
            max_ops: Some(10),
            ..Default::default()
        };
        let parts: Vec<u64> = (0..3).map(|c| cfg.ops_for(c).unwrap()).collect();
        assert_eq!(parts, vec![4, 3, 3]);
        assert!(WorkloadConfig::default().ops_for(0).is_none());
    }

    #[test]
    fn rejects_unrunnable_settings() {
        assert!(WorkloadConfig::default().validate().is_ok());
        let bad = [
            WorkloadConfig {
                connections: 0,
                ..Default::default()
            },
            WorkloadConfig {
                tables: vec![],
                ..Default::default()
            },
            WorkloadConfig {
                rate: Some(0.0),
                ..Default::default()
            },
            WorkloadConfig {
                mix: Mix {
                    insert: 0,
                    update: 1,
                    delete: 1,
                },
                ..Default::default()
            },
        ];
        for cfg in bad {
            assert_eq!(cfg.validate().unwrap_err().kind(), crate::ErrorKind::Usage);
        }
    }
}
