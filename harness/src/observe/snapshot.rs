//! One snapshot of the chain's replication state, read from the views PostgreSQL provides.
//!
//! Rules kept here: `pg_current_wal_lsn()` is only asked of a primary (it errors on a standby);
//! a NULL lag column means "idle", never zero; a node that does not answer is reported as
//! unreachable rather than failing the whole snapshot.

use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use super::heartbeat::{EndToEnd, HeartbeatRead, Writer, assess, read_heartbeat, writer_connected};
use crate::node::{Lsn, Node};

/// A walsender as pg_stat_replication shows it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct WalSenderRow {
    /// application_name (a standby's cluster_name, or the subscription name).
    pub application_name: String,
    /// streaming, catchup, backup, ...
    pub state: Option<String>,
    /// Last WAL sent.
    pub sent_lsn: Option<Lsn>,
    /// Last WAL the receiver wrote.
    pub write_lsn: Option<Lsn>,
    /// Last WAL the receiver flushed.
    pub flush_lsn: Option<Lsn>,
    /// Last WAL the receiver replayed (applied).
    pub replay_lsn: Option<Lsn>,
    /// write_lag in seconds; None when idle.
    pub write_lag_s: Option<f64>,
    /// flush_lag in seconds; None when idle.
    pub flush_lag_s: Option<f64>,
    /// replay_lag in seconds; None when idle.
    pub replay_lag_s: Option<f64>,
    /// async, sync, potential, quorum.
    pub sync_state: Option<String>,
    /// Bytes between this node's position (its WAL write position, or its replay position on
    /// a standby) and `replay_lsn`, computed in the same statement: both ends as of one
    /// moment. `replay_lsn` is the position the receiver last reported, so this counts what
    /// the receiver has not reported replaying; None when `replay_lsn` is NULL.
    #[serde(default)]
    pub replay_behind_bytes: Option<u64>,
}

/// A replication slot as pg_replication_slots shows it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SlotRow {
    /// Slot name.
    pub slot_name: String,
    /// physical or logical.
    pub slot_type: String,
    /// A consumer is connected.
    pub active: bool,
    /// Oldest WAL the slot needs.
    pub restart_lsn: Option<Lsn>,
    /// Logical slots: what the consumer confirmed.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// reserved, extended, unreserved, lost.
    pub wal_status: Option<String>,
    /// Bytes that can still be written before the slot is in danger, as PostgreSQL reports
    /// it; None when unlimited or lost. Not meaningful on a standby: PostgreSQL subtracts its
    /// WAL write position, which does not advance in recovery (0/0 on 17.10, so the figure
    /// stays at the slot's limit LSN whatever B replays) — see `safe_wal_size_computed`.
    pub safe_wal_size: Option<i64>,
    /// On a standby: safe_wal_size computed the way PostgreSQL does, from the replay position
    /// instead (limit LSN − pg_last_wal_replay_lsn(), the limit being the end of the slot's
    /// restart segment plus max(max_slot_wal_keep_size, wal_keep_size)). Negative: the slot
    /// is lost at B's next restartpoint. None on a primary, when unlimited, or when lost.
    #[serde(default)]
    pub safe_wal_size_computed: Option<i64>,
    /// Physical slots: xmin held for hot_standby_feedback.
    pub xmin: Option<String>,
    /// catalog_xmin held (logical decoding's catalog rows).
    pub catalog_xmin: Option<String>,
    /// 16+: invalidated by a recovery conflict.
    pub conflicting: Option<bool>,
    /// 17+: rows_removed, wal_removed, wal_level_insufficient (18: idle_timeout).
    pub invalidation_reason: Option<String>,
    /// Bytes of WAL the slot retains on its server (current position − restart_lsn).
    pub retained_bytes: Option<u64>,
    /// Logical slots: bytes between the server's position (replay position on a standby) and
    /// `confirmed_flush_lsn`, computed in the same statement; None when nothing is confirmed.
    #[serde(default)]
    pub confirmed_behind_bytes: Option<u64>,
}

/// A subscription worker as pg_stat_subscription shows it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionRow {
    /// Subscription name.
    pub subname: String,
    /// Worker pid (None: no worker running).
    pub pid: Option<i32>,
    /// Table-sync worker's table, None for the apply worker (the leader: parallel apply
    /// workers are not listed).
    pub relid: Option<String>,
    /// Last WAL received.
    pub received_lsn: Option<Lsn>,
    /// Last WAL reported back to the walsender.
    pub latest_end_lsn: Option<Lsn>,
    /// Seconds since the last message from the publisher.
    pub last_msg_age_s: Option<f64>,
    /// latest_end_time: when the walsender last had its position (`latest_end_lsn`) reported
    /// back, as the publisher's clock stamped it (RFC 3339, UTC).
    #[serde(default)]
    pub latest_end_time: Option<String>,
    /// last_msg_send_time: when the publisher sent the last message received (RFC 3339, UTC).
    #[serde(default)]
    pub last_msg_send_time: Option<String>,
    /// Whether the subscription is enabled.
    pub enabled: Option<bool>,
}

/// What one node reported.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NodeSnapshot {
    /// Node name.
    pub name: String,
    /// Where it listens (host:port).
    pub endpoint: String,
    /// The node answered.
    pub reachable: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// pg_is_in_recovery().
    pub in_recovery: Option<bool>,
    /// Primary: pg_current_wal_lsn().
    pub current_lsn: Option<Lsn>,
    /// Standby: pg_last_wal_receive_lsn().
    pub receive_lsn: Option<Lsn>,
    /// Standby: pg_last_wal_replay_lsn().
    pub replay_lsn: Option<Lsn>,
    /// Standby: seconds since the last replayed transaction committed on the primary.
    pub replay_age_s: Option<f64>,
    /// Standby: pg_last_xact_replay_timestamp(), the primary's commit time of the last
    /// replayed transaction (RFC 3339, UTC); None before any was replayed.
    #[serde(default)]
    pub replay_timestamp: Option<String>,
    /// Standby: replay paused with pg_wal_replay_pause().
    pub replay_paused: Option<bool>,
    /// Size of pg_wal in bytes.
    pub wal_bytes: Option<u64>,
    /// Walsenders on this node.
    pub senders: Vec<WalSenderRow>,
    /// Slots on this node.
    pub slots: Vec<SlotRow>,
    /// Subscriptions on this node.
    pub subscriptions: Vec<SubscriptionRow>,
    /// Why `subscriptions` could not be read (the node answered otherwise): then an empty
    /// list says nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions_error: Option<String>,
}

/// Lag of one hop, in bytes and (when PostgreSQL knows it) seconds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct HopLag {
    /// "a→b", "b→c", "a→c".
    pub hop: String,
    /// WAL bytes not yet applied downstream; None when it cannot be computed (node down).
    pub bytes: Option<u64>,
    /// Seconds behind; None when idle or unknown (never reported as 0 when NULL).
    pub seconds: Option<f64>,
    /// Why `seconds` is None (set only then, and for "a→c" only by [`ChainSnapshot::take`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_no_seconds: Option<NoSeconds>,
}

/// Why a hop has no lag in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoSeconds {
    /// The walsender reports a NULL lag: nothing in flight. Idle, never 0.
    Idle,
    /// No walsender for this hop: the downstream is not streaming from it.
    NotStreaming,
    /// End to end: no heartbeat is being written (the snapshot's `heartbeat` says why).
    NoHeartbeat,
    /// The upstream node did not answer, or the heartbeat could not be read.
    Unknown,
}

/// The whole chain at one moment.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ChainSnapshot {
    /// When it was taken (RFC 3339, UTC).
    pub taken_at: String,
    /// Per node, in chain order.
    pub nodes: Vec<NodeSnapshot>,
    /// Per hop.
    pub lags: Vec<HopLag>,
    /// End to end, from the heartbeat rows on the primary and on C (None: not read).
    #[serde(default)]
    pub heartbeat: Option<EndToEnd>,
}

fn opt_lsn(v: Option<&str>) -> Option<Lsn> {
    v.and_then(|s| s.parse().ok())
}

fn opt_f64(v: Option<&str>) -> Option<f64> {
    v.and_then(|s| s.parse().ok())
}

fn opt_bool(v: Option<&str>) -> Option<bool> {
    v.map(|s| s == "t")
}

/// A byte count PostgreSQL computed; negative (the downstream reported a position past this
/// node's, which only a moment's race in PostgreSQL's own bookkeeping gives) reads as 0.
fn opt_bytes(v: Option<&str>) -> Option<u64> {
    v.and_then(|x| x.parse::<i64>().ok())
        .map(|x| x.max(0) as u64)
}

/// SQL turning the timestamptz `expr` into RFC 3339 text in UTC, whatever the session's
/// DateStyle and TimeZone ("2026-03-14T12:00:01.123456Z"); NULL stays NULL.
fn iso_utc(expr: &str) -> String {
    format!("to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
}

async fn rows(
    c: &Client,
    sql: &str,
) -> Result<Vec<tokio_postgres::SimpleQueryRow>, tokio_postgres::Error> {
    Ok(c.simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect())
}

impl NodeSnapshot {
    /// The walsender whose application_name is `app` ("b" on A, the subscription on B), when
    /// the node answered and has one.
    pub fn sender(&self, app: &str) -> Option<&WalSenderRow> {
        self.senders
            .iter()
            .find(|w| w.application_name == app)
            .filter(|_| self.reachable)
    }

    /// Read one node, waiting at most [`STATUS_PATIENCE`]. Never fails: a node that cannot be
    /// reached or does not answer in time is recorded as unreachable.
    pub async fn take(node: &Node, db: &str) -> NodeSnapshot {
        NodeProbe::new(node.clone(), db)
            .take_within(STATUS_PATIENCE)
            .await
    }

    async fn fill(
        s: &mut NodeSnapshot,
        c: &Client,
        node: &Node,
    ) -> Result<(), tokio_postgres::Error> {
        let v = node.version().major;
        let r = rows(
            c,
            "SELECT pg_is_in_recovery(), (SELECT sum(size) FROM pg_ls_waldir())",
        )
        .await?;
        let in_recovery = opt_bool(r[0].get(0)).unwrap_or(false);
        s.in_recovery = Some(in_recovery);
        s.wal_bytes = r[0].get(1).and_then(|x| x.parse().ok());
        let here = if in_recovery {
            let sql = format!(
                "SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), \
                 extract(epoch FROM now() - pg_last_xact_replay_timestamp()), pg_is_wal_replay_paused(), {}",
                iso_utc("pg_last_xact_replay_timestamp()")
            );
            let r = rows(c, &sql).await?;
            s.receive_lsn = opt_lsn(r[0].get(0));
            s.replay_lsn = opt_lsn(r[0].get(1));
            s.replay_age_s = opt_f64(r[0].get(2));
            s.replay_paused = opt_bool(r[0].get(3));
            s.replay_timestamp = r[0].get(4).map(str::to_string);
            "pg_last_wal_replay_lsn()"
        } else {
            let r = rows(c, "SELECT pg_current_wal_lsn()").await?;
            s.current_lsn = opt_lsn(r[0].get(0));
            "pg_current_wal_lsn()"
        };
        let sql = format!(
            "SELECT application_name, state, sent_lsn, write_lsn, flush_lsn, replay_lsn, \
             extract(epoch FROM write_lag), extract(epoch FROM flush_lag), extract(epoch FROM replay_lag), sync_state, \
             pg_wal_lsn_diff({here}, replay_lsn)::bigint \
             FROM pg_stat_replication ORDER BY application_name"
        );
        for r in rows(c, &sql).await? {
            s.senders.push(WalSenderRow {
                application_name: r.get(0).unwrap_or_default().to_string(),
                state: r.get(1).map(str::to_string),
                sent_lsn: opt_lsn(r.get(2)),
                write_lsn: opt_lsn(r.get(3)),
                flush_lsn: opt_lsn(r.get(4)),
                replay_lsn: opt_lsn(r.get(5)),
                write_lag_s: opt_f64(r.get(6)),
                flush_lag_s: opt_f64(r.get(7)),
                replay_lag_s: opt_f64(r.get(8)),
                sync_state: r.get(9).map(str::to_string),
                replay_behind_bytes: opt_bytes(r.get(10)),
            });
        }
        let conflicting = if v >= 16 { "conflicting" } else { "NULL::bool" };
        let reason = if v >= 17 {
            "invalidation_reason"
        } else {
            "NULL::text"
        };
        // PostgreSQL's safe_wal_size on a standby is measured from a write position that stays
        // put in recovery; the same formula from the replay position is what a restartpoint
        // acts on (KeepLogSeg).
        let computed = if in_recovery {
            "CASE WHEN wal_status = 'lost' OR k.slot_mb < 0 OR restart_lsn IS NULL THEN NULL \
             ELSE ((floor(pg_wal_lsn_diff(restart_lsn, '0/0') / k.seg) \
             + greatest(k.slot_mb * 1048576 / k.seg, k.keep_mb * 1048576 / k.seg) + 1) * k.seg \
             - pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'))::bigint END"
        } else {
            "NULL::bigint"
        };
        let sql = format!(
            "WITH k AS (SELECT \
             (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS seg, \
             (SELECT setting::bigint FROM pg_settings WHERE name = 'max_slot_wal_keep_size') AS slot_mb, \
             (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_keep_size') AS keep_mb) \
             SELECT slot_name, slot_type, active, restart_lsn, confirmed_flush_lsn, wal_status, safe_wal_size, \
             xmin, catalog_xmin, {conflicting}, {reason}, pg_wal_lsn_diff({here}, restart_lsn)::bigint, {computed}, \
             pg_wal_lsn_diff({here}, confirmed_flush_lsn)::bigint \
             FROM pg_replication_slots, k WHERE NOT temporary ORDER BY slot_name"
        );
        for r in rows(c, &sql).await? {
            s.slots.push(SlotRow {
                slot_name: r.get(0).unwrap_or_default().to_string(),
                slot_type: r.get(1).unwrap_or_default().to_string(),
                active: opt_bool(r.get(2)).unwrap_or(false),
                restart_lsn: opt_lsn(r.get(3)),
                confirmed_flush_lsn: opt_lsn(r.get(4)),
                wal_status: r.get(5).map(str::to_string),
                safe_wal_size: r.get(6).and_then(|x| x.parse().ok()),
                xmin: r.get(7).map(str::to_string),
                catalog_xmin: r.get(8).map(str::to_string),
                conflicting: opt_bool(r.get(9)),
                invalidation_reason: r.get(10).map(str::to_string),
                retained_bytes: opt_bytes(r.get(11)),
                safe_wal_size_computed: r.get(12).and_then(|x| x.parse().ok()),
                confirmed_behind_bytes: opt_bytes(r.get(13)),
            });
        }
        Ok(())
    }

    async fn subscriptions(c: &Client) -> Result<Vec<SubscriptionRow>, tokio_postgres::Error> {
        let mut out = Vec::new();
        // Parallel apply workers (16+, streaming = parallel: 18's default) have no relid
        // either and would pass for the apply worker; they name their leader in leader_pid.
        let sql = format!(
            "SELECT s.subname, st.pid, st.relid::regclass::text, st.received_lsn, st.latest_end_lsn, \
             extract(epoch FROM now() - st.last_msg_receipt_time), s.subenabled, {}, {} \
             FROM pg_subscription s LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.leader_pid IS NULL \
             WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1, 3 NULLS FIRST",
            iso_utc("st.latest_end_time"),
            iso_utc("st.last_msg_send_time"),
        );
        for r in rows(c, &sql).await? {
            out.push(SubscriptionRow {
                subname: r.get(0).unwrap_or_default().to_string(),
                pid: r.get(1).and_then(|x| x.parse().ok()),
                relid: r.get(2).map(str::to_string),
                received_lsn: opt_lsn(r.get(3)),
                latest_end_lsn: opt_lsn(r.get(4)),
                last_msg_age_s: opt_f64(r.get(5)),
                enabled: opt_bool(r.get(6)),
                latest_end_time: r.get(7).map(str::to_string),
                last_msg_send_time: r.get(8).map(str::to_string),
            });
        }
        Ok(out)
    }
}

/// Repeated snapshots of one node over kept-open sessions (a sampler polls several times a
/// second; reconnecting each time would cost more than the queries).
pub struct NodeProbe {
    node: Node,
    db: String,
    admin: Option<Client>,
    dbc: Option<Client>,
}

impl NodeProbe {
    /// A probe for `node`; `db` is where subscriptions live.
    pub fn new(node: Node, db: &str) -> NodeProbe {
        NodeProbe {
            node,
            db: db.to_string(),
            admin: None,
            dbc: None,
        }
    }

    /// Forget the sessions (after a probe timed out on a frozen node).
    pub fn reset(&mut self) {
        self.admin = None;
        self.dbc = None;
    }

    /// A snapshot saying the node did not answer.
    pub fn unreachable(&self, why: String) -> NodeSnapshot {
        NodeSnapshot {
            name: self.node.name().to_string(),
            endpoint: self.node.admin().endpoint.to_string(),
            error: Some(why),
            ..Default::default()
        }
    }

    /// One snapshot; reconnects after an error, never fails.
    pub async fn take(&mut self) -> NodeSnapshot {
        let node = &self.node;
        let mut s = NodeSnapshot {
            name: node.name().to_string(),
            endpoint: node.admin().endpoint.to_string(),
            ..Default::default()
        };
        if self.admin.as_ref().is_none_or(|c| c.is_closed()) {
            match node.connect("postgres").await {
                Ok(c) => self.admin = Some(c),
                Err(e) => {
                    self.admin = None;
                    s.error = Some(e.to_string());
                    return s;
                }
            }
        }
        let client = self.admin.as_ref().expect("connected above");
        match NodeSnapshot::fill(&mut s, client, node).await {
            Ok(()) => s.reachable = true,
            Err(e) => {
                s.error = Some(crate::Error::from(e).to_string());
                self.admin = None;
                return s;
            }
        }
        if self.dbc.as_ref().is_none_or(|c| c.is_closed()) {
            match node.connect(&self.db).await {
                Ok(c) => self.dbc = Some(c),
                Err(e) => {
                    self.dbc = None;
                    s.subscriptions_error = Some(e.to_string());
                    return s;
                }
            }
        }
        let client = self.dbc.as_ref().expect("connected above");
        match NodeSnapshot::subscriptions(client).await {
            Ok(subs) => s.subscriptions = subs,
            Err(e) => {
                s.subscriptions_error = Some(crate::Error::from(e).to_string());
                self.dbc = None;
            }
        }
        s
    }

    /// [`NodeProbe::take`], or "unreachable" when the node does not answer within `patience`
    /// (the sessions are dropped then: the next snapshot reconnects).
    pub async fn take_within(&mut self, patience: Duration) -> NodeSnapshot {
        match tokio::time::timeout(patience, self.take()).await {
            Ok(s) => s,
            Err(_) => {
                self.reset();
                self.unreachable(no_answer_within(patience))
            }
        }
    }
}

/// How long `status` waits for one node's snapshot or heartbeat row before showing it as not
/// answering (a paused node accepts connections and then never answers).
pub const STATUS_PATIENCE: Duration = Duration::from_secs(5);

/// Why a node counts as not answering.
pub(super) fn no_answer_within(patience: Duration) -> String {
    format!("no answer within {}", crate::util::fmt_duration(patience))
}

/// The heartbeat row on one node, and whether the heartbeat writer's session is connected there.
struct HeartbeatOn {
    row: Result<HeartbeatRead, String>,
    writer_connected: bool,
}

/// The heartbeat row on `node`, or why it could not be read.
async fn heartbeat_on(node: &Node, db: &str) -> HeartbeatOn {
    let read = async {
        let c = node.connect(db).await.map_err(|e| e.to_string())?;
        let row = read_heartbeat(&c)
            .await
            .map_err(|e| crate::Error::from(e).to_string())?;
        // Not knowing whether the writer is connected is the same as it not being: the row's
        // age then decides.
        Ok((row, writer_connected(&c).await.unwrap_or(false)))
    };
    match tokio::time::timeout(STATUS_PATIENCE, read).await {
        Ok(Ok((row, writer_connected))) => HeartbeatOn {
            row: Ok(row),
            writer_connected,
        },
        Ok(Err(e)) => HeartbeatOn {
            row: Err(e),
            writer_connected: false,
        },
        Err(_) => HeartbeatOn {
            row: Err(no_answer_within(STATUS_PATIENCE)),
            writer_connected: false,
        },
    }
}

impl ChainSnapshot {
    /// Snapshot A, B and C concurrently and derive per-hop lag; `logical_slot` names the slot
    /// on B that feeds C. End-to-end seconds come from the heartbeat rows on the primary (A,
    /// or B once promoted) and on C; `writer` says whether anybody may still be writing them.
    pub async fn take(
        a: &Node,
        b: &Node,
        c: &Node,
        db: &str,
        logical_slot: &str,
        writer: &Writer,
    ) -> ChainSnapshot {
        // Stamped before anything is read: the figures are as of no later than this, and a
        // node slow to answer must not make them look newer.
        let taken_at = chrono::Utc::now().to_rfc3339();
        // Every read at once, each bounded: a paused node costs one patience, not one per read.
        // The primary's heartbeat row is read on A and on B alike, B's counting once promoted.
        let (sa, sb, sc, hb_a, hb_b, hb_c) = tokio::join!(
            NodeSnapshot::take(a, db),
            NodeSnapshot::take(b, db),
            NodeSnapshot::take(c, db),
            heartbeat_on(a, db),
            heartbeat_on(b, db),
            heartbeat_on(c, db)
        );
        let mut lags = derive_lags(&sa, &sb, logical_slot);
        let (primary, on_primary) = if sb.in_recovery == Some(false) {
            (b, hb_b)
        } else {
            (a, hb_a)
        };
        let writer = match writer {
            Writer::MaybeRunning if on_primary.writer_connected => Writer::Connected,
            w => w.clone(),
        };
        let e2e = assess(primary.name(), on_primary.row, hb_c.row, &writer);
        if let Some(hop) = lags.iter_mut().find(|l| l.hop == "a→c") {
            hop.seconds = e2e.lag_s();
            hop.why_no_seconds = match &e2e {
                _ if hop.seconds.is_some() => None,
                EndToEnd::Stopped { .. } | EndToEnd::NoHeartbeat { .. } => {
                    Some(NoSeconds::NoHeartbeat)
                }
                EndToEnd::Measured { .. } | EndToEnd::Unknown { .. } => Some(NoSeconds::Unknown),
            };
        }
        ChainSnapshot {
            taken_at,
            nodes: vec![sa, sb, sc],
            lags,
            heartbeat: Some(e2e),
        }
    }
}

/// Per-hop lag from node snapshots. A→B compares A's write position with B's replay position;
/// B→C compares what B has replayed (or written, once promoted) with what C confirmed on the
/// slot; A→C is end to end.
pub fn derive_lags(a: &NodeSnapshot, b: &NodeSnapshot, logical_slot: &str) -> Vec<HopLag> {
    let b_pos = if b.in_recovery == Some(true) {
        b.replay_lsn
    } else {
        b.current_lsn
    };
    let confirmed = b
        .slots
        .iter()
        .find(|s| s.slot_name == logical_slot)
        .and_then(|s| s.confirmed_flush_lsn);
    // A walsender's NULL replay_lag means idle; no walsender at all means not streaming.
    let seconds = |up: &NodeSnapshot, app: &str| -> (Option<f64>, Option<NoSeconds>) {
        if !up.reachable {
            return (None, Some(NoSeconds::Unknown));
        }
        match up.senders.iter().find(|w| w.application_name == app) {
            Some(w) => (
                w.replay_lag_s,
                w.replay_lag_s.is_none().then_some(NoSeconds::Idle),
            ),
            None => (None, Some(NoSeconds::NotStreaming)),
        }
    };
    let (a_to_b_seconds, a_to_b_why) = seconds(a, "b");
    let (b_to_c_seconds, b_to_c_why) = seconds(b, logical_slot);
    // Positions read on two nodes are of two moments (B read after A has replayed more than A
    // had written when read: a lag of 0 while WAL is in flight), so where one node knows both
    // ends, its own difference counts.
    let diff = |x: Option<Lsn>, y: Option<Lsn>| match (x, y) {
        (Some(x), Some(y)) => Some(x.bytes_since(y)),
        _ => None,
    };
    let a_to_b_bytes = a
        .sender("b")
        .and_then(|w| w.replay_behind_bytes)
        .or_else(|| diff(a.current_lsn, b_pos));
    let b_to_c_bytes = b
        .slots
        .iter()
        .find(|s| s.slot_name == logical_slot)
        .filter(|_| b.reachable)
        .and_then(|s| s.confirmed_behind_bytes)
        .or_else(|| diff(b_pos, confirmed));
    let top = if b.in_recovery == Some(false) {
        b.current_lsn
    } else {
        a.current_lsn
    };
    vec![
        HopLag {
            hop: "a→b".into(),
            bytes: a_to_b_bytes,
            seconds: a_to_b_seconds,
            why_no_seconds: a_to_b_why,
        },
        HopLag {
            hop: "b→c".into(),
            bytes: b_to_c_bytes,
            seconds: b_to_c_seconds,
            why_no_seconds: b_to_c_why,
        },
        HopLag {
            hop: "a→c".into(),
            bytes: diff(top, confirmed),
            seconds: None,
            why_no_seconds: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(s: &str) -> Option<Lsn> {
        Some(s.parse().unwrap())
    }

    fn bytes(lags: &[HopLag], hop: &str) -> Option<u64> {
        lags.iter().find(|l| l.hop == hop).and_then(|l| l.bytes)
    }

    /// A read at 0/1000 (A's position then); B read a moment later, having replayed past it;
    /// C confirmed 0/800 on B's slot.
    fn chain_read_at_two_moments() -> (NodeSnapshot, NodeSnapshot) {
        let a = NodeSnapshot {
            name: "a".into(),
            reachable: true,
            in_recovery: Some(false),
            current_lsn: lsn("0/1000"),
            senders: vec![WalSenderRow {
                application_name: "b".into(),
                replay_lsn: lsn("0/F00"),
                replay_behind_bytes: Some(0x100),
                ..Default::default()
            }],
            ..Default::default()
        };
        let b = NodeSnapshot {
            name: "b".into(),
            reachable: true,
            in_recovery: Some(true),
            replay_lsn: lsn("0/1400"),
            slots: vec![SlotRow {
                slot_name: "sub".into(),
                slot_type: "logical".into(),
                confirmed_flush_lsn: lsn("0/800"),
                confirmed_behind_bytes: Some(0x900),
                ..Default::default()
            }],
            ..Default::default()
        };
        (a, b)
    }

    #[test]
    fn hop_bytes_are_one_node_s_own_difference_not_two_moments_compared() {
        let (a, b) = chain_read_at_two_moments();
        let lags = derive_lags(&a, &b, "sub");
        // Compared across nodes, a→b would be 0/1000 − 0/1400: nothing behind, clamped to 0,
        // while A's walsender shows 256 bytes B has not replayed.
        assert_eq!(bytes(&lags, "a→b"), Some(0x100));
        assert_eq!(bytes(&lags, "b→c"), Some(0x900));
        // Without the walsender (B not streaming) or the slot figure, positions read on two
        // nodes are all there is.
        let (mut a, mut b) = chain_read_at_two_moments();
        a.senders.clear();
        b.slots[0].confirmed_behind_bytes = None;
        let lags = derive_lags(&a, &b, "sub");
        assert_eq!(bytes(&lags, "a→b"), Some(0));
        assert_eq!(bytes(&lags, "b→c"), Some(0x1400 - 0x800));
        // NULL stays unknown: nothing confirmed yet, B not answering.
        let (a, mut b) = chain_read_at_two_moments();
        b.slots[0].confirmed_flush_lsn = None;
        b.slots[0].confirmed_behind_bytes = None;
        assert_eq!(bytes(&derive_lags(&a, &b, "sub"), "b→c"), None);
        b.reachable = false;
        b.replay_lsn = None;
        b.slots.clear();
        let lags = derive_lags(&a, &b, "sub");
        assert_eq!(bytes(&lags, "b→c"), None);
        assert_eq!(bytes(&lags, "a→b"), Some(0x100), "A alone knows");
    }
}
