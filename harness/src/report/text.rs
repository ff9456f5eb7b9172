//! Small text helpers shared by the report writers.

use std::time::Duration;

use crate::verify::KeySample;

/// Quote `s` for a POSIX shell when it needs it, so a replay command can be pasted as is.
pub(super) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// "missing (2): 17, 42", or with more keys than listed "missing (120): 1, 2, … (first 2
/// shown)". The count is always exact.
pub(super) fn key_list(label: &str, sample: &KeySample) -> String {
    key_list_with(label, sample, str::to_string)
}

/// [`key_list`] with each key rendered by `show` (Markdown escaping).
pub(super) fn key_list_with(label: &str, sample: &KeySample, show: fn(&str) -> String) -> String {
    let mut s = format!("{label} ({})", sample.count);
    if !sample.keys.is_empty() {
        s.push_str(": ");
        let keys: Vec<String> = sample.keys.iter().map(|k| show(k)).collect();
        s.push_str(&keys.join(", "));
        if (sample.keys.len() as u64) < sample.count {
            s.push_str(&format!(", … (first {} shown)", sample.keys.len()));
        }
    }
    s
}

/// A differing table's keys, one part per kind that has any: "missing (2): 17, 42",
/// "changed (1): 9"; keys rendered by `show`.
pub(super) fn differing_keys(d: &crate::verify::TableDiff, show: fn(&str) -> String) -> String {
    [
        ("missing", &d.missing),
        ("extra", &d.extra),
        ("changed", &d.changed),
    ]
    .into_iter()
    .filter(|(_, k)| !k.is_empty())
    .map(|(l, k)| key_list_with(l, k, show))
    .collect::<Vec<_>>()
    .join("; ")
}

/// "1", "2 tables": a count with its noun, plural when needed.
pub(super) fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// A latency in microseconds: "850µs", "1.2ms", "2.35s".
pub(super) fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// A duration in milliseconds, formatted like the rest of the harness.
pub(super) fn millis(ms: u64) -> String {
    crate::util::fmt_duration(std::time::Duration::from_millis(ms))
}

/// A moment of the run: "t=12.3s" (milliseconds since the workload started, tenths of a second,
/// rounded half away from zero; integer arithmetic so every platform prints the same).
pub(super) fn at(ms: i64) -> String {
    let tenths = (ms.unsigned_abs() + 50) / 100;
    let sign = if ms < 0 && tenths > 0 { "-" } else { "" };
    format!("t={sign}{}.{}s", tenths / 10, tenths % 10)
}

/// [`at`] for the unsigned times fault records carry.
pub(super) fn at_u(ms: u64) -> String {
    at(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// A lag in seconds, formatted like the harness's durations ("850ms", "<1ms", "2.35s");
/// negative values (clock skew between sampler and server) show as 0.
pub(super) fn secs(s: f64) -> String {
    match std::time::Duration::try_from_secs_f64(s.max(0.0)) {
        Ok(d) => crate::util::fmt_duration(d),
        Err(_) => format!("{s}s"),
    }
}

/// A measured duration and the limit it is judged against, each precise enough that the two
/// never read the same while they differ ("peaked at 1.00s, over the limit of 1.00s"): whole
/// milliseconds when both are under 10 s, the harness's usual format above; then finer until
/// they read differently (milliseconds, then microseconds).
pub(super) fn against(value: Duration, limit: Duration) -> (String, String) {
    let coarse = |d: Duration| {
        if value.max(limit) < Duration::from_secs(10) {
            ms(d)
        } else {
            crate::util::fmt_duration(d)
        }
    };
    let us = |d: Duration| format!("{}µs", d.as_micros());
    for show in [&coarse as &dyn Fn(Duration) -> String, &ms] {
        let pair = (show(value), show(limit));
        if pair.0 != pair.1 || value == limit {
            return pair;
        }
    }
    (us(value), us(limit))
}

/// [`against`] for a value in seconds (a lag), to the microsecond (2.001 is 2001 ms, not the
/// 2000.999… ms of its nearest double); negative values (clock skew) as 0.
pub(super) fn secs_against(value_s: f64, limit: Duration) -> (String, String) {
    let us = (value_s.max(0.0) * 1e6).round();
    let value = if us < u64::MAX as f64 {
        Duration::from_micros(us as u64)
    } else {
        Duration::MAX
    };
    against(value, limit)
}

/// Whole milliseconds ("1001ms"; "<1ms" for less than one but more than none).
fn ms(d: Duration) -> String {
    match d.as_millis() {
        0 if !d.is_zero() => "<1ms".to_string(),
        n => format!("{n}ms"),
    }
}

/// A byte count as the harness prints them ("1.5 MiB"); the peaks store bytes as f64.
pub(super) fn bytes(b: f64) -> String {
    crate::util::fmt_bytes(b.max(0.0).round() as u64)
}

/// Escape text for XML and HTML, attributes and content alike. Characters XML 1.0 cannot carry
/// at all (control characters other than tab and line breaks) are written as `\u{..}` text.
pub(super) fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Text safe inside a Markdown table cell: pipes escaped, line breaks flattened.
pub(super) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Data (keys, server messages) as Markdown text: characters Markdown would read as markup or
/// HTML are backslash-escaped. Underscores are left alone: inside words they are literal, and
/// escaping them would make every table name unreadable in the raw file.
pub(super) fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '`' | '*' | '<' | '>' | '&' | '[' | ']' | '|') {
            out.push('\\');
        }
        if c == '\n' || c == '\r' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// Inline code, with a fence longer than any backtick run inside.
pub(super) fn code(s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if longest > 0 { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(shell_quote("/x/smoke.toml"), "/x/smoke.toml");
        assert_eq!(shell_quote("/my dir/it's.toml"), "'/my dir/it'\\''s.toml'");
        let s = KeySample {
            count: 5,
            keys: vec!["1".into(), "2".into()],
        };
        assert_eq!(
            key_list("missing", &s),
            "missing (5): 1, 2, … (first 2 shown)"
        );
        assert_eq!(key_list("extra", &KeySample::default()), "extra (0)");
        assert_eq!(micros(850), "850µs");
        assert_eq!(micros(1250), "1.2ms");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(code("ab"), "`ab`");
        assert_eq!(count(1, "table", "tables"), "1 table");
        assert_eq!(md("(3,<sku&7>)|a_b"), "(3,\\<sku\\&7\\>)\\|a_b");
    }

    #[test]
    fn moments_and_amounts() {
        assert_eq!(at(0), "t=0.0s");
        assert_eq!(at(12_340), "t=12.3s");
        assert_eq!(at(12_350), "t=12.4s");
        assert_eq!(at(41_000), "t=41.0s");
        assert_eq!(at(-1_550), "t=-1.6s");
        assert_eq!(at(-40), "t=0.0s");
        assert_eq!(secs(0.52), "520ms");
        assert_eq!(secs(-0.1), "0ms");
        assert_eq!(secs(0.0), "0ms");
        assert_eq!(secs(0.0004), "<1ms");
        assert_eq!(secs(4.2), "4.20s");
        assert_eq!(bytes(1_572_864.0), "1.5 MiB");
    }

    #[test]
    fn a_value_and_its_limit_never_read_the_same_while_they_differ() {
        let ms = Duration::from_millis;
        for (value, limit, shown) in [
            (ms(1_001), ms(1_000), ("1001ms", "1000ms")),
            (ms(2_000), ms(2_000), ("2000ms", "2000ms")),
            (ms(45_200), ms(30_000), ("45.20s", "30.00s")),
            // Above 10 s the usual format, unless it hides the difference.
            (ms(30_001), ms(30_000), ("30001ms", "30000ms")),
            (
                Duration::from_micros(1_000_400),
                ms(1_000),
                ("1000400µs", "1000000µs"),
            ),
        ] {
            let (v, l) = against(value, limit);
            assert_eq!((v.as_str(), l.as_str()), shown);
        }
        assert_eq!(
            secs_against(2.001, ms(2_000)),
            ("2001ms".into(), "2000ms".into())
        );
        assert_eq!(secs_against(-0.1, ms(5)), ("0ms".into(), "5ms".into()));
    }

    #[test]
    fn xml_escapes_markup_and_illegal_characters() {
        assert_eq!(
            xml("a<b & \"c\" 'd'>\u{1}\n"),
            "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;\\u{1}\n"
        );
        assert_eq!(xml("</svg><script>"), "&lt;/svg&gt;&lt;script&gt;");
    }
}
