use harness::backend::{Backend, Credentials, LocalBackend};
use harness::chain::{Chain, ChainSpec};
use harness::os::ServerUser;
use harness::pg::Locate;
use harness::run::RunDir;

#[tokio::test]
async fn scratch() {
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .try_init()
        .ok();
    let pg = Locate::from_env(Some(17)).find().unwrap();
    let user = ServerUser::resolve().unwrap();
    let run = RunDir::create(None, "scratch", &user).unwrap();
    let creds = Credentials::generate();
    let backend = LocalBackend::new(pg, user, run, creds.clone()).unwrap();
    let t = std::time::Instant::now();
    let chain = Chain::build(&backend, ChainSpec::default(), creds, |a| async move {
        a.execute("app", "CREATE TABLE t(id int primary key, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1,1000) g").await
    }).await;
    eprintln!("build took {:?}", t.elapsed());
    let chain = chain
        .map_err(|e| {
            eprintln!("{e:?}");
            e
        })
        .unwrap();
    eprintln!("{:?}", chain.timings);
    chain
        .a
        .execute("app", "INSERT INTO t VALUES (5000, 'y')")
        .await
        .unwrap();
    let d = chain.fence().await.unwrap();
    eprintln!("fence {d:?}");
    let n = chain
        .c
        .query_one("app", "SELECT count(*) FROM t")
        .await
        .unwrap();
    assert_eq!(n.as_deref(), Some("1001"));
    backend.teardown(false).await.unwrap();
}
