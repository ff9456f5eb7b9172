//! Faults as data: what a scenario's `[[faults]]` entries become, and what the run records
//! about each one.

use std::fmt;
use std::time::Duration;

use crate::node::StopMode;

/// A replication hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Hop {
    /// A → B, physical streaming ("a-b" in scenario files).
    #[serde(rename = "a-b")]
    AB,
    /// B → C, logical replication ("b-c").
    #[serde(rename = "b-c")]
    BC,
}

impl Hop {
    /// "a-b" or "b-c".
    pub fn as_str(self) -> &'static str {
        match self {
            Hop::AB => "a-b",
            Hop::BC => "b-c",
        }
    }

    /// Parse "a-b" / "b-c" (also "a->b", "ab").
    pub fn parse(s: &str) -> Option<Hop> {
        match s.to_ascii_lowercase().replace(['>', ' '], "").as_str() {
            "a-b" | "ab" => Some(Hop::AB),
            "b-c" | "bc" => Some(Hop::BC),
            _ => None,
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a fault does. Each kind has a heal (listed per variant); kinds marked one-shot have
/// nothing to heal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Extra delay (± jitter) on a hop's data direction. Heal: no delay.
    Latency {
        /// Which hop.
        hop: Hop,
        /// One-way delay added to every byte of replication data.
        #[serde(with = "humantime_serde_compat")]
        latency: Duration,
        /// Spread of the delay: each chunk (a packet, in containers) is delayed uniformly in
        /// [latency − jitter, latency + jitter], clamped at 0, the same on every backend (tc
        /// netem's `delay latency jitter`; the harness proxy draws from the run's seed). Order
        /// is kept, as TCP keeps it: nothing is delivered before what was sent ahead of it.
        #[serde(with = "humantime_serde_compat")]
        jitter: Duration,
    },
    /// A bandwidth cap on a hop's data direction. Heal: unlimited.
    Bandwidth {
        /// Which hop.
        hop: Hop,
        /// Bytes per second.
        bytes_per_sec: u64,
    },
    /// Random packet loss on a hop, both ways (a packet network only: the docker backend).
    /// Heal: no loss.
    Loss {
        /// Which hop.
        hop: Hop,
        /// Percentage of packets dropped (0 < percent ≤ 100).
        percent: f64,
    },
    /// Connections stay open but no bytes pass (a network partition as the endpoints see it).
    /// Heal: bytes flow again.
    Partition {
        /// Which hop.
        hop: Hop,
    },
    /// Existing connections are reset and new ones refused. Heal: connections accepted.
    LinkDown {
        /// Which hop.
        hop: Hop,
    },
    /// SIGKILL every process of a node. Heal: start it again.
    Kill {
        /// "a", "b" or "c".
        node: String,
    },
    /// Stop a node (pg_ctl-style modes). Heal: start it again.
    Stop {
        /// "a", "b" or "c".
        node: String,
        /// fast or immediate (a scenario cannot ask for smart: the harness's sessions would
        /// keep the node from ever going down).
        mode: StopMode,
    },
    /// SIGSTOP every process of a node (it hangs with connections open). Heal: SIGCONT.
    Pause {
        /// "a", "b" or "c".
        node: String,
    },
    /// `pg_wal_replay_pause()` on B: B freezes at an LSN and C converges to exactly that state.
    /// Heal: `pg_wal_replay_resume()`.
    ReplayPause,
    /// `recovery_min_apply_delay` on B: lag without any network fault. Heal: 0.
    ReplayDelay {
        /// How far behind A B applies.
        #[serde(with = "humantime_serde_compat")]
        delay: Duration,
    },
    /// Stop the B → C consumer (disable the subscription: the "DMS task stopped" case); B keeps
    /// the slot and retains WAL. Heal: enable it.
    ReplicatorStop,
    /// Kill A, promote B, point the workload at B. One-shot: A stays down; the logical slot on
    /// B must carry on across the timeline switch.
    PrimaryFailure,
    /// Catalog churn and VACUUM on A (CREATE/DROP TABLE, VACUUM FULL pg_class, roles), every
    /// `every`, until healed: removes catalog rows B's logical slot may still need.
    CatalogChurn {
        /// Pause between rounds.
        #[serde(with = "humantime_serde_compat")]
        every: Duration,
    },
    /// CHECKPOINT on A, then on B (a restartpoint: only then does a standby remove WAL). One-shot.
    Checkpoint,
}

impl FaultKind {
    /// The scenario-file name of the kind ("latency", "partition", ...).
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Latency { .. } => "latency",
            FaultKind::Bandwidth { .. } => "bandwidth",
            FaultKind::Loss { .. } => "loss",
            FaultKind::Partition { .. } => "partition",
            FaultKind::LinkDown { .. } => "link_down",
            FaultKind::Kill { .. } => "kill",
            FaultKind::Stop { .. } => "stop",
            FaultKind::Pause { .. } => "pause",
            FaultKind::ReplayPause => "replay_pause",
            FaultKind::ReplayDelay { .. } => "replay_delay",
            FaultKind::ReplicatorStop => "replicator_stop",
            FaultKind::PrimaryFailure => "primary_failure",
            FaultKind::CatalogChurn { .. } => "catalog_churn",
            FaultKind::Checkpoint => "checkpoint",
        }
    }

    /// Every kind name, for error messages.
    pub const NAMES: [&'static str; 14] = [
        "latency",
        "bandwidth",
        "loss",
        "partition",
        "link_down",
        "kill",
        "stop",
        "pause",
        "replay_pause",
        "replay_delay",
        "replicator_stop",
        "primary_failure",
        "catalog_churn",
        "checkpoint",
    ];

    /// Names of the kinds that happen once and have nothing to heal.
    pub const ONE_SHOT: [&'static str; 2] = ["primary_failure", "checkpoint"];

    /// Kinds that happen once and have nothing to heal.
    pub fn one_shot(&self) -> bool {
        Self::ONE_SHOT.contains(&self.name())
    }

    /// The hop a link fault acts on.
    pub fn hop(&self) -> Option<Hop> {
        match self {
            FaultKind::Latency { hop, .. }
            | FaultKind::Bandwidth { hop, .. }
            | FaultKind::Loss { hop, .. }
            | FaultKind::Partition { hop }
            | FaultKind::LinkDown { hop } => Some(*hop),
            _ => None,
        }
    }

    /// A short human description ("latency 500ms on a-b", "latency 100ms ± 50ms on b-c": the
    /// delay ranges over latency ± jitter).
    pub fn describe(&self) -> String {
        use crate::util::{fmt_bytes, fmt_duration};
        match self {
            FaultKind::Latency {
                hop,
                latency,
                jitter,
            } if jitter.is_zero() => {
                format!("latency {} on {hop}", fmt_duration(*latency))
            }
            FaultKind::Latency {
                hop,
                latency,
                jitter,
            } => {
                format!(
                    "latency {} ± {} on {hop}",
                    fmt_duration(*latency),
                    fmt_duration(*jitter)
                )
            }
            FaultKind::Bandwidth { hop, bytes_per_sec } => {
                format!("bandwidth {}/s on {hop}", fmt_bytes(*bytes_per_sec))
            }
            FaultKind::Loss { hop, percent } => format!("loss {percent}% on {hop}"),
            FaultKind::Partition { hop } => format!("partition {hop}"),
            FaultKind::LinkDown { hop } => format!("link {hop} down"),
            FaultKind::Kill { node } => format!("kill -9 {node}"),
            FaultKind::Stop { node, mode } => format!("stop {node} ({mode:?})"),
            FaultKind::Pause { node } => format!("pause {node} (SIGSTOP)"),
            FaultKind::ReplayPause => "replay paused on b".into(),
            FaultKind::ReplayDelay { delay } => {
                format!("b applies {} behind a", fmt_duration(*delay))
            }
            FaultKind::ReplicatorStop => "b → c consumer stopped".into(),
            FaultKind::PrimaryFailure => "primary failure: kill a, promote b".into(),
            FaultKind::CatalogChurn { every } => {
                format!("catalog churn + VACUUM on a every {}", fmt_duration(*every))
            }
            FaultKind::Checkpoint => "checkpoint on a, restartpoint on b".into(),
        }
    }
}

/// One entry of a scenario's fault timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultSpec {
    /// What to do.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// When, from the start of the workload.
    #[serde(with = "humantime_serde_compat")]
    pub at: Duration,
    /// When to heal, from the start of the workload; None: at the end of the workload (or never,
    /// for one-shot kinds).
    #[serde(with = "humantime_serde_compat::option")]
    pub heal_at: Option<Duration>,
    /// The line of the entry's `kind` in the scenario file, for errors found once the backend
    /// is known (None: not read from a file).
    #[serde(skip)]
    pub line: Option<usize>,
}

/// What happened to one fault during the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultRecord {
    /// The kind's name ("latency").
    pub kind: String,
    /// Human description ("latency 500ms on a-b").
    pub description: String,
    /// Milliseconds since the workload started when injecting began (None: never injected).
    pub injected_ms: Option<u64>,
    /// Milliseconds since the workload started when it was healed (None: not healed —
    /// one-shot, or the run ended first).
    pub healed_ms: Option<u64>,
    /// What went wrong injecting or healing, if anything.
    pub error: Option<String>,
    /// Catalog churn only: what its background rounds did while it was in force. A churn
    /// fault that completed no round did not rehearse anything, whatever the slot did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnRecord>,
    /// Checkpoint only: whether B's restartpoint could use A's checkpoint, and moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointRecord>,
}

/// What a checkpoint fault did. A standby's CHECKPOINT is a restartpoint, which can only use a
/// checkpoint record the standby has replayed: run before B replayed A's, it reuses an older
/// one or is skipped, and B removes no WAL.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRecord {
    /// The node that took the checkpoint ("a"; "b" once b is the primary, and then there is
    /// no restartpoint).
    pub primary: String,
    /// The primary's redo LSN after its CHECKPOINT (pg_control_checkpoint()).
    pub primary_redo: Option<crate::node::Lsn>,
    /// The primary's WAL position right after its CHECKPOINT: b replays this far before its
    /// own CHECKPOINT can use that checkpoint.
    pub primary_lsn: Option<crate::node::Lsn>,
    /// How long b took to replay that far (ms); None when it did not (`b_not_reached` says
    /// why) or when there was no standby.
    pub b_replayed_in_ms: Option<u64>,
    /// Why b had not replayed the primary's checkpoint when it was told to CHECKPOINT
    /// (replay paused, not there in time, not answering).
    pub b_not_reached: Option<String>,
    /// b's redo LSN before its CHECKPOINT.
    pub b_redo_before: Option<crate::node::Lsn>,
    /// b's redo LSN after it.
    pub b_redo_after: Option<crate::node::Lsn>,
}

impl CheckpointRecord {
    /// Whether b had a restartpoint: Some(true) when b was a standby and its redo LSN reached
    /// the primary's checkpoint; None when there was no standby or its redo was not read.
    pub fn restartpoint_current(&self) -> Option<bool> {
        Some(self.b_redo_after? >= self.primary_redo?)
    }

    /// b's restartpoint did nothing: its redo LSN stayed where it was, short of the
    /// primary's checkpoint. None when that cannot be told.
    pub fn restartpoint_idle(&self) -> Option<bool> {
        let (before, after) = (self.b_redo_before?, self.b_redo_after?);
        Some(after == before && !self.restartpoint_current()?)
    }

    /// For evidence: "a checkpointed (redo 0/5000028); b replayed it in 12ms; b's restartpoint
    /// moved its redo from 0/3000028 to 0/5000028".
    pub fn describe(&self) -> String {
        let lsn = |l: Option<crate::node::Lsn>| l.map_or("unknown".to_string(), |l| l.to_string());
        let mut s = format!(
            "{} checkpointed (redo {})",
            self.primary,
            lsn(self.primary_redo)
        );
        if self.primary != "a" {
            s.push_str(&format!(
                "; {} is the primary: no restartpoint to make",
                self.primary
            ));
            return s;
        }
        match (&self.b_not_reached, self.b_replayed_in_ms) {
            (Some(why), _) => s.push_str(&format!("; b had not replayed it ({why})")),
            (None, Some(ms)) => s.push_str(&format!("; b replayed it in {ms}ms")),
            (None, None) => {}
        }
        let (before, after) = (self.b_redo_before, self.b_redo_after);
        match (before, after, self.restartpoint_current()) {
            (_, None, _) => s.push_str("; b's redo after its CHECKPOINT was not read"),
            (Some(b), Some(a), Some(true)) if a == b => s.push_str(&format!(
                "; b's redo was already at {a} (b had made that restartpoint on its own)"
            )),
            (Some(b), Some(a), current) if a != b => {
                s.push_str(&format!(
                    "; b's restartpoint moved its redo from {b} to {a}"
                ));
                if current == Some(false) {
                    s.push_str(", short of the primary's checkpoint");
                }
            }
            (Some(_), Some(a), _) => s.push_str(&format!(
                "; b's restartpoint did not move (redo stays at {a})"
            )),
            (None, Some(a), _) => s.push_str(&format!("; b's redo is at {a}")),
        }
        s
    }
}

/// What a catalog churn fault did on A.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChurnRecord {
    /// Rounds in which every statement succeeded.
    pub rounds: u64,
    /// Rounds cut short by an error or a lost connection.
    pub failed_rounds: u64,
    /// The first error, with the statement it hit.
    pub first_error: Option<String>,
    /// Completed rounds after which a physical slot on A held an xmin or catalog_xmin: B's
    /// hot_standby_feedback holding A's horizon back, which is what keeps VACUUM from removing
    /// catalog rows B's logical slot needs.
    pub rounds_horizon_held: u64,
    /// A's physical slots as last read after a completed round ("b: xmin 790, catalog_xmin
    /// 785"); None: A had no physical slot.
    pub a_physical_slots: Option<String>,
}

impl ChurnRecord {
    /// For evidence: "12 churn rounds completed, 1 cut short (first error: ...); a's physical
    /// slot held a horizon back after 12 of them (b: ...)".
    pub fn describe(&self) -> String {
        let plural = if self.rounds == 1 { "" } else { "s" };
        let mut s = format!("{} churn round{plural} completed", self.rounds);
        if self.failed_rounds > 0 {
            s.push_str(&format!(", {} cut short", self.failed_rounds));
        }
        if let Some(e) = &self.first_error {
            s.push_str(&format!(" (first error: {e})"));
        }
        match &self.a_physical_slots {
            Some(slots) => s.push_str(&format!(
                "; a's physical slot held a horizon back after {} of them ({slots})",
                self.rounds_horizon_held
            )),
            None => s.push_str("; a showed no physical slot"),
        }
        s
    }
}

/// Durations in JSON as "1.5s"-style strings.
mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use std::time::Duration;

        pub fn serialize<S: serde::Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.collect_str(&humantime::format_duration(*d)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            let s = <Option<String> as serde::Deserialize>::deserialize(d)?;
            s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}
