//! Small helpers shared by reports, errors and the CLI: formatting, quoting, flags.

use std::time::Duration;

/// "1.25s", "250ms", "2m03s": short and unambiguous.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// "1.5 MiB" style byte counts.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Quote an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An identifier as reports show it: bare when it reads back as itself (lower case letters,
/// digits, `_`, `$`, not starting with a digit), quoted otherwise. Quoting only when needed
/// keeps `public.accounts` readable while `x."a.b"` and `"x.a".b` stay two names.
pub fn display_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain { s.to_string() } else { quote_ident(s) }
}

/// `schema.name` as reports show it (see [`display_ident`]).
pub fn display_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", display_ident(schema), display_ident(name))
}

/// Quote an SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An on/off environment variable: on when set to anything but "", "0", "false" or "no" (so
/// `VAR=0` switches it off, as one would expect).
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| flag_value(&v))
}

fn flag_value(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "no"
    )
}

/// Open `path` for appending, creating it readable by its owner only: a server log can hold
/// a password (a failing `CREATE SUBSCRIPTION` logs its connection string) until it is
/// scrubbed at teardown.
pub(crate) fn open_private_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_stay_unambiguous() {
        assert_eq!(
            display_qualified("public", "accounts_2"),
            "public.accounts_2"
        );
        assert_eq!(display_qualified("x", "a.b"), "x.\"a.b\"");
        assert_eq!(display_qualified("x.a", "b"), "\"x.a\".b");
        assert_eq!(display_qualified("s", "Mixed"), "s.\"Mixed\"");
        assert_eq!(display_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(display_ident("9lives"), "\"9lives\"");
        assert_eq!(display_ident(""), "\"\"");
    }

    #[test]
    fn flag_values() {
        for on in ["1", "yes", "true", "on"] {
            assert!(flag_value(on), "{on}");
        }
        for off in ["", "0", "false", "No", " 0 "] {
            assert!(!flag_value(off), "{off:?}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_millis(1250)), "1.25s");
        assert_eq!(fmt_duration(Duration::from_secs(123)), "2m03s");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
