//! One shape for every answer (`docs/answers.md`): every command's `--json` answer checked
//! against its schema in `docs/schemas/answers.schema.json`, keys in the schema's order; the
//! error object on standard output beside the text on standard error, exit statuses unchanged.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::schema::Schemas;
use support::{
    examples, march_detail_args, text, TestLedger, CHONGQING_POLICY, DETAIL_HEADER, TOTALS_HEADER,
};

/// The answers' schemas, read once.
fn schemas() -> &'static Schemas {
    static SCHEMAS: std::sync::OnceLock<Schemas> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        Schemas::load(&manifest.join("../../docs/schemas/answers.schema.json"))
    })
}

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
    assert_error(
        &ledger.run(&["account", "NOPE", "--json"]),
        1,
        "unknown_member",
    );
    let before = ["year", "M001", "2024", "--as-of", "2023-12-31", "--json"];
    assert_error(&ledger.run(&before), 1, "unknown_member");
    assert_error(
        &ledger.run(&["history", "NOPE", "--json"]),
        1,
        "unknown_member",
    );
    assert_error(
        &ledger.run(&["year", "M001", "24", "--json"]),
        1,
        "not_found",
    );
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
fn the_code_says_what_was_wrong() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    let missing = dir.join("missing.jsonl");
    let missing = missing.to_str().unwrap();
    assert_error(&ledger.run(&["apply", missing, "--json"]), 2, "io");
    assert_error(&ledger.run(&["audit", "check", missing, "--json"]), 2, "io");
    let detail = |file: &str| {
        let mut args = vec!["reconcile", "detail", file, "--institution", "H500101"];
        args.extend(["--from", "2024-03-01", "--to", "2024-03-31", "--json"]);
        ledger.run(&args)
    };
    assert_error(&detail(missing), 2, "io");
    let headless = write(dir, "headless.csv", "a,b\n1,2\n");
    assert_error(&detail(headless.to_str().unwrap()), 2, "bad_input");
    let not_json = write(dir, "policy.json", "not json");
    assert_error(
        &ledger.run(&["policy", "load", not_json.to_str().unwrap(), "--json"]),
        2,
        "bad_input",
    );
    let archive = dir.join("all.jsonl");
    let export = |extra: &[&str]| {
        let mut args = vec!["audit", "export", archive.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        ledger.run(&args)
    };
    assert!(export(&[]).status.success());
    assert_error(&export(&[]), 2, "exists");
    assert_error(&export(&["--region", "999999", "--force"]), 1, "not_found");
    assert_error(
        &ledger.run(&["year", "M001", "2024", "--region", "510100", "--json"]),
        1,
        "not_found",
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
    // clap's text spreads its message over lines; the object has it on one.
    let out = ledger.run(&["account", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = document(&out);
    assert_eq!(error["error"]["code"], "bad_argument", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("<MEMBER>"), "{message}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("<MEMBER>"));
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
    if support::directory_only(
        "it damages a segment file of the data directory; the quarantine marker is kept there",
    ) {
        return;
    }
    let ledger = TestLedger::sample();
    support::damage_record(&ledger, 5);
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

/// Runs `args` with `--json`; checks the exit status and that standard output is one document
/// fitting schema `name`; returns the document.
fn answer(ledger: &TestLedger, name: &str, args: &[&str], status: i32) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ledger.run(&all);
    assert_eq!(out.status.code(), Some(status), "{all:?}: {}", text(&out));
    let value = document(&out);
    schemas().assert_fits(name, &value);
    value
}

/// As [`answer`], for an answer in JSON Lines: every line fits `name`.
fn lines(ledger: &TestLedger, name: &str, args: &[&str], status: i32) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ledger.run(&all);
    assert_eq!(out.status.code(), Some(status), "{all:?}: {}", text(&out));
    let values = support::parse_lines(&out.stdout);
    for value in &values {
        schemas().assert_fits(name, value);
    }
    values
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn the_writing_commands_answer_in_their_schemas() {
    let ledger = TestLedger::empty();
    let loaded = lines(
        &ledger,
        "apply_line",
        &["policy", "load", CHONGQING_POLICY],
        0,
    );
    assert_eq!(loaded.len(), 1);
    let sample = examples("sample.jsonl");
    let applied = lines(
        &ledger,
        "apply_line",
        &["apply", sample.to_str().unwrap()],
        1,
    );
    assert_eq!(applied.len(), 24);
    // The names aligned: the inherited amount, a claim's id.
    let result = |line: u64| &applied.iter().find(|a| a["line"] == line).unwrap()["result"];
    assert_eq!(result(22)["inherited_balance"], "860.00");
    assert!(result(22).get("balance").is_none(), "{}", result(22));
    assert_eq!(result(10)["id"], "C001");
    assert!(result(10).get("claim").is_none(), "{}", result(10));
    let refused = applied.iter().find(|a| a["ok"] == false).unwrap();
    let keys: Vec<&String> = refused.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["line", "ok", "error"], "{refused}");
    let again = lines(
        &ledger,
        "apply_line",
        &["policy", "load", CHONGQING_POLICY],
        1,
    );
    assert_eq!(again[0]["error"]["code"], "duplicate_policy");
}

#[test]
fn every_query_answers_in_its_schema_with_keys_in_its_order() {
    let ledger = TestLedger::sample();
    let account = answer(&ledger, "account", &["account", "M001"], 0);
    let keys: Vec<&String> = account.as_object().unwrap().keys().take(3).collect();
    assert_eq!(keys, ["member", "state", "region"], "{account}");
    answer(
        &ledger,
        "account",
        &["account", "M001", "--as-of", "2024-03-31"],
        0,
    );
    let stated = answer(
        &ledger,
        "account",
        &["account", "M001", "--recorded-before", "2030-01-01"],
        0,
    );
    assert!(stated["time_zone"].is_string(), "{stated}");
    answer(&ledger, "year", &["year", "M001", "2024"], 0);
    let inheritance = answer(&ledger, "inheritance", &["inheritance", "M004"], 0);
    assert_eq!(inheritance["inherited_balance"], "860.00");
    answer(&ledger, "inheritance", &["inheritance", "M001"], 0);
    answer(&ledger, "transfers", &["transfers", "M005"], 0);
    // The changes sum to the account's balance as the projections keep it, and the balance by
    // day ends there too.
    for member in ["M001", "M002", "M004", "M005"] {
        let timeline = answer(&ledger, "timeline", &["timeline", member], 0);
        let account = answer(&ledger, "account", &["account", member], 0);
        let fen = |v: &Value| -> i64 { v.as_str().unwrap().replace('.', "").parse().unwrap() };
        let changes: i64 = timeline["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| fen(&e["change"]))
            .sum();
        assert_eq!(changes, fen(&account["balance"]), "{timeline}");
        let by_day = timeline["balance_by_day"].as_array().unwrap();
        assert_eq!(
            by_day.last().unwrap()["balance"],
            account["balance"],
            "{timeline}"
        );
    }
    answer(
        &ledger,
        "timeline",
        &["timeline", "M001", "--recorded-before", "2030-01-01"],
        0,
    );
    let fund = answer(&ledger, "fund", &["fund", "500000"], 0);
    assert!(fund["accounts"].is_object());
    let past = answer(
        &ledger,
        "fund",
        &["fund", "500000", "--as-of", "2024-04-30"],
        0,
    );
    assert!(past["accounts"].is_null(), "{past}");
    let history = lines(&ledger, "history_entry", &["history", "M001"], 0);
    assert!(history.len() >= 5);
    let inherited = lines(&ledger, "history_entry", &["history", "M004"], 0);
    assert!(inherited.iter().any(|e| e["inherited_balance"] == "860.00"));
    let none = lines(
        &ledger,
        "history_entry",
        &["history", "M001", "--from", "2030-01-01"],
        0,
    );
    assert!(none.is_empty());
    let explained = answer(&ledger, "explain", &["explain", "C002"], 0);
    assert_eq!(explained["id"], "C002");
    assert!(explained["reversed"].is_object());
    answer(&ledger, "explain", &["explain", "C001"], 0);
    lines(&ledger, "policy_list_item", &["policy", "list"], 0);
    answer(
        &ledger,
        "settlement_statement",
        &["settlement", "H500101", "2024-03"],
        0,
    );
    answer(
        &ledger,
        "settlement_statement",
        &["settlement", "NOPE", "2024-03"],
        1,
    );
}

#[test]
fn reconciliations_answer_in_their_schemas_with_one_set_of_count_names() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    let file = write(dir, "march.csv", &format!("{DETAIL_HEADER}\nC001,,M001,150.00,0.00,140.00,10.00,0\nC777,V7,M001,1.00,0.00,1.00,0.00,0\nC777,V7,M001,1.00,0.00,1.00,0.00,0\nnot,a,row\n"));
    let mut args = march_detail_args(&file, &[]);
    let detail = answer(&ledger, "reconcile_detail", &args, 1);
    let counts = &detail["counts"];
    assert_eq!(counts["matched_rows"], 0, "{detail}");
    assert_eq!(counts["differing_rows"], 1, "{detail}");
    let missing = detail["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "in_ledger_not_in_file")
        .unwrap();
    assert_eq!(missing["setl_id"], "C002");
    let matching = write(dir, "match.csv", &format!("{DETAIL_HEADER}\nC001,V1,M001,150.00,0.00,150.00,0.00,0\nC002,V2,M001,685.50,300.00,385.50,0.00,0\n"));
    args = march_detail_args(&matching, &[]);
    answer(&ledger, "reconcile_detail", &args, 0);
    let totals_file = write(dir, "totals.csv", &format!("{TOTALS_HEADER}\nH500101,2024-03-01,2024-03-31,835.50,300.00,535.50,0.00,2\nH500101,2024-03-01,2024-03-31,1.00,0.00,1.00,0.00,2\nnot,a,row\n"));
    let totals = answer(
        &ledger,
        "reconcile_totals",
        &["reconcile", "totals", totals_file.to_str().unwrap()],
        1,
    );
    let counts = &totals["counts"];
    assert_eq!(
        [
            &counts["file_rows"],
            &counts["matched_rows"],
            &counts["differing_rows"],
            &counts["malformed_rows"]
        ],
        [3, 1, 1, 1],
        "{totals}"
    );
    let malformed = &totals["results"][2];
    assert!(malformed["institution"].is_null(), "{malformed}");
}

#[test]
fn the_audit_commands_answer_in_their_schemas() {
    let ledger = TestLedger::sample();
    let replay = answer(&ledger, "audit_replay", &["audit", "replay"], 0);
    answer(&ledger, "audit_verify", &["audit", "verify"], 0);
    let archive = ledger.dir.path().join("all.jsonl");
    let exported = answer(
        &ledger,
        "audit_export",
        &["audit", "export", archive.to_str().unwrap()],
        0,
    );
    assert_eq!(exported["manifest"]["complete"], true);
    let part = ledger.dir.path().join("march.jsonl");
    answer(
        &ledger,
        "audit_export",
        &[
            "audit",
            "export",
            part.to_str().unwrap(),
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-31",
        ],
        0,
    );
    let checked = answer(
        &ledger,
        "audit_check",
        &["audit", "check", archive.to_str().unwrap()],
        0,
    );
    assert_eq!(checked["digest"], replay["digest"]);
    let partial = answer(
        &ledger,
        "audit_check",
        &["audit", "check", part.to_str().unwrap()],
        0,
    );
    assert!(
        partial["digest"].is_null() && partial["regions"].is_null(),
        "{partial}"
    );
    let restored = TestLedger::empty();
    let imported = answer(
        &restored,
        "audit_import",
        &["audit", "import", archive.to_str().unwrap()],
        0,
    );
    assert_eq!(imported["digest"], replay["digest"]);
    assert_eq!(imported["manifest"], exported["manifest"]);
    let rebuilt = answer(&ledger, "rebuild", &["rebuild"], 0);
    assert_eq!(rebuilt["records"], replay["records"]);
    // A log in PostgreSQL keeps no quarantine marker: there the command is refused, in the
    // error object's schema.
    let clear = ["audit", "clear-quarantine"];
    match ledger.pg {
        Some(_) => assert_eq!(
            answer(&ledger, "error", &clear, 2)["error"]["code"],
            "bad_argument"
        ),
        None => assert_eq!(
            answer(&ledger, "clear_quarantine", &clear, 0)["lifted"],
            false
        ),
    }
    // Failures fit the error object's schema.
    let elsewhere = ledger.dir.path().join("elsewhere.jsonl");
    answer(
        &ledger,
        "error",
        &["audit", "export", archive.to_str().unwrap()],
        2,
    );
    answer(
        &ledger,
        "error",
        &[
            "audit",
            "export",
            elsewhere.to_str().unwrap(),
            "--region",
            "999999",
        ],
        1,
    );
    let refused = TestLedger::empty();
    answer(
        &refused,
        "error",
        &["audit", "import", part.to_str().unwrap()],
        1,
    );
    answer(&ledger, "error", &["account", "NOPE"], 1);
}

#[test]
fn every_answer_schema_is_used_and_the_checker_refuses_what_does_not_fit() {
    let schemas = schemas();
    let names = schemas.names();
    for answer in [
        "account",
        "year",
        "inheritance",
        "transfers",
        "timeline",
        "fund",
        "history_entry",
        "explain",
        "policy_list_item",
        "apply_line",
        "settlement_statement",
        "reconcile_detail",
        "reconcile_totals",
        "audit_replay",
        "audit_verify",
        "audit_check",
        "audit_export",
        "audit_import",
        "rebuild",
        "clear_quarantine",
        "monitor_run",
        "monitor_explain",
        "monitor_rules_list",
        "error",
    ] {
        assert!(names.iter().any(|n| n == answer), "no schema for {answer}");
    }
    let fits = serde_json::json!({"records": 3, "elapsed_ms": 1});
    schemas.assert_fits("rebuild", &fits);
    for wrong in [
        serde_json::json!({"elapsed_ms": 1, "records": 3}),
        serde_json::json!({"records": 3}),
        serde_json::json!({"records": 3, "elapsed_ms": 1, "more": 1}),
        serde_json::json!({"records": "3", "elapsed_ms": 1}),
    ] {
        assert!(schemas.check("rebuild", &wrong).is_err(), "{wrong}");
    }
    let money =
        |amount: &str| serde_json::json!({"inflow": amount, "outflow": "0.00", "balance": "0.00"});
    assert!(schemas.check("fund_figures", &money("12.30")).is_ok());
    for amount in ["12,30", "1e3", "", "-", "12.3x"] {
        assert!(
            schemas.check("fund_figures", &money(amount)).is_err(),
            "{amount}"
        );
    }
    let error = serde_json::json!({"error": {"code": "oops", "message": "m"}});
    assert!(schemas.check("error", &error).is_err());
}

#[test]
fn the_monitor_commands_answer_in_their_schemas() {
    let ledger = TestLedger::new();
    let mut commands = vec![
        serde_json::json!({"cmd": "enroll", "member": "A", "region": "500000",
        "born": "1975-02-01", "status": "active", "scheme": "employer", "date": "2024-01-01",
        "opening_balance": "3000.00"})
        .to_string(),
    ];
    for id in ["a1", "a2", "a3"] {
        commands.push(
            serde_json::json!({"cmd": "claim", "id": id, "member": "A", "date": "2024-04-02",
                "level": 1, "channel": "institution", "eligible": "60.00", "institution": "H1",
                "visit": id})
            .to_string(),
        );
    }
    ledger.apply_ok(&commands);
    let run = answer(&ledger, "monitor_run", &["monitor", "run"], 0);
    let flag = run["flags"][0]["id"].as_str().unwrap().to_string();
    let decided = lines(
        &ledger,
        "apply_line",
        &[
            "monitor",
            "decide",
            &flag,
            "--decision",
            "confirmed",
            "--reason",
            "r",
            "--by",
            "a",
        ],
        0,
    );
    assert_eq!(decided[0]["result"]["decision"], "confirmed");
    let explained = answer(
        &ledger,
        "monitor_explain",
        &["monitor", "explain", &flag],
        0,
    );
    assert_eq!(explained["flag"]["decision"]["decision"], "confirmed");
    assert_eq!(explained["evidence"].as_array().unwrap().len(), 3);

    answer(
        &ledger,
        "monitor_rules_list",
        &["monitor", "rules", "list"],
        0,
    );
    let file = support::misuse::rules_version(&ledger, "500000-m-2", 3);
    let load = support::misuse::load_rules(&file, "a");
    let loaded = lines(&ledger, "apply_line", &load, 0);
    assert_eq!(loaded[0]["result"]["version"], "500000-m-2");
    let again = lines(&ledger, "apply_line", &load, 0);
    assert_eq!(again[0]["result"]["already_loaded"], true);
    let listed = answer(
        &ledger,
        "monitor_rules_list",
        &["monitor", "rules", "list"],
        0,
    );
    assert_eq!(listed["versions"][0]["version"], "500000-m-2");
}
