//! `gongji apply` and `gongji policy load`: the commands that write. Both hand lines to the
//! ledger and print outcomes the ledger hands back once durable.
//!
//! `apply` prints every line's outcome, or with `--quiet` only the rejected lines'; in text, a
//! summary and the refusals tallied by code follow (`refused: insufficient_balance 52,
//! unknown_member 3`, most frequent first), in the language chosen (`crate::text`); with `--json`
//! standard output holds only the line objects (JSON Lines, one a line, in input order) and the
//! tally goes to standard error.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use gongji_ledger::{now_micros, DurableGroup, LineOutcome, StreamError, StreamOptions};
use gongji_recon::words::Lang;
use serde_json::json;

use crate::args::ApplyArgs;
use crate::failure::{Code, Failure};
use crate::location::Location;
use crate::open::open_or_create;
use crate::output;
use crate::print;
use crate::text;

/// Inputs smaller than this get no progress bar (they are done before one would help).
const PROGRESS_INPUT_BYTES_MIN: u64 = 4 * 1024 * 1024;

/// `gongji apply`: [`Ledger::apply_stream`](gongji_ledger::Ledger::apply_stream) with a sink
/// that prints each group's outcomes (it is given a group only once the group is durable) and
/// counts them for the summary. Exit 1 if a line was rejected, 2 if the input became
/// unreadable (after printing what was read).
pub fn apply(data: &Location, args: &ApplyArgs) -> Result<ExitCode, Failure> {
    let file = args.file.as_str();
    let (source, size_bytes): (Box<dyn Read + Send>, Option<u64>) = if file == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let handle =
            File::open(file).map_err(|e| Failure::io(format!("cannot read {file}: {e}")))?;
        let size = handle.metadata().ok().map(|m| m.len());
        (Box::new(handle), size)
    };
    let mut ledger = open_or_create(data)?;
    if let Some(dirty) = args.store_after_dirty {
        ledger.set_deferred_dirty_max(dirty as usize);
    }
    let show_progress =
        io::stderr().is_terminal() && size_bytes.is_some_and(|s| s > PROGRESS_INPUT_BYTES_MIN);
    let mut bar = output::Progress::new("apply", show_progress);
    let started = Instant::now();
    let mut out = io::BufWriter::new(print::stdout());
    let mut totals = output::Totals::default();
    let mut refusals = Refusals::default();
    let mut print = |group: &DurableGroup| -> io::Result<()> {
        let rejected = refusals.count(group.lines());
        if args.quiet {
            let shown: Vec<(usize, LineOutcome)> = group
                .lines()
                .iter()
                .filter(|(_, outcome)| matches!(outcome, LineOutcome::Rejected(_)))
                .cloned()
                .collect();
            output::print_outcomes(&mut out, &shown, args.json)?;
        } else {
            output::print_outcomes(&mut out, group.lines(), args.json)?;
        }
        out.flush()?;
        totals.add(group.lines().len(), rejected);
        Ok(())
    };
    let options = StreamOptions {
        batch_lines: args.batch_lines as usize,
        ..StreamOptions::default()
    };
    let streamed = ledger.apply_stream(source, &options, &mut print, &mut |read_bytes| {
        bar.show(read_bytes, size_bytes.unwrap_or(0))
    });
    bar.finish();
    let unreadable = match streamed {
        Ok(_) => None,
        Err(StreamError::Unreadable { after_line, error }) => Some(format!(
            "reading {file} failed after line {after_line}: {error}"
        )),
        Err(StreamError::Sink(error)) => {
            return Err(Failure::io(format!("writing results failed: {error}")))
        }
        Err(error) => return Err(stream_failure(&error)),
    };
    // What was read before the input failed is durable and printed: the ledger closes cleanly.
    ledger.close()?;
    if let Some(message) = unreadable {
        return Err(Failure::io(message));
    }
    if !args.json {
        print::text_line(&totals.summary(started.elapsed(), text::lang()))?;
    }
    if let Some(tally) = refusals.tally() {
        if args.json {
            print::error_text(&format!("{tally}\n"));
        } else {
            print::text_line(&tally)?;
        }
    }
    Ok(exit_for(totals.rejected))
}

/// A stream that stopped: the ledger's error's code when the ledger is to blame, else `io`.
fn stream_failure<E>(error: &StreamError<E>) -> Failure
where
    StreamError<E>: std::fmt::Display,
{
    let code = match error {
        StreamError::Line { error, .. } | StreamError::NotDurable { error, .. } => {
            Failure::ledger("", error).code
        }
        _ => Code::Io,
    };
    Failure::new(code, error.to_string())
}

/// The refusals of an `apply`, counted by code.
#[derive(Default)]
struct Refusals {
    by_code: BTreeMap<&'static str, usize>,
}

impl Refusals {
    /// Counts the rejected lines among `lines`; returns how many there were.
    fn count(&mut self, lines: &[(usize, LineOutcome)]) -> usize {
        let mut rejected = 0;
        for (_, outcome) in lines {
            if let LineOutcome::Rejected(rejection) = outcome {
                *self.by_code.entry(rejection.code.as_str()).or_default() += 1;
                rejected += 1;
            }
        }
        rejected
    }

    /// `refused: CODE N, CODE N` (`拒绝原因：CODE N，CODE N`), most frequent first (ties by
    /// code), or `None` if nothing was refused.
    fn tally(&self) -> Option<String> {
        if self.by_code.is_empty() {
            return None;
        }
        let mut counts: Vec<(&str, usize)> = self.by_code.iter().map(|(c, n)| (*c, *n)).collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let said: Vec<String> = counts.iter().map(|(c, n)| format!("{c} {n}")).collect();
        Some(match text::lang() {
            Lang::Zh => format!("拒绝原因：{}", said.join("，")),
            Lang::En => format!("refused: {}", said.join(", ")),
        })
    }
}

/// Exit 1 when a line was rejected.
fn exit_for(rejected: usize) -> ExitCode {
    if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `gongji policy load FILE`: one `load_policy` line, committed, its outcome printed. A file
/// that is not a policy version is refused before the ledger is opened, naming the file and
/// the field ([`crate::policy_file::read`]).
pub fn policy_load(data: &Location, file: &Path, json: bool) -> Result<ExitCode, Failure> {
    let (policy, _) = crate::policy_file::read(file)?;
    let line = json!({"cmd": "load_policy", "policy": policy}).to_string();
    let mut ledger = open_or_create(data)?;
    ledger.apply_line(&line, now_micros())?;
    let outcome = ledger.commit()?;
    ledger.close()?;
    let rejected = output::print_outcomes(&mut print::stdout(), &[(1, outcome[0].clone())], json)
        .map_err(|e| Failure::io(format!("cannot write to standard output: {e}")))?;
    // The JSON outcome holds the refusal; standard error says it too, as for every failure.
    if let (true, LineOutcome::Rejected(rejection)) = (json, &outcome[0]) {
        print::error_line(&format!(
            "{} was refused: {}: {}",
            file.display(),
            rejection.code,
            rejection.message
        ));
    }
    Ok(exit_for(rejected))
}
