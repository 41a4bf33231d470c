//! Properties of the ledger over random command sequences, through the real log on disk:
//! balances never go negative, money is conserved, and projections rebuilt from the log answer
//! exactly as the live ones did.

use gongji_domain::{Event, Money};
use gongji_ledger::{AsOf, Ledger, LineOutcome};
use proptest::prelude::*;
use serde_json::{json, Value};

const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");
const MEMBERS: usize = 5;

fn member(i: usize) -> String {
    format!("M{i}")
}

fn fen(amount: u64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

fn command() -> impl Strategy<Value = String> {
    let m = 0..MEMBERS;
    let month = 1u32..=12;
    prop_oneof![
        (m.clone(), month.clone(), 0u64..2_000_000).prop_map(|(m, month, base)| json!({"cmd":"contribute","member":member(m),"month":format!("2024-{month:02}"),"base":fen(base)}).to_string()),
        month.clone().prop_map(|month| json!({"cmd":"allocate","region":"500000","month":format!("2024-{month:02}")}).to_string()),
        (0u32..40, m.clone(), month.clone(), 1u8..=3, 0usize..3, 0u64..800_000, 0u64..50_000, 0u64..5_000, any::<bool>()).prop_map(
            |(id, m, month, level, channel, eligible, special, uncovered, use_account)| {
                let channel = ["institution", "pharmacy", "manual"][channel];
                json!({"cmd":"claim","id":format!("C{id}"),"member":member(m),"date":format!("2024-{month:02}-10"),"level":level,"channel":channel,"eligible":fen(eligible + special),"special_paid":fen(special),"uncovered":fen(uncovered),"use_account":use_account}).to_string()
            }
        ),
        (m.clone(), 0usize..3).prop_map(|(m, r)| json!({"cmd":"bind_family","holder":member(m),"relative":format!("R{r}"),"relation":"child","date":"2024-03-01"}).to_string()),
        (m.clone(), 0usize..3).prop_map(|(m, r)| json!({"cmd":"unbind_family","holder":member(m),"relative":format!("R{r}"),"date":"2024-06-01"}).to_string()),
        (0u32..40, m.clone(), prop::option::of(0usize..3), month.clone(), 0usize..4, 1u64..300_000).prop_map(
            |(id, m, r, month, purpose, amount)| {
                let purpose = ["pharmacy", "institution", "large_amount_premium", "fitness"][purpose];
                let beneficiary = r.map(|r| format!("R{r}")).unwrap_or_else(|| member(m));
                json!({"cmd":"account_pay","id":format!("P{id}"),"holder":member(m),"beneficiary":beneficiary,"date":format!("2024-{month:02}-20"),"purpose":purpose,"amount":fen(amount)}).to_string()
            }
        ),
        (0u32..40, any::<bool>()).prop_map(|(id, claim)| json!({"cmd":"reverse","id":format!("{}{id}", if claim { "C" } else { "P" }),"date":"2024-12-31","reason":"property test"}).to_string()),
        m.clone().prop_map(|m| json!({"cmd":"retire","member":member(m),"date":"2024-07-01"}).to_string()),
        (m.clone(), month.clone(), any::<bool>()).prop_map(|(m, month, north)| json!({"cmd":"transfer","member":member(m),"date":format!("2024-{month:02}-15"),"to_region":if north { "110000" } else { "500000" }}).to_string()),
        (m.clone(), month).prop_map(|(m, month)| json!({"cmd":"decease","member":member(m),"date":format!("2024-{month:02}-25")}).to_string()),
        m.prop_map(|m| json!({"cmd":"inherit","member":member(m),"date":"2024-12-31","heirs":[{"name":"heir-a","share":"0.5"},{"name":"heir-b","share":"0.5"}]}).to_string()),
        any::<bool>().prop_map(|north| json!({"cmd":"rollover","region":if north { "110000" } else { "500000" },"year":2024}).to_string()),
    ]
}

fn setup_lines() -> Vec<String> {
    let policy: Value = serde_json::from_str(POLICY).unwrap();
    let mut north = policy.clone();
    north["region"] = json!("110000");
    north["version"] = json!("110000/2024-01-01");
    let mut lines = vec![
        json!({"cmd":"load_policy","policy":policy}).to_string(),
        json!({"cmd":"load_policy","policy":north}).to_string(),
    ];
    let profiles = [
        ("1980-05-01", "active", "employer"),
        ("1954-03-01", "retired", "employer"),
        ("1990-01-01", "active", "individual_tier1"),
        ("1960-01-01", "retired", "individual_tier2"),
        ("1975-01-01", "active", "individual_tier2"),
    ];
    for (i, (born, status, scheme)) in profiles.iter().enumerate() {
        lines.push(json!({"cmd":"enroll","member":member(i),"region":"500000","born":born,"status":status,"scheme":scheme,"date":"2024-01-01","opening_balance":fen(i as u64 * 10_000)}).to_string());
    }
    lines
}

/// The reference for the tests that group or interrupt commits: every line decided and
/// committed on its own, line `i` recorded at `i`.
fn committed_line_by_line(dir: &std::path::Path, lines: &[String]) -> (Ledger, Vec<LineOutcome>) {
    let mut ledger = Ledger::open(dir).unwrap();
    let mut outcomes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        ledger.apply_line(line, i as i64).unwrap();
        outcomes.extend(ledger.commit().unwrap());
    }
    (ledger, outcomes)
}

/// Every answer the queries give for the members and the region.
fn answers(ledger: &Ledger) -> Vec<Value> {
    let mut all = vec![
        json!(ledger.fund("500000").unwrap()),
        json!(ledger.fund("110000").unwrap()),
    ];
    let mid_year = AsOf {
        date: Some("2024-06-30".parse().unwrap()),
        recorded_before_micros: None,
    };
    for i in 0..MEMBERS {
        all.push(json!(ledger.account(&member(i)).unwrap()));
        all.push(json!(ledger.year(&member(i), 2024).unwrap()));
        all.push(json!(ledger.history(&member(i)).unwrap()));
        all.push(json!(ledger.account_at(&member(i), &mid_year).unwrap()));
        all.push(json!(ledger.inheritance(&member(i), &AsOf::NOW).unwrap()));
        all.push(json!(ledger
            .year_at(&member(i), 2024, Some("500000"), &mid_year)
            .unwrap()));
    }
    all
}

/// Answers per member in `answers`.
const PER_MEMBER: usize = 6;

fn money(value: &Value) -> Money {
    value
        .as_str()
        .expect("amounts are strings")
        .parse()
        .expect("amounts parse")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn balances_stay_non_negative_money_is_conserved_and_rebuild_matches_live(
        commands in prop::collection::vec(command(), 1..80),
        commit_every in 1usize..20,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let mut applied = 0;
        for (i, line) in setup_lines().iter().chain(&commands).enumerate() {
            ledger.apply_line(line, i as i64).unwrap();
            if i % commit_every == 0 {
                for outcome in ledger.commit().unwrap() {
                    applied += usize::from(matches!(outcome, LineOutcome::Applied(_)));
                }
                for m in 0..MEMBERS {
                    if let Some(account) = ledger.account(&member(m)).unwrap() {
                        prop_assert!(!account.balance.is_negative(), "{} went to {}", member(m), account.balance);
                    }
                }
            }
        }
        ledger.commit().unwrap();
        prop_assert!(applied > 0);

        // Conservation, from the log itself: what entered minus what left the ledger equals what
        // the accounts and funds hold.
        let log = ledger.log();
        let mut net = Money::ZERO;
        for record in log.read_range(0, log.durable_end()).unwrap() {
            let event = Event::decode(&record.unwrap().payload).unwrap();
            let (inflow, outflow) = event.external_flow();
            net = net + inflow - outflow;
        }
        let live = answers(&ledger);
        let mut held = Money::ZERO;
        for fund in &live[..2] {
            if !fund.is_null() {
                held += money(&fund["pooled"]["balance"]) + money(&fund["large_amount"]["balance"]);
            }
        }
        for m in 0..MEMBERS {
            held += money(&live[2 + PER_MEMBER * m]["balance"]);
            // A late-dated payment never makes a past balance negative.
            let mid_year = &live[2 + PER_MEMBER * m + 3];
            prop_assert!(!money(&mid_year["balance"]).is_negative(), "{}", mid_year);
        }
        prop_assert_eq!(net, held);

        // The live projections, stored entity by entity as lines were decided, are every
        // entry a fold of the whole log on several workers gives (its states kept apart,
        // encoded kind by kind): the same digest, and the same after a rebuild writes them.
        let live_digest = ledger.digest().unwrap();
        let replayed = ledger.audit_replay_in_memory(&mut |_, _| {}).unwrap();
        prop_assert_eq!(&replayed.digest, &live_digest);

        // Rebuilt projections answer exactly as the live ones did, and so does a reopened ledger.
        ledger.rebuild(&mut |_, _| {}).unwrap();
        prop_assert_eq!(&ledger.digest().unwrap(), &live_digest);
        prop_assert_eq!(&answers(&ledger), &live);
        ledger.close().unwrap();
        let reopened = Ledger::open(dir.path()).unwrap();
        prop_assert_eq!(&answers(&reopened), &live);
    }

    /// `commit_deferred` stores on a thread of its own and evicts what is stored; with tiny
    /// limits it does so every few lines. Every line must be decided exactly as with a plain
    /// commit after each line, and the answers must be the same, live and after a reopen.
    #[test]
    fn deferred_stores_on_their_own_thread_and_evictions_decide_as_plain_commits_do(
        commands in prop::collection::vec(command(), 1..80),
        commit_every in 1usize..8,
        dirty_max in 1usize..6,
        members_max in 0usize..3,
    ) {
        let lines: Vec<String> = setup_lines().into_iter().chain(commands).collect();
        let reference_dir = tempfile::tempdir().unwrap();
        let (reference, expected) = committed_line_by_line(reference_dir.path(), &lines);
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.set_cache_limits(dirty_max, members_max);
        let mut got = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            ledger.apply_line(line, i as i64).unwrap();
            if i % commit_every == 0 {
                got.extend(ledger.commit_deferred().unwrap());
            }
        }
        got.extend(ledger.commit().unwrap());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            prop_assert_eq!(g, e, "line {}", i + 1);
        }
        prop_assert_eq!(&got, &expected);
        let live = answers(&reference);
        prop_assert_eq!(&answers(&ledger), &live);
        ledger.close().unwrap();
        let reopened = Ledger::open(dir.path()).unwrap();
        prop_assert_eq!(&answers(&reopened), &live);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Issue 15's suspected store bug: `commit_deferred` stores mid-stream (tiny limits: every
    /// few lines), then the process dies without `close` at a random line, after a store or
    /// between two. Opening folds the records after the stored checkpoint; the lines after the
    /// crash must decide as with a commit after each line, and the answers (live, rebuilt and
    /// reopened) must be the reference's: what a store holds is exactly its checkpoint's state.
    #[test]
    fn a_crash_after_mid_stream_stores_decides_and_answers_as_without_it(
        commands in prop::collection::vec(command(), 1..80),
        commit_every in 1usize..6,
        dirty_max in 1usize..6,
        members_max in 0usize..3,
        crash_at in 0usize..80,
    ) {
        let lines: Vec<String> = setup_lines().into_iter().chain(commands).collect();
        let crash_after = setup_lines().len() + crash_at.min(lines.len() - setup_lines().len());
        let reference_dir = tempfile::tempdir().unwrap();
        let (reference, expected) = committed_line_by_line(reference_dir.path(), &lines);
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.set_cache_limits(dirty_max, members_max);
        let mut got = Vec::new();
        for (i, line) in lines.iter().enumerate().take(crash_after) {
            ledger.apply_line(line, i as i64).unwrap();
            if i % commit_every == 0 {
                got.extend(ledger.commit_deferred().unwrap());
            }
        }
        // Durable; projections stored up to some earlier checkpoint: a killed process.
        got.extend(ledger.commit_deferred().unwrap());
        drop(ledger);
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.set_cache_limits(dirty_max, members_max);
        for (i, line) in lines.iter().enumerate().skip(crash_after) {
            ledger.apply_line(line, i as i64).unwrap();
            if i % commit_every == 0 {
                got.extend(ledger.commit_deferred().unwrap());
            }
        }
        got.extend(ledger.commit().unwrap());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            prop_assert_eq!(g, e, "line {}", i + 1);
        }
        prop_assert_eq!(got.len(), expected.len());
        let live = answers(&reference);
        prop_assert_eq!(&answers(&ledger), &live);
        ledger.rebuild(&mut |_, _| {}).unwrap();
        prop_assert_eq!(&answers(&ledger), &live);
    }
}

/// Found by the property above: a transfer back dated on the day of the first, then the
/// reversal of a claim counted in the stint in between, must undo it where it was counted.
#[test]
fn reversal_undoes_a_claim_in_the_stint_it_was_counted_in_after_a_backdated_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let lines = [
        r#"{"cmd":"transfer","date":"2024-01-15","member":"M4","to_region":"110000"}"#,
        r#"{"channel":"institution","cmd":"claim","date":"2024-06-10","eligible":"300.00","id":"C27","level":1,"member":"M4"}"#,
        r#"{"cmd":"transfer","date":"2024-01-15","member":"M4","to_region":"500000"}"#,
        r#"{"cmd":"reverse","date":"2024-12-31","id":"C27","reason":"regression"}"#,
    ];
    for (i, line) in setup_lines()
        .iter()
        .map(String::as_str)
        .chain(lines)
        .enumerate()
    {
        ledger.apply_line(line, i as i64).unwrap();
    }
    let outcomes = ledger.commit().unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, LineOutcome::Applied(_))),
        "{outcomes:?}"
    );
    let north = ledger
        .year_at(&member(4), 2024, Some("110000"), &AsOf::NOW)
        .unwrap()
        .unwrap();
    assert_eq!((north.claims, north.ordinary_paid), (0, Money::ZERO));
    let live = answers(&ledger);
    ledger.rebuild(&mut |_, _| {}).unwrap();
    assert_eq!(answers(&ledger), live);
}

/// Found by the deferred-store property: within one commit group, a relative unbound and bound
/// again was refused as still bound (the store still held the binding, and the cache, which had
/// dropped it, looked there), and a member transferred out of a region came back into the
/// cached region index from the store (harmless to the allocation, which checks the member's
/// region, but wrong). Changes not yet stored must win over the store: the lines decide in one
/// group exactly as they do with a commit after each.
#[test]
fn changes_not_yet_stored_win_over_the_store_within_one_commit_group() {
    let lines: Vec<String> = setup_lines()
        .into_iter()
        .chain(
            [
                r#"{"cmd":"bind_family","date":"2024-03-01","holder":"M2","relation":"child","relative":"R2"}"#,
                r#"{"cmd":"allocate","month":"2024-04","region":"500000"}"#,
                "commit",
                r#"{"cmd":"transfer","date":"2024-04-15","member":"M1","to_region":"110000"}"#,
                r#"{"cmd":"allocate","month":"2024-05","region":"500000"}"#,
                r#"{"cmd":"unbind_family","date":"2024-06-01","holder":"M2","relative":"R2"}"#,
                r#"{"cmd":"bind_family","date":"2024-07-01","holder":"M0","relation":"child","relative":"R2"}"#,
            ]
            .map(String::from),
        )
        .collect();
    let reference_dir = tempfile::tempdir().unwrap();
    let decided: Vec<String> = lines.iter().filter(|l| *l != "commit").cloned().collect();
    let (_, expected) = committed_line_by_line(reference_dir.path(), &decided);
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let mut got = Vec::new();
    let mut number = 0;
    for line in &lines {
        if line == "commit" {
            got.extend(ledger.commit().unwrap());
            continue;
        }
        ledger.apply_line(line, number).unwrap();
        number += 1;
    }
    got.extend(ledger.commit().unwrap());
    let credited = |outcome: &LineOutcome| match outcome {
        LineOutcome::Applied(o) => serde_json::to_value(o).unwrap()["members_credited"].clone(),
        other => panic!("{other:?}"),
    };
    let may = expected.len() - 3;
    assert_eq!(
        credited(&got[may]),
        credited(&expected[may]),
        "M1 left 500000 in April"
    );
    assert_eq!(got, expected);
}

/// Found in review: opening folds the records the projections had not stored, and that fold
/// caches members without their regions' policies; deciding must not take such a member for
/// fully loaded. Lines after a crash decide as they would have without it.
#[test]
fn lines_after_a_crash_decide_as_without_it() {
    let lines: Vec<String> = setup_lines()
        .into_iter()
        .chain(
            [
                r#"{"cmd":"enroll","member":"N1","region":"110000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"50.00"}"#,
                r#"{"cmd":"transfer","date":"2024-02-15","member":"M0","to_region":"110000"}"#,
                r#"{"cmd":"contribute","member":"N1","month":"2024-03","base":"8000.00"}"#,
                r#"{"channel":"institution","cmd":"claim","date":"2024-03-10","eligible":"900.00","id":"K1","level":1,"member":"M0"}"#,
                r#"{"channel":"institution","cmd":"claim","date":"2024-03-11","eligible":"700.00","id":"K2","level":2,"member":"N1"}"#,
            ]
            .map(String::from),
        )
        .collect();
    let crash_after = lines.len() - 3;
    let reference_dir = tempfile::tempdir().unwrap();
    let (_, expected) = committed_line_by_line(reference_dir.path(), &lines);
    let dir = tempfile::tempdir().unwrap();
    let mut got = Vec::new();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let setup = setup_lines().len();
    for (i, line) in lines.iter().enumerate().take(crash_after) {
        ledger.apply_line(line, i as i64).unwrap();
        if i + 1 == setup {
            // The policies are stored: the fold after the crash starts after them.
            got.extend(ledger.commit().unwrap());
        }
    }
    // Durable, projections not stored: what a killed `apply` leaves.
    got.extend(ledger.commit_deferred().unwrap());
    drop(ledger);
    let mut ledger = Ledger::open(dir.path()).unwrap();
    for (i, line) in lines.iter().enumerate().skip(crash_after) {
        ledger.apply_line(line, i as i64).unwrap();
    }
    got.extend(ledger.commit().unwrap());
    assert_eq!(got, expected);
    assert!(
        expected[crash_after..]
            .iter()
            .all(|o| matches!(o, LineOutcome::Applied(_))),
        "{:?}",
        &expected[crash_after..]
    );
}
