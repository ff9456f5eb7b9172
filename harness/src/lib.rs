//! pgrehearse: rehearse a PostgreSQL migration A → B → C before the real cutover.
//!
//! A is the primary, B a hot standby fed by physical streaming replication, and C the target,
//! fed by logical decoding on B. The library builds that chain on a [`backend::Backend`], runs a
//! seeded [`workload`] against A, and [`verify`]s C row by row.

#![warn(missing_docs)]

pub mod backend;
pub mod bench;
pub mod chain;
pub mod error;
pub mod faults;
pub mod node;
pub mod observe;
pub mod os;
pub mod pg;
pub mod report;
pub mod run;
pub mod scenario;
pub mod secret;
pub mod util;
pub mod verdict;
pub mod verify;
pub mod wait;
pub mod workload;

pub use error::{Error, ErrorKind, Result};
pub use verdict::Verdict;
