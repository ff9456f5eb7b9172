//! Sequence values on both sides. Logical replication does not carry them, so drift is
//! expected: it is reported with what to do at cutover, and does not fail the verdict.

use std::collections::BTreeMap;

use super::model::{SequenceDiff, SequenceStatus};

const NOT_REPLICATED: &str = "native logical replication and AWS DMS do not replicate \
    sequence values";

/// How far ahead of the primary's last value PostgreSQL WAL-logs a sequence (SEQ_LOG_VALS).
const PRE_LOGGED: i64 = 32;

/// A hot standby replays sequence changes as the primary WAL-logs them: in batches of 32
/// values ahead of what was handed out, so it can show a higher value, never a reused one
/// once promoted unless WAL was lost with the primary.
const STANDBY_AHEAD: &str = "a hot standby shows sequences as the primary WAL-logged them, up \
    to 32 values ahead of the primary's last value (PostgreSQL pre-logs sequence values); not a \
    replication fault. Promoted, it continues from the value it shows, reusing none the primary \
    handed out before the last WAL it received; after an asynchronous failover that lost WAL it \
    can hand out values the primary had already used";

/// Why a hot standby's value differs from the primary's, from the two values: ahead by what
/// pre-logging explains, further ahead than that, or behind (the standby has not replayed the
/// primary's latest change yet).
fn standby_note(status: SequenceStatus, reference: Option<i64>, target: Option<i64>) -> String {
    if status == SequenceStatus::Match {
        return "same value as the primary now".into();
    }
    match (reference, target) {
        (Some(r), Some(t)) if t > r && t - r <= PRE_LOGGED => format!("expected: {STANDBY_AHEAD}"),
        (Some(r), Some(t)) if t > r => format!(
            "{} values ahead of the primary, more than the {PRE_LOGGED} PostgreSQL pre-logs (a \
             sequence with CACHE n can be up to n + {PRE_LOGGED} ahead): check its CACHE, and that \
             the standby follows this primary",
            t - r
        ),
        (Some(r), Some(t)) => format!(
            "{} values behind the primary: the standby has not replayed the primary's latest \
             WAL for this sequence (it lags); compare again once it has caught up",
            r - t
        ),
        (Some(_), None) => "never used on the standby but used on the primary: the standby has \
                            not replayed the primary's latest WAL for it (it lags)"
            .into(),
        (None, _) => "used on the standby but never on the primary: the standby does not show \
                      this primary's sequence; check that it follows this primary"
            .into(),
    }
}

fn note(
    status: SequenceStatus,
    (reference, target): (Option<i64>, Option<i64>),
    on_reference: bool,
    target_is_standby: bool,
) -> String {
    if target_is_standby && status != SequenceStatus::Missing {
        return standby_note(status, reference, target);
    }
    match status {
        SequenceStatus::Match => {
            format!("same value now, but {NOT_REPLICATED}: compare again and resync at cutover")
        }
        SequenceStatus::Drift => format!(
            "expected: {NOT_REPLICATED}; resync it on the target at cutover \
             (setval to at least the reference value)"
        ),
        SequenceStatus::Missing if on_reference => format!(
            "on the reference only: create it on the target and set its value at cutover \
             ({NOT_REPLICATED})"
        ),
        SequenceStatus::Missing => "on the target only: the reference has no such sequence".into(),
    }
}

/// Compare last values (None: never used, `is_called` false) by sequence name.
pub(crate) fn compare(
    reference: &BTreeMap<String, Option<i64>>,
    target: &BTreeMap<String, Option<i64>>,
    target_is_standby: bool,
) -> Vec<SequenceDiff> {
    let mut names: Vec<&String> = reference.keys().chain(target.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let (r, t) = (reference.get(name), target.get(name));
            let status = match (r, t) {
                (Some(a), Some(b)) if a == b => SequenceStatus::Match,
                (Some(_), Some(_)) => SequenceStatus::Drift,
                _ => SequenceStatus::Missing,
            };
            let values = (r.copied().flatten(), t.copied().flatten());
            SequenceDiff {
                sequence: name.clone(),
                reference: values.0,
                target: values.1,
                status,
                note: note(status, values, r.is_some(), target_is_standby),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_notes() {
        let r: BTreeMap<String, Option<i64>> = [
            ("public.a".to_string(), Some(10)),
            ("public.b".to_string(), Some(5)),
            ("public.c".to_string(), None),
            ("public.d".to_string(), Some(1)),
        ]
        .into();
        let t: BTreeMap<String, Option<i64>> = [
            ("public.a".to_string(), Some(10)),
            ("public.b".to_string(), Some(1)),
            ("public.c".to_string(), None),
            ("public.e".to_string(), None),
        ]
        .into();
        let d = compare(&r, &t, false);
        // b behind a: not the pre-logging a standby shows ahead.
        let behind = &compare(&r, &t, true)[1].note;
        assert!(
            behind.starts_with("4 values behind the primary"),
            "{behind}"
        );
        let s: Vec<(&str, SequenceStatus)> =
            d.iter().map(|x| (x.sequence.as_str(), x.status)).collect();
        assert_eq!(
            s,
            vec![
                ("public.a", SequenceStatus::Match),
                ("public.b", SequenceStatus::Drift),
                ("public.c", SequenceStatus::Match),
                ("public.d", SequenceStatus::Missing),
                ("public.e", SequenceStatus::Missing),
            ]
        );
        assert!(d[1].note.contains("do not replicate sequence values"));
        assert!(d[1].note.contains("cutover"));
        assert_eq!((d[1].reference, d[1].target), (Some(5), Some(1)));
        assert!(d[3].note.contains("reference only"));
    }

    #[test]
    fn a_standby_ahead_by_what_pre_logging_explains_is_expected_and_behind_is_lag() {
        let one = |a: Option<i64>, b: Option<i64>| {
            let r: BTreeMap<String, Option<i64>> = [("s".to_string(), a)].into();
            let t: BTreeMap<String, Option<i64>> = [("s".to_string(), b)].into();
            compare(&r, &t, true).remove(0).note
        };
        let ahead = one(Some(100), Some(132));
        assert!(ahead.starts_with("expected: a hot standby"), "{ahead}");
        // The claim about promotion is qualified: an asynchronous failover can reuse values.
        assert!(
            ahead.contains("after an asynchronous failover that lost WAL it can hand out values"),
            "{ahead}"
        );
        let far = one(Some(100), Some(133));
        assert!(
            far.starts_with("33 values ahead of the primary, more than the 32"),
            "{far}"
        );
        let behind = one(Some(100), Some(90));
        assert!(
            behind.starts_with("10 values behind the primary"),
            "{behind}"
        );
        assert!(!behind.contains("32"), "{behind}");
        assert!(one(Some(5), None).contains("(it lags)"));
        assert_eq!(one(Some(5), Some(5)), "same value as the primary now");
    }
}
