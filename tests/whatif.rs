//! `gongji whatif` through the binary, on a small ledger whose figures are computed by hand:
//! the shipped policy in force (active members: deductible 200.00, 60% at levels 1 and 2) and a
//! proposal with a deductible of 100.00 and 70%.

mod support;

use serde_json::{json, Value};
use support::{text, TestLedger, CHONGQING_POLICY};

fn claim(id: &str, date: &str, level: u8, eligible: &str) -> String {
    json!({"cmd": "claim", "id": id, "member": "A", "date": date, "level": level,
           "channel": "institution", "eligible": eligible})
    .to_string()
}

/// Member A (active, employer scheme, 500.00 in the account) and claims c1 (1,000.00), c2
/// (300.00) and c3 (100.00, reversed).
fn small_ledger() -> TestLedger {
    let ledger = TestLedger::new();
    ledger.apply_ok(&[
        json!({"cmd": "enroll", "member": "A", "region": "500000", "born": "1980-05-01",
               "status": "active", "scheme": "employer", "date": "2024-01-01",
               "opening_balance": "500.00"})
        .to_string(),
        claim("c1", "2024-03-01", 1, "1000.00"),
        claim("c2", "2024-04-01", 2, "300.00"),
        claim("c3", "2024-05-01", 1, "100.00"),
        json!({"cmd": "reverse", "id": "c3", "date": "2024-05-02", "reason": "test"}).to_string(),
    ]);
    ledger
}

/// The shipped policy with the active members' deductible at 100.00 and their level 1 and 2
/// ratio at 70%.
fn proposal(ledger: &TestLedger) -> std::path::PathBuf {
    let text = std::fs::read_to_string(CHONGQING_POLICY).expect("policy file");
    let mut policy: Value = serde_json::from_str(&text).expect("policy JSON");
    policy["version"] = "500000/proposal".into();
    policy["outpatient"]["deductibles"][0]["amount"] = "100.00".into();
    policy["outpatient"]["ratios"][0]["bands"][0]["ratio"] = "0.70".into();
    let path = ledger.dir.path().join("proposal.json");
    std::fs::write(&path, policy.to_string()).expect("proposal written");
    path
}

fn whatif(ledger: &TestLedger, args: &[&str]) -> Value {
    let mut all = vec!["whatif", "--json"];
    all.extend_from_slice(args);
    let out = ledger.run(&all);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

#[test]
fn a_lower_deductible_and_a_higher_ratio_cost_what_a_hand_computation_says() {
    let ledger = small_ledger();
    let proposal = proposal(&ledger);
    let csv = ledger.dir.path().join("claims.csv");
    let report = whatif(
        &ledger,
        &[
            "--policy",
            proposal.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    // Recorded: c1 pays 200.00 deductible and 60% of 800.00 = 480.00, A's share 520.00 takes the
    // 500.00 in the account and 20.00 in cash; c2 pays 60% of 300.00 = 180.00, A's 120.00 in
    // cash. Proposed: c1 pays 100.00 deductible and 70% of 900.00 = 630.00, A's 370.00 from the
    // account (130.00 left); c2 pays 70% of 300.00 = 210.00, A's 90.00 from the account.
    // c3 is reversed under both: it nets out.
    let total = &report["total"];
    assert_eq!(total["claims"], 2, "{report}");
    assert_eq!(total["changed"], 2, "{report}");
    assert_eq!(total["recorded"]["pooled"], "660.00", "{report}");
    assert_eq!(total["recorded"]["account"], "500.00", "{report}");
    assert_eq!(total["recorded"]["cash"], "140.00", "{report}");
    assert_eq!(total["proposed"]["pooled"], "840.00", "{report}");
    assert_eq!(total["proposed"]["account"], "460.00", "{report}");
    assert_eq!(total["proposed"]["cash"], "0.00", "{report}");
    assert_eq!(total["difference"]["pooled"], "180.00", "{report}");
    assert_eq!(total["difference"]["account"], "-40.00", "{report}");
    assert_eq!(total["difference"]["cash"], "-140.00", "{report}");
    assert_eq!(
        report["by_month"]["2024-03"]["difference"]["pooled"],
        "150.00"
    );
    assert_eq!(
        report["by_month"]["2024-04"]["difference"]["pooled"],
        "30.00"
    );
    assert_eq!(report["by_level"]["2"]["claims"], 1);
    assert_eq!(report["paying_less"][0]["member"], "A");
    assert_eq!(report["paying_less"][0]["own_share_difference"], "-180.00");
    // One row per claim and per reversal, both settlements side by side.
    let rows = std::fs::read_to_string(&csv).expect("CSV written");
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(
        rows[0].starts_with("position,row,claim,member,date,"),
        "{}",
        rows[0]
    );
    assert!(rows[1].contains(",claim,c1,A,2024-03-01,"), "{}", rows[1]);
    assert!(
        rows[1].contains(
            ",200.00,480.00,0.00,500.00,20.00,100.00,630.00,0.00,370.00,0.00,150.00,-150.00"
        ),
        "{}",
        rows[1]
    );
    assert!(rows[4].contains(",reversal,c3,"), "{}", rows[4]);
}

#[test]
fn a_period_resettles_its_claims_on_what_came_before_as_recorded() {
    let ledger = small_ledger();
    let proposal = proposal(&ledger);
    // From April: c1 stays as recorded (the 200.00 deductible is filled); c2 pays 70% of
    // 300.00 = 210.00 and A's 90.00 is in cash (the account is empty, as recorded).
    let report = whatif(
        &ledger,
        &[
            "--policy",
            proposal.to_str().unwrap(),
            "--from",
            "2024-04-01",
            "--to",
            "2024-12-31",
        ],
    );
    assert_eq!(report["total"]["claims"], 1, "{report}");
    assert_eq!(report["total"]["difference"]["pooled"], "30.00", "{report}");
    assert_eq!(report["total"]["proposed"]["cash"], "90.00", "{report}");
}

#[test]
fn the_policy_in_force_changes_nothing_and_bad_arguments_are_refused() {
    let ledger = small_ledger();
    let report = whatif(&ledger, &["--policy", CHONGQING_POLICY]);
    assert_eq!(report["total"]["changed"], 0, "{report}");
    assert_eq!(report["total"]["difference"]["pooled"], "0.00", "{report}");
    let out = ledger.run(&["whatif", "--policy", CHONGQING_POLICY, "--region", "110000"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("region 500000"), "{}", text(&out));
    // A proposal `policy load` would refuse is no proposal.
    let shipped = std::fs::read_to_string(CHONGQING_POLICY).expect("policy file");
    let mut gap: Value = serde_json::from_str(&shipped).expect("policy JSON");
    gap["outpatient"]["ratios"].as_array_mut().unwrap().pop();
    let gap_file = ledger.dir.path().join("gap.json");
    std::fs::write(&gap_file, gap.to_string()).expect("written");
    let out = ledger.run(&["whatif", "--policy", gap_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("outpatient.ratios"), "{}", text(&out));
    let missing = ledger.dir.path().join("missing.json");
    let out = ledger.run(&["whatif", "--policy", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("missing.json"), "{}", text(&out));
}
