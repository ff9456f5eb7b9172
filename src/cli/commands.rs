//! One function per subcommand. Each returns the exit code or an error (mapped to 2 for usage and
//! environment problems, 1 otherwise).

use std::sync::Arc;

use harness::observe::ChainSnapshot;
use harness::run::{Attached, pick_run};
use harness::util::{fmt_bytes, fmt_duration};
use harness::{Error, Result};

use super::ui::{BarProgress, Ui};
use super::{BenchCommand, DownArgs, PgCommand, RunArgs, StatusArgs, VerifyArgs};

/// Wait for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn status(args: StatusArgs, ui: &Ui) -> Result<i32> {
    let run = pick_run(args.run.as_deref(), None)?;
    let attached = Attached::open(run)?;
    loop {
        let snap = attached.chain.snapshot().await;
        if args.json {
            ui.out(
                serde_json::to_string_pretty(&snap)
                    .map_err(|e| Error::internal("json").with_source(e))?,
            );
        } else {
            if args.watch {
                // Clear the screen between refreshes, like `watch`.
                print!("\x1b[2J\x1b[H");
            }
            ui.out(format!(
                "run {} ({})",
                attached.state.run_id,
                attached.run.path().display()
            ));
            ui.out(render_status(&snap));
        }
        if !args.watch {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = shutdown_signal() => break,
        }
    }
    attached.release();
    Ok(0)
}

fn lag_s(v: Option<f64>) -> String {
    match v {
        Some(s) => fmt_duration(std::time::Duration::from_secs_f64(s.max(0.0))),
        None => "idle".into(),
    }
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
            _ if !n.subscriptions.is_empty() => "target",
            _ => "primary",
        };
        let mut line = format!("{}  {role:<8} {}", n.name, n.endpoint);
        if let Some(l) = n.current_lsn {
            line.push_str(&format!("  wal {l}"));
        }
        if let (Some(r), Some(p)) = (n.receive_lsn, n.replay_lsn) {
            line.push_str(&format!("  received {r} replayed {p}"));
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
                w.sent_lsn
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
                w.replay_lsn
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
                lag_s(w.write_lag_s),
                lag_s(w.flush_lag_s),
                lag_s(w.replay_lag_s)
            ));
        }
        for sl in &n.slots {
            let mut l = format!(
                "     slot {:<16} {:<8} {} wal_status {} retains {}",
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
            if sl.conflicting == Some(true) {
                l.push_str(" CONFLICTING");
            }
            if let Some(r) = &sl.invalidation_reason {
                l.push_str(&format!(" INVALIDATED ({r})"));
            }
            out.push(l);
        }
        for sub in &n.subscriptions {
            out.push(format!(
                "     subscription {} {} worker {} received {} last message {}",
                sub.subname,
                if sub.enabled == Some(false) {
                    "DISABLED"
                } else {
                    "enabled"
                },
                sub.pid
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "none".into()),
                sub.received_lsn
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
                sub.last_msg_age_s
                    .map(|s| format!("{s:.1}s ago"))
                    .unwrap_or_else(|| "-".into())
            ));
        }
    }
    for h in &s.lags {
        out.push(format!(
            "lag {:<4} {:>10}  {}",
            h.hop,
            h.bytes.map(fmt_bytes).unwrap_or_else(|| "unknown".into()),
            h.seconds.map(|s| format!("{s:.3}s")).unwrap_or_default()
        ));
    }
    out.join("\n")
}

pub async fn down(args: DownArgs, ui: &Ui) -> Result<i32> {
    if args.all {
        let done = harness::run::down_all(None).await?;
        if done.is_empty() {
            ui.out("nothing to take down");
        }
        for id in done {
            ui.out(format!("took down {id}"));
        }
        return Ok(0);
    }
    let run = pick_run(args.run.as_deref(), None)?;
    let path = run.path().to_path_buf();
    let attached = Attached::open(run)?;
    attached.down().await?;
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
                loc.explicit = Some((d, "--pg-bin".into()));
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

pub async fn run(_args: RunArgs, _up: bool, _ui: &Ui) -> Result<i32> {
    let _ = BarProgress::new;
    let _: Option<Arc<()>> = None;
    Err(Error::internal("run: not wired yet"))
}

pub async fn verify(_args: VerifyArgs, _ui: &Ui) -> Result<i32> {
    Err(Error::internal("verify: not wired yet"))
}

pub async fn bench(_cmd: BenchCommand, _ui: &Ui) -> Result<i32> {
    Err(Error::internal("bench: not wired yet"))
}
