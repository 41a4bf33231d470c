//! Reconciliation (对账) of the ledger against what hospitals and pharmacies settled.
//!
//! What it is for: reading an institution's settlement files in the national platform's shapes
//! (interface 3202, one row per settlement: [`reconcile_detail`]; interface 3201, totals per
//! institution and period: [`reconcile_totals`]), matching them against the claim settlements
//! and reversals in the ledger's log, and reporting every difference; and the monthly statement
//! of what the fund owes an institution ([`settlement_statement`]), which clearing (清算) pays
//! from. Reports are plain data (`serde::Serialize`) with text and CSV renderers in [`render`];
//! text is written in the language asked, with the words [`words`] keeps for every text the
//! `gongji` binary prints (the language, amounts with unit and grouping, the codes' names).
//!
//! What it is not for: it never writes to the ledger, holds no insurance rule, and parses no
//! command-line arguments (the `gongji` binary does; [`report`] takes days and months already
//! parsed). The files it writes are the ones a caller names: the CSV of differences
//! ([`render::DifferenceCsv`] in a [`csv_file::CsvFile`], opened by [`report::detail`]: never the
//! input, never through a link, replaced only when the job succeeded). Test scaffolding (a generated
//! hospital month, `synthetic`) is compiled only with the `synthetic` feature. Files are streamed (one bounded line at
//! a time); the ledger side holds one institution's claims of the period, keyed by settlement
//! id. See `docs/reconciliation.md` for the formats and matching rules.

pub mod csv_file;
pub mod detail;
pub mod input;
pub mod render;
pub mod report;
mod scan;
pub mod statement;
#[cfg(feature = "synthetic")]
pub mod synthetic;
mod text;
pub mod totals;
pub mod words;

use std::path::PathBuf;

use gongji_domain::{Money, Settlement};
use serde::Serialize;

pub use detail::{
    reconcile_detail, reconcile_detail_streaming, DetailCounts, DetailOptions, DetailReport,
    Difference, Unreconcilable,
};
pub use input::FileEncoding;
pub use statement::{settlement_statement, RegionStatement, Statement};
pub use totals::{reconcile_totals, TotalsFigures, TotalsReport, TotalsResult, TotalsStatus};

/// Serializes a text that is empty when absent: `null` for empty, the text otherwise (in JSON an
/// absent value is `null`, never `""`).
fn empty_as_null<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    if text.is_empty() {
        serializer.serialize_none()
    } else {
        serializer.serialize_str(text)
    }
}

/// Exit status when everything matches.
pub const EXIT_MATCH: u8 = 0;
/// Exit status when there are differences (including malformed rows).
pub const EXIT_DIFFERENCES: u8 = 1;
/// Exit status when the input or the ledger could not be read at all.
pub const EXIT_UNREADABLE: u8 = 2;

/// A report's exit status: [`EXIT_MATCH`] when it matches, [`EXIT_DIFFERENCES`] otherwise.
fn exit_for(is_match: bool) -> u8 {
    if is_match {
        EXIT_MATCH
    } else {
        EXIT_DIFFERENCES
    }
}

/// Why a reconciliation could not run at all (exit status 2). A bad row is never one of these:
/// it is reported in the report with its line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconError {
    /// A file could not be opened or read.
    Io {
        action: String,
        path: PathBuf,
        message: String,
    },
    /// The file's header row is missing or lacks a needed column.
    Header { path: PathBuf, reason: String },
    /// The file is larger than this job reads (totals files only).
    TooLarge { path: PathBuf, reason: String },
    /// The request itself is wrong (a period that ends before it starts).
    Request(String),
    /// The ledger's log could not be read: damaged (a record that does not decode, a broken
    /// chain).
    Ledger(String),
    /// The ledger's log could not be read for want of its store: an I/O error (`unreachable`:
    /// the store out of reach, as a lost database connection, worth trying again).
    LogIo { message: String, unreachable: bool },
    /// Writing differences out (the CSV file) failed.
    Output(String),
    /// A sum of the ledger's amounts the job needs does not fit in `i64` fen (more than
    /// 92,233,720,368,547,758.07 yuan): it names the figure, the institution and the period.
    Overflow(String),
}

impl ReconError {
    /// Always [`EXIT_UNREADABLE`].
    pub fn exit_code(&self) -> u8 {
        EXIT_UNREADABLE
    }
}

impl std::fmt::Display for ReconError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReconError::Io {
                action,
                path,
                message,
            } => write!(f, "{action} {}: {message}", path.display()),
            ReconError::Header { path, reason } => {
                write!(f, "{} has no usable header: {reason}", path.display())
            }
            ReconError::TooLarge { path, reason } => write!(f, "{}: {reason}", path.display()),
            ReconError::Request(reason) => f.write_str(reason),
            ReconError::Ledger(reason) => f.write_str(reason),
            ReconError::LogIo { message, .. } => f.write_str(message),
            ReconError::Output(reason) => f.write_str(reason),
            ReconError::Overflow(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ReconError {}

/// The four amounts of a 3202 row (and of a 3201 total), named as the platform names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Amounts {
    /// Total cost: the ledger's `eligible + uncovered`.
    pub medfee_sumamt: Money,
    /// Fund payment: the ledger's `fund_paid()` (`special_paid + ordinary_paid`).
    pub fund_pay_sumamt: Money,
    /// Personal-account payment: the ledger's `account_paid`.
    pub acct_pay: Money,
    /// Cash: the ledger's `cash_paid`.
    pub cash_payamt: Money,
}

impl Amounts {
    /// A settlement's amounts in the platform's terms.
    pub fn of(settlement: &Settlement) -> Amounts {
        Amounts {
            medfee_sumamt: settlement.eligible + settlement.uncovered,
            fund_pay_sumamt: settlement.fund_paid(),
            acct_pay: settlement.account_paid,
            cash_payamt: settlement.cash_paid,
        }
    }

    /// Each amount with its column name, in the platform's order.
    pub fn named(&self) -> [(&'static str, Money); 4] {
        [
            ("medfee_sumamt", self.medfee_sumamt),
            ("fund_pay_sumamt", self.fund_pay_sumamt),
            ("acct_pay", self.acct_pay),
            ("cash_payamt", self.cash_payamt),
        ]
    }

    /// `self + other` field by field, or `Err` naming the first column whose sum would not fit
    /// in `i64` fen (`self` is then unchanged).
    fn add(&mut self, other: &Amounts) -> Result<(), &'static str> {
        self.combine(other, i64::checked_add)
    }

    /// `self - other` field by field, checked as [`Amounts::add`].
    fn subtract(&mut self, other: &Amounts) -> Result<(), &'static str> {
        self.combine(other, i64::checked_sub)
    }

    fn combine(
        &mut self,
        other: &Amounts,
        op: fn(i64, i64) -> Option<i64>,
    ) -> Result<(), &'static str> {
        let [medfee_sumamt, fund_pay_sumamt, acct_pay, cash_payamt] =
            checked_each(self.named(), other.named(), op);
        *self = Amounts {
            medfee_sumamt: medfee_sumamt?,
            fund_pay_sumamt: fund_pay_sumamt?,
            acct_pay: acct_pay?,
            cash_payamt: cash_payamt?,
        };
        Ok(())
    }
}

/// `op` over each pair of named amounts, the column's name where it does not fit in `i64` fen.
fn checked_each<const N: usize>(
    left: [(&'static str, Money); N],
    right: [(&'static str, Money); N],
    op: fn(i64, i64) -> Option<i64>,
) -> [Result<Money, &'static str>; N] {
    let mut i = 0;
    left.map(|(name, value)| {
        let other = right[i].1;
        i += 1;
        op(value.fen(), other.fen())
            .map(Money::from_fen)
            .ok_or(name)
    })
}

impl Amounts {}

/// One field whose values differ, with the file's and the ledger's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldDifference {
    pub field: &'static str,
    pub file: String,
    pub ledger: String,
}

/// Compares amounts field by field, appending one [`FieldDifference`] per differing field.
fn compare_amounts(file: &Amounts, ledger: &Amounts, out: &mut Vec<FieldDifference>) {
    for ((field, file_value), (_, ledger_value)) in file.named().into_iter().zip(ledger.named()) {
        if file_value != ledger_value {
            out.push(FieldDifference {
                field,
                file: file_value.to_string(),
                ledger: ledger_value.to_string(),
            });
        }
    }
}

/// Parses an amount column, naming the column in the fault.
fn parse_amount(column: &str, text: &str) -> Result<Money, input::RowFault> {
    text.parse::<Money>()
        .map_err(|e| input::RowFault(format!("{column}: {e}")))
}

/// Progress over two kinds of work reported as one fraction: log records scanned and file
/// bytes read. `done` and `total` are in "units" (one record or one byte each); only their
/// ratio means anything.
struct Progress<'a> {
    callback: &'a mut dyn FnMut(u64, u64),
    total_units: u64,
}

impl Progress<'_> {
    fn report(&mut self, done_units: u64) {
        (self.callback)(done_units.min(self.total_units), self.total_units);
    }
}

/// An institution's file opened for a job that also scans the log: the progress over both (the
/// log's records, and the file's bytes twice: detecting the encoding, then reading), the
/// encoding, the line reader and the header holding `columns`.
struct OpenedFile<'a> {
    progress: Progress<'a>,
    /// The file's size and the log's record count, the units progress is counted in.
    file_bytes: u64,
    records: u64,
    encoding: input::FileEncoding,
    lines: input::LineReader,
    header: input::Header,
}

fn open_institution_file<'a>(
    ledger: &gongji_ledger::Ledger,
    file: &std::path::Path,
    columns: &[&str],
    callback: &'a mut dyn FnMut(u64, u64),
) -> Result<OpenedFile<'a>, ReconError> {
    let file_bytes = std::fs::metadata(file)
        .map_err(|e| ReconError::Io {
            action: "cannot open".to_string(),
            path: file.to_path_buf(),
            message: e.to_string(),
        })?
        .len();
    let records = scan::records_total(ledger);
    let mut progress = Progress {
        callback,
        total_units: records + 2 * file_bytes,
    };
    let encoding = input::detect_encoding(file, &mut |done| progress.report(done))?;
    let mut lines = input::LineReader::open(file, encoding)?;
    let header = input::read_header(&mut lines, file, columns)?;
    Ok(OpenedFile {
        progress,
        file_bytes,
        records,
        encoding,
        lines,
        header,
    })
}
