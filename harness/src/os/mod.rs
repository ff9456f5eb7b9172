//! The operating-system side: which user runs the servers, and running PostgreSQL programs as
//! that user. PostgreSQL refuses to run as root, so a root harness runs them as `pgrehearse`
//! (created on first use); an unprivileged harness runs them as itself.

use std::ffi::OsStr;
use std::path::Path;

use nix::unistd::{Gid, Uid, User};

use crate::error::{Error, Result, io_error};

/// Name of the system user created to run servers when the harness runs as root.
pub const SERVER_USER: &str = "pgrehearse";

/// The user PostgreSQL processes run as.
#[derive(Debug, Clone)]
pub struct ServerUser {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: Uid,
    /// Primary group id.
    pub gid: Gid,
    /// True when the harness must switch to this user to start programs (it runs as root).
    pub switch: bool,
}

impl ServerUser {
    /// The current user, or — when running as root — the `pgrehearse` system user (created with
    /// useradd if missing; override the name with `PGREHEARSE_SERVER_USER`).
    ///
    /// # Errors
    /// Environment error when the user cannot be found or created.
    pub fn resolve() -> Result<ServerUser> {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            let u = User::from_uid(euid).ok().flatten();
            return Ok(ServerUser {
                name: u.map(|u| u.name).unwrap_or_else(|| euid.to_string()),
                uid: euid,
                gid: nix::unistd::getegid(),
                switch: false,
            });
        }
        let name =
            std::env::var("PGREHEARSE_SERVER_USER").unwrap_or_else(|_| SERVER_USER.to_string());
        if let Some(u) = lookup(&name)? {
            return Ok(ServerUser::switched(name, &u));
        }
        // Parallel harnesses (tests) must not run useradd at once: it half-creates users when
        // two race for /etc/passwd. Whoever gets the lock second finds the user made.
        let lock_path = Path::new("/run/pgrehearse-useradd.lock");
        let lock = std::fs::File::create(lock_path)
            .map_err(|e| io_error("cannot create", lock_path, e))?;
        lock.lock()
            .map_err(|e| io_error("cannot lock", lock_path, e))?;
        if let Some(u) = lookup(&name)? {
            return Ok(ServerUser::switched(name, &u));
        }
        tracing::info!(
            "running as root: creating system user {name} to run PostgreSQL (it refuses to run as root)"
        );
        let out = std::process::Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
            .arg(&name)
            .output()
            .map_err(|e| {
                Error::environment(format!("running as root and cannot run useradd to create user {name}"))
                    .with_source(e)
                    .with_hint("create an unprivileged user and set PGREHEARSE_SERVER_USER to its name, or run pgrehearse as a normal user")
            })?;
        match lookup(&name)? {
            Some(u) => Ok(ServerUser::switched(name, &u)),
            None => Err(Error::environment(format!(
                "cannot create system user {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    fn switched(name: String, u: &User) -> ServerUser {
        ServerUser {
            name,
            uid: u.uid,
            gid: u.gid,
            switch: true,
        }
    }

    /// A command that runs `program` as this user with a clean PostgreSQL environment: PG*
    /// variables from the caller's shell must not redirect the harness's own connections.
    pub fn command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        if self.switch {
            cmd.uid(self.uid.as_raw()).gid(self.gid.as_raw());
            cmd.env("HOME", "/nonexistent")
                .env("USER", &self.name)
                .env("LOGNAME", &self.name);
        }
        cmd
    }

    /// Make `path` (and everything below it) owned by this user, when switching users.
    ///
    /// # Errors
    /// Environment error naming the path.
    pub fn own(&self, path: &Path) -> Result<()> {
        if !self.switch {
            return Ok(());
        }
        chown_tree(path, self.uid, self.gid)
    }

    /// Fail with what to do unless this user can reach `path` (every folder above it
    /// searchable by others), when switching users: the servers run as this user.
    ///
    /// # Errors
    /// Environment error naming the first folder it cannot pass.
    pub fn can_reach(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if !self.switch {
            return Ok(());
        }
        for d in path.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(d) else {
                continue;
            };
            let mode = meta.permissions().mode();
            let ok = mode & 0o001 != 0
                || (meta.uid() == self.uid.as_raw() && mode & 0o100 != 0)
                || (meta.gid() == self.gid.as_raw() && mode & 0o010 != 0);
            if !ok {
                return Err(Error::environment(format!(
                    "the servers run as user {} (pgrehearse was started as root), and {} (mode {:o}) keeps it out of {}",
                    self.name,
                    d.display(),
                    mode & 0o777,
                    path.display()
                ))
                .with_hint(format!(
                    "let it through with `chmod o+x {}`, or choose a runs folder it can reach (--runs-dir)",
                    d.display()
                )));
            }
        }
        Ok(())
    }

    /// Create `path` as a private directory (0700) of this user.
    ///
    /// # Errors
    /// Environment error naming the path.
    pub fn private_dir(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::create_dir_all(path).map_err(|e| io_error("cannot create", path, e))?;
        // chmod through a handle that refuses a link: the folder above may be the server
        // user's, who could have put a link to any folder in this name's place, and a harness
        // run as root would then open that folder up to its new mode.
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| io_error("cannot open (a symbolic link is refused)", path, e))?;
        dir.set_permissions(std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error("cannot chmod", path, e))?;
        self.own(path)
    }

    /// Write `contents` to `path` as a private file (0600) of this user.
    ///
    /// # Errors
    /// Environment error naming the path.
    pub fn private_file(&self, path: &Path, contents: &[u8]) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            // Some of these files go into the server user's folders (a password file for
            // initdb): a link planted there is refused, not written through.
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| io_error("cannot create", path, e))?;
        f.write_all(contents)
            .map_err(|e| io_error("cannot write", path, e))?;
        self.own(path)
    }
}

fn lookup(name: &str) -> Result<Option<User>> {
    User::from_name(name)
        .map_err(|e| Error::environment(format!("cannot look up user {name}")).with_source(e))
}

fn chown_tree(path: &Path, uid: Uid, gid: Gid) -> Result<()> {
    // lchown: a symbolic link in the tree (one the server user planted in its own folders)
    // changes owner itself, never its target.
    std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw()))
        .map_err(|e| io_error("cannot chown", path, e))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_error("cannot stat", path, e))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| io_error("cannot read", path, e))? {
            let entry = entry.map_err(|e| io_error("cannot read", path, e))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Whether process `pid` exists (signal 0).
pub fn pid_alive(pid: i32) -> bool {
    pid > 0
        && signal0_says_alive(nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            None,
        ))
}

/// What signal 0's answer says: EPERM means the process exists but belongs to another user
/// (a server run as `postgres`, a harness started by someone else) — alive, not gone.
fn signal0_says_alive(res: nix::Result<()>) -> bool {
    matches!(res, Ok(()) | Err(nix::errno::Errno::EPERM))
}

/// Whether process `pid` still runs: alive and not a zombie waiting to be reaped (a child of
/// this process that exited stays a zombie until it is waited on).
pub fn pid_running(pid: i32) -> bool {
    pid_alive(pid)
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z"))
            })
            .unwrap_or(true)
}

/// Whether process `pid`, which started at `start` (None: not known), still runs: a pid that
/// exists with another start time was reused by an unrelated process after ours died, and a
/// zombie (a killed harness its parent has not reaped yet) runs nothing any more.
pub fn same_process_alive(pid: i32, start: Option<u64>) -> bool {
    same_process(pid, start, pid_running, pid_start)
}

/// [`same_process_alive`] with how to ask whether a pid exists and when it started.
pub(crate) fn same_process(
    pid: i32,
    start: Option<u64>,
    alive: impl Fn(i32) -> bool,
    start_of: impl Fn(i32) -> Option<u64>,
) -> bool {
    if !alive(pid) {
        return false;
    }
    // Unknown on either side (an older record, /proc hidden from this user): the pid decides.
    match (start, start_of(pid)) {
        (Some(then), Some(now)) => then == now,
        _ => true,
    }
}

/// When process `pid` started, in clock ticks after boot (field 22 of /proc/<pid>/stat): a pid
/// reused by another process comes with another start time. None when /proc does not show it
/// (gone, or hidden from this user).
pub fn pid_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_in_stat(&stat)
}

fn start_in_stat(stat: &str) -> Option<u64> {
    // The command name is parenthesised and may contain spaces: fields 3 on follow the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether this process ignores signal `sig` (its disposition is SIG_IGN), from the SigIgn mask
/// in /proc/self/status: `nohup` starts a program ignoring SIGHUP, a shell without job control
/// starts a background job ignoring SIGINT. False when /proc does not say.
pub fn ignores_signal(sig: nix::sys::signal::Signal) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| ignored_mask(&status))
        .is_some_and(|mask| mask & (1u64 << (sig as i32 - 1)) != 0)
}

fn ignored_mask(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// `root` and all its descendants, found through /proc. PostgreSQL makes every child of the
/// postmaster its own process-group leader, so signalling the postmaster's group reaches only
/// the postmaster: a crash or a freeze has to address each process.
pub fn process_tree(root: i32) -> Vec<i32> {
    let mut children: std::collections::HashMap<i32, Vec<i32>> = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The command name is parenthesised and may contain spaces: parse after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok())
        {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().copied());
        }
        i += 1;
    }
    out
}

/// Send `sig` to `root` and every descendant. With SIGKILL or SIGSTOP the root is stopped
/// first, so it cannot fork new children while the tree is being walked.
pub fn signal_tree(root: i32, sig: nix::sys::signal::Signal) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if root <= 0 {
        return;
    }
    if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
        let _ = kill(Pid::from_raw(root), Signal::SIGSTOP);
    }
    let tree = process_tree(root);
    for pid in tree.iter().skip(1) {
        let _ = kill(Pid::from_raw(*pid), sig);
    }
    let _ = kill(Pid::from_raw(root), sig);
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    #[test]
    fn a_link_put_in_a_private_folder_s_place_is_refused_and_its_target_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
        let node = d.path().join("b");
        std::os::unix::fs::symlink(&elsewhere, &node).unwrap();
        let me = ServerUser::resolve().unwrap();
        let e = me
            .private_dir(&node)
            .expect_err("a link is no private folder");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let mode = std::fs::metadata(&elsewhere).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "the link's target was chmodded");
        // A real folder is made private.
        let real = d.path().join("c");
        me.private_dir(&real).unwrap();
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_process_of_another_user_is_alive() {
        assert!(signal0_says_alive(Ok(())));
        assert!(signal0_says_alive(Err(Errno::EPERM)));
        assert!(!signal0_says_alive(Err(Errno::ESRCH)));
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(0));
    }

    #[test]
    fn ignored_signals_are_read_from_the_process_status() {
        let status = "Name:\tpgrehearse\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001001\nSigCgt:\t0000000000000000\n";
        assert_eq!(ignored_mask(status), Some(0x1001));
        assert_eq!(ignored_mask("Name:\tx\n"), None);
        // The Rust runtime starts every program ignoring SIGPIPE; nothing here ignores SIGTERM.
        use nix::sys::signal::Signal;
        assert!(ignores_signal(Signal::SIGPIPE));
        assert!(!ignores_signal(Signal::SIGTERM));
    }

    #[test]
    fn a_process_start_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "27778 (a (b) c) R 27775 27775 21840 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 50435 3133440 413";
        assert_eq!(start_in_stat(stat), Some(50435));
        assert_eq!(start_in_stat("27778 (cat) R 1 2"), None);
        let me = std::process::id() as i32;
        assert!(pid_start(me).is_some_and(|t| t > 0));
        assert_eq!(pid_start(me), pid_start(me));
    }
}
