//! Key ranges and how to cut them: the SQL for range predicates and bucket numbers.
//!
//! A bucket number and the range predicate of that bucket must agree exactly on each side,
//! or a row could be counted in a bucket and then not found when the bucket is read again.
//! Both are therefore built from the same bounds and compared with the same operators: integer
//! arithmetic and `>=`/`<=` for integer keys, `width_bucket` over sorted thresholds and
//! `>=`/`<` (in byte order for text) for everything else.

use crate::util::quote_literal;

/// The first key column as one side's SQL sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeySql {
    column: String,
    cast: String,
    collate_c: bool,
}

impl KeySql {
    /// `column` is an SQL expression, `cast` the type literals are cast to, `collate_c` whether
    /// comparisons need `COLLATE "C"`.
    pub fn new(column: impl Into<String>, cast: &str, collate_c: bool) -> KeySql {
        KeySql {
            column: column.into(),
            cast: cast.to_string(),
            collate_c,
        }
    }

    /// The expression to compare, bucket and sort by.
    pub fn expr(&self) -> String {
        if self.collate_c {
            format!("{} COLLATE \"C\"", self.column)
        } else {
            self.column.clone()
        }
    }

    /// A key value (in its text form) as a typed literal.
    pub fn literal(&self, v: &str) -> String {
        format!("{}::{}", quote_literal(v), self.cast)
    }

    /// Sorted values as a typed array literal.
    pub fn array(&self, values: &[String]) -> String {
        let items = values
            .iter()
            .map(|v| quote_literal(v))
            .collect::<Vec<_>>()
            .join(",");
        format!("ARRAY[{items}]::{}[]", self.cast)
    }
}

/// A range of first-key values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Range {
    /// Integer keys `lo..=hi`.
    Int {
        /// Lowest key.
        lo: i64,
        /// Highest key.
        hi: i64,
    },
    /// Keys in `[lo, hi)`; None is unbounded.
    Values {
        /// Inclusive lower bound (text of a key value).
        lo: Option<String>,
        /// Exclusive upper bound.
        hi: Option<String>,
    },
}

impl Range {
    /// Every value.
    pub fn everything() -> Range {
        Range::Values { lo: None, hi: None }
    }

    /// SQL that is true for rows in the range.
    pub fn predicate(&self, k: &KeySql) -> String {
        let e = k.expr();
        match self {
            Range::Int { lo, hi } if lo == hi => format!("{e} = {lo}"),
            Range::Int { lo, hi } => format!("{e} >= {lo} AND {e} <= {hi}"),
            Range::Values { lo, hi } => {
                let mut parts = Vec::new();
                if let Some(lo) = lo {
                    parts.push(format!("{e} >= {}", k.literal(lo)));
                }
                if let Some(hi) = hi {
                    parts.push(format!("{e} < {}", k.literal(hi)));
                }
                if parts.is_empty() {
                    "true".to_string()
                } else {
                    parts.join(" AND ")
                }
            }
        }
    }

    /// A range holding a single key value cannot be cut further.
    pub fn is_single_value(&self) -> bool {
        matches!(self, Range::Int { lo, hi } if lo == hi)
    }

    /// Whether `next` starts exactly where this range ends (so both read as one).
    fn continues_into(&self, next: &Range) -> bool {
        match (self, next) {
            (Range::Int { hi, .. }, Range::Int { lo, .. }) => {
                i128::from(*hi) + 1 == i128::from(*lo)
            }
            (Range::Values { hi: Some(h), .. }, Range::Values { lo: Some(l), .. }) => h == l,
            _ => false,
        }
    }

    /// This range and `next` as one; only meaningful when [`Range::continues_into`] holds.
    fn join(&mut self, next: Range) {
        match (self, next) {
            (Range::Int { hi, .. }, Range::Int { hi: h2, .. }) => *hi = h2,
            (Range::Values { hi, .. }, Range::Values { hi: h2, .. }) => *hi = h2,
            _ => {}
        }
    }
}

/// How a range is cut into buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Split {
    /// Bucket `b` holds keys `lo + b*width ..= lo + (b+1)*width - 1`.
    Int {
        /// Start of bucket 0.
        lo: i64,
        /// Keys per bucket.
        width: i128,
        /// The range spans more than an int8 difference can hold: compute in numeric.
        wide: bool,
    },
    /// `width_bucket` over these sorted thresholds: bucket 0 is below the first, bucket `i`
    /// is `[t[i-1], t[i])`, the last is from the last threshold on.
    Values(Vec<String>),
}

impl Split {
    /// About `n` buckets over `lo..=hi`.
    pub fn integer(lo: i64, hi: i64, n: usize) -> Split {
        let span = i128::from(hi) - i128::from(lo) + 1;
        let n = n.max(1) as i128;
        let width = ((span + n - 1) / n).max(1);
        Split::Int {
            lo,
            width,
            wide: span - 1 > i128::from(i64::MAX),
        }
    }

    /// SQL for the bucket number (int8) of a row.
    pub fn bucket_sql(&self, k: &KeySql) -> String {
        let e = k.expr();
        match self {
            Split::Int {
                lo,
                width,
                wide: false,
            } => format!("((({e})::int8 - ({lo})::int8) / {width})"),
            Split::Int {
                lo,
                width,
                wide: true,
            } => format!("div(({e})::numeric - ({lo}), {width})::int8"),
            Split::Values(t) => format!("width_bucket({e}, {})::int8", k.array(t)),
        }
    }

    /// The range of bucket `b` inside `parent`, or None when `b` cannot occur there.
    pub fn child(&self, parent: &Range, b: i64) -> Option<Range> {
        match (self, parent) {
            (Split::Int { lo, width, .. }, Range::Int { hi, .. }) => {
                if b < 0 {
                    return None;
                }
                let start = i128::from(*lo) + i128::from(b) * width;
                let end = (start + width - 1).min(i128::from(*hi));
                if start > end {
                    return None;
                }
                Some(Range::Int {
                    lo: i64::try_from(start).ok()?,
                    hi: i64::try_from(end).ok()?,
                })
            }
            (Split::Values(t), Range::Values { lo, hi }) => {
                let b = usize::try_from(b).ok()?;
                if b > t.len() {
                    return None;
                }
                Some(Range::Values {
                    lo: if b == 0 {
                        lo.clone()
                    } else {
                        Some(t[b - 1].clone())
                    },
                    hi: if b == t.len() {
                        hi.clone()
                    } else {
                        Some(t[b].clone())
                    },
                })
            }
            _ => None,
        }
    }
}

/// Join ranges (sorted by key) that touch, so that a run of differing buckets is read as one.
pub(crate) fn merge_adjacent(ranges: Vec<Range>) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.continues_into(&r) => last.join(r),
            _ => out.push(r),
        }
    }
    out
}

/// Up to this many ranges are read with OR-ed range predicates (an index can serve them);
/// more are read in one pass with a single bucket lookup per row.
const OR_LIMIT: usize = 16;

/// SQL that is true for rows in any of `ranges` (sorted by key, disjoint, not touching).
pub(crate) fn filter_sql(ranges: &[Range], k: &KeySql) -> String {
    if ranges.is_empty() {
        return "false".to_string();
    }
    if ranges.len() <= OR_LIMIT {
        return ranges
            .iter()
            .map(|r| format!("({})", r.predicate(k)))
            .collect::<Vec<_>>()
            .join(" OR ");
    }
    // The ranges' bounds as one sorted threshold list: width_bucket then says which gap a
    // key is in, and the gaps inside a range are listed.
    let mut bounds: Vec<String> = Vec::new();
    let mut inside: Vec<usize> = Vec::new();
    for r in ranges {
        let (lo, hi) = match r {
            Range::Int { lo, hi } => (
                Some(lo.to_string()),
                hi.checked_add(1).map(|h| h.to_string()),
            ),
            Range::Values { lo, hi } => (lo.clone(), hi.clone()),
        };
        match lo {
            Some(v) => {
                bounds.push(v);
                inside.push(bounds.len());
            }
            None => inside.push(0),
        }
        if let Some(h) = hi {
            bounds.push(h);
        }
    }
    let list = inside
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "width_bucket({}, {}) = ANY(ARRAY[{list}])",
        k.expr(),
        k.array(&bounds)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_key() -> KeySql {
        KeySql::new("\"id\"", "bigint", false)
    }

    /// Every key of the parent falls in exactly one child, and the child is the bucket the
    /// SQL formula would compute.
    #[test]
    fn integer_children_tile_the_parent() {
        for (lo, hi, n) in [
            (1i64, 1000i64, 7usize),
            (-5, 5, 256),
            (0, 0, 4),
            (i64::MIN, i64::MAX, 256),
        ] {
            let parent = Range::Int { lo, hi };
            let split = Split::integer(lo, hi, n);
            let Split::Int { width, .. } = split else {
                panic!()
            };
            let mut next = i128::from(lo);
            let mut b = 0;
            while let Some(Range::Int { lo: clo, hi: chi }) = split.child(&parent, b) {
                assert_eq!(
                    i128::from(clo),
                    next,
                    "bucket {b} starts where the last ended"
                );
                assert!(chi >= clo);
                // The formula's bucket for the child's ends is b.
                assert_eq!((i128::from(clo) - i128::from(lo)) / width, i128::from(b));
                assert_eq!((i128::from(chi) - i128::from(lo)) / width, i128::from(b));
                next = i128::from(chi) + 1;
                b += 1;
            }
            assert_eq!(next, i128::from(hi) + 1, "children cover the parent");
            assert!(b as usize <= n.max(1));
        }
    }

    #[test]
    fn wide_integer_ranges_use_numeric() {
        let s = Split::integer(i64::MIN, i64::MAX, 16);
        assert!(s.bucket_sql(&int_key()).starts_with("div("));
        let s = Split::integer(-10, 10, 16);
        assert_eq!(
            s.bucket_sql(&int_key()),
            "(((\"id\")::int8 - (-10)::int8) / 2)"
        );
    }

    #[test]
    fn value_children_follow_thresholds() {
        let t: Vec<String> = ["b", "d"].map(String::from).to_vec();
        let parent = Range::Values {
            lo: Some("a".into()),
            hi: None,
        };
        let s = Split::Values(t);
        let kids: Vec<Range> = (0..4).filter_map(|b| s.child(&parent, b)).collect();
        assert_eq!(
            kids,
            vec![
                Range::Values {
                    lo: Some("a".into()),
                    hi: Some("b".into())
                },
                Range::Values {
                    lo: Some("b".into()),
                    hi: Some("d".into())
                },
                Range::Values {
                    lo: Some("d".into()),
                    hi: None
                },
            ]
        );
        let k = KeySql::new("\"k\"", "text", true);
        assert_eq!(
            kids[1].predicate(&k),
            "\"k\" COLLATE \"C\" >= 'b'::text AND \"k\" COLLATE \"C\" < 'd'::text"
        );
        assert_eq!(Range::everything().predicate(&k), "true");
    }

    #[test]
    fn touching_ranges_merge() {
        let m = merge_adjacent(vec![
            Range::Int { lo: 1, hi: 4 },
            Range::Int { lo: 5, hi: 9 },
            Range::Int { lo: 11, hi: 12 },
        ]);
        assert_eq!(
            m,
            vec![Range::Int { lo: 1, hi: 9 }, Range::Int { lo: 11, hi: 12 }]
        );
        let v = |lo: Option<&str>, hi: Option<&str>| Range::Values {
            lo: lo.map(String::from),
            hi: hi.map(String::from),
        };
        let m = merge_adjacent(vec![
            v(None, Some("c")),
            v(Some("c"), Some("f")),
            v(Some("g"), None),
        ]);
        assert_eq!(m, vec![v(None, Some("f")), v(Some("g"), None)]);
    }

    #[test]
    fn many_ranges_use_one_bucket_lookup() {
        let ranges: Vec<Range> = (0..20)
            .map(|i| Range::Int {
                lo: i * 10,
                hi: i * 10 + 3,
            })
            .collect();
        let f = filter_sql(&ranges, &int_key());
        // bounds: 0,4,10,14,... ; inside buckets 1,3,5,...
        assert!(
            f.starts_with("width_bucket(\"id\", ARRAY['0','4','10','14'"),
            "{f}"
        );
        assert!(
            f.ends_with("= ANY(ARRAY[1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31,33,35,37,39])"),
            "{f}"
        );
        let few = filter_sql(&ranges[..2], &int_key());
        assert_eq!(
            few,
            "(\"id\" >= 0 AND \"id\" <= 3) OR (\"id\" >= 10 AND \"id\" <= 13)"
        );
        let open = filter_sql(
            &(0..20)
                .map(|i| Range::Values {
                    lo: if i == 0 {
                        None
                    } else {
                        Some(format!("k{i:02}"))
                    },
                    hi: Some(format!("k{i:02}x")),
                })
                .collect::<Vec<_>>(),
            &KeySql::new("\"k\"", "text", true),
        );
        assert!(open.contains("= ANY(ARRAY[0,2,4,"), "{open}");
    }
}
