//! What verification costs against the cheapest possible full comparison.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::BenchContext;
use super::stats::{median, ms, ratio};
use super::with_chain;
use crate::chain::Chain;
use crate::error::Result;
use crate::pg::Locate;
use crate::verify::{self, Side, VerifyOptions};

/// Verification cost against the cheapest possible full comparison. Times are milliseconds to
/// the microsecond.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyBench {
    /// Rows in the table.
    pub rows: u64,
    /// Each timed `verify::compare` of C against A: everything `pgrehearse verify` does once the
    /// chain has caught up — connecting to both, reading both catalogs, planning, comparing
    /// every table of the database (here only the loaded one: the harness's schema is
    /// excluded) and the sequences.
    pub verify_ms: Vec<f64>,
    /// Each timed `SELECT sum(hashtext(t::text)) FROM t` on A and C concurrently: the two
    /// queries only, on sessions already open (connecting is not counted).
    pub baseline_ms: Vec<f64>,
    /// Median of `verify_ms` (an even count: the mean of the middle two).
    pub verify_median_ms: f64,
    /// Median of `baseline_ms`.
    pub baseline_median_ms: f64,
    /// verify_median_ms / baseline_median_ms; the target is ≤ 1.2. None when the baseline took
    /// no measurable time.
    pub ratio: Option<f64>,
    /// When, with what and where it was measured.
    pub context: BenchContext,
}

/// Load `rows` rows into A, let the initial copy carry them to C, then time verification of
/// that table (no differences) against the baseline scan, alternating, `runs` times each (see
/// [`VerifyBench`] for what each time includes).
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
            v.push(ms(t.elapsed()));
            if r.verdict != crate::Verdict::Valid {
                return Err(crate::Error::internal(format!(
                    "verify bench: tables differ: {r:?}"
                )));
            }
            b.push(ms(verify::baseline_scan(&a, &c, "public.bench").await?));
        }
        Ok((v, b))
    };
    let ((verify_ms, baseline_ms), context) =
        with_chain("bench-verify", &pg, seed, measure).await?;
    let (vm, bm) = (median(&verify_ms), median(&baseline_ms));
    Ok(VerifyBench {
        rows,
        verify_median_ms: vm.unwrap_or_default(),
        baseline_median_ms: bm.unwrap_or_default(),
        ratio: ratio(vm, bm),
        verify_ms,
        baseline_ms,
        context,
    })
}
