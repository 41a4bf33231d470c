//! The synthetic region generator: a seeded year (or any number of months)
//! of commands for `gongji apply`, as JSON Lines (README's command table).
//!
//! Shape of a generated region (all rates per member unless said):
//! - 73% active (aged 22–59 at the start), 27% retired (60–92); active
//!   schemes employer 85%, individual tier 2 10%, tier 1 5%; retired schemes
//!   employer 85%, tier 2 7%, lump sum 8% (base 3,000–8,000, period ending
//!   in a month from the 6th to seven years later).
//! - 60% open with a balance; 3% enrol during the period instead of at its start.
//! - Contribution bases log-normal around 6,500.00 (3,500–35,000); every
//!   active member contributes monthly, 2% of months skipped.
//! - 25% of members bind 1–3 relatives (spouse, child, parent) early on; 1% of
//!   bindings are undone later.
//! - 40% of active members aged 59 retire during the period.
//! - Claims: 0.06 a month for actives, 0.18 for retirees; levels 1/2/3 at
//!   45/35/20%, channels institution/pharmacy/manual at 55/35/10%; eligible
//!   cost log-normal around 180.00 (twice that at level 3); 4% carry a special
//!   payment, 25% an uncovered cost, 10% do not use the account.
//! - Account payments 0.2 a month (30% of those with relatives pay for one);
//!   15% of retirees pay the large-amount premium in the first month.
//! - 1% of claims and payments are reversed a few days later.
//! - One `allocate` a month for the region.
//! - With [`generate_planted`], cases of misuse on members of their own ([`crate::plant`]).

use std::io::{self, Write};

use crate::plant::Planting;
use crate::rng::Rng;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    pub members: u64,
    pub seed: u64,
    pub months: u32,
    pub start_year: i32,
    /// 1..=12
    pub start_month: u32,
    pub region: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            members: 1000,
            seed: 1,
            months: 12,
            start_year: 2024,
            start_month: 1,
            region: "500000".into(),
        }
    }
}

/// How many lines of each command were written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub lines: u64,
    pub enroll: u64,
    pub contribute: u64,
    pub allocate: u64,
    pub claim: u64,
    pub account_pay: u64,
    pub bind_family: u64,
    pub unbind_family: u64,
    pub retire: u64,
    pub reverse: u64,
    /// Lines of planted misuse ([`crate::plant`]).
    pub planted: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Retired,
}

struct Member {
    born: (i32, u32, u32),
    status: Status,
    scheme: &'static str,
    base_fen: u64,
    /// Month index (from 0) of enrolment.
    enrolled: u32,
    /// Month index in which the member retires (actives only).
    retires: Option<u32>,
    relatives: Vec<Relative>,
}

struct Relative {
    /// Month index from which the relative is bound, and until which (exclusive), if unbound.
    from: u32,
    until: Option<u32>,
}

fn days_in(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn fen(amount: u64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

fn member_id(i: u64) -> String {
    format!("M{i:07}")
}

fn relative_id(i: u64, k: usize) -> String {
    format!("M{i:07}-R{k}")
}

/// A line to emit in a month, ordered by day (0: month-level commands first).
struct Line {
    day: u32,
    seq: u64,
    text: String,
}

/// Writes the commands and returns what was written.
pub fn generate(config: &Config, out: &mut dyn Write) -> io::Result<Stats> {
    generate_planted(config, &Planting::default(), out)
}

/// As [`generate`], with `planting`'s lines added to their months (after the ordinary lines
/// of the same day): the ordinary lines are the same as without it.
pub fn generate_planted(
    config: &Config,
    planting: &Planting,
    out: &mut dyn Write,
) -> io::Result<Stats> {
    assert!((1..=12).contains(&config.start_month), "start month 1..=12");
    let mut gen = Generator {
        config,
        rng: Rng::new(config.seed),
        stats: Stats::default(),
        claim_seq: 0,
        pay_seq: 0,
        visit_seq: 0,
        seq: 0,
        lines: Vec::new(),
    };
    let members: Vec<Member> = (0..config.members).map(|_| gen.member()).collect();
    for index in 0..config.months {
        let (year, mon) = gen.month_at(index);
        let month = MonthAt {
            index,
            year,
            mon,
            days: days_in(year, mon),
        };
        gen.lines.clear();
        for (i, m) in members.iter().enumerate() {
            gen.member_month(i as u64, m, &month);
        }
        for line in planting.lines.iter().filter(|l| l.month == index) {
            gen.push(line.day, line.text.clone());
            gen.stats.planted += 1;
        }
        // The monthly allocation run, after the month's enrolments.
        let region = &config.region;
        gen.push(
            1,
            format!(r#"{{"cmd":"allocate","region":"{region}","month":"{year:04}-{mon:02}"}}"#),
        );
        gen.stats.allocate += 1;
        gen.lines.sort_by_key(|l| (l.day, l.seq));
        for line in &gen.lines {
            out.write_all(line.text.as_bytes())?;
            out.write_all(b"\n")?;
        }
        gen.stats.lines += gen.lines.len() as u64;
    }
    out.flush()?;
    Ok(gen.stats)
}

/// One month of the period: its index from 0, year, month of year and length.
struct MonthAt {
    index: u32,
    year: i32,
    mon: u32,
    days: u32,
}

impl MonthAt {
    fn date(&self, day: u32) -> String {
        format!("{:04}-{:02}-{day:02}", self.year, self.mon)
    }
}

/// The generator's state: the random stream (every draw in a fixed order, so a seed gives the
/// same file), the counts, the id sequences, and the current month's lines.
struct Generator<'c> {
    config: &'c Config,
    rng: Rng,
    stats: Stats,
    claim_seq: u64,
    pay_seq: u64,
    visit_seq: u64,
    seq: u64,
    lines: Vec<Line>,
}

impl Generator<'_> {
    fn month_at(&self, index: u32) -> (i32, u32) {
        let zero_based = self.config.start_month - 1 + index;
        (
            self.config.start_year + (zero_based / 12) as i32,
            zero_based % 12 + 1,
        )
    }

    fn push(&mut self, day: u32, text: String) {
        self.seq += 1;
        self.lines.push(Line {
            day,
            seq: self.seq,
            text,
        });
    }

    /// A new member: status, age, scheme, enrolment, retirement, relatives, birthday, base.
    fn member(&mut self) -> Member {
        let (rng, months) = (&mut self.rng, self.config.months);
        let status = if rng.chance(0.27) {
            Status::Retired
        } else {
            Status::Active
        };
        let age = match status {
            Status::Active => rng.range(22, 59),
            Status::Retired => rng.range(60, 92),
        } as i32;
        let scheme = match status {
            Status::Active => {
                ["employer", "individual_tier2", "individual_tier1"][rng.weighted(&[85, 10, 5])]
            }
            Status::Retired => {
                ["employer", "individual_tier2", "lump_sum"][rng.weighted(&[85, 7, 8])]
            }
        };
        let enrolled = if months > 1 && rng.chance(0.03) {
            rng.range(1, u64::from(months - 1)) as u32
        } else {
            0
        };
        let retires = (status == Status::Active && age == 59 && rng.chance(0.4) && months > 1)
            .then(|| rng.range(u64::from(enrolled) + 1, u64::from(months)) as u32)
            .filter(|&m| m < months);
        let relatives = if rng.chance(0.25) {
            (0..rng.range(1, 3))
                .map(|_| {
                    let from = enrolled + rng.below(3) as u32;
                    let until = rng.chance(0.01).then(|| from + 1 + rng.below(6) as u32);
                    Relative { from, until }
                })
                .collect()
        } else {
            Vec::new()
        };
        Member {
            born: (
                self.config.start_year - age - 1 + i32::from(rng.chance(0.5)),
                rng.range(1, 12) as u32,
                rng.range(1, 28) as u32,
            ),
            status,
            scheme,
            base_fen: match scheme {
                "employer" => rng.amount_fen(6500.0, 0.45, 350_000, 3_500_000),
                _ => rng.amount_fen(5000.0, 0.2, 350_000, 1_000_000),
            },
            enrolled,
            retires,
            relatives,
        }
    }

    /// Member `i`'s lines of `month`: enrolment, retirement, contribution, bindings, claims,
    /// account payments.
    fn member_month(&mut self, i: u64, m: &Member, month: &MonthAt) {
        let id = member_id(i);
        if month.index < m.enrolled {
            return;
        }
        if month.index == m.enrolled {
            self.enroll(&id, m, month);
        }
        let retired = m.status == Status::Retired || m.retires.is_some_and(|r| month.index > r);
        if m.retires == Some(month.index) {
            let text = format!(
                r#"{{"cmd":"retire","member":"{id}","date":"{}"}}"#,
                month.date(15)
            );
            self.push(15, text);
            self.stats.retire += 1;
        }
        // Contributions (month-level, before the claims of the month).
        if !retired && m.retires != Some(month.index) && !self.rng.chance(0.02) {
            let text = format!(
                r#"{{"cmd":"contribute","member":"{id}","month":"{:04}-{:02}","base":"{}"}}"#,
                month.year,
                month.mon,
                fen(m.base_fen)
            );
            self.push(0, text);
            self.stats.contribute += 1;
        }
        self.bindings(i, &id, m, month);
        let rate = if retired { 0.18 } else { 0.06 };
        let claims = u32::from(self.rng.chance(rate)) + u32::from(self.rng.chance(rate * rate));
        for _ in 0..claims {
            self.claim(&id, month);
        }
        self.payments(i, &id, m, month, retired);
    }

    fn enroll(&mut self, id: &str, m: &Member, month: &MonthAt) {
        let region = &self.config.region;
        let (by, bm, bd) = m.born;
        let mut text = format!(
            r#"{{"cmd":"enroll","member":"{id}","region":"{region}","born":"{by:04}-{bm:02}-{bd:02}","status":"{}","scheme":"{}","date":"{}""#,
            if m.status == Status::Active {
                "active"
            } else {
                "retired"
            },
            m.scheme,
            month.date(1)
        );
        if self.rng.chance(0.6) {
            let opening = self.rng.amount_fen(1500.0, 0.8, 100, 5_000_000);
            text.push_str(&format!(r#","opening_balance":"{}""#, fen(opening)));
        }
        if m.scheme == "lump_sum" {
            let base = self.rng.range(3000, 8000) * 100;
            let until = 5 + self.rng.below(84) as u32;
            let (uy, um) = self.month_at(until);
            text.push_str(&format!(
                r#","lump_sum_base":"{}","lump_sum_until":"{uy:04}-{um:02}""#,
                fen(base)
            ));
        }
        text.push('}');
        self.push(0, text);
        self.stats.enroll += 1;
    }

    /// Family bindings starting this month, and unbindings ending one.
    fn bindings(&mut self, i: u64, id: &str, m: &Member, month: &MonthAt) {
        for (k, relative) in m.relatives.iter().enumerate() {
            if relative.from == month.index {
                let relation = ["spouse", "child", "parent"][self.rng.weighted(&[50, 30, 20])];
                let day = if month.index == m.enrolled { 2 } else { 1 };
                let text = format!(
                    r#"{{"cmd":"bind_family","holder":"{id}","relative":"{}","relation":"{relation}","date":"{}"}}"#,
                    relative_id(i, k),
                    month.date(day)
                );
                self.push(day, text);
                self.stats.bind_family += 1;
            }
            if relative.until == Some(month.index) {
                let text = format!(
                    r#"{{"cmd":"unbind_family","holder":"{id}","relative":"{}","date":"{}"}}"#,
                    relative_id(i, k),
                    month.date(month.days)
                );
                self.push(month.days, text);
                self.stats.unbind_family += 1;
            }
        }
    }

    /// One claim, and sometimes its reversal a few days later.
    fn claim(&mut self, id: &str, month: &MonthAt) {
        let (rng, region) = (&mut self.rng, &self.config.region);
        self.claim_seq += 1;
        self.visit_seq += 1;
        let (claim_seq, visit_seq) = (self.claim_seq, self.visit_seq);
        let day = rng.range(3, u64::from(month.days)) as u32;
        let level = rng.weighted(&[45, 35, 20]) + 1;
        let channel = ["institution", "pharmacy", "manual"][rng.weighted(&[55, 35, 10])];
        let median = if level == 3 { 360.0 } else { 180.0 };
        let eligible = rng.amount_fen(median, 0.9, 500, 5_000_000);
        let mut text = format!(
            r#"{{"cmd":"claim","id":"C{claim_seq:09}","member":"{id}","date":"{}","level":{level},"channel":"{channel}","eligible":"{}""#,
            month.date(day),
            fen(eligible)
        );
        if rng.chance(0.04) {
            let special = eligible * rng.range(10, 40) / 100;
            text.push_str(&format!(r#","special_paid":"{}""#, fen(special)));
        }
        if rng.chance(0.25) {
            let uncovered = rng.amount_fen(30.0, 0.8, 100, 500_000);
            text.push_str(&format!(r#","uncovered":"{}""#, fen(uncovered)));
        }
        if rng.chance(0.1) {
            text.push_str(r#","use_account":false"#);
        }
        match channel {
            "institution" => text.push_str(&format!(
                r#","institution":"H{region}{:03}","visit":"V{visit_seq:09}""#,
                rng.below(400)
            )),
            "pharmacy" => text.push_str(&format!(
                r#","institution":"P{region}{:03}","visit":"V{visit_seq:09}""#,
                rng.below(900)
            )),
            _ => {}
        }
        text.push('}');
        self.push(day, text);
        self.stats.claim += 1;
        let id = format!("C{claim_seq:09}");
        self.maybe_reverse(&id, day, month, "settled against the wrong visit");
    }

    /// With a chance of 1%, the reversal of `id` (dated `day`) a few days later.
    fn maybe_reverse(&mut self, id: &str, day: u32, month: &MonthAt, reason: &str) {
        if self.rng.chance(0.01) {
            let later = (day + self.rng.range(1, 6) as u32).min(month.days);
            let text = format!(
                r#"{{"cmd":"reverse","id":"{id}","date":"{}","reason":"{reason}"}}"#,
                month.date(later)
            );
            self.push(later, text);
            self.stats.reverse += 1;
        }
    }

    /// Account payments: an everyday one, the large-amount premium, a relative's premium.
    fn payments(&mut self, i: u64, id: &str, m: &Member, month: &MonthAt, retired: bool) {
        let rng = &mut self.rng;
        let bound: Vec<usize> = m
            .relatives
            .iter()
            .enumerate()
            .filter(|(_, r)| r.from < month.index && r.until.is_none_or(|u| month.index < u))
            .map(|(k, _)| k)
            .collect();
        let mut payments: Vec<(&str, Option<usize>, u64)> = Vec::new();
        if rng.chance(0.2) {
            let purpose = ["pharmacy", "institution"][rng.weighted(&[65, 35])];
            let beneficiary = (!bound.is_empty() && rng.chance(0.3))
                .then(|| bound[rng.below(bound.len() as u64) as usize]);
            payments.push((purpose, beneficiary, rng.amount_fen(60.0, 0.7, 100, 50_000)));
        }
        if month.index == 0 && retired && rng.chance(0.15) {
            payments.push(("large_amount_premium", None, 12_000));
        }
        if month.index == 0 && !bound.is_empty() && rng.chance(0.2) {
            let k = bound[rng.below(bound.len() as u64) as usize];
            payments.push(("resident_premium", Some(k), 38_000));
        }
        for (purpose, beneficiary, amount) in payments {
            self.pay_seq += 1;
            let pay_seq = self.pay_seq;
            let day = self.rng.range(3, u64::from(month.days)) as u32;
            let mut text = format!(r#"{{"cmd":"account_pay","id":"P{pay_seq:09}","holder":"{id}""#);
            if let Some(k) = beneficiary {
                text.push_str(&format!(r#","beneficiary":"{}""#, relative_id(i, k)));
            }
            text.push_str(&format!(
                r#","date":"{}","purpose":"{purpose}","amount":"{}"}}"#,
                month.date(day),
                fen(amount)
            ));
            self.push(day, text);
            self.stats.account_pay += 1;
            let id = format!("P{pay_seq:09}");
            self.maybe_reverse(&id, day, month, "refunded by the pharmacy");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_file_and_another_seed_another() {
        let config = Config {
            members: 200,
            ..Config::default()
        };
        let mut a = Vec::new();
        let stats = generate(&config, &mut a).expect("generate");
        let mut b = Vec::new();
        generate(&config, &mut b).expect("generate");
        assert_eq!(a, b);
        let mut c = Vec::new();
        generate(&Config { seed: 2, ..config }, &mut c).expect("generate");
        assert_ne!(a, c);
        let text = String::from_utf8(a).expect("utf8");
        assert_eq!(text.lines().count() as u64, stats.lines);
        assert_eq!(stats.enroll, 200);
        assert_eq!(stats.allocate, 12);
        assert!(stats.contribute > 1000 && stats.claim > 50 && stats.account_pay > 100);
        for kind in [
            "lump_sum",
            "bind_family",
            "\"manual\"",
            "special_paid",
            "uncovered",
        ] {
            assert!(text.contains(kind), "no {kind} in a 200-member year");
        }
        // Every line is one JSON object.
        assert!(text
            .lines()
            .all(|l| l.starts_with("{\"cmd\":\"") && l.ends_with('}')));
    }

    #[test]
    fn months_roll_over_into_the_next_year() {
        let config = Config {
            members: 20,
            months: 14,
            ..Config::default()
        };
        let mut out = Vec::new();
        generate(&config, &mut out).expect("generate");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains(r#""month":"2025-02""#));
        assert!(days_in(2024, 2) == 29 && days_in(2100, 2) == 28);
    }
}
