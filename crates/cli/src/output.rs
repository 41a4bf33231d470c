//! How `apply`'s results look: JSON Lines for programs, labelled lines for people (written by
//! [`crate::text`]); and a progress bar on a terminal.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use gongji_ledger::LineOutcome;
use gongji_recon::render::terminal_safe;
use gongji_recon::words::Lang;
use gongji_server::answers::write_outcome_json;

use crate::print;
use crate::text::{self, labels, Style};

/// `line N: ` (`第 N 行：`).
fn line_no(line: usize, style: &Style) -> String {
    match style.lang {
        Lang::Zh => format!("第 {line} 行："),
        Lang::En => format!("line {line}: "),
    }
}

/// Prints each line's outcome (text: its result labelled, [`labels::RESULT`], in the language
/// chosen); returns how many were rejected.
pub fn print_outcomes(
    out: &mut impl Write,
    outcomes: &[(usize, LineOutcome)],
    json: bool,
) -> io::Result<usize> {
    let style = Style::untimed();
    let mut rejected = 0;
    for (line, outcome) in outcomes {
        if matches!(outcome, LineOutcome::Rejected(_)) {
            rejected += 1;
        }
        match outcome {
            _ if json => write_outcome_json(out, *line, outcome)?,
            LineOutcome::Applied(result) => {
                let value = serde_json::to_value(result)?;
                let said = text::inline(&value, labels::RESULT, &style);
                let ok = style.pick("成功", "ok");
                writeln!(
                    out,
                    "{}{ok}  {}",
                    line_no(*line, &style),
                    terminal_safe(&said)
                )?;
            }
            LineOutcome::Rejected(rejection) => {
                writeln!(
                    out,
                    "{}{} {}{}{}",
                    line_no(*line, &style),
                    style.pick("拒绝", "REJECTED"),
                    rejection.code,
                    style.pick("：", ": "),
                    terminal_safe(&rejection.message)
                )?;
            }
        }
    }
    Ok(rejected)
}

#[derive(Default)]
pub struct Totals {
    pub lines: usize,
    pub rejected: usize,
}

impl Totals {
    pub fn add(&mut self, lines: usize, rejected: usize) {
        self.lines += lines;
        self.rejected += rejected;
    }

    pub fn summary(&self, elapsed: Duration, lang: Lang) -> String {
        let rate = self.lines as f64 / elapsed.as_secs_f64().max(1e-9);
        let (lines, applied, rejected) = (self.lines, self.lines - self.rejected, self.rejected);
        match lang {
            Lang::Zh => format!(
                "共 {lines} 行：执行 {applied} 行，拒绝 {rejected} 行，用时 {elapsed:.2?}（每秒 {rate:.0} 行）"
            ),
            Lang::En => format!(
                "{lines} lines: {applied} applied, {rejected} rejected, in {elapsed:.2?} ({rate:.0} lines/s)"
            ),
        }
    }
}

/// How progress is shown: not at all, as a bar redrawn in place, or as plain lines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Off,
    Bar,
    Plain,
}

/// Progress on standard error, phase by phase (`verify: chain`, `verify: invariants`, …): an
/// `indicatif` bar, redrawn at most ten times a second and once more, as last reported, when
/// its phase ends (a count and a spinner while the total is unknown); silent when off. With
/// `GONGJI_PROGRESS=plain` in the environment (for tests and logs) it is plain lines instead,
/// whatever standard error is: the phase's name when it starts and its last percentage when it
/// ends.
pub struct Progress {
    label: &'static str,
    phase: Option<&'static str>,
    shown: Shown,
    /// The current phase's bar, when shown as a bar.
    bar: Option<ProgressBar>,
    /// Whether the bar's style counts toward a known total (else it counts with a spinner);
    /// none set yet.
    bounded: Option<bool>,
    /// The last `(done, total)` reported in this phase.
    last: Option<(u64, u64)>,
}

/// The bar toward a known total: `export: records [#####>....]  42%  3s elapsed, ~4s left`.
const BOUNDED: &str = "{prefix} [{bar:30}] {percent:>3}%  {elapsed} elapsed, ~{eta} left";
/// While the total is unknown: `export: accounts ⠙ 40960  3s`.
const COUNTING: &str = "{prefix} {spinner} {pos}  {elapsed}";

impl Progress {
    pub fn new(label: &'static str, enabled: bool) -> Progress {
        Progress::shown(label, if enabled { Shown::Bar } else { Shown::Off })
    }

    fn shown(label: &'static str, shown: Shown) -> Progress {
        Progress {
            label,
            phase: None,
            shown,
            bar: None,
            bounded: None,
            last: None,
        }
    }

    /// A bar drawn only when standard error is a terminal; plain lines with
    /// `GONGJI_PROGRESS=plain`.
    pub fn on_terminal(label: &'static str) -> Progress {
        let shown = if std::env::var_os("GONGJI_PROGRESS").is_some_and(|v| v == "plain") {
            Shown::Plain
        } else if io::stderr().is_terminal() {
            Shown::Bar
        } else {
            Shown::Off
        };
        Progress::shown(label, shown)
    }

    /// Starts phase `name`, ending the one before (if it is another).
    pub fn phase(&mut self, name: &'static str) {
        if self.phase == Some(name) {
            return;
        }
        if self.phase.is_some() {
            self.finish();
        }
        self.phase = Some(name);
        self.last = None;
        match self.shown {
            Shown::Off => {}
            // The bar is made by the phase's first report (so a phase that reports nothing
            // draws nothing).
            Shown::Bar => {}
            Shown::Plain => print::error_text(&format!("{}: {name}\n", self.label)),
        }
    }

    /// Progress `done` of `total` in phase `name` (started if it is not the current one).
    pub fn step(&mut self, name: &'static str, done: u64, total: u64) {
        self.phase(name);
        self.show(done, total);
    }

    /// Progress `done` of `total` (0: not known) in the current phase.
    pub fn show(&mut self, done: u64, total: u64) {
        self.last = Some((done, total));
        if self.shown != Shown::Bar {
            return;
        }
        if self.bar.is_none() {
            self.bar = Some(self.new_bar());
        }
        let Some(bar) = &self.bar else {
            return;
        };
        let bounded = total > 0;
        if bounded {
            bar.set_length(total);
        }
        bar.set_position(done);
        // The style last: setting it draws, and the bar then shows this report.
        if self.bounded != Some(bounded) {
            let template = if bounded { BOUNDED } else { COUNTING };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("#>."));
            }
            self.bounded = Some(bounded);
        }
    }

    /// A bar for the current phase, on standard error (drawn at most ten times a second), its
    /// style set by the report that makes it.
    fn new_bar(&mut self) -> ProgressBar {
        self.bounded = None;
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
        bar.set_prefix(self.name());
        bar
    }

    /// The share done: nothing to do is all done; an unknown total (0 of something) is none.
    fn fraction(done: u64, total: u64) -> f64 {
        match (done, total) {
            (0, 0) => 1.0,
            (_, 0) => 0.0,
            _ => (done as f64 / total as f64).min(1.0),
        }
    }

    fn name(&self) -> String {
        match self.phase {
            Some(phase) => format!("{}: {phase}", self.label),
            None => self.label.to_string(),
        }
    }

    /// Ends the current phase showing its last report (a bar is drawn once more and left on
    /// its line).
    pub fn finish(&mut self) {
        match self.shown {
            Shown::Off => {}
            Shown::Bar => {
                if let Some(bar) = self.bar.take() {
                    // Left as last reported (`abandon`: `finish` would fill it, even for a
                    // phase that failed partway) and its line ended (indicatif leaves the
                    // cursor after the bar), unless indicatif drew nothing (a dumb terminal).
                    let drawn = !bar.is_hidden();
                    bar.abandon();
                    if drawn {
                        print::error_text("\n");
                    }
                }
            }
            Shown::Plain => {
                let (done, total) = self.last.unwrap_or((0, 1));
                print::error_text(&format!(
                    "{} {:.1}%\n",
                    self.name(),
                    Progress::fraction(done, total) * 100.0
                ));
            }
        }
        self.last = None;
    }
}
