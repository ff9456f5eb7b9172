//! Lookups in a run's `report.json`, each failing with what the report did hold.
#![allow(dead_code)]

use std::path::Path;

use serde_json::Value;

/// The run's report.json.
pub fn read(run: &Path) -> Value {
    let path = run.join("report.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The run's samples.jsonl, in order. Every line must parse except the last, which a harness
/// killed while writing it may have left cut short.
pub fn samples<T: serde::de::DeserializeOwned>(run: &Path) -> Vec<T> {
    let path = run.join("samples.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_samples(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of a samples.jsonl; an unparsable last line is left out, any other is an error.
pub fn parse_samples<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}

/// The entry of the array `list` whose `key` is `value`.
fn entry<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|e| e[key] == value)
        .unwrap_or_else(|| panic!("no entry with {key} {value:?} in {list:#}"))
}

/// The record of the fault of `kind`.
pub fn fault<'a>(r: &'a Value, kind: &str) -> &'a Value {
    entry(&r["observations"]["faults"], "kind", kind)
}

/// A time of the fault of `kind` (`field`: "injected_ms" or "healed_ms"), in ms since the
/// workload started.
pub fn fault_ms(r: &Value, kind: &str, field: &str) -> i64 {
    let f = fault(r, kind);
    f[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{kind} has no {field}: {f:#}"))
}

/// The verification of `target` (c, or b).
pub fn verify_of<'a>(r: &'a Value, target: &str) -> &'a Value {
    entry(&r["verify"], "target", target)
}

/// The judged expectation `name`.
pub fn expectation<'a>(r: &'a Value, name: &str) -> &'a Value {
    entry(&r["expectations"], "name", name)
}
