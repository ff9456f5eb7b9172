//! Scenario files: a TOML description of one rehearsal, checked and turned into a plan.
//!
//! ```toml
//! version = 1                 # required
//! name = "smoke"              # default: the file's stem
//! seed = 42                   # absent: random, chosen at load and printed; below 2^53
//!
//! [chain]                     # backend, pg_version (16-18), pg_bin, database,
//! pg_version = 17             # physical_slot, hot_standby_feedback,
//! idle_primary = true         # rehearse slot creation on B against an idle A
//! idle_wait = "5s"            # (the slot must still wait after idle_wait; 1s-60s)
//! catchup_timeout = "2m"      # catch-up waits (B replaying, C reaching the fence); 1s-7 days
//! initial_copy_timeout = "10m"  # the subscription's initial copy of your data; 1s-7 days
//! [chain.b.settings]          # [chain.a|b|c] port and settings
//! max_slot_wal_keep_size = "1GB"
//!
//! [data]                      # bring your own data: sql = "x.sql" or dump = "x.dump"
//! [workload]                  # enabled, tables, initial_rows, connections, rate, duration,
//! [workload.mix]              # seed; mix weights insert/update/delete
//!
//! [[faults]]                  # the fault timeline, in file order; one entry per fault
//! kind = "latency"            # latency, bandwidth, loss, partition, link_down (+ hop),
//! hop = "a-b"                 # kill, stop, pause (+ node = "a"|"b"|"c"), replay_pause,
//! latency = "500ms"           # replay_delay, replicator_stop, primary_failure (once),
//! jitter = "50ms"             # catalog_churn, checkpoint
//! at = "10s"                  # from the start of the workload; before it ends
//! heal_at = "40s"             # optional, after at, at most catchup_timeout after the
//!                             # workload; not for primary_failure, checkpoint
//! # kind-specific keys: latency/jitter (latency), rate = "1MB/s"|"1MiB/s"|bytes (bandwidth),
//! # loss = "5%" (loss), hop = "a-b"|"b-c" (link kinds),
//! # mode = "fast"|"immediate" (stop; not "smart", which the harness's own sessions would
//! # hold up for good), delay (replay_delay), every (catalog_churn)
//! # Link faults on a hop may overlap; other faults with a heal may not on one node (replay_*
//! # act on b, replicator_stop on c, catalog_churn on a). Around a primary_failure: nothing on
//! # a then or after, b up at that moment, no replay_* on b from then on.
//!
//! [observe]                   # sample_every (250ms), heartbeat_every (100ms); 10ms to 10s
//!
//! [expect]                    # consistent, max_catchup, sequences_match, max_e2e_lag,
//! slot_survives = true        # slot_survives, or slot_invalidated = "wal_removed" |
//! rpo_max_writes = 0          #   "rows_removed" | "wal_level_insufficient" | "idle_timeout" |
//! converges_within = "30s"    #   "any"; rpo_max_writes (needs the workload),
//!                             # consistent_after_heal, converges_within (needs a fault that
//!                             # heals), slot_waits_for_nudge (needs idle_primary)
//! ```
//!
//! Every mistake found here is reported as `file:line:column: message` pointing at the
//! offending key or value, as a [`crate::ErrorKind::Usage`] error, often with a hint. A file
//! that cannot be read is an environment error naming its path. Checks made later, against the
//! backend and the server (packet loss on the local backend, settings the server rejects), live
//! in `crate::run` and name the file and the line (and, for settings, the column).
//!
//! How the code is laid out: `raw` is the file's serde shape (syntax, unknown keys, types);
//! one file per section turns its raw part into a validated plan. A new section is a raw field
//! plus a new file.
//!
//! The BYO-data section is `[data]`, not `[seed]`: TOML cannot hold both `seed = 42` and a
//! `[seed]` table, and the run seed keeps the short name because `--seed` replays it.

mod chain;
mod clashes;
mod data;
mod expect;
mod faults;
mod observe;
mod raw;
mod seed;
mod source;
mod values;
mod workload;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use chain::{BackendKind, ChainPlan, NodePlan, SUPPORTED_MAJORS};
pub use data::DataSeed;
pub use expect::{Expectations, SLOT_INVALIDATION_REASONS};
pub use observe::ObservePlan;
pub use seed::{MAX_SEED, derive_seed, seed_too_large};
pub use workload::{BuiltinTable, Mix, WorkloadPlan};

use crate::chain::ChainSpec;
use crate::error::{Result, io_error};
use crate::faults::FaultSpec;
use raw::RawScenario;
use source::Source;

/// The only scenario format version there is.
pub const FORMAT_VERSION: i64 = 1;

/// A validated scenario: paths absolute, durations parsed, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The scenario file, absolute (or the origin given to [`Scenario::parse`], made absolute).
    pub path: PathBuf,
    /// Name used for run directories and reports.
    pub name: String,
    /// Free text for the report.
    pub description: Option<String>,
    /// The run seed, if the file fixes one.
    pub seed: Option<u64>,
    /// The chain to build.
    pub chain: ChainPlan,
    /// Data loaded into A before the chain is built.
    pub data: Option<DataSeed>,
    /// The workload.
    pub workload: WorkloadPlan,
    /// The fault timeline, in file order; times are from the start of the workload.
    pub faults: Vec<FaultSpec>,
    /// How often the chain is sampled.
    pub observe: ObservePlan,
    /// What must hold for the run to pass.
    pub expect: Expectations,
}

impl Scenario {
    /// Read and validate a scenario file.
    ///
    /// # Errors
    /// Environment error when the file cannot be read; usage error `file:line:column: ...`
    /// for anything wrong inside it.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io_error("cannot read scenario file", path, e))?;
        Self::parse(&text, path)
    }

    /// Validate scenario text. `origin` names the file in messages, gives the default name,
    /// and anchors relative paths (its folder); it need not exist.
    ///
    /// # Errors
    /// Usage error `origin:line:column: ...` for anything wrong in the text.
    pub fn parse(text: &str, origin: &Path) -> Result<Scenario> {
        let src = Source::new(origin, text);
        let raw: RawScenario = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let path = std::path::absolute(origin).unwrap_or_else(|_| origin.to_path_buf());
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        match &raw.version {
            None => {
                return Err(src
                    .error(0..0, "missing `version`")
                    .with_hint(format!("start the file with version = {FORMAT_VERSION}")));
            }
            Some(v) if *v.get_ref() != FORMAT_VERSION => {
                return Err(src.error(
                    v.span(),
                    format!(
                        "version = {}: this pgrehearse reads scenario format version {FORMAT_VERSION} only",
                        v.get_ref()
                    ),
                ));
            }
            Some(_) => {}
        }
        let name = match &raw.name {
            Some(v) => values::non_empty(&src, v, "name")?,
            None => origin
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "scenario".into()),
        };
        let seed = match &raw.seed {
            None => None,
            Some(v) if v.get_ref().is_table() => {
                return Err(src
                    .error(
                        v.span(),
                        "`seed` is the run's random seed (an integer), not a table",
                    )
                    .with_hint(
                        "to load your own data, use [data] with sql = \"...\" or dump = \"...\"",
                    ));
            }
            Some(v) => Some(values::seed(&src, v, "seed")?),
        };
        // Later sections are checked against earlier ones: fault times against the workload's
        // duration and the catch-up time, expectations against the chain, the workload and the
        // faults (an expectation nothing in the run can judge is refused).
        let chain = chain::validate(&src, &base, raw.chain)?;
        let data = data::validate(&src, &base, raw.data)?;
        let workload = workload::validate(&src, raw.workload, &chain)?;
        let faults = faults::validate(&src, raw.faults, &workload, &chain)?;
        let observe = observe::validate(&src, raw.observe)?;
        let expect = expect::validate(&src, raw.expect, &chain, &workload, &faults, &observe)?;
        Ok(Scenario {
            name,
            description: raw.description.filter(|d| !d.trim().is_empty()),
            seed,
            chain,
            data,
            workload,
            faults,
            observe,
            expect,
            path,
        })
    }

    /// The file's seed, or a fresh random one. The caller prints it: a run is replayable only
    /// when its seed is known.
    pub fn seed_or_random(&self) -> u64 {
        // Below 2^53: report.json carries it as a number, and JSON tools that read numbers as
        // doubles (jq 1.6, JavaScript) would round a larger one into another run's seed.
        self.seed.unwrap_or_else(|| rand::random::<u64>() >> 11)
    }

    /// The workload's seed for a run seeded with `run_seed`: the file's explicit
    /// `[workload] seed`, else derived from `run_seed`.
    pub fn workload_seed(&self, run_seed: u64) -> u64 {
        self.workload
            .seed
            .unwrap_or_else(|| derive_seed(run_seed, "workload"))
    }

    /// The chain to build, on the library's [`ChainSpec`] (names keep their
    /// defaults; the caller seeds the link proxies).
    pub fn chain_spec(&self) -> ChainSpec {
        let c = &self.chain;
        let d = ChainSpec::default();
        ChainSpec {
            database: c.database.clone(),
            a_settings: c.a.settings.clone(),
            b_settings: c.b.settings.clone(),
            c_settings: c.c.settings.clone(),
            ports: [c.a.port, c.b.port, c.c.port],
            physical_slot: c.physical_slot.then(|| {
                d.physical_slot
                    .clone()
                    .unwrap_or_else(|| "b_physical".into())
            }),
            hot_standby_feedback: c.hot_standby_feedback,
            catchup_timeout: c.catchup_timeout,
            sync_timeout: c.initial_copy_timeout,
            // Proxies only when a link fault needs one: they cost a copy of every byte.
            proxies: self.faults.iter().any(|f| f.kind.hop().is_some()),
            delayed_hops: self
                .faults
                .iter()
                .filter_map(|f| match f.kind {
                    crate::faults::FaultKind::Latency { hop, .. } => Some(hop),
                    _ => None,
                })
                .collect(),
            idle_primary: c.idle_primary.then_some(c.idle_wait),
            ..d
        }
    }
}
