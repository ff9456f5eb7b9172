//! One opaque error type for the whole library.
//!
//! Messages are lowercase, name the step that failed ("waiting for b to replay 0/3000060: timed
//! out") and chain their cause. Callers branch on [`Error::kind`], never on message text.

use std::fmt;
use std::path::PathBuf;

/// What went wrong, broadly: decides the CLI exit code and whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The user's input is wrong: scenario file, flags, seed file.
    Usage,
    /// The machine is not fit: binaries missing or too old, port taken, permissions.
    Environment,
    /// A PostgreSQL server returned an error or could not be reached.
    Database,
    /// A named condition was not reached in time.
    Timeout,
    /// The run was interrupted (Ctrl-C / SIGTERM).
    Interrupted,
    /// A bug or an unexpected state inside the harness.
    Internal,
}

/// The library's error: a kind, a message naming the step, optional node and cause.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    msg: String,
    node: Option<String>,
    hint: Option<String>,
    detail: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` whose message names the step.
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                msg: msg.into(),
                node: None,
                hint: None,
                detail: None,
                source: None,
            }),
        }
    }

    /// The same error, counted as `kind`: whose fault it is shows only where it is caught (a
    /// tool failing on the user's file is a usage error, on this machine an environment one).
    #[must_use]
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.inner.kind = kind;
        self
    }

    /// Bad user input.
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, msg)
    }

    /// The machine cannot do what was asked.
    pub fn environment(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Environment, msg)
    }

    /// A server error or an unreachable server.
    pub fn database(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Database, msg)
    }

    /// A wait that ran out of time.
    pub fn timeout(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, msg)
    }

    /// A harness bug or impossible state.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, msg)
    }

    /// The run was interrupted by a signal.
    pub fn interrupted() -> Self {
        Self::new(ErrorKind::Interrupted, "interrupted")
    }

    /// Attach the node (a, b, c) the error is about.
    pub fn with_node(mut self, node: impl Into<String>) -> Self {
        self.inner.node = Some(node.into());
        self
    }

    /// Attach what the user can do about it; printed on its own line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.inner.hint = Some(hint.into());
        self
    }

    /// Attach the state observed when the error happened (rows of pg_stat_replication, a log
    /// tail); printed after the message.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = Some(detail.into());
        self
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// Prefix the message with the step that was being done, keeping kind, node and cause.
    pub fn context(mut self, step: impl fmt::Display) -> Self {
        self.inner.msg = format!("{step}: {}", self.inner.msg);
        self
    }

    /// This error with `other`, which happened as well, told after it wherever the message
    /// shows; kind, node, hint and detail stay this one's.
    pub fn also(mut self, other: &Error) -> Self {
        if let Some(src) = self.inner.source.take() {
            self.inner.msg = format!(
                "{}: {}",
                self.inner.msg,
                crate::secret::redact(&render_source(src.as_ref()))
            );
        }
        self.inner.msg = format!("{}; also {other}", self.inner.msg);
        self
    }

    /// The broad class of the failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The node the error is about, if any.
    pub fn node(&self) -> Option<&str> {
        self.inner.node.as_deref()
    }

    /// The hint for the user, if any.
    pub fn hint(&self) -> Option<&str> {
        self.inner.hint.as_deref()
    }

    /// The observed state attached to the error, if any.
    pub fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// The SQLSTATE of the server error at the root of this error, if there is one.
    pub fn sqlstate(&self) -> Option<&str> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> =
            self.inner.source.as_deref().map(|e| e as _);
        while let Some(e) = cur {
            if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
                return pg.code().map(|c| c.code());
            }
            cur = e.source();
        }
        None
    }

    /// The process exit code this error maps to: 2 for usage and environment problems, 1 for
    /// everything that happened once the rehearsal was under way, 130 for an interrupt.
    pub fn exit_code(&self) -> i32 {
        match self.kind() {
            ErrorKind::Usage | ErrorKind::Environment => 2,
            ErrorKind::Interrupted => 130,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(node) = &self.inner.node {
            write!(f, "{node}: ")?;
        }
        f.write_str(&self.inner.msg)?;
        if let Some(src) = &self.inner.source {
            write!(
                f,
                ": {}",
                crate::secret::redact(&render_source(src.as_ref()))
            )?;
        }
        Ok(())
    }
}

/// tokio-postgres' Display for a server error is just "db error"; the useful part is the
/// DbError inside. Render that with its SQLSTATE so users and logs see the real reason.
fn render_source(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
        if let Some(db) = pg.as_db_error() {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; detail: {d}"));
            }
            return s;
        }
        let mut s = pg.to_string();
        if let Some(inner) = std::error::Error::source(pg) {
            s.push_str(&format!(": {inner}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(&format!(": {t}"));
        }
        cur = inner.source();
    }
    s
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        if let Some(d) = &self.inner.detail {
            write!(f, "\n{d}")?;
        }
        if let Some(h) = &self.inner.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source.as_deref().map(|e| e as _)
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::database("query failed").with_source(e)
    }
}

/// Adds step context to results, the way `anyhow::Context` does, keeping the typed kind.
pub trait ResultExt<T> {
    /// Prefix the error with the step being done.
    fn step(self, step: impl fmt::Display) -> Result<T>;
    /// Prefix the error with a lazily built step description.
    fn step_with<F: FnOnce() -> String>(self, f: F) -> Result<T>;
    /// Tag the error with a node name.
    fn on_node(self, node: &str) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn step(self, step: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(step))
    }
    fn step_with<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
    fn on_node(self, node: &str) -> Result<T> {
        self.map_err(|e| e.into().with_node(node))
    }
}

/// An I/O error on a path, classified as environment trouble.
pub fn io_error(what: &str, path: impl Into<PathBuf>, e: std::io::Error) -> Error {
    let path = path.into();
    Error::environment(format!("{what} {}", path.display())).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_that_came_with_another_tells_both_and_keeps_its_own_kind_and_hint() {
        let first = Error::database("b: postgres exited during startup")
            .with_source(std::io::Error::other("exit 1"))
            .with_hint("read b's log");
        let also = Error::environment("putting its link faults back: tc failed").with_node("b");
        let e = first.also(&also);
        assert_eq!(
            e.to_string(),
            "b: postgres exited during startup: exit 1; also b: putting its link faults back: tc failed"
        );
        assert_eq!(e.kind(), ErrorKind::Database);
        assert_eq!(e.hint(), Some("read b's log"));
    }
}
