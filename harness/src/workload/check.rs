//! The ledger check: does a node hold every acknowledged write?
//!
//! One connection owns each key, so the ledger gives a total order of the operations on every
//! key. Their effects on the row's state (absent, or present with `op_id = X`) are known.
//! Replication applies commits in commit order, so a node that missed writes holds, for every
//! key, the state after some prefix of the key's operations (an unknown-outcome operation in
//! it applied or not). The check takes the longest prefix that explains the state the node
//! holds: every acknowledged operation after it is a lost write, counted one by one; an
//! unknown-outcome operation inside it is applied when the state needs it, not applied when
//! the state rules it out, and undetermined when either fits; one after it was not applied. A
//! state no prefix explains is unexplained. Failed operations change nothing. One scan of
//! `(key, op_id)` per table classifies every key.
//!
//! The count of lost writes is a lower bound: the longest prefix is taken, so writes whose
//! effects cancel out are not seen missing (an insert and the delete of the same key, both
//! lost, leave the key absent, as if both had arrived).
//!
//! The per-key summary ([`LedgerCheck`]) names each key that lacks a write once, with its
//! last acknowledged op; [`LedgerJudgement`] lists the lost writes themselves.

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, pin_mut};
use tokio_postgres::Client;

use super::model::{LedgerCheck, LedgerEntry, LedgerJudgement, OpKind, Outcome, WriteRef};
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

fn normalise(states: &mut Vec<State>) {
    states.sort_by_key(|s| match s {
        State::Absent => 0,
        State::Present(x) => x + 1,
    });
    states.dedup();
}

/// The states possible after `(op, kind, outcome)` from any of `prev`.
fn step(prev: &[State], (op, kind, outcome): KeyOp) -> Vec<State> {
    let mut next: Vec<State> = prev.iter().map(|s| apply(*s, kind, op)).collect();
    if outcome == Outcome::Unknown {
        next.extend_from_slice(prev);
    }
    normalise(&mut next);
    next
}

/// What the ledger allows for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expect {
    /// The acknowledged and unknown-outcome operations, in order (failed ones change nothing).
    ops: Vec<KeyOp>,
    /// Every state the key may end in when nothing was lost.
    acceptable: Vec<State>,
    /// The last acknowledged operation.
    last_ok: Option<u64>,
}

impl Expect {
    /// Fold the operations on one key, in op-id order (which is the owning connection's order).
    pub(crate) fn from_ops(ops: &[KeyOp]) -> Expect {
        let ops: Vec<KeyOp> = ops
            .iter()
            .copied()
            .filter(|(_, _, o)| *o != Outcome::Failed)
            .collect();
        let mut acceptable = vec![State::Absent];
        for &op in &ops {
            acceptable = step(&acceptable, op);
        }
        let last_ok = ops
            .iter()
            .rev()
            .find(|(_, _, o)| *o == Outcome::Ok)
            .map(|(op, _, _)| *op);
        Expect {
            ops,
            acceptable,
            last_ok,
        }
    }

    /// Judge the state a node holds.
    pub(crate) fn classify(&self, actual: State) -> Class {
        let has_unknown = self.ops.iter().any(|(_, _, o)| *o == Outcome::Unknown);
        if !has_unknown && self.acceptable.contains(&actual) {
            return Class::Explained {
                lost: Vec::new(),
                unknown: Vec::new(),
            };
        }
        // The states possible after each prefix of the history.
        let mut fwd: Vec<Vec<State>> = Vec::with_capacity(self.ops.len() + 1);
        fwd.push(vec![State::Absent]);
        for (i, &op) in self.ops.iter().enumerate() {
            let next = step(&fwd[i], op);
            fwd.push(next);
        }
        // The longest prefix that explains the state (the empty one explains an absent row).
        let Some(p) = (0..fwd.len()).rev().find(|&p| fwd[p].contains(&actual)) else {
            let op = match actual {
                State::Present(x) => x,
                State::Absent => unreachable!("the empty prefix explains an absent row"),
            };
            return Class::Unexplained { op };
        };
        // Walking back from it: the states at each position from which the prefix can end in
        // `actual`, and whether each unknown-outcome operation was needed, ruled out, or either.
        let mut unknown = Vec::new();
        let mut reach = vec![actual];
        for i in (0..p).rev() {
            let (op, kind, outcome) = self.ops[i];
            let applied = |s: &State| reach.contains(&apply(*s, kind, op));
            let skipped = |s: &State| outcome == Outcome::Unknown && reach.contains(s);
            if outcome == Outcome::Unknown {
                let can_apply = fwd[i].iter().any(applied);
                let can_skip = fwd[i].iter().any(skipped);
                unknown.push((
                    i,
                    match (can_apply, can_skip) {
                        (true, false) => Some(true),
                        (false, true) => Some(false),
                        _ => None,
                    },
                ));
            }
            reach = fwd[i]
                .iter()
                .copied()
                .filter(|s| applied(s) || skipped(s))
                .collect();
        }
        unknown.reverse();
        let mut lost = Vec::new();
        for (i, &(_, _, outcome)) in self.ops.iter().enumerate().skip(p) {
            match outcome {
                Outcome::Ok => lost.push(i),
                Outcome::Unknown => unknown.push((i, Some(false))),
                Outcome::Failed => {}
            }
        }
        Class::Explained { lost, unknown }
    }
}

/// How one key compares with the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    /// A prefix of the key's history explains the state. `lost`: positions (in the history
    /// without failed operations) of the acknowledged operations after it, empty when nothing
    /// is missing; `unknown`: the unknown-outcome operations' positions, each with whether it
    /// was applied (None: the state cannot tell).
    Explained {
        lost: Vec<usize>,
        unknown: Vec<(usize, Option<bool>)>,
    },
    /// The row holds op id `op`, which no acknowledged or unknown operation on this key
    /// explains.
    Unexplained { op: u64 },
}

struct Slot<'a> {
    expect: Expect,
    /// The ledger entries behind `expect.ops`, position for position.
    entries: Vec<&'a LedgerEntry>,
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

/// Stream every `(key, op_id)` of table `t` through `f`.
async fn scan_table(
    client: &Client,
    t: BuiltinTable,
    node_name: &str,
    mut f: impl FnMut(&str, u64),
) -> Result<()> {
    let step = || format!("reading the workload's rows of {t}");
    let rows = client
        .query_raw(scan_sql(t), std::iter::empty::<i64>())
        .await
        .step_with(step)
        .on_node(node_name)?;
    pin_mut!(rows);
    let mut buf = String::new();
    while let Some(row) = rows.next().await {
        let row = row.step_with(step).on_node(node_name)?;
        let op = scanned_key(t, &row, &mut buf)
            .step_with(step)
            .on_node(node_name)?;
        f(&buf, op);
    }
    Ok(())
}

/// Findings before they are capped, so samples come out in a stable order.
#[derive(Default)]
struct Findings<'a> {
    /// Keys lacking a write: (table, last acknowledged op, rendered).
    lost_keys: Vec<(BuiltinTable, u64, String)>,
    /// Lost writes, with the op id the node's row carries.
    lost: Vec<(&'a LedgerEntry, Option<u64>)>,
    unexplained: Vec<(BuiltinTable, u64, String)>,
    /// Unknown-outcome writes: applied?, the node's row op id.
    unknown: Vec<(&'a LedgerEntry, Option<bool>, Option<u64>)>,
    unknown_applied: u64,
    unknown_not_applied: u64,
}

impl<'a> Findings<'a> {
    fn add(&mut self, t: BuiltinTable, key: &str, slot: &Slot<'a>, actual: State) {
        let found = match actual {
            State::Absent => None,
            State::Present(x) => Some(x),
        };
        match slot.expect.classify(actual) {
            Class::Explained { lost, unknown } => {
                if !lost.is_empty() {
                    let last = slot.expect.last_ok.unwrap_or_default();
                    self.lost_keys
                        .push((t, last, format!("{t} {key} op={last}")));
                }
                self.lost
                    .extend(lost.into_iter().map(|i| (slot.entries[i], found)));
                for (i, applied) in unknown {
                    self.unknown_outcome(slot.entries[i], applied, found);
                }
            }
            Class::Unexplained { op } => {
                self.unexplained.push((t, op, format!("{t} {key} op={op}")));
                // Whatever happened to this key, its unknown outcomes cannot be told.
                for (i, (_, _, o)) in slot.expect.ops.iter().enumerate() {
                    if *o == Outcome::Unknown {
                        self.unknown_outcome(slot.entries[i], None, found);
                    }
                }
            }
        }
    }

    fn unknown_outcome(&mut self, e: &'a LedgerEntry, applied: Option<bool>, found: Option<u64>) {
        match applied {
            Some(true) => self.unknown_applied += 1,
            Some(false) => self.unknown_not_applied += 1,
            None => {}
        }
        self.unknown.push((e, applied, found));
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

/// What was written to `node` up to `until_ms` (on the ledger's timeline): until when it was
/// handling a write, whatever the outcome (`until_ms` itself when a write was still in flight
/// then), and the last write it acknowledged (whether or not any node has it).
pub fn last_writes(
    entries: &[LedgerEntry],
    node: &str,
    until_ms: i64,
) -> (Option<u64>, Option<WriteRef>) {
    let Ok(until_ms) = u64::try_from(until_ms) else {
        return (None, None);
    };
    let until_us = until_ms.saturating_mul(1000);
    let to_node = || entries.iter().filter(|e| e.node == node);
    let busy = to_node()
        .filter(|e| e.sent_us <= until_us)
        .map(|e| e.done_us.min(until_us))
        .max();
    let acknowledged = to_node()
        .filter(|e| e.outcome == Outcome::Ok && e.done_us <= until_us)
        .max_by_key(|e| e.done_us)
        .map(|e| write_ref(e, None, None));
    (busy, acknowledged)
}

fn write_ref(e: &LedgerEntry, applied: Option<bool>, found_op: Option<u64>) -> WriteRef {
    WriteRef {
        op: e.op,
        table: e.table.clone(),
        key: e.key.clone(),
        kind: e.kind,
        node: e.node.clone(),
        sent_us: e.sent_us,
        done_us: e.done_us,
        applied,
        found_op,
    }
}

/// The ledger laid out for judging one node's rows.
struct Judge<'a> {
    slots: [HashMap<&'a str, Slot<'a>>; 5],
    /// Invoice inserts with an unknown outcome whose id never came back: matched by op id
    /// instead of key. The flag: a row with that op id was found.
    orphans: HashMap<(BuiltinTable, u64), (&'a LedgerEntry, bool)>,
    tables: BTreeSet<BuiltinTable>,
    keys_checked: u64,
    reissued_keys: u64,
    f: Findings<'a>,
}

impl<'a> Judge<'a> {
    fn new(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> Result<Judge<'a>> {
        let mut ops: [HashMap<&'a str, Vec<&'a LedgerEntry>>; 5] = Default::default();
        let mut orphans = HashMap::new();
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
                    orphans.insert((t, e.op), (e, false));
                }
                continue;
            }
            ops[t.index()].entry(e.key.as_str()).or_default().push(e);
        }
        let mut slots: [HashMap<&str, Slot>; 5] = Default::default();
        let mut keys_checked = 0u64;
        let mut reissued_keys = 0u64;
        for (i, per_table) in ops.iter_mut().enumerate() {
            for (key, mut list) in per_table.drain() {
                list.sort_unstable_by_key(|e| e.op);
                list.retain(|e| e.outcome != Outcome::Failed);
                // One connection owns each key, except an invoice id the sequence of a
                // promoted standby issued again (inserted on both nodes): two histories, of
                // which the node holds the later one's, written by whichever connections had
                // the id — in the order they were done.
                let inserts = || list.iter().copied().filter(|e| e.kind == OpKind::Insert);
                if let Some(last) = inserts().max_by_key(|e| e.done_us)
                    && inserts().any(|e| e.node != last.node)
                {
                    list.retain(|e| e.node == last.node);
                    list.sort_by_key(|e| (e.done_us, e.op));
                    reissued_keys += 1;
                }
                let kops: Vec<KeyOp> = list.iter().map(|e| (e.op, e.kind, e.outcome)).collect();
                let expect = Expect::from_ops(&kops);
                keys_checked += u64::from(expect.last_ok.is_some());
                slots[i].insert(
                    key,
                    Slot {
                        expect,
                        entries: list,
                        seen: false,
                    },
                );
            }
        }
        Ok(Judge {
            slots,
            orphans,
            tables,
            keys_checked,
            reissued_keys,
            f: Findings::default(),
        })
    }

    /// One row of table `t` on the node.
    fn row(&mut self, t: BuiltinTable, key: &str, op: u64) {
        // An insert with an unknown outcome never learnt its key, but op ids are unique: a row
        // written by it is its own, even under a key whose history belongs to other writes (an
        // id a promoted standby issued again, while A's write of that id was lost).
        if let Some((_, found)) = self.orphans.get_mut(&(t, op))
            && !*found
        {
            *found = true;
            return;
        }
        match self.slots[t.index()].get_mut(key) {
            Some(slot) if slot.seen => {
                self.f
                    .unexplained
                    .push((t, op, format!("{t} {key} op={op} (duplicate row)")))
            }
            Some(slot) => {
                slot.seen = true;
                let slot = &self.slots[t.index()][key];
                self.f.add(t, key, slot, State::Present(op));
            }
            None => self
                .f
                .unexplained
                .push((t, op, format!("{t} {key} op={op}"))),
        }
    }

    /// Table `t` was read to the end: the keys not seen are absent.
    fn table_done(&mut self, t: BuiltinTable) {
        let slots = &self.slots[t.index()];
        for (key, slot) in slots.iter().filter(|(_, s)| !s.seen) {
            self.f.add(t, key, slot, State::Absent);
        }
    }

    fn finish(self, node_name: &str, cap: usize) -> LedgerJudgement {
        let mut f = self.f;
        for ((_, op), (e, found)) in self.orphans {
            let applied = found.then_some(op);
            f.unknown_outcome(e, Some(found), applied);
        }
        let lost = sample(f.lost_keys, cap);
        let unexplained = sample(f.unexplained, cap);
        let verdict = if lost.is_empty() && unexplained.is_empty() {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
        let lost_writes = f.lost.len() as u64;
        let unknown_total = f.unknown.len() as u64;
        f.lost.sort_by_key(|(e, _)| (e.done_us, e.op));
        f.unknown.sort_by_key(|(e, _, _)| (e.sent_us, e.op));
        tracing::info!(
            "ledger check on {node_name}: {verdict} ({} keys, {lost_writes} acknowledged writes \
             lost on {} keys, {} unexplained, unknown outcomes {} applied / {} not applied / {} \
             undetermined)",
            self.keys_checked,
            lost.count,
            unexplained.count,
            f.unknown_applied,
            f.unknown_not_applied,
            unknown_total - f.unknown_applied - f.unknown_not_applied
        );
        LedgerJudgement {
            check: LedgerCheck {
                node: node_name.to_string(),
                verdict,
                keys_checked: self.keys_checked,
                lost,
                unknown_applied: f.unknown_applied,
                unknown_not_applied: f.unknown_not_applied,
                unexplained,
                reissued_keys: self.reissued_keys,
            },
            lost_writes,
            lost: f
                .lost
                .iter()
                .take(cap)
                .map(|(e, found)| write_ref(e, Some(false), *found))
                .collect(),
            unknown_total,
            unknown: f
                .unknown
                .iter()
                .take(cap)
                .map(|(e, applied, found)| write_ref(e, *applied, *found))
                .collect(),
        }
    }
}

/// Check `node_name`'s data (reached through `conn`, which must name the workload's database)
/// against the ledger `entries` (seeded rows included): every key's `(key, op_id)` must be one
/// of the states the ledger allows. `cap` bounds the keys listed per class. Only tables the
/// ledger names are scanned. The per-key summary of [`judge_ledger`].
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
    Ok(judge_ledger(entries, node_name, conn, cap).await?.check)
}

/// [`check_ledger`], write by write: also every acknowledged write the node lacks and every
/// unknown-outcome write with what became of it (`cap` of each listed, counts exact).
///
/// # Errors
/// As [`check_ledger`].
pub async fn judge_ledger(
    entries: &[LedgerEntry],
    node_name: &str,
    conn: &ConnInfo,
    cap: usize,
) -> Result<LedgerJudgement> {
    let mut judge = Judge::new(entries)?;
    let client = conn
        .connect(crate::node::CONNECT_TIMEOUT)
        .await
        .on_node(node_name)?;
    for t in judge.tables.clone() {
        scan_table(&client, t, node_name, |key, op| judge.row(t, key, op))
            .await
            .step_with(|| format!("checking the ledger against {t}"))?;
        judge.table_done(t);
    }
    Ok(judge.finish(node_name, cap))
}

/// Judge rows captured earlier ([`RowSnapshot`]) against the ledger `entries` — typically the
/// entries of writes sent before the snapshot was taken. As [`judge_ledger`] otherwise.
///
/// # Errors
/// Usage error when the ledger names a table that is not a built-in workload table; internal
/// error when it names one the snapshot did not read.
pub fn judge_rows<'a>(
    entries: impl IntoIterator<Item = &'a LedgerEntry>,
    rows: &RowSnapshot,
    cap: usize,
) -> Result<LedgerJudgement> {
    let mut judge = Judge::new(entries)?;
    for t in judge.tables.clone() {
        let Some((_, table_rows)) = rows.tables.iter().find(|(x, _)| *x == t) else {
            return Err(Error::internal(format!(
                "the rows captured on {} do not include {t}, which the ledger names",
                rows.node
            )));
        };
        for (key, op) in table_rows {
            judge.row(t, key, *op);
        }
        judge.table_done(t);
    }
    Ok(judge.finish(&rows.node, cap))
}

/// A node's workload rows — `(key, op_id)` of every row of some built-in tables — as of one
/// instant, to judge against the ledger later.
#[derive(Clone, PartialEq, Eq)]
pub struct RowSnapshot {
    node: String,
    tables: Vec<(BuiltinTable, Vec<KeyRow>)>,
}

/// One scanned row: its key as the ledger renders it, and its op id.
type KeyRow = (Box<str>, u64);

impl RowSnapshot {
    /// The node the rows were read on.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Rows read, over all tables.
    pub fn rows(&self) -> usize {
        self.tables.iter().map(|(_, r)| r.len()).sum()
    }
}

impl std::fmt::Debug for RowSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RowSnapshot({}: {} rows in {} tables)",
            self.node,
            self.rows(),
            self.tables.len()
        )
    }
}

/// A [`RowSnapshot`] fixed on a node but not read yet: a read-only repeatable-read transaction
/// whose snapshot was taken when it was pinned, so reading it later sees the node as it was
/// then, whatever has been written since.
pub struct PinnedRows {
    client: Client,
    node: String,
}

impl PinnedRows {
    /// Take the snapshot on `client` (connected to the workload's database on `node_name`):
    /// one round trip.
    ///
    /// # Errors
    /// Database error naming the node.
    pub async fn pin(client: Client, node_name: &str) -> Result<PinnedRows> {
        // The first query of a repeatable-read transaction takes its snapshot.
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT 1")
            .await
            .step("pinning a snapshot of the workload's rows")
            .on_node(node_name)?;
        Ok(PinnedRows {
            client,
            node: node_name.to_string(),
        })
    }

    /// Read `tables` as of the pinned snapshot, and end the transaction.
    ///
    /// # Errors
    /// Database error naming the node and table.
    pub async fn read(self, tables: &[BuiltinTable]) -> Result<RowSnapshot> {
        let mut out = RowSnapshot {
            node: self.node,
            tables: Vec::new(),
        };
        let mut seen = BTreeSet::new();
        for &t in tables {
            if !seen.insert(t) {
                continue;
            }
            let mut rows = Vec::new();
            scan_table(&self.client, t, &out.node, |key, op| {
                rows.push((Box::from(key), op))
            })
            .await?;
            out.tables.push((t, rows));
        }
        // Read only: ending it changes nothing, and dropping the client would end it too.
        let _ = self.client.batch_execute("COMMIT").await;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OpKind::*;
    use Outcome::{Failed, Ok as Acked, Unknown};
    use State::*;

    fn fine() -> Class {
        explained(&[], &[])
    }

    fn explained(lost: &[usize], unknown: &[(usize, Option<bool>)]) -> Class {
        Class::Explained {
            lost: lost.to_vec(),
            unknown: unknown.to_vec(),
        }
    }

    #[test]
    fn acknowledged_writes_fix_the_state() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Acked)]);
        assert_eq!(e.acceptable, vec![Present(2)]);
        assert_eq!(e.classify(Present(2)), fine());
        assert_eq!(e.classify(Present(1)), explained(&[1], &[]));
        assert_eq!(e.classify(Absent), explained(&[0, 1], &[]));
        assert_eq!(e.classify(Present(77)), Class::Unexplained { op: 77 });
    }

    #[test]
    fn every_acknowledged_write_after_the_state_held_is_lost() {
        // Three updates a acknowledged after the insert b holds: three lost writes, one key.
        let e = Expect::from_ops(&[
            (1, Insert, Acked),
            (2, Update, Acked),
            (3, Update, Failed),
            (4, Update, Acked),
            (5, Delete, Acked),
        ]);
        assert_eq!(e.classify(Present(1)), explained(&[1, 2, 3], &[]));
        assert_eq!(e.classify(Present(4)), explained(&[3], &[]));
        assert_eq!(e.classify(Absent), fine());
    }

    #[test]
    fn an_acknowledged_delete_must_stick() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Acked), (3, Delete, Acked)]);
        assert_eq!(e.acceptable, vec![Absent]);
        assert_eq!(e.classify(Absent), fine());
        assert_eq!(e.classify(Present(2)), explained(&[2], &[]));
    }

    #[test]
    fn failed_writes_change_nothing() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Failed), (3, Delete, Failed)]);
        assert_eq!(e.acceptable, vec![Present(1)]);
        assert_eq!(e.classify(Present(1)), fine());
        // A failed write showing up is something the ledger cannot explain.
        assert_eq!(e.classify(Present(2)), Class::Unexplained { op: 2 });
        let never = Expect::from_ops(&[(1, Insert, Failed)]);
        assert_eq!(never.acceptable, vec![Absent]);
        assert_eq!(never.last_ok, None);
        assert_eq!(never.classify(Absent), fine());
        assert_eq!(never.classify(Present(1)), Class::Unexplained { op: 1 });
    }

    #[test]
    fn a_trailing_unknown_may_or_may_not_have_applied() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Unknown)]);
        assert_eq!(e.acceptable, vec![Present(1), Present(2)]);
        assert_eq!(e.classify(Present(2)), explained(&[], &[(1, Some(true))]));
        assert_eq!(e.classify(Present(1)), explained(&[], &[(1, Some(false))]));
        // Lost the insert: the update in flight after it cannot have applied either.
        assert_eq!(e.classify(Absent), explained(&[0], &[(1, Some(false))]));

        let del = Expect::from_ops(&[(1, Insert, Acked), (2, Delete, Unknown)]);
        assert_eq!(del.acceptable, vec![Absent, Present(1)]);
        assert_eq!(del.classify(Absent), explained(&[], &[(1, Some(true))]));
        assert_eq!(
            del.classify(Present(1)),
            explained(&[], &[(1, Some(false))])
        );

        let ins = Expect::from_ops(&[(5, Insert, Unknown)]);
        assert_eq!(ins.acceptable, vec![Absent, Present(5)]);
        assert_eq!(ins.classify(Present(5)), explained(&[], &[(0, Some(true))]));
        assert_eq!(ins.classify(Absent), explained(&[], &[(0, Some(false))]));
    }

    #[test]
    fn an_unknown_followed_by_an_acknowledged_write_is_settled_by_it() {
        let e = Expect::from_ops(&[(1, Insert, Acked), (2, Update, Unknown), (3, Update, Acked)]);
        assert_eq!(e.acceptable, vec![Present(3)]);
        // The later update covers it: whether it applied cannot be told.
        assert_eq!(e.classify(Present(3)), explained(&[], &[(1, None)]));
        assert_eq!(e.classify(Present(2)), explained(&[2], &[(1, Some(true))]));
        assert_eq!(e.classify(Present(1)), explained(&[2], &[(1, Some(false))]));
    }

    #[test]
    fn seeded_rows_count_as_acknowledged_inserts() {
        let seed_op = BuiltinTable::Accounts.seed_op(4);
        let e = Expect::from_ops(&[(seed_op, Insert, Acked)]);
        assert_eq!(e.classify(Present(seed_op)), fine());
        assert_eq!(e.classify(Absent), explained(&[0], &[]));
    }

    fn entry(op: u64, key: &str, kind: OpKind, outcome: Outcome, node: &str) -> LedgerEntry {
        LedgerEntry {
            op,
            conn: 0,
            table: "rehearse.accounts".into(),
            key: key.into(),
            kind,
            outcome,
            sent_us: op * 10,
            done_us: op * 10 + 5,
            node: node.into(),
            error: None,
        }
    }

    #[test]
    fn the_last_writes_to_a_node_count_sent_and_acknowledged_apart() {
        // Op n is sent at n*10 µs and answered 5 µs later; the kill is at 1 ms.
        let mut entries = vec![
            entry(10, "1", OpKind::Update, Outcome::Ok, "a"),
            entry(40, "2", OpKind::Update, Outcome::Ok, "a"),
            entry(90, "3", OpKind::Update, Outcome::Unknown, "a"),
            entry(95, "4", OpKind::Update, Outcome::Ok, "b"),
            entry(200, "5", OpKind::Update, Outcome::Ok, "a"),
        ];
        let (busy, acked) = last_writes(&entries, "a", 1);
        assert_eq!(busy, Some(905));
        assert_eq!(acked.map(|w| (w.op, w.done_us)), Some((40, 405)));
        // A commit still waiting when the node died: busy until the end.
        entries[2].done_us = 1_300;
        assert_eq!(last_writes(&entries, "a", 1).0, Some(1_000));
        assert_eq!(last_writes(&entries, "c", 1), (None, None));
    }

    fn rows(node: &str, accounts: &[(&str, u64)]) -> RowSnapshot {
        RowSnapshot {
            node: node.into(),
            tables: vec![(
                BuiltinTable::Accounts,
                accounts
                    .iter()
                    .map(|(k, op)| (Box::from(*k), *op))
                    .collect(),
            )],
        }
    }

    #[test]
    fn lost_writes_are_listed_one_by_one_and_keys_once() {
        let ledger = [
            entry(1, "1", Insert, Acked, "a"),
            entry(2, "1", Update, Acked, "a"),
            entry(3, "2", Insert, Acked, "a"),
            entry(4, "1", Update, Acked, "a"),
            entry(5, "2", Delete, Acked, "a"),
            entry(6, "3", Insert, Acked, "a"),
            entry(7, "3", Update, Unknown, "a"),
            entry(8, "4", Insert, Unknown, "a"),
            entry(9, "?", Insert, Unknown, "a"),
            entry(10, "?", Insert, Unknown, "a"),
        ];
        // b got the first insert of key 1, key 2 undeleted, key 3 with its unknown update,
        // not key 4, and invoice-like orphan 9 (under a key the ledger never learnt).
        let snap = rows("b", &[("1", 1), ("2", 3), ("3", 7), ("77", 9)]);
        let j = judge_rows(&ledger, &snap, 10).unwrap();
        assert_eq!(j.check.verdict, Verdict::Invalid);
        assert_eq!(j.lost_writes, 3);
        assert_eq!(j.check.lost.count, 2, "keys");
        assert_eq!(
            j.check.lost.keys,
            ["rehearse.accounts 1 op=4", "rehearse.accounts 2 op=5"]
        );
        let lost: Vec<_> = j
            .lost
            .iter()
            .map(|w| (w.op, w.key.as_str(), w.kind, w.applied, w.found_op))
            .collect();
        assert_eq!(
            lost,
            [
                (2, "1", Update, Some(false), Some(1)),
                (4, "1", Update, Some(false), Some(1)),
                (5, "2", Delete, Some(false), Some(3)),
            ]
        );
        assert_eq!(j.lost[0].done_us, 25);
        assert_eq!(j.unknown_total, 4);
        let unknown: Vec<_> = j.unknown.iter().map(|w| (w.op, w.applied)).collect();
        assert_eq!(
            unknown,
            [
                (7, Some(true)),
                (8, Some(false)),
                (9, Some(true)),
                (10, Some(false))
            ]
        );
        assert_eq!(
            (j.check.unknown_applied, j.check.unknown_not_applied),
            (2, 2)
        );
        assert_eq!(j.unknown_undetermined(), 0);
        assert!(j.check.unexplained.is_empty(), "{:?}", j.check.unexplained);

        // The cap bounds the lists, never the counts.
        let j = judge_rows(&ledger, &snap, 1).unwrap();
        assert_eq!((j.lost_writes, j.lost.len()), (3, 1));
        assert_eq!((j.unknown_total, j.unknown.len()), (4, 1));
    }

    #[test]
    fn an_unknown_insert_is_found_under_a_key_with_another_history() {
        // a acknowledged id 7 and lost it; promoted b issued 7 again to an insert whose outcome
        // is unknown (the ledger has no key for it). b's row is that insert's, not an
        // unexplained version of a's key 7.
        let ledger = [
            entry(1, "7", Insert, Acked, "a"),
            entry(2, "?", Insert, Unknown, "b"),
        ];
        let j = judge_rows(&ledger, &rows("b", &[("7", 2)]), 10).unwrap();
        assert!(j.check.unexplained.is_empty(), "{:?}", j.check.unexplained);
        assert_eq!(j.lost_writes, 1);
        assert_eq!(j.lost[0].op, 1);
        let unknown: Vec<_> = j.unknown.iter().map(|w| (w.op, w.applied)).collect();
        assert_eq!(unknown, [(2, Some(true))]);
    }

    #[test]
    fn writes_sent_after_the_snapshot_are_left_out_by_the_caller() {
        // a lost update 2; b then updated the key itself (op 3): b's final state looks fine,
        // b's state before its own writes does not.
        let ledger = [
            entry(1, "1", Insert, Acked, "a"),
            entry(2, "1", Update, Acked, "a"),
            entry(3, "1", Update, Acked, "b"),
        ];
        let end = judge_rows(&ledger, &rows("b", &[("1", 3)]), 10).unwrap();
        assert_eq!(end.lost_writes, 0, "a final state hides the loss");
        let before = ledger.iter().filter(|e| e.node != "b");
        let at_promotion = judge_rows(before, &rows("b", &[("1", 1)]), 10).unwrap();
        assert_eq!(at_promotion.lost_writes, 1);
        assert_eq!(at_promotion.lost[0].op, 2);
    }

    #[test]
    fn an_id_issued_again_by_a_promoted_standby_is_judged_by_its_second_history() {
        // a inserted invoice 7 (conn 0); b, promoted without the sequence's last WAL, issued 7
        // again (conn 1); conn 0, now on b, updated "its" 7 — b's row.
        let at = |op: u64, conn: u32, key_time: u64, kind, node: &str| LedgerEntry {
            conn,
            sent_us: key_time,
            done_us: key_time + 5,
            table: "rehearse.invoices".into(),
            ..entry(op, "7", kind, Acked, node)
        };
        let ledger = [
            at(1 << 40, 0, 100, Insert, "a"),
            at((2 << 40) | 1, 1, 900, Insert, "b"),
            at((1 << 40) | 1, 0, 950, Update, "b"),
        ];
        let invoices = |op: u64| RowSnapshot {
            node: "b".into(),
            tables: vec![(BuiltinTable::Invoices, vec![(Box::from("7"), op)])],
        };
        let j = judge_rows(&ledger, &invoices((1 << 40) | 1), 10).unwrap();
        assert_eq!(j.check.reissued_keys, 1);
        assert!(j.check.unexplained.is_empty(), "{:?}", j.check.unexplained);
        assert_eq!(j.lost_writes, 0);
        // b's own insert without the update after it: that update is lost.
        let j = judge_rows(&ledger, &invoices((2 << 40) | 1), 10).unwrap();
        assert_eq!(j.lost_writes, 1);
        assert_eq!(j.lost[0].op, (1 << 40) | 1);
    }

    #[test]
    fn a_table_the_snapshot_did_not_read_is_an_error() {
        let mut e = entry(1, "1", Insert, Acked, "a");
        e.table = "rehearse.invoices".into();
        let err = judge_rows([&e], &rows("b", &[]), 10).unwrap_err();
        assert!(err.to_string().contains("rehearse.invoices"), "{err}");
    }
}
