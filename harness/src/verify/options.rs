//! What to compare and how hard to try.

use crate::node::{ConnInfo, Node};

/// One side of a comparison: a node name for reports and errors, and where to read.
#[derive(Debug, Clone)]
pub struct Side {
    /// "a", "b" or "c": names the side in reports and errors.
    pub name: String,
    /// The database to read (the verifier only reads; B may be a hot standby).
    pub conn: ConnInfo,
}

impl Side {
    /// A side named `name` reading through `conn`.
    pub fn new(name: impl Into<String>, conn: ConnInfo) -> Side {
        Side {
            name: name.into(),
            conn,
        }
    }

    /// Database `db` on `node`, as the harness's admin login.
    pub fn of(node: &Node, db: &str) -> Side {
        Side::new(node.name(), node.admin().with_db(db))
    }
}

/// Schemas skipped even when the caller's list forgets them: they hold no user rows.
pub(crate) const SYSTEM_SCHEMAS: [&str; 3] = ["information_schema", "pg_catalog", "pg_toast"];

/// Tuning of a comparison. `Default` suits tables from a few rows to tens of millions.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Schemas not compared. System schemas (`pg_*`, `information_schema`) are skipped always.
    pub exclude_schemas: Vec<String>,
    /// At most this many keys listed per class (missing, extra, changed); counts stay exact.
    pub max_keys_listed: usize,
    /// Tables compared at once; each worker holds one connection per side.
    pub parallel_tables: usize,
    /// Buckets a differing key range is split into at each level.
    pub buckets: usize,
    /// A differing range with at most this many rows on each side is fetched key by key
    /// instead of being split further.
    pub leaf_rows: u64,
    /// When more ranges than this differ at one level, they are all fetched key by key: past
    /// that point one pass over the rows is cheaper than splitting each range with its own
    /// queries.
    pub max_split_ranges: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            exclude_schemas: ["pgrehearse", "information_schema", "pg_catalog", "pg_toast"]
                .map(String::from)
                .to_vec(),
            max_keys_listed: 20,
            parallel_tables: 4,
            buckets: 256,
            leaf_rows: 2000,
            max_split_ranges: 32,
        }
    }
}

impl VerifyOptions {
    /// The excluded schemas including the system ones, for the catalog queries.
    pub(crate) fn all_excluded(&self) -> Vec<String> {
        let mut v = self.exclude_schemas.clone();
        for s in SYSTEM_SCHEMAS {
            if !v.iter().any(|x| x == s) {
                v.push(s.to_string());
            }
        }
        v
    }

    /// Bucket count actually used: at least 2 so that every split makes progress.
    pub(crate) fn fanout(&self) -> usize {
        self.buckets.clamp(2, 65_536)
    }
}
