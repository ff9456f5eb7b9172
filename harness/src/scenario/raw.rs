//! The scenario file exactly as written: serde shapes with spans, checked for syntax, unknown
//! keys and types by toml. Values whose rules serde cannot express (ranges, exclusive choices,
//! files that must exist) keep their spans so the validation step can point at them.
//!
//! A new section is a new field here plus a validation function in its own file; until then
//! `deny_unknown_fields` rejects it like any misspelled key.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_spanned::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub version: Option<Spanned<i64>>,
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    /// Any TOML value: an integer is the run's seed; a table is someone writing `[seed]` for
    /// their data, which gets its own message.
    pub seed: Option<Spanned<toml::Value>>,
    pub chain: Option<RawChain>,
    pub data: Option<Spanned<RawData>>,
    pub workload: Option<RawWorkload>,
    pub expect: Option<RawExpect>,
    pub observe: Option<RawObserve>,
    /// `[[faults]]`, in file order; each entry's span is where its table starts.
    pub faults: Option<Vec<Spanned<RawFault>>>,
}

/// `[chain]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChain {
    pub backend: Option<super::BackendKind>,
    pub pg_version: Option<Spanned<i64>>,
    pub pg_bin: Option<Spanned<String>>,
    pub database: Option<Spanned<String>>,
    pub physical_slot: Option<bool>,
    pub hot_standby_feedback: Option<bool>,
    pub idle_primary: Option<bool>,
    pub idle_wait: Option<Spanned<String>>,
    pub catchup_timeout: Option<Spanned<String>>,
    pub initial_copy_timeout: Option<Spanned<String>>,
    pub a: Option<RawNode>,
    pub b: Option<RawNode>,
    pub c: Option<RawNode>,
}

/// `[chain.a]`, `[chain.b]`, `[chain.c]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub port: Option<Spanned<i64>>,
    pub settings: Option<RawSettings>,
}

/// `[data]`: bring your own data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    pub sql: Option<Spanned<String>>,
    pub dump: Option<Spanned<String>>,
}

/// `[workload]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkload {
    pub enabled: Option<bool>,
    pub tables: Option<Spanned<Vec<Spanned<String>>>>,
    pub initial_rows: Option<Spanned<i64>>,
    pub connections: Option<Spanned<i64>>,
    pub rate: Option<Spanned<RawRate>>,
    pub duration: Option<Spanned<String>>,
    pub seed: Option<Spanned<toml::Value>>,
    pub mix: Option<Spanned<RawMix>>,
}

/// `[workload.mix]`: relative weights.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMix {
    pub insert: Option<Spanned<i64>>,
    pub update: Option<Spanned<i64>>,
    pub delete: Option<Spanned<i64>>,
}

/// `[expect]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    pub consistent: Option<bool>,
    pub max_catchup: Option<Spanned<String>>,
    pub sequences_match: Option<bool>,
    pub max_e2e_lag: Option<Spanned<String>>,
    pub slot_survives: Option<Spanned<bool>>,
    pub slot_invalidated: Option<Spanned<String>>,
    pub rpo_max_writes: Option<Spanned<i64>>,
    pub consistent_after_heal: Option<bool>,
    pub converges_within: Option<Spanned<String>>,
    pub slot_waits_for_nudge: Option<Spanned<bool>>,
}

/// `[observe]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObserve {
    pub sample_every: Option<Spanned<String>>,
    pub heartbeat_every: Option<Spanned<String>>,
}

/// One `[[faults]]` entry. Every key any kind takes is here, all optional: which keys a kind
/// needs or forbids is decided per kind in `faults.rs`, where the message can name the kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    pub kind: Option<Spanned<String>>,
    pub hop: Option<Spanned<String>>,
    pub at: Option<Spanned<String>>,
    pub heal_at: Option<Spanned<String>>,
    pub latency: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
    /// An integer (bytes per second) or a string with a unit ("1MB/s").
    pub rate: Option<Spanned<toml::Value>>,
    /// A percentage: "5%" or 5.
    pub loss: Option<Spanned<toml::Value>>,
    pub node: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub delay: Option<Spanned<String>>,
    pub every: Option<Spanned<String>>,
}

/// `rate = 500`, `rate = 12.5` or `rate = "max"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum RawRate {
    PerSecond(f64),
    Max,
}

impl<'de> Deserialize<'de> for RawRate {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawRate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of operations per second or \"max\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawRate, E> {
                Ok(RawRate::PerSecond(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawRate, E> {
                Ok(RawRate::PerSecond(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawRate, E> {
                Ok(RawRate::PerSecond(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRate, E> {
                if v == "max" {
                    Ok(RawRate::Max)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One PostgreSQL setting's value as TOML typed it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawSetting {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl RawSetting {
    /// The value as postgresql.conf takes it: booleans are on/off.
    pub(super) fn render(&self) -> String {
        match self {
            RawSetting::Text(s) => s.clone(),
            RawSetting::Integer(i) => i.to_string(),
            RawSetting::Float(f) => f.to_string(),
            RawSetting::Bool(b) => if *b { "on" } else { "off" }.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for RawSetting {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawSetting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, integer, float or boolean setting value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawSetting, E> {
                Ok(RawSetting::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSetting, E> {
                Ok(RawSetting::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSetting, E> {
                i64::try_from(v)
                    .map(RawSetting::Integer)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawSetting, E> {
                Ok(RawSetting::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSetting, E> {
                Ok(RawSetting::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[chain.x.settings]`, in file order: toml hands tables over sorted by key, so the entries are
/// put back in the order the user wrote them, which is the order postgresql.conf gets them.
#[derive(Debug, Default)]
pub(super) struct RawSettings(pub Vec<(Spanned<String>, Spanned<RawSetting>)>);

impl<'de> Deserialize<'de> for RawSettings {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSettings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of PostgreSQL settings")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawSettings, M::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    let v = map.next_value::<Spanned<RawSetting>>()?;
                    out.push((k, v));
                }
                out.sort_by_key(|(k, _)| k.span().start);
                Ok(RawSettings(out))
            }
        }
        d.deserialize_map(V)
    }
}
