//! The CSV writer, through the `csv` crate: a header row of the column names, then a row per
//! record written as it comes (nothing is held). UTF-8 starting with a byte-order mark (so
//! Excel reads it as UTF-8), or GB18030 on request. Every text cell goes through
//! [`spreadsheet_safe`] (a cell starting with `=`, `+`, `-`, `@` would run as a formula: it is
//! prefixed with `'`); amounts are decimal text with two places (`-12.50`, a number to any
//! spreadsheet), days `YYYY-MM-DD`, instants RFC 3339 in UTC, an empty cell for nothing.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use gongji_recon::render::spreadsheet_safe;

use crate::columns::{timestamp_text, Cell, Column};
use crate::{Encoding, ExportError, Sink};

/// UTF-8's byte-order mark.
const UTF8_BOM: &[u8] = "\u{feff}".as_bytes();

/// Bytes buffered before a write to the file.
const BUFFER_BYTES: usize = 1 << 16;

/// A CSV file being written.
pub struct CsvSink {
    writer: csv::Writer<Encoded<BufWriter<File>>>,
    path: PathBuf,
    columns: &'static [Column],
    /// A cell's text, made again for each non-text cell (one allocation for the whole file).
    text: String,
}

impl CsvSink {
    /// Starts the file: the byte-order mark (UTF-8) and the header row.
    pub fn new(
        file: File,
        path: &Path,
        columns: &'static [Column],
        encoding: Encoding,
    ) -> Result<CsvSink, ExportError> {
        let mut out = BufWriter::with_capacity(BUFFER_BYTES, file);
        if encoding == Encoding::Utf8Bom {
            out.write_all(UTF8_BOM)
                .map_err(|e| ExportError::write(path, e))?;
        }
        let mut writer = csv::Writer::from_writer(Encoded::new(out, encoding));
        writer
            .write_record(columns.iter().map(|c| c.name))
            .map_err(|e| ExportError::write(path, e))?;
        Ok(CsvSink {
            writer,
            path: path.to_path_buf(),
            columns,
            text: String::new(),
        })
    }
}

impl Sink for CsvSink {
    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), ExportError> {
        debug_assert_eq!(cells.len(), self.columns.len());
        for cell in cells {
            let field = render(cell, &mut self.text);
            self.writer
                .write_field(field)
                .map_err(|e| ExportError::write(&self.path, e))?;
        }
        self.writer
            .write_record(None::<&[u8]>)
            .map_err(|e| ExportError::write(&self.path, e))
    }

    fn finish(self: Box<Self>) -> Result<File, ExportError> {
        let path = self.path;
        let encoded = self
            .writer
            .into_inner()
            .map_err(|e| ExportError::write(&path, e.error()))?;
        encoded
            .finish()
            .and_then(|out| out.into_inner().map_err(|e| e.into_error()))
            .map_err(|e| ExportError::write(&path, e))
    }
}

/// A cell's CSV text: borrowed from the cell where it is its own text, else made in
/// `buffer` (one allocation for the whole file).
fn render<'c>(cell: &'c Cell<'_>, buffer: &'c mut String) -> &'c str {
    buffer.clear();
    let mut put = |value: &dyn std::fmt::Display| {
        write!(buffer, "{value}").expect("formatting into a String cannot fail");
    };
    match cell {
        Cell::Text(Some(text)) => match spreadsheet_safe(text) {
            Cow::Borrowed(text) => return text,
            Cow::Owned(text) => *buffer = text,
        },
        Cell::Text(None) | Cell::Money(None) | Cell::Date(None) => {}
        Cell::Int(n) => put(n),
        Cell::Money(Some(amount)) => put(amount),
        Cell::Date(Some(day)) => put(day),
        Cell::Timestamp(micros) => {
            if let Some(text) = timestamp_text(*micros) {
                *buffer = text;
            }
        }
    }
    buffer
}

/// Bytes written as UTF-8 passed on as they are, or turned into GB18030. The `csv` crate
/// hands over bytes in pieces that may cut a character in two: the cut end waits for the
/// rest of it.
pub struct Encoded<W: Write> {
    out: W,
    encoding: Encoding,
    /// The bytes of a character cut at the end of the last piece (GB18030 only).
    pending: Vec<u8>,
}

impl<W: Write> Encoded<W> {
    pub fn new(out: W, encoding: Encoding) -> Encoded<W> {
        Encoded {
            out,
            encoding,
            pending: Vec::new(),
        }
    }

    /// The writer underneath, everything written to it; an unfinished character is an error.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush()?;
        if !self.pending.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the text ended in the middle of a UTF-8 character",
            ));
        }
        Ok(self.out)
    }
}

impl<W: Write> Write for Encoded<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.encoding == Encoding::Utf8Bom {
            return self.out.write(bytes);
        }
        self.pending.extend_from_slice(bytes);
        let whole = match std::str::from_utf8(&self.pending) {
            Ok(text) => text.len(),
            Err(cut) if cut.error_len().is_none() => cut.valid_up_to(),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the text is not UTF-8",
                ))
            }
        };
        let text = std::str::from_utf8(&self.pending[..whole])
            .expect("the prefix was checked to be UTF-8 above");
        // GB18030 encodes every character: nothing is ever unmappable.
        let (encoded, _, _) = encoding_rs::GB18030.encode(text);
        self.out.write_all(&encoded)?;
        self.pending.drain(..whole);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb18030_survives_characters_cut_between_pieces() {
        let text = "地区,参保人\n重庆,张三\n";
        let mut encoded = Encoded::new(Vec::new(), Encoding::Gb18030);
        for byte in text.as_bytes() {
            encoded
                .write_all(std::slice::from_ref(byte))
                .expect("written");
        }
        let bytes = encoded.finish().expect("finished");
        let (decoded, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(&bytes);
        assert!(!had_errors);
        assert_eq!(decoded, text);
        assert_ne!(bytes, text.as_bytes(), "not UTF-8 any more");
    }

    #[test]
    fn a_cut_character_at_the_end_is_an_error() {
        let mut encoded = Encoded::new(Vec::new(), Encoding::Gb18030);
        encoded.write_all(&"重".as_bytes()[..2]).expect("written");
        assert!(encoded.finish().is_err());
    }
}
