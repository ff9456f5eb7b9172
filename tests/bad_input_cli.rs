//! Bad input through the command line: each gets exit code 2, a message naming the file and
//! line (or the host and port), and leaves nothing running.

mod common;

use common::cli;

#[test]
fn a_misspelled_key_is_named_with_file_line_and_column() {
    let (_d, path) = cli::scenario("typo", "version = 1\n\n[workload]\nconections = 4\n");
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:4:1", path.display())), "{err}");
    assert!(err.contains("conections"), "{err}");
    assert!(
        err.contains("connections"),
        "a hint names the right key: {err}"
    );
    assert!(
        cli::run_dir(&err).is_none(),
        "nothing may be started for a broken scenario"
    );
}

#[test]
fn a_toml_syntax_error_is_named_with_its_line() {
    let (_d, path) = cli::scenario("syntax", "version = 1\nname = \"unterminated\n");
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:2:", path.display())), "{err}");
}

#[test]
fn postgres_15_binaries_are_refused_before_anything_starts() {
    let (_d, path) = cli::scenario("old", "version = 1\n");
    let pg15 = common::pg15_dir();
    let out = cli::run(&[
        "run",
        path.to_str().unwrap(),
        "--pg-bin",
        pg15.to_str().unwrap(),
    ]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("PostgreSQL 15"), "{err}");
    assert!(err.contains("logical decoding on a standby"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(cli::run_dir(&err).is_none(), "{err}");
}

#[test]
fn a_fault_the_local_backend_cannot_do_is_refused_with_its_line_before_anything_starts() {
    let (_d, path) = cli::scenario(
        "loss",
        "version = 1\n[workload]\nduration = \"10s\"\n\n[[faults]]\nkind = \"loss\"\nhop = \"b-c\"\nloss = \"5%\"\nat = \"2s\"\n",
    );
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:6", path.display())), "{err}");
    assert!(err.contains("loss 5% on b-c"), "{err}");
    assert!(
        err.contains("docker backend"),
        "the hint says where it runs: {err}"
    );
    assert!(cli::run_dir(&err).is_none(), "{err}");

    // `up` runs no faults, so the same file builds a chain.
    let (_, run, down) = cli::up(&[path.to_str().unwrap()]);
    drop(down);
    cli::assert_cleaned_up(&run);
}

#[test]
fn a_run_seed_json_cannot_carry_exactly_is_refused_before_anything_starts() {
    let (_d, path) = cli::scenario("big-seed", "version = 1\n");
    let out = cli::run(&["run", path.to_str().unwrap(), "--seed", "9007199254740992"]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--seed"), "{err}");
    assert!(
        err.contains("at most 9007199254740991 (2^53 - 1): report.json records the seed"),
        "{err}"
    );
    assert!(
        cli::run_dir(&err).is_none(),
        "nothing may be started: {err}"
    );
}

#[test]
fn a_missing_seed_file_is_named_with_the_scenario_line() {
    let (d, path) = cli::scenario("byo", "version = 1\n\n[data]\nsql = \"data/nope.sql\"\n");
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:4:", path.display())), "{err}");
    assert!(
        err.contains(&d.path().join("data/nope.sql").display().to_string()),
        "{err}"
    );
    assert!(
        cli::run_dir(&err).is_none(),
        "nothing may be started: {err}"
    );
}

#[test]
fn a_seed_file_that_does_not_load_is_a_usage_error_and_nothing_is_left_running() {
    let (d, path) = cli::scenario(
        "byo-broken",
        "version = 1\n[workload]\nenabled = false\n[data]\nsql = \"broken.sql\"\n",
    );
    // Enough output before the error to fill a pipe nobody reads while the input is written.
    let mut sql = String::from("CREATE TABLE t (id int PRIMARY KEY);\n");
    for i in 0..3000 {
        sql.push_str(&format!("SELECT {i} AS filler_{i}, repeat('x', 40);\n"));
    }
    sql.push_str("INSERT INTO no_such_table VALUES (1);\n");
    std::fs::write(d.path().join("broken.sql"), sql).unwrap();
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("broken.sql") && err.contains("no_such_table"),
        "{err}"
    );
    assert!(err.contains("fix the seed file"), "{err}");
    let run = cli::run_dir(&err).expect("a was started to load the file");
    cli::assert_cleaned_up(&run);
}

#[test]
fn a_port_already_taken_is_named_with_its_line_before_anything_starts() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let (_d, path) = cli::scenario(
        "port",
        &format!("version = 1\n[workload]\nenabled = false\n[chain.c]\nport = {port}\n"),
    );
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:5:8: port {port} of c on 127.0.0.1 is already in use",
            path.display()
        )),
        "{err}"
    );
    assert!(err.contains("leave the node's port unset"), "{err}");
    // Found before A or C was built: no run directory, nothing to clean up. (A port taken
    // between this check and the node's start is caught at the start: tests/bad_input_env.rs.)
    assert!(cli::run_dir(&err).is_none(), "{err}");
    drop(taken);
}

/// Real settings that `postgres --describe-config` leaves out (application_name, developer
/// options) are asked of the server and pass; a made-up name does not.
#[test]
fn a_misspelt_server_setting_is_refused_before_any_server_starts() {
    let (_d, path) = cli::scenario(
        "setting",
        "version = 1\n\n[chain.b.settings]\nmax_slot_wal_keep_sise = \"1GB\"\n\
         application_name = \"rehearsal\"\ndebug_logical_replication_streaming = \"immediate\"\n\
         totally_made_up = 1\n",
    );
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:4:26", path.display())), "{err}");
    assert!(
        err.contains("[chain.b.settings]") && err.contains("did you mean max_slot_wal_keep_size"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}:7:19: [chain.b.settings]: totally_made_up is not a setting",
            path.display()
        )),
        "{err}"
    );
    assert!(
        !err.contains("application_name") && !err.contains("debug_logical"),
        "real settings refused: {err}"
    );
    assert!(
        !err.contains("initialising"),
        "nothing should have started: {err}"
    );
}

#[test]
fn a_setting_value_only_the_server_checks_is_named_with_its_line_and_what_it_takes() {
    let (_d, path) = cli::scenario(
        "enum",
        "version = 1\n[workload]\nenabled = false\n\n[chain.c.settings]\nsynchronous_commit = \"remot_apply\"\n",
    );
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:6:22", path.display())), "{err}");
    assert!(
        err.contains("synchronous_commit = \"remot_apply\" is refused")
            && err.contains("remote_apply"),
        "the server's list of values is the hint: {err}"
    );
    let run = cli::run_dir(&err).expect("a and c were started");
    cli::assert_cleaned_up(&run);
}

#[test]
fn a_runs_folder_the_server_user_cannot_reach_is_named_with_the_fix() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!(
            "SKIPPED: not root: the servers run as the user who made the folder, who can reach it"
        );
        return;
    }
    let (_d, path) = cli::scenario("private", "version = 1\n");
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        private.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let out = cli::run(&[
        "run",
        path.to_str().unwrap(),
        "--runs-dir",
        private.path().to_str().unwrap(),
    ]);
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("chmod o+x {}", private.path().display())),
        "{err}"
    );
}
