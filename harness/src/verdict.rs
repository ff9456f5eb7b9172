//! Three-valued verdicts, as Jepsen's checkers return them: an expectation holds, does not hold,
//! or could not be decided. When verdicts merge, Invalid beats Unknown beats Valid — an
//! undecided check never counts as a pass.

use std::fmt;

/// The outcome of one check or expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It holds.
    Valid,
    /// It does not hold.
    Invalid,
    /// It could not be decided (a checker crashed, evidence was missing).
    Unknown,
}

impl Verdict {
    /// Combine two verdicts: Invalid > Unknown > Valid.
    pub fn merge(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// Merge many; an empty set is Valid.
    pub fn all(vs: impl IntoIterator<Item = Verdict>) -> Verdict {
        vs.into_iter().fold(Verdict::Valid, Verdict::merge)
    }

    /// "pass", "fail", "unknown": the words reports use.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Valid => "pass",
            Verdict::Invalid => "fail",
            Verdict::Unknown => "unknown",
        }
    }

    /// Process exit code for a run ending with this verdict (unknown fails CI too).
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Valid => 0,
            _ => 1,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::*;
    use super::*;

    #[test]
    fn invalid_beats_unknown_beats_valid() {
        assert_eq!(Valid.merge(Valid), Valid);
        assert_eq!(Valid.merge(Unknown), Unknown);
        assert_eq!(Unknown.merge(Invalid), Invalid);
        assert_eq!(Verdict::all([Valid, Unknown, Valid]), Unknown);
        assert_eq!(Verdict::all([]), Valid);
        assert_eq!(Unknown.exit_code(), 1);
    }
}
