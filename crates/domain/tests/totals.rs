//! Running totals are bounded: amounts are bounded one by one (`AMOUNT_FEN_MAX`), and every sum
//! the state keeps is bounded too (`TOTAL_FEN_MAX`). A command whose events would carry a total
//! past its bound is refused with `total_overflow`, never a panic, and changes nothing.

mod common;

use std::sync::LazyLock;

use gongji_domain::money::{AMOUNT_FEN_MAX, TOTAL_FEN_MAX};
use gongji_domain::state::YearCounters;
use gongji_domain::{decide, evolve, parse_command, Money, Outcome, Rejection, State};
use proptest::prelude::*;
use serde_json::{json, Value};

const CHONGQING: &str = include_str!("../../../policies/500000-2024-01-01.json");
const REGION_A: &str = "500000";
const REGION_B: &str = "B";
/// The largest amount a command may carry, 1,000,000,000,000.00 yuan.
const MAX: &str = "1000000000000.00";
/// How many maximal amounts a running total holds before it reaches `TOTAL_FEN_MAX`.
const MAXES_PER_TOTAL: usize = (TOTAL_FEN_MAX / AMOUNT_FEN_MAX) as usize;
/// How far below the bound the near-full state leaves its totals, in maximal amounts.
const HEADROOM: usize = 10;

fn run(state: &mut State, command: &Value) -> Result<Outcome, Rejection> {
    let command = parse_command(&command.to_string())?;
    let decision = decide(state, &command)?;
    for (stream, event) in &decision.events {
        common::assert_decided_event_holds(state, stream, event);
        evolve(state, event);
    }
    state.dirty.clear();
    Ok(decision.outcome)
}

#[track_caller]
fn ok(state: &mut State, command: Value) -> Outcome {
    run(state, &command).unwrap_or_else(|r| panic!("{command} was rejected: {r}"))
}

fn policy(region: &str) -> Value {
    let mut policy: Value = serde_json::from_str(CHONGQING).expect("Chongqing's policy parses");
    policy["region"] = json!(region);
    policy["version"] = json!(format!("{region}/2024-01-01"));
    json!({"cmd": "load_policy", "policy": policy})
}

fn enroll(member: &str, region: &str, opening: &str) -> Value {
    json!({"cmd": "enroll", "member": member, "region": region, "born": "1980-05-01",
           "status": "active", "scheme": "employer", "date": "2024-01-01",
           "opening_balance": opening})
}

fn special_claim(id: &str, member: &str, date: &str, amount: &str) -> Value {
    json!({"cmd": "claim", "id": id, "member": member, "date": date, "level": 2,
           "channel": "institution", "eligible": amount, "special_paid": amount,
           "use_account": false})
}

fn pay(id: &str, holder: &str, date: &str, amount: &str) -> Value {
    json!({"cmd": "account_pay", "id": id, "holder": holder, "date": date,
           "purpose": "institution", "amount": amount})
}

fn reverse(id: &str, date: &str) -> Value {
    json!({"cmd": "reverse", "id": id, "date": date, "reason": "test"})
}

/// A state whose totals are `HEADROOM` maximal amounts below the bound: region A's account
/// inflow (its members' opening balances), member "hot"'s special-drug and pooled counters and
/// region A's pooled fund outflow (special-drug claims), member "rich"'s account flows and
/// region B's (payments and their reversals).
static NEAR_FULL: LazyLock<State> = LazyLock::new(|| {
    let mut state = State::default();
    ok(&mut state, policy(REGION_A));
    ok(&mut state, policy(REGION_B));
    for i in 0..MAXES_PER_TOTAL - HEADROOM - 1 {
        ok(&mut state, enroll(&format!("f{i}"), REGION_A, MAX));
    }
    ok(&mut state, enroll("hot", REGION_A, MAX));
    for i in 0..MAXES_PER_TOTAL - HEADROOM {
        ok(
            &mut state,
            special_claim(&format!("s{i}"), "hot", "2024-03-01", MAX),
        );
    }
    ok(&mut state, enroll("rich", REGION_B, MAX));
    for i in 0..MAXES_PER_TOTAL - HEADROOM - 1 {
        ok(&mut state, pay(&format!("p{i}"), "rich", "2024-03-01", MAX));
        ok(&mut state, reverse(&format!("p{i}"), "2024-03-01"));
    }
    state
});

/// `NEAR_FULL` with its totals two maximal amounts below the bound: a few commands at the
/// bounds reach it.
static BRIMMING: LazyLock<State> = LazyLock::new(|| {
    let mut state = NEAR_FULL.clone();
    for i in 0..HEADROOM - 2 {
        ok(&mut state, enroll(&format!("g{i}"), REGION_A, MAX));
        ok(
            &mut state,
            special_claim(&format!("t{i}"), "hot", "2024-03-01", MAX),
        );
        ok(&mut state, pay(&format!("r{i}"), "rich", "2024-03-01", MAX));
        ok(&mut state, reverse(&format!("r{i}"), "2024-03-01"));
    }
    state
});

/// Every running total of the members in `members`, the funds and the regions' accounts.
fn assert_totals_within_bounds(state: &State, members: &[String]) {
    let within = |what: &str, amount: Money| {
        assert!(
            (0..=TOTAL_FEN_MAX).contains(&amount.fen()),
            "{what} is {amount}, outside 0..={}",
            Money::from_fen(TOTAL_FEN_MAX)
        );
    };
    let counters = |what: &str, c: &YearCounters| {
        within(
            &format!("{what} deductible used"),
            c.deductible_used_total(),
        );
        within(&format!("{what} ordinary cost"), c.ordinary_cost);
        within(&format!("{what} ordinary paid"), c.ordinary_paid);
        within(&format!("{what} special paid"), c.special_paid);
        within(&format!("{what} pooled paid"), c.pooled_paid);
        within(&format!("{what} large-amount paid"), c.large_amount_paid);
    };
    for ((kind, region), fund) in &state.funds {
        within(&format!("{kind:?} fund of {region} inflow"), fund.inflow);
        within(&format!("{kind:?} fund of {region} outflow"), fund.outflow);
    }
    for (region, accounts) in &state.accounts {
        within(&format!("accounts of {region} inflow"), accounts.inflow);
        within(&format!("accounts of {region} outflow"), accounts.outflow);
    }
    for id in members {
        let Some(member) = state.members.get(id) else {
            continue;
        };
        within(&format!("{id} in"), member.account_in);
        within(&format!("{id} out"), member.account_out);
        within(&format!("{id} balance"), member.balance);
        assert!(member.balance <= member.account_in);
        for region in [REGION_A, REGION_B] {
            counters(&format!("{id} in {region}"), &member.year_in(region, 2024));
        }
        for binding in member.family.values() {
            for spent in binding.spent.values() {
                within(&format!("{id}'s spending for a relative"), *spent);
            }
        }
    }
}

#[test]
fn enrolments_past_a_regions_account_bound_are_refused_and_the_earlier_ones_kept() {
    // The case: 92,300 enrolments in one region, each with the largest opening balance.
    // The first 10,000 fill the region's account inflow to exactly the bound; every later one
    // is refused with total_overflow, naming the total, and changes nothing.
    let mut state = State::default();
    let mut accepted = 0;
    let mut full = None;
    for i in 0..92_300 {
        match run(&mut state, &enroll(&format!("m{i}"), REGION_A, MAX)) {
            Ok(_) => accepted += 1,
            Err(rejection) => {
                assert_eq!(rejection.code, "total_overflow", "{rejection}");
                assert!(
                    rejection
                        .message
                        .contains("inflow of region 500000's personal accounts"),
                    "{rejection}"
                );
                full.get_or_insert_with(|| state.clone());
            }
        }
    }
    assert_eq!(accepted, MAXES_PER_TOTAL);
    assert_eq!(accepted, 10_000);
    assert_eq!(state.accounts[REGION_A].inflow.fen(), TOTAL_FEN_MAX);
    assert_eq!(
        Some(&state),
        full.as_ref(),
        "a refused enrolment changed the state"
    );
    assert_eq!(state.members.len(), 10_000);
    // Nothing lost: an enrolment that adds nothing to the full total, or goes elsewhere, passes.
    ok(&mut state, enroll("zero", REGION_A, "0.00"));
    ok(&mut state, enroll("elsewhere", REGION_B, MAX));
}

#[test]
fn special_drug_claims_past_the_bound_on_yearly_counters_are_refused() {
    let mut state = NEAR_FULL.clone();
    for i in 0..HEADROOM {
        ok(
            &mut state,
            special_claim(&format!("more{i}"), "hot", "2024-03-02", MAX),
        );
    }
    let before = state.clone();
    let refused = run(
        &mut state,
        &special_claim("over", "hot", "2024-03-02", "0.01"),
    )
    .expect_err("the counter is full");
    assert_eq!(refused.code, "total_overflow");
    assert!(
        refused
            .message
            .contains("member hot's special drugs paid in year 2024 in region 500000"),
        "{refused}"
    );
    assert_eq!(state, before);
    assert_eq!(
        state.members["hot"].year(2024).special_paid.fen(),
        TOTAL_FEN_MAX
    );
    // A reversal lowers the counters; the claim then fits again.
    ok(&mut state, reverse("more0", "2024-03-03"));
    ok(&mut state, special_claim("over", "hot", "2024-03-03", MAX));
}

#[test]
fn account_flows_past_the_bound_are_refused() {
    let mut state = NEAR_FULL.clone();
    // "rich" has HEADROOM maximal amounts of inflow left: HEADROOM payments and reversals fit,
    // the next reversal would credit the account past the bound.
    for i in 0..=HEADROOM {
        ok(&mut state, pay(&format!("q{i}"), "rich", "2024-03-02", MAX));
        let reversal = run(&mut state, &reverse(&format!("q{i}"), "2024-03-02"));
        if i < HEADROOM {
            reversal.unwrap_or_else(|r| panic!("reversal {i} refused: {r}"));
        } else {
            let refused = reversal.expect_err("the account's inflow is full");
            assert_eq!(refused.code, "total_overflow");
            assert!(
                refused
                    .message
                    .contains("credited to member rich's account"),
                "{refused}"
            );
        }
    }
    let rich = &state.members["rich"];
    assert_eq!(rich.account_in.fen(), TOTAL_FEN_MAX);
    assert_eq!(rich.account_out.fen(), TOTAL_FEN_MAX);
}

/// An amount at the bound, just below it, or anywhere in between.
fn amount() -> impl Strategy<Value = Money> {
    prop_oneof![
        3 => Just(Money::from_fen(AMOUNT_FEN_MAX)),
        1 => Just(Money::from_fen(AMOUNT_FEN_MAX - 1)),
        1 => (0..=AMOUNT_FEN_MAX).prop_map(Money::from_fen),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Enroll {
        in_b: bool,
        opening: Money,
    },
    Contribute {
        who: usize,
        month: u32,
        base: Money,
    },
    Claim {
        who: usize,
        eligible: Money,
        special: bool,
        use_account: bool,
    },
    Pay {
        who: usize,
        amount: Money,
    },
    Reverse {
        back: usize,
    },
    Transfer {
        who: usize,
        to_b: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), amount()).prop_map(|(in_b, opening)| Op::Enroll { in_b, opening }),
        (0..8usize, 1..=12u32, amount()).prop_map(|(who, month, base)| Op::Contribute {
            who,
            month,
            base
        }),
        (0..8usize, amount(), any::<bool>(), any::<bool>()).prop_map(
            |(who, eligible, special, use_account)| Op::Claim {
                who,
                eligible,
                special,
                use_account
            }
        ),
        (0..8usize, amount()).prop_map(|(who, amount)| Op::Pay { who, amount }),
        (0..4usize).prop_map(|back| Op::Reverse { back }),
        (0..8usize, any::<bool>()).prop_map(|(who, to_b)| Op::Transfer { who, to_b }),
    ]
}

/// The command an operation stands for, as step `step` of a case: ids and dates are unique
/// and increasing.
fn command(op: &Op, step: usize, members: &mut Vec<String>, txs: &[String]) -> Value {
    let date = format!("2024-04-{:02}", step + 1);
    let who = |i: &usize| members[i % members.len()].clone();
    match op {
        Op::Enroll { in_b, opening } => {
            let id = format!("n{step}");
            members.push(id.clone());
            let region = if *in_b { REGION_B } else { REGION_A };
            enroll(&id, region, &opening.to_string())
        }
        Op::Contribute {
            who: i,
            month,
            base,
        } => json!({"cmd": "contribute",
            "member": who(i), "month": format!("2024-{month:02}"), "base": base.to_string()}),
        Op::Claim {
            who: i,
            eligible,
            special,
            use_account,
        } => {
            let special_paid = if *special { *eligible } else { Money::ZERO };
            json!({"cmd": "claim", "id": format!("c{step}"), "member": who(i), "date": date,
                   "level": 2, "channel": "institution", "eligible": eligible.to_string(),
                   "special_paid": special_paid.to_string(), "use_account": use_account})
        }
        Op::Pay { who: i, amount } => {
            pay(&format!("p{step}x"), &who(i), &date, &amount.to_string())
        }
        Op::Reverse { back } => {
            let id = txs
                .iter()
                .rev()
                .nth(*back)
                .cloned()
                .unwrap_or_else(|| "s0".into());
            reverse(&id, &date)
        }
        Op::Transfer { who: i, to_b } => {
            let to = if *to_b { REGION_B } else { REGION_A };
            json!({"cmd": "transfer", "member": who(i), "date": date, "to_region": to})
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Commands at the bounds, from a state a few maximal amounts below them: `decide` never
    /// panics, refuses only with a code, and what it accepts keeps every total within bounds.
    #[test]
    fn commands_at_the_bounds_keep_every_total_bounded(ops in prop::collection::vec(op(), 1..28)) {
        let mut state = BRIMMING.clone();
        let mut members: Vec<String> =
            ["hot", "rich", "f0", "f1"].iter().map(|s| s.to_string()).collect();
        let mut txs: Vec<String> = vec!["s0".into(), "s1".into()];
        for (step, op) in ops.iter().enumerate() {
            let line = command(op, step, &mut members, &txs);
            // `decide` only reads the state and `run` folds only accepted events: a refused
            // command changes nothing by construction.
            match run(&mut state, &line) {
                Ok(_) => {
                    if let Some(id) = line["id"].as_str() {
                        if line["cmd"] != "reverse" {
                            txs.push(id.to_string());
                        }
                    }
                }
                Err(rejection) => prop_assert!(!rejection.message.is_empty()),
            }
            assert_totals_within_bounds(&state, &members);
        }
    }
}

#[test]
fn a_forged_event_past_a_bound_is_not_admissible_and_one_that_reaches_it_is() {
    // What a replay checks of each record of a log it did not decide (`state::admissible`,
    // one event at a time): region A's account inflow one maximal amount below the bound.
    let mut state = State::default();
    ok(&mut state, policy(REGION_A));
    for i in 0..MAXES_PER_TOTAL - 1 {
        ok(&mut state, enroll(&format!("m{i}"), REGION_A, MAX));
    }
    // Enrolments decided elsewhere (a fresh state), as a forged log would carry them.
    let events_of = |command: Value| {
        let mut fresh = State::default();
        ok(&mut fresh, policy(REGION_A));
        let command = parse_command(&command.to_string()).expect("parses");
        decide(&fresh, &command).expect("decided").events
    };
    let reaching = events_of(enroll("late", REGION_A, MAX));
    for (_, event) in &reaching {
        assert_eq!(
            gongji_domain::state::admissible(&state, event),
            Ok(()),
            "an event that takes the total to the bound exactly is admissible"
        );
        evolve(&mut state, event);
    }
    assert_eq!(state.accounts[REGION_A].inflow.fen(), TOTAL_FEN_MAX);
    for (_, event) in &events_of(enroll("later", REGION_A, "0.01")) {
        let refused = gongji_domain::state::admissible(&state, event)
            .expect_err("one fen past the bound is refused");
        assert_eq!(refused.check, "totals", "{refused:?}");
        assert!(
            refused
                .message
                .contains("inflow of region 500000's personal accounts"),
            "{refused:?}"
        );
    }
    for (_, event) in &events_of(enroll("none", REGION_A, "0.00")) {
        assert_eq!(gongji_domain::state::admissible(&state, event), Ok(()));
    }
}
