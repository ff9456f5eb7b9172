//! Counting outcomes and latencies without storing every sample.

use std::time::Duration;

use super::model::{OpKind, Outcome, TableOps, WorkloadStats};
use super::table::BuiltinTable;

/// Values below this are counted exactly (microseconds).
const LINEAR: u64 = 1 << SUB_BITS;
/// Sub-buckets per power of two above [`LINEAR`]: about 1.5 % resolution.
const SUB_BITS: u32 = 6;
const BUCKETS: usize = (LINEAR as usize) * (64 - SUB_BITS as usize + 1);

/// A log-linear latency histogram (microseconds): fixed memory whatever the run length.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }

    fn bucket(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let top = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = top - SUB_BITS;
        let sub = (v >> shift) & (LINEAR - 1);
        ((shift as u64 + 1) * LINEAR + sub) as usize
    }

    /// Smallest value that falls in bucket `b` (quantiles report it: never above the truth by
    /// more than a bucket's width).
    fn low(b: usize) -> u64 {
        let b = b as u64;
        if b < LINEAR {
            return b;
        }
        let shift = b / LINEAR - 1;
        let sub = b % LINEAR;
        (LINEAR | sub) << shift
    }

    pub(crate) fn record(&mut self, us: u64) {
        self.counts[Self::bucket(us)] += 1;
        self.total += 1;
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The `q` quantile (0..=1); 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::low(b);
            }
        }
        Self::low(BUCKETS - 1)
    }
}

/// One connection's tallies; merged into [`WorkloadStats`] at the end.
#[derive(Clone)]
pub(crate) struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
    pub latency: Histogram,
    pub tables: [TableOps; 5],
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            ok: 0,
            failed: 0,
            unknown: 0,
            latency: Histogram::new(),
            tables: Default::default(),
        }
    }

    pub(crate) fn count(&mut self, table: BuiltinTable, kind: OpKind, outcome: Outcome, us: u64) {
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                self.latency.record(us);
                let t = &mut self.tables[table.index()];
                match kind {
                    OpKind::Insert => t.inserts += 1,
                    OpKind::Update => t.updates += 1,
                    OpKind::Delete => t.deletes += 1,
                }
            }
            Outcome::Failed => self.failed += 1,
            Outcome::Unknown => self.unknown += 1,
        }
    }

    pub(crate) fn merge(&mut self, other: &Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.unknown += other.unknown;
        self.latency.merge(&other.latency);
        for (a, b) in self.tables.iter_mut().zip(&other.tables) {
            a.inserts += b.inserts;
            a.updates += b.updates;
            a.deletes += b.deletes;
        }
    }

    pub(crate) fn into_stats(
        self,
        seed: u64,
        connections: u32,
        rate: Option<f64>,
        tables: &[BuiltinTable],
        elapsed: Duration,
    ) -> WorkloadStats {
        let secs = elapsed.as_secs_f64();
        WorkloadStats {
            seed,
            connections,
            target_rate: rate,
            duration_ms: elapsed.as_millis() as u64,
            ok: self.ok,
            failed: self.failed,
            unknown: self.unknown,
            throughput: if secs > 0.0 {
                self.ok as f64 / secs
            } else {
                0.0
            },
            latency_p50_us: self.latency.quantile(0.50),
            latency_p99_us: self.latency.quantile(0.99),
            tables: tables
                .iter()
                .map(|t| (t.name().to_string(), self.tables[t.index()].clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut prev = 0;
        for v in (0..2_000_000u64).step_by(37) {
            let b = Histogram::bucket(v);
            assert!(b >= prev);
            prev = b;
            let low = Histogram::low(b);
            assert!(low <= v, "{v} in bucket starting at {low}");
            assert!(v - low <= v / 64 + 1, "{v} vs {low}");
        }
        assert!(Histogram::bucket(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((490..=500).contains(&p50), "{p50}");
        assert!((975..=990).contains(&p99), "{p99}");
        let mut other = Histogram::new();
        other.record(5_000_000);
        h.merge(&other);
        assert_eq!(h.total, 1001);
        assert!(h.quantile(1.0) > 4_900_000);
    }
}
