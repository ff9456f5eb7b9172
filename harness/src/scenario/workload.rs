//! `[workload]`: the seeded writes run against A while the chain replicates.

use std::time::Duration;

use serde_spanned::Spanned;

use super::chain::ChainPlan;
use super::raw::{RawMix, RawRate, RawWorkload};
use super::source::Source;
use super::values;
use crate::error::{Error, Result};

pub use crate::workload::{BuiltinTable, Mix};

/// The validated `[workload]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadPlan {
    /// Run the workload at all (initial rows included).
    pub enabled: bool,
    /// Tables to create and write, without duplicates, in file order.
    pub tables: Vec<BuiltinTable>,
    /// Rows per table written before the chain is built.
    pub initial_rows: u64,
    /// Concurrent connections.
    pub connections: u32,
    /// Total operations per second (None: flat out).
    pub rate: Option<f64>,
    /// How long the workload runs.
    pub duration: Duration,
    /// Explicit workload seed; None derives it from the run seed.
    pub seed: Option<u64>,
    /// Operation mix.
    pub mix: Mix,
}

impl Default for WorkloadPlan {
    fn default() -> Self {
        WorkloadPlan {
            enabled: true,
            tables: BuiltinTable::ALL.to_vec(),
            initial_rows: 1000,
            connections: 4,
            rate: Some(500.0),
            duration: Duration::from_secs(30),
            seed: None,
            mix: Mix::default(),
        }
    }
}

/// Operations per second, at the least: one per 100 s keeps every pause between operations a
/// sane duration.
const MIN_RATE: f64 = 0.01;

/// Seeded rows per table: each is a ledger entry the ledger check holds in memory (about
/// 130 bytes), so this bounds it to well under a gigabyte for all five tables.
const MAX_INITIAL_ROWS: i64 = 1_000_000;

/// Connections the harness itself may hold on the primary at once (heartbeat, sampler, fence,
/// the verifier's parallel table reads, ledger checks), besides the workload's.
const HARNESS_CONNECTIONS: i64 = 20;

pub(super) fn validate(
    src: &Source,
    raw: Option<RawWorkload>,
    chain: &ChainPlan,
) -> Result<WorkloadPlan> {
    let d = WorkloadPlan::default();
    // No section is the defaults, which must fit on A as well.
    let raw = raw.unwrap_or_default();
    let tables = match &raw.tables {
        None => d.tables,
        Some(list) => tables(src, list)?,
    };
    let initial_rows = match &raw.initial_rows {
        None => d.initial_rows,
        Some(v) => values::int_in(
            src,
            v,
            "initial_rows",
            0..=MAX_INITIAL_ROWS,
            "between 0 and 1000000 rows per table: the ledger vouches for every seeded row and \
             is checked in memory; for a bigger data set, seed your own with [data]",
        )?,
    };
    let connections = match &raw.connections {
        None => d.connections,
        Some(v) => values::int_in(
            src,
            v,
            "connections",
            1..=1000,
            "the workload needs between 1 and 1000 connections",
        )?,
    };
    if raw.enabled.unwrap_or(true) {
        room_on_the_primary(src, raw.connections.as_ref(), connections, chain)?;
    }
    let rate = match &raw.rate {
        None => d.rate,
        Some(v) => rate(src, v)?,
    };
    let duration = match &raw.duration {
        None => d.duration,
        Some(v) => values::duration(src, v, "duration")?,
    };
    if let Some(v) = &raw.duration
        && duration.is_zero()
        && raw.enabled.unwrap_or(true)
    {
        // It would write nothing and leave no time for any fault, while the report still
        // showed a workload that ran.
        return Err(src
            .error(
                v.span(),
                format!(
                    "duration = {:?}: the workload must run for some time",
                    v.get_ref()
                ),
            )
            .with_hint("set enabled = false to run without a workload"));
    }
    let seed = match &raw.seed {
        None => None,
        Some(v) => Some(values::seed(src, v, "workload.seed")?),
    };
    let mix = match raw.mix {
        None => d.mix,
        Some(m) => mix(src, m)?,
    };
    Ok(WorkloadPlan {
        enabled: raw.enabled.unwrap_or(true),
        tables,
        initial_rows,
        connections,
        rate,
        duration,
        seed,
        mix,
    })
}

/// The workload's connections fit in A's max_connections with the harness's own: otherwise
/// the run would fail only after the whole chain was built ("too many clients").
fn room_on_the_primary(
    src: &Source,
    written: Option<&Spanned<i64>>,
    connections: u32,
    chain: &ChainPlan,
) -> Result<()> {
    let setting = chain
        .a
        .settings
        .iter()
        .enumerate()
        .rev()
        .find(|(_, (k, _))| k == "max_connections")
        .and_then(|(i, (_, v))| Some((i, v.trim().parse::<i64>().ok()?)));
    // PostgreSQL's default; the harness does not change it.
    let max = setting.map_or(100, |(_, max)| max);
    if i64::from(connections) + HARNESS_CONNECTIONS > max {
        let msg = format!(
            "connections = {connections}: a allows max_connections = {max}, and the harness needs up to {HARNESS_CONNECTIONS} of them besides the workload's"
        );
        // Point at what the user wrote: the connections, else the setting that is too low.
        let err = match (written, setting) {
            (Some(v), _) => src.error(v.span(), msg),
            (None, Some((i, _))) => Error::usage(format!(
                "{}: {msg} (connections = {connections} is the default)",
                chain.a.setting_at(i, src.path())
            )),
            (None, None) => Error::usage(format!("{}: {msg}", src.path().display())),
        };
        return Err(err
            .with_hint(format!(
                "lower connections to at most {}, or raise max_connections under [chain.a.settings] (and [chain.b.settings], which must be at least as high)",
                (max - HARNESS_CONNECTIONS).max(0)
            )));
    }
    Ok(())
}

fn tables(src: &Source, list: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<BuiltinTable>> {
    let names = BuiltinTable::ALL.map(BuiltinTable::short_name).join(", ");
    if list.get_ref().is_empty() {
        return Err(src
            .error(list.span(), "tables must name at least one table")
            .with_hint(format!(
                "choose from {names}, or set enabled = false to run without a workload"
            )));
    }
    let mut out = Vec::new();
    for item in list.get_ref() {
        let t = BuiltinTable::from_name(item.get_ref()).ok_or_else(|| {
            src.error(
                item.span(),
                format!("unknown workload table {:?}", item.get_ref()),
            )
            .with_hint(format!("the workload's tables are {names}"))
        })?;
        if out.contains(&t) {
            return Err(src.error(
                item.span(),
                format!("table {} is listed twice", t.short_name()),
            ));
        }
        out.push(t);
    }
    Ok(out)
}

fn rate(src: &Source, v: &Spanned<RawRate>) -> Result<Option<f64>> {
    match *v.get_ref() {
        RawRate::Max => Ok(None),
        RawRate::PerSecond(r) if r.is_finite() && r >= MIN_RATE => Ok(Some(r)),
        RawRate::PerSecond(r) => Err(src
            .error(
                v.span(),
                format!("rate = {r}: the rate must be at least {MIN_RATE} operations per second"),
            )
            .with_hint("use rate = \"max\" to run flat out")),
    }
}

fn mix(src: &Source, m: Spanned<RawMix>) -> Result<Mix> {
    let span = m.span();
    let m = m.into_inner();
    let weight = |v: &Option<Spanned<i64>>, key: &str| -> Result<u32> {
        match v {
            None => Ok(0),
            Some(v) => values::int_in(
                src,
                v,
                key,
                // Their sum must fit the draw: only the ratio matters anyway.
                0..=1_000_000,
                "weights are integers from 0 to 1000000 (only their ratio matters)",
            ),
        }
    };
    let mix = Mix {
        insert: weight(&m.insert, "insert")?,
        update: weight(&m.update, "update")?,
        delete: weight(&m.delete, "delete")?,
    };
    if mix.insert == 0 && mix.update == 0 && mix.delete == 0 {
        return Err(src
            .error(span, "[workload.mix]: all weights are zero")
            .with_hint("give at least one of insert, update, delete a positive weight"));
    }
    // Checked here too, not only by the workload: there it would fail after the chain is built.
    if mix.insert == 0 {
        return Err(src.error(span, "[workload.mix]: insert = 0").with_hint(
            "updates and deletes need rows to work on, and each connection's seeded rows run \
                 out: give insert a positive weight (e.g. insert = 1, update = 50)",
        ));
    }
    Ok(mix)
}
