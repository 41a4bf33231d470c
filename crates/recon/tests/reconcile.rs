//! Reconciliation against real ledgers built in temporary directories.

mod common;

use common::{claim, enroll, reverse, write, Fixture};
use gongji_domain::{Day, Money, Month};
use gongji_recon::render::{self, DifferenceCsv};
use gongji_recon::report::Form;
use gongji_recon::words::Lang;
use gongji_recon::{
    reconcile_detail, reconcile_detail_streaming, reconcile_totals, settlement_statement, Amounts,
    DetailOptions, DetailReport, Difference, FileEncoding, ReconError, TotalsStatus,
    Unreconcilable,
};

const HEADER: &str =
    "setl_id,mdtrt_id,psn_no,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,refd_setl_flag";

fn m(text: &str) -> Money {
    text.parse().expect("test amounts parse")
}

fn day(text: &str) -> Day {
    text.parse().expect("test days parse")
}

fn month(text: &str) -> Month {
    text.parse().expect("test months parse")
}

fn at_h1(visit: &str) -> String {
    format!(r#","institution":"H1","visit":"{visit}""#)
}

fn amounts(fixture: &Fixture, claim: &str) -> Amounts {
    let f = fixture.figures(claim);
    Amounts {
        medfee_sumamt: m(&f.medfee_sumamt),
        fund_pay_sumamt: m(&f.fund_pay_sumamt),
        acct_pay: m(&f.acct_pay),
        cash_payamt: m(&f.cash_payamt),
    }
}

fn detail(fixture: &Fixture, file: &str, from: &str, to: &str) -> DetailReport {
    reconcile_detail(
        &fixture.ledger,
        &fixture.path(file),
        "H1",
        day(from),
        day(to),
        &DetailOptions::default(),
        &mut |_, _| {},
    )
    .expect("the reconciliation runs")
}

/// The ledger of the detail tests: institution H1's March 2024, with every case.
fn march_ledger() -> Fixture {
    let mut f = Fixture::new();
    f.apply(&[
        &enroll("M1", "5000.00"),
        &enroll("M2", "3000.00"),
        &enroll("M3", "0.00"),
        &enroll("M4", "2000.00"),
    ]);
    f.apply(&[
        &claim("C01", "M1", "2024-03-02", "150.00", &at_h1("V01")),
        &claim("C02", "M1", "2024-03-05", "650.00", &format!(r#","uncovered":"35.50"{}"#, at_h1("V02"))),
        &claim("C03", "M2", "2024-03-06", "400.00", &at_h1("V03")),
        &claim("C04", "M2", "2024-03-07", "300.00", &at_h1("V04")),
        &claim("C05", "M3", "2024-03-08", "250.00", &at_h1("V05")),
        &claim("C06", "M4", "2024-03-09", "120.00", &at_h1("V06")),
        &claim("C07", "M4", "2024-03-10", "80.00", &at_h1("V07")),
        &claim("C08", "M1", "2024-03-11", "90.00", &at_h1("V08")),
        &claim("C09", "M2", "2024-03-12", "60.00", &at_h1("V09")),
        &claim("C10", "M3", "2024-03-13", "70.00", &at_h1("V10")),
        &claim("C11", "M4", "2024-02-20", "110.00", &at_h1("V11")),
        &claim("C12", "M1", "2024-03-14", "100.00", r#","institution":"H2","visit":"V12""#),
        &claim("C13", "M1", "2024-03-15", "55.00", ""),
        r#"{"cmd":"claim","id":"C14","member":"M2","date":"2024-03-16","level":2,"channel":"manual","eligible":"45.00","institution":"H1"}"#,
        &claim("C15", "M1", "2024-04-02", "66.00", &at_h1("V15")),
        &claim("C16", "M3", "2024-02-10", "77.00", &at_h1("V16")),
    ]);
    f.apply(&[
        &reverse("C08", "2024-03-20"),
        &reverse("C09", "2024-03-21"),
        &reverse("C11", "2024-03-03"),
    ]);
    f
}

#[test]
fn a_detail_file_differing_in_every_way_gives_the_exact_report() {
    let f = march_ledger();
    let plus = |text: &str, fen: i64| (m(text) + Money::from_fen(fen)).to_string();
    let c03 = f.figures("C03");
    let c04 = f.figures("C04");
    let c05 = f.figures("C05");
    let c11 = f.figures("C11");
    let lines = [
        HEADER.to_string(),
        f.row("C01", "V01", "M1", false),
        format!(
            "C02,V02,M1,700.00,{},{},{},0",
            f.figures("C02").fund_pay_sumamt,
            f.figures("C02").acct_pay,
            f.figures("C02").cash_payamt
        ),
        format!(
            "C03,V03,M2,{},{},{},{},0",
            c03.medfee_sumamt,
            plus(&c03.fund_pay_sumamt, 100),
            c03.acct_pay,
            c03.cash_payamt
        ),
        format!(
            "C04,V04,M2,{},{},{},{},0",
            c04.medfee_sumamt,
            c04.fund_pay_sumamt,
            plus(&c04.acct_pay, -1),
            c04.cash_payamt
        ),
        format!(
            "C05,V05,M3,{},{},{},{},0",
            c05.medfee_sumamt,
            c05.fund_pay_sumamt,
            c05.acct_pay,
            plus(&c05.cash_payamt, 5)
        ),
        f.row("C06", "V99", "M9", false),
        f.row("C08", "V08", "M1", false),
        f.row("C08", "V08", "M1", true),
        f.row("C09", "V09", "M2", false),
        f.row("C10", "V10", "M3", false),
        f.row("C10", "V10", "M3", true),
        // A refund written with positive amounts is read the same as one written negative.
        format!(
            "C11,V11,M4,{},{},{},{},1",
            c11.medfee_sumamt, c11.fund_pay_sumamt, c11.acct_pay, c11.cash_payamt
        ),
        "X01,VX,M1,10.00,5.00,5.00,0.00,0".to_string(),
        f.row("C01", "V01", "M1", false),
        "X01,VX,M1,10.00,5.00,5.00,0.00,0".to_string(),
        "C20,V20,M1,12.345,0,0,0,0".to_string(),
        "C21,V21,M1,1.00,0,0,1.00,2".to_string(),
        "C22,V22,M1,1.00".to_string(),
        ",V23,M1,1,0,0,1,0".to_string(),
        "C24,V24,M1,-1.00,0,0,-1.00,0".to_string(),
        "C25,\"V25,M1,1,0,0,1,0".to_string(),
        String::new(),
        f.row("C16", "V16", "M3", false),
    ];
    write(
        &f.path("detail.csv"),
        (lines.join("\r\n") + "\r\n").as_bytes(),
    );

    let mut streamed = Vec::new();
    let mut progress_calls = Vec::new();
    let report = reconcile_detail_streaming(
        &f.ledger,
        &f.path("detail.csv"),
        "H1",
        day("2024-03-01"),
        day("2024-03-31"),
        &DetailOptions::default(),
        &mut |done, total| progress_calls.push((done, total)),
        &mut |d| {
            streamed.push(d.clone());
            Ok(())
        },
    )
    .unwrap();

    let differ =
        |line: u64, setl_id: &str, psn_no: &str, fields: &[(&'static str, String, String)]| {
            Difference::FieldsDiffer {
                line,
                setl_id: setl_id.to_string(),
                refund: false,
                psn_no: psn_no.to_string(),
                fields: fields
                    .iter()
                    .map(|(field, file, ledger)| gongji_recon::FieldDifference {
                        field,
                        file: file.clone(),
                        ledger: ledger.clone(),
                    })
                    .collect(),
            }
        };
    let malformed = |line: u64, reason: &str| Difference::MalformedRow {
        line,
        reason: reason.to_string(),
    };
    let expected = vec![
        differ(3, "C02", "M1", &[("medfee_sumamt", "700.00".into(), "685.50".into())]),
        differ(
            4,
            "C03",
            "M2",
            &[(
                "fund_pay_sumamt",
                plus(&c03.fund_pay_sumamt, 100),
                c03.fund_pay_sumamt.clone(),
            )],
        ),
        differ(5, "C04", "M2", &[("acct_pay", plus(&c04.acct_pay, -1), c04.acct_pay.clone())]),
        differ(6, "C05", "M3", &[("cash_payamt", plus(&c05.cash_payamt, 5), c05.cash_payamt.clone())]),
        differ(
            7,
            "C06",
            "M9",
            &[
                ("psn_no", "M9".into(), "M4".into()),
                ("mdtrt_id", "V99".into(), "V06".into()),
            ],
        ),
        Difference::InFileNotInLedger {
            line: 12,
            setl_id: "C10".into(),
            refund: true,
            psn_no: "M3".into(),
            mdtrt_id: "V10".into(),
            file: amounts(&f, "C10"),
            note: Some(
                "the ledger has this settlement (dated 2024-03-13) but no reversal of it dated in the period"
                    .into(),
            ),
        },
        Difference::InFileNotInLedger {
            line: 14,
            setl_id: "X01".into(),
            refund: false,
            psn_no: "M1".into(),
            mdtrt_id: "VX".into(),
            file: Amounts {
                medfee_sumamt: m("10.00"),
                fund_pay_sumamt: m("5.00"),
                acct_pay: m("5.00"),
                cash_payamt: m("0"),
            },
            note: None,
        },
        Difference::DuplicateRow {
            line: 15,
            first_line: 2,
            setl_id: "C01".into(),
            refund: false,
            psn_no: "M1".into(),
        },
        Difference::DuplicateRow {
            line: 16,
            first_line: 14,
            setl_id: "X01".into(),
            refund: false,
            psn_no: "M1".into(),
        },
        malformed(17, "medfee_sumamt: amount '12.345' has more than two decimal places"),
        malformed(18, "refd_setl_flag '2' must be 0 (settlement) or 1 (refund)"),
        malformed(19, "line has 4 fields; the header has 8"),
        malformed(20, "setl_id is empty"),
        malformed(
            21,
            "settlement row (refd_setl_flag 0) has negative medfee_sumamt, cash_payamt; only refund rows may be negative",
        ),
        malformed(
            22,
            "field 2 opens a quote that the line never closes (fields may not span lines)",
        ),
        Difference::InFileNotInLedger {
            line: 24,
            setl_id: "C16".into(),
            refund: false,
            psn_no: "M3".into(),
            mdtrt_id: "V16".into(),
            file: amounts(&f, "C16"),
            note: None,
        },
        Difference::InLedgerNotInFile {
            setl_id: "C07".into(),
            refund: false,
            psn_no: "M4".into(),
            mdtrt_id: "V07".into(),
            date: day("2024-03-10"),
            ledger: amounts(&f, "C07"),
        },
        Difference::InLedgerNotInFile {
            setl_id: "C09".into(),
            refund: true,
            psn_no: "M2".into(),
            mdtrt_id: "V09".into(),
            date: day("2024-03-21"),
            ledger: amounts(&f, "C09"),
        },
    ];
    for (i, (got, want)) in report.differences.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "difference {i}");
    }
    assert_eq!(report.differences, expected);
    assert_eq!(
        streamed, expected,
        "the sink sees every difference, in order"
    );

    let c = &report.counts;
    assert_eq!(
        (
            c.file_rows,
            c.file_refund_rows,
            c.ledger_settlements,
            c.ledger_reversals
        ),
        (22, 3, 10, 3)
    );
    assert_eq!(
        c.matched_rows, 6,
        "C01, C08 both rows, C09, C10, C11's refund"
    );
    assert_eq!(
        (
            c.in_file_not_in_ledger,
            c.in_ledger_not_in_file,
            c.fields_differ,
            c.duplicate_rows,
            c.malformed_rows
        ),
        (3, 2, 5, 2, 6)
    );
    assert_eq!(c.differences(), 18);
    assert_eq!(c.manual_claims_excluded, 1, "C14 is a manual claim");
    assert_eq!(
        report.unreconcilable,
        vec![Unreconcilable {
            setl_id: "C13".into(),
            psn_no: "M1".into(),
            channel: gongji_domain::types::Channel::Institution,
            refund: false,
            date: day("2024-03-15"),
            amounts: amounts(&f, "C13"),
        }]
    );
    assert_eq!(c.unreconcilable_claims, 1);
    assert_eq!(report.encoding, FileEncoding::Utf8);
    assert_eq!(report.status, "differences");
    assert_eq!(report.exit_code(), 1);
    assert_eq!(
        (report.differences_left_out, report.unreconcilable_left_out),
        (0, 0)
    );
    assert!(report.duplicate_check_complete);

    let (last_done, total) = *progress_calls.last().expect("progress is reported");
    assert_eq!(last_done, total, "progress ends at its total");
    assert!(
        progress_calls.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress never goes back"
    );

    // JSON: the kind tag and the figures as strings.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["differences"][0]["kind"], "fields_differ");
    assert_eq!(json["differences"][0]["fields"][0]["file"], "700.00");
    assert_eq!(json["counts"]["malformed_rows"], 6);
    assert_eq!(json["encoding"], "utf8");
    assert_eq!(json["unreconcilable"][0]["setl_id"], "C13");

    // Text: every difference on a line of its own, and the result.
    let text = render::detail_text(&report, Lang::En);
    assert!(
        text.contains(
            "line 3: settlement C02 differs: medfee_sumamt file 700.00 yuan ledger 685.50 yuan"
        ),
        "{text}"
    );
    assert!(
        text.contains("reversal C09 (psn_no M2, 2024-03-21) is in the ledger but not in the file"),
        "{text}"
    );
    assert!(
        text.contains("line 15: settlement C01 repeats line 2"),
        "{text}"
    );
    assert!(text.contains("unreconcilable: 1 claims"), "{text}");
    assert!(text.contains("result: 18 differences"), "{text}");

    // CSV: one row per difference, one per field where a row differs in several.
    let mut csv = DifferenceCsv::new(Vec::new()).unwrap();
    for d in &streamed {
        csv.write(d).unwrap();
    }
    assert_eq!(csv.rows_written(), 19);
    let csv = String::from_utf8(csv.finish().unwrap()).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    // The byte-order mark, then the header.
    assert_eq!(
        rows[0],
        format!("\u{feff}{}", render::CSV_COLUMNS.join(","))
    );
    assert_eq!(
        rows[1],
        "fields_differ,3,C02,0,M1,,medfee_sumamt,700.00,685.50,,,,,"
    );
    assert_eq!(rows[5], "fields_differ,7,C06,0,M9,,psn_no,M9,M4,,,,,");
    assert_eq!(rows[6], "fields_differ,7,C06,0,M9,,mdtrt_id,V99,V06,,,,,");
    assert!(
        rows.contains(&"duplicate_row,15,C01,0,M1,,,,,,,,,repeats line 2"),
        "{csv}"
    );
    assert!(
        rows.contains(&"duplicate_row,16,X01,0,M1,,,,,,,,,repeats line 14"),
        "{csv}"
    );
    assert!(
        rows[16].starts_with("malformed_row,22,,,,,,,,,,,,field 2 opens a quote"),
        "{}",
        rows[16]
    );
    assert_eq!(
        rows[19],
        format!(
            "in_ledger_not_in_file,,C09,1,M2,V09,,,,{},{},{},{},ledger date 2024-03-21",
            f.figures("C09").medfee_sumamt,
            f.figures("C09").fund_pay_sumamt,
            f.figures("C09").acct_pay,
            f.figures("C09").cash_payamt
        )
    );
}

#[test]
fn only_so_many_differences_of_each_kind_are_kept_but_all_are_counted() {
    let f = march_ledger();
    let mut lines = vec![HEADER.to_string()];
    for n in 0..50 {
        lines.push(format!("Y{n:03},V,M1,1.00,0,0,1.00,0"));
        lines.push(format!("bad row {n}"));
    }
    write(&f.path("many.csv"), lines.join("\n").as_bytes());
    let mut sunk = 0u64;
    let report = reconcile_detail_streaming(
        &f.ledger,
        &f.path("many.csv"),
        "H1",
        day("2024-03-01"),
        day("2024-03-31"),
        &DetailOptions {
            differences_kept_per_kind_max: 3,
            unreconcilable_kept_max: 0,
        },
        &mut |_, _| {},
        &mut |_| {
            sunk += 1;
            Ok(())
        },
    )
    .unwrap();
    // 50 unknown rows, 50 malformed, and the 13 ledger rows of the period the file lacks
    // (10 settlements, 3 reversals).
    assert_eq!(report.counts.in_file_not_in_ledger, 50);
    assert_eq!(report.counts.malformed_rows, 50);
    assert_eq!(report.counts.in_ledger_not_in_file, 13);
    assert_eq!(sunk, 113);
    assert_eq!(report.differences.len(), 9);
    assert_eq!(report.differences_left_out, 104);
    assert!(report.unreconcilable.is_empty());
    assert_eq!(report.unreconcilable_left_out, 1);
    let text = render::detail_text(&report, Lang::En);
    assert!(
        text.contains("... and 104 more differences not listed"),
        "{text}"
    );
}

/// A small ledger whose H1 visit ids are Chinese, for the encoding tests.
fn chinese_ledger() -> Fixture {
    let mut f = Fixture::new();
    f.apply(&[&enroll("M1", "1000.00")]);
    f.apply(&[
        &claim("K1", "M1", "2024-05-06", "300.00", &at_h1("门诊0001")),
        &claim("K2", "M1", "2024-05-07", "80.00", &at_h1("门诊0002")),
    ]);
    f
}

fn chinese_rows(f: &Fixture) -> String {
    format!(
        "{HEADER},psn_name\n{},张三\n{},李四\n",
        f.row("K1", "门诊0001", "M1", false),
        f.row("K2", "门诊0002", "M1", false)
    )
}

#[test]
fn a_gb18030_file_with_chinese_text_is_detected_and_matches() {
    let f = chinese_ledger();
    let text = chinese_rows(&f);
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&text);
    assert!(!unmappable);
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the test file is really not UTF-8"
    );
    write(&f.path("gb.csv"), &bytes);
    let report = detail(&f, "gb.csv", "2024-05-01", "2024-05-31");
    assert_eq!(report.encoding, FileEncoding::Gb18030);
    assert_eq!(report.counts.matched_rows, 2, "{:?}", report.differences);
    assert_eq!(report.exit_code(), 0);
    assert!(render::detail_text(&report, Lang::En).contains("(GB18030)"));
}

#[test]
fn a_gb18030_line_that_does_not_decode_is_a_malformed_row() {
    let f = chinese_ledger();
    let mut bytes = encoding_rs::GB18030
        .encode(&chinese_rows(&f))
        .0
        .into_owned();
    bytes.extend_from_slice(b"K9,V,M1,1.00,0,0,1.00,0,\x81\x20\n");
    write(&f.path("gb-bad.csv"), &bytes);
    let report = detail(&f, "gb-bad.csv", "2024-05-01", "2024-05-31");
    assert_eq!(report.encoding, FileEncoding::Gb18030);
    assert_eq!(
        report.differences,
        vec![Difference::MalformedRow {
            line: 4,
            reason: "line is neither valid UTF-8 nor valid GB18030".into()
        }]
    );
    assert_eq!(report.counts.matched_rows, 2);
}

#[test]
fn a_gb18030_row_far_into_an_ascii_file_still_makes_it_gb18030() {
    let f = chinese_ledger();
    // Blank lines are skipped: 300 KB of them puts the GB18030 row past the first read.
    let mut bytes = format!(
        "{HEADER},psn_name\n{}{},x\n",
        "\n".repeat(300_000),
        f.row("K1", "V", "M1", false)
    )
    .into_bytes();
    let k2 = format!("{},李四\n", f.row("K2", "门诊0002", "M1", false));
    bytes.extend_from_slice(&encoding_rs::GB18030.encode(&k2).0);
    write(&f.path("late.csv"), &bytes);
    let report = detail(&f, "late.csv", "2024-05-01", "2024-05-31");
    assert_eq!(report.encoding, FileEncoding::Gb18030);
    // K1's row names visit V (ASCII), K2's the GB18030 visit: only K2 matches.
    assert_eq!(report.counts.matched_rows, 1, "{:?}", report.differences);
    assert_eq!(report.counts.fields_differ, 1);
}

#[test]
fn a_utf8_file_with_a_bom_is_read_and_its_first_column_found() {
    let f = chinese_ledger();
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(chinese_rows(&f).as_bytes());
    write(&f.path("bom.csv"), &bytes);
    let report = detail(&f, "bom.csv", "2024-05-01", "2024-05-31");
    assert_eq!(report.encoding, FileEncoding::Utf8Bom);
    assert_eq!(report.counts.matched_rows, 2, "{:?}", report.differences);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.status, "match");
    assert!(render::detail_text(&report, Lang::En).contains("result: the file matches the ledger"));
}

#[test]
fn quoted_fields_and_columns_in_any_order_are_read() {
    let f = chinese_ledger();
    let k1 = f.figures("K1");
    let text = format!(
        "Refd_Setl_Flag, psn_no ,SETL_ID,mdtrt_id,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,memo\n\
         0,M1,\"K1\",门诊0001,{},{},{},{},\"a, \"\"quoted\"\" memo\"\n",
        k1.medfee_sumamt, k1.fund_pay_sumamt, k1.acct_pay, k1.cash_payamt
    );
    write(&f.path("order.csv"), text.as_bytes());
    let report = detail(&f, "order.csv", "2024-05-01", "2024-05-31");
    assert_eq!(report.counts.matched_rows, 1, "{:?}", report.differences);
    assert_eq!(
        report.counts.in_ledger_not_in_file, 1,
        "K2 is not in the file"
    );
}

#[test]
fn an_overlong_line_is_a_malformed_row_and_the_next_line_still_reads() {
    let f = chinese_ledger();
    let long = format!(
        "K3,V,M1,1.00,0,0,1.00,0{}",
        ",".repeat(0) + &" ".repeat(20_000)
    );
    let text = format!(
        "{HEADER}\n{long}\n{}\n{}\n",
        f.row("K1", "门诊0001", "M1", false),
        f.row("K2", "门诊0002", "M1", false)
    );
    write(&f.path("long.csv"), text.as_bytes());
    let report = detail(&f, "long.csv", "2024-05-01", "2024-05-31");
    assert_eq!(
        report.differences,
        vec![Difference::MalformedRow {
            line: 2,
            reason: "line is longer than 16384 bytes; settlement rows are far shorter".into()
        }]
    );
    assert_eq!(report.counts.matched_rows, 2);
}

#[test]
fn unreadable_inputs_are_errors_with_exit_status_2() {
    let f = chinese_ledger();
    let run = |name: &str, from: &str, to: &str| {
        reconcile_detail(
            &f.ledger,
            &f.path(name),
            "H1",
            day(from),
            day(to),
            &DetailOptions::default(),
            &mut |_, _| {},
        )
    };
    let missing = run("nope.csv", "2024-05-01", "2024-05-31").unwrap_err();
    assert!(matches!(missing, ReconError::Io { .. }), "{missing}");
    assert!(missing.to_string().starts_with("cannot open "), "{missing}");
    assert_eq!(missing.exit_code(), 2);

    write(&f.path("empty.csv"), b"\n\n");
    let empty = run("empty.csv", "2024-05-01", "2024-05-31").unwrap_err();
    assert!(empty.to_string().contains("the file is empty"), "{empty}");

    write(
        &f.path("nohead.csv"),
        b"setl_id,mdtrt_id,psn_no,medfee_sumamt,fund_pay_sumamt,cash_payamt,refd_setl_flag\n",
    );
    let header = run("nohead.csv", "2024-05-01", "2024-05-31").unwrap_err();
    assert!(matches!(header, ReconError::Header { .. }));
    assert!(
        header.to_string().contains("lacks column(s) acct_pay"),
        "{header}"
    );

    write(
        &f.path("twice.csv"),
        format!("{HEADER},setl_id\n").as_bytes(),
    );
    let twice = run("twice.csv", "2024-05-01", "2024-05-31").unwrap_err();
    assert!(
        twice.to_string().contains("names column 'setl_id' twice"),
        "{twice}"
    );

    write(&f.path("ok.csv"), format!("{HEADER}\n").as_bytes());
    let backwards = run("ok.csv", "2024-05-31", "2024-05-01").unwrap_err();
    assert_eq!(
        backwards,
        ReconError::Request("the period starts on 2024-05-31, after it ends on 2024-05-01".into())
    );
}

#[test]
fn every_byte_soup_is_reported_not_panicked_on() {
    let f = chinese_ledger();
    let soups: [&[u8]; 6] = [
        b"\xff\xfe\x00s\x00e",
        b"setl_id\n\"",
        b"\x81",
        b"\xEF\xBB",
        b"setl_id,mdtrt_id,psn_no,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,refd_setl_flag\n\",\",\"\"\"\n\r\n\r\r,,,,,,,\n-,-,-,-,-,-,-,1\n",
        b"setl_id,mdtrt_id,psn_no,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,refd_setl_flag\nK1,,,99999999999999999999,1e5,NaN,--1,1\n",
    ];
    for (i, soup) in soups.iter().enumerate() {
        let name = format!("soup{i}.csv");
        write(&f.path(&name), soup);
        let result = reconcile_detail(
            &f.ledger,
            &f.path(&name),
            "H1",
            day("2024-05-01"),
            day("2024-05-31"),
            &DetailOptions::default(),
            &mut |_, _| {},
        );
        match result {
            Ok(report) => assert!(report.counts.malformed_rows > 0, "soup {i}: {report:?}"),
            Err(error) => assert_eq!(error.exit_code(), 2, "soup {i}"),
        }
    }
}

/// The totals and statement tests' ledger: H1 and H2 in February and March 2024.
fn totals_ledger() -> Fixture {
    let mut f = Fixture::new();
    f.apply(&[
        &enroll("M1", "5000.00"),
        &enroll("M2", "300.00"),
        &enroll("M5", "100.00"),
    ]);
    f.apply(&[
        &claim("A1", "M1", "2024-03-02", "150.00", &at_h1("V1")),
        &claim("A2", "M2", "2024-03-03", "300.00", &format!(r#","uncovered":"20.00"{}"#, at_h1("V2"))),
        &claim("A3", "M1", "2024-02-27", "500.00", &at_h1("V3")),
        &claim("A4", "M2", "2024-03-04", "200.00", r#","institution":"H2","visit":"V4""#),
        r#"{"cmd":"claim","id":"A5","member":"M2","date":"2024-03-05","level":2,"channel":"manual","eligible":"45.00","institution":"H1"}"#,
        // Special treatment fills the pooled fund's annual maximum; the rest is the
        // large-amount fund's.
        &claim("L1", "M5", "2024-03-25", "90000.00", &format!(r#","special_paid":"80000.00"{}"#, at_h1("V5"))),
    ]);
    f.apply(&[&reverse("A2", "2024-03-10"), &reverse("A3", "2024-03-01")]);
    f
}

fn net(f: &Fixture, plus: &[&str], minus: &[&str]) -> Amounts {
    let mut sum = [0i64; 4];
    for (claims, sign) in [(plus, 1), (minus, -1)] {
        for claim in claims {
            for (i, (_, value)) in amounts(f, claim).named().iter().enumerate() {
                sum[i] += sign * value.fen();
            }
        }
    }
    Amounts {
        medfee_sumamt: Money::from_fen(sum[0]),
        fund_pay_sumamt: Money::from_fen(sum[1]),
        acct_pay: Money::from_fen(sum[2]),
        cash_payamt: Money::from_fen(sum[3]),
    }
}

#[test]
fn totals_rows_are_each_checked_against_the_ledger_with_reversals_netted() {
    let f = totals_ledger();
    // H1 March: A1, A2 and L1 settled; A2 and A3 reversed.
    let h1 = net(&f, &["A1", "A2", "L1"], &["A2", "A3"]);
    let h2 = net(&f, &["A4"], &[]);
    let row = |code: &str, a: &Amounts, count: i64| {
        format!(
            "{code},2024-03-01,2024-03-31,{},{},{},{},{count},9",
            a.medfee_sumamt, a.fund_pay_sumamt, a.acct_pay, a.cash_payamt
        )
    };
    let mut wrong = h1;
    wrong.acct_pay += Money::from_fen(1);
    let text = [
        "fixmedins_code,stmt_begndate,stmt_enddate,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,fixmedins_setl_cnt,clr_type".to_string(),
        row("H1", &h1, 1),
        row("H1", &wrong, 3),
        row("H2", &h2, 1),
        "H3,2024-03-01,2024-03-31,0,0,0,0,0,9".to_string(),
        "H1,2024-03-31,2024-03-01,0,0,0,0,0,9".to_string(),
        "H1,2024/03/01,2024-03-31,0,0,0,0,0,9".to_string(),
        "H1,2024-02-01,2024-02-29,0,0,0,0,x,9".to_string(),
    ]
    .join("\n");
    write(&f.path("totals.csv"), text.as_bytes());
    let report = reconcile_totals(&f.ledger, &f.path("totals.csv"), &mut |_, _| {}).unwrap();

    let statuses: Vec<(u64, TotalsStatus)> =
        report.results.iter().map(|r| (r.line, r.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (2, TotalsStatus::Match),
            (3, TotalsStatus::Differ),
            (4, TotalsStatus::Match),
            (5, TotalsStatus::Match),
            (6, TotalsStatus::Malformed),
            (7, TotalsStatus::Malformed),
            (8, TotalsStatus::Malformed),
        ]
    );
    let first = &report.results[0];
    assert_eq!((first.ledger_settlements, first.ledger_reversals), (3, 2));
    assert_eq!(first.ledger.unwrap().amounts, h1);
    assert_eq!(first.ledger.unwrap().fixmedins_setl_cnt, 1);
    let diffs: Vec<(&str, &str, &str)> = report.results[1]
        .differences
        .iter()
        .map(|d| (d.field, d.file.as_str(), d.ledger.as_str()))
        .collect();
    let (wrong_acct, h1_acct) = (wrong.acct_pay.to_string(), h1.acct_pay.to_string());
    assert_eq!(
        diffs,
        vec![
            ("acct_pay", wrong_acct.as_str(), h1_acct.as_str()),
            ("fixmedins_setl_cnt", "3", "1")
        ]
    );
    assert_eq!(
        report.results[4].reason.as_deref(),
        Some("stmt_begndate 2024-03-31 is after stmt_enddate 2024-03-01")
    );
    assert!(report.results[5]
        .reason
        .as_deref()
        .unwrap()
        .starts_with("stmt_begndate: date '2024/03/01'"));
    assert_eq!(
        report.results[6].reason.as_deref(),
        Some("fixmedins_setl_cnt 'x' is not a whole number")
    );
    assert_eq!(
        (
            report.rows,
            report.matched,
            report.differing,
            report.malformed
        ),
        (7, 3, 1, 3)
    );
    assert_eq!(report.exit_code(), 1);
    let text = render::totals_text(&report, Lang::En);
    assert!(
        text.contains("line 3: H1 2024-03-01 to 2024-03-31: differs: acct_pay file"),
        "{text}"
    );
    assert!(
        text.contains("line 2: H1 2024-03-01 to 2024-03-31: match (3 settlements, 2 reversals)"),
        "{text}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["results"][0]["ledger"]["fixmedins_setl_cnt"], 1);
    assert_eq!(
        json["results"][0]["ledger"]["acct_pay"],
        h1.acct_pay.to_string()
    );

    // The February row alone: A3 was settled then (its reversal is March's).
    let feb = net(&f, &["A3"], &[]);
    write(
        &f.path("feb.csv"),
        format!(
            "fixmedins_code,stmt_begndate,stmt_enddate,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,fixmedins_setl_cnt\nH1,2024-02-01,2024-02-29,{},{},{},{},1\n",
            feb.medfee_sumamt, feb.fund_pay_sumamt, feb.acct_pay, feb.cash_payamt
        )
        .as_bytes(),
    );
    let report = reconcile_totals(&f.ledger, &f.path("feb.csv"), &mut |_, _| {}).unwrap();
    assert_eq!(report.exit_code(), 0, "{report:?}");
}

#[test]
fn the_statement_nets_reversals_in_the_month_they_are_dated() {
    let f = totals_ledger();
    let fen =
        |claim: &str, field: fn(&common::Figures) -> &String| m(field(f.figures(claim))).fen();
    let pooled = |c: &str| fen(c, |x| &x.pooled_paid);
    let large = |c: &str| fen(c, |x| &x.large_amount_paid);
    let account = |c: &str| fen(c, |x| &x.acct_pay);
    assert!(large("L1") > 0, "the test needs a large-amount payment");

    let march = settlement_statement(
        &f.ledger,
        "H1",
        "2024-03".parse::<Month>().unwrap(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(
        (march.settlements, march.reversals, march.net_settlements),
        (3, 2, 1)
    );
    let pooled_net = pooled("A1") + pooled("L1") - pooled("A3");
    assert_eq!(march.pooled_paid, Money::from_fen(pooled_net));
    assert_eq!(march.large_amount_paid, Money::from_fen(large("L1")));
    assert_eq!(march.fund_owed, Money::from_fen(pooled_net + large("L1")));
    assert_eq!(
        march.account_paid,
        Money::from_fen(account("A1") + account("L1") - account("A3"))
    );
    assert_eq!(march.manual_claims_excluded, 1);
    assert_eq!(march.by_region.len(), 1);
    assert_eq!(march.by_region[0].region, "500000");
    let text = render::statement_text(&march, Lang::En);
    assert!(
        text.contains(&format!(
            "\nfunds owe               {}\n",
            gongji_recon::words::money(&march.fund_owed.to_string(), Lang::En)
        )),
        "{text}"
    );
    let json = serde_json::to_value(&march).unwrap();
    assert_eq!(json["month"], "2024-03");
    assert_eq!(
        json["large_amount_paid"],
        march.large_amount_paid.to_string()
    );

    let february =
        settlement_statement(&f.ledger, "H1", "2024-02".parse().unwrap(), &mut |_, _| {}).unwrap();
    assert_eq!((february.settlements, february.reversals), (1, 0));
    assert_eq!(february.pooled_paid, Money::from_fen(pooled("A3")));

    let nobody =
        settlement_statement(&f.ledger, "H9", "2024-03".parse().unwrap(), &mut |_, _| {}).unwrap();
    assert!(nobody.is_empty());
    assert_eq!(nobody.fund_owed, Money::ZERO);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Rows built from pieces that hit the reader's edges: quotes, commas, signs, bad bytes.
    fn row() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"K1".to_vec()),
            Just(b"K2".to_vec()),
            Just("门诊0001".as_bytes().to_vec()),
            Just(b"M1".to_vec()),
            Just(b"0".to_vec()),
            Just(b"1".to_vec()),
            Just(b"-1.00".to_vec()),
            Just(b"300.00".to_vec()),
            Just(b"\"".to_vec()),
            Just(b",".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\x81".to_vec()),
            Just(b"\xEF\xBB\xBF".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..6),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn any_rows_are_each_accounted_for_once_and_never_panic(rows in proptest::collection::vec(row(), 0..12)) {
            let f = chinese_ledger();
            let mut bytes = format!("{HEADER}\n").into_bytes();
            for row in &rows {
                bytes.extend_from_slice(row);
                bytes.push(b'\n');
            }
            write(&f.path("fuzz.csv"), &bytes);
            let report = detail(&f, "fuzz.csv", "2024-05-01", "2024-05-31");
            let c = &report.counts;
            prop_assert_eq!(
                c.file_rows,
                c.matched_rows + c.in_file_not_in_ledger + c.fields_differ + c.duplicate_rows + c.malformed_rows
            );
            prop_assert!(c.in_ledger_not_in_file <= 2);
        }
    }
}

#[test]
fn the_cli_helpers_print_the_report_write_every_difference_and_return_the_status() {
    let f = chinese_ledger();
    write(
        &f.path("one.csv"),
        format!(
            "{HEADER}\n{}\nZ1,V,M1,1.00,0,0,1.00,0\n",
            f.row("K1", "门诊0001", "M1", false)
        )
        .as_bytes(),
    );
    let csv = f.path("diffs.csv");
    let printed = gongji_recon::report::detail(
        &f.ledger,
        &f.path("one.csv"),
        "H1",
        day("2024-05-01")..=day("2024-05-31"),
        Form::Json,
        Some(&csv),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(printed.exit_code, 1);
    assert!(printed.text.ends_with("}\n"));
    let json: serde_json::Value = serde_json::from_str(&printed.text).unwrap();
    assert_eq!(json["counts"]["matched_rows"], 1);
    let written = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(written.lines().count(), 3, "header, Z1 and K2: {written}");
    assert!(written.starts_with("\u{feff}kind,line,"), "{written}");
    assert!(
        written.contains("\nin_file_not_in_ledger,3,Z1,0,M1,V,"),
        "{written}"
    );
    assert!(
        written.contains("\nin_ledger_not_in_file,,K2,0,M1,门诊0002,"),
        "{written}"
    );

    let printed = gongji_recon::report::statement(
        &f.ledger,
        "H1",
        month("2024-05"),
        Form::Text(Lang::En),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(printed.exit_code, 0);
    assert!(
        printed.text.contains("\nsettlements             2\n"),
        "{}",
        printed.text
    );
    let printed = gongji_recon::report::statement(
        &f.ledger,
        "H9",
        month("2024-05"),
        Form::Json,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(
        printed.exit_code, 1,
        "an institution with nothing in the month"
    );

    let missing = gongji_recon::report::totals(
        &f.ledger,
        &f.path("none.csv"),
        Form::Text(Lang::En),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(missing.starts_with("cannot open "), "{missing}");
}
