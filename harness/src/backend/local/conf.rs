//! Server configuration files written by the harness.

use std::path::Path;

use crate::error::{Result, io_error};
use crate::os::ServerUser;

/// File the harness owns inside each data directory; postgresql.conf includes it last.
pub const CONF_FILE: &str = "pgrehearse.conf";

/// Write `pgrehearse.conf` (listen address, port, logging, chain settings, user overrides) and
/// make sure postgresql.conf includes it. A standby made by pg_basebackup inherits the
/// primary's copy; rewriting it here gives the standby its own port and name.
pub fn write_node_conf(
    data_dir: &Path,
    user: &ServerUser,
    name: &str,
    port: u16,
    extra: &[(String, String)],
    settings: &[(String, String)],
) -> Result<()> {
    use std::io::{Read, Write};
    let text = node_conf_text(name, "127.0.0.1", port, extra, settings);
    let path = data_dir.join(CONF_FILE);
    crate::util::write_in_server_dir(&path, text.as_bytes())
        .map_err(|e| io_error("cannot write", &path, e))?;
    user.own(&path)?;
    // The data directory is the server user's (a standby's is made by pg_basebackup, run as
    // that user): postgresql.conf is read and extended through one open that refuses links.
    let main = data_dir.join("postgresql.conf");
    let mut f = crate::util::open_in_server_dir(&main, crate::util::WriteMode::Extend, 0o600)
        .map_err(|e| io_error("cannot open", &main, e))?;
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| io_error("cannot read", &main, e))?;
    let include = include_line();
    if !text.contains(&include) {
        f.write_all(format!("\n{include}\n").as_bytes())
            .map_err(|e| io_error("cannot write", &main, e))?;
    }
    Ok(())
}

/// The text of `pgrehearse.conf`: listen address, port, logging, chain settings, then user
/// overrides (later lines win).
pub fn node_conf_text(
    name: &str,
    listen: &str,
    port: u16,
    extra: &[(String, String)],
    settings: &[(String, String)],
) -> String {
    let mut lines = vec![
        "# written by pgrehearse; user overrides come last".to_string(),
        format!("listen_addresses = '{listen}'"),
        format!("port = {port}"),
        // No Unix socket: run paths can exceed the socket path limit, and every connection the
        // harness makes is TCP with a password anyway.
        "unix_socket_directories = ''".to_string(),
        format!("cluster_name = '{name}'"),
        "log_line_prefix = '%m [%p] %q%a '".to_string(),
        "log_replication_commands = on".to_string(),
        "log_min_messages = info".to_string(),
        "logging_collector = off".to_string(),
    ];
    for (k, v) in extra.iter().chain(settings) {
        lines.push(format!("{k} = {}", conf_value(v)));
    }
    lines.join("\n") + "\n"
}

/// The line postgresql.conf needs to read `pgrehearse.conf` last.
pub fn include_line() -> String {
    format!("include_if_exists = '{CONF_FILE}'")
}

/// The text of pg_hba.conf: password (SCRAM) logins only, from the given networks.
pub fn hba_text(networks: &[&str]) -> String {
    let mut text = String::from("# written by pgrehearse: SCRAM passwords only\n");
    for net in networks {
        text.push_str(&format!("host all all {net} scram-sha-256\n"));
        text.push_str(&format!("host replication all {net} scram-sha-256\n"));
    }
    text
}

/// Quote a setting value unless it is a bare number, boolean or size.
pub fn conf_value(v: &str) -> String {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if bare {
        v.to_string()
    } else {
        // The config parser reads backslash escapes inside quotes: an unescaped `\'` would end
        // the string early and let the rest of the value be read as further settings.
        format!("'{}'", v.replace('\\', r"\\").replace('\'', "''"))
    }
}

/// Replace pg_hba.conf: password (SCRAM) logins only, from the given networks.
pub fn write_hba(data_dir: &Path, user: &ServerUser, networks: &[&str]) -> Result<()> {
    let path = data_dir.join("pg_hba.conf");
    crate::util::write_in_server_dir(&path, hba_text(networks).as_bytes())
        .map_err(|e| io_error("cannot write", &path, e))?;
    user.own(&path)
}

#[cfg(test)]
mod tests {
    use super::conf_value;

    #[test]
    fn values_are_quoted_when_needed() {
        assert_eq!(conf_value("on"), "on");
        assert_eq!(conf_value("64MB"), "64MB");
        assert_eq!(conf_value("remote_apply"), "remote_apply");
        assert_eq!(conf_value("'b'"), "'''b'''");
        assert_eq!(conf_value("FIRST 1 (b)"), "'FIRST 1 (b)'");
        assert_eq!(conf_value(r"%m \'"), r"'%m \\'''");
    }
}
