//! Bounded running totals: `decide` hands back no events that would carry a running total the
//! state keeps past [`TOTAL_FEN_MAX`]; such a command is refused with `total_overflow`.
//!
//! The totals checked are those `evolve` only ever adds to, per event: a member's `account_in`
//! and `account_out`, a region's account inflow and outflow, a fund's inflow and outflow, a
//! member's yearly counters in a region (summed over the stints there, as `year_in` does) and
//! what a holder paid for a relative in a year. Every other total is bounded by these: a balance
//! (and the balance as of any day) lies between `-account_out` and `account_in`, a fund's
//! balance is the difference of two bounded flows, a relative's spending is part of
//! `account_out`. Decreases (refunds, reversals) only lower totals and are not checked. The
//! mapping from events to totals follows `state::evolve`; `tests/totals.rs` checks, after
//! folding accepted commands at the bounds, that every total stays within the bound.

use crate::state::FastMap;
use std::fmt;

use crate::event::{Event, Settlement};
use crate::money::{Money, TOTAL_FEN_MAX};
use crate::state::{State, YearCounters};
use crate::types::{FundKind, Rejection, RejectionCode};

/// `a + b` for a sum `decide` itself keeps (an allocation's credited total, a rollover's closing
/// total), refused like a kept total when it would pass [`TOTAL_FEN_MAX`].
pub(super) fn sum(what: impl fmt::Display, a: Money, b: Money) -> Result<Money, Rejection> {
    match a.checked_add(b) {
        Some(total) if total.fen() <= TOTAL_FEN_MAX => Ok(total),
        _ => Err(overflow(&what, a, b)),
    }
}

fn overflow(what: &dyn fmt::Display, now: Money, more: Money) -> Rejection {
    Rejection::new(
        RejectionCode::TotalOverflow,
        format!(
            "{what} is {now}; {more} more would pass the bound on running totals of {}",
            Money::from_fen(TOTAL_FEN_MAX)
        ),
    )
}

/// Whether folding `events` into `state` keeps every running total within [`TOTAL_FEN_MAX`].
pub(super) fn check(
    state: &State,
    events: &[(crate::event::Stream, Event)],
) -> Result<(), Rejection> {
    let mut pending = Pending {
        state,
        added: Some(Added::default()),
    };
    for (_, event) in events {
        pending.event(event)?;
    }
    Ok(())
}

/// Whether folding one `event` into `state` keeps every running total within
/// [`TOTAL_FEN_MAX`] (for a fold of a log `decide` did not produce here: `state::admissible`).
pub(crate) fn check_event(state: &State, event: &Event) -> Result<(), Rejection> {
    Pending { state, added: None }.event(event)
}

/// One running total of the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Total<'a> {
    AccountIn(&'a str),
    AccountOut(&'a str),
    RegionAccountsIn(&'a str),
    RegionAccountsOut(&'a str),
    FundIn(FundKind, &'a str),
    FundOut(FundKind, &'a str),
    RelativeSpent {
        holder: &'a str,
        relative: &'a str,
        year: i32,
    },
}

/// One of a member's yearly counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Counter<'a> {
    DeductibleUsed(&'a str),
    DeductibleUsedTotal,
    OrdinaryCost,
    OrdinaryPaid,
    SpecialPaid,
    PooledPaid,
    LargeAmountPaid,
}

impl Counter<'_> {
    fn of(self, counters: &YearCounters) -> Money {
        match self {
            Counter::DeductibleUsed(group) => counters.deductible_used_in(group),
            Counter::DeductibleUsedTotal => counters.deductible_used_total(),
            Counter::OrdinaryCost => counters.ordinary_cost,
            Counter::OrdinaryPaid => counters.ordinary_paid,
            Counter::SpecialPaid => counters.special_paid,
            Counter::PooledPaid => counters.pooled_paid,
            Counter::LargeAmountPaid => counters.large_amount_paid,
        }
    }
}

impl Total<'_> {
    /// The total's value in `state` (zero for what does not exist yet).
    fn now(self, state: &State) -> Money {
        let member = |id: &str| state.members.get(id);
        let accounts = |region: &str| state.accounts.get(region);
        match self {
            Total::AccountIn(id) => member(id).map_or(Money::ZERO, |m| m.account_in),
            Total::AccountOut(id) => member(id).map_or(Money::ZERO, |m| m.account_out),
            Total::RegionAccountsIn(region) => accounts(region).map_or(Money::ZERO, |a| a.inflow),
            Total::RegionAccountsOut(region) => accounts(region).map_or(Money::ZERO, |a| a.outflow),
            Total::FundIn(kind, region) => state.fund(kind, region).inflow,
            Total::FundOut(kind, region) => state.fund(kind, region).outflow,
            Total::RelativeSpent {
                holder,
                relative,
                year,
            } => member(holder)
                .and_then(|m| m.family.get(relative))
                .and_then(|b| b.spent.get(&year).copied())
                .unwrap_or(Money::ZERO),
        }
    }
}

impl fmt::Display for Total<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fund = |kind: &FundKind| match kind {
            FundKind::Pooled => "pooled fund",
            FundKind::LargeAmount => "large-amount fund",
        };
        match self {
            Total::AccountIn(id) => write!(f, "everything credited to member {id}'s account"),
            Total::AccountOut(id) => write!(f, "everything paid from member {id}'s account"),
            Total::RegionAccountsIn(r) => write!(f, "the inflow of region {r}'s personal accounts"),
            Total::RegionAccountsOut(r) => {
                write!(f, "the outflow of region {r}'s personal accounts")
            }
            Total::FundIn(kind, r) => write!(f, "the inflow of region {r}'s {}", fund(kind)),
            Total::FundOut(kind, r) => write!(f, "the outflow of region {r}'s {}", fund(kind)),
            Total::RelativeSpent {
                holder,
                relative,
                year,
            } => write!(f, "what {holder} paid for {relative} in year {year}"),
        }
    }
}

/// One of a member's yearly counters in a region, summed over the member's stints there.
struct YearCounter<'a> {
    member: &'a str,
    region: &'a str,
    year: i32,
    counter: Counter<'a>,
}

impl fmt::Display for YearCounter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let YearCounter {
            member,
            region,
            year,
            counter,
        } = self;
        let what = match counter {
            Counter::DeductibleUsed(group) => format!("deductible used in group {group}"),
            Counter::DeductibleUsedTotal => "deductible used".to_string(),
            Counter::OrdinaryCost => "ordinary pooling cost".to_string(),
            Counter::OrdinaryPaid => "ordinary pooling paid".to_string(),
            Counter::SpecialPaid => "special drugs paid".to_string(),
            Counter::PooledPaid => "pooled fund paid".to_string(),
            Counter::LargeAmountPaid => "large-amount fund paid".to_string(),
        };
        write!(
            f,
            "member {member}'s {what} in year {year} in region {region}"
        )
    }
}

/// What one decision's events add to each total so far. Most decisions (and every event a
/// replay checks) touch a handful of totals, found by a walk along them; a decision with many
/// (a region's monthly allocation) gets them indexed by a hash map once it passes
/// [`Pending::WALK_MAX`].
#[derive(Default)]
struct Added<'a> {
    totals: Vec<(Total<'a>, Money)>,
    index: Option<FastMap<Total<'a>, usize>>,
}

impl<'a> Added<'a> {
    /// What was added to `total` so far (zero the first time).
    fn entry(&mut self, total: Total<'a>) -> &mut Money {
        let found = match &self.index {
            Some(index) => index.get(&total).copied(),
            None => self.totals.iter().position(|(t, _)| *t == total),
        };
        let at = found.unwrap_or_else(|| {
            self.totals.push((total, Money::ZERO));
            let at = self.totals.len() - 1;
            match &mut self.index {
                Some(index) => {
                    index.insert(total, at);
                }
                None if self.totals.len() > Pending::WALK_MAX => {
                    self.index = Some(
                        self.totals
                            .iter()
                            .enumerate()
                            .map(|(i, (t, _))| (*t, i))
                            .collect(),
                    );
                }
                None => {}
            }
            at
        });
        &mut self.totals[at].1
    }
}

struct Pending<'a> {
    state: &'a State,
    /// What the events before this one added, for a decision's events; `None` for one event
    /// alone (a replay's check), which adds to no total twice (each arm of [`Pending::event`]
    /// names distinct totals), so nothing before it needs keeping.
    added: Option<Added<'a>>,
}

impl<'a> Pending<'a> {
    /// Totals looked up by a walk along them, before they are indexed.
    const WALK_MAX: usize = 16;

    fn add(&mut self, total: Total<'a>, amount: Money) -> Result<(), Rejection> {
        if amount <= Money::ZERO {
            return Ok(());
        }
        let now = total.now(self.state);
        let Some(added) = &mut self.added else {
            return match now.checked_add(amount) {
                Some(after) if after.fen() <= TOTAL_FEN_MAX => Ok(()),
                _ => Err(overflow(&total, now, amount)),
            };
        };
        let added = added.entry(total);
        let more = added.checked_add(amount);
        match more.and_then(|more| now.checked_add(more)) {
            Some(after) if after.fen() <= TOTAL_FEN_MAX => {
                *added = more.expect("checked just above");
                Ok(())
            }
            _ => Err(overflow(&total, now, *added + amount)),
        }
    }

    /// The region whose account totals a movement of `member`'s account counts in: the
    /// member's current region, as `evolve` does.
    fn region_of(&self, member: &'a str) -> &'a str {
        self.state
            .members
            .get(member)
            .map_or("", |account| account.region.as_str())
    }

    fn credit(&mut self, member: &'a str, region: &'a str, amount: Money) -> Result<(), Rejection> {
        self.add(Total::AccountIn(member), amount)?;
        self.add(Total::RegionAccountsIn(region), amount)
    }

    fn debit(&mut self, member: &'a str, amount: Money) -> Result<(), Rejection> {
        self.add(Total::AccountOut(member), amount)?;
        self.add(Total::RegionAccountsOut(self.region_of(member)), amount)
    }

    fn event(&mut self, event: &'a Event) -> Result<(), Rejection> {
        match event {
            Event::Enrolled {
                member,
                region,
                opening_balance,
                ..
            } => self.credit(member, region, *opening_balance),
            Event::AccountCredited { member, amount, .. } => {
                self.credit(member, self.region_of(member), *amount)
            }
            Event::PooledContributed { region, amount, .. } => {
                self.add(Total::FundIn(FundKind::Pooled, region), *amount)
            }
            Event::PooledCreditPaid { region, amount, .. } => {
                self.add(Total::FundOut(FundKind::Pooled, region), *amount)
            }
            Event::ClaimSettled { settlement } => {
                self.debit(&settlement.member, settlement.account_paid)?;
                self.counters(settlement)
            }
            Event::FundClaimPaid {
                fund,
                region,
                amount,
                ..
            } => self.add(Total::FundOut(*fund, region), *amount),
            Event::AccountPaid {
                holder,
                beneficiary,
                year,
                amount,
                ..
            } => {
                self.debit(holder, *amount)?;
                let spent = Total::RelativeSpent {
                    holder,
                    relative: beneficiary,
                    year: *year,
                };
                self.add(spent, *amount)
            }
            Event::PremiumReceived { region, amount, .. } => {
                self.add(Total::FundIn(FundKind::LargeAmount, region), *amount)
            }
            Event::ClaimReversed { settlement, .. } => {
                let member = settlement.member.as_str();
                self.credit(member, self.region_of(member), settlement.account_paid)
            }
            Event::AccountPaymentReversed { holder, amount, .. } => {
                self.credit(holder, self.region_of(holder), *amount)
            }
            Event::Inherited {
                member, balance, ..
            } => self.debit(member, *balance),
            Event::Transferred {
                from_region,
                to_region,
                balance,
                ..
            } => {
                self.add(Total::RegionAccountsOut(from_region), *balance)?;
                self.add(Total::RegionAccountsIn(to_region), *balance)
            }
            Event::TransferSent {
                member, balance, ..
            } => self.debit(member, *balance),
            // The arriving account's own totals are bounded where it was kept (and checked
            // again by `admissible` for a log not decided here).
            Event::TransferReceived {
                to_region, balance, ..
            } => self.add(Total::RegionAccountsIn(to_region), *balance),
            Event::PolicyLoaded { .. }
            | Event::FundEventOwed { .. }
            | Event::OwedLanded { .. }
            | Event::Retired { .. }
            | Event::FamilyBound { .. }
            | Event::FamilyUnbound { .. }
            | Event::FundClaimRefunded { .. }
            | Event::YearClosed { .. }
            | Event::Deceased { .. }
            | Event::PremiumRefunded { .. }
            | Event::FlagDecided { .. }
            | Event::MonitorRulesLoaded { .. } => Ok(()),
        }
    }

    /// The yearly counters a settlement adds to, as `YearCounters::count` does. One settlement
    /// per decision: nothing to accumulate.
    fn counters(&self, s: &Settlement) -> Result<(), Rejection> {
        let before = self
            .state
            .members
            .get(&s.member)
            .map(|m| m.year_in(&s.region, s.year))
            .unwrap_or_default();
        if before.claims == u32::MAX {
            return Err(Rejection::new(
                RejectionCode::TotalOverflow,
                format!(
                    "member {} has {} claims in year {} in region {}, the most a year counts",
                    s.member, before.claims, s.year, s.region
                ),
            ));
        }
        for (counter, amount) in [
            (
                Counter::DeductibleUsed(&s.deductible_group),
                s.deductible_applied,
            ),
            (Counter::DeductibleUsedTotal, s.deductible_applied),
            (Counter::OrdinaryCost, s.eligible - s.special_paid),
            (Counter::OrdinaryPaid, s.ordinary_paid),
            (Counter::SpecialPaid, s.special_paid),
            (Counter::PooledPaid, s.pooled_paid),
            (Counter::LargeAmountPaid, s.large_amount_paid),
        ] {
            let now = counter.of(&before);
            if now
                .checked_add(amount)
                .is_none_or(|after| after.fen() > TOTAL_FEN_MAX)
            {
                let total = YearCounter {
                    member: &s.member,
                    region: &s.region,
                    year: s.year,
                    counter,
                };
                return Err(overflow(&total, now, amount));
            }
        }
        Ok(())
    }
}
