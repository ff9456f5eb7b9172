//! What each connection attempts next: a pure function of the seed, the connection number and
//! that connection's own earlier outcomes (never of timing or of other connections).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::WorkloadConfig;
use super::model::{OpKind, Outcome};
use super::table::{BuiltinTable, Key, REGIONS, op_id};

/// Size of the shared text the workload slices values from.
const POOL_BYTES: usize = 256 * 1024;
/// Document content length range: tens of KB, so the table stresses TOAST and WAL volume.
const CONTENT_LEN: std::ops::Range<u32> = 16 * 1024..48 * 1024;
/// Short text and bytea values.
const SHORT_LEN: std::ops::Range<u32> = 16..256;
/// Share of document updates that also rewrite the large content.
const CONTENT_UPDATE_P: f64 = 0.25;

/// Owner and customer names: static, so the hot loop never formats them.
pub(crate) const NAMES: [&str; 16] = [
    "ada", "brian", "carla", "dmitri", "elena", "farid", "grace", "hugo", "ines", "jun", "kofi",
    "lena", "mateo", "nadia", "oskar", "priya",
];

/// Seeded, incompressible-ish text that values are sliced from: generating 16-48 KB per
/// document would cost more than writing it.
pub(crate) struct TextPool(String);

impl TextPool {
    pub(crate) fn new(seed: u64) -> TextPool {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, u64::MAX));
        let s: String = (0..POOL_BYTES)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        TextPool(s)
    }

    /// The text of `span`. Spans are drawn inside the pool and the pool is ASCII, so this
    /// slice is always on character boundaries.
    pub(crate) fn text(&self, span: Span) -> &str {
        let start = (span.off as usize).min(self.0.len());
        let end = (start + span.len as usize).min(self.0.len());
        &self.0[start..end]
    }
}

/// A slice of the text pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub off: u32,
    pub len: u32,
}

/// Column values of one write, as numbers and pool slices (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Values {
    /// Deletes carry none.
    None,
    Account {
        owner: usize,
        cents: i64,
    },
    OrderLine {
        qty: i32,
        note: Span,
    },
    Document {
        tag: u32,
        amount_micros: i64,
        happened_us: i64,
        blob: Span,
        content: Option<Span>,
    },
    Event {
        payload: Span,
    },
    Invoice {
        customer: usize,
        cents: i64,
    },
}

/// One operation a connection is about to attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub op: u64,
    pub table: BuiltinTable,
    pub kind: OpKind,
    pub key: Key,
    /// Index of the key in the connection's live list (updates and deletes).
    slot: usize,
    pub values: Values,
}

/// How an attempt ended, as far as the generator needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settled {
    pub outcome: Outcome,
    /// The key's state is no longer known (an update or delete matched no row): never touch
    /// it again.
    pub retire: bool,
    /// The id the server assigned (invoice inserts).
    pub assigned: Option<i64>,
}

/// Mix `seed` with a connection number into an independent stream seed (SplitMix64).
pub(crate) fn mix_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The per-connection generator.
pub(crate) struct OpGen {
    conn: u32,
    rng: ChaCha8Rng,
    n: u64,
    tables: Vec<(BuiltinTable, u32)>,
    table_total: u32,
    mix: super::config::Mix,
    /// Keys this connection owns and whose state it knows, per table index.
    live: [Vec<Key>; 5],
}

impl OpGen {
    pub(crate) fn new(cfg: &WorkloadConfig, conn: u32) -> OpGen {
        let mut cumulative = 0u32;
        let mut tables = Vec::new();
        for &t in &cfg.tables {
            if tables.iter().any(|(x, _)| *x == t) {
                continue;
            }
            cumulative += t.default_weight();
            tables.push((t, cumulative));
        }
        let mut live: [Vec<Key>; 5] = Default::default();
        let n = cfg.connections as u64;
        // Connection i owns seeded keys i+1, i+1+n, ...: stepping, not filtering, so that 1000
        // connections over a million seeded rows do not cost 10^9 checks each.
        for &(t, _) in &tables {
            live[t.index()] = (conn as u64 + 1..=cfg.seeded_rows)
                .step_by(n.max(1) as usize)
                .map(|k| Key::seeded(t, k))
                .collect();
        }
        OpGen {
            conn,
            rng: ChaCha8Rng::seed_from_u64(mix_seed(cfg.seed, conn as u64)),
            n: 0,
            tables,
            table_total: cumulative,
            mix: cfg.mix,
            live,
        }
    }

    /// Draw the next operation.
    pub(crate) fn plan(&mut self) -> Plan {
        self.n += 1;
        let op = op_id(self.conn, self.n);
        let r = self.rng.random_range(0..self.table_total);
        let table = self
            .tables
            .iter()
            .find(|(_, upto)| r < *upto)
            .map(|(t, _)| *t)
            .unwrap_or(BuiltinTable::Accounts);
        let m = self.rng.random_range(0..self.mix.total());
        let mut kind = if m < self.mix.insert {
            OpKind::Insert
        } else if m < self.mix.insert + self.mix.update {
            OpKind::Update
        } else {
            OpKind::Delete
        };
        let live = &self.live[table.index()];
        if live.is_empty() {
            kind = OpKind::Insert;
        }
        let (key, slot) = match kind {
            OpKind::Insert => (self.new_key(table, op), usize::MAX),
            OpKind::Update | OpKind::Delete => {
                let slot = self.rng.random_range(0..live.len());
                (live[slot], slot)
            }
        };
        let values = if kind == OpKind::Delete {
            Values::None
        } else {
            self.values(table, kind)
        };
        Plan {
            op,
            table,
            kind,
            key,
            slot,
            values,
        }
    }

    /// Learn how `plan` ended; the next plan depends on it.
    pub(crate) fn settle(&mut self, plan: &Plan, s: Settled) {
        let live = &mut self.live[plan.table.index()];
        match (plan.kind, s.outcome) {
            (OpKind::Insert, Outcome::Ok) => match (plan.key, s.assigned) {
                (Key::Unassigned, Some(id)) => live.push(Key::Id(id)),
                (Key::Unassigned, None) => {}
                (k, _) => live.push(k),
            },
            (OpKind::Insert, _) => {}
            (OpKind::Update, Outcome::Ok) => {}
            // Definitely not applied: the key's state is still known.
            (OpKind::Update | OpKind::Delete, Outcome::Failed) if !s.retire => {}
            // A delete, an unknown outcome (the key's state is uncertain for good), or an
            // update or delete that found no row: the connection lets the key go.
            _ => {
                if plan.slot < live.len() {
                    live.swap_remove(plan.slot);
                }
            }
        }
    }

    fn new_key(&mut self, table: BuiltinTable, op: u64) -> Key {
        match table {
            // The op id is unique in the run and carries the connection in its high bits.
            BuiltinTable::Accounts | BuiltinTable::Documents => Key::Id(op as i64),
            BuiltinTable::OrderLines => Key::Order {
                region: self.rng.random_range(0..REGIONS.len() as u8),
                owner: self.conn,
                n: self.n,
                line: self.rng.random_range(1..=4),
            },
            BuiltinTable::Events => Key::Event {
                stream: self.conn as i32 + 1,
                seq: self.n as i64,
            },
            BuiltinTable::Invoices => Key::Unassigned,
        }
    }

    fn span(&mut self, len: std::ops::Range<u32>) -> Span {
        let len = self.rng.random_range(len);
        let off = self.rng.random_range(0..POOL_BYTES as u32 - len);
        Span { off, len }
    }

    fn values(&mut self, table: BuiltinTable, kind: OpKind) -> Values {
        match table {
            BuiltinTable::Accounts => Values::Account {
                owner: self.rng.random_range(0..NAMES.len()),
                cents: self.rng.random_range(0..100_000_000),
            },
            BuiltinTable::OrderLines => Values::OrderLine {
                qty: self.rng.random_range(1..1000),
                note: self.span(SHORT_LEN),
            },
            BuiltinTable::Documents => {
                let content = kind == OpKind::Insert || self.rng.random_bool(CONTENT_UPDATE_P);
                Values::Document {
                    tag: self.rng.random::<u32>(),
                    amount_micros: self.rng.random_range(0..1_000_000_000_000),
                    happened_us: self
                        .rng
                        .random_range(1_700_000_000_000_000..1_800_000_000_000_000),
                    blob: self.span(SHORT_LEN),
                    content: content.then(|| self.span(CONTENT_LEN)),
                }
            }
            BuiltinTable::Events => Values::Event {
                payload: self.span(SHORT_LEN),
            },
            BuiltinTable::Invoices => Values::Invoice {
                customer: self.rng.random_range(0..NAMES.len()),
                cents: self.rng.random_range(0..100_000_000),
            },
        }
    }

    /// Keys currently owned, per table (for tests).
    #[cfg(test)]
    fn live(&self, t: BuiltinTable) -> &[Key] {
        &self.live[t.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive a generator with outcomes chosen by `outcome_of(i)`; return the attempts.
    fn drive(
        cfg: &WorkloadConfig,
        conn: u32,
        n: usize,
        outcome_of: impl Fn(usize) -> Outcome,
    ) -> Vec<Plan> {
        let mut g = OpGen::new(cfg, conn);
        let mut next_invoice = 1_000;
        (0..n)
            .map(|i| {
                let p = g.plan();
                let outcome = outcome_of(i);
                next_invoice += 1;
                g.settle(
                    &p,
                    Settled {
                        outcome,
                        retire: false,
                        assigned: Some(next_invoice),
                    },
                );
                p
            })
            .collect()
    }

    #[test]
    fn seeded_keys_are_dealt_round_robin_to_connections() {
        let cfg = WorkloadConfig {
            seeded_rows: 10,
            connections: 3,
            ..Default::default()
        };
        let owned = |conn| OpGen::new(&cfg, conn).live(BuiltinTable::Accounts).to_vec();
        let keys = |ks: &[u64]| -> Vec<Key> {
            ks.iter()
                .map(|&k| Key::seeded(BuiltinTable::Accounts, k))
                .collect()
        };
        assert_eq!(owned(0), keys(&[1, 4, 7, 10]));
        assert_eq!(owned(1), keys(&[2, 5, 8]));
        assert_eq!(owned(2), keys(&[3, 6, 9]));
        let more_conns_than_rows = WorkloadConfig {
            seeded_rows: 2,
            connections: 4,
            ..Default::default()
        };
        assert!(
            OpGen::new(&more_conns_than_rows, 3)
                .live(BuiltinTable::Accounts)
                .is_empty()
        );
    }

    #[test]
    fn same_seed_same_attempts_other_seed_other_attempts() {
        let cfg = WorkloadConfig {
            seed: 7,
            seeded_rows: 10,
            ..Default::default()
        };
        let ok = |_| Outcome::Ok;
        let base = drive(&cfg, 1, 500, ok);
        assert!(base == drive(&cfg, 1, 500, ok), "same seed, same attempts");
        assert!(
            base != drive(&cfg, 2, 500, ok),
            "another connection draws its own"
        );
        let other = WorkloadConfig {
            seed: 8,
            ..cfg.clone()
        };
        assert!(
            base != drive(&other, 1, 500, ok),
            "another seed draws others"
        );
        // Outcomes steer the sequence: an insert that failed leaves no key to touch later.
        assert_eq!(base[0].kind, OpKind::Insert);
        let first_fails = |i| if i == 0 { Outcome::Failed } else { Outcome::Ok };
        assert!(
            base != drive(&cfg, 1, 500, first_fails),
            "outcomes change what follows"
        );
    }

    #[test]
    fn connections_only_touch_their_own_keys() {
        let cfg = WorkloadConfig {
            seed: 3,
            connections: 3,
            seeded_rows: 30,
            ..Default::default()
        };
        for conn in 0..3u32 {
            for p in drive(&cfg, conn, 400, |_| Outcome::Ok) {
                let mine = match p.key {
                    // Invoice ids come from the (fake) server.
                    Key::Id(_) if p.table == BuiltinTable::Invoices => true,
                    Key::Id(id) if id > 30 => (id as u64 >> 40) == conn as u64 + 1,
                    Key::Id(id) => (id as u64 - 1) % 3 == conn as u64,
                    Key::Order { owner, n, .. } => {
                        owner == conn || (owner == u32::MAX && (n - 1) % 3 == conn as u64)
                    }
                    Key::Event { stream, seq } => {
                        stream == conn as i32 + 1
                            || (stream == 0 && (seq as u64 - 1) % 3 == conn as u64)
                    }
                    Key::Unassigned => p.kind == OpKind::Insert,
                };
                assert!(mine, "connection {conn} touched {:?} in {}", p.key, p.table);
            }
        }
    }

    #[test]
    fn unknown_retires_the_key_and_deletes_release_it() {
        let cfg = WorkloadConfig {
            seed: 5,
            connections: 1,
            tables: vec![BuiltinTable::Accounts],
            ..Default::default()
        };
        let mut g = OpGen::new(&cfg, 0);
        let first = g.plan();
        assert_eq!(
            first.kind,
            OpKind::Insert,
            "no rows yet: the first write inserts"
        );
        let ok = Settled {
            outcome: Outcome::Ok,
            retire: false,
            assigned: None,
        };
        g.settle(&first, ok);
        assert_eq!(g.live(BuiltinTable::Accounts), &[first.key]);
        // Find the next update or delete of that key and say its outcome was unknown.
        loop {
            let p = g.plan();
            if p.kind == OpKind::Insert {
                g.settle(
                    &p,
                    Settled {
                        outcome: Outcome::Failed,
                        ..ok
                    },
                );
                continue;
            }
            assert_eq!(p.key, first.key);
            g.settle(
                &p,
                Settled {
                    outcome: Outcome::Unknown,
                    ..ok
                },
            );
            break;
        }
        assert!(g.live(BuiltinTable::Accounts).is_empty());
    }

    #[test]
    fn pool_spans_stay_in_bounds() {
        let pool = TextPool::new(1);
        let cfg = WorkloadConfig::default();
        let mut g = OpGen::new(&cfg, 0);
        for _ in 0..2000 {
            let p = g.plan();
            if let Values::Document {
                content: Some(c),
                blob,
                ..
            } = p.values
            {
                assert_eq!(pool.text(c).len(), c.len as usize);
                assert!(CONTENT_LEN.contains(&c.len));
                assert_eq!(pool.text(blob).len(), blob.len as usize);
            }
            g.settle(
                &p,
                Settled {
                    outcome: Outcome::Ok,
                    retire: false,
                    assigned: Some(p.op as i64),
                },
            );
        }
    }
}
