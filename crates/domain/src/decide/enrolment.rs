//! Joining the ledger and changing status: enrolment (参保登记) and retirement.

use super::guards::{check_id, live, non_negative};
use super::{Decision, Outcome};
use crate::command::Command;
use crate::event::{Event, Stream};
use crate::money::Money;
use crate::state::State;
use crate::time::Day;
use crate::types::{Rejection, RejectionCode, Scheme};

/// `enroll`: a new member, with an opening balance carried in from outside the ledger.
pub(super) fn enroll(state: &State, command: &Command) -> Result<Decision, Rejection> {
    let Command::Enroll {
        member,
        region,
        born,
        status,
        scheme,
        date,
        opening_balance,
        lump_sum_base,
        lump_sum_until,
    } = command
    else {
        unreachable!("decide hands enroll only Enroll commands")
    };
    check_id("member", member)?;
    check_id("region", region)?;
    if state.members.contains_key(member) {
        return Err(Rejection::new(
            RejectionCode::AlreadyEnrolled,
            format!("member {member} is already enrolled"),
        ));
    }
    if born > date {
        return Err(Rejection::new(
            RejectionCode::MalformedDate,
            format!("member {member} born {born} after enrolment on {date}"),
        ));
    }
    let opening_balance = opening_balance.unwrap_or(Money::ZERO);
    non_negative("opening_balance", opening_balance)?;
    let lump_sum = *scheme == Scheme::LumpSum;
    if lump_sum != (lump_sum_base.is_some() && lump_sum_until.is_some()) {
        return Err(Rejection::new(
                RejectionCode::LumpSumMismatch,
                format!("member {member}: scheme lump_sum needs lump_sum_base and lump_sum_until, and only it takes them"),
            ));
    }
    if let Some(base) = lump_sum_base {
        non_negative("lump_sum_base", *base)?;
    }
    let event = Event::Enrolled {
        member: member.clone(),
        region: region.clone(),
        born: *born,
        status: *status,
        scheme: *scheme,
        date: *date,
        opening_balance,
        lump_sum_base: *lump_sum_base,
        lump_sum_until: *lump_sum_until,
    };
    Ok(Decision {
        events: vec![(Stream::Member(member.clone()), event)],
        outcome: Outcome::Enrolled {
            member: member.clone(),
            region: region.clone(),
            balance: opening_balance,
        },
    })
}

pub(super) fn retire(state: &State, member: &str, date: Day) -> Result<Decision, Rejection> {
    let account = live(state, member, date)?;
    if let Some(retired) = account.retired_on {
        return Err(Rejection::new(
            RejectionCode::AlreadyRetired,
            format!("member {member} retired on {retired}"),
        ));
    }
    Ok(Decision {
        events: vec![(
            Stream::Member(member.to_string()),
            Event::Retired {
                member: member.to_string(),
                date,
            },
        )],
        outcome: Outcome::Retired {
            member: member.to_string(),
            retired_on: date,
        },
    })
}
