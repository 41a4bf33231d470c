//! Frequency (就诊频次): a member's claims or account payments of one place in one calendar
//! period, above the rule's `max`.

use gongji_domain::Day;

use super::{day_number, day_plus, Claim, Out, Payment};
use crate::flag::{Figure, Found};
use crate::rules::{FrequencyRule, MonitorRules, Movements, Period, Place};
use crate::HashMap;

/// (rule's index, member, the period's first day).
type Key = (usize, String, Day);

#[derive(Clone, Default)]
pub(crate) struct Frequency {
    /// The positions counted in each open period.
    open: HashMap<Key, Vec<u64>>,
}

impl Frequency {
    pub fn claim(&mut self, claim: &Claim<'_>, rules: &MonitorRules) {
        let s = claim.settlement;
        self.count(
            Movements::Claims,
            claim.place,
            &s.member,
            s.date,
            claim.position,
            rules,
        );
    }

    pub fn payment(&mut self, payment: &Payment<'_>, rules: &MonitorRules) {
        if payment.of_claim {
            // A claim's account share is counted as the claim.
            return;
        }
        self.count(
            Movements::AccountPayments,
            Some(payment.place),
            payment.holder,
            payment.date,
            payment.position,
            rules,
        );
    }

    fn count(
        &mut self,
        movements: Movements,
        place: Option<Place>,
        member: &str,
        date: Day,
        position: u64,
        rules: &MonitorRules,
    ) {
        for (at, rule) in rules.frequency.iter().enumerate() {
            let place_matches = rule.place == Place::Any || Some(rule.place) == place;
            if rule.movements == movements && place_matches {
                let key = (at, member.to_string(), period_start(rule.period, date));
                self.open.entry(key).or_default().push(position);
            }
        }
    }

    pub fn sweep(&mut self, horizon: Day, out: &mut Out) {
        let rules = std::sync::Arc::clone(&out.rules);
        let mut closed = Vec::new();
        self.open.retain(|(at, member, start), positions| {
            let rule = &rules.frequency[*at];
            let end = period_end(rule.period, *start);
            if end >= horizon {
                return true;
            }
            if positions.len() > rule.max as usize {
                closed.push(found(rule, member, *start, end, std::mem::take(positions)));
            }
            false
        });
        for found in closed {
            out.found(found);
        }
    }
}

fn found(rule: &FrequencyRule, member: &str, from: Day, to: Day, evidence: Vec<u64>) -> Found {
    Found {
        rule: format!("frequency/{}", rule.name),
        member: Some(member.to_string()),
        institution: None,
        from,
        to,
        figures: vec![Figure::new(
            "count",
            evidence.len(),
            format!("> {}", rule.max),
        )],
        evidence,
    }
}

/// The first day of the period holding `date`.
fn period_start(period: Period, date: Day) -> Day {
    match period {
        Period::Day => date,
        // 0001-01-01, day 1, was a Monday.
        Period::Week => day_plus(date, -(day_number(date) - 1).rem_euclid(7)),
        Period::Month => date.month().first_day(),
    }
}

fn period_end(period: Period, start: Day) -> Day {
    match period {
        Period::Day => start,
        Period::Week => day_plus(start, 6),
        Period::Month => start.month().last_day(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday() {
        // 2024-03-06 was a Wednesday.
        let wednesday = Day::from_ymd(2024, 3, 6).unwrap();
        assert_eq!(
            period_start(Period::Week, wednesday),
            Day::from_ymd(2024, 3, 4).unwrap()
        );
        let monday = Day::from_ymd(2024, 3, 4).unwrap();
        assert_eq!(period_start(Period::Week, monday), monday);
        assert_eq!(
            period_end(Period::Week, monday),
            Day::from_ymd(2024, 3, 10).unwrap()
        );
    }
}
