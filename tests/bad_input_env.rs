//! Bad environments get clear errors and leave nothing running: PostgreSQL too old for standby
//! decoding, a port already taken.

mod common;

use common::cli;

use harness::ErrorKind;
use harness::backend::Backend;
use harness::node::NodeSpec;
use harness::pg::Locate;

#[test]
fn postgres_15_is_refused_with_the_reason() {
    let dir = common::pg15_dir();
    let loc = Locate {
        explicit: Some((dir.clone(), "--pg-bin".into())),
        major: Some(17),
        allow_fetch: false,
    };
    let err = loc.find().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Environment);
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("PostgreSQL 15"), "{msg}");
    assert!(msg.contains("logical decoding on a standby"), "{msg}");
    assert!(msg.contains("16"), "{msg}");
    assert!(
        err.hint().is_some_and(|h| h.contains("16, 17 or 18")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_taken_port_is_named_and_nothing_is_left_running() {
    let (backend, creds) = common::backend("port-taken");
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = refused_on_taken_port(backend, &creds, port).await;
    assert!(err.hint().is_some(), "{err:?}");
}

/// Start node `a` on `port`, which something else holds: the start fails naming the port, and
/// the teardown leaves no process and no data directory.
async fn refused_on_taken_port(
    backend: harness::backend::LocalBackend,
    creds: &harness::backend::Credentials,
    port: u16,
) -> harness::Error {
    let spec = NodeSpec::new("a", creds.superuser.clone()).with_port(Some(port));
    let err = backend.init_primary(&spec).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Environment, "{err:?}");
    // Where another PostgreSQL holds the port, which check sees it first is a race (our
    // postmaster failing to bind, or the readiness probe finding another data directory);
    // both name the port.
    assert!(
        err.to_string()
            .contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{err}"
    );
    let run = backend.run_dir().path().to_path_buf();
    backend.teardown(false).await.unwrap();
    assert!(
        common::processes_under(&run).is_empty(),
        "processes left under {}",
        run.display()
    );
    assert!(!run.join("nodes/a").exists(), "data directory left behind");
    err
}

#[tokio::test]
async fn a_node_without_a_fixed_port_gets_a_free_one_and_answers() {
    let (backend, creds) = common::backend("port-auto");
    let node = backend
        .init_primary(&NodeSpec::new("a", creds.superuser.clone()))
        .await
        .unwrap();
    assert_eq!(
        node.query_one("postgres", "SELECT 1")
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    backend.teardown(false).await.unwrap();
}

#[tokio::test]
async fn a_fixed_port_where_another_postgres_lets_anyone_in_is_refused() {
    // Another PostgreSQL already on the port, with trust authentication (as CI service
    // containers often are): it would accept the harness's login, and the chain's roles,
    // slots and faults would land on it.
    let (other, x) = common::one_server("port-foreign-other").await;
    let port = x.admin().endpoint.port;
    let hba = other.data_dirs()[0].join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("host all all 127.0.0.1/32 trust\n{rules}")).unwrap();
    x.query_one("postgres", "SELECT pg_reload_conf()")
        .await
        .unwrap();
    let (backend, creds) = common::backend("port-foreign");
    let stranger = harness::node::ConnInfo {
        endpoint: x.admin().endpoint.clone(),
        login: creds.superuser.clone(),
        dbname: "postgres".into(),
    };
    harness::wait::wait_for(
        "x to let a login with another password in",
        std::time::Duration::from_secs(30),
        || async {
            Ok(
                match stranger.connect(std::time::Duration::from_secs(2)).await {
                    Ok(_) => harness::wait::Check::Done(()),
                    Err(e) => harness::wait::Check::NotYet(e.to_string()),
                },
            )
        },
    )
    .await
    .unwrap();

    refused_on_taken_port(backend, &creds, port).await;
    assert_eq!(
        x.query_one("postgres", "SELECT 1")
            .await
            .unwrap()
            .as_deref(),
        Some("1"),
        "the other server is left running"
    );
    other.teardown(false).await.unwrap();
}

/// A run that fails, and whose report cannot be written either, says what made it fail — with
/// the report's failure after it — and does not point at a report that is not there.
#[test]
fn a_failed_run_whose_report_cannot_be_written_still_says_why_it_failed() {
    let (_d, path, release) = cli::held_seed_scenario("no-report");
    let mut bg = cli::Background::spawn(&["run", path.to_str().unwrap()]);
    bg.wait_for_stderr("seeding a from", std::time::Duration::from_secs(120));
    let run = cli::run_dir(&bg.stderr()).unwrap();
    // A folder stands where report.json goes.
    std::fs::create_dir(run.join("report.json")).unwrap();
    std::fs::write(&release, "").unwrap();
    let status = bg.wait_exit(std::time::Duration::from_secs(120));
    let err = bg.stderr();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("division by zero") && err.contains("also cannot write report"),
        "{err}"
    );
    assert!(!err.contains("report (with the error) in"), "{err}");
    cli::assert_cleaned_up(&run);
}
