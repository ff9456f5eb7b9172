//! Tables without a primary key: the rows are compared as multisets of row hashes.
//!
//! A checksum pass first (count and hash sum: equal means the same multiset, barring a 64-bit
//! collision). If it differs, one grouped pass buckets the rows by the low bits of their hash,
//! and a last pass counts copies per hash in the differing buckets only. A row that is twice
//! on one side and once on the other is one missing (or extra) copy; there is no identity, so
//! nothing is ever "changed".

use super::keys::{HashCounts, multiset_diff};
use super::model::KeySample;
use super::options::VerifyOptions;
use super::session::Session;
use super::sql::{self, Checksum};
use crate::error::{Error, Result};

/// Most buckets of the grouped pass.
const MAX_BUCKETS: u64 = 65_536;

/// What the comparison of one table without a key found.
pub(crate) struct MultisetOutcome {
    /// Row counts [reference, target].
    pub rows: [u64; 2],
    /// Row copies on the reference and not on the target.
    pub missing: KeySample,
    /// Row copies on the target and not on the reference.
    pub extra: KeySample,
}

/// A power of two giving about `leaf_rows` rows per bucket.
pub(crate) fn bucket_count(rows: u64, leaf_rows: u64) -> u64 {
    rows.div_ceil(leaf_rows.max(1))
        .clamp(1, MAX_BUCKETS)
        .next_power_of_two()
}

/// Compare one table without a key, inside the already open snapshots.
pub(crate) async fn compare_multiset(
    s: [&Session; 2],
    table: &str,
    from: [String; 2],
    columns: &[String],
    opts: &VerifyOptions,
) -> Result<MultisetOutcome> {
    let (cr, ct) = tokio::join!(
        sql::checksum(s[0], table, &from[0], columns),
        sql::checksum(s[1], table, &from[1], columns)
    );
    let (cr, ct): (Checksum, Checksum) = (cr?, ct?);
    let rows = [cr.rows, ct.rows];
    if cr == ct {
        return Ok(MultisetOutcome {
            rows,
            missing: KeySample::default(),
            extra: KeySample::default(),
        });
    }
    let hash = sql::row_hash(columns);
    let n = bucket_count(rows[0].max(rows[1]), opts.leaf_rows);
    let filter = if n > 1 {
        let bucket = format!("({hash} & {})", n - 1);
        let what = format!("hashing row buckets of {table}");
        let (r, t) = tokio::join!(
            sql::buckets(s[0], &what, &from[0], &bucket, &hash, "true"),
            sql::buckets(s[1], &what, &from[1], &bucket, &hash, "true")
        );
        let list = sql::differing(&r?, &t?)
            .iter()
            .map(|(b, _)| b.to_string())
            .collect::<Vec<_>>()
            .join(",");
        format!("(h & {}) = ANY(ARRAY[{list}]::int8[])", n - 1)
    } else {
        "true".to_string()
    };
    let q = |side: usize| {
        format!(
            "SELECT h, count(*), min(r COLLATE \"C\") FROM \
             (SELECT {hash} AS h, {text} AS r FROM {from}) s WHERE {filter} GROUP BY h",
            text = sql::row_text(columns),
            from = from[side],
        )
    };
    let what = format!("counting differing rows of {table}");
    let (q0, q1) = (q(0), q(1));
    let (r, t) = tokio::join!(hash_counts(s[0], &what, &q0), hash_counts(s[1], &what, &q1));
    let (missing, extra) = multiset_diff(&r?, &t?, opts.max_keys_listed);
    if missing.is_empty() && extra.is_empty() {
        return Err(Error::internal(format!(
            "comparing {table}: the table checksums differ but no differing row was found"
        )));
    }
    Ok(MultisetOutcome {
        rows,
        missing,
        extra,
    })
}

async fn hash_counts(s: &Session, what: &str, sql: &str) -> Result<HashCounts> {
    let mut out = HashCounts::new();
    s.for_each_row(what, sql, |r| {
        let n: i64 = r.try_get(1)?;
        out.insert(
            r.try_get(0)?,
            (u64::try_from(n).unwrap_or(0), r.try_get(2)?),
        );
        Ok(())
    })
    .await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_near_leaf_size() {
        assert_eq!(bucket_count(0, 2000), 1);
        assert_eq!(bucket_count(2000, 2000), 1);
        assert_eq!(bucket_count(2001, 2000), 2);
        assert_eq!(bucket_count(2_000_000, 2000), 1024);
        assert_eq!(bucket_count(u64::MAX, 1), MAX_BUCKETS);
        assert_eq!(bucket_count(10, 0), 16);
    }
}
