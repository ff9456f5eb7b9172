//! Node faults on the real chain: kill -9, pause (SIGSTOP), stop (fast or immediate) and
//! restart of each node, B's replay paused or delayed. Each heals, C converges, and the report
//! shows the fault did happen.

mod common;

use common::cli;
use harness::observe::Sample;
use serde_json::Value;

fn rehearse(name: &str, faults: &str) -> Value {
    rehearse_in(name, faults).1
}

fn rehearse_in(name: &str, faults: &str) -> (std::path::PathBuf, Value) {
    let text = format!(
        "version = 1\nname = \"{name}\"\nseed = 5\n[workload]\ninitial_rows = 100\nrate = 150\nduration = \"14s\"\n\
         [expect]\nconsistent = true\nconsistent_after_heal = true\nconverges_within = \"60s\"\n{faults}"
    );
    let (_d, path) = cli::scenario(name, &text);
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("{err}"));
    let report = common::report::read(&run);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:#}\n{err}",
        report["expectations"]
    );
    cli::assert_cleaned_up(&run);
    for f in report["observations"]["faults"].as_array().unwrap() {
        assert!(
            f["injected_ms"].as_u64().is_some() && f["healed_ms"].as_u64().is_some(),
            "{f:#}"
        );
        assert!(f["error"].is_null(), "{f:#}");
    }
    (run, report)
}

/// samples.jsonl of a run, in order.
fn samples(run: &std::path::Path) -> Vec<Sample> {
    common::report::samples(run)
}

/// When fault `i` was injected and healed (ms since the workload started).
fn fault_window(r: &Value, i: usize) -> (u64, u64) {
    let f = &r["observations"]["faults"][i];
    (
        f["injected_ms"].as_u64().unwrap(),
        f["healed_ms"].as_u64().unwrap(),
    )
}

/// C applied what A wrote after `t_ms` (a heal): the LSN A was at in the first sample after
/// it, which C's subscription reports received by the last sample. B decodes A's WAL, so
/// both count in A's positions.
fn assert_c_receives_after(samples: &[Sample], t_ms: u64) {
    let a_then = samples
        .iter()
        .filter(|s| s.t_ms > t_ms)
        .find_map(|s| s.node("a").and_then(|a| a.current_lsn));
    let c_received = |s: &Sample| {
        s.node("c")
            .into_iter()
            .flat_map(|c| &c.subscriptions)
            .filter_map(|sub| sub.received_lsn)
            .max()
    };
    let c_last = samples.iter().rev().find_map(c_received);
    assert!(
        a_then.is_some() && c_last > a_then,
        "c must receive what a wrote after {t_ms} ms (a at {a_then:?} then, c last received \
         {c_last:?})"
    );
}

/// What node `name` looked like in a sample, for assertion messages.
fn seen(s: &Sample, name: &str) -> String {
    match s.node(name) {
        Some(n) => format!(
            "t={}ms {name}: reachable {}, error {:?}, receive {:?}, senders {:?}",
            s.t_ms,
            n.reachable,
            n.error,
            n.receive_lsn,
            n.senders
                .iter()
                .map(|w| (w.application_name.as_str(), w.state.as_deref()))
                .collect::<Vec<_>>()
        ),
        None => format!("t={}ms: no {name}", s.t_ms),
    }
}

fn window_max(r: &Value, field: &str, from: f64, to: f64) -> f64 {
    r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| (from..=to).contains(&(p["t_ms"].as_f64().unwrap() / 1000.0)))
        .filter_map(|p| p[field].as_f64())
        .fold(0.0, f64::max)
}

/// The node's server log says it crashed (no shutdown checkpoint), not that it was stopped.
fn assert_crashed(run: &std::path::Path, node: &str) {
    let log = std::fs::read_to_string(run.join("logs").join(format!("{node}.log"))).unwrap();
    assert!(
        log.contains("not properly shut down") || log.contains("interrupted while in recovery"),
        "{node} restarted without crash recovery:\n{}",
        harness::node::tail(&log, 30)
    );
}

#[test]
fn kill_9_of_the_standby_then_restart() {
    let (run, r) = rehearse_in(
        "kill-b",
        "[[faults]]\nkind = \"kill\"\nnode = \"b\"\nat = \"3s\"\nheal_at = \"7s\"\n",
    );
    assert_crashed(&run, "b");
    // While B is dead, C sees nothing new: the end-to-end lag grows.
    assert!(
        window_max(&r, "e2e_s", 4.0, 7.0) >= 1.0,
        "{:#}",
        r["observations"]["peaks"]
    );
}

#[test]
fn a_paused_target_falls_behind_and_catches_up() {
    let r = rehearse(
        "pause-c",
        "[[faults]]\nkind = \"pause\"\nnode = \"c\"\nat = \"3s\"\nheal_at = \"8s\"\n",
    );
    assert!(
        window_max(&r, "e2e_s", 4.0, 8.0) >= 1.0,
        "{:#}",
        r["observations"]["peaks"]
    );
}

#[test]
fn replay_paused_on_b_freezes_b_and_c_with_it() {
    let (run, r) = rehearse_in(
        "replay-pause",
        "[[faults]]\nkind = \"replay_pause\"\nat = \"3s\"\nheal_at = \"8s\"\n",
    );
    // The sampler saw B's replay paused during the fault, and running again after it (samples
    // where b did not answer in time say nothing either way).
    let (from, to) = fault_window(&r, 0);
    let paused = |lo: u64, hi: u64| -> Vec<bool> {
        samples(&run)
            .iter()
            .filter(|s| (lo..hi).contains(&s.t_ms))
            .filter_map(|s| s.node("b").and_then(|b| b.replay_paused))
            .collect()
    };
    let during = paused(from + 500, to);
    assert!(during.len() >= 5 && during.iter().all(|p| *p), "{during:?}");
    let after = paused(to + 500, to + 4_000);
    assert!(after.len() >= 5 && after.iter().all(|p| !*p), "{after:?}");
    assert!(
        window_max(&r, "ab_bytes", 4.0, 8.0) > 50_000.0,
        "{:#}",
        r["observations"]["peaks"]
    );
    assert!(window_max(&r, "e2e_s", 4.0, 8.0) >= 1.0);
}

#[test]
fn replay_delay_on_b_is_lag_without_a_network_fault() {
    let r = rehearse(
        "replay-delay",
        "[[faults]]\nkind = \"replay_delay\"\ndelay = \"2s\"\nat = \"3s\"\nheal_at = \"9s\"\n",
    );
    assert!(
        window_max(&r, "e2e_s", 5.0, 9.0) >= 1.5,
        "{:#}",
        r["observations"]["peaks"]
    );
}

#[test]
fn stopping_and_restarting_the_primary_loses_nothing_acknowledged() {
    let (run, r) = rehearse_in(
        "restart-a",
        "[[faults]]\nkind = \"stop\"\nnode = \"a\"\nmode = \"fast\"\nat = \"3s\"\nheal_at = \"6s\"\n",
    );
    // The stop reached the workload: while A was down nothing was acknowledged. (Whether a write
    // fails depends on one being in flight at the shutdown; idle connections just reconnect.)
    let f = &r["observations"]["faults"][0];
    let (down, up) = (
        f["injected_ms"].as_u64().unwrap() * 1000 + 500_000,
        f["healed_ms"].as_u64().unwrap() * 1000,
    );
    let ledger = std::fs::read_to_string(run.join("ledger.jsonl")).unwrap();
    let acked_while_down: Vec<&str> = ledger
        .lines()
        .filter(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            e["outcome"] == "ok"
                && e["node"] != "initial"
                && (down..up).contains(&e["done_us"].as_u64().unwrap())
        })
        .collect();
    assert!(
        acked_while_down.is_empty(),
        "A was stopped from {down}us to {up}us yet acknowledged: {acked_while_down:#?}"
    );
    let w = &r["workload"];
    assert!(w["ok"].as_u64().unwrap() > 0, "{w:#}");
}

#[test]
fn kill_9_of_the_target_then_restart_resumes_the_subscription() {
    let (run, r) = rehearse_in(
        "kill-c",
        "[[faults]]\nkind = \"kill\"\nnode = \"c\"\nat = \"3s\"\nheal_at = \"6s\"\n",
    );
    assert_crashed(&run, "c");
    // C restarts from its replication origin: nothing is applied twice or skipped (the run's
    // `consistent` expectation held), and the lag shows the outage.
    assert!(
        window_max(&r, "e2e_s", 4.0, 6.0) >= 1.0,
        "{:#}",
        r["observations"]["peaks"]
    );
}

#[test]
fn an_immediate_stop_of_the_standby_is_a_crash_it_recovers_from() {
    let r = rehearse(
        "crash-b",
        "[[faults]]\nkind = \"stop\"\nnode = \"b\"\nmode = \"immediate\"\nat = \"3s\"\nheal_at = \"6s\"\n",
    );
    assert!(
        window_max(&r, "e2e_s", 4.0, 6.0) >= 1.0,
        "{:#}",
        r["observations"]["peaks"]
    );
    assert_eq!(r["observations"]["slot"]["survived"], true);
}

#[test]
fn a_paused_primary_acknowledges_nothing_until_resumed() {
    let (run, r) = rehearse_in(
        "pause-a",
        "[[faults]]\nkind = \"pause\"\nnode = \"a\"\nat = \"3s\"\nheal_at = \"6s\"\n",
    );
    let f = &r["observations"]["faults"][0];
    // Half a second after SIGSTOP, anything in flight has either finished or is frozen.
    let (frozen, resumed) = (
        f["injected_ms"].as_u64().unwrap() * 1000 + 500_000,
        f["healed_ms"].as_u64().unwrap() * 1000,
    );
    let ledger = std::fs::read_to_string(run.join("ledger.jsonl")).unwrap();
    let acked_while_frozen = ledger
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["outcome"] == "ok"
                && e["node"] != "initial"
                && (frozen..resumed).contains(&e["done_us"].as_u64().unwrap_or(0))
        })
        .count();
    assert_eq!(
        acked_while_frozen, 0,
        "A was frozen from {frozen}us to {resumed}us"
    );
    assert!(r["workload"]["ok"].as_u64().unwrap() > 0);
    // Nothing new commits, so nothing new reaches C: the end-to-end lag grows with the pause
    // (it must not read 0 just because no acknowledged heartbeat is missing on C).
    assert!(
        window_max(&r, "e2e_s", 4.5, 6.0) >= 1.0,
        "{:#}",
        r["observations"]["peaks"]
    );
}

#[test]
fn kill_9_of_the_primary_then_restart_without_failover() {
    let (run, r) = rehearse_in(
        "kill-a",
        "[[faults]]\nkind = \"kill\"\nnode = \"a\"\nat = \"3s\"\nheal_at = \"6s\"\n",
    );
    // A restarted in place: B was not promoted.
    assert!(r["observations"]["failover"].is_null(), "{r:#}");
    let (killed, restarted) = fault_window(&r, 0);
    let samples = samples(&run);
    // A really died: a sample while it was down found it unreachable.
    assert!(
        samples
            .iter()
            .filter(|s| s.t_ms > killed && s.t_ms < restarted)
            .any(|s| s.node("a").is_some_and(|a| !a.reachable)),
        "a answered throughout its kill: {:#?}",
        samples.iter().map(|s| seen(s, "a")).collect::<Vec<_>>()
    );
    // B reconnected by itself and streams again: after the restart, a walsender on A streams
    // to b, and B receives WAL A wrote after it came back.
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t_ms > restarted).collect();
    let streaming = after.iter().position(|s| {
        s.node("a")
            .and_then(|a| a.sender("b"))
            .is_some_and(|w| w.state.as_deref() == Some("streaming"))
    });
    let Some(streaming) = streaming else {
        panic!(
            "no walsender streaming to b after a restarted at {restarted} ms: {:#?}",
            after.iter().map(|s| seen(s, "a")).collect::<Vec<_>>()
        );
    };
    let a_then = after[streaming].node("a").and_then(|a| a.current_lsn);
    let b_later = after
        .last()
        .and_then(|s| s.node("b"))
        .and_then(|b| b.receive_lsn);
    assert!(
        a_then.is_some() && b_later > a_then,
        "b must receive what a wrote after its restart (a at {a_then:?} when b streamed again, b \
         last received {b_later:?})"
    );
    // B's logical slot came through, and C caught up: the run's `consistent` and
    // `converges_within` expectations held (rehearse_in requires exit 0), through the chain
    // A rebuilt: C received what A wrote after its restart.
    assert_eq!(r["observations"]["slot"]["survived"], true);
    assert_c_receives_after(&samples, restarted);
}

#[test]
fn a_paused_standby_and_a_stopped_target_each_stall_c_and_heal() {
    // Two faults on one timeline: B frozen (SIGSTOP) from 2 s to 5 s, then C shut down from 7 s
    // to 10 s. Each heal leaves the chain to catch up before the next fault.
    let (run, r) = rehearse_in(
        "pause-b-stop-c",
        "[[faults]]\nkind = \"pause\"\nnode = \"b\"\nat = \"2s\"\nheal_at = \"5s\"\n\
         [[faults]]\nkind = \"stop\"\nnode = \"c\"\nmode = \"fast\"\nat = \"7s\"\nheal_at = \"10s\"\n",
    );
    let samples = samples(&run);
    let (paused, resumed) = fault_window(&r, 0);
    let (stopped, started) = fault_window(&r, 1);
    // Each fault showed: the node did not answer while it was down (a frozen one within the
    // sampler's patience, a stopped one at once)...
    for (name, from, to) in [("b", paused, resumed), ("c", stopped, started)] {
        let during: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.t_ms > from + 500 && s.t_ms < to)
            .collect();
        assert!(
            during
                .iter()
                .any(|s| s.node(name).is_some_and(|n| !n.reachable)),
            "{name} answered from {from} to {to} ms: {:#?}",
            during.iter().map(|s| seen(s, name)).collect::<Vec<_>>()
        );
    }
    // B frozen did not slow the sampling of A and C: once a sample had waited for B, the
    // next ones kept the sampler's pace (250 ms), not one per patience (1 s).
    let (from, to) = (paused + 1_000, resumed);
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t_ms > from && s.t_ms < to)
        .collect();
    let at_pace = (to - from) / 250;
    assert!(
        during.len() as u64 * 3 >= at_pace * 2,
        "{} samples from {from} to {to} ms while b was paused (every 250 ms: {at_pace})",
        during.len()
    );
    assert!(
        during.iter().all(|s| ["a", "c"]
            .iter()
            .all(|n| s.node(n).is_some_and(|n| n.reachable))),
        "a and c answered throughout: {:#?}",
        during.iter().map(|s| seen(s, "a")).collect::<Vec<_>>()
    );
    // ... and C fell behind: with B frozen, C (still answering) sees no new heartbeat; with C
    // down, B's slot falls behind B (measured on B, which still answers).
    let secs = |ms: u64| ms as f64 / 1000.0;
    assert!(
        window_max(&r, "e2e_s", secs(paused), secs(resumed)) >= 1.0,
        "end-to-end lag while b was paused: {:#}",
        r["observations"]["peaks"]
    );
    assert!(
        window_max(&r, "bc_bytes", secs(stopped), secs(started)) > 50_000.0,
        "b→c bytes behind while c was stopped: {:#}",
        r["observations"]["peaks"]
    );
    // Both healed into a working chain: the slot survived, and the restarted C received what
    // A wrote after it came back (C converged, consistent: rehearse_in requires exit 0).
    assert_eq!(r["observations"]["slot"]["survived"], true);
    assert_c_receives_after(&samples, started);
}
