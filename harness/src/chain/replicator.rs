//! The B → C hop. Locally that is a native subscription on C connected to B; in production it
//! is AWS DMS (later). Both decode on B from a slot that B's walsender serves.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::Client;

use super::nudge::{Nudger, with_failures};
use crate::error::{Error, ErrorKind, Result, ResultExt};
use crate::node::{ConnInfo, Endpoint, Login, LsnKind, Node};
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
            "native logical replication (subscription {} on c, slot on b; streaming = off, \
             disable_on_error = false)",
            self.name
        )
    }

    fn slot_name(&self) -> &str {
        &self.name
    }

    async fn start(&self, a: Option<&Node>, b: &Node, c: &Node, via: &Endpoint) -> Result<()> {
        // The subscription's slot on B, and the slot each table-sync worker creates on B for its
        // copy, wait for a running-xacts record from A: keep A writing them until the copy is
        // done.
        let nudge = a.map(|a| Nudger::start(a, Duration::from_millis(100)));
        tracing::info!(
            "creating subscription {} on c (connects to b at {via}, publication {} from a)",
            self.name,
            self.publication
        );
        let sql = self.create_sql(via);
        let client = self.owner_client(c).await?;
        let create = client.batch_execute(&sql);
        tokio::pin!(create);
        if let Err(e) = self.finish_create(&client, create, b, c).await {
            return Err(with_failures(e, nudge.as_ref()));
        }
        self.wait_for_sync(b, c, nudge.as_ref()).await
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

/// How long a cancelled subscription creation may take to let go of its slot on B: its
/// walsender ends as soon as it sees C's connection close.
const SLOT_RELEASE_PATIENCE: Duration = Duration::from_secs(30);

/// Worker failures tolerated during the initial copy before the wait gives up on it: PostgreSQL
/// restarts a failed table-sync or apply worker (after wal_retrieve_retry_interval, 5 s), and one
/// incident can pass: B's walsenders dropped, or a recovery conflict on B cancelling the copies,
/// fails every worker at once — up to max_sync_workers_per_subscription (4, see
/// `chain::c_settings`) table syncs and the apply worker. More than that is no hiccup, and the
/// workers would otherwise go on failing until the initial-copy timeout.
const WORKER_FAILURES_TOLERATED: i64 = 4 + 1;

/// The bgwriter's LOG_SNAPSHOT_INTERVAL_MS (src/backend/postmaster/bgwriter.c): it logs a
/// running-xacts record at most this often, and only when important WAL was written since its
/// last one.
const LOG_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(15);

/// How many bgwriter_delay periods can pass between two of the bgwriter's looks at whether a
/// running-xacts record is due: one ordinary sleep, then, with nothing to do, a hibernation of
/// HIBERNATE_FACTOR (50) of them (bgwriter.c).
const BGWRITER_ROUNDS_BETWEEN_LOOKS: u32 = 1 + 50;

/// Slack for a loaded machine, where the bgwriter may run a little after its timer fires.
const QUIET_MARGIN: Duration = Duration::from_secs(2);

/// How long A must have written no WAL at all before no running-xacts record can be owed any
/// more: a record owed for A's last write comes at most one snapshot interval after it (the
/// bgwriter's last record came before that write), plus the longest the bgwriter can sleep
/// before it looks, so 15 s + 51 × bgwriter_delay (25.2 s with the default 200 ms).
fn idle_quiet(bgwriter_delay: Duration) -> Duration {
    LOG_SNAPSHOT_INTERVAL + bgwriter_delay * BGWRITER_ROUNDS_BETWEEN_LOOKS + QUIET_MARGIN
}

/// Failures of the subscription's workers on C so far (pg_stat_subscription_stats, PG15+).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WorkerErrors {
    apply: i64,
    sync: i64,
}

impl WorkerErrors {
    /// More failures since `before` than a retry can explain.
    fn keep_failing_since(&self, before: WorkerErrors) -> bool {
        (self.apply - before.apply) + (self.sync - before.sync) > WORKER_FAILURES_TOLERATED
    }
}

impl NativeSubscription {
    /// A session on C's database as the subscription's owner.
    async fn owner_client(&self, c: &Node) -> Result<Client> {
        let conn = match &self.owner {
            Some(l) => ConnInfo {
                endpoint: c.admin().endpoint.clone(),
                login: l.clone(),
                dbname: self.database.clone(),
            },
            None => c.admin().with_db(&self.database),
        };
        conn.connect(crate::node::CONNECT_TIMEOUT).await
    }

    /// Run `sql` on C's database as the subscription's owner.
    async fn execute_as_owner(&self, c: &Node, sql: &str) -> Result<()> {
        let client = self.owner_client(c).await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|e| statement_failed(e.into(), sql, c))
    }

    /// Let `create`, a CREATE SUBSCRIPTION under way on `client`, finish within the initial-copy
    /// timeout. One that does not is cancelled on C and any slot it left on B is dropped: left
    /// to itself, it could still create the slot and commit later, behind the harness's back.
    async fn finish_create<F>(
        &self,
        client: &Client,
        create: Pin<&mut F>,
        b: &Node,
        c: &Node,
    ) -> Result<()>
    where
        F: Future<Output = std::result::Result<(), tokio_postgres::Error>>,
    {
        match crate::node::finish_within(client, create, self.sync_timeout).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Timeout => {
                let left = self.abandon_slot(b).await;
                let e = Error::timeout(format!(
                    "creating subscription {} on c: the logical slot on b was not created within \
                     {} ({e}; {left})",
                    self.name,
                    crate::util::fmt_duration(self.sync_timeout)
                ));
                Err(b.with_replication_state(e).await)
            }
            Err(e) => Err(statement_failed(e, "CREATE SUBSCRIPTION", c)
                .context("creating the subscription on c")),
        }
    }

    /// Drop the subscription's slot on B if a cancelled creation left one (its walsender ends
    /// once C's backend has let go), and say what was found.
    async fn abandon_slot(&self, b: &Node) -> String {
        let res = async {
            let client = b.connect("postgres").await?;
            let left = wait_for(
                format!("the walsender creating slot {} on b to end", self.name),
                SLOT_RELEASE_PATIENCE,
                || async {
                    let row = client
                        .query_opt(
                            "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                            &[&self.name],
                        )
                        .await?;
                    Ok(match row.map(|r| r.get::<_, bool>(0)) {
                        None => Check::Done(false),
                        Some(false) => Check::Done(true),
                        Some(true) => Check::NotYet(format!("slot {} is still active", self.name)),
                    })
                },
            )
            .await?;
            if !left {
                return Ok::<_, Error>("no slot on b when checked".to_string());
            }
            client
                .execute("SELECT pg_drop_replication_slot($1)", &[&self.name])
                .await?;
            Ok(format!("the slot {} it left on b was dropped", self.name))
        }
        .await;
        res.unwrap_or_else(|e| format!("a slot {} it may have left on b: {e}", self.name))
    }

    /// How the subscription reaches B at `via`.
    fn conninfo(&self, via: &Endpoint) -> ConnInfo {
        ConnInfo {
            endpoint: via.clone(),
            login: self.login.clone(),
            dbname: self.database.clone(),
        }
    }

    /// CREATE SUBSCRIPTION with every option that changes what is rehearsed spelled out:
    /// `streaming` defaults to off in 16 and 17 but to parallel in 18, and DMS with
    /// test_decoding never streams transactions still in progress; a worker error must not
    /// disable the subscription (disable_on_error), or C would silently stop.
    fn create_sql(&self, via: &Endpoint) -> String {
        let conn = self.conninfo(via);
        format!(
            "CREATE SUBSCRIPTION {name} CONNECTION {conn} PUBLICATION {publ} WITH (slot_name = {slot}, \
             copy_data = true, streaming = off, disable_on_error = false)",
            name = crate::util::quote_ident(&self.name),
            conn = quote_literal(&conn.libpq_with_password()),
            publ = crate::util::quote_ident(&self.publication),
            slot = quote_literal(&self.name),
        )
    }

    /// Rehearse slot creation against an idle primary: wait until A has written no WAL for
    /// long enough that no running-xacts record is owed any more ([`idle_quiet`]; an idle A
    /// then logs none at all), create the subscription without nudging, check after `wait` that
    /// slot creation on B is still waiting, then nudge A and time how quickly it completes.
    /// Autovacuum, the one thing that writes WAL on an idle A by itself, is off meanwhile; and
    /// should A write WAL anyway while the slot is left waiting (a checkpoint), that is
    /// recorded: a slot created then may have had its record from it.
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
        set_autovacuum(a, Some("off")).await?;
        let rehearsed = async {
            let t0 = std::time::Instant::now();
            let quiet = wait_for_quiet(a).await?;
            let idle_after_ms = t0.elapsed().as_millis() as u64;
            tracing::info!(
                "a has written no WAL for {}: no running-xacts record is owed; creating subscription \
                 {} without nudging a",
                crate::util::fmt_duration(quiet),
                self.name
            );
            let before = a.lsn(LsnKind::Insert).await?;
            let sql = self.create_sql(via);
            let client = self.owner_client(c).await?;
            // One statement, awaited in two stretches: before and after the nudge.
            let create = client.batch_execute(&sql);
            tokio::pin!(create);
            let still_waiting = match tokio::time::timeout(wait, create.as_mut()).await {
                Ok(res) => {
                    res.map_err(|e| statement_failed(e.into(), "CREATE SUBSCRIPTION", c))?;
                    false
                }
                Err(_) => true,
            };
            let after = a.lsn(LsnKind::Insert).await?;
            let a_wrote_wal_during_wait = after != before;
            if a_wrote_wal_during_wait {
                tracing::warn!(
                    "a wrote WAL ({before} → {after}) while slot creation on b was left without a \
                     nudge: a running-xacts record may have come with it"
                );
            }
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
            let nudge = Nudger::start(a, Duration::from_millis(100));
            let completed_after_nudge_ms = if still_waiting {
                if let Err(e) = self.finish_create(&client, create, b, c).await {
                    return Err(with_failures(e, Some(&nudge)));
                }
                Some(nudged.elapsed().as_millis() as u64)
            } else {
                None
            };
            self.wait_for_sync(b, c, Some(&nudge)).await?;
            Ok(crate::chain::IdlePrimary {
                idle_after_ms,
                waited_without_nudge_ms: wait.as_millis() as u64,
                still_waiting_after_idle_wait: still_waiting,
                completed_after_nudge_ms,
                a_wrote_wal_during_wait,
            })
        }
        .await;
        let restored = set_autovacuum(a, None).await;
        match (rehearsed, restored) {
            (Ok(i), Ok(())) => Ok(i),
            (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
            (Err(e), Err(r)) => Err(e.also(&r)),
        }
    }

    /// Failures of this subscription's workers so far.
    async fn worker_errors(&self, client: &Client) -> Result<WorkerErrors> {
        let row = client
            .query_opt(
                "SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats \
                 WHERE subname = $1",
                &[&self.name],
            )
            .await?;
        Ok(row.map_or_else(WorkerErrors::default, |r| WorkerErrors {
            apply: r.get(0),
            sync: r.get(1),
        }))
    }

    /// Wait until every table of the subscription is in state `r` (ready). PostgreSQL retries
    /// failing workers for as long as the subscription exists, so the wait stops early, with
    /// the error C logged, once they keep failing.
    async fn wait_for_sync(&self, b: &Node, c: &Node, nudge: Option<&Nudger>) -> Result<()> {
        let client = c.connect(&self.database).await?;
        let at_start = self.worker_errors(&client).await?;
        let what = format!("initial copy of subscription {} on c", self.name);
        let res = wait_for(&what, self.sync_timeout, || async {
            let errors = self.worker_errors(&client).await?;
            if errors.keep_failing_since(at_start) {
                return Err(self.workers_failing(c, at_start, errors).await);
            }
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
                Err(with_failures(b.with_replication_state(e).await, nudge))
            }
        }
    }

    /// The error for workers that keep failing: the counts, and the last error C logged.
    async fn workers_failing(&self, c: &Node, before: WorkerErrors, now: WorkerErrors) -> Error {
        let logged = match last_error_line(&c.log_tail(500).await) {
            Some(l) => format!("; the last error in c's log: {l}"),
            None => String::new(),
        };
        Error::database(format!(
            "the workers of subscription {} keep failing (pg_stat_subscription_stats: \
             sync_error_count {} → {}, apply_error_count {} → {}){logged}",
            self.name, before.sync, now.sync, before.apply, now.apply
        ))
        .with_node(c.name())
        .with_hint("c's log has every failure; PostgreSQL retries the workers for as long as the subscription exists")
    }
}

/// `e` from running `sql` on `c`, with the statement (passwords redacted) and the node.
fn statement_failed(e: Error, sql: &str, c: &Node) -> Error {
    e.context(crate::secret::redact(sql)).with_node(c.name())
}

/// The last line of a server log that reports an ERROR.
fn last_error_line(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .find(|l| l.contains("ERROR:"))
        .map(str::trim)
}

/// Set autovacuum on `a` (None: back to what its configuration files say), with a reload.
async fn set_autovacuum(a: &Node, value: Option<&str>) -> Result<()> {
    // Two statements: ALTER SYSTEM refuses to run inside a multi-statement query.
    let alter = match value {
        Some(v) => format!("ALTER SYSTEM SET autovacuum = {}", quote_literal(v)),
        None => "ALTER SYSTEM RESET autovacuum".to_string(),
    };
    a.execute("postgres", &alter).await?;
    a.execute("postgres", "SELECT pg_reload_conf()").await
}

/// Wait until `a` has written no WAL for [`idle_quiet`] of its bgwriter_delay; returns that
/// quiet.
async fn wait_for_quiet(a: &Node) -> Result<Duration> {
    let client = a.connect("postgres").await?;
    let delay_ms: i32 = client
        .query_one(
            "SELECT setting::int FROM pg_settings WHERE name = 'bgwriter_delay'",
            &[],
        )
        .await?
        .get(0);
    let quiet = idle_quiet(Duration::from_millis(delay_ms.max(0) as u64));
    let last: std::sync::Mutex<Option<(String, std::time::Instant)>> = std::sync::Mutex::new(None);
    wait_for(
        format!(
            "a to write no WAL for {} (15 s between the bgwriter's running-xacts records, \
             plus {BGWRITER_ROUNDS_BETWEEN_LOOKS} × bgwriter_delay = {delay_ms} ms it may sleep)",
            crate::util::fmt_duration(quiet)
        ),
        quiet + Duration::from_secs(120),
        || async {
            let lsn: String = client
                .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
                .await?
                .get(0);
            let mut last = last.lock().expect("idle probe");
            match last.as_ref() {
                Some((l, since)) if *l == lsn && since.elapsed() >= quiet => Ok(Check::Done(())),
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
    Ok(quiet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quiet_outlasts_the_latest_record_the_bgwriter_can_still_owe() {
        // Default bgwriter_delay: a record owed for the last write can come 15 s + 200 ms of
        // sleep + 10 s of hibernation after it.
        let latest = Duration::from_millis(15_000 + 200 + 50 * 200);
        assert!(idle_quiet(Duration::from_millis(200)) > latest);
        // A slower bgwriter sleeps longer, and the quiet grows with it.
        let latest = Duration::from_millis(15_000 + 51 * 1_000);
        assert!(idle_quiet(Duration::from_secs(1)) > latest);
    }

    #[test]
    fn workers_keep_failing_only_past_what_a_retry_explains() {
        let start = WorkerErrors { apply: 1, sync: 0 };
        // One incident: every copy worker (4) and the apply worker fail at once.
        assert!(!WorkerErrors { apply: 2, sync: 4 }.keep_failing_since(start));
        assert!(WorkerErrors { apply: 2, sync: 5 }.keep_failing_since(start));
        assert!(WorkerErrors { apply: 4, sync: 3 }.keep_failing_since(start));
    }

    #[test]
    fn the_last_error_of_the_log_is_quoted() {
        let log = "2026-01-01 LOG:  logical replication table synchronization worker started\n\
                   2026-01-01 ERROR:  duplicate key value violates unique constraint \"t_pkey\"\n\
                   2026-01-01 LOG:  background worker \"logical replication worker\" exited\n";
        assert_eq!(
            last_error_line(log),
            Some("2026-01-01 ERROR:  duplicate key value violates unique constraint \"t_pkey\"")
        );
        assert_eq!(last_error_line("LOG: fine\n"), None);
    }

    #[test]
    fn the_subscription_pins_what_changes_the_rehearsal() {
        let sub = NativeSubscription {
            name: "s".into(),
            publication: "p".into(),
            database: "app".into(),
            login: Login {
                user: "r".into(),
                password: crate::secret::Secret::new("pw".to_string()),
            },
            sync_timeout: Duration::from_secs(1),
            owner: None,
        };
        let sql = sub.create_sql(&Endpoint {
            host: "127.0.0.1".into(),
            port: 5432,
        });
        assert!(sql.contains("streaming = off"), "{sql}");
        assert!(sql.contains("disable_on_error = false"), "{sql}");
        assert!(sub.describe().contains("streaming = off"));
    }
}
