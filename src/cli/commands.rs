//! One function per subcommand. Each returns the exit code or an error (mapped to 2 for usage and
//! environment problems, 1 otherwise).

use std::sync::Arc;

use harness::error::ResultExt;
use harness::run::{Attached, Purpose, Rehearsal, RunOptions, pick_run, pick_run_for};
use harness::scenario::Scenario;
use harness::util::fmt_duration;
use harness::verify::{self, VerifyOptions};
use harness::{Error, Result};

use super::ui::{BarProgress, Ui, say};
use super::{ChainArgs, DownArgs, PgCommand, StatusArgs, VerifyArgs};

/// Wait for Ctrl-C, SIGTERM or a hangup: those of them this process was not started ignoring.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let ignored = inherited_ignored();
    // SIGHUP too: a closed terminal or a dropped SSH session must not leave servers running
    // (they run in their own process group and would not get it) — unless pgrehearse was
    // started under `nohup`, which asks for the very opposite. Likewise Ctrl-C, which a shell
    // without job control has its background jobs ignore.
    let listen = |kind: SignalKind, ignore: bool| (!ignore).then(|| signal(kind).ok()).flatten();
    let mut int = listen(SignalKind::interrupt(), ignored.interrupt);
    let mut hup = listen(SignalKind::hangup(), ignored.hangup);
    let mut term = listen(SignalKind::terminate(), false);
    async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        _ = recv(&mut int) => {}
        _ = recv(&mut term) => {}
        _ = recv(&mut hup) => {}
    }
}

/// Which of Ctrl-C and a hangup this process was started ignoring.
#[derive(Clone, Copy)]
struct Ignored {
    interrupt: bool,
    hangup: bool,
}

/// Read once, before the first listener is installed: a listener replaces the disposition, and
/// what the process was started with could not be told any more.
fn inherited_ignored() -> Ignored {
    use nix::sys::signal::Signal;
    static IGNORED: std::sync::OnceLock<Ignored> = std::sync::OnceLock::new();
    *IGNORED.get_or_init(|| Ignored {
        interrupt: harness::os::ignores_signal(Signal::SIGINT),
        hangup: harness::os::ignores_signal(Signal::SIGHUP),
    })
}

pub async fn status(args: StatusArgs, ui: &Ui) -> Result<i32> {
    let run = pick_run(args.run.as_deref(), args.runs_dir.as_deref()).await?;
    let attached = Attached::open(run).await?;
    // One signal listener for the whole command, polled from the first snapshot on: a Ctrl-C or
    // SIGTERM that arrives while a snapshot is being taken is not lost.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let writer = attached.state.heartbeat_writer();
        let snap = tokio::select! {
            snap = attached.chain.snapshot(&writer) => snap,
            _ = &mut shutdown => break,
        };
        if args.json {
            // Watching: one compact document per line (JSON Lines), for tools reading a stream.
            let json = if args.watch {
                serde_json::to_string(&snap)
            } else {
                serde_json::to_string_pretty(&snap)
            };
            ui.out(json.map_err(|e| Error::internal("json").with_source(e))?);
        } else {
            if args.watch {
                ui.clear_screen();
            }
            ui.out(format!(
                "run {} ({})",
                attached.state.run_id,
                attached.run.path().display()
            ));
            ui.out(harness::observe::render_status(&snap));
        }
        if !args.watch || ui.stdout_closed() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = &mut shutdown => break,
        }
    }
    attached.release();
    Ok(0)
}

pub async fn down(args: DownArgs, ui: &Ui) -> Result<i32> {
    if args.all {
        let done = harness::run::down_all(args.runs_dir.as_deref(), args.any_host).await?;
        if done.is_empty() {
            ui.out("nothing to take down");
        }
        for id in done {
            ui.out(format!("took down {id}"));
        }
        return Ok(0);
    }
    let run = pick_run_for(
        Purpose::TakeDown,
        args.run.as_deref(),
        args.runs_dir.as_deref(),
    )
    .await?;
    let path = run.path().to_path_buf();
    harness::run::down_run(run).await?;
    ui.out(format!(
        "stopped and removed the chain of {} (logs and reports kept there)",
        path.display()
    ));
    Ok(0)
}

pub fn pg(cmd: PgCommand, ui: &Ui) -> Result<i32> {
    match cmd {
        PgCommand::Install { major } => {
            let inst = harness::pg::install_pinned(major)?;
            ui.out(format!(
                "PostgreSQL {} at {}",
                inst.version,
                inst.bin_dir.display()
            ));
        }
        PgCommand::Which { major, pg_bin } => {
            let mut loc = harness::pg::Locate::from_env(Some(major));
            loc.allow_fetch = false;
            if let Some(d) = pg_bin {
                let source = harness::pg::explicit_source(&d).to_string();
                loc.explicit = Some((d, source));
            }
            let inst = loc.find()?;
            ui.out(format!(
                "PostgreSQL {} at {} ({})",
                inst.version,
                inst.bin_dir.display(),
                inst.source
            ));
        }
    }
    Ok(0)
}

/// What `run` and `up` do once the chain is built.
pub enum Then {
    /// `run`: the workload, faults, verification, report; `keep`: leave the chain up after.
    Rehearse { keep: bool },
    /// `up`: leave the chain running.
    LeaveUp,
}

/// `run` and `up`.
pub async fn run(args: ChainArgs, then: Then, json: bool, ui: &Ui) -> Result<i32> {
    let keep = match then {
        Then::Rehearse { keep } => keep,
        Then::LeaveUp => false,
    };
    let up = matches!(then, Then::LeaveUp);
    let scenario = Scenario::load(&args.scenario)?;
    // The seed comes first, before anything can fail: a run is only replayable if its seed is
    // known.
    let seed = args.seed.unwrap_or_else(|| scenario.seed_or_random());
    let backend_flag = args
        .backend
        .map(|b| format!(" --backend {}", b.as_str()))
        .unwrap_or_default();
    say(format!(
        "pgrehearse: scenario {} · seed {seed} (replay: pgrehearse run {} --seed {seed}{backend_flag})",
        scenario.name,
        args.scenario.display(),
    ));
    let opts = RunOptions {
        seed: Some(seed),
        pg_bin: args.pg_bin.clone(),
        runs_dir: args.runs_dir.clone(),
        backend: args.backend,
        build_only: up,
    };
    let progress: Arc<dyn harness::run::Progress> = if json {
        Arc::new(harness::run::NoProgress)
    } else {
        BarProgress::new(ui)
    };
    // status/verify/down look in the default runs folder: a run elsewhere needs the same flag.
    let runs_dir_flag = args
        .runs_dir
        .as_ref()
        .map(|d| format!(" --runs-dir {}", d.display()))
        .unwrap_or_default();
    // Under the signal handler already: an interrupt while preparing (the docker backend
    // creates the run's network then) also cleans up.
    let r = tokio::select! {
        r = Rehearsal::prepare(scenario, opts, progress) => r?,
        _ = shutdown_signal() => return Err(Error::interrupted()),
    };
    say(format!(
        "pgrehearse: run directory {}",
        r.run.path().display()
    ));

    if up {
        let res = tokio::select! {
            res = r.up() => res,
            _ = shutdown_signal() => Err(Error::interrupted()),
        };
        return match res {
            Ok(chain) => {
                print_up(ui, &r, &chain, &runs_dir_flag, json)?;
                Ok(0)
            }
            Err(e) => match finish_listening(&r, false).await {
                Some(_) => Err(e),
                None => Err(forced(r).also(&e)),
            },
        };
    }

    let res = tokio::select! {
        res = r.run() => res,
        _ = shutdown_signal() => Err(Error::interrupted()),
    };
    let interrupted = matches!(&res, Err(e) if e.kind() == harness::ErrorKind::Interrupted);
    if keep && !r.chain_built() {
        say("pgrehearse: --keep: the chain was not fully built, so it is removed all the same");
    }
    let keep = keep && r.chain_built();
    if interrupted {
        // The run did not get to record it: the report says the run was cut short, not PASS.
        r.record_error(&Error::interrupted());
        say(if keep {
            "pgrehearse: interrupted; healing the faults in force and keeping the chain (--keep)"
        } else {
            "pgrehearse: interrupted; stopping servers and removing their data"
        });
        let _ = r.write_report();
    }
    let Some(fin) = finish_listening(&r, keep).await else {
        // A rehearsal that had finished keeps its verdict: a proven failure still exits 1, and
        // report.json is rewritten to say the teardown was cut short, with the same code.
        let code = res
            .is_ok()
            .then(|| r.record_cleanup_error(&Error::interrupted()));
        let e = forced(r);
        return match code {
            Some(code) if code != e.exit_code() => {
                super::report_error(&e);
                Ok(code)
            }
            _ => Err(e),
        };
    };
    if r.kept() {
        say(format!(
            "pgrehearse: --keep: the chain is still running; `pgrehearse status{runs_dir_flag}` / `pgrehearse down --run {}{runs_dir_flag}`",
            r.run.id()
        ));
    }
    let (report, paths) = match res {
        Ok(x) => x,
        Err(e) => {
            if let Err(f) = fin {
                say(format!("pgrehearse: cleanup also failed: {f}"));
            }
            if r.report_written() {
                say(format!(
                    "pgrehearse: report (with the error) in {}",
                    r.run.path().display()
                ));
            }
            // A failure proven before the error keeps exit 1, as report.json says.
            let code = r.exit_code();
            if code != e.exit_code() {
                super::report_error(&e);
                return Ok(code);
            }
            return Err(e);
        }
    };
    if json {
        ui.out(to_json(&report)?);
    } else {
        ui.out(harness::report::run_summary(&report));
        ui.out(format!(
            "report: {} (and report.html, report.json, report.junit.xml beside it)",
            paths.markdown.display()
        ));
    }
    if let Err(f) = fin {
        // The verdict stands as the reports say it; the report's exit code now counts the
        // teardown too. A failed rehearsal keeps exit 1: CI that retries environment errors (2)
        // must not retry away a real failure.
        let code = r.record_cleanup_error(&f);
        if code != f.exit_code() {
            say(format!("pgrehearse: cleanup also failed: {f}"));
            return Ok(code);
        }
        return Err(f);
    }
    Ok(report.exit_code)
}

/// `r.finish(keep)`, listening for signals meanwhile: a teardown can take a while, and a Ctrl-C
/// then must not go unheard. The first says what is going on; at the second this stops waiting
/// for the teardown (None), and the caller forces it ([`forced`]).
async fn finish_listening(r: &Rehearsal, keep: bool) -> Option<Result<()>> {
    let what = if keep && r.chain_built() {
        "healing the faults in force before keeping the chain"
    } else {
        "stopping the servers and removing their data"
    };
    let fin = r.finish(keep);
    tokio::pin!(fin);
    tokio::select! {
        res = &mut fin => return Some(res),
        _ = shutdown_signal() => {}
    }
    say(format!(
        "pgrehearse: still cleaning up ({what}); press Ctrl-C again to force"
    ));
    tokio::select! {
        res = &mut fin => Some(res),
        _ = shutdown_signal() => None,
    }
}

/// A cleanup cut short by a second signal: dropping the rehearsal kills whatever of it still
/// runs (SIGKILL: no graceful stop, no healing, nothing kept) and removes what it can. Says
/// what is left, if anything.
fn forced(r: Rehearsal) -> Error {
    say("pgrehearse: forced: killing what still runs and removing what can be removed");
    let run = r.run.clone();
    let report = r.report_written();
    drop(r);
    if report {
        say(format!("pgrehearse: report in {}", run.path().display()));
    }
    // Containers are removed by the drop itself, or said there to be left; local servers and
    // folders are looked for.
    let nodes = harness::backend::local::recorded_nodes(&run);
    let left = nodes
        .as_ref()
        .map_or(true, |n| n.iter().any(|n| n.pid > 0 || n.data_dir.exists()));
    if left {
        say(format!(
            "pgrehearse: some of run {} is left behind; `pgrehearse down --run {}` removes it",
            run.id(),
            run.path().display()
        ));
    } else if nodes.is_ok_and(|n| !n.is_empty()) {
        harness::run::forget_secrets(&run);
    }
    Error::interrupted()
}

/// `runs_dir_flag`: ` --runs-dir DIR` when the run is not in the default runs folder, else empty.
fn print_up(
    ui: &Ui,
    r: &Rehearsal,
    chain: &harness::chain::Chain,
    runs_dir_flag: &str,
    json: bool,
) -> Result<()> {
    let nodes = [
        (&chain.a, "primary"),
        (&chain.b, "hot standby of a"),
        (&chain.c, "target, subscribed to b"),
    ];
    if json {
        let conn = |n: &harness::node::Node| n.admin().with_db(&chain.spec.database).display();
        let doc = serde_json::json!({
            "run": r.run.id(),
            "run_dir": r.run.path(),
            "database": chain.spec.database,
            "nodes": nodes
                .iter()
                .map(|(n, role)| serde_json::json!({
                    "name": n.name(),
                    "role": role,
                    "conninfo": conn(n),
                }))
                .collect::<Vec<_>>(),
            "passfile": r.run.passfile(),
        });
        ui.out(to_json(&doc)?);
        return Ok(());
    }
    ui.out(format!("chain up (run {}):", r.run.id()));
    for (n, what) in nodes {
        ui.out(format!(
            "  {} ({what}):  psql \"{}\"",
            n.name(),
            n.admin().with_db(&chain.spec.database).display()
        ));
    }
    ui.out(format!(
        "passwords (generated for this run): export PGPASSFILE={}",
        r.run.passfile().display()
    ));
    let f = runs_dir_flag;
    ui.out(format!(
        "next: pgrehearse status{f} · pgrehearse verify{f} · pgrehearse down{f}"
    ));
    Ok(())
}

/// A few lines for the terminal; the report files carry everything.
pub async fn verify(args: VerifyArgs, ui: &Ui) -> Result<i32> {
    let run = pick_run_for(
        Purpose::Verify,
        args.run.as_deref(),
        args.runs_dir.as_deref(),
    )
    .await?;
    tracing::info!("verifying run {} ({})", run.id(), run.path().display());
    let attached = Attached::open(run).await?;
    let chain = &attached.chain;
    let res = async {
        let mut compared = vec![chain.primary(), &chain.c];
        if args.with_standby {
            compared.push(&chain.b);
        }
        attached.require_answering(&compared).await?;
        if !args.no_fence {
            let d = chain
                .fence()
                .await
                .step("waiting for c to catch up before verifying (use --no-fence to skip)")?;
            tracing::info!(
                "c caught up with {} in {}",
                chain.primary().name(),
                fmt_duration(d)
            );
        }
        verify::compare_chain(chain, args.with_standby, &VerifyOptions::default()).await
    }
    .await;
    attached.release();
    let reports = res?;
    let verdict = harness::Verdict::all(reports.iter().map(|r| r.verdict));
    if args.json {
        ui.out(to_json(&reports)?);
    } else {
        for v in &reports {
            ui.out(harness::report::verify_summary(v));
        }
    }
    Ok(verdict.exit_code())
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| Error::internal("json").with_source(e))
}
