//! Reconciliation through the real binary: the detail file, the totals file and the statement,
//! with their exit statuses (the library's own tests cover every kind of difference).

mod support;

use support::{march_detail_args, text, TestLedger, DETAIL_HEADER};

#[test]
fn a_matching_detail_file_exits_0_and_a_differing_one_exits_1_with_a_csv_of_differences() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    // March at H500101: C001 (150.00 from the account) and C002 (685.50: 300.00 pooled, 385.50
    // from the account); C002's reversal is dated in April.
    let matching = dir.join("march.csv");
    std::fs::write(&matching, format!("{DETAIL_HEADER}\nC001,V1,M001,150.00,0.00,150.00,0.00,0\nC002,V2,M001,685.50,300.00,385.50,0.00,0\n")).unwrap();
    let out = ledger.run(&march_detail_args(&matching, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let differing = dir.join("differing.csv");
    std::fs::write(&differing, format!("{DETAIL_HEADER}\nC001,V1,M001,150.00,0.00,140.00,10.00,0\nC002,V2,M001,685.50,300.00,385.50,0.00,0\nC777,V7,M001,1.00,0.00,1.00,0.00,0\nnot,a,row\n")).unwrap();
    let csv = dir.join("differences.csv");
    let out = ledger.run(&march_detail_args(
        &differing,
        &["--json", "--csv", csv.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let said = report.to_string();
    assert!(
        said.contains("C777") && said.contains("acct_pay") && said.contains("140.00"),
        "{said}"
    );
    let rows = std::fs::read_to_string(&csv).unwrap();
    // A header, the two amount fields of C001, C777 missing from the ledger, the malformed row.
    assert!(rows.lines().count() >= 4, "{rows}");
    assert!(rows.contains("C777"), "{rows}");

    let missing = dir.join("missing.csv");
    let out = ledger.run(&march_detail_args(&missing, &[]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // A day that does not exist is refused with the flag that gave it (moved here from the
    // library's tests when the parsing of --from and --to moved into the binary).
    let out = ledger.run(&[
        "reconcile",
        "detail",
        matching.to_str().unwrap(),
        "--institution",
        "H500101",
        "--from",
        "2024-05-32",
        "--to",
        "2024-05-31",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.starts_with("gongji: --from: date '2024-05-32'"),
        "{said}"
    );
    let out = ledger.run(&["settlement", "H500101", "2024-13"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.starts_with("gongji: MONTH: "), "{said}");
}

#[test]
fn gb18030_files_reconcile_like_utf8_ones() {
    let ledger = TestLedger::sample();
    // "重庆" in GB18030 (not valid UTF-8) in an extra column the reconciliation ignores.
    let mut bytes = format!("{DETAIL_HEADER},fixmedins_name\n").into_bytes();
    bytes.extend_from_slice(b"C001,V1,M001,150.00,0.00,150.00,0.00,0,\xd6\xd8\xc7\xec\nC002,V2,M001,685.50,300.00,385.50,0.00,0,\xd6\xd8\xc7\xec\n");
    let file = ledger.dir.path().join("gb.csv");
    std::fs::write(&file, bytes).unwrap();
    let out = ledger.run(&march_detail_args(&file, &["--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("gb18030"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_statement_nets_reversals_in_their_month() {
    let ledger = TestLedger::sample();
    let march = ledger.query(&["settlement", "H500101", "2024-03"]);
    assert_eq!(march["pooled_paid"], "300.00");
    assert_eq!(march["settlements"], 2);
    // April: C002's reversal returns its 300.00 to the pooled fund.
    let april = ledger.query(&["settlement", "H500101", "2024-04"]);
    assert_eq!(april["pooled_paid"], "-300.00");
    assert_eq!(april["reversals"], 1);
}

#[test]
fn a_statement_of_an_institution_with_nothing_in_the_month_says_so() {
    let ledger = TestLedger::sample();
    let out = ledger.run(&["settlement", "NOPE", "2024-03", "--lang", "en"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(
            "institution NOPE has no settlement, reversal or manual claim dated in 2024-03"
        ),
        "{said}"
    );
    let out = ledger.run(&["settlement", "H500101", "2024-03", "--lang", "en"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("has no settlement"));
}

/// The `--csv` file Excel on Chinese Windows reads as UTF-8 (it starts with the byte-order
/// mark) and whose every difference row names the member: the file row's `psn_no` for a row
/// read from the file, the ledger settlement's member for a row missing from the file.
#[test]
fn the_csv_of_differences_starts_with_a_bom_and_names_the_member_on_every_row() {
    let ledger = TestLedger::sample();
    let dir = ledger.dir.path();
    // C001 differs in two amounts (fields_differ, M001), C777 of member M777 with a Chinese
    // visit id is not in the ledger, C001 repeats (duplicate_row), and C002 (M001) is missing.
    let input = dir.join("march.csv");
    std::fs::write(
        &input,
        format!(
            "{DETAIL_HEADER}\nC001,V1,M001,150.00,0.00,140.00,10.00,0\n\
             C777,门诊七,M777,1.00,0.00,1.00,0.00,0\n\
             C001,V1,M001,150.00,0.00,150.00,0.00,0\n"
        ),
    )
    .unwrap();
    let csv = dir.join("differences.csv");
    let out = ledger.run(&march_detail_args(
        &input,
        &["--csv", csv.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let bytes = std::fs::read(&csv).unwrap();
    assert_eq!(bytes[..3], [0xef, 0xbb, 0xbf], "{bytes:?}");
    let written = String::from_utf8(bytes[3..].to_vec()).expect("UTF-8 after the BOM");
    assert!(!written.contains('"'), "no quoted cell here: {written}");
    let mut lines = written.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "kind", "the BOM is not doubled: {written}");
    let column = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    let cell = |row: &[&str], name: &str| row[column(name)].to_string();
    let found: Vec<(String, String, String)> = rows
        .iter()
        .map(|row| (cell(row, "kind"), cell(row, "setl_id"), cell(row, "psn_no")))
        .collect();
    let expected = [
        ("fields_differ", "C001", "M001"),
        ("fields_differ", "C001", "M001"),
        ("in_file_not_in_ledger", "C777", "M777"),
        ("duplicate_row", "C001", "M001"),
        ("in_ledger_not_in_file", "C002", "M001"),
    ]
    .map(|(k, s, p)| (k.to_string(), s.to_string(), p.to_string()));
    assert_eq!(found, expected, "{written}");
    // The Chinese visit id survives the round trip.
    let c777 = rows.iter().find(|row| row[column("setl_id")] == "C777");
    assert_eq!(cell(c777.unwrap(), "mdtrt_id"), "门诊七", "{written}");
}
