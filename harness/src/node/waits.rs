//! Waits named after the replication fact they check. On timeout each one dumps the view that
//! explains why (pg_stat_replication, pg_replication_slots), as TAP's wait_for_catchup does.

use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use super::{Lsn, LsnKind, Node};
use crate::error::{Error, Result};
use crate::wait::{Check, wait_for};

/// Which pg_stat_replication column a catch-up wait compares with the target LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchupMode {
    /// sent_lsn
    Sent,
    /// write_lsn
    Write,
    /// flush_lsn
    Flush,
    /// replay_lsn
    Replay,
}

impl CatchupMode {
    fn column(self) -> &'static str {
        match self {
            CatchupMode::Sent => "sent_lsn",
            CatchupMode::Write => "write_lsn",
            CatchupMode::Flush => "flush_lsn",
            CatchupMode::Replay => "replay_lsn",
        }
    }
}

/// Render every row of a query as "col=value" lines, for timeout details.
pub(crate) async fn dump(node: &Node, db: &str, sql: &str) -> String {
    let client = match node.connect(db).await {
        Ok(c) => c,
        Err(e) => return format!("({}: cannot connect: {e})", node.name()),
    };
    match client.simple_query(sql).await {
        Ok(msgs) => {
            let mut out = Vec::new();
            for m in msgs {
                if let SimpleQueryMessage::Row(r) = m {
                    let cols: Vec<String> = r
                        .columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("{}={}", c.name(), r.get(i).unwrap_or("NULL")))
                        .collect();
                    out.push(format!("  {}", cols.join(" ")));
                }
            }
            if out.is_empty() {
                "  (no rows)".to_string()
            } else {
                out.join("\n")
            }
        }
        Err(e) => format!("({}: {sql}: {})", node.name(), Error::from(e)),
    }
}

const STAT_REPLICATION: &str = "SELECT application_name, state, sent_lsn, write_lsn, flush_lsn, replay_lsn, \
     write_lag, flush_lag, replay_lag, sync_state FROM pg_stat_replication ORDER BY application_name";
const SLOTS: &str = "SELECT slot_name, slot_type, database, active, restart_lsn, confirmed_flush_lsn, wal_status, \
     safe_wal_size, conflicting, temporary FROM pg_replication_slots ORDER BY slot_name";

impl Node {
    /// Wait until the walsender serving `app_name` on this (upstream) node has reached `target`
    /// in `mode` (default target: this node's current write LSN, or last replayed LSN on a
    /// standby upstream).
    ///
    /// # Errors
    /// Timeout with the target, the last LSN seen and pg_stat_replication / pg_replication_slots.
    pub async fn wait_for_catchup(
        &self,
        app_name: &str,
        mode: CatchupMode,
        target: Option<Lsn>,
        timeout: Duration,
    ) -> Result<Lsn> {
        let target = match target {
            Some(t) => t,
            None if self.in_recovery().await? => self.lsn(LsnKind::Replay).await?,
            None => self.lsn(LsnKind::Write).await?,
        };
        tracing::debug!(
            "waiting for {app_name} to catch up with {} ({}) at {target}",
            self.name(),
            mode.column()
        );
        let sql = format!(
            "SELECT {col}::text FROM pg_stat_replication WHERE application_name = '{}' AND {col} IS NOT NULL \
             ORDER BY {col} DESC LIMIT 1",
            app_name.replace('\'', "''"),
            col = mode.column()
        );
        let client = self.connect("postgres").await?;
        let what = format!(
            "{app_name} to reach {} {target} from {}",
            mode.column(),
            self.name()
        );
        let res = wait_for(&what, timeout, || async {
            let rows = client.simple_query(&sql).await?;
            let seen = rows.iter().find_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse::<Lsn>().ok()),
                _ => None,
            });
            Ok(match seen {
                Some(l) if l >= target => Check::Done(l),
                Some(l) => Check::NotYet(format!(
                    "{} = {l} ({} bytes behind)",
                    mode.column(),
                    target.bytes_since(l)
                )),
                None => Check::NotYet(format!("no walsender for {app_name} on {}", self.name())),
            })
        })
        .await;
        match res {
            Ok(l) => Ok(l),
            Err(e) => Err(self.with_replication_state(e).await),
        }
    }

    /// On a standby: wait until it has replayed `target`.
    ///
    /// # Errors
    /// Timeout with the receive/replay LSNs and pg_stat_wal_receiver.
    pub async fn wait_for_replay(&self, target: Lsn, timeout: Duration) -> Result<Lsn> {
        let client = self.connect("postgres").await?;
        let what = format!("{} to replay {target}", self.name());
        let res = wait_for(&what, timeout, || async {
            let row = client
                .query_one(
                    "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text",
                    &[],
                )
                .await?;
            let replay: Option<String> = row.get(0);
            let receive: Option<String> = row.get(1);
            let r = replay.as_deref().and_then(|v| v.parse::<Lsn>().ok());
            Ok(match r {
                Some(l) if l >= target => Check::Done(l),
                _ => Check::NotYet(format!(
                    "replay_lsn = {}, receive_lsn = {}",
                    replay.as_deref().unwrap_or("NULL"),
                    receive.as_deref().unwrap_or("NULL")
                )),
            })
        })
        .await;
        match res {
            Ok(l) => Ok(l),
            Err(e) => {
                let wr = dump(self, "postgres", "SELECT status, receive_start_lsn, written_lsn, flushed_lsn, sender_host, sender_port, slot_name FROM pg_stat_wal_receiver").await;
                Err(append_detail(
                    e,
                    &format!("pg_stat_wal_receiver on {}:\n{wr}", self.name()),
                ))
            }
        }
    }

    /// Wait until a replication slot on this node has a restart_lsn (it exists and is usable).
    ///
    /// # Errors
    /// Timeout with pg_replication_slots.
    pub async fn wait_for_slot(&self, slot: &str, timeout: Duration) -> Result<Lsn> {
        let client = self.connect("postgres").await?;
        let what = format!("slot {slot} on {} to get a restart_lsn", self.name());
        let res = wait_for(&what, timeout, || async {
            let rows = client
                .query(
                    "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await?;
            Ok(match rows.first().map(|r| r.get::<_, Option<String>>(0)) {
                Some(Some(l)) => Check::Done(l.parse().map_err(Error::internal)?),
                Some(None) => Check::NotYet(format!("slot {slot} exists, restart_lsn is NULL")),
                None => Check::NotYet(format!("no slot {slot}")),
            })
        })
        .await;
        match res {
            Ok(l) => Ok(l),
            Err(e) => Err(self.with_replication_state(e).await),
        }
    }

    /// Attach pg_stat_replication and pg_replication_slots of this node to an error.
    pub async fn with_replication_state(&self, e: Error) -> Error {
        let repl = dump(self, "postgres", STAT_REPLICATION).await;
        let slots = dump(self, "postgres", SLOTS).await;
        append_detail(
            e,
            &format!(
                "pg_stat_replication on {n}:\n{repl}\npg_replication_slots on {n}:\n{slots}",
                n = self.name()
            ),
        )
    }
}

/// Add text to an error's detail, keeping what was there.
pub(crate) fn append_detail(e: Error, more: &str) -> Error {
    let d = match e.detail() {
        Some(d) => format!("{d}\n{more}"),
        None => more.to_string(),
    };
    e.with_detail(d)
}
