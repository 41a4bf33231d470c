//! Exports of the ledger for auditors' own tools (pandas, Excel, DuckDB): the settlements, or
//! every event, of a selection of the log as one typed row each, the funds by month, or the
//! accounts as they stand ([`accounts`], from the projections), in CSV or Parquet.
//!
//! What it is for: one streaming pass over the log in order ([`export`], through
//! `gongji-ledger`'s [`Ledger::scan`], which checks the hash chain over every record read),
//! each selected record turned into a row ([`settlements`], [`events`]) and handed to a writer
//! ([`csv_out`]: UTF-8 with a byte-order mark or GB18030, every text cell spreadsheet-safe;
//! [`parquet_out`]: DECIMAL(18,2) amounts, DATE days, TIMESTAMP(MICROS, UTC) times, row groups
//! of at most 65,536 rows). The file is written beside its destination under a temporary name
//! created new and renamed over the destination only once complete and synced ([`target`]):
//! whatever fails, nothing is left.
//!
//! What it is not for: it decides nothing and writes nothing to the ledger; it holds no row
//! longer than its writer's batch, so memory does not grow with the log (the one map that
//! grows is each member's region, [`select`], which the `--region` rule needs).
//!
//! Every money figure is its own column, and a column's sum is a net movement: a reversal's
//! figures are negated, a refund counts against the outflow it undoes. The sums reconcile with
//! the ledger's own totals (`gongji fund REGION`): see `docs/exports.md`.

pub mod accounts;
pub mod columns;
pub mod csv_out;
pub mod events;
pub mod flows;
pub mod funds;
pub mod parquet_out;
pub mod select;
pub mod settlements;
pub mod target;

use std::fmt;
use std::path::{Path, PathBuf};

use gongji_ledger::archive::ArchiveFilter;
use gongji_ledger::scan::Scanned;
use gongji_ledger::{Ledger, LedgerError};

pub use columns::{Cell, Column, Kind};
use select::Selection;
use target::Target;

/// What an export holds: one row per settlement and reversal, one per log record, or one per
/// region and month of the funds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Settlements,
    Events,
    Funds,
    Accounts,
}

impl Table {
    /// The table's columns, in the order written.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Settlements => &settlements::COLUMNS,
            Table::Events => &events::COLUMNS,
            Table::Funds => &funds::COLUMNS,
            Table::Accounts => &accounts::COLUMNS,
        }
    }

    /// The event kinds the pass decodes (every other record is passed by on its tag): all of
    /// them for `events`, whose `--region` rule follows members from their enrolment.
    fn kinds(self) -> Option<&'static [&'static str]> {
        match self {
            Table::Settlements => Some(&settlements::KINDS),
            Table::Events => None,
            // Every fund event names its region.
            Table::Funds => Some(&funds::KINDS),
            // Read from the projections, not the log.
            Table::Accounts => Some(&[]),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Settlements => "settlements",
            Table::Events => "events",
            Table::Funds => "funds",
            Table::Accounts => "accounts",
        }
    }
}

/// A CSV file's text encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 starting with a byte-order mark (which tells Excel it is UTF-8).
    Utf8Bom,
    /// GB18030, no byte-order mark (what Excel opens by default on a Chinese Windows).
    Gb18030,
}

/// The file format written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv(Encoding),
    Parquet,
}

/// One export: what, of which part of the log, in which format, to which file.
#[derive(Clone, Debug)]
pub struct Request {
    pub table: Table,
    /// Own dates and region, as `audit export` selects them (see [`select`]).
    pub filter: ArchiveFilter,
    pub format: Format,
    /// The file written (replaced, once complete, if it exists).
    pub out: PathBuf,
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exported {
    /// Rows written (the header not counted).
    pub rows: u64,
    /// Log records read (none for accounts, read from the projections).
    pub records: u64,
}

/// Why an export failed; in every case no file is left at `out` or beside it.
#[derive(Debug)]
pub enum ExportError {
    /// The request cannot be answered as asked (dates the wrong way round, an unknown region),
    /// found before anything is read or written.
    Request(String),
    /// The ledger could not be read.
    Ledger(LedgerError),
    /// The file could not be written.
    Write { path: PathBuf, message: String },
}

impl ExportError {
    pub(crate) fn write(path: &Path, error: impl fmt::Display) -> ExportError {
        ExportError::Write {
            path: path.to_path_buf(),
            message: error.to_string(),
        }
    }
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Request(why) => f.write_str(why),
            ExportError::Ledger(error) => write!(f, "{error}"),
            ExportError::Write { path, message } => {
                write!(f, "cannot write {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for ExportError {}

/// Where rows go: a CSV or Parquet writer over the temporary file.
pub trait Sink {
    /// One row, its cells in [`Table::columns`] order.
    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), ExportError>;
    /// Writes what is buffered and the file's end; the file is then complete (not yet synced).
    fn finish(self: Box<Self>) -> Result<std::fs::File, ExportError>;
}

/// Writes the export `request` asks for, in one pass over the durable log;
/// `progress(done, total)` counts log records. Refused before anything is read or written for
/// `--from` after `--to`, a region the ledger does not know, or a file that cannot be created
/// beside `out`.
pub fn export(
    ledger: &Ledger,
    request: &Request,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Exported, ExportError> {
    check(ledger, request)?;
    let target = Target::create(&request.out)?;
    let columns = request.table.columns();
    let file = target.file()?;
    let mut sink: Box<dyn Sink> = match request.format {
        Format::Csv(encoding) => Box::new(csv_out::CsvSink::new(
            file,
            target.path(),
            columns,
            encoding,
        )?),
        Format::Parquet => Box::new(parquet_out::ParquetSink::new(
            file,
            target.path(),
            columns,
            request.table.name(),
        )?),
    };
    let (rows, records) = match request.table {
        Table::Accounts => {
            let region = request.filter.region.as_deref();
            (accounts::write(ledger, region, sink.as_mut(), progress)?, 0)
        }
        _ => pass(ledger, request, sink.as_mut(), progress)?,
    };
    let file = sink.finish()?;
    target.commit(file)?;
    Ok(Exported { rows, records })
}

/// Refuses a selection that cannot be what was meant: `from` after `to`, or a region of which
/// the ledger knows nothing (no policy, no fund, no account: a mistyped code).
fn check(ledger: &Ledger, request: &Request) -> Result<(), ExportError> {
    let filter = &request.filter;
    if request.table == Table::Accounts && (filter.from.is_some() || filter.to.is_some()) {
        return Err(ExportError::Request(
            "accounts are exported as they stand now: --from and --to select movements, not \
             accounts (an account's balance as of a day is `gongji account ID --as-of DAY`)"
                .into(),
        ));
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err(ExportError::Request(format!(
                "--from {from} is after --to {to}: nothing could be selected"
            )));
        }
    }
    if let Some(region) = &filter.region {
        if ledger.fund(region).map_err(ExportError::Ledger)?.is_none() {
            return Err(ExportError::Request(format!(
                "region {region} is not known to this ledger (no policy, fund or account of \
                 it): nothing exported"
            )));
        }
    }
    Ok(())
}

/// The pass: each record scanned, selected or not, turned into its rows and written. Returns
/// the rows written and the records read.
fn pass(
    ledger: &Ledger,
    request: &Request,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(u64, u64), ExportError> {
    let mut selection = Selection::new(request.filter.clone());
    let mut rows = 0u64;
    // A writer's error stops the scan (through a ledger error the scan hands back) and is
    // the one reported.
    let mut failed: Option<ExportError> = None;
    let table = request.table;
    let mut months = funds::Months::default();
    let mut each = |scanned: Scanned<'_>| {
        let written = match table {
            Table::Settlements => settlements::write(&scanned, &selection, sink),
            Table::Events => events::write(&scanned, &mut selection, sink),
            Table::Funds => {
                months.add(&scanned, &selection);
                Ok(0)
            }
            // Never scanned: written from the projections by `export`.
            Table::Accounts => Ok(0),
        };
        match written {
            Ok(n) => {
                rows += n;
                Ok(())
            }
            Err(error) => {
                failed = Some(error);
                Err(LedgerError::Projection("export stopped".into()))
            }
        }
    };
    let records = ledger.scan(table.kinds(), &mut each, progress);
    if let Some(error) = failed {
        return Err(error);
    }
    let records = records.map_err(ExportError::Ledger)?;
    if table == Table::Funds {
        rows += months.write(&request.filter, sink)?;
    }
    Ok((rows, records))
}
