//! Reading institutions' CSV files: encoding detection, lines with a length bound, fields.
//!
//! Files are streamed: nothing here holds more than one line (of at most [`LINE_BYTES_MAX`]
//! bytes) and one read buffer. Every fault of a row is a [`RowFault`] naming what was wrong, so
//! the caller reports it with the line number and goes on with the next line.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use gongji_ledger::input::read_line_bounded;

use crate::ReconError;

/// The longest line read from a settlement file, in bytes; a longer line is a malformed row
/// (a 3202 row is a few hundred bytes).
pub const LINE_BYTES_MAX: usize = 16 * 1024;
/// Most columns a header may have.
pub const COLUMNS_MAX: usize = 256;
/// Read buffer for settlement files.
const READ_BUFFER_BYTES: usize = 256 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const GB18030_BOM: &[u8] = b"\x84\x31\x95\x33";

/// The text encoding a file was read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileEncoding {
    /// Valid UTF-8 throughout, no byte-order mark.
    Utf8,
    /// UTF-8 with a byte-order mark (EF BB BF), as spreadsheet exports write it.
    Utf8Bom,
    /// Not valid UTF-8, so read as GB18030 (which includes GBK and GB2312).
    Gb18030,
    /// GB18030 with its byte-order mark (84 31 95 33).
    Gb18030Bom,
}

impl FileEncoding {
    pub fn name(self) -> &'static str {
        match self {
            FileEncoding::Utf8 => "UTF-8",
            FileEncoding::Utf8Bom => "UTF-8 with BOM",
            FileEncoding::Gb18030 => "GB18030",
            FileEncoding::Gb18030Bom => "GB18030 with BOM",
        }
    }

    fn bom_bytes(self) -> usize {
        match self {
            FileEncoding::Utf8 | FileEncoding::Gb18030 => 0,
            FileEncoding::Utf8Bom => UTF8_BOM.len(),
            FileEncoding::Gb18030Bom => GB18030_BOM.len(),
        }
    }

    fn is_utf8(self) -> bool {
        matches!(self, FileEncoding::Utf8 | FileEncoding::Utf8Bom)
    }
}

/// Why one row could not be used. Reported with its line number; reading goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFault(pub String);

fn io_error(action: &str, path: &Path, error: io::Error) -> ReconError {
    ReconError::Io {
        action: action.to_string(),
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

/// Finds the file's encoding: a byte-order mark decides; otherwise the whole file is checked
/// for valid UTF-8 (one streaming pass), and GB18030 is assumed when it is not.
/// `progress(done_bytes)` is called as the pass goes.
pub fn detect_encoding(
    path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<FileEncoding, ReconError> {
    let mut file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
    let mut chunk = vec![0u8; READ_BUFFER_BYTES];
    // Bytes of an unfinished UTF-8 sequence carried from the end of the previous chunk (< 4).
    let mut carry: Vec<u8> = Vec::with_capacity(4);
    let mut done_bytes: u64 = 0;
    let mut first = true;
    loop {
        let read = match file.read(&mut chunk) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("cannot read", path, e)),
        };
        if first {
            first = false;
            // A mark split across two reads is not worth handling: reads of a regular file
            // return at least four bytes when it has them.
            if chunk[..read].starts_with(UTF8_BOM) {
                return Ok(FileEncoding::Utf8Bom);
            }
            if chunk[..read].starts_with(GB18030_BOM) {
                return Ok(FileEncoding::Gb18030Bom);
            }
        }
        if read == 0 {
            return Ok(if carry.is_empty() {
                FileEncoding::Utf8
            } else {
                FileEncoding::Gb18030
            });
        }
        done_bytes += read as u64;
        progress(done_bytes);
        let mut bytes = &chunk[..read];
        // Complete the carried sequence with at most three bytes of this chunk.
        while !carry.is_empty() && !bytes.is_empty() {
            carry.push(bytes[0]);
            bytes = &bytes[1..];
            match std::str::from_utf8(&carry) {
                Ok(_) => carry.clear(),
                Err(e) if e.error_len().is_some() => return Ok(FileEncoding::Gb18030),
                Err(_) if carry.len() >= 4 => return Ok(FileEncoding::Gb18030),
                Err(_) => {}
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => {}
            Err(e) if e.error_len().is_some() => return Ok(FileEncoding::Gb18030),
            Err(e) => carry.extend_from_slice(&bytes[e.valid_up_to()..]),
        }
    }
}

/// One physical line of a file.
pub struct Line<'a> {
    /// 1-based line number in the file.
    pub number: u64,
    /// The line decoded to text, or why it could not be.
    pub text: Result<&'a str, RowFault>,
}

/// Streams a file's lines, decoded, each bounded to [`LINE_BYTES_MAX`] bytes.
pub struct LineReader {
    path: PathBuf,
    reader: BufReader<File>,
    encoding: FileEncoding,
    raw: Vec<u8>,
    decoded: String,
    line_number: u64,
    consumed_bytes: u64,
    total_bytes: u64,
}

impl LineReader {
    pub fn open(path: &Path, encoding: FileEncoding) -> Result<LineReader, ReconError> {
        let file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
        let total_bytes = file
            .metadata()
            .map_err(|e| io_error("cannot read the size of", path, e))?
            .len();
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let mut bom = vec![0u8; encoding.bom_bytes()];
        reader
            .read_exact(&mut bom)
            .map_err(|e| io_error("cannot read", path, e))?;
        Ok(LineReader {
            path: path.to_path_buf(),
            reader,
            encoding,
            raw: Vec::with_capacity(1024),
            decoded: String::with_capacity(1024),
            line_number: 0,
            consumed_bytes: bom.len() as u64,
            total_bytes,
        })
    }

    /// Bytes read so far and the file's size.
    pub fn position(&self) -> (u64, u64) {
        (self.consumed_bytes, self.total_bytes)
    }

    /// The next line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, ReconError> {
        let read = read_line_bounded(&mut self.reader, &mut self.raw, LINE_BYTES_MAX)
            .map_err(|e| io_error("cannot read", &self.path, e))?;
        let Some(read) = read else {
            return Ok(None);
        };
        self.line_number += 1;
        self.consumed_bytes += read.bytes_consumed;
        let text = if read.too_long {
            Err(RowFault(format!(
                "line is longer than {LINE_BYTES_MAX} bytes; settlement rows are far shorter"
            )))
        } else if self.encoding.is_utf8() {
            std::str::from_utf8(&self.raw).map_err(|e| {
                RowFault(format!(
                    "line is not valid UTF-8 (byte {} of the line), though the file was read as {}",
                    e.valid_up_to() + 1,
                    self.encoding.name()
                ))
            })
        } else {
            match encoding_rs::GB18030
                .decode_without_bom_handling_and_without_replacement(&self.raw)
            {
                Some(text) => {
                    self.decoded.clear();
                    self.decoded.push_str(&text);
                    Ok(self.decoded.as_str())
                }
                None => Err(RowFault(
                    "line is neither valid UTF-8 nor valid GB18030".to_string(),
                )),
            }
        };
        Ok(Some(Line {
            number: self.line_number,
            text,
        }))
    }
}

/// Splits one CSV line into its fields (RFC 4180 quoting: `"a,b"`, `"say ""hi"""`), each
/// trimmed of surrounding spaces. A quoted field may not span lines. At most [`COLUMNS_MAX`]
/// fields.
pub fn split_csv_line<'a>(
    line: &'a str,
    fields: &mut Vec<std::borrow::Cow<'a, str>>,
) -> Result<(), RowFault> {
    use std::borrow::Cow;
    fields.clear();
    let bytes = line.as_bytes();
    let mut at = 0usize;
    loop {
        if fields.len() >= COLUMNS_MAX {
            return Err(RowFault(format!("line has more than {COLUMNS_MAX} fields")));
        }
        while at < bytes.len() && bytes[at] == b' ' {
            at += 1;
        }
        if at < bytes.len() && bytes[at] == b'"' {
            let start = at + 1;
            let mut value = String::new();
            let mut from = start;
            let mut pos = start;
            loop {
                match bytes[pos..].iter().position(|&b| b == b'"') {
                    None => {
                        return Err(RowFault(format!(
                            "field {} opens a quote that the line never closes (fields may not span lines)",
                            fields.len() + 1
                        )))
                    }
                    Some(offset) => {
                        let quote = pos + offset;
                        if bytes.get(quote + 1) == Some(&b'"') {
                            value.push_str(&line[from..=quote]);
                            from = quote + 2;
                            pos = quote + 2;
                        } else {
                            value.push_str(&line[from..quote]);
                            at = quote + 1;
                            break;
                        }
                    }
                }
            }
            while at < bytes.len() && bytes[at] == b' ' {
                at += 1;
            }
            fields.push(Cow::Owned(value));
            match bytes.get(at) {
                None => return Ok(()),
                Some(b',') => at += 1,
                Some(_) => {
                    return Err(RowFault(format!(
                        "field {} has text after its closing quote",
                        fields.len()
                    )))
                }
            }
        } else {
            let end = bytes[at..]
                .iter()
                .position(|&b| b == b',')
                .map_or(bytes.len(), |offset| at + offset);
            let field = line[at..end].trim_end_matches(' ');
            if field.contains('"') {
                return Err(RowFault(format!(
                    "field {} has a quote inside an unquoted value",
                    fields.len() + 1
                )));
            }
            fields.push(Cow::Borrowed(field));
            if end == bytes.len() {
                return Ok(());
            }
            at = end + 1;
        }
    }
}

/// Where each wanted column is in the file's header.
pub struct Header {
    /// For each wanted column, in the order asked for, its index in a row.
    pub indexes: Vec<usize>,
    /// Number of columns in the header.
    pub columns: usize,
}

impl Header {
    /// Splits one line into `fields` ([`split_csv_line`]), which must be as many as the
    /// header's columns.
    pub fn split<'a>(
        &self,
        line: &'a str,
        fields: &mut Vec<std::borrow::Cow<'a, str>>,
    ) -> Result<(), RowFault> {
        split_csv_line(line, fields)?;
        if fields.len() != self.columns {
            return Err(RowFault(format!(
                "line has {} fields; the header has {}",
                fields.len(),
                self.columns
            )));
        }
        Ok(())
    }
}

/// Reads the header line (the first non-empty line) and finds each of `wanted` in it, by name,
/// ignoring case and surrounding spaces. Columns not wanted are allowed and ignored.
pub fn read_header(
    lines: &mut LineReader,
    path: &Path,
    wanted: &[&str],
) -> Result<Header, ReconError> {
    let header_error = |reason: String| ReconError::Header {
        path: path.to_path_buf(),
        reason,
    };
    loop {
        let Some(line) = lines.next_line()? else {
            return Err(header_error(
                "the file is empty; it needs a header row naming its columns".to_string(),
            ));
        };
        let number = line.number;
        let text = line
            .text
            .map_err(|fault| header_error(format!("line {number} (the header): {}", fault.0)))?;
        if text.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        split_csv_line(text, &mut fields)
            .map_err(|fault| header_error(format!("line {number} (the header): {}", fault.0)))?;
        let names: Vec<String> = fields
            .iter()
            .map(|f| f.trim().to_ascii_lowercase())
            .collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(header_error(format!(
                    "line {number} (the header) names column '{name}' twice"
                )));
            }
        }
        let mut indexes = Vec::with_capacity(wanted.len());
        let mut missing = Vec::new();
        for want in wanted {
            match names.iter().position(|n| n == want) {
                Some(i) => indexes.push(i),
                None => missing.push(*want),
            }
        }
        if !missing.is_empty() {
            return Err(header_error(format!(
                "line {number} (the header) lacks column(s) {}; it has {}; the columns needed are {}",
                missing.join(", "),
                if names.is_empty() { "none".to_string() } else { names.join(", ") },
                wanted.join(", ")
            )));
        }
        return Ok(Header {
            indexes,
            columns: names.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<String>, RowFault> {
        let mut fields = Vec::new();
        split_csv_line(line, &mut fields)?;
        Ok(fields.into_iter().map(|f| f.into_owned()).collect())
    }

    #[test]
    fn csv_fields_split_with_quotes_and_spaces() {
        assert_eq!(split("a, b ,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split(r#""a,b","say ""hi""",x"#).unwrap(),
            ["a,b", r#"say "hi""#, "x"]
        );
        assert_eq!(split("a,,").unwrap(), ["a", "", ""]);
        assert_eq!(split("").unwrap(), [""]);
        assert!(split(r#""open"#).is_err());
        assert!(split(r#""a"b,c"#).is_err());
        assert!(split(r#"a"b"#).is_err());
    }

    #[test]
    fn every_byte_string_splits_or_faults_without_panicking() {
        for line in [
            "\"", "\"\"", ",\"", "\" ", "\"\"\"", " \" \"x", "é\"é\"", "\"é",
        ] {
            let _ = split(line);
        }
    }
}
