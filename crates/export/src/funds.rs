//! `export funds`: one row per region and month, the pooled and the large-amount funds' inflows
//! and outflows of the events dated in that month ([`crate::flows::fund_flow`], the rules the
//! ledger's own totals follow) and each fund's balance at the month's end. The months are those
//! in which a fund moved; the balance carries over the months between. `--from` and `--to`
//! select whole months (those of the two days and between), and a balance is always the
//! fund's own: counted from the region's first movement, whatever the months selected.
//!
//! The rows are made at the pass's end: what is held is one sum per region and month, never
//! the records.

use std::collections::BTreeMap;

use gongji_domain::{Money, Month};
use gongji_ledger::archive::ArchiveFilter;
use gongji_ledger::scan::Scanned;

use crate::columns::{fits, Cell, Column, Kind};
use crate::flows::{fund_flow, FundFlow};
use crate::select::Selection;
use crate::{ExportError, Sink};

/// The kinds that move a fund (every other record is passed by undecoded).
pub const KINDS: [&str; 6] = [
    "pooled_contributed",
    "pooled_credit_paid",
    "fund_claim_paid",
    "fund_claim_refunded",
    "premium_received",
    "premium_refunded",
];

const fn money(name: &'static str) -> Column {
    Column::new(name, Kind::Money)
}

/// The columns, in the order written.
pub const COLUMNS: [Column; 8] = [
    Column::new("region", Kind::Text),
    // The month's first day.
    Column::new("month", Kind::Date),
    money("pooled_in"),
    money("pooled_out"),
    money("pooled_balance"),
    money("large_amount_in"),
    money("large_amount_out"),
    money("large_amount_balance"),
];

/// The sums of a pass, by region and month.
#[derive(Default)]
pub struct Months {
    sums: BTreeMap<(String, Month), FundFlow>,
}

impl Months {
    /// Adds what `scanned` moves, if it is of the region selected (of any month: the balances
    /// need them all).
    pub fn add(&mut self, scanned: &Scanned<'_>, selection: &Selection) {
        let event = scanned.event;
        let regions = selection.regions(event);
        let Some(region) = regions[0] else {
            return;
        };
        if selection
            .filter()
            .region
            .as_deref()
            .is_some_and(|wanted| wanted != region)
        {
            return;
        }
        let flow = fund_flow(event);
        let month = event.date().month();
        let sum = self.sums.entry((region.to_string(), month)).or_default();
        sum.pooled_in += flow.pooled_in;
        sum.pooled_out += flow.pooled_out;
        sum.large_amount_in += flow.large_amount_in;
        sum.large_amount_out += flow.large_amount_out;
    }

    /// Writes a row per region and month of `filter`'s months, in that order, each balance
    /// carried from the region's first month; returns the rows written.
    pub fn write(self, filter: &ArchiveFilter, sink: &mut dyn Sink) -> Result<u64, ExportError> {
        let first = filter.from.map(|day| day.month());
        let last = filter.to.map(|day| day.month());
        let mut rows = 0;
        let mut balances: Option<(String, Money, Money)> = None;
        for ((region, month), flow) in self.sums {
            let (mut pooled, mut large) = match balances.take() {
                Some((last, pooled, large)) if last == region => (pooled, large),
                _ => (Money::ZERO, Money::ZERO),
            };
            pooled = pooled + flow.pooled_in - flow.pooled_out;
            large = large + flow.large_amount_in - flow.large_amount_out;
            let selected =
                first.is_none_or(|first| month >= first) && last.is_none_or(|last| month <= last);
            if !selected {
                balances = Some((region, pooled, large));
                continue;
            }
            let cells = [
                Cell::text(&region),
                Cell::date(month.first_day()),
                Cell::money(flow.pooled_in),
                Cell::money(flow.pooled_out),
                Cell::money(pooled),
                Cell::money(flow.large_amount_in),
                Cell::money(flow.large_amount_out),
                Cell::money(large),
            ];
            assert!(
                fits(&COLUMNS, &cells),
                "a fund month's row fits its columns"
            );
            sink.row(&cells)?;
            rows += 1;
            balances = Some((region, pooled, large));
        }
        Ok(rows)
    }
}
