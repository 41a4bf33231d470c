//! Reports as readable text (written in [`crate::text`], in the language asked), and detail
//! differences as CSV (one row per difference); text and JSON made safe to print on a terminal ([`terminal_safe`], [`terminal_safe_json`]) and CSV
//! cells made safe to open in a spreadsheet ([`spreadsheet_safe`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use crate::detail::{DetailReport, Difference};
use crate::Amounts;

pub use crate::text::{detail_text, difference_text, statement_text, totals_text};

/// Whether a terminal could act on `c` rather than show it: a control character (C0, DEL, C1;
/// escape sequences start with ESC or the C1 CSI/OSC) or a character that reorders the text
/// around it (the bidirectional embeddings, overrides and isolates).
fn acts_on_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character a terminal could act on but the newline written as Rust writes
/// it escaped (`\u{1b}`), so what a file says is shown, never obeyed. Borrowed when there is
/// nothing to escape.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    escape(text, |c, out| {
        let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
    })
}

/// JSON `text` with the characters a terminal could act on that serde_json leaves raw (DEL,
/// C1, the bidirectional ones; it escapes C0 itself) written as `\uXXXX` escapes: the same JSON
/// value, safe to print. Such characters can only stand inside JSON strings, where the escape
/// is valid.
pub fn terminal_safe_json(text: &str) -> Cow<'_, str> {
    escape(text, |c, out| {
        let _ = write!(out, "\\u{:04x}", u32::from(c));
    })
}

fn escape(text: &str, escaped: impl Fn(char, &mut String)) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && acts_on_terminal(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c != '\n' && acts_on_terminal(c) {
            escaped(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A CSV cell that a spreadsheet will show rather than run: a cell starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return is a formula to Excel and its kin (CSV injection), so it is
/// prefixed with a single quote (the OWASP rule), unless the whole cell is an amount as the
/// ledger writes them (`-12.50`), which stays a number.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula && cell.parse::<gongji_domain::Money>().is_err() {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The CSV columns of [`DifferenceCsv`].
pub const CSV_COLUMNS: [&str; 14] = [
    "kind",
    "line",
    "setl_id",
    "refd_setl_flag",
    "psn_no",
    "mdtrt_id",
    "field",
    "file_value",
    "ledger_value",
    "medfee_sumamt",
    "fund_pay_sumamt",
    "acct_pay",
    "cash_payamt",
    "note",
];

/// The UTF-8 byte-order mark the CSV starts with: without it, Excel on a Chinese Windows reads
/// the file as GBK and garbles every Chinese cell. (pandas: `encoding="utf-8-sig"`.)
pub const CSV_BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// Writes differences as CSV (UTF-8 after a byte-order mark, [`CSV_BOM`]; `\n`, RFC 4180
/// quoting): one row per difference, and one row per differing field where a row differs in
/// several. Every row but a malformed one names the member (`psn_no`): the file row's for a
/// row read from the file, the ledger settlement's for one missing from the file.
pub struct DifferenceCsv<W: Write> {
    /// The `csv` crate's writer: RFC 4180 quoting where a cell needs it, rows ended by `\n`.
    out: csv::Writer<W>,
    rows_written: u64,
}

impl<W: Write> DifferenceCsv<W> {
    /// Writes the byte-order mark and the header row.
    pub fn new(mut out: W) -> io::Result<DifferenceCsv<W>> {
        out.write_all(CSV_BOM)?;
        let out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out);
        let mut csv = DifferenceCsv {
            out,
            rows_written: 0,
        };
        csv.cells(&CSV_COLUMNS)?;
        Ok(csv)
    }

    /// One row, each cell made [`spreadsheet_safe`] first.
    fn cells(&mut self, cells: &[&str]) -> io::Result<()> {
        for cell in cells {
            self.out.write_field(spreadsheet_safe(cell).as_bytes())?;
        }
        self.out.write_record(None::<&[u8]>)?;
        Ok(())
    }

    pub fn write(&mut self, difference: &Difference) -> io::Result<()> {
        let row = CsvRow {
            kind: difference.kind(),
            ..CsvRow::default()
        };
        match difference {
            Difference::InFileNotInLedger {
                line,
                setl_id,
                refund,
                psn_no,
                mdtrt_id,
                file,
                note,
            } => self.row(CsvRow {
                line: line.to_string(),
                amounts: amounts(file),
                note: note.clone().unwrap_or_default(),
                ..row.of(setl_id, *refund, psn_no, mdtrt_id)
            }),
            Difference::InLedgerNotInFile {
                setl_id,
                refund,
                psn_no,
                mdtrt_id,
                date,
                ledger,
            } => self.row(CsvRow {
                amounts: amounts(ledger),
                note: format!("ledger date {date}"),
                ..row.of(setl_id, *refund, psn_no, mdtrt_id)
            }),
            Difference::FieldsDiffer {
                line,
                setl_id,
                refund,
                psn_no,
                fields,
            } => {
                for field in fields {
                    self.row(CsvRow {
                        line: line.to_string(),
                        field: field.field,
                        file_value: &field.file,
                        ledger_value: &field.ledger,
                        ..row.clone().of(setl_id, *refund, psn_no, "")
                    })?;
                }
                Ok(())
            }
            Difference::DuplicateRow {
                line,
                first_line,
                setl_id,
                refund,
                psn_no,
            } => self.row(CsvRow {
                line: line.to_string(),
                note: format!("repeats line {first_line}"),
                ..row.of(setl_id, *refund, psn_no, "")
            }),
            Difference::MalformedRow { line, reason } => self.row(CsvRow {
                line: line.to_string(),
                note: reason.clone(),
                ..row
            }),
        }
    }

    fn row(&mut self, row: CsvRow<'_>) -> io::Result<()> {
        let [m, f, a, c] = &row.amounts;
        self.rows_written += 1;
        self.cells(&[
            row.kind,
            &row.line,
            row.setl_id,
            row.refund,
            row.psn_no,
            row.mdtrt_id,
            row.field,
            row.file_value,
            row.ledger_value,
            m,
            f,
            a,
            c,
            &row.note,
        ])
    }

    /// Data rows written (the header excluded).
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Flushes and hands back the writer.
    pub fn finish(self) -> io::Result<W> {
        self.out
            .into_inner()
            .map_err(|e| io::Error::other(e.error().to_string()))
    }
}

/// One CSV row, one field per [`CSV_COLUMNS`] column; empty where a difference has nothing.
#[derive(Clone, Default)]
struct CsvRow<'a> {
    kind: &'a str,
    line: String,
    setl_id: &'a str,
    refund: &'a str,
    psn_no: &'a str,
    mdtrt_id: &'a str,
    field: &'a str,
    file_value: &'a str,
    ledger_value: &'a str,
    amounts: [String; 4],
    note: String,
}

impl<'a> CsvRow<'a> {
    /// The row with the settlement's id, flag, member and visit filled in.
    fn of(self, setl_id: &'a str, refund: bool, psn_no: &'a str, mdtrt_id: &'a str) -> Self {
        CsvRow {
            setl_id,
            refund: if refund { "1" } else { "0" },
            psn_no,
            mdtrt_id,
            ..self
        }
    }
}

/// The four amounts as the CSV writes them, in the platform's order.
fn amounts(amounts: &Amounts) -> [String; 4] {
    amounts.named().map(|(_, m)| m.to_string())
}

/// Writes the differences kept in `report` as CSV (the streaming sink writes all of them).
pub fn detail_csv(report: &DetailReport, out: impl Write) -> io::Result<u64> {
    let mut csv = DifferenceCsv::new(out)?;
    for difference in &report.differences {
        csv.write(difference)?;
    }
    let rows = csv.rows_written();
    csv.finish()?;
    Ok(rows)
}
