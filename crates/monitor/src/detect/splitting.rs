//! Splitting (分解支付, the 套现 pattern): several account payments by one member at one place
//! within a few days, each under the single-payment threshold, together above the total.

use std::collections::VecDeque;

use gongji_domain::{Day, Money};

use super::{day_number, day_plus, Out, Payment};
use crate::flag::{Figure, Found};
use crate::rules::{MonitorRules, SplittingRule};
use crate::HashMap;

/// One small payment: its date, amount and position.
type Small = (Day, Money, u64);

#[derive(Clone, Default)]
pub(crate) struct Splitting {
    /// Per (member, institution): the small payments not judged yet, by date.
    open: HashMap<(String, String), VecDeque<Small>>,
}

impl Splitting {
    pub fn payment(&mut self, payment: &Payment<'_>, rules: &MonitorRules) {
        let Some(institution) = payment.institution else {
            return;
        };
        if payment.amount >= rules.splitting.each_below {
            return;
        }
        let key = (payment.holder.to_string(), institution.to_string());
        let smalls = self.open.entry(key).or_default();
        // Nearly always at the end: movements arrive about in date order.
        let at = smalls
            .iter()
            .rposition(|(date, ..)| *date <= payment.date)
            .map_or(0, |at| at + 1);
        smalls.insert(at, (payment.date, payment.amount, payment.position));
    }

    /// Judges every cluster that nothing recorded from `horizon` on could join: the earliest
    /// payment and those within the window after it; a cluster that crosses the threshold is
    /// flagged and dropped, otherwise only its first payment is.
    pub fn sweep(&mut self, horizon: Day, out: &mut Out) {
        let rule = &out.rules.splitting;
        let window = rule.window_days as i32;
        let mut flagged = Vec::new();
        self.open.retain(|(member, institution), smalls| {
            while let Some(&(first, ..)) = smalls.front() {
                if day_plus(first, window) >= horizon {
                    break;
                }
                let in_window = smalls
                    .iter()
                    .take_while(|(date, ..)| day_number(*date) - day_number(first) < window)
                    .count();
                let total: Money = smalls.iter().take(in_window).map(|s| s.1).sum();
                if in_window >= rule.count_min as usize && total > rule.total_above {
                    let cluster: Vec<Small> = smalls.drain(..in_window).collect();
                    flagged.push(found(rule, member, institution, &cluster, total));
                } else {
                    smalls.pop_front();
                }
            }
            !smalls.is_empty()
        });
        for found in flagged {
            out.found(found);
        }
    }
}

fn found(
    rule: &SplittingRule,
    member: &str,
    institution: &str,
    cluster: &[Small],
    total: Money,
) -> Found {
    Found {
        rule: "splitting".to_string(),
        member: Some(member.to_string()),
        institution: Some(institution.to_string()),
        from: cluster[0].0,
        to: cluster[cluster.len() - 1].0,
        figures: vec![
            Figure::new("payments", cluster.len(), format!(">= {}", rule.count_min)),
            Figure::new(
                "largest",
                cluster.iter().map(|s| s.1).max().unwrap_or_default(),
                format!("< {}", rule.each_below),
            ),
            Figure::new("total", total, format!("> {}", rule.total_above)),
        ],
        evidence: cluster.iter().map(|s| s.2).collect(),
    }
}
