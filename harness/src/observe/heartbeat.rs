//! End-to-end lag: a heartbeat row written on the primary every N ms and read on C.
//!
//! The writer records, on the harness's own clock, when it issued each heartbeat, and whether
//! the primary acknowledged it. The lag at time t is the age of the oldest heartbeat issued after
//! the one C shows (zero when C shows the latest issued). An attempt counts from the moment it
//! was issued, committed or not: when the primary cannot commit (paused, cut off under
//! synchronous replication, down) nothing new reaches C and the lag grows, as it does for the
//! application's writes — it is never a reassuring 0. Resolution is the heartbeat interval. DMS writes its own heartbeat on the
//! source, which B (read-only) cannot accept; this one is written on A and travels the whole
//! chain.
//!
//! Another process (`pgrehearse status`) has no log of commits: it reads the row on the primary
//! and on C ([`read_heartbeat`]) and judges from both ([`assess`]) whether heartbeats are being
//! written at all — the age of the last row is only a lag while someone writes them.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::chain::HARNESS_SCHEMA;
use crate::node::Node;

/// The heartbeat table (one row, id = 1) in the replicated database: written on the primary,
/// replayed on B, applied on C.
pub fn table() -> String {
    format!("{HARNESS_SCHEMA}.heartbeat")
}

/// One heartbeat attempt: its sequence number, when it was issued (ms since the run clock's
/// start) and whether the primary acknowledged its commit.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    seq: u64,
    issued_ms: u64,
    committed: bool,
}

/// Heartbeat attempts, in issue order (sequence numbers only grow, across a promotion too).
#[derive(Debug, Default)]
pub struct HeartbeatLog {
    attempts: Mutex<Vec<Attempt>>,
}

impl HeartbeatLog {
    /// Record a heartbeat issued at `at_ms` whose outcome is not known yet.
    pub fn issue(&self, seq: u64, at_ms: u64) {
        self.attempts.lock().expect("heartbeat log").push(Attempt {
            seq,
            issued_ms: at_ms,
            committed: false,
        });
    }

    /// The primary acknowledged heartbeat `seq`.
    pub fn commit(&self, seq: u64) {
        let mut log = self.attempts.lock().expect("heartbeat log");
        if let Some(a) = log.iter_mut().rev().find(|a| a.seq == seq) {
            a.committed = true;
        }
    }

    /// Record a heartbeat issued at `at_ms` and acknowledged.
    pub fn push(&self, seq: u64, at_ms: u64) {
        self.issue(seq, at_ms);
        self.commit(seq);
    }

    /// End-to-end lag in seconds at `now_ms` when C shows heartbeat `seen_seq`: the age of the
    /// oldest attempt issued after it, 0 when C shows every one issued by then. `now_ms` is
    /// when C was read (C's answer says nothing about any earlier moment). None when no
    /// heartbeat had been issued by then: there is nothing C could lag behind, which is not the
    /// same as being caught up.
    pub fn lag_at(&self, seen_seq: u64, now_ms: u64) -> Option<f64> {
        let log = self.attempts.lock().expect("heartbeat log");
        if log.first().is_none_or(|a| a.issued_ms > now_ms) {
            return None;
        }
        let i = log.partition_point(|a| a.seq <= seen_seq);
        Some(match log.get(i) {
            Some(a) if a.issued_ms <= now_ms => (now_ms - a.issued_ms) as f64 / 1000.0,
            _ => 0.0,
        })
    }

    /// The first heartbeat issued at or after `at_ms`: a node that shows it (or a later one)
    /// has everything the primary committed before `at_ms`. None when none was issued since.
    pub fn first_issued_from(&self, at_ms: u64) -> Option<u64> {
        let log = self.attempts.lock().expect("heartbeat log");
        log.iter().find(|a| a.issued_ms >= at_ms).map(|a| a.seq)
    }

    /// Mean time between consecutive committed heartbeats: the resolution the end-to-end lag
    /// actually had.
    pub fn mean_gap_ms(&self) -> f64 {
        let log = self.attempts.lock().expect("heartbeat log");
        let mut ok = log.iter().filter(|a| a.committed);
        let (first, n, last) = match ok.next() {
            Some(f) => ok.fold((f.issued_ms, 1u64, f.issued_ms), |(f, n, _), a| {
                (f, n + 1, a.issued_ms)
            }),
            None => return 0.0,
        };
        if n > 1 {
            (last - first) as f64 / (n - 1) as f64
        } else {
            0.0
        }
    }

    /// Number of heartbeats issued, committed or not.
    pub fn issued(&self) -> usize {
        self.attempts.lock().expect("heartbeat log").len()
    }

    /// Number of heartbeats committed.
    pub fn len(&self) -> usize {
        self.attempts
            .lock()
            .expect("heartbeat log")
            .iter()
            .filter(|a| a.committed)
            .count()
    }

    /// True when nothing committed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The heartbeat write: `$1` is its sequence number. An abandoned INSERT can still commit
/// after a newer one did (it was only slow): the row keeps the newest sequence, never moves
/// back, so C cannot appear to have gone back in time.
pub fn write_heartbeat_sql() -> String {
    format!(
        "INSERT INTO {} AS h (id, seq, ts) VALUES (1, $1, clock_timestamp()) \
         ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, ts = EXCLUDED.ts \
         WHERE h.seq < EXCLUDED.seq",
        table()
    )
}

/// application_name of the heartbeat writer's session: `status` looks for it on the primary
/// to tell a writer that cannot commit (a lag) from one that has stopped (no lag at all).
pub const WRITER_APPLICATION_NAME: &str = "pgrehearse-heartbeat";

/// How long the writer waits for a session to the primary. Ten periods, but never less than a
/// login takes on a loaded machine.
fn connect_timeout(every: Duration) -> Duration {
    (every * 10).max(Duration::from_secs(1))
}

/// How long a heartbeat may wait for its commit before the writer cancels it. Twenty periods,
/// but never less than a commit takes on a loaded machine.
fn write_timeout(every: Duration) -> Duration {
    (every * 20).max(Duration::from_secs(2))
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
        let mut w = HeartbeatWriter {
            primary,
            db: db.to_string(),
            sql: write_heartbeat_sql(),
            connect_timeout: connect_timeout(every),
            write_timeout: write_timeout(every),
            clock,
            log: log.clone(),
            seq: 0,
            session: None,
            in_flight: None,
        };
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let event = {
                    let reply = async {
                        match w.in_flight.as_mut() {
                            Some(f) => f.reply.as_mut().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = tick.tick() => None,
                        r = reply => Some(r),
                    }
                };
                match event {
                    None => w.on_tick().await,
                    Some(r) => w.on_reply(r),
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

/// The writer's session on the primary.
struct Session {
    node: String,
    client: Arc<Client>,
}

/// The heartbeat INSERT waiting for its commit.
struct InFlight {
    seq: u64,
    /// When it was sent, or when the cancel was.
    since: Instant,
    cancel_sent: bool,
    reply: Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send>>,
}

/// The writer's state between ticks. One session, and one INSERT at a time: every heartbeat
/// updates row id = 1, so a second INSERT sent while the first waits (a commit held for a
/// synchronous standby that is cut off, say) would queue behind the first's row lock, and a
/// third behind both — one stuck backend per timeout, until the primary runs out of
/// connections. Attempts are still logged every tick, so the lag keeps growing meanwhile.
struct HeartbeatWriter {
    primary: watch::Receiver<Node>,
    db: String,
    sql: String,
    connect_timeout: Duration,
    write_timeout: Duration,
    clock: Instant,
    log: Arc<HeartbeatLog>,
    seq: u64,
    session: Option<Session>,
    in_flight: Option<InFlight>,
}

impl HeartbeatWriter {
    async fn on_tick(&mut self) {
        // Issued at the tick, before connecting: a primary that cannot be reached is lag too
        // (what the application writes now does not reach C either).
        self.seq += 1;
        self.log
            .issue(self.seq, self.clock.elapsed().as_millis() as u64);
        let node = self.primary.borrow().clone();
        if self.session.as_ref().is_some_and(|s| s.node != node.name()) {
            // Promoted: what the old primary does with its pending write no longer matters.
            self.session = None;
            self.in_flight = None;
        }
        if self.in_flight.is_some() {
            self.unstick().await;
            return;
        }
        if self.session.as_ref().is_none_or(|s| s.client.is_closed()) {
            self.session = connect_writer(&node, &self.db, self.connect_timeout).await;
        }
        if let Some(s) = &self.session {
            let (client, sql, seq) = (s.client.clone(), self.sql.clone(), self.seq as i64);
            self.in_flight = Some(InFlight {
                seq: self.seq,
                since: Instant::now(),
                cancel_sent: false,
                reply: Box::pin(async move { client.execute(sql.as_str(), &[&seq]).await }),
            });
        }
    }

    /// A heartbeat waiting longer than the write timeout is cancelled (a commit waiting for a
    /// synchronous standby then returns, committed locally); one the cancel does not free
    /// within another write timeout, or whose cancel cannot be delivered (the server is gone
    /// or frozen), is abandoned with its session. It stays in the log either way: until C
    /// shows a later one, it is a write that has not arrived.
    async fn unstick(&mut self) {
        let Some(s) = self.session.as_ref() else {
            // No session to cancel on: nothing can come back.
            self.in_flight = None;
            return;
        };
        let Some(f) = self.in_flight.as_mut() else {
            return;
        };
        if f.since.elapsed() < self.write_timeout {
            return;
        }
        if !f.cancel_sent {
            let cancel = s.client.cancel_token();
            let sent = tokio::time::timeout(self.connect_timeout, cancel.cancel_query(NoTls)).await;
            if matches!(sent, Ok(Ok(()))) {
                f.cancel_sent = true;
                f.since = Instant::now();
                return;
            }
        }
        self.in_flight = None;
        self.session = None;
    }

    fn on_reply(&mut self, r: Result<u64, tokio_postgres::Error>) {
        let Some(f) = self.in_flight.take() else {
            return;
        };
        // Cancelled or refused, the session goes on (one session: `status` sees the writer
        // connected throughout); disconnected, the next tick reconnects.
        if r.is_ok() {
            self.log.commit(f.seq);
        }
    }
}

/// The writer's session on `node`, named [`WRITER_APPLICATION_NAME`]; None when it cannot be
/// opened within `timeout`.
async fn connect_writer(node: &Node, db: &str, timeout: Duration) -> Option<Session> {
    let open = async {
        let c = node.connect(db).await.ok()?;
        c.batch_execute(&format!(
            "SET application_name = '{WRITER_APPLICATION_NAME}'"
        ))
        .await
        .ok()?;
        Some(c)
    };
    let client = tokio::time::timeout(timeout, open).await.ok().flatten()?;
    Some(Session {
        node: node.name().to_string(),
        client: Arc::new(client),
    })
}

/// The heartbeat row as one node shows it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatRow {
    /// Sequence number of the newest heartbeat the node shows.
    pub seq: u64,
    /// When that heartbeat was written: seconds since the Unix epoch, on the primary's clock.
    pub written_at_s: f64,
    /// When the row was read: seconds since the Unix epoch, on the clock of the node read.
    pub read_at_s: f64,
}

impl HeartbeatRow {
    /// Seconds between writing and reading this row.
    pub fn age_s(&self) -> f64 {
        (self.read_at_s - self.written_at_s).max(0.0)
    }
}

/// What reading the heartbeat on one node found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeartbeatRead {
    /// The table does not exist there.
    NoTable,
    /// The table is empty: no heartbeat was ever written (or none has arrived yet).
    NoRow,
    /// The newest heartbeat the node shows.
    Row(HeartbeatRow),
}

/// Read the heartbeat over `client`, a session on the replicated database of any node.
///
/// # Errors
/// Any database error other than the table being absent.
pub async fn read_heartbeat(client: &Client) -> Result<HeartbeatRead, tokio_postgres::Error> {
    let sql = format!(
        "SELECT seq, extract(epoch FROM ts)::float8, extract(epoch FROM clock_timestamp())::float8 \
         FROM {} WHERE id = 1",
        table()
    );
    match client.query_opt(sql.as_str(), &[]).await {
        Ok(Some(r)) => Ok(HeartbeatRead::Row(HeartbeatRow {
            seq: r.get::<_, i64>(0).max(0) as u64,
            written_at_s: r.get(1),
            read_at_s: r.get(2),
        })),
        Ok(None) => Ok(HeartbeatRead::NoRow),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(HeartbeatRead::NoTable),
        Err(e) => Err(e),
    }
}

/// Whether the heartbeat writer's session ([`WRITER_APPLICATION_NAME`]) is connected to the
/// server `client` is on.
///
/// # Errors
/// Any database error.
pub async fn writer_connected(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1)",
            &[&WRITER_APPLICATION_NAME],
        )
        .await?;
    Ok(row.get(0))
}

/// End-to-end lag from the two rows alone, the way [`HeartbeatLog::lag_at`] computes it during a
/// run: the age, at the moment the primary was read, of the oldest heartbeat C does not show
/// (zero when C shows the primary's newest). The primary's row keeps only the newest
/// heartbeat's time; the ones C lacks are taken to have been written at a steady pace since the
/// one C shows (the writer ticks at a fixed period), so the error is at most one period.
pub fn lag_from_rows(on_primary: &HeartbeatRow, on_c: &HeartbeatRow) -> f64 {
    if on_primary.seq <= on_c.seq {
        return 0.0;
    }
    let log = HeartbeatLog::default();
    let origin = on_primary.written_at_s.min(on_c.written_at_s);
    let ms = |s: f64| ((s - origin) * 1000.0).round().max(0.0) as u64;
    let missing = (on_primary.seq - on_c.seq) as f64;
    let gap = ((on_primary.written_at_s - on_c.written_at_s) / missing).max(0.0);
    log.push(on_c.seq + 1, ms(on_c.written_at_s + gap));
    if on_primary.seq > on_c.seq + 1 {
        log.push(on_primary.seq, ms(on_primary.written_at_s));
    }
    log.lag_at(on_c.seq, ms(on_primary.read_at_s))
        .unwrap_or(0.0)
}

/// Whether anybody may be writing heartbeats, as the reader can tell from the run's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// The harness process that owns the run is alive: it writes heartbeats while its workload
    /// runs (and not before or after, which the age of the row tells).
    MaybeRunning,
    /// The owning harness is alive and its heartbeat session ([`WRITER_APPLICATION_NAME`]) is
    /// connected to the primary: heartbeats are being issued now, so a newest one older than
    /// [`STOPPED_AFTER`] means the primary cannot commit them (a synchronous standby cut off,
    /// a lock): a lag of at least its age, not a stop.
    Connected,
    /// Nobody writes them (the owning harness exited: `up`, `run --keep`); says why.
    Gone(String),
}

/// A newest heartbeat older than this on the primary means the writer stopped, whoever owns
/// the run: a scenario may space heartbeats up to 10 s apart.
pub const STOPPED_AFTER: Duration = Duration::from_secs(15);

/// End-to-end lag as another process can tell it from the heartbeat rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EndToEnd {
    /// Heartbeats are being written: `lag_s` is the age of the oldest one C does not show yet
    /// (0 when C shows the newest).
    Measured {
        /// Seconds.
        lag_s: f64,
        /// C shows no heartbeat at all yet, or the primary commits none (`primary_stalled`):
        /// the lag is at least `lag_s` (the age of the newest), the oldest missing one's time
        /// being unknown.
        at_least: bool,
        /// The writer is connected to the primary but none of its heartbeats committed for
        /// longer than [`STOPPED_AFTER`].
        #[serde(default)]
        primary_stalled: bool,
        /// Node the heartbeat is written on.
        primary: String,
        /// Newest heartbeat on the primary.
        seq_on_primary: u64,
        /// Newest heartbeat on C.
        seq_on_c: Option<u64>,
        /// How long ago the primary's newest heartbeat was written.
        newest_age_s: f64,
    },
    /// A heartbeat row exists but nobody writes heartbeats any more. `stopped_s_ago` is how long
    /// ago the last one was written: not a lag.
    Stopped {
        /// Seconds since the last heartbeat was written.
        stopped_s_ago: f64,
        /// Newest heartbeat on the primary (None when it could not be read).
        seq_on_primary: Option<u64>,
        /// Newest heartbeat on C (None when it shows none or could not be read).
        seq_on_c: Option<u64>,
        /// Why it counts as stopped.
        why: String,
    },
    /// No heartbeat is written on this chain: end-to-end lag in seconds is not measured.
    NoHeartbeat {
        /// Why.
        why: String,
    },
    /// A node whose row decides it did not answer.
    Unknown {
        /// Why.
        why: String,
    },
}

impl EndToEnd {
    /// The lag in seconds, only when it was measured exactly.
    pub fn lag_s(&self) -> Option<f64> {
        match self {
            EndToEnd::Measured {
                lag_s,
                at_least: false,
                ..
            } => Some(*lag_s),
            _ => None,
        }
    }
}

/// Judge the heartbeat from the rows on the primary (node `primary`) and on C. A read that
/// failed carries its error text.
pub fn assess(
    primary: &str,
    on_primary: Result<HeartbeatRead, String>,
    on_c: Result<HeartbeatRead, String>,
    writer: &Writer,
) -> EndToEnd {
    let row = |r: &Result<HeartbeatRead, String>| match r {
        Ok(HeartbeatRead::Row(x)) => Some(*x),
        _ => None,
    };
    let (p, c) = (row(&on_primary), row(&on_c));
    let stopped = |age: f64, why: String| EndToEnd::Stopped {
        stopped_s_ago: age,
        seq_on_primary: p.map(|x| x.seq),
        seq_on_c: c.map(|x| x.seq),
        why,
    };
    if let Writer::Gone(why) = writer {
        // Nobody writes: whatever the rows say, it is not a lag.
        return match (p, c) {
            (Some(p), _) => stopped(p.age_s(), why.clone()),
            (None, Some(c)) => stopped(c.age_s(), why.clone()),
            (None, None) => EndToEnd::NoHeartbeat { why: why.clone() },
        };
    }
    let p = match on_primary {
        Err(e) => {
            return EndToEnd::Unknown {
                why: format!("cannot read the heartbeat on {primary}: {e}"),
            };
        }
        Ok(HeartbeatRead::NoTable) => {
            return EndToEnd::NoHeartbeat {
                why: format!("{primary} has no {} table", table()),
            };
        }
        Ok(HeartbeatRead::NoRow) => {
            return EndToEnd::NoHeartbeat {
                why: format!("no heartbeat was ever written on {primary}"),
            };
        }
        Ok(HeartbeatRead::Row(p)) => p,
    };
    let stalled = p.age_s() > STOPPED_AFTER.as_secs_f64();
    let measured = |lag_s: f64, at_least: bool, seq_on_c: Option<u64>| EndToEnd::Measured {
        lag_s,
        at_least,
        primary_stalled: stalled,
        primary: primary.to_string(),
        seq_on_primary: p.seq,
        seq_on_c,
        newest_age_s: p.age_s(),
    };
    if stalled && *writer == Writer::Connected {
        // Whatever C shows, it lacks every heartbeat issued since the primary's newest.
        let behind = c.map_or(0.0, |c| lag_from_rows(&p, &c));
        return measured(p.age_s().max(behind), true, c.map(|c| c.seq));
    }
    if stalled {
        return stopped(
            p.age_s(),
            format!(
                "the newest heartbeat on {primary} is older than {}s and no heartbeat session is connected to it",
                STOPPED_AFTER.as_secs()
            ),
        );
    }
    match on_c {
        Err(e) => EndToEnd::Unknown {
            why: format!("cannot read the heartbeat on c: {e}"),
        },
        Ok(HeartbeatRead::NoTable) => EndToEnd::NoHeartbeat {
            why: format!("c has no {} table", table()),
        },
        // C shows none yet: the oldest it lacks is older than the newest, whose age is a bound.
        Ok(HeartbeatRead::NoRow) => measured(p.age_s(), true, None),
        Ok(HeartbeatRead::Row(c)) => measured(lag_from_rows(&p, &c), false, Some(c.seq)),
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
        assert_eq!(log.lag_at(3, 350), Some(0.0));
        assert_eq!(log.lag_at(1, 350), Some(0.15));
        assert_eq!(log.lag_at(0, 1100), Some(1.0));
    }

    #[test]
    fn no_heartbeat_issued_yet_is_no_lag_not_zero() {
        let log = HeartbeatLog::default();
        assert_eq!(log.lag_at(0, 500), None);
        log.issue(1, 600);
        // Issued after the moment asked about: still none by then.
        assert_eq!(log.lag_at(0, 500), None);
        assert_eq!(log.lag_at(0, 700), Some(0.1));
    }

    #[test]
    fn a_heartbeat_the_primary_never_acknowledged_still_counts_until_c_moves_past_it() {
        let log = HeartbeatLog::default();
        log.push(1, 100);
        log.issue(2, 200); // the primary hangs: no acknowledgement
        assert_eq!(
            log.lag_at(1, 1200),
            Some(1.0),
            "C shows the last commit, yet is 1 s behind"
        );
        assert_eq!(log.len(), 1);
        log.push(3, 1300); // after failover the writer goes on with later numbers
        assert_eq!(log.lag_at(3, 1350), Some(0.0));
        assert_eq!(log.mean_gap_ms(), 1200.0);
    }

    #[test]
    fn the_first_heartbeat_issued_from_a_moment_counts_unacknowledged_ones_too() {
        let log = HeartbeatLog::default();
        log.push(1, 100);
        log.issue(2, 200);
        log.push(3, 300);
        assert_eq!(log.first_issued_from(150), Some(2));
        assert_eq!(log.first_issued_from(200), Some(2));
        assert_eq!(log.first_issued_from(301), None);
    }

    fn row(seq: u64, written_at_s: f64, read_at_s: f64) -> HeartbeatRow {
        HeartbeatRow {
            seq,
            written_at_s,
            read_at_s,
        }
    }

    #[test]
    fn lag_from_rows_matches_the_log_when_heartbeats_are_regular() {
        // Heartbeats every 100 ms; C shows seq 10 (written at 1.0 s), the primary seq 15
        // (1.5 s), read at 1.55 s: the oldest missing, seq 11, was written at 1.1 s.
        let lag = lag_from_rows(&row(15, 1001.5, 1001.55), &row(10, 1001.0, 1001.6));
        assert!((lag - 0.45).abs() < 1e-9, "{lag}");
        // C shows the newest: no lag, however old the row.
        assert_eq!(
            lag_from_rows(&row(7, 1000.0, 1009.0), &row(7, 1000.0, 1009.0)),
            0.0
        );
        // One missing.
        let lag = lag_from_rows(&row(8, 1000.1, 1000.3), &row(7, 1000.0, 1000.3));
        assert!((lag - 0.2).abs() < 1e-9, "{lag}");
    }

    #[test]
    fn a_heartbeat_nobody_writes_is_never_a_lag() {
        let p = Ok(HeartbeatRead::Row(row(40, 1000.0, 1300.0)));
        let c = Ok(HeartbeatRead::Row(row(40, 1000.0, 1300.0)));
        let gone = Writer::Gone("the harness exited".into());
        let e = assess("a", p, c, &gone);
        assert!(
            matches!(&e, EndToEnd::Stopped { stopped_s_ago, seq_on_c: Some(40), .. } if *stopped_s_ago == 300.0),
            "{e:?}"
        );
        assert_eq!(e.lag_s(), None);
        // Even a fresh row: its writer is gone.
        let p = Ok(HeartbeatRead::Row(row(40, 1000.0, 1000.1)));
        let e = assess("a", p, Err("refused".into()), &gone);
        assert!(matches!(e, EndToEnd::Stopped { .. }), "{e:?}");
        // No row anywhere.
        let e = assess(
            "a",
            Ok(HeartbeatRead::NoRow),
            Ok(HeartbeatRead::NoRow),
            &gone,
        );
        assert!(matches!(e, EndToEnd::NoHeartbeat { .. }), "{e:?}");
        // The owner lives but the row is old: stopped too.
        let p = Ok(HeartbeatRead::Row(row(40, 1000.0, 1030.0)));
        let c = Ok(HeartbeatRead::Row(row(40, 1000.0, 1030.0)));
        let e = assess("a", p, c, &Writer::MaybeRunning);
        assert!(matches!(e, EndToEnd::Stopped { .. }), "{e:?}");
    }

    #[test]
    fn a_writer_that_cannot_commit_is_a_lag_of_at_least_the_age() {
        // Sync replication cut off for 40 s: the writer is connected to a but nothing commits,
        // so the newest row is old while heartbeats keep being issued.
        let p = Ok(HeartbeatRead::Row(row(40, 1000.0, 1040.0)));
        let c = Ok(HeartbeatRead::Row(row(40, 1000.0, 1040.2)));
        let e = assess("a", p, c, &Writer::Connected);
        assert!(
            matches!(
                &e,
                EndToEnd::Measured { lag_s, at_least: true, primary_stalled: true, seq_on_c: Some(40), .. }
                    if *lag_s == 40.0
            ),
            "{e:?}"
        );
        assert_eq!(e.lag_s(), None, "a bound, not the lag");
        // C further behind than the primary's newest: the oldest it lacks bounds it.
        let p = Ok(HeartbeatRead::Row(row(40, 1000.0, 1040.0)));
        let c = Ok(HeartbeatRead::Row(row(30, 990.0, 1040.0)));
        let e = assess("a", p, c, &Writer::Connected);
        assert!(
            matches!(&e, EndToEnd::Measured { lag_s, at_least: true, .. } if *lag_s == 49.0),
            "{e:?}"
        );
        // C unreadable: the primary's stall alone bounds the lag.
        let p = Ok(HeartbeatRead::Row(row(40, 1000.0, 1040.0)));
        let e = assess("a", p, Err("refused".into()), &Writer::Connected);
        assert!(
            matches!(&e, EndToEnd::Measured { lag_s, at_least: true, seq_on_c: None, .. } if *lag_s == 40.0),
            "{e:?}"
        );
    }

    #[test]
    fn a_live_heartbeat_is_measured() {
        let p = Ok(HeartbeatRead::Row(row(15, 1001.5, 1001.55)));
        let c = Ok(HeartbeatRead::Row(row(10, 1001.0, 1001.6)));
        let e = assess("b", p, c, &Writer::MaybeRunning);
        match &e {
            EndToEnd::Measured {
                primary,
                seq_on_primary: 15,
                seq_on_c: Some(10),
                at_least: false,
                ..
            } => assert_eq!(primary, "b"),
            other => panic!("{other:?}"),
        }
        assert!((e.lag_s().unwrap() - 0.45).abs() < 1e-9);
        // C shows none yet: a lower bound, not reported as the lag.
        let p = Ok(HeartbeatRead::Row(row(3, 1000.0, 1000.25)));
        let e = assess("a", p, Ok(HeartbeatRead::NoRow), &Writer::MaybeRunning);
        assert!(
            matches!(e, EndToEnd::Measured { at_least: true, lag_s, .. } if lag_s == 0.25),
            "{e:?}"
        );
        assert_eq!(e.lag_s(), None);
        let e = assess(
            "a",
            Ok(HeartbeatRead::NoRow),
            Ok(HeartbeatRead::NoRow),
            &Writer::MaybeRunning,
        );
        assert!(matches!(e, EndToEnd::NoHeartbeat { .. }), "{e:?}");
        let e = assess(
            "a",
            Err("no answer".into()),
            Ok(HeartbeatRead::NoRow),
            &Writer::MaybeRunning,
        );
        assert!(matches!(e, EndToEnd::Unknown { .. }), "{e:?}");
    }
}
