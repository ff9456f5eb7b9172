//! The ledger file: one JSON line per operation (ledger.jsonl).
//!
//! Connections hand compact records to a writer thread over a bounded channel; the writer does
//! the text rendering and the file I/O, so the hot loop neither formats keys nor waits on disk.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::model::{LedgerEntry, OpKind, Outcome};
use super::table::{BuiltinTable, Key};
use crate::error::{Error, Result, io_error};

/// Records queued between connections and the writer before senders wait.
const QUEUE: usize = 64 * 1024;

/// One operation as a connection reports it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub op: u64,
    pub conn: u32,
    pub table: BuiltinTable,
    pub key: Key,
    pub kind: OpKind,
    pub outcome: Outcome,
    pub sent_us: u64,
    pub done_us: u64,
    pub node: Arc<str>,
    pub error: Option<String>,
}

/// The on-disk shape of [`LedgerEntry`], borrowed so that no strings are built per line.
#[derive(serde::Serialize)]
struct Line<'a> {
    op: u64,
    conn: u32,
    table: &'static str,
    #[serde(serialize_with = "as_text")]
    key: &'a Key,
    kind: OpKind,
    outcome: Outcome,
    sent_us: u64,
    done_us: u64,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn as_text<S: serde::Serializer>(k: &&Key, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(*k)
}

fn write_record(w: &mut impl Write, r: &Record) -> std::io::Result<()> {
    let line = Line {
        op: r.op,
        conn: r.conn,
        table: r.table.name(),
        key: &r.key,
        kind: r.kind,
        outcome: r.outcome,
        sent_us: r.sent_us,
        done_us: r.done_us,
        node: &r.node,
        error: r.error.as_deref(),
    };
    serde_json::to_writer(&mut *w, &line)?;
    w.write_all(b"\n")
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error("cannot open ledger", path, e))
}

/// The sending side handed to connections, and the writer to join at the end.
pub(crate) struct LedgerWriter {
    pub tx: mpsc::Sender<Record>,
    handle: tokio::task::JoinHandle<Result<u64>>,
}

impl LedgerWriter {
    /// Start a writer appending to `path` (created if missing).
    pub(crate) fn start(path: &Path) -> Result<LedgerWriter> {
        let file = open_append(path)?;
        let (tx, mut rx) = mpsc::channel::<Record>(QUEUE);
        let path: PathBuf = path.to_path_buf();
        let handle = tokio::task::spawn_blocking(move || {
            let mut w = BufWriter::with_capacity(256 * 1024, file);
            let mut lines = 0u64;
            let fail = |e| io_error("cannot write ledger", &path, e);
            while let Some(r) = rx.blocking_recv() {
                write_record(&mut w, &r).map_err(fail)?;
                lines += 1;
                // Flush when the queue runs dry: batches under load, fresh on disk when idle.
                if rx.is_empty() {
                    w.flush().map_err(fail)?;
                }
            }
            w.flush().map_err(fail)?;
            Ok(lines)
        });
        Ok(LedgerWriter { tx, handle })
    }

    /// Wait until every record sent before all senders were dropped is on disk.
    pub(crate) async fn finish(self) -> Result<u64> {
        drop(self.tx);
        self.handle
            .await
            .map_err(|e| Error::internal(format!("ledger writer panicked: {e}")))?
    }
}

/// Append entries (e.g. the seeded rows from [`seed_initial`](super::seed_initial)) to the
/// ledger at `path`, creating it if needed.
///
/// # Errors
/// Environment error naming the file.
pub fn append_ledger(path: &Path, entries: &[LedgerEntry]) -> Result<()> {
    let mut w = BufWriter::new(open_append(path)?);
    let fail = |e| io_error("cannot write ledger", path, e);
    for e in entries {
        serde_json::to_writer(&mut w, e)
            .map_err(|e| io_error("cannot write ledger", path, e.into()))?;
        w.write_all(b"\n").map_err(fail)?;
    }
    w.flush().map_err(fail)
}

/// Read every entry of the ledger at `path`, in file order.
///
/// # Errors
/// Environment error naming the file; usage error naming the line that is not a ledger entry.
pub fn read_ledger(path: &Path) -> Result<Vec<LedgerEntry>> {
    let f = File::open(path).map_err(|e| io_error("cannot open ledger", path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| io_error("cannot read ledger", path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: LedgerEntry = serde_json::from_str(&line).map_err(|e| {
            Error::usage(format!(
                "ledger {} line {}: not a ledger entry",
                path.display(),
                i + 1
            ))
            .with_source(e)
        })?;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_read_back_as_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let seeded = LedgerEntry {
            op: BuiltinTable::Events.seed_op(1),
            conn: super::super::table::SEED_CONN,
            table: "rehearse.events".into(),
            key: "(0,1)".into(),
            kind: OpKind::Insert,
            outcome: Outcome::Ok,
            sent_us: 0,
            done_us: 0,
            node: "initial".into(),
            error: None,
        };
        append_ledger(&path, std::slice::from_ref(&seeded)).unwrap();
        let w = LedgerWriter::start(&path).unwrap();
        let node: Arc<str> = Arc::from("a");
        let recs = [
            Record {
                op: 1 << 40 | 1,
                conn: 0,
                table: BuiltinTable::OrderLines,
                key: Key::Order {
                    region: 2,
                    owner: 0,
                    n: 1,
                    line: 3,
                },
                kind: OpKind::Insert,
                outcome: Outcome::Ok,
                sent_us: 10,
                done_us: 20,
                node: node.clone(),
                error: None,
            },
            Record {
                op: 1 << 40 | 2,
                conn: 0,
                table: BuiltinTable::Invoices,
                key: Key::Unassigned,
                kind: OpKind::Insert,
                outcome: Outcome::Unknown,
                sent_us: 30,
                done_us: 40,
                node,
                error: Some("connection closed \"x\"".into()),
            },
        ];
        for r in &recs {
            w.tx.send(r.clone()).await.unwrap();
        }
        assert_eq!(w.finish().await.unwrap(), 2);
        let back = read_ledger(&path).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], seeded);
        assert_eq!(back[1].table, "rehearse.order_lines");
        assert_eq!(back[1].key, "(ap,0-1,3)");
        assert_eq!(back[1].error, None);
        assert_eq!(back[2].key, "?");
        assert_eq!(back[2].outcome, Outcome::Unknown);
        assert_eq!(back[2].error.as_deref(), Some("connection closed \"x\""));
        assert_eq!(
            (back[2].sent_us, back[2].done_us, back[2].node.as_str()),
            (30, 40, "a")
        );
    }

    #[test]
    fn a_broken_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        std::fs::write(&path, "{\"op\":1}\n").unwrap();
        let err = read_ledger(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
