//! A TCP proxy the harness puts on a replication hop (A→B, B→C) so that link faults can be
//! injected without privileges: latency with jitter, a bandwidth cap (on the hop as a whole,
//! however many connections share it), a blackhole (connections stay open, no bytes pass —
//! what a partition looks like to the endpoints' applications), and down (connections reset,
//! new ones refused). With no fault set it forwards bytes untouched.
//!
//! A blackhole is not a cut network to the endpoints' TCP stacks: their peer is the proxy,
//! whose sockets stay up and answer, so keepalives and `tcp_user_timeout` never fire and a new
//! connection completes its handshake before it hangs. Dropping packets takes privileges the
//! harness does not ask for here (the docker backend does it with iptables).
//!
//! Faults act on the data direction of the hop (upstream server → downstream client: WAL from
//! A to B, changes from B to C); the feedback direction only stops under blackhole/down.
//! Only a down cuts both directions at once: an end that closes or resets the connection has
//! that passed on after the bytes it sent before, as they would arrive across a real link.

mod pacing;
mod pump;
mod state;
#[cfg(test)]
mod tests;

pub use state::{LinkCounters, LinkMode, LinkState, describe};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::error::{Error, Result};
use crate::node::Endpoint;
use pacing::Pacer;
use pump::{Ended, pump};

/// A running proxy for one hop.
pub struct LinkProxy {
    name: String,
    listen: SocketAddr,
    state: watch::Sender<LinkState>,
    shared: Arc<Shared>,
    /// Whether new connections are taken; changed by [`LinkProxy::set`], one change at a time.
    door: tokio::sync::Mutex<Door>,
}

/// What the accept loop needs, kept by the proxy across the listeners a down replaces.
struct Shared {
    name: String,
    upstream: Endpoint,
    seed: u64,
    state: watch::Receiver<LinkState>,
    counters: Arc<LinkCounters>,
    /// The bandwidth cap of the data direction, shared by every connection on the hop.
    pacer: Arc<Pacer>,
    /// The connections being served. They outlive a listener (a down resets them itself), so
    /// the proxy owns them, and they end when it is dropped.
    conns: std::sync::Mutex<JoinSet<()>>,
}

/// How the proxy meets a new connection.
enum Door {
    /// The accept loop takes it; dropping the handle stops the loop and closes its listener.
    Open(AbortOnDropHandle<()>),
    /// The accept loop is aborted; its listener is closed once the handle resolves. Kept so
    /// that a change dropped while waiting for that (the fault timeline aborted) leaves a door
    /// the next change knows to finish shutting, not one that looks open with no loop behind.
    Closing(AbortOnDropHandle<()>),
    /// Nothing listens: the kernel refuses it, as it does for a host whose service is down.
    /// The socket, when there is one, holds the proxy's address without listening, so that
    /// the port is not handed to an outgoing connection meanwhile and the proxy can listen
    /// there again at heal: the downstream node keeps pointing at that address.
    Shut { _held: Option<TcpSocket> },
}

impl LinkProxy {
    /// Listen on `ip` (a free port) and forward to `upstream`. `seed` drives jitter.
    ///
    /// # Errors
    /// Environment error when no port can be bound.
    pub async fn start(
        name: &str,
        ip: std::net::IpAddr,
        upstream: Endpoint,
        seed: u64,
    ) -> Result<LinkProxy> {
        let cannot =
            |e| Error::environment(format!("link {name}: cannot listen on {ip}")).with_source(e);
        let listener = listen((ip, 0).into()).map_err(cannot)?;
        let listen = listener.local_addr().map_err(cannot)?;
        let (tx, rx) = watch::channel(LinkState::default());
        let shared = Arc::new(Shared {
            name: name.to_string(),
            upstream,
            seed,
            state: rx,
            counters: Arc::new(LinkCounters::default()),
            pacer: Arc::new(Pacer::new()),
            conns: std::sync::Mutex::new(JoinSet::new()),
        });
        let door = Door::Open(open(listener, &shared));
        tracing::debug!("link {name}: proxy on {listen}");
        Ok(LinkProxy {
            name: name.to_string(),
            listen,
            state: tx,
            shared,
            door: tokio::sync::Mutex::new(door),
        })
    }

    /// Where the downstream node should connect (the same address for the proxy's life, down
    /// or not).
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.listen.ip().to_string(),
            port: self.listen.port(),
        }
    }

    /// The hop's name ("a-b").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Change the link's behaviour; existing connections follow at once. Going down resets
    /// them and stops listening, so that a new connection is refused; leaving down listens on
    /// the same address again.
    ///
    /// # Errors
    /// Environment error when the proxy cannot listen on its address again (another program
    /// took the port while the link was down); the link stays down then, and a later change
    /// tries again.
    pub async fn set(&self, state: LinkState) -> Result<()> {
        let mut door = self.door.lock().await;
        if state.mode == LinkMode::Down {
            self.announce(state);
            door.shut(&self.name, self.listen).await;
            return Ok(());
        }
        if door.is_open() {
            self.announce(state);
            return Ok(());
        }
        // A down cut short left the door closing: its old listener must be gone before one
        // binds the same address again.
        door.shut(&self.name, self.listen).await;
        let listener = self.listen_again()?;
        // The state before the listener: a connection taken while still down would be reset.
        self.announce(state);
        *door = Door::Open(open(listener, &self.shared));
        Ok(())
    }

    /// Back to a transparent link.
    ///
    /// # Errors
    /// As [`LinkProxy::set`].
    pub async fn heal(&self) -> Result<()> {
        self.set(LinkState::default()).await
    }

    /// Current behaviour.
    pub fn current(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Traffic counters.
    pub fn counters(&self) -> &LinkCounters {
        &self.shared.counters
    }

    fn announce(&self, state: LinkState) {
        tracing::info!("link {}: {}", self.name, describe(&state));
        self.state.send_replace(state);
    }

    fn listen_again(&self) -> Result<TcpListener> {
        listen(self.listen).map_err(|e| {
            Error::environment(format!(
                "link {}: cannot listen on {} again to bring the link back up",
                self.name, self.listen
            ))
            .with_source(e)
            .with_hint("another program took the proxy's port while the link was down; the downstream node still connects there, so the link stays down")
        })
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        // The accept loop stops with the door; the connections are the proxy's to end.
        lock(&self.shared.conns).abort_all();
    }
}

impl Door {
    /// Whether an accept loop takes connections. One that ended by itself does not.
    fn is_open(&self) -> bool {
        matches!(self, Door::Open(acceptor) if !acceptor.is_finished())
    }

    /// Stop listening (connections not yet accepted are reset by the kernel) and hold `addr`.
    /// Cancel-safe: dropped before the listener is gone, the door is left `Closing`, and the
    /// next call finishes the job.
    async fn shut(&mut self, name: &str, addr: SocketAddr) {
        *self = match std::mem::replace(self, Door::Shut { _held: None }) {
            Door::Open(acceptor) => {
                acceptor.abort();
                Door::Closing(acceptor)
            }
            door => door,
        };
        if let Door::Closing(acceptor) = self {
            // An aborted task has dropped its future, and with it the listener, once its
            // handle resolves: from then on the kernel refuses new connections.
            let _ = acceptor.await;
            *self = Door::Shut {
                _held: hold(name, addr),
            };
        }
    }
}

/// A listening socket on `addr`. SO_REUSEADDR so that the proxy can listen on its address
/// again after a down while the connections it reset or closed there linger in the kernel.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = reusable_socket(addr)?;
    s.bind(addr)?;
    s.listen(1024)
}

/// A socket bound to `addr` that does not listen: connections to it are refused, and the
/// kernel gives its port to no outgoing connection while it is held. None (logged) when the
/// port cannot be held; the proxy still tries to listen there again at heal.
fn hold(name: &str, addr: SocketAddr) -> Option<TcpSocket> {
    let held = reusable_socket(addr).and_then(|s| s.bind(addr).map(|()| s));
    held.inspect_err(|e| tracing::debug!("link {name}: cannot hold {addr} while down: {e}"))
        .ok()
}

fn reusable_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    Ok(s)
}

/// The connection set, even if a task panicked while holding it (it only spawns and reaps).
fn lock(conns: &std::sync::Mutex<JoinSet<()>>) -> std::sync::MutexGuard<'_, JoinSet<()>> {
    conns
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Take connections on `listener` until the returned handle is dropped.
fn open(listener: TcpListener, shared: &Arc<Shared>) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(accept_loop(listener, shared.clone())))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (client, _) = next_connection(&shared.name, || listener.accept()).await;
        if shared.state.borrow().mode == LinkMode::Down {
            // Taken just before the listener closes for a down.
            reset(client);
            continue;
        }
        // Numbered across listeners, so that a seed replays the same delays after a down.
        let n = shared.counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let st = shared.state.clone();
        let ctr = shared.counters.clone();
        let pacer = shared.pacer.clone();
        let up = shared.upstream.clone();
        let name = shared.name.clone();
        let conn_seed = shared.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut conns = lock(&shared.conns);
        conns.spawn(async move {
            if let Err(e) = serve(client, up, st, ctr, &pacer, conn_seed).await {
                tracing::trace!("link {name}: connection ended: {e}");
            }
        });
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
}

/// Pause after a failed accept: retried at once, an accept that keeps failing (the process
/// out of file descriptors) would spin a core until the condition clears. Short next to the
/// seconds a replication client waits before it connects again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// While accept keeps failing, at most one log line per this.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// The next connection `accept` gives, past any failures (logged, then retried after
/// [`ACCEPT_RETRY`]).
async fn next_connection<T, F>(name: &str, mut accept: impl FnMut() -> F) -> T
where
    F: Future<Output = std::io::Result<T>>,
{
    let mut failures = 0u64;
    let mut logged: Option<Instant> = None;
    loop {
        match accept().await {
            Ok(conn) => return conn,
            Err(e) => {
                failures += 1;
                if logged.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                    logged = Some(Instant::now());
                    tracing::warn!(
                        "link {name}: cannot accept a connection ({failures} failure(s) in a row, retrying every {} ms): {e}",
                        ACCEPT_RETRY.as_millis()
                    );
                }
                // Backoff, not synchronisation: nothing signals that accept would work again.
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// Close with RST rather than FIN, as a network that drops the connection would look.
fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

async fn wait_while_blackholed(state: &mut watch::Receiver<LinkState>) -> bool {
    loop {
        let mode = state.borrow_and_update().mode;
        match mode {
            LinkMode::Up => return true,
            LinkMode::Down => return false,
            LinkMode::Blackhole => {
                if state.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: Endpoint,
    mut state: watch::Receiver<LinkState>,
    counters: Arc<LinkCounters>,
    pacer: &Pacer,
    seed: u64,
) -> std::io::Result<()> {
    // A connection opened during a blackhole hangs until the link comes back, as a SYN to an
    // unreachable host would.
    if !wait_while_blackholed(&mut state).await {
        reset(client);
        return Ok(());
    }
    let mut server = match TcpStream::connect((upstream.host.as_str(), upstream.port)).await {
        Ok(s) => s,
        Err(e) => {
            reset(client);
            return Err(e);
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    match relay(&mut client, &mut server, state, counters, pacer, seed).await {
        End::Down => {
            // Both ends see a reset, as when a link between them goes down.
            reset(client);
            reset(server);
            Ok(())
        }
        End::Reset(Side::Client, e) => {
            reset(client);
            Err(e)
        }
        End::Reset(Side::Server, e) => {
            reset(server);
            Err(e)
        }
        End::Closed(e) => e.map_or(Ok(()), Err),
    }
}

/// Forward both directions between `client` and `server` until the connection ends.
async fn relay(
    client: &mut TcpStream,
    server: &mut TcpStream,
    state: watch::Receiver<LinkState>,
    counters: Arc<LinkCounters>,
    pacer: &Pacer,
    seed: u64,
) -> End {
    // The pumps borrow the streams rather than own halves of them: an owned write half sends a
    // FIN when dropped, and the streams must outlive the pumps to be reset when the link goes
    // down or an end resets.
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    let down = went_down(state.clone());
    let data = pump(sr, cw, state.clone(), counters.clone(), true, pacer, seed);
    let feedback = pump(cr, sw, state, counters, false, pacer, seed);
    tokio::pin!(down, data, feedback);
    let (mut data_done, mut feedback_done) = (false, false);
    let mut lost = None;
    loop {
        // Which direction ended, named by the end it writes to.
        let (to, ended) = tokio::select! {
            // Down first: it ends the connection, not a pump that sees the same change.
            biased;
            () = &mut down => return End::Down,
            e = &mut data, if !data_done => (Side::Client, e),
            e = &mut feedback, if !feedback_done => (Side::Server, e),
        };
        match ended {
            // A reset ends both directions once what came before it is delivered: the other
            // direction only has bytes for the end that reset.
            Ended::Reset(e) => return End::Reset(to, e),
            Ended::Stopped => return End::Closed(None),
            Ended::Lost(e) => {
                lost.get_or_insert(e);
            }
            Ended::Closed => {}
        }
        match to {
            Side::Client => data_done = true,
            Side::Server => feedback_done = true,
        }
        if data_done && feedback_done {
            return End::Closed(lost);
        }
    }
}

/// How a proxied connection ends.
enum End {
    /// The link went down.
    Down,
    /// One end reset the connection (or failed): the other one, named here, is reset in turn.
    Reset(Side, std::io::Error),
    /// Both directions ended on their own (closed, or their destination gone).
    Closed(Option<std::io::Error>),
}

/// An end of a proxied connection.
enum Side {
    Client,
    Server,
}

/// Resolves when the link goes down; never once the proxy is gone (its tasks end with it).
async fn went_down(mut state: watch::Receiver<LinkState>) {
    loop {
        if state.borrow_and_update().mode == LinkMode::Down {
            return;
        }
        if state.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
