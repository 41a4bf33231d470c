//! Total reconciliation (对总账, the platform's interface 3201): per institution and period,
//! the sums of the four amounts and the number of settlements, against the ledger's.

use std::collections::HashMap;
use std::path::Path;

use gongji_domain::types::Channel;
use gongji_domain::{Day, Money};
use gongji_ledger::Ledger;
use serde::{Serialize, Serializer};

use crate::input::{self, FileEncoding, RowFault};
use crate::scan::{self, ClaimEvent};
use crate::{compare_amounts, parse_amount, Amounts, FieldDifference, ReconError};

/// The 3201 columns read, in this order. Other columns are ignored.
pub const TOTALS_COLUMNS: [&str; 8] = [
    "fixmedins_code",
    "stmt_begndate",
    "stmt_enddate",
    "medfee_sumamt",
    "fund_pay_sumamt",
    "acct_pay",
    "cash_payamt",
    "fixmedins_setl_cnt",
];

/// Most data rows in a totals file (one per institution and period): the rows are held in
/// memory while the log is scanned once for all of them.
pub const TOTALS_ROWS_MAX: usize = 100_000;

/// Sums for one institution and period, reversals netted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TotalsFigures {
    #[serde(flatten)]
    pub amounts: Amounts,
    /// Settlements less reversals (`fixmedins_setl_cnt`).
    pub fixmedins_setl_cnt: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TotalsStatus {
    Match,
    Differ,
    Malformed,
}

/// The result for one row of the totals file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TotalsResult {
    pub line: u64,
    pub status: TotalsStatus,
    /// Empty for a malformed row (null in JSON).
    #[serde(serialize_with = "crate::empty_as_null")]
    pub institution: String,
    pub from: Option<Day>,
    pub to: Option<Day>,
    pub file: Option<TotalsFigures>,
    pub ledger: Option<TotalsFigures>,
    /// The ledger's settlements and reversals in the period, before netting.
    pub ledger_settlements: u64,
    pub ledger_reversals: u64,
    pub differences: Vec<FieldDifference>,
    /// Why a malformed row could not be read.
    pub reason: Option<String>,
}

/// A totals reconciliation. In JSON its counts are an object `counts` named as a detail
/// reconciliation's (`file_rows`, `matched_rows`, `differing_rows`, `malformed_rows`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotalsReport {
    pub file: String,
    pub encoding: FileEncoding,
    /// `"match"` or `"differences"`.
    pub status: &'static str,
    pub rows: u64,
    pub matched: u64,
    pub differing: u64,
    pub malformed: u64,
    /// One result per data row, in file order.
    pub results: Vec<TotalsResult>,
}

impl Serialize for TotalsReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Counts {
            file_rows: u64,
            matched_rows: u64,
            differing_rows: u64,
            malformed_rows: u64,
        }
        #[derive(Serialize)]
        struct Shown<'a> {
            file: &'a str,
            encoding: FileEncoding,
            status: &'static str,
            counts: Counts,
            results: &'a [TotalsResult],
        }
        Shown {
            file: &self.file,
            encoding: self.encoding,
            status: self.status,
            counts: Counts {
                file_rows: self.rows,
                matched_rows: self.matched,
                differing_rows: self.differing,
                malformed_rows: self.malformed,
            },
            results: &self.results,
        }
        .serialize(serializer)
    }
}

impl TotalsReport {
    pub fn is_match(&self) -> bool {
        self.differing == 0 && self.malformed == 0
    }

    /// 0 when every row matches, 1 when some row differs or is malformed.
    pub fn exit_code(&self) -> u8 {
        crate::exit_for(self.is_match())
    }
}

struct TotalsRow {
    institution: String,
    from: Day,
    to: Day,
    file: TotalsFigures,
}

fn parse_day(column: &str, text: &str) -> Result<Day, RowFault> {
    text.parse::<Day>()
        .map_err(|e| RowFault(format!("{column}: {e}")))
}

fn parse_row(
    fields: &[std::borrow::Cow<'_, str>],
    indexes: &[usize],
) -> Result<TotalsRow, RowFault> {
    let field = |i: usize| fields[indexes[i]].as_ref();
    let institution = field(0);
    if institution.is_empty() {
        return Err(RowFault("fixmedins_code is empty".to_string()));
    }
    if institution.len() > gongji_domain::command::ID_BYTES_MAX {
        return Err(RowFault(format!(
            "fixmedins_code is {} bytes, longer than any id the ledger accepts",
            institution.len()
        )));
    }
    let from = parse_day(TOTALS_COLUMNS[1], field(1))?;
    let to = parse_day(TOTALS_COLUMNS[2], field(2))?;
    if from > to {
        return Err(RowFault(format!(
            "stmt_begndate {from} is after stmt_enddate {to}"
        )));
    }
    let count_text = field(7);
    let fixmedins_setl_cnt: i64 = count_text
        .parse()
        .ok()
        .filter(|n: &i64| n.unsigned_abs() <= 1_000_000_000_000)
        .ok_or_else(|| {
            RowFault(format!(
                "fixmedins_setl_cnt '{}' is not a whole number",
                count_text.escape_debug()
            ))
        })?;
    Ok(TotalsRow {
        institution: institution.to_string(),
        from,
        to,
        file: TotalsFigures {
            amounts: Amounts {
                medfee_sumamt: parse_amount(TOTALS_COLUMNS[3], field(3))?,
                fund_pay_sumamt: parse_amount(TOTALS_COLUMNS[4], field(4))?,
                acct_pay: parse_amount(TOTALS_COLUMNS[5], field(5))?,
                cash_payamt: parse_amount(TOTALS_COLUMNS[6], field(6))?,
            },
            fixmedins_setl_cnt,
        },
    })
}

/// Checks each row of a 3201 totals file against the ledger's sums for that institution and
/// period (settlements dated in the period, less reversals dated in it; manual claims are not
/// the institution's and are left out). One result per row.
/// `progress(done_units, total_units)`: file bytes read (twice) plus log records scanned.
pub fn reconcile_totals(
    ledger: &Ledger,
    file: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<TotalsReport, ReconError> {
    let crate::OpenedFile {
        mut progress,
        file_bytes,
        records: _,
        encoding,
        mut lines,
        header,
    } = crate::open_institution_file(ledger, file, &TOTALS_COLUMNS, progress)?;
    let rows = read_rows(&mut lines, &header, file)?;
    progress.report(2 * file_bytes);
    let sums = ledger_sums(ledger, &rows, &mut |done| {
        progress.report(2 * file_bytes + done)
    })?;
    let results: Vec<TotalsResult> = rows
        .into_iter()
        .zip(sums)
        .map(|((line, row), sum)| result_of(line, row, sum))
        .collect();
    progress.report(progress.total_units);
    let count = |status| results.iter().filter(|r| r.status == status).count() as u64;
    let (matched, differing, malformed) = (
        count(TotalsStatus::Match),
        count(TotalsStatus::Differ),
        count(TotalsStatus::Malformed),
    );
    Ok(TotalsReport {
        file: file.display().to_string(),
        encoding,
        status: if differing == 0 && malformed == 0 {
            "match"
        } else {
            "differences"
        },
        rows: results.len() as u64,
        matched,
        differing,
        malformed,
        results,
    })
}

/// A file line and the row it holds, or why it holds none.
type NumberedRow = (u64, Result<TotalsRow, RowFault>);

/// Every row of the file, read or not, up to [`TOTALS_ROWS_MAX`].
fn read_rows(
    lines: &mut input::LineReader,
    header: &input::Header,
    file: &Path,
) -> Result<Vec<NumberedRow>, ReconError> {
    let mut rows = Vec::new();
    while let Some(line) = lines.next_line()? {
        let number = line.number;
        let row = match line.text {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => {
                let mut fields = Vec::with_capacity(header.columns);
                header
                    .split(text, &mut fields)
                    .and_then(|()| parse_row(&fields, &header.indexes))
            }
            Err(fault) => Err(fault),
        };
        if rows.len() >= TOTALS_ROWS_MAX {
            return Err(ReconError::TooLarge {
                path: file.to_path_buf(),
                reason: format!(
                    "more than {TOTALS_ROWS_MAX} rows (line {number}); a totals file has one row per institution and period: split it"
                ),
            });
        }
        rows.push((number, row));
    }
    Ok(rows)
}

/// What the ledger sums to for one row: its figures, settlements and reversals.
type LedgerSum = (TotalsFigures, u64, u64);

/// The ledger's sums for each row's institution and period, in one scan of the log.
fn ledger_sums(
    ledger: &Ledger,
    rows: &[NumberedRow],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<LedgerSum>, ReconError> {
    let mut by_institution: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (_, row)) in rows.iter().enumerate() {
        if let Ok(row) = row {
            by_institution.entry(&row.institution).or_default().push(i);
        }
    }
    let mut sums = vec![(TotalsFigures::default(), 0u64, 0u64); rows.len()];
    // The first row whose sum would not fit in `i64` fen, and the column.
    let mut overflow: Option<(usize, &'static str)> = None;
    scan::scan_claims(ledger, progress, &mut |event| {
        let (settlement, day, reversal) = match event {
            ClaimEvent::Settled(s) => (s, s.date, false),
            ClaimEvent::Reversed { date, settlement } => (settlement, date, true),
        };
        if settlement.channel == Channel::Manual {
            return;
        }
        let Some(institution) = settlement.institution.as_deref() else {
            return;
        };
        let Some(indexes) = by_institution.get(institution) else {
            return;
        };
        let amounts = Amounts::of(settlement);
        for &i in indexes {
            let Ok(row) = &rows[i].1 else { continue };
            if day < row.from || row.to < day {
                continue;
            }
            let (figures, settlements, reversals) = &mut sums[i];
            let summed = if reversal {
                figures.amounts.subtract(&amounts)
            } else {
                figures.amounts.add(&amounts)
            };
            if let Err(column) = summed {
                overflow.get_or_insert((i, column));
            } else if reversal {
                figures.fixmedins_setl_cnt -= 1;
                *reversals += 1;
            } else {
                figures.fixmedins_setl_cnt += 1;
                *settlements += 1;
            }
        }
    })?;
    if let Some((i, column)) = overflow {
        let (line, row) = &rows[i];
        let row = row.as_ref().expect("only rows that were read are summed");
        return Err(ReconError::Overflow(format!(
            "line {line}: the ledger's {column} for institution {} from {} to {} is too large to total (more than {} yuan)",
            row.institution,
            row.from,
            row.to,
            Money::from_fen(i64::MAX)
        )));
    }
    Ok(sums)
}

/// One row's result: malformed, or its figures against the ledger's.
fn result_of(line: u64, row: Result<TotalsRow, RowFault>, sum: LedgerSum) -> TotalsResult {
    let (ledger_figures, settlements, reversals) = sum;
    let row = match row {
        Ok(row) => row,
        Err(fault) => {
            return TotalsResult {
                line,
                status: TotalsStatus::Malformed,
                institution: String::new(),
                from: None,
                to: None,
                file: None,
                ledger: None,
                ledger_settlements: 0,
                ledger_reversals: 0,
                differences: Vec::new(),
                reason: Some(fault.0),
            }
        }
    };
    let mut differences = Vec::new();
    compare_amounts(&row.file.amounts, &ledger_figures.amounts, &mut differences);
    if row.file.fixmedins_setl_cnt != ledger_figures.fixmedins_setl_cnt {
        differences.push(FieldDifference {
            field: "fixmedins_setl_cnt",
            file: row.file.fixmedins_setl_cnt.to_string(),
            ledger: ledger_figures.fixmedins_setl_cnt.to_string(),
        });
    }
    TotalsResult {
        line,
        status: if differences.is_empty() {
            TotalsStatus::Match
        } else {
            TotalsStatus::Differ
        },
        institution: row.institution,
        from: Some(row.from),
        to: Some(row.to),
        file: Some(row.file),
        ledger: Some(ledger_figures),
        ledger_settlements: settlements,
        ledger_reversals: reversals,
        differences,
        reason: None,
    }
}
