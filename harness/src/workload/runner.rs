//! Running the workload: one task per connection, paced or flat out, following the target.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use super::config::{Progress, Target, WorkloadConfig};
use super::ledger::{LedgerWriter, Record};
use super::model::{Outcome, WorkloadStats};
use super::ops::{OpGen, TextPool};
use super::session::{Scratch, Session, attempt};
use super::stats::Tally;
use crate::error::{Error, Result};

/// A paced connection that falls further behind than this (a server stall, a failover) skips
/// the missed slots instead of bursting to catch up.
const MAX_BEHIND: Duration = Duration::from_secs(1);

/// Everything the connection tasks share.
struct Shared {
    cfg: WorkloadConfig,
    pool: TextPool,
    start: Instant,
    /// What ledger times count from.
    epoch: Instant,
    end: Instant,
    progress: Option<Arc<Progress>>,
    halt: watch::Sender<bool>,
}

/// Run the workload described by `cfg` against `target` until its duration (or `max_ops`) is
/// reached or `stop` turns true, appending every operation to the ledger at `ledger_path`.
///
/// Each connection re-reads `target` before every operation and moves to a new target as soon
/// as it changes; a connection that loses its server reconnects to whatever the target is by
/// then, until the workload ends: a primary down for a while (a kill, stop or pause fault) is
/// what a rehearsal exercises, not a reason to abort it. Connecting before the clock starts
/// gives up after `cfg.reconnect_timeout`. `progress`, when given, counts outcomes live.
///
/// # Errors
/// Usage error for an invalid config; environment error when the ledger cannot be written;
/// database error when a connection cannot reach the target before the workload starts.
pub async fn run(
    cfg: &WorkloadConfig,
    target: watch::Receiver<Target>,
    ledger_path: &Path,
    stop: watch::Receiver<bool>,
    progress: Option<Arc<Progress>>,
) -> Result<WorkloadStats> {
    cfg.validate()?;
    let pool = TextPool::new(cfg.seed);
    let (halt, halt_rx) = watch::channel(false);
    let writer = LedgerWriter::start(ledger_path)?;
    tracing::info!(
        "workload: seed {}, {} connections to {}, {}, {}",
        cfg.seed,
        cfg.connections,
        target.borrow().node,
        match cfg.rate {
            Some(r) => format!("{r} ops/s"),
            None => "flat out".into(),
        },
        crate::util::fmt_duration(cfg.duration)
    );

    // Connect everyone before the clock starts, so set-up time is not counted as run time.
    let opened = futures::future::join_all((0..cfg.connections).map(|i| {
        let mut t = target.clone();
        let mut h = halt_rx.clone();
        async move {
            let patience = Patience::Until(Instant::now() + cfg.reconnect_timeout);
            let s = open_session(i, cfg, &mut t, &mut h, patience).await;
            (s, t)
        }
    }))
    .await;
    let mut sessions = Vec::with_capacity(opened.len());
    for (s, t) in opened {
        match s {
            Ok(Some(s)) => sessions.push((s, t)),
            Ok(None) => {
                writer.finish().await?;
                return Err(Error::interrupted().context("workload stopped while connecting"));
            }
            Err(e) => {
                writer.finish().await?;
                return Err(e);
            }
        }
    }

    // Before the clock starts: with many connections and seeded rows, building each one's key
    // list takes measurable time that would otherwise count against the run's duration.
    let opgens: Vec<OpGen> = (0..sessions.len())
        .map(|i| OpGen::new(cfg, i as u32))
        .collect();
    let start = Instant::now();
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        pool,
        start,
        epoch: cfg
            .epoch
            .map(Instant::from_std)
            .filter(|e| *e <= start)
            .unwrap_or(start),
        end: start + cfg.duration,
        progress,
        halt,
    });
    let forward = {
        let shared = shared.clone();
        let mut stop = stop;
        AbortOnDropHandle::new(tokio::spawn(async move {
            // A dropped stop sender means nobody will ask to stop: run to the end.
            if stop.wait_for(|s| *s).await.is_ok() {
                let _ = shared.halt.send(true);
            }
        }))
    };
    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(opgens)
        .enumerate()
        .map(|(i, ((session, target), opgen))| {
            let w = Worker {
                id: i as u32,
                opgen,
                shared: shared.clone(),
                target,
                halt: halt_rx.clone(),
                ledger: writer.tx.clone(),
                session: Some(session),
                scratch: Scratch::default(),
                tally: Tally::new(),
            };
            // Aborted if this future is dropped (an interrupted run): no writes after teardown.
            AbortOnDropHandle::new(tokio::spawn(w.run()))
        })
        .collect();

    let mut total = Tally::new();
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok((tally, err)) => {
                total.merge(&tally);
                if let Some(e) = err {
                    first_err.get_or_insert(e);
                }
            }
            Err(e) => {
                first_err.get_or_insert(Error::internal(format!(
                    "workload connection task failed: {e}"
                )));
            }
        }
    }
    let elapsed = start.elapsed();
    drop(forward);
    writer.finish().await?;
    if let Some(e) = first_err {
        return Err(e);
    }
    let stats = total.into_stats(cfg.seed, cfg.connections, cfg.rate, &cfg.tables, elapsed);
    tracing::info!(
        "workload done: {} ok, {} failed, {} unknown in {} ({:.0} ops/s, p50 {} us, p99 {} us)",
        stats.ok,
        stats.failed,
        stats.unknown,
        crate::util::fmt_duration(elapsed),
        stats.throughput,
        stats.latency_p50_us,
        stats.latency_p99_us
    );
    Ok(stats)
}

/// How long a connection keeps trying to reach its target.
#[derive(Clone, Copy)]
enum Patience {
    /// Before the workload starts: an error at this instant.
    Until(Instant),
    /// During the workload: until it ends, then stop without an error.
    ToTheEnd(Instant),
}

/// Connect to the current target, retrying (and following target changes) as `patience` says.
/// None when the run was halted meanwhile, or the workload ended while the target was down.
async fn open_session(
    id: u32,
    cfg: &WorkloadConfig,
    target: &mut watch::Receiver<Target>,
    halt: &mut watch::Receiver<bool>,
    patience: Patience,
) -> Result<Option<Session>> {
    let (Patience::Until(deadline) | Patience::ToTheEnd(deadline)) = patience;
    let started = Instant::now();
    let mut announced = false;
    let mut backoff = Duration::from_millis(20);
    loop {
        if *halt.borrow() {
            return Ok(None);
        }
        let t = target.borrow_and_update().clone();
        let err = match Session::open(&t, cfg).await {
            Ok(s) => {
                tracing::debug!("workload connection {id}: writing to {}", t.node);
                return Ok(Some(s));
            }
            Err(e) => e,
        };
        // A server that answers and refuses (a login, a database, a privilege) will not change
        // its mind by the end of the run: waiting would only hide it.
        if refuses_for_good(&err) {
            return Err(err.context(format!(
                "workload connection {id}: {} ({}) refuses the workload's session",
                t.node, t.conn.endpoint
            )));
        }
        let now = Instant::now();
        if !announced {
            // The first failure of this outage; the retries go to the debug log.
            announced = true;
            tracing::info!(
                "workload connection {id}: {} unreachable, retrying until it is back: {err}",
                t.node
            );
        }
        if now >= deadline {
            if let Patience::ToTheEnd(_) = patience {
                tracing::info!(
                    "workload connection {id}: {} still unreachable when the workload ended ({}): {err}",
                    t.node,
                    crate::util::fmt_duration(now - started)
                );
                return Ok(None);
            }
            return Err(err.context(format!(
                "workload connection {id}: cannot reach {} ({}) within {}",
                t.node,
                t.conn.endpoint,
                crate::util::fmt_duration(now - started)
            )));
        }
        tracing::debug!(
            "workload connection {id}: {} unreachable, retrying: {err}",
            t.node
        );
        // Retry pacing, not synchronisation: wake early when the target changes or the run
        // stops, otherwise back off so a dead server is not hammered.
        let pause = backoff.min(deadline - now);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            changed = target.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(pause).await;
                }
            }
            _ = halted(halt) => return Ok(None),
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Whether connecting failed on a refusal no retry can change: authentication (class 28), no
/// such database (3D000), no privilege to connect (42501).
fn refuses_for_good(e: &Error) -> bool {
    e.sqlstate()
        .is_some_and(|s| s.starts_with("28") || s == "3D000" || s == "42501")
}

/// Resolves once the run is halted (never, if the halt sender is gone). The guard `wait_for`
/// returns is dropped here: it must not live across the caller's awaits.
async fn halted(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|h| *h).await.is_err() {
        std::future::pending::<()>().await;
    }
}

struct Worker {
    id: u32,
    opgen: OpGen,
    shared: Arc<Shared>,
    target: watch::Receiver<Target>,
    halt: watch::Receiver<bool>,
    ledger: mpsc::Sender<Record>,
    session: Option<Session>,
    scratch: Scratch,
    tally: Tally,
}

impl Worker {
    async fn run(mut self) -> (Tally, Option<Error>) {
        let err = self.run_inner().await.err();
        if err.is_some() {
            // One connection giving up ends the run: the others would only write a ledger
            // nobody can interpret against a workload that is no longer the configured one.
            let _ = self.shared.halt.send(true);
        }
        (self.tally, err)
    }

    async fn run_inner(&mut self) -> Result<()> {
        let sh = self.shared.clone();
        let cfg = &sh.cfg;
        let limit = cfg.ops_for(self.id);
        // Each connection runs at rate / connections, staggered so they interleave evenly.
        let interval = cfg
            .rate
            .map(|r| Duration::from_secs_f64(cfg.connections as f64 / r));
        let mut next = sh.start
            + cfg
                .rate
                .map(|r| Duration::from_secs_f64(self.id as f64 / r))
                .unwrap_or_default();
        let mut attempts = 0u64;
        loop {
            if *self.halt.borrow() || limit.is_some_and(|l| attempts >= l) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= sh.end {
                return Ok(());
            }
            if let Some(iv) = interval {
                if next >= sh.end {
                    return Ok(());
                }
                if next > now {
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {}
                        _ = halted(&mut self.halt) => return Ok(()),
                    }
                } else if now.duration_since(next) > MAX_BEHIND {
                    next = now;
                }
                next += iv;
            }
            if self.target.has_changed().unwrap_or(false)
                || self.session.as_ref().is_some_and(Session::is_closed)
            {
                self.session = None;
            }
            if self.session.is_none() {
                let patience = Patience::ToTheEnd(sh.end);
                match open_session(self.id, cfg, &mut self.target, &mut self.halt, patience).await?
                {
                    Some(s) => {
                        tracing::info!(
                            "workload connection {}: now writing to {}",
                            self.id,
                            s.node
                        );
                        self.session = Some(s);
                    }
                    None => return Ok(()),
                }
            }
            let Some(session) = self.session.as_ref() else {
                continue;
            };
            attempts += 1;
            let plan = self.opgen.plan();
            let sent = Instant::now();
            let j = attempt(session, &plan, &sh.pool, &mut self.scratch, cfg.op_timeout).await;
            let done = Instant::now();
            self.opgen.settle(&plan, j.settled);
            let node = session.node.clone();
            if j.outcome == Outcome::Unknown {
                // The connection is broken or stuck: never reuse it.
                self.session = None;
            }
            self.tally.count(
                plan.table,
                plan.kind,
                j.outcome,
                done.duration_since(sent).as_micros() as u64,
            );
            if let Some(p) = &sh.progress {
                p.count(j.outcome);
            }
            let rec = Record {
                op: plan.op,
                conn: self.id,
                table: plan.table,
                key: j.key,
                kind: plan.kind,
                outcome: j.outcome,
                sent_us: sent.duration_since(sh.epoch).as_micros() as u64,
                done_us: done.duration_since(sh.epoch).as_micros() as u64,
                node,
                error: j.error,
            };
            if self.ledger.send(rec).await.is_err() {
                return Err(Error::internal(
                    "the ledger writer stopped; see the ledger error",
                ));
            }
        }
    }
}
