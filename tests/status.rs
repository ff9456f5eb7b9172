//! `pgrehearse status` on a chain left running by `up`: every hop, slot and subscription shown,
//! lag in seconds as a number or "idle" (never an empty cell), and end-to-end seconds only from
//! a heartbeat somebody is writing.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cli;
use harness::observe::{EndToEnd, Heartbeat, Writer, primary_channel, read_heartbeat};
use harness::run::{Attached, RunDir};
use harness::wait::Check;

const UP: &str = r#"
version = 1
name = "status"

[chain]
catchup_timeout = "3m"

# a's walsender reports b's replay_lag as NULL (idle) only after two replies from b with
# nothing new: at b's default of one per 10 s that is a wait of 20 s or more.
[chain.b.settings]
wal_receiver_status_interval = "1s"

[workload]
initial_rows = 100
"#;

/// `lag <hop> <bytes>  <seconds>`.
fn lag_re() -> regex::Regex {
    regex::Regex::new(r"^lag (\S+)\s+(unknown|\d+(?:\.\d+)? \S+)  (.*)$").unwrap()
}

/// The seconds cell of each hop in one rendering of `status`.
fn lag_cells(text: &str) -> Vec<(String, String)> {
    let re = lag_re();
    text.lines()
        .filter(|l| l.starts_with("lag "))
        .map(|l| {
            let c = re
                .captures(l)
                .unwrap_or_else(|| panic!("unparsable lag line {l:?} in:\n{text}"));
            (c[1].to_string(), c[3].to_string())
        })
        .collect()
}

/// What every rendering of a healthy chain shows. Returns the a→c seconds cell.
fn check_text(text: &str) -> String {
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(
        has("slot b_physical") && has("physical"),
        "no physical slot:\n{text}"
    );
    let logical = text
        .lines()
        .find(|l| l.contains("slot pgrehearse_sub"))
        .unwrap_or_else(|| panic!("no logical slot:\n{text}"));
    assert!(
        logical.contains("logical") && logical.contains(" active"),
        "{logical}"
    );
    assert!(logical.contains("safe_wal_size "), "{logical}");
    assert!(logical.contains("conflicting no"), "{logical}");
    assert!(!logical.contains("INVALIDATED"), "{logical}");
    assert!(
        has("subscription pgrehearse_sub enabled worker "),
        "no subscription:\n{text}"
    );
    let cells = lag_cells(text);
    let hops: Vec<&str> = cells.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(hops, ["a→b", "b→c", "a→c"], "{text}");
    let number = regex::Regex::new(r"^\d+\.\d{3}s$").unwrap();
    for (hop, secs) in &cells {
        assert!(!secs.trim().is_empty(), "empty lag cell for {hop}:\n{text}");
        if hop != "a→c" {
            assert!(
                secs == "idle" || number.is_match(secs),
                "{hop}: {secs:?} is neither idle nor a number:\n{text}"
            );
        }
    }
    cells[2].1.clone()
}

/// `status --json`: nulls stay null, and each says why.
fn check_json(v: &serde_json::Value) {
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{v:#}");
    assert!(nodes.iter().all(|n| n["reachable"] == true), "{v:#}");
    let slot = nodes[1]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slot_type"] == "logical")
        .unwrap_or_else(|| panic!("no logical slot on b: {v:#}"));
    assert!(slot.get("safe_wal_size").is_some(), "{slot:#}");
    assert_eq!(slot["conflicting"], false, "{slot:#}");
    assert!(slot["invalidation_reason"].is_null(), "{slot:#}");
    assert_eq!(
        nodes[2]["subscriptions"][0]["subname"], "pgrehearse_sub",
        "{v:#}"
    );
    let lags = v["lags"].as_array().unwrap();
    assert_eq!(lags.len(), 3, "{v:#}");
    for l in &lags[..2] {
        match &l["seconds"] {
            serde_json::Value::Number(_) => assert!(l.get("why_no_seconds").is_none(), "{l:#}"),
            serde_json::Value::Null => assert_eq!(l["why_no_seconds"], "idle", "{l:#}"),
            other => panic!("seconds is {other}: {l:#}"),
        }
    }
}

/// `status --json` of `run`.
fn status_json(run: &str) -> serde_json::Value {
    let out = cli::run(&["status", "--run", run, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    serde_json::from_str(&cli::stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}", cli::stdout(&out)))
}

/// `status` of `run`, as text.
fn status_text(run: &str) -> String {
    let out = cli::run(&["status", "--run", run]);
    assert_eq!(out.status.code(), Some(0), "{}", cli::stderr(&out));
    cli::stdout(&out)
}

/// Run `status --watch` (with `--json` when `json`) until it has printed `refreshes` complete
/// refreshes, then SIGTERM it; returns each refresh's text. Waits on its output only.
fn watch(run: &str, refreshes: usize, dir: &Path, json: bool) -> Vec<String> {
    let err_path = dir.join("watch.err");
    let mut args = vec!["status", "--run", run, "--watch", "--interval", "200ms"];
    if json {
        args.push("--json");
    }
    let mut child = cli::ChildGuard(
        Command::new(cli::bin())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // A refresh starts by clearing the screen and ends with the heartbeat line; in JSON it is
    // one whole document on one line.
    let clear = "\x1b[2J\x1b[H";
    let ends_refresh = |l: &str| {
        if json {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["nodes"].is_array())
        } else {
            l.starts_with("heartbeat ") || l.starts_with("no heartbeat ")
        }
    };
    let mut text = String::new();
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while done < refreshes {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                done += usize::from(ends_refresh(&line));
                text.push_str(&line);
                text.push('\n');
            }
            Err(e) => panic!(
                "status --watch printed {done} of {refreshes} refreshes ({e}); stdout:\n{text}\nstderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            ),
        }
    }
    // Interrupted like a user would: it stops and leaves the chain running.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Its stdout closes when it exits.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("status --watch did not stop on SIGTERM; stdout:\n{text}")
            }
        }
    }
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "status --watch exited with {status}; stderr:\n{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    let chunks: Vec<String> = if json {
        text.lines()
            .filter(|l| ends_refresh(l))
            .map(str::to_string)
            .collect()
    } else {
        text.split(clear)
            .filter(|c| c.lines().any(ends_refresh))
            .map(str::to_string)
            .collect()
    };
    assert!(chunks.len() >= refreshes, "{text:?}");
    chunks
}

#[test]
fn status_shows_every_hop_and_a_heartbeat_only_while_it_is_written() {
    let t0 = Instant::now();
    let (dir, path) = cli::scenario("status", UP);
    let (_, run, _down) = cli::up(&[path.to_str().unwrap()]);
    let run_arg = run.to_str().unwrap().to_string();
    eprintln!("up: {:?}", t0.elapsed());

    // --- text: `up` writes no heartbeat, and its process is gone: no end-to-end seconds
    let text = status_text(&run_arg);
    assert_eq!(check_text(&text), "no heartbeat", "{text}");
    assert!(
        text.contains("no heartbeat (the pgrehearse process that ran the chain (pid "),
        "{text}"
    );

    // --- JSON
    let v = status_json(&run_arg);
    check_json(&v);
    assert_eq!(v["heartbeat"]["state"], "no_heartbeat", "{v:#}");
    assert!(v["lags"][2]["seconds"].is_null(), "{v:#}");
    assert_eq!(v["lags"][2]["why_no_seconds"], "no_heartbeat", "{v:#}");

    // --- --watch: two refreshes, each complete
    let t = Instant::now();
    for chunk in watch(&run_arg, 2, dir.path(), false) {
        assert!(chunk.starts_with("run "), "{chunk}");
        assert_eq!(check_text(&chunk), "no heartbeat", "{chunk}");
    }
    // ... and as JSON Lines: one compact document per refresh
    for line in watch(&run_arg, 2, dir.path(), true) {
        check_json(&serde_json::from_str(&line).unwrap());
    }
    eprintln!("watch: {:?}", t.elapsed());

    // --- a reader that goes away (`status --watch --json | head -1`): status stops quietly,
    // and the chain it was watching stays up
    let err_path = dir.path().join("head.err");
    let mut child = cli::ChildGuard(
        Command::new(cli::bin())
            .args([
                "status",
                "--run",
                &run_arg,
                "--watch",
                "--json",
                "--interval",
                "100ms",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap(),
    );
    {
        let mut first = String::new();
        std::io::BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        check_json(&serde_json::from_str(&first).unwrap());
    } // the read end closes here
    let exited = common::wait_until(
        "status --watch to notice its reader left",
        Duration::from_secs(30),
        || {
            Ok(match child.0.try_wait().map_err(|e| e.to_string())? {
                Some(st) => Check::Done(st),
                None => Check::NotYet("still running".into()),
            })
        },
    );
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        exited.success() && !err.contains("panicked"),
        "{exited}: {err}"
    );
    check_json(&status_json(&run_arg));

    // --- an idle hop: once a's walsender reports b's replay_lag as NULL (b has replayed all
    // and nothing new is written), status says idle, never 0
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let attached = Attached::open(RunDir::open(&run)).await.unwrap();
        // The scenario's limits hold for the chain it left up, not the defaults.
        assert_eq!(
            attached.chain.spec.catchup_timeout,
            Duration::from_secs(180)
        );
        let a = &attached.chain.a;
        harness::wait::wait_for(
            "a's walsender to report b's replay_lag as NULL",
            Duration::from_secs(90),
            || async {
                let lag = a
                    .query_one(
                        "postgres",
                        "SELECT coalesce(replay_lag::text, 'NULL') FROM pg_stat_replication",
                    )
                    .await?;
                Ok(match lag.as_deref() {
                    Some("NULL") => Check::Done(()),
                    other => Check::NotYet(format!("replay_lag {other:?}")),
                })
            },
        )
        .await
        .unwrap();
        attached.release();
    });
    // A checkpoint or autovacuum on a may write WAL in between, making the lag a number
    // again for a moment: ask until status shows it idle, in both renderings.
    // (A loop, not wait_until: each try runs the binary, which waits on its own.)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = status_json(&run_arg);
        let text = status_text(&run_arg);
        let cell = lag_cells(&text)[0].clone();
        let json_idle =
            v["lags"][0]["seconds"].is_null() && v["lags"][0]["why_no_seconds"] == "idle";
        if json_idle && cell == ("a→b".to_string(), "idle".to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the a→b lag as idle within 60 s; last: json {}; text {cell:?}",
            v["lags"][0]
        );
    }

    // --- a heartbeat being written (by this process, as `run` does): measured end to end
    let written_from = Instant::now();
    let (seq_on_c, stopped) = rt.block_on(async {
        let attached = Attached::open(RunDir::open(&run)).await.unwrap();
        let chain = &attached.chain;
        let (_tx, rx) = primary_channel(&chain.a);
        let hb = Heartbeat::start(rx, "app", Duration::from_millis(100), Instant::now());
        let c = chain.c.connect("app").await.unwrap();
        let seen = harness::wait::wait_for(
            "c to show 5 heartbeats written on a",
            Duration::from_secs(60),
            || async {
                Ok(match read_heartbeat(&c).await? {
                    harness::observe::HeartbeatRead::Row(r) if r.seq >= 5 => Check::Done(r.seq),
                    other => Check::NotYet(format!("{other:?}")),
                })
            },
        )
        .await
        .unwrap();
        let snap = chain.snapshot(&Writer::MaybeRunning).await;
        let e2e = snap.heartbeat.clone().unwrap();
        let EndToEnd::Measured {
            lag_s,
            at_least: false,
            primary,
            seq_on_c: Some(on_c),
            seq_on_primary,
            ..
        } = &e2e
        else {
            panic!("{e2e:?}")
        };
        assert_eq!(primary, "a");
        assert!(*on_c >= seen && *seq_on_primary >= *on_c, "{e2e:?}");
        assert!((0.0..30.0).contains(lag_s), "{e2e:?}");
        let a_c = snap.lags.iter().find(|l| l.hop == "a→c").unwrap();
        assert_eq!(a_c.seconds, Some(*lag_s), "{snap:?}");
        drop(hb);
        let stopped = Instant::now();
        attached.release();
        (seen, stopped)
    });

    // --- nobody writes it any more: its age is reported, never as a lag
    let text = status_text(&run_arg);
    let cell = check_text(&text);
    assert!(
        cell.starts_with("no heartbeat (stopped ") && cell.ends_with(" ago)"),
        "{text}"
    );
    assert!(text.contains("its age is not a lag"), "{text}");
    // Its age is that of the last heartbeat this test wrote: no less than the time since the
    // writer stopped (less a moment for a write in flight then), no more than the time since
    // it started.
    let at_least = stopped.elapsed().as_secs_f64() - 0.25;
    let v = status_json(&run_arg);
    let at_most = written_from.elapsed().as_secs_f64();
    check_json(&v);
    let hb = &v["heartbeat"];
    assert_eq!(hb["state"], "stopped", "{v:#}");
    let age = hb["stopped_s_ago"].as_f64().unwrap();
    assert!(
        (at_least..=at_most).contains(&age),
        "the last heartbeat was written {at_least:.2}..{at_most:.2} s ago: {hb:#}"
    );
    assert!(hb["seq_on_c"].as_u64().unwrap() >= seq_on_c, "{hb:#}");
    assert!(v["lags"][2]["seconds"].is_null(), "{v:#}");
    assert_eq!(v["lags"][2]["why_no_seconds"], "no_heartbeat", "{v:#}");

    let down = cli::run(&["down", "--run", &run_arg]);
    assert_eq!(down.status.code(), Some(0), "{}", cli::stderr(&down));
    cli::assert_cleaned_up(&run);
    eprintln!("total: {:?}", t0.elapsed());
}
