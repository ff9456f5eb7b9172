//! End-to-end lag: a heartbeat row written on the primary every N ms and read on C.
//!
//! The writer records, on the harness's own clock, when each heartbeat committed. The lag at
//! time t is the age of the oldest committed heartbeat C does not show yet (zero when C shows
//! the latest). Resolution is the heartbeat interval. DMS writes its own heartbeat on the
//! source, which B (read-only) cannot accept; this one is written on A and travels the whole
//! chain.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::chain::HARNESS_SCHEMA;
use crate::node::Node;

/// Heartbeats that committed, in order: (seq, ms since the run clock's start).
#[derive(Debug, Default)]
pub struct HeartbeatLog {
    committed: Mutex<Vec<(u64, u64)>>,
}

impl HeartbeatLog {
    /// Record a committed heartbeat.
    pub fn push(&self, seq: u64, at_ms: u64) {
        self.committed
            .lock()
            .expect("heartbeat log")
            .push((seq, at_ms));
    }

    /// End-to-end lag in seconds at `now_ms` when C shows heartbeat `seen_seq`.
    pub fn lag_at(&self, seen_seq: u64, now_ms: u64) -> f64 {
        let log = self.committed.lock().expect("heartbeat log");
        let i = log.partition_point(|(s, _)| *s <= seen_seq);
        match log.get(i) {
            Some((_, at)) if *at <= now_ms => (now_ms - at) as f64 / 1000.0,
            _ => 0.0,
        }
    }

    /// Mean time between consecutive committed heartbeats: the resolution the end-to-end lag
    /// actually had.
    pub fn mean_gap_ms(&self) -> f64 {
        let log = self.committed.lock().expect("heartbeat log");
        match (log.first(), log.last()) {
            (Some(f), Some(l)) if log.len() > 1 => (l.1 - f.1) as f64 / (log.len() - 1) as f64,
            _ => 0.0,
        }
    }

    /// Number of heartbeats committed.
    pub fn len(&self) -> usize {
        self.committed.lock().expect("heartbeat log").len()
    }

    /// True when nothing committed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes heartbeats on whichever node is the primary until dropped.
pub struct Heartbeat {
    task: JoinHandle<()>,
    log: Arc<HeartbeatLog>,
}

impl Heartbeat {
    /// Start writing every `every` into `db` on the node `primary` currently names (it changes
    /// after a promotion). `clock` is the run's time origin.
    pub fn start(
        primary: watch::Receiver<Node>,
        db: &str,
        every: Duration,
        clock: Instant,
    ) -> Heartbeat {
        let log = Arc::new(HeartbeatLog::default());
        let l2 = log.clone();
        let db = db.to_string();
        let task = tokio::spawn(async move {
            let sql = format!(
                "INSERT INTO {HARNESS_SCHEMA}.heartbeat (id, seq, ts) VALUES (1, $1, clock_timestamp()) \
                 ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, ts = EXCLUDED.ts"
            );
            let mut seq = 0i64;
            let mut client: Option<(String, tokio_postgres::Client)> = None;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let node = primary.borrow().clone();
                if client
                    .as_ref()
                    .is_none_or(|(n, c)| n != node.name() || c.is_closed())
                {
                    client = match tokio::time::timeout(every * 10, node.connect(&db)).await {
                        Ok(Ok(c)) => Some((node.name().to_string(), c)),
                        _ => None,
                    };
                }
                let Some((_, c)) = &client else { continue };
                seq += 1;
                // A heartbeat whose commit is not acknowledged within a few intervals is
                // abandoned (not logged): its outcome is unknown and it must not skew the lag.
                match tokio::time::timeout(every * 20, c.execute(sql.as_str(), &[&seq])).await {
                    Ok(Ok(_)) => l2.push(seq as u64, clock.elapsed().as_millis() as u64),
                    _ => client = None,
                }
            }
        });
        Heartbeat { task, log }
    }

    /// The log of committed heartbeats.
    pub fn log(&self) -> Arc<HeartbeatLog> {
        self.log.clone()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_oldest_missing_heartbeat() {
        let log = HeartbeatLog::default();
        for (s, t) in [(1, 100), (2, 200), (3, 300)] {
            log.push(s, t);
        }
        assert_eq!(log.lag_at(3, 350), 0.0);
        assert_eq!(log.lag_at(1, 350), 0.15);
        assert_eq!(log.lag_at(0, 1100), 1.0);
    }
}
