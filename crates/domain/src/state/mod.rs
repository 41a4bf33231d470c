//! The state the rules decide on, `evolve` ([`evolve()`], in `evolve.rs`), which folds one
//! event into it, and `admissible` ([`admissible()`], in `admissible.rs`), which says without a
//! panic whether an event from a log `decide` did not produce may be folded.

mod admissible;
mod dirty;
mod evolve;
pub mod spread;

pub use admissible::{admissible, check_bounds, Inadmissible};
pub use dirty::DirtySet;
pub use evolve::evolve;
pub use spread::SpreadMap;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::event::Settlement;
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

    /// The account as a transfer to `to_region` on `date` leaves it: the counters of the
    /// region left go into `past_regions` (they do not move), and the region changes.
    pub fn move_to(&mut self, to_region: &str, date: Day) {
        let years = std::mem::take(&mut self.years);
        let region = std::mem::replace(&mut self.region, to_region.to_string());
        self.past_regions.push(PastRegion {
            region,
            since: self.region_since,
            until: date,
            years,
        });
        self.region_since = date;
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

    /// Whether the member has (or had) a stint in `region` that began on `since`: where a
    /// settlement's counters must be.
    pub fn has_stint(&self, region: &str, since: Day) -> bool {
        (self.region == region && self.region_since == since)
            || self
                .past_regions
                .iter()
                .any(|p| p.region == region && p.since == since)
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

    /// Counts a settlement into the year (`reversed`: takes it back out), as the ledger does.
    pub fn counted(&mut self, settlement: &Settlement, reversed: bool) {
        let direction = match reversed {
            false => Direction::Settle,
            true => Direction::Reverse,
        };
        self.count(settlement, direction);
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
#[bincode(decode_context = "crate::event::SchemaVersion")]
pub struct Tx {
    pub member: String,
    pub date: Day,
    pub kind: TxKind,
    pub reversed_on: Option<Day>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
#[bincode(decode_context = "crate::event::SchemaVersion")]
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
    /// A fund event another region's ledger owed this one, landed here (its id is
    /// `event::owed_id`); it cannot be reversed (its own ledger reverses what owed it).
    Landed {
        from_region: String,
    },
}

/// The names under which a projection store keeps each piece of state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

/// An [`EntityKey`] with its ids borrowed (from an event, or from the state): what a fold
/// names an entity by to look it up or mark it changed, so that it builds an owned key only for
/// an entity it has not met yet. Hashed as the owned key is (that one hashes through this).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntityRef<'a> {
    Member(&'a str),
    Fund(FundKind, &'a str),
    Tx(&'a str),
    Policies(&'a str),
    RegionMember(&'a str, &'a str),
    Relative(&'a str),
    Accounts(&'a str),
}

impl EntityRef<'_> {
    pub fn to_key(self) -> EntityKey {
        match self {
            EntityRef::Member(id) => EntityKey::Member(id.to_string()),
            EntityRef::Fund(kind, region) => EntityKey::Fund(kind, region.to_string()),
            EntityRef::Tx(id) => EntityKey::Tx(id.to_string()),
            EntityRef::Policies(region) => EntityKey::Policies(region.to_string()),
            EntityRef::RegionMember(region, member) => {
                EntityKey::RegionMember(region.to_string(), member.to_string())
            }
            EntityRef::Relative(id) => EntityKey::Relative(id.to_string()),
            EntityRef::Accounts(region) => EntityKey::Accounts(region.to_string()),
        }
    }
}

impl EntityKey {
    pub fn as_ref(&self) -> EntityRef<'_> {
        match self {
            EntityKey::Member(id) => EntityRef::Member(id),
            EntityKey::Fund(kind, region) => EntityRef::Fund(*kind, region),
            EntityKey::Tx(id) => EntityRef::Tx(id),
            EntityKey::Policies(region) => EntityRef::Policies(region),
            EntityKey::RegionMember(region, member) => EntityRef::RegionMember(region, member),
            EntityKey::Relative(id) => EntityRef::Relative(id),
            EntityKey::Accounts(region) => EntityRef::Accounts(region),
        }
    }
}

/// Through [`EntityRef`]: a key and its borrowed form hash alike, which the dirty set's lookups
/// by [`EntityRef`] need.
impl std::hash::Hash for EntityKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

/// An entity named by reference finds its owned key in a hashbrown set or map (both hash
/// alike: the owned key hashes through this).
impl hashbrown::Equivalent<EntityKey> for EntityRef<'_> {
    fn equivalent(&self, key: &EntityKey) -> bool {
        *self == key.as_ref()
    }
}

/// A hash set of entity keys that is looked up by [`EntityRef`] without building a key.
pub type KeySet = hashbrown::HashSet<EntityKey, foldhash::fast::RandomState>;

/// The funds of every region, by kind and region: looked up by [`FundName`] without building
/// the key (decide reads a fund's totals, and evolve changes one, for most lines).
pub type FundMap = hashbrown::HashMap<(FundKind, String), Fund, foldhash::fast::RandomState>;

/// A fund's key with its region borrowed, for lookups in a [`FundMap`]. Hashed as the owned
/// key, a `(FundKind, String)`, is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FundName<'a>(pub FundKind, pub &'a str);

impl std::hash::Hash for FundName<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.0, self.1).hash(state);
    }
}

impl hashbrown::Equivalent<(FundKind, String)> for FundName<'_> {
    fn equivalent(&self, key: &(FundKind, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// A hash map with foldhash's fast hasher (seeded at random per process), not std's SipHash:
/// the state's maps are keyed by member, claim and entity and looked up several times per
/// event; with SipHash, hashing and probing them was about a fifth of the read view's fold.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The part of the ledger's state that the commands at hand need. A store loads entities into it
/// before deciding, and writes back those `evolve` marks dirty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Hash maps, not ordered maps: a ledger's cache holds hundreds of thousands of members and
    /// looks one up several times per event; nothing depends on their order.
    pub members: SpreadMap<Member>,
    pub funds: FundMap,
    pub txs: SpreadMap<Tx>,
    /// Policy versions per region, ordered by effective day.
    pub policies: BTreeMap<String, Vec<PolicyVersion>>,
    /// Members per region (for the monthly allocation run).
    pub region_members: BTreeMap<String, BTreeSet<String>>,
    /// The holder each person is currently bound to as a relative.
    pub relatives: BTreeMap<String, String>,
    /// Per region, what entered and left its personal accounts (a transfer leaves one region's
    /// accounts and enters another's).
    pub accounts: BTreeMap<String, Fund>,
    pub dirty: DirtySet,
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
            .get(&FundName(kind, region))
            .cloned()
            .unwrap_or_default()
    }

    /// Notes that the entity `key` names changed (unless the state is `untracked`); builds its
    /// owned key only the first time.
    pub fn mark(&mut self, key: EntityRef<'_>) {
        if !self.untracked {
            self.dirty.insert_ref(key);
        }
    }

    /// Whether the entity `key` names changed since the state was last stored.
    pub fn is_dirty(&self, key: EntityRef<'_>) -> bool {
        self.dirty.contains(key)
    }

    fn member_mut(&mut self, id: &str) -> &mut Member {
        self.mark(EntityRef::Member(id));
        self.members
            .get_mut(id)
            .unwrap_or_else(|| panic!("event for member {id}, who is not loaded: the store must load every entity an event touches"))
    }

    fn fund_mut(&mut self, kind: FundKind, region: &str) -> &mut Fund {
        self.mark(EntityRef::Fund(kind, region));
        if !self.funds.contains_key(&FundName(kind, region)) {
            self.funds
                .insert((kind, region.to_string()), Fund::default());
        }
        self.funds
            .get_mut(&FundName(kind, region))
            .expect("the fund was inserted above")
    }

    fn tx_mut(&mut self, id: &str) -> &mut Tx {
        self.mark(EntityRef::Tx(id));
        self.txs
            .get_mut(id)
            .unwrap_or_else(|| panic!("event for transaction {id}, which is not loaded"))
    }

    fn region_accounts_mut(&mut self, region: &str) -> &mut Fund {
        self.mark(EntityRef::Accounts(region));
        region_totals(&mut self.accounts, region)
    }

    /// A member's account and its region's account totals, both marked changed: what a
    /// credit or debit moves, found without building a key (a fold does this for most events).
    fn account_and_totals_mut(&mut self, member: &str) -> (&mut Member, &mut Fund) {
        let Some(account) = self.members.get_mut(member) else {
            panic!("event for member {member}, who is not loaded: the store must load every entity an event touches")
        };
        if !self.untracked {
            self.dirty.insert_ref(EntityRef::Member(member));
            self.dirty.insert_ref(EntityRef::Accounts(&account.region));
        }
        let totals = region_totals(&mut self.accounts, &account.region);
        (account, totals)
    }

    fn credit(&mut self, member: &str, amount: Money, day: Day) {
        if amount == Money::ZERO {
            return;
        }
        let (account, totals) = self.account_and_totals_mut(member);
        account.balance += amount;
        account.account_in += amount;
        *account.balance_by_day.entry(day).or_default() += amount;
        totals.inflow += amount;
    }

    fn debit(&mut self, member: &str, amount: Money, day: Day) {
        if amount == Money::ZERO {
            return;
        }
        let (account, totals) = self.account_and_totals_mut(member);
        account.balance -= amount;
        account.account_out += amount;
        *account.balance_by_day.entry(day).or_default() -= amount;
        assert!(
            !account.balance.is_negative(),
            "account of {member} would go to {}: decide must refuse this",
            account.balance
        );
        totals.outflow += amount;
    }
}

/// A region's account totals, inserted empty the first time (its key built only then).
fn region_totals<'a>(accounts: &'a mut BTreeMap<String, Fund>, region: &str) -> &'a mut Fund {
    if !accounts.contains_key(region) {
        accounts.insert(region.to_string(), Fund::default());
    }
    accounts
        .get_mut(region)
        .expect("the region's totals were inserted above")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<EntityKey> {
        vec![
            EntityKey::Member("M1".into()),
            EntityKey::Fund(FundKind::Pooled, "500000".into()),
            EntityKey::Fund(FundKind::LargeAmount, "500000".into()),
            EntityKey::Tx("C1".into()),
            EntityKey::Policies("500000".into()),
            EntityKey::RegionMember("500000".into(), "M1".into()),
            EntityKey::Relative("M1".into()),
            EntityKey::Accounts("500000".into()),
        ]
    }

    #[test]
    fn a_dirty_key_is_found_by_its_borrowed_form_and_by_no_other() {
        let mut state = State::default();
        for key in every_kind() {
            state.mark(key.as_ref());
        }
        assert_eq!(state.dirty.len(), 8, "ids shared between kinds name apart");
        for key in every_kind() {
            assert!(state.is_dirty(key.as_ref()), "{key:?}");
            assert_eq!(key.as_ref().to_key(), key);
            state.mark(key.as_ref());
        }
        assert_eq!(state.dirty.len(), 8, "marking again adds nothing");
        assert!(!state.is_dirty(EntityRef::Member("M2")));
        assert!(!state.is_dirty(EntityRef::RegionMember("500000M", "1")));
        assert!(!state.is_dirty(EntityRef::Fund(FundKind::Pooled, "500001")));
    }

    #[test]
    fn a_key_set_finds_a_key_by_its_borrowed_form_and_by_no_other() {
        let keys: KeySet = every_kind().into_iter().collect();
        assert_eq!(keys.len(), 8);
        for key in every_kind() {
            assert!(keys.contains(&key.as_ref()), "{key:?}");
        }
        assert!(!keys.contains(&EntityRef::Member("M2")));
        assert!(!keys.contains(&EntityRef::RegionMember("500000M", "1")));
        assert!(!keys.contains(&EntityRef::Tx("M1")));
    }

    #[test]
    fn an_untracked_state_marks_nothing() {
        let mut state = State::untracked();
        state.mark(EntityRef::Member("M1"));
        assert!(state.dirty.is_empty());
    }

    #[test]
    fn a_fund_is_found_by_its_borrowed_name() {
        let mut state = State::default();
        state.fund_mut(FundKind::Pooled, "500000").inflow = Money::from_fen(5);
        state.fund_mut(FundKind::Pooled, "500000").outflow = Money::from_fen(2);
        assert_eq!(state.funds.len(), 1);
        assert_eq!(
            state.fund(FundKind::Pooled, "500000").balance(),
            Money::from_fen(3)
        );
        assert_eq!(state.fund(FundKind::LargeAmount, "500000"), Fund::default());
        assert!(state.is_dirty(EntityRef::Fund(FundKind::Pooled, "500000")));
    }
}
