//! `pgrehearse status` in words: one block per node, then per hop, then the heartbeat. Lag that
//! PostgreSQL reports as NULL is shown as "idle" (or why there is no number), never as 0.

use super::{ChainSnapshot, EndToEnd, HopLag, NoSeconds, SlotRow};
use crate::util::{fmt_bytes, fmt_duration};

fn lag_s(v: Option<f64>) -> String {
    match v {
        Some(s) => fmt_duration(std::time::Duration::from_secs_f64(s.max(0.0))),
        None => "idle".into(),
    }
}

/// A value, or "-" when there is none.
fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn ago(s: f64) -> String {
    fmt_duration(std::time::Duration::from_secs_f64(s.max(0.0)))
}

/// The seconds cell of a hop: a number, or why there is none — never empty, never 0 for NULL.
fn hop_seconds(h: &HopLag, e2e: Option<&EndToEnd>) -> String {
    if let Some(s) = h.seconds {
        return format!("{s:.3}s");
    }
    if h.hop == "a→c" {
        return match e2e {
            Some(EndToEnd::Measured {
                lag_s,
                at_least: true,
                primary_stalled,
                primary,
                ..
            }) => {
                if *primary_stalled {
                    format!("≥{lag_s:.3}s ({primary} commits no heartbeat)")
                } else {
                    format!("≥{lag_s:.3}s (c shows no heartbeat yet)")
                }
            }
            Some(EndToEnd::Stopped { stopped_s_ago, .. }) => {
                format!("no heartbeat (stopped {} ago)", ago(*stopped_s_ago))
            }
            Some(EndToEnd::NoHeartbeat { .. }) => "no heartbeat".into(),
            Some(EndToEnd::Measured { .. } | EndToEnd::Unknown { .. }) => "unknown".into(),
            None => "not measured".into(),
        };
    }
    match h.why_no_seconds {
        Some(NoSeconds::NotStreaming) => "not streaming".into(),
        Some(NoSeconds::Unknown) => "unknown".into(),
        Some(NoSeconds::NoHeartbeat) => "no heartbeat".into(),
        Some(NoSeconds::Idle) | None => "idle".into(),
    }
}

/// What the heartbeat says, in one line.
fn heartbeat_line(e: &EndToEnd) -> String {
    let seq = |s: &Option<u64>| s.map(|s| s.to_string()).unwrap_or_else(|| "none".into());
    match e {
        EndToEnd::Measured {
            primary_stalled: true,
            primary,
            seq_on_primary,
            seq_on_c,
            newest_age_s,
            ..
        } => format!(
            "heartbeat on {primary}: the writer is connected but none committed for {} (c shows seq {} of {seq_on_primary}): end-to-end lag at least that",
            ago(*newest_age_s),
            seq(seq_on_c)
        ),
        EndToEnd::Measured {
            at_least: true,
            primary,
            seq_on_primary,
            newest_age_s,
            ..
        } => format!(
            "heartbeat on {primary}: c shows none of the {seq_on_primary} written yet (newest written {} ago)",
            ago(*newest_age_s)
        ),
        EndToEnd::Measured {
            primary,
            seq_on_primary,
            seq_on_c,
            newest_age_s,
            ..
        } => format!(
            "heartbeat on {primary}: c shows seq {} of {seq_on_primary} (newest written {} ago)",
            seq(seq_on_c),
            ago(*newest_age_s)
        ),
        EndToEnd::Stopped {
            stopped_s_ago,
            seq_on_primary,
            seq_on_c,
            why,
        } => format!(
            "heartbeat stopped {} ago ({why}); c shows seq {} of {}; its age is not a lag",
            ago(*stopped_s_ago),
            seq(seq_on_c),
            seq(seq_on_primary)
        ),
        EndToEnd::NoHeartbeat { why } => {
            format!("no heartbeat ({why}): end-to-end lag in seconds is not measured")
        }
        EndToEnd::Unknown { why } => format!("heartbeat unknown: {why}"),
    }
}

/// A slot's line: activity, WAL it holds and may still take, and whether it was invalidated.
/// `in_recovery`: the slot is on a standby, where PostgreSQL's safe_wal_size is not meaningful.
fn slot_line(sl: &SlotRow, in_recovery: bool) -> String {
    let signed = |v: i64| {
        if v < 0 {
            format!("-{}", fmt_bytes(v.unsigned_abs()))
        } else {
            fmt_bytes(v as u64)
        }
    };
    let safe = match (sl.safe_wal_size, sl.safe_wal_size_computed) {
        // NULL: the slot is lost, or max_slot_wal_keep_size is -1 (no limit).
        _ if sl.wal_status.as_deref() == Some("lost") => "-".into(),
        (_, Some(v)) if in_recovery && v <= 0 => {
            format!(
                "{} (computed from replay; lost at the next restartpoint)",
                signed(v)
            )
        }
        (_, Some(v)) if in_recovery => format!("{} (computed from replay)", signed(v)),
        (None, _) => "unlimited".into(),
        // A snapshot without the computed figure: PostgreSQL's is measured from a WAL write
        // position that does not move in recovery.
        (Some(_), None) if in_recovery => "not meaningful on a standby".into(),
        (Some(v), _) => signed(v),
    };
    let mut l = format!(
        "     slot {:<16} {:<8} {} wal_status {} retains {} safe_wal_size {safe}",
        sl.slot_name,
        sl.slot_type,
        if sl.active { "active" } else { "INACTIVE" },
        sl.wal_status.as_deref().unwrap_or("-"),
        sl.retained_bytes
            .map(fmt_bytes)
            .unwrap_or_else(|| "-".into())
    );
    if let Some(c) = sl.confirmed_flush_lsn {
        l.push_str(&format!(" confirmed {c}"));
    }
    match sl.conflicting {
        Some(true) => l.push_str(" CONFLICTING"),
        Some(false) => l.push_str(" conflicting no"),
        None => {}
    }
    if let Some(r) = &sl.invalidation_reason {
        l.push_str(&format!(" INVALIDATED ({r})"));
    }
    l
}

/// The human form of a snapshot: one block per node, then per hop.
pub fn render_status(s: &ChainSnapshot) -> String {
    let mut out = Vec::new();
    for n in &s.nodes {
        if !n.reachable {
            out.push(format!(
                "{}  {}  UNREACHABLE: {}",
                n.name,
                n.endpoint,
                n.error.as_deref().unwrap_or("?")
            ));
            continue;
        }
        let role = match n.in_recovery {
            Some(true) => "standby",
            // C is the target even when its subscriptions could not be read.
            _ if n.name == "c" || !n.subscriptions.is_empty() => "target",
            _ => "primary",
        };
        let mut line = format!("{}  {role:<8} {}", n.name, n.endpoint);
        if let Some(l) = n.current_lsn {
            line.push_str(&format!("  wal {l}"));
        }
        if let (Some(r), Some(p)) = (n.receive_lsn, n.replay_lsn) {
            line.push_str(&format!("  received {r} replayed {p}"));
        }
        if let Some(age) = n.replay_age_s {
            // The commit time of the last transaction replayed: on an idle primary it ages
            // without B being behind.
            line.push_str(&format!("  last replayed commit {} ago", ago(age)));
        }
        if n.replay_paused == Some(true) {
            line.push_str("  REPLAY PAUSED");
        }
        if let Some(w) = n.wal_bytes {
            line.push_str(&format!("  pg_wal {}", fmt_bytes(w)));
        }
        out.push(line);
        for w in &n.senders {
            out.push(format!(
                "     walsender {:<16} {:<10} sent {} replay {}  lag write/flush/replay {}/{}/{}",
                w.application_name,
                w.state.as_deref().unwrap_or("-"),
                or_dash(w.sent_lsn),
                or_dash(w.replay_lsn),
                lag_s(w.write_lag_s),
                lag_s(w.flush_lag_s),
                lag_s(w.replay_lag_s)
            ));
        }
        for sl in &n.slots {
            out.push(slot_line(sl, n.in_recovery == Some(true)));
        }
        for sub in &n.subscriptions {
            out.push(format!(
                "     subscription {} {} worker {} received {} reported to b {} last message {}",
                sub.subname,
                if sub.enabled == Some(false) {
                    "DISABLED"
                } else {
                    "enabled"
                },
                sub.pid
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "none".into()),
                or_dash(sub.received_lsn),
                or_dash(sub.latest_end_lsn),
                sub.last_msg_age_s
                    .map(|s| format!("{s:.1}s ago"))
                    .unwrap_or_else(|| "-".into())
            ));
        }
        if let Some(e) = &n.subscriptions_error {
            out.push(format!("     subscriptions UNKNOWN: {e}"));
        }
    }
    for h in &s.lags {
        out.push(format!(
            "lag {:<4} {:>10}  {}",
            h.hop,
            h.bytes.map(fmt_bytes).unwrap_or_else(|| "unknown".into()),
            hop_seconds(h, s.heartbeat.as_ref())
        ));
    }
    if let Some(e) = &s.heartbeat {
        out.push(heartbeat_line(e));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use crate::observe::{NodeSnapshot, WalSenderRow};

    use super::*;

    fn hop(name: &str, bytes: Option<u64>, why: Option<NoSeconds>) -> HopLag {
        HopLag {
            hop: name.into(),
            bytes,
            seconds: None,
            why_no_seconds: why,
        }
    }

    /// A chain at rest: every walsender reports NULL lag.
    fn idle_chain(heartbeat: Option<EndToEnd>) -> ChainSnapshot {
        let idle_sender = |app: &str| WalSenderRow {
            application_name: app.into(),
            state: Some("streaming".into()),
            ..Default::default()
        };
        ChainSnapshot {
            taken_at: "2026-01-01T00:00:00Z".into(),
            nodes: vec![
                NodeSnapshot {
                    name: "a".into(),
                    endpoint: "127.0.0.1:5432".into(),
                    reachable: true,
                    in_recovery: Some(false),
                    senders: vec![idle_sender("b")],
                    ..Default::default()
                },
                NodeSnapshot {
                    name: "b".into(),
                    endpoint: "127.0.0.1:5433".into(),
                    reachable: true,
                    in_recovery: Some(true),
                    senders: vec![idle_sender("pgrehearse_sub")],
                    slots: vec![SlotRow {
                        slot_name: "pgrehearse_sub".into(),
                        slot_type: "logical".into(),
                        active: true,
                        wal_status: Some("reserved".into()),
                        safe_wal_size: None,
                        conflicting: Some(false),
                        retained_bytes: Some(2048),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            lags: vec![
                hop("a→b", Some(0), Some(NoSeconds::Idle)),
                // A snapshot from before the reason existed: NULL still reads as idle.
                hop("b→c", None, None),
                hop("a→c", Some(0), Some(NoSeconds::NoHeartbeat)),
            ],
            heartbeat,
        }
    }

    fn lag_line<'a>(out: &'a str, hop: &str) -> &'a str {
        out.lines()
            .find(|l| l.starts_with(&format!("lag {hop}")))
            .unwrap_or_else(|| panic!("no lag line for {hop} in:\n{out}"))
    }

    /// The seconds cell: what follows "lag ", the hop (4 wide), the bytes (10 wide) and two
    /// spaces.
    fn seconds_cell(line: &str) -> String {
        line.chars().skip(4 + 4 + 1 + 10 + 2).collect()
    }

    #[test]
    fn null_lag_renders_as_idle_never_empty_nor_zero() {
        let out = render_status(&idle_chain(Some(EndToEnd::NoHeartbeat {
            why: "the harness exited".into(),
        })));
        for hop in ["a→b", "b→c"] {
            let line = lag_line(&out, hop);
            assert_eq!(seconds_cell(line), "idle", "{line}");
        }
        assert!(
            lag_line(&out, "b→c").contains("unknown"),
            "NULL bytes are unknown: {out}"
        );
        assert_eq!(seconds_cell(lag_line(&out, "a→c")), "no heartbeat", "{out}");
        assert!(
            out.contains(
                "no heartbeat (the harness exited): end-to-end lag in seconds is not measured"
            ),
            "{out}"
        );
        for l in out.lines().filter(|l| l.starts_with("lag ")) {
            assert!(!seconds_cell(l).is_empty(), "empty lag cell: {l:?}");
            assert!(!seconds_cell(l).starts_with("0"), "NULL shown as 0: {l:?}");
        }
        // Walsender lags (write/flush/replay) are NULL too.
        assert!(
            out.contains("lag write/flush/replay idle/idle/idle"),
            "{out}"
        );
        // The logical slot's headroom and conflict state.
        let slot = slot_line(&out);
        assert!(slot.contains("safe_wal_size unlimited"), "{slot}");
        assert!(slot.contains("conflicting no"), "{slot}");
    }

    fn slot_line(out: &str) -> &str {
        out.lines()
            .find(|l| l.contains("slot pgrehearse_sub"))
            .unwrap_or_else(|| panic!("no slot line in:\n{out}"))
    }

    #[test]
    fn a_stopped_heartbeat_is_reported_with_its_age_not_as_a_lag() {
        let out = render_status(&idle_chain(Some(EndToEnd::Stopped {
            stopped_s_ago: 125.0,
            seq_on_primary: Some(40),
            seq_on_c: Some(40),
            why: "nobody writes it".into(),
        })));
        let line = lag_line(&out, "a→c");
        assert_eq!(
            seconds_cell(line),
            "no heartbeat (stopped 2m05s ago)",
            "{out}"
        );
        assert!(
            out.contains("heartbeat stopped 2m05s ago (nobody writes it); c shows seq 40 of 40; its age is not a lag"),
            "{out}"
        );
    }

    #[test]
    fn measured_lags_and_slot_trouble_are_shown() {
        let mut s = idle_chain(Some(EndToEnd::Measured {
            lag_s: 0.25,
            at_least: false,
            primary_stalled: false,
            primary: "a".into(),
            seq_on_primary: 12,
            seq_on_c: Some(10),
            newest_age_s: 0.05,
        }));
        s.lags[0].seconds = Some(0.0125);
        s.lags[0].why_no_seconds = None;
        s.lags[1].why_no_seconds = Some(NoSeconds::NotStreaming);
        s.lags[2].seconds = Some(0.25);
        s.lags[2].why_no_seconds = None;
        let sl = &mut s.nodes[1].slots[0];
        sl.safe_wal_size = Some(64 * 1024 * 1024);
        sl.safe_wal_size_computed = Some(-4096);
        sl.wal_status = Some("unreserved".into());
        sl.conflicting = Some(true);
        sl.invalidation_reason = Some("rows_removed".into());
        let out = render_status(&s);
        assert_eq!(seconds_cell(lag_line(&out, "a→b")), "0.013s", "{out}");
        assert_eq!(
            seconds_cell(lag_line(&out, "b→c")),
            "not streaming",
            "{out}"
        );
        assert_eq!(seconds_cell(lag_line(&out, "a→c")), "0.250s", "{out}");
        assert!(
            out.contains("heartbeat on a: c shows seq 10 of 12 (newest written 50ms ago)"),
            "{out}"
        );
        let slot = slot_line(&out);
        assert!(
            slot.contains(
                "safe_wal_size -4.0 KiB (computed from replay; lost at the next restartpoint)"
            ),
            "{slot}"
        );
        assert!(
            slot.contains("CONFLICTING INVALIDATED (rows_removed)"),
            "{slot}"
        );
    }

    #[test]
    fn a_primary_that_commits_no_heartbeat_is_a_lower_bound_on_the_lag() {
        let out = render_status(&idle_chain(Some(EndToEnd::Measured {
            lag_s: 42.0,
            at_least: true,
            primary_stalled: true,
            primary: "a".into(),
            seq_on_primary: 40,
            seq_on_c: Some(40),
            newest_age_s: 42.0,
        })));
        assert_eq!(
            seconds_cell(lag_line(&out, "a→c")),
            "≥42.000s (a commits no heartbeat)",
            "{out}"
        );
        assert!(
            out.contains("heartbeat on a: the writer is connected but none committed for 42.00s (c shows seq 40 of 40): end-to-end lag at least that"),
            "{out}"
        );
        assert!(!out.contains("not a lag"), "{out}");
    }

    #[test]
    fn c_whose_subscriptions_cannot_be_read_is_still_the_target_and_says_why() {
        let mut s = idle_chain(None);
        s.nodes.push(NodeSnapshot {
            name: "c".into(),
            endpoint: "127.0.0.1:5434".into(),
            reachable: true,
            in_recovery: Some(false),
            subscriptions_error: Some("database \"app\" does not exist".into()),
            ..Default::default()
        });
        let out = render_status(&s);
        let c = out.lines().find(|l| l.starts_with("c ")).unwrap();
        assert!(c.starts_with("c  target "), "{out}");
        assert!(
            out.contains("     subscriptions UNKNOWN: database \"app\" does not exist"),
            "{out}"
        );
    }

    #[test]
    fn on_a_standby_postgresql_s_safe_wal_size_is_not_the_margin() {
        let mut s = idle_chain(None);
        // What 17.10 reports on a standby: the slot's limit LSN minus a write position of 0/0.
        let sl = &mut s.nodes[1].slots[0];
        sl.safe_wal_size = Some(134_217_728);
        sl.safe_wal_size_computed = Some(83_885_760);
        let out = render_status(&s);
        let slot = slot_line(&out);
        assert!(
            slot.contains("safe_wal_size 80.0 MiB (computed from replay)"),
            "{slot}"
        );
        assert!(!slot.contains("128"), "{slot}");
        // Without the computed figure (an older snapshot), PostgreSQL's is not shown as one.
        s.nodes[1].slots[0].safe_wal_size_computed = None;
        let out = render_status(&s);
        assert!(
            slot_line(&out).contains("safe_wal_size not meaningful on a standby"),
            "{out}"
        );
        // On a primary PostgreSQL's figure is the margin.
        s.nodes[1].in_recovery = Some(false);
        let out = render_status(&s);
        assert!(slot_line(&out).contains("safe_wal_size 128.0 MiB"), "{out}");
    }
}
