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
/// # Errors
/// The first file that cannot be read or rewritten.
pub fn scrub_dir(dir: &std::path::Path, secrets: &[&Secret]) -> std::io::Result<usize> {
    let mut changed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            changed += scrub_dir(&path, secrets)?;
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut out = redact(&text);
        for s in secrets.iter().filter(|s| !s.0.is_empty()) {
            out = out.replace(&s.0, "***");
        }
        if out != text {
            // In place: the file keeps its owner (the server user) and mode.
            std::fs::write(&path, out)?;
            changed += 1;
        }
    }
    Ok(changed)
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
