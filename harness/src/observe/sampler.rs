//! The sampler: every interval (default 250 ms) a snapshot of A, B and C plus the heartbeat
//! seen on C, appended to `samples.jsonl` in the run directory and kept for the report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::heartbeat::{HeartbeatLog, HeartbeatRead, read_heartbeat};
use super::snapshot::{HopLag, NoSeconds, NodeProbe, NodeSnapshot, derive_lags, no_answer_within};
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
        let mut file = SampleFile::create(out)?;
        let samples: Samples = Arc::default();
        let s2 = samples.clone();
        let task = tokio::spawn(async move {
            let [a, b, c] = cfg.nodes;
            let clock = cfg.clock;
            let now_ms = move || clock.elapsed().as_millis() as u64;
            let (mut la, mut lb, mut lc) = (
                Lane::node(a, &cfg.database),
                Lane::node(b, &cfg.database),
                Lane::node(c.clone(), &cfg.database),
            );
            let mut lhb = Lane::heartbeat(c, &cfg.database, clock);
            let mut last_seq: Option<u64> = None;
            // A frozen or partitioned node must not stall the sampler: each probe gets a few
            // periods to answer, then counts as unreachable for this sample, and later samples
            // do not wait for it (see Lane).
            let patience = (cfg.every * 4).max(Duration::from_millis(500));
            let mut tick = tokio::time::interval(cfg.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let t_ms = now_ms();
                let (sa, sb, sc, seq) = tokio::join!(
                    la.snapshot(patience),
                    lb.snapshot(patience),
                    lc.snapshot(patience),
                    lhb.next(patience)
                );
                let (seq, read_ms) = match seq {
                    // Stamped once C answered: heartbeats issued while the probes ran are ones
                    // C may lack, and t_ms (before the probes) would leave them out.
                    Ok(Some((s, at))) => {
                        last_seq = Some(s);
                        (Some(s), at)
                    }
                    // C did not answer: C cannot be ahead of what it last showed by much, so
                    // the lag is computed from that, as of now (it grows while C is frozen, as
                    // it should).
                    Ok(None) | Err(_) => (None, now_ms()),
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
                file.append(&sample);
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

/// `samples.jsonl`: one line per sample, each written whole in one call, so that a harness
/// killed between samples leaves no partial line (one killed mid-write may still: readers skip
/// an unparsable last line). The first write error is logged and ends the file; the samples
/// are still kept in memory for the report.
struct SampleFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl SampleFile {
    fn create(path: &Path) -> Result<SampleFile> {
        let file = std::fs::File::create(path).map_err(|e| io_error("cannot create", path, e))?;
        Ok(SampleFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    fn append(&mut self, sample: &Sample) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let written = serde_json::to_string(sample)
            .map_err(std::io::Error::other)
            .and_then(|mut line| {
                line.push('\n');
                file.write_all(line.as_bytes())
            });
        if let Err(e) = written {
            tracing::warn!(
                "cannot write {} ({e}): no more samples are written to it; the report still has them all",
                self.path.display()
            );
            self.file = None;
        }
    }
}

/// A read that may outlast one sample, with the state it needs between samples (a node's
/// sessions). Each read runs as a task of its own, so it makes progress between samples. A
/// read that has not answered within the patience leaves its lane stuck: later samples look at
/// it without waiting, so one frozen node does not slow the sampling of the others, and take
/// its answer when it comes. A read stuck longer than the lane's give-up time is aborted with
/// its sessions and started afresh (a dead connection may never answer).
struct Lane<S, T> {
    state: Option<S>,
    renew: Box<dyn Fn() -> S + Send>,
    read: fn(S) -> BoxFuture<'static, (S, T)>,
    pending: Option<(Instant, JoinHandle<(S, T)>)>,
    stuck: bool,
}

/// How long a stuck read is waited for before its lane starts afresh: long enough for a fresh
/// read (two logins and a handful of queries) to finish on a node that has just come back.
fn give_up_after(patience: Duration) -> Duration {
    (patience * 2).max(Duration::from_secs(10))
}

impl<S: Send + 'static, T: Send + 'static> Lane<S, T> {
    fn new(renew: Box<dyn Fn() -> S + Send>, read: fn(S) -> BoxFuture<'static, (S, T)>) -> Self {
        Lane {
            state: None,
            renew,
            read,
            pending: None,
            stuck: false,
        }
    }

    /// The lane's answer this sample, or how long its read has gone unanswered.
    async fn next(&mut self, patience: Duration) -> std::result::Result<T, Duration> {
        if self.pending.is_none() {
            let state = self.state.take().unwrap_or_else(|| (self.renew)());
            self.pending = Some((Instant::now(), tokio::spawn((self.read)(state))));
            // A fresh read gets the full patience, even where the one before it got stuck.
            self.stuck = false;
        }
        let (since, read) = self.pending.as_mut().expect("started above");
        // A stuck read has been running since the last sample; it is looked at, not waited on.
        let wait = if self.stuck { Duration::ZERO } else { patience };
        match tokio::time::timeout(wait, read).await {
            Ok(Ok((state, answer))) => {
                self.state = Some(state);
                self.pending = None;
                self.stuck = false;
                Ok(answer)
            }
            // The read panicked: start afresh next sample.
            Ok(Err(_)) => {
                let waited = since.elapsed();
                self.pending = None;
                Err(waited)
            }
            Err(_) => {
                let waited = since.elapsed();
                self.stuck = true;
                if waited >= give_up_after(patience) {
                    self.abort();
                }
                Err(waited)
            }
        }
    }
}

impl<S, T> Lane<S, T> {
    fn abort(&mut self) {
        if let Some((_, read)) = self.pending.take() {
            read.abort();
        }
    }
}

impl<S, T> Drop for Lane<S, T> {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Lane<NodeProbe, NodeSnapshot> {
    fn node(node: Node, db: &str) -> Self {
        let db = db.to_string();
        Lane::new(
            Box::new(move || NodeProbe::new(node.clone(), &db)),
            |mut p| {
                Box::pin(async move {
                    let s = p.take().await;
                    (p, s)
                })
            },
        )
    }

    /// The node's snapshot, or "unreachable" when its read has not answered.
    async fn snapshot(&mut self, patience: Duration) -> NodeSnapshot {
        match self.next(patience).await {
            Ok(s) => s,
            // A fresh probe only to name the node: it opens no session.
            Err(waited) => (self.renew)().unreachable(if waited > patience {
                format!("no answer for {}", crate::util::fmt_duration(waited))
            } else {
                no_answer_within(patience)
            }),
        }
    }
}

/// The heartbeat read on C: its session, and the run clock to stamp the answer with.
struct HeartbeatReader {
    node: Node,
    db: String,
    client: Option<tokio_postgres::Client>,
    clock: Instant,
}

impl Lane<HeartbeatReader, Option<(u64, u64)>> {
    /// The heartbeat sequence C shows and when it was read (ms on the run clock `clock`), None
    /// when C cannot tell.
    fn heartbeat(c: Node, db: &str, clock: Instant) -> Self {
        let db = db.to_string();
        Lane::new(
            Box::new(move || HeartbeatReader {
                node: c.clone(),
                db: db.clone(),
                client: None,
                clock,
            }),
            |mut r| {
                Box::pin(async move {
                    let seen = r.read().await;
                    (r, seen)
                })
            },
        )
    }
}

impl HeartbeatReader {
    async fn read(&mut self) -> Option<(u64, u64)> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = self.node.connect(&self.db).await.ok();
        }
        let read = read_heartbeat(self.client.as_ref()?).await;
        let seq = seq_on_c(read.ok()?)?;
        Some((seq, self.clock.elapsed().as_millis() as u64))
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

    /// A lane whose read answers 7 once `go` is set.
    fn gated_lane() -> (watch::Sender<bool>, Lane<watch::Receiver<bool>, u32>) {
        let (go, rx) = watch::channel(false);
        let lane = Lane::new(Box::new(move || rx.clone()), |mut rx| {
            Box::pin(async move {
                let _ = rx.wait_for(|go| *go).await;
                (rx, 7)
            })
        });
        (go, lane)
    }

    #[tokio::test]
    async fn a_stuck_read_holds_up_one_sample_not_every_later_one() {
        let (go, mut lane) = gated_lane();
        let patience = Duration::from_secs(2);
        let t = Instant::now();
        assert!(lane.next(patience).await.is_err());
        assert!(t.elapsed() >= patience);
        // The next samples poll the same read without waiting for it.
        let t = Instant::now();
        let waited = lane.next(patience).await.expect_err("still stuck");
        assert!(t.elapsed() < patience / 2, "waited {:?}", t.elapsed());
        assert!(waited >= patience, "{waited:?}");
        // Its answer is taken when it comes, and the lane waits again from then on.
        go.send(true).unwrap();
        assert_eq!(lane.next(patience).await, Ok(7));
        assert!(!lane.stuck);
        assert_eq!(lane.next(patience).await, Ok(7));
    }

    /// A read of many round trips (a login, then queries) on a node that was frozen goes on
    /// between samples: looking at it once per sample must not be what moves it forward.
    #[tokio::test]
    async fn a_stuck_read_makes_progress_between_samples() {
        // The node thaws (`go`) only after a sample gave up waiting; the read then has many
        // steps left, which no sample looks at.
        let go = Arc::new(tokio::sync::Notify::new());
        let done = Arc::new(tokio::sync::Notify::new());
        let (g, d) = (go.clone(), done.clone());
        let mut lane = Lane::new(Box::new(move || (g.clone(), d.clone())), |(g, d)| {
            Box::pin(async move {
                g.notified().await;
                for _ in 0..50 {
                    tokio::task::yield_now().await;
                }
                d.notify_one();
                ((g, d), 7)
            })
        });
        assert!(lane.next(Duration::from_millis(1)).await.is_err());
        go.notify_one();
        tokio::time::timeout(Duration::from_secs(30), done.notified())
            .await
            .expect("the stuck read never finished on its own: it only moves when a sample looks");
        assert_eq!(lane.next(Duration::from_millis(1)).await, Ok(7));
    }

    #[test]
    fn a_samples_file_that_cannot_be_written_is_given_up_on_the_first_error() {
        let dir = tempfile::tempdir().unwrap();
        let sample = Sample {
            t_ms: 5,
            nodes: vec![],
            lags: vec![],
            heartbeat_seq_on_c: Some(3),
            heartbeat_read_ms: Some(6),
        };
        let path = dir.path().join("samples.jsonl");
        let mut ok = SampleFile::create(&path).unwrap();
        ok.append(&sample);
        ok.append(&sample);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.ends_with('\n'));
        // A full disk: the first error ends the file, later samples are not tried.
        let mut full = SampleFile::create(Path::new("/dev/full")).unwrap();
        full.append(&sample);
        assert!(full.file.is_none());
        full.append(&sample);
    }

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
