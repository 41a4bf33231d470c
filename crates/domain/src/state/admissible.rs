//! `admissible`: whether an event may be folded into a state, for a fold of a log `decide` did not
//! produce here (an imported archive, a log checked by `audit verify`, records caught up at
//! open). `evolve` asserts what `decide` guarantees; this says, without panicking, which of those
//! guarantees an event breaks: an amount out of its bounds, a year out of range, an account or
//! transaction that does not exist, a balance going below zero, a settlement that does not add
//! up, a reversal that does not mirror its original, a running total past `TOTAL_FEN_MAX`.
//!
//! An event it admits folds with `evolve` without a panic. It is not on `decide`'s path: the
//! ledger's own events are checked by `decide` already, and `apply` pays nothing for this.

use super::{State, TxKind};
use crate::decide::guards::check_id;
use crate::event::{AddedIn, Event, Settlement};
use crate::money::{Money, AMOUNT_FEN_MAX, TOTAL_FEN_MAX};
use crate::time::{YEAR_MAX, YEAR_MIN};
use crate::types::FundKind;

/// Why an event may not be folded: which invariant it breaks, and with which value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inadmissible {
    /// The invariant broken, as `audit verify` names its checks: `bounds`, `balance`,
    /// `settlement`, `existence`, `reversal`, `totals`.
    pub check: &'static str,
    pub message: String,
}

fn refuse<T>(check: &'static str, message: String) -> Result<T, Inadmissible> {
    Err(Inadmissible { check, message })
}

/// Whether `event` may be folded into `state`: its figures within their bounds (see
/// [`check_bounds`]), and everything `evolve` asserts or looks up holding.
pub fn admissible(state: &State, event: &Event) -> Result<(), Inadmissible> {
    check_bounds(event)?;
    admissible_in(state, event)?;
    crate::decide::totals::check_event(state, event).or_else(|r| refuse("totals", r.message))
}

/// An event's figures within the bounds parsed input has: an amount a command carries (an
/// opening balance, a contribution, a payment, a claim's eligible cost) is at most
/// `AMOUNT_FEN_MAX`, every other figure (a settlement's parts, the positions it started from, a
/// balance moved) at most `TOTAL_FEN_MAX`, none negative; every year within
/// `YEAR_MIN..=YEAR_MAX` (days and months are bounded when they decode); a payment's
/// institution an id `decide` would take.
pub fn check_bounds(event: &Event) -> Result<(), Inadmissible> {
    let year = figures_of(event, &mut |name, amount, max_fen| {
        within(event, name, amount, max_fen)
    })?;
    check_institution(event)?;
    match year {
        Some(year) if !(YEAR_MIN..=YEAR_MAX).contains(&year) => refuse(
            "bounds",
            format!(
                "the {} event's year {year} is outside {YEAR_MIN}..={YEAR_MAX}",
                event.kind()
            ),
        ),
        _ => Ok(()),
    }
}

/// A payment's institution, held to the bounds of an id in a command (`check_id`).
fn check_institution(event: &Event) -> Result<(), Inadmissible> {
    match event {
        Event::AccountPaid {
            institution: AddedIn(Some(institution)),
            ..
        } => check_id("institution", institution).or_else(|rejection| {
            refuse(
                "bounds",
                format!("the {} event's {}", event.kind(), rejection.message),
            )
        }),
        // A decision as `decide` would take it: the flag's id, the ids, the reason's length.
        Event::FlagDecided {
            flag,
            region,
            decision,
            reason,
            by,
            date,
        } => crate::decide::supervision::recheck(flag, region, *decision, reason, by, *date)
            .or_else(|rejection| {
                refuse(
                    "bounds",
                    format!("the {} event's {}", event.kind(), rejection.message),
                )
            }),
        Event::MonitorRulesLoaded {
            region,
            rules_version: version,
            effective,
            rules,
            by,
            date,
        } => {
            crate::decide::supervision::recheck_rules(region, version, *effective, rules, by, *date)
                .or_else(|rejection| {
                    refuse(
                        "bounds",
                        format!("the {} event's {}", event.kind(), rejection.message),
                    )
                })
        }
        _ => Ok(()),
    }
}

fn within(event: &Event, name: &str, amount: Money, max_fen: i64) -> Result<(), Inadmissible> {
    if amount.is_negative() || amount.fen() > max_fen {
        return refuse(
            "bounds",
            format!(
                "the {} event's {name} is {}, outside 0..={}",
                event.kind(),
                Money::from_fen(amount.fen()),
                Money::from_fen(max_fen)
            ),
        );
    }
    Ok(())
}

/// The bound of an amount a command carries.
const AMOUNT: i64 = AMOUNT_FEN_MAX;
/// The bound of every other figure.
const FIGURE: i64 = TOTAL_FEN_MAX;

/// What a figure is checked with: its name, its value and its bound (in fen).
type Check<'c> = dyn FnMut(&'static str, Money, i64) -> Result<(), Inadmissible> + 'c;

/// Hands each of an event's figures to `check` with its bound, the amounts (bounded like
/// input, `AMOUNT_FEN_MAX`) before the other figures (`TOTAL_FEN_MAX`), stopping at the first
/// refused; returns the event's year if it has one. Nothing is allocated: replay checks every
/// event it folds.
fn figures_of(event: &Event, check: &mut Check) -> Result<Option<i32>, Inadmissible> {
    let year = match event {
        Event::Enrolled {
            opening_balance,
            lump_sum_base,
            ..
        } => {
            check("opening balance", *opening_balance, AMOUNT)?;
            optional(check, "lump-sum base", *lump_sum_base, AMOUNT)?;
            None
        }
        Event::AccountCredited { amount, base, .. } => {
            check("amount", *amount, AMOUNT)?;
            optional(check, "base", *base, AMOUNT)?;
            None
        }
        Event::PooledContributed { amount, .. }
        | Event::PooledCreditPaid { amount, .. }
        | Event::PremiumReceived { amount, .. }
        | Event::PremiumRefunded { amount, .. } => {
            check("amount", *amount, AMOUNT)?;
            None
        }
        Event::AccountPaid { year, amount, .. }
        | Event::AccountPaymentReversed { year, amount, .. } => {
            check("amount", *amount, AMOUNT)?;
            Some(*year)
        }
        Event::FundClaimPaid { amount, .. } | Event::FundClaimRefunded { amount, .. } => {
            check("amount", *amount, FIGURE)?;
            None
        }
        Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
            settlement_figures(settlement, check)?;
            Some(settlement.year)
        }
        Event::FamilyBound { yearly_limit, .. } => {
            optional(check, "yearly limit", *yearly_limit, AMOUNT)?;
            None
        }
        Event::YearClosed {
            year,
            closing_balance,
            ..
        } => {
            check("closing balance", *closing_balance, FIGURE)?;
            Some(*year)
        }
        Event::Inherited {
            balance, payouts, ..
        } => {
            check("balance", *balance, FIGURE)?;
            for payout in payouts {
                check("payout", payout.amount, FIGURE)?;
            }
            None
        }
        Event::Transferred { balance, .. } | Event::TransferSent { balance, .. } => {
            check("balance", *balance, FIGURE)?;
            None
        }
        Event::FundEventOwed { owed } => figures_of(&owed.event, check)?,
        Event::OwedLanded {
            moved_in,
            moved_out,
            ..
        } => {
            check("moved in", *moved_in, AMOUNT)?;
            check("moved out", *moved_out, AMOUNT)?;
            None
        }
        Event::TransferReceived {
            balance, account, ..
        } => {
            check("balance", *balance, FIGURE)?;
            check("account's inflow", account.account_in, FIGURE)?;
            check("account's outflow", account.account_out, FIGURE)?;
            None
        }
        Event::PolicyLoaded { .. }
        | Event::Retired { .. }
        | Event::FamilyUnbound { .. }
        | Event::Deceased { .. }
        | Event::FlagDecided { .. }
        | Event::MonitorRulesLoaded { .. } => None,
    };
    Ok(year)
}

fn optional(
    check: &mut Check,
    name: &'static str,
    amount: Option<Money>,
    max_fen: i64,
) -> Result<(), Inadmissible> {
    amount.map_or(Ok(()), |amount| check(name, amount, max_fen))
}

/// A settlement's figures, as [`figures_of`] hands them out.
fn settlement_figures(s: &Settlement, check: &mut Check) -> Result<(), Inadmissible> {
    let b = &s.basis;
    check("eligible cost", s.eligible, AMOUNT)?;
    check("uncovered cost", s.uncovered, AMOUNT)?;
    for (name, figure) in [
        ("special-drug payment", s.special_paid),
        ("deductible applied", s.deductible_applied),
        ("ordinary cost before", s.ordinary_cost_before),
        ("ordinary payment computed", s.ordinary_computed),
        ("ordinary payment", s.ordinary_paid),
        ("ordinary pooled payment", s.ordinary_pooled),
        ("large-amount payment", s.large_amount_paid),
        ("pooled payment", s.pooled_paid),
        ("account payment", s.account_paid),
        ("cash payment", s.cash_paid),
        ("payment reimbursed to the member", s.reimbursed_to_member),
        ("basis deductible", b.deductible),
        ("basis deductible used before", b.deductible_used_before),
        ("basis ordinary paid before", b.ordinary_paid_before),
        ("basis pooled paid before", b.pooled_paid_before),
        ("basis balance before", b.balance_before),
        ("basis available before", b.available_before),
    ] {
        check(name, figure, FIGURE)?;
    }
    for (name, figure) in [
        ("basis deductible cap", b.deductible_cap),
        ("basis ordinary limit", b.ordinary_limit),
        ("basis annual maximum", b.annual_max),
    ] {
        optional(check, name, figure, FIGURE)?;
    }
    for band in &b.bands {
        optional(check, "basis band end", band.up_to, FIGURE)?;
    }
    Ok(())
}

/// What `evolve` asserts or looks up, for an event whose figures are within bounds.
fn admissible_in(state: &State, event: &Event) -> Result<(), Inadmissible> {
    match event {
        // Bounded by `check_bounds`; it looks nothing up.
        Event::FlagDecided { .. } | Event::MonitorRulesLoaded { .. } => Ok(()),
        Event::PolicyLoaded { policy } => {
            let loaded = state.policies.get(&policy.region).into_iter().flatten();
            for other in loaded {
                if other.version == policy.version || other.effective == policy.effective {
                    return refuse(
                        "existence",
                        format!(
                            "policy {} of region {} repeats version {} (effective {})",
                            policy.version, policy.region, other.version, other.effective
                        ),
                    );
                }
            }
            Ok(())
        }
        Event::Enrolled { member, .. } => match state.members.contains_key(member) {
            true => refuse("existence", format!("member {member} is enrolled twice")),
            false => Ok(()),
        },
        Event::Retired { member, .. }
        | Event::YearClosed { member, .. }
        | Event::Deceased { member, .. }
        | Event::FamilyBound { holder: member, .. } => enrolled(state, member).map(|_| ()),
        Event::AccountCredited { member, month, .. } => {
            if enrolled(state, member)?.credited_months.contains(month) {
                return refuse(
                    "existence",
                    format!("month {month} is credited twice to {member}"),
                );
            }
            Ok(())
        }
        Event::ClaimSettled { settlement } => settled(state, settlement),
        Event::ClaimReversed { settlement, .. } => claim_reversed(state, settlement),
        Event::FamilyUnbound {
            holder, relative, ..
        } => match enrolled(state, holder)?.family.contains_key(relative) {
            true => Ok(()),
            false => refuse(
                "existence",
                format!("{relative} is unbound from {holder} without a binding"),
            ),
        },
        Event::AccountPaid {
            id, holder, amount, ..
        } => {
            fresh_tx(state, id)?;
            debit(state, holder, *amount)
        }
        Event::AccountPaymentReversed { .. } => payment_reversed(state, event),
        Event::FundClaimRefunded {
            fund,
            region,
            amount,
            ..
        } => refund(state, *fund, region, *amount, false),
        Event::PremiumRefunded { region, amount, .. } => {
            refund(state, FundKind::LargeAmount, region, *amount, true)
        }
        Event::Inherited { .. } | Event::Transferred { .. } => lifecycle(state, event),
        Event::TransferSent { .. } | Event::TransferReceived { .. } => {
            between_ledgers(state, event)
        }
        Event::FundEventOwed { owed } => {
            enrolled(state, &owed.member)?;
            match crate::event::fund_event(&owed.event) {
                Some((_, region)) if region == owed.owed_to => Ok(()),
                _ => refuse(
                    "existence",
                    format!(
                        "a {} event is owed to region {}, which is not a fund event of that region",
                        owed.event.kind(),
                        owed.owed_to
                    ),
                ),
            }
        }
        Event::OwedLanded { owed, .. } => fresh_tx(state, owed),
        Event::PooledContributed { .. }
        | Event::PooledCreditPaid { .. }
        | Event::FundClaimPaid { .. }
        | Event::PremiumReceived { .. } => Ok(()),
    }
}

fn enrolled<'s>(state: &'s State, member: &str) -> Result<&'s super::Member, Inadmissible> {
    state.members.get(member).ok_or_else(|| Inadmissible {
        check: "existence",
        message: format!("member {member} is not enrolled"),
    })
}

fn fresh_tx(state: &State, id: &str) -> Result<(), Inadmissible> {
    match state.txs.contains_key(id) {
        true => refuse("existence", format!("transaction {id} is recorded twice")),
        false => Ok(()),
    }
}

/// A debit of `amount` from `member`'s account leaves the balance at zero or above.
fn debit(state: &State, member: &str, amount: Money) -> Result<(), Inadmissible> {
    let balance = enrolled(state, member)?.balance;
    if amount > balance {
        return refuse(
            "balance",
            format!("member {member} holds {balance}; the event takes {amount}, below zero"),
        );
    }
    Ok(())
}

fn settled(state: &State, settlement: &Settlement) -> Result<(), Inadmissible> {
    if !settlement.adds_up() {
        return refuse(
            "settlement",
            format!("claim {} does not add up: {settlement:?}", settlement.claim),
        );
    }
    fresh_tx(state, &settlement.claim)?;
    let member = enrolled(state, &settlement.member)?;
    if !member.has_stint(&settlement.region, settlement.stint_since) {
        // `evolve` would count it against another stint's counters, unchecked by the bound.
        return refuse(
            "existence",
            format!(
                "claim {} is counted in member {}'s stint in region {} since {}, which the \
                 member never had",
                settlement.claim, settlement.member, settlement.region, settlement.stint_since
            ),
        );
    }
    debit(state, &settlement.member, settlement.account_paid)
}

/// A reversal carries, figure for figure, a settled claim not reversed yet.
fn claim_reversed(state: &State, settlement: &Settlement) -> Result<(), Inadmissible> {
    let original = state
        .txs
        .get(&settlement.claim)
        .and_then(|tx| match &tx.kind {
            TxKind::Claim(original) if tx.reversed_on.is_none() => Some(original),
            _ => None,
        });
    match original {
        Some(original) if **original == *settlement => Ok(()),
        _ => refuse(
            "reversal",
            format!(
                "claim {} is reversed, but no settlement of it with these figures stands",
                settlement.claim
            ),
        ),
    }
}

/// A payment reversal mirrors a payment of its holder not reversed yet.
fn payment_reversed(state: &State, event: &Event) -> Result<(), Inadmissible> {
    let Event::AccountPaymentReversed {
        id,
        holder,
        beneficiary,
        year,
        purpose,
        amount,
        ..
    } = event
    else {
        return Ok(());
    };
    enrolled(state, holder)?;
    let mirrors = state.txs.get(id).is_some_and(|tx| {
        tx.member == *holder
            && tx.reversed_on.is_none()
            && matches!(&tx.kind, TxKind::Payment { beneficiary: b, year: y, purpose: p, amount: a, .. }
                if b == beneficiary && y == year && p == purpose && a == amount)
    });
    match mirrors {
        true => Ok(()),
        false => refuse(
            "reversal",
            format!("payment {id} of {holder} is reversed, but no such payment of {amount} stands"),
        ),
    }
}

/// A refund takes back no more than the fund's flow holds.
fn refund(
    state: &State,
    kind: FundKind,
    region: &str,
    amount: Money,
    inflow: bool,
) -> Result<(), Inadmissible> {
    let fund = state.fund(kind, region);
    let (flow, name) = match inflow {
        true => (fund.inflow, "inflow"),
        false => (fund.outflow, "outflow"),
    };
    if amount > flow {
        return refuse(
            "balance",
            format!("a refund of {amount} exceeds the {name} of {flow} of region {region}'s fund"),
        );
    }
    Ok(())
}

/// An inheritance pays out exactly the whole balance; a transfer leaves the member's region.
fn lifecycle(state: &State, event: &Event) -> Result<(), Inadmissible> {
    match event {
        Event::Inherited {
            member,
            balance,
            payouts,
            ..
        } => {
            let held = enrolled(state, member)?.balance;
            let paid = payouts
                .iter()
                .try_fold(Money::ZERO, |sum, p| sum.checked_add(p.amount));
            if paid != Some(*balance) || *balance != held {
                return refuse(
                    "balance",
                    format!("the inheritance of {member} pays {paid:?} of a balance of {balance}; the account holds {held}"),
                );
            }
            Ok(())
        }
        Event::Transferred {
            member,
            from_region,
            ..
        } => {
            let account = enrolled(state, member)?;
            match account.region == *from_region {
                true => Ok(()),
                false => refuse(
                    "existence",
                    format!(
                        "member {member} is transferred from {from_region} but belongs to {}",
                        account.region
                    ),
                ),
            }
        }
        _ => Ok(()),
    }
}

/// A transfer between two ledgers is admissible exactly when the ledger would have decided
/// that very event: the source's from the account it holds, the destination's from the
/// account that arrives (whose movements must add up to its balance).
fn between_ledgers(state: &State, event: &Event) -> Result<(), Inadmissible> {
    use crate::decide::lifecycle;
    let decided = match event {
        Event::TransferSent {
            member,
            date,
            to_region,
            ..
        } => {
            enrolled(state, member)?;
            lifecycle::send_transfer(state, member, *date, to_region)
        }
        Event::TransferReceived {
            transfer, account, ..
        } => {
            let moved = account
                .balance_by_day
                .values()
                .try_fold(Money::ZERO, |sum, m| sum.checked_add(*m));
            if moved != Some(account.balance)
                || account.account_in.checked_sub(account.account_out) != Some(account.balance)
            {
                return refuse(
                    "balance",
                    format!(
                        "the account of {} arrives holding {} but its movements add up to {moved:?}",
                        account.id, account.balance
                    ),
                );
            }
            lifecycle::receive_transfer(state, transfer, account)
        }
        _ => unreachable!("only transfers between ledgers come here"),
    };
    match decided {
        Ok(decision) if decision.events.len() == 1 && decision.events[0].1 == *event => Ok(()),
        Ok(_) => refuse(
            "existence",
            format!(
                "the {} event is not what this ledger decides for it from the state before it",
                event.kind()
            ),
        ),
        Err(rejection) => refuse("existence", rejection.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Purpose;

    fn payment(holder: &str, amount_fen: i64, year: i32) -> Event {
        Event::AccountPaid {
            id: "P1".into(),
            holder: holder.into(),
            beneficiary: holder.into(),
            region: "R".into(),
            date: "2024-02-01".parse().expect("a day"),
            year,
            purpose: Purpose::Pharmacy,
            amount: Money::from_fen(amount_fen),
            institution: AddedIn(None),
        }
    }

    fn check_of(state: &State, event: &Event) -> &'static str {
        admissible(state, event).expect_err("refused").check
    }

    #[test]
    fn figures_out_of_bounds_are_refused_before_anything_is_looked_up() {
        let state = State::default();
        assert_eq!(check_of(&state, &payment("M", -1, 2024)), "bounds");
        assert_eq!(check_of(&state, &payment("M", i64::MAX, 2024)), "bounds");
        assert_eq!(check_of(&state, &payment("M", 100, i32::MAX)), "bounds");
        assert_eq!(check_of(&state, &payment("M", 100, i32::MIN)), "bounds");
    }

    #[test]
    fn a_payments_institution_is_held_to_the_bounds_of_an_id() {
        let state = State::default();
        let at = |institution: &str| {
            let mut event = payment("M", 100, 2024);
            if let Event::AccountPaid { institution: i, .. } = &mut event {
                *i = AddedIn(Some(Box::from(institution)));
            }
            event
        };
        assert_eq!(check_of(&state, &at("")), "bounds");
        assert_eq!(check_of(&state, &at(&"x".repeat(65))), "bounds");
        assert_eq!(check_of(&state, &at("a\nb")), "bounds");
        assert_eq!(check_of(&state, &at(&"x".repeat(64))), "existence");
    }

    #[test]
    fn a_payment_needs_an_enrolled_holder_with_the_balance() {
        let state = State::default();
        assert_eq!(check_of(&state, &payment("M", 100, 2024)), "existence");
        let mut state = State::default();
        let enrolled = Event::Enrolled {
            member: "M".into(),
            region: "R".into(),
            born: "1980-01-01".parse().expect("a day"),
            status: crate::types::Status::Active,
            scheme: crate::types::Scheme::Employer,
            date: "2024-01-01".parse().expect("a day"),
            opening_balance: Money::from_fen(100),
            lump_sum_base: None,
            lump_sum_until: None,
        };
        assert_eq!(admissible(&state, &enrolled), Ok(()));
        crate::state::evolve(&mut state, &enrolled);
        assert_eq!(check_of(&state, &enrolled), "existence", "enrolled twice");
        assert_eq!(admissible(&state, &payment("M", 100, 2024)), Ok(()));
        assert_eq!(check_of(&state, &payment("M", 101, 2024)), "balance");
    }
}
