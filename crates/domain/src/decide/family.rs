//! Family sharing (家庭共济): binding relatives to a holder's account, and what a payment for a
//! relative must satisfy. Which relations may be bound, how many at once, and whether a holder
//! may set a yearly limit are part of the policy version in force.

use super::guards::{check_id, live, non_negative};
use super::{Decision, Outcome};
use crate::event::{Event, Stream};
use crate::money::Money;
use crate::policy::{FamilyRules, PolicyVersion};
use crate::state::{Member, State};
use crate::time::Day;
use crate::types::{Rejection, RejectionCode, Relation};

/// The family rules in force for a member's region on `date` (the 2021 national rule where no
/// policy version is loaded yet).
fn rules_on<'s>(state: &'s State, account: &Member, date: Day) -> (FamilyRules, Option<&'s str>) {
    match state.policy_in_force(account.region_on(date), date) {
        Some(policy) => (policy.family.clone(), Some(policy.version.as_str())),
        None => (FamilyRules::default(), None),
    }
}

fn relation_allowed(
    rules: &FamilyRules,
    relation: Relation,
    version: Option<&str>,
) -> Result<(), Rejection> {
    if rules.relations.contains(&relation) {
        return Ok(());
    }
    Err(Rejection::new(
        RejectionCode::RelationNotAllowed,
        format!(
            "relation {} may not be bound under policy {}; allowed: {}",
            super::guards::code_name(&relation),
            version.unwrap_or("(none loaded: the national default)"),
            rules
                .relations
                .iter()
                .map(super::guards::code_name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

pub(super) fn bind(
    state: &State,
    holder: &str,
    relative: &str,
    relation: Relation,
    date: Day,
    yearly_limit: Option<Money>,
) -> Result<Decision, Rejection> {
    check_id("relative", relative)?;
    let account = live(state, holder, date)?;
    if holder == relative {
        return Err(Rejection::new(
            RejectionCode::SelfBinding,
            format!("member {holder} cannot be bound to their own account"),
        ));
    }
    let (rules, version) = rules_on(state, account, date);
    relation_allowed(&rules, relation, version)?;
    if let Some(limit) = yearly_limit {
        non_negative("yearly_limit", limit)?;
        if !rules.yearly_limit_allowed {
            return Err(Rejection::new(
                RejectionCode::YearlyLimitNotAllowed,
                format!(
                    "policy {} lets no holder set a yearly limit for relatives",
                    version.unwrap_or("-")
                ),
            ));
        }
    }
    check_free_to_bind(state, account, relative, date)?;
    if let Some(max) = rules.relatives_max {
        let bound = account.relatives_bound_on(date);
        if bound >= max as usize {
            return Err(Rejection::new(
                RejectionCode::TooManyRelatives,
                format!(
                    "{holder} already has {bound} relatives bound; policy {} allows {max}",
                    version.unwrap_or("-")
                ),
            ));
        }
    }
    let event = Event::FamilyBound {
        holder: holder.to_string(),
        relative: relative.to_string(),
        relation,
        date,
        yearly_limit,
    };
    Ok(Decision {
        events: vec![(Stream::Member(holder.to_string()), event)],
        outcome: Outcome::Bound {
            holder: holder.to_string(),
            relative: relative.to_string(),
        },
    })
}

/// Neither side of a new binding is bound already: bindings are one-way, a relative belongs to
/// one holder at a time, and a holder is nobody's relative.
fn check_free_to_bind(
    state: &State,
    account: &Member,
    relative: &str,
    date: Day,
) -> Result<(), Rejection> {
    let holder = account.id.as_str();
    if let Some(binding) = account.family.get(relative) {
        match binding.until {
            None => {
                return Err(Rejection::new(
                    RejectionCode::AlreadyBound,
                    format!("{relative} is already bound to {holder}'s account since {}", binding.since),
                ))
            }
            Some(until) if date < until => {
                return Err(Rejection::new(
                    RejectionCode::AlreadyBound,
                    format!("{relative} was bound to {holder}'s account until {until}; a new binding must start on or after it"),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(other) = state.relatives.get(relative) {
        return Err(Rejection::new(
            RejectionCode::RelativeBoundElsewhere,
            format!("{relative} is already bound to {other}'s account; unbind there first"),
        ));
    }
    if let Some(other) = state.relatives.get(holder) {
        return Err(Rejection::new(
            RejectionCode::HolderIsRelative,
            format!(
                "{holder} is bound as a relative to {other}'s account and cannot bind relatives"
            ),
        ));
    }
    if state.members.get(relative).is_some_and(Member::is_holder) {
        return Err(Rejection::new(
            RejectionCode::RelativeIsHolder,
            format!("{relative} has relatives bound to their own account and cannot be bound to {holder}'s"),
        ));
    }
    Ok(())
}

pub(super) fn unbind(
    state: &State,
    holder: &str,
    relative: &str,
    date: Day,
) -> Result<Decision, Rejection> {
    let account = live(state, holder, date)?;
    let binding = account
        .family
        .get(relative)
        .filter(|b| b.until.is_none())
        .ok_or_else(|| {
            Rejection::new(
                RejectionCode::RelativeNotBound,
                format!("{relative} is not bound to {holder}'s account"),
            )
        })?;
    if date < binding.since {
        return Err(Rejection::new(
            RejectionCode::UnbindBeforeBinding,
            format!(
                "{relative} was bound to {holder}'s account on {}; cannot unbind on {date}",
                binding.since
            ),
        ));
    }
    let event = Event::FamilyUnbound {
        holder: holder.to_string(),
        relative: relative.to_string(),
        date,
    };
    Ok(Decision {
        events: vec![(Stream::Member(holder.to_string()), event)],
        outcome: Outcome::Unbound {
            holder: holder.to_string(),
            relative: relative.to_string(),
        },
    })
}

/// A payment from `account` for `beneficiary` (not the holder): the relative must have been
/// bound on `date`, by a relation the policy in force then allows, within the yearly limit.
pub(super) fn check_payment(
    account: &Member,
    policy: Option<&PolicyVersion>,
    id: &str,
    beneficiary: &str,
    date: Day,
    year: i32,
    amount: Money,
) -> Result<(), Rejection> {
    let holder = &account.id;
    let binding = match account.family.get(beneficiary) {
        Some(binding) if binding.covers(date) => binding,
        Some(binding) => {
            let until = binding
                .until
                .map(|u| format!(" until {u}"))
                .unwrap_or_default();
            return Err(Rejection::new(
                RejectionCode::RelativeNotBound,
                format!(
                    "payment {id}: {beneficiary} was bound to {holder}'s account from {}{until}, not on {date}",
                    binding.since
                ),
            ));
        }
        None => {
            return Err(Rejection::new(
                RejectionCode::RelativeNotBound,
                format!("payment {id}: {beneficiary} is not bound to {holder}'s account"),
            ))
        }
    };
    let rules = policy.map(|p| p.family.clone()).unwrap_or_default();
    relation_allowed(&rules, binding.relation, policy.map(|p| p.version.as_str()))
        .map_err(|r| Rejection::new(r.code, format!("payment {id}: {}", r.message)))?;
    if let Some(limit) = binding.yearly_limit {
        let spent = binding.spent.get(&year).copied().unwrap_or(Money::ZERO);
        if spent + amount > limit {
            return Err(Rejection::new(
                RejectionCode::RelativeLimitExceeded,
                format!(
                    "payment {id}: {holder} set a yearly limit of {limit} for {beneficiary}; {spent} already paid in {year}, {amount} more refused"
                ),
            ));
        }
    }
    Ok(())
}
