//! Type changes every value survives unchanged (int → bigint, varchar(20) → text): a target
//! schema often widens on purpose, and such a change is reported without failing the verdict.
//! Rows are compared by their text either way, so a widening that did alter a value still
//! shows as a changed row. Only changes that keep each value's text are listed here: real →
//! double precision, say, prints 0.1 as 0.100000001490116 and stays a type change.

/// Whether a column of type `from` (as `format_type` prints it) can be `to` on the target with
/// every value, now and later, kept as it is.
pub(crate) fn widens(from: &str, to: &str) -> bool {
    let (fb, fm) = split(from);
    let (tb, tm) = split(to);
    match (fb, tb) {
        (f, t) if int_rank(f).is_some() && int_rank(t).is_some() => int_rank(f) <= int_rank(t),
        // Unconstrained numeric takes any integer or numeric value as it is.
        (f, "numeric") if tm.is_empty() => int_rank(f).is_some() || f == "numeric",
        ("numeric", "numeric") => match (numeric_mod(fm), numeric_mod(tm)) {
            // Same scale (a value keeps its digits after the point), at least as many digits.
            (Some((fp, fs)), Some((tp, ts))) => fs == ts && tp >= fp,
            _ => false,
        },
        ("character varying", "text") | ("text", "character varying") => {
            fb == "character varying" || tm.is_empty()
        }
        ("character varying", "character varying") => match (len(fm), len(tm)) {
            (_, None) => true,
            (Some(f), Some(t)) => t >= f,
            (None, Some(_)) => false,
        },
        _ => false,
    }
}

/// "numeric(12,2)" → ("numeric", "12,2"); "text" → ("text", "").
fn split(t: &str) -> (&str, &str) {
    match t.split_once('(') {
        Some((base, rest)) if rest.ends_with(')') => (base, &rest[..rest.len() - 1]),
        _ => (t, ""),
    }
}

fn int_rank(base: &str) -> Option<u8> {
    match base {
        "smallint" => Some(0),
        "integer" => Some(1),
        "bigint" => Some(2),
        _ => None,
    }
}

fn numeric_mod(m: &str) -> Option<(u32, u32)> {
    let (p, s) = m.split_once(',').unwrap_or((m, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

fn len(m: &str) -> Option<u32> {
    m.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::widens;

    #[test]
    fn widenings_keep_every_value() {
        for (from, to) in [
            ("integer", "bigint"),
            ("smallint", "integer"),
            ("integer", "numeric"),
            ("numeric(12,2)", "numeric(18,2)"),
            ("numeric(12,2)", "numeric"),
            ("character varying(20)", "character varying(40)"),
            ("character varying(20)", "character varying"),
            ("character varying(20)", "text"),
            ("text", "character varying"),
        ] {
            assert!(widens(from, to), "{from} → {to}");
        }
    }

    #[test]
    fn anything_else_is_a_type_change() {
        for (from, to) in [
            ("bigint", "integer"),
            ("numeric", "numeric(28,6)"),
            ("numeric(12,2)", "numeric(18,3)"),
            ("numeric(12,2)", "numeric(10,2)"),
            ("integer", "numeric(10,0)"),
            ("character varying(40)", "character varying(20)"),
            ("text", "character varying(20)"),
            ("character varying", "character varying(20)"),
            ("real", "double precision"),
            ("timestamp without time zone", "timestamp with time zone"),
            ("integer", "text"),
        ] {
            assert!(!widens(from, to), "{from} → {to}");
        }
    }
}
