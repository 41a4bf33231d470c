//! Detail reconciliation (对明细账, the platform's interface 3202): one file row per
//! settlement or refund, matched by settlement id against the ledger.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use gongji_domain::command::ID_BYTES_MAX;
use gongji_domain::types::Channel;
use gongji_domain::{Day, Settlement};
use gongji_ledger::Ledger;
use serde::Serialize;

use crate::input::{self, FileEncoding, RowFault};
use crate::scan::{self, ClaimEvent};
use crate::{compare_amounts, parse_amount, Amounts, FieldDifference, ReconError};

/// The 3202 columns read, in this order. Other columns are ignored.
pub const DETAIL_COLUMNS: [&str; 8] = [
    "setl_id",
    "mdtrt_id",
    "psn_no",
    "medfee_sumamt",
    "fund_pay_sumamt",
    "acct_pay",
    "cash_payamt",
    "refd_setl_flag",
];

/// Settlement ids of rows the ledger does not have, remembered (as 128-bit fingerprints) to
/// find duplicates among them. Past this many, such duplicates are no longer looked for and the
/// report says so: about 40 MB at most.
pub const UNMATCHED_FINGERPRINTS_MAX: usize = 1_000_000;

/// How much of a detail reconciliation is kept in the report.
#[derive(Clone, Debug)]
pub struct DetailOptions {
    /// Differences of each kind kept in the report; the rest are only counted (and still
    /// passed to the streaming sink).
    pub differences_kept_per_kind_max: usize,
    /// Unreconcilable claims (no institution) listed; the rest are only counted.
    pub unreconcilable_kept_max: usize,
}

impl Default for DetailOptions {
    fn default() -> DetailOptions {
        DetailOptions {
            differences_kept_per_kind_max: 1000,
            unreconcilable_kept_max: 1000,
        }
    }
}

/// One difference between the file and the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// A file row with no counterpart in the ledger (for this institution and period).
    InFileNotInLedger {
        line: u64,
        setl_id: String,
        refund: bool,
        psn_no: String,
        /// Null when the row leaves it empty.
        #[serde(serialize_with = "crate::empty_as_null")]
        mdtrt_id: String,
        file: Amounts,
        /// What the ledger does have under this id, when it has something.
        note: Option<String>,
    },
    /// A ledger settlement (or, `refund`, a reversal) of the period with no file row.
    InLedgerNotInFile {
        setl_id: String,
        refund: bool,
        psn_no: String,
        /// Null when the claim named no visit.
        #[serde(serialize_with = "crate::empty_as_null")]
        mdtrt_id: String,
        /// The settlement's date, or the reversal's for a refund.
        date: Day,
        ledger: Amounts,
    },
    /// In both, with differing values: every differing field, with both values.
    FieldsDiffer {
        line: u64,
        setl_id: String,
        refund: bool,
        /// The member as the file row gives it (the ledger's, when it differs, is among
        /// `fields`).
        psn_no: String,
        fields: Vec<FieldDifference>,
    },
    /// A second row with the same `setl_id` and `refd_setl_flag` (not matched again).
    DuplicateRow {
        line: u64,
        first_line: u64,
        setl_id: String,
        refund: bool,
        /// The member as the repeated row gives it.
        psn_no: String,
    },
    /// A row that could not be read; the rest of the file still is.
    MalformedRow { line: u64, reason: String },
}

impl Difference {
    /// The kind's name, as in the JSON `kind` field and the CSV.
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::InFileNotInLedger { .. } => "in_file_not_in_ledger",
            Difference::InLedgerNotInFile { .. } => "in_ledger_not_in_file",
            Difference::FieldsDiffer { .. } => "fields_differ",
            Difference::DuplicateRow { .. } => "duplicate_row",
            Difference::MalformedRow { .. } => "malformed_row",
        }
    }

    fn kind_index(&self) -> usize {
        match self {
            Difference::InFileNotInLedger { .. } => 0,
            Difference::InLedgerNotInFile { .. } => 1,
            Difference::FieldsDiffer { .. } => 2,
            Difference::DuplicateRow { .. } => 3,
            Difference::MalformedRow { .. } => 4,
        }
    }
}

/// A claim of the period the ledger cannot attribute to any institution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreconcilable {
    pub setl_id: String,
    pub psn_no: String,
    pub channel: Channel,
    /// A reversal dated in the period (of a settlement with no institution).
    pub refund: bool,
    /// The settlement's date, or the reversal's.
    pub date: Day,
    pub amounts: Amounts,
}

/// Every count of a detail reconciliation; complete even where the lists are cut.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DetailCounts {
    /// Data rows in the file (the header and blank lines excluded), malformed ones included.
    pub file_rows: u64,
    pub file_refund_rows: u64,
    /// Settlements of the institution dated in the period, in the ledger.
    pub ledger_settlements: u64,
    /// Reversals of the institution's settlements dated in the period, in the ledger.
    pub ledger_reversals: u64,
    /// Rows that matched the ledger in every field.
    pub matched_rows: u64,
    pub in_file_not_in_ledger: u64,
    pub in_ledger_not_in_file: u64,
    /// Rows found in both whose fields differ (`fields_differ` differences), named as a totals
    /// reconciliation names its differing rows.
    #[serde(rename = "differing_rows")]
    pub fields_differ: u64,
    pub duplicate_rows: u64,
    pub malformed_rows: u64,
    /// Claims (any institution) of the period with no institution: listed, never matched.
    pub unreconcilable_claims: u64,
    /// The institution's manual claims (手工报销) of the period: paid to the member, not
    /// settled through the institution, so not expected in its file.
    pub manual_claims_excluded: u64,
}

impl DetailCounts {
    /// Differences of every kind.
    pub fn differences(&self) -> u64 {
        self.in_file_not_in_ledger
            + self.in_ledger_not_in_file
            + self.fields_differ
            + self.duplicate_rows
            + self.malformed_rows
    }
}

/// The outcome of a detail reconciliation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DetailReport {
    pub file: String,
    pub encoding: FileEncoding,
    pub institution: String,
    pub from: Day,
    pub to: Day,
    /// `"match"` or `"differences"`.
    pub status: &'static str,
    pub counts: DetailCounts,
    /// Differences in file order, then the ledger's missing rows by settlement id; at most
    /// `differences_kept_per_kind_max` of each kind.
    pub differences: Vec<Difference>,
    /// Differences counted but not listed.
    pub differences_left_out: u64,
    pub unreconcilable: Vec<Unreconcilable>,
    pub unreconcilable_left_out: u64,
    /// False when too many rows were unknown to the ledger to look for duplicates among all
    /// of them (see [`UNMATCHED_FINGERPRINTS_MAX`]).
    pub duplicate_check_complete: bool,
}

impl DetailReport {
    pub fn is_match(&self) -> bool {
        self.counts.differences() == 0
    }

    /// 0 when everything matches, 1 when there are differences. (Unreconcilable claims do
    /// not change it: they are no institution's, and are listed in every report of the
    /// period.) An unreadable file is a [`ReconError`], exit 2.
    pub fn exit_code(&self) -> u8 {
        crate::exit_for(self.is_match())
    }
}

/// What the ledger expects in the file under one settlement id.
struct Expected {
    psn_no: Box<str>,
    mdtrt_id: Option<Box<str>>,
    settled_on: Day,
    /// The settlement is dated in the period: a row with flag 0 is expected.
    settlement_expected: bool,
    /// The reversal's date, when it is in the period: a row with flag 1 is expected.
    reversed_on: Option<Day>,
    amounts: Amounts,
    /// Line of the file's settlement row (0: none yet).
    settlement_line: u64,
    /// Line of the file's refund row (0: none yet).
    refund_line: u64,
}

impl Expected {
    fn of(settlement: &Settlement) -> Expected {
        Expected {
            psn_no: settlement.member.as_str().into(),
            mdtrt_id: settlement.visit.as_deref().map(Into::into),
            settled_on: settlement.date,
            settlement_expected: false,
            reversed_on: None,
            amounts: Amounts::of(settlement),
            settlement_line: 0,
            refund_line: 0,
        }
    }
}

/// One parsed data row.
struct FileRow<'a> {
    setl_id: Cow<'a, str>,
    mdtrt_id: Cow<'a, str>,
    psn_no: Cow<'a, str>,
    amounts: Amounts,
    refund: bool,
}

fn parse_row<'a>(fields: &[Cow<'a, str>], indexes: &[usize]) -> Result<FileRow<'a>, RowFault> {
    let field = |i: usize| fields[indexes[i]].clone();
    let setl_id = field(0);
    if setl_id.is_empty() {
        return Err(RowFault("setl_id is empty".to_string()));
    }
    if setl_id.len() > ID_BYTES_MAX {
        return Err(RowFault(format!(
            "setl_id is {} bytes, longer than any id the ledger accepts ({ID_BYTES_MAX})",
            setl_id.len()
        )));
    }
    let refund = match fields[indexes[7]].as_ref() {
        "0" => false,
        "1" => true,
        other => {
            return Err(RowFault(format!(
                "refd_setl_flag '{}' must be 0 (settlement) or 1 (refund)",
                other.escape_debug()
            )))
        }
    };
    let mut amounts = Amounts {
        medfee_sumamt: parse_amount(DETAIL_COLUMNS[3], &fields[indexes[3]])?,
        fund_pay_sumamt: parse_amount(DETAIL_COLUMNS[4], &fields[indexes[4]])?,
        acct_pay: parse_amount(DETAIL_COLUMNS[5], &fields[indexes[5]])?,
        cash_payamt: parse_amount(DETAIL_COLUMNS[6], &fields[indexes[6]])?,
    };
    let named = amounts.named();
    let negative: Vec<&str> = named
        .iter()
        .filter(|(_, m)| m.is_negative())
        .map(|(n, _)| *n)
        .collect();
    if !negative.is_empty() {
        if !refund {
            return Err(RowFault(format!(
                "settlement row (refd_setl_flag 0) has negative {}; only refund rows may be negative",
                negative.join(", ")
            )));
        }
        let positive: Vec<&str> = named
            .iter()
            .filter(|(_, m)| m.fen() > 0)
            .map(|(n, _)| *n)
            .collect();
        if !positive.is_empty() {
            return Err(RowFault(format!(
                "refund row mixes negative {} with positive {}; write all its amounts with one sign",
                negative.join(", "),
                positive.join(", ")
            )));
        }
        amounts = Amounts {
            medfee_sumamt: -amounts.medfee_sumamt,
            fund_pay_sumamt: -amounts.fund_pay_sumamt,
            acct_pay: -amounts.acct_pay,
            cash_payamt: -amounts.cash_payamt,
        };
    }
    Ok(FileRow {
        setl_id,
        mdtrt_id: field(1),
        psn_no: field(2),
        amounts,
        refund,
    })
}

fn fingerprint(setl_id: &str, refund: bool) -> u128 {
    let half = |salt: u8| {
        let mut hasher = std::hash::DefaultHasher::new();
        salt.hash(&mut hasher);
        refund.hash(&mut hasher);
        setl_id.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// Counts every difference, keeps the first few of each kind, and passes each to the sink.
struct Collector<'s> {
    kept: Vec<Difference>,
    kept_per_kind: [usize; 5],
    kept_per_kind_max: usize,
    left_out: u64,
    counts: DetailCounts,
    sink: &'s mut dyn FnMut(&Difference) -> std::io::Result<()>,
}

impl Collector<'_> {
    fn push(&mut self, difference: Difference) -> Result<(), ReconError> {
        match &difference {
            Difference::InFileNotInLedger { .. } => self.counts.in_file_not_in_ledger += 1,
            Difference::InLedgerNotInFile { .. } => self.counts.in_ledger_not_in_file += 1,
            Difference::FieldsDiffer { .. } => self.counts.fields_differ += 1,
            Difference::DuplicateRow { .. } => self.counts.duplicate_rows += 1,
            Difference::MalformedRow { .. } => self.counts.malformed_rows += 1,
        }
        (self.sink)(&difference)
            .map_err(|e| ReconError::Output(format!("cannot write a difference out: {e}")))?;
        let kind = difference.kind_index();
        if self.kept_per_kind[kind] < self.kept_per_kind_max {
            self.kept_per_kind[kind] += 1;
            self.kept.push(difference);
        } else {
            self.left_out += 1;
        }
        Ok(())
    }
}

/// Reconciles an institution's 3202 detail file against the ledger for the days `from..=to`.
/// `progress(done_units, total_units)`: see [`reconcile_detail_streaming`].
pub fn reconcile_detail(
    ledger: &Ledger,
    file: &Path,
    institution: &str,
    from: Day,
    to: Day,
    options: &DetailOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DetailReport, ReconError> {
    reconcile_detail_streaming(
        ledger,
        file,
        institution,
        from,
        to,
        options,
        progress,
        &mut |_| Ok(()),
    )
}

/// As [`reconcile_detail`], and every difference (not only those kept in the report) is
/// handed to `sink` as it is found (for a CSV file of all of them): file rows in line order,
/// then the ledger's settlements missing from the file, by settlement id.
///
/// `progress(done_units, total_units)` counts log records scanned plus file bytes read (twice
/// when the encoding has to be found by a pass over the file); only the ratio is meaningful.
#[allow(clippy::too_many_arguments)]
pub fn reconcile_detail_streaming(
    ledger: &Ledger,
    file: &Path,
    institution: &str,
    from: Day,
    to: Day,
    options: &DetailOptions,
    progress: &mut dyn FnMut(u64, u64),
    sink: &mut dyn FnMut(&Difference) -> std::io::Result<()>,
) -> Result<DetailReport, ReconError> {
    if from > to {
        return Err(ReconError::Request(format!(
            "the period starts on {from}, after it ends on {to}"
        )));
    }
    // The file's encoding first, so a file that cannot be opened fails before the log scan.
    let crate::OpenedFile {
        mut progress,
        file_bytes,
        records,
        encoding,
        mut lines,
        header,
    } = crate::open_institution_file(ledger, file, &DETAIL_COLUMNS, progress)?;
    let mut side = LedgerSide::default();
    scan::scan_claims(
        ledger,
        &mut |done| progress.report(file_bytes + done),
        &mut |event| side.add(event, institution, from..=to, options),
    )?;
    let LedgerSide {
        mut expected,
        counts,
        unreconcilable,
    } = side;
    let unreconcilable_left_out = counts.unreconcilable_claims - unreconcilable.len() as u64;
    let mut collector = Collector {
        kept: Vec::new(),
        kept_per_kind: [0; 5],
        kept_per_kind_max: options.differences_kept_per_kind_max,
        left_out: 0,
        counts,
        sink,
    };
    let mut rows = FileRows {
        lines: &mut lines,
        header: &header,
        unmatched: Unmatched {
            seen: HashMap::new(),
            duplicate_check_complete: true,
        },
    };
    rows.match_all(&mut expected, &mut collector, &mut |done| {
        progress.report(file_bytes + records + done)
    })?;
    let duplicate_check_complete = rows.unmatched.duplicate_check_complete;
    drop(rows);
    push_missing(&expected, &mut collector)?;
    progress.report(progress.total_units);

    let counts = collector.counts;
    Ok(DetailReport {
        file: file.display().to_string(),
        encoding,
        institution: institution.to_string(),
        from,
        to,
        status: if counts.differences() == 0 {
            "match"
        } else {
            "differences"
        },
        counts,
        differences: collector.kept,
        differences_left_out: collector.left_out,
        unreconcilable,
        unreconcilable_left_out,
        duplicate_check_complete,
    })
}

/// The ledger side: this institution's claims of the period, keyed by settlement id, with the
/// counts of what the scan saw and the claims that name no institution.
#[derive(Default)]
struct LedgerSide {
    expected: HashMap<Box<str>, Expected>,
    counts: DetailCounts,
    unreconcilable: Vec<Unreconcilable>,
}

impl LedgerSide {
    fn add(
        &mut self,
        event: ClaimEvent<'_>,
        institution: &str,
        period: std::ops::RangeInclusive<Day>,
        options: &DetailOptions,
    ) {
        let (settlement, day, refund) = match event {
            ClaimEvent::Settled(s) => (s, s.date, false),
            ClaimEvent::Reversed { date, settlement } => (settlement, date, true),
        };
        if !period.contains(&day) {
            return;
        }
        match settlement.institution.as_deref() {
            None => {
                self.counts.unreconcilable_claims += 1;
                if self.unreconcilable.len() < options.unreconcilable_kept_max {
                    self.unreconcilable.push(Unreconcilable {
                        setl_id: settlement.claim.clone(),
                        psn_no: settlement.member.clone(),
                        channel: settlement.channel,
                        refund,
                        date: day,
                        amounts: Amounts::of(settlement),
                    });
                }
            }
            Some(id) if id != institution => {}
            Some(_) if settlement.channel == Channel::Manual => {
                self.counts.manual_claims_excluded += 1;
            }
            Some(_) => {
                let entry = self
                    .expected
                    .entry(settlement.claim.as_str().into())
                    .or_insert_with(|| Expected::of(settlement));
                if refund {
                    self.counts.ledger_reversals += 1;
                    entry.reversed_on = Some(day);
                } else {
                    self.counts.ledger_settlements += 1;
                    entry.settlement_expected = true;
                }
            }
        }
    }
}

/// Lines between two progress reports while reading the file.
const PROGRESS_LINES: u32 = 4096;

/// The file side: its rows read in line order.
struct FileRows<'a> {
    lines: &'a mut input::LineReader,
    header: &'a input::Header,
    unmatched: Unmatched,
}

/// The settlement ids of rows the ledger does not have (as fingerprints, to find duplicates
/// among them), up to [`UNMATCHED_FINGERPRINTS_MAX`].
struct Unmatched {
    seen: HashMap<u128, u64>,
    duplicate_check_complete: bool,
}

impl FileRows<'_> {
    /// Reads every row and matches it against `expected`. `progress(file_bytes_read)`.
    fn match_all(
        &mut self,
        expected: &mut HashMap<Box<str>, Expected>,
        collector: &mut Collector<'_>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ReconError> {
        let mut lines_since_progress = 0u32;
        loop {
            lines_since_progress += 1;
            if lines_since_progress >= PROGRESS_LINES {
                lines_since_progress = 0;
                progress(self.lines.position().0);
            }
            let Some(line) = self.lines.next_line()? else {
                return Ok(());
            };
            let number = line.number;
            let text = match line.text {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => text,
                Err(fault) => {
                    collector.counts.file_rows += 1;
                    collector.push(Difference::MalformedRow {
                        line: number,
                        reason: fault.0,
                    })?;
                    continue;
                }
            };
            collector.counts.file_rows += 1;
            let difference = match parse_line(text, self.header) {
                Ok(row) => {
                    if row.refund {
                        collector.counts.file_refund_rows += 1;
                    }
                    match expected.get_mut(row.setl_id.as_ref()) {
                        Some(entry) => match_row(number, &row, entry),
                        None => Some(self.unmatched.row(number, row)),
                    }
                }
                Err(fault) => Some(Difference::MalformedRow {
                    line: number,
                    reason: fault.0,
                }),
            };
            match difference {
                Some(difference) => collector.push(difference)?,
                None => collector.counts.matched_rows += 1,
            }
        }
    }
}

impl Unmatched {
    /// A row whose settlement id the ledger does not have: missing from the ledger, or a
    /// duplicate of such a row.
    fn row(&mut self, number: u64, row: FileRow<'_>) -> Difference {
        let key = fingerprint(&row.setl_id, row.refund);
        if let Some(&first_line) = self.seen.get(&key) {
            return Difference::DuplicateRow {
                line: number,
                first_line,
                setl_id: row.setl_id.into_owned(),
                refund: row.refund,
                psn_no: row.psn_no.into_owned(),
            };
        }
        if self.seen.len() < UNMATCHED_FINGERPRINTS_MAX {
            self.seen.insert(key, number);
        } else {
            self.duplicate_check_complete = false;
        }
        Difference::InFileNotInLedger {
            line: number,
            setl_id: row.setl_id.into_owned(),
            refund: row.refund,
            psn_no: row.psn_no.into_owned(),
            mdtrt_id: row.mdtrt_id.into_owned(),
            file: row.amounts,
            note: None,
        }
    }
}

/// One line's fields, as a row of the header's shape.
fn parse_line<'t>(text: &'t str, header: &input::Header) -> Result<FileRow<'t>, RowFault> {
    let mut fields: Vec<Cow<'t, str>> = Vec::with_capacity(header.columns);
    header.split(text, &mut fields)?;
    parse_row(&fields, &header.indexes)
}

/// The ledger's rows the file did not have, by settlement id.
fn push_missing(
    expected: &HashMap<Box<str>, Expected>,
    collector: &mut Collector<'_>,
) -> Result<(), ReconError> {
    let mut missing: Vec<(&str, &Expected, bool)> = Vec::new();
    for (setl_id, entry) in expected {
        if entry.settlement_expected && entry.settlement_line == 0 {
            missing.push((setl_id, entry, false));
        }
        if entry.reversed_on.is_some() && entry.refund_line == 0 {
            missing.push((setl_id, entry, true));
        }
    }
    missing.sort_unstable_by(|a, b| (a.0, a.2).cmp(&(b.0, b.2)));
    for (setl_id, entry, refund) in missing {
        let date = match (refund, entry.reversed_on) {
            (true, Some(day)) => day,
            _ => entry.settled_on,
        };
        collector.push(Difference::InLedgerNotInFile {
            setl_id: setl_id.to_string(),
            refund,
            psn_no: entry.psn_no.to_string(),
            mdtrt_id: entry.mdtrt_id.as_deref().unwrap_or("").to_string(),
            date,
            ledger: entry.amounts,
        })?;
    }
    Ok(())
}

/// Matches one file row against what the ledger has under its settlement id; `None` when it
/// matches in every field.
fn match_row(line: u64, row: &FileRow<'_>, entry: &mut Expected) -> Option<Difference> {
    let seen_line = if row.refund {
        &mut entry.refund_line
    } else {
        &mut entry.settlement_line
    };
    if *seen_line != 0 {
        return Some(Difference::DuplicateRow {
            line,
            first_line: *seen_line,
            setl_id: row.setl_id.to_string(),
            refund: row.refund,
            psn_no: row.psn_no.to_string(),
        });
    }
    *seen_line = line;
    let expected = if row.refund {
        entry.reversed_on.is_some()
    } else {
        entry.settlement_expected
    };
    if !expected {
        let note = if row.refund {
            format!(
                "the ledger has this settlement (dated {}) but no reversal of it dated in the period",
                entry.settled_on
            )
        } else {
            format!(
                "the ledger's settlement is dated {}, outside the period; only its reversal is in it",
                entry.settled_on
            )
        };
        return Some(Difference::InFileNotInLedger {
            line,
            setl_id: row.setl_id.to_string(),
            refund: row.refund,
            psn_no: row.psn_no.to_string(),
            mdtrt_id: row.mdtrt_id.to_string(),
            file: row.amounts,
            note: Some(note),
        });
    }
    let mut fields = Vec::new();
    if row.psn_no.as_ref() != entry.psn_no.as_ref() {
        fields.push(FieldDifference {
            field: "psn_no",
            file: row.psn_no.to_string(),
            ledger: entry.psn_no.to_string(),
        });
    }
    let ledger_visit = entry.mdtrt_id.as_deref().unwrap_or("");
    if row.mdtrt_id.as_ref() != ledger_visit {
        fields.push(FieldDifference {
            field: "mdtrt_id",
            file: row.mdtrt_id.to_string(),
            ledger: ledger_visit.to_string(),
        });
    }
    compare_amounts(&row.amounts, &entry.amounts, &mut fields);
    if fields.is_empty() {
        return None;
    }
    Some(Difference::FieldsDiffer {
        line,
        setl_id: row.setl_id.to_string(),
        refund: row.refund,
        psn_no: row.psn_no.to_string(),
        fields,
    })
}
