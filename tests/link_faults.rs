//! Link faults on one hop at once: they add up, and healing one leaves the others in force.
//! (A fault the local backend cannot do at all, packet loss, is refused before the run starts:
//! tests/bad_input_cli.rs.)
//!
//! Then each link fault alone on the real chain, on each hop, through the same fault code a
//! scenario runs: a link going down drops that hop's replication connection and the chain
//! heals itself; a bandwidth cap under a write load is byte lag that drains once healed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{cli, report};
use harness::Verdict;
use harness::backend::{Backend, LocalBackend};
use harness::chain::{Chain, ChainSpec};
use harness::faults::{self, FaultEnv, FaultKind, Hop};
use harness::node::{Lsn, LsnKind, Node};
use harness::observe::{NodeProbe, NodeSnapshot, derive_lags};
use harness::verify::{self, Side, VerifyOptions};
use harness::wait::{Check, wait_for};

#[test]
fn overlapping_faults_on_a_hop_compose_and_heal_one_by_one() {
    let (_d, path) = cli::scenario(
        "overlap",
        r#"version = 1
name = "overlap"
seed = 7
[workload]
initial_rows = 100
rate = 150
duration = "14s"

[[faults]]
kind = "latency"
hop = "a-b"
latency = "600ms"
at = "2s"
heal_at = "12s"

[[faults]]
kind = "partition"
hop = "a-b"
at = "4s"
heal_at = "6s"

[expect]
consistent = true
consistent_after_heal = true
converges_within = "60s"
"#,
    );
    let out = cli::run(&["run", path.to_str().unwrap()]);
    let err = cli::stderr(&out);
    let run = cli::run_dir(&err).unwrap_or_else(|| panic!("{err}"));
    let r = common::report::read(&run);
    cli::assert_cleaned_up(&run);

    let verdict = |name: &str| report::expectation(&r, name)["verdict"].clone();
    assert_eq!(verdict("faults_injected"), "valid");
    assert_eq!(verdict("consistent"), "valid");
    assert_eq!(verdict("consistent_after_heal"), "valid");
    // Converged once c showed a heartbeat issued after the last heal, read after it.
    assert_eq!(verdict("converges_within"), "valid");
    let converged = r["observations"]["convergence_ms"].as_u64();
    assert!(converged.is_some_and(|ms| ms > 0), "{converged:?}");
    assert_eq!(out.status.code(), Some(0), "{err}");

    // The latency outlives the partition healed at 6 s: B still replays late afterwards.
    let after_partition: Vec<f64> = r["observations"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| (8_000..=11_500).contains(&p["t_ms"].as_u64().unwrap()))
        .filter_map(|p| p["ab_s"].as_f64())
        .collect();
    assert!(
        after_partition.iter().copied().fold(0.0, f64::max) >= 0.4,
        "a→b replay lag between the partition's heal and the latency's: {after_partition:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// One link fault at a time on the real chain. Each hop has its own proxy, so each fault is
// checked on A→B and on B→C.

const DB: &str = "app";
/// Rows seeded on A before the chain is built.
const SEEDED: i64 = 100;
/// Bytes of text per written row: every replicated row carries at least this many bytes over
/// the hop, in WAL (A→B) and in the logical stream (B→C).
const PAD: usize = 256;
/// The bandwidth cap of the tests, in bytes per second.
const CAP: u64 = 32 * 1024;

async fn seed(a: Node) -> harness::Result<()> {
    a.execute(
        DB,
        &format!(
            "CREATE TABLE items (id bigserial PRIMARY KEY, pad text NOT NULL);
             INSERT INTO items (pad) SELECT repeat(md5(g::text), {}) FROM generate_series(1, {SEEDED}) g;",
            PAD / 32
        ),
    )
    .await
}

/// A chain with a harness proxy on each hop, and the fault environment a rehearsal would give
/// its faults.
struct Rig {
    backend: LocalBackend,
    chain: Chain,
    env: FaultEnv,
    probes: tokio::sync::Mutex<[NodeProbe; 3]>,
}

impl Rig {
    async fn build(label: &str) -> Rig {
        let spec = ChainSpec {
            proxies: true,
            link_seed: 11,
            // Waits on the chain (fence, catch-up) fail within a test's time, with the state.
            catchup_timeout: Duration::from_secs(30),
            ..ChainSpec::default()
        };
        let (backend, chain) = common::chain(label, spec, seed).await;
        let env = common::fault_env(&chain, DB);
        let probes = [&chain.a, &chain.b, &chain.c].map(|n| NodeProbe::new(n.clone(), DB));
        Rig {
            backend,
            chain,
            env,
            probes: tokio::sync::Mutex::new(probes),
        }
    }

    fn sub(&self) -> &str {
        &self.chain.spec.subscription
    }

    /// What the chain looks like now: A, B and C as the harness's sampler reads them, and B's
    /// WAL receiver.
    async fn look(&self) -> Seen {
        let mut p = self.probes.lock().await;
        let a = p[0].take().await;
        let b = p[1].take().await;
        let c = p[2].take().await;
        let receiver = self
            .chain
            .b
            .query_one(
                "postgres",
                "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')",
            )
            .await
            .map(|s| s.unwrap_or_default())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        Seen {
            sub: self.sub().to_string(),
            a,
            b,
            c,
            receiver,
        }
    }

    /// Rows of the test table on `node`.
    async fn rows(&self, node: &Node) -> i64 {
        node.query_one(DB, "SELECT count(*) FROM items")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// After every fault is healed: C has caught up through B (a fence written on A shows on
    /// C) and holds exactly A's rows.
    async fn assert_c_equals_a(&self) {
        self.chain
            .fence()
            .await
            .unwrap_or_else(|e| panic!("c did not catch up after the heal: {e:?}"));
        let r = verify::compare(
            &Side::of(&self.chain.a, DB),
            &Side::of(&self.chain.c, DB),
            &VerifyOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.verdict, Verdict::Valid, "{r:#?}");
        let a_rows = self.rows(&self.chain.a).await;
        assert_eq!(self.rows(&self.chain.c).await, a_rows);
    }
}

/// One look at the chain.
struct Seen {
    sub: String,
    a: NodeSnapshot,
    b: NodeSnapshot,
    c: NodeSnapshot,
    /// pg_stat_wal_receiver.status on B ("none": no WAL receiver running).
    receiver: String,
}

impl Seen {
    /// Lag of "a→b" or "b→c" in bytes, as reports compute it.
    fn lag(&self, hop: &str) -> Option<u64> {
        derive_lags(&self.a, &self.b, &self.sub)
            .into_iter()
            .find(|l| l.hop == hop)
            .and_then(|l| l.bytes)
    }

    /// State of `up`'s walsender for `app` (None: there is none).
    fn sender(up: &NodeSnapshot, app: &str) -> Option<String> {
        up.senders
            .iter()
            .find(|w| w.application_name == app)
            .map(|w| w.state.clone().unwrap_or_default())
    }

    /// A's walsender for B.
    fn ab_sender(&self) -> Option<String> {
        Self::sender(&self.a, "b")
    }

    /// B's walsender for C's subscription.
    fn bc_sender(&self) -> Option<String> {
        Self::sender(&self.b, &self.sub)
    }

    /// Whether a walsender holds the subscription's slot on B.
    fn slot_active(&self) -> Option<bool> {
        self.b
            .slots
            .iter()
            .find(|s| s.slot_name == self.sub)
            .map(|s| s.active)
    }

    /// What C confirmed on the subscription's slot on B (flushed on C).
    fn confirmed(&self) -> Option<Lsn> {
        self.b
            .slots
            .iter()
            .find(|s| s.slot_name == self.sub)
            .and_then(|s| s.confirmed_flush_lsn)
    }

    /// The subscription's apply worker on C (None: not running).
    fn apply_pid(&self) -> Option<i32> {
        self.c
            .subscriptions
            .iter()
            .find(|s| s.subname == self.sub && s.relid.is_none())
            .and_then(|s| s.pid)
    }
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lsn = |l: Option<Lsn>| l.map_or("NULL".to_string(), |l| l.to_string());
        let unreachable = |n: &NodeSnapshot| {
            n.error
                .as_ref()
                .map(|e| format!(" (unreachable: {e})"))
                .unwrap_or_default()
        };
        writeln!(
            f,
            "a: current {}{}; walsender for b: {:?}",
            lsn(self.a.current_lsn),
            unreachable(&self.a),
            self.ab_sender()
        )?;
        writeln!(
            f,
            "b: receive {}, replay {}{}; wal receiver {}; walsender for {}: {:?}; slot active: {:?}, confirmed {}",
            lsn(self.b.receive_lsn),
            lsn(self.b.replay_lsn),
            unreachable(&self.b),
            self.receiver,
            self.sub,
            self.bc_sender(),
            self.slot_active(),
            lsn(self.confirmed())
        )?;
        let sub = self
            .c
            .subscriptions
            .iter()
            .find(|s| s.subname == self.sub && s.relid.is_none());
        writeln!(
            f,
            "c: apply worker pid {:?}, received {}{}",
            self.apply_pid(),
            lsn(sub.and_then(|s| s.received_lsn)),
            unreachable(&self.c)
        )?;
        write!(
            f,
            "lag bytes: a→b {:?}, b→c {:?}",
            self.lag("a→b"),
            self.lag("b→c")
        )
    }
}

/// Wait until `done` holds for the chain, printing what was seen on timeout.
async fn wait_seen<T>(
    rig: &Rig,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Seen) -> Option<T>,
) -> T {
    let done = &done;
    wait_for(what, timeout, move || async move {
        let seen = rig.look().await;
        Ok(match done(&seen) {
            Some(v) => Check::Done(v),
            None => Check::NotYet(seen.to_string()),
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e:?}"))
}

/// Insert `n` rows on A in one transaction.
async fn insert(a: &Node, n: usize) {
    a.execute(
        DB,
        &format!(
            "INSERT INTO items (pad) SELECT repeat(md5(g::text), {}) FROM generate_series(1, {n}) g",
            PAD / 32
        ),
    )
    .await
    .unwrap();
}

/// A write load on A: transactions of 200 rows (about 60 kB of WAL), paced so that the load
/// is well above the cap and stays a few MB in all.
struct WriteLoad {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<harness::Result<u64>>,
}

impl WriteLoad {
    fn start(a: &Node) -> WriteLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let (a, flag) = (a.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let client = a.connect(DB).await?;
            let sql = format!(
                "INSERT INTO items (pad) SELECT repeat(md5(g::text), {}) FROM generate_series(1, 200) g",
                PAD / 32
            );
            let mut rows = 0;
            // Paces the load at one transaction per 50 ms at most.
            let mut pace = tokio::time::interval(Duration::from_millis(50));
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !flag.load(Ordering::Relaxed) {
                pace.tick().await;
                client.batch_execute(&sql).await?;
                rows += 200;
            }
            Ok(rows)
        });
        WriteLoad { stop, task }
    }

    /// Stop writing; the rows written.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_down_between_a_and_b_drops_b_s_stream_and_b_catches_up_after_heal() {
    let t = Instant::now();
    let rig = Rig::build("link-down-ab").await;
    let chain = &rig.chain;
    wait_seen(&rig, "b streaming from a", Duration::from_secs(10), |s| {
        (s.ab_sender().as_deref() == Some("streaming") && s.receiver == "streaming").then_some(())
    })
    .await;

    let down = faults::build(&FaultKind::LinkDown { hop: Hop::AB });
    down.inject(&rig.env).await.unwrap();
    // The connection is reset: A's walsender for B goes, B's WAL receiver stops streaming.
    wait_seen(
        &rig,
        "the a→b replication connection to drop",
        Duration::from_secs(15),
        |s| (s.ab_sender().is_none() && s.receiver != "streaming").then_some(()),
    )
    .await;
    insert(&chain.a, 1000).await;
    let written = chain.a.lsn(LsnKind::Write).await.unwrap();
    // Nothing crosses a link that is down, however often B's WAL receiver retries.
    let seen = rig.look().await;
    assert!(
        seen.b.receive_lsn.is_some_and(|r| r < written) && seen.ab_sender().is_none(),
        "b received a's new WAL through a link that is down (a wrote up to {written}):\n{seen}"
    );
    assert!(seen.lag("a→b").unwrap_or(0) > 0, "{seen}");

    down.heal(&rig.env).await.unwrap();
    // B's WAL receiver reconnects by itself (wal_retrieve_retry_interval) and catches up.
    wait_seen(
        &rig,
        "b to stream from a again",
        Duration::from_secs(20),
        |s| {
            (s.ab_sender().as_deref() == Some("streaming") && s.receiver == "streaming")
                .then_some(())
        },
    )
    .await;
    chain
        .b
        .wait_for_replay(written, Duration::from_secs(20))
        .await
        .unwrap();
    rig.assert_c_equals_a().await;
    assert_eq!(rig.rows(&chain.c).await, SEEDED + 1000);
    rig.backend.teardown(false).await.unwrap();
    eprintln!("link down a→b: {:.1}s", t.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_down_between_b_and_c_drops_the_subscription_and_c_catches_up_after_heal() {
    let t = Instant::now();
    let rig = Rig::build("link-down-bc").await;
    let chain = &rig.chain;
    wait_seen(&rig, "c subscribed to b", Duration::from_secs(10), |s| {
        (s.bc_sender().as_deref() == Some("streaming") && s.apply_pid().is_some()).then_some(())
    })
    .await;

    let down = faults::build(&FaultKind::LinkDown { hop: Hop::BC });
    down.inject(&rig.env).await.unwrap();
    // The connection is reset: B's walsender for the subscription goes and releases the slot;
    // C's apply worker errors out (the launcher restarts it, and the link refuses it again).
    wait_seen(
        &rig,
        "the b→c replication connection to drop",
        Duration::from_secs(15),
        |s| {
            (s.bc_sender().is_none() && s.slot_active() == Some(false) && s.apply_pid().is_none())
                .then_some(())
        },
    )
    .await;
    insert(&chain.a, 1000).await;
    let written = chain.a.lsn(LsnKind::Write).await.unwrap();
    // A→B is untouched: B gets the rows; C, behind the link that is down, does not.
    chain
        .b
        .wait_for_replay(written, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(rig.rows(&chain.b).await, SEEDED + 1000);
    assert_eq!(rig.rows(&chain.c).await, SEEDED);
    let seen = rig.look().await;
    assert!(
        seen.bc_sender().is_none() && seen.lag("b→c").unwrap_or(0) > 0,
        "{seen}"
    );

    down.heal(&rig.env).await.unwrap();
    // C's apply worker comes back by itself (the launcher's retry) and streams again.
    wait_seen(
        &rig,
        "c to stream from b again",
        Duration::from_secs(20),
        |s| {
            (s.bc_sender().as_deref() == Some("streaming") && s.apply_pid().is_some()).then_some(())
        },
    )
    .await;
    rig.assert_c_equals_a().await;
    assert_eq!(rig.rows(&chain.c).await, SEEDED + 1000);
    rig.backend.teardown(false).await.unwrap();
    eprintln!("link down b→c: {:.1}s", t.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_cap_between_a_and_b_is_byte_lag_that_drains_after_heal() {
    let t = Instant::now();
    let rig = Rig::build("bandwidth-ab").await;
    let chain = &rig.chain;
    let before = rig.look().await;
    let received_before = before.b.receive_lsn.expect("b's receive LSN");

    let cap = faults::build(&FaultKind::Bandwidth {
        hop: Hop::AB,
        bytes_per_sec: CAP,
    });
    let capped_at = Instant::now();
    cap.inject(&rig.env).await.unwrap();
    let load = WriteLoad::start(&chain.a);
    // The load writes far more than 32 KiB/s: A→B lag grows past 1 MiB...
    let (received, elapsed) = wait_seen(
        &rig,
        "a→b lag to grow past 1 MiB under a 32 KiB/s cap",
        Duration::from_secs(20),
        |s| {
            let lag = s.lag("a→b")?;
            let received = s.b.receive_lsn?.bytes_since(received_before);
            (lag >= 1 << 20).then(|| (received, capped_at.elapsed()))
        },
    )
    .await;
    // ... because B receives no more than the cap lets through (the margin covers WAL written
    // just before the cap).
    let allowed = 128 * 1024 + (CAP as f64 * 1.1 * elapsed.as_secs_f64()) as u64;
    assert!(
        received <= allowed,
        "b received {received} bytes in {elapsed:?} through a link capped at {CAP} B/s (allowed {allowed})"
    );
    let rows = load.stop().await;
    let written = chain.a.lsn(LsnKind::Write).await.unwrap();
    let peak = rig.look().await;
    assert!(
        peak.lag("a→b").unwrap_or(0) >= 1 << 20,
        "the lag shrank while the cap was on:\n{peak}"
    );

    cap.heal(&rig.env).await.unwrap();
    // Unlimited again: the backlog drains and B replays all A wrote.
    chain
        .b
        .wait_for_replay(written, Duration::from_secs(20))
        .await
        .unwrap();
    rig.assert_c_equals_a().await;
    assert_eq!(rig.rows(&chain.c).await, SEEDED + rows as i64);
    rig.backend.teardown(false).await.unwrap();
    eprintln!(
        "bandwidth a→b: {rows} rows written, b received {received} bytes in {elapsed:?} capped; {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_cap_between_b_and_c_is_byte_lag_that_drains_after_heal() {
    let t = Instant::now();
    let rig = Rig::build("bandwidth-bc").await;
    let chain = &rig.chain;

    let cap = faults::build(&FaultKind::Bandwidth {
        hop: Hop::BC,
        bytes_per_sec: CAP,
    });
    let capped_at = Instant::now();
    cap.inject(&rig.env).await.unwrap();
    let load = WriteLoad::start(&chain.a);
    // B keeps up with A (A→B is not capped); B→C lag grows past 1 MiB...
    wait_seen(
        &rig,
        "b→c lag to grow past 1 MiB under a 32 KiB/s cap",
        Duration::from_secs(20),
        |s| (s.lag("b→c")? >= 1 << 20).then_some(()),
    )
    .await;
    let applied = rig.rows(&chain.c).await - SEEDED;
    let elapsed = capped_at.elapsed();
    // ... because C gets no more than the cap lets through: each row applied on C crossed the
    // link with at least PAD bytes of text.
    let allowed = (128 * 1024 + (CAP as f64 * 1.1 * elapsed.as_secs_f64()) as u64) / PAD as u64;
    assert!(
        applied as u64 <= allowed,
        "c applied {applied} rows in {elapsed:?} through a link capped at {CAP} B/s (at most {allowed} fit)"
    );
    let rows = load.stop().await;
    let written = chain.a.lsn(LsnKind::Write).await.unwrap();
    assert!(
        rig.rows(&chain.c).await < SEEDED + rows as i64,
        "c got every row through the capped link"
    );

    cap.heal(&rig.env).await.unwrap();
    // Unlimited again: the backlog drains and C confirms on B's slot all A wrote (the lag
    // reports show is measured to that confirmation, which C sends once it has flushed).
    wait_seen(
        &rig,
        &format!("b→c lag to drain: c to confirm {written} on b's slot"),
        Duration::from_secs(20),
        |s| (s.confirmed()? >= written).then_some(()),
    )
    .await;
    rig.assert_c_equals_a().await;
    assert_eq!(rig.rows(&chain.c).await, SEEDED + rows as i64);
    rig.backend.teardown(false).await.unwrap();
    eprintln!(
        "bandwidth b→c: {rows} rows written, {applied} applied on c in {elapsed:?} capped; {:.1}s",
        t.elapsed().as_secs_f64()
    );
}
