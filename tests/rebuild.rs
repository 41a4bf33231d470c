//! Projections are disposable: rebuilt from the log, by command or after the index is lost,
//! they answer exactly as before.

mod support;

use serde_json::Value;
use support::{examples, text, TestLedger};

fn answers(ledger: &TestLedger) -> Vec<Value> {
    let mut all = vec![ledger.query(&["fund", "500000"])];
    for member in ["M001", "M002", "M003"] {
        all.push(ledger.query(&["account", member]));
        all.push(ledger.query(&["year", member, "2024"]));
        let history = ledger.run(&["history", member, "--json"]);
        all.extend(support::parse_lines(&history.stdout));
    }
    all
}

#[test]
fn rebuild_command_and_a_deleted_index_both_reproduce_every_answer() {
    let ledger = TestLedger::new();
    let sample = examples("sample.jsonl");
    let out = ledger.run(&["apply", sample.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let live = answers(&ledger);

    let out = ledger.run(&["rebuild", "--lang", "en"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rebuilt projections from 28 records"),
        "{}",
        text(&out)
    );
    assert_eq!(answers(&ledger), live);

    match &ledger.pg {
        // The projections' rows and checkpoint deleted from the database.
        Some(pg) => {
            let mut client = support::pg::client();
            for table in ["gongji_projections", "gongji_projection_checkpoints"] {
                let sql = format!("DELETE FROM {table} WHERE log = $1");
                assert!(
                    client
                        .execute(&sql, &[&pg.log])
                        .expect("projections removed")
                        > 0
                );
            }
        }
        None => std::fs::remove_dir_all(ledger.data().join("index")).expect("index removed"),
    }
    assert_eq!(
        answers(&ledger),
        live,
        "after losing the sled index and projections (on PostgreSQL, their rows)"
    );
}
