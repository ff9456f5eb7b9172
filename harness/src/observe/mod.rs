//! Observing the chain: point-in-time snapshots of every hop (lag, slots, subscription), a
//! heartbeat for end-to-end lag, and a sampler that turns snapshots into time series.

mod heartbeat;
mod sampler;
mod snapshot;
mod summary;

pub use heartbeat::{Heartbeat, HeartbeatLog};
pub use sampler::{Sample, Sampler, SamplerConfig, Samples, primary_channel};
pub use snapshot::{
    ChainSnapshot, HopLag, NodeProbe, NodeSnapshot, SlotRow, SubscriptionRow, WalSenderRow,
    derive_lags,
};
pub use summary::{Failover, Observations, Peak, Peaks, Rpo, SeriesPoint, SlotOutcome};
