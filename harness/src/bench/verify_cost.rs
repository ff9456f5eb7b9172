//! What verification costs against the cheapest possible full comparison.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stats::{as_f64, median};
use super::with_chain;
use crate::chain::Chain;
use crate::error::Result;
use crate::pg::Locate;
use crate::verify::{self, Side, VerifyOptions};

/// Verification cost against the cheapest possible full comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyBench {
    /// Rows in the table.
    pub rows: u64,
    /// `verify::compare` C vs A, per run.
    pub verify_ms: Vec<u64>,
    /// `SELECT sum(hashtext(t::text)) FROM t` on A and C concurrently, per run.
    pub baseline_ms: Vec<u64>,
    /// median(verify) / median(baseline); the target is ≤ 1.2.
    pub ratio: f64,
}

/// Load `rows` rows into A, let the initial copy carry them to C, then time verification of
/// that table (no differences) against the baseline scan, alternating, `runs` times each.
///
/// # Errors
/// Whatever stops the build or a query.
pub async fn verify_vs_baseline(rows: u64, runs: u32) -> Result<VerifyBench> {
    let pg = Locate::from_env(None).find()?;
    let seed = move |a: crate::node::Node| async move {
        tracing::info!("loading {rows} rows into a");
        a.execute(
            "app",
            &format!(
                "CREATE TABLE bench (id bigint PRIMARY KEY, owner text, amount numeric(12,2), at timestamptz, note text);
                 INSERT INTO bench SELECT g, 'owner-' || (g % 1000), g * 0.01, '2026-01-01'::timestamptz + g * interval '1 s',
                   md5(g::text) FROM generate_series(1, {rows}) g;"
            ),
        )
        .await?;
        // Separately: VACUUM cannot run inside the implicit transaction of a batch.
        a.execute("app", "VACUUM ANALYZE bench").await
    };
    let measure = move |chain: Arc<Chain>| async move {
        let (a, c) = (Side::of(&chain.a, "app"), Side::of(&chain.c, "app"));
        c.conn
            .connect(Duration::from_secs(10))
            .await?
            .batch_execute("VACUUM ANALYZE bench")
            .await?;
        let opts = VerifyOptions::default();
        // One untimed pass each warms both caches the same way.
        verify::baseline_scan(&a, &c, "public.bench").await?;
        verify::compare(&a, &c, &opts).await?;
        let (mut v, mut b) = (Vec::new(), Vec::new());
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let r = verify::compare(&a, &c, &opts).await?;
            v.push(t.elapsed().as_millis() as u64);
            if r.verdict != crate::Verdict::Valid {
                return Err(crate::Error::internal(format!(
                    "verify bench: tables differ: {r:?}"
                )));
            }
            b.push(
                verify::baseline_scan(&a, &c, "public.bench")
                    .await?
                    .as_millis() as u64,
            );
        }
        Ok((v, b))
    };
    let ((verify_ms, baseline_ms), _, _) = with_chain("bench-verify", &pg, seed, measure).await?;
    let ratio = median(&as_f64(&verify_ms)).unwrap_or_default()
        / median(&as_f64(&baseline_ms)).unwrap_or_default().max(1.0);
    Ok(VerifyBench {
        rows,
        verify_ms,
        baseline_ms,
        ratio,
    })
}
