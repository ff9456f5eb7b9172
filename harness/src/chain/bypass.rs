//! Leaving a chain running after the harness exits (`run --keep`). A hop that goes through a
//! link proxy inside the harness process breaks when the process exits, so before the harness
//! lets go, each such hop is pointed at its upstream directly: B's primary_conninfo at A, C's
//! subscription at B. The proxy is then cut, as the exit would cut it, and the harness waits
//! until both hops stream without it.

use std::sync::Arc;
use std::time::Duration;

use super::{Chain, Replicator, logical_slot_dead};
use crate::backend::Backend;
use crate::error::{Result, ResultExt};
use crate::faults::{LinkControl, LinkMode, LinkState, Links};
use crate::node::{Endpoint, Node, append_detail, dump_rows};
use crate::util::quote_literal;
use crate::wait::{Check, wait_for};

/// What it takes to route a built chain around the harness's own proxies.
pub struct Bypass {
    a: Node,
    b: Node,
    c: Node,
    /// A and B as the other servers reach them without a proxy.
    a_direct: Endpoint,
    b_direct: Endpoint,
    links: Arc<Links>,
    replicator: Arc<dyn Replicator>,
    database: String,
    subscription: String,
    timeout: Duration,
}

impl Chain {
    /// Everything [`Bypass::apply`] needs, taken now (it holds the links, so the proxies stay
    /// up until it has run).
    pub fn bypass(&self, backend: &dyn Backend) -> Bypass {
        Bypass {
            a: self.a.clone(),
            b: self.b.clone(),
            c: self.c.clone(),
            a_direct: backend.peer_endpoint(&self.a),
            b_direct: backend.peer_endpoint(&self.b),
            links: self.links.clone(),
            replicator: self.replicator.clone(),
            database: self.spec.database.clone(),
            subscription: self.spec.subscription.clone(),
            timeout: self.spec.catchup_timeout,
        }
    }
}

/// The link on a hop when it is a proxy in this process.
fn in_process(l: &Option<Arc<dyn LinkControl>>) -> Option<&Arc<dyn LinkControl>> {
    l.as_ref().filter(|l| l.in_process())
}

/// Reset the proxy's connections and refuse new ones: what the harness's exit will do anyway.
/// Doing it now proves the hop no longer needs it while the harness can still say so.
async fn cut(link: &dyn LinkControl) -> Result<()> {
    link.apply(&LinkState {
        mode: LinkMode::Down,
        ..LinkState::default()
    })
    .await
}

impl Bypass {
    /// Point every hop that goes through a proxy in this process at its upstream directly and
    /// wait until it streams again. Returns what was done, one line per hop (none when no hop
    /// uses such a proxy).
    ///
    /// # Errors
    /// Database errors naming the node; a timeout with the hop's replication state when it does
    /// not stream directly.
    pub async fn apply(&self) -> Result<Vec<String>> {
        let mut done = Vec::new();
        if let Some(l) = in_process(&self.links.ab) {
            done.push(self.standby_direct(l.as_ref()).await?);
        }
        if let Some(l) = in_process(&self.links.bc) {
            done.push(self.subscription_direct(l.as_ref()).await?);
        }
        Ok(done)
    }

    /// a→b: B's primary_conninfo with A's own address (reloadable: the startup process restarts
    /// the WAL receiver with it).
    async fn standby_direct(&self, link: &dyn LinkControl) -> Result<String> {
        let in_recovery = self
            .b
            .query_one("postgres", "SELECT pg_is_in_recovery()")
            .await?;
        if in_recovery.as_deref() != Some("t") {
            cut(link).await?;
            return Ok("a→b: b was promoted and streams from nobody; nothing to re-point".into());
        }
        let current = self
            .b
            .query_one("postgres", "SHOW primary_conninfo")
            .await?
            .unwrap_or_default();
        let direct = crate::node::conninfo::with_endpoint(&current, &self.a_direct)
            .map_err(|e| e.context("reading b's primary_conninfo").with_node("b"))?;
        tracing::info!(
            "b: pointing primary_conninfo at a at {} directly, off the harness's proxy",
            self.a_direct
        );
        // Two statements: ALTER SYSTEM refuses to run inside a multi-statement query.
        self.b
            .execute(
                "postgres",
                &format!(
                    "ALTER SYSTEM SET primary_conninfo = {}",
                    quote_literal(&direct)
                ),
            )
            .await
            .step("pointing b's primary_conninfo at a")?;
        self.b
            .execute("postgres", "SELECT pg_reload_conf()")
            .await
            .step("reloading b's configuration")?;
        cut(link).await?;
        let client = self.b.connect("postgres").await?;
        let (host, port) = (&self.a_direct.host, i32::from(self.a_direct.port));
        let res = wait_for(
            format!("b to stream from a at {} directly", self.a_direct),
            self.timeout,
            || async {
                let rows = client
                    .query(
                        "SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver",
                        &[],
                    )
                    .await?;
                let Some(r) = rows.first() else {
                    return Ok(Check::NotYet("no WAL receiver on b".into()));
                };
                let (status, h, p): (String, Option<String>, Option<i32>) =
                    (r.get(0), r.get(1), r.get(2));
                Ok(
                    if status == "streaming" && h.as_ref() == Some(host) && p == Some(port) {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!(
                            "b's WAL receiver: {status} from {}:{}",
                            h.as_deref().unwrap_or("?"),
                            p.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
                        ))
                    },
                )
            },
        )
        .await;
        if let Err(e) = res {
            let e = append_detail(e, &format!("log of b:\n{}", self.b.log_tail(15).await));
            return Err(self.a.with_replication_state(e).await);
        }
        Ok(format!(
            "a→b: b streams from a at {} directly (primary_conninfo changed)",
            self.a_direct
        ))
    }

    /// b→c: the subscription's connection with B's own address; its apply worker restarts
    /// with it.
    async fn subscription_direct(&self, link: &dyn LinkControl) -> Result<String> {
        let client = self.c.connect(&self.database).await?;
        let worker = || async {
            let rows = client
                .query(
                    "SELECT pid FROM pg_stat_subscription WHERE subname = $1 AND relid IS NULL \
                     AND leader_pid IS NULL",
                    &[&self.subscription],
                )
                .await?;
            Ok::<_, crate::Error>(rows.first().and_then(|r| r.get::<_, Option<i32>>(0)))
        };
        let before = worker().await?;
        // A walsender on B that started after this serves the new connection, not the proxy.
        let since = self
            .b
            .query_one("postgres", "SELECT now()")
            .await?
            .unwrap_or_default();
        self.replicator.repoint(&self.c, &self.b_direct).await?;
        cut(link).await?;
        if let Some(why) = logical_slot_dead(&self.b, &self.database, &self.subscription).await {
            return Ok(format!(
                "b→c: the subscription connects to b at {} directly, but the logical slot on b is unusable ({why}): c stays behind until it is resynced",
                self.b_direct
            ));
        }
        let sender = self.b.connect("postgres").await?;
        let walsender = format!(
            "SELECT state FROM pg_stat_replication WHERE application_name = $1 \
             AND backend_start > {}::timestamptz",
            quote_literal(&since)
        );
        let res = wait_for(
            format!(
                "subscription {} on c to stream from b at {} directly",
                self.subscription, self.b_direct
            ),
            self.timeout,
            || async {
                let pid = worker().await?;
                let state: Option<String> = sender
                    .query(walsender.as_str(), &[&self.subscription])
                    .await?
                    .first()
                    .and_then(|r| r.get(0));
                // Only a worker and a walsender started after the change count: the old ones
                // may still be on the proxy.
                Ok(match pid {
                    Some(p) if Some(p) != before && state.as_deref() == Some("streaming") => {
                        Check::Done(())
                    }
                    _ => Check::NotYet(format!(
                        "apply worker on c: {} (before the change: {}); walsender on b: {}",
                        pid.map(|p| format!("pid {p}"))
                            .unwrap_or_else(|| "not running".into()),
                        before
                            .map(|p| format!("pid {p}"))
                            .unwrap_or_else(|| "not running".into()),
                        state.as_deref().unwrap_or("none")
                    )),
                })
            },
        )
        .await;
        if let Err(e) = res {
            let subs = dump_rows(
                &self.c,
                &self.database,
                "SELECT subname, pid, received_lsn, latest_end_lsn, last_msg_receipt_time FROM pg_stat_subscription",
            )
            .await;
            let e = append_detail(
                e,
                &format!(
                    "pg_stat_subscription on c:\n{subs}\nlog of c:\n{}",
                    self.c.log_tail(15).await
                ),
            );
            return Err(self.b.with_replication_state(e).await);
        }
        Ok(format!(
            "b→c: subscription {} streams from b at {} directly (connection changed)",
            self.subscription, self.b_direct
        ))
    }
}
