//! The bandwidth cap of a hop's data direction. One pacer serves every connection on the hop,
//! so that together they carry no more than the cap, as tc's htb caps the hop as a whole in
//! containers; and it is paid in slices, so that a slow link trickles as a real one does
//! instead of passing a whole chunk at once and then nothing for seconds.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The smallest slice written at once however low the cap: below it the timer wakeups cost
/// more than the smoothness is worth.
const SLICE_FLOOR: usize = 1024;

/// When the capped link is free again.
#[derive(Debug)]
pub(super) struct Pacer {
    free_at: Mutex<Instant>,
}

impl Pacer {
    pub(super) fn new() -> Pacer {
        Pacer {
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// Take the link for `len` bytes at `bw` bytes per second, after whatever it carries
    /// already; returns when the slot starts. No burst: time the link sat idle is not saved up.
    pub(super) fn reserve(&self, len: usize, bw: u64) -> Instant {
        // Nothing panics while the lock is held, but a poisoned instant is still an instant.
        let mut free_at = self.free_at.lock().unwrap_or_else(PoisonError::into_inner);
        let start = (*free_at).max(Instant::now());
        *free_at = start + Duration::from_secs_f64(len as f64 / bw.max(1) as f64);
        start
    }
}

/// The most bytes written in one slot at `bw` bytes per second: a twentieth of a second's worth
/// (at least [`SLICE_FLOOR`]).
pub(super) fn slice(bw: u64) -> usize {
    usize::try_from(bw / 20)
        .unwrap_or(usize::MAX)
        .max(SLICE_FLOOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_a_twentieth_of_a_second_and_at_least_a_kibibyte() {
        assert_eq!(slice(10_000), 1024);
        assert_eq!(slice(32 * 1024), 1638);
        assert_eq!(slice(20 << 20), 1 << 20);
    }

    #[test]
    fn reservations_on_a_busy_link_follow_each_other() {
        let p = Pacer::new();
        let t = Instant::now();
        let first = p.reserve(1000, 1000);
        let second = p.reserve(500, 1000);
        assert!(
            first >= t && first < t + Duration::from_millis(100),
            "{first:?}"
        );
        assert_eq!(second, first + Duration::from_secs(1));
        let third = p.reserve(1, 1000);
        assert_eq!(third, second + Duration::from_millis(500));
    }
}
