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

    /// The names among `names` that `--describe-config` did not list: settings it leaves out
    /// (those not in postgresql.conf.sample, such as application_name and the developer
    /// options like debug_logical_replication_streaming) or not settings at all. Only the
    /// server can tell which: see [`PROBE_SCRIPT`]. An extension's dotted name is never asked.
    pub fn unlisted<'n>(&self, names: impl IntoIterator<Item = &'n str>) -> Vec<String> {
        let mut out: Vec<String> = names
            .into_iter()
            .map(str::to_ascii_lowercase)
            .filter(|n| !n.contains('.') && !self.types.contains_key(n))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Record that the server knows `name` (its type unknown: the server checks its value).
    pub fn add_unlisted(&mut self, name: &str) {
        self.types
            .insert(name.to_ascii_lowercase(), "UNLISTED".to_string());
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

/// A shell script that prints, one per line, which of its arguments the server knows as
/// settings: `postgres -C NAME` reads an (empty) postgresql.conf and prints the setting before
/// it looks at the data directory, so it needs none. Like the server it refuses root: run it as
/// the server user. An unknown name makes it fail with "unrecognized configuration parameter".
pub const PROBE_SCRIPT: &str = r#"d=$(mktemp -d) && : > "$d/postgresql.conf" || exit 1
pg=$1; shift
for n in "$@"; do "$pg" -D "$d" -C "$n" >/dev/null 2>&1 && echo "$n"; done
rm -rf "$d""#;

impl PgInstall {
    /// The settings this installation's server knows, asking the server itself about those of
    /// `names` that `--describe-config` leaves out.
    ///
    /// # Errors
    /// Environment error when `postgres --describe-config` or the probe cannot run.
    pub async fn known_settings_for(
        &self,
        user: &crate::os::ServerUser,
        names: &[&str],
    ) -> Result<KnownSettings> {
        let mut known = self.known_settings()?;
        let unlisted = known.unlisted(names.iter().copied());
        if unlisted.is_empty() {
            return Ok(known);
        }
        let postgres = self.tool("postgres");
        let out = user
            .command("sh")
            .arg("-c")
            .arg(PROBE_SCRIPT)
            .arg("probe")
            .arg(&postgres)
            .args(&unlisted)
            .output()
            .await
            .map_err(|e| {
                Error::environment(format!("cannot run {} -C", postgres.display())).with_source(e)
            })?;
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            known.add_unlisted(name);
        }
        Ok(known)
    }

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

/// The settings a hot standby needs at least as high as on its primary: with any of them lower,
/// B's recovery stops at once with "recovery aborted because of insufficient parameter
/// settings" (CheckRequiredParameterValues, src/backend/access/transam/xlogrecovery.c).
pub const STANDBY_FLOOR: [&str; 5] = [
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
];

/// The settings to append to a standby's `standby` settings (later ones win) so that none of
/// [`STANDBY_FLOOR`] is below the primary's value in `primary` (as pg_settings shows it): each
/// becomes the higher of the primary's value and the one the standby sets. A standby that sets
/// none gets the primary's (its own default could be lower). Each entry says what the standby
/// had set, when it set something lower, for the log.
pub fn standby_floor(
    primary: &[(String, i64)],
    standby: &[(String, String)],
) -> Vec<((String, String), Option<String>)> {
    STANDBY_FLOOR
        .iter()
        .filter_map(|name| {
            let (_, floor) = primary.iter().find(|(n, _)| n == name)?;
            let set = standby
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v);
            match set.map(|v| v.trim().parse::<i64>()) {
                Some(Ok(v)) if v >= *floor => None,
                Some(_) => Some(((name.to_string(), floor.to_string()), set.cloned())),
                None => Some(((name.to_string(), floor.to_string()), None)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_standby_gets_at_least_the_primarys_value_of_each_floor_setting() {
        let primary: Vec<(String, i64)> = [
            ("max_connections", 300),
            ("max_worker_processes", 8),
            ("max_wal_senders", 20),
            ("max_prepared_transactions", 0),
            ("max_locks_per_transaction", 64),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        let standby = pairs(&[
            ("max_wal_senders", "20"),
            ("max_connections", "100"),
            ("max_worker_processes", "16"),
            ("MAX_PREPARED_TRANSACTIONS", "5"),
            ("max_connections", "200"),
        ]);
        let add = standby_floor(&primary, &standby);
        let names: Vec<(&str, &str, Option<&str>)> = add
            .iter()
            .map(|((k, v), had)| (k.as_str(), v.as_str(), had.as_deref()))
            .collect();
        // Set lower (the last value counts): raised. Not set: the primary's. Set as high or
        // higher: left alone.
        assert_eq!(
            names,
            [
                ("max_connections", "300", Some("200")),
                ("max_locks_per_transaction", "64", None),
            ]
        );
    }

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
    fn names_left_out_of_describe_config_are_asked_and_then_known() {
        let mut k = KnownSettings::parse(SAMPLE);
        assert_eq!(
            k.unlisted([
                "wal_level",
                "Application_Name",
                "myext.knob",
                "application_name"
            ]),
            ["application_name"]
        );
        assert!(k.problem("application_name", "x").is_some());
        k.add_unlisted("application_name");
        assert_eq!(k.problem("application_name", "anything"), None);
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
