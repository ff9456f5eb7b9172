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
use tokio_util::task::AbortOnDropHandle;

use super::{Progress, RunDir, RunState, forget_secrets, scrub_logs};
use crate::backend::{Backend, BackendKind, Credentials, LocalBackend};
use crate::chain::{Bypass, Chain, load_seed, logical_slot_dead, preflight_notes};
use crate::error::{Error, Result, ResultExt};
use crate::faults::{FaultEnv, Timeline};
use crate::node::Node;
use crate::observe::{Heartbeat, Sample, Sampler, SamplerConfig};
use crate::os::ServerUser;
use crate::pg::{KnownSettings, Locate, PgInstall};
use crate::report::{self, Report, ReportPaths, RunFacts};
use crate::scenario::Scenario;
use crate::verify::{self, VerifyOptions};
use crate::workload::{self, Target, WorkloadConfig};

/// Refuse a scheduled link fault that its hop's link cannot do (`can`), naming its line, before
/// the workload starts rather than at its time. On the local backend every hop's link is a
/// harness TCP proxy, so this runs before anything starts; on the docker backend once the chain
/// is up, when each hop's link is known.
fn link_faults_can(
    scenario: &Scenario,
    backend: BackendKind,
    can: impl Fn(crate::faults::Hop, &crate::faults::LinkState) -> Result<()>,
) -> Result<()> {
    for f in &scenario.faults {
        let Some((hop, state)) = crate::faults::link_state(&f.kind) else {
            continue;
        };
        can(hop, &state).map_err(|e| {
            let file = scenario.path.display();
            let at = f.line.map_or(file.to_string(), |l| format!("{file}:{l}"));
            let on = backend.as_str();
            e.context(format!("{at}: {} on the {on} backend", f.kind.describe()))
        })?;
    }
    Ok(())
}

/// What the scenario's partitions will not rehearse on the local backend (see
/// [`crate::faults::proxy_partition_caveat`]), each naming its fault's line.
fn proxy_partition_caveats(scenario: &Scenario) -> Vec<String> {
    use crate::faults::{FaultKind, Hop, proxy_partition_caveat};
    scenario
        .faults
        .iter()
        .filter_map(|f| {
            let FaultKind::Partition { hop } = f.kind else {
                return None;
            };
            let upstream = match hop {
                Hop::AB => &scenario.chain.a,
                Hop::BC => &scenario.chain.b,
            };
            let why = proxy_partition_caveat(hop, &upstream.settings)?;
            let file = scenario.path.display();
            Some(
                f.line
                    .map_or(format!("{file}: {why}"), |l| format!("{file}:{l}: {why}")),
            )
        })
        .collect()
}

/// Choices made on the command line rather than in the scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Explicit PostgreSQL bin directory (`--pg-bin` / `PGREHEARSE_PG_BIN`).
    pub pg_bin: Option<PathBuf>,
    /// Where run directories go.
    pub runs_dir: Option<PathBuf>,
    /// Overrides the scenario's backend (`--backend`).
    pub backend: Option<BackendKind>,
    /// The chain will only be built (`up`): the scenario's faults are not run, so not checked
    /// against the backend either.
    pub build_only: bool,
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
    pg: Option<PgInstall>,
    kind: BackendKind,
    creds: Credentials,
    backend: Arc<dyn Backend>,
    progress: Arc<dyn Progress>,
    report: Mutex<Report>,
    chain_up: Mutex<bool>,
    /// The whole chain was built: only then can `--keep` keep it.
    built: std::sync::atomic::AtomicBool,
    /// `finish(true)` handed the chain over: it runs on after this process.
    kept: std::sync::atomic::AtomicBool,
    /// Faults in force while the workload runs, to heal before a kept chain is let go of when
    /// the run was cut short; kept to the end of the run for their records (nothing is in
    /// force once the schedule has healed).
    in_force: Mutex<Option<(crate::faults::InForce, Arc<FaultEnv>)>>,
    /// How to take the chain off the harness's own link proxies if it is kept (`--keep`).
    bypass: Mutex<Option<Bypass>>,
    /// A report was written to the run directory.
    report_written: std::sync::atomic::AtomicBool,
    /// The sampler's samples while it runs: a run cut short (Ctrl-C) still reports what was
    /// observed up to then.
    live: Mutex<Option<LiveSamples>>,
}

/// Samples being taken, with what condensing them needs.
struct LiveSamples {
    samples: crate::observe::Samples,
    subscription: String,
    physical_slot: Option<String>,
}

impl Rehearsal {
    /// Resolve everything a run needs before starting any server: the seed, the binaries, the
    /// server user, the run directory.
    ///
    /// # Errors
    /// Environment errors (no usable PostgreSQL, cannot create the run directory), usage errors
    /// (unsupported backend).
    pub async fn prepare(
        scenario: Scenario,
        opts: RunOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<Rehearsal> {
        let seed = opts.seed.unwrap_or_else(|| scenario.seed_or_random());
        let kind = opts.backend.unwrap_or(scenario.chain.backend);
        if kind == BackendKind::Local && !opts.build_only {
            link_faults_can(&scenario, kind, crate::faults::proxy_can)?;
            for caveat in proxy_partition_caveats(&scenario) {
                tracing::warn!("{caveat}");
            }
        }
        let user = ServerUser::resolve()?;
        let creds = Credentials::generate();
        let (pg, run, backend): (Option<PgInstall>, RunDir, Arc<dyn Backend>) = match kind {
            BackendKind::Local => {
                let explicit = match (&opts.pg_bin, &scenario.chain.pg_bin) {
                    (Some(d), _) => Some((d.clone(), crate::pg::explicit_source(d).to_string())),
                    (None, Some(d)) => {
                        Some((d.clone(), format!("pg_bin in {}", scenario.path.display())))
                    }
                    (None, None) => None,
                };
                let mut locate = Locate::from_env(Some(scenario.chain.pg_version));
                if explicit.is_some() {
                    locate.explicit = explicit;
                }
                // Off the runtime: the first use downloads PostgreSQL, and Ctrl-C meanwhile must
                // still be heard.
                let pg = tokio::task::spawn_blocking(move || locate.find())
                    .await
                    .map_err(|e| Error::internal(format!("finding PostgreSQL: {e}")))??;
                check_settings(
                    &pg.known_settings_for(&user, &setting_names(&scenario))
                        .await?,
                    &scenario,
                    &format!("PostgreSQL {} ({})", pg.version, pg.bin_dir.display()),
                )?;
                fixed_ports_free(&scenario)?;
                let run = RunDir::create(opts.runs_dir.as_deref(), &scenario.name, &user)?;
                let b = LocalBackend::new(pg.clone(), user.clone(), run.clone(), creds.clone())?;
                (Some(pg), run, Arc::new(b))
            }
            BackendKind::Docker => {
                // Fail on a missing engine or image before creating anything.
                let docker = crate::backend::docker::connect().await?;
                let image =
                    crate::backend::docker::pick_image(&docker, scenario.chain.pg_version).await?;
                // As on the local backend, before anything is created; asking the image costs
                // a short-lived container, so only when there is something to check.
                let names = setting_names(&scenario);
                if !names.is_empty() {
                    check_settings(
                        &crate::backend::docker::known_settings(&docker, &image, &names).await?,
                        &scenario,
                        &format!("PostgreSQL {} (image {})", image.version, image.reference()),
                    )?;
                }
                let run = RunDir::create(opts.runs_dir.as_deref(), &scenario.name, &user)?;
                let b = crate::backend::docker::DockerBackend::new(
                    run.clone(),
                    creds.clone(),
                    docker,
                    image,
                )
                .await?;
                let img = b.image().clone();
                let pg = PgInstall {
                    bin_dir: PathBuf::from(format!(
                        "/usr/lib/postgresql/{}/bin in image {}",
                        img.version.major,
                        img.reference()
                    )),
                    version: img.version.clone(),
                    source: img.source.clone(),
                };
                (Some(pg), run, Arc::new(b))
            }
        };
        let mut report = Report::new(run.id(), run.path(), &scenario, seed);
        report.backend = kind.as_str().to_string();
        report.postgres = pg.clone();
        Ok(Rehearsal {
            scenario,
            seed,
            run,
            user,
            pg,
            kind,
            creds,
            backend,
            progress,
            report: Mutex::new(report),
            chain_up: Mutex::new(false),
            built: Default::default(),
            kept: Default::default(),
            in_force: Mutex::new(None),
            bypass: Mutex::new(None),
            report_written: std::sync::atomic::AtomicBool::new(false),
            live: Mutex::new(None),
        })
    }

    /// The backend (for tests that inject faults by hand).
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    fn save_state(&self, detached: bool, with_secrets: bool) -> Result<()> {
        let state = RunState {
            run_id: self.run.id().to_string(),
            scenario: self.scenario.name.clone(),
            owner_pid: std::process::id(),
            owner_start: crate::os::pid_start(std::process::id() as i32),
            detached,
            backend: self.kind,
            pg: self.pg.clone(),
            database: self.scenario.chain.database.clone(),
            subscription: crate::chain::ChainSpec::default().subscription,
            physical_slot: self.scenario.chain_spec().physical_slot,
            started_at: self.report.lock().expect("report").started_at.to_rfc3339(),
            catchup_timeout_ms: Some(self.scenario.chain.catchup_timeout.as_millis() as u64),
            initial_copy_timeout_ms: Some(
                self.scenario.chain.initial_copy_timeout.as_millis() as u64
            ),
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
    /// `links`: put the fault-capable links the scenario's link faults need on the hops (false:
    /// every hop connects directly).
    ///
    /// # Errors
    /// The first phase that failed, naming the node.
    pub async fn build(&self, links: bool) -> Result<Chain> {
        self.progress.phase("building the chain (a → b → c)");
        let mut spec = self.scenario.chain_spec();
        spec.proxies &= links;
        spec.link_seed = crate::scenario::derive_seed(self.seed, "links");
        spec.aurora_like = self.kind == BackendKind::Docker;
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
        let chain = chain.map_err(|e| refused_setting(e, &self.scenario))?;
        self.built.store(true, std::sync::atomic::Ordering::SeqCst);
        *self.bypass.lock().expect("bypass") = Some(chain.bypass(self.backend.as_ref()));
        tracing::info!(
            "chain up in {} (a → b → c, {})",
            crate::util::fmt_duration(t.elapsed()),
            chain.replicator.describe()
        );
        self.report.lock().expect("report").chain = Some(chain.timings.clone());
        // For the test that proves a panic still tears the chain down (Drop of the backend).
        if std::env::var("PGREHEARSE_FAILPOINT").as_deref() == Ok("panic-after-chain-up") {
            panic!("failpoint panic-after-chain-up");
        }
        for l in [&chain.links.ab, &chain.links.bc].into_iter().flatten() {
            let note = format!("link faults on {}: {}", l.hop(), l.mechanism().await);
            tracing::info!("{note}");
            self.report.lock().expect("report").note(note);
        }
        match chain.target_model().await {
            Ok(Some(note)) => self.report.lock().expect("report").note(note),
            Ok(None) => {}
            Err(e) => self.report.lock().expect("report").note(format!(
                "c is Aurora-like, but what held there could not be read back: {e}"
            )),
        }
        if let Ok(notes) = preflight_notes(&chain.a, &chain.spec.database).await {
            let mut r = self.report.lock().expect("report");
            for n in notes {
                r.note(n);
            }
        }
        Ok(chain)
    }

    /// Build the chain and leave it running for `pgrehearse up`. No fault is run, so every hop
    /// connects directly: a link proxy would live in this process and die when it exits.
    ///
    /// # Errors
    /// As [`Rehearsal::build`].
    pub async fn up(&self) -> Result<Chain> {
        let faults = self.scenario.faults.len();
        if faults > 0 {
            tracing::warn!(
                "faults are not run by up: the scenario's {faults} fault(s) are left out and every hop connects directly (pgrehearse run runs them)"
            );
        }
        let chain = self.build(false).await?;
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
        let written = self.write_report();
        let paths = match (res, written) {
            (Ok(()), written) => written?,
            // What stopped the run comes first; that its report is missing too is told after.
            (Err(e), Err(w)) => return Err(e.also(&w)),
            (Err(e), Ok(_)) => return Err(e),
        };
        let report = self.report.lock().expect("report").clone();
        Ok((report, paths))
    }

    /// Whether a report is in the run directory (a run that failed may not have got to write
    /// one).
    pub fn report_written(&self) -> bool {
        self.report_written
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the whole chain was built, so that `finish(true)` keeps it.
    pub fn chain_built(&self) -> bool {
        self.built.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether `finish(true)` kept the chain running.
    pub fn kept(&self) -> bool {
        self.kept.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Record what stopped the run from outside it (an interrupt) in the report.
    pub fn record_error(&self, e: &Error) {
        self.report.lock().expect("report").record_error(e);
    }

    /// The exit code the report gives (after [`Rehearsal::write_report`]): the process exits
    /// with it, so that report.json and the shell agree.
    pub fn exit_code(&self) -> i32 {
        self.report.lock().expect("report").exit_code
    }

    /// Record that tearing the chain down failed after the run, and write the report again so
    /// that its exit code is the one the process exits with. Returns that code.
    pub fn record_cleanup_error(&self, e: &Error) -> i32 {
        self.report.lock().expect("report").record_cleanup_error(e);
        if let Err(w) = self.write_report() {
            tracing::warn!("could not write the report again after the failed teardown: {w}");
        }
        self.exit_code()
    }

    /// Write the report as it stands (also used after an interrupt).
    ///
    /// # Errors
    /// Environment error when the files cannot be written.
    pub fn write_report(&self) -> Result<ReportPaths> {
        let mut r = self.report.lock().expect("report");
        if r.observations.is_none() {
            self.observe_cut_short(&mut r);
        }
        let expectations = report::evaluate(&self.scenario.expect, &RunFacts::of(&r));
        r.expectations = expectations;
        r.conclude(chrono::Utc::now());
        let paths = report::write_all(self.run.path(), &r)?;
        self.report_written
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(paths)
    }

    /// Observations from the samples taken before the run was cut short, with the faults'
    /// records as far as the timeline got. Whatever the rest of the run could have changed is
    /// then left unjudged ([`Report::cut_short`]).
    fn observe_cut_short(&self, r: &mut Report) {
        let live = self.live.lock().expect("live samples");
        let Some(live) = live.as_ref() else {
            return;
        };
        let samples = live.samples.lock().expect("samples").clone();
        let records = self
            .in_force
            .lock()
            .expect("faults in force")
            .as_ref()
            .map(|(f, _)| f.records())
            .unwrap_or_default();
        if samples.is_empty() && records.is_empty() {
            return;
        }
        let mut obs = crate::observe::Observations::from_samples(
            &samples,
            &live.subscription,
            live.physical_slot.as_deref(),
            self.scenario.observe.sample_every,
            self.scenario.observe.heartbeat_every,
        );
        obs.last_heal_ms = records
            .iter()
            .filter_map(|f| f.healed_ms.map(|h| h as i64))
            .max();
        obs.faults = records;
        r.observations = Some(obs);
        r.cut_short = true;
        r.note(format!(
            "the run stopped before it finished: the lag and WAL figures come from the {} samples taken until then (samples.jsonl), the faults' records from what the schedule had done by then",
            samples.len()
        ));
    }

    async fn run_inner(&self) -> Result<()> {
        let chain = self.build(true).await?;
        link_faults_can(&self.scenario, self.kind, |hop, state| {
            let link = match hop {
                crate::faults::Hop::AB => &chain.links.ab,
                crate::faults::Hop::BC => &chain.links.bc,
            };
            link.as_ref().map_or(Ok(()), |l| l.check(state))
        })?;
        let ledger_path = self.run.file("ledger.jsonl");
        let mut drive = self.drive(&chain, &ledger_path).await?;
        let mut judged = Judged::default();
        let res = self
            .judge(&chain, &mut drive, &ledger_path, &mut judged)
            .await;
        // Also when judging failed part way: what was observed and which faults ran is what a
        // failed run is diagnosed from.
        self.observe(&chain, drive, judged);
        res
    }

    /// Catch-up, verification and the ledger, filling `judged` as far as they get.
    async fn judge(
        &self,
        chain: &Chain,
        drive: &mut Drive,
        ledger_path: &std::path::Path,
        judged: &mut Judged,
    ) -> Result<()> {
        let db = chain.spec.database.clone();
        let workload_ran = std::mem::replace(&mut drive.workload, Ok(false))?;

        // --- convergence: everything committed before the fence is on C (or C cannot get there)
        self.progress.phase("waiting for c to catch up (fence)");
        let slot_dead = logical_slot_dead(&chain.b, &db, &chain.spec.subscription).await;
        let fence = match &slot_dead {
            // C cannot catch up from an invalidated slot: say so instead of waiting for nothing.
            Some(why) => Err(Error::timeout(format!(
                "the logical slot on b is unusable ({why})"
            ))),
            None => chain.fence().await,
        };
        let since_workload = drive.catchup_from.elapsed();
        let now_ms = drive.clock.elapsed().as_millis() as i64;
        match fence {
            Ok(_) => {
                tracing::info!(
                    "c caught up {} after the workload ended",
                    crate::util::fmt_duration(since_workload)
                );
                self.report.lock().expect("report").catchup_ms =
                    Some(since_workload.as_millis() as u64);
                judged.caught_up_ms = Some(now_ms);
            }
            Err(e) if e.kind() == crate::ErrorKind::Timeout => {
                // Recorded whatever follows: a fence given up on past max_catchup is that
                // expectation failed, not left unknown.
                tracing::warn!("c did not catch up: {e}");
                let mut r = self.report.lock().expect("report");
                r.catchup_missed = Some(crate::report::CatchupMissed {
                    waited_ms: since_workload.as_millis() as u64,
                    gave_up_at_ms: now_ms,
                    never: slot_dead.is_some(),
                    reason: crate::secret::redact(&e.to_string()),
                });
                if self.scenario.faults.is_empty() {
                    return Err(e.context("waiting for c to catch up after the workload"));
                }
                // After a fault, not converging can be the finding itself (a lost slot): go on
                // to verification, which shows what C is missing.
                r.note(format!("c did not catch up after the faults: {e}"));
            }
            Err(e) => return Err(e.context("waiting for c to catch up after the workload")),
        }
        // Nothing writes on the primary while the rows are compared.
        drive.stop_observing();

        // --- verification against whoever is the primary now
        self.progress
            .phase("verifying c (and b) against the primary, row by row");
        // B is compared too while it is still a standby.
        let opts = VerifyOptions::default();
        let reference = chain.primary().clone();
        let reports = verify::compare_chain(chain, true, &opts).await?;
        self.report.lock().expect("report").verify = reports;

        // --- the ledger: acknowledged writes that must be there
        if workload_ran {
            self.progress
                .phase("checking the ledger of acknowledged writes");
            let entries = workload::read_ledger(ledger_path)?;
            let cap = opts.max_keys_listed;
            let check = |n: &Node| {
                let conn = n.admin().with_db(&db);
                let entries = &entries;
                let name = n.name().to_string();
                async move {
                    workload::judge_ledger(entries, &name, &conn, cap)
                        .await
                        .step_with(|| format!("checking the ledger on {name}"))
                }
            };
            let (on_c, on_ref) = tokio::join!(check(&chain.c), check(&reference));
            let (on_c, on_ref) = (on_c?, on_ref?);
            if let Some(killed) = drive.events.killed_ms {
                // After a failover the RPO is what B had when it was promoted, judged against
                // every write sent to A: B's final state would hide a lost write that the
                // workload later overwrote or deleted on B.
                judged.rpo = self.rpo_at_promotion(&drive.events, &entries, chain.b.name());
                judged.last_writes_on_a = workload::last_writes(&entries, chain.a.name(), killed);
                judged.first_write_on_b_ms = entries
                    .iter()
                    .filter(|e| e.node == chain.b.name() && e.outcome == workload::Outcome::Ok)
                    .map(|e| (e.done_us / 1000) as i64)
                    .min();
            } else {
                // Without a failover, what the migration loses is what C lacks.
                judged.rpo = Some(crate::observe::Rpo::from_judgement(&on_c, None));
            }
            let reissued = on_c.check.reissued_keys.max(on_ref.check.reissued_keys);
            let mut r = self.report.lock().expect("report");
            if reissued > 0 {
                let (a, b) = (chain.a.name(), chain.b.name());
                let ids = if reissued == 1 {
                    "1 invoice id was".to_string()
                } else {
                    format!("{reissued} invoice ids were")
                };
                r.note(format!(
                    "{ids} issued twice: {b} was promoted without {a}'s last WAL, so its invoice \
                     sequence restarted below ids {a} had already used (PostgreSQL logs a sequence \
                     32 values ahead; that record was in the lost WAL). The rows with those ids \
                     are {b}'s; {a}'s writes to them are lost, counted in the RPO at promotion"
                ));
            }
            r.ledger = vec![on_c.check, on_ref.check];
        }
        Ok(())
    }

    /// What happened, condensed from the samples, the fault records and what judging found.
    fn observe(&self, chain: &Chain, mut drive: Drive, judged: Judged) {
        drive.stop_observing();
        let samples = &drive.samples;
        let mut obs = crate::observe::Observations::from_samples(
            samples,
            &chain.spec.subscription,
            chain.spec.physical_slot.as_deref(),
            self.scenario.observe.sample_every,
            self.scenario.observe.heartbeat_every,
        );
        obs.faults = drive.records;
        obs.rpo = judged.rpo;
        obs.last_heal_ms = drive.last_heal_ms;
        obs.heartbeat_gap_ms = heartbeat_gap_ms(&drive.heartbeat_log);
        // The first heartbeat issued once every fault was healed: C showing it has everything
        // committed before the heal.
        let after_heal = drive
            .last_heal_ms
            .and_then(|h| drive.heartbeat_log.first_issued_from(h.max(0) as u64));
        obs.convergence_ms =
            convergence(samples, drive.last_heal_ms, after_heal, judged.caught_up_ms);
        if let (Some(killed), Some(promoted)) = (drive.events.killed_ms, drive.events.promoted_ms) {
            // Judged from the samples after the promotion, not from the slot's state at the end.
            let (a_busy_until_us, last_write_on_a) = judged.last_writes_on_a;
            obs.failover = Some(crate::observe::Failover {
                a_busy_until_us,
                last_write_on_a,
                ..crate::observe::Failover::from_samples(
                    samples,
                    &chain.spec.subscription,
                    killed,
                    promoted,
                    judged.first_write_on_b_ms,
                )
            });
        }
        obs.findings = findings(&obs, chain);
        let mut r = self.report.lock().expect("report");
        r.observations = Some(obs);
        r.idle_primary = chain.idle_primary;
    }

    /// The RPO of a failover: B's rows as its promotion left them, judged against the writes
    /// sent before it (every ledger entry not sent to B). None, with a note saying why, when
    /// those rows were not read.
    fn rpo_at_promotion(
        &self,
        events: &crate::faults::FailoverEvents,
        entries: &[workload::LedgerEntry],
        b: &str,
    ) -> Option<crate::observe::Rpo> {
        let why = match &events.b_rows_at_promotion {
            Some(Ok(rows)) => {
                let before = entries.iter().filter(|e| e.node != b);
                match workload::judge_rows(before, rows, RPO_LISTED) {
                    Ok(j) => {
                        return Some(crate::observe::Rpo::from_judgement(&j, events.promoted_ms));
                    }
                    Err(e) => e.to_string(),
                }
            }
            Some(Err(e)) => e.clone(),
            None => "b's rows were not read at promotion".to_string(),
        };
        tracing::warn!("RPO not measured: {why}");
        self.report
            .lock()
            .expect("report")
            .note(format!("RPO not measured: {why}"));
        None
    }

    /// The workload, with the fault timeline, the heartbeat and the sampler running alongside.
    async fn drive(&self, chain: &Chain, ledger_path: &std::path::Path) -> Result<Drive> {
        let db = chain.spec.database.clone();
        let obs = &self.scenario.observe;
        // Time zero of every report timeline: the start of the workload.
        let clock = Instant::now();
        self.report.lock().expect("report").timeline_zero = Some(chrono::Utc::now());
        let (primary_tx, primary_rx) = watch::channel(chain.a.clone());
        let heartbeat = Heartbeat::start(primary_rx, &db, obs.heartbeat_every, clock);
        let heartbeat_log = heartbeat.log();
        let sampler = Sampler::start(
            SamplerConfig {
                nodes: [chain.a.clone(), chain.b.clone(), chain.c.clone()],
                database: db.clone(),
                logical_slot: chain.spec.subscription.clone(),
                every: obs.sample_every,
                clock,
                heartbeat: Some(heartbeat.log()),
            },
            &self.run.file("samples.jsonl"),
        )?;
        *self.live.lock().expect("live samples") = Some(LiveSamples {
            samples: sampler.samples(),
            subscription: chain.spec.subscription.clone(),
            physical_slot: chain.spec.physical_slot.clone(),
        });
        let (target_tx, target_rx) = watch::channel(Target {
            node: "a".into(),
            conn: chain.a.admin().with_db(&db),
        });
        let env = Arc::new(
            FaultEnv::new(
                chain.a.clone(),
                chain.b.clone(),
                chain.c.clone(),
                chain.replicator.clone(),
                &db,
                chain.links.clone(),
                primary_tx,
                Some(target_tx),
                clock,
            )
            .with_workload_tables(if self.scenario.workload.enabled {
                &self.scenario.workload.tables
            } else {
                &[]
            }),
        );
        let duration = self.scenario.workload.duration;
        let mut timeline = Timeline::start(&self.scenario.faults, env.clone(), duration);
        *self.in_force.lock().expect("faults in force") = Some((timeline.in_force(), env.clone()));
        if !self.scenario.faults.is_empty() {
            tracing::info!("{} faults scheduled", self.scenario.faults.len());
        }

        let result = async {
            if !self.scenario.workload.enabled {
                return Ok(false);
            }
            // Ledger times on the run's timeline, like fault and sample times.
            let cfg = WorkloadConfig {
                epoch: Some(clock),
                ..self.workload_config()
            };
            self.progress.phase("workload on a");
            let (_stop_tx, stop_rx) = watch::channel(false);
            let live = Arc::new(workload::Progress::default());
            let ticker = self.workload_ticker(live.clone(), cfg.duration);
            let stats = workload::run(&cfg, target_rx, ledger_path, stop_rx, Some(live)).await;
            drop(ticker);
            let stats = stats.step("running the workload")?;
            self.report.lock().expect("report").workload = Some(stats);
            Ok::<_, Error>(true)
        }
        .await;
        let workload_ended = Instant::now();
        // Faults scheduled past the workload still run; then everything still active heals —
        // also when the workload failed.
        if result.is_ok() {
            timeline.wait().await;
        }
        let records = timeline.heal_all(&env).await;
        // With nothing written there is no end of the workload to time catch-up from: it is
        // timed from the end of the fault schedule, or max_catchup would count the schedule.
        let catchup_from = match result {
            Ok(false) => Instant::now(),
            _ => workload_ended,
        };
        let events = env.events.lock().expect("events").clone();
        Ok(Drive {
            workload: result,
            records,
            last_heal_ms: timeline.last_heal_ms(),
            clock,
            catchup_from,
            events,
            heartbeat: Some(heartbeat),
            heartbeat_log,
            sampler: Some(sampler),
            samples: Vec::new(),
        })
    }

    fn workload_ticker(
        &self,
        live: Arc<workload::Progress>,
        duration: Duration,
    ) -> AbortOnDropHandle<()> {
        let progress = self.progress.clone();
        let total = duration.as_secs().max(1);
        AbortOnDropHandle::new(tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let secs = start.elapsed().as_secs().min(total);
                progress.measured("workload (seconds)", secs, total);
                let rate = live.ok() as f64 / start.elapsed().as_secs_f64().max(0.001);
                progress.note(&format!(
                    "{} ok, {} failed, {} unknown, {rate:.0} ops/s",
                    live.ok(),
                    live.failed(),
                    live.unknown()
                ));
            }
        }))
    }

    /// Stop every server and remove data directories (unless `keep`, which leaves the chain
    /// running for `pgrehearse down`, faults healed and every hop connected directly; a chain
    /// that was not fully built is removed all the same). Always call this, whatever `run`
    /// returned.
    ///
    /// # Errors
    /// The first failure while stopping or removing; with `keep`, a hop that does not stream
    /// again once off the harness's proxy (the chain is kept all the same).
    pub async fn finish(&self, keep: bool) -> Result<()> {
        // For the test that proves a signal during a long cleanup is heard: this one lasts
        // until it is forced.
        if std::env::var("PGREHEARSE_FAILPOINT").as_deref() == Ok("hold-cleanup") {
            tracing::info!("failpoint hold-cleanup: the cleanup waits until it is forced");
            std::future::pending::<()>().await;
        }
        if keep && self.chain_built() {
            let in_force = self.in_force.lock().expect("faults in force").take();
            if let Some((faults, env)) = in_force {
                // The run was cut short with faults in force: the kept chain goes without them.
                let n = faults.heal(&env).await;
                if n > 0 {
                    tracing::info!("healed {n} fault(s) still in force before keeping the chain");
                }
            }
            let bypass = self.bypass.lock().expect("bypass").take();
            let direct = match bypass {
                Some(b) => self.keep_direct(&b).await,
                None => Ok(()),
            };
            if let Err(e) = self.save_state(true, true) {
                // Without its state nothing could reach or take down the kept chain.
                let _ = self.remove().await;
                return Err(e.context("keeping the chain (so it was removed)"));
            }
            self.backend.detach();
            self.kept.store(true, std::sync::atomic::Ordering::SeqCst);
            return direct;
        }
        self.remove().await
    }

    async fn remove(&self) -> Result<()> {
        let res = self.backend.teardown(false).await;
        scrub_logs(&self.run, &self.creds);
        // Whatever is left still needs them, for `pgrehearse down --run` to reach it.
        if res.is_ok() {
            forget_secrets(&self.run);
        }
        if *self.chain_up.lock().expect("chain flag") {
            let _ = self.save_state(false, false);
        }
        res
    }

    /// Before the harness lets go of a kept chain: hops through its own link proxies, which end
    /// with it, go direct (faults are healed by then).
    async fn keep_direct(&self, bypass: &Bypass) -> Result<()> {
        let done = bypass.apply().await.map_err(|e| {
            e.context("keeping the chain: taking its hops off the harness's link proxies")
        })?;
        for line in done {
            tracing::info!("kept chain: {line}");
        }
        Ok(())
    }
}

/// Lost and unknown-outcome writes listed in the RPO (the counts are always exact).
const RPO_LISTED: usize = 100;

/// What the workload phase leaves for the rest of the run.
struct Drive {
    /// Whether a workload ran, or what stopped it.
    workload: Result<bool>,
    records: Vec<crate::faults::FaultRecord>,
    last_heal_ms: Option<i64>,
    clock: Instant,
    /// When the workload stopped writing (without a workload: when the fault schedule
    /// ended): catch-up is measured from here, whatever faults were still in force after it.
    catchup_from: Instant,
    events: crate::faults::FailoverEvents,
    heartbeat: Option<Heartbeat>,
    /// What the heartbeat issued and committed (kept once it stops).
    heartbeat_log: Arc<crate::observe::HeartbeatLog>,
    sampler: Option<Sampler>,
    /// What the sampler recorded, once stopped.
    samples: Vec<Sample>,
}

impl Drive {
    /// Stop the heartbeat and the sampler, keeping what was sampled (once; again is a no-op).
    fn stop_observing(&mut self) {
        self.heartbeat = None;
        if let Some(s) = self.sampler.take() {
            self.samples = s.stop();
        }
    }
}

/// What judging a run found, as far as it got.
#[derive(Default)]
struct Judged {
    /// When the fence reached C, on the run's timeline (None: it did not).
    caught_up_ms: Option<i64>,
    rpo: Option<crate::observe::Rpo>,
    first_write_on_b_ms: Option<i64>,
    /// Until when A was handling a write before it was killed, and the last it acknowledged.
    last_writes_on_a: (Option<u64>, Option<workload::WriteRef>),
}

/// Time from the last heal until C had everything again: when C was first read showing the
/// first heartbeat issued at or after the heal (`after_heal`), or a later one; failing that (no
/// sample saw it), the fence. A heartbeat issued before the heal proves nothing, however new:
/// writes committed after it and before the heal may still be missing on C.
fn convergence(
    samples: &[Sample],
    last_heal: Option<i64>,
    after_heal: Option<u64>,
    fence_done: Option<i64>,
) -> Option<u64> {
    let heal = last_heal?;
    let from_samples = after_heal.and_then(|first| {
        samples
            .iter()
            .filter(|s| s.heartbeat_seq_on_c.is_some_and(|seq| seq >= first))
            .find_map(|s| s.heartbeat_read_ms)
            .map(|read| (read as i64 - heal).max(0) as u64)
    });
    from_samples.or_else(|| fence_done.map(|d| (d - heal).max(0) as u64))
}

/// The mean gap between the heartbeats the primary committed, when there were two or more.
fn heartbeat_gap_ms(log: &crate::observe::HeartbeatLog) -> Option<u64> {
    let gap = log.mean_gap_ms();
    (gap > 0.0).then(|| gap.round() as u64)
}

/// Plain statements of what PostgreSQL did, for the report.
fn findings(obs: &crate::observe::Observations, chain: &Chain) -> Vec<String> {
    use crate::util::fmt_bytes;
    let t = |ms: i64| format!("t={:.1}s", ms as f64 / 1000.0);
    let mut out = Vec::new();
    if let Some(f) = &obs.failover {
        let mut s = format!(
            "a was killed at {} and b promoted at {} ({} ms later)",
            t(f.killed_ms),
            t(f.promoted_ms),
            f.promoted_ms - f.killed_ms
        );
        let slot = &chain.spec.subscription;
        match (f.slot_carried_on, f.slot_active_at_ms) {
            (Some(true), Some(active)) => s.push_str(&format!(
                "; the logical slot {slot} created on b carried on across the timeline switch: \
                 active (a walsender consuming it) and not conflicting at {}, {} ms after the \
                 promotion, and not invalidated afterwards",
                t(active),
                active - f.promoted_ms
            )),
            (Some(false), Some(active)) => s.push_str(&format!(
                "; the logical slot {slot} on b was active again at {} but was invalidated or \
                 dropped afterwards",
                t(active)
            )),
            (Some(_), None) => s.push_str(&format!(
                "; the logical slot {slot} on b was never seen active and usable after the promotion"
            )),
            (None, _) => s.push_str(
                "; no sample after the promotion saw b, so whether the logical slot carried on is unknown",
            ),
        }
        out.push(s);
        if let Some(r) = &obs.rpo {
            let when = match r.judged_at_ms {
                Some(ms) => format!(" (b's data at its promotion, {})", t(ms)),
                None => String::new(),
            };
            out.push(format!(
                "{} acknowledged write(s) committed on a never reached b{when}, on {} key(s) (RPO); {} write(s) sent to a before the promotion had an unknown outcome ({} applied on b, {} not, {} undetermined)",
                r.lost_writes,
                r.lost_keys,
                r.unknown_total(),
                r.unknown_applied,
                r.unknown_not_applied,
                r.unknown_undetermined
            ));
        }
    }
    if let Some(s) = &obs.slot
        && s.survived == Some(false)
    {
        if s.missing {
            out.push(format!(
                "the logical slot {} on b was gone from pg_replication_slots by {} (dropped? by hand, by the consumer, or by a DROP DATABASE on a): PostgreSQL reported no invalidation. c can no longer continue from it and needs a full resync (a new slot and a fresh initial copy)",
                s.slot,
                s.invalidated_at_ms.map(t).unwrap_or_else(|| "the end of the run".into())
            ));
        } else {
            let reason = s.invalidation_reason.as_deref().unwrap_or("unknown");
            let why = match reason {
                "wal_removed" => {
                    "b removed WAL the slot still needed (max_slot_wal_keep_size exceeded while the consumer was stopped)"
                }
                "rows_removed" => {
                    "a vacuumed catalog rows the slot still needed (recovery conflict on b)"
                }
                "wal_level_insufficient" => "wal_level on a was lowered below logical",
                _ => "see b's log",
            };
            let inferred = if s.reason_inferred {
                ", inferred: PostgreSQL 16 has no invalidation_reason"
            } else {
                ""
            };
            out.push(format!(
                "the logical slot {} on b was invalidated ({reason}{inferred}) at {}: {why}. c can no longer continue from it and needs a full resync (a new slot and a fresh initial copy)",
                s.slot,
                s.invalidated_at_ms.map(t).unwrap_or_else(|| "an unknown time".into())
            ));
        }
    }
    if let Some(p) = obs.peaks.b_slot_retained
        && p.value > 0.0
    {
        out.push(format!(
            "b retained up to {} of WAL for the logical slot (at {})",
            fmt_bytes(p.value as u64),
            t(p.at_ms)
        ));
    }
    use crate::observe::{LagHop, frozen_lag};
    for (hop, up, down) in [(LagHop::AB, "a", "b"), (LagHop::BC, "b", "c")] {
        if let Some(f) = frozen_lag(&obs.series, hop, std::time::Duration::from_secs(2)) {
            out.push(format!(
                "from {} to {} {up}'s pg_stat_replication kept showing a replay lag of {:.3}s for {down} while {down} fell {} behind: \
                 PostgreSQL updates the lag columns only when {down} replies, so a stalled stream shows the last lag measured; \
                 the end-to-end lag (heartbeat) and the byte lag show the stall",
                t(f.from_ms),
                t(f.to_ms),
                f.shown_s,
                fmt_bytes(f.behind_bytes)
            ));
        }
    }
    if let Some(p) = obs.peaks.a_slot_retained
        && p.value > 16.0 * 1024.0 * 1024.0
    {
        out.push(format!(
            "a retained up to {} of WAL for b's physical slot while b lagged (at {})",
            fmt_bytes(p.value as u64),
            t(p.at_ms)
        ));
    }
    out
}

/// Refuse per-node settings the server would refuse, before any server starts: a misspelt name
/// would otherwise surface as "postgres exited during startup" after A and C were built.
/// `server` names what `known` came from, for the hint.
/// A fixed port something already listens on is named before any server starts, instead of
/// after A and C are built. A port taken later (a race) is still caught when the node starts.
fn fixed_ports_free(scenario: &Scenario) -> Result<()> {
    let chain = &scenario.chain;
    for (name, plan) in [("a", &chain.a), ("b", &chain.b), ("c", &chain.c)] {
        let Some(port) = plan.port else { continue };
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            let at = plan
                .port_at
                .clone()
                .unwrap_or_else(|| scenario.path.display().to_string());
            return Err(Error::environment(format!(
                "{at}: port {port} of {name} on 127.0.0.1 is already in use ({e})"
            ))
            .with_hint(crate::backend::local::PORT_HINT));
        }
    }
    Ok(())
}

fn check_settings(known: &KnownSettings, scenario: &Scenario, server: &str) -> Result<()> {
    let nodes = [
        ("a", &scenario.chain.a),
        ("b", &scenario.chain.b),
        ("c", &scenario.chain.c),
    ];
    let problems: Vec<String> = nodes
        .iter()
        .flat_map(|(node, plan)| {
            plan.settings
                .iter()
                .enumerate()
                .filter_map(move |(i, (name, value))| {
                    let at = plan.setting_at(i, &scenario.path);
                    known
                        .problem(name, value)
                        .map(|p| format!("{at}: [chain.{node}.settings]: {p}"))
                })
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::usage(problems.join("\n")).with_hint(format!(
        "{server} does not take these: fix them in the scenario"
    )))
}

/// A server that would not start because of one of the scenario's settings (a value only the
/// server checks, such as an enum's), pointed at that setting in the scenario file.
fn refused_setting(e: Error, scenario: &Scenario) -> Error {
    const MARK: &str = "invalid value for parameter \"";
    let text = format!("{e}\n{}", e.detail().unwrap_or_default());
    let Some(rest) = text.split_once(MARK).map(|(_, r)| r) else {
        return e;
    };
    let text = rest;
    let Some((name, _)) = rest.split_once('"') else {
        return e;
    };
    let node = e.node().unwrap_or_default().to_string();
    let plan = match node.as_str() {
        "a" => &scenario.chain.a,
        "b" => &scenario.chain.b,
        "c" => &scenario.chain.c,
        _ => return e,
    };
    let Some(i) = plan.settings.iter().position(|(n, _)| n == name) else {
        return e;
    };
    let value = &plan.settings[i].1;
    let at = plan.setting_at(i, &scenario.path);
    // PostgreSQL's own hint after that line lists what it takes ("Available values: ...").
    let hint = text
        .lines()
        .find_map(|l| l.split_once("HINT:").map(|(_, h)| h.trim().to_string()))
        .unwrap_or_else(|| "see the server log below".into());
    let mut out = Error::usage(format!(
        "{at}: [chain.{node}.settings]: {name} = {value:?} is refused by PostgreSQL, so {node} did not start"
    ))
    .with_hint(hint);
    if let Some(d) = e.detail() {
        out = out.with_detail(d.to_string());
    }
    out
}

/// Every setting name the scenario gives any node.
fn setting_names(scenario: &Scenario) -> Vec<&str> {
    [&scenario.chain.a, &scenario.chain.b, &scenario.chain.c]
        .iter()
        .flat_map(|n| n.settings.iter().map(|(name, _)| name.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{convergence, proxy_partition_caveats};
    use crate::scenario::Scenario;

    #[test]
    fn a_partition_warns_of_tcp_liveness_settings_on_its_hop_s_upstream_only() {
        let scenario = Scenario::parse(
            "version = 1
[chain.a.settings]
tcp_keepalives_idle = 5
[chain.c.settings]
tcp_user_timeout = 5000
[[faults]]
kind = \"partition\"
hop = \"a-b\"
at = \"1s\"
[[faults]]
kind = \"partition\"
hop = \"b-c\"
at = \"2s\"
",
            std::path::Path::new("/s/cut.toml"),
        )
        .unwrap();
        let caveats = proxy_partition_caveats(&scenario);
        assert_eq!(caveats.len(), 1, "{caveats:?}");
        assert!(
            caveats[0].starts_with(
                "/s/cut.toml:7: partition on a-b on the local backend: a's tcp_keepalives_idle "
            ),
            "{caveats:?}"
        );
    }
    use crate::observe::Sample;

    /// A sample at `t_ms` in which c, read at `read_ms`, showed heartbeat `seq`.
    fn seen(t_ms: u64, seq: Option<u64>, read_ms: u64) -> Sample {
        Sample {
            t_ms,
            nodes: vec![],
            lags: vec![],
            heartbeat_seq_on_c: seq,
            heartbeat_read_ms: seq.map(|_| read_ms),
        }
    }

    #[test]
    fn converged_once_c_shows_a_heartbeat_issued_after_the_heal() {
        // Healed at 10 s; heartbeat 41 was the first issued from then on. At 10.25 s c shows
        // 40, the newest issued before the heal, with no newer one issued yet: that is no
        // proof, writes committed between 40 and the heal may still be missing. c shows 41
        // when read at 10.62 s (the sample was taken at 10.5 s).
        let samples = [
            seen(10_000, Some(38), 10_010),
            seen(10_250, Some(40), 10_260),
            seen(10_500, Some(41), 10_620),
            seen(10_750, Some(43), 10_760),
        ];
        assert_eq!(
            convergence(&samples, Some(10_000), Some(41), Some(40_000)),
            Some(620)
        );
        // Never within the samples (or no heartbeat since the heal): the fence says when.
        let samples = [seen(10_000, Some(40), 10_010), seen(10_250, None, 0)];
        assert_eq!(
            convergence(&samples, Some(10_000), Some(41), Some(12_000)),
            Some(2_000)
        );
        assert_eq!(
            convergence(&samples, Some(10_000), None, Some(12_000)),
            Some(2_000)
        );
        assert_eq!(convergence(&samples, None, Some(41), Some(12_000)), None);
    }
}
