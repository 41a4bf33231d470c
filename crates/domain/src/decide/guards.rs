//! The checks handlers share: well-formed ids and amounts, a member who is enrolled and whose
//! account is not frozen, the policy version in force, and the facts a policy rule is matched on.
//! Each returns the rejection a person can act on, naming the value that failed.

use crate::command::ID_BYTES_MAX;
use crate::money::Money;
use crate::policy::{in_lump_sum_period, Facts, PolicyVersion};
use crate::state::{Member, State};
use crate::time::{age_in_month, Day};
use crate::types::{InstitutionKind, Rejection, RejectionCode};

use super::ALLOCATE_MEMBERS_MAX;

pub(crate) fn check_id(what: &str, id: &str) -> Result<(), Rejection> {
    let printable = id.chars().all(|c| !c.is_control());
    if id.is_empty() || id.len() > ID_BYTES_MAX || !printable {
        return Err(Rejection::new(
            RejectionCode::MalformedId,
            format!(
                "{what} id '{}' must be 1 to {ID_BYTES_MAX} bytes of printable text",
                id.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// A claim's or a payment's id: an id, and not one a region map's ledgers use for the fund
/// events they owe each other (`event::OWED_PREFIX`), which share the transactions' namespace.
pub(crate) fn check_tx_id(what: &str, id: &str) -> Result<(), Rejection> {
    check_id(what, id)?;
    if id.starts_with(crate::event::OWED_PREFIX) {
        return Err(Rejection::new(
            RejectionCode::MalformedId,
            format!(
                "{what} id '{id}' starts with '{}', which the ledger keeps for itself",
                crate::event::OWED_PREFIX
            ),
        ));
    }
    Ok(())
}

pub(crate) fn non_negative(what: &str, amount: Money) -> Result<(), Rejection> {
    if amount.is_negative() {
        return Err(Rejection::new(
            RejectionCode::NegativeAmount,
            format!("{what} {amount} is negative"),
        ));
    }
    Ok(())
}

pub(crate) fn member<'s>(state: &'s State, id: &str) -> Result<&'s Member, Rejection> {
    state.members.get(id).ok_or_else(|| {
        Rejection::new(
            RejectionCode::UnknownMember,
            format!("member {id} is not enrolled"),
        )
    })
}

/// The member, who must have enrolled on or before `date`.
pub(crate) fn enrolled<'s>(state: &'s State, id: &str, date: Day) -> Result<&'s Member, Rejection> {
    let account = member(state, id)?;
    if date < account.enrolled_on {
        return Err(Rejection::new(
            RejectionCode::BeforeEnrolment,
            format!(
                "{date} is before member {id} enrolled on {}",
                account.enrolled_on
            ),
        ));
    }
    Ok(account)
}

/// The member, enrolled on or before `date`, whose account is not frozen on `date`.
pub(crate) fn live<'s>(state: &'s State, id: &str, date: Day) -> Result<&'s Member, Rejection> {
    let account = enrolled(state, id, date)?;
    frozen(account, date)?;
    Ok(account)
}

pub(crate) fn frozen(account: &Member, date: Day) -> Result<(), Rejection> {
    match account.frozen_on(date) {
        Some(why) if account.closed_on.is_some() => {
            Err(Rejection::new(RejectionCode::AccountClosed, why))
        }
        Some(why) => Err(Rejection::new(RejectionCode::MemberDeceased, why)),
        None => Ok(()),
    }
}

pub(crate) fn policy<'s>(
    state: &'s State,
    region: &str,
    date: Day,
) -> Result<&'s PolicyVersion, Rejection> {
    state.policy_in_force(region, date).ok_or_else(|| {
        Rejection::new(
            RejectionCode::NoPolicyInForce,
            format!("no policy version of region {region} is in force on {date}"),
        )
    })
}

/// What the rules are chosen by for `account` on `day`; `claim`: the claim's level and
/// institution kind (None outside a claim).
pub(crate) fn facts(account: &Member, day: Day, claim: Option<(u8, InstitutionKind)>) -> Facts {
    let month = day.month();
    Facts {
        status: account.status_on(day),
        scheme: account.scheme,
        level: claim.map(|c| c.0),
        kind: claim.map(|c| c.1),
        age: age_in_month(account.born, month),
        in_lump_sum_period: in_lump_sum_period(account.lump_sum_until, month),
    }
}

/// The members of `region`, at most [`ALLOCATE_MEMBERS_MAX`] of them: what `command` (allocate,
/// rollover) writes for them must fit one atomic unit of the log.
pub(crate) fn region_members<'s>(
    state: &'s State,
    region: &str,
    command: &str,
) -> Result<impl Iterator<Item = &'s String>, Rejection> {
    let members = state.region_members.get(region);
    let count = members.map_or(0, |m| m.len());
    if count > ALLOCATE_MEMBERS_MAX {
        return Err(Rejection::new(
            RejectionCode::TooManyMembers,
            format!(
                "region {region} has {count} members; {command} handles {ALLOCATE_MEMBERS_MAX}"
            ),
        ));
    }
    Ok(members.into_iter().flatten())
}

/// A code as commands spell it (`fitness`, `individual_tier1`, `spouse`): what the user typed
/// and can type again, never the program's own name for it.
pub(crate) fn code_name(code: &impl serde::Serialize) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => "(unnamed)".to_string(),
    }
}
