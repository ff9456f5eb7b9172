//! PostgreSQL version numbers as the binaries report them.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// A server version: major and minor ("17.10", "16.2", "18beta1" has minor 0).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PgVersion {
    /// Major version (16, 17, 18).
    pub major: u32,
    /// Minor release within the major.
    pub minor: u32,
}

impl PgVersion {
    /// Parse the output of `postgres --version` ("postgres (PostgreSQL) 17.10 (Debian 17.10-1)").
    pub fn parse(text: &str) -> Option<PgVersion> {
        let after = text.split(')').nth(1).unwrap_or(text);
        let num = after.split_whitespace().next()?;
        let mut parts = num.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Some(PgVersion { major, minor })
    }

    /// Parse `server_version_num` (170010).
    pub fn from_num(n: u32) -> PgVersion {
        PgVersion {
            major: n / 10000,
            minor: n % 10000,
        }
    }

    /// Ask a `postgres` binary for its version.
    ///
    /// # Errors
    /// Environment error when the binary cannot run or prints something unexpected.
    pub fn of_binary(postgres: &Path) -> Result<PgVersion> {
        let out = std::process::Command::new(postgres)
            .arg("--version")
            .output()
            .map_err(|e| crate::error::io_error("cannot run", postgres, e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(Error::environment(format!(
                "{} --version failed: {}",
                postgres.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        PgVersion::parse(&text).ok_or_else(|| {
            Error::environment(format!(
                "cannot read a version from {}: {text:?}",
                postgres.display()
            ))
        })
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_binaries_print() {
        assert_eq!(
            PgVersion::parse("postgres (PostgreSQL) 17.10\n"),
            Some(PgVersion {
                major: 17,
                minor: 10
            })
        );
        assert_eq!(
            PgVersion::parse("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(PgVersion {
                major: 15,
                minor: 18
            })
        );
        assert_eq!(
            PgVersion::parse("postgres (PostgreSQL) 18beta1"),
            Some(PgVersion {
                major: 18,
                minor: 0
            })
        );
        assert_eq!(PgVersion::from_num(160002).to_string(), "16.2");
        assert_eq!(PgVersion::parse("garbage"), None);
    }
}
