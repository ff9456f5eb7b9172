//! The executor: a scenario, run end to end in the order of the migration runbook.
//!
//! build the chain → seed A → B from a base backup → C's schema → subscription and initial copy
//! → workload on A (ledgered) → catch-up (fence) → verify C (and B) against A → ledger check →
//! expectations → report → tear down.
//!
//! The caller owns cancellation: it races [`Rehearsal::run`] against Ctrl-C and then always
//! calls [`Rehearsal::finish`], which stops every server and removes the data directories.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Progress, RunDir, RunState, forget_secrets};
use crate::backend::{Backend, BackendKind, Credentials, LocalBackend};
use crate::chain::{Chain, load_seed, preflight_notes};
use crate::error::{Error, Result, ResultExt};
use crate::node::Node;
use crate::os::ServerUser;
use crate::pg::{Locate, PgInstall};
use crate::report::{self, Report, ReportPaths, RunFacts};
use crate::scenario::Scenario;
use crate::verify::{self, Side, VerifyOptions};
use crate::workload::{self, Target, WorkloadConfig};

/// Choices made on the command line rather than in the scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Explicit PostgreSQL bin directory (`--pg-bin` / `PGREHEARSE_PG_BIN`).
    pub pg_bin: Option<PathBuf>,
    /// Where run directories go.
    pub runs_dir: Option<PathBuf>,
}

/// One rehearsal in progress.
pub struct Rehearsal {
    /// The scenario being run.
    pub scenario: Scenario,
    /// The run's seed (printed first, recorded in the report).
    pub seed: u64,
    /// The run directory.
    pub run: RunDir,
    user: ServerUser,
    pg: PgInstall,
    creds: Credentials,
    backend: Arc<LocalBackend>,
    progress: Arc<dyn Progress>,
    report: Mutex<Report>,
    chain_up: Mutex<bool>,
}

impl Rehearsal {
    /// Resolve everything a run needs before starting any server: the seed, the binaries, the
    /// server user, the run directory.
    ///
    /// # Errors
    /// Environment errors (no usable PostgreSQL, cannot create the run directory), usage errors
    /// (unsupported backend).
    pub fn prepare(
        scenario: Scenario,
        opts: RunOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<Rehearsal> {
        let seed = opts.seed.unwrap_or_else(|| scenario.seed_or_random());
        if scenario.chain.backend != BackendKind::Local {
            return Err(Error::usage(format!(
                "{}: the {} backend is not available in this build yet; use backend = \"local\"",
                scenario.path.display(),
                scenario.chain.backend.as_str()
            )));
        }
        let explicit = match (&opts.pg_bin, &scenario.chain.pg_bin) {
            (Some(d), _) => Some((d.clone(), "--pg-bin".to_string())),
            (None, Some(d)) => Some((d.clone(), format!("pg_bin in {}", scenario.path.display()))),
            (None, None) => None,
        };
        let mut locate = Locate::from_env(Some(scenario.chain.pg_version));
        if explicit.is_some() {
            locate.explicit = explicit;
        }
        let pg = locate.find()?;
        let user = ServerUser::resolve()?;
        let run = RunDir::create(opts.runs_dir.as_deref(), &scenario.name, &user)?;
        let creds = Credentials::generate();
        let backend = Arc::new(LocalBackend::new(
            pg.clone(),
            user.clone(),
            run.clone(),
            creds.clone(),
        )?);
        let mut report = Report::new(run.id(), run.path(), &scenario, seed);
        report.postgres = Some(pg.clone());
        Ok(Rehearsal {
            scenario,
            seed,
            run,
            user,
            pg,
            creds,
            backend,
            progress,
            report: Mutex::new(report),
            chain_up: Mutex::new(false),
        })
    }

    /// The backend (for tests that inject faults by hand).
    pub fn backend(&self) -> &LocalBackend {
        &self.backend
    }

    fn save_state(&self, detached: bool, with_secrets: bool) -> Result<()> {
        let state = RunState {
            run_id: self.run.id().to_string(),
            scenario: self.scenario.name.clone(),
            owner_pid: std::process::id(),
            detached,
            backend: BackendKind::Local,
            pg: Some(self.pg.clone()),
            database: self.scenario.chain.database.clone(),
            subscription: crate::chain::ChainSpec::default().subscription,
            physical_slot: self.scenario.chain_spec().physical_slot,
            started_at: self.report.lock().expect("report").started_at.to_rfc3339(),
        };
        state.save(&self.run, with_secrets.then_some(&self.creds), &self.user)
    }

    fn workload_config(&self) -> WorkloadConfig {
        let w = &self.scenario.workload;
        WorkloadConfig {
            seed: self.scenario.workload_seed(self.seed),
            connections: w.connections,
            rate: w.rate,
            duration: w.duration,
            tables: w.tables.clone(),
            mix: w.mix,
            database: self.scenario.chain.database.clone(),
            seeded_rows: w.initial_rows,
            ..WorkloadConfig::default()
        }
    }

    /// Build the chain: A and C, A's data, B, C's schema, the subscription and initial copy.
    ///
    /// # Errors
    /// The first phase that failed, naming the node.
    pub async fn build(&self) -> Result<Chain> {
        self.progress.phase("building the chain (a → b → c)");
        let spec = self.scenario.chain_spec();
        let db = spec.database.clone();
        let data = self.scenario.data.clone();
        let wl = self
            .scenario
            .workload
            .enabled
            .then(|| self.workload_config());
        let ledger_path = self.run.file("ledger.jsonl");
        self.save_state(false, true)?;
        let t = Instant::now();
        let chain = Chain::build(
            self.backend.as_ref(),
            spec,
            self.creds.clone(),
            |a: Node| async move {
                if let Some(d) = &data {
                    load_seed(&a, &db, d).await?;
                }
                if let Some(cfg) = &wl {
                    let c = a.connect(&db).await?;
                    workload::create_schema(&c, &cfg.tables)
                        .await
                        .step("creating the workload tables on a")?;
                    let seeded = workload::seed_initial(&c, &cfg.tables, cfg.seeded_rows, cfg.seed)
                        .await
                        .step("writing the initial rows on a")?;
                    // Initial rows travel by base backup and initial copy; the ledger vouches for
                    // them like for any acknowledged write.
                    workload::append_ledger(&ledger_path, &seeded)?;
                }
                Ok(())
            },
        )
        .await;
        *self.chain_up.lock().expect("chain flag") = true;
        self.save_state(false, true)?;
        let chain = chain?;
        tracing::info!(
            "chain up in {} (a → b → c, {})",
            crate::util::fmt_duration(t.elapsed()),
            chain.replicator.describe()
        );
        self.report.lock().expect("report").chain = Some(chain.timings.clone());
        if let Ok(notes) = preflight_notes(&chain.a, &chain.spec.database).await {
            let mut r = self.report.lock().expect("report");
            for n in notes {
                r.note(n);
            }
        }
        Ok(chain)
    }

    /// Build the chain and leave it running for `pgrehearse up`.
    ///
    /// # Errors
    /// As [`Rehearsal::build`].
    pub async fn up(&self) -> Result<Chain> {
        let chain = self.build().await?;
        self.save_state(true, true)?;
        self.backend.detach();
        self.progress.done();
        Ok(chain)
    }

    /// The whole rehearsal. Returns the report (also written to the run directory); the verdict
    /// inside decides the exit code. Errors after the run started are recorded in the report
    /// too.
    ///
    /// # Errors
    /// Whatever stopped the run; the report with the error is still written.
    pub async fn run(&self) -> Result<(Report, ReportPaths)> {
        let res = self.run_inner().await;
        if let Err(e) = &res {
            self.report.lock().expect("report").record_error(e);
        }
        self.progress.done();
        let paths = self.write_report()?;
        res?;
        let report = self.report.lock().expect("report").clone();
        Ok((report, paths))
    }

    /// Write the report as it stands (also used after an interrupt).
    ///
    /// # Errors
    /// Environment error when the files cannot be written.
    pub fn write_report(&self) -> Result<ReportPaths> {
        let mut r = self.report.lock().expect("report");
        let facts_catchup = r.catchup_ms.map(Duration::from_millis);
        let expectations = {
            let facts = RunFacts {
                catchup: facts_catchup,
                verify: &r.verify,
                ledger: &r.ledger,
                observations: r.observations.as_ref(),
                idle_primary: r.idle_primary.as_ref(),
            };
            report::evaluate(&self.scenario.expect, &facts)
        };
        r.expectations = expectations;
        r.conclude(chrono::Utc::now());
        report::write_all(self.run.path(), &r)
    }

    async fn run_inner(&self) -> Result<()> {
        let chain = self.build().await?;
        let db = chain.spec.database.clone();
        let ledger_path = self.run.file("ledger.jsonl");
        let workload_ran = if self.scenario.workload.enabled {
            let cfg = self.workload_config();
            self.progress.phase("workload on a");
            let (_target_tx, target_rx) = watch::channel(Target {
                node: "a".into(),
                conn: chain.a.admin().with_db(&db),
            });
            let (_stop_tx, stop_rx) = watch::channel(false);
            let live = Arc::new(workload::Progress::default());
            let ticker = {
                let live = live.clone();
                let progress = self.progress.clone();
                let total = cfg.duration.as_secs().max(1);
                tokio::spawn(async move {
                    let start = Instant::now();
                    let mut tick = tokio::time::interval(Duration::from_millis(500));
                    loop {
                        tick.tick().await;
                        let secs = start.elapsed().as_secs().min(total);
                        progress.measured("workload on a (seconds)", secs, total);
                        let rate = live.ok() as f64 / start.elapsed().as_secs_f64().max(0.001);
                        progress.note(&format!(
                            "{} ok, {} failed, {} unknown, {rate:.0} ops/s",
                            live.ok(),
                            live.failed(),
                            live.unknown()
                        ));
                    }
                })
            };
            let stats = workload::run(&cfg, target_rx, &ledger_path, stop_rx, Some(live)).await;
            ticker.abort();
            let stats = stats.step("running the workload")?;
            self.report.lock().expect("report").workload = Some(stats);
            true
        } else {
            false
        };

        self.progress.phase("waiting for c to catch up (fence)");
        let catchup = chain
            .fence()
            .await
            .step("waiting for c to catch up after the workload")?;
        tracing::info!(
            "c caught up {} after the workload ended",
            crate::util::fmt_duration(catchup)
        );
        self.report.lock().expect("report").catchup_ms = Some(catchup.as_millis() as u64);

        self.progress
            .phase("verifying c and b against a, row by row");
        let opts = VerifyOptions::default();
        let (sa, sb, sc) = (
            Side::of(&chain.a, &db),
            Side::of(&chain.b, &db),
            Side::of(&chain.c, &db),
        );
        let (ca, ba) = tokio::join!(
            verify::compare(&sa, &sc, &opts),
            verify::compare(&sa, &sb, &opts)
        );
        let (ca, ba) = (
            ca.step("verifying c against a")?,
            ba.step("verifying b against a")?,
        );
        self.report.lock().expect("report").verify = vec![ca, ba];

        if workload_ran {
            self.progress
                .phase("checking the ledger of acknowledged writes");
            let entries = workload::read_ledger(&ledger_path)?;
            let cap = opts.max_keys_listed;
            let (cc, ca) = (chain.c.admin().with_db(&db), chain.a.admin().with_db(&db));
            let (lc, la) = tokio::join!(
                workload::check_ledger(&entries, "c", &cc, cap),
                workload::check_ledger(&entries, "a", &ca, cap)
            );
            self.report.lock().expect("report").ledger = vec![
                lc.step("checking the ledger on c")?,
                la.step("checking the ledger on a")?,
            ];
        }
        Ok(())
    }

    /// Stop every server and remove data directories (unless `keep`, which leaves the chain
    /// running for `pgrehearse down`). Always call this, whatever `run` returned.
    ///
    /// # Errors
    /// The first failure while stopping or removing.
    pub async fn finish(&self, keep: bool) -> Result<()> {
        if keep {
            self.save_state(true, true)?;
            self.backend.detach();
            return Ok(());
        }
        let res = self.backend.teardown(false).await;
        forget_secrets(&self.run);
        if *self.chain_up.lock().expect("chain flag") {
            let _ = self.save_state(false, false);
        }
        res
    }
}
