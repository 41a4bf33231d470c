//! What-if (政策调整测算): every claim of a region and period settled again, in log order,
//! under a proposed policy version in place of the one in force, in memory. The members, claims
//! and dates are the log's; deductibles, limits and the annual maximum accumulate afresh under
//! the proposal from the first claim re-settled (claims outside the region or period count as
//! recorded). The ledger is only read.
//!
//! A member's account under the proposal holds what it held as recorded, plus what the
//! proposal took less from it (or minus what it took more) in the claims before: a claim takes
//! its share from that, up to what is available. Other movements of the account (payments,
//! credits) are the recorded ones.

use std::collections::BTreeMap;

use gongji_domain::decide::resettle::{resettle, MemberToDate};
use gongji_domain::policy::{in_lump_sum_period, Facts};
use gongji_domain::state::YearCounters;
use gongji_domain::time::age_in_month;
use gongji_domain::types::{Channel, InstitutionKind, Scheme, Status};
use gongji_domain::{Day, Event, Money, Month, PolicyVersion, Settlement};
use serde::Serialize;

use crate::{Ledger, LedgerError};

/// Which claims of the proposal's region are settled again.
#[derive(Clone, Debug, Default)]
pub struct WhatIfScope {
    /// Claims whose own date is on or after this day…
    pub from: Option<Day>,
    /// …and on or before this one.
    pub to: Option<Day>,
}

/// One claim's two settlements, as recorded and as proposed (a reversal's row undoes both).
#[derive(Debug, Clone)]
pub struct ClaimPair<'a> {
    pub position: u64,
    /// False for a claim's settlement, true for its reversal.
    pub reversal: bool,
    pub recorded: &'a Settlement,
    pub proposed: &'a Settlement,
}

/// What the funds and the members paid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Paid {
    /// The pooled fund (统筹基金): special and ordinary payments.
    pub pooled: Money,
    /// The large-amount fund (大额医疗), beyond the pooled fund's annual maximum.
    pub large_amount: Money,
    /// The members' own share, from their accounts…
    pub account: Money,
    /// …and in cash.
    pub cash: Money,
}

impl Paid {
    fn of(s: &Settlement) -> Paid {
        Paid {
            pooled: s.pooled_paid,
            large_amount: s.large_amount_paid,
            account: s.account_paid,
            cash: s.cash_paid,
        }
    }

    fn add(&mut self, other: Paid, sign: i64) {
        let signed = |m: Money| Money::from_fen(m.fen() * sign);
        self.pooled += signed(other.pooled);
        self.large_amount += signed(other.large_amount);
        self.account += signed(other.account);
        self.cash += signed(other.cash);
    }

    fn minus(self, other: Paid) -> Paid {
        Paid {
            pooled: self.pooled - other.pooled,
            large_amount: self.large_amount - other.large_amount,
            account: self.account - other.account,
            cash: self.cash - other.cash,
        }
    }
}

/// Recorded and proposed sums over a set of claims (reversals netted), and the difference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Compared {
    /// Claims settled less those reversed.
    pub claims: i64,
    /// Of them, claims whose proposed figures differ from the recorded ones.
    pub changed: i64,
    pub recorded: Paid,
    pub proposed: Paid,
    /// `proposed - recorded`.
    pub difference: Paid,
}

impl Compared {
    fn add(&mut self, pair: &ClaimPair<'_>) {
        let sign = if pair.reversal { -1 } else { 1 };
        self.claims += sign;
        if Paid::of(pair.recorded) != Paid::of(pair.proposed) {
            self.changed += sign;
        }
        self.recorded.add(Paid::of(pair.recorded), sign);
        self.proposed.add(Paid::of(pair.proposed), sign);
        self.difference = self.proposed.minus(self.recorded);
    }
}

/// A member the proposal changes most, by the change in what the member pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affected {
    pub member: String,
    /// Proposed own share less recorded own share (account and cash) over the period.
    pub own_share_difference: Money,
    /// Proposed fund payments (pooled and large-amount) less recorded ones.
    pub fund_difference: Money,
}

/// How many member-years reached the annual ordinary limit, as recorded and as proposed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LimitReached {
    pub recorded: u64,
    pub proposed: u64,
}

/// What the proposal would have changed.
#[derive(Debug, Clone, Serialize)]
pub struct WhatIfReport {
    /// The proposed version and the region and period it was tried on.
    pub proposal: String,
    pub region: String,
    pub from: Option<Day>,
    pub to: Option<Day>,
    /// The versions the re-settled claims were recorded under.
    pub in_force: Vec<String>,
    /// Log records read.
    pub records: u64,
    /// Claims the proposal has no rule for (counted as recorded in both columns).
    pub no_rule: u64,
    pub total: Compared,
    pub by_month: BTreeMap<Month, Compared>,
    pub by_status: BTreeMap<Status, Compared>,
    pub by_level: BTreeMap<u8, Compared>,
    pub by_channel: BTreeMap<Channel, Compared>,
    pub by_institution_kind: BTreeMap<InstitutionKind, Compared>,
    /// Member-years whose ordinary payments reached the annual limit.
    pub limit_reached: LimitReached,
    /// The members who would pay most more, and most less (at most `AFFECTED_MAX` each).
    pub paying_more: Vec<Affected>,
    pub paying_less: Vec<Affected>,
}

/// How many members each of `paying_more` and `paying_less` lists.
pub const AFFECTED_MAX: usize = 10;

/// The kinds of event a pass reads (every other record is passed by undecoded).
const FOLDED: [&str; 4] = [
    "enrolled",
    "transfer_received",
    "claim_settled",
    "claim_reversed",
];

/// What decides a member's rules besides the claim: from enrolment, or the account's arrival.
#[derive(Clone, Copy)]
struct MemberFacts {
    born: Day,
    scheme: Scheme,
    lump_sum_until: Option<Month>,
}

/// The pass's maps: keyed by ids the ledger made, so a fast hash will do.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A year's counters, keyed as the ledger keys them: member, region, stint, insurance year.
type YearKey = (String, String, Day, i32);

/// The running state of a what-if pass.
struct Pass<'p> {
    proposal: &'p PolicyVersion,
    scope: WhatIfScope,
    region: String,
    members: HashMap<String, MemberFacts>,
    /// The proposal's counters (claims outside the scope counted as recorded).
    years: HashMap<YearKey, YearCounters>,
    /// Recorded account payments less proposed ones, per member, over the claims so far.
    account_gain: HashMap<String, Money>,
    /// Each claim's proposed settlement, for its reversal (boxed: a growing map moves its
    /// entries, and a settlement is some hundreds of bytes).
    proposed: HashMap<String, Box<Settlement>>,
    /// Member-years that reached the limit: (recorded, proposed).
    reached: HashMap<YearKey, (bool, bool)>,
    /// Per member: own share and fund differences.
    members_changed: HashMap<String, (Money, Money)>,
    report: WhatIfReport,
}

impl Ledger {
    /// Settles every claim of the proposal's region in `scope` again under `proposal`; `each` sees every claim and
    /// reversal with both settlements, in log order; `progress(done, total)` counts records.
    pub fn what_if(
        &self,
        proposal: &PolicyVersion,
        scope: WhatIfScope,
        each: &mut dyn FnMut(&ClaimPair<'_>) -> Result<(), LedgerError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<WhatIfReport, LedgerError> {
        let mut pass = Pass::new(proposal, scope, proposal.region.clone());
        // Most records are credits and payments: the kind alone, read from the tag, says to
        // pass them by.
        pass.report.records = self.scan(
            Some(&FOLDED),
            &mut |scanned| pass.fold(scanned.position, scanned.event, each),
            progress,
        )?;
        Ok(pass.finish())
    }
}

impl<'p> Pass<'p> {
    fn new(proposal: &'p PolicyVersion, scope: WhatIfScope, region: String) -> Pass<'p> {
        let report = WhatIfReport {
            proposal: proposal.version.clone(),
            region: region.clone(),
            from: scope.from,
            to: scope.to,
            in_force: Vec::new(),
            records: 0,
            no_rule: 0,
            total: Compared::default(),
            by_month: BTreeMap::new(),
            by_status: BTreeMap::new(),
            by_level: BTreeMap::new(),
            by_channel: BTreeMap::new(),
            by_institution_kind: BTreeMap::new(),
            limit_reached: LimitReached::default(),
            paying_more: Vec::new(),
            paying_less: Vec::new(),
        };
        Pass {
            proposal,
            scope,
            region,
            members: HashMap::default(),
            years: HashMap::default(),
            account_gain: HashMap::default(),
            proposed: HashMap::default(),
            reached: HashMap::default(),
            members_changed: HashMap::default(),
            report,
        }
    }

    fn fold(
        &mut self,
        position: u64,
        event: &Event,
        each: &mut dyn FnMut(&ClaimPair<'_>) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        match event {
            Event::Enrolled {
                member,
                born,
                scheme,
                lump_sum_until,
                ..
            } => {
                self.members.insert(
                    member.clone(),
                    MemberFacts {
                        born: *born,
                        scheme: *scheme,
                        lump_sum_until: *lump_sum_until,
                    },
                );
            }
            Event::TransferReceived {
                member, account, ..
            } => {
                self.members.insert(
                    member.clone(),
                    MemberFacts {
                        born: account.born,
                        scheme: account.scheme,
                        lump_sum_until: account.lump_sum_until,
                    },
                );
            }
            Event::ClaimSettled { settlement } => self.settled(position, settlement, each)?,
            Event::ClaimReversed { settlement, .. } => self.reversed(position, settlement, each)?,
            _ => {}
        }
        Ok(())
    }

    fn in_scope(&self, s: &Settlement) -> bool {
        s.region == self.region
            && self.scope.from.is_none_or(|from| s.date >= from)
            && self.scope.to.is_none_or(|to| s.date <= to)
    }

    fn settled(
        &mut self,
        position: u64,
        recorded: &Settlement,
        each: &mut dyn FnMut(&ClaimPair<'_>) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        if !self.in_scope(recorded) {
            let key = year_key(recorded, recorded.year);
            self.years.entry(key).or_default().counted(recorded, false);
            return Ok(());
        }
        let proposed = self.propose(recorded)?;
        let key = year_key(recorded, proposed.year);
        self.years
            .entry(key.clone())
            .or_default()
            .counted(&proposed, false);
        let gain = recorded.account_paid - proposed.account_paid;
        *self
            .account_gain
            .entry(recorded.member.clone())
            .or_default() += gain;
        let reached = self.reached.entry(key).or_default();
        reached.0 |= reached_limit(recorded);
        reached.1 |= reached_limit(&proposed);
        if !self.report.in_force.contains(&recorded.policy) {
            self.report.in_force.push(recorded.policy.clone());
        }
        let pair = ClaimPair {
            position,
            reversal: false,
            recorded,
            proposed: &proposed,
        };
        self.count(&pair);
        each(&pair)?;
        self.proposed
            .insert(recorded.claim.clone(), Box::new(proposed));
        Ok(())
    }

    /// The proposal's settlement of `recorded` against the positions accumulated so far; the
    /// recorded one where the proposal has no rule for the claim.
    fn propose(&mut self, recorded: &Settlement) -> Result<Settlement, LedgerError> {
        let member = self.members.get(&recorded.member).copied().ok_or_else(|| {
            LedgerError::Projection(format!(
                "claim {} is of member {}, whom no earlier record enrolled",
                recorded.claim, recorded.member
            ))
        })?;
        let month = recorded.date.month();
        let facts = Facts {
            status: recorded.status,
            scheme: member.scheme,
            level: Some(recorded.level),
            kind: Some(recorded.institution_kind),
            age: age_in_month(member.born, month),
            in_lump_sum_period: in_lump_sum_period(member.lump_sum_until, month),
        };
        let year = self.proposal.insurance_year(recorded.date);
        let empty = YearCounters::default();
        let counters = self.years.get(&year_key(recorded, year)).unwrap_or(&empty);
        let group = self
            .proposal
            .deductible_rule(&facts)
            .map(|r| r.group.as_str())
            .unwrap_or_default();
        let gain = self
            .account_gain
            .get(&recorded.member)
            .copied()
            .unwrap_or_default();
        let to_date = MemberToDate {
            deductible_used_in_group: counters.deductible_used_in(group),
            deductible_used_total: counters.deductible_used_total(),
            ordinary_cost: counters.ordinary_cost,
            ordinary_paid: counters.ordinary_paid,
            pooled_paid: counters.pooled_paid,
            available: (recorded.basis.available_before + gain).max(Money::ZERO),
        };
        match resettle(recorded, self.proposal, &facts, &to_date) {
            Ok(proposed) => Ok(proposed),
            Err(_) => {
                self.report.no_rule += 1;
                Ok(recorded.clone())
            }
        }
    }

    fn reversed(
        &mut self,
        position: u64,
        recorded: &Settlement,
        each: &mut dyn FnMut(&ClaimPair<'_>) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let Some(proposed) = self.proposed.remove(&recorded.claim) else {
            let key = year_key(recorded, recorded.year);
            self.years.entry(key).or_default().counted(recorded, true);
            return Ok(());
        };
        let key = year_key(recorded, proposed.year);
        self.years.entry(key).or_default().counted(&proposed, true);
        let gain = recorded.account_paid - proposed.account_paid;
        *self
            .account_gain
            .entry(recorded.member.clone())
            .or_default() -= gain;
        let pair = ClaimPair {
            position,
            reversal: true,
            recorded,
            proposed: &proposed,
        };
        self.count(&pair);
        each(&pair)
    }

    fn count(&mut self, pair: &ClaimPair<'_>) {
        let r = pair.recorded;
        self.report.total.add(pair);
        self.report
            .by_month
            .entry(r.date.month())
            .or_default()
            .add(pair);
        self.report.by_status.entry(r.status).or_default().add(pair);
        self.report.by_level.entry(r.level).or_default().add(pair);
        self.report
            .by_channel
            .entry(r.channel)
            .or_default()
            .add(pair);
        self.report
            .by_institution_kind
            .entry(r.institution_kind)
            .or_default()
            .add(pair);
        let sign = if pair.reversal { -1 } else { 1 };
        let own = |s: &Settlement| s.account_paid + s.cash_paid;
        let fund = |s: &Settlement| s.pooled_paid + s.large_amount_paid;
        let changed = self.members_changed.entry(r.member.clone()).or_default();
        changed.0 += Money::from_fen((own(pair.proposed) - own(r)).fen() * sign);
        changed.1 += Money::from_fen((fund(pair.proposed) - fund(r)).fen() * sign);
    }

    fn finish(mut self) -> WhatIfReport {
        for (recorded, proposed) in self.reached.values() {
            self.report.limit_reached.recorded += u64::from(*recorded);
            self.report.limit_reached.proposed += u64::from(*proposed);
        }
        let mut changed: Vec<Affected> = self
            .members_changed
            .into_iter()
            .filter(|(_, (own, _))| *own != Money::ZERO)
            .map(|(member, (own, fund))| Affected {
                member,
                own_share_difference: own,
                fund_difference: fund,
            })
            .collect();
        changed.sort_by(|a, b| {
            b.own_share_difference
                .cmp(&a.own_share_difference)
                .then_with(|| a.member.cmp(&b.member))
        });
        self.report.paying_more = changed
            .iter()
            .take_while(|a| a.own_share_difference > Money::ZERO)
            .take(AFFECTED_MAX)
            .cloned()
            .collect();
        self.report.paying_less = changed
            .iter()
            .rev()
            .take_while(|a| a.own_share_difference < Money::ZERO)
            .take(AFFECTED_MAX)
            .cloned()
            .collect();
        self.report
    }
}

fn year_key(s: &Settlement, year: i32) -> YearKey {
    (s.member.clone(), s.region.clone(), s.stint_since, year)
}

/// Whether the claim left the member's ordinary payments at the annual limit.
fn reached_limit(s: &Settlement) -> bool {
    s.basis
        .ordinary_limit
        .is_some_and(|limit| s.basis.ordinary_paid_before + s.ordinary_paid >= limit)
}
