//! What the queries answer, shaped for people and for JSON.

use serde::Serialize;

use gongji_domain::policy::{in_lump_sum_period, Facts};
use gongji_domain::state::{Fund, Member};
use gongji_domain::time::age_in_month;
use gongji_domain::types::{Scheme, Status};
use gongji_domain::{Day, Event, Money, PolicyVersion};
use gongji_log::Record;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountView {
    pub member: String,
    pub region: String,
    pub balance: Money,
    pub credited_total: Money,
    pub paid_total: Money,
    pub scheme: Scheme,
    pub retired_on: Option<Day>,
    pub enrolled_on: Day,
    pub months_credited: usize,
    pub family: Vec<FamilyView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyView {
    pub relative: String,
    pub relation: gongji_domain::types::Relation,
    pub since: Day,
    pub until: Option<Day>,
}

impl AccountView {
    pub fn of(member: &Member) -> AccountView {
        AccountView {
            member: member.id.clone(),
            region: member.region.clone(),
            balance: member.balance,
            credited_total: member.account_in,
            paid_total: member.account_out,
            scheme: member.scheme,
            retired_on: member.retired_on,
            enrolled_on: member.enrolled_on,
            months_credited: member.credited_months.len(),
            family: member
                .family
                .iter()
                .map(|(relative, b)| FamilyView {
                    relative: relative.clone(),
                    relation: b.relation,
                    since: b.since,
                    until: b.until,
                })
                .collect(),
        }
    }
}

/// A member's standing in one insurance year.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct YearView {
    pub member: String,
    pub year: i32,
    /// The policy version in force at the end of the year (or today's, for the current year).
    pub policy: Option<String>,
    pub status: Status,
    pub deductible: Option<Money>,
    pub deductible_used: Money,
    pub deductible_remaining: Option<Money>,
    pub ordinary_paid: Money,
    pub ordinary_limit: Option<Money>,
    pub ordinary_remaining: Option<Money>,
    pub special_paid: Money,
    pub pooled_paid: Money,
    pub large_amount_paid: Money,
    pub claims: u32,
}

impl YearView {
    /// The limit and deductible figures are those of the policy version in force on the last day
    /// of the insurance year, for the member's status on that day.
    pub fn of(member: &Member, year: i32, policies: &[PolicyVersion]) -> YearView {
        let counters = member.year(year);
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
            age: age_in_month(member.born, status_day.month()),
            in_lump_sum_period: in_lump_sum_period(member.lump_sum_until, status_day.month()),
        };
        let policy = year_end.map(|(p, _)| p);
        let deductible_rule = policy.and_then(|p| p.deductible_rule(&facts));
        let deductible = deductible_rule.map(|r| r.amount);
        let deductible_used = counters.deductible_used_total();
        let ordinary_limit = policy
            .and_then(|p| p.limit_rule(&facts))
            .and_then(|r| r.amount);
        YearView {
            member: member.id.clone(),
            year,
            policy: policy.map(|p| p.version.clone()),
            status,
            deductible,
            deductible_used,
            deductible_remaining: deductible.map(|d| d.saturating_sub(deductible_used)),
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
    fn of(fund: &Fund) -> FundFigures {
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
}

impl FundView {
    pub fn of(region: &str, pooled: Fund, large: Fund) -> FundView {
        FundView {
            region: region.to_string(),
            pooled: FundFigures::of(&pooled),
            large_amount: FundFigures::of(&large),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub position: u64,
    pub version: u64,
    pub event_id: String,
    pub recorded_at_micros: i64,
    #[serde(flatten)]
    pub event: Event,
}

impl HistoryEntry {
    pub fn of(record: &Record, event: &Event) -> HistoryEntry {
        HistoryEntry {
            position: record.position,
            version: record.stream_version,
            event_id: record.event_id.to_string(),
            recorded_at_micros: record.recorded_at_micros,
            event: event.clone(),
        }
    }
}
