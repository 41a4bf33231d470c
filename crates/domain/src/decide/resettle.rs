//! What-if (政策调整测算): a recorded claim settled again under another policy version, with
//! the same claim figures, the member's facts on the claim's day, and year-to-date positions
//! the caller accumulated under that version. The arithmetic is `settle_figures`, the one
//! `claim` uses, so a version equal to the one in force gives back the recorded settlement.

pub use super::settlement::MemberToDate;
use super::settlement::{settle_figures, ClaimFigures, PolicyFigures};
use crate::event::{Settlement, SettlementBasis};
use crate::policy::{Facts, PolicyVersion};
use crate::types::{Rejection, RejectionCode};

/// `recorded` settled under `policy` for a member with `facts` (the claim's level and kind
/// among them) and positions `to_date`. Refused with `no_policy_rule` when the version has no
/// rule for the facts, as `claim` would be.
pub fn resettle(
    recorded: &Settlement,
    policy: &PolicyVersion,
    facts: &Facts,
    to_date: &MemberToDate,
) -> Result<Settlement, Rejection> {
    let no_rule = |what: &str| {
        Rejection::new(
            RejectionCode::NoPolicyRule,
            format!(
                "policy {} has no {what} rule for claim {} of member {}",
                policy.version, recorded.claim, recorded.member
            ),
        )
    };
    let deductible = policy
        .deductible_rule(facts)
        .ok_or_else(|| no_rule("deductible"))?;
    let ratio = policy.ratio_rule(facts).ok_or_else(|| no_rule("ratio"))?;
    let limit = policy
        .limit_rule(facts)
        .ok_or_else(|| no_rule("annual limit"))?;
    let claim = ClaimFigures {
        eligible: recorded.eligible,
        special_paid: recorded.special_paid,
        uncovered: recorded.uncovered,
        channel: recorded.channel,
        use_account: recorded.use_account,
    };
    let policy_figures = PolicyFigures {
        deductible: deductible.amount,
        deductible_cap: policy.outpatient.deductible_cap,
        ratio,
        ordinary_limit: limit.amount,
        annual_max: policy.outpatient.annual_max,
    };
    let figures = settle_figures(&claim, &policy_figures, to_date);
    let settlement = Settlement {
        policy: policy.version.clone(),
        year: policy.insurance_year(recorded.date),
        deductible_group: deductible.group.clone(),
        deductible_applied: figures.deductible_applied,
        ordinary_cost_before: to_date.ordinary_cost,
        ordinary_computed: figures.ordinary_computed,
        ordinary_paid: figures.ordinary_paid,
        ordinary_pooled: figures.ordinary_pooled,
        large_amount_paid: figures.large_amount_paid,
        pooled_paid: figures.pooled_paid,
        account_paid: figures.account_paid,
        cash_paid: figures.cash_paid,
        reimbursed_to_member: figures.reimbursed_to_member,
        basis: SettlementBasis {
            deductible: deductible.amount,
            deductible_used_before: to_date.deductible_used_in_group,
            deductible_cap: policy.outpatient.deductible_cap,
            bands: ratio.bands.clone(),
            ordinary_limit: limit.amount,
            ordinary_paid_before: to_date.ordinary_paid,
            annual_max: policy.outpatient.annual_max,
            pooled_paid_before: to_date.pooled_paid,
            balance_before: recorded.basis.balance_before,
            available_before: to_date.available,
        },
        ..recorded.clone()
    };
    assert!(
        settlement.adds_up(),
        "re-settlement arithmetic broke for claim {}: {settlement:?}",
        recorded.claim
    );
    Ok(settlement)
}
