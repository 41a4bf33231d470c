//! `evolve`: folds one event into the state, one function per event family. Pure: the same
//! events in the same order give the same state. It never refuses: the events come from
//! `decide`, which checked them, so what must hold is asserted here. An event from anywhere
//! else (a log read back, an archive) goes through `admissible` first, which checks without a
//! panic everything asserted here.

use std::collections::{BTreeMap, BTreeSet};

use super::{Binding, Direction, EntityRef, Member, State, Tx, TxKind};
use crate::event::{Event, Settlement};
use crate::money::Money;
use crate::types::{FundKind, Status};

/// Folds one event into the state. Pure: the same events in the same order give the same state.
pub fn evolve(state: &mut State, event: &Event) {
    match event {
        Event::PolicyLoaded { .. } | Event::Enrolled { .. } | Event::Retired { .. } => {
            enrolment(state, event)
        }
        Event::AccountCredited { .. }
        | Event::PooledContributed { .. }
        | Event::PooledCreditPaid { .. } => credits(state, event),
        Event::ClaimSettled { .. }
        | Event::FundClaimPaid { .. }
        | Event::ClaimReversed { .. }
        | Event::FundClaimRefunded { .. } => claims(state, event),
        Event::FamilyBound { .. } | Event::FamilyUnbound { .. } => family(state, event),
        Event::AccountPaid { .. }
        | Event::PremiumReceived { .. }
        | Event::AccountPaymentReversed { .. }
        | Event::PremiumRefunded { .. } => payments(state, event),
        Event::YearClosed { .. }
        | Event::Deceased { .. }
        | Event::Inherited { .. }
        | Event::Transferred { .. }
        | Event::TransferSent { .. }
        | Event::TransferReceived { .. }
        | Event::FundEventOwed { .. }
        | Event::OwedLanded { .. } => lifecycle(state, event),
        // The supervision history is read from the log (gongji-monitor); no state keeps it.
        Event::FlagDecided { .. } | Event::MonitorRulesLoaded { .. } => {}
    }
}

/// Enrolment and status: policies loaded, members enrolled and retired.
fn enrolment(state: &mut State, event: &Event) {
    match event {
        Event::PolicyLoaded { policy } => {
            state.mark(EntityRef::Policies(&policy.region));
            let versions = state.policies.entry(policy.region.clone()).or_default();
            versions.push((**policy).clone());
            versions.sort_by_key(|p| p.effective);
        }
        Event::Enrolled {
            member,
            region,
            born,
            status,
            scheme,
            date,
            opening_balance,
            lump_sum_base,
            lump_sum_until,
        } => {
            state.mark(EntityRef::Member(member));
            state.mark(EntityRef::RegionMember(region, member));
            state
                .region_members
                .entry(region.clone())
                .or_default()
                .insert(member.clone());
            state.members.insert(
                member.clone(),
                Member {
                    id: member.clone(),
                    region: region.clone(),
                    region_since: *date,
                    born: *born,
                    scheme: *scheme,
                    enrolled_on: *date,
                    retired_on: (*status == Status::Retired).then_some(*date),
                    lump_sum_base: *lump_sum_base,
                    lump_sum_until: *lump_sum_until,
                    balance: Money::ZERO,
                    account_in: Money::ZERO,
                    account_out: Money::ZERO,
                    balance_by_day: BTreeMap::new(),
                    credited_months: BTreeSet::new(),
                    years: BTreeMap::new(),
                    past_regions: Vec::new(),
                    closed_years: BTreeMap::new(),
                    family: BTreeMap::new(),
                    deceased_on: None,
                    closed_on: None,
                },
            );
            state.credit(member, *opening_balance, *date);
        }
        Event::Retired { member, date } => {
            state.member_mut(member).retired_on = Some(*date);
        }
        _ => unreachable!("evolve hands enrolment only its own events"),
    }
}

/// Credits: to accounts, and the pooled fund's side of contributions and allocations.
fn credits(state: &mut State, event: &Event) {
    match event {
        Event::AccountCredited {
            member,
            month,
            amount,
            ..
        } => {
            state.credit(member, *amount, month.first_day());
            let fresh = state.member_mut(member).credited_months.insert(*month);
            assert!(fresh, "month {month} credited twice to {member}");
        }
        Event::PooledContributed { region, amount, .. } => {
            state.fund_mut(FundKind::Pooled, region).inflow += *amount;
        }
        Event::PooledCreditPaid { region, amount, .. } => {
            state.fund_mut(FundKind::Pooled, region).outflow += *amount;
        }
        _ => unreachable!("evolve hands credits only its own events"),
    }
}

/// Claims and their reversals: the account, the year's counters, the funds.
fn claims(state: &mut State, event: &Event) {
    match event {
        Event::ClaimSettled { settlement } => {
            assert!(
                settlement.adds_up(),
                "settlement {} does not add up: {settlement:?}",
                settlement.claim
            );
            state.debit(&settlement.member, settlement.account_paid, settlement.date);
            count_claim(state, settlement, Direction::Settle);
            state.mark(EntityRef::Tx(&settlement.claim));
            state.txs.insert(
                settlement.claim.clone(),
                Tx {
                    member: settlement.member.clone(),
                    date: settlement.date,
                    kind: TxKind::Claim(settlement.clone()),
                    reversed_on: None,
                },
            );
        }
        Event::FundClaimPaid {
            fund,
            region,
            amount,
            ..
        } => {
            state.fund_mut(*fund, region).outflow += *amount;
        }
        Event::ClaimReversed {
            date, settlement, ..
        } => {
            state.credit(&settlement.member, settlement.account_paid, *date);
            count_claim(state, settlement, Direction::Reverse);
            state.tx_mut(&settlement.claim).reversed_on = Some(*date);
        }
        Event::FundClaimRefunded {
            fund,
            region,
            amount,
            ..
        } => {
            state.fund_mut(*fund, region).outflow -= *amount;
        }
        _ => unreachable!("evolve hands claims only its own events"),
    }
}

/// Family bindings.
fn family(state: &mut State, event: &Event) {
    match event {
        Event::FamilyBound {
            holder,
            relative,
            relation,
            date,
            yearly_limit,
        } => {
            let binding = Binding {
                relation: *relation,
                since: *date,
                until: None,
                yearly_limit: *yearly_limit,
                spent: BTreeMap::new(),
            };
            state
                .member_mut(holder)
                .family
                .insert(relative.clone(), binding);
            state.mark(EntityRef::Relative(relative));
            state.relatives.insert(relative.clone(), holder.clone());
        }
        Event::FamilyUnbound {
            holder,
            relative,
            date,
        } => {
            let binding = state
                .member_mut(holder)
                .family
                .get_mut(relative)
                .unwrap_or_else(|| panic!("{relative} unbound from {holder} without a binding"));
            binding.until = Some(*date);
            state.mark(EntityRef::Relative(relative));
            state.relatives.remove(relative);
        }
        _ => unreachable!("evolve hands family only its own events"),
    }
}

/// Account payments and their reversals, with the large-amount premiums they carry.
fn payments(state: &mut State, event: &Event) {
    match event {
        Event::AccountPaid {
            id,
            holder,
            beneficiary,
            region,
            date,
            year,
            purpose,
            amount,
            // Shown from the log; no rule reads it, so the state does not keep it.
            institution: _,
        } => {
            state.debit(holder, *amount, *date);
            if let Some(binding) = state.member_mut(holder).family.get_mut(beneficiary) {
                *binding.spent.entry(*year).or_default() += *amount;
            }
            state.mark(EntityRef::Tx(id));
            state.txs.insert(
                id.clone(),
                Tx {
                    member: holder.clone(),
                    date: *date,
                    kind: TxKind::Payment {
                        beneficiary: beneficiary.clone(),
                        year: *year,
                        purpose: *purpose,
                        amount: *amount,
                        region: region.clone(),
                    },
                    reversed_on: None,
                },
            );
        }
        Event::PremiumReceived { region, amount, .. } => {
            state.fund_mut(FundKind::LargeAmount, region).inflow += *amount;
        }
        Event::AccountPaymentReversed {
            id,
            holder,
            beneficiary,
            year,
            date,
            amount,
            ..
        } => {
            state.credit(holder, *amount, *date);
            if let Some(binding) = state.member_mut(holder).family.get_mut(beneficiary) {
                *binding.spent.entry(*year).or_default() -= *amount;
            }
            state.tx_mut(id).reversed_on = Some(*date);
        }
        Event::PremiumRefunded { region, amount, .. } => {
            state.fund_mut(FundKind::LargeAmount, region).inflow -= *amount;
        }
        _ => unreachable!("evolve hands payments only its own events"),
    }
}

/// An account's life after enrolment: year-end closing, death, inheritance, transfer.
fn lifecycle(state: &mut State, event: &Event) {
    match event {
        Event::YearClosed {
            member,
            year,
            closing_balance,
            ..
        } => {
            state
                .member_mut(member)
                .closed_years
                .insert(*year, *closing_balance);
        }
        Event::Deceased { member, date } => {
            state.member_mut(member).deceased_on = Some(*date);
        }
        Event::Inherited {
            member,
            date,
            balance,
            payouts,
        } => {
            let paid: Money = payouts.iter().map(|p| p.amount).sum();
            assert_eq!(
                paid, *balance,
                "inheritance of {member} pays out the whole balance"
            );
            state.debit(member, *balance, *date);
            let account = state.member_mut(member);
            assert!(
                account.balance == Money::ZERO,
                "inherited account {member} is emptied"
            );
            account.closed_on = Some(*date);
        }
        Event::Transferred {
            member,
            date,
            from_region,
            to_region,
            ..
        } => {
            let account = state.member_mut(member);
            account.move_to(to_region, *date);
            let balance = account.balance;
            state.region_accounts_mut(from_region).outflow += balance;
            state.region_accounts_mut(to_region).inflow += balance;
            for (region, present) in [(from_region, false), (to_region, true)] {
                state.mark(EntityRef::RegionMember(region, member));
                let members = state.region_members.entry(region.clone()).or_default();
                if present {
                    members.insert(member.clone());
                } else {
                    members.remove(member);
                }
            }
        }
        Event::TransferSent {
            member,
            date,
            from_region,
            to_region,
            balance,
            ..
        } => {
            // The balance leaves this ledger (and the region's accounts) for the destination's.
            state.debit(member, *balance, *date);
            state.member_mut(member).move_to(to_region, *date);
            state.mark(EntityRef::RegionMember(from_region, member));
            if let Some(members) = state.region_members.get_mut(from_region) {
                members.remove(member);
            }
        }
        Event::TransferReceived {
            member,
            to_region,
            balance,
            account,
            ..
        } => {
            // The account arrives whole, over any copy this ledger kept of it from before it
            // left (a member coming back holds nothing here: what it held was sent).
            state.mark(EntityRef::Member(member));
            state.members.insert(member.clone(), (**account).clone());
            state.region_accounts_mut(to_region).inflow += *balance;
            state.mark(EntityRef::RegionMember(to_region, member));
            state
                .region_members
                .entry(to_region.clone())
                .or_default()
                .insert(member.clone());
        }
        Event::FundEventOwed { .. } => {
            // The account's side was recorded by the events beside it; the fund's is the
            // other region's ledger's to record.
        }
        Event::OwedLanded {
            owed,
            from_region,
            member,
            date,
            ..
        } => {
            state.mark(EntityRef::Tx(owed));
            state.txs.insert(
                owed.clone(),
                Tx {
                    member: member.clone(),
                    date: *date,
                    kind: TxKind::Landed {
                        from_region: from_region.clone(),
                    },
                    reversed_on: None,
                },
            );
        }
        _ => unreachable!("evolve hands lifecycle only its own events"),
    }
}

/// Counts a settlement into the year's counters of the stint it was settled in, or takes it
/// back out.
fn count_claim(state: &mut State, settlement: &Settlement, direction: Direction) {
    state
        .member_mut(&settlement.member)
        .stint_counters_mut(&settlement.region, settlement.stint_since)
        .entry(settlement.year)
        .or_default()
        .count(settlement, direction);
}
