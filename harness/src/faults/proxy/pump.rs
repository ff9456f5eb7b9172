//! One direction of a proxied connection: chunks read from one end, held for their delay and
//! the bandwidth cap, and written to the other end in order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::pacing::{Pacer, slice};
use super::state::{LinkCounters, LinkMode, LinkState};

/// The delay of one chunk on the data direction: uniform in [latency − jitter, latency +
/// jitter], clamped at 0, drawn from the connection's seeded `rng` (a seed replays the same
/// delays).
///
/// Why ± and not "latency plus 0..jitter": a latency fault means the same on every backend and
/// in the report. The fault's description reads "latency ± jitter", and the docker backend
/// gives tc netem `delay <latency> <jitter>`, whose delay is uniform around the latency (a
/// draw below zero means no delay at all: hence the clamp). With 0..jitter on
/// top, the proxy's mean delay was latency + jitter/2 and never below the latency, so the same
/// scenario lagged more on the local backend than in containers.
///
/// The draw is the delay a chunk would get on its own; [`pump`] then keeps order: a chunk is
/// never delivered before an earlier one (on a real link TCP holds back segments behind a
/// late one until it arrives), so a chunk drawn short right after one drawn long waits for it.
fn chunk_delay(latency: Duration, jitter: Duration, rng: &mut impl rand::Rng) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let j = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX / 2);
    let offset = rng.random_range(0..=j.saturating_mul(2));
    let lat = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX / 2);
    // latency − jitter + offset, clamped at 0.
    Duration::from_nanos((lat.saturating_add(offset)).saturating_sub(j))
}

/// A chunk read from one end, on its way to the other.
struct Chunk {
    /// Not to be delivered before: its arrival plus its delay.
    due: Instant,
    bytes: Vec<u8>,
    /// How much of it is written already: a fault can cut a write short.
    sent: usize,
    /// How much of it has had a slot of the bandwidth cap: a write cut short, or cancelled
    /// while it waits for its slot, does not pay a second time.
    paid: usize,
    /// When the last slot paid for starts.
    slot: Instant,
}

/// The chunks one direction holds, oldest first.
struct Line {
    chunks: VecDeque<Chunk>,
    /// Due time of the newest chunk: a later chunk is never due before it.
    last_due: Instant,
    /// Bytes read and not yet written.
    held: usize,
}

impl Line {
    fn new() -> Line {
        let now = Instant::now();
        Line {
            chunks: VecDeque::new(),
            last_due: now,
            held: 0,
        }
    }

    /// Queue `bytes`, due after `delay` but never before the chunk ahead of it (TCP delivers in
    /// order).
    fn push(&mut self, bytes: Vec<u8>, delay: Duration) {
        let due = (Instant::now() + delay).max(self.last_due);
        self.last_due = due;
        self.held += bytes.len();
        self.chunks.push_back(Chunk {
            due,
            bytes,
            sent: 0,
            paid: 0,
            slot: due,
        });
    }
}

/// Write the oldest chunk, or as much of it as `to` takes, once its delay has passed; under a
/// bandwidth cap, one slice of it once `pacer` has a slot for it. Returns the bytes written.
///
/// Cancel-safe, so that [`pump`] can race every wait here with a change of the link state:
/// cancelled while waiting it has changed nothing, and a cancelled write has written nothing
/// (tokio guarantees it for `write`). What a chunk has left stays at the head of the line,
/// never lost or sent twice.
async fn deliver(
    line: &mut Line,
    to: &mut (impl AsyncWrite + Unpin),
    bandwidth: Option<u64>,
    pacer: &Pacer,
) -> std::io::Result<usize> {
    let Line { chunks, held, .. } = line;
    let Some(head) = chunks.front_mut() else {
        return std::future::pending().await;
    };
    tokio::time::sleep_until(head.due).await;
    let end = match bandwidth.filter(|b| *b > 0) {
        Some(bw) => {
            if head.paid <= head.sent {
                let len = slice(bw).min(head.bytes.len() - head.sent);
                head.slot = pacer.reserve(len, bw);
                head.paid = head.sent + len;
            }
            tokio::time::sleep_until(head.slot).await;
            head.paid
        }
        None => head.bytes.len(),
    };
    let n = to.write(&head.bytes[head.sent..end]).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    head.sent += n;
    *held = held.saturating_sub(n);
    if head.sent == head.bytes.len() {
        chunks.pop_front();
    }
    Ok(n)
}

/// What one direction holds at least before it stops reading from its source: about what a
/// real link's socket buffers let a sender write ahead.
pub(super) const HELD_FLOOR: usize = 4 << 20;

/// How many bytes one direction may hold (read, not yet written) before it stops reading, so
/// that the sender feels backpressure as across a real link, whose socket buffers and bytes in
/// flight bound how far it can write ahead: twice what a capped link carries over the longest
/// delay, and at least [`HELD_FLOOR`]. Unbounded, a walsender behind a cap would run ahead of
/// what its standby received (its sent LSN far past the write LSN) and the proxy's memory
/// grow with the backlog.
fn held_limit(bandwidth: Option<u64>, longest_delay: Duration) -> usize {
    let in_flight = bandwidth.map_or(0.0, |bw| 2.0 * bw as f64 * longest_delay.as_secs_f64());
    // Saturating: a float beyond usize converts to usize::MAX.
    HELD_FLOOR.max(in_flight as usize)
}

/// Forward one direction. On the data direction, chunks are delivered no earlier than their
/// arrival plus their delay ([`chunk_delay`]: latency ± jitter, never reordered) and no faster
/// than the bandwidth cap, which `pacer` shares with the hop's other connections.
///
/// Every wait (a chunk's delay, its bandwidth slot, a write the other end is slow to take)
/// races with a change of the link state, so a fault is in force from the moment it is set:
/// under a blackhole nothing more is read or written until heal, not even a chunk that was
/// about to go.
///
/// When the source closes or fails, what was read from it still goes, each chunk when due, and
/// only then does the end pass on, as across a real link the FIN or the reset comes after the
/// last bytes sent before it.
pub(super) async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut state: watch::Receiver<LinkState>,
    counters: Arc<LinkCounters>,
    data_direction: bool,
    pacer: &Pacer,
    seed: u64,
) -> Ended {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ data_direction as u64);
    let mut buf = vec![0u8; 64 * 1024];
    let mut line = Line::new();
    let mut eof = false;
    let mut failed = None;
    let (read, delivered) = if data_direction {
        (&counters.bytes_down_read, &counters.bytes_down)
    } else {
        (&counters.bytes_up_read, &counters.bytes_up)
    };
    loop {
        let cur = state.borrow_and_update().clone();
        if cur.mode != LinkMode::Up {
            // Blackhole: hold every byte until heal. Down: hold too, while `serve` resets the
            // connection; a last chunk or a FIN sent from here would cross a link that is gone.
            if state.changed().await.is_err() {
                return Ended::Stopped;
            }
            continue;
        }
        if eof && line.chunks.is_empty() {
            return match failed {
                Some(e) => Ended::Reset(e),
                None => match to.shutdown().await {
                    Ok(()) => Ended::Closed,
                    Err(e) => Ended::Lost(e),
                },
            };
        }
        let bandwidth = cur.bandwidth.filter(|_| data_direction);
        let longest_delay = if data_direction {
            cur.latency + cur.jitter
        } else {
            Duration::ZERO
        };
        let room = held_limit(bandwidth, longest_delay)
            .saturating_sub(line.held)
            .min(buf.len());
        tokio::select! {
            biased;
            // The proxy is gone when the sender is: nothing left to forward for.
            r = state.changed() => if r.is_err() {
                return Ended::Stopped;
            },
            r = deliver(&mut line, &mut to, bandwidth, pacer), if !line.chunks.is_empty() => {
                match r {
                    Ok(n) => delivered.fetch_add(n as u64, Ordering::Relaxed),
                    Err(e) => return Ended::Lost(e),
                };
            }
            r = from.read(&mut buf[..room]), if !eof && room > 0 => {
                match r {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        let delay = if data_direction {
                            chunk_delay(cur.latency, cur.jitter, &mut rng)
                        } else {
                            Duration::ZERO
                        };
                        line.push(buf[..n].to_vec(), delay);
                        read.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eof = true;
                        failed = Some(e);
                    }
                }
            }
        }
    }
}

/// How one direction of a connection ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// The source closed: all it sent was delivered, then the destination's write half shut.
    Closed,
    /// The source reset the connection (or failed): all it sent before was delivered, and the
    /// destination is to be reset in turn.
    Reset(std::io::Error),
    /// The destination took no more (it reset or went away); what was held for it is lost.
    Lost(std::io::Error),
    /// The proxy is gone.
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direction_holds_twice_what_a_capped_link_carries_over_its_longest_delay() {
        let s = Duration::from_secs;
        assert_eq!(held_limit(None, s(10)), HELD_FLOOR);
        assert_eq!(held_limit(Some(1 << 20), Duration::ZERO), HELD_FLOOR);
        assert_eq!(held_limit(Some(1 << 20), s(1)), HELD_FLOOR);
        assert_eq!(held_limit(Some(4 << 20), s(3)), 24 << 20);
        assert_eq!(held_limit(Some(u64::MAX), s(u64::MAX)), usize::MAX);
    }

    #[test]
    fn jitter_spreads_the_delay_evenly_around_the_latency_as_netem_does() {
        let ms = Duration::from_millis;
        let draw = |latency, jitter, seed, n| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            (0..n)
                .map(|_| chunk_delay(latency, jitter, &mut rng))
                .collect::<Vec<_>>()
        };
        let d = draw(ms(100), ms(50), 3, 10_000);
        assert!(d.iter().all(|x| (ms(50)..=ms(150)).contains(x)), "{d:?}");
        let (min, max) = (*d.iter().min().unwrap(), *d.iter().max().unwrap());
        assert!(min < ms(52) && max > ms(148), "{min:?} .. {max:?}");
        let mean = d.iter().sum::<Duration>() / d.len() as u32;
        assert!((ms(98)..=ms(102)).contains(&mean), "mean {mean:?}");
        let below = d.iter().filter(|x| **x < ms(100)).count();
        assert!(
            (4_700..=5_300).contains(&below),
            "{below} of 10000 below the latency"
        );
        // A seed replays the same delays; another seed draws others.
        assert_eq!(draw(ms(100), ms(50), 3, 100), d[..100]);
        assert_ne!(draw(ms(100), ms(50), 4, 100), d[..100]);
        // Jitter larger than the latency: what would be negative is sent at once.
        let d = draw(ms(10), ms(50), 3, 1_000);
        assert!(d.iter().all(|x| *x <= ms(60)), "{d:?}");
        assert!(d.iter().any(|x| x.is_zero()), "{d:?}");
        // No jitter: exactly the latency.
        assert!(
            draw(ms(100), Duration::ZERO, 3, 10)
                .iter()
                .all(|x| *x == ms(100))
        );
    }
}
