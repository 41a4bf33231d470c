//! Timing (时间异常): a claim or payment recorded long after its own date; one recorded for a
//! member after the member's death was; account payments just before an account leaves its
//! holder (a death, which inheritance follows, or a transfer).
//!
//! "Long after" is measured by the ledger's own calendar, the latest own date of a movement
//! recorded before, not by the clock: a history loaded in bulk is judged as it was lived.

use std::collections::VecDeque;

use gongji_domain::{Day, Money};

use super::{day_number, day_plus, Out, Payment};
use crate::flag::{Figure, Found};
use crate::HashMap;

/// An account payment kept for the days before an exit: date, amount, position.
type Debit = (Day, Money, u64);

#[derive(Clone, Default)]
pub(crate) struct Timing {
    /// Per member: account payments within the last `before_exit_days` of the calendar.
    debits: HashMap<String, VecDeque<Debit>>,
    /// Members whose death is recorded: the day and the record's position. Kept for the pass
    /// (deaths are few beside movements).
    deceased: HashMap<String, (Day, u64)>,
}

impl Timing {
    /// A claim or payment of `member` dated `date`, recorded when the calendar stood at
    /// `frontier`.
    pub fn movement(
        &mut self,
        position: u64,
        member: &str,
        date: Day,
        frontier: Option<Day>,
        out: &mut Out,
    ) {
        let rule = &out.rules.timing;
        if let Some(frontier) = frontier {
            let lag = day_number(frontier) - day_number(date);
            if lag > rule.late_days as i32 {
                let found = Found {
                    rule: "timing/late".to_string(),
                    member: Some(member.to_string()),
                    institution: None,
                    from: date,
                    to: frontier,
                    figures: vec![Figure::new(
                        "days_late",
                        lag,
                        format!("> {}", rule.late_days),
                    )],
                    evidence: vec![position],
                };
                out.found(found);
            }
        }
        if let Some(&(died, death)) = self.deceased.get(member) {
            let found = Found {
                rule: "timing/after_death".to_string(),
                member: Some(member.to_string()),
                institution: None,
                from: date,
                to: died,
                figures: vec![Figure::new("deceased_on", died, "recorded before this")],
                evidence: vec![death, position],
            };
            out.found(found);
        }
    }

    pub fn account_debit(&mut self, payment: &Payment<'_>) {
        let debits = self.debits.entry(payment.holder.to_string()).or_default();
        debits.push_back((payment.date, payment.amount, payment.position));
    }

    pub fn deceased(&mut self, position: u64, member: &str, date: Day) {
        self.deceased.insert(member.to_string(), (date, position));
    }

    /// The account of `member` leaves its holder on `date` (`why`: `death` or `transfer`):
    /// what it paid in the days before.
    pub fn exit(&mut self, position: u64, member: &str, date: Day, why: &str, out: &mut Out) {
        let rule = &out.rules.timing;
        let Some(debits) = self.debits.get(member) else {
            return;
        };
        let days = rule.before_exit_days as i32;
        let before: Vec<&Debit> = debits
            .iter()
            .filter(|(d, ..)| (0..=days).contains(&(day_number(date) - day_number(*d))))
            .collect();
        let total: Money = before.iter().map(|d| d.1).sum();
        if total > rule.before_exit_above {
            let mut evidence: Vec<u64> = before.iter().map(|d| d.2).collect();
            evidence.push(position);
            let found = Found {
                rule: format!("timing/before_{why}"),
                member: Some(member.to_string()),
                institution: None,
                from: day_plus(date, -days),
                to: date,
                figures: vec![
                    Figure::new("days", days, "before"),
                    Figure::new("paid", total, format!("> {}", rule.before_exit_above)),
                ],
                evidence,
            };
            out.found(found);
        }
    }

    /// Drops payments too old to be before any exit still to come.
    pub fn sweep(&mut self, horizon: Day, out: &mut Out) {
        let days = out.rules.timing.before_exit_days as i32;
        self.debits.retain(|_, debits| {
            while debits
                .front()
                .is_some_and(|(date, ..)| day_plus(*date, days) < horizon)
            {
                debits.pop_front();
            }
            !debits.is_empty()
        });
    }
}
