//! The monthly settlement statement (结算单): what the funds owe one institution for a month,
//! the figure clearing (清算) pays from.

use std::collections::BTreeMap;

use gongji_domain::types::Channel;
use gongji_domain::{Money, Month, Settlement};
use gongji_ledger::Ledger;
use serde::Serialize;

use crate::scan::{self, ClaimEvent};
use crate::{Progress, ReconError};

/// Net figures of one region's funds (an institution may treat members of several regions).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RegionStatement {
    pub region: String,
    pub settlements: u64,
    pub reversals: u64,
    /// Owed by the region's pooled fund (统筹基金): special + ordinary pooled payments.
    pub pooled_paid: Money,
    /// Owed by the region's large-amount fund (大额医疗互助基金).
    pub large_amount_paid: Money,
    /// Paid from members' personal accounts at the institution.
    pub account_paid: Money,
    /// Paid by members in cash at the institution (not owed by the fund).
    pub cash_paid: Money,
    /// Total cost (`medfee_sumamt`).
    pub medfee_sumamt: Money,
}

impl RegionStatement {
    /// Each figure, named as in the statement.
    fn named(&self) -> [(&'static str, Money); 5] {
        [
            ("pooled_paid", self.pooled_paid),
            ("large_amount_paid", self.large_amount_paid),
            ("account_paid", self.account_paid),
            ("cash_paid", self.cash_paid),
            ("medfee_sumamt", self.medfee_sumamt),
        ]
    }

    /// Adds (`reversal`: subtracts) the settlement's figures, or `Err` naming the first figure
    /// that would not fit in `i64` fen (nothing changed then).
    fn add(&mut self, settlement: &Settlement, reversal: bool) -> Result<(), &'static str> {
        let medfee_sumamt = settlement
            .eligible
            .checked_add(settlement.uncovered)
            .ok_or("medfee_sumamt")?;
        let figures = RegionStatement {
            pooled_paid: settlement.pooled_paid,
            large_amount_paid: settlement.large_amount_paid,
            account_paid: settlement.account_paid,
            cash_paid: settlement.cash_paid,
            medfee_sumamt,
            ..RegionStatement::default()
        };
        let op = if reversal {
            i64::checked_sub
        } else {
            i64::checked_add
        };
        self.combine(&figures, op)
    }

    fn combine(
        &mut self,
        other: &RegionStatement,
        op: fn(i64, i64) -> Option<i64>,
    ) -> Result<(), &'static str> {
        let [pooled_paid, large_amount_paid, account_paid, cash_paid, medfee_sumamt] =
            crate::checked_each(self.named(), other.named(), op);
        (
            self.pooled_paid,
            self.large_amount_paid,
            self.account_paid,
            self.cash_paid,
            self.medfee_sumamt,
        ) = (
            pooled_paid?,
            large_amount_paid?,
            account_paid?,
            cash_paid?,
            medfee_sumamt?,
        );
        Ok(())
    }
}

/// What the funds owe an institution for a month, reversals netted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub institution: String,
    pub month: Month,
    /// Settlements dated in the month.
    pub settlements: u64,
    /// Reversals dated in the month (of settlements of this month or earlier ones).
    pub reversals: u64,
    /// `settlements - reversals`.
    pub net_settlements: i64,
    pub pooled_paid: Money,
    pub large_amount_paid: Money,
    /// What the funds owe the institution: `pooled_paid + large_amount_paid`.
    pub fund_owed: Money,
    /// Personal-account payments at the institution (paid out of members' accounts).
    pub account_paid: Money,
    pub cash_paid: Money,
    pub medfee_sumamt: Money,
    /// The same figures per region, by region id.
    pub by_region: Vec<RegionStatement>,
    /// Manual claims (手工报销) naming the institution in the month: the fund reimbursed the
    /// member, so they are not owed to the institution and are left out of every figure above.
    pub manual_claims_excluded: u64,
}

impl Statement {
    /// Nothing settled or reversed at the institution in the month.
    pub fn is_empty(&self) -> bool {
        self.settlements == 0 && self.reversals == 0 && self.manual_claims_excluded == 0
    }
}

/// The statement of `institution` for `month`: settlements dated in the month, less reversals
/// dated in the month (a reversal nets out in the month it is dated, whenever the settlement
/// was). `progress(done_records, total_records)` over the log scan.
pub fn settlement_statement(
    ledger: &Ledger,
    institution: &str,
    month: Month,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Statement, ReconError> {
    let mut progress = Progress {
        callback: progress,
        total_units: scan::records_total(ledger),
    };
    let mut regions: BTreeMap<String, RegionStatement> = BTreeMap::new();
    let mut manual_claims_excluded = 0u64;
    // The first figure (and region) whose sum would not fit in `i64` fen.
    let mut overflow: Option<(&'static str, String)> = None;
    scan::scan_claims(ledger, &mut |done| progress.report(done), &mut |event| {
        let (settlement, day, reversal) = match event {
            ClaimEvent::Settled(s) => (s, s.date, false),
            ClaimEvent::Reversed { date, settlement } => (settlement, date, true),
        };
        if day.month() != month || settlement.institution.as_deref() != Some(institution) {
            return;
        }
        if settlement.channel == Channel::Manual {
            manual_claims_excluded += 1;
            return;
        }
        let region = regions
            .entry(settlement.region.clone())
            .or_insert_with(|| RegionStatement {
                region: settlement.region.clone(),
                ..RegionStatement::default()
            });
        if let Err(figure) = region.add(settlement, reversal) {
            overflow.get_or_insert((figure, format!(" in region {}", settlement.region)));
        } else if reversal {
            region.reversals += 1;
        } else {
            region.settlements += 1;
        }
    })?;
    let too_large = |(figure, region): (&str, String)| {
        ReconError::Overflow(format!(
            "the {figure} of institution {institution} in {month}{region} is too large to total (more than {} yuan)",
            Money::from_fen(i64::MAX)
        ))
    };
    if let Some(overflow) = overflow {
        return Err(too_large(overflow));
    }
    let by_region: Vec<RegionStatement> = regions.into_values().collect();
    let mut all = RegionStatement::default();
    for region in &by_region {
        all.combine(region, i64::checked_add)
            .map_err(|figure| too_large((figure, String::new())))?;
        all.settlements += region.settlements;
        all.reversals += region.reversals;
    }
    let fund_owed = all
        .pooled_paid
        .checked_add(all.large_amount_paid)
        .ok_or_else(|| too_large(("fund_owed", String::new())))?;
    Ok(Statement {
        institution: institution.to_string(),
        month,
        settlements: all.settlements,
        reversals: all.reversals,
        net_settlements: all.settlements as i64 - all.reversals as i64,
        pooled_paid: all.pooled_paid,
        large_amount_paid: all.large_amount_paid,
        fund_owed,
        account_paid: all.account_paid,
        cash_paid: all.cash_paid,
        medfee_sumamt: all.medfee_sumamt,
        by_region,
        manual_claims_excluded,
    })
}
