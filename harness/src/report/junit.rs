//! report.junit.xml: one test suite `pgrehearse.<scenario>`, one test case per expectation.
//! A failed expectation is a `<failure type="invalid">`, an undecided one a
//! `<failure type="unknown">`: unknown never passes CI. A run that stopped early adds a `run`
//! test case with an `<error>`.

use std::fmt::Write;

use chrono::SecondsFormat;

use super::Report;
use crate::verdict::Verdict;

/// Render the JUnit XML for `report`.
pub fn render_junit(r: &Report) -> String {
    let suite = format!("pgrehearse.{}", r.scenario.name);
    // A run that judged nothing ends unknown (exit 1): a CI test view must not show it green
    // or empty.
    let nothing_judged = r.error.is_none() && r.expectations.is_empty();
    let tests = r.expectations.len() + usize::from(r.error.is_some()) + usize::from(nothing_judged);
    let failures = r
        .expectations
        .iter()
        .filter(|e| e.verdict != Verdict::Valid)
        .count()
        + usize::from(nothing_judged);
    let errors = usize::from(r.error.is_some());
    let time = r
        .finished_at
        .map(|f| (f - r.started_at).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"pgrehearse\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time:.3}\" timestamp=\"{}\">",
        esc(&suite),
        r.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    out.push_str("    <properties>\n");
    let pg = r
        .postgres
        .as_ref()
        .map(|p| format!("{} ({}, {})", p.version, p.bin_dir.display(), p.source))
        .unwrap_or_default();
    for (k, v) in [
        ("seed", r.seed.to_string()),
        ("replay", r.replay_command()),
        ("run_id", r.run_id.clone()),
        ("run_dir", r.run_dir.display().to_string()),
        ("backend", r.backend.clone()),
        ("postgres", pg),
        ("pgrehearse", r.tool_version.clone()),
    ] {
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            esc(k),
            esc(&v)
        );
    }
    out.push_str("    </properties>\n");
    if let Some(e) = &r.error {
        let _ = writeln!(
            out,
            "    <testcase name=\"run\" classname=\"{}\" time=\"{time:.3}\">\n      <error type=\"error\" message=\"{}\">{}</error>\n    </testcase>",
            esc(&suite),
            esc(first_line(e)),
            esc(&format!("{e}\nreplay: {}", r.replay_command()))
        );
    }
    if nothing_judged {
        let _ = writeln!(
            out,
            "    <testcase name=\"verdict\" classname=\"{}\" time=\"{time:.3}\">\n      <failure type=\"unknown\" message=\"unknown: the run judged nothing\">{}</failure>\n    </testcase>",
            esc(&suite),
            esc(&format!(
                "the scenario sets no expectation that applies (consistent = false, no other expectation, no faults): nothing was judged, so nothing passed\nreplay: {}",
                r.replay_command()
            ))
        );
    }
    for e in &r.expectations {
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"0\"",
            esc(&e.name),
            esc(&suite)
        );
        if e.verdict == Verdict::Valid {
            out.push_str("/>\n");
            continue;
        }
        let kind = match e.verdict {
            Verdict::Unknown => "unknown",
            _ => "invalid",
        };
        let body = format!(
            "expected: {}\nobserved: {}\nevidence: {}\nreplay: {}",
            e.expected,
            e.observed,
            e.evidence,
            r.replay_command()
        );
        let _ = writeln!(
            out,
            ">\n      <failure type=\"{kind}\" message=\"{}\">{}</failure>\n    </testcase>",
            esc(&format!("{}: {}", e.verdict, e.observed)),
            esc(&body)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Escape text for XML attributes and content (shared with the HTML report).
fn esc(s: &str) -> String {
    super::text::xml(s)
}

#[cfg(test)]
mod tests {
    use super::esc;
    use crate::report::Report;

    #[test]
    fn escapes_markup_and_illegal_characters() {
        assert_eq!(
            esc("a<b & \"c\" 'd'>\u{1}\n"),
            "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;\\u{1}\n"
        );
    }

    #[test]
    fn a_run_that_judged_nothing_is_a_failing_test_case() {
        let mut r = Report::new(
            "run",
            std::path::Path::new("/runs/run"),
            &crate::scenario::Scenario::parse(
                "version = 1\n[expect]\nconsistent = false\n",
                std::path::Path::new("idle.toml"),
            )
            .unwrap(),
            7,
        );
        r.conclude(r.started_at);
        assert_eq!(r.exit_code, 1);
        let xml = super::render_junit(&r);
        assert!(xml.contains("tests=\"1\" failures=\"1\""), "{xml}");
        assert!(xml.contains("<testcase name=\"verdict\""), "{xml}");
        assert!(xml.contains("<failure type=\"unknown\""), "{xml}");
    }
}
