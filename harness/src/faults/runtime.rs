//! Running faults on a timeline, relative to the start of the workload, and always healing
//! them: when their time comes, when the workload ends, or when the run is cut short.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use super::kinds::{self, Fault};
use super::link::LinkControl;
use super::model::{FaultRecord, FaultSpec, Hop};
use super::proxy::LinkState;
use crate::chain::Replicator;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::workload::{BuiltinTable, RowSnapshot, Target};

fn hop_index(hop: Hop) -> usize {
    match hop {
        Hop::AB => 0,
        Hop::BC => 1,
    }
}

/// Failover moments recorded by the primary-failure fault.
#[derive(Debug, Default, Clone)]
pub struct FailoverEvents {
    /// A was killed (ms since workload start).
    pub killed_ms: Option<i64>,
    /// B accepted writes.
    pub promoted_ms: Option<i64>,
    /// B's workload rows as the promotion left them, before the workload or the heartbeat
    /// wrote to B: everything B ever got from A, and nothing else. The RPO is judged on these,
    /// not on B's final state, where a later write on B can cover a write A lost. An error
    /// text when they could not be read; None when no workload tables were named or the
    /// failover did not get that far.
    pub b_rows_at_promotion: Option<std::result::Result<Arc<RowSnapshot>, String>>,
}

/// The fault-capable links on each hop, when the chain was built with them.
#[derive(Default)]
pub struct Links {
    /// A → B.
    pub ab: Option<Arc<dyn LinkControl>>,
    /// B → C.
    pub bc: Option<Arc<dyn LinkControl>>,
}

/// What faults act on.
pub struct FaultEnv {
    /// The original primary.
    pub a: Node,
    b: Node,
    /// The target.
    pub c: Node,
    /// The B → C replicator.
    pub replicator: Arc<dyn Replicator>,
    /// Replicated database.
    pub db: String,
    links: Arc<Links>,
    /// The link faults in force on each hop (A→B, B→C), by fault id: a hop does what they add
    /// up to, so healing one leaves the others in force.
    layers: [tokio::sync::Mutex<Vec<(u64, LinkState)>>; 2],
    primary: watch::Sender<Node>,
    target: Option<watch::Sender<Target>>,
    /// Failover moments.
    pub events: Mutex<FailoverEvents>,
    clock: Instant,
    /// The workload's tables, read on B at promotion (none: nothing is read).
    workload_tables: Vec<BuiltinTable>,
}

impl FaultEnv {
    /// Faults on `a`, `b`, `c`. `primary` and `target` are the channels the heartbeat and the
    /// workload follow; `clock` is the workload's start.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        a: Node,
        b: Node,
        c: Node,
        replicator: Arc<dyn Replicator>,
        db: &str,
        links: Arc<Links>,
        primary: watch::Sender<Node>,
        target: Option<watch::Sender<Target>>,
        clock: Instant,
    ) -> FaultEnv {
        FaultEnv {
            a,
            b,
            c,
            replicator,
            db: db.to_string(),
            links,
            layers: Default::default(),
            primary,
            target,
            events: Mutex::default(),
            clock,
            workload_tables: Vec::new(),
        }
    }

    /// Read these workload tables on B the moment it is promoted, before writes follow it
    /// there ([`FailoverEvents::b_rows_at_promotion`]).
    pub fn with_workload_tables(mut self, tables: &[BuiltinTable]) -> FaultEnv {
        self.workload_tables = tables.to_vec();
        self
    }

    /// The workload tables read on B at promotion.
    pub fn workload_tables(&self) -> &[BuiltinTable] {
        &self.workload_tables
    }

    /// Milliseconds since the workload started.
    pub fn now_ms(&self) -> i64 {
        self.clock.elapsed().as_millis() as i64
    }

    /// The hot standby (a primary after promotion).
    pub fn b(&self) -> &Node {
        &self.b
    }

    /// The node taking writes now.
    pub fn primary(&self) -> Node {
        self.primary.borrow().clone()
    }

    /// Point heartbeat and workload at a new primary.
    pub fn set_primary(&self, n: Node) {
        tracing::info!(
            "{} is the primary now; workload and heartbeat follow",
            n.name()
        );
        if let Some(t) = &self.target {
            t.send_replace(Target {
                node: n.name().to_string(),
                conn: n.admin().with_db(&self.db),
            });
        }
        self.primary.send_replace(n);
    }

    /// Node `name` ("a", "b", "c").
    ///
    /// # Errors
    /// Usage error for another name.
    pub fn node(&self, name: &str) -> Result<Node> {
        match name {
            "a" => Ok(self.a.clone()),
            "b" => Ok(self.b.clone()),
            "c" => Ok(self.c.clone()),
            _ => Err(Error::usage(format!(
                "no node {name:?} in the chain (a, b, c)"
            ))),
        }
    }

    /// The link on `hop`.
    ///
    /// # Errors
    /// Internal error when the chain was built without fault-capable links.
    pub fn link(&self, hop: Hop) -> Result<&dyn LinkControl> {
        let l = match hop {
            Hop::AB => &self.links.ab,
            Hop::BC => &self.links.bc,
        };
        l.as_deref().ok_or_else(|| {
            Error::internal(format!(
                "link fault on {hop}, but the chain has no fault-capable link on {hop}"
            ))
        })
    }

    /// Put link fault `id`'s `state` in force on `hop`, on top of the others there.
    ///
    /// # Errors
    /// Environment error when the link cannot do it here; nothing changes then.
    pub async fn link_add(&self, hop: Hop, id: u64, state: &LinkState) -> Result<()> {
        let link = self.link(hop)?;
        link.check(state)?;
        let mut layers = self.layers[hop_index(hop)].lock().await;
        layers.push((id, state.clone()));
        let res = link
            .apply(&LinkState::combine(layers.iter().map(|(_, s)| s)))
            .await;
        if let Err(e) = &res
            && e.kind() == crate::ErrorKind::Environment
        {
            // Not in force after all: put back what the others add up to.
            layers.retain(|(i, _)| *i != id);
            let _ = link
                .apply(&LinkState::combine(layers.iter().map(|(_, s)| s)))
                .await;
        }
        res
    }

    /// Heal link fault `id` on `hop`; the other faults there stay in force.
    ///
    /// # Errors
    /// What the link reports.
    pub async fn link_remove(&self, hop: Hop, id: u64) -> Result<()> {
        let link = self.link(hop)?;
        let mut layers = self.layers[hop_index(hop)].lock().await;
        layers.retain(|(i, _)| *i != id);
        link.apply(&LinkState::combine(layers.iter().map(|(_, s)| s)))
            .await
    }

    /// Put the link state in force back on the hops that touch node `name` — also when no link
    /// fault is in force any more: a node whose machine restarted (a container after SIGKILL)
    /// comes back with a fresh network namespace, without them, and one that was paused may
    /// have missed a change (a heal) that nothing could bring into its namespace meanwhile.
    ///
    /// # Errors
    /// What the links report, every hop tried: one that fails does not keep the other's faults
    /// out.
    pub async fn reassert_links(&self, name: &str) -> Result<()> {
        let mut failed = Vec::new();
        for (hop, ends) in [(Hop::AB, ["a", "b"]), (Hop::BC, ["b", "c"])] {
            if !ends.contains(&name) {
                continue;
            }
            let Ok(link) = self.link(hop) else {
                continue;
            };
            let layers = self.layers[hop_index(hop)].lock().await;
            if let Err(e) = link
                .reassert(&LinkState::combine(layers.iter().map(|(_, s)| s)))
                .await
            {
                failed.push(e);
            }
        }
        let mut failed = failed.into_iter();
        match failed.next() {
            None => Ok(()),
            Some(first) => Err(failed.fold(first, |e, next| e.also(&next))),
        }
    }

    /// Refuse destructive faults on servers pgrehearse did not create.
    ///
    /// # Errors
    /// Usage error naming the node.
    pub fn require_owned(&self, n: &Node) -> Result<()> {
        if n.owned() {
            return Ok(());
        }
        Err(Error::usage(format!(
            "refusing a destructive fault on {}: pgrehearse did not create this server",
            n.name()
        ))
        .with_hint("destructive faults (kill, stop, pause, primary failure) run only on servers pgrehearse created: remove the fault from the scenario"))
    }
}

struct Entry {
    spec: FaultSpec,
    fault: Box<dyn Fault>,
}

struct State {
    records: Vec<FaultRecord>,
    active: Vec<bool>,
}

/// A running fault timeline.
pub struct Timeline {
    entries: Arc<Vec<Entry>>,
    state: Arc<Mutex<State>>,
    // Dropped with the timeline (an interrupted run): nothing is injected or healed behind
    // the teardown's back.
    task: Option<AbortOnDropHandle<()>>,
}

impl Timeline {
    /// Start the faults in `specs` against `env`. Faults without `heal_at` heal at
    /// `default_heal` (the end of the workload); one-shot faults never heal.
    pub fn start(specs: &[FaultSpec], env: Arc<FaultEnv>, default_heal: Duration) -> Timeline {
        let entries: Arc<Vec<Entry>> = Arc::new(
            specs
                .iter()
                .map(|s| Entry {
                    spec: s.clone(),
                    fault: kinds::build(&s.kind),
                })
                .collect(),
        );
        let state = Arc::new(Mutex::new(State {
            records: entries
                .iter()
                .map(|e| FaultRecord {
                    kind: e.spec.kind.name().to_string(),
                    description: e.spec.kind.describe(),
                    injected_ms: None,
                    healed_ms: None,
                    error: None,
                    churn: None,
                    checkpoint: None,
                })
                .collect(),
            active: vec![false; entries.len()],
        }));
        // (time, entry, inject?) sorted by time; heals before injections at the same instant.
        let mut events: Vec<(Duration, usize, bool)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            events.push((e.spec.at, i, true));
            if !e.spec.kind.one_shot() {
                events.push((
                    e.spec.heal_at.unwrap_or(default_heal).max(e.spec.at),
                    i,
                    false,
                ));
            }
        }
        events.sort_by_key(|(t, i, inject)| (*t, *inject, *i));
        let (en, st) = (entries.clone(), state.clone());
        let task = AbortOnDropHandle::new(tokio::spawn(async move {
            let start = tokio::time::Instant::now() - env.clock.elapsed();
            for (t, i, inject) in events {
                // Scheduling, not synchronisation: the fault happens at its time on the timeline.
                tokio::time::sleep_until(start + t).await;
                if inject {
                    apply(&en[i], i, &st, &env, true).await;
                } else if st.lock().expect("timeline").active[i] {
                    apply(&en[i], i, &st, &env, false).await;
                }
            }
        }));
        Timeline {
            entries,
            state,
            task: Some(task),
        }
    }

    /// Wait until every scheduled injection and heal has happened.
    pub async fn wait(&mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Cancel what is still scheduled and heal every fault that is active. Always call this
    /// when the run ends, however it ends.
    pub async fn heal_all(&mut self, env: &FaultEnv) -> Vec<FaultRecord> {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        self.in_force().heal(env).await;
        self.records()
    }

    /// A handle on the faults in force, which outlives the timeline.
    pub fn in_force(&self) -> InForce {
        InForce {
            entries: self.entries.clone(),
            state: self.state.clone(),
        }
    }

    /// What happened so far, with what each fault saw while in force.
    pub fn records(&self) -> Vec<FaultRecord> {
        self.in_force().records()
    }

    /// When the last heal happened (ms since workload start).
    pub fn last_heal_ms(&self) -> Option<i64> {
        self.records()
            .iter()
            .filter_map(|r| r.healed_ms.map(|h| h as i64))
            .max()
    }
}

/// The faults a timeline has in force, for healing them after the timeline itself was dropped:
/// an interrupted run whose chain is kept must not keep a paused node or a cut link with it.
#[derive(Clone)]
pub struct InForce {
    entries: Arc<Vec<Entry>>,
    state: Arc<Mutex<State>>,
}

impl InForce {
    /// What happened so far, with what each fault saw while in force: a run cut short still
    /// reports its fault windows.
    pub fn records(&self) -> Vec<FaultRecord> {
        let mut records = self.state.lock().expect("timeline").records.clone();
        for (r, e) in records.iter_mut().zip(self.entries.iter()) {
            if r.injected_ms.is_some() {
                e.fault.annotate(r);
            }
        }
        records
    }

    /// Heal every fault in force (also one whose injection was cut short). Returns how many
    /// were healed or tried.
    pub async fn heal(&self, env: &FaultEnv) -> usize {
        let mut n = 0;
        for (i, e) in self.entries.iter().enumerate() {
            if self.state.lock().expect("timeline").active[i] {
                apply(e, i, &self.state, env, false).await;
                n += 1;
            }
        }
        n
    }
}

async fn apply(e: &Entry, i: usize, st: &Mutex<State>, env: &FaultEnv, inject: bool) {
    let verb = if inject { "injecting" } else { "healing" };
    tracing::info!(
        "t={:.1}s {verb} {}",
        env.now_ms() as f64 / 1000.0,
        e.spec.kind.describe()
    );
    // Times are when the action started: a primary failure takes seconds to complete (the
    // promotion), but the fault happened when A died.
    let now = env.now_ms().max(0) as u64;
    if inject {
        // In force from the first step: an injection cut short (the run interrupted) is
        // healed like a finished one.
        st.lock().expect("timeline").active[i] = !e.spec.kind.one_shot();
    }
    let res = if inject {
        e.fault.inject(env).await
    } else {
        e.fault.heal(env).await
    };
    let mut s = st.lock().expect("timeline");
    match res {
        Ok(()) => {
            if inject {
                s.records[i].injected_ms = Some(now);
                s.active[i] = !e.spec.kind.one_shot();
            } else {
                s.records[i].healed_ms = Some(now);
                s.active[i] = false;
            }
        }
        Err(err) => {
            tracing::warn!("{verb} {} failed: {err}", e.spec.kind.describe());
            let msg = match err.hint() {
                Some(hint) => format!("{verb}: {err} (hint: {hint})"),
                None => format!("{verb}: {err}"),
            };
            let msg = crate::secret::redact(&msg);
            s.records[i].error = Some(match s.records[i].error.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
            if inject && err.kind() == crate::ErrorKind::Environment {
                // The backend cannot do this fault here (no netem, no iptables in the image):
                // nothing was changed, so nothing is in force and nothing needs healing.
                s.records[i].injected_ms = None;
                s.active[i] = false;
            } else if inject {
                // Half-injected faults still get healed.
                s.records[i].injected_ms = Some(now);
                s.active[i] = !e.spec.kind.one_shot();
            } else {
                s.active[i] = false;
            }
        }
    }
}
