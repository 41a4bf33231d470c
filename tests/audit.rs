//! What auditors rely on, through the real binary: replay digests, verification that names the
//! first bad record, archives that check alone and restore a ledger, and explanations.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{copy_dir, text, TestLedger};

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

fn verify(ledger: &TestLedger) -> (i32, Value) {
    let out = ledger.run(&["audit", "verify", "--json"]);
    (out.status.code().unwrap(), json_of(&out))
}

#[test]
fn replay_digest_is_stable_across_rebuilds_export_check_and_import() {
    let ledger = TestLedger::sample();
    let first = json_of(&ledger.run(&["audit", "replay", "--json"]));
    let second = json_of(&ledger.run(&["audit", "replay", "--json"]));
    assert_eq!(first, second);
    assert_eq!(first["records"], 28);
    let digest = first["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    let region = &first["regions"][0];
    assert_eq!(region["region"], "500000");
    assert_eq!(region["pooled"]["balance"], "1180.00");
    // Accounts: M001 1282.00 + M002 40.00 + M003 0.00 + M002's 105 + 115... as the queries say.
    let m001 = ledger.query(&["account", "M001"]);
    let m002 = ledger.query(&["account", "M002"]);
    let accounts_balance: fen::Fen = fen::parse(region["accounts"]["balance"].as_str().unwrap());
    let sum = fen::parse(m001["balance"].as_str().unwrap())
        + fen::parse(m002["balance"].as_str().unwrap());
    assert_eq!(
        accounts_balance, sum,
        "M003 holds nothing; the region's accounts hold M001's and M002's balances"
    );

    let (code, report) = verify(&ledger);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["digest"], digest.as_str());

    let archive = ledger.dir.path().join("all.jsonl");
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = std::process::Command::new(support::gongji_path())
        .args(["audit", "check", archive.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let checked = json_of(&out);
    assert_eq!(checked["digest"], digest.as_str());
    assert_eq!(checked["regions"], first["regions"]);

    let restored = TestLedger::empty();
    let out = restored.run(&["audit", "import", archive.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json_of(&out)["digest"], digest.as_str());
    assert_eq!(
        json_of(&restored.run(&["audit", "replay", "--json"]))["digest"],
        digest.as_str()
    );
    assert_eq!(restored.query(&["account", "M001"]), m001);
    // The restored log is the same log: verification passes with the same digest.
    let (code, report) = verify(&restored);
    assert_eq!(
        (code, &report["digest"]),
        (0, &Value::from(digest.as_str()))
    );
    // Importing again into a ledger that holds records is refused.
    let out = restored.run(&["audit", "import", archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// Small exact money arithmetic for the test, in fen, without floats.
mod fen {
    pub type Fen = i64;
    pub fn parse(text: &str) -> Fen {
        let (yuan, fen) = text.split_once('.').unwrap();
        let sign = if yuan.starts_with('-') { -1 } else { 1 };
        yuan.parse::<i64>().unwrap() * 100 + sign * fen.parse::<i64>().unwrap()
    }
}

#[test]
fn verify_names_a_corrupted_byte_a_dropped_record_and_two_reordered() {
    if support::directory_only("it edits a segment file of the data directory") {
        return;
    }
    for damage in ["flip", "drop", "swap"] {
        let ledger = TestLedger::sample();
        let path = support::first_segment(&ledger);
        let bytes = std::fs::read(&path).unwrap();
        let frames = support::frames(&bytes);
        assert_eq!(frames.len(), 28);
        let (a, b) = (frames[7], frames[8]);
        let damaged: Vec<u8> = match damage {
            // A byte of record 7's payload (its last byte).
            "flip" => {
                let mut d = bytes.clone();
                d[a.1 - 1] ^= 0x40;
                d
            }
            "drop" => [&bytes[..a.0], &bytes[a.1..]].concat(),
            _ => [
                &bytes[..a.0],
                &bytes[b.0..b.1],
                &bytes[a.0..a.1],
                &bytes[b.1..],
            ]
            .concat(),
        };
        std::fs::write(&path, damaged).unwrap();
        let out = ledger.run(&["audit", "verify", "--json"]);
        assert_ne!(out.status.code(), Some(0), "{damage}: {}", text(&out));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains("\"position\":7")
                || said.contains("position 7")
                || said.contains("record 7"),
            "{damage} not named at record 7: {said}"
        );
    }
}

#[test]
fn verify_finds_projections_that_differ_from_a_rebuild() {
    let ledger = TestLedger::sample();
    // Another run over the same ledger's log, then swap the projections for a stale copy.
    let stale = StaleProjections::take(&ledger);
    let more = vec![
        serde_json::json!({"cmd":"contribute","member":"M001","month":"2024-03","base":"1000.00"})
            .to_string(),
    ];
    assert_eq!(ledger.apply(&more).0, 0);
    // Projections from before the contribution, but a checkpoint that claims to be current.
    let (code, _) = verify(&ledger);
    assert_eq!(code, 0);
    stale.put_back(&ledger);
    // Opening notices the projections are behind the log and folds the tail: still consistent.
    let (code, report) = verify(&ledger);
    assert_eq!(code, 0, "{report}");
}

/// A copy of a ledger's projections as stored: its index directory, or on PostgreSQL its
/// projection rows and checkpoint.
enum StaleProjections {
    Dir(std::path::PathBuf),
    Rows(Vec<(Vec<u8>, Vec<u8>)>, Option<i64>),
}

impl StaleProjections {
    fn take(ledger: &TestLedger) -> StaleProjections {
        let Some(pg) = &ledger.pg else {
            let stale = ledger.dir.path().join("stale-index");
            copy_dir(&ledger.data().join("index"), &stale);
            return StaleProjections::Dir(stale);
        };
        let mut client = support::pg::client();
        let sql = "SELECT key, value FROM gongji_projections WHERE log = $1";
        let rows = client.query(sql, &[&pg.log]).unwrap();
        let rows: Vec<_> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert!(!rows.is_empty(), "the projections are stored");
        let sql = "SELECT checkpoint FROM gongji_projection_checkpoints WHERE log = $1";
        StaleProjections::Rows(rows, client.query_one(sql, &[&pg.log]).unwrap().get(0))
    }

    fn put_back(self, ledger: &TestLedger) {
        let (rows, checkpoint) = match (self, &ledger.pg) {
            (StaleProjections::Dir(stale), _) => {
                let index = ledger.data().join("index");
                std::fs::remove_dir_all(&index).unwrap();
                return copy_dir(&stale, &index);
            }
            (StaleProjections::Rows(rows, checkpoint), Some(_)) => (rows, checkpoint),
            (StaleProjections::Rows(..), None) => unreachable!("rows are taken on PostgreSQL"),
        };
        let log = &ledger.pg.as_ref().unwrap().log;
        let mut client = support::pg::client();
        let mut tx = client.transaction().unwrap();
        let sql = "DELETE FROM gongji_projections WHERE log = $1";
        tx.execute(sql, &[log]).unwrap();
        for (key, value) in &rows {
            let sql = "INSERT INTO gongji_projections (log, key, value) VALUES ($1, $2, $3)";
            tx.execute(sql, &[log, key, value]).unwrap();
        }
        let sql = "UPDATE gongji_projection_checkpoints SET checkpoint = $2 WHERE log = $1";
        assert_eq!(tx.execute(sql, &[log, &checkpoint]).unwrap(), 1);
        tx.commit().unwrap();
    }
}

fn check(path: &Path) -> (i32, String) {
    let out = std::process::Command::new(support::gongji_path())
        .args(["audit", "check", path.to_str().unwrap(), "--lang", "en"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn archive_check_names_a_changed_byte_a_removed_a_reordered_and_an_added_record() {
    let ledger = TestLedger::sample();
    let archive = ledger.dir.path().join("all.jsonl");
    assert!(ledger
        .run(&["audit", "export", archive.to_str().unwrap()])
        .status
        .success());
    let text = std::fs::read_to_string(&archive).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Line 1 the header, line 2 the policy, lines 3.. the records (position 0 on line 3).
    let record_line = |position: usize| 3 + position - 1;
    let write = |name: &str, lines: Vec<String>| {
        let path = ledger.dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();

    // A byte changed inside record 10's payload: its schema version.
    let mut changed = owned.clone();
    let at = record_line(10);
    let version = gongji_domain::event::EVENT_SCHEMA_VERSION;
    let payload = |version: u8| format!("\"payload\":\"{version:02x}");
    changed[at] = changed[at].replacen(&payload(version), &payload(version + 1), 1);
    assert_ne!(changed[at], owned[at]);
    let (code, said) = check(&write("changed.jsonl", changed));
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains(&format!("line {}", at + 1)) && said.contains("position 10"),
        "{said}"
    );

    // Record 10 removed: the chain breaks at the next line, record 11.
    let mut removed = owned.clone();
    removed.remove(record_line(10));
    let (code, said) = check(&write("removed.jsonl", removed));
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("position 11"), "{said}");

    // Records 10 and 11 swapped.
    let mut swapped = owned.clone();
    swapped.swap(record_line(10), record_line(11));
    let (code, said) = check(&write("swapped.jsonl", swapped));
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("position 11"), "{said}");

    // Record 10 added a second time.
    let mut added = owned.clone();
    added.insert(record_line(11), owned[record_line(10)].clone());
    let (code, said) = check(&write("added.jsonl", added));
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("position 10"), "{said}");

    // Cut short: no manifest.
    let (code, said) = check(&write("cut.jsonl", owned[..owned.len() - 1].to_vec()));
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("without a manifest"), "{said}");

    // A damaged archive is never imported.
    let restored = TestLedger::empty();
    let out = restored.run(&[
        "audit",
        "import",
        ledger.dir.path().join("changed.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", support::text(&out));

    // The untouched archive still checks.
    assert_eq!(check(&archive).0, 0);
}

#[test]
fn a_filtered_archive_holds_only_its_part_and_still_checks() {
    let ledger = TestLedger::sample();
    let archive = ledger.dir.path().join("march.jsonl");
    let out = ledger.run(&[
        "audit",
        "export",
        archive.to_str().unwrap(),
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-31",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let answer = json_of(&out);
    assert_eq!(answer["file"], archive.to_str().unwrap());
    let manifest = &answer["manifest"];
    // March: C001 (member only, nothing from the funds), C002 (member and pooled fund).
    assert_eq!(manifest["records"], 3);
    assert_eq!(manifest["complete"], false);
    let (code, said) = check(&archive);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("partial archive"), "{said}");
    let out = TestLedger::empty().run(&["audit", "import", archive.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a partial archive cannot restore a ledger: {}",
        text(&out)
    );
}

#[test]
fn explain_shows_the_policy_figures_positions_and_events_of_a_claim() {
    let ledger = TestLedger::sample();
    let view = ledger.query(&["explain", "C002"]);
    assert_eq!(view["policy"], "500000/2024-01-01");
    assert_eq!(view["deductible"]["before"], "150.00");
    assert_eq!(view["deductible"]["after"], "200.00");
    assert_eq!(view["ordinary_limit"]["limit"], "3000.00");
    assert_eq!(view["ordinary_limit"]["after"], "300.00");
    assert_eq!(view["annual_max"]["limit"], "80000.00");
    assert_eq!(view["account"]["before"], "1370.00");
    assert_eq!(view["account"]["after"], "984.50");
    let kinds: Vec<&str> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "claim_settled",
            "fund_claim_paid",
            "claim_reversed",
            "fund_claim_refunded"
        ]
    );
    // The ledger's sentence in JSON; in text, the same step with amounts grouped with the unit.
    assert_eq!(
        view["steps"][2],
        "deductible 200.00 (150.00 of group outpatient filled before): 50.00 applied"
    );
    let out = ledger.run(&["explain", "C002", "--lang", "en"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(
            "deductible 200.00 yuan (150.00 yuan of group outpatient filled before): 50.00 yuan applied"
        ),
        "{said}"
    );
    assert_eq!(ledger.run(&["explain", "NOPE"]).status.code(), Some(1));
}

#[test]
fn fund_as_of_and_history_between_dates() {
    let ledger = TestLedger::sample();
    let april = ledger.query(&["fund", "500000", "--as-of", "2024-04-30"]);
    // Before C002's reversal (2024-04-15 is in April, so it counts): 680+680+160 in; 120 (C003) out.
    assert_eq!(april["pooled"]["inflow"], "1520.00");
    assert_eq!(april["pooled"]["outflow"], "120.00");
    let march = ledger.query(&["fund", "500000", "--as-of", "2024-03-31"]);
    assert_eq!(march["pooled"]["outflow"], "300.00");
    let out = ledger.run(&[
        "history",
        "M001",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-31",
        "--json",
    ]);
    let kinds: Vec<String> = support::parse_lines(&out.stdout)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["claim_settled", "claim_settled"]);
}

#[test]
fn a_damaged_record_quarantines_the_ledger_until_the_log_verifies_again() {
    if support::directory_only(
        "it damages a segment file of the data directory and lifts the quarantine marker kept there",
    ) {
        return;
    }
    let ledger = TestLedger::sample();
    let (path, original) = support::damage_record(&ledger, 5);
    // Verification finds it, names it, and quarantines the ledger.
    let (code, report) = verify(&ledger);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["failure"]["position"], 5);
    let out = ledger.run(&["account", "M001"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("5") && said.to_lowercase().contains("quarantin"),
        "{said}"
    );
    // Lifting it is refused while the damage is there.
    let out = ledger.run(&["audit", "clear-quarantine"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(ledger.run(&["account", "M001"]).status.code(), Some(2));
    // The operator restores the segment from a backup copy; now it lifts.
    std::fs::write(&path, &original).unwrap();
    let out = ledger.run(&["audit", "clear-quarantine", "--lang", "en"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("record 5"),
        "{}",
        text(&out)
    );
    assert_eq!(ledger.query(&["account", "M001"])["balance"], "1282.00");
    assert_eq!(verify(&ledger).0, 0);
}

#[test]
fn the_quarantine_message_names_the_command_that_lifts_it() {
    if support::directory_only(
        "it damages a segment file of the data directory; the quarantine marker is kept there",
    ) {
        return;
    }
    let ledger = TestLedger::sample();
    support::damage_record(&ledger, 5);
    assert_eq!(verify(&ledger).0, 1);
    let out = ledger.run(&["account", "M001"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("audit clear-quarantine"), "{said}");
}

/// The sample ledger restored from its archive with every record's recorded time set to
/// `recorded_at` (RFC 3339), the chain resealed: recorded times a test can choose.
fn recorded_at(recorded_at: &str) -> TestLedger {
    let original = TestLedger::sample();
    let archive = original.dir.path().join("all.jsonl");
    let out = original.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let micros = chrono::DateTime::parse_from_rfc3339(recorded_at)
        .unwrap()
        .timestamp_micros();
    let mut lines = String::new();
    for line in std::fs::read_to_string(&archive).unwrap().lines() {
        let mut value: Value = serde_json::from_str(line).unwrap();
        if let Some(record) = value.get_mut("record") {
            record["recorded_at_micros"] = Value::from(micros);
        }
        lines.push_str(&value.to_string());
        lines.push('\n');
    }
    let moved = original.dir.path().join("moved.jsonl");
    std::fs::write(&moved, gongji_ledger::archive::reseal(lines.as_bytes())).unwrap();
    let restored = TestLedger::empty();
    let out = restored.run(&["audit", "import", moved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    restored
}

#[test]
fn recorded_before_reads_days_and_local_times_in_china_standard_time_and_says_so() {
    // Recorded at 04:00 on 1 April in Beijing, still 31 March in UTC.
    let ledger = recorded_at("2024-03-31T20:00:00Z");
    let account = |before: &str, zone: Option<&str>| {
        let mut command = ledger.command(&["account", "M001", "--recorded-before", before]);
        command.arg("--json").env_remove("GONGJI_TZ_OFFSET");
        if let Some(zone) = zone {
            command.env("GONGJI_TZ_OFFSET", zone);
        }
        let out = command.output().unwrap();
        (out.status.code(), out)
    };
    let enrolled = |before: &str| {
        let (code, out) = account(before, None);
        assert!(matches!(code, Some(0 | 1)), "{before}: {}", text(&out));
        code == Some(0)
    };
    // A day is its midnight in UTC+08:00: the record, at 04:00 that day, is not before it.
    assert!(!enrolled("2024-04-01"));
    assert!(enrolled("2024-04-02"));
    // A local time is read in UTC+08:00 (10:00 there is 02:00Z).
    assert!(enrolled("2024-04-01T10:00:00"));
    assert!(enrolled("2024-04-01 04:00:01"));
    assert!(!enrolled("2024-04-01T04:00:00"));
    // An explicit offset is honoured.
    assert!(enrolled("2024-03-31T20:00:01Z"));
    assert!(!enrolled("2024-03-31T20:00:00Z"));
    assert!(!enrolled("2024-04-01T04:00:00+08:00"));
    assert!(enrolled("2024-03-31T22:00:01+02:00"));

    // The answer states the zone and the time it read.
    let (_, out) = account("2024-04-01T10:00:00", None);
    let answer = json_of(&out);
    assert_eq!(answer["time_zone"], "+08:00");
    assert_eq!(answer["recorded_before"], "2024-04-01T10:00:00+08:00");
    assert_eq!(
        answer["balance"],
        ledger.query(&["account", "M001"])["balance"]
    );
    let out = ledger
        .command(&["account", "M001", "--recorded-before", "2024-04-02"])
        .env_remove("GONGJI_TZ_OFFSET")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("+08:00"), "{shown}");
    let out = ledger
        .command(&[
            "fund",
            "500000",
            "--recorded-before",
            "2024-04-02",
            "--json",
        ])
        .env_remove("GONGJI_TZ_OFFSET")
        .output()
        .unwrap();
    assert_eq!(json_of(&out)["time_zone"], "+08:00", "{}", text(&out));
    // Without --recorded-before nothing depends on the zone, and nothing is added.
    assert!(ledger
        .query(&["account", "M001"])
        .get("time_zone")
        .is_none());

    // The one setting changes the meaning, and the answer says which zone it used.
    let (code, out) = account("2024-04-01", Some("+00:00"));
    assert_eq!(code, Some(0), "{}", text(&out));
    let answer = json_of(&out);
    assert_eq!(answer["time_zone"], "+00:00");
    assert_eq!(answer["recorded_before"], "2024-04-01T00:00:00+00:00");
    let (code, out) = account("2024-03-31T15:00:01", Some("-05:00"));
    assert_eq!(code, Some(0), "{}", text(&out));
    assert_eq!(
        json_of(&out)["recorded_before"],
        "2024-03-31T15:00:01-05:00"
    );
    // A setting that is no offset is refused, naming it.
    for bad in ["Asia/Shanghai", "+8", "+08:60", "+24:00"] {
        let (code, out) = account("2024-04-01", Some(bad));
        assert_eq!(code, Some(2), "{bad}: {}", text(&out));
        assert!(text(&out).contains("GONGJI_TZ_OFFSET"), "{}", text(&out));
    }
    let (code, out) = account("2024-04-01T25:00:00", None);
    assert_eq!(code, Some(2), "{}", text(&out));
}

#[test]
fn export_onto_an_existing_file_is_refused_unless_forced() {
    let ledger = TestLedger::sample();
    let archive = ledger.dir.path().join("kept.jsonl");
    std::fs::write(&archive, b"an auditor's earlier archive\n").unwrap();
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(archive.to_str().unwrap()), "{said}");
    assert!(said.contains("--force"), "{said}");
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        b"an auditor's earlier archive\n"
    );
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    let check = ledger.run(&["audit", "check", archive.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn export_of_an_unknown_region_is_refused_and_writes_nothing() {
    let ledger = TestLedger::sample();
    let archive = ledger.dir.path().join("nowhere.jsonl");
    let out = ledger.run(&[
        "audit",
        "export",
        archive.to_str().unwrap(),
        "--region",
        "999999",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("region 999999"), "{said}");
    assert!(!archive.exists(), "an archive was written");
    assert!(!ledger.dir.path().join("nowhere.jsonl.partial").exists());
    // A region the ledger knows still exports.
    let out = ledger.run(&[
        "audit",
        "export",
        archive.to_str().unwrap(),
        "--region",
        "500000",
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Runs gongji with plain progress lines (`GONGJI_PROGRESS=plain`) and no ledger implied.
fn with_plain_progress(ledger: Option<&TestLedger>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(support::gongji_path());
    if let Some(ledger) = ledger {
        command.args(ledger.data_args());
    }
    command
        .args(args)
        .env("GONGJI_PROGRESS", "plain")
        .output()
        .expect("gongji runs")
}

/// The phases the plain progress lines name, in order, each with the percentage it ended at.
fn phases_ended(out: &std::process::Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|line| {
            let (phase, percent) = line.rsplit_once(' ')?;
            percent
                .ends_with('%')
                .then(|| (phase.to_string(), percent.to_string()))
        })
        .collect()
}

fn assert_phases_reach_100(out: &std::process::Output, expected: &[&str]) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    let ended = phases_ended(out);
    let names: Vec<&str> = ended.iter().map(|(phase, _)| phase.as_str()).collect();
    assert_eq!(names, expected, "{}", text(out));
    for (phase, percent) in &ended {
        assert_eq!(percent, "100.0%", "phase {phase}: {}", text(out));
    }
    let said = String::from_utf8_lossy(&out.stderr);
    for phase in expected {
        assert!(
            said.lines().any(|l| l == *phase),
            "{phase} not started: {said}"
        );
    }
}

#[test]
fn check_verify_and_import_show_their_phases_each_reaching_100_percent() {
    let ledger = TestLedger::sample();
    let verify = with_plain_progress(Some(&ledger), &["audit", "verify"]);
    assert_phases_reach_100(
        &verify,
        &["verify: chain", "verify: invariants", "verify: projections"],
    );
    let archive = ledger.dir.path().join("all.jsonl");
    let export = with_plain_progress(
        Some(&ledger),
        &["audit", "export", archive.to_str().unwrap()],
    );
    assert_phases_reach_100(&export, &["export: select", "export: write"]);
    let check = with_plain_progress(None, &["audit", "check", archive.to_str().unwrap()]);
    assert_phases_reach_100(&check, &["check: archive"]);
    let restored = TestLedger::empty();
    let import = with_plain_progress(
        Some(&restored),
        &["audit", "import", archive.to_str().unwrap()],
    );
    assert_phases_reach_100(&import, &["import: restore", "import: projections"]);
    let replay = with_plain_progress(Some(&restored), &["audit", "replay"]);
    assert_phases_reach_100(&replay, &["replay: fold"]);
    // Without the setting and off a terminal, no progress is shown at all.
    let quiet = ledger.run(&["audit", "verify"]);
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet));
}

#[test]
fn import_refuses_a_non_empty_or_non_directory_target_before_reading_the_archive() {
    // A FIFO nobody writes to: opening it to read would block, so a refusal that comes back
    // at all came before the archive was opened.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("archive.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("kept"), b"someone's file").unwrap();
    let plain_file = dir.path().join("a-file");
    std::fs::write(&plain_file, b"not a directory").unwrap();
    for (target, said) in [(&full, "is not empty"), (&plain_file, "is not a directory")] {
        let mut child = std::process::Command::new(support::gongji_path())
            .arg("--data")
            .arg(target)
            .args(["audit", "import", fifo.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("import into {} read the archive first", target.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(said), "{stderr}");
        assert!(stderr.contains(target.to_str().unwrap()), "{stderr}");
    }
    assert_eq!(std::fs::read(full.join("kept")).unwrap(), b"someone's file");
    assert_eq!(std::fs::read(&plain_file).unwrap(), b"not a directory");
}
