//! Schema drift between the two catalogs, and the plan for comparing each table's rows.

use super::catalog::{Catalog, ColumnDef, TableDef};
use super::chunk::KeySql;
use super::model::{DriftKind, SchemaDrift};
use crate::util::{display_ident, quote_ident};

/// How the first key column is cut into ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Integer keys on both sides: ranges by arithmetic between min and max.
    Integer,
    /// Anything else: ranges between key values sampled from the data.
    Values,
}

/// How a table with a primary key is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPlan {
    /// Key column names in key order.
    pub columns: Vec<String>,
    /// Per key column: whether it sorts as an integer in reports.
    pub integer: Vec<bool>,
    /// How the first key column is bucketed.
    pub strategy: Strategy,
    /// The first key column as each side's SQL sees it: [reference, target].
    pub first: [KeySql; 2],
}

/// How a table's rows are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Method {
    /// By primary key.
    PrimaryKey(KeyPlan),
    /// As a multiset of row hashes.
    Multiset,
    /// Not at all (present on one side only, or the keys differ); rows are only counted.
    NotCompared,
}

/// One table to compare.
#[derive(Debug, Clone)]
pub(crate) struct TablePlan {
    /// `schema.table`.
    pub name: String,
    /// Its definition on [reference, target]; None where it does not exist.
    pub defs: [Option<TableDef>; 2],
    /// Columns present on both sides, in the reference's order: what the row hash covers.
    pub columns: Vec<String>,
    /// How.
    pub method: Method,
}

fn describe_columns(t: &TableDef) -> String {
    let cols = t
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.type_name))
        .collect::<Vec<_>>()
        .join(", ");
    format!("({cols})")
}

fn describe_key(k: &Option<Vec<String>>) -> Option<String> {
    k.as_ref()
        .map(|k| format!("PRIMARY KEY ({})", k.join(", ")))
}

fn key_sql(col: &ColumnDef, as_text: bool) -> KeySql {
    let q = quote_ident(&col.name);
    if as_text {
        KeySql::new(format!("({q})::text"), "text", true)
    } else if col.is_integer() {
        KeySql::new(q, "bigint", false)
    } else {
        // Text keys order by collation; force byte order so both sides agree, unless the
        // column already sorts that way (then an index on it still serves range scans).
        KeySql::new(q, &col.base_type, col.collatable && !col.byte_order)
    }
}

fn key_plan(columns: &[String], r: &TableDef, t: &TableDef) -> Option<KeyPlan> {
    let first = columns.first()?;
    let (rc, tc) = (r.column(first)?, t.column(first)?);
    let strategy = if rc.is_integer() && tc.is_integer() {
        Strategy::Integer
    } else {
        Strategy::Values
    };
    // Different non-integer types (varchar vs text, numeric vs text) cannot share literals,
    // and arrays cannot be bucketed: compare their text in byte order instead.
    let as_text = strategy == Strategy::Values
        && (rc.base_type != tc.base_type || rc.is_array || tc.is_array);
    let integer = columns
        .iter()
        .map(|c| {
            r.column(c).is_some_and(ColumnDef::is_integer)
                && t.column(c).is_some_and(ColumnDef::is_integer)
        })
        .collect();
    Some(KeyPlan {
        columns: columns.to_vec(),
        integer,
        strategy,
        first: [key_sql(rc, as_text), key_sql(tc, as_text)],
    })
}

/// Compare the catalogs: the drift found, and one plan per table on either side, by name.
pub(crate) fn plan(reference: &Catalog, target: &Catalog) -> (Vec<SchemaDrift>, Vec<TablePlan>) {
    let mut drift = Vec::new();
    let mut plans = Vec::new();
    let mut names: Vec<&String> = reference
        .tables
        .keys()
        .chain(target.tables.keys())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let (r, t) = (reference.tables.get(name), target.tables.get(name));
        let (r, t) = match (r, t) {
            (Some(r), Some(t)) => (r, t),
            (r, t) => {
                let kind = if r.is_some() {
                    DriftKind::TableMissing
                } else {
                    DriftKind::TableExtra
                };
                drift.push(SchemaDrift {
                    object: name.clone(),
                    kind,
                    reference: r.map(describe_columns),
                    target: t.map(describe_columns),
                });
                plans.push(TablePlan {
                    name: name.clone(),
                    defs: [r.cloned(), t.cloned()],
                    columns: Vec::new(),
                    method: Method::NotCompared,
                });
                continue;
            }
        };
        let mut columns = Vec::new();
        for rc in &r.columns {
            match t.column(&rc.name) {
                None => drift.push(SchemaDrift {
                    object: format!("{name}.{}", display_ident(&rc.name)),
                    kind: DriftKind::ColumnMissing,
                    reference: Some(rc.type_name.clone()),
                    target: None,
                }),
                Some(tc) => {
                    if tc.type_name != rc.type_name {
                        let kind = if super::widening::widens(&rc.type_name, &tc.type_name) {
                            DriftKind::TypeWidened
                        } else {
                            DriftKind::TypeChanged
                        };
                        drift.push(SchemaDrift {
                            object: format!("{name}.{}", display_ident(&rc.name)),
                            kind,
                            reference: Some(rc.type_name.clone()),
                            target: Some(tc.type_name.clone()),
                        });
                    }
                    // Still compared: rows whose values render the same (int vs bigint)
                    // match, and the rest show what the type change did to the data.
                    columns.push(rc.name.clone());
                }
            }
        }
        for tc in &t.columns {
            if r.column(&tc.name).is_none() {
                drift.push(SchemaDrift {
                    object: format!("{name}.{}", display_ident(&tc.name)),
                    kind: DriftKind::ColumnExtra,
                    reference: None,
                    target: Some(tc.type_name.clone()),
                });
            }
        }
        let method = if r.primary_key != t.primary_key {
            drift.push(SchemaDrift {
                object: name.clone(),
                kind: DriftKind::PrimaryKeyChanged,
                reference: describe_key(&r.primary_key),
                target: describe_key(&t.primary_key),
            });
            Method::NotCompared
        } else {
            match &r.primary_key {
                Some(k) => key_plan(k, r, t).map_or(Method::NotCompared, Method::PrimaryKey),
                None => Method::Multiset,
            }
        };
        plans.push(TablePlan {
            name: name.clone(),
            defs: [Some(r.clone()), Some(t.clone())],
            columns,
            method,
        });
    }
    (drift, plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, oid: u32, collatable: bool) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            type_name: ty.into(),
            base_type: ty.split('(').next().unwrap_or(ty).into(),
            type_oid: oid,
            collatable,
            byte_order: false,
            is_array: false,
        }
    }

    fn table(name: &str, cols: Vec<ColumnDef>, pk: Option<&[&str]>) -> TableDef {
        TableDef {
            schema: "public".into(),
            name: name.into(),
            partitioned: false,
            columns: cols,
            primary_key: pk.map(|k| k.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn catalog(tables: Vec<TableDef>) -> Catalog {
        let mut c = Catalog::default();
        for t in tables {
            c.tables.insert(t.display(), t);
        }
        c
    }

    #[test]
    fn drift_and_methods() {
        let r = catalog(vec![
            table(
                "orders",
                vec![
                    col("id", "bigint", 20, false),
                    col("amount", "numeric(10,2)", 1700, false),
                    col("note", "text", 25, true),
                ],
                Some(&["id"]),
            ),
            table("gone", vec![col("x", "integer", 23, false)], None),
            table(
                "rekeyed",
                vec![col("a", "text", 25, true), col("b", "integer", 23, false)],
                Some(&["a"]),
            ),
        ]);
        let t = catalog(vec![
            table(
                "orders",
                vec![
                    col("id", "integer", 23, false),
                    col("amount", "numeric(28,6)", 1700, false),
                    col("extra", "jsonb", 3802, false),
                ],
                Some(&["id"]),
            ),
            table("new", vec![col("x", "integer", 23, false)], None),
            table(
                "rekeyed",
                vec![col("a", "text", 25, true), col("b", "integer", 23, false)],
                Some(&["a", "b"]),
            ),
        ]);
        let (drift, plans) = plan(&r, &t);
        let kinds: Vec<(String, DriftKind)> =
            drift.iter().map(|d| (d.object.clone(), d.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("public.gone".into(), DriftKind::TableMissing),
                ("public.new".into(), DriftKind::TableExtra),
                ("public.orders.id".into(), DriftKind::TypeChanged),
                ("public.orders.amount".into(), DriftKind::TypeChanged),
                ("public.orders.note".into(), DriftKind::ColumnMissing),
                ("public.orders.extra".into(), DriftKind::ColumnExtra),
                ("public.rekeyed".into(), DriftKind::PrimaryKeyChanged),
            ]
        );
        let orders = plans.iter().find(|p| p.name == "public.orders").unwrap();
        assert_eq!(orders.columns, vec!["id", "amount"]);
        // int vs bigint keys still bucket by arithmetic.
        assert!(matches!(&orders.method, Method::PrimaryKey(k) if k.strategy == Strategy::Integer));
        let gone = plans.iter().find(|p| p.name == "public.gone").unwrap();
        assert_eq!(gone.method, Method::NotCompared);
        assert!(gone.defs[0].is_some() && gone.defs[1].is_none());
        let rekeyed = plans.iter().find(|p| p.name == "public.rekeyed").unwrap();
        assert_eq!(rekeyed.method, Method::NotCompared);
    }

    #[test]
    fn text_keys_compare_in_byte_order() {
        let r = catalog(vec![table(
            "t",
            vec![col("k", "text", 25, true)],
            Some(&["k"]),
        )]);
        let (drift, plans) = plan(&r, &r.clone());
        assert!(drift.is_empty());
        let Method::PrimaryKey(k) = &plans[0].method else {
            panic!("expected a key plan")
        };
        assert_eq!(k.strategy, Strategy::Values);
        assert_eq!(k.first[0].expr(), "\"k\" COLLATE \"C\"");
        // Different types on the two sides: compare the text.
        let mut t = r.clone();
        t.tables.get_mut("public.t").unwrap().columns[0] = col("k", "uuid", 2950, false);
        let (_, plans) = plan(&r, &t);
        let Method::PrimaryKey(k) = &plans[0].method else {
            panic!("expected a key plan")
        };
        assert_eq!(k.first[1].expr(), "(\"k\")::text COLLATE \"C\"");
    }
}
