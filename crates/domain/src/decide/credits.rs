//! Credits to personal accounts: a contribution (`contribute`, 单位缴费划入) and the monthly run
//! for retirees and lump-sum members (`allocate`, 统筹基金划入).

use super::guards::{
    check_id, enrolled, facts, frozen, member, non_negative, policy, region_members,
};
use super::{Decision, Outcome};
use crate::event::{Event, Stream};
use crate::money::Money;
use crate::policy::CreditSource;
use crate::state::State;
use crate::time::Month;
use crate::types::{FundKind, Rejection, RejectionCode, Scheme, Status};

pub(super) fn contribute(
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
                "policy {} has no contribution rule for scheme {} of member {member_id}",
                policy.version,
                super::guards::code_name(&account.scheme)
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

pub(super) fn allocate(state: &State, region: &str, month: Month) -> Result<Decision, Rejection> {
    check_id("region", region)?;
    let policy = policy(state, region, month.first_day())?;
    let members = region_members(state, region, "allocate")?;
    let mut events = Vec::new();
    let (mut credited, mut pooled_paid, mut lump_sum_credited, mut count) =
        (Money::ZERO, Money::ZERO, Money::ZERO, 0u64);
    for id in members {
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
        // Every credit enters the region's account inflow: bounded, so are its two parts below.
        credited = super::totals::sum(
            format_args!("the credits of region {region}'s allocation for {month}"),
            credited,
            amount,
        )?;
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
