//! Finding PostgreSQL binaries, checking their version, and fetching pinned ones when a machine
//! has none.
//!
//! Search order: an explicit directory (`--pg-bin`, `PGREHEARSE_PG_BIN`, the scenario), then
//! `pg_config` on PATH, then the usual install directories, then the harness cache, and finally a
//! pinned download into the cache (announced on stderr).

mod fetch;
mod pins;
mod settings;
mod version;

use std::path::{Path, PathBuf};

pub(crate) use fetch::create_public_dir;
pub use fetch::{cache_dir, install_pinned};
pub use pins::{PINS, Pin};
pub use settings::{KnownSettings, PROBE_SCRIPT, STANDBY_FLOOR, standby_floor};
pub use version::PgVersion;

use crate::error::{Error, Result};

/// The lowest major that can decode logical replication on a standby.
pub const MIN_MAJOR: u32 = 16;
/// The major used when nothing else is asked for.
pub const DEFAULT_MAJOR: u32 = 17;

/// Programs the chain needs from an installation.
pub const REQUIRED_TOOLS: &[&str] = &[
    "postgres",
    "initdb",
    "pg_basebackup",
    "psql",
    "pg_dump",
    "pg_restore",
];

/// Where an explicit bin directory given to the command line came from: clap folds
/// `PGREHEARSE_PG_BIN` into `--pg-bin`, and messages should name the one the user set.
pub fn explicit_source(dir: &Path) -> &'static str {
    match std::env::var_os("PGREHEARSE_PG_BIN") {
        Some(v) if Path::new(&v) == dir && !std::env::args().any(|a| a.starts_with("--pg-bin")) => {
            "PGREHEARSE_PG_BIN"
        }
        _ => "--pg-bin",
    }
}

/// A PostgreSQL installation the harness can run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PgInstall {
    /// Directory holding `postgres`, `initdb`, ...
    pub bin_dir: PathBuf,
    /// Version reported by `postgres --version`.
    pub version: PgVersion,
    /// Where it was found, for the report ("--pg-bin", "pg_config", "cache", ...).
    pub source: String,
}

impl PgInstall {
    /// Path of one program of the installation.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Inspect `bin_dir`: all required programs present and a version we can parse.
    ///
    /// # Errors
    /// Environment error naming the directory and the missing program.
    pub fn inspect(bin_dir: &Path, source: &str) -> Result<PgInstall> {
        for tool in REQUIRED_TOOLS {
            if !bin_dir.join(tool).is_file() {
                return Err(Error::environment(format!(
                    "PostgreSQL binaries at {} ({source}) lack {tool}",
                    bin_dir.display()
                ))
                .with_hint("point --pg-bin (or PGREHEARSE_PG_BIN) at a full server install's bin directory"));
            }
        }
        let version = PgVersion::of_binary(&bin_dir.join("postgres"))?;
        Ok(PgInstall {
            bin_dir: bin_dir.to_path_buf(),
            version,
            source: source.to_string(),
        })
    }

    /// Fail unless this installation can run the chain.
    ///
    /// # Errors
    /// Environment error saying why 16 is the floor.
    pub fn require_chain_capable(&self) -> Result<()> {
        if self.version.major < MIN_MAJOR {
            return Err(Error::environment(format!(
                "PostgreSQL {} at {} ({}) cannot run this chain: logical decoding on a standby \
                 (B feeding C) first appeared in PostgreSQL 16; on {} creating a logical slot on B fails",
                self.version,
                self.bin_dir.display(),
                self.source,
                self.version.major
            ))
            .with_hint(format!(
                "use PostgreSQL 16, 17 or 18: drop {} to let pgrehearse find or fetch {DEFAULT_MAJOR}, \
                 or run `pgrehearse pg install {DEFAULT_MAJOR}`",
                self.source
            )));
        }
        Ok(())
    }
}

/// How to look for binaries.
#[derive(Debug, Clone, Default)]
pub struct Locate {
    /// An explicit bin directory and where it came from ("--pg-bin", "PGREHEARSE_PG_BIN", "scenario").
    pub explicit: Option<(PathBuf, String)>,
    /// The major to look for (default 17).
    pub major: Option<u32>,
    /// Fetch pinned binaries when nothing suitable is installed.
    pub allow_fetch: bool,
}

impl Locate {
    /// The usual configuration: honour `PGREHEARSE_PG_BIN`, allow fetching.
    pub fn from_env(major: Option<u32>) -> Locate {
        let explicit = std::env::var_os("PGREHEARSE_PG_BIN")
            .filter(|v| !v.is_empty())
            .map(|v| (PathBuf::from(v), "PGREHEARSE_PG_BIN".to_string()));
        Locate {
            explicit,
            major,
            allow_fetch: true,
        }
    }

    /// Find (or fetch) an installation.
    ///
    /// # Errors
    /// Environment error when an explicit directory is unusable, or nothing suitable exists and
    /// fetching is off or fails.
    pub fn find(&self) -> Result<PgInstall> {
        if let Some((dir, source)) = &self.explicit {
            let inst = PgInstall::inspect(dir, source)?;
            inst.require_chain_capable()?;
            if let Some(m) = self.major.filter(|m| *m != inst.version.major) {
                tracing::warn!(
                    "{source} points at PostgreSQL {}, the scenario asks for {m}: using {}",
                    inst.version,
                    inst.version
                );
            }
            return Ok(inst);
        }
        let major = self.major.unwrap_or(DEFAULT_MAJOR);
        if major < MIN_MAJOR {
            return Err(too_old(major));
        }
        let mut seen = Vec::new();
        for (dir, source) in candidate_dirs(major) {
            match PgInstall::inspect(&dir, &source) {
                Ok(inst) if inst.version.major == major => return Ok(inst),
                Ok(inst) => seen.push(format!(
                    "{} ({source}): PostgreSQL {}",
                    dir.display(),
                    inst.version
                )),
                Err(_) => {}
            }
        }
        if let Some(inst) = fetch::cached(major)? {
            return Ok(inst);
        }
        if !self.allow_fetch {
            let mut e = Error::environment(format!("no PostgreSQL {major} binaries found"));
            if !seen.is_empty() {
                e = e.with_detail(format!("found but not {major}:\n  {}", seen.join("\n  ")));
            }
            let hint = if pins::pin_for(major).is_some() {
                format!("run `pgrehearse pg install {major}` or pass --pg-bin DIR")
            } else {
                format!(
                    "pgrehearse has no pinned build of {major} to install: pass --pg-bin DIR \
                     (16, 17 and 18 are the majors it knows)"
                )
            };
            return Err(e.with_hint(hint));
        }
        if !seen.is_empty() {
            tracing::info!(
                "installed PostgreSQL is not {major} ({}); using pinned binaries",
                seen.join("; ")
            );
        }
        install_pinned(major)
    }
}

/// The chain's floor, said with its reason.
fn too_old(major: u32) -> Error {
    Error::usage(format!(
        "PostgreSQL {major} cannot run this chain: logical decoding on a standby needs 16 or later"
    ))
}

/// For tests only: a folder that stands for `/` in the usual install directories, so that
/// stand-in installations there prove the order they are tried in.
pub const TEST_INSTALL_ROOT: &str = "PGREHEARSE_TEST_INSTALL_ROOT";

/// Directories where distributions and package managers put server binaries, in the order
/// they are tried. `pg_config` comes first because it names exactly one installation.
fn candidate_dirs(major: u32) -> Vec<(PathBuf, String)> {
    let mut dirs = Vec::new();
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        && out.status.success()
    {
        let d = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !d.is_empty() {
            dirs.push((PathBuf::from(d), "pg_config on PATH".to_string()));
        }
    }
    let root = std::env::var_os(TEST_INSTALL_ROOT)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from);
    for d in [
        format!("usr/lib/postgresql/{major}/bin"),
        format!("usr/pgsql-{major}/bin"),
        format!("opt/homebrew/opt/postgresql@{major}/bin"),
        format!("usr/local/opt/postgresql@{major}/bin"),
        format!("usr/local/pgsql-{major}/bin"),
    ] {
        dirs.push((root.join(d), "system install".to_string()));
    }
    dirs
}
