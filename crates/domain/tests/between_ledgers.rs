//! A transfer between two regions' ledgers (`send_transfer` in the source, `receive_transfer`
//! in the destination) leaves the destination holding exactly the account a transfer within
//! one ledger leaves, arrives once, and keeps each ledger's money conserved on its own.

mod common;

use gongji_domain::state::Member;
use gongji_domain::{
    decide, evolve, parse_command, Command, Day, Event, Money, Outcome, Rejection, State,
};
use serde_json::json;

const CHONGQING: &str = include_str!("../../../policies/500000-2024-01-01.json");

fn day(text: &str) -> Day {
    text.parse().expect("test day")
}

fn m(text: &str) -> Money {
    text.parse().expect("test amount")
}

/// A state with `region`'s copy of Chongqing's 2024 policy loaded.
fn with_policy(region: &str) -> State {
    let mut state = State::default();
    load_policy(&mut state, region);
    state
}

fn load_policy(state: &mut State, region: &str) {
    let policy = CHONGQING.replace("500000", region);
    run_line(
        state,
        &format!(r#"{{"cmd":"load_policy","policy":{policy}}}"#),
    )
    .expect("the policy loads");
}

fn run(state: &mut State, command: &Command) -> Result<(Outcome, Vec<Event>), Rejection> {
    let decision = decide(state, command)?;
    let mut events = Vec::new();
    for (stream, event) in &decision.events {
        common::assert_decided_event_holds(state, stream, event);
        assert_eq!(Event::decode(&event.encode()).as_ref(), Ok(event));
        evolve(state, event);
        events.push(event.clone());
    }
    state.dirty.clear();
    Ok((decision.outcome, events))
}

fn run_line(state: &mut State, line: &str) -> Result<(Outcome, Vec<Event>), Rejection> {
    run(state, &parse_command(line)?)
}

/// Money held by accounts and funds, against what entered minus what left, in fen.
fn conserved(state: &State, events: &[Event]) {
    let held: i64 = state
        .members
        .iter()
        .map(|(_, m)| m.balance.fen())
        .sum::<i64>()
        + state.funds.values().map(|f| f.balance().fen()).sum::<i64>();
    let net: i64 = events
        .iter()
        .map(|e| {
            let (inflow, outflow) = e.external_flow();
            inflow.fen() - outflow.fen()
        })
        .sum();
    assert_eq!(held, net, "money held against money that entered, net");
}

fn enroll_and_claim(state: &mut State, region: &str) -> Vec<Event> {
    let mut events = Vec::new();
    for line in [
        json!({"cmd":"enroll","member":"M1","region":region,"born":"1980-05-20","status":"active",
               "scheme":"employer","date":"2024-01-01","opening_balance":"1000.00"}),
        json!({"cmd":"contribute","member":"M1","month":"2024-01","base":"8000.00"}),
        json!({"cmd":"claim","id":"C1","member":"M1","date":"2024-03-02","level":1,
               "channel":"institution","eligible":"500.00","use_account":true}),
    ] {
        events.extend(run_line(state, &line.to_string()).expect("accepted").1);
    }
    events
}

fn transferred_account(events: &[Event]) -> Member {
    match events {
        [Event::TransferSent { account, .. }] => (**account).clone(),
        other => panic!("one TransferSent expected, got {other:?}"),
    }
}

#[test]
fn an_account_arrives_as_a_transfer_within_one_ledger_leaves_it() {
    // One ledger: the transfer as today.
    let mut single = with_policy("500000");
    load_policy(&mut single, "340100");
    enroll_and_claim(&mut single, "500000");
    run_line(
        &mut single,
        r#"{"cmd":"transfer","member":"M1","date":"2024-06-01","to_region":"340100"}"#,
    )
    .expect("transferred");

    // Two ledgers: the source sends, the destination receives.
    let mut source = with_policy("500000");
    let mut source_events = enroll_and_claim(&mut source, "500000");
    let balance = source.members.get("M1").unwrap().balance;
    assert!(balance > Money::ZERO);
    let send = Command::SendTransfer {
        member: "M1".into(),
        date: day("2024-06-01"),
        to_region: "340100".into(),
    };
    let (outcome, sent) = run(&mut source, &send).expect("sent");
    let Outcome::TransferSent {
        transfer,
        in_transit,
        balance: moved,
        ..
    } = outcome
    else {
        panic!("a transfer_sent outcome, got {outcome:?}")
    };
    assert_eq!(
        (transfer.as_str(), in_transit, moved),
        ("M1#1", true, balance)
    );
    source_events.extend(sent.clone());
    let left = source.members.get("M1").unwrap();
    assert_eq!(left.balance, Money::ZERO);
    assert_eq!(left.region, "340100");
    assert_eq!(left.balance_on(day("2024-05-31")), balance);
    assert_eq!(source.accounts["500000"].balance(), Money::ZERO);
    conserved(&source, &source_events);

    let account = transferred_account(&sent);
    assert_eq!(&account, single.members.get("M1").unwrap());

    let mut destination = with_policy("340100");
    let receive = Command::ReceiveTransfer {
        transfer: transfer.clone(),
        account: Box::new(account.clone()),
    };
    let (outcome, received) = run(&mut destination, &receive).expect("received");
    assert!(matches!(
        outcome,
        Outcome::TransferReceived {
            policy_loaded: true,
            ..
        }
    ));
    assert_eq!(destination.members.get("M1"), single.members.get("M1"));
    assert_eq!(destination.accounts["340100"].balance(), balance);
    conserved(&destination, &received);

    // Once only: the relay carrying it again is refused, nothing changes.
    let before = destination.clone();
    let again = run(&mut destination, &receive).expect_err("a second arrival is refused");
    assert_eq!(again.code.as_str(), "transfer_already_received");
    assert_eq!(destination, before);

    // A claim in the destination settles against the account that arrived.
    run_line(
        &mut destination,
        r#"{"cmd":"claim","id":"C2","member":"M1","date":"2024-07-01","level":1,"channel":"pharmacy","eligible":"50.00","use_account":true}"#,
    )
    .expect("the destination settles claims");
    run_line(
        &mut single,
        r#"{"cmd":"claim","id":"C2","member":"M1","date":"2024-07-01","level":1,"channel":"pharmacy","eligible":"50.00","use_account":true}"#,
    )
    .expect("so does the single ledger");
    assert_eq!(destination.members.get("M1"), single.members.get("M1"));

    // And back: the source takes the account again over the copy it kept.
    let back = Command::SendTransfer {
        member: "M1".into(),
        date: day("2024-09-01"),
        to_region: "500000".into(),
    };
    let (_, sent_back) = run(&mut destination, &back).expect("sent back");
    let returning = transferred_account(&sent_back);
    let (outcome, _) = run(
        &mut source,
        &Command::ReceiveTransfer {
            transfer: "M1#2".into(),
            account: Box::new(returning.clone()),
        },
    )
    .expect("the source receives it back");
    assert!(matches!(outcome, Outcome::TransferReceived { .. }));
    assert_eq!(source.members.get("M1"), Some(&returning));
    assert_eq!(source.accounts["500000"].balance(), returning.balance);
    assert_eq!(returning.balance, single.members.get("M1").unwrap().balance);
}

#[test]
fn a_forged_arrival_is_refused() {
    let mut source = with_policy("500000");
    enroll_and_claim(&mut source, "500000");
    let (_, sent) = run(
        &mut source,
        &Command::SendTransfer {
            member: "M1".into(),
            date: day("2024-06-01"),
            to_region: "340100".into(),
        },
    )
    .expect("sent");
    let account = transferred_account(&sent);
    let mut destination = with_policy("340100");

    let wrong_id = Command::ReceiveTransfer {
        transfer: "M1#2".into(),
        account: Box::new(account.clone()),
    };
    let refused = run(&mut destination, &wrong_id).expect_err("refused");
    assert_eq!(refused.code.as_str(), "invalid_transfer");

    // An event whose account holds more than its movements add up to is not admissible.
    let mut richer = account.clone();
    richer.balance += m("100.00");
    let forged = Event::TransferReceived {
        transfer: "M1#1".into(),
        member: "M1".into(),
        date: day("2024-06-01"),
        from_region: "500000".into(),
        to_region: "340100".into(),
        balance: richer.balance,
        account: Box::new(richer),
    };
    let why = gongji_domain::state::admissible(&destination, &forged).expect_err("refused");
    assert_eq!(why.check, "balance");

    // One that disagrees with the account it carries is not either.
    let mut other = Event::TransferReceived {
        transfer: "M1#1".into(),
        member: "M1".into(),
        date: day("2024-06-01"),
        from_region: "500000".into(),
        to_region: "340100".into(),
        balance: account.balance,
        account: Box::new(account.clone()),
    };
    if let Event::TransferReceived { from_region, .. } = &mut other {
        *from_region = "110000".into();
    }
    assert!(gongji_domain::state::admissible(&destination, &other).is_err());
}

/// A claim dated when the member belonged to the region it left is decided where the account
/// is now; its fund payment is owed to the old region's ledger, which records it once.
#[test]
fn a_late_claims_fund_payment_is_owed_to_the_region_it_belongs_to_and_lands_once() {
    use gongji_domain::decide::owed_elsewhere;
    use gongji_domain::event::{owed_id, Owed};
    use gongji_domain::Stream;

    let mut source = with_policy("500000");
    enroll_and_claim(&mut source, "500000");
    let (_, sent) = run(
        &mut source,
        &Command::SendTransfer {
            member: "M1".into(),
            date: day("2024-06-01"),
            to_region: "340100".into(),
        },
    )
    .expect("sent");
    let mut destination = with_policy("340100");
    load_policy(&mut destination, "500000");
    run(
        &mut destination,
        &Command::ReceiveTransfer {
            transfer: "M1#1".into(),
            account: Box::new(transferred_account(&sent)),
        },
    )
    .expect("received");

    // Dated in May, when M1 was in 500000: settled under 500000's policy and counters.
    let late = parse_command(
        r#"{"cmd":"claim","id":"C9","member":"M1","date":"2024-05-20","level":1,"channel":"institution","eligible":"900.00","use_account":true}"#,
    )
    .unwrap();
    let decision = decide(&destination, &late).expect("settled");
    let events = owed_elsewhere(decision.events.clone(), "340100");
    assert_eq!(events.len(), decision.events.len());
    let owed: Vec<&Owed> = events
        .iter()
        .filter_map(|(stream, event)| match event {
            Event::FundEventOwed { owed } => {
                assert_eq!(stream, &Stream::Member("M1".into()));
                Some(owed)
            }
            _ => None,
        })
        .collect();
    assert_eq!(owed.len(), 1, "{events:?}");
    assert_eq!(owed[0].owed_to, "500000");
    assert!(matches!(*owed[0].event, Event::FundClaimPaid { .. }));
    let before = destination.funds.clone();
    for (stream, event) in &events {
        common::assert_decided_event_holds(&destination, stream, event);
        evolve(&mut destination, event);
    }
    assert_eq!(
        destination.funds, before,
        "no fund moves where the account is"
    );

    // The old region's ledger records the payment once.
    let land = Command::LandOwed {
        owed: owed_id("340100", 42),
        from_region: "340100".into(),
        member: "M1".into(),
        event: owed[0].event.clone(),
    };
    let pooled_before = source
        .fund(gongji_domain::FundKind::Pooled, "500000")
        .outflow;
    let (_, landed) = run(&mut source, &land).expect("landed");
    assert_eq!(landed.len(), 2);
    assert!(matches!(landed[1], Event::OwedLanded { .. }));
    let Event::FundClaimPaid { amount, .. } = &*owed[0].event else {
        unreachable!()
    };
    assert_eq!(
        source
            .fund(gongji_domain::FundKind::Pooled, "500000")
            .outflow,
        pooled_before + *amount
    );
    let again = run(&mut source, &land).expect_err("once only");
    assert_eq!(again.code.as_str(), "already_landed");
    // The marker is not a transaction anyone reverses.
    let reversal = parse_command(&format!(
        r#"{{"cmd":"reverse","id":"{}","date":"2024-07-01","reason":"x"}}"#,
        owed_id("340100", 42)
    ))
    .unwrap();
    assert_eq!(
        decide(&source, &reversal).unwrap_err().code.as_str(),
        "unknown_transaction"
    );
}
