//! The ledger check: does a node hold every acknowledged write?
//!
//! One connection owns each key, so the ledger gives a total order of the operations on every
//! key. Their effects on the row's state (absent, or present with `op_id = X`) are known, so the
//! acceptable final states are: the state after the last acknowledged operation, or — when an
//! operation with an unknown outcome follows it — the state after that one too. Failed
//! operations change nothing. One scan of `(key, op_id)` per table then classifies each key.

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, pin_mut};

use super::model::{LedgerCheck, LedgerEntry, OpKind, Outcome};
use super::table::{BuiltinTable, UNASSIGNED_KEY, render_event, render_order};
use crate::error::{Error, Result, ResultExt};
use crate::node::ConnInfo;
use crate::verdict::Verdict;
use crate::verify::KeySample;

/// One ledger operation on a key: op id, kind, outcome.
type KeyOp = (u64, OpKind, Outcome);

/// A row's state as the ledger sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Absent,
    /// Present, last written by this op id.
    Present(u64),
}

/// The state after `kind` (op `op`) is applied to `s`. An insert of a present key fails and an
/// update of an absent key matches nothing: neither changes the state.
fn apply(s: State, kind: OpKind, op: u64) -> State {
    match (kind, s) {
        (OpKind::Insert, State::Absent) => State::Present(op),
        (OpKind::Insert, present) => present,
        (OpKind::Update, State::Present(_)) => State::Present(op),
        (OpKind::Update, State::Absent) => State::Absent,
        (OpKind::Delete, _) => State::Absent,
    }
}

/// What the ledger allows for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expect {
    /// Every state the key may end in.
    acceptable: Vec<State>,
    /// The state if no unknown-outcome operation was applied.
    base: State,
    /// The last acknowledged operation.
    last_ok: Option<u64>,
    /// Unknown-outcome operations after the last acknowledged one.
    trailing_unknown: Vec<(u64, OpKind)>,
    /// Op ids that may be in the row (acknowledged or unknown).
    issued: Vec<u64>,
}

impl Expect {
    /// Fold the operations on one key, in op-id order (which is the owning connection's order).
    pub(crate) fn from_ops(ops: &[KeyOp]) -> Expect {
        let mut acceptable = vec![State::Absent];
        let mut base = State::Absent;
        let mut last_ok = None;
        let mut trailing_unknown = Vec::new();
        let mut issued = Vec::new();
        for &(op, kind, outcome) in ops {
            match outcome {
                Outcome::Failed => {}
                Outcome::Ok => {
                    issued.push(op);
                    for s in acceptable.iter_mut() {
                        *s = apply(*s, kind, op);
                    }
                    base = apply(base, kind, op);
                    last_ok = Some(op);
                    trailing_unknown.clear();
                }
                Outcome::Unknown => {
                    issued.push(op);
                    let applied: Vec<State> =
                        acceptable.iter().map(|s| apply(*s, kind, op)).collect();
                    acceptable.extend(applied);
                    trailing_unknown.push((op, kind));
                }
            }
            acceptable.sort_by_key(|s| match s {
                State::Absent => 0,
                State::Present(x) => x + 1,
            });
            acceptable.dedup();
        }
        Expect {
            acceptable,
            base,
            last_ok,
            trailing_unknown,
            issued,
        }
    }

    /// Judge the state a node holds.
    pub(crate) fn classify(&self, actual: State) -> Class {
        if self.acceptable.contains(&actual) {
            let applied = self
                .trailing_unknown
                .iter()
                .filter(|(op, kind)| actual != self.base && actual == apply(self.base, *kind, *op))
                .count() as u64;
            return Class::Consistent {
                unknown_applied: applied,
                unknown_not_applied: self.trailing_unknown.len() as u64 - applied,
            };
        }
        match (actual, self.last_ok) {
            (State::Present(x), _) if !self.issued.contains(&x) => Class::Unexplained { op: x },
            (_, Some(op)) => Class::Lost { op },
            // Only unknown operations, and a state none of them explains.
            (State::Present(x), None) => Class::Unexplained { op: x },
            (State::Absent, None) => Class::Consistent {
                unknown_applied: 0,
                unknown_not_applied: 0,
            },
        }
    }
}

/// How one key compares with the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// An acceptable state.
    Consistent {
        unknown_applied: u64,
        unknown_not_applied: u64,
    },
    /// Acknowledged operation `op`'s effect is missing.
    Lost { op: u64 },
    /// The row holds op id `op`, which no acknowledged or unknown operation on this key wrote.
    Unexplained { op: u64 },
}

struct Slot {
    expect: Expect,
    seen: bool,
}

fn scan_sql(t: BuiltinTable) -> &'static str {
    match t {
        BuiltinTable::Accounts => "SELECT id, op_id FROM rehearse.accounts",
        BuiltinTable::Documents => "SELECT id, op_id FROM rehearse.documents",
        BuiltinTable::Invoices => "SELECT id, op_id FROM rehearse.invoices",
        BuiltinTable::OrderLines => {
            "SELECT region, order_no, line, op_id FROM rehearse.order_lines"
        }
        BuiltinTable::Events => "SELECT stream, seq, op_id FROM rehearse.events",
    }
}

/// Render a scanned row's key exactly as the ledger renders it; returns its op id.
fn scanned_key(t: BuiltinTable, row: &tokio_postgres::Row, buf: &mut String) -> Result<u64> {
    use std::fmt::Write as _;
    buf.clear();
    let op: i64 = match t {
        BuiltinTable::Accounts | BuiltinTable::Documents | BuiltinTable::Invoices => {
            let id: i64 = row.try_get(0)?;
            let _ = write!(buf, "{id}");
            row.try_get(1)?
        }
        BuiltinTable::OrderLines => {
            let region: &str = row.try_get(0)?;
            let order_no: &str = row.try_get(1)?;
            let line: i32 = row.try_get(2)?;
            let _ = render_order(buf, region, order_no, line);
            row.try_get(3)?
        }
        BuiltinTable::Events => {
            let stream: i32 = row.try_get(0)?;
            let seq: i64 = row.try_get(1)?;
            let _ = render_event(buf, stream, seq);
            row.try_get(2)?
        }
    };
    Ok(op as u64)
}

/// Findings before they are capped, so samples come out in a stable order.
#[derive(Default)]
struct Findings {
    lost: Vec<(BuiltinTable, u64, String)>,
    unexplained: Vec<(BuiltinTable, u64, String)>,
    unknown_applied: u64,
    unknown_not_applied: u64,
}

impl Findings {
    fn add(&mut self, t: BuiltinTable, key: &str, class: Class) {
        match class {
            Class::Consistent {
                unknown_applied,
                unknown_not_applied,
            } => {
                self.unknown_applied += unknown_applied;
                self.unknown_not_applied += unknown_not_applied;
            }
            Class::Lost { op } => self.lost.push((t, op, format!("{t} {key} op={op}"))),
            Class::Unexplained { op } => {
                self.unexplained.push((t, op, format!("{t} {key} op={op}")))
            }
        }
    }
}

fn sample(mut v: Vec<(BuiltinTable, u64, String)>, cap: usize) -> KeySample {
    v.sort();
    let mut s = KeySample::default();
    for (_, _, k) in v {
        s.push(k, cap);
    }
    s
}

/// Check `node_name`'s data (reached through `conn`, which must name the workload's database)
/// against the ledger `entries` (seeded rows included): every key's `(key, op_id)` must be one
/// of the states the ledger allows. Lost writes (acknowledged, not there) are the RPO in
/// writes; `cap` bounds the keys listed per class. Only tables the ledger names are scanned.
///
/// # Errors
/// Usage error when the ledger names a table that is not a built-in workload table; database
/// error naming the node and table when a scan fails.
pub async fn check_ledger(
    entries: &[LedgerEntry],
    node_name: &str,
    conn: &ConnInfo,
    cap: usize,
) -> Result<LedgerCheck> {
    let mut ops: [HashMap<&str, Vec<KeyOp>>; 5] = Default::default();
    // Invoice inserts whose id never came back: matched by op id instead of key.
    let mut orphans: HashMap<(BuiltinTable, u64), ()> = HashMap::new();
    let mut tables = BTreeSet::new();
    for e in entries {
        let t = BuiltinTable::from_name(&e.table).ok_or_else(|| {
            Error::usage(format!(
                "ledger entry op={} names table {}, which is not a built-in workload table",
                e.op, e.table
            ))
        })?;
        tables.insert(t);
        if e.key == UNASSIGNED_KEY {
            if e.outcome == Outcome::Unknown {
                orphans.insert((t, e.op), ());
            }
            continue;
        }
        ops[t.index()]
            .entry(e.key.as_str())
            .or_default()
            .push((e.op, e.kind, e.outcome));
    }
    let orphan_total = orphans.len() as u64;
    let mut slots: [HashMap<&str, Slot>; 5] = Default::default();
    let mut keys_checked = 0u64;
    for (i, per_table) in ops.iter_mut().enumerate() {
        for (key, mut list) in per_table.drain() {
            list.sort_unstable_by_key(|(op, _, _)| *op);
            let expect = Expect::from_ops(&list);
            keys_checked += u64::from(expect.last_ok.is_some());
            slots[i].insert(
                key,
                Slot {
                    expect,
                    seen: false,
                },
            );
        }
    }

    let client = conn
        .connect(crate::node::CONNECT_TIMEOUT)
        .await
        .on_node(node_name)?;
    let mut f = Findings::default();
    let mut buf = String::new();
    let mut orphans_applied = 0u64;
    for &t in &tables {
        let step = || format!("checking the ledger against {t}");
        let rows = client
            .query_raw(scan_sql(t), std::iter::empty::<i64>())
            .await
            .step_with(step)
            .on_node(node_name)?;
        pin_mut!(rows);
        let slots = &mut slots[t.index()];
        while let Some(row) = rows.next().await {
            let row = row.step_with(step).on_node(node_name)?;
            let op = scanned_key(t, &row, &mut buf)
                .step_with(step)
                .on_node(node_name)?;
            match slots.get_mut(buf.as_str()) {
                Some(slot) if slot.seen => {
                    f.unexplained
                        .push((t, op, format!("{t} {buf} op={op} (duplicate row)")))
                }
                Some(slot) => {
                    slot.seen = true;
                    f.add(t, &buf, slot.expect.classify(State::Present(op)));
                }
                None if orphans.remove(&(t, op)).is_some() => orphans_applied += 1,
                None => f.add(t, &buf, Class::Unexplained { op }),
            }
        }
        for (key, slot) in slots.iter().filter(|(_, s)| !s.seen) {
            f.add(t, key, slot.expect.classify(State::Absent));
        }
    }
    f.unknown_applied += orphans_applied;
    f.unknown_not_applied += orphan_total - orphans_applied;

    let lost = sample(f.lost, cap);
    let unexplained = sample(f.unexplained, cap);
    let verdict = if lost.is_empty() && unexplained.is_empty() {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    tracing::info!(
        "ledger check on {node_name}: {verdict} ({keys_checked} keys, {} lost, {} unexplained, \
         unknown outcomes {} applied / {} not applied)",
        lost.count,
        unexplained.count,
        f.unknown_applied,
        f.unknown_not_applied
    );
    Ok(LedgerCheck {
        node: node_name.to_string(),
        verdict,
        keys_checked,
        lost,
        unknown_applied: f.unknown_applied,
        unknown_not_applied: f.unknown_not_applied,
        unexplained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use OpKind::*;
    use Outcome::{Failed, Ok as Acked, Unknown};
    use State::*;

    fn consistent(applied: u64, not_applied: u64) -> Class {
        Class::Consistent {
            unknown_applied: applied,
            unknown_not_applied: not_applied,
        }
    }

    #[test]
    fn acknowledged_writes_fix_the_state() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Acked)]);
        assert_eq!(e.acceptable, vec![Present(2)]);
        assert_eq!(e.classify(Present(2)), consistent(0, 0));
        assert_eq!(e.classify(Present(1)), Class::Lost { op: 2 });
        assert_eq!(e.classify(Absent), Class::Lost { op: 2 });
        assert_eq!(e.classify(Present(77)), Class::Unexplained { op: 77 });
    }

    #[test]
    fn an_acknowledged_delete_must_stick() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Acked), (3, Delete, Acked)]);
        assert_eq!(e.acceptable, vec![Absent]);
        assert_eq!(e.classify(Absent), consistent(0, 0));
        assert_eq!(e.classify(Present(2)), Class::Lost { op: 3 });
    }

    #[test]
    fn failed_writes_change_nothing() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Failed), (3, Delete, Failed)]);
        assert_eq!(e.acceptable, vec![Present(1)]);
        assert_eq!(e.classify(Present(1)), consistent(0, 0));
        // A failed write showing up is something the ledger cannot explain.
        assert_eq!(e.classify(Present(2)), Class::Unexplained { op: 2 });
        let never = Expect::from_ops(&[(1, Insert, Failed)]);
        assert_eq!(never.acceptable, vec![Absent]);
        assert_eq!(never.last_ok, None);
        assert_eq!(never.classify(Absent), consistent(0, 0));
        assert_eq!(never.classify(Present(1)), Class::Unexplained { op: 1 });
    }

    #[test]
    fn a_trailing_unknown_may_or_may_not_have_applied() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Unknown)]);
        assert_eq!(e.acceptable, vec![Present(1), Present(2)]);
        assert_eq!(e.classify(Present(2)), consistent(1, 0));
        assert_eq!(e.classify(Present(1)), consistent(0, 1));
        assert_eq!(e.classify(Absent), Class::Lost { op: 1 });

        let del = Expect::from_ops(&[(1, Insert, Acked), (2, Delete, Unknown)]);
        assert_eq!(del.acceptable, vec![Absent, Present(1)]);
        assert_eq!(del.classify(Absent), consistent(1, 0));
        assert_eq!(del.classify(Present(1)), consistent(0, 1));

        let ins = Expect::from_ops(&[(5, Insert, Unknown)]);
        assert_eq!(ins.acceptable, vec![Absent, Present(5)]);
        assert_eq!(ins.classify(Present(5)), consistent(1, 0));
        assert_eq!(ins.classify(Absent), consistent(0, 1));
    }

    #[test]
    fn an_unknown_followed_by_an_acknowledged_write_is_settled_by_it() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Unknown), (3, Update, Acked)]);
        assert_eq!(e.acceptable, vec![Present(3)]);
        assert_eq!(e.classify(Present(3)), consistent(0, 0));
        assert_eq!(e.classify(Present(2)), Class::Lost { op: 3 });
    }

    #[test]
    fn seeded_rows_count_as_acknowledged_inserts() {
        let seed_op = BuiltinTable::Accounts.seed_op(4);
        let e = Expect::from_ops(&[(seed_op, Insert, Acked)]);
        assert_eq!(e.classify(Present(seed_op)), consistent(0, 0));
        assert_eq!(e.classify(Absent), Class::Lost { op: seed_op });
    }
}
