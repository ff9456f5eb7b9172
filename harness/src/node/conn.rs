//! How to reach a server: for the harness itself, and for another node.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// A network address as one party sees another ("127.0.0.1:5433", "run1-a:5432").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Credentials: a role and its password.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Login {
    /// Role name.
    pub user: String,
    /// Its password (never printed).
    pub password: Secret,
}

/// Everything needed to open a session on one database.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Where.
    pub endpoint: Endpoint,
    /// As whom.
    pub login: Login,
    /// Which database.
    pub dbname: String,
}

impl ConnInfo {
    /// The same server, another database.
    pub fn with_db(&self, db: &str) -> ConnInfo {
        ConnInfo {
            dbname: db.to_string(),
            ..self.clone()
        }
    }

    /// A libpq connection string including the password (for CREATE SUBSCRIPTION and
    /// primary_conninfo). Never print it; use [`ConnInfo::display`].
    pub fn libpq_with_password(&self) -> String {
        format!(
            "host={} port={} user={} password={} dbname={}",
            self.endpoint.host,
            self.endpoint.port,
            quote_conn(&self.login.user),
            quote_conn(self.login.password.expose()),
            quote_conn(&self.dbname)
        )
    }

    /// The connection string without the password, safe to print.
    pub fn display(&self) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            self.endpoint.host,
            self.endpoint.port,
            quote_conn(&self.login.user),
            quote_conn(&self.dbname)
        )
    }

    /// Open a session. The connection task runs on the current runtime and ends with the client.
    ///
    /// # Errors
    /// Database error naming the endpoint when the server is unreachable or rejects the login.
    pub async fn connect(&self, timeout: Duration) -> Result<Client> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.endpoint.host)
            .port(self.endpoint.port)
            .user(&self.login.user)
            .password(self.login.password.expose())
            .dbname(&self.dbname)
            .application_name("pgrehearse")
            .connect_timeout(timeout);
        // connect_timeout covers only the TCP handshake; a peer that accepts but never answers
        // the startup packet (a frozen server, a blackholed link, a port held by something
        // else) would hang the whole login without this outer bound.
        let (client, conn) = match tokio::time::timeout(timeout, cfg.connect(NoTls)).await {
            Ok(r) => r.map_err(|e| {
                Error::database(format!(
                    "cannot connect to {} as {}",
                    self.endpoint, self.login.user
                ))
                .with_source(e)
            })?,
            Err(_) => {
                return Err(Error::timeout(format!(
                    "cannot connect to {} as {}: no answer within {}",
                    self.endpoint,
                    self.login.user,
                    crate::util::fmt_duration(timeout)
                )));
            }
        };
        tokio::spawn(async move {
            // Errors surface on the client's next call; nothing to do here.
            let _ = conn.await;
        });
        Ok(client)
    }
}

/// Quote a value for a libpq key=value string when it needs it.
pub fn quote_conn(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// How long a cancelled statement may take to end: it ends at its next interrupt check, which
/// for a backend waiting on a lock, a walsender or a standby is at once.
const CANCEL_PATIENCE: Duration = Duration::from_secs(10);

/// Run `sql` (one or more statements) on `client`, giving it at most `timeout`; see
/// [`finish_within`].
///
/// # Errors
/// As [`finish_within`].
pub async fn batch_execute_within(client: &Client, sql: &str, timeout: Duration) -> Result<()> {
    let run = client.batch_execute(sql);
    tokio::pin!(run);
    finish_within(client, run, timeout).await
}

/// Let `run`, a statement under way on `client`, finish within `timeout`. One still running
/// then is cancelled on the server and awaited, so that when this returns after "it was
/// cancelled" the server is no longer running it: it holds no lock and cannot finish (commit,
/// create a slot) behind the caller's back. When the cancel could not be delivered, or the
/// statement outlived it, the error says so: it may still be running then.
///
/// # Errors
/// The statement's own error; [`crate::ErrorKind::Timeout`] when it ran out of time (and was
/// cancelled, or could not be). A statement that completes as it is being cancelled is done:
/// that is `Ok`.
pub async fn finish_within<F>(
    client: &Client,
    mut run: Pin<&mut F>,
    timeout: Duration,
) -> Result<()>
where
    F: Future<Output = std::result::Result<(), tokio_postgres::Error>>,
{
    let Ok(res) = tokio::time::timeout(timeout, run.as_mut()).await else {
        let late = crate::util::fmt_duration(timeout);
        let cancel = client.cancel_token();
        let how = match tokio::time::timeout(CANCEL_PATIENCE, cancel.cancel_query(NoTls)).await {
            Err(_) => "the server did not take the cancel request".to_string(),
            Ok(Err(e)) => format!("cancelling it failed: {}", Error::from(e)),
            Ok(Ok(())) => match tokio::time::timeout(CANCEL_PATIENCE, run.as_mut()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e))
                    if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
                {
                    "it was cancelled".to_string()
                }
                Ok(Err(e)) => return Err(Error::from(e)),
                Err(_) => format!(
                    "it was cancelled but had not ended {} later",
                    crate::util::fmt_duration(CANCEL_PATIENCE)
                ),
            },
        };
        return Err(Error::timeout(format!("no answer within {late}; {how}")));
    };
    res.map_err(Error::from)
}
