//! The report's three plots, built from a run's observations: lag in seconds (with a → b's
//! write, flush and replay lag), lag in bytes per hop, and WAL on disk / retained by the
//! slots. Each one shows the fault windows.

use super::Report;
use super::plot::{Figure, Line, Mark, Panel, Unit, Window};
use super::text::at;
use crate::observe::{Observations, SeriesPoint};

/// A plot of the report: its file name beside report.md, the Markdown alt text, and how it is
/// drawn.
pub(super) struct Plot {
    /// File name ("lag-seconds.svg").
    pub file: &'static str,
    /// Alt text.
    pub alt: &'static str,
    build: fn(&Observations) -> Figure,
}

/// Every plot, in the order the reports show them.
pub(super) const PLOTS: [Plot; 3] = [
    Plot {
        file: "lag-seconds.svg",
        alt: "lag in seconds",
        build: lag_seconds,
    },
    Plot {
        file: "lag-bytes.svg",
        alt: "lag in bytes",
        build: lag_bytes,
    },
    Plot {
        file: "wal.svg",
        alt: "WAL retained",
        build: wal,
    },
];

impl Plot {
    /// The SVG document for `obs`.
    pub fn svg(&self, obs: &Observations) -> String {
        (self.build)(obs).render()
    }
}

/// The plots of `report` as (file name, SVG document): lag-seconds.svg, lag-bytes.svg and
/// wal.svg. Empty when the run recorded no observations.
pub fn render_plots(report: &Report) -> Vec<(&'static str, String)> {
    match &report.observations {
        None => Vec::new(),
        Some(obs) => PLOTS.iter().map(|p| (p.file, p.svg(obs))).collect(),
    }
}

const AB: &str = "#1f77b4";
const AB_WRITE: &str = "#17becf";
const BC: &str = "#ff7f0e";
const E2E: &str = "#2ca02c";
const FAULT_MARK: &str = "#8b1a1a";
const SLOT_MARK: &str = "#6a3d9a";
const X_LABEL: &str = "seconds since the workload started";

/// One line from one field of the series, in the given unit.
fn line(
    obs: &Observations,
    name: &str,
    colour: &'static str,
    dashed: bool,
    value: impl Fn(&SeriesPoint) -> Option<f64>,
) -> Line {
    Line {
        name: name.into(),
        colour,
        dashed,
        points: obs
            .series
            .iter()
            .map(|p| (p.t_ms as f64 / 1000.0, value(p)))
            .collect(),
    }
}

fn b(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

/// The kinds that happen once: drawn as a line, not a window.
pub(super) fn one_shot(kind: &str) -> bool {
    crate::faults::FaultKind::ONE_SHOT.contains(&kind)
}

/// Fault windows (injected..healed) and one-shot faults as marks. Faults never injected are
/// not drawn: the faults table says why.
fn faults(obs: &Observations) -> (Vec<Window>, Vec<Mark>) {
    let mut windows = Vec::new();
    let mut marks = Vec::new();
    for f in &obs.faults {
        let Some(from) = f.injected_ms else { continue };
        let from = from as f64 / 1000.0;
        if one_shot(&f.kind) {
            marks.push(Mark {
                at: from,
                label: f.description.clone(),
                colour: FAULT_MARK,
            });
        } else {
            windows.push(Window {
                from,
                to: f.healed_ms.map(|t| t as f64 / 1000.0),
                label: if f.healed_ms.is_some() {
                    f.description.clone()
                } else {
                    format!("{} (not healed)", f.description)
                },
            });
        }
    }
    (windows, marks)
}

fn lag_seconds(obs: &Observations) -> Figure {
    let (windows, marks) = faults(obs);
    Figure {
        id: "lag-seconds",
        title: "Replication lag (seconds)".into(),
        x_label: X_LABEL.into(),
        panels: vec![Panel {
            title: None,
            unit: Unit::Seconds,
            lines: vec![
                line(obs, "a → b (replay lag)", AB, false, |p| p.ab_s),
                // Write and flush lag: how much of the replay lag is the network and b's disk
                // (dashed, as parts of the replay lag). NULL (idle) stays a gap.
                line(obs, "a → b (write lag)", AB_WRITE, true, |p| p.ab_write_s),
                line(obs, "a → b (flush lag)", AB, true, |p| p.ab_flush_s),
                line(obs, "b → c", BC, false, |p| p.bc_s),
                line(obs, "end to end (heartbeat)", E2E, false, |p| p.e2e_s),
            ],
        }],
        windows,
        marks,
    }
}

fn lag_bytes(obs: &Observations) -> Figure {
    let (windows, marks) = faults(obs);
    // One panel per hop: a → b lag is often a thousand times smaller than a stalled b → c, and
    // on a shared axis it would read as zero.
    let panel = |title: &str, l: Line| Panel {
        title: Some(title.into()),
        unit: Unit::Bytes,
        lines: vec![l],
    };
    Figure {
        id: "lag-bytes",
        title: "Replication lag (bytes of WAL)".into(),
        x_label: X_LABEL.into(),
        panels: vec![
            panel(
                "a → b: a's WAL position − b's replay position",
                line(obs, "a → b", AB, false, |p| b(p.ab_bytes)),
            ),
            panel(
                "b → c: b's replay position − the slot's confirmed flush",
                line(obs, "b → c", BC, false, |p| b(p.bc_bytes)),
            ),
            panel(
                "end to end: a's WAL position − the slot's confirmed flush",
                line(obs, "end to end", E2E, false, |p| b(p.e2e_bytes)),
            ),
        ],
        windows,
        marks,
    }
}

fn wal(obs: &Observations) -> Figure {
    let (windows, mut marks) = faults(obs);
    if let Some(slot) = &obs.slot {
        for (i, (t, status)) in slot.wal_status_changes.iter().enumerate() {
            // The slot starts out reserved; only what happens to it afterwards is news.
            if i == 0 && status == "reserved" {
                continue;
            }
            marks.push(Mark {
                at: *t as f64 / 1000.0,
                label: format!("slot {status} at {}", at(*t)),
                colour: SLOT_MARK,
            });
        }
    }
    Figure {
        id: "wal",
        title: "WAL on disk and retained by the slots".into(),
        x_label: X_LABEL.into(),
        panels: vec![Panel {
            title: None,
            unit: Unit::Bytes,
            lines: vec![
                line(obs, "pg_wal on a", AB, false, |p| b(p.a_wal_bytes)),
                line(obs, "pg_wal on b", BC, false, |p| b(p.b_wal_bytes)),
                line(obs, "retained on a for b's slot", AB, true, |p| {
                    b(p.a_slot_retained)
                }),
                line(obs, "retained on b for c's slot", BC, true, |p| {
                    b(p.b_slot_retained)
                }),
            ],
        }],
        windows,
        marks,
    }
}
