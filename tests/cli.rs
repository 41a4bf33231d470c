//! The command interface, end to end through the real `gongji` binary.

mod support;

use serde_json::{json, Value};
use support::{examples, text, TestLedger};

fn line(value: Value) -> String {
    value.to_string()
}

fn enroll(member: &str, born: &str, status: &str, scheme: &str) -> String {
    line(
        json!({"cmd":"enroll","member":member,"region":"500000","born":born,"status":status,"scheme":scheme,"date":"2024-01-01"}),
    )
}

#[test]
fn sample_file_applies_with_its_refusals_and_queries_answer() {
    let ledger = TestLedger::new();
    let sample = examples("sample.jsonl");
    let out = ledger.run(&["apply", sample.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results = support::parse_lines(&out.stdout);
    assert_eq!(results.len(), 24);
    let codes: Vec<(u64, &str)> = results
        .iter()
        .filter(|r| r["ok"] == false)
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["error"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (15, "relative_not_bound"),
            (16, "purpose_not_allowed"),
            (17, "insufficient_balance"),
            (19, "duplicate_id")
        ]
    );
    // C002: 650 eligible, 50 of deductible left, 600 x 50% = 300; own share 385.50 from the account.
    assert_eq!(results[10]["result"]["ordinary_paid"], "300.00");
    assert_eq!(results[10]["result"]["account_paid"], "385.50");
    // M001: 1200 opening + 160 + 160 - 150 (C001) - 385.50 (C002) - 88 (P001) + 385.50 (C002 reversed)
    let account = ledger.query(&["account", "M001"]);
    assert_eq!(account["balance"], "1282.00");
    let year = ledger.query(&["year", "M001", "2024"]);
    assert_eq!(year["deductible"], "200.00");
    assert_eq!(year["deductible_used"], "150.00");
    assert_eq!(year["ordinary_paid"], "0.00");
    assert_eq!(year["ordinary_limit"], "3000.00");
    assert_eq!(year["ordinary_remaining"], "3000.00");
    // Pooled: employer 680 + 680 + tier-1 160 in; retiree credits 105 + 115 and C003's 120 out.
    let fund = ledger.query(&["fund", "500000"]);
    assert_eq!(fund["pooled"]["inflow"], "1520.00");
    assert_eq!(fund["pooled"]["outflow"], "340.00");
    assert_eq!(fund["pooled"]["balance"], "1180.00");
    // M004 dies on 20 May; the 860.00 of the account goes to the heirs, 60:40, to the fen.
    assert!(results[19..].iter().all(|r| r["ok"] == true), "{results:?}");
    let inheritance = ledger.query(&["inheritance", "M004"]);
    assert_eq!(inheritance["deceased_on"], "2024-05-20");
    assert_eq!(inheritance["inherited_balance"], "860.00");
    assert_eq!(inheritance["payouts"][0]["amount"], "516.00");
    assert_eq!(inheritance["payouts"][1]["amount"], "344.00");
    assert_eq!(ledger.query(&["account", "M004"])["balance"], "0.00");
    // M005 moves to 510100 (Chengdu) on 1 July with its 420.00.
    let transfers = ledger.query(&["transfers", "M005"]);
    assert_eq!(transfers["region"], "510100");
    assert_eq!(transfers["transfers"][0]["balance"], "420.00");
    assert_eq!(transfers["transfers"][0]["from_region"], "500000");
}

#[test]
fn each_line_is_atomic_and_later_lines_still_apply_after_a_rejection() {
    let ledger = TestLedger::new();
    let (code, results) = ledger.apply(&[
        enroll("A", "1980-01-01", "active", "employer"),
        line(json!({"cmd":"contribute","member":"A","month":"2024-01","base":"5000.001"})),
        line(json!({"cmd":"contribute","member":"A","month":"2024-01","base":"5000.00"})),
        "{not json".to_string(),
        line(json!({"cmd":"explode"})),
        line(json!({"cmd":"retire","member":"A","date":"2024-01-01","extra":1})),
        line(json!({"cmd":"claim","id":"X","member":"nobody","date":"2024-02-01","level":2,"channel":"institution","eligible":"10.00"})),
        line(json!({"cmd":"claim","id":"X","member":"A","date":"2023-12-31","level":2,"channel":"institution","eligible":"10.00"})),
        line(json!({"cmd":"contribute","member":"A","month":"2024-01","base":"5000.00"})),
        String::new(),
        line(json!({"cmd":"contribute","member":"A","month":"2024-02","base":12})),
    ]);
    assert_eq!(code, 1);
    let codes: Vec<&str> = results
        .iter()
        .map(|r| {
            if r["ok"] == true {
                "ok"
            } else {
                r["error"]["code"].as_str().unwrap()
            }
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            "ok",
            "malformed_amount",
            "ok",
            "malformed_json",
            "unknown_command",
            "unknown_field",
            "unknown_member",
            "before_enrolment",
            "already_credited",
            "empty_line",
            "malformed_amount"
        ]
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["line"], i + 1);
        if r["ok"] == false {
            assert!(!r["error"]["message"].as_str().unwrap().is_empty());
        }
    }
    assert_eq!(ledger.query(&["account", "A"])["balance"], "100.00");
    let history = ledger.run(&["history", "A", "--json"]);
    assert_eq!(
        support::parse_lines(&history.stdout).len(),
        2,
        "enrolled + one credit"
    );
}

#[test]
fn unreadable_input_exits_2_and_unknown_member_query_exits_1() {
    let ledger = TestLedger::new();
    let out = ledger.run(&["apply", "/nonexistent/commands.jsonl"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/commands.jsonl")
    );
    let out = ledger.run(&["account", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ghost"));
}

#[test]
fn readable_output_names_rejections_and_summarises() {
    let ledger = TestLedger::new();
    let sample = examples("sample.jsonl");
    let out = ledger.run(&["apply", sample.to_str().unwrap(), "--lang", "en"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("line 17: REJECTED insufficient_balance: member M001 has 896.50; payment P004 of 99999.00 refused"), "{stdout}");
    assert!(
        stdout.contains("24 lines: 20 applied, 4 rejected"),
        "{stdout}"
    );
    let account = ledger.run(&["account", "M001", "--lang", "en"]);
    let readable = String::from_utf8_lossy(&account.stdout);
    let balance_line = readable
        .lines()
        .find(|l| l.starts_with("account balance "))
        .unwrap_or_default();
    assert_eq!(
        balance_line.split_whitespace().collect::<Vec<_>>(),
        ["account", "balance", "1,282.00", "yuan"],
        "{readable}"
    );
}

#[test]
fn a_second_writer_on_the_same_ledger_is_refused_while_the_first_holds_it() {
    let ledger = TestLedger::new();
    let mut first = ledger
        .command(&["apply", "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first process holds the ledger while it waits for input.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = ledger.run(&["policy", "load", support::CHONGQING_POLICY]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another command is writing"),
        "{}",
        text(&second)
    );
    // A query is no writer: it answers beside the first (A is not enrolled: exit 1).
    let query = ledger.run(&["account", "A"]);
    assert_eq!(query.status.code(), Some(1), "{}", text(&query));
    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
}

#[test]
fn a_running_total_that_would_overflow_is_refused_with_a_code_and_nothing_is_lost() {
    // Each opening balance is the largest one amount may be (10^12 yuan); the region's account
    // inflow reaches the bound on running totals (10^16 yuan) after 10,000 of them. Before the
    // bound was checked, a sum past i64 ended `apply` with a panic (exit 101).
    let ledger = TestLedger::new();
    let lines: Vec<String> = (0..10_002)
        .map(|i| {
            line(
                json!({"cmd":"enroll","member":format!("M{i:05}"),"region":"500000",
                "born":"1980-05-01","status":"active","scheme":"employer","date":"2024-01-01",
                "opening_balance":"1000000000000.00"}),
            )
        })
        .collect();
    let (code, results) = ledger.apply(&lines);
    assert_eq!(code, 1, "a refused line exits 1, not a crash");
    assert_eq!(results.len(), 10_002, "every line has its result");
    assert!(results[..10_000].iter().all(|r| r["ok"] == true));
    for refused in &results[10_000..] {
        assert_eq!(refused["ok"], false, "{refused}");
        assert_eq!(refused["error"]["code"], "total_overflow", "{refused}");
    }
    let fund = ledger.run(&["fund", "500000", "--json"]);
    assert!(fund.status.success(), "{}", text(&fund));
    assert!(
        text(&fund).contains("10000000000000000.00"),
        "the accounts hold exactly the bound: {}",
        text(&fund)
    );
    let verify = ledger.run(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
}

/// A mistyped `--data` used to create an empty ledger there and answer "not enrolled": only
/// `apply`, `policy load` and `audit import` create a ledger, every other command refuses a
/// directory that holds none, naming it, and leaves it as it was.
#[test]
fn a_command_that_only_reads_refuses_a_directory_holding_no_ledger_and_creates_nothing() {
    let ledger = TestLedger::empty();
    let missing = ledger.data();
    let commands: [&[&str]; 9] = [
        &["account", "D001"],
        &["year", "D001", "2024"],
        &["fund", "500000"],
        &["history", "D001"],
        &["audit", "verify"],
        &["audit", "replay"],
        &["audit", "clear-quarantine"],
        &["rebuild"],
        &["settlement", "H500101", "2024-03"],
    ];
    for args in commands {
        if args == ["audit", "clear-quarantine"]
            && support::directory_only("audit clear-quarantine: a quarantine marker of the data directory (on PostgreSQL it is refused naming the option)")
        {
            continue;
        }
        let out = ledger.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("no ledger at {}", ledger.named())),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("apply")
                && stderr.contains("policy load")
                && stderr.contains("audit import"),
            "{args:?} names the commands that create one: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
        if let Some(pg) = &ledger.pg {
            let sql = "SELECT count(*) FROM gongji_log_heads WHERE log = $1";
            let heads: i64 = support::pg::client()
                .query_one(sql, &[&pg.log])
                .unwrap()
                .get(0);
            assert_eq!(heads, 0, "{args:?} created log {}", pg.log);
        }
    }
    // An existing directory without the ledger's files is refused too, and stays empty.
    if !support::directory_only("an existing data directory without the ledger's files") {
        std::fs::create_dir(&missing).unwrap();
        let out = ledger.run(&["account", "D001"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no ledger at"),
            "{}",
            text(&out)
        );
        assert_eq!(
            std::fs::read_dir(&missing).unwrap().count(),
            0,
            "nothing written"
        );
    }
    // `apply` creates one; the query then answers from it.
    let (code, _) = ledger.apply(&[]);
    assert_eq!(code, 0);
    let out = ledger.run(&["account", "D001"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("D001"),
        "{}",
        text(&out)
    );
}

/// Every subcommand of `gongji`, as its help is asked for.
const SUBCOMMANDS: [&[&str]; 21] = [
    &["apply"],
    &["account"],
    &["year"],
    &["inheritance"],
    &["transfers"],
    &["fund"],
    &["history"],
    &["explain"],
    &["audit", "replay"],
    &["audit", "verify"],
    &["audit", "export"],
    &["audit", "check"],
    &["audit", "clear-quarantine"],
    &["audit", "import"],
    &["reconcile", "detail"],
    &["reconcile", "totals"],
    &["settlement"],
    &["policy", "load"],
    &["policy", "check"],
    &["policy", "list"],
    &["rebuild"],
];

/// The entries (`  --json  One JSON object ...`) of a help text's Arguments and Options, each
/// split into its name and its help.
fn help_entries(help: &str) -> Vec<(String, String)> {
    let mut in_list = false;
    let mut entries = Vec::new();
    for row in help.lines() {
        if row == "Arguments:" || row == "Options:" {
            in_list = true;
        } else if row.is_empty() || !row.starts_with(' ') {
            in_list = false;
        } else if in_list {
            let row = row.trim();
            let (name, said) = row.split_once("  ").unwrap_or((row, ""));
            entries.push((name.to_string(), said.trim().to_string()));
        }
    }
    entries
}

#[test]
fn every_argument_of_every_subcommand_has_help_and_the_benchmark_option_is_hidden() {
    for sub in SUBCOMMANDS {
        let mut args = sub.to_vec();
        args.push("-h");
        let out = std::process::Command::new(support::gongji_path())
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(!help.contains("--projections"), "{args:?}: {help}");
        let entries = help_entries(&help);
        assert!(
            entries.iter().any(|(name, _)| name == "--data <DIR|URI>"),
            "{args:?}: {help}"
        );
        for (name, said) in entries {
            assert!(!said.is_empty(), "{args:?}: {name} has no help:\n{help}");
        }
    }
    // Hidden, not gone: the benchmark's baseline store still opens.
    if support::directory_only("--projections sled keeps the projections in the data directory") {
        return;
    }
    let ledger = TestLedger::empty();
    let out = ledger.run(&["--projections", "sled", "apply", "-"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ledger.run(&["--projections", "sled", "fund", "500000", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// Runs `apply -` with `extra` arguments and `lines` on standard input.
fn apply_with(ledger: &TestLedger, extra: &[&str], lines: &[String]) -> std::process::Output {
    use std::io::Write;
    let mut args = vec!["apply", "-"];
    args.extend_from_slice(extra);
    let mut child = ledger
        .command(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines.join("\n").as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// Three refusals of two kinds among five lines.
fn lines_with_refusals() -> Vec<String> {
    let contribute = |member: &str, month: &str| {
        line(json!({"cmd":"contribute","member":member,"month":month,"base":"5000.00"}))
    };
    vec![
        enroll("A", "1980-01-01", "active", "employer"),
        contribute("A", "2024-01"),
        contribute("A", "2024-01"),
        contribute("ghost", "2024-01"),
        contribute("ghost", "2024-02"),
    ]
}

#[test]
fn apply_ends_its_summary_with_the_refusals_tallied_by_code() {
    let ledger = TestLedger::new();
    let out = apply_with(&ledger, &["--lang", "en"], &lines_with_refusals());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 7, "{stdout}");
    assert!(
        rows[5].starts_with("5 lines: 2 applied, 3 rejected"),
        "{stdout}"
    );
    assert_eq!(rows[6], "refused: unknown_member 2, already_credited 1");
    // With --json, standard output stays JSON Lines (one object a line); the tally goes to
    // standard error.
    let ledger = TestLedger::new();
    let out = apply_with(&ledger, &["--json", "--lang", "en"], &lines_with_refusals());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(support::parse_lines(&out.stdout).len(), 5);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused: unknown_member 2, already_credited 1"),
        "{stderr}"
    );
    // Nothing refused, no tally.
    let ledger = TestLedger::new();
    let out = apply_with(&ledger, &["--lang", "en"], &lines_with_refusals()[..2]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("refused"), "{}", text(&out));
}

#[test]
fn apply_quiet_prints_only_the_rejected_lines_and_the_summary() {
    let ledger = TestLedger::new();
    let out = apply_with(
        &ledger,
        &["--quiet", "--lang", "en"],
        &lines_with_refusals(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 5, "{stdout}");
    assert!(
        rows[0].starts_with("line 3: REJECTED already_credited"),
        "{stdout}"
    );
    assert!(
        rows[1].starts_with("line 4: REJECTED unknown_member"),
        "{stdout}"
    );
    assert!(
        rows[2].starts_with("line 5: REJECTED unknown_member"),
        "{stdout}"
    );
    assert!(
        rows[3].starts_with("5 lines: 2 applied, 3 rejected"),
        "{stdout}"
    );
    assert_eq!(rows[4], "refused: unknown_member 2, already_credited 1");
    // Every line was applied all the same.
    assert_eq!(ledger.query(&["account", "A"])["balance"], "100.00");
    // With --json: only the rejected lines' objects.
    let ledger = TestLedger::new();
    let out = apply_with(&ledger, &["--quiet", "--json"], &lines_with_refusals());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results = support::parse_lines(&out.stdout);
    let lines: Vec<u64> = results
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4, 5]);
    assert!(results.iter().all(|r| r["ok"] == false));
}

/// The README is read where the repository is: every relative link in it names a file inside
/// the repository that is there.
#[test]
fn every_relative_link_in_the_readme_stays_inside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut checked = 0;
    for piece in readme.split("](").skip(1) {
        let target = piece.split(')').next().unwrap_or_default();
        let target = target.split('#').next().unwrap_or_default();
        if target.is_empty() || target.contains("://") {
            continue;
        }
        let path = root.join(target);
        let resolved = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("README links to {target}, which is not there: {e}"));
        assert!(
            resolved.starts_with(&root),
            "README links to {target}, outside the repository"
        );
        checked += 1;
    }
    assert!(
        checked >= 5,
        "the README's links to docs/ were found: {checked}"
    );
}
