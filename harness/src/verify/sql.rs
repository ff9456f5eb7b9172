//! Row hashes and the queries every comparison method shares.

use super::session::Session;
use crate::error::Result;
use crate::util::quote_ident;

/// The compared columns as a row value, in the fixed order both sides use.
pub(crate) fn row_value(columns: &[String]) -> String {
    let cols = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!("ROW({cols})")
}

/// A row's text (what reports show for tables without a key).
pub(crate) fn row_text(columns: &[String]) -> String {
    format!("{}::text", row_value(columns))
}

/// A 64-bit hash of a row's text. Text, not the binary values, so that the two sides agree
/// whenever the values print the same (int vs bigint, varchar vs text); byte order so that no
/// collation takes part.
pub(crate) fn row_hash(columns: &[String]) -> String {
    format!(
        "hashtextextended({}::text COLLATE \"C\", 0)",
        row_value(columns)
    )
}

/// Row count and sum of row hashes of a whole table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checksum {
    /// Rows.
    pub rows: u64,
    /// Sum of the row hashes, as numeric text (None for an empty table).
    pub sum: Option<String>,
}

/// One pass over the table, shaped like `SELECT sum(hashtext(t::text)) FROM t` so that the
/// planner treats it the same way (a plain aggregate, parallel when the table is big): a table
/// without differences costs no more than that.
pub(crate) async fn checksum(
    s: &Session,
    table: &str,
    from: &str,
    columns: &[String],
) -> Result<Checksum> {
    let r = s
        .row(
            &format!("checksumming {table}"),
            &format!(
                "SELECT count(*), sum({})::text FROM {from}",
                row_hash(columns)
            ),
        )
        .await?;
    Ok(Checksum {
        rows: u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
        sum: r.try_get(1)?,
    })
}

/// Rows of a table that is not compared row by row (missing on one side, or rekeyed).
pub(crate) async fn count(s: &Session, table: &str, from: &str) -> Result<u64> {
    let r = s
        .row(
            &format!("counting rows of {table}"),
            &format!("SELECT count(*) FROM {from}"),
        )
        .await?;
    Ok(u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0))
}

/// Per bucket: rows and sum of row hashes.
pub(crate) type Buckets = std::collections::BTreeMap<i64, (u64, String)>;

/// Count and hash sum per bucket in one pass.
pub(crate) async fn buckets(
    s: &Session,
    what: &str,
    from: &str,
    bucket: &str,
    hash: &str,
    filter: &str,
) -> Result<Buckets> {
    let rows = s
        .rows(
            what,
            &format!(
                "SELECT {bucket} AS b, count(*), sum({hash})::text FROM {from} \
                 WHERE {filter} GROUP BY 1"
            ),
        )
        .await?;
    let mut out = Buckets::new();
    for r in rows {
        let b: Option<i64> = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        let sum: Option<String> = r.try_get(2)?;
        out.insert(
            b.unwrap_or(-1),
            (u64::try_from(n).unwrap_or(0), sum.unwrap_or_default()),
        );
    }
    Ok(out)
}

/// Buckets whose count or sum differ between the two sides, with both counts.
pub(crate) fn differing(r: &Buckets, t: &Buckets) -> Vec<(i64, [u64; 2])> {
    let mut keys: Vec<i64> = r.keys().chain(t.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|b| {
            let (x, y) = (r.get(&b), t.get(&b));
            (x != y).then(|| (b, [x.map_or(0, |v| v.0), y.map_or(0, |v| v.0)]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_covers_columns_in_order() {
        let cols = vec!["id".to_string(), "Weird \"name\"".to_string()];
        assert_eq!(
            row_hash(&cols),
            "hashtextextended(ROW(\"id\", \"Weird \"\"name\"\"\")::text COLLATE \"C\", 0)"
        );
    }

    #[test]
    fn differing_buckets_include_one_sided_ones() {
        let r: Buckets = [
            (0, (2, "5".into())),
            (1, (1, "7".into())),
            (3, (1, "9".into())),
        ]
        .into();
        let t: Buckets = [
            (0, (2, "5".into())),
            (1, (1, "8".into())),
            (2, (4, "1".into())),
        ]
        .into();
        assert_eq!(
            differing(&r, &t),
            vec![(1, [1, 1]), (2, [0, 4]), (3, [1, 0])]
        );
    }
}
