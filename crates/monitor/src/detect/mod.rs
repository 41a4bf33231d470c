//! The detectors, fed one event at a time in log order by [`Watch`]. Each keeps only what its
//! rule's window can still use: what is older than the ledger's calendar (the latest own date
//! of a movement seen) less the window and a grace for late-recorded movements is judged and
//! dropped at the next sweep.

mod family;
mod frequency;
mod institutions;
mod splitting;
mod timing;
mod visits;

use chrono::Datelike;
use gongji_domain::types::{Channel, Purpose};
use gongji_domain::{Day, Event, Money, Settlement};

use crate::flag::{Decided, Flag, Found};
use crate::rules::{MonitorRules, Place};

/// Days a window stays open after it ends, for movements recorded late (a claim dated last
/// month recorded today still joins last month's count).
pub const GRACE_DAYS: i32 = 45;

/// Movements observed between two sweeps.
pub const SWEEP_EVERY: u64 = 1 << 16;

/// Which movements a pass looks at, besides the rules' own region and effective day.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub from: Option<Day>,
    pub to: Option<Day>,
    /// List flags an auditor dismissed too (they are counted either way).
    pub with_dismissed: bool,
    /// Movements between two sweeps ([`SWEEP_EVERY`] when None): a smaller figure holds less
    /// in memory and gives the same flags for a log in date order (the tests sweep after every
    /// movement).
    pub sweep_every: Option<u64>,
}

/// A settled claim, as the detectors see it.
pub(crate) struct Claim<'e> {
    pub position: u64,
    pub settlement: &'e Settlement,
    pub place: Option<Place>,
}

/// A payment from a personal account for care or medicine (a claim's account share is one
/// too), as the detectors see it.
pub(crate) struct Payment<'e> {
    pub position: u64,
    pub holder: &'e str,
    pub beneficiary: &'e str,
    pub date: Day,
    pub year: i32,
    pub place: Place,
    pub institution: Option<&'e str>,
    pub amount: Money,
    /// Whether it is a claim's account share (not an `account_pay`).
    pub of_claim: bool,
}

/// A day as a number, for windows: days since the common era.
pub(crate) fn day_number(day: Day) -> i32 {
    day.date().num_days_from_ce()
}

/// `day` moved by `days`, or `day` itself where that leaves the calendar the ledger knows.
pub(crate) fn day_plus(day: Day, days: i32) -> Day {
    day.date()
        .checked_add_signed(chrono::Duration::days(i64::from(days)))
        .and_then(|d| Day::from_ymd(d.year(), d.month(), d.day()))
        .unwrap_or(day)
}

/// The day in China Standard Time of a recording time (microseconds since the epoch, UTC);
/// None for one no calendar day of the ledger's years can show.
fn recorded_day(micros: i64) -> Option<Day> {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+08:00 is an offset");
    let date = chrono::DateTime::from_timestamp_micros(micros)?
        .with_timezone(&china)
        .date_naive();
    Day::from_ymd(date.year(), date.month(), date.day())
}

/// Where the flags go: made with the rules' version as they are found.
#[derive(Clone)]
pub(crate) struct Out {
    pub rules: std::sync::Arc<MonitorRules>,
    pub flags: Vec<Flag>,
}

impl Out {
    pub fn found(&mut self, found: Found) {
        self.flags
            .push(found.flag(&self.rules.version, &self.rules.region));
    }
}

/// One pass's detectors and what they found.
#[derive(Clone)]
pub struct Watch {
    out: Out,
    scope: Scope,
    /// The ledger's calendar: the latest own date of a claim or payment seen, never past the
    /// day it was recorded (a movement dated in the future moves it only to its recording day).
    frontier: Option<Day>,
    /// The day (China Standard Time) the event being observed was recorded.
    recorded_on: Option<Day>,
    observed: u64,
    frequency: frequency::Frequency,
    splitting: splitting::Splitting,
    visits: visits::Visits,
    family: family::Family,
    timing: timing::Timing,
    institutions: institutions::Institutions,
    /// The latest decision on each flag of the rules' region, by flag id.
    decisions: crate::HashMap<String, Decided>,
}

impl Watch {
    pub fn new(rules: &MonitorRules, scope: Scope) -> Watch {
        Watch {
            out: Out {
                rules: std::sync::Arc::new(rules.clone()),
                flags: Vec::new(),
            },
            scope,
            frontier: None,
            recorded_on: None,
            observed: 0,
            frequency: frequency::Frequency::default(),
            splitting: splitting::Splitting::default(),
            visits: visits::Visits::default(),
            family: family::Family::default(),
            timing: timing::Timing::default(),
            institutions: institutions::Institutions::default(),
            decisions: crate::HashMap::default(),
        }
    }

    /// Whether a movement of `region` dated `date` is one the rules look at.
    fn looked_at(&self, region: &str, date: Day) -> bool {
        let rules = &self.out.rules;
        region == rules.region
            && date >= rules.effective
            && self.scope.from.is_none_or(|from| date >= from)
            && self.scope.to.is_none_or(|to| date <= to)
    }

    /// Takes in the event at `position`, recorded at `recorded_at_micros` (UTC).
    pub fn observe(&mut self, position: u64, recorded_at_micros: i64, event: &Event) {
        self.recorded_on = recorded_day(recorded_at_micros);
        match event {
            Event::ClaimSettled { settlement } => self.claim(position, settlement),
            Event::AccountPaid {
                holder,
                beneficiary,
                region,
                date,
                year,
                purpose,
                amount,
                institution,
                ..
            } => {
                let place = match purpose {
                    Purpose::Institution => Place::Institution,
                    Purpose::Pharmacy => Place::Pharmacy,
                    // Premiums are paid to a fund, not at a counter.
                    _ => return,
                };
                if !self.looked_at(region, *date) {
                    return;
                }
                let payment = Payment {
                    position,
                    holder,
                    beneficiary,
                    date: *date,
                    year: *year,
                    place,
                    institution: institution.0.as_deref(),
                    amount: *amount,
                    of_claim: false,
                };
                self.payment(&payment);
            }
            Event::FlagDecided {
                flag,
                region,
                decision,
                reason,
                by,
                date,
            } if *region == self.out.rules.region => {
                let decided = Decided {
                    decision: *decision,
                    reason: reason.clone(),
                    by: by.clone(),
                    date: *date,
                    position,
                };
                self.decisions.insert(flag.clone(), decided);
            }
            Event::ClaimReversed { settlement, .. } => {
                self.visits.reversed(&settlement.claim);
            }
            Event::FamilyBound {
                holder,
                relative,
                date,
                ..
            } => self.family.bound(position, holder, relative, *date),
            Event::Deceased { member, date } => {
                self.timing
                    .exit(position, member, *date, "death", &mut self.out);
                self.timing.deceased(position, member, *date);
            }
            Event::Transferred {
                member,
                date,
                from_region,
                ..
            }
            | Event::TransferSent {
                member,
                date,
                from_region,
                ..
            } if *from_region == self.out.rules.region => {
                self.timing
                    .exit(position, member, *date, "transfer", &mut self.out);
            }
            _ => {}
        }
    }

    fn claim(&mut self, position: u64, settlement: &Settlement) {
        if !self.looked_at(&settlement.region, settlement.date) {
            return;
        }
        let place = match settlement.channel {
            Channel::Institution => Some(Place::Institution),
            Channel::Pharmacy => Some(Place::Pharmacy),
            Channel::Manual => None,
        };
        let claim = Claim {
            position,
            settlement,
            place,
        };
        let frontier = self.moved(settlement.date);
        self.timing.movement(
            position,
            &settlement.member,
            settlement.date,
            frontier,
            &mut self.out,
        );
        self.frequency.claim(&claim, &self.out.rules);
        self.visits.claim(&claim, &self.out.rules);
        self.institutions.claim(&claim);
        if settlement.account_paid > Money::ZERO {
            if let Some(place) = place {
                let payment = Payment {
                    position,
                    holder: &settlement.member,
                    beneficiary: &settlement.member,
                    date: settlement.date,
                    year: settlement.year,
                    place,
                    institution: settlement.institution.as_deref(),
                    amount: settlement.account_paid,
                    of_claim: true,
                };
                self.splitting.payment(&payment, &self.out.rules);
                self.timing.account_debit(&payment);
            }
        }
        self.after_movement();
    }

    fn payment(&mut self, payment: &Payment<'_>) {
        let frontier = self.moved(payment.date);
        self.timing.movement(
            payment.position,
            payment.holder,
            payment.date,
            frontier,
            &mut self.out,
        );
        self.frequency.payment(payment, &self.out.rules);
        self.splitting.payment(payment, &self.out.rules);
        self.family.payment(payment, &self.out.rules);
        self.timing.account_debit(payment);
        self.after_movement();
    }

    /// Moves the ledger's calendar to `date` if it is later (but not past the day the movement
    /// was recorded); returns where it was before.
    fn moved(&mut self, date: Day) -> Option<Day> {
        let before = self.frontier;
        let date = self.recorded_on.map_or(date, |recorded| date.min(recorded));
        self.frontier = Some(before.map_or(date, |f| f.max(date)));
        before
    }

    fn after_movement(&mut self) {
        self.observed += 1;
        let every = self.scope.sweep_every.unwrap_or(SWEEP_EVERY).max(1);
        if self.observed.is_multiple_of(every) {
            if let Some(frontier) = self.frontier {
                self.sweep(day_plus(frontier, -GRACE_DAYS));
            }
        }
    }

    /// Judges and drops every window that ends before `horizon`.
    fn sweep(&mut self, horizon: Day) {
        let out = &mut self.out;
        self.frequency.sweep(horizon, out);
        self.splitting.sweep(horizon, out);
        self.visits.sweep(horizon, out);
        self.family.sweep(horizon, out);
        self.timing.sweep(horizon, out);
        self.institutions.sweep(horizon, out);
    }

    /// Every window judged; the flags ordered by their first day, rule and subject, each with
    /// its latest decision.
    pub fn finish(mut self) -> Vec<Flag> {
        self.sweep(Day::from_ymd(gongji_domain::time::YEAR_MAX, 12, 31).expect("a valid day"));
        let mut flags = self.out.flags;
        for flag in &mut flags {
            flag.decision = self.decisions.get(&flag.id).cloned();
        }
        flags.sort_by(|a, b| {
            (a.from, &a.rule, &a.member, &a.institution, &a.id).cmp(&(
                b.from,
                &b.rule,
                &b.member,
                &b.institution,
                &b.id,
            ))
        });
        flags
    }
}
