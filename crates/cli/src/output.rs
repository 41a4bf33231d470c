//! How results look: JSON Lines for programs, aligned text for people, a progress bar on a
//! terminal.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use gongji_ledger::LineOutcome;
use serde_json::{json, Value};

/// Prints each line's outcome; returns how many were rejected.
pub fn print_outcomes(
    out: &mut impl Write,
    outcomes: &[(usize, LineOutcome)],
    json: bool,
) -> io::Result<usize> {
    let mut rejected = 0;
    for (line, outcome) in outcomes {
        match outcome {
            LineOutcome::Applied(result) => {
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"line": line, "ok": true, "result": result})
                    )?;
                } else {
                    writeln!(out, "line {line}: ok  {}", inline(result))?;
                }
            }
            LineOutcome::Rejected(rejection) => {
                rejected += 1;
                if json {
                    let error = json!({"code": rejection.code, "message": rejection.message});
                    writeln!(
                        out,
                        "{}",
                        json!({"line": line, "ok": false, "error": error})
                    )?;
                } else {
                    writeln!(
                        out,
                        "line {line}: REJECTED {}: {}",
                        rejection.code, rejection.message
                    )?;
                }
            }
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

/// A history entry as one line: position, event kind, then its fields.
pub fn history_line(value: &Value) -> String {
    let mut value = value.clone();
    let position = value["position"].take();
    let event = value["event"].take();
    if let Value::Object(map) = &mut value {
        for noisy in [
            "version",
            "event_id",
            "recorded_at_micros",
            "position",
            "event",
        ] {
            map.remove(noisy);
        }
    }
    format!(
        "#{position:<8} {:<24} {}",
        event.as_str().unwrap_or("?"),
        inline(&value)
    )
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

/// A progress bar on standard error, redrawn at most ten times a second; silent when off.
pub struct Progress {
    label: &'static str,
    enabled: bool,
    started: Instant,
    last_drawn: Option<Instant>,
}

impl Progress {
    pub fn new(label: &'static str, enabled: bool) -> Progress {
        Progress {
            label,
            enabled,
            started: Instant::now(),
            last_drawn: None,
        }
    }

    pub fn show(&mut self, done: u64, total: u64) {
        if !self.enabled
            || self
                .last_drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last_drawn = Some(Instant::now());
        let fraction = if total == 0 {
            0.0
        } else {
            (done as f64 / total as f64).min(1.0)
        };
        let width = 30;
        let filled = (fraction * width as f64) as usize;
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if fraction > 0.0 {
            elapsed / fraction - elapsed
        } else {
            0.0
        };
        eprint!(
            "\r{} [{}{}] {:>5.1}%  {:.0}s elapsed, ~{:.0}s left ",
            self.label,
            "#".repeat(filled),
            ".".repeat(width - filled),
            fraction * 100.0,
            elapsed,
            eta
        );
    }

    pub fn finish(&mut self) {
        if self.enabled && self.last_drawn.is_some() {
            eprintln!();
        }
    }
}
