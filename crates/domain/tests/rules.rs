//! One test per rule of `/work/shared/spec/policy.md`, with Chongqing's 2024 figures
//! (`policies/500000-2024-01-01.json`). Every expected figure is worked out by hand in a comment.
//!
//! Chongqing 2024, as the tests use it:
//! - deductible per calendar year: 200 active, 100 retired;
//! - ratio: active 60% (level <= 2) / 50% (level 3); retired 70% / 60%;
//! - annual ordinary limit: 3000 active / 4000 retired (employer, tier 2, lump sum),
//!   800 / 1200 (tier 1);
//! - pooled fund annual maximum 80000, beyond it the large-amount fund;
//! - credits: 2% of base (active employer / tier 2), 105 (retiree under 70), 115 (from the month
//!   turning 70), 2% of the lump-sum base inside the period; pooled rates 8.5% / 7% / 4%.

mod common;

use std::collections::BTreeSet;

use gongji_domain::state::{Member, YearCounters};
use gongji_domain::{
    decide, evolve, parse_command, Event, FundKind, Money, Outcome, Rejection, State,
};
use serde_json::{json, Value};

const CHONGQING: &str = include_str!("../../../policies/500000-2024-01-01.json");
const REGION: &str = "500000";
const V2024: &str = "500000/2024-01-01";

fn m(text: &str) -> Money {
    text.parse()
        .unwrap_or_else(|e| panic!("test amount {text}: {e:?}"))
}

/// Merges the fields of `extra` into the command `base`.
fn with(mut base: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().expect("extra fields are an object") {
        base[key] = value.clone();
    }
    base
}

fn claim(id: &str, member: &str, date: &str, level: u8, eligible: &str) -> Value {
    json!({"cmd": "claim", "id": id, "member": member, "date": date, "level": level,
           "channel": "institution", "eligible": eligible})
}

fn pay(id: &str, holder: &str, date: &str, purpose: &str, amount: &str) -> Value {
    json!({"cmd": "account_pay", "id": id, "holder": holder, "date": date, "purpose": purpose, "amount": amount})
}

fn reverse(id: &str, date: &str) -> Value {
    json!({"cmd": "reverse", "id": id, "date": date, "reason": "test"})
}

fn allocate(month: &str) -> Value {
    json!({"cmd": "allocate", "region": REGION, "month": month})
}

fn contribute(member: &str, month: &str, base: &str) -> Value {
    json!({"cmd": "contribute", "member": member, "month": month, "base": base})
}

/// Asserts string fields of a serialized outcome.
#[track_caller]
fn expect(outcome: &Value, fields: &[(&str, &str)]) {
    for (key, want) in fields {
        assert_eq!(
            outcome[*key].as_str(),
            Some(*want),
            "field `{key}` of outcome {outcome}"
        );
    }
}

/// The test harness: a state, and every event applied to it, in order.
struct Ledger {
    state: State,
    events: Vec<Event>,
}

impl Ledger {
    fn empty() -> Ledger {
        Ledger {
            state: State::default(),
            events: Vec::new(),
        }
    }

    /// A ledger with Chongqing's 2024 policy loaded.
    fn chongqing() -> Ledger {
        let mut ledger = Ledger::empty();
        let line = format!(r#"{{"cmd":"load_policy","policy":{}}}"#, CHONGQING);
        let outcome = ledger.run(&line).expect("Chongqing's policy loads");
        let outcome = serde_json::to_value(outcome).unwrap();
        expect(
            &outcome,
            &[
                ("region", REGION),
                ("version", V2024),
                ("effective", "2024-01-01"),
            ],
        );
        ledger
    }

    /// Parses, decides, and evolves every event into the state; checks each event's encoding.
    fn run(&mut self, line: &str) -> Result<Outcome, Rejection> {
        let command = parse_command(line)?;
        let decision = decide(&self.state, &command)?;
        for (stream, event) in &decision.events {
            common::assert_decided_event_holds(&self.state, stream, event);
            let decoded = Event::decode(&event.encode());
            assert_eq!(
                decoded.as_ref(),
                Ok(event),
                "event {} does not survive encode/decode",
                event.kind()
            );
            evolve(&mut self.state, event);
            self.events.push(event.clone());
        }
        self.state.dirty.clear();
        Ok(decision.outcome)
    }

    #[track_caller]
    fn ok(&mut self, command: Value) -> Value {
        let line = command.to_string();
        match self.run(&line) {
            Ok(outcome) => serde_json::to_value(outcome).expect("outcomes serialize"),
            Err(rejection) => panic!("{line} was rejected: {rejection}"),
        }
    }

    #[track_caller]
    fn rejected(&mut self, command: Value) -> Rejection {
        let line = command.to_string();
        let before = self.state.clone();
        match self.run(&line) {
            Ok(outcome) => panic!("{line} was accepted: {outcome:?}"),
            Err(rejection) => {
                assert_eq!(self.state, before, "a rejected command changed the state");
                rejection
            }
        }
    }

    #[track_caller]
    fn code(&mut self, command: Value) -> &'static str {
        self.rejected(command).code.as_str()
    }

    fn enroll(
        &mut self,
        member: &str,
        born: &str,
        status: &str,
        scheme: &str,
        date: &str,
        opening: &str,
    ) {
        self.ok(json!({"cmd": "enroll", "member": member, "region": REGION, "born": born, "status": status,
                       "scheme": scheme, "date": date, "opening_balance": opening}));
    }

    /// An active employee, born 1980, enrolled 2024-01-01.
    fn active(&mut self, member: &str, opening: &str) {
        self.enroll(
            member,
            "1980-05-20",
            "active",
            "employer",
            "2024-01-01",
            opening,
        );
    }

    /// A retiree under 70 all of 2024 (born 1960), enrolled as retired 2024-01-01.
    fn retiree(&mut self, member: &str, opening: &str) {
        self.enroll(
            member,
            "1960-05-20",
            "retired",
            "employer",
            "2024-01-01",
            opening,
        );
    }

    fn member(&self, id: &str) -> &Member {
        self.state
            .members
            .get(id)
            .unwrap_or_else(|| panic!("member {id} is enrolled"))
    }

    fn balance(&self, id: &str) -> Money {
        self.member(id).balance
    }

    fn year(&self, id: &str, year: i32) -> YearCounters {
        self.member(id).year(year)
    }

    fn fund(&self, kind: FundKind) -> Money {
        self.state.fund(kind, REGION).balance()
    }
}

// ---------------------------------------------------------------------------------------------
// Deductible
// ---------------------------------------------------------------------------------------------

#[test]
fn deductible_accumulates_across_claims_in_one_year() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // 120 eligible: all of it fills the deductible (200 left -> 80 left); nothing paid.
    let first = l.ok(claim("c1", "a", "2024-03-01", 2, "120.00"));
    expect(
        &first,
        &[
            ("deductible_applied", "120.00"),
            ("ordinary_paid", "0.00"),
            ("cash_paid", "120.00"),
        ],
    );
    // 150 eligible: 80 fills the rest of the deductible; (150 - 80) x 0.6 = 42.00.
    let second = l.ok(claim("c2", "a", "2024-04-01", 2, "150.00"));
    expect(
        &second,
        &[
            ("deductible_applied", "80.00"),
            ("ordinary_paid", "42.00"),
            ("fund_paid", "42.00"),
            ("cash_paid", "108.00"),
        ],
    );
    // A third claim finds the deductible full: 100 x 0.6 = 60.00.
    let third = l.ok(claim("c3", "a", "2024-05-01", 2, "100.00"));
    expect(
        &third,
        &[("deductible_applied", "0.00"), ("ordinary_paid", "60.00")],
    );
    let year = l.year("a", 2024);
    assert_eq!(
        year.deductible_used_total(),
        m("200.00"),
        "deductible used in 2024"
    );
    assert_eq!(
        year.ordinary_cost,
        m("370.00"),
        "120 + 150 + 100 entered ordinary pooling"
    );
    assert_eq!(year.ordinary_paid, m("102.00"), "42 + 60");
    assert_eq!(year.claims, 3);
}

#[test]
fn deductible_restarts_on_1_january() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // 2024-12-31: 300 eligible, deductible 200, (300 - 200) x 0.6 = 60.00.
    let december = l.ok(claim("c1", "a", "2024-12-31", 2, "300.00"));
    expect(
        &december,
        &[("deductible_applied", "200.00"), ("ordinary_paid", "60.00")],
    );
    assert_eq!(december["year"], json!(2024));
    // 2025-01-01: a fresh deductible of 200 again, same 60.00.
    let january = l.ok(claim("c2", "a", "2025-01-01", 2, "300.00"));
    expect(
        &january,
        &[("deductible_applied", "200.00"), ("ordinary_paid", "60.00")],
    );
    assert_eq!(january["year"], json!(2025));
    assert_eq!(l.year("a", 2024).deductible_used_total(), m("200.00"));
    assert_eq!(l.year("a", 2025).deductible_used_total(), m("200.00"));
    assert_eq!(l.year("a", 2025).ordinary_paid, m("60.00"));
}

#[test]
fn retiree_deductible_is_100() {
    let mut l = Ledger::chongqing();
    l.retiree("r", "0.00");
    // 150 eligible: deductible 100, (150 - 100) x 0.7 = 35.00.
    let out = l.ok(claim("c1", "r", "2024-03-01", 2, "150.00"));
    expect(
        &out,
        &[("deductible_applied", "100.00"), ("ordinary_paid", "35.00")],
    );
}

// ---------------------------------------------------------------------------------------------
// Ratios
// ---------------------------------------------------------------------------------------------

#[test]
fn ratio_active_level_2_is_60_percent() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // (1200 - 200) x 0.60 = 600.00
    let out = l.ok(claim("c1", "a", "2024-03-01", 2, "1200.00"));
    expect(
        &out,
        &[
            ("deductible_applied", "200.00"),
            ("ordinary_paid", "600.00"),
            ("pooled_paid", "600.00"),
            ("policy", V2024),
        ],
    );
}

#[test]
fn ratio_active_level_1_is_60_percent() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // (1200 - 200) x 0.60 = 600.00
    let out = l.ok(claim("c1", "a", "2024-03-01", 1, "1200.00"));
    expect(&out, &[("ordinary_paid", "600.00")]);
}

#[test]
fn ratio_active_level_3_is_50_percent() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // (1200 - 200) x 0.50 = 500.00
    let out = l.ok(claim("c1", "a", "2024-03-01", 3, "1200.00"));
    expect(
        &out,
        &[
            ("deductible_applied", "200.00"),
            ("ordinary_paid", "500.00"),
        ],
    );
}

#[test]
fn ratio_retired_level_1_is_70_percent() {
    let mut l = Ledger::chongqing();
    l.retiree("r", "0.00");
    // (1100 - 100) x 0.70 = 700.00
    let out = l.ok(claim("c1", "r", "2024-03-01", 1, "1100.00"));
    expect(
        &out,
        &[
            ("deductible_applied", "100.00"),
            ("ordinary_paid", "700.00"),
        ],
    );
}

#[test]
fn ratio_retired_level_3_is_60_percent() {
    let mut l = Ledger::chongqing();
    l.retiree("r", "0.00");
    // (1100 - 100) x 0.60 = 600.00
    let out = l.ok(claim("c1", "r", "2024-03-01", 3, "1100.00"));
    expect(
        &out,
        &[
            ("deductible_applied", "100.00"),
            ("ordinary_paid", "600.00"),
        ],
    );
}

#[test]
fn pharmacy_claim_uses_prescriber_level() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // Prescribed at level 3: (1200 - 200) x 0.50 = 500.00.
    let level3 = l.ok(with(
        claim("p1", "a", "2024-03-01", 3, "1200.00"),
        json!({"channel": "pharmacy"}),
    ));
    expect(
        &level3,
        &[
            ("ordinary_paid", "500.00"),
            ("deductible_applied", "200.00"),
        ],
    );
    // Prescribed at level 1, same deductible (already full) and limit: 1000 x 0.60 = 600.00.
    let level1 = l.ok(with(
        claim("p2", "a", "2024-03-02", 1, "1000.00"),
        json!({"channel": "pharmacy"}),
    ));
    expect(
        &level1,
        &[("ordinary_paid", "600.00"), ("deductible_applied", "0.00")],
    );
    assert_eq!(
        l.year("a", 2024).ordinary_paid,
        m("1100.00"),
        "pharmacy claims count to the same limit"
    );
}

#[test]
fn retiring_switches_to_retiree_rules() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    l.ok(json!({"cmd": "retire", "member": "a", "date": "2024-06-15"}));
    // Before retirement (2024-06-14) the member is active: deductible 200, 60%.
    // (300 - 200) x 0.6 = 60.00
    let before = l.ok(claim("c1", "a", "2024-06-14", 2, "300.00"));
    expect(
        &before,
        &[("deductible_applied", "200.00"), ("ordinary_paid", "60.00")],
    );
    // After: retiree ratio 70%, deductible (100) already more than filled: 1000 x 0.7 = 700.00.
    let after = l.ok(claim("c2", "a", "2024-06-20", 2, "1000.00"));
    expect(
        &after,
        &[("deductible_applied", "0.00"), ("ordinary_paid", "700.00")],
    );
    assert_eq!(
        l.code(json!({"cmd": "retire", "member": "a", "date": "2024-07-01"})),
        "already_retired"
    );
    // June is credited as a retiree month (status taken on the month's last day): 105.00.
    let june = l.ok(allocate("2024-06"));
    assert_eq!(june["members_credited"], json!(1));
    expect(&june, &[("credited", "105.00")]);
}

// ---------------------------------------------------------------------------------------------
// Annual limits
// ---------------------------------------------------------------------------------------------

#[test]
fn annual_limit_active_employer_is_3000() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // c1: (4200 - 200) x 0.6 = 2400.00; 600 of the limit left.
    expect(
        &l.ok(claim("c1", "a", "2024-02-01", 2, "4200.00")),
        &[("ordinary_paid", "2400.00")],
    );
    // c2: 2000 x 0.6 = 1200.00 computed, cut to 600.00; own share 2000 - 600 = 1400.00.
    let cut = l.ok(claim("c2", "a", "2024-03-01", 2, "2000.00"));
    expect(
        &cut,
        &[("ordinary_paid", "600.00"), ("cash_paid", "1400.00")],
    );
    // c3: nothing left.
    let none = l.ok(claim("c3", "a", "2024-04-01", 2, "1000.00"));
    expect(
        &none,
        &[
            ("ordinary_paid", "0.00"),
            ("fund_paid", "0.00"),
            ("cash_paid", "1000.00"),
        ],
    );
    assert_eq!(l.year("a", 2024).ordinary_paid, m("3000.00"));
    // A new year has a new limit: (600 - 200) x 0.6 = 240.00.
    expect(
        &l.ok(claim("c4", "a", "2025-01-02", 2, "600.00")),
        &[("ordinary_paid", "240.00")],
    );
}

#[test]
fn annual_limit_retired_employer_is_4000() {
    let mut l = Ledger::chongqing();
    l.retiree("r", "0.00");
    // c1: (5100 - 100) x 0.7 = 3500.00; 500 left.
    expect(
        &l.ok(claim("c1", "r", "2024-02-01", 2, "5100.00")),
        &[("ordinary_paid", "3500.00")],
    );
    // c2: 1000 x 0.7 = 700.00 computed, cut to 500.00.
    expect(
        &l.ok(claim("c2", "r", "2024-03-01", 2, "1000.00")),
        &[("ordinary_paid", "500.00")],
    );
    expect(
        &l.ok(claim("c3", "r", "2024-04-01", 2, "1000.00")),
        &[("ordinary_paid", "0.00")],
    );
    assert_eq!(l.year("r", 2024).ordinary_paid, m("4000.00"));
}

#[test]
fn annual_limit_tier1_active_is_800() {
    let mut l = Ledger::chongqing();
    l.enroll(
        "t",
        "1985-01-01",
        "active",
        "individual_tier1",
        "2024-01-01",
        "0.00",
    );
    // c1: (1200 - 200) x 0.6 = 600.00; 200 left.
    expect(
        &l.ok(claim("c1", "t", "2024-02-01", 2, "1200.00")),
        &[("ordinary_paid", "600.00")],
    );
    // c2: 1000 x 0.6 = 600.00, cut to 200.00.
    expect(
        &l.ok(claim("c2", "t", "2024-03-01", 2, "1000.00")),
        &[("ordinary_paid", "200.00")],
    );
    expect(
        &l.ok(claim("c3", "t", "2024-04-01", 2, "500.00")),
        &[("ordinary_paid", "0.00")],
    );
    assert_eq!(l.year("t", 2024).ordinary_paid, m("800.00"));
}

#[test]
fn annual_limit_tier1_retired_is_1200() {
    let mut l = Ledger::chongqing();
    l.enroll(
        "t",
        "1960-01-01",
        "retired",
        "individual_tier1",
        "2024-01-01",
        "0.00",
    );
    // c1: (1100 - 100) x 0.7 = 700.00; 500 left.
    expect(
        &l.ok(claim("c1", "t", "2024-02-01", 2, "1100.00")),
        &[("ordinary_paid", "700.00")],
    );
    // c2: 1000 x 0.7 = 700.00, cut to 500.00.
    expect(
        &l.ok(claim("c2", "t", "2024-03-01", 2, "1000.00")),
        &[("ordinary_paid", "500.00")],
    );
    expect(
        &l.ok(claim("c3", "t", "2024-04-01", 2, "500.00")),
        &[("ordinary_paid", "0.00")],
    );
    assert_eq!(l.year("t", 2024).ordinary_paid, m("1200.00"));
}

#[test]
fn annual_limit_tier2_and_lump_sum_active_is_3000() {
    let mut l = Ledger::chongqing();
    l.enroll(
        "t2",
        "1985-01-01",
        "active",
        "individual_tier2",
        "2024-01-01",
        "0.00",
    );
    l.ok(json!({"cmd": "enroll", "member": "ls", "region": REGION, "born": "1985-01-01", "status": "active",
                "scheme": "lump_sum", "date": "2024-01-01", "lump_sum_base": "5000.00", "lump_sum_until": "2024-12"}));
    // (10200 - 200) x 0.6 = 6000.00 computed, cut to 3000.00 for both.
    expect(
        &l.ok(claim("c1", "t2", "2024-02-01", 2, "10200.00")),
        &[("ordinary_paid", "3000.00")],
    );
    expect(
        &l.ok(claim("c2", "ls", "2024-02-01", 2, "10200.00")),
        &[("ordinary_paid", "3000.00")],
    );
}

// ---------------------------------------------------------------------------------------------
// Special payments, rounding, annual maximum
// ---------------------------------------------------------------------------------------------

#[test]
fn special_paid_is_not_counted_toward_the_limit() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // c1: remainder 10000 - 9000 = 1000; deductible 200; 800 x 0.6 = 480.00 ordinary.
    let c1 = l.ok(with(
        claim("c1", "a", "2024-02-01", 2, "10000.00"),
        json!({"special_paid": "9000.00"}),
    ));
    expect(
        &c1,
        &[
            ("special_paid", "9000.00"),
            ("ordinary_paid", "480.00"),
            ("fund_paid", "9480.00"),
            ("pooled_paid", "9480.00"),
        ],
    );
    // c2: 5000 x 0.6 = 3000 computed; limit left is 3000 - 480 = 2520 (the 9000 special does not count).
    let c2 = l.ok(claim("c2", "a", "2024-03-01", 2, "5000.00"));
    expect(&c2, &[("ordinary_paid", "2520.00")]);
    let year = l.year("a", 2024);
    assert_eq!(year.ordinary_paid, m("3000.00"));
    assert_eq!(year.special_paid, m("9000.00"));
    assert_eq!(year.pooled_paid, m("12000.00"), "9000 + 480 + 2520");
}

#[test]
fn special_paid_comes_out_before_the_deductible() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // remainder 500 - 200 = 300; deductible 200 of it; (300 - 200) x 0.6 = 60.00;
    // own share 500 - 200 - 60 = 240.00.
    let out = l.ok(with(
        claim("c1", "a", "2024-02-01", 2, "500.00"),
        json!({"special_paid": "200.00"}),
    ));
    expect(
        &out,
        &[
            ("deductible_applied", "200.00"),
            ("ordinary_paid", "60.00"),
            ("fund_paid", "260.00"),
            ("cash_paid", "240.00"),
        ],
    );
    assert_eq!(
        l.year("a", 2024).ordinary_cost,
        m("300.00"),
        "only eligible - special enters ordinary pooling"
    );
}

#[test]
fn special_paid_above_eligible_is_refused() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    let code = l.code(with(
        claim("c1", "a", "2024-02-01", 2, "100.00"),
        json!({"special_paid": "100.01"}),
    ));
    assert_eq!(code, "special_exceeds_eligible");
}

#[test]
fn half_up_rounding_to_the_fen() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    l.retiree("r", "0.00");
    // Active level 3: (300.01 - 200) x 0.5 = 50.005 -> 50.01 (half-even would give 50.00).
    expect(
        &l.ok(claim("c1", "a", "2024-02-01", 3, "300.01")),
        &[("ordinary_paid", "50.01")],
    );
    // Retired level 1: (200.15 - 100) x 0.7 = 70.105 -> 70.11 (half-even would give 70.10).
    expect(
        &l.ok(claim("c2", "r", "2024-02-01", 1, "200.15")),
        &[("ordinary_paid", "70.11")],
    );
    // Retired level 3 below the half: 0.01 x 0.6 = 0.006 -> 0.01; 0.02 x 0.6 = 0.012 -> 0.01.
    expect(
        &l.ok(claim("c3", "r", "2024-02-02", 3, "0.01")),
        &[("ordinary_paid", "0.01")],
    );
    expect(
        &l.ok(claim("c4", "r", "2024-02-03", 3, "0.02")),
        &[("ordinary_paid", "0.01")],
    );
    // Contribution: 1000.25 x 0.02 = 20.005 -> 20.01; pooled 1000.25 x 0.085 = 85.02125 -> 85.02.
    let c = l.ok(contribute("a", "2024-01", "1000.25"));
    expect(&c, &[("credited", "20.01"), ("pooled", "85.02")]);
}

#[test]
fn large_amount_fund_takes_the_excess_over_the_annual_maximum() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // c1: special 79900 (all of eligible): remainder 0; pooled fund has paid 79900 this year.
    let c1 = l.ok(with(
        claim("c1", "a", "2024-02-01", 2, "79900.00"),
        json!({"special_paid": "79900.00"}),
    ));
    expect(
        &c1,
        &[
            ("pooled_paid", "79900.00"),
            ("large_amount_paid", "0.00"),
            ("ordinary_paid", "0.00"),
            ("deductible_applied", "0.00"),
        ],
    );
    // c2: (1200 - 200) x 0.6 = 600 ordinary; room under 80000 is 100 -> pooled 100, large 500.
    let c2 = l.ok(claim("c2", "a", "2024-03-01", 2, "1200.00"));
    expect(
        &c2,
        &[
            ("ordinary_paid", "600.00"),
            ("pooled_paid", "100.00"),
            ("large_amount_paid", "500.00"),
            ("fund_paid", "600.00"),
        ],
    );
    // c3: 5000 x 0.6 = 3000 computed; the limit has 3000 - 600 = 2400 left (the large-amount
    // 500 counted); all of it from the large-amount fund.
    let c3 = l.ok(claim("c3", "a", "2024-04-01", 2, "5000.00"));
    expect(
        &c3,
        &[
            ("ordinary_paid", "2400.00"),
            ("pooled_paid", "0.00"),
            ("large_amount_paid", "2400.00"),
        ],
    );
    let year = l.year("a", 2024);
    assert_eq!(
        year.pooled_paid,
        m("80000.00"),
        "pooled fund stops at the maximum"
    );
    assert_eq!(year.large_amount_paid, m("2900.00"), "500 + 2400");
    assert_eq!(
        year.ordinary_paid,
        m("3000.00"),
        "large-amount payments count to the limit"
    );
    assert_eq!(l.fund(FundKind::Pooled), m("-80000.00"));
    assert_eq!(l.fund(FundKind::LargeAmount), m("-2900.00"));
    // The next year the pooled fund pays again: (1200 - 200) x 0.6 = 600 pooled.
    let next = l.ok(claim("c4", "a", "2025-01-05", 2, "1200.00"));
    expect(
        &next,
        &[("pooled_paid", "600.00"), ("large_amount_paid", "0.00")],
    );
}

// ---------------------------------------------------------------------------------------------
// Own share: account and cash
// ---------------------------------------------------------------------------------------------

#[test]
fn own_share_comes_from_the_account_up_to_its_balance_then_cash() {
    let mut l = Ledger::chongqing();
    l.active("poor", "100.00");
    l.active("rich", "1000.00");
    // eligible 1200 + uncovered 50: ordinary 600; own share 1200 + 50 - 600 = 650.
    // poor: 100 from the account, 550 cash.
    let poor = l.ok(with(
        claim("c1", "poor", "2024-02-01", 2, "1200.00"),
        json!({"uncovered": "50.00"}),
    ));
    expect(
        &poor,
        &[
            ("ordinary_paid", "600.00"),
            ("account_paid", "100.00"),
            ("cash_paid", "550.00"),
            ("balance", "0.00"),
        ],
    );
    assert_eq!(l.balance("poor"), Money::ZERO);
    // rich: all 650 from the account, balance 1000 - 650 = 350.
    let rich = l.ok(with(
        claim("c2", "rich", "2024-02-01", 2, "1200.00"),
        json!({"uncovered": "50.00"}),
    ));
    expect(
        &rich,
        &[
            ("account_paid", "650.00"),
            ("cash_paid", "0.00"),
            ("balance", "350.00"),
            ("reimbursed_to_member", "0.00"),
        ],
    );
    assert_eq!(l.balance("rich"), m("350.00"));
}

#[test]
fn use_account_false_pays_all_in_cash() {
    let mut l = Ledger::chongqing();
    l.active("a", "1000.00");
    // own share 1200 - 600 = 600, all in cash; balance untouched.
    let out = l.ok(with(
        claim("c1", "a", "2024-02-01", 2, "1200.00"),
        json!({"use_account": false}),
    ));
    expect(
        &out,
        &[
            ("account_paid", "0.00"),
            ("cash_paid", "600.00"),
            ("balance", "1000.00"),
        ],
    );
    assert_eq!(l.balance("a"), m("1000.00"));
}

#[test]
fn manual_claim_reimburses_the_fund_payment_to_the_member() {
    let mut l = Ledger::chongqing();
    l.active("a", "1000.00");
    // special 100; remainder 1100, deductible 200, 900 x 0.6 = 540 ordinary; fund 640 goes back
    // to the member, who paid everything up front; the account is not touched.
    let out = l.ok(with(
        claim("c1", "a", "2024-02-01", 2, "1200.00"),
        json!({"channel": "manual", "special_paid": "100.00"}),
    ));
    expect(
        &out,
        &[
            ("fund_paid", "640.00"),
            ("reimbursed_to_member", "640.00"),
            ("account_paid", "0.00"),
            ("cash_paid", "560.00"),
            ("balance", "1000.00"),
        ],
    );
    assert_eq!(l.balance("a"), m("1000.00"));
    assert_eq!(l.fund(FundKind::Pooled), m("-640.00"));
}

// ---------------------------------------------------------------------------------------------
// Monthly credits
// ---------------------------------------------------------------------------------------------

#[test]
fn retiree_monthly_credit_is_105_then_115_from_the_month_turning_70() {
    let mut l = Ledger::chongqing();
    l.enroll(
        "old",
        "1954-06-15",
        "retired",
        "employer",
        "2024-01-01",
        "0.00",
    );
    // May 2024: 69 -> 105.00.
    let may = l.ok(allocate("2024-05"));
    assert_eq!(may["members_credited"], json!(1));
    expect(
        &may,
        &[
            ("credited", "105.00"),
            ("pooled_paid", "105.00"),
            ("lump_sum_credited", "0.00"),
        ],
    );
    // June 2024 (turns 70 on the 15th; the whole month counts): 115.00.
    let june = l.ok(allocate("2024-06"));
    expect(&june, &[("credited", "115.00")]);
    assert_eq!(l.balance("old"), m("220.00"));
}

#[test]
fn allocate_twice_for_the_same_month_credits_nobody_twice() {
    let mut l = Ledger::chongqing();
    l.retiree("r", "0.00");
    expect(&l.ok(allocate("2024-03")), &[("credited", "105.00")]);
    let again = l.ok(allocate("2024-03"));
    assert_eq!(again["members_credited"], json!(0));
    expect(&again, &[("credited", "0.00"), ("pooled_paid", "0.00")]);
    assert_eq!(l.balance("r"), m("105.00"));
    assert_eq!(l.fund(FundKind::Pooled), m("-105.00"));
}

#[test]
fn allocate_skips_actives_and_members_enrolled_after_the_month() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    l.enroll(
        "t1",
        "1950-01-01",
        "retired",
        "individual_tier1",
        "2024-01-01",
        "0.00",
    );
    l.retiree("r", "0.00");
    l.enroll(
        "late",
        "1958-01-01",
        "retired",
        "employer",
        "2024-07-01",
        "0.00",
    );
    // June: only r is due (a is active, t1 is tier 1 with no credit, late enrolled in July).
    let june = l.ok(allocate("2024-06"));
    assert_eq!(june["members_credited"], json!(1), "{june}");
    expect(&june, &[("credited", "105.00")]);
    assert_eq!(l.balance("a"), Money::ZERO);
    assert_eq!(l.balance("t1"), Money::ZERO);
    assert_eq!(l.balance("late"), Money::ZERO);
    // July: r and late.
    let july = l.ok(allocate("2024-07"));
    assert_eq!(july["members_credited"], json!(2), "{july}");
    expect(&july, &[("credited", "210.00")]);
}

#[test]
fn retiree_credit_is_paid_by_the_pooled_fund() {
    let mut l = Ledger::chongqing();
    l.retiree("r1", "0.00");
    l.enroll(
        "r2",
        "1950-01-01",
        "retired",
        "individual_tier2",
        "2024-01-01",
        "0.00",
    );
    // 105 (r1, 63) + 115 (r2, 74) = 220 out of the pooled fund.
    let out = l.ok(allocate("2024-02"));
    expect(&out, &[("credited", "220.00"), ("pooled_paid", "220.00")]);
    let pooled = l.state.fund(FundKind::Pooled, REGION);
    assert_eq!(pooled.outflow, m("220.00"));
    assert_eq!(pooled.inflow, Money::ZERO);
    assert_eq!(l.balance("r1"), m("105.00"));
    assert_eq!(l.balance("r2"), m("115.00"));
}

#[test]
fn contribute_credits_2_percent_and_pays_8_5_percent_to_the_pooled_fund() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    // 1234.57 x 0.02 = 24.6914 -> 24.69; 1234.57 x 0.085 = 104.93845 -> 104.94.
    let out = l.ok(contribute("a", "2024-03", "1234.57"));
    expect(
        &out,
        &[
            ("credited", "24.69"),
            ("pooled", "104.94"),
            ("balance", "24.69"),
            ("month", "2024-03"),
        ],
    );
    assert_eq!(l.balance("a"), m("24.69"));
    assert_eq!(l.state.fund(FundKind::Pooled, REGION).inflow, m("104.94"));
}

#[test]
fn contribute_tier2_credits_2_percent_and_pays_7_percent() {
    let mut l = Ledger::chongqing();
    l.enroll(
        "t2",
        "1985-01-01",
        "active",
        "individual_tier2",
        "2024-01-01",
        "0.00",
    );
    // 5000 x 0.02 = 100.00; 5000 x 0.07 = 350.00.
    expect(
        &l.ok(contribute("t2", "2024-01", "5000.00")),
        &[("credited", "100.00"), ("pooled", "350.00")],
    );
}

#[test]
fn contribute_tier1_credits_nothing_but_pays_the_pooled_share() {
    let mut l = Ledger::chongqing();
    l.enroll(
        "t1",
        "1985-01-01",
        "active",
        "individual_tier1",
        "2024-01-01",
        "0.00",
    );
    // No credit; 5000 x 0.04 = 200.00 to the pooled fund.
    expect(
        &l.ok(contribute("t1", "2024-01", "5000.00")),
        &[
            ("credited", "0.00"),
            ("pooled", "200.00"),
            ("balance", "0.00"),
        ],
    );
    assert_eq!(l.balance("t1"), Money::ZERO);
    assert_eq!(l.fund(FundKind::Pooled), m("200.00"));
}

#[test]
fn contribute_same_month_twice_is_already_credited() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    l.ok(contribute("a", "2024-03", "5000.00"));
    assert_eq!(
        l.code(contribute("a", "2024-03", "5000.00")),
        "already_credited"
    );
    // Another month is fine.
    l.ok(contribute("a", "2024-04", "5000.00"));
    assert_eq!(l.balance("a"), m("200.00"), "2 x 5000 x 0.02");
}

#[test]
fn contribute_for_a_retiree_is_not_active() {
    let mut l = Ledger::chongqing();
    l.retiree("r", "0.00");
    assert_eq!(l.code(contribute("r", "2024-03", "5000.00")), "not_active");
}

#[test]
fn contribute_before_enrolment_is_refused() {
    let mut l = Ledger::chongqing();
    l.enroll(
        "a",
        "1980-01-01",
        "active",
        "employer",
        "2024-03-15",
        "0.00",
    );
    assert_eq!(
        l.code(contribute("a", "2024-02", "5000.00")),
        "before_enrolment"
    );
    // The month of enrolment itself is fine.
    expect(
        &l.ok(contribute("a", "2024-03", "5000.00")),
        &[("credited", "100.00")],
    );
}

#[test]
fn lump_sum_credits_2_percent_of_its_base_inside_the_period_then_pooled_amounts() {
    let mut l = Ledger::chongqing();
    l.ok(json!({"cmd": "enroll", "member": "ls", "region": REGION, "born": "1970-01-01", "status": "active",
                "scheme": "lump_sum", "date": "2024-01-01", "lump_sum_base": "6000.00", "lump_sum_until": "2024-06"}));
    l.ok(json!({"cmd": "enroll", "member": "old", "region": REGION, "born": "1950-03-01", "status": "active",
                "scheme": "lump_sum", "date": "2024-01-01", "lump_sum_base": "4000.00", "lump_sum_until": "2024-06"}));
    // June (last month of the period): 6000 x 0.02 = 120.00 and 4000 x 0.02 = 80.00, paid by
    // the lump sum, not the pooled fund.
    let june = l.ok(allocate("2024-06"));
    expect(
        &june,
        &[
            ("credited", "200.00"),
            ("lump_sum_credited", "200.00"),
            ("pooled_paid", "0.00"),
        ],
    );
    assert_eq!(l.fund(FundKind::Pooled), Money::ZERO);
    // July (after the period): 105.00 (54 years old) and 115.00 (74), from the pooled fund.
    let july = l.ok(allocate("2024-07"));
    expect(
        &july,
        &[
            ("credited", "220.00"),
            ("lump_sum_credited", "0.00"),
            ("pooled_paid", "220.00"),
        ],
    );
    assert_eq!(l.balance("ls"), m("225.00"), "120 + 105");
    assert_eq!(l.balance("old"), m("195.00"), "80 + 115");
    assert_eq!(l.fund(FundKind::Pooled), m("-220.00"));
    let lump: Vec<_> = l
        .events
        .iter()
        .filter_map(|e| match e {
            Event::AccountCredited {
                member,
                paid_by,
                base,
                ..
            } if member == "ls" => Some((*paid_by, *base)),
            _ => None,
        })
        .collect();
    use gongji_domain::policy::CreditSource;
    assert_eq!(
        lump,
        vec![
            (CreditSource::LumpSum, Some(m("6000.00"))),
            (CreditSource::PooledFund, None)
        ]
    );
}

#[test]
fn lump_sum_needs_its_base_and_period() {
    let mut l = Ledger::chongqing();
    let missing = json!({"cmd": "enroll", "member": "ls", "region": REGION, "born": "1970-01-01", "status": "active",
                         "scheme": "lump_sum", "date": "2024-01-01"});
    assert_eq!(l.code(missing), "lump_sum_mismatch");
    let extra = json!({"cmd": "enroll", "member": "e", "region": REGION, "born": "1970-01-01", "status": "active",
                       "scheme": "employer", "date": "2024-01-01", "lump_sum_base": "1.00", "lump_sum_until": "2024-06"});
    assert_eq!(l.code(extra), "lump_sum_mismatch");
}

// ---------------------------------------------------------------------------------------------
// Paying from the personal account
// ---------------------------------------------------------------------------------------------

fn bind(holder: &str, relative: &str, relation: &str, date: &str) -> Value {
    json!({"cmd": "bind_family", "holder": holder, "relative": relative, "relation": relation, "date": date})
}

#[test]
fn account_pay_for_self_is_allowed() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    // 500 - 200 = 300.
    let out = l.ok(pay("p1", "a", "2024-02-01", "institution", "200.00"));
    expect(
        &out,
        &[
            ("id", "p1"),
            ("holder", "a"),
            ("beneficiary", "a"),
            ("amount", "200.00"),
            ("balance", "300.00"),
        ],
    );
    // Pharmacy, resident premium and long-term-care premium are allowed too: 300 - 10 - 20 - 30 = 240.
    l.ok(pay("p2", "a", "2024-02-01", "pharmacy", "10.00"));
    l.ok(pay("p3", "a", "2024-02-01", "resident_premium", "20.00"));
    l.ok(pay("p4", "a", "2024-02-01", "ltc_premium", "30.00"));
    assert_eq!(l.balance("a"), m("240.00"));
}

#[test]
fn account_pay_for_a_bound_spouse_is_allowed() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    l.ok(bind("a", "spouse", "spouse", "2024-02-01"));
    let out = l.ok(with(
        pay("p1", "a", "2024-03-01", "institution", "100.00"),
        json!({"beneficiary": "spouse"}),
    ));
    expect(&out, &[("beneficiary", "spouse"), ("balance", "400.00")]);
    // Bound on the payment day itself also counts.
    l.ok(bind("a", "kid", "child", "2024-04-01"));
    l.ok(with(
        pay("p2", "a", "2024-04-01", "pharmacy", "50.00"),
        json!({"beneficiary": "kid"}),
    ));
    assert_eq!(l.balance("a"), m("350.00"));
}

#[test]
fn account_pay_for_an_unbound_relative_is_relative_not_bound() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    let code = l.code(with(
        pay("p1", "a", "2024-03-01", "institution", "100.00"),
        json!({"beneficiary": "mother"}),
    ));
    assert_eq!(code, "relative_not_bound");
}

#[test]
fn account_pay_dated_before_the_binding_is_relative_not_bound() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    l.ok(bind("a", "mother", "parent", "2024-05-01"));
    let rejection = l.rejected(with(
        pay("p1", "a", "2024-04-30", "institution", "100.00"),
        json!({"beneficiary": "mother"}),
    ));
    assert_eq!(rejection.code, "relative_not_bound");
    assert!(
        rejection.message.contains("2024-05-01"),
        "message names the binding day: {}",
        rejection.message
    );
}

#[test]
fn account_pay_after_unbinding_is_relative_not_bound() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    l.ok(bind("a", "mother", "parent", "2024-02-01"));
    l.ok(
        json!({"cmd": "unbind_family", "holder": "a", "relative": "mother", "date": "2024-03-01"}),
    );
    let code = l.code(with(
        pay("p1", "a", "2024-04-01", "institution", "100.00"),
        json!({"beneficiary": "mother"}),
    ));
    assert_eq!(code, "relative_not_bound");
    assert_eq!(
        l.code(json!({"cmd": "unbind_family", "holder": "a", "relative": "mother", "date": "2024-05-01"})),
        "relative_not_bound",
        "unbinding twice"
    );
}

#[test]
fn account_pay_dated_while_bound_is_allowed_after_a_later_unbinding() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    l.ok(bind("a", "mother", "parent", "2024-02-01"));
    l.ok(
        json!({"cmd": "unbind_family", "holder": "a", "relative": "mother", "date": "2024-04-01"}),
    );
    // Dated 2024-03-01, when mother was bound (2024-02-01 to 2024-04-01): 500 - 100 = 400.
    let out = l.ok(with(
        pay("p1", "a", "2024-03-01", "institution", "100.00"),
        json!({"beneficiary": "mother"}),
    ));
    expect(&out, &[("balance", "400.00")]);
}

#[test]
fn unbinding_before_the_binding_day_is_refused() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    l.ok(bind("a", "mother", "parent", "2024-05-01"));
    let rejection = l.run(
        &json!({"cmd": "unbind_family", "holder": "a", "relative": "mother", "date": "2024-04-01"})
            .to_string(),
    );
    assert!(
        rejection.is_err(),
        "unbinding on 2024-04-01 a relative bound on 2024-05-01 was accepted: {rejection:?}"
    );
}

#[test]
fn binding_twice_or_oneself_is_refused() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    l.ok(bind("a", "s", "spouse", "2024-02-01"));
    assert_eq!(
        l.code(bind("a", "s", "spouse", "2024-03-01")),
        "already_bound"
    );
    assert_eq!(
        l.code(bind("a", "a", "spouse", "2024-03-01")),
        "self_binding"
    );
}

#[test]
fn account_pay_for_public_health_fitness_or_wellness_is_purpose_not_allowed() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    for (i, purpose) in ["public_health", "fitness", "wellness"].iter().enumerate() {
        let code = l.code(pay(&format!("p{i}"), "a", "2024-03-01", purpose, "10.00"));
        assert_eq!(code, "purpose_not_allowed", "purpose {purpose}");
    }
    assert_eq!(l.balance("a"), m("500.00"));
}

#[test]
fn large_amount_premium_only_for_a_retirees_own_and_into_the_large_amount_fund() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    l.retiree("r", "500.00");
    assert_eq!(
        l.code(pay(
            "p1",
            "a",
            "2024-03-01",
            "large_amount_premium",
            "100.00"
        )),
        "purpose_not_allowed",
        "active member"
    );
    l.ok(bind("r", "s", "spouse", "2024-02-01"));
    assert_eq!(
        l.code(with(
            pay("p2", "r", "2024-03-01", "large_amount_premium", "100.00"),
            json!({"beneficiary": "s"})
        )),
        "purpose_not_allowed",
        "for a relative"
    );
    // The retiree's own: 500 - 100 = 400; the large-amount fund receives 100.
    let out = l.ok(pay(
        "p3",
        "r",
        "2024-03-01",
        "large_amount_premium",
        "100.00",
    ));
    expect(&out, &[("balance", "400.00")]);
    let large = l.state.fund(FundKind::LargeAmount, REGION);
    assert_eq!(large.inflow, m("100.00"));
    assert_eq!(large.balance(), m("100.00"));
    assert_eq!(l.fund(FundKind::Pooled), Money::ZERO);
}

#[test]
fn account_pay_beyond_the_balance_is_insufficient_balance() {
    let mut l = Ledger::chongqing();
    l.active("a", "100.00");
    let rejection = l.rejected(pay("p1", "a", "2024-03-01", "institution", "100.01"));
    assert_eq!(rejection.code, "insufficient_balance");
    assert!(
        rejection.message.contains("100.00") && rejection.message.contains("100.01"),
        "message names the balance and the amount: {}",
        rejection.message
    );
    // Exactly the balance is fine.
    expect(
        &l.ok(pay("p2", "a", "2024-03-01", "institution", "100.00")),
        &[("balance", "0.00")],
    );
}

#[test]
fn account_pay_of_zero_or_before_enrolment_is_refused() {
    let mut l = Ledger::chongqing();
    l.active("a", "100.00");
    assert_eq!(
        l.code(pay("p1", "a", "2024-03-01", "institution", "0.00")),
        "negative_amount"
    );
    assert_eq!(
        l.code(pay("p2", "a", "2023-12-31", "institution", "1.00")),
        "before_enrolment"
    );
    assert_eq!(
        l.code(pay("p3", "nobody", "2024-03-01", "institution", "1.00")),
        "unknown_member"
    );
}

#[test]
fn account_pay_records_its_institution_held_to_the_bounds_of_an_id() {
    let mut l = Ledger::chongqing();
    l.active("a", "100.00");
    for bad in ["", "a\u{7}b", "x".repeat(65).as_str()] {
        let line = with(
            pay("p1", "a", "2024-03-01", "pharmacy", "1.00"),
            json!({ "institution": bad }),
        );
        assert_eq!(l.code(line), "malformed_id", "{bad:?}");
    }
    l.ok(with(
        pay("p1", "a", "2024-03-01", "pharmacy", "1.00"),
        json!({"institution": "PH500101"}),
    ));
    l.ok(pay("p2", "a", "2024-03-01", "pharmacy", "1.00"));
    let institutions: Vec<_> = l
        .events
        .iter()
        .filter_map(|e| match e {
            Event::AccountPaid { institution, .. } => Some(institution.0.as_deref()),
            _ => None,
        })
        .collect();
    assert_eq!(institutions, [Some("PH500101"), None]);
}

// ---------------------------------------------------------------------------------------------
// Reversals
// ---------------------------------------------------------------------------------------------

#[test]
fn reversing_a_claim_restores_balance_counters_and_funds_exactly() {
    let mut l = Ledger::chongqing();
    l.active("a", "1000.00");
    // An earlier claim, so the year already has counters: special 79900, pooled 79900.
    l.ok(with(
        claim("c0", "a", "2024-02-01", 2, "79900.00"),
        json!({"special_paid": "79900.00", "use_account": false}),
    ));
    let balance = l.balance("a");
    let year = l.year("a", 2024);
    let pooled = l.state.fund(FundKind::Pooled, REGION);
    let large = l.state.fund(FundKind::LargeAmount, REGION);
    // c1: eligible 1200 + uncovered 50; ordinary 600 = pooled 100 + large 500; own 650 from the account.
    let c1 = l.ok(with(
        claim("c1", "a", "2024-03-01", 2, "1200.00"),
        json!({"uncovered": "50.00"}),
    ));
    expect(
        &c1,
        &[
            ("pooled_paid", "100.00"),
            ("large_amount_paid", "500.00"),
            ("account_paid", "650.00"),
            ("balance", "350.00"),
        ],
    );
    let out = l.ok(reverse("c1", "2024-03-05"));
    expect(
        &out,
        &[
            ("id", "c1"),
            ("kind", "claim"),
            ("account_refunded", "650.00"),
            ("pooled_refunded", "100.00"),
            ("large_amount_refunded", "500.00"),
        ],
    );
    assert_eq!(l.balance("a"), balance, "balance restored");
    assert_eq!(l.year("a", 2024), year, "every year counter restored");
    assert_eq!(
        l.state.fund(FundKind::Pooled, REGION),
        pooled,
        "pooled fund restored"
    );
    assert_eq!(
        l.state.fund(FundKind::LargeAmount, REGION),
        large,
        "large-amount fund restored"
    );
    assert_eq!(
        l.state.txs["c1"].reversed_on.map(|d| d.to_string()),
        Some("2024-03-05".to_string())
    );
    // The restored counters settle the same claim again the same way.
    let again = l.ok(with(
        claim("c2", "a", "2024-03-06", 2, "1200.00"),
        json!({"uncovered": "50.00"}),
    ));
    expect(
        &again,
        &[
            ("pooled_paid", "100.00"),
            ("large_amount_paid", "500.00"),
            ("deductible_applied", "200.00"),
        ],
    );
}

#[test]
fn reversing_the_only_claim_returns_the_year_to_zero() {
    let mut l = Ledger::chongqing();
    l.active("a", "1000.00");
    l.ok(claim("c1", "a", "2024-03-01", 2, "1200.00"));
    l.ok(reverse("c1", "2024-03-01"));
    let year = l.year("a", 2024);
    assert_eq!(year.deductible_used_total(), Money::ZERO);
    assert!(
        year.deductible_used.values().all(|v| *v == Money::ZERO),
        "{year:?}"
    );
    assert_eq!(
        (year.ordinary_cost, year.ordinary_paid, year.special_paid),
        (Money::ZERO, Money::ZERO, Money::ZERO)
    );
    assert_eq!(
        (year.pooled_paid, year.large_amount_paid, year.claims),
        (Money::ZERO, Money::ZERO, 0)
    );
    assert_eq!(l.balance("a"), m("1000.00"));
    assert_eq!(l.fund(FundKind::Pooled), Money::ZERO);
}

#[test]
fn reversing_twice_is_already_reversed() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    l.ok(claim("c1", "a", "2024-03-01", 2, "1200.00"));
    l.ok(reverse("c1", "2024-03-02"));
    let rejection = l.rejected(reverse("c1", "2024-03-03"));
    assert_eq!(rejection.code, "already_reversed");
    assert!(
        rejection.message.contains("2024-03-02"),
        "{}",
        rejection.message
    );
}

#[test]
fn reversing_an_unknown_id_is_unknown_transaction() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    assert_eq!(l.code(reverse("nope", "2024-03-02")), "unknown_transaction");
}

#[test]
fn reversing_before_the_original_is_refused() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    l.ok(claim("c1", "a", "2024-03-01", 2, "1200.00"));
    assert_eq!(
        l.code(reverse("c1", "2024-02-28")),
        "reversal_before_original"
    );
}

#[test]
fn reversing_an_account_payment_refunds_it() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    l.retiree("r", "500.00");
    l.ok(pay("p1", "a", "2024-03-01", "pharmacy", "120.00"));
    assert_eq!(l.balance("a"), m("380.00"));
    let out = l.ok(reverse("p1", "2024-03-02"));
    expect(
        &out,
        &[
            ("kind", "account_payment"),
            ("account_refunded", "120.00"),
            ("pooled_refunded", "0.00"),
        ],
    );
    assert_eq!(l.balance("a"), m("500.00"));
    // A premium reversal also takes the money back out of the large-amount fund.
    l.ok(pay(
        "p2",
        "r",
        "2024-03-01",
        "large_amount_premium",
        "300.00",
    ));
    assert_eq!(l.fund(FundKind::LargeAmount), m("300.00"));
    l.ok(reverse("p2", "2024-03-02"));
    assert_eq!(l.fund(FundKind::LargeAmount), Money::ZERO);
    assert_eq!(l.balance("r"), m("500.00"));
    assert_eq!(l.code(reverse("p2", "2024-03-03")), "already_reversed");
}

// ---------------------------------------------------------------------------------------------
// Claim validation
// ---------------------------------------------------------------------------------------------

#[test]
fn claim_ids_are_never_settled_twice() {
    let mut l = Ledger::chongqing();
    l.active("a", "500.00");
    l.active("b", "500.00");
    l.ok(claim("c1", "a", "2024-03-01", 2, "100.00"));
    assert_eq!(
        l.code(claim("c1", "a", "2024-03-02", 2, "100.00")),
        "duplicate_id"
    );
    assert_eq!(
        l.code(claim("c1", "b", "2024-03-02", 2, "100.00")),
        "duplicate_id",
        "another member"
    );
    // Still a duplicate after reversal.
    l.ok(reverse("c1", "2024-03-03"));
    assert_eq!(
        l.code(claim("c1", "a", "2024-03-04", 2, "100.00")),
        "duplicate_id",
        "after reversal"
    );
    // Claims and payments share one id space.
    l.ok(pay("p1", "a", "2024-03-01", "pharmacy", "1.00"));
    assert_eq!(
        l.code(claim("p1", "a", "2024-03-02", 2, "100.00")),
        "duplicate_id"
    );
    assert_eq!(
        l.code(pay("c1", "a", "2024-03-02", "pharmacy", "1.00")),
        "duplicate_id"
    );
}

#[test]
fn claim_before_enrolment_is_refused() {
    let mut l = Ledger::chongqing();
    l.enroll(
        "a",
        "1980-01-01",
        "active",
        "employer",
        "2024-03-01",
        "0.00",
    );
    assert_eq!(
        l.code(claim("c1", "a", "2024-02-29", 2, "100.00")),
        "before_enrolment"
    );
}

#[test]
fn claim_for_an_unknown_member_is_refused() {
    let mut l = Ledger::chongqing();
    assert_eq!(
        l.code(claim("c1", "ghost", "2024-03-01", 2, "100.00")),
        "unknown_member"
    );
}

#[test]
fn claim_at_level_4_or_0_is_invalid_level() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    assert_eq!(
        l.code(claim("c1", "a", "2024-03-01", 4, "100.00")),
        "invalid_level"
    );
    assert_eq!(
        l.code(claim("c2", "a", "2024-03-01", 0, "100.00")),
        "invalid_level"
    );
}

#[test]
fn claim_dated_before_any_policy_version_is_no_policy_in_force() {
    let mut l = Ledger::chongqing();
    l.enroll(
        "a",
        "1980-01-01",
        "active",
        "employer",
        "2023-06-01",
        "0.00",
    );
    let rejection = l.rejected(claim("c1", "a", "2023-12-31", 2, "100.00"));
    assert_eq!(rejection.code, "no_policy_in_force");
    assert!(
        rejection.message.contains("2023-12-31"),
        "{}",
        rejection.message
    );
    // A day later the 2024 version applies.
    expect(
        &l.ok(claim("c2", "a", "2024-01-01", 2, "300.00")),
        &[("ordinary_paid", "60.00"), ("policy", V2024)],
    );
}

#[test]
fn negative_amounts_are_refused() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    assert_eq!(
        l.code(claim("c1", "a", "2024-03-01", 2, "-1.00")),
        "negative_amount"
    );
    assert_eq!(
        l.code(with(
            claim("c2", "a", "2024-03-01", 2, "1.00"),
            json!({"uncovered": "-0.01"})
        )),
        "negative_amount"
    );
    assert_eq!(
        l.code(contribute("a", "2024-03", "-5.00")),
        "negative_amount"
    );
}

#[test]
fn enrolling_twice_is_refused() {
    let mut l = Ledger::chongqing();
    l.active("a", "0.00");
    let again = json!({"cmd": "enroll", "member": "a", "region": REGION, "born": "1980-01-01", "status": "active",
                       "scheme": "employer", "date": "2024-02-01"});
    assert_eq!(l.code(again), "already_enrolled");
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn parse_code(line: &str) -> &'static str {
    match parse_command(line) {
        Ok(command) => panic!("{line} parsed as {command:?}"),
        Err(rejection) => rejection.code.as_str(),
    }
}

const CLAIM_LINE: &str = r#"{"cmd":"claim","id":"c1","member":"a","date":"2024-03-01","level":2,"channel":"institution","eligible":"2800.00"}"#;

#[test]
fn a_well_formed_claim_parses() {
    let command = parse_command(CLAIM_LINE).expect("the claim parses");
    match command {
        gongji_domain::Command::Claim {
            eligible,
            special_paid,
            uncovered,
            use_account,
            level,
            ..
        } => {
            assert_eq!(eligible, m("2800.00"));
            assert_eq!(
                (special_paid, uncovered),
                (Money::ZERO, Money::ZERO),
                "defaults"
            );
            assert!(use_account, "use_account defaults to true");
            assert_eq!(level, 2);
        }
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn parse_amount_with_three_places_is_malformed_amount() {
    assert_eq!(
        parse_code(&CLAIM_LINE.replace("2800.00", "12.345")),
        "malformed_amount"
    );
}

#[test]
fn parse_numeric_amount_is_malformed_amount() {
    assert_eq!(
        parse_code(&CLAIM_LINE.replace(r#""2800.00""#, "2800.00")),
        "malformed_amount"
    );
    assert_eq!(
        parse_code(&CLAIM_LINE.replace(r#""2800.00""#, "2800")),
        "malformed_amount"
    );
}

#[test]
fn parse_impossible_date_is_malformed_date() {
    assert_eq!(
        parse_code(&CLAIM_LINE.replace("2024-03-01", "2024-02-30")),
        "malformed_date"
    );
    assert_eq!(
        parse_code(&contribute("a", "2024-13", "1.00").to_string()),
        "malformed_date"
    );
}

#[test]
fn parse_unknown_cmd_is_unknown_command() {
    assert_eq!(
        parse_code(r#"{"cmd":"withdraw","member":"a"}"#),
        "unknown_command"
    );
    // A line with no cmd at all misses a field (issue 14, item 7); its message still lists the
    // commands.
    let missing = parse_command(r#"{"member":"a"}"#).unwrap_err();
    assert_eq!(missing.code, "missing_field");
    assert!(missing.message.contains("claim, bind_family"), "{missing}");
}

#[test]
fn parse_unknown_field_is_unknown_field() {
    assert_eq!(
        parse_code(&CLAIM_LINE.replace(r#""level":2"#, r#""level":2,"colour":"red""#)),
        "unknown_field"
    );
}

#[test]
fn parse_broken_json_is_malformed_json() {
    assert_eq!(
        parse_code(&CLAIM_LINE[..CLAIM_LINE.len() - 5]),
        "malformed_json"
    );
    assert_eq!(parse_code("{not json"), "malformed_json");
}

#[test]
fn parse_overlong_line_is_line_too_long() {
    let line = format!(
        r#"{{"cmd":"reverse","id":"x","date":"2024-01-01","reason":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    assert_eq!(parse_code(&line), "line_too_long");
}

// ---------------------------------------------------------------------------------------------
// Policy versions
// ---------------------------------------------------------------------------------------------

fn chongqing_json() -> Value {
    serde_json::from_str(CHONGQING).expect("the policy file is JSON")
}

#[test]
fn a_second_policy_version_applies_from_its_effective_day() {
    let mut l = Ledger::chongqing();
    let mut v2025 = chongqing_json();
    v2025["version"] = json!("500000/2025-01-01");
    v2025["effective"] = json!("2025-01-01");
    assert_eq!(
        v2025["outpatient"]["ratios"][0]["when"]["levels"],
        json!([1, 2])
    );
    v2025["outpatient"]["ratios"][0]["bands"][0]["ratio"] = json!("0.65");
    let loaded = l.ok(json!({"cmd": "load_policy", "policy": v2025}));
    expect(
        &loaded,
        &[
            ("version", "500000/2025-01-01"),
            ("effective", "2025-01-01"),
        ],
    );
    l.active("a", "0.00");
    // 2025: (1200 - 200) x 0.65 = 650.00 under the new version.
    let new = l.ok(claim("c1", "a", "2025-03-01", 2, "1200.00"));
    expect(
        &new,
        &[("ordinary_paid", "650.00"), ("policy", "500000/2025-01-01")],
    );
    // 2024 (settled after the new version was loaded): still 0.60 -> 600.00 under the old.
    let old = l.ok(claim("c2", "a", "2024-12-31", 2, "1200.00"));
    expect(&old, &[("ordinary_paid", "600.00"), ("policy", V2024)]);
    // The settlements record the version.
    let version = |id: &str| match &l.state.txs[id].kind {
        gongji_domain::state::TxKind::Claim(s) => s.policy.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(version("c1"), "500000/2025-01-01");
    assert_eq!(version("c2"), V2024);
    // Loading the same version (or the same effective day) again is refused.
    let mut same = chongqing_json();
    same["version"] = json!("500000/other");
    assert_eq!(
        l.code(json!({"cmd": "load_policy", "policy": same})),
        "duplicate_policy"
    );
}

#[test]
fn an_invalid_policy_is_refused() {
    let mut l = Ledger::empty();
    let mut bad = chongqing_json();
    bad["year_start"] = json!("02-30");
    assert_eq!(
        l.code(json!({"cmd": "load_policy", "policy": bad})),
        "invalid_policy"
    );
    let mut bands = chongqing_json();
    bands["outpatient"]["ratios"][0]["bands"] =
        json!([{"ratio": "0.5"}, {"up_to": "100.00", "ratio": "0.6"}]);
    assert_eq!(
        l.code(json!({"cmd": "load_policy", "policy": bands})),
        "invalid_policy"
    );
}

/// Another region's shape: an insurance year from 1 July, deductibles by level in two groups
/// with a yearly cap, a ratio for retirees 70 and over, ratio bands by cumulative cost, no annual
/// limit, no pooled maximum, fixed and age-banded credits for active employees.
fn other_region() -> Value {
    json!({
        "region": "990000",
        "version": "990000/2023-07-01",
        "effective": "2023-07-01",
        "year_start": "07-01",
        "sources": ["test fixture"],
        "contributions": [{"schemes": ["employer"], "pooled_rate": "0.06"}],
        "credits": [
            {"when": {"statuses": ["active"], "age_max": 44}, "paid_by": "contribution", "fixed": "50.00"},
            {"when": {"statuses": ["active"], "age_min": 45}, "paid_by": "contribution", "share_of_base": "0.03"},
            {"when": {"statuses": ["retired"]}, "paid_by": "pooled_fund", "fixed": "90.00"}
        ],
        "outpatient": {
            "deductibles": [
                {"when": {"levels": [1]}, "amount": "100.00", "group": "primary"},
                {"when": {"levels": [2, 3]}, "amount": "300.00", "group": "hospital"}
            ],
            "deductible_cap": "350.00",
            "ratios": [
                {"when": {"statuses": ["retired"], "age_min": 70}, "bands": [{"ratio": "0.9"}]},
                {"bands": [{"up_to": "1000.00", "ratio": "0.5"}, {"ratio": "0.7"}]}
            ],
            "limits": [{"amount": null}]
        }
    })
}

#[test]
fn a_policy_of_another_shape_settles_without_code_changes() {
    let mut l = Ledger::empty();
    l.ok(json!({"cmd": "load_policy", "policy": other_region()}));
    let enroll = |member: &str, born: &str, status: &str| {
        json!({"cmd": "enroll", "member": member, "region": "990000", "born": born, "status": status,
               "scheme": "employer", "date": "2023-07-01"})
    };
    l.ok(enroll("x", "1980-01-01", "active"));
    l.ok(enroll("y", "1970-01-01", "active"));
    l.ok(enroll("o", "1950-03-01", "retired"));

    // c1, 2024-06-30, insurance year 2023: level 1, deductible "primary" 100;
    // cumulative 100 -> 300 lies in the 0.5 band: 200 x 0.5 = 100.00.
    let c1 = l.ok(claim("c1", "x", "2024-06-30", 1, "300.00"));
    assert_eq!(c1["year"], json!(2023));
    expect(
        &c1,
        &[
            ("deductible_applied", "100.00"),
            ("ordinary_paid", "100.00"),
            ("policy", "990000/2023-07-01"),
        ],
    );
    // c2, 2024-07-01: a new insurance year (2024), the deductible restarts: same 100.00.
    let c2 = l.ok(claim("c2", "x", "2024-07-01", 1, "300.00"));
    assert_eq!(c2["year"], json!(2024));
    expect(
        &c2,
        &[
            ("deductible_applied", "100.00"),
            ("ordinary_paid", "100.00"),
        ],
    );
    // c3, level 2: group "hospital" would take 300, but the cap leaves 350 - 100 = 250.
    // Cumulative 300 + 250 = 550 -> 1800: 450 x 0.5 + 800 x 0.7 = 225 + 560 = 785.00.
    let c3 = l.ok(claim("c3", "x", "2024-07-02", 2, "1500.00"));
    expect(
        &c3,
        &[
            ("deductible_applied", "250.00"),
            ("ordinary_paid", "785.00"),
            ("pooled_paid", "785.00"),
        ],
    );
    // c4, level 3: the cap is reached (350), no deductible; cumulative 1800 on: 20000 x 0.7 =
    // 14000.00, no annual limit, no pooled maximum.
    let c4 = l.ok(claim("c4", "x", "2024-08-01", 3, "20000.00"));
    expect(
        &c4,
        &[
            ("deductible_applied", "0.00"),
            ("ordinary_paid", "14000.00"),
            ("large_amount_paid", "0.00"),
        ],
    );
    let year = l.year("x", 2024);
    assert_eq!(year.deductible_used_total(), m("350.00"));
    assert_eq!(year.deductible_used.get("primary"), Some(&m("100.00")));
    assert_eq!(year.deductible_used.get("hospital"), Some(&m("250.00")));
    assert_eq!(year.ordinary_paid, m("14885.00"), "100 + 785 + 14000");
    assert_eq!(l.year("x", 2023).ordinary_paid, m("100.00"));
    // A retiree of 74: deductible 300 (hospital), then 1000 x 0.9 = 900.00.
    let c5 = l.ok(claim("c5", "o", "2024-07-10", 2, "1300.00"));
    expect(
        &c5,
        &[
            ("deductible_applied", "300.00"),
            ("ordinary_paid", "900.00"),
        ],
    );
    // Credits: x is 44 in 2024-07 -> fixed 50.00; y is 54 -> 4000 x 0.03 = 120.00;
    // pooled share 4000 x 0.06 = 240.00; the retiree gets 90.00 from the pooled fund.
    expect(
        &l.ok(contribute("x", "2024-07", "4000.00")),
        &[("credited", "50.00"), ("pooled", "240.00")],
    );
    expect(
        &l.ok(contribute("y", "2024-07", "4000.00")),
        &[("credited", "120.00"), ("pooled", "240.00")],
    );
    let allocated = l.ok(json!({"cmd": "allocate", "region": "990000", "month": "2024-07"}));
    assert_eq!(allocated["members_credited"], json!(1));
    expect(
        &allocated,
        &[("credited", "90.00"), ("pooled_paid", "90.00")],
    );
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// A ledger that has produced every kind of event there is.
fn every_event_kind() -> Ledger {
    let mut l = Ledger::chongqing();
    l.active("a", "1000.00");
    l.retiree("r", "1000.00");
    l.ok(json!({"cmd": "retire", "member": "a", "date": "2024-09-01"}));
    l.ok(contribute("a", "2024-01", "5000.00"));
    l.ok(allocate("2024-01"));
    l.ok(with(
        claim("c1", "a", "2024-02-01", 2, "79950.00"),
        json!({"special_paid": "79900.00", "institution": "h1", "visit": "v1"}),
    ));
    l.ok(claim("c2", "a", "2024-02-02", 3, "1200.00"));
    l.ok(bind("a", "s", "spouse", "2024-02-01"));
    l.ok(json!({"cmd": "unbind_family", "holder": "a", "relative": "s", "date": "2024-03-01"}));
    l.ok(with(
        pay("p1", "a", "2024-03-01", "pharmacy", "10.00"),
        json!({"institution": "ph1"}),
    ));
    l.ok(pay(
        "p2",
        "r",
        "2024-03-01",
        "large_amount_premium",
        "100.00",
    ));
    l.ok(reverse("c2", "2024-03-02"));
    l.ok(reverse("p1", "2024-03-02"));
    l.ok(reverse("p2", "2024-03-02"));
    l
}

#[test]
fn every_event_kind_survives_encode_and_decode() {
    let l = every_event_kind();
    let kinds: BTreeSet<&str> = l.events.iter().map(Event::kind).collect();
    let all = [
        "policy_loaded",
        "enrolled",
        "retired",
        "account_credited",
        "pooled_contributed",
        "pooled_credit_paid",
        "claim_settled",
        "fund_claim_paid",
        "family_bound",
        "family_unbound",
        "account_paid",
        "premium_received",
        "claim_reversed",
        "fund_claim_refunded",
        "account_payment_reversed",
        "premium_refunded",
    ];
    assert_eq!(
        kinds,
        all.into_iter().collect::<BTreeSet<_>>(),
        "the scenario produces every kind"
    );
    for event in &l.events {
        let bytes = event.encode();
        assert_eq!(bytes[0], gongji_domain::event::EVENT_SCHEMA_VERSION);
        assert_eq!(
            Event::peek_kind(&bytes),
            Some(event.kind()),
            "the tag names the kind"
        );
        assert_eq!(
            Event::decode(&bytes).as_ref(),
            Ok(event),
            "{}",
            event.kind()
        );
    }
    // Replaying the decoded events rebuilds the same state.
    let mut replay = State::default();
    for event in &l.events {
        evolve(&mut replay, &Event::decode(&event.encode()).unwrap());
    }
    replay.dirty.clear();
    assert_eq!(replay, l.state);
}

#[test]
fn decoding_garbage_is_an_error_not_a_panic() {
    let l = every_event_kind();
    assert!(Event::decode(&[]).is_err(), "empty");
    assert!(
        Event::decode(&[gongji_domain::event::EVENT_SCHEMA_VERSION]).is_err(),
        "version byte alone"
    );
    assert!(Event::decode(&[0xFF; 64]).is_err(), "0xFF x 64");
    for event in &l.events {
        let bytes = event.encode();
        for cut in 0..bytes.len() {
            assert!(
                Event::decode(&bytes[..cut]).is_err(),
                "{} truncated to {cut} bytes decoded",
                event.kind()
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(
            Event::decode(&trailing).is_err(),
            "{} with a trailing byte decoded",
            event.kind()
        );
        for unknown in [0, gongji_domain::event::EVENT_SCHEMA_VERSION + 1] {
            let mut version = bytes.clone();
            version[0] = unknown;
            assert!(
                Event::decode(&version).is_err(),
                "{} under schema version {unknown} decoded",
                event.kind()
            );
        }
    }
    // Pseudo-random bytes behind the right version byte: Ok or Err, never a panic.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for length in 0..2000usize {
        let mut bytes = vec![gongji_domain::event::EVENT_SCHEMA_VERSION];
        for _ in 0..(length % 97) {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            bytes.push((seed >> 56) as u8);
        }
        let _ = Event::decode(&bytes);
    }
}

#[test]
fn decoded_days_are_valid_days() {
    // Event::Retired is variant 2: { member: String, date: Day(i32) }.
    let mut bytes = vec![gongji_domain::event::EVENT_SCHEMA_VERSION];
    bytes.extend(
        bincode::encode_to_vec(
            (2u32, "m".to_string(), i32::MAX),
            bincode::config::standard(),
        )
        .unwrap(),
    );
    match Event::decode(&bytes) {
        Err(_) => {}
        Ok(Event::Retired { date, .. }) => {
            // Either refuse the bytes, or give a day that can be shown.
            let shown = std::panic::catch_unwind(|| date.to_string());
            assert!(shown.is_ok(), "decoded a day that panics when displayed");
        }
        Ok(other) => panic!("decoded as {other:?}"),
    }
}
