//! The same rehearsals in containers: smoke, a partition, a primary failure, WAL pressure —
//! each passing its expectations on the docker backend — and no container or network of the
//! harness left behind, even when the harness itself is killed.
//!
//! Needs a Docker engine. Without one these tests say so and pass, unless
//! PGREHEARSE_REQUIRE_DOCKER=1 (CI sets it), in which case they fail.

mod common;

use std::process::{Command, Stdio};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use common::{cli, report};
use serde_json::Value;

static IMAGE: OnceLock<bool> = OnceLock::new();

/// Whether to run: a Docker engine answers (and the image exists, built here if needed).
fn docker_ready() -> bool {
    let up = Command::new("docker")
        .args(["info"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !up {
        assert!(
            !harness::util::env_flag("PGREHEARSE_REQUIRE_DOCKER"),
            "PGREHEARSE_REQUIRE_DOCKER is set but no Docker engine answers"
        );
        eprintln!(
            "SKIPPED: no Docker engine on this machine (set PGREHEARSE_REQUIRE_DOCKER=1 to make this a failure)"
        );
        return false;
    }
    *IMAGE.get_or_init(|| {
        let have = |r: &str| {
            Command::new("docker")
                .args(["image", "inspect", r])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        // This one even where the official postgres:17 exists: tests use it as the
        // network-tools helper and strip its tools for the fallback test.
        if have("pgrehearse/postgres:17") {
            return true;
        }
        let required = harness::util::env_flag("PGREHEARSE_REQUIRE_DOCKER");
        if !nix::unistd::geteuid().is_root() && !required {
            eprintln!(
                "SKIPPED: no pgrehearse/postgres:17 image, and building it needs root: run `sudo scripts/build-image.sh 17` once"
            );
            return false;
        }
        // No registry on these machines: build the equivalent image once.
        let script = format!("{}/scripts/build-image.sh", env!("CARGO_MANIFEST_DIR"));
        let st = Command::new(script)
            .arg("17")
            .status()
            .expect("running scripts/build-image.sh");
        assert!(
            st.success(),
            "scripts/build-image.sh 17 failed (it needs root for debootstrap: run `sudo scripts/build-image.sh 17` once, or unset PGREHEARSE_REQUIRE_DOCKER to skip the container tests)"
        );
        true
    })
}

/// Containers and networks carrying this run's label.
fn leftovers(run: &std::path::Path) -> (usize, usize) {
    let id = run.file_name().unwrap().to_string_lossy().to_string();
    let count = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .arg("--filter")
            .arg(format!("label=org.pgrehearse.run={id}"))
            .arg("-q")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    (count(&["ps", "-a"]), count(&["network", "ls"]))
}

fn run_docker(scenario: &str) -> Value {
    run_docker_with_env(scenario, &[])
}

fn run_docker_with_env(scenario: &str, env: &[(&str, &str)]) -> Value {
    let out = cli::run_with_env(
        &["run", scenario, "--backend", "docker", "--seed", "11"],
        env,
    );
    let err = cli::stderr(&out);
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("no run directory:\n{err}"));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap_or_default())
            .unwrap_or_else(|e| panic!("no report ({e}):\n{err}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:#}\n{err}",
        report["expectations"]
    );
    assert_eq!(report["backend"], "docker");
    // The server logs lived in the containers; they are kept with the run.
    for node in ["a", "b", "c"] {
        let log = run.join("logs").join(format!("{node}.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.contains("database system is ready"),
            "{} should hold {node}'s server log, got {} bytes",
            log.display(),
            text.len()
        );
    }
    assert_eq!(
        leftovers(&run),
        (0, 0),
        "containers or networks of {} left behind",
        run.display()
    );
    report
}

fn shipped(name: &str) -> String {
    format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn smoke_in_containers() {
    if !docker_ready() {
        return;
    }
    let (_d, path) = cli::scenario(
        "docker-smoke",
        "version = 1\nname = \"docker-smoke\"\n[workload]\ninitial_rows = 300\nrate = 200\nduration = \"10s\"\n[expect]\nconsistent = true\nmax_catchup = \"30s\"\n",
    );
    let r = run_docker(path.to_str().unwrap());
    let v = r["verify"].as_array().unwrap();
    assert!(v.iter().all(|x| x["verdict"] == "valid"), "{v:#?}");
    // C is Aurora-like on this backend, and the report says what held there, read back from C.
    let aurora = r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.contains("Aurora-like"))
        .unwrap_or_else(|| panic!("no Aurora note: {:#}", r["notes"]))
        .to_string();
    for held in [
        "rehearse_migrator is not a superuser and a member of",
        "it may SET session_replication_role",
        "owned by rehearse_migrator (not a superuser)",
        "DISABLE TRIGGER ALL on a table with a foreign key fails for it",
    ] {
        assert!(aurora.contains(held), "{held:?} not in: {aurora}");
    }
}

/// The peak of `field` in the report's series between `from_ms` and `to_ms`.
fn peak(r: &Value, field: &str, from_ms: i64, to_ms: i64) -> f64 {
    r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| (from_ms..=to_ms).contains(&p["t_ms"].as_i64().unwrap()))
        .filter_map(|p| p[field].as_f64())
        .fold(0.0, f64::max)
}

/// Run a 16 s workload in containers with one link `fault` (TOML keys) from 3 s to 9 s; the
/// fault must have been injected.
fn with_link_fault(name: &str, fault: &str) -> Value {
    with_link_fault_env(name, fault, &[])
}

fn with_link_fault_env(name: &str, fault: &str, env: &[(&str, &str)]) -> Value {
    let (_d, path) = cli::scenario(
        name,
        &format!(
            "version = 1\nname = \"{name}\"\n[workload]\ninitial_rows = 200\nrate = 200\nduration = \"16s\"\n\
             [[faults]]\n{fault}at = \"3s\"\nheal_at = \"9s\"\n\
             [expect]\nconsistent = true\nconsistent_after_heal = true\nconverges_within = \"60s\"\n"
        ),
    );
    let r = run_docker_with_env(path.to_str().unwrap(), env);
    let f = &r["observations"]["faults"][0];
    assert!(f["error"].is_null(), "{f:#}");
    r
}

#[test]
fn partition_between_b_and_c_containers() {
    if !docker_ready() {
        return;
    }
    let r = run_docker(&shipped("partition-bc"));
    let bc = peak(&r, "bc_bytes", 8_000, 19_000);
    assert!(
        bc > 100_000.0,
        "b→c lag must grow while the containers are partitioned: {bc}"
    );
}

#[test]
fn a_bandwidth_cap_between_a_and_b_containers_is_lag_until_healed() {
    if !docker_ready() {
        return;
    }
    // htb caps bandwidth in the container even where the kernel has no netem.
    let r = with_link_fault(
        "docker-bandwidth",
        "kind = \"bandwidth\"\nhop = \"a-b\"\nrate = \"32KiB/s\"\n",
    );
    let ab = peak(&r, "ab_bytes", 5_000, 9_000);
    assert!(
        ab > 200_000.0,
        "a→b lag must grow while the link is capped at 32 KiB/s: {ab}"
    );
}

#[test]
fn packet_loss_between_a_and_b_containers_slows_replication_until_healed() {
    if !docker_ready() {
        return;
    }
    let r = with_link_fault(
        "docker-loss",
        "kind = \"loss\"\nhop = \"a-b\"\nloss = \"50%\"\n",
    );
    // Judged by the heartbeat, not by A's replay_lag column: when B's replies are lost too,
    // PostgreSQL keeps showing the last lag it measured, however long the stream stalls.
    let e2e = peak(&r, "e2e_s", 3_000, 9_500);
    eprintln!("end-to-end lag peak under 50% loss on a→b: {e2e}s");
    assert!(
        e2e >= 0.2,
        "end-to-end lag must grow while half the packets a→b are dropped (retransmissions): {e2e}"
    );
}

#[test]
fn the_shipped_latency_scenario_runs_unchanged_in_containers() {
    if !docker_ready() {
        return;
    }
    // With netem the containers' network delays the packets; without it (as on these
    // machines' kernel) the hop goes through a harness proxy on the host. Either way the
    // scenario's own expectations hold and B replays late while the fault is on.
    let r = run_docker(&shipped("lag-ab"));
    let during = peak(&r, "ab_s", 8_000, 19_000);
    assert!(
        during >= 0.4,
        "a→b replay lag during 500 ms latency: {during}"
    );
}

#[test]
fn primary_failure_in_containers_loses_nothing_with_sync_replication() {
    if !docker_ready() {
        return;
    }
    let r = run_docker(&shipped("primary-failure-sync"));
    let rpo = &r["observations"]["rpo"];
    assert_eq!(rpo["lost_writes"], 0, "{rpo:#}");
    // The commits a was waiting on when it died (b cut off first): unknown to the client, at
    // most one per connection. Whether b has one depends on whether its WAL crossed before the
    // cut swallowed the acknowledgement: not a loss either way.
    let unknown = rpo["unknown"].as_array().unwrap();
    assert!((1..=4).contains(&unknown.len()), "{rpo:#}");
    let f = &r["observations"]["failover"];
    let promoted = f["promoted_ms"].as_i64().unwrap();
    assert_eq!(f["slot_carried_on"], true, "{f:#}");
    assert!(
        f["first_write_on_b_ms"]
            .as_i64()
            .is_some_and(|w| w >= promoted),
        "the workload wrote to b once it was promoted: {f:#}"
    );
    // ... and C, verified against the promoted b, has all of it.
    let c_vs_b = report::verify_of(&r, "c");
    assert_eq!(
        (&c_vs_b["reference"], &c_vs_b["verdict"]),
        (&Value::from("b"), &Value::from("valid")),
        "{c_vs_b:#}"
    );
}

#[test]
fn wal_pressure_in_containers() {
    if !docker_ready() {
        return;
    }
    let r = run_docker(&shipped("wal-pressure-survives"));
    assert_eq!(r["observations"]["slot"]["survived"], true);
    // The consumer really stopped: b held WAL for the slot, and its pg_wal grew with it.
    let (stop, resume) = (
        report::fault_ms(&r, "replicator_stop", "injected_ms"),
        report::fault_ms(&r, "replicator_stop", "healed_ms"),
    );
    const MIB: f64 = 1024.0 * 1024.0;
    let retained = peak(&r, "b_slot_retained", stop, resume);
    assert!(
        retained > 8.0 * MIB,
        "WAL retained on b for the slot: {retained}"
    );
    let first = r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["t_ms"].as_i64().unwrap() >= stop)
        .find_map(|p| p["b_wal_bytes"].as_f64())
        .expect("b's pg_wal sampled after the stop");
    let grown = peak(&r, "b_wal_bytes", stop, resume) - first;
    assert!(grown >= 16.0 * MIB, "b's pg_wal grew by {grown} bytes");
}

#[test]
fn down_all_removes_a_killed_harness_leftovers_but_not_a_live_run_and_ctrl_c_cleans_up() {
    if !docker_ready() {
        return;
    }
    let (_d, path) = cli::scenario(
        "docker-killed",
        "version = 1\nname = \"docker-killed\"\n[workload]\nrate = 50\nduration = \"10m\"\n",
    );
    // Both runs in a runs folder of their own, and down --all told so: other tests of this
    // binary run chains left up with `up` at the same time, which an unscoped down --all would
    // rightly take down.
    let runs = tempfile::tempdir().unwrap();
    let runs_dir = runs.path().to_str().unwrap();
    let start = || {
        cli::Background::spawn(&[
            "run",
            path.to_str().unwrap(),
            "--backend",
            "docker",
            "--runs-dir",
            runs_dir,
        ])
    };
    // A live run: down --all must leave it alone.
    let mut live = start();
    let mut bg = start();
    let run = bg.wait_for_workload(Duration::from_secs(180), |_| true);
    // SIGKILL: no cleanup code of the harness runs.
    bg.kill();
    assert_eq!(
        leftovers(&run).0,
        3,
        "the killed run's containers should still be there"
    );

    let live_run = live.wait_for_workload(Duration::from_secs(180), |_| true);
    assert_eq!(
        leftovers(&live_run),
        (3, 1),
        "a live run: three containers and its network, each labelled with the run"
    );

    let out = cli::run(&["down", "--all", "--runs-dir", runs_dir]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    assert_eq!(leftovers(&run), (0, 0), "down --all must remove them");
    // What the servers logged is kept with the run, as `down --run` keeps it; the run's
    // password file and secrets go with its containers.
    for node in ["a", "b", "c"] {
        let log = std::fs::read_to_string(run.join("logs").join(format!("{node}.log")))
            .unwrap_or_default();
        assert!(
            log.contains("database system is ready"),
            "{node}'s server log was not saved: {log:?}"
        );
    }
    assert!(!run.join("pgpass").exists(), "the password file stayed");
    assert!(!run.join("secrets.json").exists(), "the secrets stayed");
    assert_eq!(
        leftovers(&live_run).0,
        3,
        "down --all must not touch a live run"
    );

    // Ctrl-C: the live run removes its own containers and network.
    live.signal(nix::sys::signal::Signal::SIGINT);
    let status = live.wait_exit(Duration::from_secs(120));
    assert_eq!(status.code(), Some(130), "{}", live.stderr());
    assert_eq!(
        leftovers(&live_run),
        (0, 0),
        "an interrupted run must leave nothing in Docker"
    );
}

/// Like the official `postgres` image, which carries neither iptables nor tc: the built image
/// with both removed, committed under a test-only name.
fn image_without_network_tools() -> &'static str {
    static BUILT: Once = Once::new();
    BUILT.call_once(strip_network_tools);
    BARE_IMAGE
}

const BARE_IMAGE: &str = "pgrehearse-test/postgres-without-net-tools:17";

fn strip_network_tools() {
    const BUILDER: &str = "pgrehearse-test-strip-net-tools";
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .output()
            .expect("running docker")
    };
    let _ = docker(&["rm", "-f", BUILDER]);
    let out = docker(&[
        "run",
        "--name",
        BUILDER,
        "pgrehearse/postgres:17",
        "sh",
        "-c",
        "for t in iptables tc; do rm -f \"$(command -v $t)\"; done; \
         ! command -v iptables && ! command -v tc",
    ]);
    assert!(out.status.success(), "stripping the tools: {out:?}");
    // The copy an earlier run committed: removed once replaced, so runs leave no untagged
    // images behind.
    let old = docker(&["image", "inspect", "--format", "{{.Id}}", BARE_IMAGE]);
    let out = docker(&["commit", BUILDER, BARE_IMAGE]);
    assert!(out.status.success(), "docker commit: {out:?}");
    let _ = docker(&["rm", "-f", BUILDER]);
    let old = String::from_utf8_lossy(&old.stdout).trim().to_string();
    if !old.is_empty() {
        let _ = docker(&["rmi", &old]);
    }
}

#[test]
fn a_partition_works_on_an_image_without_iptables_or_tc() {
    if !docker_ready() {
        return;
    }
    // The official image's case: the rules are set from a helper container that joins the
    // node's network namespace, so the partition is as real as with the tools inside.
    let image = image_without_network_tools();
    let r = with_link_fault_env(
        "docker-bare-partition",
        "kind = \"partition\"\nhop = \"a-b\"\n",
        &[("PGREHEARSE_IMAGE", image)],
    );
    let ab = peak(&r, "ab_bytes", 5_000, 9_000);
    assert!(
        ab > 50_000.0,
        "a→b lag must grow while the containers are partitioned: {ab}"
    );
    let notes = r["notes"].to_string();
    assert!(notes.contains("helper container"), "{notes}");
}

#[test]
fn without_any_network_tools_a_partition_goes_through_a_proxy_on_the_host() {
    if !docker_ready() {
        return;
    }
    // The official image on a machine with no image that carries iptables/tc: the hop is
    // proxied on the host, and the partition still happens.
    let image = image_without_network_tools();
    let r = with_link_fault_env(
        "docker-proxied-partition",
        "kind = \"partition\"\nhop = \"b-c\"\n",
        &[
            ("PGREHEARSE_IMAGE", image),
            ("PGREHEARSE_NET_TOOLS_IMAGE", "none"),
        ],
    );
    let bc = peak(&r, "bc_bytes", 5_000, 9_000);
    assert!(
        bc > 50_000.0,
        "b→c lag must grow while the proxy holds the partition: {bc}"
    );
    let notes = r["notes"].to_string();
    assert!(notes.contains("proxy on the host"), "{notes}");
}

#[test]
fn a_directory_format_dump_is_restored_inside_the_container() {
    if !docker_ready() {
        return;
    }
    // pg_restore runs in A's container, so the dump's folder is copied in first.
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("shop.d");
    common::dump_the_shop(&dump, "d");
    let (_d, path) = cli::scenario(
        "docker-byo-dump",
        &format!(
            "version = 1\nname = \"docker-byo-dump\"\n[chain]\ndatabase = \"app\"\n\
             [data]\ndump = \"{}\"\n[workload]\nenabled = false\n\
             [expect]\nconsistent = true\n",
            dump.display()
        ),
    );
    let r = run_docker(path.to_str().unwrap());
    let tables = r["verify"][0]["tables"].to_string();
    assert!(tables.contains("public.customers"), "{tables}");
}

#[test]
fn a_partition_outlives_a_restart_of_the_container_behind_it() {
    if !docker_ready() {
        return;
    }
    // B's container is killed and started again while A ↔ B is partitioned: it comes back with
    // a fresh network namespace, and the partition must be put back there. A gives up on the
    // old B after 2 s (wal_sender_timeout), so nothing but the partition keeps the new B from
    // streaming.
    let (_d, path) = cli::scenario(
        "docker-partition-restart",
        "version = 1\nname = \"docker-partition-restart\"\n\
         [chain.a.settings]\nwal_sender_timeout = \"2s\"\n\
         [workload]\ninitial_rows = 200\nrate = 200\nduration = \"16s\"\n\
         [[faults]]\nkind = \"partition\"\nhop = \"a-b\"\nat = \"3s\"\nheal_at = \"12s\"\n\
         [[faults]]\nkind = \"kill\"\nnode = \"b\"\nat = \"4s\"\nheal_at = \"6s\"\n\
         [expect]\nconsistent = true\nconsistent_after_heal = true\nconverges_within = \"60s\"\n",
    );
    let r = run_docker(path.to_str().unwrap());
    // Back up at 6 s but still cut off: B receives nothing new until the partition heals.
    let received = |p: &Value| -> Option<String> {
        p["nodes"].as_array()?.iter().find(|n| n["name"] == "b")?["receive_lsn"]
            .as_str()
            .map(String::from)
    };
    let run = std::path::PathBuf::from(r["run_dir"].as_str().unwrap());
    let samples: Vec<Value> = report::samples::<Value>(&run)
        .into_iter()
        .filter(|s| (8_500..11_800).contains(&s["t_ms"].as_i64().unwrap_or(0)))
        .collect();
    let positions: std::collections::BTreeSet<String> =
        samples.iter().filter_map(received).collect();
    assert!(
        !samples.is_empty() && positions.len() <= 1,
        "b must not receive WAL after its container restarted into the partition: {positions:?}"
    );
}

#[test]
fn link_faults_go_on_while_one_end_is_down_and_never_keep_a_node_down() {
    if !docker_ready() {
        return;
    }
    // A is dead from 3 s on (the failover). The loss on a-b starts while it is down, with no
    // address to name in B's rules; B is killed while the bandwidth cap on A's side is in
    // force, and its heal puts the hop's faults back — with A still down — before starting
    // B again, the primary now.
    let (_d, path) = cli::scenario(
        "docker-link-end-down",
        "version = 1\nname = \"docker-link-end-down\"\n\
         [workload]\ninitial_rows = 200\nrate = 200\nduration = \"14s\"\n\
         [[faults]]\nkind = \"bandwidth\"\nhop = \"a-b\"\nrate = \"10MiB/s\"\nat = \"1s\"\n\
         [[faults]]\nkind = \"primary_failure\"\nat = \"3s\"\n\
         [[faults]]\nkind = \"loss\"\nhop = \"a-b\"\nloss = \"10%\"\nat = \"5s\"\n\
         [[faults]]\nkind = \"kill\"\nnode = \"b\"\nat = \"7s\"\nheal_at = \"9s\"\n\
         [expect]\nconsistent = false\nconsistent_after_heal = true\nslot_survives = true\n",
    );
    // Exit 0: every fault injected and healed without error (faults_injected), and B back up
    // to be verified against.
    let r = run_docker(path.to_str().unwrap());
    for f in r["observations"]["faults"].as_array().unwrap() {
        assert!(f["error"].is_null() && f["injected_ms"].is_u64(), "{f:#}");
        if f["kind"] != "primary_failure" {
            assert!(f["healed_ms"].is_u64(), "{f:#}");
        }
    }
}

#[test]
fn pauses_heal_whatever_else_happened_to_the_container_meanwhile() {
    if !docker_ready() {
        return;
    }
    // Node faults on one node may not overlap (the scenario refuses that), but they may follow
    // each other at once: b's server is stopped (before c is paused: a fast shutdown waits for
    // its WAL senders, and one to a paused c would hold it for wal_sender_timeout), started
    // again, and its container paused at that same instant. a's bandwidth cap heals while a is
    // paused.
    let (_d, path) = cli::scenario(
        "docker-pause-heals",
        "version = 1\nname = \"docker-pause-heals\"\n\
         [workload]\ninitial_rows = 200\nrate = 200\nduration = \"14s\"\n\
         [[faults]]\nkind = \"stop\"\nnode = \"b\"\nat = \"1s\"\nheal_at = \"6s\"\n\
         [[faults]]\nkind = \"pause\"\nnode = \"c\"\nat = \"2s\"\nheal_at = \"8s\"\n\
         [[faults]]\nkind = \"pause\"\nnode = \"b\"\nat = \"6s\"\nheal_at = \"9s\"\n\
         [[faults]]\nkind = \"bandwidth\"\nhop = \"a-b\"\nrate = \"32KiB/s\"\nat = \"2s\"\nheal_at = \"5s\"\n\
         [[faults]]\nkind = \"pause\"\nnode = \"a\"\nat = \"3s\"\nheal_at = \"7s\"\n\
         [expect]\nconsistent = true\nconsistent_after_heal = true\nconverges_within = \"60s\"\n",
    );
    // Exit 0: every heal went through (faults_injected) and the chain converged — also the
    // bandwidth cap healed while a was paused, with no helper container to reach a's
    // namespace meanwhile: lifted once a resumes.
    let r = run_docker_with_env(
        path.to_str().unwrap(),
        &[("PGREHEARSE_NET_TOOLS_IMAGE", "none")],
    );
    for f in r["observations"]["faults"].as_array().unwrap() {
        assert!(f["error"].is_null() && f["healed_ms"].is_u64(), "{f:#}");
    }
}

/// Run `scenario` on docker, expecting it to fail before the chain is up: its exit code and
/// stderr. Whatever it started must be gone.
fn failing_run(scenario: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = cli::run_with_env(
        &["run", scenario, "--backend", "docker", "--seed", "11"],
        env,
    );
    let err = cli::stderr(&out);
    if let Some(run) = cli::run_dir(&err) {
        assert_eq!(leftovers(&run), (0, 0), "{err}");
    }
    (out.status.code(), err)
}

#[test]
fn an_explicit_image_that_is_not_there_is_an_error_not_a_fallback() {
    if !docker_ready() {
        return;
    }
    let (_d, path) = cli::scenario(
        "docker-no-such-image",
        "version = 1\nname = \"docker-no-such-image\"\n[workload]\nenabled = false\n",
    );
    let (code, err) = failing_run(
        path.to_str().unwrap(),
        &[("PGREHEARSE_IMAGE", "pgrehearse-test/no-such-image:17")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("PGREHEARSE_IMAGE") && err.contains("pgrehearse-test/no-such-image:17"),
        "{err}"
    );
    assert!(cli::run_dir(&err).is_none(), "nothing should start: {err}");
}

#[test]
fn a_server_that_exits_at_startup_fails_the_run_at_once_with_its_log() {
    if !docker_ready() {
        return;
    }
    // A real setting with a value only the server itself rejects: it exits while starting.
    let (_d, path) = cli::scenario(
        "docker-bad-value",
        "version = 1\nname = \"docker-bad-value\"\n[chain.a.settings]\nshared_buffers = \"16XB\"\n[workload]\nenabled = false\n",
    );
    let t = std::time::Instant::now();
    let (code, err) = failing_run(path.to_str().unwrap(), &[]);
    assert_eq!(code, Some(2), "{err}");
    // Without noticing the exit, this waited out the 120 s connect timeout: the message is the
    // same either way, only the time tells them apart.
    assert!(
        t.elapsed() < Duration::from_secs(120),
        "waited out the connect timeout: {:?}",
        t.elapsed()
    );
    // Pointed at the setting in the scenario, the server log's tail beside it.
    assert!(
        err.contains(&format!("{}:4:18", path.display()))
            && err.contains("shared_buffers = \"16XB\" is refused"),
        "{err}"
    );
    assert!(
        err.contains("invalid value for parameter"),
        "the server log tail: {err}"
    );
}

#[test]
fn down_all_says_so_when_the_docker_engine_does_not_answer() {
    // No engine needed: DOCKER_HOST names one that is not there.
    let runs = tempfile::tempdir().unwrap();
    let out = Command::new(cli::bin())
        .args(["down", "--all", "--runs-dir", runs.path().to_str().unwrap()])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let err = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Docker"), "{err}");
    assert!(!cli::stdout(&out).contains("nothing to take down"));
}

#[test]
fn a_misspelt_setting_is_refused_before_any_container_starts() {
    if !docker_ready() {
        return;
    }
    let (_d, path) = cli::scenario(
        "docker-typo",
        "version = 1\nname = \"docker-typo\"\n[chain.b.settings]\nwal_recever_timeout = \"5s\"\n\
         debug_logical_replication_streaming = \"immediate\"\n[workload]\nenabled = false\n",
    );
    let (code, err) = failing_run(path.to_str().unwrap(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("did you mean wal_receiver_timeout"), "{err}");
    assert!(
        !err.contains("debug_logical"),
        "a real setting refused: {err}"
    );
    assert!(cli::run_dir(&err).is_none(), "nothing should start: {err}");
    a_settings_probe_cut_short_leaves_no_container();
}

/// The settings probe's container, dropped half way (as an interrupt drops the run), is removed
/// at once: Docker's auto-remove would wait for the probe's minute to run out, or forever for a
/// container created but not started.
fn a_settings_probe_cut_short_leaves_no_container() {
    use harness::backend::docker::{connect, known_settings, pick_image};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let docker = connect().await.unwrap();
        let image = pick_image(&docker, 17).await.unwrap();
        let probe = known_settings(&docker, &image, &["shared_buffers"]);
        tokio::pin!(probe);
        let created = async {
            while probes().await == 0 {
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            _ = &mut probe => panic!("the probe ended before its container was seen"),
            _ = tokio::time::timeout(Duration::from_secs(60), created) => {}
        }
        assert!(probes().await > 0, "no probe container seen within 60 s");
    });
    // The probe future is dropped with the runtime's task: its container must be gone by now.
    drop(rt);
    let left = tokio::runtime::Runtime::new().unwrap().block_on(probes());
    assert_eq!(left, 0, "the probe's container outlived the probe");
}

/// Settings-probe containers of this process (their run label names its pid).
async fn probes() -> usize {
    let mine = format!("settings-probe-{}-", std::process::id());
    let out = tokio::process::Command::new("docker")
        .args(["ps", "-a", "--filter", "label=org.pgrehearse.run"])
        .args(["--format", "{{.Label \"org.pgrehearse.run\"}}"])
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&mine))
        .count()
}

#[test]
fn a_paused_target_container_falls_behind_and_catches_up() {
    if !docker_ready() {
        return;
    }
    let (_d, path) = cli::scenario(
        "docker-pause-c",
        "version = 1\nname = \"docker-pause-c\"\n[workload]\ninitial_rows = 200\nrate = 200\nduration = \"14s\"\n\
         [[faults]]\nkind = \"pause\"\nnode = \"c\"\nat = \"3s\"\nheal_at = \"8s\"\n\
         [[faults]]\nkind = \"partition\"\nhop = \"b-c\"\nat = \"4s\"\nheal_at = \"6s\"\n\
         [expect]\nconsistent = true\nconsistent_after_heal = true\nconverges_within = \"60s\"\n",
    );
    let r = run_docker(path.to_str().unwrap());
    // The partition starts and heals while c is paused, where docker exec is refused: its
    // rules go in through c's network namespace all the same.
    for f in r["observations"]["faults"].as_array().unwrap() {
        assert!(f["error"].is_null() && f["healed_ms"].is_u64(), "{f:#}");
    }
    // docker pause freezes every process of C: nothing is applied, the end-to-end lag grows.
    let e2e = peak(&r, "e2e_s", 4_000, 8_000);
    assert!(e2e >= 1.0, "end-to-end lag while c is paused: {e2e}");
}

#[test]
fn down_takes_a_chain_down_when_one_of_its_containers_is_already_gone() {
    if !docker_ready() {
        return;
    }
    let (_d, path) = cli::scenario(
        "docker-down-partial",
        "version = 1\nname = \"docker-down-partial\"\n[workload]\nenabled = false\n",
    );
    let (_out, run, _guard) = cli::up(&[path.to_str().unwrap(), "--backend", "docker"]);
    let container = |node: &str| node_container(&run, node);

    // The nodes reach each other by container name, as machines on one network would: b
    // streams from a's container, c subscribes to b's.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (sender, subconninfo) = rt.block_on(async {
        let at = harness::run::Attached::open(harness::run::RunDir::open(&run))
            .await
            .unwrap();
        let sender = at
            .chain
            .b
            .query_one("postgres", "SELECT sender_host FROM pg_stat_wal_receiver")
            .await
            .unwrap();
        let conninfo = at
            .chain
            .c
            .query_one("postgres", "SELECT subconninfo FROM pg_subscription")
            .await
            .unwrap();
        at.release();
        (sender.unwrap_or_default(), conninfo.unwrap_or_default())
    });
    assert_eq!(sender, container("a"), "b's WAL sender");
    assert!(
        subconninfo.contains(&format!("host={}", container("b"))),
        "c's subscription: {}",
        harness::secret::redact(&subconninfo)
    );

    // Someone removed C's container by hand.
    let c = container("c");
    assert!(!c.is_empty(), "no container for c");
    let rm = Command::new("docker")
        .args(["rm", "-f", &c])
        .output()
        .unwrap();
    assert!(rm.status.success(), "{rm:?}");

    let out = cli::run(&["down", "--run", run.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    assert_eq!(leftovers(&run), (0, 0));
    assert!(!run.join("secrets.json").exists());
    // The server logs lived in the containers: down keeps those it still finds with the run,
    // as it says.
    assert!(cli::stdout(&out).contains("logs and reports kept"));
    for node in ["a", "b"] {
        let log = std::fs::read_to_string(run.join("logs").join(format!("{node}.log")));
        assert!(
            log.as_deref()
                .is_ok_and(|l| l.contains("database system is ready")),
            "{node}'s server log should be kept: {log:?}"
        );
    }
    assert!(cli::stderr(&out).contains("c's server log is not kept"));
}

/// The container of `node` in the chain of run directory `run`.
fn node_container(run: &std::path::Path, node: &str) -> String {
    let id = run.file_name().unwrap().to_string_lossy().to_string();
    let ps = Command::new("docker")
        .args(["ps", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=org.pgrehearse.run={id}"))
        .arg("--filter")
        .arg(format!("name=-{node}$"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&ps.stdout).trim().to_string()
}

#[test]
fn a_killed_container_starts_again_although_its_old_postmaster_pid_is_taken() {
    if !docker_ready() {
        return;
    }
    let (_d, path) = cli::scenario(
        "docker-stale-pid",
        "version = 1\nname = \"docker-stale-pid\"\n[workload]\nenabled = false\n",
    );
    let (_out, run, _guard) = cli::up(&[path.to_str().unwrap(), "--backend", "docker"]);
    let container = node_container(&run, "c");
    let exec = |script: &str| {
        let out = Command::new("docker")
            .args(["exec", "-u", "postgres", &container, "sh", "-c", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let at = harness::run::Attached::open(harness::run::RunDir::open(&run))
            .await
            .unwrap();
        let c = &at.chain.c;
        // A crash of c's machine, which then comes back up (as a kill fault's heal does).
        c.kill().await.unwrap();
        assert!(c.control().boot().await.unwrap(), "c's container was down");
        // Pids start over in the fresh container: the one the stale postmaster.pid names is now
        // another process of the postgres user, which postgres takes for a live postmaster.
        let pid = exec("sleep 600 >/dev/null 2>&1 & echo $!");
        exec(&format!(
            "sed -i '1s/.*/{pid}/' /var/lib/pgrehearse/data/postmaster.pid"
        ));
        c.start().await.unwrap();
        assert_eq!(
            c.query_one("postgres", "SELECT 1")
                .await
                .unwrap()
                .as_deref(),
            Some("1")
        );
        at.release();
    });
}

#[test]
fn packet_loss_on_a_hop_proxied_on_the_host_is_refused_with_its_line_before_the_workload() {
    if !docker_ready() {
        return;
    }
    // No iptables/tc in the image and no helper image: b-c goes through a proxy on the host,
    // which cannot lose packets. Known once the chain is up, so refused then, not at 2 s of a
    // 60 s workload and reported as not injected at the end.
    let image = image_without_network_tools();
    let (_d, path) = cli::scenario(
        "docker-proxied-loss",
        "version = 1\n[workload]\nduration = \"60s\"\n\n[[faults]]\nkind = \"loss\"\nhop = \"b-c\"\nloss = \"5%\"\nat = \"2s\"\n",
    );
    let (code, err) = failing_run(
        path.to_str().unwrap(),
        &[
            ("PGREHEARSE_IMAGE", image),
            ("PGREHEARSE_NET_TOOLS_IMAGE", "none"),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("{}:6", path.display())), "{err}");
    assert!(
        err.contains("loss 5% on b-c on the docker backend"),
        "{err}"
    );
    assert!(err.contains("proxy on the host"), "{err}");
    assert!(err.contains("scripts/build-image.sh 17"), "the hint: {err}");
    // Refused before the workload: it never started, and the ledger holds no more than the
    // initial rows the chain was built with.
    assert!(!err.contains("workload: seed"), "the workload ran: {err}");
    let ledger = cli::run_dir(&err).map(|run| run.join("ledger.jsonl"));
    let entries = match ledger.filter(|l| l.exists()) {
        Some(l) => harness::workload::read_ledger(&l).unwrap(),
        None => Vec::new(),
    };
    let written: Vec<_> = entries
        .into_iter()
        .filter(|e| e.conn != harness::workload::SEED_CONN)
        .collect();
    assert!(written.is_empty(), "the workload wrote: {written:?}");
}

#[test]
fn a_teardown_that_keeps_leaves_the_containers_running() {
    if !docker_ready() {
        return;
    }
    use harness::backend::Backend;
    use harness::backend::docker::{DockerBackend, RUN_LABEL, connect, pick_image};
    let runs = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (run, docker) = rt.block_on(async {
        let user = harness::os::ServerUser::resolve().unwrap();
        let run = harness::run::RunDir::create(Some(runs.path()), "docker-keep", &user).unwrap();
        let creds = harness::backend::Credentials::generate();
        let docker = connect().await.unwrap();
        let image = pick_image(&docker, 17).await.unwrap();
        let b = DockerBackend::new(run.clone(), creds.clone(), docker.clone(), image)
            .await
            .unwrap();
        let spec = harness::node::NodeSpec::new("a", creds.superuser.clone());
        let a = b.init_primary(&spec).await.unwrap();
        b.teardown(true).await.unwrap();
        // Dropping the backend and its handles after a teardown that keeps removes nothing.
        drop(a);
        drop(b);
        (run, docker)
    });
    let kept = leftovers(run.path());
    rt.block_on(harness::backend::docker::remove_by_label(
        &docker,
        RUN_LABEL,
        run.id(),
    ))
    .unwrap();
    assert_eq!(kept, (1, 1), "the container and network must be kept");
}
