//! `[chain]`: which PostgreSQL, which backend, and per-node ports and settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_spanned::Spanned;

use super::raw::{RawChain, RawNode, RawSettings};
use super::source::Source;
use super::values;
use crate::error::Result;

pub use crate::backend::BackendKind;

/// PostgreSQL majors the chain runs on: logical decoding on a standby first shipped in 16.
pub const SUPPORTED_MAJORS: [u32; 3] = [16, 17, 18];

/// One node's overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePlan {
    /// Fixed port (None: a free one is picked).
    pub port: Option<u16>,
    /// PostgreSQL settings in file order, values as postgresql.conf takes them.
    pub settings: Vec<(String, String)>,
    /// Where each setting's value is in the scenario file (`path:line:col`), same order: the
    /// server's own check of a value comes after parsing.
    pub settings_at: Vec<String>,
    /// Where `port` is written (`path:line:col`), for a port found taken before the run.
    pub port_at: Option<String>,
}

impl NodePlan {
    /// Where setting `i` is written (`path:line:col`), else just `file`: a plan built in code
    /// has no positions.
    pub fn setting_at(&self, i: usize, file: &std::path::Path) -> String {
        self.settings_at
            .get(i)
            .cloned()
            .unwrap_or_else(|| file.display().to_string())
    }
}

/// The validated `[chain]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPlan {
    /// Where the nodes run.
    pub backend: BackendKind,
    /// PostgreSQL major (16, 17 or 18).
    pub pg_version: u32,
    /// Explicit binaries directory, absolute.
    pub pg_bin: Option<PathBuf>,
    /// Database replicated from A to C.
    pub database: String,
    /// B streams through a physical slot on A.
    pub physical_slot: bool,
    /// hot_standby_feedback on B.
    pub hot_standby_feedback: bool,
    /// Rehearse creating the logical slot on B against an idle A: wait until A has been idle,
    /// start creating the slot without nudging A, check it still waits after `idle_wait`, then
    /// nudge A (`pg_log_standby_snapshot()`).
    pub idle_primary: bool,
    /// With `idle_primary`, how long the slot creation must be seen waiting before A is nudged.
    pub idle_wait: Duration,
    /// How long a catch-up wait (B replaying, the fence reaching C) may take before the run
    /// says what it saw and stops.
    pub catchup_timeout: Duration,
    /// How long the subscription's initial copy of the tables may take: a large data set of
    /// your own needs more than the default.
    pub initial_copy_timeout: Duration,
    /// Primary.
    pub a: NodePlan,
    /// Hot standby.
    pub b: NodePlan,
    /// Target.
    pub c: NodePlan,
}

/// Settings the harness writes itself to reach the node; overriding them would cut it off.
const RESERVED_SETTINGS: [(&str, &str); 3] = [
    ("port", "set `port = N` under [chain.<node>] instead"),
    (
        "listen_addresses",
        "the harness listens on 127.0.0.1 and connects over TCP",
    ),
    (
        "unix_socket_directories",
        "the harness connects over TCP only",
    ),
];

pub(super) fn validate(src: &Source, base: &Path, raw: Option<RawChain>) -> Result<ChainPlan> {
    let Some(raw) = raw else {
        return Ok(ChainPlan::default());
    };
    let pg_version = match &raw.pg_version {
        None => crate::pg::DEFAULT_MAJOR,
        Some(v) => pg_version(src, v)?,
    };
    let pg_bin = match &raw.pg_bin {
        None => None,
        Some(v) => Some(values::path(base, &values::non_empty(src, v, "pg_bin")?)),
    };
    let database = match &raw.database {
        None => ChainPlan::default().database,
        Some(v) => database_name(src, v)?,
    };
    let idle_wait = match &raw.idle_wait {
        None => ChainPlan::default().idle_wait,
        Some(v) => values::duration_in(
            src,
            v,
            "idle_wait",
            Duration::from_secs(1)..=Duration::from_secs(60),
            "idle_wait is between 1s and 60s",
        )?,
    };
    let timeout = |v: &Option<Spanned<String>>, key: &str, default: Duration| match v {
        None => Ok(default),
        Some(v) => values::duration_in(
            src,
            v,
            key,
            Duration::from_secs(1)..=Duration::from_secs(7 * 24 * 3600),
            &format!("{key} is between 1s and 7 days"),
        ),
    };
    let d = ChainPlan::default();
    let catchup_timeout = timeout(&raw.catchup_timeout, "catchup_timeout", d.catchup_timeout)?;
    let initial_copy_timeout = timeout(
        &raw.initial_copy_timeout,
        "initial_copy_timeout",
        d.initial_copy_timeout,
    )?;
    let mut nodes = Vec::with_capacity(3);
    let mut seen: Vec<(u16, &str)> = Vec::new();
    for (name, node_raw) in [("a", raw.a), ("b", raw.b), ("c", raw.c)] {
        let (plan, port_span) = node(src, node_raw, name)?;
        if let (Some(port), Some(span)) = (plan.port, port_span) {
            if let Some((_, other)) = seen.iter().find(|(p, _)| *p == port) {
                return Err(src.error(
                    span,
                    format!("port {port} of {name} is already the port of {other}"),
                ));
            }
            seen.push((port, name));
        }
        nodes.push(plan);
    }
    let [a, b, c]: [NodePlan; 3] = nodes
        .try_into()
        .map_err(|_| crate::error::Error::internal("chain nodes: expected three"))?;
    Ok(ChainPlan {
        backend: raw.backend.unwrap_or_default(),
        pg_version,
        pg_bin,
        database,
        physical_slot: raw.physical_slot.unwrap_or(true),
        hot_standby_feedback: raw.hot_standby_feedback.unwrap_or(true),
        idle_primary: raw.idle_primary.unwrap_or(false),
        idle_wait,
        catchup_timeout,
        initial_copy_timeout,
        a,
        b,
        c,
    })
}

fn pg_version(src: &Source, v: &serde_spanned::Spanned<i64>) -> Result<u32> {
    let n = *v.get_ref();
    if (0..16).contains(&n) {
        return Err(src
            .error(
                v.span(),
                format!(
                    "pg_version = {n} is not supported: logical decoding on a standby (B feeding C) needs PostgreSQL 16 or later"
                ),
            )
            .with_hint("use 16, 17 or 18"));
    }
    values::int_in(
        src,
        v,
        "pg_version",
        16..=18,
        "supported versions are 16, 17 and 18",
    )
}

/// The node's plan, and where its port was written (for clash messages).
fn node(
    src: &Source,
    raw: Option<RawNode>,
    name: &str,
) -> Result<(NodePlan, Option<std::ops::Range<usize>>)> {
    let Some(raw) = raw else {
        return Ok((NodePlan::default(), None));
    };
    let port = match &raw.port {
        None => None,
        Some(p) => Some(values::int_in(
            src,
            p,
            "port",
            1..=65535,
            "a port is between 1 and 65535",
        )?),
    };
    let (settings, settings_at) = settings(src, raw.settings.unwrap_or_default(), name)?
        .into_iter()
        .unzip();
    Ok((
        NodePlan {
            port,
            settings,
            settings_at,
            port_at: raw.port.as_ref().map(|p| src.at(p.span())),
        },
        raw.port.map(|p| p.span()),
    ))
}

fn settings(src: &Source, raw: RawSettings, node: &str) -> Result<Vec<((String, String), String)>> {
    raw.0
        .into_iter()
        .map(|(k, v)| {
            let name = k.get_ref();
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !valid {
                return Err(src.error(
                    k.span(),
                    format!("[chain.{node}.settings]: {name:?} is not a PostgreSQL setting name"),
                ));
            }
            if let Some((_, why)) = RESERVED_SETTINGS
                .iter()
                .find(|(r, _)| r.eq_ignore_ascii_case(name))
            {
                return Err(src
                    .error(
                        k.span(),
                        format!("[chain.{node}.settings]: {name} is managed by pgrehearse"),
                    )
                    .with_hint(*why));
            }
            let value = v.get_ref().render();
            // One setting per line in the generated config: a line break (or any control
            // character) in a value would end it there and start another setting.
            if value.chars().any(char::is_control) {
                return Err(src
                    .error(
                        v.span(),
                        format!("[chain.{node}.settings]: the value of {name} has a line break or another control character"),
                    )
                    .with_hint("a PostgreSQL setting value is one line of printable text"));
            }
            Ok(((name.to_ascii_lowercase(), value), src.at(v.span())))
        })
        .collect()
}

impl Default for ChainPlan {
    fn default() -> Self {
        ChainPlan {
            backend: BackendKind::Local,
            pg_version: crate::pg::DEFAULT_MAJOR,
            pg_bin: None,
            database: "app".into(),
            physical_slot: true,
            hot_standby_feedback: true,
            idle_primary: false,
            idle_wait: Duration::from_secs(5),
            catchup_timeout: crate::chain::ChainSpec::default().catchup_timeout,
            initial_copy_timeout: crate::chain::ChainSpec::default().sync_timeout,
            a: NodePlan::default(),
            b: NodePlan::default(),
            c: NodePlan::default(),
        }
    }
}

/// The replicated database's name. It reaches pg_dump, psql and pg_restore as `-d`, where a
/// value with `=` or a URI would be taken as a connection string naming another server; and the
/// harness creates it, so it cannot be one that always exists.
fn database_name(src: &Source, v: &Spanned<String>) -> Result<String> {
    let name = values::non_empty(src, v, "database")?;
    let plain = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !plain {
        return Err(src.error(
            v.span(),
            format!(
                "database = {name:?}: use letters, digits, '_' and '-' (at most 63, starting with a letter or '_')"
            ),
        ));
    }
    if ["postgres", "template0", "template1"].contains(&name.as_str()) {
        return Err(src
            .error(
                v.span(),
                format!("database = {name:?}: the harness creates this database, and {name} always exists"),
            )
            .with_hint("name a database of your own, e.g. database = \"app\""));
    }
    Ok(name)
}
