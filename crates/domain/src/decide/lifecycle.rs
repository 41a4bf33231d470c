//! An account's life after enrolment: year-end rollover (结转), death and inheritance (继承),
//! and transfer between pooling regions (转移接续).

use std::collections::BTreeSet;

use super::guards::{check_id, enrolled, frozen, live, member, policy, region_members};
use super::{Decision, Outcome};
use crate::command::Heir;
use crate::event::{transfer_id, Event, Payout, Stream};
use crate::money::Money;
use crate::state::{Member, State};
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
    let account = transferable(state, member_id, date, to_region)?;
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

/// The source's half of a transfer to another ledger: the same checks as a transfer within
/// one ledger; the account leaves with its balance, carried in the event as it will arrive.
pub(crate) fn send_transfer(
    state: &State,
    member_id: &str,
    date: Day,
    to_region: &str,
) -> Result<Decision, Rejection> {
    let account = transferable(state, member_id, date, to_region)?;
    // Bindings are kept by the holder's ledger and its index of relatives: they do not move
    // between ledgers, so a member bound either way is unbound first.
    let bound = account
        .family
        .iter()
        .find(|(_, b)| b.until.is_none())
        .map(|(relative, _)| format!("holds relative {relative}"))
        .or_else(|| {
            state
                .relatives
                .get(member_id)
                .map(|holder| format!("is bound to holder {holder}"))
        });
    if let Some(bound) = bound {
        return Err(Rejection::new(
            RejectionCode::FamilyBindingOpen,
            format!(
                "member {member_id} {bound}: unbind before the account moves to another region's ledger"
            ),
        ));
    }
    let mut arriving = account.clone();
    arriving.move_to(to_region, date);
    let transfer = transfer_id(member_id, arriving.past_regions.len());
    Ok(Decision {
        events: vec![(
            Stream::Member(member_id.to_string()),
            Event::TransferSent {
                transfer: transfer.clone(),
                member: member_id.to_string(),
                date,
                from_region: account.region.clone(),
                to_region: to_region.to_string(),
                balance: account.balance,
                account: Box::new(arriving),
            },
        )],
        outcome: Outcome::TransferSent {
            member: member_id.to_string(),
            transfer,
            from_region: account.region.clone(),
            to_region: to_region.to_string(),
            balance: account.balance,
            in_transit: true,
        },
    })
}

/// The destination's half: the account arrives whole under its transfer id, once. A copy
/// held here from before (the member left this region earlier and comes back) is replaced;
/// it must hold nothing, since what it held left with it.
pub(crate) fn receive_transfer(
    state: &State,
    transfer: &str,
    account: &Member,
) -> Result<Decision, Rejection> {
    let invalid = |why: String| {
        Rejection::new(
            RejectionCode::InvalidTransfer,
            format!("transfer {transfer}: {why}"),
        )
    };
    check_id("member", &account.id)?;
    check_id("region", &account.region)?;
    let count = account.past_regions.len();
    let Some(left) = account.past_regions.last() else {
        return Err(invalid("the account names no region it left".into()));
    };
    if transfer != transfer_id(&account.id, count) {
        return Err(invalid(format!(
            "the account is member {}'s transfer number {count}",
            account.id
        )));
    }
    if left.until != account.region_since || left.region == account.region {
        return Err(invalid(format!(
            "the account left {} on {} but arrives in {} on {}",
            left.region, left.until, account.region, account.region_since
        )));
    }
    if let Some(held) = state.members.get(&account.id) {
        if held.past_regions.len() >= count {
            return Err(Rejection::new(
                RejectionCode::TransferAlreadyReceived,
                format!(
                    "transfer {transfer} of member {} has already arrived (the account here has {} transfers)",
                    account.id,
                    held.past_regions.len()
                ),
            ));
        }
        // A copy left behind by a transfer away names the region it went to and holds
        // nothing; an account held here is in its own region.
        if held.balance != Money::ZERO || held.region == account.region {
            return Err(invalid(format!(
                "member {} has an account here in region {} holding {}",
                account.id, held.region, held.balance
            )));
        }
    }
    Ok(Decision {
        events: vec![(
            Stream::Member(account.id.clone()),
            Event::TransferReceived {
                transfer: transfer.to_string(),
                member: account.id.clone(),
                date: account.region_since,
                from_region: left.region.clone(),
                to_region: account.region.clone(),
                balance: account.balance,
                account: Box::new(account.clone()),
            },
        )],
        outcome: Outcome::TransferReceived {
            member: account.id.clone(),
            transfer: transfer.to_string(),
            from_region: left.region.clone(),
            to_region: account.region.clone(),
            balance: account.balance,
            policy_loaded: state
                .policies
                .get(&account.region)
                .is_some_and(|v| !v.is_empty()),
        },
    })
}

/// A fund event another region's ledger owed this one, landed once under its id: the fund
/// event itself, then the marker that it landed.
pub(crate) fn land_owed(
    state: &State,
    owed: &str,
    from_region: &str,
    member: &str,
    event: &Event,
) -> Result<Decision, Rejection> {
    check_id("region", from_region)?;
    let Some((fund, region)) = crate::event::fund_event(event) else {
        return Err(Rejection::new(
            RejectionCode::InvalidTransfer,
            format!("{owed} owes a {} event, not a fund's", event.kind()),
        ));
    };
    if state.txs.contains_key(owed) {
        return Err(Rejection::new(
            RejectionCode::AlreadyLanded,
            format!("{owed} from region {from_region} has already landed"),
        ));
    }
    let (owing_in, owing_out) = crate::event::owed_flow(event);
    let marker = Event::OwedLanded {
        owed: owed.to_string(),
        from_region: from_region.to_string(),
        fund,
        region: region.to_string(),
        member: member.to_string(),
        date: event.date(),
        moved_in: owing_out,
        moved_out: owing_in,
    };
    Ok(Decision {
        events: vec![(event.stream(), event.clone()), (marker.stream(), marker)],
        outcome: Outcome::OwedLanded {
            owed: owed.to_string(),
            from_region: from_region.to_string(),
            kind: event.kind(),
            region: region.to_string(),
        },
    })
}

/// The checks a transfer passes, in one ledger or between two: the member's account.
fn transferable<'s>(
    state: &'s State,
    member_id: &str,
    date: Day,
    to_region: &str,
) -> Result<&'s Member, Rejection> {
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
    Ok(account)
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
