//! How results look: JSON Lines for programs, aligned text for people, a progress bar on a
//! terminal.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use gongji_ledger::LineOutcome;
use gongji_recon::render::terminal_safe;
use serde_json::Value;

use gongji_server::answers::write_outcome_json;

use crate::print;

/// Prints each line's outcome; returns how many were rejected.
pub fn print_outcomes(
    out: &mut impl Write,
    outcomes: &[(usize, LineOutcome)],
    json: bool,
) -> io::Result<usize> {
    let mut rejected = 0;
    for (line, outcome) in outcomes {
        if matches!(outcome, LineOutcome::Rejected(_)) {
            rejected += 1;
        }
        match outcome {
            _ if json => write_outcome_json(out, *line, outcome)?,
            LineOutcome::Applied(result) => {
                let value = serde_json::to_value(result)?;
                writeln!(out, "line {line}: ok  {}", terminal_safe(&inline(&value)))?;
            }
            LineOutcome::Rejected(rejection) => writeln!(
                out,
                "line {line}: REJECTED {}: {}",
                rejection.code,
                terminal_safe(&rejection.message)
            )?,
        }
    }
    Ok(rejected)
}

/// `key=value` pairs on one line, nested objects with dotted keys.
fn inline(value: &Value) -> String {
    let mut pairs = Vec::new();
    flatten("", value, &mut pairs);
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn flatten(prefix: &str, value: &Value, pairs: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, inner, pairs);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, inner) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), inner, pairs);
            }
        }
        Value::String(text) => pairs.push((prefix.to_string(), text.clone())),
        Value::Null => pairs.push((prefix.to_string(), "-".to_string())),
        other => pairs.push((prefix.to_string(), other.to_string())),
    }
}

/// One `key: value` line per field, keys aligned.
pub fn readable(value: &Value) -> String {
    let mut pairs = Vec::new();
    flatten("", value, &mut pairs);
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k:<width$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// History entries as aligned rows under a header: position, own date, recorded time (UTC),
/// event kind, the claim or payment id (`-` when the event has none), then its other fields.
pub fn history_table(entries: &[Value]) -> Vec<String> {
    let header = ["position", "date", "recorded_at", "event", "id"].map(String::from);
    let rows: Vec<([String; 5], String)> = entries.iter().map(history_row).collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for (columns, _) in &rows {
        for (width, column) in widths.iter_mut().zip(columns) {
            *width = (*width).max(column.chars().count());
        }
    }
    let line = |columns: &[String; 5], rest: &str| {
        let padded: Vec<String> = columns
            .iter()
            .zip(widths)
            .map(|(column, width)| format!("{column:<width$}"))
            .collect();
        format!("{}  {rest}", padded.join("  "))
            .trim_end()
            .to_string()
    };
    let mut lines = vec![line(&header, "details")];
    lines.extend(rows.iter().map(|(columns, rest)| line(columns, rest)));
    lines
}

/// One history entry's columns and the rest of its fields as `key=value` pairs.
fn history_row(value: &Value) -> ([String; 5], String) {
    let mut value = value.clone();
    let id = [&value["id"], &value["claim"], &value["settlement"]["claim"]]
        .into_iter()
        .find_map(Value::as_str)
        .unwrap_or("-")
        .to_string();
    let columns = [
        format!("#{}", value["position"]),
        text(&value["own_date"]),
        text(&value["recorded_at"]),
        text(&value["event"]),
        id,
    ];
    if let Value::Object(map) = &mut value {
        for shown in [
            "version",
            "event_id",
            "recorded_at_micros",
            "recorded_at",
            "own_date",
            "position",
            "event",
            "date",
            "id",
        ] {
            map.remove(shown);
        }
        // A settlement's basis is for `explain`; the history line keeps the outcome.
        if let Some(Value::Object(settlement)) = map.get_mut("settlement") {
            settlement.remove("basis");
        }
    }
    (columns, inline(&value))
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

    pub fn summary(&self, elapsed: Duration) -> String {
        let rate = self.lines as f64 / elapsed.as_secs_f64().max(1e-9);
        format!(
            "{} lines: {} applied, {} rejected, in {:.2?} ({rate:.0} lines/s)",
            self.lines,
            self.lines - self.rejected,
            self.rejected,
            elapsed
        )
    }
}

/// How progress is shown: not at all, as a bar redrawn in place, or as plain lines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Off,
    Bar,
    Plain,
}

/// Progress on standard error, phase by phase (`verify: chain`, `verify: invariants`, …): a bar
/// redrawn at most ten times a second and drawn once more, as last reported, when its phase
/// ends; silent when off. With `GONGJI_PROGRESS=plain` in the environment (for tests and logs)
/// it is plain lines instead, whatever standard error is: the phase's name when it starts and
/// its last percentage when it ends.
pub struct Progress {
    label: &'static str,
    phase: Option<&'static str>,
    shown: Shown,
    started: Instant,
    last_drawn: Option<Instant>,
    /// The last `(done, total)` reported in this phase.
    last: Option<(u64, u64)>,
}

impl Progress {
    pub fn new(label: &'static str, enabled: bool) -> Progress {
        Progress::shown(label, if enabled { Shown::Bar } else { Shown::Off })
    }

    fn shown(label: &'static str, shown: Shown) -> Progress {
        Progress {
            label,
            phase: None,
            shown,
            started: Instant::now(),
            last_drawn: None,
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
        self.started = Instant::now();
        self.last_drawn = None;
        self.last = None;
        if self.shown == Shown::Plain {
            print::error_text(&format!("{}: {name}\n", self.label));
        }
    }

    /// Progress `done` of `total` in phase `name` (started if it is not the current one).
    pub fn step(&mut self, name: &'static str, done: u64, total: u64) {
        self.phase(name);
        self.show(done, total);
    }

    pub fn show(&mut self, done: u64, total: u64) {
        self.last = Some((done, total));
        if self.shown != Shown::Bar
            || self
                .last_drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.draw(done, total);
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

    fn draw(&mut self, done: u64, total: u64) {
        self.last_drawn = Some(Instant::now());
        let fraction = Progress::fraction(done, total);
        let width = 30;
        let filled = (fraction * width as f64) as usize;
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if fraction > 0.0 {
            elapsed / fraction - elapsed
        } else {
            0.0
        };
        print::error_text(&format!(
            "\r{} [{}{}] {:>5.1}%  {:.0}s elapsed, ~{:.0}s left ",
            self.name(),
            "#".repeat(filled),
            ".".repeat(width - filled),
            fraction * 100.0,
            elapsed,
            eta
        ));
    }

    /// Ends the current phase showing its last report (a bar is drawn once more, unthrottled).
    pub fn finish(&mut self) {
        match self.shown {
            Shown::Off => {}
            Shown::Bar => {
                if let Some((done, total)) = self.last {
                    self.draw(done, total);
                }
                if self.last_drawn.is_some() {
                    print::error_text("\n");
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
        self.last_drawn = None;
        self.last = None;
    }
}

/// A claim's explanation: header, steps, positions, events.
pub fn explanation(value: &Value) -> String {
    let mut lines = vec![format!(
        "claim {} of member {} in region {}, {} (insurance year {}), policy {}",
        text(&value["claim"]),
        text(&value["member"]),
        text(&value["region"]),
        text(&value["date"]),
        value["year"],
        text(&value["policy"])
    )];
    if let Some(reversal) = value.get("reversed").filter(|r| !r.is_null()) {
        lines.push(format!(
            "  REVERSED on {} ({}): event {} at position {}, recorded {}",
            text(&reversal["date"]),
            text(&reversal["reason"]),
            text(&reversal["event_id"]),
            reversal["position"],
            text(&reversal["recorded_at"])
        ));
    }
    for (i, step) in value["steps"].as_array().into_iter().flatten().enumerate() {
        lines.push(format!("  {}. {}", i + 1, text(step)));
    }
    for (name, key) in [
        ("deductible filled", "deductible"),
        ("ordinary limit used", "ordinary_limit"),
        ("pooled fund year total", "annual_max"),
        ("account balance", "account"),
    ] {
        let position = &value[key];
        let limit = match position.get("limit") {
            Some(Value::Null) => " (no limit)".to_string(),
            Some(limit) => format!(" (limit {})", text(limit)),
            None => String::new(),
        };
        lines.push(format!(
            "  {name:<24} {} -> {}{limit}",
            text(&position["before"]),
            text(&position["after"])
        ));
    }
    lines.push("  events:".to_string());
    let events = value["events"].as_array().map_or(&[][..], Vec::as_slice);
    for row in history_table(events) {
        lines.push(format!("    {row}"));
    }
    lines.join("\n")
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

/// The replay report: records, digest, then a table of totals per region.
pub fn audit_replay(value: &Value) -> String {
    let mut lines = vec![
        format!("replayed {} records", value["records"]),
        format!("digest {}", text(&value["digest"])),
        format!(
            "{:<10} {:<13} {:>16} {:>16} {:>16}",
            "region", "", "inflow", "outflow", "balance"
        ),
    ];
    for region in value["regions"].as_array().into_iter().flatten() {
        for (name, key) in [
            ("pooled fund", "pooled"),
            ("large-amount", "large_amount"),
            ("accounts", "accounts"),
        ] {
            let figures = &region[key];
            lines.push(format!(
                "{:<10} {:<13} {:>16} {:>16} {:>16}",
                text(&region["region"]),
                name,
                text(&figures["inflow"]),
                text(&figures["outflow"]),
                text(&figures["balance"])
            ));
        }
    }
    lines.join("\n")
}

/// The verification report: OK with the count and digest, or the first failure.
pub fn audit_verify(value: &Value) -> String {
    match &value["failure"] {
        Value::Null => format!(
            "OK: {} records; checksums, hash chain, invariants and projections verified; digest {}",
            value["records"],
            text(&value["digest"])
        ),
        failure => {
            let at = match &failure["position"] {
                Value::Null => String::new(),
                position => format!(" at record {position}"),
            };
            format!(
                "FAILED ({} check){at}: {}",
                text(&failure["check"]),
                text(&failure["message"])
            )
        }
    }
}

/// An archive check: OK with what it holds (and the replay's digest), or where it fails.
pub fn archive_check(value: &Value) -> String {
    match &value["failure"] {
        Value::Null => {
            let manifest = &value["manifest"];
            let mut text = format!(
                "OK: {} records, {} policy versions, chain {}, last hash {}",
                manifest["records"],
                manifest["policies"],
                text(&manifest["chain"]),
                text(&manifest["last_hash"])
            );
            if let Value::String(digest) = &value["digest"] {
                text.push_str(&format!("\nreplayed to digest {digest}"));
                text.push_str(&format!("\n{}", audit_replay(&serde_json::json!({"records": manifest["records"], "digest": digest, "regions": value["regions"]}))));
            } else {
                text.push_str("\npartial archive (filtered): integrity checked; a replay needs a complete archive");
            }
            text
        }
        failure => {
            let at = match &failure["position"] {
                Value::Null => String::new(),
                position => format!(" (record at position {position})"),
            };
            format!(
                "FAILED at line {}{at}: {}",
                failure["line"],
                text(&failure["message"])
            )
        }
    }
}
