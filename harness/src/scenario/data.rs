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

/// The file must exist now, and open: finding out after A, B and C are up wastes the user's
/// minute. psql reads a script from a regular file; pg_restore also reads a directory-format
/// archive (`pg_dump -Fd`) in place, so `dump` may name one of those.
fn existing(src: &Source, base: &Path, v: &Spanned<String>, key: &str) -> Result<PathBuf> {
    let p = values::path(base, &values::non_empty(src, v, key)?);
    let shown = p.display();
    let err = |msg: String| src.error(v.span(), format!("{key}: {msg}"));
    let meta = match std::fs::metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err(format!("{shown} does not exist"))
                .with_hint("paths in [data] are relative to the scenario file's folder"));
        }
        Err(e) => return Err(err(format!("cannot read {shown}: {e}"))),
    };
    if meta.is_dir() && key == "dump" {
        // pg_dump -Fd writes its table of contents there; pg_restore cannot start without it.
        let toc = p.join("toc.dat");
        if !toc.is_file() {
            return Err(err(format!(
                "{shown} is a directory without toc.dat, so not a pg_dump directory-format archive"
            ))
            .with_hint("name the archive file, or a directory pg_dump -Fd wrote"));
        }
        return std::fs::File::open(&toc)
            .map(|_| p.clone())
            .map_err(|e| err(format!("cannot open {}: {e}", toc.display())));
    }
    if meta.is_dir() {
        return Err(err(format!("{shown} is a directory, not a psql script"))
            .with_hint("name the .sql file itself; a pg_dump directory archive goes in dump"));
    }
    if !meta.is_file() {
        return Err(err(format!("{shown} is not a regular file"))
            .with_hint("the file is streamed to the loading tool: copy it to a regular file"));
    }
    std::fs::File::open(&p)
        .map(|_| p.clone())
        .map_err(|e| err(format!("cannot open {shown}: {e}")))
}
