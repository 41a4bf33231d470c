//! Ledgers with misuse patterns planted by hand, for the monitoring tests (command line and
//! service).

use serde_json::json;

use super::TestLedger;

/// A claim at an institution, 60.00 eligible, its visit id made from its own.
pub fn claim(id: &str, member: &str, date: &str, institution: &str) -> String {
    json!({"cmd": "claim", "id": id, "member": member, "date": date, "level": 1,
           "channel": "institution", "eligible": "60.00", "institution": institution,
           "visit": format!("V-{id}")})
    .to_string()
}

/// An account payment at pharmacy P7.
pub fn pay(id: &str, member: &str, date: &str, amount: &str) -> String {
    json!({"cmd": "account_pay", "id": id, "holder": member, "date": date,
           "purpose": "pharmacy", "amount": amount, "institution": "P7"})
    .to_string()
}

/// Member A: three claims at H1 on one day (frequency); member B: three payments of 180.00
/// at pharmacy P7 on three days (splitting); member C: nothing out of the way.
pub fn planted() -> TestLedger {
    let ledger = TestLedger::new();
    let mut lines = Vec::new();
    for member in ["A", "B", "C"] {
        lines.push(
            json!({"cmd": "enroll", "member": member, "region": "500000",
                   "born": "1975-02-01", "status": "active", "scheme": "employer",
                   "date": "2024-01-01", "opening_balance": "3000.00"})
            .to_string(),
        );
    }
    lines.extend([
        claim("a1", "A", "2024-04-02", "H1"),
        claim("a2", "A", "2024-04-02", "H1"),
        claim("a3", "A", "2024-04-02", "H1"),
        pay("b1", "B", "2024-04-10", "180.00"),
        pay("b2", "B", "2024-04-11", "180.00"),
        pay("b3", "B", "2024-04-12", "180.00"),
        claim("c1", "C", "2024-04-20", "H2"),
        pay("c2", "C", "2024-05-20", "80.00"),
    ]);
    ledger.apply_ok(&lines);
    ledger
}

/// The shipped rules as a new version named `version`, each splitting pattern needing
/// `count_min` payments.
pub fn rules_version(ledger: &TestLedger, version: &str, count_min: u32) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/monitor/500000-2024-01-01.json"
    ))
    .unwrap();
    let text = shipped
        .replace("\"500000-monitor-2024-1\"", &format!("\"{version}\""))
        .replace("\"count_min\": 3", &format!("\"count_min\": {count_min}"));
    assert_ne!(text, shipped);
    let file = ledger.dir.path().join(format!("{version}.json"));
    std::fs::write(&file, text).unwrap();
    file
}

/// The arguments of `monitor rules load FILE --by BY`.
pub fn load_rules<'a>(file: &'a std::path::Path, by: &'a str) -> [&'a str; 6] {
    let file = file.to_str().expect("a UTF-8 path");
    ["monitor", "rules", "load", file, "--by", by]
}
