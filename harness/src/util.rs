//! Small helpers shared by reports, errors and the CLI: formatting, quoting, flags.

use std::path::Path;
use std::time::Duration;

/// "1.25s", "250ms", "<1ms", "2m03s": short and unambiguous.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    // "0ms" would read as "none at all": a lag peak of 0.4 ms is small, not absent.
    if ms == 0 && !d.is_zero() {
        "<1ms".to_string()
    } else if ms < 1000 {
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
/// scrubbed at teardown. The logs folder belongs to the server user, so the open is one that
/// cannot be led elsewhere (see [`open_in_server_dir`]).
pub(crate) fn open_private_log(path: &Path) -> std::io::Result<std::fs::File> {
    open_in_server_dir(path, WriteMode::Append, 0o600)
}

/// How [`open_in_server_dir`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// Add to the end (a log).
    Append,
    /// Replace the contents.
    Replace,
    /// Read the contents, then add to them (the file must exist).
    Extend,
}

/// Open `path`, in a folder the server user owns (its logs, its data directory), for writing
/// the way a harness running as root must: whatever the server user planted at that name — a
/// symbolic link, a hard link, a FIFO — is refused, never followed, so root cannot be made to
/// write to a file of the server user's choosing. A new file gets `mode`.
///
/// # Errors
/// The open failing, or `path` not being a plain file with a single name.
pub(crate) fn open_in_server_dir(
    path: &Path,
    how: WriteMode,
    mode: u32,
) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut opts = std::fs::OpenOptions::new();
    match how {
        WriteMode::Append => opts.append(true).create(true),
        WriteMode::Replace => opts.write(true).create(true),
        WriteMode::Extend => opts.read(true).append(true),
    };
    // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader; it changes
    // nothing for the regular file this must be.
    let f = opts
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .mode(mode)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.nlink() > 1 {
        return Err(std::io::Error::other(format!(
            "{} is not a plain file of its own (a link or a special file): refusing to write through it",
            path.display()
        )));
    }
    if how == WriteMode::Replace {
        f.set_len(0)?;
    }
    Ok(f)
}

/// Replace the contents of `path` in a folder the server user owns (see
/// [`open_in_server_dir`]).
///
/// # Errors
/// As [`open_in_server_dir`], or the write failing.
pub(crate) fn write_in_server_dir(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    open_in_server_dir(path, WriteMode::Replace, 0o600)?.write_all(contents)
}

/// Write `contents` to `path` through a temporary file beside it and a rename, so that a reader
/// (another pgrehearse process, or this one after a crash) sees the old contents or the new,
/// never half of them.
///
/// # Errors
/// The write or the rename failing.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
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
    fn what_the_server_user_plants_in_its_folders_is_not_written_through() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        // A file only root should write, and the server user's links to it.
        let target = dir.path().join("root-only");
        std::fs::write(&target, "untouched\n").unwrap();
        let link = dir.path().join("a.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let hard = dir.path().join("b.log");
        std::fs::hard_link(&target, &hard).unwrap();
        let fifo = dir.path().join("c.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for planted in [&link, &hard, &fifo] {
            assert!(open_private_log(planted).is_err(), "{}", planted.display());
            assert!(write_in_server_dir(planted, b"written\n").is_err());
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
        // A plain file of its own is written as asked.
        let log = dir.path().join("d.log");
        open_private_log(&log).unwrap().write_all(b"one\n").unwrap();
        open_private_log(&log).unwrap().write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
        write_in_server_dir(&log, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "new\n");
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::ZERO), "0ms");
        assert_eq!(fmt_duration(Duration::from_micros(1)), "<1ms");
        assert_eq!(fmt_duration(Duration::from_micros(999)), "<1ms");
        assert_eq!(fmt_duration(Duration::from_micros(1000)), "1ms");
        assert_eq!(fmt_duration(Duration::from_millis(1250)), "1.25s");
        assert_eq!(fmt_duration(Duration::from_secs(123)), "2m03s");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
