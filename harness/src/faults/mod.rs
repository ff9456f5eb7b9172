//! Faults: each one injects, heals, and says what it expects. Link faults act through a
//! harness-owned proxy on a hop; node faults act on processes; replication faults act through
//! SQL on B and C.

mod kinds;
mod link;
mod model;
pub mod proxy;
mod runtime;

pub use kinds::{Fault, build, link_state};
pub use link::{LinkControl, ProxyLink, proxy_can, proxy_partition_caveat};
pub use model::{CheckpointRecord, ChurnRecord, FaultKind, FaultRecord, FaultSpec, Hop};
pub use proxy::{LinkMode, LinkProxy, LinkState};
pub use runtime::{FailoverEvents, FaultEnv, InForce, Links, Timeline};
