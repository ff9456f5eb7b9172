//! The human summary, report.md: verdict and seed first, then the run, timings, workload,
//! what the chain did under faults (with the plots beside it as SVG files), verification,
//! ledger, expectations with their evidence and notes. Short enough to read in a CI log. The
//! sections are the HTML report's ([`super::sections`]).

use super::Report;
use super::text::md;

/// Render the Markdown summary of `report`.
pub fn render_markdown(r: &Report) -> String {
    let mut out = format!("# {}\n\n", md(&super::sections::title(r)));
    out.push_str(&super::doc::markdown(&super::sections::all(r)));
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::report::Report;

    #[test]
    fn the_scenario_name_and_description_are_text_not_markup() {
        let scenario = crate::scenario::Scenario::parse(
            "version = 1\nname = \"*bold* <b>\"\ndescription = \"<!-- hides the rest\\r\\n| breaks a table\"\n",
            std::path::Path::new("marked.toml"),
        )
        .unwrap();
        let mut r = Report::new("run", std::path::Path::new("/runs/run"), &scenario, 7);
        r.conclude(r.started_at);
        let md = super::render_markdown(&r);
        assert!(md.contains("\\*bold\\* \\<b\\>"), "{md}");
        assert!(
            md.contains("> \\<!-- hides the rest\n> \\| breaks a table\n"),
            "{md}"
        );
        assert!(!md.contains('\r'), "{md:?}");
    }
}
