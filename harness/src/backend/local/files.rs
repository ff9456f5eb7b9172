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

/// Copy a directory tree, keeping file modes and symlinks; `stop` ends it before the next file.
pub(crate) fn copy_tree(from: &Path, to: &Path, stop: &AtomicBool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
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
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())?;
    for e in std::fs::read_dir(from)? {
        if stop.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type()?;
        if ft.is_dir() {
            copy_tree(&src, &dst, stop)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
            let mode = std::fs::metadata(&src)?.permissions().mode();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
