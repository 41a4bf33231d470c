//! `export events`: one row per log record of the selection, with the event's own date, kind,
//! stream, member, region and transaction id, the money it moves as the ledger's totals count
//! it ([`crate::flows`], and the ledger's own in and out, [`Event::external_flow`]), and the
//! whole event as JSON (`details`, what `history --json` shows of it).

use gongji_domain::{Event, Money};
use gongji_ledger::scan::Scanned;

use crate::columns::{fits, Cell, Column, Kind};
use crate::flows::{account_flow, fund_flow};
use crate::select::Selection;
use crate::settlements::position;
use crate::{ExportError, Sink};

const fn money(name: &'static str) -> Column {
    Column::new(name, Kind::Money)
}

/// The columns, in the order written.
pub const COLUMNS: [Column; 18] = [
    Column::new("position", Kind::Int),
    Column::new("recorded_at", Kind::Timestamp),
    Column::new("own_date", Kind::Date),
    Column::new("kind", Kind::Text),
    Column::new("stream", Kind::Text),
    Column::nullable("member", Kind::Text),
    Column::nullable("region", Kind::Text),
    Column::nullable("id", Kind::Text),
    Column::nullable("amount", Kind::Money),
    money("account_in"),
    money("account_out"),
    money("pooled_in"),
    money("pooled_out"),
    money("large_amount_in"),
    money("large_amount_out"),
    money("ledger_in"),
    money("ledger_out"),
    Column::new("details", Kind::Text),
];

/// Writes the row of `scanned` if `selection` takes it (noting first where a member is);
/// returns the rows written (0 or 1).
pub fn write(
    scanned: &Scanned<'_>,
    selection: &mut Selection,
    sink: &mut dyn Sink,
) -> Result<u64, ExportError> {
    let event = scanned.event;
    selection.note(event);
    let regions = selection.regions(event);
    if !selection.admits(event.date(), &regions) {
        return Ok(0);
    }
    let cells = row(scanned, regions[0]);
    assert!(fits(&COLUMNS, &cells), "an event row fits its columns");
    sink.row(&cells)?;
    Ok(1)
}

/// The cells of one record's row; `region` is the first region it counts for.
pub fn row<'a>(scanned: &Scanned<'a>, region: Option<&'a str>) -> Vec<Cell<'a>> {
    let event = scanned.event;
    let (account_in, account_out) = account_flow(event);
    let funds = fund_flow(event);
    let (ledger_in, ledger_out) = event.external_flow();
    vec![
        Cell::Int(position(scanned.position)),
        Cell::Timestamp(scanned.recorded_at_micros),
        Cell::date(event.date()),
        Cell::text(event.kind()),
        Cell::owned(event.stream_ref().name()),
        Cell::text_or_null(member(event)),
        Cell::text_or_null(region),
        Cell::text_or_null(id(event)),
        Cell::Money(amount(event)),
        Cell::money(account_in),
        Cell::money(account_out),
        Cell::money(funds.pooled_in),
        Cell::money(funds.pooled_out),
        Cell::money(funds.large_amount_in),
        Cell::money(funds.large_amount_out),
        Cell::money(ledger_in),
        Cell::money(ledger_out),
        Cell::owned(serde_json::to_string(event).expect("an event serializes to JSON")),
    ]
}

/// The member the event is about: the account's holder for a payment or a binding, none for
/// a region's own events (a policy, a refund of a fund, supervision).
pub fn member(event: &Event) -> Option<&str> {
    match event {
        Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
            Some(&settlement.member)
        }
        Event::FundEventOwed { owed } => Some(&owed.member),
        Event::Enrolled { member, .. }
        | Event::Retired { member, .. }
        | Event::AccountCredited { member, .. }
        | Event::PooledContributed { member, .. }
        | Event::PooledCreditPaid { member, .. }
        | Event::FundClaimPaid { member, .. }
        | Event::PremiumReceived { member, .. }
        | Event::YearClosed { member, .. }
        | Event::Deceased { member, .. }
        | Event::Inherited { member, .. }
        | Event::Transferred { member, .. }
        | Event::TransferSent { member, .. }
        | Event::TransferReceived { member, .. }
        | Event::OwedLanded { member, .. }
        | Event::FamilyBound { holder: member, .. }
        | Event::FamilyUnbound { holder: member, .. }
        | Event::AccountPaid { holder: member, .. }
        | Event::AccountPaymentReversed { holder: member, .. } => Some(member),
        Event::PolicyLoaded { .. }
        | Event::FundClaimRefunded { .. }
        | Event::PremiumRefunded { .. }
        | Event::FlagDecided { .. }
        | Event::MonitorRulesLoaded { .. } => None,
    }
}

/// The transaction the event belongs to: a claim, an account payment (a premium is one), a
/// transfer between ledgers, an owed event landed, a monitoring flag.
pub fn id(event: &Event) -> Option<&str> {
    match event {
        Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
            Some(&settlement.claim)
        }
        Event::FundClaimPaid { claim, .. } | Event::FundClaimRefunded { claim, .. } => Some(claim),
        Event::AccountPaid { id, .. } | Event::AccountPaymentReversed { id, .. } => Some(id),
        Event::PremiumReceived { payment, .. } | Event::PremiumRefunded { payment, .. } => {
            Some(payment)
        }
        Event::TransferSent { transfer, .. } | Event::TransferReceived { transfer, .. } => {
            Some(transfer)
        }
        Event::OwedLanded { owed, .. } => Some(owed),
        Event::FlagDecided { flag, .. } => Some(flag),
        _ => None,
    }
}

/// The one amount the event states, where it states one: a credit, contribution, fund
/// payment or refund, account payment or its reversal, premium; an opening, inherited,
/// transferred or closing balance. A claim's many figures are the settlements export's.
pub fn amount(event: &Event) -> Option<Money> {
    match event {
        Event::Enrolled {
            opening_balance, ..
        } => Some(*opening_balance),
        Event::AccountCredited { amount, .. }
        | Event::PooledContributed { amount, .. }
        | Event::PooledCreditPaid { amount, .. }
        | Event::FundClaimPaid { amount, .. }
        | Event::FundClaimRefunded { amount, .. }
        | Event::AccountPaid { amount, .. }
        | Event::AccountPaymentReversed { amount, .. }
        | Event::PremiumReceived { amount, .. }
        | Event::PremiumRefunded { amount, .. } => Some(*amount),
        Event::Inherited { balance, .. }
        | Event::Transferred { balance, .. }
        | Event::TransferSent { balance, .. }
        | Event::TransferReceived { balance, .. } => Some(*balance),
        Event::YearClosed {
            closing_balance, ..
        } => Some(*closing_balance),
        _ => None,
    }
}
