//! One read-only session per side, set up so that both sides render values identically.

use futures::TryStreamExt;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, RowStream};

use super::options::Side;
use crate::error::{Error, Result};
use crate::node::CONNECT_TIMEOUT;

/// Text renderings (timestamps, floats, bytea, money) depend on these settings; the row
/// hashes are hashes of text, so both sides must use the same ones whatever their
/// postgresql.conf says. `default_transaction_read_only` is a second guard: the verifier never
/// writes, and B may be a hot standby. The search_path too: type names are printed with their
/// schema unless it is on the path, which a database-level setting on A alone would change.
const SETTINGS: &str = "SET default_transaction_read_only = on; \
     SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
     SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C'; \
     SET standard_conforming_strings = on; SET application_name = 'pgrehearse-verify'; \
     SET search_path = pg_catalog";

/// A session on one side.
pub(crate) struct Session {
    name: String,
    client: Client,
}

/// No parameters: every statement the verifier sends is complete SQL text, so it can go in one
/// round trip without a separate prepare.
fn no_params() -> std::iter::Empty<(&'static (dyn ToSql + Sync), Type)> {
    std::iter::empty()
}

impl Session {
    /// Connect to `side` and apply the common settings.
    pub(crate) async fn open(side: &Side) -> Result<Session> {
        let client = side.conn.connect(CONNECT_TIMEOUT).await.map_err(|e| {
            e.context("connecting for verification")
                .with_node(&side.name)
        })?;
        client.batch_execute(SETTINGS).await.map_err(|e| {
            Error::from(e)
                .context("setting up the verification session")
                .with_node(&side.name)
        })?;
        Ok(Session {
            name: side.name.clone(),
            client,
        })
    }

    /// Whether the connection is gone (a new session is needed).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn fail(&self, what: &str, e: tokio_postgres::Error) -> Error {
        Error::from(e).context(what).with_node(&self.name)
    }

    /// Run `sql` and collect its rows; `what` names the step and table for errors.
    pub(crate) async fn rows(&self, what: &str, sql: &str) -> Result<Vec<Row>> {
        tracing::trace!(node = %self.name, "{what}: {sql}");
        self.client
            .query_typed(sql, &[])
            .await
            .map_err(|e| self.fail(what, e))
    }

    /// Run `sql` and expect exactly one row.
    pub(crate) async fn row(&self, what: &str, sql: &str) -> Result<Row> {
        let mut rows = self.rows(what, sql).await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(
                Error::internal(format!("{what}: expected one row, got {n}")).with_node(&self.name),
            ),
        }
    }

    /// Run `sql` and hand each row to `f` as it arrives, without holding them all.
    pub(crate) async fn for_each_row(
        &self,
        what: &str,
        sql: &str,
        mut f: impl FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        tracing::trace!(node = %self.name, "{what}: {sql}");
        let stream: RowStream = self
            .client
            .query_typed_raw(sql, no_params())
            .await
            .map_err(|e| self.fail(what, e))?;
        let mut stream = std::pin::pin!(stream);
        while let Some(row) = stream.try_next().await.map_err(|e| self.fail(what, e))? {
            f(&row).map_err(|e| e.context(what).with_node(&self.name))?;
        }
        Ok(())
    }

    /// Start the snapshot one table is read in.
    pub(crate) async fn begin(&self, what: &str) -> Result<()> {
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| self.fail(what, e))
    }

    /// End the snapshot (nothing was written: commit and rollback are the same).
    pub(crate) async fn end(&self, what: &str) -> Result<()> {
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| self.fail(what, e))
    }

    /// Leave a failed transaction so the session can serve the next table.
    pub(crate) async fn abandon(&self) {
        // A failure here means the connection is gone; the worker notices via is_closed().
        let _ = self.client.batch_execute("ROLLBACK").await;
    }
}
