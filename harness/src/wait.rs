//! Waiting on named conditions. There is no sleep-for-N here: every wait polls a probe that says
//! what it saw, and a timeout returns an error quoting the last observation.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// What a probe saw on one poll.
pub enum Check<T> {
    /// The condition holds; the wait returns this value.
    Done(T),
    /// Not yet; the text describes the state seen (it ends up in the timeout error).
    NotYet(String),
}

/// Poll `probe` until it returns [`Check::Done`], a probe error, or `timeout` passes.
///
/// `what` completes the sentence "waiting for ..." and should name nodes and LSNs. Polling starts
/// at 10 ms and backs off to 250 ms, so short waits stay short and long waits stay cheap.
///
/// # Errors
/// [`crate::ErrorKind::Timeout`] with the last observation as detail; or the probe's own error,
/// which means the condition can no longer become true.
pub async fn wait_for<T, F, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    mut probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>>>,
{
    let what = what.into();
    let start = Instant::now();
    let mut interval = Duration::from_millis(10);
    let mut last: String;
    loop {
        match probe()
            .await
            .map_err(|e| e.context(format!("waiting for {what}")))?
        {
            Check::Done(v) => {
                tracing::debug!(
                    waited_ms = start.elapsed().as_millis() as u64,
                    "{what}: done"
                );
                return Ok(v);
            }
            Check::NotYet(seen) => last = seen,
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(Error::timeout(format!(
                "waiting for {what}: timed out after {}",
                crate::util::fmt_duration(timeout)
            ))
            .with_detail(format!("last state seen:\n{last}")));
        }
        tokio::time::sleep(interval.min(timeout - elapsed)).await;
        interval = (interval * 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timeout_quotes_the_last_observation() {
        let mut n = 0;
        let err = wait_for("the answer", Duration::from_millis(50), || {
            n += 1;
            let seen = format!("n = {n}");
            async move { Ok::<_, Error>(Check::<()>::NotYet(seen)) }
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Timeout);
        assert!(
            err.to_string()
                .contains("waiting for the answer: timed out"),
            "{err}"
        );
        assert!(err.detail().unwrap().contains("n = "), "{err:?}");
    }

    #[tokio::test]
    async fn done_returns_the_value() {
        let mut n = 0;
        let v = wait_for("three polls", Duration::from_secs(5), || {
            n += 1;
            let k = n;
            async move {
                Ok::<_, Error>(if k >= 3 {
                    Check::Done(k)
                } else {
                    Check::NotYet(k.to_string())
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
    }
}
