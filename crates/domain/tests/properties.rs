//! Properties over random command sequences: a handful of members of mixed statuses, schemes
//! and ages; contributions, allocations, claims (some large, some with special payments),
//! bindings, account payments (some beyond the balance, some for unbound relatives) and
//! reversals (of earlier ids, and of unknown ones). Rejected commands are part of the mix.

mod common;

use std::collections::BTreeMap;

use gongji_domain::state::{TxKind, YearCounters};
use gongji_domain::{decide, evolve, parse_command, Event, Money, Outcome, Rejection, State};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};

const CHONGQING: &str = include_str!("../../../policies/500000-2024-01-01.json");
const REGION: &str = "500000";

fn config() -> Config {
    Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    }
}

fn yuan(fen: i64) -> String {
    Money::from_fen(fen).to_string()
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

struct Ledger {
    state: State,
    /// Every event applied, in order.
    events: Vec<Event>,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            state: State::default(),
            events: Vec::new(),
        }
    }

    /// Parses, decides, and evolves every event into the state (clearing `dirty`).
    fn run(&mut self, line: &str) -> Result<Outcome, Rejection> {
        let command = parse_command(line)?;
        let decision = decide(&self.state, &command)?;
        for (stream, event) in &decision.events {
            common::assert_decided_event_holds(&self.state, stream, event);
            evolve(&mut self.state, event);
            self.events.push(event.clone());
        }
        self.state.dirty.clear();
        Ok(decision.outcome)
    }

    fn must(&mut self, command: &Value) -> Outcome {
        let line = command.to_string();
        self.run(&line)
            .unwrap_or_else(|r| panic!("{line} was rejected: {r}"))
    }
}

// ---------------------------------------------------------------------------------------------
// What is generated
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct MemberSpec {
    retired: bool,
    scheme: &'static str,
    born: String,
    enrolled: String,
    opening_fen: i64,
    lump_base_fen: i64,
    lump_until: String,
}

#[derive(Clone, Debug)]
enum Op {
    Contribute {
        member: usize,
        month: String,
        base_fen: i64,
    },
    Allocate {
        month: String,
    },
    Retire {
        member: usize,
        day: String,
    },
    Claim {
        member: usize,
        day: String,
        level: u8,
        channel: &'static str,
        eligible_fen: i64,
        special_percent: i64,
        uncovered_fen: i64,
        use_account: bool,
        reuse: Option<usize>,
    },
    Bind {
        holder: usize,
        relative: usize,
        relation: &'static str,
        day: String,
    },
    Unbind {
        holder: usize,
        relative: usize,
        day: String,
    },
    Pay {
        holder: usize,
        beneficiary: Option<usize>,
        day: String,
        purpose: &'static str,
        amount_fen: i64,
        reuse: Option<usize>,
    },
    Reverse {
        target: Option<usize>,
        day: String,
    },
}

#[derive(Clone, Debug)]
struct Case {
    members: Vec<MemberSpec>,
    second_policy: bool,
    ops: Vec<Op>,
}

/// Members are m0..m5; index 6 and above name nobody.
const MEMBER_SLOTS: usize = 7;
/// Relatives: two members and an outsider.
const RELATIVES: [&str; 3] = ["m0", "m1", "r0"];

fn member_id(index: usize) -> String {
    format!("m{index}")
}

fn day() -> impl Strategy<Value = String> {
    (2024i32..=2025, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y}-{m:02}-{d:02}"))
}

fn month() -> impl Strategy<Value = String> {
    (2024i32..=2025, 1u32..=12).prop_map(|(y, m)| format!("{y}-{m:02}"))
}

fn member_spec() -> impl Strategy<Value = MemberSpec> {
    (
        any::<bool>(),
        prop_oneof![
            Just("employer"),
            Just("individual_tier1"),
            Just("individual_tier2"),
            Just("lump_sum")
        ],
        (1944i32..1996, 1u32..=12, 1u32..=28),
        1u32..=6,
        prop_oneof![Just(0i64), 0i64..500_000],
        100_000i64..1_000_000,
        month(),
    )
        .prop_map(
            |(
                retired,
                scheme,
                (by, bm, bd),
                enrol_month,
                opening_fen,
                lump_base_fen,
                lump_until,
            )| MemberSpec {
                retired,
                scheme,
                born: format!("{by}-{bm:02}-{bd:02}"),
                enrolled: format!("2024-{enrol_month:02}-01"),
                opening_fen,
                lump_base_fen,
                lump_until,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    // Members 0 to 3 always exist; 4 and 5 exist in some cases; 6 never does.
    let member = prop_oneof![12 => 0usize..4, 1 => 4usize..MEMBER_SLOTS];
    let eligible =
        prop_oneof![8 => 0i64..400_000, 1 => 0i64..2_000_000, 1 => 3_000_000i64..9_000_000];
    let channel = prop_oneof![Just("institution"), Just("pharmacy"), Just("manual")];
    let claim = (
        member.clone(),
        day(),
        prop_oneof![6 => 1u8..=3, 1 => 0u8..=4],
        channel,
        eligible,
        prop_oneof![3 => Just(0i64), 1 => 0i64..=100, 1 => 90i64..=100],
        prop_oneof![Just(0i64), 0i64..50_000],
        any::<bool>(),
        prop_oneof![8 => Just(None), 1 => (0usize..100).prop_map(Some)],
    )
        .prop_map(
            |(
                member,
                day,
                level,
                channel,
                eligible_fen,
                special_percent,
                uncovered_fen,
                use_account,
                reuse,
            )| Op::Claim {
                member,
                day,
                level,
                channel,
                eligible_fen,
                special_percent,
                uncovered_fen,
                use_account,
                reuse,
            },
        );
    let purpose = prop_oneof![
        4 => Just("institution"),
        3 => Just("pharmacy"),
        1 => Just("resident_premium"),
        1 => Just("ltc_premium"),
        2 => Just("large_amount_premium"),
        1 => Just("public_health"),
        1 => Just("fitness"),
        1 => Just("wellness"),
    ];
    let pay = (
        member.clone(),
        prop_oneof![2 => Just(None), 1 => (0..RELATIVES.len()).prop_map(Some)],
        day(),
        purpose,
        prop_oneof![4 => 0i64..50_000, 1 => 0i64..1_000_000],
        prop_oneof![8 => Just(None), 1 => (0usize..100).prop_map(Some)],
    )
        .prop_map(
            |(holder, beneficiary, day, purpose, amount_fen, reuse)| Op::Pay {
                holder,
                beneficiary,
                day,
                purpose,
                amount_fen,
                reuse,
            },
        );
    let relation = prop_oneof![Just("spouse"), Just("parent"), Just("child")];
    prop_oneof![
        4 => claim,
        3 => pay,
        2 => (prop_oneof![6 => (0usize..1000).prop_map(Some), 1 => Just(None)], prop_oneof![day(), Just("2025-12-31".to_string())])
            .prop_map(|(target, day)| Op::Reverse { target, day }),
        2 => (member.clone(), month(), prop_oneof![Just(0i64), 100_000i64..3_000_000])
            .prop_map(|(member, month, base_fen)| Op::Contribute { member, month, base_fen }),
        1 => month().prop_map(|month| Op::Allocate { month }),
        1 => (member.clone(), 0..RELATIVES.len(), relation, day())
            .prop_map(|(holder, relative, relation, day)| Op::Bind { holder, relative, relation, day }),
        1 => (member.clone(), 0..RELATIVES.len(), day()).prop_map(|(holder, relative, day)| Op::Unbind { holder, relative, day }),
        1 => (member, day()).prop_map(|(member, day)| Op::Retire { member, day }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(member_spec(), 3..=6),
        any::<bool>(),
        prop::collection::vec(op(), 1..70),
    )
        .prop_map(|(members, second_policy, ops)| Case {
            members,
            second_policy,
            ops,
        })
}

// ---------------------------------------------------------------------------------------------
// Playing a case
// ---------------------------------------------------------------------------------------------

/// The sum over applied events of money in minus money out of the ledger.
fn external_total(events: &[Event]) -> Money {
    events
        .iter()
        .map(|e| {
            let (inflow, outflow) = e.external_flow();
            inflow - outflow
        })
        .sum()
}

/// All member balances plus all fund balances.
fn held_total(state: &State) -> Money {
    let members: Money = state.members.values().map(|m| m.balance).sum();
    let funds: Money = state.funds.values().map(|f| f.balance()).sum();
    members + funds
}

fn assert_no_negative_balance(state: &State, step: &str) {
    for (id, member) in &state.members {
        assert!(
            !member.balance.is_negative(),
            "after {step}: member {id} has balance {}",
            member.balance
        );
    }
}

fn command(op: &Op, step: usize, ids: &[String]) -> (Value, Option<String>) {
    let member_of = |index: usize| member_id(index);
    match op {
        Op::Contribute {
            member,
            month,
            base_fen,
        } => (
            json!({"cmd": "contribute", "member": member_of(*member), "month": month, "base": yuan(*base_fen)}),
            None,
        ),
        Op::Allocate { month } => (
            json!({"cmd": "allocate", "region": REGION, "month": month}),
            None,
        ),
        Op::Retire { member, day } => (
            json!({"cmd": "retire", "member": member_of(*member), "date": day}),
            None,
        ),
        Op::Claim {
            member,
            day,
            level,
            channel,
            eligible_fen,
            special_percent,
            uncovered_fen,
            use_account,
            reuse,
        } => {
            let id = match reuse {
                Some(k) if !ids.is_empty() => ids[k % ids.len()].clone(),
                _ => format!("c{step}"),
            };
            let special_fen = eligible_fen * special_percent / 100;
            let command = json!({
                "cmd": "claim", "id": id, "member": member_of(*member), "date": day, "level": level,
                "channel": channel, "eligible": yuan(*eligible_fen), "special_paid": yuan(special_fen),
                "uncovered": yuan(*uncovered_fen), "use_account": use_account,
            });
            (command, Some(id))
        }
        Op::Bind {
            holder,
            relative,
            relation,
            day,
        } => (
            json!({"cmd": "bind_family", "holder": member_of(*holder), "relative": RELATIVES[*relative], "relation": relation, "date": day}),
            None,
        ),
        Op::Unbind {
            holder,
            relative,
            day,
        } => (
            json!({"cmd": "unbind_family", "holder": member_of(*holder), "relative": RELATIVES[*relative], "date": day}),
            None,
        ),
        Op::Pay {
            holder,
            beneficiary,
            day,
            purpose,
            amount_fen,
            reuse,
        } => {
            let id = match reuse {
                Some(k) if !ids.is_empty() => ids[k % ids.len()].clone(),
                _ => format!("p{step}"),
            };
            let mut command = json!({
                "cmd": "account_pay", "id": id, "holder": member_of(*holder), "date": day,
                "purpose": purpose, "amount": yuan(*amount_fen),
            });
            if let Some(b) = beneficiary {
                command["beneficiary"] = json!(RELATIVES[*b]);
            }
            (command, Some(id))
        }
        Op::Reverse { target, day } => {
            let id = match target {
                Some(k) if !ids.is_empty() => ids[k % ids.len()].clone(),
                _ => format!("unknown{step}"),
            };
            (
                json!({"cmd": "reverse", "id": id, "date": day, "reason": "property test"}),
                None,
            )
        }
    }
}

struct Played {
    ledger: Ledger,
    /// Opening balances plus credits, per member: what each balance is once every claim and
    /// payment is undone.
    credited: BTreeMap<String, Money>,
    accepted: usize,
}

/// Plays a case, checking after every step that no balance is negative and money is conserved.
fn play(case: &Case) -> Played {
    let mut ledger = Ledger::new();
    ledger.must(
        &json!({"cmd": "load_policy", "policy": serde_json::from_str::<Value>(CHONGQING).unwrap()}),
    );
    if case.second_policy {
        let mut v2025: Value = serde_json::from_str(CHONGQING).unwrap();
        v2025["version"] = json!("500000/2025-01-01");
        v2025["effective"] = json!("2025-01-01");
        v2025["outpatient"]["ratios"][0]["bands"][0]["ratio"] = json!("0.65");
        v2025["outpatient"]["annual_max"] = json!("5000.00");
        ledger.must(&json!({"cmd": "load_policy", "policy": v2025}));
    }
    for (index, spec) in case.members.iter().enumerate() {
        let mut enroll = json!({
            "cmd": "enroll", "member": member_id(index), "region": REGION, "born": spec.born,
            "status": if spec.retired { "retired" } else { "active" }, "scheme": spec.scheme,
            "date": spec.enrolled, "opening_balance": yuan(spec.opening_fen),
        });
        if spec.scheme == "lump_sum" {
            enroll["lump_sum_base"] = json!(yuan(spec.lump_base_fen));
            enroll["lump_sum_until"] = json!(spec.lump_until);
        }
        ledger.must(&enroll);
    }
    let mut ids: Vec<String> = Vec::new();
    let mut accepted = 0;
    for (step, op) in case.ops.iter().enumerate() {
        let (command, id) = command(op, step, &ids);
        let line = command.to_string();
        if ledger.run(&line).is_ok() {
            accepted += 1;
        }
        ids.extend(id);
        assert_no_negative_balance(&ledger.state, &line);
        assert_eq!(
            external_total(&ledger.events),
            held_total(&ledger.state),
            "after {line}: money in minus money out differs from what accounts and funds hold"
        );
    }
    let mut credited: BTreeMap<String, Money> = BTreeMap::new();
    for event in &ledger.events {
        match event {
            Event::Enrolled {
                member,
                opening_balance,
                ..
            } => *credited.entry(member.clone()).or_default() += *opening_balance,
            Event::AccountCredited { member, amount, .. } => {
                *credited.entry(member.clone()).or_default() += *amount
            }
            _ => {}
        }
    }
    Played {
        ledger,
        credited,
        accepted,
    }
}

/// Year counters without the noise of zero entries: zero deductible groups are dropped, and so
/// are years with nothing in them.
fn normalized(years: &BTreeMap<i32, YearCounters>) -> BTreeMap<i32, YearCounters> {
    years
        .iter()
        .map(|(year, counters)| {
            let mut counters = counters.clone();
            counters
                .deductible_used
                .retain(|_, used| *used != Money::ZERO);
            (*year, counters)
        })
        .filter(|(_, counters)| *counters != YearCounters::default())
        .collect()
}

/// Each member's year counters, recomputed from the settlements that stand (not reversed).
fn counters_from_settlements(state: &State) -> BTreeMap<String, BTreeMap<i32, YearCounters>> {
    let mut all: BTreeMap<String, BTreeMap<i32, YearCounters>> = BTreeMap::new();
    for tx in state.txs.values() {
        let TxKind::Claim(s) = &tx.kind else { continue };
        if tx.reversed_on.is_some() {
            continue;
        }
        let year = all
            .entry(s.member.clone())
            .or_default()
            .entry(s.year)
            .or_default();
        *year
            .deductible_used
            .entry(s.deductible_group.clone())
            .or_default() += s.deductible_applied;
        year.ordinary_cost += s.eligible - s.special_paid;
        year.ordinary_paid += s.ordinary_paid;
        year.special_paid += s.special_paid;
        year.pooled_paid += s.pooled_paid;
        year.large_amount_paid += s.large_amount_paid;
        year.claims += 1;
    }
    all
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// 1. No member balance is ever negative after any step (checked inside `play`), nor at the end.
    #[test]
    fn no_balance_is_ever_negative(case in case()) {
        let played = play(&case);
        assert_no_negative_balance(&played.ledger.state, "the last step");
        prop_assert!(played.accepted <= case.ops.len());
    }

    /// 2. Money is conserved: what came in minus what went out is what accounts and funds hold.
    #[test]
    fn money_is_conserved(case in case()) {
        let played = play(&case);
        let state = &played.ledger.state;
        let members: Money = state.members.values().map(|m| m.balance).sum();
        let funds: Money = state.funds.values().map(|f| f.balance()).sum();
        prop_assert_eq!(
            external_total(&played.ledger.events),
            members + funds,
            "members hold {}, funds hold {}", members, funds
        );
        // Each account's own books balance too: in - out = balance.
        for (id, member) in &state.members {
            prop_assert_eq!(member.account_in - member.account_out, member.balance, "account of {}", id);
        }
    }

    /// 3. Per member and year, the counters equal the sums over that member's standing settlements.
    #[test]
    fn year_counters_equal_the_standing_settlements(case in case()) {
        let played = play(&case);
        let state = &played.ledger.state;
        let recomputed = counters_from_settlements(state);
        for (id, member) in &state.members {
            let expected = recomputed.get(id).map(normalized).unwrap_or_default();
            prop_assert_eq!(normalized(&member.years), expected, "year counters of {}", id);
        }
        for id in recomputed.keys() {
            prop_assert!(state.members.contains_key(id), "settlement for unknown member {}", id);
        }
    }

    /// 4. Replay is deterministic: the recorded events, evolved into a fresh state, give the same state.
    #[test]
    fn replay_gives_the_same_state(case in case()) {
        let played = play(&case);
        let mut replayed = State::default();
        for event in &played.ledger.events {
            let decoded = Event::decode(&event.encode());
            prop_assert_eq!(decoded.as_ref(), Ok(event), "encode/decode of {}", event.kind());
            evolve(&mut replayed, event);
        }
        replayed.dirty.clear();
        let mut live = played.ledger.state.clone();
        live.dirty.clear();
        prop_assert!(replayed == live, "replayed state differs from the live one");
    }

    /// 5. Reversing every settled claim and payment returns each year's counters to zero (and
    ///    each balance to its opening balance plus credits; the funds keep only contributions
    ///    and credits).
    #[test]
    fn reversing_everything_zeroes_the_year_counters(case in case()) {
        let mut played = play(&case);
        let standing: Vec<String> = played
            .ledger
            .state
            .txs
            .iter()
            .filter(|(_, tx)| tx.reversed_on.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &standing {
            let line = json!({"cmd": "reverse", "id": id, "date": "2026-01-01", "reason": "undo all"}).to_string();
            let outcome = played.ledger.run(&line);
            prop_assert!(outcome.is_ok(), "{} was refused: {:?}", line, outcome);
        }
        let state = &played.ledger.state;
        for (id, member) in &state.members {
            for (year, counters) in &member.years {
                prop_assert!(
                    counters.deductible_used.values().all(|used| *used == Money::ZERO),
                    "{} {}: deductible left {:?}", id, year, counters.deductible_used
                );
                prop_assert_eq!(
                    (counters.ordinary_cost, counters.ordinary_paid, counters.special_paid),
                    (Money::ZERO, Money::ZERO, Money::ZERO),
                    "{} {}: cost, ordinary, special", id, year
                );
                prop_assert_eq!(
                    (counters.pooled_paid, counters.large_amount_paid, counters.claims),
                    (Money::ZERO, Money::ZERO, 0),
                    "{} {}: pooled, large, claims", id, year
                );
            }
            let credited = played.credited.get(id).copied().unwrap_or_default();
            prop_assert_eq!(member.balance, credited, "balance of {} after undoing everything", id);
        }
        prop_assert!(state.txs.values().all(|tx| tx.reversed_on.is_some()));
        // With every claim and payment undone, the large-amount fund is back to zero and the
        // pooled fund holds contributions minus retiree credits.
        let mut pooled = Money::ZERO;
        for event in &played.ledger.events {
            match event {
                Event::PooledContributed { amount, .. } => pooled += *amount,
                Event::PooledCreditPaid { amount, .. } => pooled -= *amount,
                _ => {}
            }
        }
        prop_assert_eq!(state.fund(gongji_domain::FundKind::Pooled, REGION).balance(), pooled);
        prop_assert_eq!(state.fund(gongji_domain::FundKind::LargeAmount, REGION).balance(), Money::ZERO);
        prop_assert_eq!(external_total(&played.ledger.events), held_total(state));
    }

    /// Decoding arbitrary bytes returns an error or an event, and never panics.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), versioned in any::<bool>()) {
        let mut input = bytes;
        if versioned {
            input.insert(0, gongji_domain::event::EVENT_SCHEMA_VERSION);
        }
        let _ = Event::decode(&input);
    }
}
