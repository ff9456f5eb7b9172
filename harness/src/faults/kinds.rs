//! One [`Fault`] per kind: how to inject it and how to heal it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::task::AbortOnDropHandle;

use super::model::{FaultKind, Hop};
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
}

/// The fault implementing `kind`.
pub fn build(kind: &FaultKind) -> Box<dyn Fault> {
    match kind.clone() {
        FaultKind::Latency {
            hop,
            latency,
            jitter,
        } => Link::new(
            hop,
            LinkState {
                latency,
                jitter,
                ..Default::default()
            },
        ),
        FaultKind::Bandwidth { hop, bytes_per_sec } => Link::new(
            hop,
            LinkState {
                bandwidth: Some(bytes_per_sec),
                ..Default::default()
            },
        ),
        FaultKind::Loss { hop, percent } => Link::new(
            hop,
            LinkState {
                loss: percent / 100.0,
                ..Default::default()
            },
        ),
        FaultKind::Partition { hop } => Link::new(
            hop,
            LinkState {
                mode: LinkMode::Blackhole,
                ..Default::default()
            },
        ),
        FaultKind::LinkDown { hop } => Link::new(
            hop,
            LinkState {
                mode: LinkMode::Down,
                ..Default::default()
            },
        ),
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
        }),
        FaultKind::Checkpoint => Box::new(Checkpoint),
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
        match self.action {
            NodeAction::Pause => n.resume().await,
            // A node that is running again (or was never stopped) needs nothing.
            _ if n.control().is_running().await => Ok(()),
            _ => {
                // A machine that went down with the node (a container) comes back without
                // the link faults still in force: put them back before the server starts and
                // its first replication connection could slip through.
                if n.control().boot().await? {
                    env.reassert_links(&self.node).await?;
                }
                n.start().await
            }
        }
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

#[async_trait]
impl Fault for CatalogChurn {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        let a = env.a.clone();
        env.require_owned(&a)?;
        let db = env.db.clone();
        let every = self.every;
        // Connect now so a failure is reported at injection, not lost in a background task.
        let first = a.connect(&db).await?;
        let task = tokio::spawn(async move {
            let mut client = Some(first);
            loop {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = a.connect(&db).await.ok();
                }
                if let Some(c) = &client {
                    for stmt in CHURN {
                        if c.batch_execute(stmt).await.is_err() {
                            break;
                        }
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        *self.task.lock().expect("churn task") = Some(AbortOnDropHandle::new(task));
        Ok(())
    }
    async fn heal(&self, _env: &FaultEnv) -> Result<()> {
        if let Some(t) = self.task.lock().expect("churn task").take() {
            t.abort();
        }
        Ok(())
    }
}

struct Checkpoint;

#[async_trait]
impl Fault for Checkpoint {
    async fn inject(&self, env: &FaultEnv) -> Result<()> {
        let p = env.primary();
        p.execute("postgres", "CHECKPOINT").await?;
        let b = env.b();
        if b.name() != p.name() {
            // On a standby CHECKPOINT is a restartpoint: the moment old WAL is removed there.
            b.execute("postgres", "CHECKPOINT").await?;
        }
        Ok(())
    }
    async fn heal(&self, _env: &FaultEnv) -> Result<()> {
        Ok(())
    }
}
