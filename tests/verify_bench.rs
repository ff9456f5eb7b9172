//! How much a comparison of a matching table costs next to reading it once.
//!
//! Run in a release build:
//! `cargo test --release --test verify_bench -- --ignored --nocapture`
//! (`PGREHEARSE_BENCH_ROWS` sets the table size, default 2,000,000). Prints one JSON line with
//! every sample; fails when the median verify time exceeds 1.2 × the median baseline.

mod common;

use std::time::Duration;

use harness::Verdict;
use harness::backend::Backend;
use harness::verify::{self, Side, VerifyOptions};

const DB: &str = "bench";
const ROUNDS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release with --ignored"]
async fn verify_of_a_matching_table_costs_about_one_scan() {
    let rows: u64 = std::env::var("PGREHEARSE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let (backend, x, y) = common::two_servers("verify-bench").await;

    // --- the same table on both servers
    let load = format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, name text, amount numeric, \
           at timestamptz, payload text); \
         INSERT INTO big SELECT g, 'name-' || g, g * 1.5, \
           '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second', repeat('x', 50) \
           FROM generate_series(1, {rows}) g;"
    );
    let (a, b) = tokio::join!(
        async {
            x.execute("postgres", &format!("CREATE DATABASE {DB}"))
                .await?;
            x.execute(DB, &load).await?;
            x.execute(DB, "VACUUM ANALYZE big").await
        },
        async {
            y.execute("postgres", &format!("CREATE DATABASE {DB}"))
                .await?;
            y.execute(DB, &load).await?;
            y.execute(DB, "VACUUM ANALYZE big").await
        }
    );
    a.unwrap();
    b.unwrap();
    let (rs, ts) = (Side::of(&x, DB), Side::of(&y, DB));

    // --- warm the caches, then alternate baseline and verify
    verify::baseline_scan(&rs, &ts, "public.big").await.unwrap();
    let opts = VerifyOptions::default();
    let mut base = Vec::new();
    let mut ver = Vec::new();
    for _ in 0..ROUNDS {
        base.push(verify::baseline_scan(&rs, &ts, "public.big").await.unwrap());
        let started = std::time::Instant::now();
        let r = verify::compare(&rs, &ts, &opts).await.unwrap();
        ver.push(started.elapsed());
        assert_eq!(r.verdict, Verdict::Valid, "{r:#?}");
        assert_eq!(r.tables[0].rows_reference, rows);
    }
    // --- for the record: the same table with a few scattered differences
    y.execute(
        DB,
        "UPDATE big SET name = 'changed' WHERE id IN (17, 1000000, 1999999); \
         DELETE FROM big WHERE id = 123456;",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let r = verify::compare(&rs, &ts, &opts).await.unwrap();
    let with_diffs = started.elapsed();
    assert_eq!(r.tables[0].changed.keys, vec!["17", "1000000", "1999999"]);
    assert_eq!(r.tables[0].missing.keys, vec!["123456"]);

    let (mb, mv) = (median(base.clone()), median(ver.clone()));
    let ratio = mv.as_secs_f64() / mb.as_secs_f64();
    let ms = |v: &[Duration]| v.iter().map(|d| d.as_millis()).collect::<Vec<_>>();
    println!(
        "{}",
        serde_json::json!({
            "bench": "verify_vs_baseline_scan",
            "rows": rows,
            "baseline_ms": ms(&base),
            "verify_ms": ms(&ver),
            "median_baseline_ms": mb.as_millis(),
            "median_verify_ms": mv.as_millis(),
            "ratio": (ratio * 1000.0).round() / 1000.0,
            "verify_with_4_differences_ms": with_diffs.as_millis(),
        })
    );
    backend.teardown(false).await.unwrap();
    assert!(
        ratio <= 1.2,
        "verify took {ratio:.2}x the baseline scan (median {mv:?} vs {mb:?})"
    );
}
