//! Command-line definitions and dispatch. Each command is a few lines over the library.

mod bench;
mod commands;
pub mod ui;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ui::say;

/// Rehearse a PostgreSQL migration: A (primary) → B (hot standby) → C (logical target),
/// under a workload, with row-level verification.
#[derive(Parser, Debug)]
#[command(name = "pgrehearse", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and results.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the chain, run the workload, verify C, write the report, tear everything down.
    Run(RunArgs),
    /// Build the chain and leave it running; prints connection strings for A, B and C.
    Up(UpArgs),
    /// Show lag, slots and the subscription of a running chain.
    Status(StatusArgs),
    /// Verify C against A row by row on a running chain.
    Verify(VerifyArgs),
    /// Stop a running chain and remove its data.
    Down(DownArgs),
    /// PostgreSQL binaries: find them, or fetch pinned ones.
    #[command(subcommand)]
    Pg(PgCommand),
    /// Benchmarks for capacity planning (chain-up time, verify cost, workload throughput,
    /// sampler cost and lag resolution).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// What `run` and `up` share: the scenario and where and with what the chain is built.
#[derive(Args, Debug, Clone)]
pub struct ChainArgs {
    /// Scenario file (TOML), e.g. scenarios/smoke.toml.
    pub scenario: PathBuf,
    /// Seed for every random choice (overrides the scenario's); printed first so a run can be
    /// replayed. At most 2^53 - 1.
    #[arg(long, value_parser = parse_seed)]
    pub seed: Option<u64>,
    /// Directory with PostgreSQL binaries (postgres, initdb, pg_basebackup, ...); local
    /// backend only (the docker backend uses the image's binaries).
    #[arg(long, env = "PGREHEARSE_PG_BIN", value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// Where run directories go (default: $PGREHEARSE_HOME/runs).
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Where the nodes run, overriding the scenario: local processes or Docker containers.
    #[arg(long, value_parser = parse_backend, value_name = "local|docker")]
    pub backend: Option<harness::backend::BackendKind>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Leave servers and data in place after the run (`pgrehearse down` removes them).
    #[arg(long)]
    pub keep: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Print the run and the nodes' connection strings as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Run id or directory (default: the newest running chain).
    #[arg(long)]
    pub run: Option<String>,
    /// Runs folder to look in (default: $PGREHEARSE_HOME/runs), as given to `up --runs-dir`.
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Output JSON.
    #[arg(long)]
    pub json: bool,
    /// Refresh until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Refresh interval for --watch.
    #[arg(long, default_value = "1s", value_parser = humantime_parse)]
    pub interval: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Run id or directory (default: the newest running chain).
    #[arg(long)]
    pub run: Option<String>,
    /// Runs folder to look in (default: $PGREHEARSE_HOME/runs), as given to `up --runs-dir`.
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Output JSON.
    #[arg(long)]
    pub json: bool,
    /// Do not write a fence on the primary first (compare as things are now).
    #[arg(long)]
    pub no_fence: bool,
    /// Also compare B with the reference.
    #[arg(long)]
    pub with_standby: bool,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Run id or directory (default: the newest running chain).
    #[arg(long)]
    pub run: Option<String>,
    /// Every run whose servers or containers are still up and that no running pgrehearse owns
    /// (left by `up`, `run --keep` or a killed harness); rehearsals still running are skipped.
    #[arg(long, conflicts_with = "run")]
    pub all: bool,
    /// With --all, also remove containers that pgrehearse on another host made (a Docker
    /// engine shared between machines): whether their harness still runs cannot be told here.
    #[arg(long, requires = "all")]
    pub any_host: bool,
    /// Runs folder to look in (default: $PGREHEARSE_HOME/runs), as given to `up --runs-dir`; with
    /// --all, only runs in it.
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PgCommand {
    /// Fetch the pinned build of MAJOR into the cache (no-op when cached).
    Install {
        /// Major version: 17 (x86_64 and aarch64), or 16 or 18 (x86_64 only).
        #[arg(default_value_t = 17)]
        major: u32,
    },
    /// Show which binaries a run would use.
    Which {
        /// Major version.
        #[arg(default_value_t = 17)]
        major: u32,
        /// Explicit directory to check instead of searching.
        #[arg(long, env = "PGREHEARSE_PG_BIN", value_name = "DIR")]
        pg_bin: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time building an empty chain, N times.
    ChainUp {
        /// How many chains to build, one after another.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Where the nodes run.
        #[arg(long, value_parser = parse_backend, default_value = "local")]
        backend: harness::backend::BackendKind,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify time for a table of ROWS rows with no differences, against
    /// `SELECT sum(hashtext(t::text))` on both sides.
    Verify {
        /// Rows in the compared table.
        #[arg(long, default_value_t = 2_000_000)]
        rows: u64,
        /// Timed runs of each (verify and the baseline, alternating).
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What observing costs A (its CPU with and without the sampler and heartbeat a rehearsal
    /// runs) and the end-to-end lag resolution achieved under a steady load.
    Sampler {
        /// Time without observing, and time with it, each in all: split into 3 interleaved
        /// idle/observed pairs. Also how long the load runs for the lag readings.
        #[arg(long, default_value = "20s", value_parser = humantime_parse)]
        window: std::time::Duration,
        /// The sampling period measured.
        #[arg(long, default_value = "250ms", value_parser = humantime_parse)]
        every: std::time::Duration,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Built-in workload throughput against pgbench's simple-update on the same chain: commits,
    /// rows written and WAL per second of each; the target applies per row.
    Workload {
        /// Client connections, for the workload and for pgbench alike.
        #[arg(long, default_value_t = 4)]
        connections: u32,
        /// How long each run writes (whole seconds: pgbench -T).
        #[arg(long, default_value = "20s", value_parser = humantime_parse)]
        duration: std::time::Duration,
        /// Runs of each, alternating which goes first (pgbench, workload, workload, pgbench,
        /// …); the result is their medians.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_backend(s: &str) -> Result<harness::backend::BackendKind, String> {
    match s {
        "local" => Ok(harness::backend::BackendKind::Local),
        "docker" => Ok(harness::backend::BackendKind::Docker),
        _ => Err(format!("unknown backend {s:?}: use local or docker")),
    }
}

/// A run seed: what the scenario file takes, so that report.json records it exactly.
fn parse_seed(s: &str) -> Result<u64, String> {
    let seed: u64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a non-negative integer"))?;
    match harness::scenario::seed_too_large(seed) {
        Some(why) => Err(why),
        None => Ok(seed),
    }
}

/// A period or window for a benchmark: above zero (a zero period spins) and at most a day.
fn humantime_parse(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() || d > std::time::Duration::from_secs(24 * 3600) {
        return Err("must be above zero and at most a day (e.g. 250ms, 20s, 5m)".into());
    }
    Ok(d)
}

/// Run the command; returns the process exit code.
pub async fn dispatch(cli: Cli, ui: ui::Ui) -> i32 {
    let res = match cli.command {
        Command::Run(a) => {
            let then = commands::Then::Rehearse { keep: a.keep };
            commands::run(a.chain, then, a.json, &ui).await
        }
        Command::Up(a) => commands::run(a.chain, commands::Then::LeaveUp, a.json, &ui).await,
        Command::Status(a) => commands::status(a, &ui).await,
        Command::Verify(a) => commands::verify(a, &ui).await,
        Command::Down(a) => commands::down(a, &ui).await,
        Command::Pg(c) => commands::pg(c, &ui),
        Command::Bench(c) => bench::bench(c, &ui).await,
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            report_error(&e);
            e.exit_code()
        }
    }
}

fn report_error(e: &harness::Error) {
    say(format!("error: {e}"));
    if let Some(d) = e.detail() {
        for line in harness::secret::redact(d).lines() {
            say(format!("  {line}"));
        }
    }
    if let Some(h) = e.hint() {
        say(format!("hint: {h}"));
    }
}
