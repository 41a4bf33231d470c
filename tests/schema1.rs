//! A ledger written by the release before event schema 2 (commit 0e72c18, `tests/fixtures/
//! schema1`: `cmds.jsonl` applied after the Chongqing policy, and its archive) opens, verifies,
//! answers with the institution kind its claims' channels imply, and goes on taking commands.
//! Its projections, stored in the old schema, are folded again at open rather than misread.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::{check_and_import, copy_dir, text, TestLedger};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/schema1")
        .join(name)
}

/// The figures the old release answered for the fixture (its `audit replay --json`).
fn assert_old_totals(ledger: &TestLedger) {
    let out = ledger.run(&["audit", "replay", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("replay report");
    assert_eq!(report["records"], 17, "{report}");
    let region = &report["regions"][0];
    assert_eq!(region["pooled"]["inflow"], "680.00", "{report}");
    assert_eq!(region["pooled"]["outflow"], "2525.00", "{report}");
    assert_eq!(region["accounts"]["balance"], "335.00", "{report}");
}

fn kind_of(ledger: &TestLedger, claim: &str) -> Value {
    let explained = ledger.query(&["explain", claim]);
    explained["settlement"]["institution_kind"].clone()
}

#[test]
fn a_schema_1_ledger_opens_verifies_answers_and_goes_on() {
    let ledger = TestLedger::directory();
    copy_dir(&fixture("ledger"), &ledger.data());
    let out = ledger.run(&["audit", "verify", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    // The old projections are not misread: the open folds the log again.
    assert_eq!(kind_of(&ledger, "c1"), "hospital");
    assert_eq!(kind_of(&ledger, "c2"), "pharmacy");
    assert_eq!(kind_of(&ledger, "c3"), "hospital");
    let account = ledger.query(&["account", "A"]);
    assert_eq!(account["balance"], "140.00", "{account}");
    assert_old_totals(&ledger);
    // New commands land beside the old records, the new field with them.
    let answers = ledger.apply_ok(&[json!({
        "cmd": "claim", "id": "c5", "member": "A", "date": "2024-05-01", "level": 1,
        "channel": "institution", "institution_kind": "grassroots", "eligible": "100.00"
    })
    .to_string()]);
    assert_eq!(answers[0]["id"], "c5", "{answers:?}");
    assert_eq!(kind_of(&ledger, "c5"), "grassroots");
    let out = ledger.run(&["rebuild"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(kind_of(&ledger, "c1"), "hospital");
    assert_eq!(kind_of(&ledger, "c5"), "grassroots");
    let out = ledger.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    // Its own archive, old records and new, checks and imports.
    let archive = ledger.dir.path().join("upgraded.archive");
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = TestLedger::directory();
    check_and_import(&archive, &restored);
    assert_eq!(kind_of(&restored, "c1"), "hospital");
    assert_eq!(kind_of(&restored, "c5"), "grassroots");
}

#[test]
fn a_schema_1_archive_checks_and_imports() {
    let ledger = TestLedger::empty();
    check_and_import(&fixture("schema1.archive"), &ledger);
    assert_eq!(kind_of(&ledger, "c2"), "pharmacy");
    assert_old_totals(&ledger);
}
