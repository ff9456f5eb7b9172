//! Running a rehearsal: the run directory, the state file, the executor, and re-attaching to a
//! running chain.

mod attach;
mod dir;
mod execute;
mod progress;
mod state;

pub use attach::{Attached, down_all, down_run};
pub use dir::{RunDir, home};
pub use execute::{Rehearsal, RunOptions};
pub use progress::{NoProgress, Progress};
pub use state::{Purpose, RunState, forget_secrets, list_runs, pick_run, pick_run_for, scrub_logs};
