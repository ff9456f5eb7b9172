//! Copying the schema to C before replication starts: logical replication carries rows, never
//! DDL, so C must already have every published table.

use crate::error::{Result, ResultExt};
use crate::node::Node;

/// Dump the schema of `db` from `source` (B: the migration tooling reads the standby, never A)
/// and load it into `target` as role `load_as` (on an Aurora-like C, the non-superuser
/// migration role), without owners, grants, publications or subscriptions.
///
/// # Errors
/// Database error with pg_dump's or psql's stderr.
pub async fn copy_schema(source: &Node, target: &Node, db: &str, load_as: &str) -> Result<()> {
    tracing::info!(
        "copying schema of {db} from {} to {} (pg_dump --schema-only | psql)",
        source.name(),
        target.name()
    );
    let src = source.peer().clone();
    let dump_args: Vec<String> = vec![
        "-h".into(),
        src.host.clone(),
        "-p".into(),
        src.port.to_string(),
        "-U".into(),
        source.admin().login.user.clone(),
        "--schema-only".into(),
        "--no-owner".into(),
        "--no-privileges".into(),
        "--no-publications".into(),
        "--no-subscriptions".into(),
        "-d".into(),
        db.into(),
    ];
    let dump = target
        .control()
        .run_tool("pg_dump", &dump_args, None)
        .await
        .step_with(|| format!("dumping schema of {db} from {}", source.name()))?;
    let own = target.peer().clone();
    let load_args: Vec<String> = vec![
        "-h".into(),
        own.host.clone(),
        "-p".into(),
        own.port.to_string(),
        "-U".into(),
        load_as.to_string(),
        "-X".into(),
        "-q".into(),
        "-v".into(),
        "ON_ERROR_STOP=1".into(),
        "-d".into(),
        db.into(),
    ];
    target
        .control()
        .run_tool(
            "psql",
            &load_args,
            Some(crate::node::ToolInput::Bytes(dump)),
        )
        .await
        .step_with(|| format!("loading schema into {}", target.name()))?;
    Ok(())
}
