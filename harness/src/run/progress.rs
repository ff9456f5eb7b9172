//! Progress hooks: the library says what it is doing; the CLI draws it.

/// Receives progress from a running rehearsal. Implementations must be cheap and must not
/// block: they are called from the run's tasks.
pub trait Progress: Send + Sync {
    /// A new step started ("building the chain").
    fn phase(&self, name: &str);
    /// A measurable step advanced (`done` of `total` units).
    fn measured(&self, name: &str, done: u64, total: u64);
    /// A short live figure for the current step ("1234 ops, 410/s").
    fn note(&self, text: &str);
    /// The run is over; clear whatever is drawn.
    fn done(&self);
}

/// Progress that goes nowhere (tests, `--quiet`).
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str) {}
    fn measured(&self, _: &str, _: u64, _: u64) {}
    fn note(&self, _: &str) {}
    fn done(&self) {}
}
