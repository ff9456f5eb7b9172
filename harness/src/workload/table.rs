//! The built-in tables, their keys as the ledger renders them, and how op ids are laid out.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Schema holding the built-in workload's tables on every node.
pub const WORKLOAD_SCHEMA: &str = "rehearse";

/// Ledger `conn` of rows written by [`seed_initial`](super::seed_initial) rather than by a
/// workload connection.
pub const SEED_CONN: u32 = u32::MAX;

/// Ledger `node` of seeded rows: they reach every node through the initial copy.
pub const SEED_NODE: &str = "initial";

/// Workload op ids are `(conn + 1) << OP_CONN_SHIFT | n`; seeded rows use ids below
/// `1 << OP_CONN_SHIFT`, so the two never collide and an id names its writer.
pub const OP_CONN_SHIFT: u32 = 40;

/// Regions of `order_lines` keys. The seed SQL indexes the same list (1-based there).
pub(crate) const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// One of the built-in workload tables.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinTable {
    /// `rehearse.accounts`: bigint key chosen by the workload.
    Accounts,
    /// `rehearse.order_lines`: composite text key (region, order_no, line).
    OrderLines,
    /// `rehearse.documents`: jsonb, bytea, numeric, timestamptz and tens of KB of text per row.
    Documents,
    /// `rehearse.events`: no primary key, REPLICA IDENTITY FULL.
    Events,
    /// `rehearse.invoices`: sequence-backed bigserial key.
    Invoices,
}

impl BuiltinTable {
    /// Every built-in table, in creation order.
    pub const ALL: [BuiltinTable; 5] = [
        BuiltinTable::Accounts,
        BuiltinTable::OrderLines,
        BuiltinTable::Documents,
        BuiltinTable::Events,
        BuiltinTable::Invoices,
    ];

    /// `schema.table`, as the ledger and reports name it.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinTable::Accounts => "rehearse.accounts",
            BuiltinTable::OrderLines => "rehearse.order_lines",
            BuiltinTable::Documents => "rehearse.documents",
            BuiltinTable::Events => "rehearse.events",
            BuiltinTable::Invoices => "rehearse.invoices",
        }
    }

    /// The table name without its schema.
    pub fn short_name(self) -> &'static str {
        &self.name()[WORKLOAD_SCHEMA.len() + 1..]
    }

    /// Position in [`BuiltinTable::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Share of operations the table gets by default. Documents carry tens of KB per write and
    /// would dominate WAL (and throughput) with a larger share.
    pub fn default_weight(self) -> u32 {
        match self {
            BuiltinTable::Accounts => 30,
            BuiltinTable::OrderLines => 20,
            BuiltinTable::Documents => 5,
            BuiltinTable::Events => 25,
            BuiltinTable::Invoices => 20,
        }
    }

    /// The table a `schema.table` (or bare table) name refers to.
    pub fn from_name(name: &str) -> Option<BuiltinTable> {
        let bare = name
            .strip_prefix(WORKLOAD_SCHEMA)
            .and_then(|r| r.strip_prefix('.'))
            .unwrap_or(name);
        BuiltinTable::ALL
            .into_iter()
            .find(|t| t.short_name() == bare)
    }

    /// Op id of the `k`-th seeded row (1-based) of this table.
    pub(crate) fn seed_op(self, k: u64) -> u64 {
        ((self.index() as u64 + 1) << 32) | k
    }
}

impl fmt::Display for BuiltinTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BuiltinTable {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BuiltinTable::from_name(s).ok_or_else(|| {
            Error::usage(format!(
                "unknown workload table {s:?}; built-in tables are {}",
                BuiltinTable::ALL.map(|t| t.short_name()).join(", ")
            ))
        })
    }
}

/// Op id of operation `n` (1-based) of connection `conn`.
pub(crate) fn op_id(conn: u32, n: u64) -> u64 {
    ((conn as u64 + 1) << OP_CONN_SHIFT) | n
}

/// The key of one row, small enough to copy around the hot loop; rendered as text only when the
/// ledger line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// accounts, documents, invoices.
    Id(i64),
    /// order_lines: `order_no` is `s-<n>` for seeded rows, `<owner>-<n>` for connection
    /// `owner`'s rows.
    Order {
        region: u8,
        owner: u32,
        n: u64,
        line: i32,
    },
    /// events: the logical identity the workload keeps unique.
    Event { stream: i32, seq: i64 },
    /// An invoice insert whose id the server never returned (failed, or outcome unknown).
    Unassigned,
}

/// Ledger key of an invoice insert whose id is not known.
pub(crate) const UNASSIGNED_KEY: &str = "?";

impl Key {
    /// The key of the `k`-th seeded row (1-based) of `table`; the seed SQL builds the same.
    pub(crate) fn seeded(table: BuiltinTable, k: u64) -> Key {
        match table {
            BuiltinTable::Accounts | BuiltinTable::Documents | BuiltinTable::Invoices => {
                Key::Id(k as i64)
            }
            BuiltinTable::OrderLines => Key::Order {
                region: (k % REGIONS.len() as u64) as u8,
                owner: SEED_CONN,
                n: k,
                line: 1,
            },
            BuiltinTable::Events => Key::Event {
                stream: 0,
                seq: k as i64,
            },
        }
    }
}

/// `order_no` of an order line.
pub(crate) struct OrderNo {
    pub owner: u32,
    pub n: u64,
}

impl fmt::Display for OrderNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.owner == SEED_CONN {
            write!(f, "s-{}", self.n)
        } else {
            write!(f, "{}-{}", self.owner, self.n)
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Key::Id(id) => write!(f, "{id}"),
            Key::Order {
                region,
                owner,
                n,
                line,
            } => render_order(
                f,
                REGIONS[region as usize % REGIONS.len()],
                OrderNo { owner, n },
                line,
            ),
            Key::Event { stream, seq } => render_event(f, stream, seq),
            Key::Unassigned => f.write_str(UNASSIGNED_KEY),
        }
    }
}

/// Composite keys render like PostgreSQL's row output, `(eu,3-17,2)`; the ledger check renders
/// scanned rows through the same functions so both sides agree byte for byte.
pub(crate) fn render_order(
    f: &mut impl fmt::Write,
    region: &str,
    order_no: impl fmt::Display,
    line: i32,
) -> fmt::Result {
    write!(f, "({region},{order_no},{line})")
}

/// `(stream,seq)`.
pub(crate) fn render_event(f: &mut impl fmt::Write, stream: i32, seq: i64) -> fmt::Result {
    write!(f, "({stream},{seq})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in BuiltinTable::ALL {
            assert_eq!(BuiltinTable::from_name(t.name()), Some(t));
            assert_eq!(t.short_name().parse::<BuiltinTable>().unwrap(), t);
            assert_eq!(BuiltinTable::ALL[t.index()], t);
        }
        assert!("rehearse.nope".parse::<BuiltinTable>().is_err());
    }

    #[test]
    fn keys_render_like_scanned_rows() {
        let k = Key::Order {
            region: 1,
            owner: 3,
            n: 17,
            line: 2,
        };
        let mut scanned = String::new();
        render_order(&mut scanned, "us", "3-17", 2).unwrap();
        assert_eq!(k.to_string(), scanned);
        assert_eq!(scanned, "(us,3-17,2)");
        assert_eq!(
            Key::seeded(BuiltinTable::OrderLines, 4).to_string(),
            "(us,s-4,1)"
        );
        assert_eq!(Key::seeded(BuiltinTable::Events, 9).to_string(), "(0,9)");
        assert_eq!(Key::Id(42).to_string(), "42");
    }

    #[test]
    fn op_ids_separate_seed_and_connections() {
        let seeded = BuiltinTable::Invoices.seed_op(u32::MAX as u64);
        assert!(seeded < op_id(0, 0));
        assert!(op_id(0, 5) < op_id(1, 1));
        assert_eq!(op_id(2, 7) >> OP_CONN_SHIFT, 3);
    }
}
