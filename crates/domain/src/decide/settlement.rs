//! The settlement arithmetic of one outpatient claim, as one pure function: the claim's figures,
//! the policy's figures and the member's year-to-date positions in, what each party pays out.
//!
//! Order: the special-drug part is paid first; what remains fills the deductible, then is paid
//! by ratio bands over the year's cumulative cost, cut to the annual ordinary limit; the pooled
//! fund pays up to its annual maximum and the large-amount fund the rest; the member's own
//! share comes from the account (up to what is available) or in cash.

use crate::money::Money;
use crate::policy::RatioRule;
use crate::types::Channel;

/// What the claim itself says.
#[derive(Clone, Copy, Debug)]
pub(super) struct ClaimFigures {
    pub eligible: Money,
    pub special_paid: Money,
    pub uncovered: Money,
    pub channel: Channel,
    pub use_account: bool,
}

/// The policy figures that apply to the claim's member on its date.
#[derive(Clone, Copy, Debug)]
pub(super) struct PolicyFigures<'p> {
    /// The deductible of the claim's deductible group.
    pub deductible: Money,
    /// A cap on the deductible filled across all groups in a year, if any.
    pub deductible_cap: Option<Money>,
    pub ratio: &'p RatioRule,
    /// The annual limit on ordinary pooling payments (pooled and large-amount), if any.
    pub ordinary_limit: Option<Money>,
    /// The annual maximum the pooled fund pays (special and ordinary), if any.
    pub annual_max: Option<Money>,
}

/// The member's positions before the claim: the year's counters where it is counted, and the
/// account.
#[derive(Clone, Copy, Debug)]
pub struct MemberToDate {
    pub deductible_used_in_group: Money,
    pub deductible_used_total: Money,
    pub ordinary_cost: Money,
    pub ordinary_paid: Money,
    pub pooled_paid: Money,
    /// What a payment dated the claim's day may take from the account.
    pub available: Money,
}

/// What the claim settles to. Adds up: `ordinary_paid = ordinary_pooled + large_amount_paid`,
/// `pooled_paid = special_paid + ordinary_pooled`, and `account_paid + cash_paid` is the
/// member's own share `eligible + uncovered - special_paid - ordinary_paid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SettlementFigures {
    pub deductible_applied: Money,
    pub ordinary_computed: Money,
    pub ordinary_paid: Money,
    pub ordinary_pooled: Money,
    pub large_amount_paid: Money,
    pub pooled_paid: Money,
    pub account_paid: Money,
    pub cash_paid: Money,
    pub reimbursed_to_member: Money,
}

/// Settles `claim` under `policy` against the member's positions `to_date`. The claim's amounts
/// are non-negative with `special_paid <= eligible` (the caller checks).
pub(super) fn settle_figures(
    claim: &ClaimFigures,
    policy: &PolicyFigures<'_>,
    to_date: &MemberToDate,
) -> SettlementFigures {
    let remainder = claim.eligible - claim.special_paid;
    let mut deductible_left = policy
        .deductible
        .saturating_sub(to_date.deductible_used_in_group);
    if let Some(cap) = policy.deductible_cap {
        deductible_left = deductible_left.min(cap.saturating_sub(to_date.deductible_used_total));
    }
    let deductible_applied = remainder.min(deductible_left);
    let ordinary_computed = policy.ratio.pay(
        to_date.ordinary_cost + deductible_applied,
        remainder - deductible_applied,
    );
    let ordinary_paid = match policy.ordinary_limit {
        Some(limit) => ordinary_computed.min(limit.saturating_sub(to_date.ordinary_paid)),
        None => ordinary_computed,
    };
    let pooled_room = match policy.annual_max {
        Some(max) => max.saturating_sub(to_date.pooled_paid + claim.special_paid),
        None => ordinary_paid,
    };
    let ordinary_pooled = ordinary_paid.min(pooled_room);
    let own_share = claim.eligible + claim.uncovered - claim.special_paid - ordinary_paid;
    let (account_paid, reimbursed_to_member) = match claim.channel {
        Channel::Manual => (Money::ZERO, claim.special_paid + ordinary_paid),
        _ if claim.use_account => (own_share.min(to_date.available), Money::ZERO),
        _ => (Money::ZERO, Money::ZERO),
    };
    SettlementFigures {
        deductible_applied,
        ordinary_computed,
        ordinary_paid,
        ordinary_pooled,
        large_amount_paid: ordinary_paid - ordinary_pooled,
        pooled_paid: claim.special_paid + ordinary_pooled,
        account_paid,
        cash_paid: own_share - account_paid,
        reimbursed_to_member,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Band;

    fn m(text: &str) -> Money {
        text.parse().expect("test amount")
    }

    fn flat(ratio: &str) -> RatioRule {
        RatioRule {
            when: Default::default(),
            bands: vec![Band {
                up_to: None,
                ratio: ratio.parse().expect("test rate"),
            }],
        }
    }

    fn claim(eligible: &str) -> ClaimFigures {
        ClaimFigures {
            eligible: m(eligible),
            special_paid: Money::ZERO,
            uncovered: Money::ZERO,
            channel: Channel::Institution,
            use_account: true,
        }
    }

    fn policy(ratio: &RatioRule) -> PolicyFigures<'_> {
        PolicyFigures {
            deductible: m("200"),
            deductible_cap: None,
            ratio,
            ordinary_limit: None,
            annual_max: None,
        }
    }

    fn fresh(available: &str) -> MemberToDate {
        MemberToDate {
            deductible_used_in_group: Money::ZERO,
            deductible_used_total: Money::ZERO,
            ordinary_cost: Money::ZERO,
            ordinary_paid: Money::ZERO,
            pooled_paid: Money::ZERO,
            available: m(available),
        }
    }

    fn adds_up(claim: &ClaimFigures, f: &SettlementFigures) -> bool {
        f.ordinary_paid == f.ordinary_pooled + f.large_amount_paid
            && f.pooled_paid == claim.special_paid + f.ordinary_pooled
            && f.account_paid + f.cash_paid
                == claim.eligible + claim.uncovered - claim.special_paid - f.ordinary_paid
    }

    #[test]
    fn deductible_is_filled_before_the_ratio_pays() {
        let ratio = flat("0.5");
        let c = claim("1000");
        let f = settle_figures(&c, &policy(&ratio), &fresh("10000"));
        assert_eq!(f.deductible_applied, m("200"));
        assert_eq!(f.ordinary_paid, m("400"));
        assert_eq!(f.pooled_paid, m("400"));
        assert_eq!(f.account_paid, m("600"));
        assert_eq!(f.cash_paid, Money::ZERO);
        assert!(adds_up(&c, &f));
    }

    #[test]
    fn deductible_already_used_this_year_is_not_charged_again() {
        let ratio = flat("0.5");
        let c = claim("1000");
        let mut to_date = fresh("0");
        to_date.deductible_used_in_group = m("150");
        to_date.deductible_used_total = m("150");
        let f = settle_figures(&c, &policy(&ratio), &to_date);
        assert_eq!(f.deductible_applied, m("50"));
        assert_eq!(f.ordinary_paid, m("475"));
        assert_eq!(f.cash_paid, m("525"));
        assert!(adds_up(&c, &f));
    }

    #[test]
    fn deductible_cap_across_groups_limits_what_is_left() {
        let ratio = flat("0.5");
        let mut p = policy(&ratio);
        p.deductible_cap = Some(m("250"));
        let mut to_date = fresh("0");
        to_date.deductible_used_total = m("200");
        let f = settle_figures(&claim("1000"), &p, &to_date);
        assert_eq!(f.deductible_applied, m("50"));
    }

    #[test]
    fn annual_limit_cuts_the_ordinary_payment() {
        let ratio = flat("0.9");
        let mut p = policy(&ratio);
        p.ordinary_limit = Some(m("1000"));
        let mut to_date = fresh("0");
        to_date.deductible_used_in_group = m("200");
        to_date.ordinary_paid = m("700");
        let c = claim("1000");
        let f = settle_figures(&c, &p, &to_date);
        assert_eq!(f.ordinary_computed, m("900"));
        assert_eq!(f.ordinary_paid, m("300"));
        assert!(adds_up(&c, &f));
    }

    #[test]
    fn past_the_pooled_maximum_the_large_amount_fund_pays() {
        let ratio = flat("0.8");
        let mut p = policy(&ratio);
        p.deductible = Money::ZERO;
        p.annual_max = Some(m("5000"));
        let mut to_date = fresh("0");
        to_date.pooled_paid = m("4900");
        let mut c = claim("1000");
        c.special_paid = m("50");
        let f = settle_figures(&c, &p, &to_date);
        assert_eq!(f.ordinary_paid, m("760"));
        assert_eq!(f.ordinary_pooled, m("50"));
        assert_eq!(f.large_amount_paid, m("710"));
        assert_eq!(f.pooled_paid, m("100"));
        assert!(adds_up(&c, &f));
    }

    #[test]
    fn manual_claims_reimburse_the_member_and_take_nothing_from_the_account() {
        let ratio = flat("0.5");
        let mut c = claim("1000");
        c.channel = Channel::Manual;
        c.special_paid = m("100");
        let f = settle_figures(&c, &policy(&ratio), &fresh("10000"));
        assert_eq!(f.account_paid, Money::ZERO);
        assert_eq!(f.reimbursed_to_member, m("100") + f.ordinary_paid);
        assert!(adds_up(&c, &f));
    }

    #[test]
    fn the_account_pays_the_own_share_up_to_what_is_available() {
        let ratio = flat("0.5");
        let mut c = claim("1000");
        c.uncovered = m("30");
        let f = settle_figures(&c, &policy(&ratio), &fresh("100"));
        assert_eq!(f.account_paid, m("100"));
        assert_eq!(f.cash_paid, m("530"));
        c.use_account = false;
        let f = settle_figures(&c, &policy(&ratio), &fresh("100"));
        assert_eq!(f.account_paid, Money::ZERO);
        assert_eq!(f.cash_paid, m("630"));
    }
}
