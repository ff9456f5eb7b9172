//! Passwords the harness generates, and scrubbing them out of anything printed.
//!
//! A [`Secret`] never shows its value through `Display` or `Debug`; the only way out is
//! [`Secret::expose`], which call sites use when building a connection.

use std::fmt;
use std::sync::LazyLock;

use rand::RngExt;
use regex::Regex;

/// A password. Printing it prints `***`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A fresh random password (24 alphanumerics from the OS-seeded generator, never from the
    /// rehearsal seed: replaying a seed must not replay credentials).
    pub fn generate() -> Self {
        const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let mut rng = rand::rng();
        Secret(
            (0..24)
                .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
                .collect(),
        )
    }

    /// Wrap an existing password (from a state file or the user).
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The password itself, for building a connection. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

static PASSWORD_KV: LazyLock<Regex> = LazyLock::new(|| {
    // Bare value, a libpq-quoted value, or one embedded in an SQL literal (quotes doubled).
    Regex::new(r#"(?i)(password\s*=\s*)(''(?:[^']|'[^'])*''|'(?:[^'\\]|\\.)*'|[^\s']+)"#)
        .expect("static regex")
});
static PASSWORD_SQL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)(password\s+)'(?:[^']|'')*'"#).expect("static regex"));
static PASSWORD_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@"#).expect("static regex")
});

/// Replace every password in `s` (conninfo `password=...`, SQL `PASSWORD '...'`, URLs
/// `user:pw@`) with `***`. Applied to every error message and log line that may quote a
/// connection string or a statement.
pub fn redact(s: &str) -> String {
    let s = PASSWORD_KV.replace_all(s, "${1}***");
    let s = PASSWORD_SQL.replace_all(&s, "${1}'***'");
    PASSWORD_URL.replace_all(&s, "${1}***@").into_owned()
}

/// Replace every password of `secrets` (and anything [`redact`] recognises) in each file under
/// `dir` with `***`. Server logs quote statements — a failing `CREATE SUBSCRIPTION ...
/// CONNECTION '... password=...'`, or every statement with `log_statement = all` — and they
/// stay in the run directory after the run. Returns the files changed.
///
/// The folder belongs to the server user and the harness may scrub it as root: only plain
/// files and real folders are scrubbed, each opened without following links and below the
/// folder already opened, so nothing the server user plants (or swaps in meanwhile) can lead
/// the rewrite to a file elsewhere. Links, special files and files with a second name are left
/// alone.
///
/// # Errors
/// The first file that cannot be read or rewritten.
pub fn scrub_dir(dir: &std::path::Path, secrets: &[&Secret]) -> std::io::Result<usize> {
    match open_dir(dir) {
        Ok(d) => scrub_open_dir(&d, secrets),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn open_dir(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn scrub_open_dir(dir: &std::fs::File, secrets: &[&Secret]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // Names are looked up in the folder this process holds open, whatever is at its path by
    // now: /proc/self/fd/N is that very folder.
    let here = std::path::PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut changed = 0;
    for e in std::fs::read_dir(&here)?.flatten() {
        let Ok(kind) = e.file_type() else { continue };
        let path = here.join(e.file_name());
        if kind.is_dir() {
            // Replaced by a link since it was listed: not followed.
            if let Ok(sub) = open_dir(&path) {
                changed += scrub_open_dir(&sub, secrets)?;
            }
        } else if kind.is_file() && scrub_file(&path, secrets)? {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Scrub one file in place (it keeps its owner and mode); false when nothing changed or when it
/// is not a plain file of its own by the time it is opened.
fn scrub_file(path: &std::path::Path, secrets: &[&Secret]) -> std::io::Result<bool> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let mut f = match opened {
        Ok(f) => f,
        // Replaced by a link since it was listed.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(false),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() || meta.nlink() > 1 {
        return Ok(false);
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out = redact(&text);
    for s in secrets.iter().filter(|s| !s.0.is_empty()) {
        out = out.replace(&s.0, "***");
    }
    if out == text {
        return Ok(false);
    }
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(out.as_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_a_folder_removes_every_password_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pw = Secret::generate();
        let logged = format!(
            "ERROR:  could not connect\nSTATEMENT:  CREATE SUBSCRIPTION s CONNECTION 'host=b user=r password={}' PUBLICATION p\nLOG:  also {} bare\n",
            pw.expose(),
            pw.expose()
        );
        std::fs::create_dir(dir.path().join("c")).unwrap();
        std::fs::write(dir.path().join("c/postgresql.log"), &logged).unwrap();
        std::fs::write(dir.path().join("a.log"), "LOG:  ready\n").unwrap();
        assert_eq!(scrub_dir(dir.path(), &[&pw]).unwrap(), 1);
        let after = std::fs::read_to_string(dir.path().join("c/postgresql.log")).unwrap();
        assert!(!after.contains(pw.expose()), "{after}");
        assert!(after.contains("password=***") && after.contains("also *** bare"));
        let a = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
        assert_eq!(a, "LOG:  ready\n");
    }

    #[test]
    fn scrubbing_follows_no_link_the_server_user_planted() {
        let dir = tempfile::tempdir().unwrap();
        let pw = Secret::generate();
        let secret_text = format!("password={}\n", pw.expose());
        // Files elsewhere that root may write and the server user may not.
        let outside = tempfile::tempdir().unwrap();
        let file = outside.path().join("conf");
        std::fs::write(&file, &secret_text).unwrap();
        std::fs::create_dir(outside.path().join("sub")).unwrap();
        std::fs::write(outside.path().join("sub/conf"), &secret_text).unwrap();
        // Planted in the logs folder: links to them, a hard link, a FIFO.
        let logs = dir.path();
        std::os::unix::fs::symlink(&file, logs.join("a.log")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("sub"), logs.join("b")).unwrap();
        std::fs::hard_link(&file, logs.join("c.log")).unwrap();
        nix::unistd::mkfifo(
            &logs.join("d.log"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        std::fs::write(logs.join("e.log"), &secret_text).unwrap();

        assert_eq!(scrub_dir(logs, &[&pw]).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), secret_text);
        assert_eq!(
            std::fs::read_to_string(outside.path().join("sub/conf")).unwrap(),
            secret_text
        );
        assert_eq!(
            std::fs::read_to_string(logs.join("e.log")).unwrap(),
            "password=***\n"
        );
        // A folder that is not there has nothing to scrub.
        assert_eq!(scrub_dir(&logs.join("none"), &[&pw]).unwrap(), 0);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::generate();
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose().len(), 24);
        assert_ne!(Secret::generate(), s);
    }

    #[test]
    fn redact_hides_passwords_in_every_form() {
        let r = redact("host=x password=hunter2 user=u");
        assert_eq!(r, "host=x password=*** user=u");
        let r = redact("host=b password = 'a b\\'c' dbname=app");
        assert_eq!(r, "host=b password = *** dbname=app");
        let r = redact("CONNECTION 'host=b password=''a b'' dbname=app'");
        assert_eq!(r, "CONNECTION 'host=b password=*** dbname=app'");
        let r = redact("ALTER ROLE x PASSWORD 'it''s secret'");
        assert_eq!(r, "ALTER ROLE x PASSWORD '***'");
        let r = redact("postgres://u:pw@h:5432/db");
        assert_eq!(r, "postgres://u:***@h:5432/db");
        assert_eq!(redact("nothing here"), "nothing here");
    }
}
