//! Reading and rewriting libpq `key=value` connection strings a server already holds (B's
//! primary_conninfo, as pg_basebackup -R wrote it), so that only the address changes and every
//! other keyword (passfile, application_name, sslmode, ...) stays as it was.
//!
//! Errors never quote the string: it may hold a password.

use super::conn::{Endpoint, quote_conn};
use crate::error::{Error, Result};

/// The keywords and values of `conninfo`, in order, unquoted as libpq does (conninfo_parse in
/// src/interfaces/libpq/fe-connect.c): a value is bare up to the next space, or single-quoted;
/// a backslash takes the next character literally in both.
///
/// # Errors
/// Internal error when the string is not in key=value form (a `postgresql://` URI, a missing
/// `=`, an unterminated quote).
pub fn parse_conninfo(conninfo: &str) -> Result<Vec<(String, String)>> {
    if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        return Err(Error::internal(
            "the connection string is a URI; only key=value connection strings can be rewritten",
        ));
    }
    let mut out = Vec::new();
    let mut it = conninfo.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next() != Some('=') {
            return Err(Error::internal(
                "the connection string has a keyword without \"=\"",
            ));
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next() {
                    None => {
                        return Err(Error::internal(
                            "the connection string has an unterminated quoted value",
                        ));
                    }
                    Some('\\') => value.extend(it.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                match c {
                    '\\' => value.extend(it.next()),
                    c => value.push(c),
                }
            }
        }
        out.push((key, value));
    }
}

/// `conninfo` pointed at `to`: host and port replaced (hostaddr dropped, since libpq would
/// connect to it instead of the host), everything else kept.
///
/// # Errors
/// As [`parse_conninfo`].
pub fn with_endpoint(conninfo: &str, to: &Endpoint) -> Result<String> {
    let mut parts: Vec<String> = parse_conninfo(conninfo)?
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "host" | "hostaddr" | "port"))
        .map(|(k, v)| format!("{k}={}", quote_conn(&v)))
        .collect();
    parts.push(format!("host={}", quote_conn(&to.host)));
    parts.push(format!("port={}", to.port));
    Ok(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn what_pg_basebackup_writes_is_read_back() {
        let s = "user=rehearse_repl passfile='/tmp/run 1/pgpass' channel_binding=prefer \
                 host=127.0.0.1 port=41234 sslmode=prefer gssencmode=disable";
        let p = parse_conninfo(s).unwrap();
        assert_eq!(value(&p, "passfile"), Some("/tmp/run 1/pgpass"));
        assert_eq!(value(&p, "port"), Some("41234"));
        assert_eq!(p.len(), 7);
    }

    #[test]
    fn quotes_escapes_and_spaces_around_the_equals_sign() {
        let p = parse_conninfo(r"password = 'it\'s a \\secret'  application_name=b\ 1").unwrap();
        assert_eq!(value(&p, "password"), Some(r"it's a \secret"));
        assert_eq!(value(&p, "application_name"), Some("b 1"));
    }

    #[test]
    fn only_the_address_changes() {
        let s = "user=rehearse_repl password='p w' hostaddr=10.0.0.9 host=127.0.0.1 port=41234 application_name=b";
        let out = with_endpoint(s, &ep("run-a", 5432)).unwrap();
        let p = parse_conninfo(&out).unwrap();
        assert_eq!(value(&p, "host"), Some("run-a"));
        assert_eq!(value(&p, "port"), Some("5432"));
        assert_eq!(value(&p, "hostaddr"), None);
        assert_eq!(value(&p, "password"), Some("p w"));
        assert_eq!(value(&p, "application_name"), Some("b"));
        assert_eq!(value(&p, "user"), Some("rehearse_repl"));
    }

    #[test]
    fn malformed_strings_are_refused_without_quoting_them() {
        for bad in [
            "postgresql://u:secret@h/db",
            "host=h secret",
            "password='secret",
        ] {
            let e = with_endpoint(bad, &ep("h", 1)).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
