//! Nudging A to log a running-transactions record.
//!
//! A logical slot created on a standby cannot find its start point until the standby replays
//! an xl_running_xacts record from the primary. An idle primary writes one only every 15 s (or
//! never), so slot creation on B — and each table-sync worker's temporary slot — would hang.
//! `pg_log_standby_snapshot()` on A writes one at once (PostgreSQL's own test framework does the
//! same in create_logical_slot_on_standby).

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::node::Node;

/// Calls `pg_log_standby_snapshot()` on a primary every `every` until dropped.
pub struct Nudger {
    task: JoinHandle<()>,
}

impl Nudger {
    /// Start nudging `primary`.
    pub fn start(primary: &Node, every: Duration) -> Nudger {
        let node = primary.clone();
        let task = tokio::spawn(async move {
            let mut client = None;
            loop {
                if client.is_none() {
                    client = node.connect("postgres").await.ok();
                }
                if let Some(c) = &client {
                    match c.batch_execute("SELECT pg_log_standby_snapshot()").await {
                        Ok(()) => {}
                        Err(_) => client = None,
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        Nudger { task }
    }
}

impl Drop for Nudger {
    fn drop(&mut self) {
        self.task.abort();
    }
}
