//! Institution outliers (机构异常): an institution's month against its own trailing months
//! (claims or fund payments above k times their median), and an unusual share of its claims
//! settled exactly at the deductible or exactly at the annual limit.

use std::collections::BTreeMap;

use gongji_domain::{Day, Money, Month, Settlement};
use rust_decimal::Decimal;

use super::{Claim, Out};
use crate::flag::{Figure, Found};
use crate::rules::InstitutionRule;
use crate::HashMap;

/// One institution's month.
#[derive(Clone, Default)]
struct MonthStat {
    claims: u64,
    fund: Money,
    at_threshold: u64,
    /// The month's claims and, of them, those at a threshold (dropped once judged).
    positions: Vec<u64>,
    at_positions: Vec<u64>,
    judged: bool,
}

/// One institution's months, and the first month it had a claim in (its history starts
/// there, whatever months were dropped since).
#[derive(Clone)]
struct History {
    first: Month,
    months: BTreeMap<Month, MonthStat>,
    /// The latest month judged: a claim recorded later for it or an earlier month is counted
    /// in the trailing months still held, never judged again (nor as a month of its own).
    judged_through: Option<Month>,
}

#[derive(Clone, Default)]
pub(crate) struct Institutions {
    institutions: HashMap<String, History>,
}

/// Whether the claim filled exactly what was left of the deductible, and no more…
fn at_deductible(s: &Settlement) -> bool {
    s.deductible_applied > Money::ZERO
        && s.basis.deductible_used_before + s.deductible_applied == s.basis.deductible
        && s.ordinary_computed == Money::ZERO
}

/// …or brought the year's ordinary payments exactly to the annual limit, without a cut.
fn at_limit(s: &Settlement) -> bool {
    s.basis.ordinary_limit.is_some_and(|limit| {
        s.ordinary_paid > Money::ZERO
            && s.ordinary_paid == s.ordinary_computed
            && s.basis.ordinary_paid_before + s.ordinary_paid == limit
    })
}

impl Institutions {
    pub fn claim(&mut self, claim: &Claim<'_>) {
        let s = claim.settlement;
        let Some(institution) = &s.institution else {
            return;
        };
        let month = s.date.month();
        let history = self
            .institutions
            .entry(institution.clone())
            .or_insert_with(|| History {
                first: month,
                months: BTreeMap::new(),
                judged_through: None,
            });
        if history.judged_through.is_some_and(|judged| month <= judged) {
            if let Some(stat) = history.months.get_mut(&month) {
                stat.claims += 1;
                stat.fund += s.fund_paid();
            }
            return;
        }
        history.first = history.first.min(month);
        let stat = history.months.entry(month).or_default();
        stat.claims += 1;
        stat.fund += s.fund_paid();
        stat.positions.push(claim.position);
        if at_deductible(s) || at_limit(s) {
            stat.at_threshold += 1;
            stat.at_positions.push(claim.position);
        }
    }

    pub fn sweep(&mut self, horizon: Day, out: &mut Out) {
        let rule = &out.rules.institutions;
        let trailing = rule.trailing_months as i32;
        let mut flagged = Vec::new();
        for (institution, history) in &mut self.institutions {
            let (first, months) = (history.first, &mut history.months);
            let due: Vec<Month> = months
                .iter()
                .filter(|(month, stat)| !stat.judged && month.last_day() < horizon)
                .map(|(month, _)| *month)
                .collect();
            if let Some(&last) = due.last() {
                history.judged_through = Some(last);
            }
            for month in due {
                let history_complete = month.months_since(first) >= trailing;
                let before: Vec<(u64, Money)> = (1..=trailing)
                    .map(|back| {
                        let earlier = month_before(month, back);
                        months
                            .get(&earlier)
                            .map_or((0, Money::ZERO), |s| (s.claims, s.fund))
                    })
                    .collect();
                let stat = months.get_mut(&month).expect("a due month is held");
                judge(
                    rule,
                    institution,
                    month,
                    stat,
                    &before,
                    history_complete,
                    &mut flagged,
                );
                stat.judged = true;
                stat.positions = Vec::new();
                stat.at_positions = Vec::new();
            }
            // What no later month's trailing window reaches any more.
            if let Some(&last_judged) = months.iter().rev().find(|(_, s)| s.judged).map(|(m, _)| m)
            {
                let keep_from = month_before(last_judged, trailing - 1);
                months.retain(|month, stat| !stat.judged || *month >= keep_from);
            }
        }
        for found in flagged {
            out.found(found);
        }
    }
}

fn month_before(month: Month, back: i32) -> Month {
    let index = month.year() * 12 + month.month_of_year() as i32 - 1 - back;
    Month::new(index.div_euclid(12), index.rem_euclid(12) as u32 + 1).unwrap_or(month)
}

fn judge(
    rule: &InstitutionRule,
    institution: &str,
    month: Month,
    stat: &mut MonthStat,
    before: &[(u64, Money)],
    history_complete: bool,
    flagged: &mut Vec<Found>,
) {
    if stat.claims < u64::from(rule.claims_min) {
        return;
    }
    let k = i64::from(rule.times_median);
    let flag = |check: &str, figures: Vec<Figure>, evidence: Vec<u64>| Found {
        rule: format!("institution/{check}"),
        member: None,
        institution: Some(institution.to_string()),
        from: month.first_day(),
        to: month.last_day(),
        figures,
        evidence,
    };
    if history_complete {
        let counts: Vec<i64> = before.iter().map(|b| b.0 as i64).collect();
        if let Some(median) = above_times_median(stat.claims as i64, &counts, k) {
            flagged.push(flag(
                "claims",
                vec![Figure::new(
                    "claims",
                    stat.claims,
                    format!(
                        "> {k} x median {median} of the {} months before",
                        counts.len()
                    ),
                )],
                stat.positions.clone(),
            ));
        }
        let funds: Vec<i64> = before.iter().map(|b| b.1.fen()).collect();
        if let Some(median) = above_times_median(stat.fund.fen(), &funds, k) {
            let median = (median / Decimal::ONE_HUNDRED).round_dp(2);
            flagged.push(flag(
                "fund",
                vec![Figure::new(
                    "fund_paid",
                    stat.fund,
                    format!(
                        "> {k} x median {median} of the {} months before",
                        funds.len()
                    ),
                )],
                stat.positions.clone(),
            ));
        }
    }
    let share = Decimal::from(stat.at_threshold) / Decimal::from(stat.claims);
    if share > rule.at_threshold_share.as_decimal() {
        flagged.push(flag(
            "at_threshold",
            vec![
                Figure::new("at_threshold", stat.at_threshold, ""),
                Figure::new("claims", stat.claims, format!(">= {}", rule.claims_min)),
                Figure::new(
                    "share",
                    share.round_dp(4),
                    format!("> {}", rule.at_threshold_share),
                ),
            ],
            std::mem::take(&mut stat.at_positions),
        ));
    }
}

/// The median of `values` (the mean of the two middle ones for an even count) when `value` is
/// above `k` times it; None otherwise.
fn above_times_median(value: i64, values: &[i64], k: i64) -> Option<Decimal> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let median = if n % 2 == 1 {
        Decimal::from(sorted[n / 2])
    } else {
        (Decimal::from(sorted[n / 2 - 1]) + Decimal::from(sorted[n / 2])) / Decimal::TWO
    };
    (Decimal::from(value) > Decimal::from(k) * median).then_some(median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(
            above_times_median(31, &[10, 0, 20], 3),
            Some(Decimal::from(10))
        );
        assert_eq!(above_times_median(30, &[10, 0, 20], 3), None);
        assert_eq!(
            above_times_median(46, &[10, 20, 0, 40], 3),
            Some(Decimal::from(15))
        );
        assert_eq!(above_times_median(45, &[10, 20, 0, 40], 3), None);
    }
}
