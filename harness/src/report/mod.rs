//! Run reports: one [`Report`] per rehearsal, written as `report.json` (everything, for tools),
//! `report.md` (a short summary for people), `report.html` (the same with the plots inline, one
//! self-contained file) and `report.junit.xml` (one test case per expectation, for CI). Runs
//! that observed the chain also get their plots as SVG files beside the Markdown.
//!
//! The seed comes first everywhere, with the command that replays it.

mod charts;
mod doc;
mod evaluate;
mod evaluate_faults;
mod html;
mod junit;
mod markdown;
mod notes;
mod plot;
mod sections;
mod terminal;
mod text;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use charts::render_plots;
pub use evaluate::{ExpectationResult, RunFacts, evaluate};
pub use html::render_html;
pub use junit::render_junit;
pub use markdown::render_markdown;
pub use terminal::{run_summary, verify_summary};

use crate::chain::BuildTimings;
use crate::error::{Error, Result, io_error};
use crate::observe::Observations;
use crate::pg::PgInstall;
use crate::scenario::Scenario;
use crate::verdict::Verdict;
use crate::verify::VerifyReport;
use crate::workload::{LedgerCheck, WorkloadStats};

/// The scenario a run came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScenarioInfo {
    /// Its name.
    pub name: String,
    /// The scenario file, absolute.
    pub path: PathBuf,
    /// Its description, if any.
    pub description: Option<String>,
}

pub use crate::chain::IdlePrimary;

/// Everything one run observed and concluded. The executor fills it as the run goes, so a
/// run that stops early still reports what it got. The seed and the verdict come first, in
/// the JSON too.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The run seed; `pgrehearse run <scenario> --seed <seed>` replays the run.
    pub seed: u64,
    /// The merge of the expectations (and Unknown when the run failed).
    pub verdict: Verdict,
    /// The process exit code of the run: the verdict's (0 pass, 1 fail or unknown), or the
    /// error's when the run stopped early (2 usage or environment, 130 interrupted) — except
    /// that a failure the run had already proven keeps 1 whatever error followed, short of an
    /// interrupt. A teardown that failed after a passing verdict makes it the teardown error's
    /// code (see [`Report::record_cleanup_error`]). The process exits with this code.
    pub exit_code: i32,
    /// The scenario.
    pub scenario: ScenarioInfo,
    /// The run id (the run directory's name).
    pub run_id: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Version of pgrehearse that ran.
    pub tool_version: String,
    /// When the run started (UTC).
    pub started_at: DateTime<Utc>,
    /// When it ended (None while running).
    pub finished_at: Option<DateTime<Utc>>,
    /// Time zero of the run's timeline (UTC): fault times, sample times and the ledger's
    /// `sent_us` / `done_us` count from here, so they line up with the servers' logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline_zero: Option<DateTime<Utc>>,
    /// Where the nodes ran ("local", "docker").
    pub backend: String,
    /// The PostgreSQL installation used, with where it was found.
    pub postgres: Option<PgInstall>,
    /// Chain build phases (None: the chain was not built).
    pub chain: Option<BuildTimings>,
    /// Workload summary (None: no workload ran).
    pub workload: Option<WorkloadStats>,
    /// Time from the end of the workload until C had applied everything (the fence), if
    /// measured.
    pub catchup_ms: Option<u64>,
    /// The fence that C did not reach, when it did not.
    pub catchup_missed: Option<CatchupMissed>,
    /// Row-level comparisons (C vs A, maybe B vs A).
    pub verify: Vec<VerifyReport>,
    /// Ledger checks of acknowledged writes, per node.
    pub ledger: Vec<LedgerCheck>,
    /// Each expectation of the scenario, judged.
    pub expectations: Vec<ExpectationResult>,
    /// Why the run stopped early, if it did (passwords redacted).
    pub error: Option<String>,
    /// The run was interrupted while the workload or the faults ran (or before its
    /// observations were condensed): `observations` cover only part of it, so an expectation
    /// about the whole run that the rest could have broken is not judged a pass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_short: bool,
    /// Plain statements of PostgreSQL behaviour worth telling the user.
    pub notes: Vec<String>,
    /// Slot creation on B with an idle A, if the scenario rehearsed it.
    pub idle_primary: Option<IdlePrimary>,
    /// Lag and WAL over time, fault windows, the slot's fate, failover and RPO (None: the
    /// chain was not observed). Last in the JSON: the time series is long.
    pub observations: Option<Observations>,
    /// The exit code of the error that stopped the run (not in the JSON: `exit_code` is).
    #[serde(skip)]
    error_exit: Option<i32>,
    /// The exit code of a teardown that failed after the verdict (not in the JSON either).
    #[serde(skip)]
    cleanup_exit: Option<i32>,
}

impl Report {
    /// A report for a run of `scenario` with `seed`, started now.
    pub fn new(
        run_id: impl Into<String>,
        run_dir: impl Into<PathBuf>,
        scenario: &Scenario,
        seed: u64,
    ) -> Report {
        Report {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: run_id.into(),
            run_dir: run_dir.into(),
            scenario: ScenarioInfo {
                name: scenario.name.clone(),
                path: scenario.path.clone(),
                description: scenario.description.clone(),
            },
            seed,
            started_at: Utc::now(),
            finished_at: None,
            timeline_zero: None,
            backend: scenario.chain.backend.as_str().to_string(),
            postgres: None,
            chain: None,
            workload: None,
            catchup_ms: None,
            catchup_missed: None,
            verify: Vec::new(),
            ledger: Vec::new(),
            expectations: Vec::new(),
            verdict: Verdict::Unknown,
            exit_code: 1,
            error: None,
            cut_short: false,
            notes: Vec::new(),
            idle_primary: None,
            observations: None,
            error_exit: None,
            cleanup_exit: None,
        }
    }

    /// The command that replays this run. The backend is always named: the run may have
    /// overridden the scenario's with `--backend`.
    pub fn replay_command(&self) -> String {
        format!(
            "pgrehearse run {} --seed {} --backend {}",
            text::shell_quote(&self.scenario.path.to_string_lossy()),
            self.seed,
            self.backend
        )
    }

    /// Record why the run stopped early.
    pub fn record_error(&mut self, e: &Error) {
        self.error = Some(crate::secret::redact(&e.to_string()));
        self.error_exit = Some(e.exit_code());
    }

    /// Record that tearing the chain down failed once the run was over. A run that passed then
    /// exits with the teardown error's code (2 for an environment error); one that failed or
    /// ended unknown keeps 1: CI that retries environment errors must not retry away a real
    /// failure. Conclude the report again to apply it.
    pub fn record_cleanup_error(&mut self, e: &Error) {
        self.cleanup_exit = Some(e.exit_code());
        self.note(format!(
            "tearing the chain down failed after the run: {}",
            crate::secret::redact(&e.to_string())
        ));
    }

    /// Add a note unless it is already there.
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Close the report at `finished_at`: the verdict becomes the merge of the expectations
    /// (Unknown if the run stopped early or judged nothing), the exit code follows it (see
    /// [`Report::exit_code`]), and notes about what was observed (sequence drift, tables
    /// without a key, writes with an unknown outcome) are added.
    pub fn conclude(&mut self, finished_at: DateTime<Utc>) {
        self.finished_at = Some(finished_at);
        let mut verdict = Verdict::all(self.expectations.iter().map(|e| e.verdict));
        if self.error.is_some() || self.expectations.is_empty() {
            verdict = verdict.merge(Verdict::Unknown);
        }
        self.verdict = verdict;
        self.exit_code = exit_code(verdict, self.error_exit, self.cleanup_exit);
        for n in notes::observed(self) {
            self.note(n);
        }
    }
}

/// The exit code of a run with `verdict` that stopped on an error exiting `error` and whose
/// teardown failed with `cleanup`. An interrupt is always 130 (the shell's convention for a
/// stopped command); otherwise a failure the run proved stays 1: an environment error after it
/// (exit 2, which CI may retry) must not hide it. A teardown error only replaces a pass.
fn exit_code(verdict: Verdict, error: Option<i32>, cleanup: Option<i32>) -> i32 {
    const INTERRUPTED: i32 = 130;
    let code = match error {
        Some(INTERRUPTED) => INTERRUPTED,
        Some(_) if verdict == Verdict::Invalid => verdict.exit_code(),
        Some(e) => e,
        None => verdict.exit_code(),
    };
    match cleanup {
        Some(c) if code == 0 => c,
        _ => code,
    }
}

/// A catch-up fence C did not reach: the harness stopped waiting, or knew C never would.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatchupMissed {
    /// How long after the workload ended the harness stopped waiting.
    pub waited_ms: u64,
    /// When it stopped waiting (ms since the workload started).
    pub gave_up_at_ms: i64,
    /// C can never catch up (its slot on B is unusable), however long one waits.
    pub never: bool,
    /// Why, as the wait saw it (passwords redacted).
    pub reason: String,
}

impl CatchupMissed {
    /// Whether it settles a limit on catching up as failed: C can never catch up, or had not
    /// by `waited_ms`, already past `limit`.
    pub fn over(&self, waited_ms: u64, limit: std::time::Duration) -> bool {
        self.never || waited_ms >= limit.as_millis() as u64
    }
}

/// Where [`write_all`] put the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPaths {
    /// report.json
    pub json: PathBuf,
    /// report.md
    pub markdown: PathBuf,
    /// report.junit.xml
    pub junit: PathBuf,
    /// report.html
    pub html: PathBuf,
    /// The plots report.md embeds (lag-seconds.svg, lag-bytes.svg, wal.svg); empty when the
    /// run has no observations.
    pub plots: Vec<PathBuf>,
}

/// Write report.json, report.md, report.html and report.junit.xml into `dir`, and the plots
/// as SVG files when the run has observations. Each file is written beside its final name and
/// renamed, so a reader never sees half a report.
///
/// # Errors
/// Environment error naming the file that could not be written; internal error if the report
/// cannot be serialised.
pub fn write_all(dir: &Path, report: &Report) -> Result<ReportPaths> {
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| Error::internal("serialising the report").with_source(e))?;
    let mut paths = ReportPaths {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        junit: dir.join("report.junit.xml"),
        html: dir.join("report.html"),
        plots: Vec::new(),
    };
    // The plots first: report.md refers to them, so they exist by the time it does.
    let plots = render_plots(report);
    for (file, svg) in &plots {
        let path = dir.join(file);
        write_atomic(&path, svg)?;
        paths.plots.push(path);
    }
    write_atomic(&paths.json, &(json + "\n"))?;
    write_atomic(&paths.markdown, &render_markdown(report))?;
    write_atomic(&paths.html, &html::html_with(report, &plots))?;
    write_atomic(&paths.junit, &render_junit(report))?;
    Ok(paths)
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    crate::util::write_atomic(path, text.as_bytes())
        .map_err(|e| io_error("cannot write report", path, e))
}
