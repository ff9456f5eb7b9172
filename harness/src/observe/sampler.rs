//! The sampler: every interval (default 250 ms) a snapshot of A, B and C plus the heartbeat
//! seen on C, appended to `samples.jsonl` in the run directory and kept for the report.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::heartbeat::{HeartbeatLog, HeartbeatRead, read_heartbeat};
use super::snapshot::{HopLag, NoSeconds, NodeProbe, NodeSnapshot, derive_lags};
use crate::error::{Result, io_error};
use crate::node::Node;

/// One sample.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Milliseconds since the run clock's origin.
    pub t_ms: u64,
    /// A, B, C as they answered.
    pub nodes: Vec<NodeSnapshot>,
    /// Per-hop lag; the "a→c" entry carries the heartbeat lag in seconds.
    pub lags: Vec<HopLag>,
    /// Latest heartbeat sequence visible on C.
    pub heartbeat_seq_on_c: Option<u64>,
    /// When C answered with `heartbeat_seq_on_c` (ms, same clock as `t_ms`): C had that
    /// heartbeat by then, which may be a while after `t_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_read_ms: Option<u64>,
}

impl Sample {
    /// Lag of `hop` ("a→b", "b→c", "a→c").
    pub fn lag(&self, hop: &str) -> Option<&HopLag> {
        self.lags.iter().find(|l| l.hop == hop)
    }

    /// Snapshot of node `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSnapshot> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// Samples collected so far (shared with the running task).
pub type Samples = Arc<Mutex<Vec<Sample>>>;

/// A running sampler; stops when dropped or [`Sampler::stop`]ped.
pub struct Sampler {
    task: JoinHandle<()>,
    samples: Samples,
}

/// What the sampler watches.
pub struct SamplerConfig {
    /// A, B, C.
    pub nodes: [Node; 3],
    /// Replicated database (subscriptions and heartbeat live there).
    pub database: String,
    /// The logical slot on B.
    pub logical_slot: String,
    /// Sampling period.
    pub every: Duration,
    /// Run clock origin.
    pub clock: Instant,
    /// Heartbeat commits, for end-to-end lag.
    pub heartbeat: Option<Arc<HeartbeatLog>>,
}

impl Sampler {
    /// Start sampling; every sample is also appended to `out` as one JSON line.
    ///
    /// # Errors
    /// Environment error when `out` cannot be created.
    pub fn start(cfg: SamplerConfig, out: &Path) -> Result<Sampler> {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(out).map_err(|e| io_error("cannot create", out, e))?,
        );
        let samples: Samples = Arc::default();
        let s2 = samples.clone();
        let task = tokio::spawn(async move {
            let [a, b, c] = cfg.nodes;
            let (mut pa, mut pb, mut pc) = (
                NodeProbe::new(a, &cfg.database),
                NodeProbe::new(b, &cfg.database),
                NodeProbe::new(c.clone(), &cfg.database),
            );
            let mut hb_client: Option<tokio_postgres::Client> = None;
            let mut last_seq: Option<u64> = None;
            let clock = cfg.clock;
            let now_ms = move || clock.elapsed().as_millis() as u64;
            // A frozen or partitioned node must not stall the sampler: each probe gets a few
            // periods to answer, then counts as unreachable for this sample.
            let patience = (cfg.every * 4).max(Duration::from_millis(500));
            let mut tick = tokio::time::interval(cfg.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let t_ms = now_ms();
                let hb = async {
                    if hb_client.as_ref().is_none_or(|c| c.is_closed()) {
                        hb_client = c.connect(&cfg.database).await.ok();
                    }
                    let read = read_heartbeat(hb_client.as_ref()?).await.ok()?;
                    // Stamped once C answered: heartbeats issued while the probes ran are ones
                    // C may lack, and t_ms (before the probes) would leave them out.
                    Some((seq_on_c(read)?, now_ms()))
                };
                let (sa, sb, sc, seq) = tokio::join!(
                    bounded(&mut pa, patience),
                    bounded(&mut pb, patience),
                    bounded(&mut pc, patience),
                    tokio::time::timeout(patience, hb)
                );
                let (seq, read_ms) = match seq {
                    Ok(Some((s, at))) => {
                        last_seq = Some(s);
                        (Some(s), at)
                    }
                    Ok(None) => (None, now_ms()),
                    Err(_) => {
                        // C did not answer: drop the stuck session; C cannot be ahead of what
                        // it last showed by much, so the lag is computed from that, as of now
                        // (it grows while C is frozen, as it should).
                        hb_client = None;
                        (None, now_ms())
                    }
                };
                let mut lags = derive_lags(&sa, &sb, &cfg.logical_slot);
                if let Some(e2e) = lags.iter_mut().find(|l| l.hop == "a→c") {
                    // The newest C has shown, even when it did not answer this time.
                    let (seconds, why) = end_to_end(cfg.heartbeat.as_deref(), last_seq, read_ms);
                    e2e.seconds = seconds;
                    e2e.why_no_seconds = why;
                }
                let sample = Sample {
                    t_ms,
                    nodes: vec![sa, sb, sc],
                    lags,
                    heartbeat_seq_on_c: seq,
                    heartbeat_read_ms: seq.map(|_| read_ms),
                };
                if let Ok(line) = serde_json::to_string(&sample) {
                    let _ = writeln!(file, "{line}");
                    let _ = file.flush();
                }
                s2.lock().expect("samples").push(sample);
            }
        });
        Ok(Sampler { task, samples })
    }

    /// The samples so far.
    pub fn samples(&self) -> Samples {
        self.samples.clone()
    }

    /// Stop and return every sample.
    pub fn stop(self) -> Vec<Sample> {
        self.task.abort();
        self.samples.lock().expect("samples").clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// End-to-end lag in seconds when C, read at `read_ms` (run clock), showed heartbeat
/// `seen_seq`, or why there is none: no heartbeat written, C's heartbeat never read, or none
/// issued yet by `read_ms`.
fn end_to_end(
    log: Option<&HeartbeatLog>,
    seen_seq: Option<u64>,
    read_ms: u64,
) -> (Option<f64>, Option<NoSeconds>) {
    match (log, seen_seq) {
        (None, _) => (None, Some(NoSeconds::NoHeartbeat)),
        (Some(_), None) => (None, Some(NoSeconds::Unknown)),
        (Some(log), Some(seq)) => match log.lag_at(seq, read_ms) {
            Some(s) => (Some(s), None),
            None => (None, Some(NoSeconds::NoHeartbeat)),
        },
    }
}

/// The heartbeat sequence C shows: 0 when no heartbeat reached it yet, unknown when it has no
/// heartbeat table.
fn seq_on_c(read: HeartbeatRead) -> Option<u64> {
    match read {
        HeartbeatRead::Row(r) => Some(r.seq),
        HeartbeatRead::NoRow => Some(0),
        HeartbeatRead::NoTable => None,
    }
}

/// One node snapshot, or "unreachable" when it does not answer within `patience` (the probe
/// then reconnects next time).
async fn bounded(p: &mut NodeProbe, patience: Duration) -> NodeSnapshot {
    match tokio::time::timeout(patience, p.take()).await {
        Ok(s) => s,
        Err(_) => {
            p.reset();
            p.unreachable(format!(
                "no answer within {}",
                crate::util::fmt_duration(patience)
            ))
        }
    }
}

/// A channel naming the current primary, shared by the workload, heartbeat and faults.
pub fn primary_channel(a: &Node) -> (watch::Sender<Node>, watch::Receiver<Node>) {
    watch::channel(a.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::HeartbeatRow;

    #[test]
    fn seq_on_c_reads_no_row_as_zero_and_no_table_as_unknown() {
        let row = HeartbeatRow {
            seq: 7,
            written_at_s: 1000.0,
            read_at_s: 1000.5,
        };
        assert_eq!(seq_on_c(HeartbeatRead::Row(row)), Some(7));
        assert_eq!(seq_on_c(HeartbeatRead::NoRow), Some(0));
        assert_eq!(seq_on_c(HeartbeatRead::NoTable), None);
    }

    #[test]
    fn end_to_end_lag_is_taken_when_c_was_read() {
        let log = HeartbeatLog::default();
        log.push(1, 100);
        log.push(2, 300);
        // C read at 400 ms shows seq 1: seq 2 (issued at 300) is missing, 100 ms old. The
        // sample's own time, 250 ms, would have shown no lag at all.
        assert_eq!(log.lag_at(1, 250), Some(0.0));
        assert_eq!(end_to_end(Some(&log), Some(1), 400), (Some(0.1), None));
        assert_eq!(end_to_end(Some(&log), Some(2), 400), (Some(0.0), None));
        // No heartbeat issued by then: not a lag of 0.
        assert_eq!(
            end_to_end(Some(&log), Some(0), 50),
            (None, Some(NoSeconds::NoHeartbeat))
        );
        assert_eq!(
            end_to_end(Some(&log), None, 400),
            (None, Some(NoSeconds::Unknown))
        );
        assert_eq!(
            end_to_end(None, Some(1), 400),
            (None, Some(NoSeconds::NoHeartbeat))
        );
    }
}
