//! The state the rules decide on, and `evolve`, which folds one event into it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::event::{Event, Settlement};
use crate::money::Money;
use crate::policy::PolicyVersion;
use crate::time::{Day, Month};
use crate::types::{FundKind, Purpose, Relation, Scheme, Status};

/// One personal account (个人账户) and what the rules need to know of its member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
pub struct Member {
    pub id: String,
    /// The pooling region the account belongs to now, and since when.
    pub region: String,
    pub region_since: Day,
    pub born: Day,
    pub scheme: Scheme,
    pub enrolled_on: Day,
    /// The day the member became a retiree (the enrolment day for one enrolled as retired).
    pub retired_on: Option<Day>,
    pub lump_sum_base: Option<Money>,
    pub lump_sum_until: Option<Month>,
    pub balance: Money,
    /// Everything ever credited to the account, and everything ever paid out of it.
    pub account_in: Money,
    pub account_out: Money,
    /// Net change of the balance per day, by the events' own dates: the balance as of any day
    /// is a sum of it, whatever order the events were recorded in.
    pub balance_by_day: BTreeMap<Day, Money>,
    /// Months already credited: each month is credited at most once.
    pub credited_months: BTreeSet<Month>,
    /// Counters per insurance year in the current region.
    pub years: BTreeMap<i32, YearCounters>,
    /// Regions the member left, with their counters: they do not move with a transfer.
    pub past_regions: Vec<PastRegion>,
    /// Insurance years closed by a rollover, with the closing balance carried forward.
    pub closed_years: BTreeMap<i32, Money>,
    /// Relatives bound to this account (current and ended bindings).
    pub family: BTreeMap<String, Binding>,
    pub deceased_on: Option<Day>,
    /// The day the balance was paid to the heirs and the account closed.
    pub closed_on: Option<Day>,
}

/// A region the member belonged to before a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
pub struct PastRegion {
    pub region: String,
    pub since: Day,
    pub until: Day,
    pub years: BTreeMap<i32, YearCounters>,
}

impl Member {
    pub fn status_on(&self, day: Day) -> Status {
        match self.retired_on {
            Some(retired) if retired <= day => Status::Retired,
            _ => Status::Active,
        }
    }

    /// Counters of `year` in the current region.
    pub fn year(&self, year: i32) -> YearCounters {
        self.years.get(&year).cloned().unwrap_or_default()
    }

    /// The region the member belonged to on `day`.
    pub fn region_on(&self, day: Day) -> &str {
        if day >= self.region_since {
            return &self.region;
        }
        self.past_regions
            .iter()
            .find(|p| p.since <= day && day < p.until)
            .map_or(&self.region, |p| &p.region)
    }

    /// Counters of `year` in the region the member belonged to on `day`.
    pub fn year_on(&self, day: Day, year: i32) -> YearCounters {
        self.counters_on(day)
            .get(&year)
            .cloned()
            .unwrap_or_default()
    }

    fn counters_on(&self, day: Day) -> &BTreeMap<i32, YearCounters> {
        if day >= self.region_since {
            return &self.years;
        }
        self.past_regions
            .iter()
            .find(|p| p.since <= day && day < p.until)
            .map_or(&self.years, |p| &p.years)
    }

    /// The first day of the stint in a region that covers `day`: which counters a claim dated
    /// `day` is counted in, recorded with its settlement.
    pub fn stint_since_on(&self, day: Day) -> Day {
        if day >= self.region_since {
            return self.region_since;
        }
        self.past_regions
            .iter()
            .find(|p| p.since <= day && day < p.until)
            .map_or(self.region_since, |p| p.since)
    }

    /// The counters of the stint in `region` that began on `since`, wherever later transfers
    /// (even ones dated earlier) have put it: a reversal undoes a claim where it was counted.
    fn stint_counters_mut(&mut self, region: &str, since: Day) -> &mut BTreeMap<i32, YearCounters> {
        if self.region == region && self.region_since == since {
            return &mut self.years;
        }
        match self
            .past_regions
            .iter()
            .rposition(|p| p.region == region && p.since == since)
        {
            Some(at) => &mut self.past_regions[at].years,
            None => &mut self.years,
        }
    }

    /// Counters of `year` in `region`, summed over the member's stints there.
    pub fn year_in(&self, region: &str, year: i32) -> YearCounters {
        let mut total = YearCounters::default();
        let stints = self
            .past_regions
            .iter()
            .filter(|p| p.region == region)
            .map(|p| &p.years)
            .chain((self.region == region).then_some(&self.years));
        for years in stints {
            if let Some(counters) = years.get(&year) {
                total.add(counters);
            }
        }
        total
    }

    /// The balance at the end of `day`, by the events' own dates.
    pub fn balance_on(&self, day: Day) -> Money {
        self.balance_by_day.range(..=day).map(|(_, m)| *m).sum()
    }

    /// What a payment dated `day` may take from the account: the lowest balance on `day` or any
    /// later day. A late-dated payment thus never makes the balance as of any day negative.
    pub fn available_on(&self, day: Day) -> Money {
        let mut running = self.balance_on(day);
        let mut lowest = running;
        let later = (std::ops::Bound::Excluded(day), std::ops::Bound::Unbounded);
        for (_, delta) in self.balance_by_day.range(later) {
            running += *delta;
            lowest = lowest.min(running);
        }
        lowest.min(self.balance)
    }

    /// The latest own date of any movement of the balance.
    pub fn last_movement_on(&self) -> Option<Day> {
        self.balance_by_day.keys().next_back().copied()
    }

    /// Whether money may move on `day`: not after closure, not after death.
    pub fn frozen_on(&self, day: Day) -> Option<String> {
        if let Some(closed) = self.closed_on {
            return Some(format!(
                "account of {} was closed on {closed} after inheritance",
                self.id
            ));
        }
        match self.deceased_on {
            Some(died) if day > died => Some(format!(
                "member {} died on {died}; the account is frozen after that day",
                self.id
            )),
            _ => None,
        }
    }

    /// Relatives bound on `day`.
    pub fn relatives_bound_on(&self, day: Day) -> usize {
        self.family.values().filter(|b| b.covers(day)).count()
    }

    /// Whether any relative is bound now (the member is a holder).
    pub fn is_holder(&self) -> bool {
        self.family.values().any(|b| b.until.is_none())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Encode, Decode)]
pub struct YearCounters {
    /// Deductible filled so far, per deductible group.
    pub deductible_used: BTreeMap<String, Money>,
    /// The year's cumulative cost entering ordinary pooling (`eligible - special`).
    pub ordinary_cost: Money,
    /// Ordinary pooling payments (pooled and large-amount parts), which count toward the limit.
    pub ordinary_paid: Money,
    pub special_paid: Money,
    /// Everything the pooled fund paid (special and ordinary), which counts toward the maximum.
    pub pooled_paid: Money,
    pub large_amount_paid: Money,
    pub claims: u32,
}

impl YearCounters {
    /// Deductible filled so far in `group`.
    pub fn deductible_used_in(&self, group: &str) -> Money {
        self.deductible_used
            .get(group)
            .copied()
            .unwrap_or(Money::ZERO)
    }

    pub fn deductible_used_total(&self) -> Money {
        self.deductible_used.values().copied().sum()
    }

    fn add(&mut self, other: &YearCounters) {
        for (group, used) in &other.deductible_used {
            *self.deductible_used.entry(group.clone()).or_default() += *used;
        }
        self.ordinary_cost += other.ordinary_cost;
        self.ordinary_paid += other.ordinary_paid;
        self.special_paid += other.special_paid;
        self.pooled_paid += other.pooled_paid;
        self.large_amount_paid += other.large_amount_paid;
        self.claims += other.claims;
    }

    /// Counts a settlement into the year, or takes it back out when it is reversed.
    fn count(&mut self, settlement: &Settlement, direction: Direction) {
        let signed = |amount: Money| match direction {
            Direction::Settle => amount,
            Direction::Reverse => -amount,
        };
        *self
            .deductible_used
            .entry(settlement.deductible_group.clone())
            .or_default() += signed(settlement.deductible_applied);
        self.ordinary_cost += signed(settlement.eligible - settlement.special_paid);
        self.ordinary_paid += signed(settlement.ordinary_paid);
        self.special_paid += signed(settlement.special_paid);
        self.pooled_paid += signed(settlement.pooled_paid);
        self.large_amount_paid += signed(settlement.large_amount_paid);
        match direction {
            Direction::Settle => self.claims += 1,
            Direction::Reverse => self.claims -= 1,
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Settle,
    Reverse,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
pub struct Binding {
    pub relation: Relation,
    pub since: Day,
    /// The day the relative was unbound; payments dated before it stay allowed.
    pub until: Option<Day>,
    /// The holder's yearly limit on payments for this relative, if set.
    pub yearly_limit: Option<Money>,
    /// Paid for this relative, per insurance year.
    pub spent: BTreeMap<i32, Money>,
}

impl Binding {
    /// Whether the relative was bound on `day`: from `since`, up to but not including `until`.
    pub fn covers(&self, day: Day) -> bool {
        self.since <= day && self.until.is_none_or(|until| day < until)
    }
}

/// A pooled or large-amount fund of one region. Its balance may be negative: the ledger
/// records the fund's flows, not its financing (subsidies and premiums arrive outside it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Encode, Decode)]
pub struct Fund {
    pub inflow: Money,
    pub outflow: Money,
}

impl Fund {
    pub fn balance(&self) -> Money {
        self.inflow - self.outflow
    }
}

/// A settled claim or an account payment, by its id, so it is never settled twice and can be
/// reversed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
pub struct Tx {
    pub member: String,
    pub date: Day,
    pub kind: TxKind,
    pub reversed_on: Option<Day>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
pub enum TxKind {
    Claim(Box<Settlement>),
    Payment {
        beneficiary: String,
        /// The insurance year the payment counts in (for a relative's yearly limit).
        year: i32,
        purpose: Purpose,
        amount: Money,
        region: String,
    },
}

/// The names under which a projection store keeps each piece of state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKey {
    Member(String),
    Fund(FundKind, String),
    Tx(String),
    Policies(String),
    RegionMember(String, String),
    /// Which holder a person is bound to as a relative (bindings are one-way).
    Relative(String),
    /// The personal accounts of a region, taken together.
    Accounts(String),
}

/// The part of the ledger's state that the commands at hand need. A store loads entities into it
/// before deciding, and writes back those `evolve` marks dirty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Hash maps, not ordered maps: a ledger's cache holds hundreds of thousands of members and
    /// looks one up several times per event; nothing depends on their order.
    pub members: HashMap<String, Member>,
    pub funds: BTreeMap<(FundKind, String), Fund>,
    pub txs: HashMap<String, Tx>,
    /// Policy versions per region, ordered by effective day.
    pub policies: BTreeMap<String, Vec<PolicyVersion>>,
    /// Members per region (for the monthly allocation run).
    pub region_members: BTreeMap<String, BTreeSet<String>>,
    /// The holder each person is currently bound to as a relative.
    pub relatives: BTreeMap<String, String>,
    /// Per region, what entered and left its personal accounts (a transfer leaves one region's
    /// accounts and enters another's).
    pub accounts: BTreeMap<String, Fund>,
    pub dirty: HashSet<EntityKey>,
    /// Set by a fold that stores the whole state at its end (a rebuild): `evolve` then keeps no
    /// record of what changed.
    pub untracked: bool,
}

impl State {
    /// A state for a fold that stores the whole result at its end, or none of it: `evolve`
    /// keeps no record of what changed.
    pub fn untracked() -> State {
        State {
            untracked: true,
            ..State::default()
        }
    }

    /// The version in force in `region` on `day`: the latest with an effective day on or before it.
    pub fn policy_in_force(&self, region: &str, day: Day) -> Option<&PolicyVersion> {
        self.policies
            .get(region)?
            .iter()
            .rev()
            .find(|p| p.effective <= day)
    }

    pub fn fund(&self, kind: FundKind, region: &str) -> Fund {
        self.funds
            .get(&(kind, region.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Notes that the entity `key` names changed (unless the state is `untracked`).
    fn mark(&mut self, key: impl FnOnce() -> EntityKey) {
        if !self.untracked {
            self.dirty.insert(key());
        }
    }

    fn member_mut(&mut self, id: &str) -> &mut Member {
        self.mark(|| EntityKey::Member(id.to_string()));
        self.members
            .get_mut(id)
            .unwrap_or_else(|| panic!("event for member {id}, who is not loaded: the store must load every entity an event touches"))
    }

    fn fund_mut(&mut self, kind: FundKind, region: &str) -> &mut Fund {
        self.mark(|| EntityKey::Fund(kind, region.to_string()));
        self.funds.entry((kind, region.to_string())).or_default()
    }

    fn tx_mut(&mut self, id: &str) -> &mut Tx {
        self.mark(|| EntityKey::Tx(id.to_string()));
        self.txs
            .get_mut(id)
            .unwrap_or_else(|| panic!("event for transaction {id}, which is not loaded"))
    }

    fn region_accounts_mut(&mut self, region: &str) -> &mut Fund {
        self.mark(|| EntityKey::Accounts(region.to_string()));
        self.accounts.entry(region.to_string()).or_default()
    }

    fn credit(&mut self, member: &str, amount: Money, day: Day) {
        if amount == Money::ZERO {
            return;
        }
        let account = self.member_mut(member);
        account.balance += amount;
        account.account_in += amount;
        *account.balance_by_day.entry(day).or_default() += amount;
        let region = account.region.clone();
        self.region_accounts_mut(&region).inflow += amount;
    }

    fn debit(&mut self, member: &str, amount: Money, day: Day) {
        if amount == Money::ZERO {
            return;
        }
        let account = self.member_mut(member);
        account.balance -= amount;
        account.account_out += amount;
        *account.balance_by_day.entry(day).or_default() -= amount;
        assert!(
            !account.balance.is_negative(),
            "account of {member} would go to {}: decide must refuse this",
            account.balance
        );
        let region = account.region.clone();
        self.region_accounts_mut(&region).outflow += amount;
    }
}

/// Folds one event into the state. Pure: the same events in the same order give the same state.
pub fn evolve(state: &mut State, event: &Event) {
    match event {
        Event::PolicyLoaded { policy } => {
            state.mark(|| EntityKey::Policies(policy.region.clone()));
            let versions = state.policies.entry(policy.region.clone()).or_default();
            versions.push((**policy).clone());
            versions.sort_by_key(|p| p.effective);
        }
        Event::Enrolled {
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
            state.mark(|| EntityKey::Member(member.clone()));
            state.mark(|| EntityKey::RegionMember(region.clone(), member.clone()));
            state
                .region_members
                .entry(region.clone())
                .or_default()
                .insert(member.clone());
            state.members.insert(
                member.clone(),
                Member {
                    id: member.clone(),
                    region: region.clone(),
                    region_since: *date,
                    born: *born,
                    scheme: *scheme,
                    enrolled_on: *date,
                    retired_on: (*status == Status::Retired).then_some(*date),
                    lump_sum_base: *lump_sum_base,
                    lump_sum_until: *lump_sum_until,
                    balance: Money::ZERO,
                    account_in: Money::ZERO,
                    account_out: Money::ZERO,
                    balance_by_day: BTreeMap::new(),
                    credited_months: BTreeSet::new(),
                    years: BTreeMap::new(),
                    past_regions: Vec::new(),
                    closed_years: BTreeMap::new(),
                    family: BTreeMap::new(),
                    deceased_on: None,
                    closed_on: None,
                },
            );
            state.credit(member, *opening_balance, *date);
        }
        Event::Retired { member, date } => {
            state.member_mut(member).retired_on = Some(*date);
        }
        Event::AccountCredited {
            member,
            month,
            amount,
            ..
        } => {
            state.credit(member, *amount, month.first_day());
            let fresh = state.member_mut(member).credited_months.insert(*month);
            assert!(fresh, "month {month} credited twice to {member}");
        }
        Event::PooledContributed { region, amount, .. } => {
            state.fund_mut(FundKind::Pooled, region).inflow += *amount;
        }
        Event::PooledCreditPaid { region, amount, .. } => {
            state.fund_mut(FundKind::Pooled, region).outflow += *amount;
        }
        Event::ClaimSettled { settlement } => {
            assert!(
                settlement.adds_up(),
                "settlement {} does not add up: {settlement:?}",
                settlement.claim
            );
            state.debit(&settlement.member, settlement.account_paid, settlement.date);
            state
                .member_mut(&settlement.member)
                .stint_counters_mut(&settlement.region, settlement.stint_since)
                .entry(settlement.year)
                .or_default()
                .count(settlement, Direction::Settle);
            state.mark(|| EntityKey::Tx(settlement.claim.clone()));
            state.txs.insert(
                settlement.claim.clone(),
                Tx {
                    member: settlement.member.clone(),
                    date: settlement.date,
                    kind: TxKind::Claim(settlement.clone()),
                    reversed_on: None,
                },
            );
        }
        Event::FundClaimPaid {
            fund,
            region,
            amount,
            ..
        } => {
            state.fund_mut(*fund, region).outflow += *amount;
        }
        Event::FamilyBound {
            holder,
            relative,
            relation,
            date,
            yearly_limit,
        } => {
            let binding = Binding {
                relation: *relation,
                since: *date,
                until: None,
                yearly_limit: *yearly_limit,
                spent: BTreeMap::new(),
            };
            state
                .member_mut(holder)
                .family
                .insert(relative.clone(), binding);
            state.mark(|| EntityKey::Relative(relative.clone()));
            state.relatives.insert(relative.clone(), holder.clone());
        }
        Event::FamilyUnbound {
            holder,
            relative,
            date,
        } => {
            let binding = state
                .member_mut(holder)
                .family
                .get_mut(relative)
                .unwrap_or_else(|| panic!("{relative} unbound from {holder} without a binding"));
            binding.until = Some(*date);
            state.mark(|| EntityKey::Relative(relative.clone()));
            state.relatives.remove(relative);
        }
        Event::AccountPaid {
            id,
            holder,
            beneficiary,
            region,
            date,
            year,
            purpose,
            amount,
        } => {
            state.debit(holder, *amount, *date);
            if let Some(binding) = state.member_mut(holder).family.get_mut(beneficiary) {
                *binding.spent.entry(*year).or_default() += *amount;
            }
            state.mark(|| EntityKey::Tx(id.clone()));
            state.txs.insert(
                id.clone(),
                Tx {
                    member: holder.clone(),
                    date: *date,
                    kind: TxKind::Payment {
                        beneficiary: beneficiary.clone(),
                        year: *year,
                        purpose: *purpose,
                        amount: *amount,
                        region: region.clone(),
                    },
                    reversed_on: None,
                },
            );
        }
        Event::PremiumReceived { region, amount, .. } => {
            state.fund_mut(FundKind::LargeAmount, region).inflow += *amount;
        }
        Event::ClaimReversed {
            date, settlement, ..
        } => {
            state.credit(&settlement.member, settlement.account_paid, *date);
            state
                .member_mut(&settlement.member)
                .stint_counters_mut(&settlement.region, settlement.stint_since)
                .entry(settlement.year)
                .or_default()
                .count(settlement, Direction::Reverse);
            state.tx_mut(&settlement.claim).reversed_on = Some(*date);
        }
        Event::FundClaimRefunded {
            fund,
            region,
            amount,
            ..
        } => {
            state.fund_mut(*fund, region).outflow -= *amount;
        }
        Event::AccountPaymentReversed {
            id,
            holder,
            beneficiary,
            year,
            date,
            amount,
            ..
        } => {
            state.credit(holder, *amount, *date);
            if let Some(binding) = state.member_mut(holder).family.get_mut(beneficiary) {
                *binding.spent.entry(*year).or_default() -= *amount;
            }
            state.tx_mut(id).reversed_on = Some(*date);
        }
        Event::YearClosed {
            member,
            year,
            closing_balance,
            ..
        } => {
            state
                .member_mut(member)
                .closed_years
                .insert(*year, *closing_balance);
        }
        Event::Deceased { member, date } => {
            state.member_mut(member).deceased_on = Some(*date);
        }
        Event::Inherited {
            member,
            date,
            balance,
            payouts,
        } => {
            let paid: Money = payouts.iter().map(|p| p.amount).sum();
            assert_eq!(
                paid, *balance,
                "inheritance of {member} pays out the whole balance"
            );
            state.debit(member, *balance, *date);
            let account = state.member_mut(member);
            assert!(
                account.balance == Money::ZERO,
                "inherited account {member} is emptied"
            );
            account.closed_on = Some(*date);
        }
        Event::Transferred {
            member,
            date,
            from_region,
            to_region,
            ..
        } => {
            let account = state.member_mut(member);
            let years = std::mem::take(&mut account.years);
            account.past_regions.push(PastRegion {
                region: from_region.clone(),
                since: account.region_since,
                until: *date,
                years,
            });
            account.region = to_region.clone();
            account.region_since = *date;
            let balance = account.balance;
            state.region_accounts_mut(from_region).outflow += balance;
            state.region_accounts_mut(to_region).inflow += balance;
            for (region, present) in [(from_region, false), (to_region, true)] {
                state.mark(|| EntityKey::RegionMember(region.clone(), member.clone()));
                let members = state.region_members.entry(region.clone()).or_default();
                if present {
                    members.insert(member.clone());
                } else {
                    members.remove(member);
                }
            }
        }
        Event::PremiumRefunded { region, amount, .. } => {
            state.fund_mut(FundKind::LargeAmount, region).inflow -= *amount;
        }
    }
}
