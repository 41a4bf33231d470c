//! Reversals (冲正) of a settled claim or an account payment: compensating events that return
//! the balance, every yearly counter and the funds exactly.

use super::guards::member;
use super::{Decision, Outcome};
use crate::event::{Event, Settlement, Stream};
use crate::money::Money;
use crate::state::{State, Tx, TxKind};
use crate::time::Day;
use crate::types::{FundKind, Purpose, Rejection, RejectionCode};

pub(super) fn reverse(
    state: &State,
    id: &str,
    date: Day,
    reason: &str,
) -> Result<Decision, Rejection> {
    let tx = reversible(state, id, date, reason)?;
    Ok(match &tx.kind {
        TxKind::Landed { from_region } => {
            return Err(Rejection::new(
                RejectionCode::UnknownTransaction,
                format!("{id} is a fund event region {from_region}'s ledger owed this one, not a claim or a payment: reverse what owed it there"),
            ))
        }
        TxKind::Claim(settlement) => reverse_claim(settlement, id, date, reason),
        TxKind::Payment {
            beneficiary,
            year,
            purpose,
            amount,
            region,
        } => {
            let mut events = vec![(
                Stream::Member(tx.member.clone()),
                Event::AccountPaymentReversed {
                    id: id.to_string(),
                    holder: tx.member.clone(),
                    beneficiary: beneficiary.clone(),
                    year: *year,
                    purpose: *purpose,
                    date,
                    reason: reason.to_string(),
                    amount: *amount,
                },
            )];
            if *purpose == Purpose::LargeAmountPremium {
                events.push((
                    Stream::Fund(FundKind::LargeAmount, region.clone()),
                    Event::PremiumRefunded {
                        region: region.clone(),
                        payment: id.to_string(),
                        date,
                        amount: *amount,
                    },
                ));
            }
            Decision {
                events,
                outcome: Outcome::Reversed {
                    id: id.to_string(),
                    kind: "account_payment",
                    account_refunded: *amount,
                    pooled_refunded: Money::ZERO,
                    large_amount_refunded: Money::ZERO,
                },
            }
        }
    })
}

/// The transaction `id`, if it may be reversed on `date` for `reason`.
fn reversible<'s>(
    state: &'s State,
    id: &str,
    date: Day,
    reason: &str,
) -> Result<&'s Tx, Rejection> {
    let tx = state.txs.get(id).ok_or_else(|| {
        Rejection::new(
            RejectionCode::UnknownTransaction,
            format!("no settled claim or account payment has id {id}"),
        )
    })?;
    if let Some(on) = tx.reversed_on {
        return Err(Rejection::new(
            RejectionCode::AlreadyReversed,
            format!("{id} was already reversed on {on}"),
        ));
    }
    if date < tx.date {
        return Err(Rejection::new(
            RejectionCode::ReversalBeforeOriginal,
            format!("reversal on {date} is before {id} itself on {}", tx.date),
        ));
    }
    // A reversal refunds the account: possible after death (the refund is part of what the
    // heirs receive), not once the account is closed.
    if let Some(closed) = member(state, &tx.member)?.closed_on {
        return Err(Rejection::new(
            RejectionCode::AccountClosed,
            format!(
                "account of {} was closed on {closed}; {id} can no longer be reversed",
                tx.member
            ),
        ));
    }
    if reason.len() > 1024 {
        return Err(Rejection::new(
            RejectionCode::ReasonTooLong,
            format!("reason of {} bytes; at most 1024", reason.len()),
        ));
    }
    Ok(tx)
}

/// A claim's compensating events: the member's, and each fund's refund.
fn reverse_claim(settlement: &Settlement, id: &str, date: Day, reason: &str) -> Decision {
    let region = settlement.region.clone();
    let mut events = vec![(
        Stream::Member(settlement.member.clone()),
        Event::ClaimReversed {
            date,
            reason: reason.to_string(),
            settlement: Box::new(settlement.clone()),
        },
    )];
    for (fund, amount) in [
        (FundKind::Pooled, settlement.pooled_paid),
        (FundKind::LargeAmount, settlement.large_amount_paid),
    ] {
        if amount > Money::ZERO {
            events.push((
                Stream::Fund(fund, region.clone()),
                Event::FundClaimRefunded {
                    fund,
                    region: region.clone(),
                    claim: id.to_string(),
                    date,
                    amount,
                },
            ));
        }
    }
    Decision {
        events,
        outcome: Outcome::Reversed {
            id: id.to_string(),
            kind: "claim",
            account_refunded: settlement.account_paid,
            pooled_refunded: settlement.pooled_paid,
            large_amount_refunded: settlement.large_amount_paid,
        },
    }
}
