//! One shape for every answer (`docs/answers.md`): every command's `--json` answer checked
//! against its schema in `docs/schemas/answers.schema.json`, keys in the schema's order; the
//! error object on standard output beside the text on standard error, exit statuses unchanged.

mod support;

use std::process::Output;

use serde_json::Value;
use support::{text, TestLedger};

/// The one JSON document on standard output.
fn document(out: &Output) -> Value {
    let printed = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "one document on one line: {}", text(out));
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// A failure under `--json`: exit `status`, the error object with `code` on standard output and
/// its message, as text, on standard error.
fn assert_error(out: &Output, status: i32, code: &str) -> Value {
    assert_eq!(out.status.code(), Some(status), "{}", text(out));
    let error = document(out);
    assert_eq!(error["error"]["code"], code, "{}", text(out));
    let message = error["error"]["message"].as_str().expect("a message");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(message),
        "the text says it too: {}",
        text(out)
    );
    assert_eq!(
        error.as_object().map(|o| o.len()),
        Some(1),
        "only `error`: {error}"
    );
    error
}

#[test]
fn a_failure_with_json_prints_the_error_object_and_the_text() {
    let ledger = TestLedger::sample();
    assert_error(&ledger.run(&["account", "NOPE", "--json"]), 1, "not_found");
    assert_error(&ledger.run(&["explain", "NOPE", "--json"]), 1, "not_found");
    assert_error(
        &ledger.run(&["account", "M001", "--as-of", "2024-13-01", "--json"]),
        2,
        "bad_argument",
    );
    let elsewhere = TestLedger::empty();
    assert_error(
        &elsewhere.run(&["account", "M001", "--json"]),
        2,
        "no_ledger",
    );
    assert_error(
        &elsewhere.run(&["audit", "verify", "--json"]),
        2,
        "no_ledger",
    );
}

#[test]
fn a_command_line_clap_refuses_with_json_prints_the_error_object_too() {
    let ledger = TestLedger::sample();
    let out = ledger.run(&["account", "M001", "--json", "--colour"]);
    let error = assert_error(&out, 2, "bad_argument");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--colour")),
        "{error}"
    );
    // Without --json, clap's text alone, as before.
    let out = ledger.run(&["account", "M001", "--colour"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    // Help is an answer, not a failure.
    let out = ledger.run(&["account", "--help", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"error\""));
}

#[test]
fn verify_on_a_quarantined_ledger_answers_with_the_error_object() {
    let ledger = TestLedger::sample();
    let path = support::first_segment(&ledger);
    let mut damaged = std::fs::read(&path).unwrap();
    let frames = support::frames(&damaged);
    damaged[frames[5].1 - 1] ^= 0x20;
    std::fs::write(&path, &damaged).unwrap();
    // The first verification finds the damage (its report is the answer, exit 1) and
    // quarantines the ledger; from then on the ledger does not open.
    let out = ledger.run(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(document(&out)["failure"]["position"], 5);
    let out = ledger.run(&["audit", "verify", "--json"]);
    let error = assert_error(&out, 2, "quarantined");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("audit clear-quarantine"), "{message}");
    assert_error(
        &ledger.run(&["account", "M001", "--json"]),
        2,
        "quarantined",
    );
    // Lifting it is refused while the damage is there: the log does not verify.
    let out = ledger.run(&["audit", "clear-quarantine", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        document(&out)["error"]["code"].is_string(),
        "{}",
        text(&out)
    );
}
