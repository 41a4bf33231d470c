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
    fn add(&mut self, settlement: &Settlement, sign: i64) {
        let signed = |m: Money| Money::from_fen(m.fen() * sign);
        self.pooled_paid += signed(settlement.pooled_paid);
        self.large_amount_paid += signed(settlement.large_amount_paid);
        self.account_paid += signed(settlement.account_paid);
        self.cash_paid += signed(settlement.cash_paid);
        self.medfee_sumamt += signed(settlement.eligible + settlement.uncovered);
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
    scan::scan_claims(ledger, &mut |done| progress.report(done), &mut |event| {
        let (settlement, day, sign) = match event {
            ClaimEvent::Settled(s) => (s, s.date, 1),
            ClaimEvent::Reversed { date, settlement } => (settlement, date, -1),
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
        if sign > 0 {
            region.settlements += 1;
        } else {
            region.reversals += 1;
        }
        region.add(settlement, sign);
    })?;
    let by_region: Vec<RegionStatement> = regions.into_values().collect();
    let sum = |f: fn(&RegionStatement) -> Money| by_region.iter().map(f).sum::<Money>();
    let settlements: u64 = by_region.iter().map(|r| r.settlements).sum();
    let reversals: u64 = by_region.iter().map(|r| r.reversals).sum();
    let pooled_paid = sum(|r| r.pooled_paid);
    let large_amount_paid = sum(|r| r.large_amount_paid);
    Ok(Statement {
        institution: institution.to_string(),
        month,
        settlements,
        reversals,
        net_settlements: settlements as i64 - reversals as i64,
        pooled_paid,
        large_amount_paid,
        fund_owed: pooled_paid + large_amount_paid,
        account_paid: sum(|r| r.account_paid),
        cash_paid: sum(|r| r.cash_paid),
        medfee_sumamt: sum(|r| r.medfee_sumamt),
        by_region,
        manual_claims_excluded,
    })
}
