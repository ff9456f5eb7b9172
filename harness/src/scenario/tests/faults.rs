//! `[[faults]]`: every kind read into its `FaultSpec`, and one test per kind of mistake.

use std::time::Duration;

use super::{assert_at, fail, parse};
use crate::faults::{FaultKind, FaultSpec, Hop};
use crate::node::StopMode;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A file with a two-minute workload and `faults` appended.
fn with_faults(faults: &str) -> String {
    format!("version = 1\n[workload]\nduration = \"2m\"\n{faults}")
}

#[test]
fn every_kind_is_read_in_file_order() {
    let text = with_faults(
        r#"
[[faults]]
kind = "latency"
hop = "a-b"
at = "10s"
heal_at = "40s"
latency = "500ms"
jitter = "50ms"

[[faults]]
kind = "latency"
hop = "b-c"
at = "1s"
latency = "1s"

[[faults]]
kind = "bandwidth"
hop = "b-c"
at = "5s"
rate = "1MB/s"

[[faults]]
kind = "bandwidth"
hop = "a-b"
at = "5s"
rate = "1MiB/s"

[[faults]]
kind = "bandwidth"
hop = "a-b"
at = "6s"
rate = 4096

[[faults]]
kind = "loss"
hop = "b-c"
at = "7s"
loss = "2.5%"

[[faults]]
kind = "loss"
hop = "a-b"
at = "8s"
loss = 10

[[faults]]
kind = "partition"
hop = "a-b"
at = "20s"
heal_at = "25s"

[[faults]]
kind = "link_down"
hop = "b-c"
at = "30s"

[[faults]]
kind = "kill"
node = "c"
at = "31s"
heal_at = "32s"

[[faults]]
kind = "stop"
node = "b"
at = "32s"
heal_at = "33s"
mode = "immediate"

[[faults]]
kind = "stop"
node = "c"
at = "33s"
heal_at = "34s"

[[faults]]
kind = "pause"
node = "b"
at = "34s"
heal_at = "36s"

[[faults]]
kind = "replay_pause"
at = "40s"
heal_at = "41s"

[[faults]]
kind = "replay_delay"
delay = "2s"
at = "41s"

[[faults]]
kind = "replicator_stop"
at = "42s"
heal_at = "1m"

[[faults]]
kind = "catalog_churn"
at = "43s"
heal_at = "50s"

[[faults]]
kind = "catalog_churn"
at = "50s"
heal_at = "55s"
every = "1s"

[[faults]]
kind = "checkpoint"
at = "45s"

[[faults]]
kind = "primary_failure"
at = "1m50s"
"#,
    );
    let s = parse(&text);
    // Each entry remembers where its `kind` is, for errors found once the backend is known.
    let mut kind_lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("kind = "))
        .map(|(i, _)| i + 1);
    let mut spec = |kind, at, heal_at| FaultSpec {
        kind,
        at,
        heal_at,
        line: kind_lines.next(),
    };
    let expected = vec![
        spec(
            FaultKind::Latency {
                hop: Hop::AB,
                latency: ms(500),
                jitter: ms(50),
            },
            secs(10),
            Some(secs(40)),
        ),
        spec(
            FaultKind::Latency {
                hop: Hop::BC,
                latency: secs(1),
                jitter: Duration::ZERO,
            },
            secs(1),
            None,
        ),
        spec(
            FaultKind::Bandwidth {
                hop: Hop::BC,
                bytes_per_sec: 1_000_000,
            },
            secs(5),
            None,
        ),
        spec(
            FaultKind::Bandwidth {
                hop: Hop::AB,
                bytes_per_sec: 1_048_576,
            },
            secs(5),
            None,
        ),
        spec(
            FaultKind::Bandwidth {
                hop: Hop::AB,
                bytes_per_sec: 4096,
            },
            secs(6),
            None,
        ),
        spec(
            FaultKind::Loss {
                hop: Hop::BC,
                percent: 2.5,
            },
            secs(7),
            None,
        ),
        spec(
            FaultKind::Loss {
                hop: Hop::AB,
                percent: 10.0,
            },
            secs(8),
            None,
        ),
        spec(
            FaultKind::Partition { hop: Hop::AB },
            secs(20),
            Some(secs(25)),
        ),
        spec(FaultKind::LinkDown { hop: Hop::BC }, secs(30), None),
        spec(
            FaultKind::Kill { node: "c".into() },
            secs(31),
            Some(secs(32)),
        ),
        spec(
            FaultKind::Stop {
                node: "b".into(),
                mode: StopMode::Immediate,
            },
            secs(32),
            Some(secs(33)),
        ),
        spec(
            FaultKind::Stop {
                node: "c".into(),
                mode: StopMode::Fast,
            },
            secs(33),
            Some(secs(34)),
        ),
        spec(
            FaultKind::Pause { node: "b".into() },
            secs(34),
            Some(secs(36)),
        ),
        spec(FaultKind::ReplayPause, secs(40), Some(secs(41))),
        spec(FaultKind::ReplayDelay { delay: secs(2) }, secs(41), None),
        spec(FaultKind::ReplicatorStop, secs(42), Some(secs(60))),
        spec(
            FaultKind::CatalogChurn { every: ms(200) },
            secs(43),
            Some(secs(50)),
        ),
        spec(
            FaultKind::CatalogChurn { every: secs(1) },
            secs(50),
            Some(secs(55)),
        ),
        spec(FaultKind::Checkpoint, secs(45), None),
        spec(FaultKind::PrimaryFailure, secs(110), None),
    ];
    assert_eq!(s.faults, expected);
    let kinds: std::collections::BTreeSet<&str> = s.faults.iter().map(|f| f.kind.name()).collect();
    assert_eq!(kinds.len(), FaultKind::NAMES.len(), "every kind is covered");
}

#[test]
fn no_faults_is_an_empty_timeline() {
    assert!(parse("version = 1\n").faults.is_empty());
}

#[test]
fn unknown_kind_lists_the_kinds() {
    let hint = assert_at(
        &with_faults("[[faults]]\nkind = \"meteor\"\nat = \"1s\"\n"),
        "5:8",
        "unknown fault kind \"meteor\"",
    );
    let hint = hint.unwrap();
    for name in FaultKind::NAMES {
        assert!(hint.contains(name), "{name} missing from {hint:?}");
    }
}

#[test]
fn entry_without_kind_points_at_the_entry() {
    let hint = assert_at(
        &with_faults("\n[[faults]]\nat = \"1s\"\n"),
        "5:1",
        "[[faults]] entry without `kind`",
    );
    assert!(hint.unwrap().contains("partition"));
}

#[test]
fn unknown_hop_is_rejected() {
    let hint = assert_at(
        &with_faults("[[faults]]\nkind = \"partition\"\nhop = \"a-c\"\nat = \"1s\"\n"),
        "6:7",
        "hop: unknown hop \"a-c\"",
    );
    let hint = hint.unwrap();
    assert!(
        hint.contains("\"a-b\"") && hint.contains("\"b-c\""),
        "{hint}"
    );
}

#[test]
fn unknown_node_is_rejected() {
    let hint = assert_at(
        &with_faults("[[faults]]\nkind = \"kill\"\nnode = \"d\"\nat = \"1s\"\n"),
        "6:8",
        "node: unknown node \"d\"",
    );
    assert!(hint.unwrap().contains("\"c\" (the target)"));
}

#[test]
fn unknown_stop_mode_is_rejected() {
    let hint = assert_at(
        &with_faults("[[faults]]\nkind = \"stop\"\nnode = \"a\"\nmode = \"gentle\"\nat = \"1s\"\n"),
        "7:8",
        "mode: unknown stop mode \"gentle\"",
    );
    assert!(hint.unwrap().contains("\"immediate\""));
}

#[test]
fn smart_stop_is_refused_because_the_harness_sessions_never_end() {
    let hint = assert_at(
        &with_faults("[[faults]]\nkind = \"stop\"\nnode = \"b\"\nmode = \"smart\"\nat = \"1s\"\n"),
        "7:8",
        "a smart stop waits for every session to end, and the harness's own sessions",
    );
    let hint = hint.unwrap();
    assert!(hint.contains("use \"fast\""), "{hint}");
    assert!(!hint.contains("\"smart\""), "{hint}");
}

#[test]
fn key_of_another_kind_names_the_kind_and_the_key() {
    let hint = assert_at(
        &with_faults(
            "[[faults]]\nkind = \"partition\"\nhop = \"a-b\"\nat = \"1s\"\nlatency = \"5ms\"\n",
        ),
        "8:11",
        "`latency` does not apply to a partition fault",
    );
    assert_eq!(
        hint.as_deref(),
        Some("a partition fault takes hop, at and heal_at (optional)")
    );
    assert_at(
        &with_faults("[[faults]]\nkind = \"kill\"\nhop = \"a-b\"\nnode = \"a\"\nat = \"1s\"\n"),
        "6:7",
        "`hop` does not apply to a kill fault",
    );
}

#[test]
fn first_stray_key_in_file_order_is_reported() {
    // toml hands keys over sorted; the message must follow the file.
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"checkpoint\"\nnode = \"a\"\nevery = \"1s\"\nat = \"1s\"\n",
        ),
        "6:8",
        "`node` does not apply to a checkpoint fault",
    );
}

#[test]
fn missing_required_key_points_at_the_kind_and_names_the_key() {
    let hint = assert_at(
        &with_faults("[[faults]]\nkind = \"latency\"\nhop = \"a-b\"\nat = \"1s\"\n"),
        "5:8",
        "a latency fault needs `latency`",
    );
    assert!(hint.unwrap().contains("latency = \"500ms\""));
    assert_at(
        &with_faults("[[faults]]\nkind = \"bandwidth\"\nrate = \"1MB/s\"\nat = \"1s\"\n"),
        "5:8",
        "a bandwidth fault needs `hop`",
    );
    assert_at(
        &with_faults("[[faults]]\nkind = \"pause\"\nat = \"1s\"\n"),
        "5:8",
        "a pause fault needs `node`",
    );
    assert_at(
        &with_faults("[[faults]]\nkind = \"replay_delay\"\nat = \"1s\"\n"),
        "5:8",
        "a replay_delay fault needs `delay`",
    );
    let hint = assert_at(
        &with_faults("[[faults]]\nkind = \"replay_pause\"\n"),
        "5:8",
        "a replay_pause fault needs `at`",
    );
    assert!(hint.unwrap().contains("from the start of the workload"));
}

#[test]
fn heal_at_must_be_after_at() {
    let hint = assert_at(
        &with_faults("[[faults]]\nkind = \"replay_pause\"\nat = \"10s\"\nheal_at = \"10s\"\n"),
        "7:11",
        "heal_at = \"10s\" is not after at = \"10s\"",
    );
    assert!(hint.unwrap().contains("from the start of the workload"));
    assert_at(
        &with_faults("[[faults]]\nkind = \"replay_pause\"\nheal_at = \"5s\"\nat = \"10s\"\n"),
        "6:11",
        "heal_at = \"5s\" is not after at = \"10s\"",
    );
}

#[test]
fn heal_at_is_at_most_the_catch_up_time_after_the_workload() {
    // The default workload lasts 30 s and the default catchup_timeout is 2 min.
    let hint = assert_at(
        "version = 1\n[[faults]]\nkind = \"replicator_stop\"\nat = \"5s\"\nheal_at = \"300days\"\n",
        "5:11",
        "heal_at = \"300days\" is past the limit of 2m 30s, the end of the workload (30s) plus catchup_timeout (2m)",
    );
    assert!(hint.is_some_and(|h| h.contains("heal it by 2m 30s")));
    // After the workload, up to the limit: the catch-up measured counts the wait.
    let s = parse(
        "version = 1\n[[faults]]\nkind = \"replicator_stop\"\nat = \"5s\"\nheal_at = \"2m30s\"\n",
    );
    assert_eq!(s.faults[0].heal_at, Some(secs(150)));
    let s = parse(
        "version = 1\n[chain]\ncatchup_timeout = \"10m\"\n\
         [[faults]]\nkind = \"partition\"\nhop = \"b-c\"\nat = \"5s\"\nheal_at = \"10m\"\n",
    );
    assert_eq!(s.faults[0].heal_at, Some(secs(600)));
}

#[test]
fn one_shot_kinds_take_no_heal_at() {
    let hint = assert_at(
        &with_faults("[[faults]]\nkind = \"checkpoint\"\nat = \"10s\"\nheal_at = \"20s\"\n"),
        "7:11",
        "a checkpoint fault happens once and has nothing to heal",
    );
    assert_eq!(hint.as_deref(), Some("remove heal_at"));
    assert_at(
        &with_faults("[[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\nheal_at = \"20s\"\n"),
        "7:11",
        "a primary_failure fault happens once",
    );
}

#[test]
fn fault_after_the_workload_never_happens() {
    let text = "version = 1\n[workload]\nduration = \"30s\"\n\
                [[faults]]\nkind = \"checkpoint\"\nat = \"45s\"\n";
    let hint = assert_at(
        text,
        "6:6",
        "at = \"45s\" is not before the end of the workload (30s after its start): the fault would never happen",
    );
    assert!(hint.unwrap().contains("[workload] duration"));
    // The default workload lasts 30s too; exactly at its end is already too late.
    assert_at(
        "version = 1\n[[faults]]\nkind = \"checkpoint\"\nat = \"30s\"\n",
        "4:6",
        "is not before the end of the workload",
    );
}

#[test]
fn rate_must_be_positive_and_well_formed() {
    let bw = |rate: &str| {
        with_faults(&format!(
            "[[faults]]\nkind = \"bandwidth\"\nhop = \"a-b\"\nat = \"1s\"\nrate = {rate}\n"
        ))
    };
    let hint = assert_at(&bw("0"), "8:8", "rate = 0: the rate must be positive");
    assert!(hint.unwrap().contains("\"1MB/s\""));
    assert_at(&bw("-5"), "8:8", "rate = -5: the rate must be positive");
    assert_at(
        &bw("\"0MB/s\""),
        "8:8",
        "rate = \"0MB/s\": the rate must be positive",
    );
    assert_at(
        &bw("\"-1KiB/s\""),
        "8:8",
        "rate = \"-1KiB/s\": the rate must be positive",
    );
    let hint = assert_at(&bw("\"1 Mbit\""), "8:8", "rate = \"1 Mbit\": not a rate");
    assert!(hint.unwrap().contains("KiB/s"));
    assert_at(
        &bw("1.5"),
        "8:8",
        "rate must be a string like \"1MB/s\" or an integer number of bytes per second, found float",
    );
}

#[test]
fn loss_is_a_percentage_above_zero_and_at_most_100() {
    let loss = |v: &str| {
        with_faults(&format!(
            "[[faults]]\nkind = \"loss\"\nhop = \"a-b\"\nat = \"1s\"\nloss = {v}\n"
        ))
    };
    let hint = assert_at(
        &loss("0"),
        "8:8",
        "loss = 0%: must be above 0% and at most 100%",
    );
    assert!(hint.unwrap().contains("\"5%\""));
    assert_at(&loss("\"150%\""), "8:8", "loss = 150%: must be above 0%");
    assert_at(
        &loss("\"lots\""),
        "8:8",
        "loss = \"lots\": not a percentage",
    );
    assert_at(
        "version = 1\n[[faults]]\nkind = \"loss\"\nhop = \"a-b\"\nat = \"1s\"\n",
        "3:8",
        "a loss fault needs `loss`",
    );
}

#[test]
fn zero_delays_are_rejected() {
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"latency\"\nhop = \"a-b\"\nat = \"1s\"\nlatency = \"0s\"\n",
        ),
        "8:11",
        "latency = \"0s\": a latency fault needs a delay above zero",
    );
    assert_at(
        &with_faults("[[faults]]\nkind = \"catalog_churn\"\nat = \"1s\"\nevery = \"0ms\"\n"),
        "7:9",
        "every = \"0ms\": catalog churn needs a pause above zero",
    );
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"latency\"\nhop = \"a-b\"\nat = \"soon\"\nlatency = \"1s\"\n",
        ),
        "7:6",
        "at: invalid duration \"soon\"",
    );
}

#[test]
fn primary_failure_happens_once() {
    let hint = assert_at(
        &with_faults(
            "[[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n\n\
             [[faults]]\nkind = \"checkpoint\"\nat = \"5s\"\n\n\
             [[faults]]\nkind = \"primary_failure\"\nat = \"20s\"\n",
        ),
        "13:8",
        "primary_failure can happen only once (the first is on line 5)",
    );
    assert!(hint.is_some());
}

#[test]
fn nothing_acts_on_a_after_its_primary_failure() {
    // Healing this stop would start A beside the promoted B: two primaries.
    let hint = assert_at(
        &with_faults(
            "[[faults]]\nkind = \"stop\"\nnode = \"a\"\nat = \"5s\"\n\n\
             [[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n",
        ),
        "5:8",
        "this stop acts on A, which the primary_failure on line 10 kills at 10s for good: healing it would start A again",
    );
    assert!(hint.is_some_and(|h| h.contains("heal_at = \"10s\" or earlier")));
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n\n\
             [[faults]]\nkind = \"catalog_churn\"\nat = \"20s\"\nheal_at = \"30s\"\n",
        ),
        "9:8",
        "this catalog_churn acts on A, which the primary_failure on line 5 kills at 10s for good: A is dead",
    );
    // Healed before the failover, or aimed at the new primary: fine.
    let s = parse(&with_faults(
        "[[faults]]\nkind = \"kill\"\nnode = \"a\"\nat = \"1s\"\nheal_at = \"10s\"\n\n\
         [[faults]]\nkind = \"pause\"\nnode = \"b\"\nat = \"12s\"\nheal_at = \"15s\"\n\n\
         [[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n",
    ));
    assert_eq!(s.faults.len(), 3);
}

#[test]
fn b_is_up_to_be_promoted_and_replays_nothing_after() {
    // Promoting a killed b fails, and the run goes on without a primary.
    let hint = assert_at(
        &with_faults(
            "[[faults]]\nkind = \"kill\"\nnode = \"b\"\nat = \"5s\"\nheal_at = \"20s\"\n\n\
             [[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n",
        ),
        "5:8",
        "this kill of b is in force at 10s, when the primary_failure on line 11 promotes b: a b that is killed, stopped or paused cannot be promoted",
    );
    assert!(hint.is_some_and(|h| h.contains("heal_at = \"10s\" or earlier")));
    // Without heal_at, a pause lasts until the workload ends; at the same instant counts too.
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n\n\
             [[faults]]\nkind = \"pause\"\nnode = \"b\"\nat = \"10s\"\n",
        ),
        "9:8",
        "this pause of b is in force at 10s",
    );
    // Promoted, b is a primary: pg_wal_replay_pause() fails there.
    let hint = assert_at(
        &with_faults(
            "[[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n\n\
             [[faults]]\nkind = \"replay_pause\"\nat = \"12s\"\nheal_at = \"20s\"\n",
        ),
        "9:8",
        "this replay_pause acts on b's WAL replay from 12s, but the primary_failure on line 5 promotes b at 10s",
    );
    assert!(hint.is_some_and(|h| h.contains("earlier than 10s")));
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"replay_delay\"\ndelay = \"1s\"\nat = \"10s\"\n\n\
             [[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n",
        ),
        "5:8",
        "this replay_delay acts on b's WAL replay from 10s",
    );
    // Healed by the failover (heals come first at an instant), b the primary after it, or
    // replay held back across it (promotion ends the pause or the delay): fine.
    let s = parse(&with_faults(
        "[[faults]]\nkind = \"stop\"\nnode = \"b\"\nat = \"2s\"\nheal_at = \"10s\"\n\n\
         [[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n\n\
         [[faults]]\nkind = \"kill\"\nnode = \"b\"\nat = \"12s\"\nheal_at = \"15s\"\n",
    ));
    assert_eq!(s.faults.len(), 3);
    let s = parse(&with_faults(
        "[[faults]]\nkind = \"replay_pause\"\nat = \"1s\"\nheal_at = \"20s\"\n\n\
         [[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n",
    ));
    assert_eq!(s.faults.len(), 2);
}

#[test]
fn faults_on_one_node_take_turns() {
    // The second heal would resume c at 4 s while the first says paused until 10 s.
    let hint = assert_at(
        &with_faults(
            "[[faults]]\nkind = \"pause\"\nnode = \"c\"\nat = \"1s\"\nheal_at = \"10s\"\n\n\
             [[faults]]\nkind = \"pause\"\nnode = \"c\"\nat = \"2s\"\nheal_at = \"4s\"\n",
        ),
        "11:8",
        "this pause acts on c from 2s to 4s, while the pause on line 5 acts on it from 1s to 10s: one fault per node at a time",
    );
    assert!(hint.is_some_and(|h| h.contains("one after the other")));
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"kill\"\nnode = \"c\"\nat = \"5s\"\nheal_at = \"20s\"\n\n\
             [[faults]]\nkind = \"stop\"\nnode = \"c\"\nat = \"8s\"\nheal_at = \"10s\"\n",
        ),
        "11:8",
        "this stop acts on c from 8s to 10s, while the kill on line 5 acts on it from 5s to 20s",
    );
    // Without heal_at a fault holds its node until the workload ends; replay faults act on b.
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"replay_pause\"\nat = \"5s\"\n\n\
             [[faults]]\nkind = \"kill\"\nnode = \"b\"\nat = \"30s\"\nheal_at = \"40s\"\n",
        ),
        "9:8",
        "this kill acts on b from 30s to 40s, while the replay_pause on line 5 acts on it from 5s to the end of the workload (2m)",
    );
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"replay_delay\"\ndelay = \"1s\"\nat = \"5s\"\nheal_at = \"9s\"\n\n\
             [[faults]]\nkind = \"replay_delay\"\ndelay = \"2s\"\nat = \"8s\"\nheal_at = \"20s\"\n",
        ),
        "11:8",
        "this replay_delay acts on b",
    );
    // The subscription the replicator_stop disables is on c.
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"replicator_stop\"\nat = \"5s\"\nheal_at = \"20s\"\n\n\
             [[faults]]\nkind = \"replicator_stop\"\nat = \"10s\"\nheal_at = \"15s\"\n",
        ),
        "10:8",
        "this replicator_stop acts on c from 10s to 15s, while the replicator_stop on line 5",
    );
    assert_at(
        &with_faults(
            "[[faults]]\nkind = \"catalog_churn\"\nat = \"5s\"\nheal_at = \"20s\"\n\n\
             [[faults]]\nkind = \"stop\"\nnode = \"a\"\nat = \"10s\"\nheal_at = \"15s\"\n",
        ),
        "10:8",
        "this stop acts on a from 10s to 15s, while the catalog_churn on line 5",
    );
    // One after the other on a node, other nodes at the same time, and link faults layered on
    // a hop whose ends are down: all fine.
    let s = parse(&with_faults(
        "[[faults]]\nkind = \"pause\"\nnode = \"c\"\nat = \"1s\"\nheal_at = \"10s\"\n\n\
         [[faults]]\nkind = \"kill\"\nnode = \"c\"\nat = \"10s\"\nheal_at = \"20s\"\n\n\
         [[faults]]\nkind = \"stop\"\nnode = \"b\"\nat = \"2s\"\nheal_at = \"8s\"\n\n\
         [[faults]]\nkind = \"replicator_stop\"\nat = \"20s\"\n\n\
         [[faults]]\nkind = \"partition\"\nhop = \"b-c\"\nat = \"3s\"\nheal_at = \"6s\"\n\n\
         [[faults]]\nkind = \"latency\"\nhop = \"b-c\"\nlatency = \"1s\"\nat = \"1s\"\n",
    ));
    assert_eq!(s.faults.len(), 6);
}

#[test]
fn unknown_key_in_a_fault_gets_a_suggestion() {
    let (msg, hint) = fail(&with_faults(
        "[[faults]]\nkind = \"partition\"\nhop = \"a-b\"\nat = \"1s\"\nheal_after = \"5s\"\n",
    ));
    assert!(
        msg.starts_with("scen/bad.toml:8:1: unknown field `heal_after`"),
        "{msg}"
    );
    assert_eq!(hint.as_deref(), Some("did you mean `heal_at`?"));
}

#[test]
fn cross_section_choices_are_left_to_the_executor() {
    let s = parse(
        "version = 1\n[chain]\nbackend = \"docker\"\n[workload]\nenabled = false\n\
         [[faults]]\nkind = \"primary_failure\"\nat = \"5s\"\n\
         [[faults]]\nkind = \"stop\"\nnode = \"b\"\nat = \"6s\"\n\
         [[faults]]\nkind = \"partition\"\nhop = \"b-c\"\nat = \"7s\"\n",
    );
    assert_eq!(s.faults.len(), 3);
}
