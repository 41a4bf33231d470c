//! An account's life after enrolment: year-end rollover (结转), death and inheritance (继承),
//! and transfer between pooling regions (转移接续).

use std::collections::BTreeSet;

use super::guards::{check_id, enrolled, frozen, live, member, policy, region_members};
use super::{Decision, Outcome};
use crate::command::Heir;
use crate::event::{Event, Payout, Stream};
use crate::money::Money;
use crate::state::State;
use crate::time::Day;
use crate::types::{Rejection, RejectionCode, Status};

/// Most heirs one inheritance names.
pub const HEIRS_MAX: usize = 64;

pub(super) fn rollover(state: &State, region: &str, year: i32) -> Result<Decision, Rejection> {
    check_id("region", region)?;
    let year_last_day = Day::from_ymd(year, 12, 31).ok_or_else(|| {
        Rejection::new(
            RejectionCode::MalformedDate,
            format!("year {year} is out of range"),
        )
    })?;
    let policy = policy(state, region, year_last_day)?;
    let (first, next_first) = match (policy.year_first_day(year), policy.year_first_day(year + 1)) {
        (Some(first), Some(next)) => (first, next),
        _ => {
            return Err(Rejection::new(
                RejectionCode::MalformedDate,
                format!("year {year} is out of range"),
            ))
        }
    };
    let closing_day = Day::from_date(
        next_first
            .date()
            .pred_opt()
            .expect("a year after 1900 has a day before it"),
    );
    let members = region_members(state, region, "rollover")?;
    let mut events = Vec::new();
    let mut closing_total = Money::ZERO;
    for id in members {
        let account = member(state, id)?;
        let closed_before = account
            .closed_on
            .is_some_and(|closed| closed <= closing_day);
        if account.closed_years.contains_key(&year)
            || account.enrolled_on > closing_day
            || closed_before
        {
            continue;
        }
        let closing_balance = account.balance_on(closing_day);
        closing_total = super::totals::sum(
            format_args!("the closing total of region {region}'s year {year}"),
            closing_total,
            closing_balance,
        )?;
        events.push((
            Stream::Member(id.clone()),
            Event::YearClosed {
                member: id.clone(),
                region: region.to_string(),
                year,
                date: closing_day,
                closing_balance,
            },
        ));
    }
    Ok(Decision {
        outcome: Outcome::RolledOver {
            region: region.to_string(),
            year,
            year_from: first,
            year_to: closing_day,
            accounts_closed: events.len() as u64,
            closing_total,
        },
        events,
    })
}

pub(super) fn decease(state: &State, member_id: &str, date: Day) -> Result<Decision, Rejection> {
    let account = enrolled(state, member_id, date)?;
    if let Some(died) = account.deceased_on {
        return Err(Rejection::new(
            RejectionCode::AlreadyDeceased,
            format!("member {member_id} is recorded as deceased on {died}"),
        ));
    }
    frozen(account, date)?;
    Ok(Decision {
        events: vec![(
            Stream::Member(member_id.to_string()),
            Event::Deceased {
                member: member_id.to_string(),
                date,
            },
        )],
        outcome: Outcome::Deceased {
            member: member_id.to_string(),
            deceased_on: date,
            balance: account.balance,
        },
    })
}

pub(super) fn inherit(
    state: &State,
    member_id: &str,
    date: Day,
    heirs: &[Heir],
) -> Result<Decision, Rejection> {
    let account = member(state, member_id)?;
    if let Some(closed) = account.closed_on {
        return Err(Rejection::new(
            RejectionCode::AlreadyInherited,
            format!("account of {member_id} was paid to its heirs and closed on {closed}"),
        ));
    }
    let Some(died) = account.deceased_on else {
        return Err(Rejection::new(RejectionCode::NotDeceased, format!("member {member_id} is not recorded as deceased; record the death with decease first")));
    };
    if date < died {
        return Err(Rejection::new(
            RejectionCode::InheritBeforeDeath,
            format!("inheritance on {date} is before the death of {member_id} on {died}"),
        ));
    }
    if let Some(last) = account.last_movement_on().filter(|last| *last > date) {
        return Err(Rejection::new(
            RejectionCode::InheritBeforeLastMovement,
            format!("inheritance on {date} is before the account's last movement on {last}; date it on or after that day"),
        ));
    }
    check_heirs(heirs)?;
    let balance = account.balance;
    let payouts = payouts(member_id, balance, heirs);
    Ok(Decision {
        events: vec![(
            Stream::Member(member_id.to_string()),
            Event::Inherited {
                member: member_id.to_string(),
                date,
                balance,
                payouts: payouts.clone(),
            },
        )],
        outcome: Outcome::Inherited {
            member: member_id.to_string(),
            balance,
            payouts,
        },
    })
}

pub(super) fn transfer(
    state: &State,
    member_id: &str,
    date: Day,
    to_region: &str,
) -> Result<Decision, Rejection> {
    check_id("region", to_region)?;
    let account = live(state, member_id, date)?;
    if account.status_on(date) == Status::Retired {
        return Err(Rejection::new(
            RejectionCode::RetireeNotTransferable,
            format!("member {member_id} is a retiree on {date}; retirees' accounts are not transferred (医保办发〔2021〕43号)"),
        ));
    }
    if account.region == to_region {
        return Err(Rejection::new(
            RejectionCode::SameRegion,
            format!("member {member_id} already belongs to region {to_region}"),
        ));
    }
    if date < account.region_since {
        return Err(Rejection::new(
            RejectionCode::TransferBeforeLast,
            format!(
                "transfer on {date} is before member {member_id} arrived in region {} on {}",
                account.region, account.region_since
            ),
        ));
    }
    Ok(Decision {
        events: vec![(
            Stream::Member(member_id.to_string()),
            Event::Transferred {
                member: member_id.to_string(),
                date,
                from_region: account.region.clone(),
                to_region: to_region.to_string(),
                balance: account.balance,
            },
        )],
        outcome: Outcome::Transferred {
            member: member_id.to_string(),
            from_region: account.region.clone(),
            to_region: to_region.to_string(),
            balance: account.balance,
            policy_loaded: state.policies.get(to_region).is_some_and(|v| !v.is_empty()),
        },
    })
}

/// One to `HEIRS_MAX` heirs, each named once with a share above 0, the shares summing to 1.
fn check_heirs(heirs: &[Heir]) -> Result<(), Rejection> {
    if heirs.is_empty() || heirs.len() > HEIRS_MAX {
        return Err(Rejection::new(
            RejectionCode::InvalidHeirs,
            format!("{} heirs named; 1 to {HEIRS_MAX} are needed", heirs.len()),
        ));
    }
    let mut names = BTreeSet::new();
    for heir in heirs {
        check_id("heir", &heir.name)?;
        if !names.insert(heir.name.as_str()) {
            return Err(Rejection::new(
                RejectionCode::InvalidHeirs,
                format!("heir {} is named twice", heir.name),
            ));
        }
        if heir.share.as_decimal().is_zero() {
            return Err(Rejection::new(
                RejectionCode::InvalidHeirs,
                format!("heir {} has a share of 0", heir.name),
            ));
        }
    }
    let total: rust_decimal::Decimal = heirs.iter().map(|h| h.share.as_decimal()).sum();
    if total != rust_decimal::Decimal::ONE {
        return Err(Rejection::new(
            RejectionCode::SharesNotOne,
            format!("the heirs' shares sum to {total}, not 1"),
        ));
    }
    Ok(())
}

/// The balance split among the heirs by their shares.
fn payouts(member_id: &str, balance: Money, heirs: &[Heir]) -> Vec<Payout> {
    // Each heir's part is rounded half up to the fen, and never more than is left; the last heir
    // takes what remains, so the payouts add up to the balance exactly.
    let mut remaining = balance;
    let mut payouts = Vec::with_capacity(heirs.len());
    for (i, heir) in heirs.iter().enumerate() {
        let amount = if i + 1 == heirs.len() {
            remaining
        } else {
            balance.times(heir.share).min(remaining)
        };
        remaining -= amount;
        payouts.push(Payout {
            heir: heir.name.clone(),
            share: heir.share,
            amount,
        });
    }
    assert!(
        remaining == Money::ZERO,
        "payouts of {member_id} add up to the balance"
    );
    payouts
}
