//! `decide`: a command and the state it needs in, events or a rejection out. No clock, no disk,
//! no randomness: dates come with the command.
//!
//! One module per command family, each a set of handlers `(state, command fields) -> Decision`:
//! `policies` (load_policy), `enrolment` (enroll, retire), `credits` (contribute, allocate),
//! `claims` (claim; its arithmetic is the pure function in `settlement`), `payments`
//! (account_pay), `reversals` (reverse), `family` (bind, unbind, payments for relatives),
//! `lifecycle` (rollover, decease, inherit, transfer). The checks they share (ids, amounts, a
//! member who is enrolled and not frozen, the policy in force, a region's member count) are in
//! `guards`. `totals` checks every decision's events against the bound on running totals.
//!
//! To add a command: its variant in `command.rs`, its events in `event.rs` (with `evolve`'s arm
//! in `state/evolve.rs` and, if it adds to a running total, its line in `totals.rs`), its
//! handler in the family's module here, an arm in `handle`, its codes in `RejectionCode` and the
//! README.

use serde::Serialize;

use crate::command::Command;
use crate::event::{Event, Stream};
use crate::money::Money;
use crate::state::State;
use crate::time::{Day, Month};
use crate::types::Rejection;

mod claims;
mod credits;
mod enrolment;
pub(crate) mod family;
pub(crate) mod guards;
pub(crate) mod lifecycle;
mod payments;
mod policies;
pub mod resettle;
mod reversals;
mod settlement;
pub mod supervision;
pub(crate) mod totals;

/// What a command decided: the events to append, each with its stream, and the result to show.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub events: Vec<(Stream, Event)>,
    pub outcome: Outcome,
}

/// The result of an accepted command, as shown to the user.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    PolicyLoaded {
        region: String,
        version: String,
        effective: Day,
    },
    Enrolled {
        member: String,
        region: String,
        balance: Money,
    },
    Retired {
        member: String,
        retired_on: Day,
    },
    Contributed {
        member: String,
        month: Month,
        credited: Money,
        pooled: Money,
        balance: Money,
    },
    Allocated {
        region: String,
        month: Month,
        members_credited: u64,
        credited: Money,
        pooled_paid: Money,
        lump_sum_credited: Money,
    },
    Settled(SettledOutcome),
    Bound {
        holder: String,
        relative: String,
    },
    Unbound {
        holder: String,
        relative: String,
    },
    Paid {
        id: String,
        holder: String,
        beneficiary: String,
        amount: Money,
        balance: Money,
    },
    Reversed {
        id: String,
        kind: &'static str,
        account_refunded: Money,
        pooled_refunded: Money,
        large_amount_refunded: Money,
    },
    RolledOver {
        region: String,
        year: i32,
        year_from: Day,
        year_to: Day,
        accounts_closed: u64,
        closing_total: Money,
    },
    Deceased {
        member: String,
        deceased_on: Day,
        balance: Money,
    },
    Inherited {
        member: String,
        /// The balance paid to the heirs: `inherited_balance`, as `gongji inheritance` names it.
        #[serde(rename = "inherited_balance")]
        balance: Money,
        payouts: Vec<crate::event::Payout>,
    },
    Transferred {
        member: String,
        from_region: String,
        to_region: String,
        balance: Money,
        /// Whether the destination has a policy loaded (claims there are refused until it has).
        policy_loaded: bool,
    },
    /// A transfer between two ledgers, recorded by the source: in transit until received.
    TransferSent {
        member: String,
        transfer: String,
        from_region: String,
        to_region: String,
        balance: Money,
        in_transit: bool,
    },
    /// A version of a region's monitoring rules, loaded.
    MonitorRulesLoaded {
        region: String,
        version: String,
    },
    /// A decision on a monitoring flag, recorded.
    FlagDecided {
        flag: String,
        region: String,
        decision: crate::types::FlagDecision,
    },
    /// A fund event another region's ledger owed this one, recorded.
    OwedLanded {
        owed: String,
        from_region: String,
        kind: &'static str,
        region: String,
    },
    /// A transfer between two ledgers, recorded by the destination.
    TransferReceived {
        member: String,
        transfer: String,
        from_region: String,
        to_region: String,
        balance: Money,
        /// Whether the destination has a policy loaded (claims there are refused until it has).
        policy_loaded: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SettledOutcome {
    /// The claim's id, named `id` as in the `claim` command (and in every answer about it).
    #[serde(rename = "id")]
    pub claim: String,
    pub year: i32,
    pub fund_paid: Money,
    pub special_paid: Money,
    pub ordinary_paid: Money,
    pub pooled_paid: Money,
    pub large_amount_paid: Money,
    pub deductible_applied: Money,
    pub account_paid: Money,
    pub cash_paid: Money,
    pub reimbursed_to_member: Money,
    pub balance: Money,
    pub policy: String,
}

/// A decision as `own_region`'s ledger records it in a region map: each fund event of another
/// region becomes a [`Event::FundEventOwed`] on the stream of the decision's member, owed to
/// that region's ledger (a late claim, contribution or reversal dated when the member belonged
/// there). A decision with no member's event, or no other region's fund, is left as it is.
pub fn owed_elsewhere(events: Vec<(Stream, Event)>, own_region: &str) -> Vec<(Stream, Event)> {
    let Some(member) = events.iter().find_map(|(stream, _)| match stream {
        Stream::Member(id) => Some(id.clone()),
        _ => None,
    }) else {
        return events;
    };
    events
        .into_iter()
        .map(|(stream, event)| match crate::event::fund_event(&event) {
            Some((_, region)) if region != own_region => {
                let owed_to = region.to_string();
                (
                    Stream::Member(member.clone()),
                    Event::FundEventOwed {
                        owed: crate::event::Owed {
                            owed_to,
                            member: member.clone(),
                            event: Box::new(event),
                        },
                    },
                )
            }
            _ => (stream, event),
        })
        .collect()
}

/// Upper bound on a region's members for one `allocate`: the allocation is one atomic unit in
/// the log (up to two records per member, and a unit holds at most a million records).
pub const ALLOCATE_MEMBERS_MAX: usize = 450_000;

/// Decides `command` on `state`: the events to append and the result to show, or why not. The
/// events keep every running total the state keeps within `money::TOTAL_FEN_MAX`.
pub fn decide(state: &State, command: &Command) -> Result<Decision, Rejection> {
    let decision = handle(state, command)?;
    totals::check(state, &decision.events)?;
    Ok(decision)
}

/// The handler of the command's family.
fn handle(state: &State, command: &Command) -> Result<Decision, Rejection> {
    match command {
        Command::LoadPolicy { policy } => policies::load_policy(state, policy),
        Command::Enroll { .. } => enrolment::enroll(state, command),
        Command::Retire { member, date } => enrolment::retire(state, member, *date),
        Command::Contribute {
            member,
            month,
            base,
        } => credits::contribute(state, member, *month, *base),
        Command::Allocate { region, month } => credits::allocate(state, region, *month),
        Command::Claim { .. } => claims::claim(state, command),
        Command::BindFamily {
            holder,
            relative,
            relation,
            date,
            yearly_limit,
        } => family::bind(state, holder, relative, *relation, *date, *yearly_limit),
        Command::UnbindFamily {
            holder,
            relative,
            date,
        } => family::unbind(state, holder, relative, *date),
        Command::AccountPay { .. } => payments::account_pay(state, command),
        Command::Reverse { id, date, reason } => reversals::reverse(state, id, *date, reason),
        Command::Rollover { region, year } => lifecycle::rollover(state, region, *year),
        Command::Decease { member, date } => lifecycle::decease(state, member, *date),
        Command::Inherit {
            member,
            date,
            heirs,
        } => lifecycle::inherit(state, member, *date, heirs),
        Command::Transfer {
            member,
            date,
            to_region,
        } => lifecycle::transfer(state, member, *date, to_region),
        Command::SendTransfer {
            member,
            date,
            to_region,
        } => lifecycle::send_transfer(state, member, *date, to_region),
        Command::ReceiveTransfer { transfer, account } => {
            lifecycle::receive_transfer(state, transfer, account)
        }
        Command::LandOwed {
            owed,
            from_region,
            member,
            event,
        } => lifecycle::land_owed(state, owed, from_region, member, event),
        Command::DecideFlag {
            flag,
            region,
            decision,
            reason,
            by,
            date,
        } => supervision::decide_flag(flag, region, *decision, reason, by, *date),
        Command::LoadMonitorRules {
            region,
            version,
            effective,
            rules,
            by,
            date,
        } => supervision::load_monitor_rules(state, region, version, *effective, rules, by, *date),
    }
}
