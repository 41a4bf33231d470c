//! Each monitoring rule on a ledger built by hand, just under its threshold (no flag) and just
//! over it (a flag naming the rule, the subject and exactly the evidence).

use gongji_ledger::{Ledger, LineOutcome};
use gongji_monitor::{Flag, MonitorRules, Scope};
use serde_json::{json, Value};

const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");

/// Lines for a ledger, each to be accepted.
#[derive(Clone)]
struct Book {
    lines: Vec<Value>,
}

impl Book {
    fn new() -> Book {
        let policy: Value = serde_json::from_str(POLICY).expect("the policy parses");
        Book {
            lines: vec![json!({"cmd": "load_policy", "policy": policy})],
        }
    }

    fn enroll(mut self, member: &str) -> Book {
        self.lines.push(
            json!({"cmd": "enroll", "member": member, "region": "500000",
            "born": "1980-05-01", "status": "active", "scheme": "employer",
            "date": "2024-01-01", "opening_balance": "20000.00"}),
        );
        self
    }

    fn claim(
        mut self,
        id: &str,
        member: &str,
        date: &str,
        institution: &str,
        visit: &str,
        eligible: &str,
    ) -> Book {
        let channel = if institution.starts_with('P') {
            "pharmacy"
        } else {
            "institution"
        };
        self.lines.push(
            json!({"cmd": "claim", "id": id, "member": member, "date": date,
            "level": 1, "channel": channel, "eligible": eligible,
            "institution": institution, "visit": visit}),
        );
        self
    }

    fn pay(
        mut self,
        id: &str,
        holder: &str,
        beneficiary: &str,
        date: &str,
        at: &str,
        amount: &str,
    ) -> Book {
        let purpose = if at.starts_with('P') {
            "pharmacy"
        } else {
            "institution"
        };
        self.lines
            .push(json!({"cmd": "account_pay", "id": id, "holder": holder,
            "beneficiary": beneficiary, "date": date, "purpose": purpose, "amount": amount,
            "institution": at}));
        self
    }

    fn bind(mut self, holder: &str, relative: &str, relation: &str, date: &str) -> Book {
        self.lines.push(
            json!({"cmd": "bind_family", "holder": holder, "relative": relative,
            "relation": relation, "date": date}),
        );
        self
    }

    fn line(mut self, line: Value) -> Book {
        self.lines.push(line);
        self
    }

    /// The flags `rules` raise on a ledger of these lines, every line accepted.
    fn flags_with(&self, rules: &MonitorRules) -> Vec<Flag> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut ledger = Ledger::open(dir.path()).expect("open");
        for (n, line) in self.lines.iter().enumerate() {
            // Recorded now, after every date the lines give.
            let recorded = gongji_ledger::now_micros() + n as i64;
            ledger
                .apply_line(&line.to_string(), recorded)
                .expect("decided");
        }
        for (line, outcome) in self.lines.iter().zip(ledger.commit().expect("commit")) {
            if let LineOutcome::Rejected(why) = outcome {
                panic!("{line} refused: {why:?}");
            }
        }
        let flags = gongji_monitor::run(&ledger, rules, Scope::default(), &mut |_, _| {})
            .expect("a pass")
            .flags;
        // Sweeping after every movement judges each window as soon as it can: the same flags.
        let swept = Scope {
            sweep_every: Some(1),
            ..Scope::default()
        };
        let eager = gongji_monitor::run(&ledger, rules, swept, &mut |_, _| {}).expect("a pass");
        assert_eq!(eager.flags, flags, "sweeping after every movement");
        flags
    }

    fn flags(&self) -> Vec<Flag> {
        self.flags_with(&MonitorRules::chongqing())
    }
}

/// The flags of `rule`.
fn of<'f>(flags: &'f [Flag], rule: &str) -> Vec<&'f Flag> {
    flags.iter().filter(|f| f.rule == rule).collect()
}

fn value<'f>(flag: &'f Flag, name: &str) -> &'f str {
    &flag
        .figures
        .iter()
        .find(|f| f.name == name)
        .expect("the figure")
        .value
}

#[test]
fn three_claims_at_institutions_in_a_day_are_flagged_two_are_not() {
    let two = Book::new()
        .enroll("M1")
        .claim("C1", "M1", "2024-03-05", "H1", "V1", "50.00")
        .claim("C2", "M1", "2024-03-05", "H1", "V2", "50.00");
    assert!(of(&two.flags(), "frequency/institution_claims_per_day").is_empty());
    let three = two.claim("C3", "M1", "2024-03-05", "H1", "V3", "50.00");
    let flags = three.flags();
    let found = of(&flags, "frequency/institution_claims_per_day");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(found[0].member.as_deref(), Some("M1"));
    assert_eq!(value(found[0], "count"), "3");
    assert_eq!(found[0].evidence.len(), 3);
    assert_eq!(found[0].from.to_string(), "2024-03-05");
}

#[test]
fn small_payments_at_one_pharmacy_summing_above_the_total_are_flagged() {
    let payments = |last: &str| {
        Book::new()
            .enroll("M1")
            .pay("A1", "M1", "M1", "2024-03-05", "P1", "199.00")
            .pay("A2", "M1", "M1", "2024-03-06", "P1", "150.00")
            .pay("A3", "M1", "M1", "2024-03-07", "P1", last)
    };
    assert!(of(&payments("151.00").flags(), "splitting").is_empty());
    let flags = payments("151.01").flags();
    let found = of(&flags, "splitting");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(found[0].institution.as_deref(), Some("P1"));
    assert_eq!(value(found[0], "total"), "500.01");
    assert_eq!(found[0].evidence.len(), 3);
    // A payment three days after the first is outside the window: two are too few.
    let spread = Book::new()
        .enroll("M1")
        .pay("A1", "M1", "M1", "2024-03-05", "P1", "199.00")
        .pay("A2", "M1", "M1", "2024-03-06", "P1", "199.00")
        .pay("A3", "M1", "M1", "2024-03-08", "P1", "199.00");
    assert!(of(&spread.flags(), "splitting").is_empty());
    // A payment at the single-payment threshold is not a small one.
    assert!(of(&payments("200.00").flags(), "splitting").is_empty());
}

#[test]
fn one_visit_settled_twice_is_flagged_unless_one_was_reversed() {
    let twice = Book::new()
        .enroll("M1")
        .enroll("M2")
        .claim("C1", "M1", "2024-03-05", "H1", "V1", "50.00")
        .claim("C2", "M2", "2024-03-09", "H1", "V1", "50.00");
    let flags = twice.flags();
    let found = of(&flags, "duplicate_visit/same_visit");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(found[0].institution.as_deref(), Some("H1"));
    assert_eq!(value(found[0], "claims"), "2");
    let reversed = twice.line(
        json!({"cmd": "reverse", "id": "C2", "date": "2024-03-10", "reason": "wrong member"}),
    );
    assert!(of(&reversed.flags(), "duplicate_visit/same_visit").is_empty());
}

#[test]
fn one_visit_id_settled_further_apart_than_the_window_is_two_visits() {
    let apart = |second: &str| {
        Book::new()
            .enroll("M1")
            .claim("C1", "M1", "2024-03-05", "H1", "V1", "50.00")
            .claim("C2", "M1", second, "H1", "V1", "50.00")
    };
    assert_eq!(
        of(&apart("2024-04-04").flags(), "duplicate_visit/same_visit").len(),
        1
    );
    assert!(of(&apart("2024-04-05").flags(), "duplicate_visit/same_visit").is_empty());
    assert!(of(&apart("2024-11-01").flags(), "duplicate_visit/same_visit").is_empty());
}

#[test]
fn claims_at_two_institutions_on_one_day_are_flagged_at_one_are_not() {
    let one = Book::new()
        .enroll("M1")
        .claim("C1", "M1", "2024-03-05", "H1", "V1", "50.00")
        .claim("C2", "M1", "2024-03-05", "H1", "V2", "50.00");
    assert!(of(&one.flags(), "duplicate_visit/same_day").is_empty());
    let two = Book::new()
        .enroll("M1")
        .claim("C1", "M1", "2024-03-05", "H1", "V1", "50.00")
        .claim("C2", "M1", "2024-03-05", "H2", "V2", "50.00");
    let flags = two.flags();
    let found = of(&flags, "duplicate_visit/same_day");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(value(found[0], "places"), "H1 H2");
}

#[test]
fn payments_for_relatives_above_the_yearly_amount_are_flagged() {
    let year = |last: &str| {
        Book::new()
            .enroll("M1")
            .bind("M1", "R1", "spouse", "2024-01-02")
            .pay("A1", "M1", "R1", "2024-03-05", "H1", "1000.00")
            .pay("A2", "M1", "R1", "2024-05-05", "H1", "1000.00")
            .pay("A3", "M1", "R1", "2024-07-05", "H1", last)
    };
    assert!(of(&year("1000.00").flags(), "family/yearly").is_empty());
    let flags = year("1000.01").flags();
    let found = of(&flags, "family/yearly");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(value(found[0], "paid_for_relatives"), "3000.01");
    assert_eq!(found[0].evidence.len(), 3);
}

#[test]
fn pharmacy_payments_for_three_relatives_on_one_day_are_flagged_two_are_not() {
    let bound = Book::new()
        .enroll("M1")
        .bind("M1", "R1", "spouse", "2024-01-02")
        .bind("M1", "R2", "parent", "2024-01-02")
        .bind("M1", "R3", "child", "2024-01-02")
        .pay("A1", "M1", "R1", "2024-03-05", "P1", "30.00")
        .pay("A2", "M1", "R2", "2024-03-05", "P2", "30.00");
    assert!(of(&bound.flags(), "family/pharmacy_day").is_empty());
    let flags = bound
        .pay("A3", "M1", "R3", "2024-03-05", "P3", "30.00")
        .flags();
    let found = of(&flags, "family/pharmacy_day");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(value(found[0], "relatives"), "3");
}

#[test]
fn much_paid_for_a_relative_just_after_binding_is_flagged() {
    let paid = |second: &str| {
        Book::new()
            .enroll("M1")
            .bind("M1", "R1", "spouse", "2024-03-01")
            .pay("A1", "M1", "R1", "2024-03-02", "H1", "600.00")
            .pay("A2", "M1", "R1", "2024-03-08", "H1", second)
            // After the seven days: not counted.
            .pay("A3", "M1", "R1", "2024-03-09", "H1", "900.00")
    };
    assert!(of(&paid("400.00").flags(), "family/after_binding").is_empty());
    let flags = paid("400.01").flags();
    let found = of(&flags, "family/after_binding");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(value(found[0], "paid_for_relative"), "1000.01");
    // The binding and the two payments.
    assert_eq!(found[0].evidence.len(), 3);
}

#[test]
fn a_claim_recorded_more_than_ninety_days_after_its_date_is_flagged() {
    let late = |date: &str| {
        Book::new()
            .enroll("M1")
            .enroll("M2")
            .claim("C1", "M1", "2024-06-01", "H1", "V1", "50.00")
            .claim("C2", "M2", date, "H2", "V2", "50.00")
    };
    assert!(of(&late("2024-03-03").flags(), "timing/late").is_empty());
    let flags = late("2024-03-02").flags();
    let found = of(&flags, "timing/late");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(found[0].member.as_deref(), Some("M2"));
    assert_eq!(value(found[0], "days_late"), "91");
}

#[test]
fn a_claim_recorded_after_the_members_death_is_flagged() {
    let before = Book::new()
        .enroll("M1")
        .claim("C1", "M1", "2024-06-05", "H1", "V1", "50.00")
        .line(json!({"cmd": "decease", "member": "M1", "date": "2024-06-10"}));
    assert!(of(&before.flags(), "timing/after_death").is_empty());
    let after = Book::new()
        .enroll("M1")
        .line(json!({"cmd": "decease", "member": "M1", "date": "2024-06-10"}))
        .claim("C1", "M1", "2024-06-05", "H1", "V1", "50.00");
    let flags = after.flags();
    let found = of(&flags, "timing/after_death");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(found[0].evidence.len(), 2);
}

#[test]
fn account_payments_just_before_a_death_above_the_amount_are_flagged() {
    let paid = |second: &str| {
        Book::new()
            .enroll("M1")
            // Thirty-one days before: not counted.
            .pay("A0", "M1", "M1", "2024-05-10", "H1", "900.00")
            .pay("A1", "M1", "M1", "2024-05-11", "H1", "600.00")
            .pay("A2", "M1", "M1", "2024-06-09", "H2", second)
            .line(json!({"cmd": "decease", "member": "M1", "date": "2024-06-10"}))
    };
    assert!(of(&paid("400.00").flags(), "timing/before_death").is_empty());
    let flags = paid("400.01").flags();
    let found = of(&flags, "timing/before_death");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(value(found[0], "paid"), "1000.01");
    assert_eq!(found[0].evidence.len(), 3);
}

/// An institution with ten claims (one per member) in each of January to March and `april`
/// in April.
fn institution_months(april: usize) -> Book {
    let mut book = Book::new();
    for m in 0..40 {
        book = book.enroll(&format!("M{m}"));
    }
    for (month, count) in [(1, 10), (2, 10), (3, 10), (4, april)] {
        for m in 0..count {
            let id = format!("C{month}-{m}");
            let date = format!("2024-{month:02}-15");
            book = book.claim(&id, &format!("M{m}"), &date, "H9", &id, "80.00");
        }
    }
    book
}

#[test]
fn an_institution_month_above_three_times_its_trailing_median_is_flagged() {
    // 30 claims: three times the median of 10, not above it.
    assert!(of(&institution_months(30).flags(), "institution/claims").is_empty());
    let flags = institution_months(31).flags();
    let found = of(&flags, "institution/claims");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(found[0].institution.as_deref(), Some("H9"));
    assert_eq!(found[0].from.to_string(), "2024-04-01");
    assert_eq!(found[0].evidence.len(), 31);
}

#[test]
fn an_unusual_share_of_claims_exactly_at_the_deductible_is_flagged() {
    let mut rules = MonitorRules::chongqing();
    rules.institutions.claims_min = 10;
    // Each member's first claim: 200.00 fills the active member's deductible exactly.
    let month = |at_deductible: usize| {
        let mut book = Book::new();
        for m in 0..10 {
            let member = format!("M{m}");
            let eligible = if m < at_deductible {
                "200.00"
            } else {
                "120.00"
            };
            book = book.enroll(&member).claim(
                &format!("C{m}"),
                &member,
                "2024-03-15",
                "H9",
                &format!("V{m}"),
                eligible,
            );
        }
        book
    };
    assert!(of(&month(3).flags_with(&rules), "institution/at_threshold").is_empty());
    let flags = month(4).flags_with(&rules);
    let found = of(&flags, "institution/at_threshold");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(value(found[0], "at_threshold"), "4");
    assert_eq!(found[0].evidence.len(), 4);
}

#[test]
fn the_same_log_and_rules_give_the_same_flags_and_new_evidence_a_new_id() {
    let book = Book::new()
        .enroll("M1")
        .claim("C1", "M1", "2024-03-05", "H1", "V1", "50.00")
        .claim("C2", "M1", "2024-03-05", "H1", "V2", "50.00")
        .claim("C3", "M1", "2024-03-05", "H1", "V3", "50.00");
    let first = book.flags();
    assert!(!first.is_empty());
    assert_eq!(first, book.flags());
    let more = book
        .claim("C4", "M1", "2024-03-05", "H1", "V4", "50.00")
        .flags();
    let id = |flags: &[Flag]| {
        of(flags, "frequency/institution_claims_per_day")[0]
            .id
            .clone()
    };
    assert_ne!(id(&first), id(&more));
}

#[test]
fn four_pharmacy_claims_in_one_week_are_flagged_three_or_a_monday_later_are_not() {
    // 2024-03-04 was a Monday, 2024-03-10 the Sunday of that week.
    let week = |last: &str| {
        Book::new()
            .enroll("M1")
            .claim("C1", "M1", "2024-03-04", "P1", "V1", "40.00")
            .claim("C2", "M1", "2024-03-06", "P2", "V2", "40.00")
            .claim("C3", "M1", "2024-03-08", "P3", "V3", "40.00")
            .claim("C4", "M1", last, "P4", "V4", "40.00")
    };
    let rule = "frequency/pharmacy_claims_per_week";
    assert!(of(&week("2024-03-11").flags(), rule).is_empty());
    let flags = week("2024-03-10").flags();
    let found = of(&flags, rule);
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(
        (found[0].from.to_string(), found[0].to.to_string()),
        ("2024-03-04".to_string(), "2024-03-10".to_string())
    );
}

#[test]
fn sixteen_claims_in_a_month_are_flagged_fifteen_are_not() {
    let month = |claims: u32| {
        let mut book = Book::new().enroll("M1");
        for day in 1..=claims {
            let id = format!("C{day}");
            book = book.claim(&id, "M1", &format!("2024-03-{day:02}"), "H1", &id, "30.00");
        }
        book
    };
    assert!(of(&month(15).flags(), "frequency/claims_per_month").is_empty());
    let flags = month(16).flags();
    assert_eq!(
        of(&flags, "frequency/claims_per_month").len(),
        1,
        "{flags:#?}"
    );
}

#[test]
fn four_pharmacy_payments_in_a_day_are_flagged_three_are_not() {
    let day = |payments: u32| {
        let mut book = Book::new().enroll("M1");
        for k in 0..payments {
            book = book.pay(
                &format!("A{k}"),
                "M1",
                "M1",
                "2024-03-05",
                &format!("P{k}"),
                "20.00",
            );
        }
        book
    };
    let rule = "frequency/pharmacy_payments_per_day";
    assert!(of(&day(3).flags(), rule).is_empty());
    let flags = day(4).flags();
    assert_eq!(of(&flags, rule).len(), 1, "{flags:#?}");
}

#[test]
fn twenty_one_account_payments_in_a_month_are_flagged_twenty_are_not() {
    let month = |payments: u32| {
        let mut book = Book::new().enroll("M1");
        for day in 1..=payments {
            let date = format!("2024-03-{day:02}");
            book = book.pay(&format!("A{day}"), "M1", "M1", &date, "H1", "10.00");
        }
        book
    };
    let rule = "frequency/account_payments_per_month";
    assert!(of(&month(20).flags(), rule).is_empty());
    let flags = month(21).flags();
    assert_eq!(of(&flags, rule).len(), 1, "{flags:#?}");
}

#[test]
fn account_payments_just_before_a_transfer_above_the_amount_are_flagged() {
    let paid = |second: &str| {
        Book::new()
            .enroll("M1")
            .pay("A1", "M1", "M1", "2024-05-11", "H1", "600.00")
            .pay("A2", "M1", "M1", "2024-06-09", "H2", second)
            .line(json!({"cmd": "transfer", "member": "M1", "date": "2024-06-10", "to_region": "110000"}))
    };
    assert!(of(&paid("400.00").flags(), "timing/before_transfer").is_empty());
    let flags = paid("400.01").flags();
    let found = of(&flags, "timing/before_transfer");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(value(found[0], "paid"), "1000.01");
}

#[test]
fn an_institution_month_paid_above_three_times_its_trailing_median_is_flagged() {
    let mut rules = MonitorRules::chongqing();
    rules.institutions.claims_min = 10;
    // Ten members, one claim each a month at H9: January pays (500 - 200) x 60% = 180.00 each,
    // February and March 300.00 each (a median of 3,000.00), April 60% of `april`.
    let months = |april: &str| {
        let mut book = Book::new();
        for m in 0..10 {
            book = book.enroll(&format!("M{m}"));
        }
        for (month, eligible) in [(1, "500.00"), (2, "500.00"), (3, "500.00"), (4, april)] {
            for m in 0..10 {
                let id = format!("C{month}-{m}");
                let date = format!("2024-{month:02}-15");
                book = book.claim(&id, &format!("M{m}"), &date, "H9", &id, eligible);
            }
        }
        book
    };
    // 10 x 900.00 = 9,000.00: three times the median, not above it.
    assert!(of(&months("1500.00").flags_with(&rules), "institution/fund").is_empty());
    let flags = months("1500.02").flags_with(&rules);
    let found = of(&flags, "institution/fund");
    assert_eq!(found.len(), 1, "{flags:#?}");
    assert_eq!(value(found[0], "fund_paid"), "9000.10");
    assert!(of(&flags, "institution/claims").is_empty());
}
