//! Faults: each one injects, heals, and says what it expects. Link faults act through a
//! harness-owned proxy on a hop; node faults act on processes.

pub mod proxy;

pub use proxy::{LinkMode, LinkProxy, LinkState};
