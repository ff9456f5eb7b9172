//! Bringing your own data: a rehearsal seeded from a psql script (the shipped byo-data
//! scenario) or from a pg_dump archive in custom or directory format ends with your tables on C,
//! row for row, next to the workload's.

mod common;

use std::path::Path;

use common::cli;
use serde_json::Value;

/// Run `scenario` to completion; the report, which must be a pass.
fn run_pass(scenario: &Path) -> Value {
    let out = cli::run(&["run", scenario.to_str().unwrap(), "--seed", "5"]);
    let err = cli::stderr(&out);
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("no run directory:\n{err}"));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap_or_default())
            .unwrap_or_else(|e| panic!("no report ({e}):\n{err}"));
    assert_eq!(out.status.code(), Some(0), "{err}");
    cli::assert_cleaned_up(&run);
    report
}

/// Each of `tables` was compared on C and matched, with `rows` rows where given.
fn assert_tables_match(report: &Value, tables: &[(&str, Option<u64>)]) {
    let compared: Vec<&Value> = report["verify"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["target"] == "c")
        .flat_map(|v| v["tables"].as_array().unwrap().iter())
        .collect();
    for (name, rows) in tables {
        let t = compared
            .iter()
            .find(|t| t["table"] == *name)
            .unwrap_or_else(|| panic!("{name} was not compared on c: {compared:#?}"));
        assert_eq!(t["status"], "match", "{t:#}");
        if let Some(n) = rows {
            assert_eq!(t["rows_target"].as_u64(), Some(*n), "{t:#}");
        }
    }
}

/// The shop's tables and the rows scenarios/data/byo-seed.sql puts in each (its
/// generate_series): two empty tables would "match" too.
const SHOP: [(&str, Option<u64>); 3] = [
    ("public.customers", Some(50)),
    ("public.orders", Some(200)),
    ("public.audit_log", Some(20)),
];

#[test]
fn the_shipped_byo_scenario_brings_your_tables_to_c() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/byo-data.toml");
    let r = run_pass(&path);
    assert_tables_match(&r, &SHOP);
    // The workload ran next to the user's tables.
    assert_tables_match(&r, &[("rehearse.accounts", None)]);
    // The table without a primary key is named before it bites.
    let notes = r["notes"].to_string();
    assert!(notes.contains("audit_log"), "{notes}");
    // An unlogged table never replicates: named, and not counted as rows C lost.
    assert!(notes.contains("session_cache is UNLOGGED"), "{notes}");
}

fn rehearse_from_dump(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join(format!("shop.{format}"));
    common::dump_the_shop(&dump, format);
    let (_d, path) = cli::scenario(
        "byo-dump",
        &format!(
            "version = 1\nname = \"byo-dump\"\n[chain]\ndatabase = \"app\"\n\
             [data]\ndump = \"{}\"\n[workload]\nenabled = false\n\
             [expect]\nconsistent = true\n",
            dump.display()
        ),
    );
    let r = run_pass(&path);
    assert_tables_match(&r, &SHOP);
}

#[test]
fn a_custom_format_dump_seeds_the_chain() {
    rehearse_from_dump("c");
}

#[test]
fn a_directory_format_dump_seeds_the_chain() {
    // pg_restore reads a directory in place: the harness stages it where the server's user
    // can read it (the test's temporary folder is private to the user running the test).
    rehearse_from_dump("d");
}
