//! Reading input lines with a bound on their length, so no line can grow memory without limit.

use std::io::{self, BufRead};

pub struct LineRead {
    /// Bytes taken from the input, newline included.
    pub bytes_consumed: u64,
    /// The line was longer than the bound; `buf` holds only its first part.
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
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(LineRead {
        bytes_consumed: consumed,
        too_long,
    }))
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
