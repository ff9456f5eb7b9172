//! Observing the chain: point-in-time snapshots of every hop (lag, slots, subscription), a
//! heartbeat for end-to-end lag, and a sampler that turns snapshots into time series.

mod heartbeat;
mod render;
mod sampler;
mod snapshot;
mod summary;

pub use heartbeat::{
    EndToEnd, Heartbeat, HeartbeatLog, HeartbeatRead, HeartbeatRow, STOPPED_AFTER,
    WRITER_APPLICATION_NAME, Writer, assess, lag_from_rows, read_heartbeat, write_heartbeat_sql,
    writer_connected,
};
pub use render::render_status;
pub use sampler::{Sample, Sampler, SamplerConfig, Samples, primary_channel};
pub use snapshot::{
    ChainSnapshot, HopLag, NoSeconds, NodeProbe, NodeSnapshot, STATUS_PATIENCE, SlotRow,
    SubscriptionRow, WalSenderRow, derive_lags,
};
pub use summary::{
    Failover, FrozenLag, LagHop, Observations, Peak, Peaks, Rpo, SeriesPoint, SlotOutcome,
    frozen_lag,
};
