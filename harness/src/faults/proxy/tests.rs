//! The proxy end to end: real sockets, with an echo server, a firehose or a scripted server
//! upstream.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::*;

/// An upstream that sends whatever it receives back, to exercise both directions.
async fn echo_server() -> Endpoint {
    let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Endpoint {
        host: "127.0.0.1".into(),
        port,
    }
}

async fn connect(p: &LinkProxy) -> TcpStream {
    let ep = p.endpoint();
    TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .unwrap()
}

async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).await.unwrap();
    got
}

/// A proxy on 127.0.0.1 in front of a fresh echo server.
async fn echo_proxy() -> LinkProxy {
    let local = std::net::Ipv4Addr::LOCALHOST.into();
    LinkProxy::start("t", local, echo_server().await, 1)
        .await
        .unwrap()
}

/// Wait until `cond` holds. The proxy's counters have no event to await, so this polls
/// them; a condition that never comes fails the test after 10 s instead of hanging it.
async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Assert that no byte arrives on `s` before `until`.
///
/// Bytes not arriving is no event to wait for, so this is a read with a deadline. Callers
/// put the deadline past the moment the proxy would have sent what it holds had the fault
/// not stopped it (plus slack for a busy machine), so the check fails when bytes leak.
async fn assert_nothing_arrives_before(s: &mut TcpStream, until: Instant, why: &str) {
    let mut b = [0u8; 1];
    if let Ok(r) = tokio::time::timeout_at(until, s.read(&mut b)).await {
        panic!("{why}: the read gave {r:?} ({b:?})");
    }
}

/// Heal, then read back exactly `held`: what the fault held, unchanged and in order.
async fn heal_and_expect(p: &LinkProxy, s: &mut TcpStream, held: &[u8]) {
    p.heal().await.unwrap();
    let mut got = vec![0u8; held.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
        .await
        .expect("the held bytes did not arrive within 10 s of the heal")
        .unwrap();
    assert_eq!(got, held, "held bytes changed or reordered");
}

fn blackhole_with(s: &LinkState) -> LinkState {
    LinkState {
        mode: LinkMode::Blackhole,
        ..s.clone()
    }
}

/// An echo link capped at `bw` bytes/s, and a connection whose first chunk of `first` bytes
/// has just crossed it both ways: the link, the connection, the cap, and when the chunk's
/// bandwidth slot ends (what is sent next waits for it).
async fn capped_and_busy(bw: u64, first: usize) -> (LinkProxy, TcpStream, LinkState, Instant) {
    let p = echo_proxy().await;
    let mut s = connect(&p).await;
    let cap = LinkState {
        bandwidth: Some(bw),
        ..Default::default()
    };
    p.set(cap.clone()).await.unwrap();
    let chunk = vec![1u8; first];
    assert_eq!(roundtrip(&mut s, &chunk).await, chunk);
    let slot = Instant::now() + Duration::from_secs_f64(first as f64 / bw as f64);
    (p, s, cap, slot)
}

/// Slack for a timer firing late and a task running late on a busy machine.
const BUSY_SLACK: Duration = Duration::from_millis(500);

#[tokio::test]
async fn a_chunk_waiting_for_its_bandwidth_slot_stays_behind_a_blackhole_until_heal() {
    // The first chunk finds the link free and takes it for half a second.
    const FIRST: usize = 2048;
    let (p, mut s, cap, slot) = capped_and_busy(4096, FIRST).await;
    // The rest comes back from the echo server and waits in the proxy for that slot.
    let rest: Vec<u8> = (0u16..2048).flat_map(u16::to_be_bytes).collect();
    s.write_all(&rest).await.unwrap();
    let total = (FIRST + rest.len()) as u64;
    let ctr = p.counters();
    wait_for("the proxy holds the rest", || {
        ctr.bytes_down_read.load(Ordering::Relaxed) == total
    })
    .await;
    p.set(blackhole_with(&cap)).await.unwrap();
    assert_nothing_arrives_before(
        &mut s,
        slot + BUSY_SLACK,
        "bytes crossed a blackholed link when their bandwidth slot came",
    )
    .await;
    heal_and_expect(&p, &mut s, &rest).await;
}

#[tokio::test]
async fn delayed_chunks_stay_behind_a_blackhole_until_heal_and_keep_their_order() {
    // Long enough that both chunks are still waiting when the blackhole starts (the test
    // runs on one thread: the proxy only moves while the test awaits).
    const LATENCY: Duration = Duration::from_millis(500);
    // On a loaded machine the set-up can lose its race anyway (a chunk comes due before the
    // blackhole is in force): nothing is judged then, and it is set up again.
    const TRIES: usize = 5;
    let slow = LinkState {
        latency: LATENCY,
        ..Default::default()
    };
    for attempt in 1..=TRIES {
        let p = echo_proxy().await;
        let mut s = connect(&p).await;
        p.set(slow.clone()).await.unwrap();
        let ctr = p.counters();
        let mut sent = Vec::new();
        for chunk in [&b"first "[..], b"second"] {
            s.write_all(chunk).await.unwrap();
            sent.extend_from_slice(chunk);
            let n = sent.len() as u64;
            wait_for("the proxy holds the chunk", || {
                ctr.bytes_down_read.load(Ordering::Relaxed) == n
            })
            .await;
        }
        let due = Instant::now() + LATENCY;
        p.set(blackhole_with(&slow)).await.unwrap();
        if ctr.bytes_down.load(Ordering::Relaxed) != 0 {
            eprintln!("try {attempt}: a chunk came due before the blackhole started; again");
            continue;
        }
        assert_nothing_arrives_before(
            &mut s,
            due + BUSY_SLACK,
            "delayed bytes crossed a blackholed link when they came due",
        )
        .await;
        heal_and_expect(&p, &mut s, &sent).await;
        return;
    }
    panic!(
        "in {TRIES} tries a chunk always came due before the blackhole started: too slow a \
         machine to judge"
    );
}

#[tokio::test]
async fn transparent_until_told_otherwise() {
    let p = echo_proxy().await;
    let mut s = connect(&p).await;
    assert_eq!(roundtrip(&mut s, b"hello").await, b"hello");
    assert_eq!(p.counters().bytes_down.load(Ordering::Relaxed), 5);
    assert_eq!(p.counters().bytes_up.load(Ordering::Relaxed), 5);
}

#[tokio::test]
async fn latency_delays_the_data_direction() {
    let p = echo_proxy().await;
    let mut s = connect(&p).await;
    p.set(LinkState {
        latency: Duration::from_millis(150),
        ..Default::default()
    })
    .await
    .unwrap();
    let t = std::time::Instant::now();
    assert_eq!(roundtrip(&mut s, b"x").await, b"x");
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn each_chunk_is_delayed_latency_plus_or_minus_jitter() {
    let ms = Duration::from_millis;
    // How late a timer may fire and a task run on a busy machine (2 cores, other builds):
    // added to the upper bound only, since the proxy never delivers early.
    const SLACK: Duration = Duration::from_millis(100);
    const CONNECTIONS: usize = 4;
    const CHUNKS: usize = 15;
    let p = echo_proxy().await;
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        conns.push(connect(&p).await);
    }
    p.set(LinkState {
        latency: ms(100),
        jitter: ms(50),
        ..Default::default()
    })
    .await
    .unwrap();
    // One byte at a time, each sent only once the previous one is back: every chunk is
    // alone in the proxy's queue, so what is measured is its own delay, not the wait
    // behind an earlier chunk that order preservation adds. The connections run
    // concurrently to keep the test short; each draws from its own seeded stream, and
    // together they draw the same delays on every run.
    let rounds = conns.into_iter().map(|mut s| async move {
        let mut seen = Vec::with_capacity(CHUNKS);
        for i in 0..CHUNKS {
            let t = std::time::Instant::now();
            let got = tokio::time::timeout(Duration::from_secs(10), roundtrip(&mut s, &[i as u8]))
                .await
                .expect("a chunk did not come back within 10 s");
            seen.push(t.elapsed());
            assert_eq!(got, [i as u8]);
        }
        seen
    });
    let mut delays: Vec<Duration> = futures::future::join_all(rounds)
        .await
        .into_iter()
        .flatten()
        .collect();
    delays.sort();
    let (min, max) = (delays[0], *delays.last().unwrap());
    // Nine in ten: a round trip or two may catch a stall of the machine, which only ever
    // makes a chunk later.
    let p90 = delays[delays.len() * 9 / 10];
    let shown: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
    // Never earlier than latency − jitter: timers do not fire early.
    assert!(min >= ms(50), "a chunk came back before 50 ms: {shown:?}");
    assert!(
        p90 <= ms(150) + SLACK,
        "more than one chunk in ten took longer than 150 ms + slack: {shown:?}"
    );
    // Spread around the latency, not only above it (latency + 0..jitter never goes below
    // 100 ms): about a third of the draws are under 80 ms.
    assert!(
        min < ms(80),
        "no chunk well below the 100 ms latency: {shown:?}"
    );
    assert!(
        max > ms(100),
        "no chunk above the 100 ms latency: {shown:?}"
    );
}

#[tokio::test]
async fn jitter_never_reorders_the_stream() {
    let p = echo_proxy().await;
    let mut s = connect(&p).await;
    p.set(LinkState {
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(30),
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut r, mut w) = s.split();
    let sent: Vec<u8> = (0u32..200).flat_map(u32::to_be_bytes).collect();
    let write = async {
        for c in sent.chunks(4) {
            w.write_all(c).await.unwrap();
            // Pacing, so that most counters cross the proxy as chunks of their own, each
            // with its own delay (a later one is often drawn shorter than the one before).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let mut got = vec![0u8; sent.len()];
    let read = tokio::time::timeout(Duration::from_secs(20), r.read_exact(&mut got));
    let ((), res) = tokio::join!(write, read);
    res.expect("the stream did not come back within 20 s")
        .unwrap();
    assert_eq!(got, sent, "bytes reordered or changed");
}

#[tokio::test]
async fn blackhole_holds_bytes_and_heal_delivers_them_intact() {
    let p = echo_proxy().await;
    let mut s = connect(&p).await;
    assert_eq!(roundtrip(&mut s, b"before").await, b"before");
    p.set(LinkState {
        mode: LinkMode::Blackhole,
        ..Default::default()
    })
    .await
    .unwrap();
    s.write_all(b"during").await.unwrap();
    let mut buf = [0u8; 6];
    // Nothing may arrive while the link is blackholed (the connection stays open).
    let r = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await;
    assert!(r.is_err(), "bytes crossed a blackholed link");
    p.heal().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"during");
}

#[tokio::test]
async fn down_resets_existing_connections_and_refuses_new_ones() {
    let p = echo_proxy().await;
    let mut s = connect(&p).await;
    assert_eq!(roundtrip(&mut s, b"a").await, b"a");
    p.set(LinkState {
        mode: LinkMode::Down,
        ..Default::default()
    })
    .await
    .unwrap();
    // A read, not a write: the reset may be in already, and a write would take its error
    // (leaving the read an EOF).
    let mut buf = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the proxy must reset the connection");
    assert_eq!(
        r.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "a link that goes down resets, it does not close"
    );
    let ep = p.endpoint();
    assert_eq!(
        refused(&p).await,
        Err(std::io::ErrorKind::ConnectionRefused),
        "a new connection while down"
    );
    p.heal().await.unwrap();
    assert_eq!(p.endpoint(), ep, "the proxy moved");
    let mut s3 = connect(&p).await;
    assert_eq!(roundtrip(&mut s3, b"c").await, b"c");
}

/// How a connection attempt to the proxy ends.
async fn refused(p: &LinkProxy) -> std::result::Result<(), std::io::ErrorKind> {
    let ep = p.endpoint();
    let attempt = TcpStream::connect((ep.host.as_str(), ep.port));
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .expect("a connection attempt neither refused nor taken within 5 s")
        .map(drop)
        .map_err(|e| e.kind())
}

#[tokio::test]
async fn a_heal_after_a_down_cut_short_takes_connections_again() {
    use futures::FutureExt;
    let p = echo_proxy().await;
    let down = LinkState {
        mode: LinkMode::Down,
        ..Default::default()
    };
    // As when the fault timeline is aborted (a failed workload heals everything) while a down
    // is being put in force: the change is dropped where it waits for the accept loop to stop.
    assert!(
        p.set(down).now_or_never().is_none(),
        "the down took effect within one poll: nothing was cut short"
    );
    p.heal().await.unwrap();
    let ep = p.endpoint();
    let echoed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut s = TcpStream::connect((ep.host.as_str(), ep.port)).await?;
        s.write_all(b"back").await?;
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await?;
        Ok::<_, std::io::Error>(got)
    })
    .await
    .expect("no answer within 5 s of the heal");
    assert_eq!(
        echoed.map_err(|e| e.kind()),
        Ok(*b"back"),
        "the healed link does not take connections"
    );
}

#[tokio::test]
async fn a_failing_accept_is_retried_after_a_pause_not_at_once() {
    // As accept fails while the process is out of file descriptors (EMFILE).
    let tries = std::sync::atomic::AtomicU32::new(0);
    let accept = || async {
        tries.fetch_add(1, Ordering::Relaxed);
        // Yields, so that a loop retrying at once spins without starving this test.
        tokio::task::yield_now().await;
        Err::<(), _>(std::io::Error::from_raw_os_error(libc::EMFILE))
    };
    let t = Instant::now();
    let retried = async {
        wait_for("accept to be tried 3 times", || {
            tries.load(Ordering::Relaxed) >= 3
        })
        .await;
        t.elapsed()
    };
    let elapsed = tokio::select! {
        () = next_connection("t", accept) => unreachable!("a failing accept gave a connection"),
        e = retried => e,
    };
    assert!(
        elapsed >= 2 * ACCEPT_RETRY,
        "3 tries in {elapsed:?}: a failing accept must be retried after {ACCEPT_RETRY:?}"
    );
}

#[tokio::test]
async fn down_refuses_new_connections_and_each_heal_takes_them_on_the_same_address() {
    let p = echo_proxy().await;
    let ep = p.endpoint();
    for round in 0..2 {
        p.set(LinkState {
            mode: LinkMode::Down,
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            refused(&p).await,
            Err(std::io::ErrorKind::ConnectionRefused),
            "round {round}"
        );
        p.heal().await.unwrap();
        assert_eq!(p.endpoint(), ep, "round {round}: the proxy moved");
        let mut s = connect(&p).await;
        assert_eq!(roundtrip(&mut s, b"back").await, b"back", "round {round}");
    }
}

#[tokio::test]
async fn a_heal_that_cannot_listen_again_is_an_error_and_the_link_stays_down() {
    let p = echo_proxy().await;
    let down = LinkState {
        mode: LinkMode::Down,
        ..Default::default()
    };
    p.set(down.clone()).await.unwrap();
    // Another program listens on the proxy's port meanwhile (SO_REUSEADDR is the one way
    // past the socket that holds it).
    let ep = p.endpoint();
    let addr = SocketAddr::new(ep.host.parse().unwrap(), ep.port);
    let intruder = reusable_socket(addr).unwrap();
    intruder.bind(addr).unwrap();
    let intruder = intruder.listen(1).unwrap();
    let e = p
        .heal()
        .await
        .expect_err("healed onto a port another program listens on");
    assert_eq!(e.kind(), crate::ErrorKind::Environment, "{e}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    assert_eq!(p.current(), down, "the link must say it is still down");
    drop(intruder);
    p.heal().await.unwrap();
    let mut s = connect(&p).await;
    assert_eq!(roundtrip(&mut s, b"back").await, b"back");
}

#[tokio::test]
async fn down_resets_at_once_a_connection_with_a_chunk_waiting_for_its_slot() {
    // The first chunk takes the link for a second; the next one waits for it.
    let (p, mut s, cap, slot) = capped_and_busy(1024, 1024).await;
    s.write_all(b"held").await.unwrap();
    let ctr = p.counters();
    wait_for("the proxy holds the next chunk", || {
        ctr.bytes_down_read.load(Ordering::Relaxed) == 1028
    })
    .await;
    p.set(LinkState {
        mode: LinkMode::Down,
        ..cap
    })
    .await
    .unwrap();
    let mut b = [0u8; 4];
    let r = tokio::time::timeout_at(slot, s.read(&mut b))
        .await
        .expect("the connection was not reset before the held chunk's slot");
    assert_eq!(
        r.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "{b:?}"
    );
}

#[tokio::test]
async fn bandwidth_cap_slows_the_data_direction() {
    let p = echo_proxy().await;
    let mut s = connect(&p).await;
    p.set(LinkState {
        bandwidth: Some(100 * 1024),
        ..Default::default()
    })
    .await
    .unwrap();
    let msg = vec![7u8; 50 * 1024];
    let t = std::time::Instant::now();
    assert_eq!(roundtrip(&mut s, &msg).await, msg);
    // 50 KiB at 100 KiB/s: at least ~half a second (lower bound only).
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

/// An upstream that writes as fast as it can to whoever connects, as a walsender with a
/// backlog does.
async fn firehose() -> Endpoint {
    let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let buf = vec![7u8; 64 * 1024];
                while s.write_all(&buf).await.is_ok() {}
            });
        }
    });
    Endpoint {
        host: "127.0.0.1".into(),
        port,
    }
}

#[tokio::test]
async fn a_capped_link_holds_a_bounded_number_of_bytes_so_the_sender_feels_backpressure() {
    const BW: u64 = 1 << 20;
    let local = std::net::Ipv4Addr::LOCALHOST.into();
    let p = LinkProxy::start("t", local, firehose().await, 1)
        .await
        .unwrap();
    p.set(LinkState {
        bandwidth: Some(BW),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut s = connect(&p).await;
    let ctr = p.counters();
    // Read before delivered: a byte delivered in between makes the estimate low, never high.
    let held = || {
        let read = ctr.bytes_down_read.load(Ordering::Relaxed);
        read.saturating_sub(ctr.bytes_down.load(Ordering::Relaxed))
    };
    let limit = super::pump::HELD_FLOOR as u64;
    wait_for("the proxy to fill what it may hold", || {
        held() >= limit - 64 * 1024
    })
    .await;
    // Half a second through the cap: time enough for an unbounded proxy to read far more.
    let mut got = vec![0u8; BW as usize / 2];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
        .await
        .expect("half a second's worth did not arrive within 10 s")
        .unwrap();
    let h = held();
    assert!(
        h <= limit,
        "the proxy holds {h} bytes for a link capped at {BW} B/s (at most {limit})"
    );
}

#[tokio::test]
async fn connections_on_a_capped_hop_share_the_cap() {
    const BW: u64 = 64 * 1024;
    let p = echo_proxy().await;
    p.set(LinkState {
        bandwidth: Some(BW),
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut s1, mut s2) = (connect(&p).await, connect(&p).await);
    let msg = vec![3u8; BW as usize / 2];
    let t = std::time::Instant::now();
    let (a, b) = tokio::join!(roundtrip(&mut s1, &msg), roundtrip(&mut s2, &msg));
    assert!(a == msg && b == msg, "bytes changed on the way");
    // A second's worth in all: only the first slice may pass at once (lower bound only).
    let least =
        Duration::from_secs_f64((BW as usize - super::pacing::slice(BW)) as f64 / BW as f64);
    assert!(
        t.elapsed() >= least,
        "two connections carried {} bytes in {:?} through a hop capped at {BW} B/s",
        2 * msg.len(),
        t.elapsed()
    );
}

#[tokio::test]
async fn a_slow_link_trickles_instead_of_passing_a_whole_chunk_at_once() {
    const BW: u64 = 32 * 1024;
    let local = std::net::Ipv4Addr::LOCALHOST.into();
    let p = LinkProxy::start("t", local, firehose().await, 1)
        .await
        .unwrap();
    p.set(LinkState {
        bandwidth: Some(BW),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut s = connect(&p).await;
    // The upstream writes 64 KiB at a time, so the proxy reads whole 64 KiB chunks; a second's
    // worth of them comes out one slice per slot, the first slice at once.
    let t = std::time::Instant::now();
    let mut got = vec![0u8; BW as usize];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
        .await
        .expect("a second's worth did not arrive within 10 s")
        .unwrap();
    let least =
        Duration::from_secs_f64((BW as usize - super::pacing::slice(BW)) as f64 / BW as f64);
    assert!(
        t.elapsed() >= least,
        "{BW} bytes in {:?} through a link capped at {BW} B/s",
        t.elapsed()
    );
}

/// An upstream for one connection: `script` gets it once the proxy has connected.
async fn upstream_once<F>(script: impl FnOnce(TcpStream) -> F + Send + 'static) -> Endpoint
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        script(s).await;
    });
    Endpoint {
        host: "127.0.0.1".into(),
        port,
    }
}

async fn proxy_to(upstream: Endpoint, state: LinkState) -> LinkProxy {
    let local = std::net::Ipv4Addr::LOCALHOST.into();
    let p = LinkProxy::start("t", local, upstream, 1).await.unwrap();
    p.set(state).await.unwrap();
    p
}

fn latency(ms: u64) -> LinkState {
    LinkState {
        latency: Duration::from_millis(ms),
        ..Default::default()
    }
}

#[tokio::test]
async fn bytes_held_for_latency_reach_the_client_before_the_upstream_s_reset() {
    let (go, reset_now) = tokio::sync::oneshot::channel::<()>();
    let up = upstream_once(|mut s| async move {
        // The last thing a server says before it goes (an ErrorResponse, say).
        s.write_all(b"tail").await.unwrap();
        let _ = reset_now.await;
        reset(s);
    })
    .await;
    let p = proxy_to(up, latency(300)).await;
    let mut s = connect(&p).await;
    let ctr = p.counters();
    wait_for("the proxy to hold the tail", || {
        ctr.bytes_down_read.load(Ordering::Relaxed) == 4
    })
    .await;
    go.send(()).unwrap();
    let mut got = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .expect("the tail did not arrive within 5 s")
        .expect("the tail was dropped with the upstream's reset");
    assert_eq!(&got, b"tail");
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut [0u8; 1]))
        .await
        .expect("the connection neither reset nor closed within 5 s after the tail");
    assert_eq!(
        r.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "the upstream's reset must follow the tail"
    );
}

#[tokio::test]
async fn an_answer_still_reaches_a_client_that_half_closed() {
    let up = upstream_once(|mut s| async move {
        let mut asked = Vec::new();
        s.read_to_end(&mut asked).await.unwrap();
        assert_eq!(asked, b"ping");
        s.write_all(b"pong").await.unwrap();
    })
    .await;
    let p = proxy_to(up, latency(200)).await;
    let mut s = connect(&p).await;
    s.write_all(b"ping").await.unwrap();
    s.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("no end of the answer within 5 s")
        .expect("the answer ended in an error");
    assert_eq!(
        got, b"pong",
        "the answer was dropped when the client half-closed"
    );
}
