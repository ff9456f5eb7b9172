//! Nudging A to log a running-transactions record.
//!
//! A logical slot created on a standby cannot find its start point until the standby replays
//! an xl_running_xacts record from the primary. A busy primary's bgwriter logs one at most every
//! 15 s, an idle one none at all, so slot creation on B — the subscription's slot, and the slot each table-sync worker
//! creates for its copy — would hang. `pg_log_standby_snapshot()` on A writes one at once
//! (PostgreSQL's own test framework does the same in create_logical_slot_on_standby).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::node::Node;

/// Calls `pg_log_standby_snapshot()` on a primary every `every` until dropped.
pub struct Nudger {
    task: JoinHandle<()>,
    failures: Arc<Mutex<Failures>>,
    primary: String,
}

/// What went wrong while nudging: a wait for a slot on B that times out has its cause here
/// when A could not be nudged.
#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
    last: Option<String>,
}

impl Failures {
    fn record(&mut self, what: String) {
        self.count += 1;
        if self.first.is_none() {
            tracing::warn!("nudging a: {what}");
            self.first = Some(what);
        } else {
            self.last = Some(what);
        }
    }
}

impl Nudger {
    /// Start nudging `primary`.
    pub fn start(primary: &Node, every: Duration) -> Nudger {
        let node = primary.clone();
        let failures = Arc::new(Mutex::new(Failures::default()));
        let seen = failures.clone();
        let task = tokio::spawn(async move {
            let mut client = None;
            loop {
                if client.is_none() {
                    match node.connect("postgres").await {
                        Ok(c) => client = Some(c),
                        Err(e) => seen.lock().expect("nudge failures").record(e.to_string()),
                    }
                }
                if let Some(c) = &client
                    && let Err(e) = c.batch_execute("SELECT pg_log_standby_snapshot()").await
                {
                    let e = crate::Error::from(e).context("SELECT pg_log_standby_snapshot()");
                    seen.lock().expect("nudge failures").record(e.to_string());
                    client = None;
                }
                tokio::time::sleep(every).await;
            }
        });
        Nudger {
            task,
            failures,
            primary: primary.name().to_string(),
        }
    }

    /// What went wrong nudging the primary so far (None: every nudge went through), e.g.
    /// "nudging a failed 12 times; first: ...; last: ...".
    pub fn failures(&self) -> Option<String> {
        let f = self.failures.lock().expect("nudge failures");
        let first = f.first.as_deref()?;
        let mut out = format!(
            "nudging {} (pg_log_standby_snapshot()) failed {} time{}; first: {first}",
            self.primary,
            f.count,
            if f.count == 1 { "" } else { "s" }
        );
        if let Some(last) = &f.last {
            out.push_str(&format!("; last: {last}"));
        }
        Some(out)
    }
}

impl Drop for Nudger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `e` with what went wrong nudging, in its message, when something did: the likeliest reason a
/// slot on B was not created in time.
pub(super) fn with_failures(e: crate::Error, nudger: Option<&Nudger>) -> crate::Error {
    match nudger.and_then(Nudger::failures) {
        Some(f) => e.also(&crate::Error::database(f)),
        None => e,
    }
}
