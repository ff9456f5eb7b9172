//! Where pgrehearse finds PostgreSQL, in order: `--pg-bin`, `PGREHEARSE_PG_BIN`, `pg_config` on
//! PATH, the usual install folders, its cache. Shown with stand-in installations (a `postgres`
//! that only reports its version) through `pgrehearse pg which`, which never fetches; the
//! install folders under a stand-in for `/` (`PGREHEARSE_TEST_INSTALL_ROOT`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::cli;

/// A stand-in bin directory `root/name/bin` whose `postgres --version` says `version`.
fn fake_install(root: &Path, name: &str, version: &str) -> PathBuf {
    stand_in(&root.join(name).join("bin"), version)
}

/// Make `bin` a stand-in bin directory whose `postgres --version` says `version`.
fn stand_in(bin: &Path, version: &str) -> PathBuf {
    std::fs::create_dir_all(bin).unwrap();
    for tool in harness::pg::REQUIRED_TOOLS {
        let body = if *tool == "postgres" {
            format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n")
        } else {
            "#!/bin/sh\nexit 1\n".to_string()
        };
        executable(&bin.join(tool), &body);
    }
    bin.to_path_buf()
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

/// The usual install folders of 17, in the order they are tried, relative to `/`.
const INSTALL_DIRS: [&str; 5] = [
    "usr/lib/postgresql/17/bin",
    "usr/pgsql-17/bin",
    "opt/homebrew/opt/postgresql@17/bin",
    "usr/local/opt/postgresql@17/bin",
    "usr/local/pgsql-17/bin",
];

#[test]
fn after_pg_config_the_install_folders_then_the_cache_are_tried_in_order() {
    let Some(pin) = harness::pg::PINS
        .iter()
        .find(|p| p.major == 17 && p.arch == std::env::consts::ARCH)
    else {
        eprintln!(
            "SKIPPED: no pinned 17 for {}, so no cache to find it in",
            std::env::consts::ARCH
        );
        return;
    };
    let root = tempfile::tempdir().unwrap();
    // The cache as `pg install 17` leaves it: the pinned build's folder, marked complete.
    let cache = root.path().join("cache");
    let pinned = cache
        .join("pg")
        .join(format!("{}-{}", pin.version, pin.arch));
    let cached = stand_in(&pinned.join(pin.root).join("bin"), "17.80");
    std::fs::write(pinned.join(".complete"), "").unwrap();
    // Each install folder, under a stand-in for `/`, with a version of its own.
    let system = root.path().join("system");
    let installs: Vec<(PathBuf, String)> = INSTALL_DIRS
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let version = format!("17.8{}", i + 1);
            (stand_in(&system.join(dir), &version), version)
        })
        .collect();
    let from_pg_config = fake_install(root.path(), "pg-config", "17.90");
    let with_pg_config = path_with_pg_config(root.path(), &from_pg_config);
    // A pg_config that fails, in front of any real one on the machine.
    let failing = root.path().join("no-pg-config");
    std::fs::create_dir_all(&failing).unwrap();
    executable(&failing.join("pg_config"), "#!/bin/sh\nexit 1\n");
    let without_pg_config = format!("{}:/usr/bin:/bin", failing.display());
    let which_with = |path: &str| {
        which(
            &[
                ("PATH", path),
                ("PGREHEARSE_CACHE", cache.to_str().unwrap()),
                (harness::pg::TEST_INSTALL_ROOT, system.to_str().unwrap()),
            ],
            None,
        )
    };
    let found = |out: &str, version: &str, dir: &Path, source: &str| {
        out.contains(&format!(
            "PostgreSQL {version} at {} ({source})",
            dir.display()
        ))
    };

    // pg_config before every install folder.
    let (code, out) = which_with(&with_pg_config);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        found(&out, "17.90", &from_pg_config, "pg_config on PATH"),
        "{out}"
    );
    // Then each install folder, found once those before it are gone.
    for (dir, version) in &installs {
        let (code, out) = which_with(&without_pg_config);
        assert_eq!(code, Some(0), "{out}");
        assert!(found(&out, version, dir, "system install"), "{out}");
        std::fs::remove_dir_all(dir).unwrap();
    }
    // Then the cache.
    let (code, out) = which_with(&without_pg_config);
    assert_eq!(code, Some(0), "{out}");
    assert!(found(&out, "17.80", &cached, "pgrehearse cache"), "{out}");
}

#[test]
fn an_installation_of_another_major_is_passed_over_and_named() {
    let root = tempfile::tempdir().unwrap();
    let old = fake_install(root.path(), "old", "15.99");
    let path = path_with_pg_config(root.path(), &old);
    // An empty cache and empty install folders (whatever this machine has installed): nothing
    // of 17 anywhere, and `pg which` does not fetch.
    let cache = root.path().join("cache");
    let system = root.path().join("system");
    let (code, out) = which(
        &[
            ("PATH", &path),
            ("PGREHEARSE_CACHE", cache.to_str().unwrap()),
            (harness::pg::TEST_INSTALL_ROOT, system.to_str().unwrap()),
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
