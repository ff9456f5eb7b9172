//! What one side holds: user tables with their columns and primary keys, and sequences.

use std::collections::BTreeMap;

use super::session::Session;
use crate::error::Result;
use crate::util::{display_qualified, quote_ident, quote_literal};

/// One column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnDef {
    /// Column name.
    pub name: String,
    /// `format_type` with the modifier: what schema drift compares ("numeric(10,2)").
    pub type_name: String,
    /// `format_type` without the modifier: what literals are cast to ("numeric"). Asked with
    /// -1, not NULL: NULL names char(n) "character", which casts to char(1) and would cut
    /// every key range at its first character.
    pub base_type: String,
    /// Type OID (to recognise the integer types).
    pub type_oid: u32,
    /// Whether the column has a collation (text-like types).
    pub collatable: bool,
    /// Whether its collation already orders as bytes ("C", "POSIX"), so no `COLLATE "C"` is
    /// needed and an index on it serves range predicates.
    pub byte_order: bool,
    /// An array type: `width_bucket` cannot take arrays of arrays, so such a key is bucketed
    /// by its text.
    pub is_array: bool,
}

impl ColumnDef {
    /// smallint, integer, bigint: keys bucketed by arithmetic.
    pub fn is_integer(&self) -> bool {
        matches!(self.type_oid, 20 | 21 | 23)
    }
}

/// One ordinary table or partitioned root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableDef {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// A partitioned root (read with its partitions) rather than a plain table (read with
    /// `ONLY`, so that inheritance children are not counted twice).
    pub partitioned: bool,
    /// Columns in attnum order.
    pub columns: Vec<ColumnDef>,
    /// Primary key column names in key order.
    pub primary_key: Option<Vec<String>>,
}

impl TableDef {
    /// `schema.table` as reports show it.
    pub fn display(&self) -> String {
        display_qualified(&self.schema, &self.name)
    }

    /// The table in a FROM clause, aliased `t`.
    pub fn relation_sql(&self) -> String {
        let only = if self.partitioned { "" } else { "ONLY " };
        format!(
            "{only}{}.{} AS t",
            quote_ident(&self.schema),
            quote_ident(&self.name)
        )
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Everything compared on one side, keyed by `schema.name`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    /// Tables by `schema.table`.
    pub tables: BTreeMap<String, TableDef>,
    /// Sequences by `schema.sequence`: last_value, None when never used (is_called false).
    pub sequences: BTreeMap<String, Option<i64>>,
    /// The side is a hot standby (its sequences show the values the primary WAL-logged).
    pub in_recovery: bool,
}

/// The schema filter shared by every catalog query: excluded schemas, and every `pg_*`
/// schema (catalog, toast, temporary), whatever the caller listed.
fn schema_filter(excluded: &[String]) -> String {
    let list = excluded
        .iter()
        .map(|s| quote_literal(s))
        .collect::<Vec<_>>()
        .join(", ");
    let list = if list.is_empty() {
        "''".to_string()
    } else {
        list
    };
    format!("n.nspname NOT IN ({list}) AND n.nspname NOT LIKE 'pg\\_%'")
}

/// Read the catalog of the session's database.
pub(crate) async fn load(s: &Session, excluded: &[String]) -> Result<Catalog> {
    let filter = schema_filter(excluded);
    // Only permanent tables: logical replication never carries an unlogged table's rows, and a
    // standby cannot read one (the preflight notes name them).
    let rel_filter = format!(
        "c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p' AND {filter}"
    );
    // One snapshot for the four queries, so a concurrent DDL cannot make them disagree.
    s.begin("reading the catalog").await?;
    let tables = s
        .rows(
            "listing tables",
            &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind = 'p' \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE {rel_filter}"
            ),
        )
        .await?;
    let columns = s
        .rows(
            "listing columns",
            &format!(
                "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                   format_type(a.atttypid, -1), a.atttypid, a.attcollation <> 0, \
                   coalesce(co.collcollate IN ('C', 'POSIX') AND co.collprovider = 'c', false) \
                     OR (a.attcollation = 100 AND d.datlocprovider = 'c' \
                         AND d.datcollate IN ('C', 'POSIX')), \
                   ty.typcategory = 'A' \
                 FROM pg_attribute a \
                 JOIN pg_type ty ON ty.oid = a.atttypid \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100 \
                 CROSS JOIN pg_database d \
                 WHERE d.datname = current_database() AND a.attnum > 0 \
                   AND NOT a.attisdropped AND {rel_filter} \
                 ORDER BY a.attrelid, a.attnum"
            ),
        )
        .await?;
    let keys = s
        .rows(
            "listing primary keys",
            "SELECT i.indrelid, array_agg(a.attname::text ORDER BY k.ord) \
             FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indisprimary AND k.ord <= i.indnkeyatts GROUP BY i.indrelid",
        )
        .await?;
    let sequences = s
        .rows(
            "listing sequences",
            &format!(
                "SELECT n.nspname::text, c.relname::text, q.last_value \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_sequences q ON q.schemaname = n.nspname AND q.sequencename = c.relname \
                 WHERE c.relkind = 'S' AND c.relpersistence = 'p' AND {filter}"
            ),
        )
        .await?;
    let recovery = s
        .rows("checking for recovery", "SELECT pg_is_in_recovery()")
        .await?;
    s.end("reading the catalog").await?;

    let mut by_oid: BTreeMap<u32, TableDef> = BTreeMap::new();
    for r in &tables {
        by_oid.insert(
            r.try_get(0)?,
            TableDef {
                schema: r.try_get(1)?,
                name: r.try_get(2)?,
                partitioned: r.try_get(3)?,
                columns: Vec::new(),
                primary_key: None,
            },
        );
    }
    for r in &columns {
        let oid: u32 = r.try_get(0)?;
        if let Some(t) = by_oid.get_mut(&oid) {
            t.columns.push(ColumnDef {
                name: r.try_get(1)?,
                type_name: r.try_get(2)?,
                base_type: r.try_get(3)?,
                type_oid: r.try_get(4)?,
                collatable: r.try_get(5)?,
                byte_order: r.try_get(6)?,
                is_array: r.try_get(7)?,
            });
        }
    }
    for r in &keys {
        let oid: u32 = r.try_get(0)?;
        if let Some(t) = by_oid.get_mut(&oid) {
            t.primary_key = Some(r.try_get(1)?);
        }
    }
    let mut cat = Catalog {
        in_recovery: recovery
            .first()
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(false),
        ..Catalog::default()
    };
    for t in by_oid.into_values() {
        cat.tables.insert(t.display(), t);
    }
    for r in &sequences {
        let schema: String = r.try_get(0)?;
        let name: String = r.try_get(1)?;
        cat.sequences
            .insert(display_qualified(&schema, &name), r.try_get(2)?);
    }
    Ok(cat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_filter_quotes_and_always_skips_pg_schemas() {
        let f = schema_filter(&["it's".to_string()]);
        assert!(f.contains("'it''s'"), "{f}");
        assert!(f.contains("NOT LIKE 'pg\\_%'"), "{f}");
        assert!(schema_filter(&[]).contains("NOT IN ('')"));
    }
}
