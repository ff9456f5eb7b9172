//! `[data]`: bring your own data, loaded into A before the chain is built.

use std::path::{Path, PathBuf};

use serde_spanned::Spanned;

use super::raw::RawData;
use super::source::Source;
use super::values;
use crate::error::Result;

/// Data loaded into A's database before B is cloned (the chain's own type).
pub use crate::chain::DataSeed;

pub(super) fn validate(
    src: &Source,
    base: &Path,
    raw: Option<Spanned<RawData>>,
) -> Result<Option<DataSeed>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let span = raw.span();
    let raw = raw.into_inner();
    let hint =
        "give either sql = \"seed.sql\" (a psql script) or dump = \"app.dump\" (a pg_dump archive)";
    match (&raw.sql, &raw.dump) {
        (Some(_), Some(dump)) => Err(src
            .error(dump.span(), "[data] takes either sql or dump, not both")
            .with_hint(hint)),
        (None, None) => Err(src.error(span, "[data] needs sql or dump").with_hint(hint)),
        (Some(sql), None) => Ok(Some(DataSeed::Sql(existing(src, base, sql, "sql")?))),
        (None, Some(dump)) => Ok(Some(DataSeed::Dump(existing(src, base, dump, "dump")?))),
    }
}

/// The file must exist now: finding out after A, B and C are up wastes the user's minute.
fn existing(src: &Source, base: &Path, v: &Spanned<String>, key: &str) -> Result<PathBuf> {
    let p = values::path(base, &values::non_empty(src, v, key)?);
    if !p.exists() {
        return Err(src
            .error(v.span(), format!("{key}: {} does not exist", p.display()))
            .with_hint("paths in [data] are relative to the scenario file's folder"));
    }
    Ok(p)
}
