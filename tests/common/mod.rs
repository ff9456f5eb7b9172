//! Shared set-up for integration tests: real servers, started by the real backend.
#![allow(dead_code)]

pub mod cli;
pub mod report;

use std::sync::Once;

use harness::backend::{Backend, Credentials, LocalBackend};
use harness::chain::{Chain, ChainSpec};
use harness::node::{Node, NodeSpec};
use harness::os::ServerUser;
use harness::pg::{Locate, PgInstall};
use harness::run::RunDir;

static LOG: Once = Once::new();

/// Log to the test's output (shown on failure) at `RUST_LOG` or info.
pub fn init_logging() {
    LOG.call_once(|| {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .init();
    });
}

/// PostgreSQL 17 (or `PGREHEARSE_TEST_PG`'s major), found or fetched once.
pub fn pg() -> PgInstall {
    let major = std::env::var("PGREHEARSE_TEST_PG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(17);
    Locate::from_env(Some(major))
        .find()
        .expect("PostgreSQL binaries")
}

/// The seed of a randomised test: `PGREHEARSE_PROPTEST_SEED` when set (to replay a run), else a
/// fresh one. A seed that does not parse is refused rather than replaced: a "replay" of another
/// run would pass or fail for reasons unrelated to the one being chased.
pub fn proptest_seed() -> u64 {
    match std::env::var("PGREHEARSE_PROPTEST_SEED") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("PGREHEARSE_PROPTEST_SEED={v:?}: {e}")),
        Err(_) => rand::random(),
    }
}

/// A local backend in a fresh run directory named after the test.
pub fn backend(label: &str) -> (LocalBackend, Credentials) {
    init_logging();
    let user = ServerUser::resolve().expect("server user");
    let run = RunDir::create(None, label, &user).expect("run dir");
    let creds = Credentials::generate();
    let b = LocalBackend::new(pg(), user, run, creds.clone()).expect("backend");
    (b, creds)
}

/// One primary, `x`.
pub async fn one_server(label: &str) -> (LocalBackend, Node) {
    let (b, creds) = backend(label);
    let x = b
        .init_primary(&NodeSpec::new("x", creds.superuser.clone()))
        .await
        .expect("start x");
    (b, x)
}

/// Two independent primaries (no replication), for comparing servers directly.
pub async fn two_servers(label: &str) -> (LocalBackend, Node, Node) {
    let (b, creds) = backend(label);
    let x = b
        .init_primary(&NodeSpec::new("x", creds.superuser.clone()))
        .await
        .expect("start x");
    let y = b
        .init_primary(&NodeSpec::new("y", creds.superuser.clone()))
        .await
        .expect("start y");
    (b, x, y)
}

/// A full chain with `seed` run on A before B is cloned.
pub async fn chain<F, Fut>(label: &str, spec: ChainSpec, seed: F) -> (LocalBackend, Chain)
where
    F: FnOnce(Node) -> Fut,
    Fut: std::future::Future<Output = harness::Result<()>>,
{
    let (b, creds) = backend(label);
    let c = Chain::build(&b, spec, creds, seed)
        .await
        .unwrap_or_else(|e| panic!("building the chain: {e:?}"));
    (b, c)
}

/// What faults act on, for `chain`: its nodes, its replicator and links, A as the primary, the
/// workload's clock starting now.
pub fn fault_env(chain: &Chain, db: &str) -> harness::faults::FaultEnv {
    let (primary, _) = tokio::sync::watch::channel(chain.a.clone());
    harness::faults::FaultEnv::new(
        chain.a.clone(),
        chain.b.clone(),
        chain.c.clone(),
        chain.replicator.clone(),
        db,
        chain.links.clone(),
        primary,
        None,
        std::time::Instant::now(),
    )
}

/// Wait (blocking) until `probe` returns `Check::Done`, through the harness's own
/// `wait_for`: on timeout the error names what was waited for and the last state the probe
/// described. A probe `Err` stops the wait at once.
pub fn try_wait_until<T>(
    what: &str,
    timeout: std::time::Duration,
    mut probe: impl FnMut() -> Result<harness::wait::Check<T>, String>,
) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(harness::wait::wait_for(what, timeout, || {
        let r = probe();
        async move { r.map_err(harness::Error::internal) }
    }))
    .map_err(|e| format!("{e:?}"))
}

/// [`try_wait_until`], failing the test on timeout.
pub fn wait_until<T>(
    what: &str,
    timeout: std::time::Duration,
    probe: impl FnMut() -> Result<harness::wait::Check<T>, String>,
) -> T {
    try_wait_until(what, timeout, probe).unwrap_or_else(|e| panic!("{e}"))
}

/// Pids of processes whose command line mentions `dir`, or whose working directory is under it
/// (servers of a run still alive: backends rename themselves but stay in the data directory).
pub fn processes_under(dir: &std::path::Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().to_string();
    let mut pids = Vec::new();
    let me = std::process::id() as i32;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let in_cmdline = std::fs::read(e.path().join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle));
        let in_cwd = std::fs::read_link(e.path().join("cwd"))
            .is_ok_and(|c| c.to_string_lossy().starts_with(&needle));
        if in_cmdline || in_cwd {
            pids.push(pid);
        }
    }
    pids
}

/// A PostgreSQL 15 installation, for version-check tests: Debian's if installed, else a stand-in
/// directory whose `postgres --version` answers 15 (the check under test reads only that).
pub fn pg15_dir() -> std::path::PathBuf {
    let real = std::path::PathBuf::from("/usr/lib/postgresql/15/bin");
    if real.join("postgres").is_file() && real.join("pg_basebackup").is_file() {
        return real;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("pgrehearse-fake-pg15-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for tool in harness::pg::REQUIRED_TOOLS {
        let p = dir.join(tool);
        std::fs::write(&p, "#!/bin/sh\necho 'postgres (PostgreSQL) 15.18'\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// The shop of scenarios/data/byo-seed.sql dumped by pg_dump in `format` ("c" or "d") into
/// `dest`, from a scratch server of the harness's own.
pub fn dump_the_shop(dest: &std::path::Path, format: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (b, creds) = backend(&format!("byo-dump-{format}"));
        let x = b
            .init_primary(&NodeSpec::new("x", creds.superuser.clone()))
            .await
            .expect("scratch server");
        let port = x.admin().endpoint.port.to_string();
        let client = |tool: &str, args: &[&str]| {
            let out = std::process::Command::new(pg().tool(tool))
                .args(["-h", "127.0.0.1", "-p", &port, "-U", &creds.superuser.user])
                .args(args)
                .env("PGPASSWORD", creds.superuser.password.expose())
                .output()
                .expect("client program");
            assert!(
                out.status.success(),
                "{tool} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let seed =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/data/byo-seed.sql");
        client("createdb", &["shop"]);
        client(
            "psql",
            &[
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                "shop",
                "-f",
                seed.to_str().unwrap(),
            ],
        );
        client(
            "pg_dump",
            &["-d", "shop", "-F", format, "-f", dest.to_str().unwrap()],
        );
        b.teardown(false).await.expect("teardown");
    });
}
