//! Running a rehearsal: the run directory, the state file, and the executor.

mod dir;

pub use dir::{RunDir, home};
