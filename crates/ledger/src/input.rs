//! Reading command lines: one line at a time with a length bound, and what a line's bytes say
//! (a command, or why it is not one).
//!
//! Nothing here holds more than one line of at most the bound given; a longer line is read past
//! and flagged, never kept whole. `gongji-recon` reads institutions' files with the same reader.

use std::io::{self, BufRead};

use gongji_domain::command::LINE_BYTES_MAX;
use gongji_domain::{Command, Rejection, RejectionCode};

/// What [`read_line_bounded`] took from the input for one line.
pub struct LineRead {
    /// Bytes taken from the input, newline included.
    pub bytes_consumed: u64,
    /// The line was longer than the bound; the buffer holds only its first part.
    pub too_long: bool,
}

/// Reads one line (without its `\n` or `\r\n`) into `buf`, keeping at most `max_bytes` of it
/// and skipping the rest. `None` at the end of input.
pub fn read_line_bounded(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max_bytes: usize,
) -> io::Result<Option<LineRead>> {
    buf.clear();
    let mut consumed: u64 = 0;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            if consumed == 0 {
                return Ok(None);
            }
            break;
        }
        let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        let room = max_bytes.saturating_sub(buf.len());
        if chunk.len() > room {
            too_long = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(found_newline);
        reader.consume(used);
        consumed += used as u64;
        if found_newline {
            break;
        }
    }
    if !too_long && buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(LineRead {
        bytes_consumed: consumed,
        too_long,
    }))
}

/// The command a line read by [`read_line_bounded`] (bound [`LINE_BYTES_MAX`]) holds, or why
/// it holds none: too long, empty, not UTF-8, not a command.
pub fn parse_line(read: &LineRead, line_bytes: &[u8]) -> Result<Command, Rejection> {
    if read.too_long {
        Err(Rejection::new(
            RejectionCode::LineTooLong,
            format!("line is longer than {LINE_BYTES_MAX} bytes"),
        ))
    } else {
        match std::str::from_utf8(line_bytes) {
            Ok(text) if text.trim().is_empty() => Err(Rejection::new(
                RejectionCode::EmptyLine,
                "line is empty; each line must hold one JSON command",
            )),
            Ok(text) => gongji_domain::parse_command(text),
            Err(e) => Err(Rejection::new(
                RejectionCode::MalformedEncoding,
                format!("line is not UTF-8: {e}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_flagged_and_the_next_line_still_reads() {
        let input = b"0123456789\nab\r\nlast";
        let mut reader = io::BufReader::with_capacity(4, &input[..]);
        let mut buf = Vec::new();
        let first = read_line_bounded(&mut reader, &mut buf, 5)
            .unwrap()
            .unwrap();
        assert!(first.too_long);
        assert_eq!(buf, b"01234");
        let second = read_line_bounded(&mut reader, &mut buf, 5)
            .unwrap()
            .unwrap();
        assert!(!second.too_long);
        assert_eq!(buf, b"ab");
        read_line_bounded(&mut reader, &mut buf, 5)
            .unwrap()
            .unwrap();
        assert_eq!(buf, b"last");
        assert!(read_line_bounded(&mut reader, &mut buf, 5)
            .unwrap()
            .is_none());
    }
}
