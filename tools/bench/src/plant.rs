//! Planted misuse (`gongji-gen --plant-misuse RATE`): cases of every pattern the monitoring
//! rules look for, each on members and institutions of its own (ids starting with `X`), so
//! that what the rules find can be scored: every planted case should be flagged (recall), and
//! the flags on the ordinary generated members are counted per rule.
//!
//! The cases cross the shipped Chongqing thresholds (`policies/monitor/`) with a margin; each
//! is placed in a month drawn from its own random stream, so planting changes nothing in the
//! ordinary lines.

use serde::Serialize;

use crate::gen::Config;
use crate::rng::Rng;

/// A line to add to a month of the generated file.
pub struct PlantedLine {
    /// The month's index from the first (0).
    pub month: u32,
    pub day: u32,
    pub text: String,
}

/// One planted case: the rule that should flag it and its subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Planted {
    pub rule: &'static str,
    pub member: Option<String>,
    pub institution: Option<String>,
}

/// The planted lines and cases.
#[derive(Default)]
pub struct Planting {
    pub lines: Vec<PlantedLine>,
    pub cases: Vec<Planted>,
}

/// How the cases of one pattern are made: (rule name, fewest months it needs, maker).
type Maker = fn(&mut Plant<'_>, u64);

/// Member patterns: `ceil(members × rate)` cases each.
const MEMBER_PATTERNS: [(&str, u32, Maker); 15] = [
    ("frequency/institution_claims_per_day", 1, |p, c| {
        p.claims_in_a_day(c)
    }),
    ("frequency/pharmacy_claims_per_week", 1, |p, c| {
        p.pharmacy_claims_in_a_week(c)
    }),
    ("frequency/claims_per_month", 1, |p, c| {
        p.claims_in_a_month(c)
    }),
    ("frequency/pharmacy_payments_per_day", 1, |p, c| {
        p.pharmacy_payments_in_a_day(c)
    }),
    ("frequency/account_payments_per_month", 1, |p, c| {
        p.payments_in_a_month(c)
    }),
    ("splitting", 1, |p, c| p.split_payments(c)),
    ("duplicate_visit/same_visit", 1, |p, c| {
        p.visit_settled_twice(c)
    }),
    ("duplicate_visit/same_day", 1, |p, c| {
        p.two_institutions_a_day(c)
    }),
    ("family/yearly", 5, |p, c| p.much_for_relatives(c)),
    ("family/pharmacy_day", 2, |p, c| {
        p.relatives_at_pharmacies(c)
    }),
    ("family/after_binding", 1, |p, c| p.paid_after_binding(c)),
    ("timing/late", 5, |p, c| p.late_claim(c)),
    ("timing/after_death", 2, |p, c| p.claim_after_death(c)),
    ("timing/before_death", 1, |p, c| p.paid_before_death(c)),
    ("institution/at_threshold", 1, |p, c| {
        p.claims_at_the_deductible(c)
    }),
];

/// Plants the cases of every pattern `config`'s period can hold: `ceil(members × rate)` of
/// each member pattern and a tenth as many (at least one) of the institution patterns.
pub fn plant(config: &Config, rate: f64) -> Planting {
    let mut plant = Plant {
        config,
        rng: Rng::new(config.seed ^ 0x9e37_79b9_7f4a_7c15),
        planting: Planting::default(),
        case: 0,
    };
    if rate <= 0.0 {
        return plant.planting;
    }
    let cases = ((config.members as f64) * rate).ceil() as u64;
    for (rule, months_min, maker) in MEMBER_PATTERNS {
        if config.months < months_min {
            continue;
        }
        let per_pattern = if rule == "institution/at_threshold" {
            cases.div_ceil(10)
        } else {
            cases
        };
        for _ in 0..per_pattern {
            plant.case += 1;
            let case = plant.case;
            maker(&mut plant, case);
        }
    }
    if config.months >= 4 {
        for _ in 0..cases.div_ceil(10) {
            plant.case += 1;
            let case = plant.case;
            plant.institution_surge(case);
        }
    }
    plant.planting
}

struct Plant<'c> {
    config: &'c Config,
    rng: Rng,
    planting: Planting,
    case: u64,
}

impl Plant<'_> {
    fn date(&self, month: u32, day: u32) -> String {
        let zero_based = self.config.start_month - 1 + month;
        let year = self.config.start_year + (zero_based / 12) as i32;
        format!("{year:04}-{:02}-{day:02}", zero_based % 12 + 1)
    }

    fn line(&mut self, month: u32, day: u32, text: String) {
        self.planting.lines.push(PlantedLine { month, day, text });
    }

    fn planted(&mut self, rule: &'static str, member: Option<&str>, institution: Option<&str>) {
        self.planting.cases.push(Planted {
            rule,
            member: member.map(str::to_string),
            institution: institution.map(str::to_string),
        });
    }

    /// A month drawn from `from..months`.
    fn month(&mut self, from: u32) -> u32 {
        from + self.rng.below(u64::from(self.config.months - from)) as u32
    }

    /// A new member, active, enrolled on the first day with 20,000.00 in the account.
    fn member(&mut self, case: u64, k: u32) -> String {
        let id = format!("X{case:06}-{k}");
        let text = format!(
            r#"{{"cmd":"enroll","member":"{id}","region":"{}","born":"1978-03-01","status":"active","scheme":"employer","date":"{}","opening_balance":"20000.00"}}"#,
            self.config.region,
            self.date(0, 1)
        );
        self.line(0, 0, text);
        id
    }

    fn claim(&mut self, member: &str, month: u32, day: u32, at: &str, eligible: &str) {
        self.claim_dated(member, month, day, (month, day), at, eligible, None);
    }

    /// A claim recorded on `day` of `month` and dated `dated` (month, day), at `at` (a
    /// pharmacy if it starts `PX`), under its own visit id unless `visit` is given.
    #[allow(clippy::too_many_arguments)]
    fn claim_dated(
        &mut self,
        member: &str,
        month: u32,
        day: u32,
        dated: (u32, u32),
        at: &str,
        eligible: &str,
        visit: Option<&str>,
    ) {
        let n = self.planting.lines.len();
        let id = format!("XC{}-{n}", self.case);
        let channel = if at.starts_with("PX") {
            "pharmacy"
        } else {
            "institution"
        };
        let visit = visit.map_or_else(|| format!("XV{}-{n}", self.case), str::to_string);
        let text = format!(
            r#"{{"cmd":"claim","id":"{id}","member":"{member}","date":"{}","level":1,"channel":"{channel}","eligible":"{eligible}","institution":"{at}","visit":"{visit}"}}"#,
            self.date(dated.0, dated.1)
        );
        self.line(month, day, text);
    }

    fn pay(&mut self, holder: &str, for_whom: &str, month: u32, day: u32, at: &str, amount: &str) {
        let n = self.planting.lines.len();
        let id = format!("XP{}-{n}", self.case);
        let purpose = if at.starts_with("PX") {
            "pharmacy"
        } else {
            "institution"
        };
        let text = format!(
            r#"{{"cmd":"account_pay","id":"{id}","holder":"{holder}","beneficiary":"{for_whom}","date":"{}","purpose":"{purpose}","amount":"{amount}","institution":"{at}"}}"#,
            self.date(month, day)
        );
        self.line(month, day, text);
    }

    fn bind(&mut self, holder: &str, k: u32, relation: &str, month: u32, day: u32) -> String {
        let relative = format!("{holder}-R{k}");
        let text = format!(
            r#"{{"cmd":"bind_family","holder":"{holder}","relative":"{relative}","relation":"{relation}","date":"{}"}}"#,
            self.date(month, day)
        );
        self.line(month, day, text);
        relative
    }

    fn decease(&mut self, member: &str, month: u32, day: u32) {
        let text = format!(
            r#"{{"cmd":"decease","member":"{member}","date":"{}"}}"#,
            self.date(month, day)
        );
        self.line(month, day, text);
    }

    fn day(&mut self, from: u32, to: u32) -> u32 {
        self.rng.range(u64::from(from), u64::from(to)) as u32
    }

    // The patterns, each over its threshold with a margin.

    fn claims_in_a_day(&mut self, case: u64) {
        let m = self.member(case, 0);
        let (month, day) = (self.month(0), self.day(3, 27));
        let at = format!("HX{case}");
        for _ in 0..3 {
            self.claim(&m, month, day, &at, "60.00");
        }
        self.planted("frequency/institution_claims_per_day", Some(&m), None);
    }

    fn pharmacy_claims_in_a_week(&mut self, case: u64) {
        let m = self.member(case, 0);
        let (month, day) = (self.month(0), self.day(3, 27));
        for k in 0..4 {
            self.claim(&m, month, day, &format!("PX{case}-{k}"), "40.00");
        }
        self.planted("frequency/pharmacy_claims_per_week", Some(&m), None);
    }

    fn claims_in_a_month(&mut self, case: u64) {
        let m = self.member(case, 0);
        let month = self.month(0);
        for day in 2..=17 {
            self.claim(&m, month, day, &format!("HX{case}"), "30.00");
        }
        self.planted("frequency/claims_per_month", Some(&m), None);
    }

    fn pharmacy_payments_in_a_day(&mut self, case: u64) {
        let m = self.member(case, 0);
        let (month, day) = (self.month(0), self.day(3, 27));
        for k in 0..4 {
            self.pay(&m, &m, month, day, &format!("PX{case}-{k}"), "20.00");
        }
        self.planted("frequency/pharmacy_payments_per_day", Some(&m), None);
    }

    fn payments_in_a_month(&mut self, case: u64) {
        let m = self.member(case, 0);
        let month = self.month(0);
        for day in 2..=22 {
            self.pay(&m, &m, month, day, &format!("HX{case}"), "10.00");
        }
        self.planted("frequency/account_payments_per_month", Some(&m), None);
    }

    fn split_payments(&mut self, case: u64) {
        let m = self.member(case, 0);
        let (month, day) = (self.month(0), self.day(3, 25));
        let at = format!("PX{case}");
        for k in 0..3 {
            self.pay(&m, &m, month, day + k, &at, "180.00");
        }
        self.planted("splitting", Some(&m), Some(&at));
    }

    fn visit_settled_twice(&mut self, case: u64) {
        let m = self.member(case, 0);
        let (month, day) = (self.month(0), self.day(3, 25));
        let at = format!("HX{case}");
        let visit = format!("XV{case}");
        for later in [0, 2] {
            let d = day + later;
            self.claim_dated(&m, month, d, (month, d), &at, "90.00", Some(&visit));
        }
        self.planted("duplicate_visit/same_visit", None, Some(&at));
    }

    fn two_institutions_a_day(&mut self, case: u64) {
        let m = self.member(case, 0);
        let (month, day) = (self.month(0), self.day(3, 27));
        self.claim(&m, month, day, &format!("HX{case}-a"), "70.00");
        self.claim(&m, month, day, &format!("HX{case}-b"), "70.00");
        self.planted("duplicate_visit/same_day", Some(&m), None);
    }

    /// 800.00 for a relative in each of four months of one year: 3,200.00 (only where the
    /// period's first five months are in one calendar year).
    fn much_for_relatives(&mut self, case: u64) {
        if self.config.start_month > 7 {
            return;
        }
        let m = self.member(case, 0);
        let relative = self.bind(&m, 1, "spouse", 0, 2);
        for month in 1..5 {
            self.pay(&m, &relative, month, 10, &format!("HX{case}"), "800.00");
        }
        self.planted("family/yearly", Some(&m), None);
    }

    fn relatives_at_pharmacies(&mut self, case: u64) {
        let m = self.member(case, 0);
        let relatives: Vec<String> = ["spouse", "child", "parent"]
            .iter()
            .enumerate()
            .map(|(k, relation)| self.bind(&m, k as u32 + 1, relation, 0, 2))
            .collect();
        let (month, day) = (self.month(1), self.day(3, 27));
        for (k, relative) in relatives.iter().enumerate() {
            self.pay(&m, relative, month, day, &format!("PX{case}-{k}"), "30.00");
        }
        self.planted("family/pharmacy_day", Some(&m), None);
    }

    fn paid_after_binding(&mut self, case: u64) {
        let m = self.member(case, 0);
        let (month, day) = (self.month(0), self.day(2, 20));
        let relative = self.bind(&m, 1, "child", month, day);
        let at = format!("HX{case}");
        self.pay(&m, &relative, month, day + 1, &at, "600.00");
        self.pay(&m, &relative, month, day + 5, &at, "500.00");
        self.planted("family/after_binding", Some(&m), None);
    }

    /// Recorded on the 25th of a month, dated the 5th four months before.
    fn late_claim(&mut self, case: u64) {
        let m = self.member(case, 0);
        let month = self.month(4);
        self.claim_dated(
            &m,
            month,
            25,
            (month - 4, 5),
            &format!("HX{case}"),
            "80.00",
            None,
        );
        self.planted("timing/late", Some(&m), None);
    }

    /// Recorded in the month after the death, dated five days before it.
    fn claim_after_death(&mut self, case: u64) {
        let m = self.member(case, 0);
        let month = self.month(0).min(self.config.months - 2);
        self.decease(&m, month, 10);
        self.claim_dated(
            &m,
            month + 1,
            3,
            (month, 5),
            &format!("HX{case}"),
            "80.00",
            None,
        );
        self.planted("timing/after_death", Some(&m), None);
    }

    fn paid_before_death(&mut self, case: u64) {
        let m = self.member(case, 0);
        let month = self.month(0);
        let at = format!("HX{case}");
        self.pay(&m, &m, month, 5, &at, "600.00");
        self.pay(&m, &m, month, 20, &at, "500.00");
        self.decease(&m, month, 25);
        self.planted("timing/before_death", Some(&m), None);
    }

    /// Thirty members' first claims, each exactly the active deductible (200.00).
    fn claims_at_the_deductible(&mut self, case: u64) {
        let month = self.month(0);
        let at = format!("HX{case}");
        for k in 0..30 {
            let m = self.member(case, k);
            self.claim(&m, month, 12, &at, "200.00");
        }
        self.planted("institution/at_threshold", None, Some(&at));
    }

    /// Ten claims of 1,000.00 a month for three months, then forty: more than three times the
    /// median in claims and in fund payments.
    fn institution_surge(&mut self, case: u64) {
        let month = self.month(3);
        let at = format!("HX{case}");
        let members: Vec<String> = (0..40).map(|k| self.member(case, k)).collect();
        for back in (1..=3).rev() {
            for m in &members[..10] {
                self.claim(m, month - back, 12, &at, "1000.00");
            }
        }
        for m in &members {
            self.claim(m, month, 12, &at, "1000.00");
        }
        self.planted("institution/claims", None, Some(&at));
        self.planted("institution/fund", None, Some(&at));
    }
}

/// How one rule did against what was planted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleScore {
    pub rule: String,
    pub planted: u64,
    /// Planted cases some flag of the rule names (by member and institution).
    pub found: u64,
    /// Flags of the rule that name no planted case (on the ordinary members, or a second flag
    /// of a planted case's subject).
    pub unplanted: u64,
}

impl RuleScore {
    /// `found / planted`; None when nothing was planted.
    pub fn recall(&self) -> Option<f64> {
        (self.planted > 0).then(|| self.found as f64 / self.planted as f64)
    }
}

/// Scores `flags` (as `gongji monitor run --json` lists them) against `cases`, for each rule
/// in `rules` (the report's `by_rule` names).
pub fn score(rules: &[String], cases: &[Planted], flags: &[serde_json::Value]) -> Vec<RuleScore> {
    let names = |flag: &serde_json::Value, case: &Planted| {
        flag["rule"] == case.rule
            && case.member.as_ref().is_none_or(|m| flag["member"] == *m)
            && case
                .institution
                .as_ref()
                .is_none_or(|i| flag["institution"] == *i)
    };
    rules
        .iter()
        .map(|rule| {
            let planted: Vec<&Planted> = cases.iter().filter(|c| c.rule == rule).collect();
            let of_rule: Vec<&serde_json::Value> =
                flags.iter().filter(|f| f["rule"] == *rule).collect();
            let found = planted
                .iter()
                .filter(|case| of_rule.iter().any(|f| names(f, case)))
                .count() as u64;
            let unplanted = of_rule
                .iter()
                .filter(|f| !planted.iter().any(|case| names(f, case)))
                .count() as u64;
            RuleScore {
                rule: rule.clone(),
                planted: planted.len() as u64,
                found,
                unplanted,
            }
        })
        .collect()
}
