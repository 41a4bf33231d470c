//! Hostile inputs and hostile surroundings for what `gongji` writes: the `--csv` file of
//! `reconcile detail` (never the input, never through a link, never truncated before the job
//! succeeded, no formula a spreadsheet would run), the terminal (no escape sequence from a file
//! reaches it raw) and a standard output whose reader went away (no panic).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{march_detail_args, text, TestLedger, DETAIL_HEADER};

/// A March file for H500101 with one differing amount (so the CSV has a row).
fn march_file(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("march.csv");
    let body = format!(
        "{DETAIL_HEADER}\nC001,V1,M001,150.00,0.00,140.00,10.00,0\nC002,V2,M001,685.50,300.00,385.50,0.00,0\n"
    );
    std::fs::write(&path, &body).unwrap();
    (path, body)
}

#[test]
fn a_csv_path_naming_the_input_is_refused_and_the_input_is_unchanged() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    let (input, body) = march_file(dir);
    // The same path, the same file by another spelling, and a hard link to it.
    let other_spelling = dir.join(".").join("march.csv");
    let hard_link = dir.join("hard.csv");
    std::fs::hard_link(&input, &hard_link).unwrap();
    for csv in [&input, &other_spelling, &hard_link] {
        let out = ledger.run(&march_detail_args(
            &input,
            &["--csv", csv.to_str().unwrap()],
        ));
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("is the input file"), "{said}");
        assert_eq!(std::fs::read_to_string(&input).unwrap(), body);
    }
    assert!(!dir.join("march.csv.partial").exists());
}

#[test]
fn a_missing_input_leaves_an_existing_csv_untouched() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    let csv = dir.join("differences.csv");
    std::fs::write(&csv, "last month's differences\n").unwrap();
    let missing = dir.join("missing.csv");
    let out = ledger.run(&march_detail_args(
        &missing,
        &["--csv", csv.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "last month's differences\n"
    );
    // A file whose header lacks a column: refused, the CSV still untouched, no partial left.
    let headless = dir.join("headless.csv");
    std::fs::write(&headless, "setl_id,psn_no\nC001,M001\n").unwrap();
    let out = ledger.run(&march_detail_args(
        &headless,
        &["--csv", csv.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "last month's differences\n"
    );
    assert!(!dir.join("differences.csv.partial").exists());
    // A job that succeeds replaces it.
    let (input, _) = march_file(dir);
    let out = ledger.run(&march_detail_args(
        &input,
        &["--csv", csv.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let written = std::fs::read_to_string(&csv).unwrap();
    assert!(
        written.starts_with("\u{feff}kind,line,setl_id"),
        "{written}"
    );
    assert!(written.contains("acct_pay,140.00,150.00"), "{written}");
    assert!(!dir.join("differences.csv.partial").exists());
}

#[test]
fn a_csv_path_that_is_a_symlink_is_refused_and_its_target_is_unchanged() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    let (input, _) = march_file(dir);
    let target = dir.join("precious.txt");
    std::fs::write(&target, "precious\n").unwrap();
    let link = dir.join("out.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = ledger.run(&march_detail_args(
        &input,
        &["--csv", link.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("out.csv") && said.contains("symbolic link"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());

    // A link planted where the partial file goes is not followed either.
    let csv = dir.join("fresh.csv");
    let planted = dir.join("fresh.csv.partial");
    std::os::unix::fs::symlink(&target, &planted).unwrap();
    let out = ledger.run(&march_detail_args(
        &input,
        &["--csv", csv.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert!(!csv.exists());
}

/// Splits CSV text as RFC 4180 (quoted fields may hold commas and doubled quotes).
fn csv_cells(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cell.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => cells.push(std::mem::take(&mut cell)),
                (c, _) => cell.push(c),
            }
        }
        cells.push(cell);
        rows.push(cells);
    }
    rows
}

#[test]
fn cells_a_spreadsheet_would_run_as_formulas_are_neutralised_and_amounts_stay_numbers() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    let input = dir.join("hostile.csv");
    std::fs::write(
        &input,
        format!(
            "{DETAIL_HEADER}\n\
             \"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",+V1,@SUM(A1),1.00,0.00,1.00,0.00,0\n\
             C001,-2+3,M001,150.00,0.00,150.00,0.00,0\n\
             C002,V2,\"\tM001\",685.50,300.00,385.50,0.00,0\n\
             R1,V9,=1+1,-12.50,-0.00,-12.50,-0.00,1\n"
        ),
    )
    .unwrap();
    let csv = dir.join("out.csv");
    let out = ledger.run(&march_detail_args(
        &input,
        &["--csv", csv.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let written = std::fs::read_to_string(&csv).unwrap();
    let rows = csv_cells(&written);
    let cells: Vec<&String> = rows.iter().flatten().collect();
    for cell in &cells {
        let dangerous = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
        let amount = cell.parse::<f64>().is_ok();
        assert!(!dangerous || amount, "cell {cell:?} in\n{written}");
    }
    for neutralised in [
        "'=HYPERLINK(\"http://x\",\"y\")",
        "'+V1",
        "'@SUM(A1)",
        "'-2+3",
        "'\tM001",
        "'=1+1",
    ] {
        assert!(
            cells.iter().any(|c| c.as_str() == neutralised),
            "{neutralised:?} not in\n{written}"
        );
    }
    // Amounts the ledger formats stay numbers (the refund row's amounts are read negated).
    assert!(cells.iter().any(|c| c.as_str() == "12.50"), "{written}");
}

#[test]
fn escape_sequences_from_a_file_are_printed_escaped() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    let input = dir.join("ansi.csv");
    std::fs::write(
        &input,
        format!(
            "{DETAIL_HEADER}\n\
             X\u{1b}[31mRED,V\u{1b}]0;pwned\u{7},M\u{9b}2J,1.00,0.00,1.00,0.00,0\n\
             C001,V1,M001,1\u{1b}[2J,0.00,150.00,0.00,0\n"
        ),
    )
    .unwrap();
    let out = ledger.run(&march_detail_args(&input, &[]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        !said.chars().any(|c| c.is_control() && c != '\n'),
        "{said:?}"
    );
    assert!(said.contains(r"X\u{1b}[31mRED"), "{said}");
    assert!(said.contains(r"M\u{9b}2J"), "{said}");
    assert!(said.contains(r"1\u{1b}[2J"), "{said}");
    // JSON escapes them too, C1 controls included.
    let out = ledger.run(&march_detail_args(&input, &["--json"]));
    let said = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        !said.chars().any(|c| c.is_control() && c != '\n'),
        "{said:?}"
    );
    let report: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert!(report.to_string().contains("RED"), "{said}");

    // An error message quoting the file's header.
    let header = dir.join("header.csv");
    std::fs::write(&header, "setl_id,\u{1b}]52;c;cm0gLXJm\u{7}\nC001,x\n").unwrap();
    let out = ledger.run(&march_detail_args(&header, &[]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(
        !said.chars().any(|c| c.is_control() && c != '\n'),
        "{said:?}"
    );
    // Header names are compared lowercased, and quoted so.
    assert!(said.contains(r"\u{1b}]52;c;cm0glxjm\u{7}"), "{said}");
}

/// Runs `gongji --data DIR ARGS` with standard output a pipe whose read end is closed before
/// `gongji` writes to it; returns its exit status and standard error.
fn with_closed_stdout(ledger: &TestLedger, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(support::gongji_path())
        .args(ledger.data_args())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gongji starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("gongji finishes");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reader_that_went_away_ends_every_command_quietly() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    let (input, _) = march_file(dir);
    let archive = dir.join("all.arch");
    let archive_arg = archive.to_str().unwrap();
    let commands: Vec<(Vec<&str>, i32)> = vec![
        (vec!["account", "M001"], 0),
        (vec!["account", "M001", "--json"], 0),
        (vec!["year", "M001", "2024"], 0),
        (vec!["fund", "500000"], 0),
        (vec!["history", "M001"], 0),
        (vec!["explain", "C001"], 0),
        (vec!["policy", "list"], 0),
        (vec!["audit", "verify"], 0),
        (vec!["audit", "replay"], 0),
        (vec!["audit", "export", archive_arg], 0),
        (vec!["audit", "check", archive_arg], 0),
        (vec!["settlement", "H500101", "2024-03"], 0),
        (march_detail_args(&input, &[]), 1),
        (vec!["rebuild"], 0),
    ];
    for (args, status) in commands {
        let (code, stderr) = with_closed_stdout(&ledger, &args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(code, Some(status), "{args:?}: {stderr}");
    }
    // `apply` too: its lines are applied and its status is the one it would have had.
    let lines = dir.join("more.jsonl");
    std::fs::write(
        &lines,
        "{\"cmd\":\"contribute\",\"member\":\"M003\",\"month\":\"2024-02\",\"base\":\"4000.00\"}\n",
    )
    .unwrap();
    let (code, stderr) = with_closed_stdout(&ledger, &["apply", lines.to_str().unwrap()]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    let account = ledger.query(&["year", "M003", "2024"]);
    assert!(account.is_object());
}
