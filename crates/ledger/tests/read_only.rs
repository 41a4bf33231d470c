//! A ledger opened read-only beside its writer (in this process here; `tests/concurrent_readers.rs`
//! has real processes): it answers from the durable state, folds what the stored projections
//! lack in memory, and refuses every command.

use gongji_ledger::{Ledger, LedgerError, LogOptions};

const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");

fn enroll(member: &str, balance: &str) -> String {
    format!(
        r#"{{"cmd":"enroll","member":"{member}","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"{balance}"}}"#
    )
}

fn balance(ledger: &Ledger, member: &str) -> Option<String> {
    ledger
        .account(member)
        .expect("account")
        .map(|a| a.balance.to_string())
}

#[test]
fn a_read_only_ledger_answers_the_durable_state_beside_its_writer_and_takes_no_command() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut writer = Ledger::open(tmp.path()).expect("open");
    writer
        .apply_line(&format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#), 0)
        .expect("policy");
    writer.apply_line(&enroll("M1", "100.00"), 0).expect("M1");
    // Durable, but its projections not stored: a reader folds them in memory.
    writer.commit_deferred().expect("commit");
    writer.apply_line(&enroll("M2", "200.00"), 0).expect("M2");

    let mut reader = Ledger::open_read_only(tmp.path(), LogOptions::default()).expect("reader");
    assert_eq!(balance(&reader, "M1").as_deref(), Some("100.00"));
    assert_eq!(balance(&reader, "M2"), None, "M2 is staged, not durable");
    assert!(matches!(
        reader.apply_line(&enroll("M3", "1.00"), 0),
        Err(LedgerError::ReadOnly)
    ));
    assert!(matches!(reader.commit(), Err(LedgerError::ReadOnly)));

    writer.commit().expect("commit");
    assert_eq!(
        balance(&reader, "M2"),
        None,
        "a reader keeps the state it opened"
    );
    let later = Ledger::open_read_only(tmp.path(), LogOptions::default()).expect("reader");
    assert_eq!(balance(&later, "M2").as_deref(), Some("200.00"));
    writer.close().expect("close");
    later.close().expect("a reader closes without writing");
}
