//! Checking a scenario's per-node settings against the server that will run them, before any
//! server starts: a misspelt name or a malformed value would otherwise surface only as
//! "postgres exited during startup", after A and C were already built.

use std::collections::HashMap;

use super::PgInstall;
use crate::error::{Error, Result};

/// The settings a server knows, with their types, from `postgres --describe-config`.
#[derive(Debug, Default)]
pub struct KnownSettings {
    types: HashMap<String, String>,
}

impl KnownSettings {
    /// Parse `postgres --describe-config` output (tab-separated: name, context, group, type...).
    pub fn parse(text: &str) -> KnownSettings {
        let types = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let name = f.next()?.to_ascii_lowercase();
                let vartype = f.nth(2)?.to_string();
                Some((name, vartype))
            })
            .collect();
        KnownSettings { types }
    }

    /// What is wrong with `name = value`, if anything.
    pub fn problem(&self, name: &str, value: &str) -> Option<String> {
        let Some(vartype) = self.types.get(name) else {
            // A dotted name is an extension's own setting: only the extension knows it.
            if name.contains('.') {
                return None;
            }
            let near = self
                .types
                .keys()
                .map(|k| (strsim::levenshtein(k, name), k))
                .filter(|(d, _)| *d <= 3)
                .min();
            return Some(match near {
                Some((_, k)) => format!("{name} is not a setting (did you mean {k}?)"),
                None => format!("{name} is not a setting"),
            });
        };
        let v = value.trim().to_ascii_lowercase();
        let ok = match vartype.as_str() {
            "BOOLEAN" => [
                "on", "off", "true", "false", "yes", "no", "1", "0", "t", "f", "y", "n",
            ]
            .contains(&v.as_str()),
            // Numbers, optionally with a unit (64MB, 5min, -1).
            "INTEGER" | "REAL" => v
                .trim_start_matches(['-', '+'])
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == '.'),
            _ => true,
        };
        (!ok).then(|| {
            format!(
                "{name} = {value:?} is not a valid {}",
                vartype.to_lowercase()
            )
        })
    }
}

impl PgInstall {
    /// The settings this installation's server knows.
    ///
    /// # Errors
    /// Environment error when `postgres --describe-config` cannot run.
    pub fn known_settings(&self) -> Result<KnownSettings> {
        let out = std::process::Command::new(self.tool("postgres"))
            .arg("--describe-config")
            .output()
            .map_err(|e| {
                Error::environment(format!(
                    "cannot run {} --describe-config",
                    self.tool("postgres").display()
                ))
                .with_source(e)
            })?;
        if !out.status.success() {
            return Err(Error::environment(format!(
                "{} --describe-config failed: {}",
                self.tool("postgres").display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(KnownSettings::parse(&String::from_utf8_lossy(&out.stdout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "max_slot_wal_keep_size\tsighup\tReplication / Sending Servers\tINTEGER\t-1\t-1\t2147483647\tSets.\t\n\
                          hot_standby_feedback\tsighup\tReplication / Standby Servers\tBOOLEAN\tFALSE\t\t\tAllows.\t\n\
                          wal_level\tpostmaster\tWrite-Ahead Log / Settings\tENUM\treplica\t\t\tSets.\t\n";

    #[test]
    fn a_misspelt_name_is_named_with_the_nearest_real_one() {
        let k = KnownSettings::parse(SAMPLE);
        assert_eq!(
            k.problem("max_slot_wal_keep_sise", "1GB").as_deref(),
            Some("max_slot_wal_keep_sise is not a setting (did you mean max_slot_wal_keep_size?)")
        );
        assert_eq!(
            k.problem("shared_bufers_and_more", "1").as_deref(),
            Some("shared_bufers_and_more is not a setting")
        );
        assert_eq!(k.problem("myext.knob", "3"), None);
    }

    #[test]
    fn values_are_checked_by_type() {
        let k = KnownSettings::parse(SAMPLE);
        assert_eq!(k.problem("max_slot_wal_keep_size", "64MB"), None);
        assert_eq!(k.problem("max_slot_wal_keep_size", "-1"), None);
        assert!(k.problem("max_slot_wal_keep_size", "lots").is_some());
        assert_eq!(k.problem("hot_standby_feedback", "on"), None);
        assert!(k.problem("hot_standby_feedback", "maybe").is_some());
        assert_eq!(k.problem("wal_level", "logical"), None);
    }
}
