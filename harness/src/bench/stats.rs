//! Summaries of repeated measurements.

/// Median of `values`: the middle one, or for an even count the mean of the two middle ones
/// (taking either one alone would lean the figure up or down by half the spread); None when
/// there are none.
pub(super) fn median(values: &[f64]) -> Option<f64> {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    if s.len() % 2 == 1 {
        s.get(mid).copied()
    } else {
        Some((s.get(mid.checked_sub(1)?)? + s.get(mid)?) / 2.0)
    }
}

/// Arithmetic mean; None when there are no values.
pub(super) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Median, 99th percentile and maximum of some readings, with how many there were: a p99 of
/// 24 readings is their maximum, and a reader must be able to see that.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Quantiles {
    pub n: usize,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Quantiles {
    pub(super) fn of(values: &[f64]) -> Quantiles {
        let mut s = values.to_vec();
        s.sort_by(f64::total_cmp);
        Quantiles {
            n: s.len(),
            p50: percentile(&s, 0.50),
            p99: percentile(&s, 0.99),
            max: s.last().copied(),
        }
    }
}

/// Nearest-rank percentile of `sorted` (ascending): the smallest value with at least a share
/// `p` of the values at or below it; None when there are none (not 0, which reads as a
/// measurement).
pub(super) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

/// `num / den`, or None when the denominator is not a positive amount (nothing measured on
/// that side: no ratio, rather than one made up from a clamped divisor).
pub(super) fn ratio(num: Option<f64>, den: Option<f64>) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 && n.is_finite() && d.is_finite() => Some(n / d),
        _ => None,
    }
}

/// A duration in milliseconds, to the microsecond: whole milliseconds would truncate a 1.9 ms
/// scan to 1 and skew any ratio taken of it.
pub(super) fn ms(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Milliseconds as the f64 the summaries take.
pub(super) fn as_f64(ms: &[u64]) -> Vec<f64> {
    ms.iter().map(|&v| v as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[10.0, 1.0, 4.0, 2.0]), Some(3.0));
        assert_eq!(median(&as_f64(&[1100, 1500, 1900, 2000])), Some(1700.0));
    }

    #[test]
    fn percentiles_say_how_many_readings_they_come_from() {
        let none = Quantiles::of(&[]);
        assert_eq!(
            (none.n, none.p50, none.p99, none.max),
            (0, None, None, None)
        );
        let one = Quantiles::of(&[0.25]);
        assert_eq!(
            (one.n, one.p50, one.p99, one.max),
            (1, Some(0.25), Some(0.25), Some(0.25))
        );
        // 24 readings: the p99 is the largest.
        let few: Vec<f64> = (1..=24).rev().map(f64::from).collect();
        let q = Quantiles::of(&few);
        assert_eq!(
            (q.n, q.p50, q.p99, q.max),
            (24, Some(12.0), Some(24.0), Some(24.0))
        );
        // 1000 readings: the p99 is the 990th.
        let many: Vec<f64> = (1..=1000).map(f64::from).collect();
        let q = Quantiles::of(&many);
        assert_eq!(
            (q.p50, q.p99, q.max),
            (Some(500.0), Some(990.0), Some(1000.0))
        );
        assert_eq!(percentile(&[1.0, 2.0], 0.0), Some(1.0));
    }

    #[test]
    fn means() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
    }

    #[test]
    fn ratios_need_a_positive_denominator() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(Some(3.0), None), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(f64::NAN), Some(2.0)), None);
    }

    #[test]
    fn milliseconds_keep_the_microseconds() {
        use std::time::Duration;
        assert_eq!(ms(Duration::from_micros(1_900)), 1.9);
        assert_eq!(ms(Duration::from_nanos(1_900_999)), 1.9);
        assert_eq!(ms(Duration::ZERO), 0.0);
    }
}
