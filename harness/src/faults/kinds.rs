//! One [`Fault`] per kind: how to inject it and how to heal it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::task::AbortOnDropHandle;

use super::model::{ChurnRecord, FaultKind, FaultRecord, Hop};
use super::proxy::{LinkMode, LinkState};
use super::runtime::FaultEnv;
use crate::error::{Result, ResultExt};
use crate::node::StopMode;
use crate::workload::PinnedRows;

/// A fault: inject it, heal it. Heal must be safe to call when inject failed halfway.
#[async_trait]
pub trait Fault: Send + Sync {
    /// Do it.
    async fn inject(&self, env: &FaultEnv) -> Result<()>;
    /// Undo it (no-op for one-shot faults).
    async fn heal(&self, env: &FaultEnv) -> Result<()>;
    /// Add what the fault saw while in force to its record (nothing, for most kinds).
    fn annotate(&self, _record: &mut FaultRecord) {}
}

/// The hop a link fault acts on and what it makes that hop do (None: not a link fault).
pub fn link_state(kind: &FaultKind) -> Option<(Hop, LinkState)> {
    let (hop, state) = match kind.clone() {
        FaultKind::Latency {
            hop,
            latency,
            jitter,
        } => (
            hop,
            LinkState {
                latency,
                jitter,
                ..Default::default()
            },
        ),
        FaultKind::Bandwidth { hop, bytes_per_sec } => (
            hop,
            LinkState {
                bandwidth: Some(bytes_per_sec),
                ..Default::default()
            },
        ),
        FaultKind::Loss { hop, percent } => (
            hop,
            LinkState {
                loss: percent / 100.0,
                ..Default::default()
            },
        ),
        FaultKind::Partition { hop } => (
            hop,
            LinkState {
                mode: LinkMode::Blackhole,
                ..Default::default()
            },
        ),
        FaultKind::LinkDown { hop } => (
            hop,
            LinkState {
                mode: LinkMode::Down,
                ..Default::default()
            },
        ),
        _ => return None,
    };
    Some((hop, state))
}

/// The fault implementing `kind`.
pub fn build(kind: &FaultKind) -> Box<dyn Fault> {
    if let Some((hop, state)) = link_state(kind) {
        return Link::new(hop, state);
    }
    match kind.clone() {
        FaultKind::Latency { .. }
        | FaultKind::Bandwidth { .. }
        | FaultKind::Loss { .. }
        | FaultKind::Partition { .. }
        | FaultKind::LinkDown { .. } => unreachable!("link faults are built above"),
        FaultKind::Kill { node } => Box::new(NodeFault {
            node,
            action: NodeAction::Kill,
        }),
        FaultKind::Stop { node, mode } => Box::new(NodeFault {
            node,
            action: NodeAction::Stop(mode),
        }),
        FaultKind::Pause { node } => Box::new(NodeFault {
            node,
            action: NodeAction::Pause,
        }),
        FaultKind::ReplayPause => Box::new(ReplayPause),
        FaultKind::ReplayDelay { delay } => Box::new(ReplayDelay { delay }),
        FaultKind::ReplicatorStop => Box::new(ReplicatorStop),
        FaultKind::PrimaryFailure => Box::new(PrimaryFailure),
        FaultKind::CatalogChurn { every } => Box::new(CatalogChurn {
            every,
            task: std::sync::Mutex::new(None),
            stats: Default::default(),
        }),
        FaultKind::Checkpoint => Box::new(Checkpoint::default()),
    }
}

struct Link {
    hop: Hop,
    /// Tells this fault's state apart from others in force on the same hop.
    id: u64,
    state: LinkState,
}

impl Link {
    fn new(hop: Hop, state: LinkState) -> Box<Link> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(Link { hop, id, state })
    }
}

#[async_trait]
impl Fault for Link {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        env.link_add(self.hop, self.id, &self.state).await
    }
    async fn heal(&self, env: &FaultEnv) -> Result<()> {
        env.link_remove(self.hop, self.id).await
    }
}

enum NodeAction {
    Kill,
    Stop(StopMode),
    Pause,
}

struct NodeFault {
    node: String,
    action: NodeAction,
}

#[async_trait]
impl Fault for NodeFault {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        let n = env.node(&self.node)?;
        env.require_owned(&n)?;
        match self.action {
            NodeAction::Kill => n.kill().await,
            NodeAction::Stop(mode) => n.stop(mode).await,
            NodeAction::Pause => n.pause().await,
        }
    }
    async fn heal(&self, env: &FaultEnv) -> Result<()> {
        let n = env.node(&self.node)?;
        let relink = |res: Result<()>| res.map_err(|e| e.context("putting its link state back"));
        match self.action {
            // A link change that could not reach the paused node's namespace is made now.
            NodeAction::Pause => {
                let resumed = n.resume().await;
                both(resumed, relink(env.reassert_links(&self.node).await))
            }
            // A node that is running again (or was never stopped) needs nothing.
            _ if n.control().is_running().await => Ok(()),
            _ => {
                // A machine that went down with the node (a container) comes back without
                // the link faults still in force: put them back before the server starts and
                // its first replication connection could slip through.
                n.control().boot().await?;
                let relinked = relink(env.reassert_links(&self.node).await);
                // Started all the same when they could not be put back: a node left down is
                // a worse rehearsal than a link fault missing for a while.
                let started = n.start().await;
                both(started, relinked)
            }
        }
    }
}

/// `first`'s outcome, with `then`'s error added to it (or in its place when `first` went well).
fn both(first: Result<()>, then: Result<()>) -> Result<()> {
    match (first, then) {
        (Err(a), Err(b)) => Err(a.also(&b)),
        (a, b) => a.and(b),
    }
}

struct ReplayPause;

#[async_trait]
impl Fault for ReplayPause {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        env.b()
            .execute("postgres", "SELECT pg_wal_replay_pause()")
            .await
    }
    async fn heal(&self, env: &FaultEnv) -> Result<()> {
        let b = env.b();
        if b.in_recovery().await? {
            b.execute("postgres", "SELECT pg_wal_replay_resume()")
                .await?;
        }
        Ok(())
    }
}

struct ReplayDelay {
    delay: Duration,
}

#[async_trait]
impl Fault for ReplayDelay {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        let b = env.b();
        // ALTER SYSTEM refuses to run inside a transaction block, which a multi-statement
        // batch is: two round trips.
        b.execute(
            "postgres",
            &format!(
                "ALTER SYSTEM SET recovery_min_apply_delay = '{}ms'",
                self.delay.as_millis()
            ),
        )
        .await?;
        b.execute("postgres", "SELECT pg_reload_conf()").await
    }
    async fn heal(&self, env: &FaultEnv) -> Result<()> {
        let b = env.b();
        b.execute("postgres", "ALTER SYSTEM RESET recovery_min_apply_delay")
            .await?;
        b.execute("postgres", "SELECT pg_reload_conf()").await
    }
}

struct ReplicatorStop;

#[async_trait]
impl Fault for ReplicatorStop {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        env.replicator.stop(&env.c).await
    }
    async fn heal(&self, env: &FaultEnv) -> Result<()> {
        env.replicator.resume(&env.c).await
    }
}

struct PrimaryFailure;

#[async_trait]
impl Fault for PrimaryFailure {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        env.require_owned(&env.a)?;
        env.a.kill().await.step("primary failure: killing a")?;
        env.events.lock().expect("events").killed_ms = Some(env.now_ms());
        env.b()
            .promote()
            .await
            .step("primary failure: promoting b")?;
        env.events.lock().expect("events").promoted_ms = Some(env.now_ms());
        // Pin B's data as the promotion left it — all it will ever have from A, none of its
        // own writes yet — before writes follow it there; it is read right after, while the
        // workload already runs on B. The RPO is judged on it.
        let pinned = match env.workload_tables() {
            [] => None,
            _ => Some(pin_rows(env.b(), &env.db).await),
        };
        // Writes, heartbeats and fences follow the new primary from here on.
        env.set_primary(env.b().clone());
        if let Some(pinned) = pinned {
            let rows = match pinned {
                Ok(p) => p.read(env.workload_tables()).await,
                Err(e) => Err(e),
            };
            let rows = match rows {
                Ok(r) => {
                    tracing::info!(
                        "read {} workload rows on {} as the promotion left them",
                        r.rows(),
                        r.node()
                    );
                    Ok(Arc::new(r))
                }
                Err(e) => {
                    tracing::warn!("cannot read b's rows at promotion: {e}");
                    Err(crate::secret::redact(&e.to_string()))
                }
            };
            env.events.lock().expect("events").b_rows_at_promotion = Some(rows);
        }
        Ok(())
    }
    async fn heal(&self, _env: &FaultEnv) -> Result<()> {
        // A stays down: after a real primary failure it is rebuilt, not restarted into the chain.
        Ok(())
    }
}

/// A snapshot of `b`'s rows in `db`, pinned now.
async fn pin_rows(b: &crate::node::Node, db: &str) -> Result<PinnedRows> {
    let client = b.connect(db).await?;
    PinnedRows::pin(client, b.name()).await
}

struct CatalogChurn {
    every: Duration,
    task: std::sync::Mutex<Option<AbortOnDropHandle<()>>>,
    /// Shared with the background task: the run's record reads it while the churn goes on.
    stats: Arc<std::sync::Mutex<ChurnRecord>>,
}

/// One round of the churn PostgreSQL's recovery test 035 uses to provoke a recovery conflict:
/// catalog rows created and deleted, then vacuumed away, in the slot's database (pg_class) and
/// in a shared catalog (pg_authid).
const CHURN: &[&str] = &[
    "CREATE TABLE pgrehearse.churn ()",
    "DROP TABLE pgrehearse.churn",
    "VACUUM FULL pg_class",
    "VACUUM pg_class",
    "CREATE ROLE pgrehearse_churn",
    "DROP ROLE pgrehearse_churn",
    "VACUUM pg_authid",
];

/// What a round cut short can leave behind; without it every later CREATE would fail too.
const CHURN_CLEANUP: &str =
    "DROP TABLE IF EXISTS pgrehearse.churn; DROP ROLE IF EXISTS pgrehearse_churn";

/// How long the cleanup after the churn may take: it can also wait for a lock held by a round
/// the heal cut short (its commit still waiting for a synchronous standby), and it is best
/// effort, so it gives up rather than hold the heal up.
const CHURN_CLEANUP_PATIENCE: Duration = Duration::from_secs(10);

/// A's physical slots and the horizons they hold for their standbys.
const PHYSICAL_SLOTS: &str = "SELECT slot_name, coalesce(xmin::text, 'null'), \
     coalesce(catalog_xmin::text, 'null') FROM pg_replication_slots \
     WHERE slot_type = 'physical' ORDER BY slot_name";

/// Run one churn round on `c`; the error names the statement it hit.
async fn churn_round(c: &tokio_postgres::Client) -> std::result::Result<(), String> {
    for stmt in CHURN {
        if let Err(e) = c.batch_execute(stmt).await {
            return Err(format!("{stmt}: {}", crate::error::Error::from(e)));
        }
    }
    Ok(())
}

/// A's physical slots ("b: xmin 790, catalog_xmin 785") and whether one of them holds a
/// horizon back; None when they cannot be read or there are none. Either column counts: until
/// B's feedback reports its slots' catalog_xmin apart, it folds it into xmin, and VACUUM of a
/// catalog keeps rows newer than the older of the two.
async fn physical_slots(c: &tokio_postgres::Client) -> Option<(String, bool)> {
    let rows: Vec<_> = c
        .simple_query(PHYSICAL_SLOTS)
        .await
        .ok()?
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let held = rows
        .iter()
        .any(|r| r.get(1) != Some("null") || r.get(2) != Some("null"));
    let text = rows
        .iter()
        .map(|r| {
            format!(
                "{}: xmin {}, catalog_xmin {}",
                r.get(0).unwrap_or("?"),
                r.get(1).unwrap_or("?"),
                r.get(2).unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some((text, held))
}

impl ChurnRecord {
    fn failed(&mut self, error: String) {
        self.failed_rounds += 1;
        if self.first_error.is_none() {
            tracing::warn!("catalog churn on a: {error}");
            self.first_error = Some(crate::secret::redact(&error));
        }
    }
}

#[async_trait]
impl Fault for CatalogChurn {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        let a = env.a.clone();
        env.require_owned(&a)?;
        let db = env.db.clone();
        let every = self.every;
        let stats = self.stats.clone();
        // Connect now so a failure is reported at injection, not lost in a background task.
        let first = a.connect(&db).await?;
        let task = tokio::spawn(async move {
            let mut client = Some(first);
            let mut dirty = false;
            loop {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = match a.connect(&db).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            stats
                                .lock()
                                .expect("churn stats")
                                .failed(format!("connecting: {e}"));
                            None
                        }
                    };
                }
                if let Some(c) = &client {
                    if dirty {
                        dirty = c.batch_execute(CHURN_CLEANUP).await.is_err();
                    }
                    let round = churn_round(c).await;
                    // Read after the round, not during it: the horizon A's VACUUM just worked
                    // against, as far as one read can tell.
                    let slots = match round {
                        Ok(()) => physical_slots(c).await,
                        Err(_) => None,
                    };
                    let mut st = stats.lock().expect("churn stats");
                    match round {
                        Ok(()) => {
                            st.rounds += 1;
                            if let Some((text, held)) = slots {
                                st.rounds_horizon_held += u64::from(held);
                                st.a_physical_slots = Some(text);
                            }
                        }
                        Err(e) => {
                            dirty = true;
                            st.failed(e);
                        }
                    }
                }
                // Pacing between rounds (the scenario's `every`), not a wait for anything.
                tokio::time::sleep(every).await;
            }
        });
        *self.task.lock().expect("churn task") = Some(AbortOnDropHandle::new(task));
        Ok(())
    }
    async fn heal(&self, env: &FaultEnv) -> Result<()> {
        let task = self.task.lock().expect("churn task").take();
        if let Some(t) = task {
            t.abort();
            // Stopped anywhere, perhaps between a CREATE and its DROP: leave no role or table
            // behind on a. Best effort — a may be down by now, and nothing depends on it.
            let _ = t.await;
            // Committed locally, in a session of its own: on a synchronous primary whose
            // standby cannot confirm it (the very state a fault may have left), a cleanup waiting
            // for it would never return.
            let cleanup = async {
                let c = env.a.connect(&env.db).await?;
                let sql = format!("SET synchronous_commit = local; {CHURN_CLEANUP}");
                crate::node::batch_execute_within(&c, &sql, CHURN_CLEANUP_PATIENCE).await
            };
            if let Err(e) = cleanup.await {
                tracing::debug!("catalog churn cleanup on a: {e}");
            }
        }
        Ok(())
    }
    fn annotate(&self, record: &mut FaultRecord) {
        record.churn = Some(self.stats.lock().expect("churn stats").clone());
    }
}

/// How long a checkpoint fault waits for b to replay the primary's checkpoint before making
/// its restartpoint anyway: long enough for a standby that is merely behind, short enough not
/// to hold up the rest of the timeline behind a cut or paused b.
const CHECKPOINT_REPLAY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Default)]
struct Checkpoint {
    record: std::sync::Mutex<Option<super::model::CheckpointRecord>>,
}

/// pg_control_checkpoint().redo_lsn: where recovery would start, moved by a checkpoint on a
/// primary and by a restartpoint on a standby.
async fn redo_lsn(n: &crate::node::Node) -> Result<crate::node::Lsn> {
    let v = n
        .query_one("postgres", "SELECT redo_lsn FROM pg_control_checkpoint()")
        .await?;
    v.unwrap_or_default()
        .parse()
        .map_err(|e: String| crate::Error::internal(e).with_node(n.name()))
}

/// Wait until b has replayed `target`, or say why it has not: replay paused (it will not get
/// there), or not there within the patience (a cut or slow hop).
async fn b_replays(
    b: &crate::node::Node,
    target: crate::node::Lsn,
) -> std::result::Result<u64, String> {
    use crate::wait::{Check, wait_for};
    let start = std::time::Instant::now();
    let client = b.connect("postgres").await.map_err(|e| e.to_string())?;
    let what = format!("{} to replay {target}", b.name());
    let res = wait_for(&what, CHECKPOINT_REPLAY_PATIENCE, || async {
        let row = client
            .query_one(
                "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text, \
                 pg_is_wal_replay_paused()",
                &[],
            )
            .await?;
        let replay: Option<String> = row.get(0);
        let receive: Option<String> = row.get(1);
        let paused: bool = row.get(2);
        let seen = format!(
            "replay_lsn = {}, receive_lsn = {}",
            replay.as_deref().unwrap_or("NULL"),
            receive.as_deref().unwrap_or("NULL")
        );
        Ok(
            match replay
                .as_deref()
                .and_then(|v| v.parse::<crate::node::Lsn>().ok())
            {
                Some(l) if l >= target => Check::Done(Ok(())),
                // Paused replay never gets there: no point in waiting out the patience.
                _ if paused => Check::Done(Err(format!("replay paused on b, {seen}"))),
                _ => Check::NotYet(seen),
            },
        )
    })
    .await;
    match res {
        Ok(Ok(())) => Ok(start.elapsed().as_millis() as u64),
        Ok(Err(why)) => Err(why),
        Err(e) => Err(e.to_string().replace('\n', " ")),
    }
}

#[async_trait]
impl Fault for Checkpoint {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        let p = env.primary();
        p.execute("postgres", "CHECKPOINT").await?;
        let mut rec = super::model::CheckpointRecord {
            primary: p.name().to_string(),
            primary_redo: redo_lsn(&p).await.ok(),
            primary_lsn: p.lsn(crate::node::LsnKind::Write).await.ok(),
            ..Default::default()
        };
        let b = env.b();
        if b.name() != p.name() {
            // On a standby CHECKPOINT is a restartpoint, the moment old WAL is removed there;
            // it can only use a checkpoint record b has replayed.
            match rec.primary_lsn {
                Some(target) => match b_replays(b, target).await {
                    Ok(ms) => rec.b_replayed_in_ms = Some(ms),
                    Err(why) => {
                        tracing::warn!(
                            "b had not replayed {}'s checkpoint at {target}: {why}",
                            p.name()
                        );
                        rec.b_not_reached = Some(why);
                    }
                },
                None => rec.b_not_reached = Some(format!("{}'s WAL position not read", p.name())),
            }
            rec.b_redo_before = redo_lsn(b).await.ok();
            let res = b.execute("postgres", "CHECKPOINT").await;
            rec.b_redo_after = redo_lsn(b).await.ok();
            tracing::info!("checkpoint: {}", rec.describe());
            *self.record.lock().expect("checkpoint record") = Some(rec);
            return res;
        }
        *self.record.lock().expect("checkpoint record") = Some(rec);
        Ok(())
    }
    async fn heal(&self, _env: &FaultEnv) -> Result<()> {
        Ok(())
    }
    fn annotate(&self, record: &mut FaultRecord) {
        record.checkpoint = self.record.lock().expect("checkpoint record").clone();
    }
}
