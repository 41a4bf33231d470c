//! `export settlements`: one row per settled claim (`claim_settled`) and one per reversal
//! (`claim_reversed`), every figure of the settlement its own column. A reversal's row carries
//! the settlement it undoes with every amount negated, so that a column's sum is the net
//! movement: the pooled and large-amount columns summed are what the funds paid for claims,
//! as `gongji fund` counts it (docs/exports.md says exactly how).

use gongji_domain::types::{Channel, InstitutionKind, Status};
use gongji_domain::{Day, Event, Money, Settlement};
use gongji_ledger::scan::Scanned;

use crate::columns::{fits, Cell, Column, Kind};
use crate::select::Selection;
use crate::{ExportError, Sink};

/// The kinds this export reads (every other record is passed by undecoded).
pub const KINDS: [&str; 2] = ["claim_settled", "claim_reversed"];

/// The amounts, in the order written: each a field of [`Settlement`] of the same name.
pub const AMOUNTS: [&str; 11] = [
    "eligible",
    "special_paid",
    "uncovered",
    "deductible_applied",
    "ordinary_paid",
    "ordinary_pooled",
    "large_amount_paid",
    "pooled_paid",
    "account_paid",
    "cash_paid",
    "reimbursed_to_member",
];

const fn money(name: &'static str) -> Column {
    Column::new(name, Kind::Money)
}

/// The columns, in the order written.
pub const COLUMNS: [Column; 28] = [
    Column::new("position", Kind::Int),
    // `settlement` or `reversal`.
    Column::new("kind", Kind::Text),
    Column::new("claim", Kind::Text),
    Column::new("member", Kind::Text),
    Column::new("region", Kind::Text),
    // The row's own date: the claim's for a settlement, the reversal's for a reversal.
    Column::new("date", Kind::Date),
    // The settled claim's date (the same as `date` on a settlement's row).
    Column::new("claim_date", Kind::Date),
    Column::new("year", Kind::Int),
    Column::new("level", Kind::Int),
    Column::new("channel", Kind::Text),
    Column::nullable("institution", Kind::Text),
    Column::new("institution_kind", Kind::Text),
    Column::nullable("visit", Kind::Text),
    Column::new("policy", Kind::Text),
    Column::new("status", Kind::Text),
    money(AMOUNTS[0]),
    money(AMOUNTS[1]),
    money(AMOUNTS[2]),
    money(AMOUNTS[3]),
    money(AMOUNTS[4]),
    money(AMOUNTS[5]),
    money(AMOUNTS[6]),
    money(AMOUNTS[7]),
    money(AMOUNTS[8]),
    money(AMOUNTS[9]),
    money(AMOUNTS[10]),
    // Why a reversal was made; empty on a settlement's row.
    Column::nullable("reason", Kind::Text),
    Column::new("recorded_at", Kind::Timestamp),
];

/// Writes the row of `scanned` if it is a settlement or reversal `selection` takes; returns
/// the rows written (0 or 1).
pub fn write(
    scanned: &Scanned<'_>,
    selection: &Selection,
    sink: &mut dyn Sink,
) -> Result<u64, ExportError> {
    let (settlement, reversal) = match scanned.event {
        Event::ClaimSettled { settlement } => (settlement.as_ref(), None),
        Event::ClaimReversed {
            date,
            reason,
            settlement,
        } => (settlement.as_ref(), Some((*date, reason.as_str()))),
        _ => return Ok(0),
    };
    let date = reversal.map_or(settlement.date, |(date, _)| date);
    if !selection.admits(date, &[Some(&settlement.region), None]) {
        return Ok(0);
    }
    let cells = row(scanned, settlement, reversal);
    assert!(fits(&COLUMNS, &cells), "a settlement row fits its columns");
    sink.row(&cells)?;
    Ok(1)
}

/// The cells of one settlement's row, or of its reversal's (`reversal`: its date and reason).
pub fn row<'a>(
    scanned: &Scanned<'a>,
    settlement: &'a Settlement,
    reversal: Option<(Day, &'a str)>,
) -> Vec<Cell<'a>> {
    let sign = |amount: Money| if reversal.is_some() { -amount } else { amount };
    let s = settlement;
    let mut cells = vec![
        Cell::Int(position(scanned.position)),
        Cell::text(if reversal.is_some() {
            "reversal"
        } else {
            "settlement"
        }),
        Cell::text(&s.claim),
        Cell::text(&s.member),
        Cell::text(&s.region),
        Cell::date(reversal.map_or(s.date, |(date, _)| date)),
        Cell::date(s.date),
        Cell::Int(i64::from(s.year)),
        Cell::Int(i64::from(s.level)),
        Cell::text(channel_name(s.channel)),
        Cell::text_or_null(s.institution.as_deref()),
        Cell::text(institution_kind_name(s.institution_kind)),
        Cell::text_or_null(s.visit.as_deref()),
        Cell::text(&s.policy),
        Cell::text(status_name(s.status)),
    ];
    cells.extend(
        amounts(s)
            .into_iter()
            .map(|amount| Cell::money(sign(amount))),
    );
    cells.push(Cell::text_or_null(reversal.map(|(_, reason)| reason)));
    cells.push(Cell::Timestamp(scanned.recorded_at_micros));
    cells
}

/// The settlement's amounts in [`AMOUNTS`] order.
fn amounts(s: &Settlement) -> [Money; 11] {
    [
        s.eligible,
        s.special_paid,
        s.uncovered,
        s.deductible_applied,
        s.ordinary_paid,
        s.ordinary_pooled,
        s.large_amount_paid,
        s.pooled_paid,
        s.account_paid,
        s.cash_paid,
        s.reimbursed_to_member,
    ]
}

/// A log position as a signed 64-bit integer (what Parquet and pandas hold; a log never
/// reaches 2^63 records).
pub(crate) fn position(position: u64) -> i64 {
    i64::try_from(position).expect("a log position is below 2^63")
}

/// The names these vocabularies have in JSON (`serde(rename_all = "snake_case")`).
pub(crate) fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Institution => "institution",
        Channel::Pharmacy => "pharmacy",
        Channel::Manual => "manual",
    }
}

pub(crate) fn institution_kind_name(kind: InstitutionKind) -> &'static str {
    match kind {
        InstitutionKind::Grassroots => "grassroots",
        InstitutionKind::Hospital => "hospital",
        InstitutionKind::Pharmacy => "pharmacy",
    }
}

pub(crate) fn status_name(status: Status) -> &'static str {
    match status {
        Status::Active => "active",
        Status::Retired => "retired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_json_names() {
        for channel in [Channel::Institution, Channel::Pharmacy, Channel::Manual] {
            assert_eq!(serde_json::json!(channel), channel_name(channel));
        }
        for kind in InstitutionKind::ALL {
            assert_eq!(serde_json::json!(kind), institution_kind_name(kind));
        }
        for status in [Status::Active, Status::Retired] {
            assert_eq!(serde_json::json!(status), status_name(status));
        }
    }

    #[test]
    fn the_amount_columns_are_the_settlements_fields_in_order() {
        let names: Vec<&str> = COLUMNS
            .iter()
            .filter(|c| c.kind == Kind::Money)
            .map(|c| c.name)
            .collect();
        assert_eq!(names, AMOUNTS);
    }
}
