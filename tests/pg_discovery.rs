//! Where pgrehearse finds PostgreSQL, in order: `--pg-bin`, `PGREHEARSE_PG_BIN`, `pg_config` on
//! PATH, the usual install folders, its cache. Shown with stand-in installations (a `postgres`
//! that only reports its version) through `pgrehearse pg which`, which never fetches.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::cli;

/// A stand-in bin directory whose `postgres --version` says `version`.
fn fake_install(root: &Path, name: &str, version: &str) -> PathBuf {
    let bin = root.join(name).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in harness::pg::REQUIRED_TOOLS {
        let body = if *tool == "postgres" {
            format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n")
        } else {
            "#!/bin/sh\nexit 1\n".to_string()
        };
        executable(&bin.join(tool), &body);
    }
    bin
}

fn executable(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A PATH whose `pg_config --bindir` names `bin`.
fn path_with_pg_config(root: &Path, bin: &Path) -> String {
    let dir = root.join("path");
    std::fs::create_dir_all(&dir).unwrap();
    executable(
        &dir.join("pg_config"),
        &format!("#!/bin/sh\necho '{}'\n", bin.display()),
    );
    format!("{}:/usr/bin:/bin", dir.display())
}

/// `pgrehearse pg which 17` with `env`, and optionally `--pg-bin`: (exit code, stdout+stderr).
fn which(env: &[(&str, &str)], pg_bin: Option<&Path>) -> (Option<i32>, String) {
    let mut args = vec!["pg", "which", "17"];
    let dir;
    if let Some(d) = pg_bin {
        dir = d.to_str().unwrap().to_string();
        args.extend(["--pg-bin", &dir]);
    }
    // The caller's own PGREHEARSE_PG_BIN would win over everything these tests set up.
    let mut env = env.to_vec();
    if !env.iter().any(|(name, _)| *name == "PGREHEARSE_PG_BIN") {
        env.push(("PGREHEARSE_PG_BIN", ""));
    }
    let out = cli::run_with_env(&args, &env);
    (
        out.status.code(),
        format!("{}{}", cli::stdout(&out), cli::stderr(&out)),
    )
}

#[test]
fn binaries_are_looked_for_in_the_documented_order() {
    let root = tempfile::tempdir().unwrap();
    let from_pg_config = fake_install(root.path(), "pg-config", "17.91");
    let from_env = fake_install(root.path(), "env", "17.92");
    let from_flag = fake_install(root.path(), "flag", "17.93");
    let path = path_with_pg_config(root.path(), &from_pg_config);

    // pg_config on PATH comes before the cache (which holds a real 17 after CI's `pg install`).
    let (code, out) = which(&[("PATH", &path)], None);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("PostgreSQL 17.91 at {}", from_pg_config.display())),
        "{out}"
    );
    assert!(out.contains("pg_config"), "the source is named: {out}");

    // PGREHEARSE_PG_BIN comes before pg_config.
    let env_dir = from_env.to_str().unwrap();
    let (code, out) = which(&[("PATH", &path), ("PGREHEARSE_PG_BIN", env_dir)], None);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("PostgreSQL 17.92"), "{out}");
    assert!(out.contains("(PGREHEARSE_PG_BIN)"), "{out}");

    // --pg-bin comes before everything.
    let (code, out) = which(
        &[("PATH", &path), ("PGREHEARSE_PG_BIN", env_dir)],
        Some(&from_flag),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("PostgreSQL 17.93"), "{out}");
    assert!(out.contains("(--pg-bin)"), "{out}");
}

#[test]
fn an_installation_of_another_major_is_passed_over_and_named() {
    if Path::new("/usr/lib/postgresql/17/bin/postgres").exists() {
        eprintln!("SKIPPED: a system PostgreSQL 17 would be found after the stand-in");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let old = fake_install(root.path(), "old", "15.99");
    let path = path_with_pg_config(root.path(), &old);
    // An empty cache: nothing of 17 anywhere, and `pg which` does not fetch.
    let cache = root.path().join("cache");
    let (code, out) = which(
        &[
            ("PATH", &path),
            ("PGREHEARSE_CACHE", cache.to_str().unwrap()),
        ],
        None,
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no PostgreSQL 17 binaries found"), "{out}");
    assert!(
        out.contains(&format!(
            "{} (pg_config on PATH): PostgreSQL 15.99",
            old.display()
        )),
        "what was found and passed over is named: {out}"
    );
    assert!(out.contains("pgrehearse pg install 17"), "{out}");
}

/// A major below the chain's floor is refused for its reason, even by `pg install`; one
/// pgrehearse has no pin for is not offered `pg install`.
#[test]
fn majors_without_a_build_to_fetch_are_refused_with_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let env = [
        ("PGREHEARSE_CACHE", cache.to_str().unwrap()),
        ("PGREHEARSE_PG_BIN", ""),
    ];
    let out = cli::run_with_env(&["pg", "install", "15"], &env);
    let text = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "PostgreSQL 15 cannot run this chain: logical decoding on a standby needs 16 or later"
        ),
        "{text}"
    );
    assert!(!cache.exists(), "nothing fetched: {text}");

    let out = cli::run_with_env(&["pg", "which", "99"], &env);
    let text = cli::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("no pinned build of 99"), "{text}");
    assert!(!text.contains("pg install 99"), "{text}");
}
