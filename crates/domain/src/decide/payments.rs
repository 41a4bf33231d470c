//! Payments from a personal account (`account_pay`), for the holder or a bound relative.

use chrono::Datelike;

use super::guards::{check_id, check_tx_id, live};
use super::{Decision, Outcome};
use crate::command::Command;
use crate::event::{AddedIn, Event, Stream};
use crate::money::Money;
use crate::state::{Member, State};
use crate::time::Day;
use crate::types::{FundKind, Purpose, Rejection, RejectionCode, Status};

pub(super) fn account_pay(state: &State, command: &Command) -> Result<Decision, Rejection> {
    let Command::AccountPay {
        id,
        holder,
        beneficiary,
        date,
        purpose,
        amount,
        institution,
    } = command
    else {
        unreachable!("decide hands account_pay only AccountPay commands")
    };
    let (id, holder, date, purpose, amount) =
        (id.as_str(), holder.as_str(), *date, *purpose, *amount);
    check_new_payment(state, id, institution.as_deref(), amount)?;
    let account = live(state, holder, date)?;
    let beneficiary = beneficiary.as_deref().unwrap_or(holder);
    check_id("beneficiary", beneficiary)?;
    if !purpose.allowed() {
        return Err(Rejection::new(
            RejectionCode::PurposeNotAllowed,
            format!(
                "payment {id}: purpose {} is not allowed: a personal account may not pay for public health, fitness or wellness",
                super::guards::code_name(&purpose)
            ),
        ));
    }
    let region = account.region_on(date).to_string();
    let policy = state.policy_in_force(&region, date);
    let year = policy.map_or(date.date().year(), |p| p.insurance_year(date));
    if beneficiary != holder {
        super::family::check_payment(account, policy, id, beneficiary, date, year, amount)?;
    }
    if purpose == Purpose::LargeAmountPremium
        && (beneficiary != holder || account.status_on(date) != Status::Retired)
    {
        return Err(Rejection::new(
            RejectionCode::PurposeNotAllowed,
            format!("payment {id}: only a retiree's own large-amount premium may be paid from the account"),
        ));
    }
    check_available(account, id, date, amount)?;
    let mut events = vec![(
        Stream::Member(holder.to_string()),
        Event::AccountPaid {
            id: id.to_string(),
            holder: holder.to_string(),
            beneficiary: beneficiary.to_string(),
            region: region.clone(),
            date,
            year,
            purpose,
            amount,
            institution: AddedIn(institution.as_deref().map(Box::from)),
        },
    )];
    if purpose == Purpose::LargeAmountPremium {
        events.push((
            Stream::Fund(FundKind::LargeAmount, region.clone()),
            Event::PremiumReceived {
                region: region.clone(),
                payment: id.to_string(),
                member: holder.to_string(),
                date,
                amount,
            },
        ));
    }
    Ok(Decision {
        events,
        outcome: Outcome::Paid {
            id: id.to_string(),
            holder: holder.to_string(),
            beneficiary: beneficiary.to_string(),
            amount,
            balance: account.balance - amount,
        },
    })
}

/// What a payment must satisfy before the account is looked at: its ids, a new id, an amount.
fn check_new_payment(
    state: &State,
    id: &str,
    institution: Option<&str>,
    amount: Money,
) -> Result<(), Rejection> {
    check_tx_id("payment", id)?;
    if let Some(institution) = institution {
        check_id("institution", institution)?;
    }
    if state.txs.contains_key(id) {
        return Err(Rejection::new(
            RejectionCode::DuplicateId,
            format!("id {id} is already used by a settled claim or payment"),
        ));
    }
    if amount <= Money::ZERO {
        return Err(Rejection::new(
            RejectionCode::NegativeAmount,
            format!("payment {id}: amount {amount} must be more than 0.00"),
        ));
    }
    Ok(())
}

/// The account can pay `amount` on `date` without its balance as of that day, or any later
/// one, going below zero.
fn check_available(account: &Member, id: &str, date: Day, amount: Money) -> Result<(), Rejection> {
    let holder = account.id.as_str();
    let available = account.available_on(date);
    if amount > available {
        let later = if available < account.balance {
            format!(
                " on {date} (balance {}, part of it used by later-dated movements)",
                account.balance
            )
        } else {
            String::new()
        };
        return Err(Rejection::new(
            RejectionCode::InsufficientBalance,
            format!("member {holder} has {available}{later}; payment {id} of {amount} refused"),
        ));
    }
    Ok(())
}
