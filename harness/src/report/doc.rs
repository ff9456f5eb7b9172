//! A tiny document model (sections of paragraphs, lists, tables and plots) rendered both as
//! Markdown and as HTML, so the two reports say the same thing in the same words and escaping is
//! done in one place per format.

use std::fmt::Write;

use super::text::{cell, code, md, xml};

/// A run of inline text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Span {
    /// Ordinary text; escaped for the format.
    Plain(String),
    /// Bold.
    Strong(String),
    /// Monospace (names, paths, SQL).
    Code(String),
}

/// Inline text: a few spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Text(pub Vec<Span>);

impl Text {
    /// Plain text.
    pub fn plain(s: impl Into<String>) -> Text {
        Text(vec![Span::Plain(s.into())])
    }

    /// Bold text.
    pub fn strong(s: impl Into<String>) -> Text {
        Text(vec![Span::Strong(s.into())])
    }

    /// Monospace text.
    pub fn code(s: impl Into<String>) -> Text {
        Text(vec![Span::Code(s.into())])
    }

    /// This text followed by plain `s`.
    pub fn then(mut self, s: impl Into<String>) -> Text {
        self.0.push(Span::Plain(s.into()));
        self
    }

    /// This text followed by monospace `s`.
    pub fn then_code(mut self, s: impl Into<String>) -> Text {
        self.0.push(Span::Code(s.into()));
        self
    }

    /// This text followed by bold `s`.
    pub fn then_strong(mut self, s: impl Into<String>) -> Text {
        self.0.push(Span::Strong(s.into()));
        self
    }

    fn markdown(&self) -> String {
        self.0
            .iter()
            .map(|s| match s {
                Span::Plain(s) => md(s),
                Span::Strong(s) => format!("**{}**", md(s)),
                Span::Code(s) => code(s),
            })
            .collect()
    }

    fn html(&self) -> String {
        self.0
            .iter()
            .map(|s| match s {
                Span::Plain(s) => xml(s).replace('\n', "<br>"),
                Span::Strong(s) => format!("<strong>{}</strong>", xml(s)),
                Span::Code(s) => format!("<code>{}</code>", xml(s)),
            })
            .collect()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::plain(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::plain(s)
    }
}

/// A table: a header row, which columns are numbers (right-aligned), and the rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Table {
    /// Column titles.
    pub head: Vec<String>,
    /// Right-align these columns.
    pub numeric: Vec<bool>,
    /// The cells, row by row.
    pub rows: Vec<Vec<Text>>,
}

impl Table {
    /// A table with these columns; a title starting with '>' is numeric (the '>' is dropped).
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head
                .iter()
                .map(|h| h.trim_start_matches('>').to_string())
                .collect(),
            numeric: head.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row.
    pub fn row(&mut self, cells: Vec<Text>) {
        self.rows.push(cells);
    }
}

/// A block of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Block {
    /// A paragraph.
    Para(Text),
    /// A bulleted list.
    List(Vec<Text>),
    /// A table.
    Table(Table),
    /// Something that went wrong, set apart (HTML: a boxed paragraph).
    Alert(Text),
    /// Quoted lines (the scenario's description).
    Quote(Vec<Text>),
    /// A plot: a file beside report.md, inlined in HTML.
    Plot {
        /// File name.
        file: &'static str,
        /// Alt text.
        alt: &'static str,
    },
}

/// A titled section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Section {
    /// The heading; empty for the lines before the first heading.
    pub title: String,
    /// Its content.
    pub blocks: Vec<Block>,
}

impl Section {
    /// An empty section.
    pub fn new(title: impl Into<String>) -> Section {
        Section {
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    /// Add a paragraph.
    pub fn para(&mut self, t: impl Into<Text>) {
        self.blocks.push(Block::Para(t.into()));
    }

    /// Add a block.
    pub fn push(&mut self, b: Block) {
        self.blocks.push(b);
    }
}

/// The sections as Markdown, each ending with a blank line.
pub(super) fn markdown(sections: &[Section]) -> String {
    let mut out = String::new();
    for s in sections {
        if !s.title.is_empty() {
            let _ = writeln!(out, "## {}\n", s.title);
        }
        for b in &s.blocks {
            match b {
                Block::Para(t) => {
                    let _ = writeln!(out, "{}\n", t.markdown());
                }
                Block::Alert(t) => {
                    let _ = writeln!(out, "{}\n", t.markdown());
                }
                Block::Quote(lines) => {
                    let lines: Vec<String> = lines.iter().map(Text::markdown).collect();
                    let _ = writeln!(out, "> {}\n", lines.join("\n> "));
                }
                Block::List(items) => {
                    for i in items {
                        let _ = writeln!(out, "- {}", i.markdown());
                    }
                    out.push('\n');
                }
                Block::Table(t) => {
                    let _ = writeln!(out, "| {} |", t.head.join(" | "));
                    let rule: Vec<&str> = t
                        .numeric
                        .iter()
                        .map(|n| if *n { "---:" } else { "---" })
                        .collect();
                    let _ = writeln!(out, "|{}|", rule.join("|"));
                    for r in &t.rows {
                        let cells: Vec<String> = r.iter().map(|c| cell(&c.markdown())).collect();
                        let _ = writeln!(out, "| {} |", cells.join(" | "));
                    }
                    out.push('\n');
                }
                Block::Plot { file, alt } => {
                    let _ = writeln!(out, "![{alt}]({file})\n");
                }
            }
        }
    }
    out
}

/// The sections as HTML; plots are inlined from `plots` (file name → SVG document).
pub(super) fn html(sections: &[Section], plots: &[(&'static str, String)]) -> String {
    let mut out = String::new();
    for s in sections {
        out.push_str("<section>\n");
        if !s.title.is_empty() {
            let _ = writeln!(out, "<h2>{}</h2>", xml(&s.title));
        }
        for b in &s.blocks {
            match b {
                Block::Para(t) => {
                    let _ = writeln!(out, "<p>{}</p>", t.html());
                }
                Block::Alert(t) => {
                    let _ = writeln!(out, "<p class=\"error\">{}</p>", t.html());
                }
                Block::Quote(lines) => {
                    let lines: Vec<String> = lines.iter().map(Text::html).collect();
                    let _ = writeln!(out, "<blockquote>{}</blockquote>", lines.join("<br>"));
                }
                Block::List(items) => {
                    out.push_str("<ul>\n");
                    for i in items {
                        let _ = writeln!(out, "<li>{}</li>", i.html());
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table(t) => table_html(&mut out, t),
                Block::Plot { file, alt } => match plots.iter().find(|(f, _)| f == file) {
                    Some((_, svg)) => {
                        let _ = write!(out, "<figure>\n{svg}</figure>\n");
                    }
                    None => {
                        let _ = writeln!(out, "<p>({} not drawn)</p>", xml(alt));
                    }
                },
            }
        }
        out.push_str("</section>\n");
    }
    out
}

fn table_html(out: &mut String, t: &Table) {
    let class = |i: usize| {
        if t.numeric.get(i).copied().unwrap_or(false) {
            " class=\"num\""
        } else {
            ""
        }
    };
    out.push_str("<table>\n");
    // A key/value table has no column titles; an empty header row would only add a bar.
    if t.head.iter().any(|h| !h.is_empty()) {
        out.push_str("<thead><tr>");
        for (i, h) in t.head.iter().enumerate() {
            let _ = write!(out, "<th{}>{}</th>", class(i), xml(h));
        }
        out.push_str("</tr></thead>\n");
    }
    out.push_str("<tbody>\n");
    for r in &t.rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let _ = write!(out, "<td{}>{}</td>", class(i), c.html());
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Section> {
        let mut s = Section::new("Faults");
        s.para(Text::strong("C needs a full resync").then(": <b>&</b>"));
        let mut t = Table::new(&["kind", ">lost"]);
        t.row(vec![Text::code("a|b"), "2".into()]);
        s.push(Block::Table(t));
        s.push(Block::List(vec!["x*y".into()]));
        s.push(Block::Plot {
            file: "wal.svg",
            alt: "WAL retained",
        });
        vec![s]
    }

    #[test]
    fn markdown_escapes_data_and_embeds_plots() {
        assert_eq!(
            markdown(&sample()),
            "## Faults\n\n**C needs a full resync**: \\<b\\>\\&\\</b\\>\n\n| kind | lost |\n|---|---:|\n\
             | `a\\|b` | 2 |\n\n- x\\*y\n\n![WAL retained](wal.svg)\n\n"
        );
    }

    #[test]
    fn html_escapes_data_and_inlines_plots() {
        let out = html(&sample(), &[("wal.svg", "<svg></svg>\n".into())]);
        assert!(
            out.contains("<p><strong>C needs a full resync</strong>: &lt;b&gt;&amp;&lt;/b&gt;</p>")
        );
        assert!(out.contains("<td><code>a|b</code></td><td class=\"num\">2</td>"));
        assert!(out.contains("<figure>\n<svg></svg>\n</figure>"));
        assert!(html(&sample(), &[]).contains("<p>(WAL retained not drawn)</p>"));
    }
}
