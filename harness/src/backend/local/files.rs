//! Copies into the run's node folders, and stopping them when the run ends early.
//!
//! Copies run off the async workers (`spawn_blocking`), so dropping the future that started
//! one (Ctrl-C) does not stop it: left alone it would go on writing into a node folder the
//! teardown has just removed, and leave it behind.

use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The copies in progress for one backend.
#[derive(Debug, Default)]
pub(crate) struct Copies {
    stop: AtomicBool,
    /// Each copy holds it shared; stopping takes it exclusively, so it returns only once no
    /// copy is writing.
    running: RwLock<()>,
}

impl Copies {
    /// Copy `from` to `to` (modes and symlinks kept), unless the copies were stopped: then
    /// nothing is written, or the copy ends at the next file.
    pub(crate) fn copy(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let _running = self.running.read().unwrap_or_else(|e| e.into_inner());
        copy_tree(from, to, &self.stop)
    }

    /// Stop every copy and wait until none is writing; later copies write nothing.
    pub(crate) fn stop_and_wait(&self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.running.write().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Copy a directory tree, keeping file modes (data directories must stay 0700) and following
/// symlinks (a staged copy must not point back into a folder the server user cannot read);
/// `stop` ends it before the next file.
pub(crate) fn copy_tree(from: &Path, to: &Path, stop: &AtomicBool) -> std::io::Result<()> {
    let stopped = || {
        std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "stopped: the run is being torn down",
        )
    };
    if stop.load(Ordering::SeqCst) {
        return Err(stopped());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        if stop.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        let src = e?.path();
        let dst = to.join(src.file_name().unwrap_or_default());
        if std::fs::metadata(&src)?.is_dir() {
            copy_tree(&src, &dst, stop)?;
        } else {
            // Permission bits come along.
            std::fs::copy(&src, &dst)?;
        }
    }
    // Last, so that a read-only source folder is still filled before it becomes read-only.
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_follows_symlinks_and_fills_read_only_folders() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("data.sql"), b"SELECT 1;").unwrap();
        std::os::unix::fs::symlink(outside.path().join("data.sql"), src.path().join("link.sql"))
            .unwrap();
        std::fs::create_dir(src.path().join("ro")).unwrap();
        std::fs::write(src.path().join("ro/f"), b"x").unwrap();
        std::fs::set_permissions(
            src.path().join("ro"),
            std::fs::Permissions::from_mode(0o555),
        )
        .unwrap();
        let dst = tempfile::tempdir().unwrap();
        let to = dst.path().join("copy");

        copy_tree(src.path(), &to, &AtomicBool::new(false)).unwrap();

        let link = to.join("link.sql");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"SELECT 1;");
        assert_eq!(std::fs::read(to.join("ro/f")).unwrap(), b"x");
        let mode = std::fs::metadata(to.join("ro"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o555);
        // Let the temporary folders go.
        for d in [src.path().join("ro"), to.join("ro")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn a_stopped_copy_writes_nothing() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/f"), b"x").unwrap();
        let dst = tempfile::tempdir().unwrap();
        let copies = Copies::default();

        copies.copy(src.path(), &dst.path().join("one")).unwrap();
        assert_eq!(std::fs::read(dst.path().join("one/sub/f")).unwrap(), b"x");

        copies.stop_and_wait();
        let e = copies
            .copy(src.path(), &dst.path().join("two"))
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted);
        assert!(!dst.path().join("two").exists());
    }
}
