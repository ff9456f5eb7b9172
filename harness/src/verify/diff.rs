//! Tables with a primary key: chunked hash comparison over the first key column, recursing
//! into ranges that differ, then reading (key, row hash) of the differing ranges only.
//!
//! 1. One pass per side: row count and sum of row hashes. Equal: done, the table matches.
//! 2. The whole key range is cut into buckets (arithmetic between min and max for integer
//!    keys, thresholds sampled from the data otherwise) and one grouped pass gives count and
//!    hash sum per bucket.
//! 3. Buckets that differ are cut again with range predicates on the first key column (which
//!    an index can serve), level by level, until a range is small, one-sided or cannot be cut
//!    (one value of the first column spanning many rows of a composite key).
//! 4. Those ranges are read key by key on both sides and the keys classified over the union
//!    of everything read, so that a key the two sides bucket differently still pairs up.

use std::collections::HashMap;

use super::chunk::{self, KeySql, Range, Split};
use super::keys::{KeyDiff, classify_keys};
use super::options::VerifyOptions;
use super::schema::{KeyPlan, Strategy};
use super::session::Session;
use super::sql::{self, Checksum};
use crate::error::{Error, Result};
use crate::util::quote_ident;

/// How deep ranges are cut before being read as they are; integer ranges need at most 8 levels
/// of 256 buckets to reach single values.
const MAX_DEPTH: usize = 12;

/// Rows sampled to choose the first thresholds of a big table with non-integer keys.
const SAMPLE_ROWS: f64 = 50_000.0;

/// What the comparison of one keyed table found (rows counted by the checksum pass).
pub(crate) struct PkOutcome {
    /// Row counts [reference, target].
    pub rows: [u64; 2],
    /// The classified keys; empty lists when the checksums matched.
    pub keys: KeyDiff,
}

/// Everything the passes over one table need.
struct Ctx<'a> {
    s: [&'a Session; 2],
    table: &'a str,
    from: [String; 2],
    hash: String,
    key: &'a KeyPlan,
    opts: &'a VerifyOptions,
}

/// A range that differs, with its row counts on each side and its place in key order.
#[derive(Debug, Clone)]
struct Item {
    path: Vec<i64>,
    range: Range,
    rows: [u64; 2],
}

fn pair<A, B>(a: Result<A>, b: Result<B>) -> Result<(A, B)> {
    Ok((a?, b?))
}

/// Compare one table with a primary key, inside the already open snapshots.
pub(crate) async fn compare_keyed(
    s: [&Session; 2],
    table: &str,
    from: [String; 2],
    columns: &[String],
    key: &KeyPlan,
    opts: &VerifyOptions,
) -> Result<PkOutcome> {
    let (cr, ct) = tokio::join!(
        sql::checksum(s[0], table, &from[0], columns),
        sql::checksum(s[1], table, &from[1], columns)
    );
    let (cr, ct): (Checksum, Checksum) = pair(cr, ct)?;
    let rows = [cr.rows, ct.rows];
    if cr == ct {
        return Ok(PkOutcome {
            rows,
            keys: KeyDiff::default(),
        });
    }
    let ctx = Ctx {
        s,
        table,
        from,
        hash: sql::row_hash(columns),
        key,
        opts,
    };
    let root = ctx.root_range().await?;
    let leaves = ctx.differing_ranges(root, rows).await?;
    let keys = ctx.read_and_classify(leaves).await?;
    if keys.missing.is_empty() && keys.extra.is_empty() && keys.changed.is_empty() {
        // The sums said something differs; never report a match we could not confirm.
        return Err(Error::internal(format!(
            "comparing {table}: the table checksums differ but no differing key was found"
        )));
    }
    Ok(PkOutcome { rows, keys })
}

impl Ctx<'_> {
    fn k(&self, side: usize) -> &KeySql {
        &self.key.first[side]
    }

    /// The whole key range: min to max over both sides for integer keys.
    async fn root_range(&self) -> Result<Range> {
        if self.key.strategy == Strategy::Values {
            return Ok(Range::everything());
        }
        let q = |side: usize| {
            format!(
                "SELECT min({e})::int8, max({e})::int8 FROM {from}",
                e = self.k(side).expr(),
                from = self.from[side]
            )
        };
        let what = format!("reading the key range of {}", self.table);
        let (q0, q1) = (q(0), q(1));
        let (r, t) = tokio::join!(self.s[0].row(&what, &q0), self.s[1].row(&what, &q1));
        let (r, t) = pair(r, t)?;
        let lo = [r.try_get::<_, Option<i64>>(0)?, t.try_get(0)?];
        let hi = [r.try_get::<_, Option<i64>>(1)?, t.try_get(1)?];
        let lo = lo.into_iter().flatten().min();
        let hi = hi.into_iter().flatten().max();
        match (lo, hi) {
            (Some(lo), Some(hi)) => Ok(Range::Int { lo, hi }),
            // Both empty, yet the checksums differed: nothing can be in range.
            _ => Ok(Range::Int { lo: 0, hi: 0 }),
        }
    }

    /// Cut differing ranges level by level; return the ranges to read key by key.
    async fn differing_ranges(&self, root: Range, rows: [u64; 2]) -> Result<Vec<Item>> {
        let mut level = vec![Item {
            path: Vec::new(),
            range: root,
            rows,
        }];
        let mut leaves = Vec::new();
        for depth in 0..=MAX_DEPTH {
            let mut to_split = Vec::new();
            for it in level.drain(..) {
                let small = it.rows[0].max(it.rows[1]) <= self.opts.leaf_rows;
                let one_sided = it.rows[0] == 0 || it.rows[1] == 0;
                if small || one_sided || it.range.is_single_value() || depth == MAX_DEPTH {
                    leaves.push(it);
                } else {
                    to_split.push(it);
                }
            }
            if to_split.is_empty() {
                break;
            }
            // Many differing ranges are cheaper to read in one pass than to cut one by one.
            if to_split.len() > self.opts.max_split_ranges {
                leaves.append(&mut to_split);
                break;
            }
            for it in to_split {
                match self.split(&it, depth == 0).await? {
                    Some(children) => level.extend(children),
                    None => leaves.push(it),
                }
            }
        }
        leaves.extend(level);
        leaves.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(leaves)
    }

    /// Cut one range into buckets and return those that differ, or None when it cannot be
    /// cut (read it as it is).
    async fn split(&self, it: &Item, root: bool) -> Result<Option<Vec<Item>>> {
        let n = self.opts.fanout();
        let split = match &it.range {
            Range::Int { lo, hi } => Split::integer(*lo, *hi, n),
            Range::Values { .. } => {
                // Thresholds come from the side with more rows here, so they cut its rows
                // evenly; the other side is bucketed with the same ones.
                let side = usize::from(it.rows[1] > it.rows[0]);
                let t = self
                    .thresholds(side, &it.range, it.rows[side], root)
                    .await?;
                if t.is_empty() {
                    return Ok(None);
                }
                Split::Values(t)
            }
        };
        let what = format!("hashing key ranges of {}", self.table);
        let q = |side: usize| {
            let k = self.k(side);
            (split.bucket_sql(k), it.range.predicate(k))
        };
        let ((b0, f0), (b1, f1)) = (q(0), q(1));
        let (r, t) = tokio::join!(
            sql::buckets(self.s[0], &what, &self.from[0], &b0, &self.hash, &f0),
            sql::buckets(self.s[1], &what, &self.from[1], &b1, &self.hash, &f1)
        );
        let (r, t) = pair(r, t)?;
        let nonempty = r
            .keys()
            .chain(t.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if nonempty <= 1 && matches!(split, Split::Values(_)) {
            // Every row fell in one bucket: the range holds a single first-key value.
            return Ok(None);
        }
        let mut out = Vec::new();
        for (b, rows) in sql::differing(&r, &t) {
            let Some(range) = split.child(&it.range, b) else {
                return Err(Error::internal(format!(
                    "comparing {}: bucket {b} lies outside the range {:?}",
                    self.table, it.range
                )));
            };
            let mut path = it.path.clone();
            path.push(b);
            out.push(Item { path, range, rows });
        }
        Ok(Some(out))
    }

    /// Sorted, distinct first-key values that cut `range` on `side` into about `fanout` equal
    /// parts. At the root of a big table they come from a sample of its pages.
    async fn thresholds(
        &self,
        side: usize,
        range: &Range,
        rows: u64,
        root: bool,
    ) -> Result<Vec<String>> {
        let n = self.opts.fanout();
        let fracs = (1..n)
            .map(|i| format!("{}", i as f64 / n as f64))
            .collect::<Vec<_>>()
            .join(",");
        let k = self.k(side);
        let sample = if root && rows as f64 > SAMPLE_ROWS * 2.0 {
            let pct = (100.0 * SAMPLE_ROWS / rows as f64).clamp(0.0001, 100.0);
            format!(" TABLESAMPLE SYSTEM ({pct:.6})")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT (percentile_disc(ARRAY[{fracs}]::float8[]) WITHIN GROUP (ORDER BY {e}))::text[] \
             FROM {from}{sample} WHERE {pred}",
            e = k.expr(),
            from = self.from[side],
            pred = range.predicate(k),
        );
        let what = format!("sampling key thresholds of {}", self.table);
        let row = self.s[side].row(&what, &sql).await?;
        let mut t: Vec<String> = row
            .try_get::<_, Option<Vec<String>>>(0)?
            .unwrap_or_default();
        t.dedup();
        if t.is_empty() && !sample.is_empty() {
            // A sample of a few pages can come back empty; read the range itself instead.
            return Box::pin(self.thresholds(side, range, rows, false)).await;
        }
        Ok(t)
    }

    /// Read (key, row hash) of the differing ranges on both sides and classify the keys.
    async fn read_and_classify(&self, leaves: Vec<Item>) -> Result<KeyDiff> {
        let ranges = chunk::merge_adjacent(leaves.into_iter().map(|i| i.range).collect());
        let q = |side: usize| {
            let cols = self
                .key
                .columns
                .iter()
                .map(|c| format!("({})::text", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "SELECT {cols}, {h} FROM {from} WHERE {filter}",
                h = self.hash,
                from = self.from[side],
                filter = chunk::filter_sql(&ranges, self.k(side))
            )
        };
        let what = format!("reading differing keys of {}", self.table);
        let nkeys = self.key.columns.len();
        let (q0, q1) = (q(0), q(1));
        let (r, t) = tokio::join!(
            read_keys(self.s[0], &what, &q0, nkeys),
            read_keys(self.s[1], &what, &q1, nkeys)
        );
        let (r, t) = pair(r, t)?;
        Ok(classify_keys(
            r,
            t,
            &self.key.integer,
            self.opts.max_keys_listed,
        ))
    }
}

async fn read_keys(
    s: &Session,
    what: &str,
    sql: &str,
    nkeys: usize,
) -> Result<HashMap<Vec<String>, i64>> {
    let mut out = HashMap::new();
    s.for_each_row(what, sql, |r| {
        let mut k = Vec::with_capacity(nkeys);
        for i in 0..nkeys {
            k.push(r.try_get::<_, String>(i)?);
        }
        out.insert(k, r.try_get::<_, i64>(nkeys)?);
        Ok(())
    })
    .await?;
    Ok(out)
}
