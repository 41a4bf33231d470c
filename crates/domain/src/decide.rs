//! `decide`: a command and the state it needs in, events or a rejection out. No clock, no disk,
//! no randomness: dates come with the command.

use chrono::Datelike;
use serde::Serialize;

use crate::command::{Command, ID_BYTES_MAX};
use crate::event::{Event, Settlement, Stream};
use crate::money::Money;
use crate::policy::{in_lump_sum_period, CreditSource, Facts, PolicyVersion};
use crate::state::{State, TxKind};
use crate::time::{age_in_month, Day, Month};
use crate::types::{Channel, FundKind, Purpose, Rejection, RejectionCode, Scheme, Status};

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
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SettledOutcome {
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

/// Upper bound on a region's members for one `allocate`: the allocation is one atomic unit in
/// the log (up to two records per member, and a unit holds at most a million records).
pub const ALLOCATE_MEMBERS_MAX: usize = 450_000;

pub fn decide(state: &State, command: &Command) -> Result<Decision, Rejection> {
    match command {
        Command::LoadPolicy { policy } => load_policy(state, policy),
        Command::Enroll {
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
        Command::Retire { member, date } => {
            let account = live(state, member, *date)?;
            if let Some(retired) = account.retired_on {
                return Err(Rejection::new(
                    RejectionCode::AlreadyRetired,
                    format!("member {member} retired on {retired}"),
                ));
            }
            Ok(Decision {
                events: vec![(
                    Stream::Member(member.clone()),
                    Event::Retired {
                        member: member.clone(),
                        date: *date,
                    },
                )],
                outcome: Outcome::Retired {
                    member: member.clone(),
                    retired_on: *date,
                },
            })
        }
        Command::Contribute {
            member,
            month,
            base,
        } => contribute(state, member, *month, *base),
        Command::Allocate { region, month } => allocate(state, region, *month),
        Command::Claim {
            id,
            member,
            date,
            level,
            channel,
            eligible,
            special_paid,
            uncovered,
            use_account,
            institution,
            visit,
        } => {
            let claim = ClaimInput {
                id,
                member,
                date: *date,
                level: *level,
                channel: *channel,
                eligible: *eligible,
                special_paid: *special_paid,
                uncovered: *uncovered,
                use_account: *use_account,
                institution: institution.as_ref(),
                visit: visit.as_ref(),
            };
            settle(state, &claim)
        }
        Command::BindFamily {
            holder,
            relative,
            relation,
            date,
            yearly_limit,
        } => crate::family::bind(state, holder, relative, *relation, *date, *yearly_limit),
        Command::UnbindFamily {
            holder,
            relative,
            date,
        } => crate::family::unbind(state, holder, relative, *date),
        Command::AccountPay {
            id,
            holder,
            beneficiary,
            date,
            purpose,
            amount,
        } => account_pay(
            state,
            id,
            holder,
            beneficiary.as_deref(),
            *date,
            *purpose,
            *amount,
        ),
        Command::Reverse { id, date, reason } => reverse(state, id, *date, reason),
        Command::Rollover { region, year } => crate::lifecycle::rollover(state, region, *year),
        Command::Decease { member, date } => crate::lifecycle::decease(state, member, *date),
        Command::Inherit {
            member,
            date,
            heirs,
        } => crate::lifecycle::inherit(state, member, *date, heirs),
        Command::Transfer {
            member,
            date,
            to_region,
        } => crate::lifecycle::transfer(state, member, *date, to_region),
    }
}

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

pub(crate) fn non_negative(what: &str, amount: Money) -> Result<(), Rejection> {
    if amount.is_negative() {
        return Err(Rejection::new(
            RejectionCode::NegativeAmount,
            format!("{what} {amount} is negative"),
        ));
    }
    Ok(())
}

pub(crate) fn member<'s>(
    state: &'s State,
    id: &str,
) -> Result<&'s crate::state::Member, Rejection> {
    state.members.get(id).ok_or_else(|| {
        Rejection::new(
            RejectionCode::UnknownMember,
            format!("member {id} is not enrolled"),
        )
    })
}

/// The member, who must have enrolled on or before `date`.
pub(crate) fn enrolled<'s>(
    state: &'s State,
    id: &str,
    date: Day,
) -> Result<&'s crate::state::Member, Rejection> {
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
pub(crate) fn live<'s>(
    state: &'s State,
    id: &str,
    date: Day,
) -> Result<&'s crate::state::Member, Rejection> {
    let account = enrolled(state, id, date)?;
    frozen(account, date)?;
    Ok(account)
}

pub(crate) fn frozen(account: &crate::state::Member, date: Day) -> Result<(), Rejection> {
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

fn load_policy(state: &State, policy: &PolicyVersion) -> Result<Decision, Rejection> {
    policy.validate().map_err(|why| {
        Rejection::new(
            RejectionCode::InvalidPolicy,
            format!(
                "policy {} of region {}: {why}",
                policy.version, policy.region
            ),
        )
    })?;
    if let Some(versions) = state.policies.get(&policy.region) {
        if let Some(same) = versions
            .iter()
            .find(|v| v.effective == policy.effective || v.version == policy.version)
        {
            return Err(Rejection::new(
                RejectionCode::DuplicatePolicy,
                format!(
                    "region {} already has version {} effective {}",
                    policy.region, same.version, same.effective
                ),
            ));
        }
    }
    Ok(Decision {
        events: vec![(
            Stream::Policy(policy.region.clone()),
            Event::PolicyLoaded {
                policy: Box::new(policy.clone()),
            },
        )],
        outcome: Outcome::PolicyLoaded {
            region: policy.region.clone(),
            version: policy.version.clone(),
            effective: policy.effective,
        },
    })
}

pub(crate) fn facts(account: &crate::state::Member, day: Day, level: Option<u8>) -> Facts {
    let month = day.month();
    Facts {
        status: account.status_on(day),
        scheme: account.scheme,
        level,
        age: age_in_month(account.born, month),
        in_lump_sum_period: in_lump_sum_period(account.lump_sum_until, month),
    }
}

fn contribute(
    state: &State,
    member_id: &str,
    month: Month,
    base: Money,
) -> Result<Decision, Rejection> {
    non_negative("base", base)?;
    let account = enrolled(state, member_id, month.last_day())?;
    // Credits for the month of death and before are still due; later ones are not.
    frozen(account, month.first_day())?;
    let region = account.region_on(month.first_day()).to_string();
    let policy = policy(state, &region, month.first_day())?;
    let facts = facts(account, month.last_day(), None);
    if facts.status == Status::Retired {
        return Err(Rejection::new(
            RejectionCode::NotActive,
            format!("member {member_id} is retired in {month}; retirees are credited by allocate"),
        ));
    }
    if account.credited_months.contains(&month) {
        return Err(Rejection::new(
            RejectionCode::AlreadyCredited,
            format!("member {member_id} was already credited for {month}"),
        ));
    }
    let pooled_rate = policy.pooled_rate(account.scheme).ok_or_else(|| {
        Rejection::new(
            RejectionCode::NoContributionRule,
            format!(
                "policy {} has no contribution rule for scheme {:?} of member {member_id}",
                policy.version, account.scheme
            ),
        )
    })?;
    let credit = match policy.credit_rule(&facts, &[CreditSource::Contribution]) {
        Some(rule) => match (rule.share_of_base, rule.fixed) {
            (Some(share), _) => base.times(share),
            (None, Some(fixed)) => fixed,
            (None, None) => Money::ZERO,
        },
        None => Money::ZERO,
    };
    let pooled = base.times(pooled_rate);
    let mut events = vec![(
        Stream::Member(member_id.to_string()),
        Event::AccountCredited {
            member: member_id.to_string(),
            month,
            amount: credit,
            paid_by: CreditSource::Contribution,
            base: Some(base),
            policy: policy.version.clone(),
        },
    )];
    if !pooled.is_negative() {
        events.push((
            Stream::Fund(FundKind::Pooled, region.clone()),
            Event::PooledContributed {
                region: region.clone(),
                member: member_id.to_string(),
                month,
                amount: pooled,
            },
        ));
    }
    Ok(Decision {
        events,
        outcome: Outcome::Contributed {
            member: member_id.to_string(),
            month,
            credited: credit,
            pooled,
            balance: account.balance + credit,
        },
    })
}

fn allocate(state: &State, region: &str, month: Month) -> Result<Decision, Rejection> {
    check_id("region", region)?;
    let policy = policy(state, region, month.first_day())?;
    let members = state
        .region_members
        .get(region)
        .map(|m| m.len())
        .unwrap_or(0);
    if members > ALLOCATE_MEMBERS_MAX {
        return Err(Rejection::new(
            RejectionCode::TooManyMembers,
            format!(
                "region {region} has {members} members; allocate handles {ALLOCATE_MEMBERS_MAX}"
            ),
        ));
    }
    let mut events = Vec::new();
    let (mut credited, mut pooled_paid, mut lump_sum_credited, mut count) =
        (Money::ZERO, Money::ZERO, Money::ZERO, 0u64);
    for id in state.region_members.get(region).into_iter().flatten() {
        let account = member(state, id)?;
        let frozen = account.frozen_on(month.first_day()).is_some();
        if frozen
            || account.enrolled_on > month.last_day()
            || account.credited_months.contains(&month)
        {
            continue;
        }
        let facts = facts(account, month.last_day(), None);
        let is_due = facts.status == Status::Retired || account.scheme == Scheme::LumpSum;
        if !is_due {
            continue;
        }
        let Some(rule) =
            policy.credit_rule(&facts, &[CreditSource::PooledFund, CreditSource::LumpSum])
        else {
            continue;
        };
        let base = match rule.paid_by {
            CreditSource::LumpSum => account.lump_sum_base,
            _ => None,
        };
        let amount = match (rule.share_of_base, rule.fixed, base) {
            (Some(share), _, Some(base)) => base.times(share),
            (None, Some(fixed), _) => fixed,
            _ => continue,
        };
        events.push((
            Stream::Member(id.clone()),
            Event::AccountCredited {
                member: id.clone(),
                month,
                amount,
                paid_by: rule.paid_by,
                base,
                policy: policy.version.clone(),
            },
        ));
        if rule.paid_by == CreditSource::PooledFund {
            events.push((
                Stream::Fund(FundKind::Pooled, region.to_string()),
                Event::PooledCreditPaid {
                    region: region.to_string(),
                    member: id.clone(),
                    month,
                    amount,
                },
            ));
            pooled_paid += amount;
        } else {
            lump_sum_credited += amount;
        }
        credited += amount;
        count += 1;
    }
    Ok(Decision {
        events,
        outcome: Outcome::Allocated {
            region: region.to_string(),
            month,
            members_credited: count,
            credited,
            pooled_paid,
            lump_sum_credited,
        },
    })
}

struct ClaimInput<'c> {
    id: &'c str,
    member: &'c str,
    date: Day,
    level: u8,
    channel: Channel,
    eligible: Money,
    special_paid: Money,
    uncovered: Money,
    use_account: bool,
    institution: Option<&'c String>,
    visit: Option<&'c String>,
}

fn settle(state: &State, claim: &ClaimInput<'_>) -> Result<Decision, Rejection> {
    check_id("claim", claim.id)?;
    for (what, id) in [("institution", claim.institution), ("visit", claim.visit)] {
        if let Some(id) = id {
            check_id(what, id)?;
        }
    }
    if state.txs.contains_key(claim.id) {
        return Err(Rejection::new(
            RejectionCode::DuplicateId,
            format!("claim {} is already settled", claim.id),
        ));
    }
    if !(1..=3).contains(&claim.level) {
        return Err(Rejection::new(
            RejectionCode::InvalidLevel,
            format!(
                "level {} of claim {} must be 1, 2 or 3",
                claim.level, claim.id
            ),
        ));
    }
    non_negative("eligible", claim.eligible)?;
    non_negative("special_paid", claim.special_paid)?;
    non_negative("uncovered", claim.uncovered)?;
    if claim.special_paid > claim.eligible {
        return Err(Rejection::new(
            RejectionCode::SpecialExceedsEligible,
            format!(
                "claim {}: special_paid {} is more than eligible {}",
                claim.id, claim.special_paid, claim.eligible
            ),
        ));
    }
    let account = live(state, claim.member, claim.date)?;
    // A claim settles in the region the member belonged to on its date, against that region's
    // counters: late claims from before a transfer still reach the old region.
    let region = account.region_on(claim.date).to_string();
    let policy = policy(state, &region, claim.date)?;
    let facts = facts(account, claim.date, Some(claim.level));
    let no_rule = |what: &str| {
        Rejection::new(
            RejectionCode::NoPolicyRule,
            format!(
                "policy {} has no {what} rule for member {} ({:?}, {:?}, level {})",
                policy.version, claim.member, facts.status, facts.scheme, claim.level
            ),
        )
    };
    let deductible = policy
        .deductible_rule(&facts)
        .ok_or_else(|| no_rule("deductible"))?;
    let ratio = policy.ratio_rule(&facts).ok_or_else(|| no_rule("ratio"))?;
    let limit = policy
        .limit_rule(&facts)
        .ok_or_else(|| no_rule("annual limit"))?;
    let year = policy.insurance_year(claim.date);
    let counters = account.year_on(claim.date, year);

    let remainder = claim.eligible - claim.special_paid;
    let group_used = counters
        .deductible_used
        .get(&deductible.group)
        .copied()
        .unwrap_or(Money::ZERO);
    let mut deductible_left = deductible.amount.saturating_sub(group_used);
    if let Some(cap) = policy.outpatient.deductible_cap {
        deductible_left = deductible_left.min(cap.saturating_sub(counters.deductible_used_total()));
    }
    let deductible_applied = remainder.min(deductible_left);
    let ordinary_computed = ratio.pay(
        counters.ordinary_cost + deductible_applied,
        remainder - deductible_applied,
    );
    let ordinary_paid = match limit.amount {
        Some(limit) => ordinary_computed.min(limit.saturating_sub(counters.ordinary_paid)),
        None => ordinary_computed,
    };
    let pooled_room = match policy.outpatient.annual_max {
        Some(max) => max.saturating_sub(counters.pooled_paid + claim.special_paid),
        None => ordinary_paid,
    };
    let ordinary_pooled = ordinary_paid.min(pooled_room);
    let large_amount_paid = ordinary_paid - ordinary_pooled;
    let available = account.available_on(claim.date);
    let own_share = claim.eligible + claim.uncovered - claim.special_paid - ordinary_paid;
    let (account_paid, reimbursed_to_member) = match claim.channel {
        Channel::Manual => (Money::ZERO, claim.special_paid + ordinary_paid),
        _ if claim.use_account => (own_share.min(available), Money::ZERO),
        _ => (Money::ZERO, Money::ZERO),
    };
    let settlement = Settlement {
        claim: claim.id.to_string(),
        member: claim.member.to_string(),
        region: region.clone(),
        date: claim.date,
        year,
        stint_since: account.stint_since_on(claim.date),
        level: claim.level,
        channel: claim.channel,
        institution: claim.institution.cloned(),
        visit: claim.visit.cloned(),
        policy: policy.version.clone(),
        status: facts.status,
        eligible: claim.eligible,
        special_paid: claim.special_paid,
        uncovered: claim.uncovered,
        deductible_group: deductible.group.clone(),
        deductible_applied,
        ordinary_cost_before: counters.ordinary_cost,
        ordinary_computed,
        ordinary_paid,
        ordinary_pooled,
        large_amount_paid,
        pooled_paid: claim.special_paid + ordinary_pooled,
        account_paid,
        cash_paid: own_share - account_paid,
        reimbursed_to_member,
        basis: crate::event::SettlementBasis {
            deductible: deductible.amount,
            deductible_used_before: group_used,
            deductible_cap: policy.outpatient.deductible_cap,
            bands: ratio.bands.clone(),
            ordinary_limit: limit.amount,
            ordinary_paid_before: counters.ordinary_paid,
            annual_max: policy.outpatient.annual_max,
            pooled_paid_before: counters.pooled_paid,
            balance_before: account.balance,
            available_before: available,
        },
    };
    assert!(
        settlement.adds_up(),
        "settlement arithmetic broke for claim {}: {settlement:?}",
        claim.id
    );
    let outcome = SettledOutcome {
        claim: claim.id.to_string(),
        year,
        fund_paid: settlement.fund_paid(),
        special_paid: settlement.special_paid,
        ordinary_paid,
        pooled_paid: settlement.pooled_paid,
        large_amount_paid,
        deductible_applied,
        account_paid,
        cash_paid: settlement.cash_paid,
        reimbursed_to_member,
        balance: account.balance - account_paid,
        policy: policy.version.clone(),
    };
    let mut events = vec![(
        Stream::Member(claim.member.to_string()),
        Event::ClaimSettled {
            settlement: Box::new(settlement.clone()),
        },
    )];
    for (fund, amount) in [
        (FundKind::Pooled, settlement.pooled_paid),
        (FundKind::LargeAmount, large_amount_paid),
    ] {
        if amount > Money::ZERO {
            events.push((
                Stream::Fund(fund, region.clone()),
                Event::FundClaimPaid {
                    fund,
                    region: region.clone(),
                    claim: claim.id.to_string(),
                    member: claim.member.to_string(),
                    date: claim.date,
                    amount,
                },
            ));
        }
    }
    Ok(Decision {
        events,
        outcome: Outcome::Settled(outcome),
    })
}

fn account_pay(
    state: &State,
    id: &str,
    holder: &str,
    beneficiary: Option<&str>,
    date: Day,
    purpose: Purpose,
    amount: Money,
) -> Result<Decision, Rejection> {
    check_id("payment", id)?;
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
    let account = live(state, holder, date)?;
    let beneficiary = beneficiary.unwrap_or(holder);
    check_id("beneficiary", beneficiary)?;
    if !purpose.allowed() {
        return Err(Rejection::new(
            RejectionCode::PurposeNotAllowed,
            format!("payment {id}: a personal account may not pay for {purpose:?} (public health, fitness and wellness are excluded)"),
        ));
    }
    let region = account.region_on(date).to_string();
    let policy = state.policy_in_force(&region, date);
    let year = policy.map_or(date.date().year(), |p| p.insurance_year(date));
    if beneficiary != holder {
        crate::family::check_payment(account, policy, id, beneficiary, date, year, amount)?;
    }
    if purpose == Purpose::LargeAmountPremium
        && (beneficiary != holder || account.status_on(date) != Status::Retired)
    {
        return Err(Rejection::new(
            RejectionCode::PurposeNotAllowed,
            format!("payment {id}: only a retiree's own large-amount premium may be paid from the account"),
        ));
    }
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

fn reverse(state: &State, id: &str, date: Day, reason: &str) -> Result<Decision, Rejection> {
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
    match &tx.kind {
        TxKind::Claim(settlement) => {
            let region = settlement.region.clone();
            let mut events = vec![(
                Stream::Member(settlement.member.clone()),
                Event::ClaimReversed {
                    date,
                    reason: reason.to_string(),
                    settlement: settlement.clone(),
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
            Ok(Decision {
                events,
                outcome: Outcome::Reversed {
                    id: id.to_string(),
                    kind: "claim",
                    account_refunded: settlement.account_paid,
                    pooled_refunded: settlement.pooled_paid,
                    large_amount_refunded: settlement.large_amount_paid,
                },
            })
        }
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
            Ok(Decision {
                events,
                outcome: Outcome::Reversed {
                    id: id.to_string(),
                    kind: "account_payment",
                    account_refunded: *amount,
                    pooled_refunded: Money::ZERO,
                    large_amount_refunded: Money::ZERO,
                },
            })
        }
    }
}
