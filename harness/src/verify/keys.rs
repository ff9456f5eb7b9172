//! Turning differing keys and rows into the report's sorted, capped key lists.

use std::collections::HashMap;

use super::model::KeySample;

/// One key column's value, ordered the way PostgreSQL orders it in byte ("C") order: integers
/// numerically, everything else by its text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Int(i64),
    Text(String),
}

/// A key's place in the report order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SortKey(Vec<Part>);

impl SortKey {
    /// The sort key of a key given as its columns' text; `integer[i]` says column `i` is an
    /// integer type.
    pub fn of(parts: &[String], integer: &[bool]) -> SortKey {
        SortKey(
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| match (integer.get(i), p.parse::<i64>()) {
                    (Some(true), Ok(n)) => Part::Int(n),
                    _ => Part::Text(p.clone()),
                })
                .collect(),
        )
    }
}

/// A key as reports show it: the value of a one-column key, PostgreSQL's row syntax
/// (`(eu,sku-7)`) for a composite one.
pub(crate) fn render_key(parts: &[String]) -> String {
    if let [one] = parts {
        return one.clone();
    }
    let items: Vec<String> = parts.iter().map(|p| record_field(p)).collect();
    format!("({})", items.join(","))
}

/// Quote a field as `record_out` does: empty strings and values holding quotes, backslashes,
/// parentheses, commas or white space are double-quoted, with `"` and `\` doubled.
fn record_field(v: &str) -> String {
    let needs = v.is_empty()
        || v.chars()
            .any(|c| matches!(c, '"' | '\\' | '(' | ')' | ',' | '\x0B') || c.is_ascii_whitespace());
    if !needs {
        return v.to_string();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push(c);
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Longest row text listed for tables without a key.
const ROW_TEXT_MAX: usize = 200;

/// A row's text cut to a readable length.
pub(crate) fn truncate_row(s: &str) -> String {
    if s.chars().count() <= ROW_TEXT_MAX {
        return s.to_string();
    }
    let mut t: String = s.chars().take(ROW_TEXT_MAX).collect();
    t.push('…');
    t
}

/// Missing, extra and changed keys of a table with a primary key.
#[derive(Debug, Default)]
pub(crate) struct KeyDiff {
    /// On the reference only.
    pub missing: KeySample,
    /// On the target only.
    pub extra: KeySample,
    /// On both, with different row hashes.
    pub changed: KeySample,
}

/// Classify the union of the rows read from both sides' differing ranges: key (as column
/// texts) to row hash. Keys are matched across the whole table, not per range, so that a key
/// the two sides put in different ranges still pairs up.
pub(crate) fn classify_keys(
    reference: HashMap<Vec<String>, i64>,
    mut target: HashMap<Vec<String>, i64>,
    integer: &[bool],
    cap: usize,
) -> KeyDiff {
    let mut missing = Vec::new();
    let mut changed = Vec::new();
    for (k, h) in reference {
        match target.remove(&k) {
            None => missing.push(k),
            Some(t) if t != h => changed.push(k),
            Some(_) => {}
        }
    }
    let extra: Vec<Vec<String>> = target.into_keys().collect();
    KeyDiff {
        missing: sample_keys(missing, integer, cap),
        extra: sample_keys(extra, integer, cap),
        changed: sample_keys(changed, integer, cap),
    }
}

fn sample_keys(keys: Vec<Vec<String>>, integer: &[bool], cap: usize) -> KeySample {
    let mut keyed: Vec<(SortKey, Vec<String>)> = keys
        .into_iter()
        .map(|k| (SortKey::of(&k, integer), k))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = KeySample::default();
    for (_, k) in keyed {
        if s.keys.len() < cap {
            s.push(render_key(&k), cap);
        } else {
            s.count += 1;
        }
    }
    s
}

/// Per row hash: how many copies, and one row's text.
pub(crate) type HashCounts = HashMap<i64, (u64, String)>;

/// Missing and extra row copies of a table without a key: a row twice on the reference and
/// once on the target is one missing copy.
pub(crate) fn multiset_diff(
    reference: &HashCounts,
    target: &HashCounts,
    cap: usize,
) -> (KeySample, KeySample) {
    let mut missing: Vec<(&str, u64)> = Vec::new();
    let mut extra: Vec<(&str, u64)> = Vec::new();
    for (h, (n, text)) in reference {
        let t = target.get(h).map_or(0, |x| x.0);
        if *n > t {
            missing.push((text, n - t));
        }
    }
    for (h, (n, text)) in target {
        let r = reference.get(h).map_or(0, |x| x.0);
        if *n > r {
            extra.push((text, n - r));
        }
    }
    (sample_rows(missing, cap), sample_rows(extra, cap))
}

fn sample_rows(mut rows: Vec<(&str, u64)>, cap: usize) -> KeySample {
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let mut s = KeySample::default();
    for (text, copies) in rows {
        s.count += copies;
        let shown = truncate_row(text);
        for _ in 0..copies {
            if s.keys.len() >= cap {
                break;
            }
            s.keys.push(shown.clone());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keys_render_like_postgres_rows() {
        assert_eq!(render_key(&v(&["42"])), "42");
        assert_eq!(render_key(&v(&["eu", "sku-7"])), "(eu,sku-7)");
        assert_eq!(
            render_key(&v(&["a b", "", "x,y", "q\"t", "b\\s"])),
            r#"("a b","","x,y","q""t","b\\s")"#
        );
    }

    #[test]
    fn keys_sort_numerically_then_by_bytes() {
        let ints = [true, false];
        let mut keys = [
            v(&["10", "b"]),
            v(&["9", "z"]),
            v(&["10", "a"]),
            v(&["-1", "Z"]),
        ];
        keys.sort_by_key(|k| SortKey::of(k, &ints));
        assert_eq!(
            keys.iter().map(|k| render_key(k)).collect::<Vec<_>>(),
            vec!["(-1,Z)", "(9,z)", "(10,a)", "(10,b)"]
        );
        // Byte order: upper case before lower case, as COLLATE "C".
        let mut t = [v(&["b"]), v(&["B"]), v(&["a"])];
        t.sort_by_key(|k| SortKey::of(k, &[false]));
        assert_eq!(t, [v(&["B"]), v(&["a"]), v(&["b"])]);
    }

    #[test]
    fn classification_is_over_the_whole_table() {
        let r: HashMap<Vec<String>, i64> = [
            (v(&["1"]), 10),
            (v(&["2"]), 20),
            (v(&["3"]), 30),
            (v(&["4"]), 40),
        ]
        .into();
        let t: HashMap<Vec<String>, i64> = [
            (v(&["2"]), 20),
            (v(&["3"]), 31),
            (v(&["5"]), 50),
            (v(&["4"]), 40),
        ]
        .into();
        let d = classify_keys(r, t, &[true], 20);
        assert_eq!(d.missing.keys, vec!["1"]);
        assert_eq!(d.changed.keys, vec!["3"]);
        assert_eq!(d.extra.keys, vec!["5"]);
        assert_eq!((d.missing.count, d.changed.count, d.extra.count), (1, 1, 1));
    }

    #[test]
    fn lists_are_capped_counts_are_not() {
        let r: HashMap<Vec<String>, i64> = (0..50).map(|i| (vec![i.to_string()], i)).collect();
        let d = classify_keys(r, HashMap::new(), &[true], 3);
        assert_eq!(d.missing.count, 50);
        assert_eq!(d.missing.keys, vec!["0", "1", "2"]);
    }

    #[test]
    fn multiset_counts_copies() {
        let r: HashCounts = [
            (1, (2, "(a)".into())),
            (2, (1, "(b)".into())),
            (3, (1, "(c)".into())),
        ]
        .into();
        let t: HashCounts = [
            (1, (1, "(a)".into())),
            (3, (3, "(c)".into())),
            (4, (1, "(d)".into())),
        ]
        .into();
        let (missing, extra) = multiset_diff(&r, &t, 20);
        assert_eq!(missing.count, 2);
        assert_eq!(missing.keys, vec!["(a)", "(b)"]);
        assert_eq!(extra.count, 3);
        assert_eq!(extra.keys, vec!["(c)", "(c)", "(d)"]);
        let (_, capped) = multiset_diff(&r, &t, 1);
        assert_eq!((capped.count, capped.keys.len()), (3, 1));
    }

    #[test]
    fn long_rows_are_cut() {
        let long = "x".repeat(500);
        let t = truncate_row(&long);
        assert_eq!(t.chars().count(), 201);
        assert!(t.ends_with('…'));
        assert_eq!(truncate_row("(1,a)"), "(1,a)");
    }
}
