//! The chain: A (primary) → physical streaming → B (hot standby) → logical decoding on B → C.
//!
//! Built in the order of the migration runbook, one public step per phase so tests can follow
//! the same procedure: [`Chain::init_primary_and_target`], seed A, [`Chain::publish`],
//! [`Chain::init_standby`], [`Chain::init_target_schema`], then the replicator's
//! [`Replicator::start`]; [`Chain::build`] runs them all.

mod bypass;
mod nudge;
mod replicator;
mod schema;
mod seed;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use bypass::Bypass;
pub use nudge::Nudger;
pub use replicator::{NativeSubscription, Replicator};
pub use schema::copy_schema;
pub use seed::{DataSeed, load_seed, preflight_notes};

use crate::backend::{Backend, Credentials};
use crate::error::{Error, Result, ResultExt};
use crate::node::{CatchupMode, LsnKind, Node, NodeSpec, Role};
use crate::util::{quote_ident, quote_literal};
use crate::wait::{Check, wait_for};

/// Schema on every node holding the harness's own tables (fence, heartbeat). Verification skips
/// it; replication carries it like any other schema.
pub const HARNESS_SCHEMA: &str = "pgrehearse";

/// What to build.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    /// Database replicated from A to C.
    pub database: String,
    /// Extra settings per node (user overrides from the scenario), applied after the chain's.
    pub a_settings: Vec<(String, String)>,
    /// Settings for B.
    pub b_settings: Vec<(String, String)>,
    /// Settings for C.
    pub c_settings: Vec<(String, String)>,
    /// Fixed ports (None: pick free ones).
    pub ports: [Option<u16>; 3],
    /// Physical slot on A used by B (None: B streams without a slot, as the popular write-up
    /// does; catalog rows B's logical slot needs are then not protected while B is away).
    pub physical_slot: Option<String>,
    /// hot_standby_feedback on B.
    pub hot_standby_feedback: bool,
    /// Publication on A.
    pub publication: String,
    /// Subscription on C (and logical slot on B).
    pub subscription: String,
    /// How long catch-up waits may take.
    pub catchup_timeout: Duration,
    /// How long the initial copy may take.
    pub sync_timeout: Duration,
    /// Put a harness-owned proxy on each hop (A → B, B → C) so link faults can be injected.
    pub proxies: bool,
    /// Seed for the proxies' jitter.
    pub link_seed: u64,
    /// Hops with latency faults: a backend whose network cannot delay packets (containers on
    /// a kernel without netem) routes these through a harness proxy instead.
    pub delayed_hops: Vec<crate::faults::Hop>,
    /// Rehearse slot creation against an idle A: wait until A is idle, create the slot without
    /// nudging, check it still waits after this long, then nudge.
    pub idle_primary: Option<Duration>,
    /// Model Aurora on C: no superuser for the migration; schema and subscription are created
    /// by a member of an rds_superuser-like role.
    pub aurora_like: bool,
}

impl Default for ChainSpec {
    fn default() -> Self {
        ChainSpec {
            database: "app".into(),
            a_settings: Vec::new(),
            b_settings: Vec::new(),
            c_settings: Vec::new(),
            ports: [None; 3],
            physical_slot: Some("b_physical".into()),
            hot_standby_feedback: true,
            publication: "pgrehearse_pub".into(),
            subscription: "pgrehearse_sub".into(),
            catchup_timeout: Duration::from_secs(120),
            sync_timeout: Duration::from_secs(600),
            proxies: false,
            link_seed: 0,
            delayed_hops: Vec::new(),
            idle_primary: None,
            aurora_like: false,
        }
    }
}

/// Time taken by each build phase, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildTimings {
    /// initdb + start of A (and C, in parallel).
    pub primary_ms: u64,
    /// Base backup + start of B + catch-up.
    pub standby_ms: u64,
    /// Schema copy to C.
    pub schema_ms: u64,
    /// Subscription creation + initial copy.
    pub replicate_ms: u64,
}

/// A built chain.
pub struct Chain {
    /// The primary.
    pub a: Node,
    /// The hot standby, which decodes for C.
    pub b: Node,
    /// The target.
    pub c: Node,
    /// What was built.
    pub spec: ChainSpec,
    /// The B → C replicator.
    pub replicator: Arc<dyn Replicator>,
    /// The run's logins.
    pub creds: Credentials,
    /// Phase timings.
    pub timings: BuildTimings,
    /// The proxies on each hop (when built with them).
    pub links: Arc<crate::faults::Links>,
    /// What slot creation against an idle A showed (when rehearsed).
    pub idle_primary: Option<IdlePrimary>,
}

/// Slot creation on B against an idle A: a logical slot on a standby cannot start until B
/// replays a running-xacts record from A. A's bgwriter logs one at most every 15 s, and only
/// when A wrote something since its last one: an idle A writes none until
/// `pg_log_standby_snapshot()` nudges it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdlePrimary {
    /// How long the harness waited for A to fall idle before creating the slot.
    pub idle_after_ms: u64,
    /// How long slot creation was left without a nudge.
    pub waited_without_nudge_ms: u64,
    /// Slot creation was still waiting at the end of that time.
    pub still_waiting_after_idle_wait: bool,
    /// Slot creation finished this long after the first pg_log_standby_snapshot() on A.
    pub completed_after_nudge_ms: Option<u64>,
    /// A wrote WAL while slot creation was left without a nudge (something other than the
    /// harness ran on it, a checkpoint say): a slot created then may have had its
    /// running-xacts record from that, so it shows nothing about an idle A.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub a_wrote_wal_during_wait: bool,
}

/// Settings applied to A only once B is streaming: with synchronous_standby_names set from the
/// start, every commit on A (roles, seed data) would wait for a standby that does not exist yet.
const DEFERRED_A_SETTINGS: &[&str] = &["synchronous_standby_names"];

fn a_settings(spec: &ChainSpec) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = [
        // Decoding happens on B but the WAL is written on A: A must log logical information.
        ("wal_level", "logical"),
        ("max_wal_senders", "20"),
        ("max_replication_slots", "20"),
        ("hot_standby", "on"),
        ("wal_keep_size", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    s.extend(
        spec.a_settings
            .iter()
            .filter(|(k, _)| !DEFERRED_A_SETTINGS.contains(&k.as_str()))
            .cloned(),
    );
    s
}

/// B's settings, given A's values of the settings a hot standby needs at least as high
/// ([`crate::pg::STANDBY_FLOOR`]): raised to A's where B would have less, as the scenario
/// cannot know A's effective values (initdb picks max_connections by the machine).
fn b_settings(spec: &ChainSpec, a_floor: &[(String, i64)]) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = vec![
        ("hot_standby".into(), "on".into()),
        (
            "hot_standby_feedback".into(),
            if spec.hot_standby_feedback {
                "on"
            } else {
                "off"
            }
            .into(),
        ),
        ("wal_level".into(), "logical".into()),
        ("max_wal_senders".into(), "20".into()),
        ("max_replication_slots".into(), "20".into()),
    ];
    s.extend(spec.b_settings.iter().cloned());
    for ((k, v), had) in crate::pg::standby_floor(a_floor, &s) {
        if let Some(had) = had {
            tracing::info!(
                "b: {k} = {v} instead of {had}: a hot standby needs at least a's value, or its \
                 recovery stops"
            );
        }
        s.push((k, v));
    }
    s
}

/// A's values of the settings B needs at least as high.
async fn standby_floor_of(a: &Node) -> Result<Vec<(String, i64)>> {
    let names: Vec<String> = crate::pg::STANDBY_FLOOR
        .iter()
        .map(|n| n.to_string())
        .collect();
    let rows = a
        .connect("postgres")
        .await?
        .query(
            "SELECT name, setting::bigint FROM pg_settings WHERE name = ANY($1)",
            &[&names],
        )
        .await
        .map_err(|e| {
            Error::from(e)
                .context("reading a's settings")
                .with_node(a.name())
        })?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn c_settings(spec: &ChainSpec) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = vec![
        ("max_logical_replication_workers".into(), "8".into()),
        ("max_sync_workers_per_subscription".into(), "4".into()),
        ("max_worker_processes".into(), "16".into()),
    ];
    s.extend(spec.c_settings.iter().cloned());
    s
}

impl Chain {
    /// Phase 1: create A (and C, which needs nothing from A yet, in parallel), the replication
    /// role, the database, the harness schema and B's physical slot.
    ///
    /// # Errors
    /// Whatever failed, naming the node.
    pub async fn init_primary_and_target(
        backend: &dyn Backend,
        spec: &ChainSpec,
        creds: &Credentials,
    ) -> Result<(Node, Node)> {
        let a_spec = NodeSpec {
            settings: a_settings(spec),
            ..NodeSpec::new("a", creds.superuser.clone())
        }
        .with_port(spec.ports[0]);
        let c_spec = NodeSpec {
            settings: c_settings(spec),
            ..NodeSpec::new("c", creds.superuser.clone())
        }
        .with_port(spec.ports[2])
        .with_role(Role::Target);
        let (a, c) = tokio::join!(backend.init_primary(&a_spec), backend.init_primary(&c_spec));
        let (a, c) = (a?, c?);
        let (pa, pc) = tokio::join!(
            Self::prepare_primary(&a, spec, creds),
            Self::prepare_target(&c, spec, creds)
        );
        pa?;
        pc?;
        Ok((a, c))
    }

    /// C's database; on an Aurora-like C also the roles Aurora has instead of a superuser: an
    /// rds_superuser-like group and a migration role that owns the database.
    async fn prepare_target(c: &Node, spec: &ChainSpec, creds: &Credentials) -> Result<()> {
        let db = quote_ident(&spec.database);
        if !spec.aurora_like {
            return c
                .execute("postgres", &format!("CREATE DATABASE {db}"))
                .await
                .step("creating the database on c");
        }
        let m = &creds.migrator;
        let subs = if c.version().major >= 16 {
            ", pg_create_subscription"
        } else {
            ""
        };
        c.execute(
            "postgres",
            &format!(
                "CREATE ROLE rds_superuser NOLOGIN CREATEDB CREATEROLE;
                 GRANT pg_read_all_data, pg_write_all_data, pg_monitor, pg_signal_backend{subs} TO rds_superuser;
                 GRANT SET ON PARAMETER session_replication_role TO rds_superuser;
                 CREATE ROLE {u} LOGIN PASSWORD {p} IN ROLE rds_superuser;",
                u = quote_ident(&m.user),
                p = quote_literal(m.password.expose()),
            ),
        )
        .await
        .step("creating the Aurora-like roles on c")?;
        c.execute(
            "postgres",
            &format!("CREATE DATABASE {db} OWNER {}", quote_ident(&m.user)),
        )
        .await
        .step("creating the database on c")
    }

    /// Roles, database, harness schema and physical slot on A.
    async fn prepare_primary(a: &Node, spec: &ChainSpec, creds: &Credentials) -> Result<()> {
        let r = &creds.replicator;
        a.execute(
            "postgres",
            &format!(
                "CREATE ROLE {u} LOGIN REPLICATION PASSWORD {p}; GRANT pg_read_all_data TO {u};",
                u = quote_ident(&r.user),
                p = quote_literal(r.password.expose()),
            ),
        )
        .await
        .step("creating the replication role on a")?;
        a.execute(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(&spec.database)),
        )
        .await
        .step("creating the database on a")?;
        a.execute(
            &spec.database,
            &format!(
                "CREATE SCHEMA {s};
                 CREATE TABLE {s}.fence (id int PRIMARY KEY, token text NOT NULL, written_at timestamptz NOT NULL DEFAULT now());
                 CREATE TABLE {s}.heartbeat (id int PRIMARY KEY, seq bigint NOT NULL, ts timestamptz NOT NULL);",
                s = HARNESS_SCHEMA
            ),
        )
        .await
        .step("creating the harness schema on a")?;
        if let Some(slot) = &spec.physical_slot {
            a.execute(
                "postgres",
                &format!(
                    "SELECT pg_create_physical_replication_slot({}, true)",
                    quote_literal(slot)
                ),
            )
            .await
            .step("creating the physical slot for b on a")?;
        }
        Ok(())
    }

    /// Phase 2 (after seeding A): the publication, on A, because B is read-only; it reaches B
    /// through WAL like everything else.
    ///
    /// # Errors
    /// Database error.
    pub async fn publish(a: &Node, spec: &ChainSpec) -> Result<()> {
        tracing::info!(
            "creating publication {} on a (FOR ALL TABLES)",
            spec.publication
        );
        a.execute(
            &spec.database,
            &format!(
                "CREATE PUBLICATION {} FOR ALL TABLES",
                quote_ident(&spec.publication)
            ),
        )
        .await
        .step("creating the publication on a")
    }

    /// Phase 3: B from a base backup of A, streaming (through its physical slot), caught up.
    ///
    /// # Errors
    /// Whatever failed, with pg_stat_replication on A.
    pub async fn init_standby(
        backend: &dyn Backend,
        a: &Node,
        via: &crate::node::Endpoint,
        spec: &ChainSpec,
        creds: &Credentials,
    ) -> Result<Node> {
        let a_floor = standby_floor_of(a).await?;
        let b_spec = NodeSpec {
            settings: b_settings(spec, &a_floor),
            ..NodeSpec::new("b", creds.superuser.clone())
        }
        .with_port(spec.ports[1])
        .with_role(Role::Standby);
        let slot = spec.physical_slot.as_deref().unwrap_or("");
        let b = backend
            .init_standby(&b_spec, a, via, &creds.replicator, slot)
            .await?;
        // Poll B itself: A's pg_stat_replication learns B's replay position only from B's
        // status messages, which an idle B sends every wal_receiver_status_interval (10 s).
        let target = a.lsn(LsnKind::Write).await?;
        match b.wait_for_replay(target, spec.catchup_timeout).await {
            Ok(_) => Ok(b),
            // A's side of the hop explains a stuck B: its walsender and B's physical slot.
            Err(e) => Err(a.with_replication_state(e).await),
        }
    }

    /// Where the downstream node of `hop` connects: through a fault-capable link when the spec
    /// asks for one (recorded in `links`), else straight to `upstream`.
    async fn open_link(
        backend: &dyn Backend,
        spec: &ChainSpec,
        hop: crate::faults::Hop,
        upstream: &Node,
        downstream: &str,
        links: &mut crate::faults::Links,
    ) -> Result<crate::node::Endpoint> {
        if !spec.proxies {
            return Ok(backend.peer_endpoint(upstream));
        }
        let seed = spec.link_seed ^ (hop == crate::faults::Hop::BC) as u64;
        let l = backend
            .open_link(
                hop,
                upstream,
                downstream,
                seed,
                spec.delayed_hops.contains(&hop),
            )
            .await?;
        let ep = l
            .endpoint()
            .unwrap_or_else(|| backend.peer_endpoint(upstream));
        match hop {
            crate::faults::Hop::AB => links.ab = Some(l),
            crate::faults::Hop::BC => links.bc = Some(l),
        }
        Ok(ep)
    }

    /// Settings of A that must wait for B (synchronous replication): set with ALTER SYSTEM and
    /// a reload, then wait until A reports B as a synchronous standby.
    async fn apply_deferred_settings(a: &Node, spec: &ChainSpec) -> Result<()> {
        let deferred: Vec<&(String, String)> = spec
            .a_settings
            .iter()
            .filter(|(k, _)| DEFERRED_A_SETTINGS.contains(&k.as_str()))
            .collect();
        if deferred.is_empty() {
            return Ok(());
        }
        for (k, v) in &deferred {
            tracing::info!("b is streaming: setting {k} = {v} on a");
            a.execute(
                "postgres",
                &format!("ALTER SYSTEM SET {} = {}", quote_ident(k), quote_literal(v)),
            )
            .await?;
        }
        a.execute("postgres", "SELECT pg_reload_conf()").await?;
        let client = a.connect("postgres").await?;
        let res = wait_for("a to treat b as a synchronous standby", spec.catchup_timeout, || async {
            let rows = client
                .query("SELECT application_name, sync_state FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')", &[])
                .await?;
            Ok(if rows.is_empty() { Check::NotYet("no synchronous standby yet".into()) } else { Check::Done(()) })
        })
        .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) => Err(a.with_replication_state(e).await),
        }
    }

    /// Phase 4: C's schema, copied from B.
    ///
    /// # Errors
    /// pg_dump / psql errors.
    pub async fn init_target_schema(
        b: &Node,
        c: &Node,
        spec: &ChainSpec,
        creds: &Credentials,
    ) -> Result<()> {
        let load_as = if spec.aurora_like {
            &creds.migrator.user
        } else {
            &c.admin().login.user
        };
        copy_schema(b, c, &spec.database, load_as).await
    }

    /// Build the whole chain. `seed` runs on A after it is created and before B is cloned.
    ///
    /// # Errors
    /// The first phase that failed. Nodes already created stay tracked by the backend, whose
    /// teardown removes them.
    pub async fn build<F, Fut>(
        backend: &dyn Backend,
        spec: ChainSpec,
        creds: Credentials,
        seed: F,
    ) -> Result<Chain>
    where
        F: FnOnce(Node) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let mut timings = BuildTimings::default();
        let t = Instant::now();
        let (a, c) = Self::init_primary_and_target(backend, &spec, &creds).await?;
        timings.primary_ms = t.elapsed().as_millis() as u64;
        seed(a.clone()).await?;
        Self::publish(&a, &spec).await?;
        let mut links = crate::faults::Links::default();
        let via_ab =
            Self::open_link(backend, &spec, crate::faults::Hop::AB, &a, "b", &mut links).await?;
        let t = Instant::now();
        let b = Self::init_standby(backend, &a, &via_ab, &spec, &creds).await?;
        Self::apply_deferred_settings(&a, &spec).await?;
        timings.standby_ms = t.elapsed().as_millis() as u64;
        let t = Instant::now();
        Self::init_target_schema(&b, &c, &spec, &creds).await?;
        timings.schema_ms = t.elapsed().as_millis() as u64;
        let via_bc =
            Self::open_link(backend, &spec, crate::faults::Hop::BC, &b, "c", &mut links).await?;
        let sub = NativeSubscription {
            name: spec.subscription.clone(),
            publication: spec.publication.clone(),
            database: spec.database.clone(),
            login: creds.replicator.clone(),
            sync_timeout: spec.sync_timeout,
            owner: spec.aurora_like.then(|| creds.migrator.clone()),
        };
        let t = Instant::now();
        let idle_primary = match spec.idle_primary {
            Some(wait) => Some(
                sub.start_against_idle_primary(&a, &b, &c, &via_bc, wait)
                    .await?,
            ),
            None => {
                sub.start(Some(&a), &b, &c, &via_bc).await?;
                None
            }
        };
        let replicator: Arc<dyn Replicator> = Arc::new(sub);
        timings.replicate_ms = t.elapsed().as_millis() as u64;
        let chain = Chain {
            a,
            b,
            c,
            spec,
            replicator,
            creds,
            timings,
            links: Arc::new(links),
            idle_primary,
        };
        chain.fence().await?;
        Ok(chain)
    }

    /// The node taking writes now: A, or B after promotion.
    pub fn primary(&self) -> &Node {
        if self.b.role() == Role::Primary {
            &self.b
        } else {
            &self.a
        }
    }

    /// Wait until B's walsender for C has confirmed `target` (default: the primary's insert
    /// LSN now).
    ///
    /// # Errors
    /// Timeout with B's pg_stat_replication and slots.
    pub async fn wait_for_c_catchup(&self, target: Option<crate::node::Lsn>) -> Result<()> {
        let target = match target {
            Some(t) => t,
            None => self.primary().lsn(LsnKind::Write).await?,
        };
        let res = async {
            if self.b.role() == Role::Standby {
                self.b
                    .wait_for_replay(target, self.spec.catchup_timeout)
                    .await?;
            }
            self.b
                .wait_for_catchup(
                    &self.spec.subscription,
                    CatchupMode::Replay,
                    Some(target),
                    self.spec.catchup_timeout,
                )
                .await
        }
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => Err(self.with_chain_state(e).await),
        }
    }

    /// Write a fence row on the primary and wait until C shows it: every transaction committed
    /// before the fence has then been applied on C (the apply worker commits in order).
    ///
    /// # Errors
    /// Timeout with replication state of B and the subscription state of C.
    pub async fn fence(&self) -> Result<Duration> {
        let token = format!("{:016x}", rand::random::<u64>());
        let p = self.primary();
        let start = Instant::now();
        // The fence only has to reach C to be seen. Committed locally it does not wait for a
        // synchronous standby as well: with B unable to confirm it (paused, cut off, down), that commit would block forever
        // and the wait below, which says what is stuck, would never be reached.
        let write = format!(
            "BEGIN; SET LOCAL synchronous_commit = local; \
             INSERT INTO {s}.fence (id, token) VALUES (1, {t}) ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token, written_at = now(); \
             COMMIT",
            s = HARNESS_SCHEMA,
            t = quote_literal(&token)
        );
        let writer = p.connect(&self.spec.database).await?;
        if let Err(e) =
            crate::node::batch_execute_within(&writer, &write, self.spec.catchup_timeout).await
        {
            let e = e.context("writing the fence").with_node(p.name());
            return Err(self.with_chain_state(e).await);
        }
        let client = self.c.connect(&self.spec.database).await?;
        let sql = format!("SELECT token FROM {HARNESS_SCHEMA}.fence WHERE id = 1");
        let res = wait_for(
            format!("fence {token} written on {} to appear on c", p.name()),
            self.spec.catchup_timeout,
            || async {
                let rows = client.query(&sql, &[]).await?;
                let seen: Option<String> = rows.first().map(|r| r.get(0));
                Ok(match seen {
                    Some(t) if t == token => Check::Done(()),
                    other => Check::NotYet(format!(
                        "fence on c: {}",
                        other.as_deref().unwrap_or("(none)")
                    )),
                })
            },
        )
        .await;
        match res {
            Ok(()) => Ok(start.elapsed()),
            Err(e) => Err(self.with_chain_state(e).await),
        }
    }

    /// Attach what explains a stalled chain to an error: either hop may be the one that
    /// stalled, so both ends of both.
    async fn with_chain_state(&self, e: Error) -> Error {
        let subs = crate::node::dump_rows(&self.c, &self.spec.database, "SELECT subname, pid, received_lsn, latest_end_lsn, last_msg_receipt_time FROM pg_stat_subscription").await;
        let receiver = crate::node::dump_rows(&self.b, "postgres", "SELECT status, received_lsn, latest_end_lsn, last_msg_receipt_time FROM pg_stat_wal_receiver").await;
        let e = crate::node::append_detail(
            e,
            &format!("pg_stat_subscription on c:\n{subs}\npg_stat_wal_receiver on b:\n{receiver}"),
        );
        let e = self.a.with_replication_state(e).await;
        self.b.with_replication_state(e).await
    }

    /// What an Aurora-like C models, each point read back from C itself (so the report says
    /// what held, not what was meant); None when C is a plain PostgreSQL.
    ///
    /// # Errors
    /// Database error when C cannot be asked.
    pub async fn target_model(&self) -> Result<Option<String>> {
        if !self.spec.aurora_like {
            return Ok(None);
        }
        let m = &self.creds.migrator.user;
        let row = self
            .c
            .connect(&self.spec.database)
            .await?
            .query_one(
                "SELECT r.rolsuper,
                        pg_has_role(r.oid, 'rds_superuser', 'MEMBER'),
                        has_parameter_privilege(r.oid, 'session_replication_role', 'SET'),
                        (SELECT string_agg(s.subname || ' owned by ' || o.rolname
                                           || CASE WHEN o.rolsuper THEN ' (a superuser)' ELSE ' (not a superuser)' END, ', ')
                           FROM pg_subscription s JOIN pg_roles o ON o.oid = s.subowner),
                        (SELECT pg_get_userbyid(d.datdba) FROM pg_database d WHERE d.datname = current_database())
                   FROM pg_roles r WHERE r.rolname = $1",
                &[m],
            )
            .await?;
        let (superuser, member, set_srr): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
        let subs: Option<String> = row.get(3);
        let owner: String = row.get(4);
        // Tried, as the migration role, on scratch tables that vanish with the transaction.
        let as_migrator = crate::node::ConnInfo {
            endpoint: self.c.admin().endpoint.clone(),
            login: self.creds.migrator.clone(),
            dbname: self.spec.database.clone(),
        }
        .connect(crate::node::CONNECT_TIMEOUT)
        .await?;
        let disable = as_migrator
            .batch_execute(
                "BEGIN;
                 CREATE TEMP TABLE pgrehearse_probe_parent (id int PRIMARY KEY);
                 CREATE TEMP TABLE pgrehearse_probe_child (parent int REFERENCES pgrehearse_probe_parent);
                 ALTER TABLE pgrehearse_probe_child DISABLE TRIGGER ALL;",
            )
            .await;
        let _ = as_migrator.batch_execute("ROLLBACK").await;
        let triggers = match disable {
            Ok(()) => "ALTER TABLE ... DISABLE TRIGGER ALL on a table with a foreign key WORKED for it (on Aurora it fails)".to_string(),
            Err(e) => format!(
                "as on Aurora, ALTER TABLE ... DISABLE TRIGGER ALL on a table with a foreign key fails for it ({})",
                crate::Error::from(e)
            ),
        };
        Ok(Some(format!(
            "c is Aurora-like, as read back from c: the migration role {m} is {} and {} an rds_superuser-like role \
             (pg_read_all_data, pg_write_all_data, pg_monitor, pg_signal_backend, pg_create_subscription, CREATEDB, CREATEROLE); \
             it {} SET session_replication_role (Aurora allows rds_superuser that); the database is owned by {owner}; \
             subscription: {}; {triggers}. \
             Not modelled: parameter groups, storage, the rds.* settings, DMS itself",
            if superuser {
                "a superuser"
            } else {
                "not a superuser"
            },
            if member {
                "a member of"
            } else {
                "NOT a member of"
            },
            if set_srr { "may" } else { "may NOT" },
            subs.as_deref().unwrap_or("none"),
        )))
    }

    /// Fail unless every node answers.
    ///
    /// # Errors
    /// Database error naming the unreachable node.
    pub async fn ping(&self) -> Result<()> {
        for n in [&self.a, &self.b, &self.c] {
            n.query_one("postgres", "SELECT 1").await?;
        }
        Ok(())
    }
}

/// Why the logical slot `slot` on B cannot feed C any more (invalidated or gone), if so; None
/// also when B cannot be asked.
pub(crate) async fn logical_slot_dead(b: &Node, database: &str, slot: &str) -> Option<String> {
    let snap = crate::observe::NodeSnapshot::take(b, database).await;
    if !snap.reachable {
        return None;
    }
    match snap.slots.iter().find(|s| s.slot_name == slot) {
        None => Some("the slot no longer exists".into()),
        Some(s) if s.invalidation_reason.is_some() => Some(format!(
            "invalidated: {}",
            s.invalidation_reason.as_deref().unwrap_or("")
        )),
        Some(s) if s.conflicting == Some(true) => Some("invalidated by a recovery conflict".into()),
        Some(s) if s.wal_status.as_deref() == Some("lost") => {
            Some("its WAL was removed (wal_status lost)".into())
        }
        Some(_) => None,
    }
}

/// Fail with a clear message when `node` cannot take part (version too old for standby
/// decoding).
///
/// # Errors
/// Environment error.
pub fn require_standby_decoding(node: &Node) -> Result<()> {
    if node.version().major < crate::pg::MIN_MAJOR {
        return Err(Error::environment(format!(
            "{} runs PostgreSQL {}: logical decoding on a standby needs 16 or later",
            node.name(),
            node.version()
        )));
    }
    Ok(())
}

impl Chain {
    /// Re-attach to a chain left running by another harness process (from its state file). A
    /// B that answers as a primary (promoted after a primary failure, in a run that kept its
    /// chain) is the primary: fences and comparisons go to it, not to the A it replaced.
    ///
    /// # Errors
    /// Usage error when the run never got as far as making every node (its harness stopped
    /// while building the chain).
    pub async fn attach(
        nodes: Vec<Node>,
        state: &crate::run::RunState,
        creds: Credentials,
    ) -> Result<Chain> {
        let find = |n: &str| {
            nodes
                .iter()
                .find(|x| x.name() == n)
                .cloned()
                .ok_or_else(|| {
                    Error::usage(format!(
                        "the chain has no node {n}: its harness stopped before making it"
                    ))
                })
        };
        let d = ChainSpec::default();
        let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
        let spec = ChainSpec {
            database: state.database.clone(),
            subscription: state.subscription.clone(),
            physical_slot: state.physical_slot.clone(),
            catchup_timeout: ms(state.catchup_timeout_ms, d.catchup_timeout),
            sync_timeout: ms(state.initial_copy_timeout_ms, d.sync_timeout),
            ..d
        };
        let replicator: Arc<dyn Replicator> = Arc::new(NativeSubscription {
            name: spec.subscription.clone(),
            publication: spec.publication.clone(),
            database: spec.database.clone(),
            login: creds.replicator.clone(),
            sync_timeout: spec.sync_timeout,
            owner: None,
        });
        let (a, b, c) = (find("a")?, find("b")?, find("c")?);
        if promoted(&b).await {
            tracing::debug!("b answers as a primary: it was promoted, so it takes the writes");
            b.found_promoted();
        }
        Ok(Chain {
            a,
            b,
            c,
            spec,
            replicator,
            creds,
            timings: BuildTimings::default(),
            links: Arc::default(),
            idle_primary: None,
        })
    }

    /// A snapshot of every hop; `heartbeat_writer` says whether anybody may still be writing
    /// the heartbeat that end-to-end lag is read from.
    pub async fn snapshot(
        &self,
        heartbeat_writer: &crate::observe::Writer,
    ) -> crate::observe::ChainSnapshot {
        crate::observe::ChainSnapshot::take(
            &self.a,
            &self.b,
            &self.c,
            &self.spec.database,
            &self.spec.subscription,
            heartbeat_writer,
        )
        .await
    }
}

/// Whether standby `b` answers and is out of recovery (promoted). One that does not answer
/// (stopped, or paused) is taken for what it was built as.
async fn promoted(b: &Node) -> bool {
    const PATIENCE: Duration = Duration::from_secs(3);
    let Ok(client) = b.admin().connect(PATIENCE).await else {
        return false;
    };
    // A server paused after it let us in would hold the question for as long as it is paused.
    tokio::time::timeout(
        PATIENCE,
        client.query_one("SELECT pg_is_in_recovery()", &[]),
    )
    .await
    .is_ok_and(|row| row.is_ok_and(|row| !row.get::<_, bool>(0)))
}
