//! Faults: each one injects, heals, and says what it expects. Link faults act through a
//! harness-owned proxy on a hop; node faults act on processes; replication faults act through
//! SQL on B and C.

mod model;
pub mod proxy;

pub use model::{FaultKind, FaultRecord, FaultSpec, Hop};
pub use proxy::{LinkMode, LinkProxy, LinkState};
