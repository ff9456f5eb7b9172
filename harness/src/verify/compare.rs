//! One comparison of a target against a reference: catalogs, schema drift, sequences, then
//! every table in parallel, each read in its own snapshot on both sides.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::catalog;
use super::diff::compare_keyed;
use super::model::{CompareMethod, DriftKind, KeySample, TableDiff, TableStatus, VerifyReport};
use super::multiset::compare_multiset;
use super::options::{Side, VerifyOptions};
use super::schema::{self, Method, TablePlan};
use super::sequences;
use super::session::Session;
use super::sql;
use crate::error::{Error, Result};
use crate::node::CONNECT_TIMEOUT;
use crate::verdict::Verdict;

/// Compare every user table and sequence of `target` with `reference`.
///
/// Both sides are read concurrently, tables `opts.parallel_tables` at a time, each in a
/// REPEATABLE READ READ ONLY transaction per side; nothing is ever written, so either side may
/// be a hot standby. A table that cannot be compared is reported with
/// [`TableStatus::Error`] and makes the verdict Unknown (unless something else is Invalid);
/// it does not stop the other tables.
///
/// For the result to mean anything, the target must have caught up with the reference's
/// snapshot (fence the chain, or pause replay on B, first).
///
/// # Errors
/// Database error naming the node when a side cannot be reached or its catalog read.
pub async fn compare(
    reference: &Side,
    target: &Side,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let started = Instant::now();
    tracing::info!(
        "verifying {} against {} (database {})",
        target.name,
        reference.name,
        reference.conn.dbname
    );
    let (r, t) = tokio::join!(Session::open(reference), Session::open(target));
    let (r, t) = (r?, t?);
    let excluded = opts.all_excluded();
    let (rc, tc) = tokio::join!(catalog::load(&r, &excluded), catalog::load(&t, &excluded));
    let (rc, tc) = (rc?, tc?);
    let (schema, plans) = schema::plan(&rc, &tc);
    let sequences = sequences::compare(&rc.sequences, &tc.sequences, tc.in_recovery);
    let mut tables = run_tables(reference, target, plans, opts, (r, t)).await;
    tables.sort_by(|a, b| a.table.cmp(&b.table));

    let invalid = schema.iter().any(|d| d.kind != DriftKind::TypeWidened)
        || tables.iter().any(|t| t.status == TableStatus::Differ);
    let unknown = tables.iter().any(|t| t.status == TableStatus::Error);
    let verdict = if invalid {
        Verdict::Invalid
    } else if unknown {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    let report = VerifyReport {
        reference: reference.name.clone(),
        target: target.name.clone(),
        verdict,
        tables,
        sequences,
        schema,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    tracing::info!(
        "verified {} against {}: {} ({} tables, {} differ, {} could not be compared, {} schema drifts) in {}",
        report.target,
        report.reference,
        report.verdict,
        report.tables.len(),
        report
            .tables
            .iter()
            .filter(|t| t.status == TableStatus::Differ)
            .count(),
        report
            .tables
            .iter()
            .filter(|t| t.status == TableStatus::Error)
            .count(),
        report.schema.len(),
        crate::util::fmt_duration(started.elapsed())
    );
    Ok(report)
}

/// Wall time of `SELECT sum(hashtext(t::text)) FROM <table> t` run on both sides at once: the
/// cost of reading the table once, which a comparison of a matching table should stay close to.
/// `table` is SQL (`public.orders`).
///
/// # Errors
/// Database error naming the node when a side cannot be reached or the query fails.
pub async fn baseline_scan(reference: &Side, target: &Side, table: &str) -> Result<Duration> {
    let connect = |s: &Side| {
        let s = s.clone();
        async move {
            s.conn
                .connect(CONNECT_TIMEOUT)
                .await
                .map_err(|e| e.with_node(&s.name))
        }
    };
    let (r, t) = tokio::join!(connect(reference), connect(target));
    let (r, t) = (r?, t?);
    let sql = format!("SELECT sum(hashtext(t::text)) FROM {table} t");
    let started = Instant::now();
    let (a, b) = tokio::join!(r.query_one(&sql, &[]), t.query_one(&sql, &[]));
    let what = format!("scanning {table}");
    a.map_err(|e| Error::from(e).context(&what).with_node(&reference.name))?;
    b.map_err(|e| Error::from(e).context(&what).with_node(&target.name))?;
    Ok(started.elapsed())
}

fn method_of(plan: &TablePlan) -> CompareMethod {
    match &plan.method {
        Method::PrimaryKey(k) => CompareMethod::PrimaryKey {
            columns: k.columns.clone(),
        },
        Method::Multiset => CompareMethod::RowMultiset,
        Method::NotCompared => CompareMethod::NotCompared,
    }
}

fn blank(plan: &TablePlan, status: TableStatus) -> TableDiff {
    TableDiff {
        table: plan.name.clone(),
        method: method_of(plan),
        status,
        rows_reference: 0,
        rows_target: 0,
        missing: KeySample::default(),
        extra: KeySample::default(),
        changed: KeySample::default(),
        error: None,
    }
}

/// Compare the tables with up to `parallel_tables` workers, each with its own session per
/// side (the first worker reuses the catalog sessions).
async fn run_tables(
    reference: &Side,
    target: &Side,
    plans: Vec<TablePlan>,
    opts: &VerifyOptions,
    first: (Session, Session),
) -> Vec<TableDiff> {
    let workers = opts.parallel_tables.clamp(1, plans.len().max(1));
    let queue = Mutex::new(plans.into_iter().collect::<VecDeque<_>>());
    let mut first = Some(first);
    let runs = (0..workers).map(|_| {
        let sessions = first.take().map(|(r, t)| [Some(r), Some(t)]);
        worker(
            &queue,
            [reference, target],
            opts,
            sessions.unwrap_or([None, None]),
        )
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn worker(
    queue: &Mutex<VecDeque<TablePlan>>,
    sides: [&Side; 2],
    opts: &VerifyOptions,
    mut sessions: [Option<Session>; 2],
) -> Vec<TableDiff> {
    let mut out = Vec::new();
    loop {
        let next = match queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(poisoned) => poisoned.into_inner().pop_front(),
        };
        let Some(plan) = next else { break };
        let diff = match with_sessions(&mut sessions, sides).await {
            Ok([r, t]) => compare_table([r, t], &plan, opts).await,
            Err(e) => Err(e),
        };
        out.push(diff.unwrap_or_else(|e| {
            let msg = e.to_string();
            let msg = if msg.contains(&plan.name) {
                msg
            } else {
                format!("comparing {}: {msg}", plan.name)
            };
            tracing::warn!("could not compare {}: {msg}", plan.name);
            TableDiff {
                error: Some(msg),
                ..blank(&plan, TableStatus::Error)
            }
        }));
    }
    out
}

/// The worker's sessions, reconnecting a side whose connection broke on an earlier table.
async fn with_sessions<'s>(
    sessions: &'s mut [Option<Session>; 2],
    sides: [&Side; 2],
) -> Result<[&'s Session; 2]> {
    let [r, t] = sessions;
    let reopen = |slot: &Option<Session>| slot.as_ref().is_none_or(Session::is_closed);
    let (nr, nt) = tokio::join!(
        async {
            if reopen(r) {
                *r = Some(Session::open(sides[0]).await?);
            }
            Ok::<_, Error>(())
        },
        async {
            if reopen(t) {
                *t = Some(Session::open(sides[1]).await?);
            }
            Ok::<_, Error>(())
        }
    );
    nr?;
    nt?;
    match (r.as_ref(), t.as_ref()) {
        (Some(r), Some(t)) => Ok([r, t]),
        _ => Err(Error::internal(
            "verification sessions missing after reconnect",
        )),
    }
}

/// Compare one table in one snapshot per side.
async fn compare_table(
    s: [&Session; 2],
    plan: &TablePlan,
    opts: &VerifyOptions,
) -> Result<TableDiff> {
    let what = format!("opening a snapshot to read {}", plan.name);
    let body = async {
        let (a, b) = tokio::join!(s[0].begin(&what), s[1].begin(&what));
        a?;
        b?;
        table_body(s, plan, opts).await
    };
    match body.await {
        Ok(d) => {
            let what = format!("closing the snapshot of {}", plan.name);
            let (a, b) = tokio::join!(s[0].end(&what), s[1].end(&what));
            a?;
            b?;
            Ok(d)
        }
        Err(e) => {
            tokio::join!(s[0].abandon(), s[1].abandon());
            Err(e)
        }
    }
}

async fn table_body(s: [&Session; 2], plan: &TablePlan, opts: &VerifyOptions) -> Result<TableDiff> {
    let from = |i: usize| plan.defs[i].as_ref().map(|d| d.relation_sql());
    let name = plan.name.as_str();
    let mut d = blank(plan, TableStatus::Match);
    match &plan.method {
        Method::NotCompared => {
            // Drift already fails the verdict; the row counts say how much is at stake.
            let (fr, ft) = (from(0), from(1));
            let (r, t) = tokio::join!(
                async {
                    match &fr {
                        Some(f) => sql::count(s[0], name, f).await,
                        None => Ok(0),
                    }
                },
                async {
                    match &ft {
                        Some(f) => sql::count(s[1], name, f).await,
                        None => Ok(0),
                    }
                }
            );
            d.rows_reference = r?;
            d.rows_target = t?;
            d.status = TableStatus::Differ;
        }
        Method::PrimaryKey(key) => {
            let (Some(fr), Some(ft)) = (from(0), from(1)) else {
                return Err(Error::internal(format!(
                    "{name}: compared but missing on a side"
                )));
            };
            let out = compare_keyed(s, name, [fr, ft], &plan.columns, key, opts).await?;
            [d.rows_reference, d.rows_target] = out.rows;
            d.missing = out.keys.missing;
            d.extra = out.keys.extra;
            d.changed = out.keys.changed;
        }
        Method::Multiset => {
            let (Some(fr), Some(ft)) = (from(0), from(1)) else {
                return Err(Error::internal(format!(
                    "{name}: compared but missing on a side"
                )));
            };
            let out = compare_multiset(s, name, [fr, ft], &plan.columns, opts).await?;
            [d.rows_reference, d.rows_target] = out.rows;
            d.missing = out.missing;
            d.extra = out.extra;
        }
    }
    if !(d.missing.is_empty() && d.extra.is_empty() && d.changed.is_empty()) {
        d.status = TableStatus::Differ;
    }
    tracing::debug!(
        "{name}: {:?} ({} / {} rows; {} missing, {} extra, {} changed)",
        d.status,
        d.rows_reference,
        d.rows_target,
        d.missing.count,
        d.extra.count,
        d.changed.count
    );
    Ok(d)
}
