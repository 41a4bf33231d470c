//! A log whose records break an invariant though their chain and checksums hold (written past
//! the ledger, straight through the log's `append`): the ledger opens far enough for
//! `audit verify` to name the record, refuses commands and queries naming it, and nothing
//! panics.

use gongji_domain::event::AddedIn;
use gongji_domain::types::Purpose;
use gongji_domain::{Event, Money};
use gongji_ledger::Ledger;
use gongji_log::{Log, NewRecord};

const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");

/// A ledger with a policy and a member holding 100.00, then an account payment of 500.00
/// appended behind the ledger's back; the position of that payment.
fn overdrawn_ledger(dir: &std::path::Path) -> u64 {
    let mut ledger = Ledger::open(dir).unwrap();
    ledger
        .apply_line(&format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#), 0)
        .unwrap();
    ledger.apply_line(r#"{"cmd":"enroll","member":"M1","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"100.00"}"#, 0).unwrap();
    ledger.commit().unwrap();
    ledger.close().unwrap();
    let payment = Event::AccountPaid {
        id: "P1".into(),
        holder: "M1".into(),
        beneficiary: "M1".into(),
        region: "500000".into(),
        date: "2024-02-01".parse().unwrap(),
        year: 2024,
        purpose: Purpose::Pharmacy,
        amount: Money::from_fen(50_000),
        institution: AddedIn(None),
    };
    let payload = payment.encode();
    let mut log = Log::open(dir).unwrap();
    let position = log.durable_end();
    let record = NewRecord {
        stream: "member/M1",
        event_id: uuid::Uuid::nil(),
        payload: &payload,
    };
    log.append(&[], &[record], 0).unwrap();
    log.sync().unwrap();
    position
}

#[test]
fn a_log_breaking_an_invariant_opens_for_verify_which_names_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let position = overdrawn_ledger(dir.path());
    let mut ledger = Ledger::open(dir.path()).expect("the ledger opens far enough to verify");
    let report = ledger.audit_verify(&mut |_, _, _| {}).unwrap();
    let failure = report.failure.expect("verify finds the overdraft");
    assert_eq!(
        (failure.position, failure.check),
        (Some(position), "balance")
    );
    assert!(
        failure.message.contains("M1 holds 100.00"),
        "{}",
        failure.message
    );

    let refused = ledger
        .account("M1")
        .expect_err("queries are refused")
        .to_string();
    assert!(
        refused.contains(&format!("record {position} of stream member/M1"))
            && refused.contains("balance"),
        "{refused}"
    );
    let line = r#"{"cmd":"retire","member":"M1","date":"2024-03-01"}"#;
    let refused = ledger
        .apply_line(line, 0)
        .expect_err("commands are refused");
    assert!(refused.to_string().contains("balance"), "{refused}");
    let refused = ledger
        .rebuild(&mut |_, _| {})
        .expect_err("a rebuild refuses the record");
    assert!(
        refused.to_string().contains(&format!("record {position}")),
        "{refused}"
    );
    drop(ledger);
    // After the refused rebuild the next open stops before the record again.
    let ledger = Ledger::open(dir.path()).unwrap();
    assert!(ledger.account("M1").is_err());
}
