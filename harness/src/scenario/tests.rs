//! Scenario parsing: defaults, the full format, and one test per kind of mistake asserting the
//! exact `file:line:column` and message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::ErrorKind;

mod faults;

const ORIGIN: &str = "scen/bad.toml";

fn parse(text: &str) -> Scenario {
    Scenario::parse(text, Path::new(ORIGIN)).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The error's message and hint for `text`.
fn fail(text: &str) -> (String, Option<String>) {
    let e = Scenario::parse(text, Path::new(ORIGIN)).expect_err("should be rejected");
    assert_eq!(e.kind(), ErrorKind::Usage, "{e:?}");
    (e.to_string(), e.hint().map(str::to_string))
}

fn assert_at(text: &str, line_col: &str, fragment: &str) -> Option<String> {
    let (msg, hint) = fail(text);
    let prefix = format!("{ORIGIN}:{line_col}: ");
    assert!(msg.starts_with(&prefix), "expected {prefix:?} in {msg:?}");
    assert!(msg.contains(fragment), "expected {fragment:?} in {msg:?}");
    hint
}

#[test]
fn minimal_file_gets_defaults() {
    let s = parse("version = 1\n");
    assert_eq!(s.name, "bad");
    assert_eq!(s.seed, None);
    assert_eq!(s.chain, ChainPlan::default());
    assert_eq!(s.chain.pg_version, 17);
    assert_eq!(s.data, None);
    assert_eq!(s.workload, WorkloadPlan::default());
    assert_eq!(s.workload.tables.len(), 5);
    assert_eq!(s.expect, Expectations::default());
    assert!(s.expect.consistent);
    assert!(s.faults.is_empty());
    assert_eq!(
        s.observe,
        ObservePlan {
            sample_every: Duration::from_millis(250),
            heartbeat_every: Duration::from_millis(100),
        }
    );
    assert!(!s.chain.idle_primary);
    assert_eq!(s.chain.idle_wait, Duration::from_secs(5));
    assert!(s.path.is_absolute() && s.path.ends_with(ORIGIN));
}

#[test]
fn full_file_is_read_into_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/seed.sql"), "select 1;").unwrap();
    let text = r#"
version = 1
name = "full"
description = "everything"
seed = 42

[chain]
backend = "docker"
pg_version = 16
pg_bin = "pg/bin"
database = "shop"
physical_slot = false
hot_standby_feedback = false
idle_primary = true
idle_wait = "10s"
[chain.a]
port = 5433
[chain.a.settings]
shared_buffers = "256MB"
max_connections = 200
checkpoint_completion_target = 0.9
fsync = false
[chain.c.settings]
log_statement = "all"

[data]
sql = "data/seed.sql"

[workload]
enabled = true
tables = ["events", "accounts"]
initial_rows = 10
connections = 2
rate = "max"
duration = "1m30s"
seed = 7
[workload.mix]
insert = 1

[[faults]]
kind = "replay_pause"
at = "10s"
heal_at = "20s"

[observe]
sample_every = "1s"
heartbeat_every = "50ms"

[expect]
consistent = false
max_catchup = "500ms"
sequences_match = true
max_e2e_lag = "5s"
slot_survives = false
slot_invalidated = "rows_removed"
rpo_max_writes = 0
consistent_after_heal = true
converges_within = "1m"
slot_waits_for_nudge = true
"#;
    let file = dir.path().join("full.toml");
    std::fs::write(&file, text).unwrap();
    let s = Scenario::load(&file).unwrap();
    assert_eq!(s.name, "full");
    assert_eq!(s.description.as_deref(), Some("everything"));
    assert_eq!(s.seed, Some(42));
    assert_eq!(s.seed_or_random(), 42);
    let drawn = parse("version = 1\n").seed_or_random();
    assert!(drawn < 1 << 53, "{drawn} does not survive a JSON double");
    let c = &s.chain;
    assert_eq!(c.backend, BackendKind::Docker);
    assert_eq!(c.pg_version, 16);
    assert_eq!(
        c.pg_bin.as_deref(),
        Some(dir.path().join("pg/bin").as_path())
    );
    assert_eq!(c.database, "shop");
    assert!(!c.physical_slot && !c.hot_standby_feedback);
    assert!(c.idle_primary);
    assert_eq!(c.idle_wait, Duration::from_secs(10));
    assert_eq!(c.a.port, Some(5433));
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // File order, not key order; booleans as PostgreSQL spells them.
    assert_eq!(
        c.a.settings,
        pairs(&[
            ("shared_buffers", "256MB"),
            ("max_connections", "200"),
            ("checkpoint_completion_target", "0.9"),
            ("fsync", "off"),
        ])
    );
    assert_eq!(c.c.settings, pairs(&[("log_statement", "all")]));
    assert_eq!(
        s.data,
        Some(DataSeed::Sql(dir.path().join("data/seed.sql")))
    );
    let w = &s.workload;
    assert_eq!(w.tables, vec![BuiltinTable::Events, BuiltinTable::Accounts]);
    assert_eq!((w.initial_rows, w.connections, w.rate), (10, 2, None));
    assert_eq!(w.duration, Duration::from_secs(90));
    assert_eq!(s.workload_seed(42), 7);
    assert_eq!(
        w.mix,
        Mix {
            insert: 1,
            update: 0,
            delete: 0
        }
    );
    assert_eq!(
        s.expect,
        Expectations {
            consistent: false,
            max_catchup: Some(Duration::from_millis(500)),
            sequences_match: true,
            max_e2e_lag: Some(Duration::from_secs(5)),
            slot_survives: Some(false),
            slot_invalidated: Some("rows_removed".into()),
            rpo_max_writes: Some(0),
            consistent_after_heal: true,
            converges_within: Some(Duration::from_secs(60)),
            slot_waits_for_nudge: true,
        }
    );
    assert_eq!(
        s.observe,
        ObservePlan {
            sample_every: Duration::from_secs(1),
            heartbeat_every: Duration::from_millis(50),
        }
    );

    let spec = s.chain_spec();
    assert_eq!(spec.database, "shop");
    assert_eq!(spec.ports, [Some(5433), None, None]);
    assert_eq!(spec.physical_slot, None);
    assert!(!spec.hot_standby_feedback);
    assert_eq!(spec.a_settings, c.a.settings);
    assert_eq!(spec.c_settings, c.c.settings);
}

#[test]
fn workload_seed_is_derived_from_the_run_seed_unless_given() {
    let s = parse("version = 1\n");
    assert_eq!(s.workload_seed(42), derive_seed(42, "workload"));
    assert_ne!(s.workload_seed(42), s.workload_seed(43));
}

#[test]
fn seeds_stay_exact_in_json_reports() {
    let too_large = "at most 9007199254740991 (2^53 - 1): report.json records the seed as a number";
    let hint = assert_at(
        "version = 1\nseed = \"18446744073709551615\"\n",
        "2:8",
        &format!("seed = 18446744073709551615: {too_large}"),
    );
    assert_eq!(hint, None);
    assert_at(
        "version = 1\nseed = 9007199254740993\n",
        "2:8",
        "seed = 9007199254740993: at most 9007199254740991",
    );
    assert_at(
        "version = 1\n[workload]\nseed = 9007199254740992\n",
        "3:8",
        &format!("workload.seed = 9007199254740992: {too_large}"),
    );
    assert_eq!(
        parse("version = 1\nseed = 9007199254740991\n").seed,
        Some(MAX_SEED)
    );
    let s = parse("version = 1\nseed = \"42\"\n[workload]\nseed = \"9007199254740991\"\n");
    assert_eq!((s.seed, s.workload.seed), (Some(42), Some(MAX_SEED)));
}

#[test]
fn default_chain_spec_keeps_the_physical_slot() {
    let spec = parse("version = 1\n").chain_spec();
    assert_eq!(spec.physical_slot.as_deref(), Some("b_physical"));
    assert!(spec.hot_standby_feedback);
    assert_eq!(spec.database, "app");
}

#[test]
fn syntax_error_points_at_the_line() {
    assert_at("version = 1\nname = \"x\n", "2:10", "invalid basic string");
}

#[test]
fn unknown_key_points_at_the_key_with_a_suggestion() {
    let hint = assert_at(
        "version = 1\n\n[workload]\nconections = 4\n",
        "4:1",
        "unknown field `conections`",
    );
    assert_eq!(hint.as_deref(), Some("did you mean `connections`?"));
}

#[test]
fn unknown_section_is_rejected() {
    let hint = assert_at(
        "version = 1\n[[nemesis]]\nkind = \"partition\"\n",
        "2:3",
        "unknown field `nemesis`",
    );
    assert_eq!(hint, None);
}

#[test]
fn unknown_key_in_node_settings_table_is_allowed_but_not_in_node() {
    assert_at(
        "version = 1\n[chain.b]\nprot = 5433\n",
        "3:1",
        "unknown field `prot`",
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    assert_at(
        "version = 1\n[workload]\nconnections = \"4\"\n",
        "3:15",
        "invalid type: string \"4\"",
    );
}

#[test]
fn negative_rate_is_rejected() {
    let hint = assert_at(
        "version = 1\n[workload]\nrate = -5\n",
        "3:8",
        "rate = -5: the rate must be at least 0.01 operations per second",
    );
    assert!(hint.unwrap().contains("\"max\""));
}

#[test]
fn rate_string_other_than_max_is_rejected() {
    assert_at(
        "version = 1\n[workload]\nrate = \"fast\"\n",
        "3:8",
        "expected a number of operations per second or \"max\"",
    );
}

#[test]
fn zero_connections_is_rejected() {
    assert_at(
        "version = 1\n[workload]\nconnections = 0\n",
        "3:15",
        "connections = 0: the workload needs between 1 and 1000 connections",
    );
}

#[test]
fn unknown_table_points_at_the_element() {
    let hint = assert_at(
        "version = 1\n[workload]\ntables = [\"accounts\", \"orders\"]\n",
        "3:23",
        "unknown workload table \"orders\"",
    );
    assert!(hint.unwrap().contains("order_lines"));
}

#[test]
fn duplicate_and_empty_table_lists_are_rejected() {
    assert_at(
        "version = 1\n[workload]\ntables = [\"events\", \"events\"]\n",
        "3:21",
        "table events is listed twice",
    );
    assert_at(
        "version = 1\n[workload]\ntables = []\n",
        "3:10",
        "tables must name at least one table",
    );
}

#[test]
fn pg_15_is_rejected_with_the_reason() {
    let hint = assert_at(
        "version = 1\n[chain]\npg_version = 15\n",
        "3:14",
        "logical decoding on a standby (B feeding C) needs PostgreSQL 16 or later",
    );
    assert_eq!(hint.as_deref(), Some("use 16, 17 or 18"));
    assert_at(
        "version = 1\n[chain]\npg_version = 19\n",
        "3:14",
        "supported versions are 16, 17 and 18",
    );
}

#[test]
fn unknown_backend_is_rejected() {
    assert_at(
        "version = 1\n[chain]\nbackend = \"k8s\"\n",
        "3:11",
        "unknown variant `k8s`, expected `local` or `docker`",
    );
}

#[test]
fn both_sql_and_dump_is_rejected_at_the_second() {
    assert_at(
        "version = 1\n[data]\nsql = \"a.sql\"\ndump = \"a.dump\"\n",
        "4:8",
        "[data] takes either sql or dump, not both",
    );
}

#[test]
fn empty_data_section_is_rejected() {
    assert_at("version = 1\n[data]\n", "2:1", "[data] needs sql or dump");
}

#[test]
fn missing_data_file_names_the_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("s.toml");
    let e =
        Scenario::parse("version = 1\n\n[data]\ndump = \"data/app.dump\"\n", &origin).unwrap_err();
    let missing = dir.path().join("data/app.dump");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:4:8: dump: {} does not exist",
            origin.display(),
            missing.display()
        )
    );
}

#[test]
fn data_paths_name_what_the_loading_tool_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = |key: &str, path: &std::path::Path| {
        format!(
            "version = 1\n[data]\n{key} = {:?}\n",
            path.display().to_string()
        )
    };
    // psql would fail on it only once the chain is up.
    let hint = assert_at(
        &data("sql", dir.path()),
        "3:7",
        &format!(
            "sql: {} is a directory, not a psql script",
            dir.path().display()
        ),
    );
    assert!(hint.is_some_and(|h| h.contains("dump")));
    assert_at(
        &data("sql", Path::new("/dev/null")),
        "3:7",
        "sql: /dev/null is not a regular file",
    );
    // A directory is a dump only as pg_dump -Fd writes one, with its table of contents.
    assert_at(
        &data("dump", dir.path()),
        "3:8",
        "is a directory without toc.dat, so not a pg_dump directory-format archive",
    );
    std::fs::write(dir.path().join("toc.dat"), "PGDMP").unwrap();
    let s = parse(&data("dump", dir.path()));
    assert_eq!(s.data, Some(DataSeed::Dump(dir.path().to_path_buf())));
    let sql = dir.path().join("seed.sql");
    std::fs::write(&sql, "select 1;").unwrap();
    assert_eq!(parse(&data("sql", &sql)).data, Some(DataSeed::Sql(sql)));
}

#[test]
fn seed_table_is_explained() {
    let hint = assert_at(
        "version = 1\n[seed]\nsql = \"x.sql\"\n",
        "2:1",
        "`seed` is the run's random seed (an integer), not a table",
    );
    assert!(hint.unwrap().contains("[data]"));
    assert_at(
        "version = 1\nseed = -1\n",
        "2:8",
        "seed must be a non-negative integer",
    );
}

#[test]
fn all_zero_mix_is_rejected() {
    assert_at(
        "version = 1\n[workload.mix]\ninsert = 0\nupdate = 0\ndelete = 0\n",
        "2:1",
        "[workload.mix]: all weights are zero",
    );
    let hint = assert_at(
        "version = 1\n[workload]\ninitial_rows = 100\n[workload.mix]\nupdate = 1\n",
        "4:1",
        "[workload.mix]: insert = 0",
    );
    assert!(hint.unwrap().contains("give insert a positive weight"));
    assert_at(
        "version = 1\n[workload.mix]\ndelete = -1\n",
        "3:10",
        "delete = -1: weights are integers from 0 to 1000000",
    );
}

#[test]
fn bad_duration_points_at_the_value() {
    let hint = assert_at(
        "version = 1\n[workload]\nduration = \"30 parsecs\"\n",
        "3:12",
        "duration: invalid duration \"30 parsecs\"",
    );
    assert!(hint.unwrap().contains("\"30s\""));
    assert_at(
        "version = 1\n[expect]\nmax_catchup = 30\n",
        "3:15",
        "invalid type: integer `30`, expected a string",
    );
}

#[test]
fn an_enabled_workload_runs_for_some_time() {
    let hint = assert_at(
        "version = 1\n[workload]\nduration = \"0s\"\n",
        "3:12",
        "duration = \"0s\": the workload must run for some time",
    );
    assert_eq!(
        hint.as_deref(),
        Some("set enabled = false to run without a workload")
    );
    let s = parse("version = 1\n[workload]\nenabled = false\nduration = \"0s\"\n");
    assert!(!s.workload.enabled && s.workload.duration.is_zero());
}

#[test]
fn absurd_sizes_are_rejected_at_the_value() {
    // Each would overflow a clock, a pause or the memory of the ledger check far into the run.
    assert_at(
        "version = 1\n[workload]\nduration = \"300000000000y\"\n",
        "3:12",
        "duration = \"300000000000y\": at most 365 days",
    );
    assert_at(
        "version = 1\n[workload]\nrate = 1e-19\n",
        "3:8",
        "the rate must be at least 0.01 operations per second",
    );
    assert_at(
        "version = 1\n[workload]\ninitial_rows = 100000000\n",
        "3:16",
        "between 0 and 1000000 rows per table",
    );
}

#[test]
fn workload_connections_must_fit_in_the_primarys_max_connections() {
    let hint = assert_at(
        "version = 1\n[workload]\nconnections = 90\n",
        "3:15",
        "connections = 90: a allows max_connections = 100",
    );
    assert!(hint.unwrap().contains("at most 80"));
    let s = parse(
        "version = 1\n[chain.a.settings]\nmax_connections = 300\n[chain.b.settings]\n\
         max_connections = 300\n[workload]\nconnections = 200\n",
    );
    assert_eq!(s.workload.connections, 200);
    // With the default connections, the setting that leaves no room is named.
    let hint = assert_at(
        "version = 1\n[chain.a.settings]\nmax_connections = 20\n",
        "3:19",
        "connections = 4: a allows max_connections = 20",
    );
    assert!(hint.unwrap().contains("raise max_connections"));
}

#[test]
fn the_database_name_is_a_plain_name_the_harness_can_create() {
    assert_at(
        "version = 1\n[chain]\ndatabase = \"host=elsewhere dbname=app\"\n",
        "3:12",
        "use letters, digits",
    );
    assert_at(
        "version = 1\n[chain]\ndatabase = \"postgres://elsewhere/app\"\n",
        "3:12",
        "use letters, digits",
    );
    assert_at(
        "version = 1\n[chain]\ndatabase = \"postgres\"\n",
        "3:12",
        "always exists",
    );
    assert_eq!(
        parse("version = 1\n[chain]\ndatabase = \"shop-eu_2\"\n")
            .chain
            .database,
        "shop-eu_2"
    );
}

#[test]
fn version_is_required_and_must_be_one() {
    assert_at("name = \"x\"\n", "1:1", "missing `version`");
    assert_at(
        "# a comment\nversion = 2\n",
        "2:11",
        "version = 2: this pgrehearse reads scenario format version 1 only",
    );
}

#[test]
fn settings_are_checked() {
    let hint = assert_at(
        "version = 1\n[chain.a.settings]\nport = 6000\n",
        "3:1",
        "[chain.a.settings]: port is managed by pgrehearse",
    );
    assert!(hint.unwrap().contains("[chain.<node>]"));
    assert_at(
        "version = 1\n[chain.b.settings]\nshared_preload_libraries = [\"a\"]\n",
        "3:28",
        "expected a string, integer, float or boolean setting value",
    );
    assert_at(
        "version = 1\n[chain.b.settings]\n\"bad name\" = 1\n",
        "3:1",
        "\"bad name\" is not a PostgreSQL setting name",
    );
    assert_at(
        "version = 1\n[chain.c.settings]\ncluster_name = \"x\\nport = 5999\"\n",
        "3:16",
        "[chain.c.settings]: the value of cluster_name has a line break",
    );
}

#[test]
fn clashing_ports_are_rejected() {
    assert_at(
        "version = 1\n[chain.a]\nport = 5433\n[chain.c]\nport = 5433\n",
        "5:8",
        "port 5433 of c is already the port of a",
    );
    assert_at(
        "version = 1\n[chain.a]\nport = 70000\n",
        "3:8",
        "port = 70000: a port is between 1 and 65535",
    );
}

#[test]
fn catch_up_and_initial_copy_limits_can_be_raised_for_big_data() {
    let s =
        parse("version = 1\n[chain]\ncatchup_timeout = \"5m\"\ninitial_copy_timeout = \"3h\"\n");
    assert_eq!(s.chain.catchup_timeout, Duration::from_secs(300));
    assert_eq!(s.chain.initial_copy_timeout, Duration::from_secs(3 * 3600));
    let spec = s.chain_spec();
    assert_eq!(
        (spec.catchup_timeout, spec.sync_timeout),
        (Duration::from_secs(300), Duration::from_secs(3 * 3600))
    );
    let d = parse("version = 1\n").chain_spec();
    assert_eq!(
        (d.catchup_timeout, d.sync_timeout),
        (Duration::from_secs(120), Duration::from_secs(600))
    );
    assert_at(
        "version = 1\n[chain]\ninitial_copy_timeout = \"0s\"\n",
        "3:24",
        "initial_copy_timeout is between 1s and 7 days",
    );
}

#[test]
fn idle_wait_is_bounded() {
    assert_at(
        "version = 1\n[chain]\nidle_primary = true\nidle_wait = \"500ms\"\n",
        "4:13",
        "idle_wait = \"500ms\": idle_wait is between 1s and 60s",
    );
    assert_at(
        "version = 1\n[chain]\nidle_wait = \"2m\"\n",
        "3:13",
        "idle_wait is between 1s and 60s",
    );
    let s = parse("version = 1\n[chain]\nidle_wait = \"60s\"\n");
    assert_eq!(s.chain.idle_wait, Duration::from_secs(60));
}

#[test]
fn observe_periods_are_bounded() {
    assert_at(
        "version = 1\n[observe]\nsample_every = \"0s\"\n",
        "3:16",
        "sample_every = \"0s\": the period must be at least 10ms and at most 10s",
    );
    assert_at(
        "version = 1\n[observe]\nheartbeat_every = \"11s\"\n",
        "3:19",
        "heartbeat_every = \"11s\": the period must be at least 10ms and at most 10s",
    );
    // A nanosecond period would run the heartbeat's commits back to back.
    assert_at(
        "version = 1\n[observe]\nheartbeat_every = \"1ns\"\n",
        "3:19",
        "heartbeat_every = \"1ns\": the period must be at least 10ms and at most 10s",
    );
    assert_at(
        "version = 1\n[observe]\nsample_every = \"9ms\"\n",
        "3:16",
        "the period must be at least 10ms",
    );
    let s = parse("version = 1\n[observe]\nsample_every = \"10ms\"\n");
    assert_eq!(s.observe.sample_every, Duration::from_millis(10));
    let hint = assert_at(
        "version = 1\n[observe]\nsample_every = \"often\"\n",
        "3:16",
        "sample_every: invalid duration \"often\"",
    );
    assert!(hint.is_some());
    let hint = assert_at(
        "version = 1\n[observe]\nsample_evrey = \"1s\"\n",
        "3:1",
        "unknown field `sample_evrey`",
    );
    assert_eq!(hint.as_deref(), Some("did you mean `sample_every`?"));
    let s = parse("version = 1\n[observe]\nsample_every = \"10s\"\n");
    assert_eq!(s.observe.sample_every, Duration::from_secs(10));
    assert_eq!(s.observe.heartbeat_every, Duration::from_millis(100));
}

#[test]
fn unknown_invalidation_reason_lists_the_reasons() {
    let hint = assert_at(
        "version = 1\n[expect]\nslot_invalidated = \"vacuumed\"\n",
        "3:20",
        "slot_invalidated: unknown invalidation reason \"vacuumed\"",
    );
    let hint = hint.unwrap();
    for reason in SLOT_INVALIDATION_REASONS {
        assert!(hint.contains(reason), "{reason} missing from {hint:?}");
    }
    let s = parse("version = 1\n[expect]\nslot_invalidated = \"any\"\n");
    assert_eq!(s.expect.slot_invalidated.as_deref(), Some("any"));
}

#[test]
fn slot_cannot_both_survive_and_be_invalidated() {
    // Reported at whichever of the two comes second.
    let hint = assert_at(
        "version = 1\n[expect]\nslot_survives = true\nslot_invalidated = \"wal_removed\"\n",
        "4:20",
        "slot_survives = true and slot_invalidated = \"wal_removed\" contradict each other",
    );
    assert!(hint.is_some());
    assert_at(
        "version = 1\n[expect]\nslot_invalidated = \"any\"\nslot_survives = true\n",
        "4:17",
        "contradict each other",
    );
    let s = parse("version = 1\n[expect]\nslot_survives = false\nslot_invalidated = \"any\"\n");
    assert_eq!(s.expect.slot_survives, Some(false));
}

#[test]
fn negative_rpo_is_rejected() {
    assert_at(
        "version = 1\n[expect]\nrpo_max_writes = -1\n",
        "3:18",
        "rpo_max_writes = -1: the number of lost writes cannot be negative",
    );
}

#[test]
fn slot_waits_for_nudge_needs_an_idle_primary() {
    let hint = assert_at(
        "version = 1\n[expect]\nslot_waits_for_nudge = true\n",
        "3:24",
        "slot_waits_for_nudge = true needs an idle primary",
    );
    assert_eq!(
        hint.as_deref(),
        Some("set idle_primary = true under [chain]")
    );
    let s = parse("version = 1\n[expect]\nslot_waits_for_nudge = false\n");
    assert!(!s.expect.slot_waits_for_nudge);
}

#[test]
fn expectations_the_run_can_never_judge_are_refused() {
    // Timed from the last heal: without a fault that heals there is none.
    let hint = assert_at(
        "version = 1\n[expect]\nconverges_within = \"30s\"\n",
        "3:20",
        "converges_within is timed from the last heal, and this scenario has no faults: it would always end unknown",
    );
    assert!(hint.is_some_and(|h| h.contains("max_catchup")));
    assert_at(
        "version = 1\n[[faults]]\nkind = \"checkpoint\"\nat = \"5s\"\n\
         [[faults]]\nkind = \"primary_failure\"\nat = \"10s\"\n\
         [expect]\nconverges_within = \"30s\"\n",
        "9:20",
        "converges_within is timed from the last heal, and no fault here heals",
    );
    // A fault without heal_at heals when the workload ends.
    let s = parse(
        "version = 1\n[[faults]]\nkind = \"replicator_stop\"\nat = \"5s\"\n\
         [expect]\nconverges_within = \"30s\"\n",
    );
    assert_eq!(s.expect.converges_within, Some(Duration::from_secs(30)));
    // The RPO is counted from the workload's ledger.
    let hint = assert_at(
        "version = 1\n[workload]\nenabled = false\n[expect]\nrpo_max_writes = 0\n",
        "5:18",
        "rpo_max_writes counts the acknowledged writes lost, and with [workload] enabled = false nothing is written",
    );
    assert!(hint.is_some());
    let s = parse("version = 1\n[expect]\nrpo_max_writes = 0\n");
    assert_eq!(s.expect.rpo_max_writes, Some(0));
}

#[test]
fn new_expectation_durations_are_checked() {
    assert_at(
        "version = 1\n[expect]\nmax_e2e_lag = \"fast\"\n",
        "3:15",
        "max_e2e_lag: invalid duration \"fast\"",
    );
    assert_at(
        "version = 1\n[expect]\nconverges_within = \"1 fortnight and a bit\"\n",
        "3:20",
        "converges_within: invalid duration",
    );
}

#[test]
fn a_lag_limit_the_heartbeat_cannot_resolve_is_refused() {
    let hint = assert_at(
        "version = 1\n[observe]\nheartbeat_every = \"500ms\"\n[expect]\nmax_e2e_lag = \"500ms\"\n",
        "5:15",
        "max_e2e_lag = \"500ms\" is not above heartbeat_every (500ms)",
    );
    assert!(hint.is_some_and(|h| h.contains("heartbeat_every")));
    // The default heartbeat is every 100 ms.
    assert_at(
        "version = 1\n[expect]\nmax_e2e_lag = \"100ms\"\n",
        "3:15",
        "is not above heartbeat_every (100ms)",
    );
    let s = parse("version = 1\n[expect]\nmax_e2e_lag = \"101ms\"\n");
    assert_eq!(s.expect.max_e2e_lag, Some(Duration::from_millis(101)));
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(!s.name.is_empty());
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected the shipped scenarios in {}",
        dir.display()
    );
}

/// The example under "Scenarios" in the README is a scenario pgrehearse accepts, as written
/// (placed in scenarios/, where its data file is).
#[test]
fn the_readme_example_is_a_valid_scenario() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme.find("## Scenarios").expect("a Scenarios section")..];
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block in the Scenarios section");
    let origin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/readme.toml");
    let s = Scenario::parse(example, &origin).unwrap_or_else(|e| panic!("{e:?}\n{example}"));
    assert_eq!(s.name, "partition-bc");
    assert_eq!(s.faults.len(), 1);
    assert!(s.data.is_some() && s.expect.consistent_after_heal);
}

#[test]
fn smoke_scenario_says_what_the_docs_say() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let s = Scenario::load(&dir.join("smoke.toml")).unwrap();
    assert_eq!(s.chain.pg_version, 17);
    assert_eq!(s.workload.tables, BuiltinTable::ALL.to_vec());
    assert_eq!(s.workload.connections, 4);
    assert_eq!(s.workload.initial_rows, 1000);
    assert_eq!(s.workload.duration, Duration::from_secs(30));
    assert!(s.expect.consistent);
    assert_eq!(s.expect.max_catchup, Some(Duration::from_secs(30)));
    let byo = Scenario::load(&dir.join("byo-data.toml")).unwrap();
    assert!(matches!(byo.data, Some(DataSeed::Sql(ref p)) if p.ends_with("data/byo-seed.sql")));
}
