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
}
