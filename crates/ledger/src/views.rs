//! What the queries answer, shaped for people and for JSON.
//!
//! Each view's fields are declared in the order its JSON answer shows them (who, what, the
//! figures, then where and when the ledger recorded it; `serde_json`'s `preserve_order` keeps
//! that order through a `Value`), under the names `docs/answers.md` gives: an absent value is
//! `null`, an empty list `[]`, and the claim or payment an object is about is its `id`.

use serde::Serialize;

use gongji_domain::policy::{in_lump_sum_period, Facts};
use gongji_domain::state::{Fund, Member};
use gongji_domain::time::age_in_month;
use gongji_domain::types::{InstitutionKind, Scheme, Status};
use gongji_domain::{Day, Event, Money, PolicyVersion};
use gongji_log::Record;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountView {
    pub member: String,
    /// open, deceased (frozen) or closed (paid to the heirs).
    pub state: &'static str,
    /// The region the account belongs to now, and since when.
    pub region: String,
    pub region_since: Day,
    pub scheme: Scheme,
    pub enrolled_on: Day,
    pub retired_on: Option<Day>,
    pub deceased_on: Option<Day>,
    pub closed_on: Option<Day>,
    pub balance: Money,
    pub credited_total: Money,
    pub paid_total: Money,
    pub months_credited: usize,
    pub family: Vec<FamilyView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyView {
    pub relative: String,
    pub relation: gongji_domain::types::Relation,
    pub since: Day,
    pub until: Option<Day>,
    pub yearly_limit: Option<Money>,
}

impl AccountView {
    pub fn of(member: &Member) -> AccountView {
        AccountView {
            member: member.id.clone(),
            state: account_state(member),
            region: member.region.clone(),
            region_since: member.region_since,
            scheme: member.scheme,
            enrolled_on: member.enrolled_on,
            retired_on: member.retired_on,
            deceased_on: member.deceased_on,
            closed_on: member.closed_on,
            balance: member.balance,
            credited_total: member.account_in,
            paid_total: member.account_out,
            months_credited: member.credited_months.len(),
            family: member
                .family
                .iter()
                .map(|(relative, b)| FamilyView {
                    relative: relative.clone(),
                    relation: b.relation,
                    since: b.since,
                    until: b.until,
                    yearly_limit: b.yearly_limit,
                })
                .collect(),
        }
    }
}

/// A member's standing in one insurance year.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct YearView {
    pub member: String,
    /// The region whose counters these are (counters do not move with a transfer).
    pub region: String,
    pub year: i32,
    /// The policy version in force at the end of the year (or today's, for the current year).
    pub policy: Option<String>,
    pub status: Status,
    /// The year's deductible when one rule sets it at every level and institution kind; null
    /// when it depends on them (`deductibles` lists each).
    pub deductible: Option<Money>,
    pub deductible_used: Money,
    /// What is left of `deductible`, the yearly cap included.
    pub deductible_remaining: Option<Money>,
    /// The most deductible paid in the year across all groups, if the policy caps it.
    pub deductible_cap: Option<Money>,
    /// Each deductible rule that applies to the member this year, with where it applies and
    /// what is filled and left of it (the cap included).
    pub deductibles: Vec<DeductibleStanding>,
    pub ordinary_paid: Money,
    pub ordinary_limit: Option<Money>,
    pub ordinary_remaining: Option<Money>,
    pub special_paid: Money,
    pub pooled_paid: Money,
    pub large_amount_paid: Money,
    pub claims: u32,
}

/// One deductible rule as it stands for a member in a year.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeductibleStanding {
    /// The rule's place in the policy file, `outpatient.deductibles[N]`.
    pub rule: String,
    pub group: String,
    pub amount: Money,
    /// The institution levels and kinds at which it applies.
    pub levels: Vec<u8>,
    pub institution_kinds: Vec<InstitutionKind>,
    /// What the year's claims filled of its group, and what is left (at most the cap's rest).
    pub used: Money,
    pub remaining: Money,
}

/// Rule positions chosen for `facts` at every level and institution kind: each distinct
/// position (None: no rule) with the levels and kinds where it is chosen.
fn chosen_everywhere(
    facts: &Facts,
    choose: impl Fn(&Facts) -> Option<usize>,
) -> Vec<(Option<usize>, Vec<u8>, Vec<InstitutionKind>)> {
    let mut chosen: Vec<(Option<usize>, Vec<u8>, Vec<InstitutionKind>)> = Vec::new();
    for level in 1..=3u8 {
        for kind in InstitutionKind::ALL {
            let at = Facts {
                level: Some(level),
                kind: Some(kind),
                ..*facts
            };
            let index = choose(&at);
            let entry = match chosen.iter_mut().find(|c| c.0 == index) {
                Some(entry) => entry,
                None => {
                    chosen.push((index, Vec::new(), Vec::new()));
                    chosen.last_mut().expect("just pushed")
                }
            };
            if !entry.1.contains(&level) {
                entry.1.push(level);
            }
            if !entry.2.contains(&kind) {
                entry.2.push(kind);
            }
        }
    }
    chosen
}

impl YearView {
    /// The limit and deductible figures are those of the policy version in force on the last day
    /// of the insurance year, for the member's status on that day.
    pub fn of(member: &Member, region: &str, year: i32, policies: &[PolicyVersion]) -> YearView {
        let counters = member.year_in(region, year);
        let year_end = policies.iter().rev().find_map(|p| {
            let start = Day::from_ymd(year, 1, 1)?;
            (p.effective <= Day::from_ymd(year, 12, 31)?).then(|| {
                // The last day whose insurance year is `year`.
                let mut day = Day::from_ymd(year + 1, 12, 31).unwrap_or(start);
                while p.insurance_year(day) > year {
                    day = Day::from_date(
                        day.date()
                            .pred_opt()
                            .expect("dates after 1900 have a day before"),
                    );
                }
                (p, day)
            })
        });
        let status_day = year_end
            .map(|(_, day)| day)
            .unwrap_or_else(|| Day::from_ymd(year, 12, 31).unwrap_or(member.enrolled_on));
        let status = member.status_on(status_day);
        let facts = Facts {
            status,
            scheme: member.scheme,
            level: None,
            kind: None,
            age: age_in_month(member.born, status_day.month()),
            in_lump_sum_period: in_lump_sum_period(member.lump_sum_until, status_day.month()),
        };
        let policy = year_end.map(|(p, _)| p);
        let deductible_used = counters.deductible_used_total();
        let deductible_cap = policy.and_then(|p| p.outpatient.deductible_cap);
        let cap_left = deductible_cap.map(|cap| cap.saturating_sub(deductible_used));
        let deductibles: Vec<DeductibleStanding> = policy
            .map(|p| {
                let rules = &p.outpatient.deductibles;
                chosen_everywhere(&facts, |f| rules.iter().position(|r| r.when.holds(f)))
                    .into_iter()
                    .filter_map(|(index, levels, institution_kinds)| {
                        let rule = &rules[index?];
                        let used = counters.deductible_used_in(&rule.group);
                        let left = rule.amount.saturating_sub(used);
                        Some(DeductibleStanding {
                            rule: format!("outpatient.deductibles[{}]", index?),
                            group: rule.group.clone(),
                            amount: rule.amount,
                            levels,
                            institution_kinds,
                            used,
                            remaining: cap_left.map_or(left, |cap| left.min(cap)),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (deductible, deductible_remaining) = match deductibles.as_slice() {
            [only] if only.levels.len() == 3 && only.institution_kinds.len() == 3 => {
                (Some(only.amount), Some(only.remaining))
            }
            _ => (None, None),
        };
        let ordinary_limit = policy.and_then(|p| {
            let rules = &p.outpatient.limits;
            match chosen_everywhere(&facts, |f| rules.iter().position(|r| r.when.holds(f)))
                .as_slice()
            {
                [(Some(index), ..)] => rules[*index].amount,
                _ => None,
            }
        });
        YearView {
            member: member.id.clone(),
            region: region.to_string(),
            year,
            policy: policy.map(|p| p.version.clone()),
            status,
            deductible,
            deductible_used,
            deductible_remaining,
            deductible_cap,
            deductibles,
            ordinary_paid: counters.ordinary_paid,
            ordinary_limit,
            ordinary_remaining: ordinary_limit.map(|l| l.saturating_sub(counters.ordinary_paid)),
            special_paid: counters.special_paid,
            pooled_paid: counters.pooled_paid,
            large_amount_paid: counters.large_amount_paid,
            claims: counters.claims,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FundFigures {
    pub inflow: Money,
    pub outflow: Money,
    pub balance: Money,
}

impl FundFigures {
    pub fn of(fund: &Fund) -> FundFigures {
        FundFigures {
            inflow: fund.inflow,
            outflow: fund.outflow,
            balance: fund.balance(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FundView {
    pub region: String,
    pub pooled: FundFigures,
    pub large_amount: FundFigures,
    /// The region's personal accounts taken together (current answers only).
    pub accounts: Option<FundFigures>,
}

impl FundView {
    pub fn of(region: &str, pooled: Fund, large: Fund, accounts: Option<Fund>) -> FundView {
        FundView {
            region: region.to_string(),
            pooled: FundFigures::of(&pooled),
            large_amount: FundFigures::of(&large),
            accounts: accounts.as_ref().map(FundFigures::of),
        }
    }
}

/// A member's timeline: every record of the member's stream (as of a time), in the order the
/// ledger recorded them, each with what it changed in the personal account and the balance
/// after it; and the balance by the events' own dates, as of each day that moved it (what a
/// chart of the balance over time draws, whatever order the events were recorded in).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineView {
    pub member: String,
    pub balance: Money,
    pub entries: Vec<TimelineEntry>,
    pub balance_by_day: Vec<DayBalance>,
}

/// One record of a member's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub position: u64,
    /// The event's kind (as `history` names it).
    pub event: &'static str,
    pub own_date: Day,
    pub recorded_at: Option<String>,
    /// What the record changed in the account's balance (zero for most).
    pub change: Money,
    pub balance_after: Money,
    /// The record as `history` gives it.
    pub entry: HistoryEntry,
}

/// The balance as of the end of a day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayBalance {
    pub date: Day,
    pub balance: Money,
}

impl TimelineEntry {
    pub fn of(entry: HistoryEntry, change: Money, balance_after: Money) -> TimelineEntry {
        TimelineEntry {
            position: entry.position,
            event: entry.event.kind(),
            own_date: entry.own_date,
            recorded_at: entry.recorded_at.clone(),
            change,
            balance_after,
            entry,
        }
    }
}

impl TimelineView {
    pub fn of(member: &Member, entries: Vec<TimelineEntry>) -> TimelineView {
        let mut balance = Money::ZERO;
        let balance_by_day = member
            .balance_by_day
            .iter()
            .map(|(day, change)| {
                balance += *change;
                DayBalance {
                    date: *day,
                    balance,
                }
            })
            .collect();
        TimelineView {
            member: member.id.clone(),
            balance: member.balance,
            entries,
            balance_by_day,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// The record's position in the log.
    pub position: u64,
    /// The event (`event` names its kind), its fields flattened into the entry.
    #[serde(flatten)]
    pub event: Event,
    /// The event's own date (for `--as-of`, `--from`, `--to`; a month's first day for a
    /// monthly credit).
    pub own_date: Day,
    /// When the ledger recorded the event, UTC (for `--recorded-before`); null for a time
    /// beyond what a calendar date can show.
    pub recorded_at: Option<String>,
    pub recorded_at_micros: i64,
    pub event_id: String,
    /// The record's version within its stream.
    pub version: u64,
}

impl HistoryEntry {
    pub fn of(record: &Record, event: &Event) -> HistoryEntry {
        HistoryEntry {
            position: record.position,
            event: event.clone(),
            own_date: event.date(),
            recorded_at: chrono::DateTime::from_timestamp_micros(record.recorded_at_micros)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
            recorded_at_micros: record.recorded_at_micros,
            event_id: record.event_id.to_string(),
            version: record.stream_version,
        }
    }
}

fn account_state(member: &Member) -> &'static str {
    match (member.closed_on, member.deceased_on) {
        (Some(_), _) => "closed",
        (None, Some(_)) => "deceased",
        (None, None) => "open",
    }
}

/// One movement of the member's balance recorded after an event it may predate (a death, a
/// transfer): what it was, its own date, and where and when the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LateMovement {
    pub event: &'static str,
    /// The claim or account payment the movement belongs to (null for a credit).
    pub id: Option<String>,
    pub date: Day,
    /// Positive when credited, negative when debited.
    pub amount: Money,
    pub position: u64,
    pub recorded_at: Option<String>,
    pub event_id: String,
}

impl LateMovement {
    /// The movements of `member`'s balance among `entries` recorded after `position`.
    fn after<'a>(
        member: &'a str,
        entries: &'a [HistoryEntry],
        position: u64,
    ) -> impl Iterator<Item = LateMovement> + 'a {
        entries
            .iter()
            .filter(move |e| e.position > position)
            .filter(|e| !matches!(e.event, Event::Inherited { .. }))
            .filter_map(move |e| {
                balance_movement(member, &e.event).map(|amount| LateMovement {
                    event: e.event.kind(),
                    id: movement_id(&e.event),
                    date: e.event.date(),
                    amount,
                    position: e.position,
                    recorded_at: e.recorded_at.clone(),
                    event_id: e.event_id.clone(),
                })
            })
    }
}

/// The claim or account payment an event belongs to.
fn movement_id(event: &Event) -> Option<String> {
    match event {
        Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
            Some(settlement.claim.clone())
        }
        Event::AccountPaid { id, .. } | Event::AccountPaymentReversed { id, .. } => {
            Some(id.clone())
        }
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InheritanceView {
    pub member: String,
    pub state: &'static str,
    /// The balance now (as of the time asked): 0.00 once inherited.
    pub balance: Money,
    pub deceased_on: Option<Day>,
    /// The balance at the end of the day of death, by the events' own dates.
    pub balance_on_death: Option<Money>,
    /// Credits and reversals recorded after the death was (credits due for earlier months,
    /// refunds of reversed claims and payments).
    pub after_death: Vec<LateMovement>,
    pub inherited_on: Option<Day>,
    pub inherited_balance: Option<Money>,
    pub payouts: Vec<gongji_domain::event::Payout>,
}

/// How an event moved the member's own balance.
fn balance_movement(member: &str, event: &Event) -> Option<Money> {
    match event {
        Event::Enrolled {
            opening_balance, ..
        } => Some(*opening_balance),
        Event::AccountCredited { amount, .. } => Some(*amount),
        Event::ClaimSettled { settlement } if settlement.member == member => {
            Some(-settlement.account_paid)
        }
        Event::ClaimReversed { settlement, .. } if settlement.member == member => {
            Some(settlement.account_paid)
        }
        Event::AccountPaid { amount, .. } => Some(-*amount),
        Event::AccountPaymentReversed { amount, .. } => Some(*amount),
        Event::Inherited { balance, .. } | Event::TransferSent { balance, .. } => Some(-*balance),
        Event::TransferReceived { balance, .. } => Some(*balance),
        _ => None,
    }
}

impl InheritanceView {
    pub fn of(member: &Member, entries: &[HistoryEntry]) -> InheritanceView {
        let death_position = entries
            .iter()
            .find(|e| matches!(e.event, Event::Deceased { .. }))
            .map(|e| e.position);
        let after_death = death_position
            .map(|p| LateMovement::after(&member.id, entries, p).collect())
            .unwrap_or_default();
        let inherited = entries.iter().find_map(|e| match &e.event {
            Event::Inherited {
                date,
                balance,
                payouts,
                ..
            } => Some((*date, *balance, payouts.clone())),
            _ => None,
        });
        InheritanceView {
            member: member.id.clone(),
            state: account_state(member),
            deceased_on: member.deceased_on,
            balance_on_death: member.deceased_on.map(|day| member.balance_on(day)),
            after_death,
            balance: member.balance,
            inherited_on: inherited.as_ref().map(|i| i.0),
            inherited_balance: inherited.as_ref().map(|i| i.1),
            payouts: inherited.map(|i| i.2).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferView {
    pub date: Day,
    /// The transfer's id, for a transfer between two regions' ledgers (none within one).
    pub transfer: Option<String>,
    pub from_region: String,
    pub to_region: String,
    /// The balance that left `from_region` and arrived in `to_region`: the balance as the
    /// ledger had recorded it when it recorded the transfer.
    pub balance: Money,
    /// The balance at the end of the transfer's day by the events' own dates (what `account
    /// --as-of` that day says): `balance` plus `later_recorded`.
    pub balance_as_of_date: Money,
    /// Movements dated on or before the transfer but recorded after it (late claims, their
    /// reversals, credits for earlier months): they settled in the old region and are why
    /// `balance_as_of_date` differs from `balance`.
    pub later_recorded: Vec<LateMovement>,
    /// Says why the two balances differ, when they do (null otherwise).
    pub note: Option<String>,
    pub position: u64,
    /// When the ledger recorded the transfer, UTC.
    pub recorded_at: Option<String>,
}

impl TransferView {
    fn of(member: &Member, entries: &[HistoryEntry], entry: &HistoryEntry) -> Option<Self> {
        let (transfer, date, from_region, to_region, balance) = match &entry.event {
            Event::Transferred {
                date,
                from_region,
                to_region,
                balance,
                ..
            } => (None, date, from_region, to_region, balance),
            Event::TransferSent {
                transfer,
                date,
                from_region,
                to_region,
                balance,
                ..
            }
            | Event::TransferReceived {
                transfer,
                date,
                from_region,
                to_region,
                balance,
                ..
            } => (
                Some(transfer.clone()),
                date,
                from_region,
                to_region,
                balance,
            ),
            _ => return None,
        };
        let later_recorded: Vec<LateMovement> =
            LateMovement::after(&member.id, entries, entry.position)
                .filter(|m| m.date <= *date)
                .collect();
        let balance_as_of_date = member.balance_on(*date);
        let note = (!later_recorded.is_empty()).then(|| {
            format!(
                "{balance} moved: the balance as recorded when the transfer was; {} later-recorded \
                 movement(s) dated on or before {date} (in later_recorded) make the balance as of \
                 {date} {balance_as_of_date}",
                later_recorded.len()
            )
        });
        Some(TransferView {
            date: *date,
            transfer,
            from_region: from_region.clone(),
            to_region: to_region.clone(),
            balance: *balance,
            balance_as_of_date,
            later_recorded,
            note,
            position: entry.position,
            recorded_at: entry.recorded_at.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransfersView {
    pub member: String,
    pub region: String,
    pub region_since: Day,
    pub transfers: Vec<TransferView>,
}

impl TransfersView {
    pub fn of(member: &Member, entries: &[HistoryEntry]) -> TransfersView {
        let transfers = entries
            .iter()
            .filter_map(|e| TransferView::of(member, entries, e))
            .collect();
        TransfersView {
            member: member.id.clone(),
            region: member.region.clone(),
            region_since: member.region_since,
            transfers,
        }
    }
}

/// Why a claim settled as it did, step by step, from the figures its settlement recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainView {
    /// The claim's id (as in the `claim` command).
    pub id: String,
    pub member: String,
    pub region: String,
    pub date: Day,
    pub year: i32,
    pub policy: String,
    /// The claim's reversal, if it was reversed (null otherwise).
    pub reversed: Option<ReversalView>,
    /// Each step of the arithmetic, in words.
    pub steps: Vec<String>,
    /// The rules of the policy version that chose the deductible, the ratio and the limit
    /// (null when the version or the member is no longer at hand).
    pub rules: Option<AppliedRules>,
    /// Whether the yearly deductible cap, not the rule's own deductible, set what was applied.
    pub deductible_capped: bool,
    pub deductible: Position,
    pub ordinary_limit: LimitPosition,
    pub annual_max: LimitPosition,
    pub account: Position,
    pub settlement: gongji_domain::Settlement,
    /// Every event the claim produced (its settlement and, if reversed, the reversal).
    pub events: Vec<HistoryEntry>,
}

/// Where the rules that settled a claim stand in its policy version's file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedRules {
    /// `outpatient.deductibles[N]`, `outpatient.ratios[N]`, `outpatient.limits[N]`.
    pub deductible: Option<String>,
    pub ratio: Option<String>,
    pub limit: Option<String>,
}

impl AppliedRules {
    /// The rules `policy` chooses for `member` on the settlement's day, at its level and kind
    /// (the status is the settlement's own).
    pub fn of(
        settlement: &gongji_domain::Settlement,
        member: &Member,
        policy: &PolicyVersion,
    ) -> AppliedRules {
        let month = settlement.date.month();
        let facts = Facts {
            status: settlement.status,
            scheme: member.scheme,
            level: Some(settlement.level),
            kind: Some(settlement.institution_kind),
            age: age_in_month(member.born, month),
            in_lump_sum_period: in_lump_sum_period(member.lump_sum_until, month),
        };
        let o = &policy.outpatient;
        let path =
            |list: &str, index: Option<usize>| index.map(|i| format!("outpatient.{list}[{i}]"));
        AppliedRules {
            deductible: path(
                "deductibles",
                o.deductibles.iter().position(|r| r.when.holds(&facts)),
            ),
            ratio: path("ratios", o.ratios.iter().position(|r| r.when.holds(&facts))),
            limit: path("limits", o.limits.iter().position(|r| r.when.holds(&facts))),
        }
    }
}

/// Whether the yearly cap, rather than the group's own deductible, limited what `s` applied.
pub fn deductible_capped(s: &gongji_domain::Settlement) -> bool {
    let b = &s.basis;
    let group_left = b.deductible.saturating_sub(b.deductible_used_before);
    b.deductible_cap.is_some() && s.deductible_applied < group_left.min(s.eligible - s.special_paid)
}

/// A claim's reversal: its own date and reason, and where and when the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReversalView {
    pub date: Day,
    pub reason: String,
    pub position: u64,
    pub recorded_at: Option<String>,
    pub event_id: String,
}

impl ReversalView {
    /// The reversal among a claim's events, if any.
    fn among(events: &[HistoryEntry]) -> Option<ReversalView> {
        events.iter().find_map(|entry| match &entry.event {
            gongji_domain::Event::ClaimReversed { date, reason, .. } => Some(ReversalView {
                date: *date,
                reason: reason.clone(),
                position: entry.position,
                recorded_at: entry.recorded_at.clone(),
                event_id: entry.event_id.clone(),
            }),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Position {
    pub before: Money,
    pub after: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitPosition {
    pub limit: Option<Money>,
    pub before: Money,
    pub after: Money,
}

impl ExplainView {
    pub fn of(
        settlement: &gongji_domain::Settlement,
        events: Vec<HistoryEntry>,
        rules: Option<AppliedRules>,
    ) -> ExplainView {
        let s = settlement;
        let b = &s.basis;
        let bands: Vec<String> = b
            .bands
            .iter()
            .map(|band| match band.up_to {
                Some(end) => format!("{} up to a yearly cost of {end}", band.ratio),
                None => format!("{}", band.ratio),
            })
            .collect();
        let remainder = s.eligible - s.special_paid;
        let mut steps = vec![
            format!(
                "policy {} for {} member, level {} ({}) via {}",
                s.policy,
                name(&s.status),
                s.level,
                name(&s.institution_kind),
                name(&s.channel)
            ),
            format!(
                "eligible {} - special payments {} = {remainder} enters ordinary pooling",
                s.eligible, s.special_paid
            ),
            match (deductible_capped(s), b.deductible_cap) {
                (true, Some(cap)) => format!(
                    "deductible {} ({} of group {} filled before), capped by the yearly \
                     deductible cap {cap} across groups: {} applied",
                    b.deductible, b.deductible_used_before, s.deductible_group, s.deductible_applied
                ),
                _ => format!(
                    "deductible {} ({} of group {} filled before): {} applied",
                    b.deductible, b.deductible_used_before, s.deductible_group, s.deductible_applied
                ),
            },
            format!(
                "({remainder} - {}) at ratio {} (the year's ordinary cost before was {}) = {}, rounded half up to the fen",
                s.deductible_applied,
                bands.join(", then "),
                s.ordinary_cost_before,
                s.ordinary_computed
            ),
        ];
        steps.push(match b.ordinary_limit {
            Some(limit) => format!(
                "annual ordinary limit {limit}, {} used before: ordinary payment {}",
                b.ordinary_paid_before, s.ordinary_paid
            ),
            None => format!(
                "no annual ordinary limit: ordinary payment {}",
                s.ordinary_paid
            ),
        });
        steps.push(match b.annual_max {
            Some(max) => format!(
                "pooled fund's annual maximum {max}, {} paid before and {} special now: pooled fund pays {} of it, the large-amount fund {}",
                b.pooled_paid_before, s.special_paid, s.ordinary_pooled, s.large_amount_paid
            ),
            None => format!("no annual maximum: the pooled fund pays {}", s.ordinary_pooled),
        });
        steps.push(format!(
            "own share {} (+ uncovered {}): {} from the account (balance {}, {} available on {}), {} in cash",
            s.own_share() - s.uncovered,
            s.uncovered,
            s.account_paid,
            b.balance_before,
            b.available_before,
            s.date,
            s.cash_paid
        ));
        if s.reimbursed_to_member > Money::ZERO {
            steps.push(format!(
                "manual claim: the fund pays {} back to the member",
                s.reimbursed_to_member
            ));
        }
        ExplainView {
            id: s.claim.clone(),
            member: s.member.clone(),
            region: s.region.clone(),
            date: s.date,
            year: s.year,
            policy: s.policy.clone(),
            rules,
            deductible_capped: deductible_capped(s),
            deductible: Position {
                before: b.deductible_used_before,
                after: b.deductible_used_before + s.deductible_applied,
            },
            ordinary_limit: LimitPosition {
                limit: b.ordinary_limit,
                before: b.ordinary_paid_before,
                after: b.ordinary_paid_before + s.ordinary_paid,
            },
            annual_max: LimitPosition {
                limit: b.annual_max,
                before: b.pooled_paid_before,
                after: b.pooled_paid_before + s.pooled_paid,
            },
            account: Position {
                before: b.balance_before,
                after: b.balance_before - s.account_paid,
            },
            steps,
            reversed: ReversalView::among(&events),
            events,
            settlement: s.clone(),
        }
    }
}

/// A value's serialized name (`active`, `pharmacy`), for sentences.
fn name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        other => format!("{other:?}"),
    }
}
