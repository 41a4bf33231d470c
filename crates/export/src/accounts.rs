//! `export accounts`: one row per personal account as it stands now (of the region selected:
//! where the account belongs now), read one at a time from the projections in id order
//! ([`Ledger::each_account`]), never all in memory. The balances summed are the region's
//! accounts balance as `gongji fund` gives it; `credited_total` and `paid_total` summed, its
//! inflow and outflow.
//!
//! An account is a standing, not a movement of a period: `--from` and `--to` are refused for
//! this table (the balance as of a day is `gongji account ID --as-of DAY`).

use gongji_domain::types::Scheme;
use gongji_ledger::{AccountView, Ledger, LedgerError};

use crate::columns::{fits, Cell, Column, Kind};
use crate::{ExportError, Sink};

const fn money(name: &'static str) -> Column {
    Column::new(name, Kind::Money)
}

/// The columns, in the order written: `account --json`'s fields of one account.
pub const COLUMNS: [Column; 15] = [
    Column::new("member", Kind::Text),
    // open, deceased or closed.
    Column::new("state", Kind::Text),
    Column::new("region", Kind::Text),
    Column::new("region_since", Kind::Date),
    Column::new("scheme", Kind::Text),
    Column::new("enrolled_on", Kind::Date),
    Column::nullable("retired_on", Kind::Date),
    Column::nullable("deceased_on", Kind::Date),
    Column::nullable("closed_on", Kind::Date),
    money("balance"),
    money("credited_total"),
    money("paid_total"),
    Column::new("months_credited", Kind::Int),
    // Relatives bound to the account now (bindings not ended).
    Column::new("relatives_bound", Kind::Int),
    // Bindings ever made, ended ones too.
    Column::new("bindings", Kind::Int),
];

pub(crate) fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Employer => "employer",
        Scheme::IndividualTier1 => "individual_tier1",
        Scheme::IndividualTier2 => "individual_tier2",
        Scheme::LumpSum => "lump_sum",
    }
}

/// Writes a row per account of `region` (every account without one); returns the rows
/// written. `progress(done, 0)` counts accounts (their number is not known beforehand).
pub fn write(
    ledger: &Ledger,
    region: Option<&str>,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, ExportError> {
    let mut failed: Option<ExportError> = None;
    let mut rows = 0u64;
    let written = ledger.each_account(region, &mut |account| {
        match row(&account, sink) {
            Ok(()) => {
                rows += 1;
                if rows.is_multiple_of(4096) {
                    progress(rows, 0);
                }
                Ok(())
            }
            // A writer's error stops the scan and is the one reported.
            Err(error) => {
                failed = Some(error);
                Err(LedgerError::Projection("export stopped".into()))
            }
        }
    });
    if let Some(error) = failed {
        return Err(error);
    }
    written.map_err(ExportError::Ledger)?;
    progress(rows, 0);
    Ok(rows)
}

fn row(account: &AccountView, sink: &mut dyn Sink) -> Result<(), ExportError> {
    let count = |n: usize| Cell::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let bound = account.family.iter().filter(|f| f.until.is_none()).count();
    let cells = [
        Cell::text(&account.member),
        Cell::text(account.state),
        Cell::text(&account.region),
        Cell::date(account.region_since),
        Cell::text(scheme_name(account.scheme)),
        Cell::date(account.enrolled_on),
        Cell::Date(account.retired_on),
        Cell::Date(account.deceased_on),
        Cell::Date(account.closed_on),
        Cell::money(account.balance),
        Cell::money(account.credited_total),
        Cell::money(account.paid_total),
        count(account.months_credited),
        count(bound),
        count(account.family.len()),
    ];
    assert!(fits(&COLUMNS, &cells), "an account's row fits its columns");
    sink.row(&cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_names_are_the_json_names() {
        for scheme in [
            Scheme::Employer,
            Scheme::IndividualTier1,
            Scheme::IndividualTier2,
            Scheme::LumpSum,
        ] {
            assert_eq!(serde_json::json!(scheme), scheme_name(scheme));
        }
    }
}
