//! Family sharing (家庭共济): a holder's account paying for relatives above an amount in a
//! year, for many relatives at pharmacies on one day, or much just after a relative is bound.
//! Only payments for care and medicine count (a relative's premium is what sharing is for).

use gongji_domain::{Day, Money};

use super::{day_number, day_plus, Out, Payment};
use crate::flag::{Figure, Found};
use crate::rules::{MonitorRules, Place};
use crate::HashMap;

/// Payments summed over a window: their total, first and last day and positions.
#[derive(Clone, Default)]
struct Sum {
    total: Money,
    from: Option<Day>,
    to: Option<Day>,
    positions: Vec<u64>,
}

impl Sum {
    fn add(&mut self, date: Day, amount: Money, position: u64) {
        self.total += amount;
        self.from = Some(self.from.map_or(date, |d| d.min(date)));
        self.to = Some(self.to.map_or(date, |d| d.max(date)));
        self.positions.push(position);
    }
}

/// A binding still in its first days: when and where it was recorded, and what was paid for
/// the relative since.
#[derive(Clone)]
struct Binding {
    date: Day,
    position: u64,
    paid: Sum,
}

#[derive(Clone, Default)]
pub(crate) struct Family {
    /// Per (holder, insurance year): payments for relatives.
    yearly: HashMap<(String, i32), Sum>,
    /// Per (holder, day): the relatives paid for at pharmacies, with the positions.
    pharmacy_day: HashMap<(String, Day), Vec<(String, u64)>>,
    /// Per (holder, relative): bindings within their first days.
    bound: HashMap<(String, String), Vec<Binding>>,
}

impl Family {
    pub fn bound(&mut self, position: u64, holder: &str, relative: &str, date: Day) {
        self.bound
            .entry((holder.to_string(), relative.to_string()))
            .or_default()
            .push(Binding {
                date,
                position,
                paid: Sum::default(),
            });
    }

    pub fn payment(&mut self, payment: &Payment<'_>, rules: &MonitorRules) {
        if payment.of_claim || payment.beneficiary == payment.holder {
            return;
        }
        let (date, amount, position) = (payment.date, payment.amount, payment.position);
        let holder = payment.holder.to_string();
        self.yearly
            .entry((holder.clone(), payment.year))
            .or_default()
            .add(date, amount, position);
        if payment.place == Place::Pharmacy {
            self.pharmacy_day
                .entry((holder.clone(), date))
                .or_default()
                .push((payment.beneficiary.to_string(), position));
        }
        let days = rules.family.after_binding_days as i32;
        if let Some(bindings) = self
            .bound
            .get_mut(&(holder, payment.beneficiary.to_string()))
        {
            for binding in bindings {
                let since = day_number(date) - day_number(binding.date);
                if (0..=days).contains(&since) {
                    binding.paid.add(date, amount, position);
                }
            }
        }
    }

    pub fn sweep(&mut self, horizon: Day, out: &mut Out) {
        let rule = &out.rules.family;
        let mut flagged = Vec::new();
        self.yearly.retain(|(holder, year), sum| {
            let year_end = Day::from_ymd(*year, 12, 31).unwrap_or(horizon);
            let due = sum.to.map_or(year_end, |to| to.max(year_end));
            if due >= horizon {
                return true;
            }
            if sum.total > rule.yearly_above {
                flagged.push(Found {
                    rule: "family/yearly".to_string(),
                    member: Some(holder.clone()),
                    institution: None,
                    from: sum.from.expect("a sum has a payment"),
                    to: sum.to.expect("a sum has a payment"),
                    figures: vec![
                        Figure::new("year", year, ""),
                        Figure::new(
                            "paid_for_relatives",
                            sum.total,
                            format!("> {}", rule.yearly_above),
                        ),
                    ],
                    evidence: std::mem::take(&mut sum.positions),
                });
            }
            false
        });
        let day_min = rule.relatives_per_day_min as usize;
        self.pharmacy_day.retain(|(holder, date), paid| {
            if *date >= horizon {
                return true;
            }
            let mut relatives: Vec<&str> = paid.iter().map(|(r, _)| r.as_str()).collect();
            relatives.sort_unstable();
            relatives.dedup();
            if relatives.len() >= day_min {
                flagged.push(Found {
                    rule: "family/pharmacy_day".to_string(),
                    member: Some(holder.clone()),
                    institution: None,
                    from: *date,
                    to: *date,
                    figures: vec![
                        Figure::new("relatives", relatives.len(), format!(">= {day_min}")),
                        Figure::new("paid_for", relatives.join(" "), ""),
                    ],
                    evidence: paid.iter().map(|(_, p)| *p).collect(),
                });
            }
            false
        });
        let days = rule.after_binding_days as i32;
        self.bound.retain(|(holder, relative), bindings| {
            bindings.retain_mut(|binding| {
                let end = day_plus(binding.date, days);
                if end >= horizon {
                    return true;
                }
                if binding.paid.total > rule.after_binding_above {
                    let mut evidence = vec![binding.position];
                    evidence.append(&mut binding.paid.positions);
                    flagged.push(Found {
                        rule: "family/after_binding".to_string(),
                        member: Some(holder.clone()),
                        institution: None,
                        from: binding.date,
                        to: end,
                        figures: vec![
                            Figure::new("relative", relative, ""),
                            Figure::new("days", days, "bound within"),
                            Figure::new(
                                "paid_for_relative",
                                binding.paid.total,
                                format!("> {}", rule.after_binding_above),
                            ),
                        ],
                        evidence,
                    });
                }
                false
            });
            !bindings.is_empty()
        });
        for found in flagged {
            out.found(found);
        }
    }
}
