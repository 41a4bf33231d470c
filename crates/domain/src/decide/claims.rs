//! Claims (门诊统筹结算): the checks a claim must pass, the counters it is settled against, and
//! the events that record it. The arithmetic itself is [`super::settlement::settle_figures`].

use super::guards::{check_id, check_tx_id, facts, live, non_negative, policy};
use super::settlement::{settle_figures, ClaimFigures, MemberToDate, PolicyFigures};
use super::{Decision, Outcome, SettledOutcome};
use crate::command::Command;
use crate::event::{Event, Settlement, SettlementBasis, Stream};
use crate::money::Money;
use crate::state::State;
use crate::time::Day;
use crate::types::{Channel, FundKind, InstitutionKind, Rejection, RejectionCode};

struct ClaimInput<'c> {
    id: &'c str,
    member: &'c str,
    date: Day,
    level: u8,
    channel: Channel,
    kind: InstitutionKind,
    eligible: Money,
    special_paid: Money,
    uncovered: Money,
    use_account: bool,
    institution: Option<&'c String>,
    visit: Option<&'c String>,
}

impl ClaimInput<'_> {
    fn figures(&self) -> ClaimFigures {
        ClaimFigures {
            eligible: self.eligible,
            special_paid: self.special_paid,
            uncovered: self.uncovered,
            channel: self.channel,
            use_account: self.use_account,
        }
    }
}

/// `claim`: settles one outpatient claim.
pub(super) fn claim(state: &State, command: &Command) -> Result<Decision, Rejection> {
    let Command::Claim {
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
        institution_kind,
        visit,
    } = command
    else {
        unreachable!("decide hands claim only Claim commands")
    };
    let claim = ClaimInput {
        id,
        member,
        date: *date,
        level: *level,
        channel: *channel,
        kind: institution_kind.unwrap_or(InstitutionKind::default_for(*channel)),
        eligible: *eligible,
        special_paid: *special_paid,
        uncovered: *uncovered,
        use_account: *use_account,
        institution: institution.as_ref(),
        visit: visit.as_ref(),
    };
    check_claim(state, &claim)?;
    let settlement = settle(state, &claim)?;
    Ok(settled(settlement))
}

/// What a claim must satisfy before the member's position is looked at.
fn check_claim(state: &State, claim: &ClaimInput<'_>) -> Result<(), Rejection> {
    check_tx_id("claim", claim.id)?;
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
    if !claim.kind.fits(claim.channel) {
        return Err(Rejection::new(
            RejectionCode::InvalidValue,
            format!(
                "claim {}: institution_kind {} does not fit channel {} (a pharmacy claim is \
                 settled at a pharmacy, an institution claim at a grassroots institution or a \
                 hospital)",
                claim.id,
                super::guards::code_name(&claim.kind),
                super::guards::code_name(&claim.channel)
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
    Ok(())
}

/// The settlement of a checked claim: the rules of the policy in force for the member, the
/// counters the claim is counted in, and the figures [`settle_figures`] computes from them.
fn settle(state: &State, claim: &ClaimInput<'_>) -> Result<Settlement, Rejection> {
    let account = live(state, claim.member, claim.date)?;
    // A claim settles in the region the member belonged to on its date, against that region's
    // counters: late claims from before a transfer still reach the old region.
    let region = account.region_on(claim.date).to_string();
    let policy = policy(state, &region, claim.date)?;
    let facts = facts(account, claim.date, Some((claim.level, claim.kind)));
    let no_rule = |what: &str| {
        Rejection::new(
            RejectionCode::NoPolicyRule,
            format!(
                "policy {} has no {what} rule for member {} (status {}, scheme {}, level {}, \
                 institution kind {})",
                policy.version,
                claim.member,
                super::guards::code_name(&facts.status),
                super::guards::code_name(&facts.scheme),
                claim.level,
                super::guards::code_name(&claim.kind)
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
    let policy_figures = PolicyFigures {
        deductible: deductible.amount,
        deductible_cap: policy.outpatient.deductible_cap,
        ratio,
        ordinary_limit: limit.amount,
        annual_max: policy.outpatient.annual_max,
    };
    let to_date = MemberToDate {
        deductible_used_in_group: counters.deductible_used_in(&deductible.group),
        deductible_used_total: counters.deductible_used_total(),
        ordinary_cost: counters.ordinary_cost,
        ordinary_paid: counters.ordinary_paid,
        pooled_paid: counters.pooled_paid,
        available: account.available_on(claim.date),
    };
    let figures = settle_figures(&claim.figures(), &policy_figures, &to_date);
    let settlement = Settlement {
        claim: claim.id.to_string(),
        member: claim.member.to_string(),
        region,
        date: claim.date,
        year,
        stint_since: account.stint_since_on(claim.date),
        level: claim.level,
        channel: claim.channel,
        institution: claim.institution.cloned(),
        institution_kind: claim.kind,
        use_account: claim.use_account,
        visit: claim.visit.cloned(),
        policy: policy.version.clone(),
        status: facts.status,
        eligible: claim.eligible,
        special_paid: claim.special_paid,
        uncovered: claim.uncovered,
        deductible_group: deductible.group.clone(),
        deductible_applied: figures.deductible_applied,
        ordinary_cost_before: counters.ordinary_cost,
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
            ordinary_paid_before: counters.ordinary_paid,
            annual_max: policy.outpatient.annual_max,
            pooled_paid_before: counters.pooled_paid,
            balance_before: account.balance,
            available_before: to_date.available,
        },
    };
    assert!(
        settlement.adds_up(),
        "settlement arithmetic broke for claim {}: {settlement:?}",
        claim.id
    );
    Ok(settlement)
}

/// The events and the result of a settlement: the claim on the member's stream, and each fund's
/// payment on the fund's.
fn settled(settlement: Settlement) -> Decision {
    let outcome = SettledOutcome {
        claim: settlement.claim.clone(),
        year: settlement.year,
        fund_paid: settlement.fund_paid(),
        special_paid: settlement.special_paid,
        ordinary_paid: settlement.ordinary_paid,
        pooled_paid: settlement.pooled_paid,
        large_amount_paid: settlement.large_amount_paid,
        deductible_applied: settlement.deductible_applied,
        account_paid: settlement.account_paid,
        cash_paid: settlement.cash_paid,
        reimbursed_to_member: settlement.reimbursed_to_member,
        balance: settlement.basis.balance_before - settlement.account_paid,
        policy: settlement.policy.clone(),
    };
    let mut events = Vec::with_capacity(3);
    for (fund, amount) in [
        (FundKind::Pooled, settlement.pooled_paid),
        (FundKind::LargeAmount, settlement.large_amount_paid),
    ] {
        if amount > Money::ZERO {
            events.push((
                Stream::Fund(fund, settlement.region.clone()),
                Event::FundClaimPaid {
                    fund,
                    region: settlement.region.clone(),
                    claim: settlement.claim.clone(),
                    member: settlement.member.clone(),
                    date: settlement.date,
                    amount,
                },
            ));
        }
    }
    events.insert(
        0,
        (
            Stream::Member(settlement.member.clone()),
            Event::ClaimSettled {
                settlement: Box::new(settlement),
            },
        ),
    );
    Decision {
        events,
        outcome: Outcome::Settled(outcome),
    }
}
