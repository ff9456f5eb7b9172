//! Bringing your own data: seed A from a SQL script or a pg_dump archive before the chain is
//! built, so B gets it by base backup and C by the subscription's initial copy — the path real
//! data takes in a migration.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::node::{Node, ToolInput};

/// Where A's initial data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSeed {
    /// A psql script.
    Sql(PathBuf),
    /// A pg_dump archive (custom, tar or directory format).
    Dump(PathBuf),
}

impl DataSeed {
    /// The file it reads.
    pub fn path(&self) -> &Path {
        match self {
            DataSeed::Sql(p) | DataSeed::Dump(p) => p,
        }
    }
}

/// Load `seed` into database `db` on `a`. The file is streamed through stdin, so it needs to be
/// readable only by the harness, not by the server user.
///
/// # Errors
/// Usage error when the file cannot be read or does not load (it is the user's to fix),
/// quoting psql's / pg_restore's message with the file name in place of `<stdin>`.
pub async fn load_seed(a: &Node, db: &str, seed: &DataSeed) -> Result<()> {
    let path = seed.path();
    let conn_args = |tool_args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-h".into(),
            a.peer().host.clone(),
            "-p".into(),
            a.peer().port.to_string(),
            "-U".into(),
            a.admin().login.user.clone(),
            "-d".into(),
            db.into(),
        ];
        v.extend(tool_args.iter().map(|s| s.to_string()));
        v
    };
    let (tool, args, input) = match seed {
        DataSeed::Sql(p) => {
            readable(p, "seed file")?;
            (
                "psql",
                conn_args(&["-X", "-q", "-v", "ON_ERROR_STOP=1"]),
                Some(ToolInput::File(p.clone())),
            )
        }
        DataSeed::Dump(p) if p.is_dir() => {
            // A directory-format dump cannot come through stdin: pg_restore reads it in place.
            let staged = a.control().stage_dir(p).await?;
            let mut args = conn_args(&["--no-owner", "--no-privileges", "--exit-on-error"]);
            args.push(staged);
            ("pg_restore", args, None)
        }
        DataSeed::Dump(p) => {
            readable(p, "seed dump")?;
            (
                "pg_restore",
                conn_args(&["--no-owner", "--no-privileges", "--exit-on-error"]),
                Some(ToolInput::File(p.clone())),
            )
        }
    };
    tracing::info!("seeding a from {} ({tool})", path.display());
    a.control().run_tool(tool, &args, input).await.map(|_| ()).map_err(|e| {
        // The tool ran and refused the file: the user's to fix. Anything else (the tool cannot
        // run, a is gone, the file cannot be read) keeps its own kind.
        if e.kind() != crate::ErrorKind::Database {
            return e.context(format!("seeding a from {}", path.display()));
        }
        let msg = e.to_string().replace("<stdin>", &path.display().to_string());
        let mut out = Error::usage(format!("seeding a from {}: {msg}", path.display()))
            .with_node("a")
            .with_hint("fix the seed file, or run it by hand against a scratch database to see the full error");
        if let Some(d) = e.detail() {
            out = out.with_detail(d.to_string());
        }
        out
    })
}

/// Fail early, naming the file, when it cannot be opened: it is streamed to the tool later.
fn readable(p: &Path, what: &str) -> Result<()> {
    std::fs::File::open(p)
        .map(drop)
        .map_err(|e| Error::usage(format!("cannot read {what} {}", p.display())).with_source(e))
}

/// Plain-language warnings about the seeded schema that will bite during a migration.
///
/// # Errors
/// Database error.
pub async fn preflight_notes(a: &Node, db: &str) -> Result<Vec<String>> {
    let c = a.connect(db).await?;
    let rows = c
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relreplident::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                    c.relpersistence = 'u'
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgrehearse')
               AND n.nspname NOT LIKE 'pg_toast%'
             ORDER BY 1",
            &[],
        )
        .await?;
    let mut notes = Vec::new();
    for r in rows {
        let (name, ident, has_pk, unlogged): (String, String, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if unlogged {
            notes.push(format!(
                "{name} is UNLOGGED: its rows never reach B (unlogged tables are not WAL-logged) nor C \
                 (logical replication skips them); it is left out of the row comparison. Make it \
                 logged (ALTER TABLE ... SET LOGGED) before the cutover if C needs its data"
            ));
            continue;
        }
        if has_pk {
            continue;
        }
        // REPLICA IDENTITY FULL tables are covered by the report's own note on keyless
        // tables; the ones below will break once published.
        if matches!(ident.as_str(), "n" | "d") {
            notes.push(format!(
                "{name} has no primary key and no replica identity: once published, UPDATE and DELETE on it fail on A \
                 (\"cannot update table because it does not have a replica identity\"); add a key or REPLICA IDENTITY FULL"
            ));
        }
    }
    Ok(notes)
}
