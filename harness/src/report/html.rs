//! report.html: everything report.md says, in one self-contained page (inline CSS, the plots as
//! inline SVG, no script). The sections are report.md's ([`super::sections`]).

use std::fmt::Write;

use super::text::xml;
use super::{Report, charts, doc, sections};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:1.5em auto;\
padding:0 1em;color:#222;line-height:1.4}\
h1{margin:0;font-size:1.4em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\
.banner{padding:.6em 1em;border-radius:4px;color:#fff}\
.pass{background:#2e7d32}.fail{background:#c62828}.unknown{background:#e65100}\
table{border-collapse:collapse;margin:.5em 0 1em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f5f5f5}.num{text-align:right}\
code{background:#f3f3f3;padding:0 .2em;border-radius:2px}\
blockquote{margin:1em 0;padding-left:1em;border-left:3px solid #ccc;color:#555}\
.error{border:1px solid #c62828;padding:.5em 1em;background:#fdecea}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}";

/// Render the HTML report of `report`: a single file with everything inline.
pub fn render_html(r: &Report) -> String {
    html_with(r, &charts::render_plots(r))
}

/// [`render_html`] with the plots already rendered (file name → SVG document).
pub(super) fn html_with(r: &Report, plots: &[(&'static str, String)]) -> String {
    let title = xml(&sections::title(r));
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n");
    let _ = writeln!(out, "<meta charset=\"utf-8\">\n<title>{title}</title>");
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(
        out,
        "<header class=\"banner {}\"><h1>{title}</h1></header>",
        r.verdict.word(),
    );
    out.push_str(&doc::html(&sections::all(r), plots));
    out.push_str("</body>\n</html>\n");
    out
}
