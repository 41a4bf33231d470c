//! `gongji monitor run|explain` through the binary: the flags of a small ledger with planted
//! patterns, the same on a second run and on a ledger restored from its archive; each flag's
//! evidence as `history` shows it; rules files and arguments refused with the reason.

mod support;

use serde_json::{json, Value};
use support::misuse::{load_rules, pay, planted, rules_version};
use support::{text, TestLedger};

fn flags_of(report: &Value) -> Vec<Value> {
    report["flags"].as_array().expect("flags").clone()
}

#[test]
fn monitor_run_flags_what_was_planted_the_same_twice_and_after_an_archive_import() {
    let ledger = planted();
    let report = ledger.query(&["monitor", "run"]);
    assert_eq!(report["rules_version"], "500000-monitor-2024-1");
    let flags = flags_of(&report);
    let rules: Vec<&str> = flags.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        ["frequency/institution_claims_per_day", "splitting"],
        "{report}"
    );
    assert_eq!(flags[0]["member"], "A");
    assert_eq!(flags[1]["member"], "B");
    assert_eq!(flags[1]["institution"], "P7");
    assert_eq!(report["by_rule"]["splitting"], 1);
    assert_eq!(report["by_rule"]["timing/late"], 0);

    assert_eq!(ledger.query(&["monitor", "run"]), report, "a second run");

    let archive = ledger.dir.path().join("archive.jsonl");
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = TestLedger::empty();
    let out = restored.run(&["audit", "import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        flags_of(&restored.query(&["monitor", "run"])),
        flags,
        "the restored ledger's flags"
    );
}

#[test]
fn monitor_explain_shows_the_evidence_events_of_a_flag() {
    let ledger = planted();
    let report = ledger.query(&["monitor", "run"]);
    let splitting = &flags_of(&report)[1];
    let id = splitting["id"].as_str().unwrap();
    let explained = ledger.query(&["monitor", "explain", id]);
    assert_eq!(&explained["flag"], splitting);
    let evidence = explained["evidence"].as_array().unwrap();
    let ids: Vec<&str> = evidence.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["b1", "b2", "b3"]);
    let positions: Vec<&Value> = evidence.iter().map(|e| &e["position"]).collect();
    let listed: Vec<&Value> = splitting["evidence"].as_array().unwrap().iter().collect();
    assert_eq!(positions, listed);
    assert!(evidence.iter().all(|e| e["event"] == "account_paid"));
    assert!(evidence.iter().all(|e| e["institution"] == "P7"));

    let out = ledger.run(&["--lang", "en", "monitor", "explain", id]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains(id) && shown.contains("b2"), "{shown}");

    let out = ledger.run(&["monitor", "explain", "F0000000000000000"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn monitor_run_writes_one_csv_row_per_flag_and_text_with_the_count_per_rule() {
    let ledger = planted();
    let csv = ledger.dir.path().join("flags.csv");
    let out = ledger.run(&[
        "--lang",
        "en",
        "monitor",
        "run",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains("2 flags listed"), "{shown}");
    assert!(shown.contains("splitting"), "{shown}");
    let rows = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 3, "{rows}");
    assert!(lines[0].starts_with("id,rule,rules_version,region,member,institution"));
    assert!(lines[2].contains("splitting") && lines[2].contains("total=540.00"));
}

#[test]
fn a_rules_file_with_a_mistyped_threshold_is_refused_naming_the_field() {
    let ledger = planted();
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/monitor/500000-2024-01-01.json"
    ))
    .unwrap();
    let file = ledger.dir.path().join("rules.json");
    std::fs::write(&file, shipped.replace("\"500.00\"", "\"500 yuan\"")).unwrap();
    let out = ledger.run(&["monitor", "run", "--rules-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("splitting.total_above"), "{said}");

    // A narrower splitting rule, loaded from a file, flags nothing here.
    let narrower = shipped.replace("\"count_min\": 3", "\"count_min\": 4");
    std::fs::write(&file, narrower).unwrap();
    let report = ledger.query(&["monitor", "run", "--rules-file", file.to_str().unwrap()]);
    assert_eq!(report["by_rule"]["splitting"], 0, "{report}");

    let out = ledger.run(&["monitor", "run", "--region", "110000"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn monitor_run_looks_only_at_the_period_asked() {
    let ledger = planted();
    let report = ledger.query(&["monitor", "run", "--from", "2024-04-05"]);
    let rules: Vec<Value> = flags_of(&report)
        .iter()
        .map(|f| f["rule"].clone())
        .collect();
    assert_eq!(rules, [json!("splitting")], "{report}");
}

/// `monitor decide` with `args`, which must succeed.
fn decide(ledger: &TestLedger, flag: &str, decision: &str, reason: &str) {
    let out = ledger.run(&[
        "monitor",
        "decide",
        flag,
        "--decision",
        decision,
        "--reason",
        reason,
        "--by",
        "auditor-7",
        "--date",
        "2024-06-03",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_dismissed_flag_is_not_listed_again_survives_a_rebuild_and_an_import_and_new_evidence_raises_a_new_one(
) {
    let ledger = planted();
    let flags = flags_of(&ledger.query(&["monitor", "run"]));
    let (frequency, splitting) = (&flags[0], &flags[1]);
    decide(
        &ledger,
        splitting["id"].as_str().unwrap(),
        "dismissed",
        "pharmacy's loyalty scheme",
    );
    decide(
        &ledger,
        frequency["id"].as_str().unwrap(),
        "confirmed",
        "three bills, one visit",
    );

    let listed = |ledger: &TestLedger| {
        let report = ledger.query(&["monitor", "run"]);
        assert_eq!(
            (report["confirmed"].clone(), report["dismissed"].clone()),
            (json!(1), json!(1))
        );
        flags_of(&report)
    };
    let after = listed(&ledger);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], frequency["id"]);
    assert_eq!(after[0]["decision"]["decision"], "confirmed");
    assert_eq!(after[0]["decision"]["by"], "auditor-7");
    let all = flags_of(&ledger.query(&["monitor", "run", "--with-dismissed"]));
    assert_eq!(all[1]["decision"]["decision"], "dismissed");
    assert_eq!(all[1]["decision"]["reason"], "pharmacy's loyalty scheme");

    // The decisions are in the log: a rebuild of the projections and a restored archive keep them.
    let out = ledger.run(&["rebuild"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(listed(&ledger), after);
    let archive = ledger.dir.path().join("archive.jsonl");
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = TestLedger::empty();
    let out = restored.run(&["audit", "import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(listed(&restored), after);

    // A fourth small payment joins B's cluster: new evidence, a new flag, listed.
    ledger.apply_ok(&[pay("b4", "B", "2024-04-12", "50.00")]);
    let again = flags_of(&ledger.query(&["monitor", "run"]));
    let splitting_again: Vec<&Value> = again.iter().filter(|f| f["rule"] == "splitting").collect();
    assert_eq!(splitting_again.len(), 1, "{again:?}");
    assert_ne!(splitting_again[0]["id"], splitting["id"]);
    assert_eq!(splitting_again[0]["decision"], Value::Null);
}

#[test]
fn a_decision_on_a_flag_the_rules_do_not_raise_is_refused_and_nothing_is_written() {
    let ledger = planted();
    let before = ledger.query(&["audit", "replay"]);
    let out = ledger.run(&[
        "monitor",
        "decide",
        "F0123456789abcdef",
        "--decision",
        "dismissed",
        "--reason",
        "x",
        "--by",
        "a",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let flag = flags_of(&ledger.query(&["monitor", "run"]))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = ledger.run(&[
        "monitor",
        "decide",
        &flag,
        "--decision",
        "maybe",
        "--reason",
        "x",
        "--by",
        "a",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = ledger.run(&[
        "monitor",
        "decide",
        &flag,
        "--decision",
        "dismissed",
        "--reason",
        " ",
        "--by",
        "a",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        ledger.query(&["audit", "replay"])["records"],
        before["records"]
    );
}

#[test]
fn a_decision_is_no_command_line_input() {
    let ledger = planted();
    let line = json!({"cmd": "decide_flag", "flag": "F0123456789abcdef", "region": "500000",
        "decision": "dismissed", "reason": "x", "by": "a", "date": "2024-06-01"});
    let (code, results) = ledger.apply(&[line.to_string()]);
    assert_eq!(code, 1);
    assert_eq!(
        results[0]["error"]["code"], "unknown_command",
        "{results:?}"
    );
}

#[test]
fn ids_from_input_are_escaped_for_the_terminal_and_neutralised_in_the_csv() {
    let ledger = TestLedger::new();
    let mut lines = vec![
        json!({"cmd": "enroll", "member": "=CMD()", "region": "500000",
        "born": "1975-02-01", "status": "active", "scheme": "employer", "date": "2024-01-01",
        "opening_balance": "3000.00"})
        .to_string(),
    ];
    for (id, day) in [
        ("s1", "2024-04-10"),
        ("s2", "2024-04-11"),
        ("s3", "2024-04-12"),
    ] {
        lines.push(
            json!({"cmd": "account_pay", "id": id, "holder": "=CMD()", "date": day,
                   "purpose": "pharmacy", "amount": "180.00", "institution": "P\u{202e}7"})
            .to_string(),
        );
    }
    ledger.apply_ok(&lines);
    let csv = ledger.dir.path().join("flags.csv");
    let out = ledger.run(&[
        "--lang",
        "en",
        "monitor",
        "run",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(!shown.contains('\u{202e}'), "{shown}");
    assert!(shown.contains("P\\u{202e}7"), "{shown}");
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert!(rows.contains(",'=CMD(),"), "{rows}");
}

#[test]
fn rules_loaded_into_the_log_are_the_ones_a_run_uses_and_name_every_flag() {
    let ledger = planted();
    let listed = ledger.query(&["monitor", "rules", "list"]);
    assert_eq!(listed["versions"], json!([]), "{listed}");
    assert_eq!(
        listed["shipped_defaults_in_use"]["version"],
        "500000-monitor-2024-1"
    );

    // A version loaded: the run without --rules uses it, and its flags name it.
    let strict = rules_version(&ledger, "500000-strict-1", 4);
    let loaded = ledger.query(&load_rules(&strict, "chief-auditor"));
    assert_eq!(
        loaded["result"],
        json!({"region": "500000", "version": "500000-strict-1"}),
        "{loaded}"
    );
    let report = ledger.query(&["monitor", "run"]);
    assert_eq!(report["rules_version"], "500000-strict-1", "{report}");
    assert_eq!(report["by_rule"]["splitting"], 0, "{report}");
    assert!(flags_of(&report)
        .iter()
        .all(|f| f["rules_version"] == "500000-strict-1"));

    // Loaded again: nothing to do. The same name with other thresholds: refused.
    let again = ledger.query(&load_rules(&strict, "chief-auditor"));
    assert_eq!(again["result"]["already_loaded"], true, "{again}");
    let other = rules_version(&ledger, "500000-strict-1", 5);
    let out = ledger.run(&load_rules(&other, "x"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("loaded already"), "{}", text(&out));
    // The shipped defaults' name is theirs alone.
    let impostor = rules_version(&ledger, "500000-monitor-2024-1", 5);
    let out = ledger.run(&load_rules(&impostor, "x"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // A second version: the latest is used; the first by its name.
    let loose = rules_version(&ledger, "500000-loose-2", 3);
    ledger.query(
        &[
            &load_rules(&loose, "chief-auditor")[..],
            &["--date", "2024-06-01"],
        ]
        .concat(),
    );
    let report = ledger.query(&["monitor", "run"]);
    assert_eq!(report["rules_version"], "500000-loose-2");
    assert_eq!(report["by_rule"]["splitting"], 1, "{report}");
    let first = ledger.query(&["monitor", "run", "--rules", "500000-strict-1"]);
    assert_eq!(first["by_rule"]["splitting"], 0, "{first}");
    // The shipped defaults stand in no more, but run by their name still (flags decided under
    // them stay explainable); an unknown version names what is loaded.
    let shipped = ledger.query(&["monitor", "run", "--rules", "500000-monitor-2024-1"]);
    assert_eq!(shipped["rules_version"], "500000-monitor-2024-1");
    assert_eq!(shipped["by_rule"]["splitting"], 1, "{shipped}");
    let out = ledger.run(&["monitor", "run", "--rules", "nope"]);
    assert!(text(&out).contains("500000-loose-2"), "{}", text(&out));
    let listed = ledger.query(&["monitor", "rules", "list"]);
    let versions: Vec<&str> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["500000-strict-1", "500000-loose-2"], "{listed}");
    assert_eq!(listed["versions"][1]["by"], "chief-auditor");
    assert_eq!(listed["versions"][1]["date"], "2024-06-01");
    assert_eq!(listed["shipped_defaults_in_use"], Value::Null);

    // A draft file's flags can be seen but not decided on.
    let flag = flags_of(&report)[0]["id"].as_str().unwrap().to_string();
    let out = ledger.run(&[
        "monitor",
        "decide",
        &flag,
        "--decision",
        "confirmed",
        "--reason",
        "r",
        "--by",
        "a",
        "--rules-file",
        loose.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not loaded"), "{}", text(&out));

    // The versions travel in the archive: the restored ledger runs the same rules.
    let archive = ledger.dir.path().join("archive.jsonl");
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = TestLedger::empty();
    let out = restored.run(&["audit", "import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored_report = restored.query(&["monitor", "run"]);
    assert_eq!(restored_report["rules_version"], "500000-loose-2");
    assert_eq!(flags_of(&restored_report), flags_of(&report));
}

#[test]
fn rules_for_a_region_without_a_policy_are_refused_and_names_are_the_ledgers() {
    let ledger = planted();
    let file = rules_version(&ledger, "110000-1", 3);
    let text_of = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"500000\"", "\"110000\"");
    std::fs::write(&file, text_of).unwrap();
    let out = ledger.run(&[&load_rules(&file, "x")[..], &["--json"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no_policy_in_force"), "{}", text(&out));

    // With a policy for 110000 its rules load; a run then names the region or the version.
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/500000-2024-01-01.json"
    ))
    .unwrap()
    .replace("\"500000\"", "\"110000\"")
    .replace("500000/", "110000/");
    let policy_file = ledger.dir.path().join("policy-110000.json");
    std::fs::write(&policy_file, policy).unwrap();
    let out = ledger.run(&["policy", "load", policy_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ledger.run(&load_rules(&file, "x"));
    assert!(out.status.success(), "{}", text(&out));
    let shipped = rules_version(&ledger, "500000-2", 3);
    let out = ledger.run(&load_rules(&shipped, "x"));
    assert!(out.status.success(), "{}", text(&out));
    let out = ledger.run(&["monitor", "run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("110000, 500000"), "{}", text(&out));
    let report = ledger.query(&["monitor", "run", "--region", "110000"]);
    assert_eq!(report["rules_version"], "110000-1");
    assert_eq!(report["flags"], json!([]), "region 110000 has no claims");
    let report = ledger.query(&["monitor", "run", "--rules", "500000-2"]);
    assert_eq!(report["region"], "500000");
    // A version's name is the ledger's, not a region's: 500000 cannot take 110000-1.
    let taken = rules_version(&ledger, "110000-1", 5);
    let out = ledger.run(&load_rules(&taken, "x"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("region 110000"), "{}", text(&out));
    // explain takes the region too.
    let flag = ledger.query(&["monitor", "run", "--region", "500000"])["flags"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let explained = ledger.query(&["monitor", "explain", &flag, "--region", "500000"]);
    assert_eq!(explained["flag"]["id"], flag.as_str());
}
