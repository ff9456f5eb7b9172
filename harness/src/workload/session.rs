//! One workload connection's session: its prepared statements, how one planned operation is
//! executed, and how the result is judged (ok, failed, unknown).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::error::Severity;
use tokio_postgres::{Client, Statement};

use super::config::{Target, WorkloadConfig};
use super::model::{OpKind, Outcome};
use super::ops::{NAMES, Plan, Settled, TextPool, Values};
use super::table::{BuiltinTable, Key, OrderNo, REGIONS};
use crate::error::{Result, ResultExt};

/// Statements of one table, prepared once per session.
struct TableStmts {
    insert: Statement,
    update: Statement,
    /// Documents only: the update that also rewrites the large content.
    update_content: Option<Statement>,
    delete: Statement,
}

fn sql(table: BuiltinTable) -> [&'static str; 4] {
    match table {
        BuiltinTable::Accounts => [
            "INSERT INTO rehearse.accounts (id, owner, balance, op_id, updated_at) \
             VALUES ($1, $2, $3::int8 / 100.0, $4, now())",
            "UPDATE rehearse.accounts SET balance = $2::int8 / 100.0, op_id = $3, updated_at = now() \
             WHERE id = $1",
            "",
            "DELETE FROM rehearse.accounts WHERE id = $1",
        ],
        BuiltinTable::OrderLines => [
            "INSERT INTO rehearse.order_lines (region, order_no, line, qty, note, op_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            "UPDATE rehearse.order_lines SET qty = $4, note = $5, op_id = $6 \
             WHERE region = $1 AND order_no = $2 AND line = $3",
            "",
            "DELETE FROM rehearse.order_lines WHERE region = $1 AND order_no = $2 AND line = $3",
        ],
        BuiltinTable::Documents => [
            "INSERT INTO rehearse.documents (id, body, blob, amount, happened_at, content, op_id) \
             VALUES ($1, $2::text::jsonb, $3, $4::int8 / 1000000.0, \
                     timestamptz 'epoch' + $5::int8 * interval '1 microsecond', $6, $7)",
            "UPDATE rehearse.documents SET body = $2::text::jsonb, amount = $3::int8 / 1000000.0, \
             happened_at = timestamptz 'epoch' + $4::int8 * interval '1 microsecond', op_id = $5 \
             WHERE id = $1",
            "UPDATE rehearse.documents SET body = $2::text::jsonb, amount = $3::int8 / 1000000.0, \
             happened_at = timestamptz 'epoch' + $4::int8 * interval '1 microsecond', op_id = $5, \
             content = $6 WHERE id = $1",
            "DELETE FROM rehearse.documents WHERE id = $1",
        ],
        BuiltinTable::Events => [
            "INSERT INTO rehearse.events (stream, seq, payload, op_id) VALUES ($1, $2, $3, $4)",
            "UPDATE rehearse.events SET payload = $3, op_id = $4 WHERE stream = $1 AND seq = $2",
            "",
            "DELETE FROM rehearse.events WHERE stream = $1 AND seq = $2",
        ],
        BuiltinTable::Invoices => [
            "INSERT INTO rehearse.invoices (customer, total, op_id) \
             VALUES ($1, $2::int8 / 100.0, $3) RETURNING id",
            "UPDATE rehearse.invoices SET total = $2::int8 / 100.0, op_id = $3 WHERE id = $1",
            "",
            "DELETE FROM rehearse.invoices WHERE id = $1",
        ],
    }
}

/// An open connection to the current target with its statements prepared.
pub(crate) struct Session {
    client: Client,
    stmts: [Option<TableStmts>; 5],
    /// Node name recorded in the ledger.
    pub node: Arc<str>,
}

impl Session {
    /// Connect to `target` and prepare every statement the configured tables need.
    pub(crate) async fn open(target: &Target, cfg: &WorkloadConfig) -> Result<Session> {
        let client = target
            .conn
            .with_db(&cfg.database)
            .connect(crate::node::CONNECT_TIMEOUT.min(cfg.op_timeout))
            .await
            .on_node(&target.node)?;
        let mut stmts: [Option<TableStmts>; 5] = Default::default();
        for &t in &cfg.tables {
            if stmts[t.index()].is_some() {
                continue;
            }
            let [ins, upd, upd_content, del] = sql(t);
            // Concurrent prepares share one round trip's worth of waiting on the pipeline.
            let (insert, update, delete) = futures::try_join!(
                client.prepare(ins),
                client.prepare(upd),
                client.prepare(del)
            )
            .step_with(|| format!("preparing the workload's statements on {t}"))
            .on_node(&target.node)?;
            let update_content = if upd_content.is_empty() {
                None
            } else {
                Some(
                    client
                        .prepare(upd_content)
                        .await
                        .step_with(|| format!("preparing the workload's statements on {t}"))
                        .on_node(&target.node)?,
                )
            };
            stmts[t.index()] = Some(TableStmts {
                insert,
                update,
                update_content,
                delete,
            });
        }
        Ok(Session {
            client,
            stmts,
            node: Arc::from(target.node.as_str()),
        })
    }

    /// Whether the connection is known to be gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Reusable text buffers, so the hot loop does not allocate for composite keys or JSON.
#[derive(Default)]
pub(crate) struct Scratch {
    order_no: String,
    body: String,
}

/// What the server answered.
enum Exec {
    Rows(u64),
    Assigned(i64),
}

enum ExecError {
    Pg(tokio_postgres::Error),
    /// The plan does not fit the table (a harness bug); nothing was sent.
    Mismatch,
}

impl From<tokio_postgres::Error> for ExecError {
    fn from(e: tokio_postgres::Error) -> Self {
        ExecError::Pg(e)
    }
}

async fn execute(
    s: &Session,
    plan: &Plan,
    pool: &TextPool,
    scratch: &mut Scratch,
) -> std::result::Result<Exec, ExecError> {
    let st = s.stmts[plan.table.index()]
        .as_ref()
        .ok_or(ExecError::Mismatch)?;
    let c = &s.client;
    let op = plan.op as i64;
    let rows = match (plan.key, plan.values, plan.kind) {
        (Key::Id(id), Values::Account { owner, cents }, OpKind::Insert) => {
            c.execute(&st.insert, &[&id, &NAMES[owner], &cents, &op])
                .await?
        }
        (Key::Id(id), Values::Account { cents, .. }, OpKind::Update)
        | (Key::Id(id), Values::Invoice { cents, .. }, OpKind::Update) => {
            c.execute(&st.update, &[&id, &cents, &op]).await?
        }
        (Key::Id(id), Values::None, OpKind::Delete) => c.execute(&st.delete, &[&id]).await?,
        (
            Key::Order {
                region,
                owner,
                n,
                line,
            },
            values,
            kind,
        ) => {
            scratch.order_no.clear();
            let _ = write!(scratch.order_no, "{}", OrderNo { owner, n });
            let region = REGIONS[region as usize % REGIONS.len()];
            let order_no = scratch.order_no.as_str();
            match (values, kind) {
                (Values::OrderLine { qty, note }, OpKind::Insert | OpKind::Update) => {
                    let stmt = if kind == OpKind::Insert {
                        &st.insert
                    } else {
                        &st.update
                    };
                    c.execute(
                        stmt,
                        &[&region, &order_no, &line, &qty, &pool.text(note), &op],
                    )
                    .await?
                }
                (Values::None, OpKind::Delete) => {
                    c.execute(&st.delete, &[&region, &order_no, &line]).await?
                }
                _ => return Err(ExecError::Mismatch),
            }
        }
        (
            Key::Id(id),
            Values::Document {
                tag,
                amount_micros,
                happened_us,
                blob,
                content,
            },
            kind,
        ) => {
            scratch.body.clear();
            let _ = write!(
                scratch.body,
                r#"{{"tag":{tag},"op":{},"kind":"{}"}}"#,
                plan.op,
                if kind == OpKind::Insert {
                    "created"
                } else {
                    "revised"
                }
            );
            let body = scratch.body.as_str();
            match (kind, content, st.update_content.as_ref()) {
                (OpKind::Insert, Some(content), _) => {
                    c.execute(
                        &st.insert,
                        &[
                            &id,
                            &body,
                            &pool.text(blob).as_bytes(),
                            &amount_micros,
                            &happened_us,
                            &pool.text(content),
                            &op,
                        ],
                    )
                    .await?
                }
                (OpKind::Update, None, _) => {
                    c.execute(&st.update, &[&id, &body, &amount_micros, &happened_us, &op])
                        .await?
                }
                (OpKind::Update, Some(content), Some(upd)) => {
                    c.execute(
                        upd,
                        &[
                            &id,
                            &body,
                            &amount_micros,
                            &happened_us,
                            &op,
                            &pool.text(content),
                        ],
                    )
                    .await?
                }
                _ => return Err(ExecError::Mismatch),
            }
        }
        (Key::Event { stream, seq }, Values::Event { payload }, kind) => {
            let stmt = match kind {
                OpKind::Insert => &st.insert,
                OpKind::Update => &st.update,
                OpKind::Delete => return Err(ExecError::Mismatch),
            };
            c.execute(stmt, &[&stream, &seq, &pool.text(payload), &op])
                .await?
        }
        (Key::Event { stream, seq }, Values::None, OpKind::Delete) => {
            c.execute(&st.delete, &[&stream, &seq]).await?
        }
        (Key::Unassigned, Values::Invoice { customer, cents }, OpKind::Insert) => {
            let row = c
                .query_one(&st.insert, &[&NAMES[customer], &cents, &op])
                .await?;
            return Ok(Exec::Assigned(row.try_get(0)?));
        }
        _ => return Err(ExecError::Mismatch),
    };
    Ok(Exec::Rows(rows))
}

/// How one attempt ended: what the ledger records and what the generator learns.
pub(crate) struct Judged {
    pub outcome: Outcome,
    pub settled: Settled,
    /// The key as recorded (invoice inserts: the id the server assigned, when known).
    pub key: Key,
    pub error: Option<String>,
}

/// Run `plan` on `s` with a time limit and judge the result.
pub(crate) async fn attempt(
    s: &Session,
    plan: &Plan,
    pool: &TextPool,
    scratch: &mut Scratch,
    op_timeout: Duration,
) -> Judged {
    let res = tokio::time::timeout(op_timeout, execute(s, plan, pool, scratch)).await;
    let judged = |outcome, retire, error: Option<String>| Judged {
        outcome,
        settled: Settled {
            outcome,
            retire,
            assigned: None,
        },
        key: plan.key,
        error,
    };
    match res {
        // The statement may have committed on the server while we stopped listening.
        Err(_) => judged(
            Outcome::Unknown,
            false,
            Some(format!(
                "no answer within {}",
                crate::util::fmt_duration(op_timeout)
            )),
        ),
        Ok(Err(ExecError::Mismatch)) => judged(
            Outcome::Failed,
            true,
            Some("internal: operation does not fit its table; not sent".into()),
        ),
        Ok(Err(ExecError::Pg(e))) => judged(pg_outcome(&e), false, Some(render(&e))),
        Ok(Ok(Exec::Rows(0))) if plan.kind != OpKind::Insert => judged(
            // Nothing changed, so nothing was applied; but the row the connection believed in
            // is not there, so its state is no longer known.
            Outcome::Failed,
            true,
            Some("no row matched the key".into()),
        ),
        Ok(Ok(Exec::Rows(_))) => judged(Outcome::Ok, false, None),
        Ok(Ok(Exec::Assigned(id))) => Judged {
            outcome: Outcome::Ok,
            settled: Settled {
                outcome: Outcome::Ok,
                retire: false,
                assigned: Some(id),
            },
            key: Key::Id(id),
            error: None,
        },
    }
}

/// A server ERROR aborts the statement's transaction: definitely not applied. A FATAL or PANIC,
/// a shutdown (57P01-57P05) or a connection error (class 08) can arrive after the commit record
/// was written, and a client-side error means the answer was lost: the outcome is unknown.
pub(crate) fn pg_outcome(e: &tokio_postgres::Error) -> Outcome {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let fatal = matches!(
                db.parsed_severity(),
                Some(Severity::Fatal) | Some(Severity::Panic)
            ) || matches!(db.severity(), "FATAL" | "PANIC");
            if fatal || code.starts_with("08") || code.starts_with("57P") {
                Outcome::Unknown
            } else {
                Outcome::Failed
            }
        }
        None => Outcome::Unknown,
    }
}

fn render(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            if let Some(src) = std::error::Error::source(e) {
                let _ = write!(s, ": {src}");
            }
            s
        }
    }
}
