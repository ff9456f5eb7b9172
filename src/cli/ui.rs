//! Terminal output: log lines and progress bars that do not trample each other.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Output settings and the shared progress area.
#[derive(Clone)]
pub struct Ui {
    multi: MultiProgress,
    /// Whoever read stdout went away (`status --watch | head -1`): nothing more is printed, and
    /// loops that print stop.
    stdout_closed: Arc<AtomicBool>,
}

/// Write a line, never panicking as `println!` does on a closed pipe.
fn emit(mut w: impl Write, line: &str) -> std::io::Result<()> {
    writeln!(w, "{line}")?;
    w.flush()
}

/// A line on stderr that never panics as `eprintln!` does: stderr may be a pipe whose reader
/// the same Ctrl-C ended (`| tee log`) or a hung-up terminal, and cleanup must still follow.
pub fn say(line: impl AsRef<str>) {
    let _ = emit(std::io::stderr(), line.as_ref());
}

/// Routes tracing output through the progress area so bars are redrawn below log lines.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let line = harness::secret::redact(text.trim_end_matches('\n'));
        // A closed stderr loses the log line, nothing else.
        match MULTI.get() {
            Some(m) if !m.is_hidden() => m.suspend(|| emit(std::io::stderr(), &line)),
            _ => emit(std::io::stderr(), &line),
        }
        .ok();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Ui {
    /// Set up logging: `-v` for debug, `-q` for warnings only, `RUST_LOG` wins over both.
    pub fn init(verbose: u8, quiet: bool) -> Ui {
        let multi = MultiProgress::new();
        if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let _ = MULTI.set(multi.clone());
        let level = match (quiet, verbose) {
            (true, _) => "warn",
            (false, 0) => "info",
            (false, 1) => "debug",
            _ => "trace",
        };
        let filter = std::env::var("RUST_LOG")
            .unwrap_or_else(|_| format!("warn,pgrehearse={level},harness={level}"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .without_time()
            .with_writer(|| LogWriter)
            .try_init();
        Ui {
            multi,
            stdout_closed: Arc::default(),
        }
    }

    /// A spinner for a step of unknown length.
    pub fn spinner(&self, msg: &str) -> ProgressBar {
        let pb = self.multi.add(ProgressBar::new_spinner());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("static template"),
        );
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    /// A bar counting up to `len` (seconds of workload, tables to verify).
    pub fn bar(&self, len: u64, msg: &str) -> ProgressBar {
        let pb = self.multi.add(ProgressBar::new(len));
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {prefix}")
                .expect("static template")
                .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        pb
    }

    /// Print a line to stdout (results), keeping bars intact.
    pub fn out(&self, line: impl AsRef<str>) {
        if self.stdout_closed() {
            return;
        }
        let line = line.as_ref();
        let res = if self.multi.is_hidden() {
            emit(std::io::stdout().lock(), line)
        } else {
            self.multi.suspend(|| emit(std::io::stdout().lock(), line))
        };
        if res.is_err() {
            self.stdout_closed.store(true, Ordering::SeqCst);
        }
    }

    /// Whether stdout's reader has gone away.
    pub fn stdout_closed(&self) -> bool {
        self.stdout_closed.load(Ordering::SeqCst)
    }

    /// Clear the terminal between `--watch` refreshes, like `watch`.
    pub fn clear_screen(&self) {
        if !self.stdout_closed() {
            let mut o = std::io::stdout().lock();
            if write!(o, "\x1b[2J\x1b[H").and_then(|()| o.flush()).is_err() {
                self.stdout_closed.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// Progress hooks the library calls during a run, drawn as bars.
pub struct BarProgress {
    ui: Ui,
    current: std::sync::Mutex<Option<ProgressBar>>,
}

impl BarProgress {
    pub fn new(ui: &Ui) -> Arc<BarProgress> {
        Arc::new(BarProgress {
            ui: ui.clone(),
            current: std::sync::Mutex::new(None),
        })
    }
}

impl harness::run::Progress for BarProgress {
    fn phase(&self, name: &str) {
        let mut cur = self.current.lock().expect("progress lock");
        if let Some(pb) = cur.take() {
            pb.finish_and_clear();
        }
        *cur = Some(self.ui.spinner(name));
    }

    fn measured(&self, name: &str, done: u64, total: u64) {
        let mut cur = self.current.lock().expect("progress lock");
        match cur.as_ref() {
            Some(pb) if pb.length() == Some(total) => {
                pb.set_position(done);
            }
            _ => {
                if let Some(pb) = cur.take() {
                    pb.finish_and_clear();
                }
                let pb = self.ui.bar(total, name);
                pb.set_position(done);
                *cur = Some(pb);
            }
        }
    }

    fn note(&self, text: &str) {
        if let Some(pb) = self.current.lock().expect("progress lock").as_ref() {
            pb.set_prefix(text.to_string());
        }
    }

    fn done(&self) {
        if let Some(pb) = self.current.lock().expect("progress lock").take() {
            pb.finish_and_clear();
        }
    }
}
