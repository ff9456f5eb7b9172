//! The B → C hop. Locally that is a native subscription on C connected to B; in production it
//! is AWS DMS (later). Both decode on B from a slot that B's walsender serves.

use std::time::Duration;

use async_trait::async_trait;

use super::nudge::Nudger;
use crate::error::{Error, Result, ResultExt};
use crate::node::{ConnInfo, Endpoint, Login, Node};
use crate::util::quote_literal;
use crate::wait::{Check, wait_for};

/// Moves changes from B to C.
#[async_trait]
pub trait Replicator: Send + Sync {
    /// Human name for reports ("native logical replication (subscription on C)").
    fn describe(&self) -> String;
    /// The logical slot on B this replicator consumes.
    fn slot_name(&self) -> &str;
    /// Create the replication (slot on B, initial copy) and return once every table is synced.
    async fn start(&self, a: Option<&Node>, b: &Node, c: &Node, via: &Endpoint) -> Result<()>;
    /// Stop consuming (the slot stays and B retains WAL): the "DMS task stopped" case.
    async fn stop(&self, c: &Node) -> Result<()>;
    /// Resume consuming.
    async fn resume(&self, c: &Node) -> Result<()>;
    /// Connect to B at `via` from now on (the consumer reconnects; the slot is the same).
    async fn repoint(&self, c: &Node, via: &Endpoint) -> Result<()>;
}

/// Native logical replication: `CREATE SUBSCRIPTION` on C with B as the publisher-side server
/// and the publication created on A (B is read-only; the publication reaches B through WAL).
pub struct NativeSubscription {
    /// Subscription name on C (also the slot name on B).
    pub name: String,
    /// Publication name (created on A).
    pub publication: String,
    /// Database on every node.
    pub database: String,
    /// Login the subscription uses to connect to B.
    pub login: Login,
    /// How long the initial copy may take.
    pub sync_timeout: Duration,
    /// Create the subscription as this (non-superuser) role instead of the superuser: the
    /// Aurora case, where the migration role holds pg_create_subscription.
    pub owner: Option<Login>,
}

#[async_trait]
impl Replicator for NativeSubscription {
    fn describe(&self) -> String {
        format!(
            "native logical replication (subscription {} on c, slot on b)",
            self.name
        )
    }

    fn slot_name(&self) -> &str {
        &self.name
    }

    async fn start(&self, a: Option<&Node>, b: &Node, c: &Node, via: &Endpoint) -> Result<()> {
        // Slot creation on B and every table-sync worker's temporary slot wait for a
        // running-xacts record from A: keep A writing them until the copy is done.
        let _nudge = a.map(|a| Nudger::start(a, Duration::from_millis(100)));
        tracing::info!(
            "creating subscription {} on c (connects to b at {via}, publication {} from a)",
            self.name,
            self.publication
        );
        let sql = self.create_sql(via);
        let create = self.execute_as_owner(c, &sql);
        match tokio::time::timeout(self.sync_timeout, create).await {
            Ok(r) => r.step("creating the subscription on c")?,
            Err(_) => {
                let e = Error::timeout(format!(
                    "creating subscription {} on c: the logical slot on b was not created within {}",
                    self.name,
                    crate::util::fmt_duration(self.sync_timeout)
                ));
                return Err(b.with_replication_state(e).await);
            }
        }
        self.wait_for_sync(b, c).await
    }

    async fn stop(&self, c: &Node) -> Result<()> {
        tracing::info!(
            "disabling subscription {} on c (the consumer stops; b keeps the slot)",
            self.name
        );
        c.execute(
            &self.database,
            &format!(
                "ALTER SUBSCRIPTION {} DISABLE",
                crate::util::quote_ident(&self.name)
            ),
        )
        .await
    }

    async fn resume(&self, c: &Node) -> Result<()> {
        tracing::info!("enabling subscription {} on c", self.name);
        c.execute(
            &self.database,
            &format!(
                "ALTER SUBSCRIPTION {} ENABLE",
                crate::util::quote_ident(&self.name)
            ),
        )
        .await
    }

    async fn repoint(&self, c: &Node, via: &Endpoint) -> Result<()> {
        tracing::info!(
            "subscription {} on c: connecting to b at {via} from now on",
            self.name
        );
        // The apply worker notices the new connection string and restarts with it.
        let sql = format!(
            "ALTER SUBSCRIPTION {} CONNECTION {}",
            crate::util::quote_ident(&self.name),
            quote_literal(&self.conninfo(via).libpq_with_password()),
        );
        self.execute_as_owner(c, &sql)
            .await
            .step("pointing the subscription on c at b")
    }
}

impl NativeSubscription {
    /// Run `sql` on C's database as the subscription's owner.
    async fn execute_as_owner(&self, c: &Node, sql: &str) -> Result<()> {
        let conn = match &self.owner {
            Some(l) => ConnInfo {
                endpoint: c.admin().endpoint.clone(),
                login: l.clone(),
                dbname: self.database.clone(),
            },
            None => c.admin().with_db(&self.database),
        };
        let client = conn.connect(crate::node::CONNECT_TIMEOUT).await?;
        client.batch_execute(sql).await.map_err(|e| {
            crate::Error::from(e)
                .context(crate::secret::redact(sql))
                .with_node(c.name())
        })
    }

    /// How the subscription reaches B at `via`.
    fn conninfo(&self, via: &Endpoint) -> ConnInfo {
        ConnInfo {
            endpoint: via.clone(),
            login: self.login.clone(),
            dbname: self.database.clone(),
        }
    }

    fn create_sql(&self, via: &Endpoint) -> String {
        let conn = self.conninfo(via);
        format!(
            "CREATE SUBSCRIPTION {name} CONNECTION {conn} PUBLICATION {publ} WITH (slot_name = {slot}, copy_data = true)",
            name = crate::util::quote_ident(&self.name),
            conn = quote_literal(&conn.libpq_with_password()),
            publ = crate::util::quote_ident(&self.publication),
            slot = quote_literal(&self.name),
        )
    }

    /// Rehearse slot creation against an idle primary: wait until A has written nothing for a
    /// full bgwriter snapshot interval (15 s; after that an idle A logs no running-xacts record
    /// at all), create the subscription without nudging, check after `wait` that slot creation
    /// on B is still waiting, then nudge A and time how quickly it completes.
    ///
    /// # Errors
    /// Timeouts with B's replication state; the subscription's own errors.
    pub async fn start_against_idle_primary(
        &self,
        a: &Node,
        b: &Node,
        c: &Node,
        via: &Endpoint,
        wait: Duration,
    ) -> Result<crate::chain::IdlePrimary> {
        const QUIET: Duration = Duration::from_millis(15_500);
        let t0 = std::time::Instant::now();
        let client = a.connect("postgres").await?;
        let last: std::sync::Mutex<Option<(String, std::time::Instant)>> =
            std::sync::Mutex::new(None);
        wait_for(
            "a to stay idle (no WAL) for a full bgwriter snapshot interval",
            Duration::from_secs(120),
            || async {
                let lsn: String = client
                    .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
                    .await?
                    .get(0);
                let mut last = last.lock().expect("idle probe");
                match last.as_ref() {
                    Some((l, since)) if *l == lsn && since.elapsed() >= QUIET => {
                        Ok(Check::Done(()))
                    }
                    Some((l, since)) if *l == lsn => Ok(Check::NotYet(format!(
                        "a idle at {lsn} for {:?}",
                        since.elapsed()
                    ))),
                    _ => {
                        *last = Some((lsn.clone(), std::time::Instant::now()));
                        Ok(Check::NotYet(format!("a wrote WAL (now at {lsn})")))
                    }
                }
            },
        )
        .await?;
        let idle_after_ms = t0.elapsed().as_millis() as u64;
        tracing::info!(
            "a has been idle for {}s; creating subscription {} without nudging a",
            QUIET.as_secs(),
            self.name
        );
        let sql = self.create_sql(via);
        // One statement, awaited in two stretches: before and after the nudge.
        let create = self.execute_as_owner(c, &sql);
        tokio::pin!(create);
        let still_waiting = match tokio::time::timeout(wait, &mut create).await {
            Ok(res) => {
                res?;
                false
            }
            Err(_) => true,
        };
        tracing::info!(
            "after {}: slot creation on b {}; nudging a (pg_log_standby_snapshot())",
            crate::util::fmt_duration(wait),
            if still_waiting {
                "is still waiting for a running-xacts record from a"
            } else {
                "already finished"
            }
        );
        let nudged = std::time::Instant::now();
        let _nudge = Nudger::start(a, Duration::from_millis(100));
        let completed_after_nudge_ms = if still_waiting {
            match tokio::time::timeout(self.sync_timeout, &mut create).await {
                Ok(res) => {
                    res?;
                    Some(nudged.elapsed().as_millis() as u64)
                }
                Err(_) => {
                    let e = crate::Error::timeout(
                        "slot creation on b did not finish even after nudging a",
                    );
                    return Err(b.with_replication_state(e).await);
                }
            }
        } else {
            None
        };
        self.wait_for_sync(b, c).await?;
        Ok(crate::chain::IdlePrimary {
            idle_after_ms,
            waited_without_nudge_ms: wait.as_millis() as u64,
            still_waiting_after_idle_wait: still_waiting,
            completed_after_nudge_ms,
        })
    }

    /// Wait until every table of the subscription is in state `r` (ready).
    async fn wait_for_sync(&self, b: &Node, c: &Node) -> Result<()> {
        let client = c.connect(&self.database).await?;
        let what = format!("initial copy of subscription {} on c", self.name);
        let res = wait_for(&what, self.sync_timeout, || async {
            let rows = client
                .query(
                    "SELECT r.srrelid::regclass::text, r.srsubstate::text FROM pg_subscription_rel r \
                     JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1 ORDER BY 1",
                    &[&self.name],
                )
                .await?;
            let pending: Vec<String> = rows
                .iter()
                .filter(|r| r.get::<_, String>(1) != "r")
                .map(|r| format!("{}={}", r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect();
            Ok(if pending.is_empty() {
                Check::Done(rows.len())
            } else {
                Check::NotYet(format!(
                    "{} of {} tables not ready (i=init d=copying f=copied s=synced): {}",
                    pending.len(),
                    rows.len(),
                    pending.join(", ")
                ))
            })
        })
        .await;
        match res {
            Ok(n) => {
                tracing::info!(
                    "subscription {} on c: {n} tables copied and ready",
                    self.name
                );
                Ok(())
            }
            Err(e) => {
                let subs = crate::node::dump_rows(c, &self.database, "SELECT subname, pid, relid::regclass, received_lsn, latest_end_lsn, last_msg_receipt_time FROM pg_stat_subscription").await;
                let e = crate::node::append_detail(
                    e,
                    &format!(
                        "pg_stat_subscription on c:\n{subs}\nlog of c:\n{}",
                        c.log_tail(15).await
                    ),
                );
                Err(b.with_replication_state(e).await)
            }
        }
    }
}
