//! The scenario text and where its errors point: byte spans become `file:line:column`.

use std::ops::Range;
use std::path::Path;

use crate::error::Error;

/// A scenario file's text and the path used to name it in messages.
pub(super) struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Source<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str) -> Self {
        Source { path, text }
    }

    /// The file, for errors that point at no place in it.
    pub(super) fn path(&self) -> &'a Path {
        self.path
    }

    /// 1-based line and column of a byte offset. Columns count characters, not bytes, so a
    /// caret under a non-ASCII key lands where an editor shows it.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// `path:line:col` of the start of `span`, for errors found after parsing.
    pub(super) fn at(&self, span: Range<usize>) -> String {
        let (line, col) = self.line_col(span.start);
        format!("{}:{line}:{col}", self.path.display())
    }

    /// A usage error `path:line:col: msg` pointing at the start of `span`.
    pub(super) fn error(&self, span: Range<usize>, msg: impl AsRef<str>) -> Error {
        let (line, col) = self.line_col(span.start);
        Error::usage(format!(
            "{}:{line}:{col}: {}",
            self.path.display(),
            msg.as_ref()
        ))
    }

    /// Turn toml's error (syntax, unknown key, wrong type) into ours, with a hint when the key
    /// looks like a misspelling of a known one.
    pub(super) fn toml_error(&self, e: &toml::de::Error) -> Error {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim_end();
        let err = self.error(span, msg);
        match misspelling_hint(msg) {
            Some(hint) => err.with_hint(hint),
            None => err,
        }
    }
}

/// serde's unknown-field message is "unknown field `conections`, expected one of `enabled`,
/// `connections`, ...": offer the closest expected name when it is a plausible typo.
fn misspelling_hint(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (got, expected) = rest.split_once('`')?;
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|cand| (edit_distance(got, cand), cand))
        .min()?;
    (best.0 <= 2 || (best.0 <= 3 && got.len() > 8)).then(|| format!("did you mean `{}`?", best.1))
}

/// Levenshtein distance; the inputs are short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nnamé = 2\n  x = 3";
        let s = Source::new(Path::new("f.toml"), text);
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(text.find("= 2").unwrap()), (2, 6));
        assert_eq!(s.line_col(text.find('x').unwrap()), (3, 3));
        assert_eq!(s.line_col(10_000), (3, 8));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            misspelling_hint(
                "unknown field `conections`, expected one of `enabled`, `connections`"
            ),
            Some("did you mean `connections`?".into())
        );
        assert_eq!(
            misspelling_hint("unknown field `faults`, expected one of `version`, `name`"),
            None
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
