//! The money an event moves, as the ledger's own totals count it: into and out of the
//! personal accounts (`gongji fund`'s `accounts`), into and out of the pooled and
//! large-amount funds (its `pooled` and `large_amount`). Each rule here is the one the domain's
//! `evolve` applies to those totals (`state/evolve.rs`: `credit`, `debit`, `fund_mut`,
//! `region_accounts_mut`), so an export's columns, summed, equal the totals to the fen; the
//! export's test holds them to `gongji fund`. Where `evolve` takes an amount back (a refund
//! lowers a fund's outflow), the flow is negative, never an inflow.
//!
//! The ledger's own in and out (money entering or leaving it as a whole) is
//! [`Event::external_flow`], the domain's; it is not repeated here.

use gongji_domain::types::FundKind;
use gongji_domain::{Event, Money};

/// Money into (`.0`) and out of (`.1`) the personal accounts. A transfer within the ledger
/// moves the balance out of one region's accounts and into another's: it counts both ways.
pub fn account_flow(event: &Event) -> (Money, Money) {
    let zero = Money::ZERO;
    match event {
        Event::Enrolled {
            opening_balance, ..
        } => (*opening_balance, zero),
        Event::AccountCredited { amount, .. } | Event::AccountPaymentReversed { amount, .. } => {
            (*amount, zero)
        }
        Event::ClaimSettled { settlement } => (zero, settlement.account_paid),
        Event::ClaimReversed { settlement, .. } => (settlement.account_paid, zero),
        Event::AccountPaid { amount, .. } => (zero, *amount),
        Event::Inherited { balance, .. } | Event::TransferSent { balance, .. } => (zero, *balance),
        Event::TransferReceived { balance, .. } => (*balance, zero),
        Event::Transferred { balance, .. } => (*balance, *balance),
        _ => (zero, zero),
    }
}

/// Money into and out of a region's two funds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FundFlow {
    pub pooled_in: Money,
    pub pooled_out: Money,
    pub large_amount_in: Money,
    pub large_amount_out: Money,
}

/// How `event` moves its region's funds.
pub fn fund_flow(event: &Event) -> FundFlow {
    let mut flow = FundFlow::default();
    match event {
        Event::PooledContributed { amount, .. } => flow.pooled_in = *amount,
        Event::PooledCreditPaid { amount, .. } => flow.pooled_out = *amount,
        Event::FundClaimPaid { fund, amount, .. } => *flow.out_of(*fund) = *amount,
        Event::FundClaimRefunded { fund, amount, .. } => *flow.out_of(*fund) = -*amount,
        Event::PremiumReceived { amount, .. } => flow.large_amount_in = *amount,
        Event::PremiumRefunded { amount, .. } => flow.large_amount_in = -*amount,
        _ => {}
    }
    flow
}

impl FundFlow {
    fn out_of(&mut self, fund: FundKind) -> &mut Money {
        match fund {
            FundKind::Pooled => &mut self.pooled_out,
            FundKind::LargeAmount => &mut self.large_amount_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_takes_back_the_outflow_it_undoes() {
        let day = "2024-04-15".parse().expect("a day");
        let paid = Event::FundClaimPaid {
            fund: FundKind::LargeAmount,
            region: "500000".into(),
            claim: "C1".into(),
            member: "M1".into(),
            date: day,
            amount: Money::from_fen(1250),
        };
        let refunded = Event::FundClaimRefunded {
            fund: FundKind::LargeAmount,
            region: "500000".into(),
            claim: "C1".into(),
            date: day,
            amount: Money::from_fen(1250),
        };
        let (paid, refunded) = (fund_flow(&paid), fund_flow(&refunded));
        assert_eq!(paid.large_amount_out, Money::from_fen(1250));
        assert_eq!(refunded.large_amount_out, Money::from_fen(-1250));
        assert_eq!(refunded.pooled_out, Money::ZERO);
    }
}
