//! `audit import` into PostgreSQL through the real binary: an archive exported from a directory
//! ledger restores into a new log that verifies to the same digest; a log that exists is
//! refused, creating nothing; an archive that fails its check, or that is not complete, leaves
//! no log behind (neither the target nor the temporary log it was built in).

mod support;

use serde_json::Value;
use support::pg::client;
use support::{examples, text, TestLedger};

/// A directory ledger holding the sample, and its complete archive (in its temp dir).
fn sample_archive() -> (TestLedger, std::path::PathBuf) {
    let ledger = TestLedger::directory().with_policy();
    let sample = examples("sample.jsonl");
    let out = ledger.run(&["apply", sample.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let archive = ledger.dir.path().join("all.jsonl");
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    (ledger, archive)
}

fn json_of(ledger: &TestLedger, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ledger.run(&all);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Rows, in any of the log's tables, of log `log` or of a temporary log an import built it in
/// (`.import-PID-N-LOG`).
fn rows_of_log_or_its_import(log: &str) -> i64 {
    let mut client = client();
    let tables = [
        "gongji_log_records",
        "gongji_projections",
        "gongji_projection_checkpoints",
        "gongji_log_heads",
    ];
    tables
        .iter()
        .map(|table| {
            let sql = format!(
                "SELECT count(*) FROM {table} WHERE log = $1 OR \
                 (log LIKE '.import-%' AND right(log, length($1)) = $1)"
            );
            client.query_one(&sql, &[&log]).unwrap().get::<_, i64>(0)
        })
        .sum()
}

#[test]
fn an_archive_of_a_directory_ledger_imports_into_postgres_and_verifies_to_the_same_digest() {
    let (dir, archive) = sample_archive();
    let digest = json_of(&dir, &["audit", "verify"])["digest"].clone();
    let pg = TestLedger::postgres();
    let log = &pg.pg.as_ref().unwrap().log;
    let imported = json_of(&pg, &["audit", "import", archive.to_str().unwrap()]);
    assert_eq!(imported["digest"], digest);
    assert_eq!(json_of(&pg, &["audit", "verify"])["digest"], digest);
    assert_eq!(json_of(&pg, &["audit", "replay"])["digest"], digest);
    for query in [&["account", "M001"][..], &["fund", "500000"]] {
        assert_eq!(pg.query(query), dir.query(query), "{query:?}");
    }
    // The projections came with the log: what is stored is up to its end.
    let sql = "SELECT checkpoint FROM gongji_projection_checkpoints WHERE log = $1";
    let checkpoint: Option<i64> = client().query_one(sql, &[log]).unwrap().get(0);
    let records = json_of(&pg, &["audit", "verify"])["records"].as_i64();
    assert_eq!(checkpoint, records);
    // Nothing of the temporary log is left: only the target's own rows.
    let sql = "SELECT count(*) FROM gongji_log_heads WHERE log LIKE '.import-%' \
               AND right(log, length($1)) = $1";
    assert_eq!(client().query_one(sql, &[log]).unwrap().get::<_, i64>(0), 0);
}

#[test]
fn an_import_into_a_log_that_exists_is_refused_creating_nothing() {
    let (_dir, archive) = sample_archive();
    let pg = TestLedger::postgres().with_policy();
    let log = &pg.pg.as_ref().unwrap().log;
    let before = rows_of_log_or_its_import(log);
    let verified = json_of(&pg, &["audit", "verify"]);
    let out = pg.run(&["audit", "import", archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("already holds"), "{}", text(&out));
    assert_eq!(rows_of_log_or_its_import(log), before);
    assert_eq!(json_of(&pg, &["audit", "verify"]), verified);
}

#[test]
fn an_archive_that_does_not_restore_leaves_no_log_behind() {
    let (dir, archive) = sample_archive();
    let lines: Vec<String> = std::fs::read_to_string(&archive)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // A byte changed inside record 10's payload (line 12), its schema version: records 0..9
    // were appended first.
    let mut changed = lines.clone();
    let version = gongji_domain::event::EVENT_SCHEMA_VERSION;
    let payload = |version: u8| format!("\"payload\":\"{version:02x}");
    changed[12] = changed[12].replacen(&payload(version), &payload(version + 1), 1);
    assert_ne!(changed[12], lines[12]);
    // Cut short: no manifest, so not complete.
    let cut = lines[..lines.len() - 1].to_vec();
    for (name, damaged) in [("changed.jsonl", changed), ("cut.jsonl", cut)] {
        let path = dir.dir.path().join(name);
        std::fs::write(&path, damaged.join("\n") + "\n").unwrap();
        let pg = TestLedger::postgres();
        let log = &pg.pg.as_ref().unwrap().log;
        let out = pg.run(&["audit", "import", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        assert_eq!(rows_of_log_or_its_import(log), 0, "{name}");
        // Still no ledger there: a query is refused as on an empty directory.
        let out = pg.run(&["fund", "500000"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
    }
}
