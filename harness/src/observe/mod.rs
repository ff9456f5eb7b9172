//! Observing the chain: point-in-time snapshots of every hop (lag, slots, subscription).

mod snapshot;

pub use snapshot::{ChainSnapshot, HopLag, NodeSnapshot, SlotRow, SubscriptionRow, WalSenderRow};
