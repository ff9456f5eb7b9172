//! Sequence values on both sides. Logical replication does not carry them, so drift is
//! expected: it is reported with what to do at cutover, and does not fail the verdict.

use std::collections::BTreeMap;

use super::model::{SequenceDiff, SequenceStatus};

const NOT_REPLICATED: &str = "native logical replication and AWS DMS do not replicate \
    sequence values";

/// A hot standby replays sequence changes as the primary WAL-logs them: in batches of 32
/// values ahead of what was handed out (SEQ_LOG_VALS), so it shows a higher value.
const STANDBY: &str = "a hot standby shows sequences as the primary WAL-logged them, up to 32 \
    values ahead of the primary's last value (PostgreSQL pre-logs sequence values); not a \
    replication fault, and after promotion the sequence continues without reusing values";

fn note(status: SequenceStatus, on_reference: bool, target_is_standby: bool) -> String {
    if target_is_standby && status != SequenceStatus::Missing {
        return format!("expected: {STANDBY}");
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
            SequenceDiff {
                sequence: name.clone(),
                reference: r.copied().flatten(),
                target: t.copied().flatten(),
                status,
                note: note(status, r.is_some(), target_is_standby),
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
        assert!(compare(&r, &t, true)[1].note.contains("hot standby"));
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
}
