//! `gongji-feed-count`: the counting end of `tools/serve-bench`'s change-feed subscriber. Reads
//! a server-sent event stream on standard input (`curl -N …/v1/events?from=FROM` writes it
//! there), checks that the events' ids run `FROM, FROM+1, …` with no gap and that each has
//! its `data:` line, and exits as soon as it has the event of position `UNTIL - 1`, printing
//! one JSON line: `{"events":…,"bytes":…}` (the caller times it). With `--keep FILE`, what it
//! read is also written to FILE (the bytes of the stream, for a baseline that reads them again).
//!
//! ```text
//! gongji-feed-count --from FROM --until UNTIL [--keep FILE]
//! ```
//! Exit 1 (with why on standard error) if the stream ends first, an id is out of order, or the
//! feed sends its `end` event.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;

/// Reads standard input in blocks this large.
const READ_BYTES: usize = 1 << 20;

struct Count {
    next: u64,
    until: u64,
    events: u64,
    bytes: u64,
    /// An `id:` line was read and its `data:` line not yet.
    wants_data: bool,
}

impl Count {
    /// Takes one line (without its newline); `Ok(true)` once the last event wanted is in.
    fn line(&mut self, line: &[u8]) -> Result<bool, String> {
        if let Some(id) = line.strip_prefix(b"id: ") {
            let id = std::str::from_utf8(id)
                .ok()
                .and_then(|id| id.parse::<u64>().ok());
            if self.wants_data || id != Some(self.next) {
                return Err(format!(
                    "event {} after event {}: expected {} (each with its data)",
                    String::from_utf8_lossy(line),
                    self.next.wrapping_sub(1),
                    self.next
                ));
            }
            self.wants_data = true;
        } else if line.starts_with(b"data: ") && self.wants_data {
            self.wants_data = false;
            self.events += 1;
            self.next += 1;
            return Ok(self.next >= self.until);
        } else if line.starts_with(b"event: end") {
            return Err(format!("the feed ended at position {}", self.next));
        }
        Ok(false)
    }
}

/// Counts the events of `input` from `from` until `until`, copying every line read to `keep`.
fn count(input: impl Read, from: u64, until: u64, keep: &mut dyn Write) -> Result<Count, String> {
    let mut count = Count {
        next: from,
        until,
        events: 0,
        bytes: 0,
        wants_data: false,
    };
    if from >= until {
        return Ok(count);
    }
    let mut input = BufReader::with_capacity(READ_BYTES, input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if read == 0 {
            return Err(format!(
                "the stream ended after {} events, before position {until}",
                count.events
            ));
        }
        count.bytes += read as u64;
        keep.write_all(&line).map_err(|e| e.to_string())?;
        if count.line(line.strip_suffix(b"\n").unwrap_or(&line))? {
            return Ok(count);
        }
    }
}

struct Arguments {
    from: u64,
    until: u64,
    keep: Option<String>,
}

fn arguments() -> Result<Arguments, String> {
    let usage = "usage: gongji-feed-count --from FROM --until UNTIL [--keep FILE]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut from, mut until, mut keep) = (None, None, None);
    for pair in args.chunks(2) {
        let value = pair.get(1).ok_or(usage)?;
        let number = || value.parse::<u64>().map_err(|_| usage.to_string());
        match pair[0].as_str() {
            "--from" => from = Some(number()?),
            "--until" => until = Some(number()?),
            "--keep" => keep = Some(value.clone()),
            _ => return Err(usage.into()),
        }
    }
    Ok(Arguments {
        from: from.ok_or(usage)?,
        until: until.ok_or(usage)?,
        keep,
    })
}

fn run() -> Result<Count, String> {
    let args = arguments()?;
    let mut keep: Box<dyn Write> = match &args.keep {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).map_err(|e| format!("{path}: {e}"))?,
        )),
        None => Box::new(std::io::sink()),
    };
    let count = count(std::io::stdin(), args.from, args.until, &mut keep)?;
    keep.flush().map_err(|e| e.to_string())?;
    Ok(count)
}

fn main() -> ExitCode {
    match run() {
        Ok(count) => {
            println!(r#"{{"events":{},"bytes":{}}}"#, count.events, count.bytes);
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("gongji-feed-count: {why}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &[u8] =
        b": hello\n\nid: 3\ndata: {\"position\":3}\n\nid: 4\ndata: {}\n\nid: 5\ndata: {}\n\n";

    #[test]
    fn counts_to_the_last_position_wanted_and_stops_there() {
        let mut kept = Vec::new();
        let count = count(FEED, 3, 5, &mut kept).expect("counted");
        assert_eq!((count.events, count.next), (2, 5));
        let end = FEED.windows(6).position(|w| w == b"id: 5\n").unwrap();
        assert_eq!(
            kept,
            &FEED[..end - 1],
            "what it read, up to the last data line"
        );
    }

    #[test]
    fn a_gap_a_missing_data_line_an_end_event_or_a_short_stream_fail() {
        assert!(
            count(FEED, 2, 5, &mut std::io::sink()).is_err(),
            "starts at 3, not 2"
        );
        assert!(count(
            &b"id: 0\nid: 1\ndata: {}\n\n"[..],
            0,
            2,
            &mut std::io::sink()
        )
        .is_err());
        assert!(count(
            &b"id: 0\ndata: {}\n\nid: 2\ndata: {}\n\n"[..],
            0,
            3,
            &mut std::io::sink()
        )
        .is_err());
        assert!(count(&b"event: end\ndata: {}\n\n"[..], 0, 1, &mut std::io::sink()).is_err());
        assert!(
            count(FEED, 3, 7, &mut std::io::sink()).is_err(),
            "ends before 7"
        );
    }
}
