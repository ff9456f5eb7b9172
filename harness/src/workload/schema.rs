//! DDL of the built-in tables and their initial rows.
//!
//! Every table carries `op_id`: the ledger op id of the last write to the row. That column is
//! what lets the ledger check tell, per key, which acknowledged write a node actually holds.

use tokio_postgres::Client;

use super::model::{LedgerEntry, OpKind, Outcome};
use super::table::{BuiltinTable, Key, SEED_CONN, SEED_NODE, WORKLOAD_SCHEMA};
use crate::error::{Error, Result, ResultExt};

fn ddl(table: BuiltinTable) -> &'static str {
    match table {
        BuiltinTable::Accounts => {
            "CREATE TABLE IF NOT EXISTS rehearse.accounts (
                id bigint PRIMARY KEY,
                owner text NOT NULL,
                balance numeric(14,2) NOT NULL,
                op_id bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now())"
        }
        BuiltinTable::OrderLines => {
            "CREATE TABLE IF NOT EXISTS rehearse.order_lines (
                region text NOT NULL,
                order_no text NOT NULL,
                line int NOT NULL,
                qty int NOT NULL,
                note text,
                op_id bigint NOT NULL,
                PRIMARY KEY (region, order_no, line))"
        }
        BuiltinTable::Documents => {
            "CREATE TABLE IF NOT EXISTS rehearse.documents (
                id bigint PRIMARY KEY,
                body jsonb NOT NULL,
                blob bytea,
                amount numeric(20,6),
                happened_at timestamptz,
                content text,
                op_id bigint NOT NULL)"
        }
        // No key on purpose: DMS loses UPDATE/DELETE on such tables and native replication
        // needs REPLICA IDENTITY FULL. The plain index only keeps the workload's own
        // `WHERE stream = $ AND seq = $` (and a subscriber's apply) from scanning the table.
        BuiltinTable::Events => {
            "CREATE TABLE IF NOT EXISTS rehearse.events (
                stream int NOT NULL,
                seq bigint NOT NULL,
                payload text,
                op_id bigint NOT NULL);
             ALTER TABLE rehearse.events REPLICA IDENTITY FULL;
             CREATE INDEX IF NOT EXISTS events_stream_seq ON rehearse.events (stream, seq)"
        }
        BuiltinTable::Invoices => {
            "CREATE TABLE IF NOT EXISTS rehearse.invoices (
                id bigserial PRIMARY KEY,
                customer text NOT NULL,
                total numeric(12,2) NOT NULL,
                op_id bigint NOT NULL)"
        }
    }
}

/// Create schema `rehearse` and the given tables (existing ones are left as they are).
///
/// # Errors
/// Database error naming the table being created.
pub async fn create_schema(client: &Client, tables: &[BuiltinTable]) -> Result<()> {
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {WORKLOAD_SCHEMA}"))
        .await
        .step("creating schema rehearse")?;
    for t in tables {
        client
            .batch_execute(ddl(*t))
            .await
            .step_with(|| format!("creating table {t}"))?;
    }
    Ok(())
}

/// Server-side generation keeps seeding fast for large row counts. `$1` rows, `$2` the seed as
/// text, `$3` the table's seed op-id base. Keys must match [`Key::seeded`].
fn seed_sql(table: BuiltinTable) -> &'static str {
    match table {
        BuiltinTable::Accounts => {
            "INSERT INTO rehearse.accounts (id, owner, balance, op_id, updated_at)
             SELECT k, 'owner-' || (k % 16), (abs(hashtext($2::text || ':a:' || k)::int8) % 10000000) / 100.0,
                    $3::int8 | k, timestamptz '2024-01-01 00:00:00+00' + k * interval '1 second'
             FROM generate_series(1, $1::int8) AS k"
        }
        BuiltinTable::OrderLines => {
            "INSERT INTO rehearse.order_lines (region, order_no, line, qty, note, op_id)
             SELECT (ARRAY['eu','us','ap'])[1 + k % 3], 's-' || k, 1, 1 + (k % 50)::int,
                    'seeded ' || md5($2::text || ':o:' || k), $3::int8 | k
             FROM generate_series(1, $1::int8) AS k"
        }
        // repeat(md5) gives 16-48 KB of text per row that compresses well, so seeding many
        // documents stays cheap; the workload's own documents are incompressible.
        BuiltinTable::Documents => {
            "INSERT INTO rehearse.documents (id, body, blob, amount, happened_at, content, op_id)
             SELECT k, jsonb_build_object('seed', k, 'tag', md5($2::text || ':d:' || k)),
                    decode(md5($2::text || ':b:' || k), 'hex'),
                    (abs(hashtext($2::text || ':m:' || k)::int8) % 1000000000) / 1000000.0,
                    timestamptz '2024-01-01 00:00:00+00' + k * interval '1 second',
                    repeat(md5($2::text || ':c:' || k), 512 + (k % 1024)::int), $3::int8 | k
             FROM generate_series(1, $1::int8) AS k"
        }
        BuiltinTable::Events => {
            "INSERT INTO rehearse.events (stream, seq, payload, op_id)
             SELECT 0, k, 'seeded ' || md5($2::text || ':e:' || k), $3::int8 | k
             FROM generate_series(1, $1::int8) AS k"
        }
        // Explicit ids, then the sequence moved past them: the seeded keys stay 1..=rows
        // whatever the sequence's cache or history.
        BuiltinTable::Invoices => {
            "INSERT INTO rehearse.invoices (id, customer, total, op_id)
             SELECT k, 'customer-' || (k % 16), (abs(hashtext($2::text || ':i:' || k)::int8) % 1000000) / 100.0,
                    $3::int8 | k
             FROM generate_series(1, $1::int8) AS k"
        }
    }
}

/// Write `rows_per_table` initial rows into each table (before the chain is built, so they
/// travel by the initial copy) and return their ledger entries (conn [`SEED_CONN`], node
/// [`SEED_NODE`], acknowledged inserts). Append those to the run's ledger
/// ([`append_ledger`](super::append_ledger)) before [`run`](super::run) so the ledger check
/// accounts for them; set [`WorkloadConfig::seeded_rows`](super::WorkloadConfig) so the
/// workload's connections update and delete them too.
///
/// # Errors
/// Usage error for more than 2^32 - 1 rows; database error naming the table.
pub async fn seed_initial(
    client: &Client,
    tables: &[BuiltinTable],
    rows_per_table: u64,
    seed: u64,
) -> Result<Vec<LedgerEntry>> {
    if rows_per_table >= 1 << 32 {
        return Err(Error::usage(
            "seeding: at most 2^32 - 1 initial rows per table",
        ));
    }
    let mut entries = Vec::with_capacity(rows_per_table as usize * tables.len());
    if rows_per_table == 0 {
        return Ok(entries);
    }
    let seed_text = seed.to_string();
    for &t in tables {
        tracing::info!("seeding {rows_per_table} rows into {t}");
        let rows = rows_per_table as i64;
        let base = t.seed_op(0) as i64;
        client
            .execute(seed_sql(t), &[&rows, &seed_text, &base])
            .await
            .step_with(|| format!("seeding {t}"))?;
        if t == BuiltinTable::Invoices {
            client
                .execute(
                    "SELECT setval(pg_get_serial_sequence('rehearse.invoices', 'id'),
                                   (SELECT max(id) FROM rehearse.invoices))",
                    &[],
                )
                .await
                .step("moving the invoices sequence past the seeded ids")?;
        }
        let table = t.name().to_string();
        entries.extend((1..=rows_per_table).map(|k| LedgerEntry {
            op: t.seed_op(k),
            conn: SEED_CONN,
            table: table.clone(),
            key: Key::seeded(t, k).to_string(),
            kind: OpKind::Insert,
            outcome: Outcome::Ok,
            sent_us: 0,
            done_us: 0,
            node: SEED_NODE.to_string(),
            error: None,
        }));
    }
    Ok(entries)
}
