//! Policy shapes other regions publish (`policies/shapes/`), each loaded through `decide` and
//! settled with figures worked out by hand in the comments; then the lint
//! (`gongji_domain::policy_check`): every shape passes it, and each defect it refuses is refused
//! by `load_policy` with a message naming the rule's path and field.

mod common;

use gongji_domain::policy_check;
use gongji_domain::{decide, evolve, parse_command, Event, Money, Outcome, PolicyVersion, State};
use gongji_domain::{Rejection, Stream};
use serde_json::{json, Value};

const CHONGQING: &str = include_str!("../../../policies/500000-2024-01-01.json");
const LEVEL_DEDUCTIBLE_CAP: &str =
    include_str!("../../../policies/shapes/shape-level-deductible-cap.json");
const HIGH_DEDUCTIBLE_BANDS: &str =
    include_str!("../../../policies/shapes/shape-high-deductible-bands.json");
const RETIREE_AGE_BANDS: &str =
    include_str!("../../../policies/shapes/shape-retiree-age-bands.json");
const GRASSROOTS_RATIO: &str = include_str!("../../../policies/shapes/shape-grassroots-ratio.json");

const SHAPES: [(&str, &str); 5] = [
    ("500000-2024-01-01.json", CHONGQING),
    ("shape-level-deductible-cap.json", LEVEL_DEDUCTIBLE_CAP),
    ("shape-high-deductible-bands.json", HIGH_DEDUCTIBLE_BANDS),
    ("shape-retiree-age-bands.json", RETIREE_AGE_BANDS),
    ("shape-grassroots-ratio.json", GRASSROOTS_RATIO),
];

fn m(text: &str) -> Money {
    text.parse()
        .unwrap_or_else(|e| panic!("test amount {text}: {e:?}"))
}

fn shape(text: &str) -> Value {
    serde_json::from_str(text).expect("a shape file is JSON")
}

/// A state and what `decide` makes of lines, each event folded in with `evolve`.
struct Ledger {
    state: State,
}

impl Ledger {
    /// A ledger with `policy` loaded through `decide`.
    fn with(policy: &Value) -> Ledger {
        let mut ledger = Ledger {
            state: State::default(),
        };
        ledger.ok(load(policy));
        ledger
    }

    fn run(&mut self, command: &Value) -> Result<Outcome, Rejection> {
        let command = parse_command(&command.to_string())?;
        let decision = decide(&self.state, &command)?;
        for (stream, event) in &decision.events {
            common::assert_decided_event_holds(&self.state, stream, event);
            evolve(&mut self.state, event);
        }
        self.state.dirty.clear();
        Ok(decision.outcome)
    }

    #[track_caller]
    fn ok(&mut self, command: Value) -> Value {
        match self.run(&command) {
            Ok(outcome) => serde_json::to_value(outcome).expect("outcomes serialize"),
            Err(rejection) => panic!("{command} was rejected: {rejection}"),
        }
    }

    fn enroll(&mut self, member: &str, region: &str, born: &str, status: &str, opening: &str) {
        self.ok(
            json!({"cmd": "enroll", "member": member, "region": region, "born": born,
                       "status": status, "scheme": "employer", "date": "2024-01-01",
                       "opening_balance": opening}),
        );
    }

    fn balance(&self, member: &str) -> Money {
        self.state.members.get(member).expect("enrolled").balance
    }
}

fn load(policy: &Value) -> Value {
    json!({"cmd": "load_policy", "policy": policy})
}

/// A claim at an institution (a hospital unless `extra` says otherwise), paid from the account
/// first.
fn claim(id: &str, member: &str, date: &str, level: u8, eligible: &str, extra: Value) -> Value {
    let mut claim = json!({"cmd": "claim", "id": id, "member": member, "date": date,
                           "level": level, "channel": "institution", "eligible": eligible});
    for (key, value) in extra.as_object().expect("extra fields are an object") {
        claim[key] = value.clone();
    }
    claim
}

/// Every figure of a settled claim: deductible applied, ordinary paid (pooled and large-amount
/// funds), pooled fund, large-amount fund, account, cash, reimbursed to the member, balance.
#[track_caller]
fn settled(outcome: &Value, figures: [&str; 8]) {
    let keys = [
        "deductible_applied",
        "ordinary_paid",
        "pooled_paid",
        "large_amount_paid",
        "account_paid",
        "cash_paid",
        "reimbursed_to_member",
        "balance",
    ];
    for (key, want) in keys.iter().zip(figures) {
        assert_eq!(outcome[*key].as_str(), Some(want), "{key} of {outcome}");
    }
}

// ---------------------------------------------------------------------------------------------
// The shapes, settled
// ---------------------------------------------------------------------------------------------

#[test]
fn a_deductible_by_level_fills_its_own_group_up_to_the_yearly_cap() {
    // Deductibles 100 / 200 / 300 at levels 1 / 2 / 3, each level its own group, at most 400 a
    // year across them; ratio 60%, limit 3000.
    let mut l = Ledger::with(&shape(LEVEL_DEDUCTIBLE_CAP));
    l.enroll("A", "990001", "1980-05-20", "active", "500.00");
    // c1, level 1, 300: group level-1 takes 100 (cap left 400); (300 - 100) x 0.6 = 120.00
    // pooled; own share 300 - 120 = 180 from the account (500 -> 320).
    let c1 = l.ok(claim("c1", "A", "2024-02-01", 1, "300.00", json!({})));
    settled(
        &c1,
        [
            "100.00", "120.00", "120.00", "0.00", "180.00", "0.00", "0.00", "320.00",
        ],
    );
    // c2, level 3, 500: group level-3 would take 300, the cap leaves 400 - 100 = 300: 300.
    // (500 - 300) x 0.6 = 120.00; own share 380: 320 from the account, 60 in cash.
    let c2 = l.ok(claim("c2", "A", "2024-03-01", 3, "500.00", json!({})));
    settled(
        &c2,
        [
            "300.00", "120.00", "120.00", "0.00", "320.00", "60.00", "0.00", "0.00",
        ],
    );
    // c3, level 2, 1000: group level-2 is empty (200) but the cap is reached (400): nothing.
    // 1000 x 0.6 = 600.00; own share 400, all cash (the account is empty).
    let c3 = l.ok(claim("c3", "A", "2024-04-01", 2, "1000.00", json!({})));
    settled(
        &c3,
        [
            "0.00", "600.00", "600.00", "0.00", "0.00", "400.00", "0.00", "0.00",
        ],
    );
    let year = l.state.members.get("A").expect("enrolled").year(2024);
    assert_eq!(
        year.deductible_used_total(),
        m("400.00"),
        "100 + 300, the cap"
    );
    assert_eq!(year.deductible_used.get("level-1"), Some(&m("100.00")));
    assert_eq!(year.deductible_used.get("level-3"), Some(&m("300.00")));
    assert_eq!(
        year.deductible_used_in("level-2"),
        Money::ZERO,
        "the cap was reached"
    );
    assert_eq!(year.ordinary_paid, m("840.00"), "120 + 120 + 600");
    // c4, 2025, level 2, 500: a new year, group level-2 takes 200 (cap 400 again);
    // (500 - 200) x 0.6 = 180.00; own share 320 in cash.
    let c4 = l.ok(claim("c4", "A", "2025-01-10", 2, "500.00", json!({})));
    settled(
        &c4,
        [
            "200.00", "180.00", "180.00", "0.00", "0.00", "320.00", "0.00", "0.00",
        ],
    );
}

#[test]
fn a_high_deductible_then_a_lower_ratio_above_the_cost_threshold_and_no_limit() {
    // Deductible 1800; 70% of the year's cumulative cost up to 10000, 50% above; no annual
    // limit ("amount": null) and no pooled maximum.
    let mut l = Ledger::with(&shape(HIGH_DEDUCTIBLE_BANDS));
    l.enroll("A", "990002", "1980-05-20", "active", "1000.00");
    // c1, 1500: all of it fills the deductible (1800 -> 300 left); nothing paid; own share
    // 1500: 1000 from the account, 500 cash.
    let c1 = l.ok(claim("c1", "A", "2024-02-01", 2, "1500.00", json!({})));
    settled(
        &c1,
        [
            "1500.00", "0.00", "0.00", "0.00", "1000.00", "500.00", "0.00", "0.00",
        ],
    );
    // c2, 10300: 300 finishes the deductible; the rest lies on the year's cost axis from
    // 1500 + 300 = 1800 to 11800: 8200 x 0.7 = 5740.00 below 10000, 1800 x 0.5 = 900.00
    // above: 6640.00. Own share 10300 - 6640 = 3660 in cash.
    let c2 = l.ok(claim("c2", "A", "2024-03-01", 2, "10300.00", json!({})));
    settled(
        &c2,
        [
            "300.00", "6640.00", "6640.00", "0.00", "0.00", "3660.00", "0.00", "0.00",
        ],
    );
    // c3, 50000 at level 3: 11800 -> 61800, all above 10000: 50000 x 0.5 = 25000.00, no limit
    // cuts it and the pooled fund has no maximum (nothing to the large-amount fund); own
    // share 25000 in cash.
    let c3 = l.ok(claim("c3", "A", "2024-04-01", 3, "50000.00", json!({})));
    settled(
        &c3,
        [
            "0.00", "25000.00", "25000.00", "0.00", "0.00", "25000.00", "0.00", "0.00",
        ],
    );
    let year = l.state.members.get("A").expect("enrolled").year(2024);
    assert_eq!(year.ordinary_paid, m("31640.00"), "6640 + 25000, no limit");
}

#[test]
fn retirees_get_the_higher_ratio_and_credit_from_the_month_they_turn_70() {
    // Retirees 75%, from the month of their 70th birthday 85%; actives 70% at any age.
    // Deductible 200 active / 100 retired; limit 4000. Retirees' monthly credit 100, from 70 on
    // 120, paid by the pooled fund.
    let mut l = Ledger::with(&shape(RETIREE_AGE_BANDS));
    l.enroll("R", "990003", "1954-06-15", "retired", "200.00");
    l.enroll("A", "990003", "1952-01-10", "active", "0.00");
    // A is 72 and active: the active rule, 70%. Deductible 200; (700 - 200) x 0.7 = 350.00;
    // own share 350 in cash.
    let a1 = l.ok(claim("a1", "A", "2024-03-01", 1, "700.00", json!({})));
    settled(
        &a1,
        [
            "200.00", "350.00", "350.00", "0.00", "0.00", "350.00", "0.00", "0.00",
        ],
    );
    // May 2024: R is 69 (70 from June, the month of the birthday): credit 100.00 (200 -> 300).
    // A is active: not credited by allocate.
    let may = l.ok(json!({"cmd": "allocate", "region": "990003", "month": "2024-05"}));
    assert_eq!(may["members_credited"], json!(1));
    assert_eq!(may["credited"], json!("100.00"));
    assert_eq!(may["pooled_paid"], json!("100.00"));
    // c1, 2024-05-20, R at 69: 75%. Deductible 100; (1100 - 100) x 0.75 = 750.00; own share
    // 350: 300 from the account, 50 cash.
    let c1 = l.ok(claim("c1", "R", "2024-05-20", 2, "1100.00", json!({})));
    settled(
        &c1,
        [
            "100.00", "750.00", "750.00", "0.00", "300.00", "50.00", "0.00", "0.00",
        ],
    );
    // June 2024: R is 70: credit 120.00 (0 -> 120).
    let june = l.ok(json!({"cmd": "allocate", "region": "990003", "month": "2024-06"}));
    assert_eq!(june["credited"], json!("120.00"));
    assert_eq!(l.balance("R"), m("120.00"));
    // c2, 2024-06-03, R at 70: 85%. Deductible already filled; 1000 x 0.85 = 850.00; own
    // share 150: 120 from the account, 30 cash.
    let c2 = l.ok(claim("c2", "R", "2024-06-03", 2, "1000.00", json!({})));
    settled(
        &c2,
        [
            "0.00", "850.00", "850.00", "0.00", "120.00", "30.00", "0.00", "0.00",
        ],
    );
}

#[test]
fn grassroots_institutions_pay_90_percent_and_every_other_place_70() {
    // Deductible 200; 90% at a grass-roots institution, 70% anywhere else; limit 3000.
    let mut l = Ledger::with(&shape(GRASSROOTS_RATIO));
    l.enroll("A", "990004", "1980-05-20", "active", "1000.00");
    // c1 at a grass-roots institution, 1200: deductible 200; 1000 x 0.9 = 900.00; own share
    // 300 from the account (1000 -> 700).
    let grassroots = json!({"institution_kind": "grassroots"});
    let c1 = l.ok(claim(
        "c1",
        "A",
        "2024-03-01",
        1,
        "1200.00",
        grassroots.clone(),
    ));
    settled(
        &c1,
        [
            "200.00", "900.00", "900.00", "0.00", "300.00", "0.00", "0.00", "700.00",
        ],
    );
    // c2 at an institution that does not say its kind: a hospital. 1000 x 0.7 = 700.00; own
    // share 300 from the account (700 -> 400).
    let c2 = l.ok(claim("c2", "A", "2024-03-02", 1, "1000.00", json!({})));
    settled(
        &c2,
        [
            "0.00", "700.00", "700.00", "0.00", "300.00", "0.00", "0.00", "400.00",
        ],
    );
    // c3 at a pharmacy (its kind by default): 500 x 0.7 = 350.00; own share 150 from the
    // account (400 -> 250).
    let c3 = l.ok(claim(
        "c3",
        "A",
        "2024-03-03",
        1,
        "500.00",
        json!({"channel": "pharmacy"}),
    ));
    settled(
        &c3,
        [
            "0.00", "350.00", "350.00", "0.00", "150.00", "0.00", "0.00", "250.00",
        ],
    );
    // c4 reimbursed by hand after a grass-roots visit: 100 x 0.9 = 90.00 back to the member;
    // nothing from the account; the member's own share is 10.
    let manual = json!({"channel": "manual", "institution_kind": "grassroots"});
    let c4 = l.ok(claim("c4", "A", "2024-03-04", 2, "100.00", manual));
    settled(
        &c4,
        [
            "0.00", "90.00", "90.00", "0.00", "0.00", "10.00", "90.00", "250.00",
        ],
    );
    // c5 at a hospital said so: 100 x 0.7 = 70.00; own share 30 from the account (250 -> 220).
    let hospital = json!({"institution_kind": "hospital"});
    let c5 = l.ok(claim("c5", "A", "2024-03-05", 3, "100.00", hospital));
    settled(
        &c5,
        [
            "0.00", "70.00", "70.00", "0.00", "30.00", "0.00", "0.00", "220.00",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// The lint
// ---------------------------------------------------------------------------------------------

#[test]
fn every_shape_and_the_shipped_policy_pass_the_lint() {
    for (name, text) in SHAPES {
        let policy =
            PolicyVersion::from_json(&shape(text)).unwrap_or_else(|e| panic!("{name} parses: {e}"));
        assert_eq!(policy_check::check(&policy), vec![], "{name}");
    }
}

#[test]
fn ages_at_the_ends_of_the_range_are_checked_without_a_panic() {
    for (min, max) in [(0, i32::MAX), (i32::MAX, i32::MAX), (-5, 200)] {
        let mut policy = shape(RETIREE_AGE_BANDS);
        policy["outpatient"]["ratios"][0]["when"]["age_min"] = json!(min);
        policy["outpatient"]["ratios"][0]["when"]["age_max"] = json!(max);
        let policy = PolicyVersion::from_json(&policy).expect("parses");
        // Whatever the findings, the lint answers.
        let _ = policy_check::check(&policy);
    }
}

/// What `load_policy` says of `policy`: its code and message.
fn refused(policy: &Value) -> (String, String) {
    let mut state = State::default();
    let command = match parse_command(&load(policy).to_string()) {
        Ok(command) => command,
        Err(rejection) => return (rejection.code.as_str().into(), rejection.message),
    };
    match decide(&state, &command) {
        Ok(decision) => {
            for (_, event) in &decision.events {
                evolve(&mut state, event);
            }
            panic!("{policy} was loaded")
        }
        Err(rejection) => (rejection.code.as_str().into(), rejection.message),
    }
}

#[track_caller]
fn assert_refused(policy: &Value, code: &str, says: &[&str]) {
    let (got, message) = refused(policy);
    assert_eq!(got, code, "{message}");
    for said in says {
        assert!(message.contains(said), "{said:?} not in: {message}");
    }
}

#[test]
fn a_limit_rule_without_an_amount_is_refused_and_null_is_no_limit() {
    let mut policy = shape(LEVEL_DEDUCTIBLE_CAP);
    policy["outpatient"]["limits"] = json!([{"when": {"statuses": ["active"]}}, {"amount": null}]);
    assert_refused(
        &policy,
        "invalid_value",
        &[
            "outpatient.limits[0]: the field \"amount\" is missing",
            "\"amount\": null for no limit",
        ],
    );
    // Written out, no limit is accepted (and read back as none).
    policy["outpatient"]["limits"] = json!([{"amount": null}]);
    let parsed = PolicyVersion::from_json(&policy).expect("an explicit null parses");
    assert_eq!(parsed.outpatient.limits[0].amount, None);
    Ledger::with(&policy);
}

#[test]
fn an_age_band_with_its_minimum_above_its_maximum_is_refused() {
    let mut policy = shape(RETIREE_AGE_BANDS);
    policy["outpatient"]["ratios"][0]["when"]["age_max"] = json!(69);
    assert_refused(
        &policy,
        "invalid_policy",
        &["outpatient.ratios[0].when: age_min 70 is above age_max 69"],
    );
    let mut credits = shape(RETIREE_AGE_BANDS);
    credits["credits"][2]["when"]["age_max"] = json!(65);
    assert_refused(
        &credits,
        "invalid_policy",
        &["credits[2].when: age_min 70 is above age_max 65"],
    );
}

#[test]
fn a_ratio_rule_an_earlier_one_always_takes_first_is_refused() {
    let mut policy = shape(GRASSROOTS_RATIO);
    let ratios = policy["outpatient"]["ratios"].as_array_mut().unwrap();
    ratios.reverse();
    assert_refused(
        &policy,
        "invalid_policy",
        &[
            "outpatient.ratios[1]: never applies: every claim it matches is taken first by \
           outpatient.ratios[0]",
        ],
    );
}

#[test]
fn a_deductible_rule_earlier_ones_always_take_first_is_refused() {
    let mut policy = shape(LEVEL_DEDUCTIBLE_CAP);
    let deductibles = policy["outpatient"]["deductibles"].as_array_mut().unwrap();
    deductibles.push(json!({"when": {"levels": [1, 2]}, "amount": "50.00"}));
    assert_refused(
        &policy,
        "invalid_policy",
        &[
            "outpatient.deductibles[3]: never applies: every claim it matches is taken first by \
           outpatient.deductibles[0], outpatient.deductibles[1]",
        ],
    );
}

#[test]
fn a_limit_rule_after_a_rule_for_everyone_is_refused() {
    let mut policy = shape(RETIREE_AGE_BANDS);
    let limits = policy["outpatient"]["limits"].as_array_mut().unwrap();
    limits.push(json!({"when": {"statuses": ["retired"]}, "amount": "5000.00"}));
    assert_refused(
        &policy,
        "invalid_policy",
        &[
            "outpatient.limits[1]: never applies: every claim it matches is taken first by \
           outpatient.limits[0]",
        ],
    );
}

#[test]
fn a_credit_rule_that_is_never_chosen_is_refused() {
    // A second contribution credit for actives: the first takes every contribution.
    let mut twice = shape(RETIREE_AGE_BANDS);
    let credits = twice["credits"].as_array_mut().unwrap();
    credits.push(
        json!({"when": {"statuses": ["active"]}, "paid_by": "contribution", "fixed": "10.00"}),
    );
    assert_refused(
        &twice,
        "invalid_policy",
        &["credits[3]: never applies: every contribution it matches is taken first by credits[0]"],
    );
    // Pooled-fund and lump-sum credits are chosen together by the monthly allocate run: behind
    // Chongqing's pooled-fund rules (every lump-sum member, by age), the lump-sum credit is
    // never reached.
    let mut behind = shape(CHONGQING);
    let credits = behind["credits"].as_array_mut().unwrap();
    let lump_sum = credits.remove(1);
    credits.push(lump_sum);
    assert_refused(
        &behind,
        "invalid_policy",
        &[
            "credits[3]: never applies: every member the monthly allocate run credits it matches \
           is taken first by credits[1], credits[2]",
        ],
    );
    // A contribution credit for retirees only: contribute credits active members.
    let mut retirees = shape(RETIREE_AGE_BANDS);
    retirees["credits"][0]["when"]["statuses"] = json!(["retired"]);
    assert_refused(
        &retirees,
        "invalid_policy",
        &["credits[0]: never applies: contribute credits active members only"],
    );
    // A credit conditioned on levels: a credit is no claim.
    let mut levels = shape(RETIREE_AGE_BANDS);
    levels["credits"][1]["when"]["levels"] = json!([1]);
    assert_refused(
        &levels,
        "invalid_policy",
        &["credits[1]: never applies: a monthly credit is no claim and has no institution level"],
    );
}

#[test]
fn a_claim_no_rule_covers_is_refused_naming_what_is_uncovered() {
    // Chongqing without its last ratio rule (retirees at level 3).
    let mut ratio = shape(CHONGQING);
    ratio["outpatient"]["ratios"].as_array_mut().unwrap().pop();
    assert_refused(
        &ratio,
        "invalid_policy",
        &[
            "outpatient.ratios: no ratio rule for retired, any scheme, level 3, any kind, any \
           age: such a claim would be refused (no_policy_rule)",
        ],
    );
    // An active-only ratio for ages up to 69 and no deductible for retirees: two gaps.
    let mut two = shape(RETIREE_AGE_BANDS);
    two["outpatient"]["ratios"][2]["when"]["age_max"] = json!(69);
    two["outpatient"]["deductibles"]
        .as_array_mut()
        .unwrap()
        .pop();
    assert_refused(
        &two,
        "invalid_policy",
        &[
            "outpatient.deductibles: no deductible rule for retired, any scheme, any level, any \
             kind, any age",
            "outpatient.ratios: no ratio rule for active, any scheme, any level, any kind, ages \
             70 and over",
        ],
    );
    // Limits for every scheme but lump-sum members after their period: only that is said
    // (no impossible "employer inside the lump-sum period").
    let mut lump = shape(GRASSROOTS_RATIO);
    lump["outpatient"]["limits"] = json!([
        {"when": {"schemes": ["employer", "individual_tier1", "individual_tier2"]}, "amount": "3000.00"},
        {"when": {"schemes": ["lump_sum"], "in_lump_sum_period": true}, "amount": "3000.00"}
    ]);
    let (code, message) = refused(&lump);
    assert_eq!(code, "invalid_policy");
    assert!(
        message.ends_with(
            "outpatient.limits: no annual limit rule for any status, lump_sum after its period, \
             any level, any kind, any age: such a claim would be refused (no_policy_rule)"
        ),
        "{message}"
    );
    assert_eq!(
        message.matches("no annual limit rule").count(),
        1,
        "{message}"
    );
}

#[test]
fn a_pooled_fund_credit_given_as_a_share_of_base_is_refused() {
    let mut policy = shape(CHONGQING);
    policy["credits"][2]["fixed"] = json!(null);
    policy["credits"][2]["share_of_base"] = json!("0.01");
    assert_refused(
        &policy,
        "invalid_policy",
        &["credits[2].share_of_base: a credit paid by the pooled fund must be a fixed amount"],
    );
}

#[test]
fn what_validate_refuses_is_still_refused_and_named_by_path() {
    let mut levels = shape(CHONGQING);
    levels["outpatient"]["ratios"][1]["when"]["levels"] = json!([3, 4]);
    assert_refused(
        &levels,
        "invalid_policy",
        &["outpatient.ratios[1].when.levels: levels [3, 4] must each be 1, 2 or 3"],
    );
    let mut bands = shape(HIGH_DEDUCTIBLE_BANDS);
    bands["outpatient"]["ratios"][0]["bands"] =
        json!([{"ratio": "0.5"}, {"up_to": "100.00", "ratio": "0.6"}]);
    assert_refused(
        &bands,
        "invalid_policy",
        &["outpatient.ratios[0].bands: bands must have increasing up_to and the last none"],
    );
    let mut amount = shape(CHONGQING);
    amount["outpatient"]["limits"][1]["amount"] = json!("-1.00");
    assert_refused(
        &amount,
        "invalid_policy",
        &["outpatient.limits[1].amount: must be from 0 to 1000000000000.00; -1.00 is not"],
    );
}

#[test]
fn a_mistyped_value_is_refused_naming_its_field_path() {
    let mut ratio = shape(CHONGQING);
    ratio["outpatient"]["ratios"][3]["bands"][0]["ratio"] = json!("90%");
    assert_refused(
        &ratio,
        "invalid_value",
        &[
            "policy of load_policy: outpatient.ratios[3].bands[0].ratio: rate '90%' is not a \
           decimal number",
        ],
    );
    let mut amount = shape(CHONGQING);
    amount["outpatient"]["limits"][2]["amount"] = json!("3,000.00");
    assert_refused(
        &amount,
        "malformed_amount",
        &["outpatient.limits[2].amount: amount '3,000.00' is not a decimal number"],
    );
    let mut day = shape(CHONGQING);
    day["effective"] = json!("2024-02-30");
    assert_refused(
        &day,
        "malformed_date",
        &["policy of load_policy: effective: "],
    );
    let mut field = shape(CHONGQING);
    field["outpatient"]["ratios"][0]["when"]["level"] = json!([1]);
    assert_refused(
        &field,
        "invalid_value",
        &[
            "outpatient.ratios[0].when.level: \"level\" is not a field here; the fields are \
           statuses, schemes, levels",
        ],
    );
}

/// The lint is not part of decoding: a version with a gap that a log already holds is read
/// and folded, and a claim in the gap is refused `no_policy_rule` as before. (It is put into
/// the state through `evolve` of its event, as a log would: `decide` no longer loads it.)
#[test]
fn a_logged_version_the_lint_refuses_still_decodes_and_settles_what_it_covers() {
    let mut gap = shape(CHONGQING);
    gap["outpatient"]["ratios"].as_array_mut().unwrap().pop();
    let policy = PolicyVersion::from_json(&gap).expect("it parses");
    assert_ne!(policy_check::lint(&policy), vec![]);
    let event = Event::PolicyLoaded {
        policy: Box::new(policy),
    };
    let decoded = Event::decode(&event.encode()).expect("the lint is not run on decoding");
    assert_eq!(decoded, event);
    let mut l = Ledger {
        state: State::default(),
    };
    assert_eq!(event.stream(), Stream::Policy("500000".into()));
    evolve(&mut l.state, &decoded);
    l.enroll("R", "500000", "1960-05-20", "retired", "0.00");
    // Level 2 is covered: deductible 100, (300 - 100) x 0.7 = 140.00, own share 160 in cash.
    let covered = l.ok(claim("c1", "R", "2024-03-01", 2, "300.00", json!({})));
    settled(
        &covered,
        [
            "100.00", "140.00", "140.00", "0.00", "0.00", "160.00", "0.00", "0.00",
        ],
    );
    let uncovered = claim("c2", "R", "2024-03-02", 3, "300.00", json!({}));
    let rejection = l.run(&uncovered).expect_err("no ratio rule for level 3");
    assert_eq!(rejection.code.as_str(), "no_policy_rule", "{rejection}");
}
