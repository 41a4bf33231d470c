//! Duplicate visits (重复结算): one institution's visit id settled more than once, or one
//! member's claims settled at several institutions on one day. A claim reversed before its
//! window is judged is not counted.

use gongji_domain::Day;

use super::{day_number, day_plus, Claim, Out};
use crate::flag::{Figure, Found};
use crate::rules::{MonitorRules, Place};
use crate::HashMap;

/// A claim in an open window: its id, date and position (and, for the same-day check, its
/// institution).
#[derive(Clone)]
struct Seen {
    claim: String,
    date: Day,
    position: u64,
    institution: String,
}

#[derive(Clone, Default)]
pub(crate) struct Visits {
    /// Per (institution, visit id): its claims.
    by_visit: HashMap<(String, String), Vec<Seen>>,
    /// Per (member, day): the member's claims at institutions that day.
    by_day: HashMap<(String, Day), Vec<Seen>>,
    /// The claims in open windows: in how many, and whether reversed since.
    open_claims: HashMap<String, (u8, bool)>,
}

impl Visits {
    pub fn claim(&mut self, claim: &Claim<'_>, _rules: &MonitorRules) {
        let s = claim.settlement;
        let Some(institution) = &s.institution else {
            return;
        };
        let seen = || Seen {
            claim: s.claim.clone(),
            date: s.date,
            position: claim.position,
            institution: institution.clone(),
        };
        if let Some(visit) = &s.visit {
            let key = (institution.clone(), visit.clone());
            self.by_visit.entry(key).or_default().push(seen());
            self.open_claims.entry(s.claim.clone()).or_default().0 += 1;
        }
        if claim.place == Some(Place::Institution) {
            let key = (s.member.clone(), s.date);
            self.by_day.entry(key).or_default().push(seen());
            self.open_claims.entry(s.claim.clone()).or_default().0 += 1;
        }
    }

    pub fn reversed(&mut self, claim: &str) {
        if let Some(open) = self.open_claims.get_mut(claim) {
            open.1 = true;
        }
    }

    pub fn sweep(&mut self, horizon: Day, out: &mut Out) {
        let rule = &out.rules.duplicate_visit;
        let window = rule.visit_window_days as i32;
        let day_min = rule.institutions_per_day_min as usize;
        let mut judged: Vec<Vec<Seen>> = Vec::new();
        let mut flagged = Vec::new();
        self.by_visit.retain(|(institution, visit), seen| {
            let last = seen
                .iter()
                .map(|s| s.date)
                .max()
                .expect("a visit has a claim");
            if day_plus(last, window) >= horizon {
                return true;
            }
            let mut settled: Vec<&Seen> = seen
                .iter()
                .filter(|s| !self.open_claims.get(&s.claim).is_some_and(|o| o.1))
                .collect();
            settled.sort_by_key(|s| (s.date, s.position));
            // Claims of one visit id further apart than the window are separate visits.
            for run in settled.chunk_by(|a, b| day_number(b.date) - day_number(a.date) <= window) {
                if run.len() >= 2 {
                    flagged.push(same_visit(institution, visit, run));
                }
            }
            judged.push(std::mem::take(seen));
            false
        });
        self.by_day.retain(|(member, date), seen| {
            if *date >= horizon {
                return true;
            }
            let mut settled: Vec<&Seen> = seen
                .iter()
                .filter(|s| !self.open_claims.get(&s.claim).is_some_and(|o| o.1))
                .collect();
            settled.sort_by(|a, b| a.institution.cmp(&b.institution));
            let mut places: Vec<&str> = settled.iter().map(|s| s.institution.as_str()).collect();
            places.dedup();
            if places.len() >= day_min {
                flagged.push(same_day(member, *date, &places, &settled, day_min));
            }
            judged.push(std::mem::take(seen));
            false
        });
        for seen in judged.iter().flatten() {
            if let Some(open) = self.open_claims.get_mut(&seen.claim) {
                open.0 -= 1;
                if open.0 == 0 {
                    self.open_claims.remove(&seen.claim);
                }
            }
        }
        for found in flagged {
            out.found(found);
        }
    }
}

fn same_visit(institution: &str, visit: &str, settled: &[&Seen]) -> Found {
    Found {
        rule: "duplicate_visit/same_visit".to_string(),
        member: None,
        institution: Some(institution.to_string()),
        from: settled.iter().map(|s| s.date).min().expect("two claims"),
        to: settled.iter().map(|s| s.date).max().expect("two claims"),
        figures: vec![
            Figure::new("visit", visit, "settled once"),
            Figure::new("claims", settled.len(), "> 1"),
        ],
        evidence: settled.iter().map(|s| s.position).collect(),
    }
}

fn same_day(member: &str, date: Day, places: &[&str], settled: &[&Seen], min: usize) -> Found {
    Found {
        rule: "duplicate_visit/same_day".to_string(),
        member: Some(member.to_string()),
        institution: None,
        from: date,
        to: date,
        figures: vec![
            Figure::new("institutions", places.len(), format!(">= {min}")),
            Figure::new("places", places.join(" "), ""),
        ],
        evidence: settled.iter().map(|s| s.position).collect(),
    }
}
