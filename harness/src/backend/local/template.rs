//! Cluster templates: `initdb` once per installation, then copy.
//!
//! initdb is the most CPU-hungry step of building a chain (bootstrap, catalog population); on a
//! two-core machine A's and C's initdb fight each other. A copied template plus a single-user
//! `ALTER ROLE ... PASSWORD` gives the same cluster in a fraction of the time. Two templates
//! are kept so that A and C still have different system identifiers, as separate clusters do.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::files::Copies;
use crate::error::{Error, Result, io_error};
use crate::node::Login;
use crate::os::ServerUser;
use crate::pg::PgInstall;

/// Arguments every cluster is created with. `--no-sync`: a rehearsal cluster is disposable, and
/// skipping initdb's fsync of ~1000 files saves most of its wall time; the running server still
/// fsyncs its WAL as configured.
pub(crate) const INITDB_ARGS: &[&str] = &[
    "--auth=scram-sha-256",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
];

fn template_root(pg: &PgInstall) -> PathBuf {
    let mut h = Sha256::new();
    h.update(pg.bin_dir.to_string_lossy().as_bytes());
    h.update(pg.version.to_string().as_bytes());
    for a in INITDB_ARGS {
        h.update(a.as_bytes());
    }
    let tag = hex::encode(&h.finalize()[..6]);
    crate::pg::cache_dir()
        .join("templates")
        .join(format!("{}-{tag}", pg.version))
}

/// Make `data_dir` a fresh cluster whose superuser is `superuser`, from template `slot`
/// (0 or 1), creating the template on first use.
///
/// # Errors
/// Environment or database error from initdb, the copy, or single-user mode.
pub(crate) async fn instantiate(
    pg: &PgInstall,
    user: &ServerUser,
    slot: u8,
    data_dir: &Path,
    superuser: &Login,
    copies: Arc<Copies>,
) -> Result<()> {
    let template = ensure(pg, user, slot, &superuser.user).await?;
    let (dst, owner) = (data_dir.to_path_buf(), user.clone());
    // Tens of MB of file copies: keep them off the async workers.
    tokio::task::spawn_blocking(move || {
        copies
            .copy(&template, &dst)
            .map_err(|e| io_error("cannot copy cluster template to", &dst, e))?;
        owner.own(&dst)
    })
    .await
    .map_err(|e| Error::internal(format!("template copy task: {e}")))??;
    set_password(pg, user, data_dir, superuser).await
}

async fn ensure(pg: &PgInstall, user: &ServerUser, slot: u8, superuser: &str) -> Result<PathBuf> {
    let root = template_root(pg);
    let dir = root.join(format!("{superuser}-{slot}"));
    if dir.join("PG_VERSION").is_file() && dir.with_extension("ok").is_file() {
        return Ok(dir);
    }
    crate::pg::create_public_dir(&root)?;
    let lock_path = root.join(format!(".{superuser}-{slot}.lock"));
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| io_error("cannot create", &lock_path, e))?;
    // Concurrent runs (parallel tests) build a template once; the others wait here.
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|_| lock))
        .await
        .map_err(|e| Error::internal(format!("template lock task: {e}")))?
        .map_err(|e| io_error("cannot lock", &lock_path, e))?;
    if dir.join("PG_VERSION").is_file() && dir.with_extension("ok").is_file() {
        return Ok(dir);
    }
    tracing::info!(
        "creating a cluster template for PostgreSQL {} (initdb, once per installation)",
        pg.version
    );
    let staging = root.join(format!(".{superuser}-{slot}.staging"));
    let _ = std::fs::remove_dir_all(&staging);
    user.private_dir(&staging)?;
    let pwfile = root.join(format!(".{superuser}-{slot}.pw"));
    // The template's password is replaced in every copy; this one is never used.
    user.private_file(
        &pwfile,
        crate::secret::Secret::generate().expose().as_bytes(),
    )?;
    let mut cmd = user.command(pg.tool("initdb"));
    cmd.arg("-D")
        .arg(staging.join("data"))
        .arg("-U")
        .arg(superuser)
        .arg(format!("--pwfile={}", pwfile.display()));
    cmd.args(INITDB_ARGS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // An interrupt drops this future: initdb must not go on writing into the cache.
        .kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|e| io_error("cannot run", pg.tool("initdb"), e))?;
    let _ = std::fs::remove_file(&pwfile);
    if !out.status.success() {
        return Err(Error::environment(format!(
            "initdb failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(staging.join("data"), &dir)
        .map_err(|e| io_error("cannot move template into", &dir, e))?;
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::write(dir.with_extension("ok"), pg.version.to_string())
        .map_err(|e| io_error("cannot write", &dir, e))?;
    drop(lock);
    Ok(dir)
}

/// Set the superuser's password in single-user mode, before the server ever listens. The
/// password goes through stdin, never the command line.
async fn set_password(
    pg: &PgInstall,
    user: &ServerUser,
    data_dir: &Path,
    superuser: &Login,
) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = user.command(pg.tool("postgres"));
    cmd.arg("--single")
        .arg("-D")
        .arg(data_dir)
        .arg("-j")
        .arg("postgres");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| io_error("cannot run", pg.tool("postgres"), e))?;
    let sql = format!(
        "ALTER ROLE {} PASSWORD {};\n",
        crate::util::quote_ident(&superuser.user),
        crate::util::quote_literal(superuser.password.expose())
    );
    if let Some(mut w) = child.stdin.take() {
        let _ = w.write_all(sql.as_bytes()).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| io_error("cannot wait for", pg.tool("postgres"), e))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || err.contains("ERROR") {
        return Err(Error::environment(format!(
            "setting the superuser password in single-user mode failed: {}",
            crate::secret::redact(err.trim())
        )));
    }
    Ok(())
}
