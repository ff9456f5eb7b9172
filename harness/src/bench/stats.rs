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
