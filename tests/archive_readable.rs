//! The readable archive, through the real binary: every record line carries its event decoded
//! beside the bytes its hash covers, so jq and pandas read the events; the checker renders the
//! readable event again from the bytes and refuses an archive whose readable part was edited;
//! an archive without it (format 1, or stripped) still checks and imports.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use gongji_domain::Event;
use serde_json::{json, Value};
use support::{text, TestLedger};

/// The sample ledger and its complete archive, line by line.
struct Archive {
    ledger: TestLedger,
    lines: Vec<Value>,
}

fn exported() -> Archive {
    archive_of(TestLedger::sample())
}

/// `ledger`'s complete archive, line by line.
fn archive_of(ledger: TestLedger) -> Archive {
    let path = ledger.dir.path().join("all.jsonl");
    let out = ledger.run(&["audit", "export", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every archive line is JSON"))
        .collect();
    Archive { ledger, lines }
}

impl Archive {
    fn write(&self, name: &str, lines: &[Value]) -> PathBuf {
        let mut text = String::new();
        for line in lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let path = self.ledger.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The archive line (from 1) of the first record line whose readable event is of `kind`.
    fn line_of(&self, kind: &str) -> usize {
        1 + self
            .lines
            .iter()
            .position(|line| line["event"]["kind"] == kind)
            .unwrap_or_else(|| panic!("the sample holds a {kind} event"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn run(args: &[&str]) -> Output {
    std::process::Command::new(support::gongji_path())
        .args(args)
        .output()
        .unwrap()
}

/// `audit check --json` of `path`: its exit code and report.
fn check(path: &Path) -> (i32, Value) {
    let out = run(&["audit", "check", path.to_str().unwrap(), "--json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), report)
}

/// Imports `path` into a fresh directory; the restored ledger's replay digest.
fn imported_digest(path: &Path) -> String {
    let target = TestLedger::empty();
    let out = target.run(&["audit", "import", path.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", text(&out));
    let replay = target.query(&["audit", "replay"]);
    replay["digest"].as_str().unwrap().to_string()
}

#[test]
fn every_record_line_carries_its_event_decoded_beside_the_bytes_its_hash_covers() {
    let archive = exported();
    assert_eq!(archive.lines[0]["format"], 2, "{}", archive.lines[0]);
    let records: Vec<&Value> = archive
        .lines
        .iter()
        .filter(|l| l["record"].is_object())
        .collect();
    assert!(records.len() > 20);
    for line in &records {
        let record = &line["record"];
        let readable = &line["event"];
        let event = Event::decode(&unhex(record["payload"].as_str().unwrap())).unwrap();
        assert_eq!(readable["kind"], event.kind(), "{line}");
        assert_eq!(readable["position"], record["position"], "{line}");
        assert_eq!(readable["own_date"], event.date().to_string(), "{line}");
        // The recorded time in UTC, RFC 3339 with Z, the same instant as the hashed field.
        let at = readable["recorded_at"].as_str().unwrap();
        assert!(at.ends_with('Z'), "{line}");
        let micros = chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .timestamp_micros();
        assert_eq!(Value::from(micros), record["recorded_at_micros"], "{line}");
    }

    // jq -c 'select(.event.kind=="claim_settled")': the sample's claims, figures as decimals.
    let settled: Vec<&Value> = records
        .iter()
        .copied()
        .filter(|line| line["event"]["kind"] == "claim_settled")
        .collect();
    let claims: Vec<&str> = settled
        .iter()
        .map(|l| l["event"]["settlement"]["claim"].as_str().unwrap())
        .collect();
    assert!(
        claims.contains(&"C001") && claims.contains(&"C002"),
        "{claims:?}"
    );
    let first = &settled[0]["event"]["settlement"];
    assert_eq!(first["member"], "M001", "{first}");
    assert_eq!(first["account_paid"], "150.00", "{first}");
    assert_eq!(first["basis"]["balance_before"], "1520.00", "{first}");
}

#[test]
fn the_readable_event_is_the_entry_history_prints_with_its_kind_under_kind() {
    let archive = exported();
    let history = archive.ledger.run(&["history", "M001", "--json"]);
    assert!(history.status.success(), "{}", text(&history));
    let entries = support::parse_lines(&history.stdout);
    assert!(entries.len() > 3);
    for entry in entries {
        let line = archive
            .lines
            .iter()
            .find(|l| l["event"]["position"] == entry["position"])
            .expect("every history entry is in the complete archive");
        let mut readable = line["event"].as_object().unwrap().clone();
        let mut printed = entry.as_object().unwrap().clone();
        assert_eq!(readable.remove("kind"), printed.remove("event"), "{entry}");
        assert_eq!(readable, printed, "{entry}");
    }
    // The readable event's shape is part of archive format 2: the checker of an archive
    // written today renders it again to compare, so a change to it is a new archive format.
    let enrolled = &archive.lines[archive.line_of("enrolled") - 1]["event"];
    let mut keys: Vec<&str> = enrolled
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    let mut expected = vec![
        "born",
        "date",
        "event_id",
        "kind",
        "lump_sum_base",
        "lump_sum_until",
        "member",
        "opening_balance",
        "own_date",
        "position",
        "recorded_at",
        "recorded_at_micros",
        "region",
        "scheme",
        "status",
        "version",
    ];
    expected.sort();
    assert_eq!(keys, expected, "{enrolled}");
}

/// A change made to a line's readable event.
type Edit = fn(&mut Value);

#[test]
fn a_readable_event_edited_to_mislead_is_refused_by_check_and_import_naming_line_and_position() {
    let archive = exported();
    let line = archive.line_of("claim_settled");
    let position = archive.lines[line - 1]["record"]["position"].clone();
    let edits: [(&str, Edit); 3] = [
        (
            "`event.settlement.account_paid`: the line says \"15.00\", the payload \"150.00\"",
            |e| e["settlement"]["account_paid"] = Value::from("15.00"),
        ),
        (
            "`event.kind`: the line says \"claim_reversed\", the payload \"claim_settled\"",
            |e| e["kind"] = Value::from("claim_reversed"),
        ),
        (
            "`event`: the line says \"claim_settled\", the payload {",
            |e| *e = Value::from("claim_settled"),
        ),
    ];
    for (said, edit) in edits {
        let mut lines = archive.lines.clone();
        edit(&mut lines[line - 1]["event"]);
        let path = archive.write("edited.jsonl", &lines);
        let (code, report) = check(&path);
        assert_eq!(code, 1, "{report}");
        let failure = &report["failure"];
        assert_eq!(failure["line"], line as u64, "{report}");
        assert_eq!(failure["position"], position, "{report}");
        let message = failure["message"].as_str().unwrap();
        assert!(message.contains("readable event"), "{message}");
        assert!(message.contains(said), "{message}");

        let target = TestLedger::empty();
        let out = target.run(&["audit", "import", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let said = [
            format!("line {line}"),
            format!("record at position {position}"),
            said.to_string(),
        ];
        for piece in said {
            assert!(text(&out).contains(&piece), "{piece}: {}", text(&out));
        }
        assert!(!target.data().exists(), "a refused import left its target");
    }
}

#[test]
fn an_archive_without_readable_events_still_checks_and_imports_to_the_same_digest() {
    let archive = exported();
    let path = archive.ledger.dir.path().join("all.jsonl");
    let (code, report) = check(&path);
    assert_eq!(code, 0, "{report}");
    let digest = report["digest"].clone();
    assert_eq!(imported_digest(&path), digest);

    // The readable events stripped (the chain does not cover them): still the same archive.
    let mut stripped = archive.lines.clone();
    let removed = stripped
        .iter_mut()
        .filter_map(|line| line.as_object_mut()?.remove("event"))
        .count();
    assert_eq!(
        removed as u64, report["manifest"]["records"],
        "one per record"
    );
    let path = archive.write("stripped.jsonl", &stripped);
    let (code, report) = check(&path);
    assert_eq!((code, &report["digest"]), (0, &digest), "{report}");
    assert_eq!(imported_digest(&path), digest);

    // As the previous version wrote it: format 1, no readable events, chain resealed over the
    // header it covers.
    stripped[0]["format"] = Value::from(1);
    let text: String = stripped.iter().map(|l| format!("{l}\n")).collect();
    let path = archive.ledger.dir.path().join("format1.jsonl");
    std::fs::write(&path, gongji_ledger::archive::reseal(text.as_bytes())).unwrap();
    let (code, report) = check(&path);
    assert_eq!((code, &report["digest"]), (0, &digest), "{report}");
    assert_eq!(imported_digest(&path), digest);
}

#[test]
fn a_format_this_build_does_not_read_is_refused_by_its_number() {
    let archive = exported();
    let mut lines = archive.lines.clone();
    lines[0]["format"] = Value::from(3);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let path = archive.ledger.dir.path().join("format3.jsonl");
    std::fs::write(&path, gongji_ledger::archive::reseal(text.as_bytes())).unwrap();
    let (code, report) = check(&path);
    assert_eq!(code, 1, "{report}");
    let message = report["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("archive format 3") && message.contains("formats 1 to 2"),
        "{message}"
    );
}

#[test]
fn an_unknown_field_beside_the_readable_event_is_still_refused() {
    let archive = exported();
    let line = archive.line_of("account_paid");
    let mut lines = archive.lines.clone();
    lines[line - 1]["decoded"] = lines[line - 1]["event"].clone();
    let (code, report) = check(&archive.write("unknown.jsonl", &lines));
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["failure"]["line"], line as u64, "{report}");
    let message = report["failure"]["message"].as_str().unwrap();
    assert!(message.contains("unknown field `decoded`"), "{message}");
}

/// Member A with two account payments: P1 at a pharmacy it names, P2 naming none.
fn payments() -> TestLedger {
    let ledger = TestLedger::new();
    ledger.apply_ok(
        &[
            json!({"cmd": "enroll", "member": "A", "region": "500000", "born": "1980-01-01",
               "status": "active", "scheme": "employer", "date": "2024-01-01",
               "opening_balance": "500.00"}),
            json!({"cmd": "account_pay", "id": "P1", "holder": "A", "date": "2024-02-01",
               "purpose": "pharmacy", "amount": "20.00", "institution": "PH500101"}),
            json!({"cmd": "account_pay", "id": "P2", "holder": "A", "date": "2024-02-02",
               "purpose": "pharmacy", "amount": "30.00"}),
        ]
        .map(|line| line.to_string()),
    );
    ledger
}

/// The readable events of `archive`'s account payments, by id.
fn payments_in(archive: &Archive) -> Vec<(String, Value)> {
    let paid = archive.lines.iter().map(|line| &line["event"]);
    paid.filter(|event| event["kind"] == "account_paid")
        .map(|event| (event["id"].as_str().unwrap().to_string(), event.clone()))
        .collect()
}

#[test]
fn a_payments_institution_shows_in_history_and_its_archive_checks_and_imports() {
    let ledger = payments();
    let history = ledger.run(&["history", "A", "--json"]);
    assert!(history.status.success(), "{}", text(&history));
    let paid: Vec<Value> = support::parse_lines(&history.stdout)
        .into_iter()
        .filter(|entry| entry["event"] == "account_paid")
        .collect();
    assert_eq!(paid[0]["institution"], "PH500101", "{paid:?}");
    assert_eq!(paid[1]["institution"], Value::Null, "{paid:?}");

    let archive = archive_of(ledger);
    let readable = payments_in(&archive);
    assert_eq!(readable[0].1["institution"], "PH500101", "{readable:?}");
    assert_eq!(readable[1].1["institution"], Value::Null, "{readable:?}");
    let path = archive.ledger.dir.path().join("all.jsonl");
    let (code, report) = check(&path);
    assert_eq!(code, 0, "{report}");
    assert_eq!(imported_digest(&path), report["digest"].as_str().unwrap());
}

/// `archive` with P2 as the release before schema 3 recorded and exported it: its payload
/// without the institution (the last field, one byte saying none) under version byte 2, its
/// readable event without the key, resealed. The file, and P2's readable event.
fn with_p2_of_schema_2(archive: &Archive) -> (PathBuf, Value) {
    let mut lines = archive.lines.clone();
    let line = lines
        .iter_mut()
        .find(|line| line["event"]["id"] == "P2")
        .expect("P2 is in the archive");
    let mut payload = unhex(line["record"]["payload"].as_str().unwrap());
    let (version, last) = (payload[0], payload.pop());
    assert_eq!((version, last), (3, Some(0)), "P2 of schema 3, naming none");
    payload[0] = 2;
    line["record"]["payload"] = Value::from(hex(&payload));
    let mut old = line["event"].as_object().unwrap().clone();
    old.shift_remove("institution");
    line["event"] = Value::Object(old);
    let old = line["event"].clone();
    let written: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let resealed = gongji_ledger::archive::reseal(written.as_bytes());
    let rendered = support::parse_lines(&resealed);
    let rendered = rendered.iter().find(|line| line["event"]["id"] == "P2");
    assert_eq!(
        rendered.map(|line| &line["event"]),
        Some(&old),
        "rendered as it was"
    );
    let path = archive.ledger.dir.path().join("schema2.jsonl");
    std::fs::write(&path, resealed).unwrap();
    (path, old)
}

#[test]
fn old_payments_render_without_the_institution_so_old_archives_and_upgraded_ledgers_check() {
    let archive = archive_of(payments());
    let (path, old) = with_p2_of_schema_2(&archive);
    let (code, report) = check(&path);
    assert_eq!(code, 0, "{report}");

    // The ledger restored from it holds the schema-2 record: shown with no institution, and
    // exported as that release exported it, beside the schema-3 record with its institution.
    let restored = TestLedger::empty();
    let out = restored.run(&["audit", "import", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let history = restored.run(&["history", "A", "--json"]);
    let entries = support::parse_lines(&history.stdout);
    let p2 = entries
        .iter()
        .find(|e| e["id"] == "P2")
        .expect("P2 in history");
    assert_eq!(p2["institution"], Value::Null, "{p2}");
    let again = archive_of(restored);
    let readable = payments_in(&again);
    assert_eq!(readable[0].1["institution"], "PH500101", "{readable:?}");
    assert_eq!(readable[1], ("P2".to_string(), old), "{readable:?}");
    let path = again.ledger.dir.path().join("all.jsonl");
    let (code, report) = check(&path);
    assert_eq!(code, 0, "{report}");
    assert_eq!(imported_digest(&path), report["digest"].as_str().unwrap());
}
