//! `gongji export settlements|events` through the binary, on the sample with a second region,
//! a member moved into it, large-amount payments, a premium and a reversal added: the CSV
//! (byte-order mark, header, one row per settlement or record, formula-looking text
//! neutralised, GB18030 the same text) and the Parquet file read back by pyarrow and pandas
//! (from `tools/pyenv`) hold the same rows and the same sums, and those sums are the ledger's
//! own totals (`gongji fund`) to the fen; `--from/--to` and `--region` select what they say;
//! bad arguments are refused with exit 2, leaving no file.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use gongji_domain::Money;
use serde_json::Value;
use support::{text, TestLedger, CHONGQING_POLICY};

/// The claim whose id, institution and visit a spreadsheet would run as formulas.
const FORMULA_CLAIM: &str = "=HYPERLINK(\"http://evil\")";

const REGIONS: [&str; 2] = ["500000", "510100"];

/// The sample, a copy of the policy for region 510100 (where the sample's M005 moved), and:
/// a premium into the large-amount fund, claims past the pooled fund's annual maximum (one
/// reversed, with a reason in Chinese), M005's contribution and claim in 510100.
fn ledger() -> TestLedger {
    let ledger = TestLedger::sample();
    let policy = std::fs::read_to_string(CHONGQING_POLICY)
        .expect("the policy")
        .replace("\"region\": \"500000\"", "\"region\": \"510100\"")
        .replace("\"version\": \"500000/", "\"version\": \"510100/");
    let file = ledger.dir.path().join("510100.json");
    std::fs::write(&file, policy).expect("the second region's policy");
    let out = ledger.run(&["policy", "load", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let claim = serde_json::json!({
        "cmd": "claim", "id": FORMULA_CLAIM, "member": "M001", "date": "2024-09-02",
        "level": 3, "channel": "institution", "eligible": "82000.00",
        "special_paid": "79900.00", "institution": "@H500102", "visit": "-V7"
    });
    let lines = [
        r#"{"cmd":"account_pay","id":"PREM1","holder":"M002","date":"2024-06-10","purpose":"large_amount_premium","amount":"50.00"}"#.to_string(),
        claim.to_string(),
        r#"{"cmd":"claim","id":"BIG2","member":"M002","date":"2024-09-03","level":3,"channel":"institution","eligible":"90000.00","special_paid":"80000.00","institution":"H500101"}"#.to_string(),
        r#"{"cmd":"reverse","id":"BIG2","date":"2024-09-20","reason":"重复结算（测试）"}"#.to_string(),
        r#"{"cmd":"contribute","member":"M005","month":"2024-08","base":"6000.00"}"#.to_string(),
        r#"{"cmd":"claim","id":"C510","member":"M005","date":"2024-08-10","level":3,"channel":"institution","eligible":"900.00","institution":"H510101"}"#.to_string(),
    ];
    ledger.apply_ok(&lines);
    ledger
}

/// A directory of its own for the files exported (so that "nothing left" can be checked).
fn out_dir(ledger: &TestLedger) -> PathBuf {
    let dir = ledger.dir.path().join("out");
    std::fs::create_dir_all(&dir).expect("the output directory");
    dir
}

/// Runs `export ARGS… --out OUT`, which must succeed; returns the file's bytes.
fn export(ledger: &TestLedger, args: &[&str], out: &Path) -> Vec<u8> {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    all.extend(["--out", out.to_str().unwrap()]);
    let run = ledger.run(&all);
    assert!(run.status.success(), "export {args:?}: {}", text(&run));
    std::fs::read(out).expect("the exported file")
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("a directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn money(text: &str) -> Money {
    Money::from_str(text).unwrap_or_else(|e| panic!("not an amount: {text:?}: {e:?}"))
}

/// A CSV file read back: its header and rows.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads UTF-8 CSV text that starts with a byte-order mark.
    fn read(bytes: &[u8]) -> Table {
        let text = std::str::from_utf8(bytes).expect("UTF-8");
        let body = text.strip_prefix('\u{feff}').expect("a byte-order mark");
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        let header = reader
            .headers()
            .expect("a header")
            .iter()
            .map(String::from)
            .collect();
        let rows = reader
            .records()
            .map(|r| r.expect("a row").iter().map(String::from).collect())
            .collect();
        Table { header, rows }
    }

    fn at(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    fn cells(&self, name: &str) -> Vec<&str> {
        let at = self.at(name);
        self.rows.iter().map(|r| r[at].as_str()).collect()
    }

    /// The sum of column `name` over the rows `keep` takes (by the row's cell in `by`).
    fn sum(&self, name: &str, by: &str, keep: impl Fn(&str) -> bool) -> Money {
        let (at, by) = (self.at(name), self.at(by));
        self.rows
            .iter()
            .filter(|r| keep(&r[by]))
            .filter(|r| !r[at].is_empty())
            .map(|r| money(&r[at]))
            .fold(Money::ZERO, |sum, m| sum + m)
    }
}

/// `gongji fund REGION --json`'s figure at `path` (e.g. `["pooled", "outflow"]`).
fn fund(ledger: &TestLedger, region: &str, path: [&str; 2]) -> Money {
    let answer = ledger.query(&["fund", region]);
    money(answer[path[0]][path[1]].as_str().expect("an amount"))
}

/// The number of records in the log (`audit verify`).
fn log_records(ledger: &TestLedger) -> usize {
    let report = ledger.query(&["audit", "verify"]);
    report["records"].as_u64().expect("records") as usize
}

const SETTLEMENT_COLUMNS: [&str; 28] = [
    "position",
    "kind",
    "claim",
    "member",
    "region",
    "date",
    "claim_date",
    "year",
    "level",
    "channel",
    "institution",
    "institution_kind",
    "visit",
    "policy",
    "status",
    "eligible",
    "special_paid",
    "uncovered",
    "deductible_applied",
    "ordinary_paid",
    "ordinary_pooled",
    "large_amount_paid",
    "pooled_paid",
    "account_paid",
    "cash_paid",
    "reimbursed_to_member",
    "reason",
    "recorded_at",
];

const EVENT_COLUMNS: [&str; 18] = [
    "position",
    "recorded_at",
    "own_date",
    "kind",
    "stream",
    "member",
    "region",
    "id",
    "amount",
    "account_in",
    "account_out",
    "pooled_in",
    "pooled_out",
    "large_amount_in",
    "large_amount_out",
    "ledger_in",
    "ledger_out",
    "details",
];

/// The settlements' pooled and large-amount columns, with the retirees' credits the pooled
/// fund paid (from the events), are each region's fund outflows; the events' fund and account
/// columns are the funds' and accounts' inflows and outflows.
fn assert_sums_are_the_ledgers(ledger: &TestLedger, settlements: &Table, events: &Table) {
    let mut accounts = (Money::ZERO, Money::ZERO);
    for region in REGIONS {
        let here = |r: &str| r == region;
        let large = settlements.sum("large_amount_paid", "region", here);
        assert_eq!(
            large,
            fund(ledger, region, ["large_amount", "outflow"]),
            "{region}"
        );
        let credits_paid = {
            let (amount, kind, at) = (events.at("amount"), events.at("kind"), events.at("region"));
            events
                .rows
                .iter()
                .filter(|r| r[kind] == "pooled_credit_paid" && r[at] == region)
                .fold(Money::ZERO, |sum, r| sum + money(&r[amount]))
        };
        let pooled = settlements.sum("pooled_paid", "region", here);
        let pooled_out = fund(ledger, region, ["pooled", "outflow"]);
        assert_eq!(
            pooled + credits_paid,
            pooled_out,
            "{region}: claims and credits"
        );
        for (column, figure) in [
            ("pooled_in", ["pooled", "inflow"]),
            ("pooled_out", ["pooled", "outflow"]),
            ("large_amount_in", ["large_amount", "inflow"]),
            ("large_amount_out", ["large_amount", "outflow"]),
        ] {
            let sum = events.sum(column, "region", here);
            assert_eq!(sum, fund(ledger, region, figure), "{region}: {column}");
        }
        accounts.0 += fund(ledger, region, ["accounts", "inflow"]);
        accounts.1 += fund(ledger, region, ["accounts", "outflow"]);
    }
    let all = |_: &str| true;
    assert_eq!(events.sum("account_in", "kind", all), accounts.0);
    assert_eq!(events.sum("account_out", "kind", all), accounts.1);
}

#[test]
fn csv_exports_hold_one_safe_row_each_and_sum_to_the_ledgers_totals() {
    let ledger = ledger();
    let dir = out_dir(&ledger);
    let bytes = export(
        &ledger,
        &["settlements", "--format", "csv"],
        &dir.join("s.csv"),
    );
    assert!(bytes.starts_with("\u{feff}position,kind,claim,".as_bytes()));
    let settlements = Table::read(&bytes);
    assert_eq!(settlements.header, SETTLEMENT_COLUMNS);
    let kinds: Vec<(&str, &str)> = settlements
        .cells("claim")
        .into_iter()
        .zip(settlements.cells("kind"))
        .collect();
    let formula = format!("'{FORMULA_CLAIM}");
    let expected = [
        ("C001", "settlement"),
        ("C002", "settlement"),
        ("C003", "settlement"),
        ("C002", "reversal"),
        (formula.as_str(), "settlement"),
        ("BIG2", "settlement"),
        ("BIG2", "reversal"),
        ("C510", "settlement"),
    ];
    assert_eq!(
        kinds, expected,
        "one row per settlement and reversal, in log order"
    );
    let big = &settlements.rows[4];
    assert_eq!(big[settlements.at("institution")], "'@H500102");
    assert_eq!(big[settlements.at("visit")], "'-V7");
    let reversal = &settlements.rows[6];
    assert_eq!(
        reversal[settlements.at("large_amount_paid")],
        "-3880.00",
        "a number still"
    );
    assert_eq!(reversal[settlements.at("date")], "2024-09-20");
    assert_eq!(reversal[settlements.at("claim_date")], "2024-09-03");
    assert_eq!(reversal[settlements.at("reason")], "重复结算（测试）");
    assert_eq!(
        settlements.sum("pooled_paid", "claim", |c| c == "BIG2"),
        Money::ZERO
    );

    let bytes = export(&ledger, &["events", "--format", "csv"], &dir.join("e.csv"));
    let events = Table::read(&bytes);
    assert_eq!(events.header, EVENT_COLUMNS);
    assert_eq!(
        events.rows.len(),
        log_records(&ledger),
        "one row per record"
    );
    let positions: Vec<String> = (0..events.rows.len()).map(|p| p.to_string()).collect();
    assert_eq!(events.cells("position"), positions);
    let ids = events.cells("id");
    assert!(ids.contains(&formula.as_str()) && !ids.contains(&FORMULA_CLAIM));
    for details in events.cells("details") {
        let event: Value = serde_json::from_str(details).expect("the event as JSON");
        assert!(event["event"].is_string(), "{event}");
    }
    assert_sums_are_the_ledgers(&ledger, &settlements, &events);

    let gb18030 = export(
        &ledger,
        &["settlements", "--format", "csv", "--encoding", "gb18030"],
        &dir.join("s-gb.csv"),
    );
    assert!(std::str::from_utf8(&gb18030).is_err(), "not UTF-8");
    let (decoded, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(&gb18030);
    assert!(!had_errors);
    let utf8 = std::fs::read_to_string(dir.join("s.csv")).expect("the UTF-8 export");
    assert_eq!(
        decoded,
        utf8.strip_prefix('\u{feff}').expect("a byte-order mark")
    );
    assert_eq!(
        files_in(&dir),
        ["e.csv", "s-gb.csv", "s.csv"],
        "no temporary left"
    );
}

/// Reads each Parquet file given with pyarrow and pandas; prints, per file, the column types,
/// the rows and row groups, the money columns' totals (pyarrow) and sums by region (pandas),
/// and the first row's recorded time (microseconds) and own date.
const READ_PARQUET: &str = r#"
import json, sys
from decimal import Decimal
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pandas as pd

answer = {}
for path in sys.argv[1:]:
    table = pq.read_table(path)
    meta = pq.ParquetFile(path).metadata
    money = [f.name for f in table.schema if str(f.type) == "decimal128(18, 2)"]
    totals = {c: "%.2f" % (pc.sum(table[c]).as_py() or Decimal(0)) for c in money}
    frame = pd.read_parquet(path)
    by_region = {}
    for region, rows in frame.groupby("region", dropna=False):
        by_region[str(region)] = {
            c: "%.2f" % sum((v for v in rows[c] if v is not None and not pd.isna(v)), Decimal(0))
            for c in money
        }
    time = next(f.name for f in table.schema if f.name == "recorded_at")
    answer[path] = {
        "types": {f.name: str(f.type) for f in table.schema},
        "nullable": {f.name: f.nullable for f in table.schema},
        "rows": table.num_rows,
        "row_groups": meta.num_row_groups,
        "pandas_rows": len(frame),
        "totals": totals,
        "by_region": by_region,
        "first_recorded_micros": table[time].cast("int64")[0].as_py() if table.num_rows else None,
        "metadata": {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()},
    }
print(json.dumps(answer))
"#;

/// The venv's python from `tools/pyenv`, which installs pyarrow and pandas when missing.
fn python() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/pyenv");
    let out = Command::new(script).output().expect("tools/pyenv runs");
    assert!(out.status.success(), "tools/pyenv failed: {}", text(&out));
    let path = String::from_utf8(out.stdout).expect("a path");
    PathBuf::from(path.trim())
}

fn read_parquet(files: &[&Path]) -> Value {
    let python = python();
    let out = Command::new(&python)
        .arg("-c")
        .arg(READ_PARQUET)
        .args(files)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "reading the Parquet files: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn parquet_exports_read_back_in_pyarrow_and_pandas_with_the_csvs_rows_and_sums() {
    let ledger = ledger();
    let dir = out_dir(&ledger);
    let mut csv = BTreeMap::new();
    let mut files = Vec::new();
    for table in ["settlements", "events"] {
        let bytes = export(
            &ledger,
            &[table, "--format", "csv"],
            &dir.join(format!("{table}.csv")),
        );
        csv.insert(table, Table::read(&bytes));
        let file = dir.join(format!("{table}.parquet"));
        let bytes = export(&ledger, &[table, "--format", "parquet"], &file);
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
        files.push(file);
    }
    let read = read_parquet(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    for (table, file) in ["settlements", "events"].into_iter().zip(&files) {
        let read = &read[file.to_str().unwrap()];
        let csv = &csv[table];
        assert_eq!(read["metadata"]["gongji.export"], table);
        assert_eq!(read["rows"], csv.rows.len(), "{table}");
        assert_eq!(read["pandas_rows"], csv.rows.len(), "{table}");
        assert_eq!(
            read["row_groups"], 1,
            "{table}: a small file is one row group"
        );
        let types = read["types"].as_object().expect("types");
        let names: Vec<&str> = types.keys().map(String::as_str).collect();
        assert_eq!(
            names, csv.header,
            "{table}: the same columns in the same order"
        );
        assert_eq!(types["recorded_at"], "timestamp[us, tz=UTC]");
        assert_eq!(types["position"], "int64");
        for (name, kind) in types {
            if let Some(total) = read["totals"].get(name) {
                assert_eq!(kind, "decimal128(18, 2)");
                let total = money(total.as_str().expect("a total"));
                assert_eq!(
                    total,
                    csv.sum(name, "position", |_| true),
                    "{table}: {name}"
                );
            }
        }
        // The first row's recorded time, as the CSV writes it.
        let micros = read["first_recorded_micros"].as_i64().expect("micros");
        let text = &csv.rows[0][csv.at("recorded_at")];
        let at = chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339");
        assert_eq!(at.timestamp_micros(), micros, "{table}");
        // Sums by region, as pandas makes them, equal the CSV's.
        for region in REGIONS {
            let sums = read["by_region"][region]
                .as_object()
                .expect("the region's sums");
            for (name, sum) in sums {
                let csv_sum = csv.sum(name, "region", |r| r == region);
                assert_eq!(
                    money(sum.as_str().expect("a sum")),
                    csv_sum,
                    "{table} {region} {name}"
                );
            }
        }
    }
    let settlements = &read[files[0].to_str().unwrap()]["types"];
    assert_eq!(settlements["date"], "date32[day]");
    assert_eq!(settlements["claim"], "string");
    assert_eq!(settlements["large_amount_paid"], "decimal128(18, 2)");
    assert_eq!(read[files[0].to_str().unwrap()]["nullable"]["visit"], true);
    assert_eq!(read[files[0].to_str().unwrap()]["nullable"]["claim"], false);
    let events = &read[files[1].to_str().unwrap()]["types"];
    assert_eq!(events["own_date"], "date32[day]");
    assert_eq!(events["details"], "string");
    assert_eq!(events["amount"], "decimal128(18, 2)");
    // And so the Parquet sums are the ledger's, as the CSV's are.
    assert_sums_are_the_ledgers(&ledger, &csv["settlements"], &csv["events"]);
}

#[test]
fn dates_and_region_select_what_they_say() {
    let ledger = ledger();
    let dir = out_dir(&ledger);
    let april = ["--from", "2024-04-01", "--to", "2024-04-30"];
    let args = [&["settlements", "--format", "csv"][..], &april].concat();
    let table = Table::read(&export(&ledger, &args, &dir.join("april.csv")));
    let rows: Vec<(&str, &str)> = table
        .cells("claim")
        .into_iter()
        .zip(table.cells("kind"))
        .collect();
    assert_eq!(rows, [("C003", "settlement"), ("C002", "reversal")]);
    let args = [&["events", "--format", "csv"][..], &april].concat();
    let table = Table::read(&export(&ledger, &args, &dir.join("april-events.csv")));
    assert!(!table.rows.is_empty());
    assert!(table
        .cells("own_date")
        .iter()
        .all(|d| ("2024-04-01"..="2024-04-30").contains(d)));

    let region = ["--region", "510100"];
    let args = [&["settlements", "--format", "csv"][..], &region].concat();
    let table = Table::read(&export(&ledger, &args, &dir.join("510100.csv")));
    assert_eq!(table.cells("claim"), ["C510"]);
    let args = [&["events", "--format", "csv"][..], &region].concat();
    let events = Table::read(&export(&ledger, &args, &dir.join("510100-events.csv")));
    let kinds: BTreeSet<&str> = events.cells("kind").into_iter().collect();
    let expected = [
        "account_credited",
        "claim_settled",
        "fund_claim_paid",
        "policy_loaded",
        "pooled_contributed",
        "transferred",
    ];
    assert_eq!(
        kinds,
        expected.into_iter().collect(),
        "M005's events once it moved"
    );
    let members: BTreeSet<&str> = events.cells("member").into_iter().collect();
    assert_eq!(members, ["", "M005"].into_iter().collect());
    // A member's credit names no region: it counts for the region M005 was in then.
    let credited = events
        .cells("kind")
        .iter()
        .position(|k| *k == "account_credited");
    let credited = &events.rows[credited.expect("M005's credit")];
    assert_eq!(credited[events.at("region")], "510100");
    for (column, figure) in [("pooled_in", "inflow"), ("pooled_out", "outflow")] {
        let sum = events.sum(column, "kind", |_| true);
        assert_eq!(sum, fund(&ledger, "510100", ["pooled", figure]), "{column}");
    }
    let files = files_in(&dir);
    assert_eq!(files.len(), 4, "{files:?}");
}

#[test]
fn bad_arguments_are_refused_with_exit_2_and_leave_no_file() {
    let ledger = ledger();
    let dir = out_dir(&ledger);
    let out = dir.join("x.csv");
    let out = out.to_str().unwrap();
    let missing = dir.join("no/such/dir/x.csv");
    let refused: [&[&str]; 6] = [
        &["export", "members", "--format", "csv", "--out", out],
        &["export", "events", "--format", "xlsx", "--out", out],
        &[
            "export",
            "events",
            "--format",
            "csv",
            "--from",
            "2024-05-01",
            "--to",
            "2024-04-01",
            "--out",
            out,
        ],
        &[
            "export",
            "events",
            "--format",
            "parquet",
            "--encoding",
            "gb18030",
            "--out",
            out,
        ],
        &[
            "export", "events", "--format", "csv", "--region", "999999", "--out", out,
        ],
        &[
            "export",
            "events",
            "--format",
            "csv",
            "--out",
            missing.to_str().unwrap(),
        ],
    ];
    for args in refused {
        let run = ledger.run(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", text(&run));
        assert!(!run.stderr.is_empty(), "{args:?}: says why");
        assert!(
            files_in(&dir).is_empty(),
            "{args:?} left {:?}",
            files_in(&dir)
        );
    }
    let run = ledger.run(&[
        "export",
        "events",
        "--format",
        "csv",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(2), "a directory: {}", text(&run));
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
    let unwritable = ledger.run(refused[5]);
    let said = String::from_utf8_lossy(&unwritable.stderr);
    assert!(
        said.contains(&format!("cannot write {}", missing.display())) && !said.contains(".partial"),
        "names the file asked for: {said}"
    );
    let from_after_to = ledger.run(refused[2]);
    let said = String::from_utf8_lossy(&from_after_to.stderr);
    assert!(
        said.contains("--from 2024-05-01 is after --to 2024-04-01"),
        "{said}"
    );

    // A file already there is replaced whole, once the export is complete.
    std::fs::write(dir.join("x.csv"), "old").expect("an old file");
    let bytes = export(
        &ledger,
        &["settlements", "--format", "csv"],
        &dir.join("x.csv"),
    );
    assert!(bytes.starts_with("\u{feff}position,".as_bytes()));
    assert_eq!(files_in(&dir), ["x.csv"]);
}

/// A Parquet file as pyarrow reads it: its rows, its columns' types and the sum of `column`.
fn parquet_summary(file: &Path, column: &str) -> Value {
    let script = r#"
import json, sys
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
print(json.dumps({"rows": table.num_rows, "types": [str(t) for t in table.schema.types],
                  "sum": str(sum(table.column(sys.argv[2]).to_pylist()))}))
"#;
    let out = std::process::Command::new(python())
        .args(["-c", script, file.to_str().unwrap(), column])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn funds_by_month_sum_to_the_ledgers_totals_and_end_at_its_balances() {
    let ledger = ledger();
    let dir = out_dir(&ledger);
    let all = Table::read(&export(
        &ledger,
        &["funds", "--format", "csv"],
        &dir.join("funds.csv"),
    ));
    assert_eq!(
        all.header,
        [
            "region",
            "month",
            "pooled_in",
            "pooled_out",
            "pooled_balance",
            "large_amount_in",
            "large_amount_out",
            "large_amount_balance"
        ]
    );
    for region in REGIONS {
        let here = |r: &str| r == region;
        for (column, figure) in [
            ("pooled_in", ["pooled", "inflow"]),
            ("pooled_out", ["pooled", "outflow"]),
            ("large_amount_in", ["large_amount", "inflow"]),
            ("large_amount_out", ["large_amount", "outflow"]),
        ] {
            let sum = all.sum(column, "region", here);
            assert_eq!(sum, fund(&ledger, region, figure), "{region}: {column}");
        }
        let rows: Vec<&Vec<String>> = all
            .rows
            .iter()
            .filter(|r| r[all.at("region")] == region)
            .collect();
        // 500000 moved over many months; 510100 (M005's contribution and claim) in August.
        let months_min = if region == "500000" { 2 } else { 1 };
        assert!(rows.len() >= months_min, "{region}: {} months", rows.len());
        let months: Vec<&str> = rows.iter().map(|r| r[all.at("month")].as_str()).collect();
        assert!(months.windows(2).all(|m| m[0] < m[1]), "{months:?}");
        assert!(months.iter().all(|m| m.ends_with("-01")), "{months:?}");
        let last = rows.last().unwrap();
        for (column, figure) in [
            ("pooled_balance", ["pooled", "balance"]),
            ("large_amount_balance", ["large_amount", "balance"]),
        ] {
            let balance = money(&last[all.at(column)]);
            assert_eq!(balance, fund(&ledger, region, figure), "{region}: {column}");
        }
    }

    // A region and whole months: the rows of those months, each balance the fund's own.
    let some = Table::read(&export(
        &ledger,
        &[
            "funds",
            "--format",
            "csv",
            "--region",
            "500000",
            "--from",
            "2024-03-15",
            "--to",
            "2024-09-01",
        ],
        &dir.join("some.csv"),
    ));
    let expected: Vec<&Vec<String>> = all
        .rows
        .iter()
        .filter(|r| {
            let month = r[all.at("month")].as_str();
            r[all.at("region")] == "500000" && ("2024-03-01"..="2024-09-01").contains(&month)
        })
        .collect();
    assert!(!expected.is_empty());
    let got: Vec<&Vec<String>> = some.rows.iter().collect();
    assert_eq!(got, expected);

    // Parquet: the same rows, read back by pyarrow.
    let parquet = dir.join("funds.parquet");
    export(&ledger, &["funds", "--format", "parquet"], &parquet);
    let read = parquet_summary(&parquet, "pooled_out");
    assert_eq!(read["rows"], all.rows.len(), "{read}");
    assert_eq!(read["types"][1], "date32[day]", "{read}");
    assert_eq!(read["types"][2], "decimal128(18, 2)", "{read}");
    let pooled_out = all.sum("pooled_out", "region", |_| true);
    assert_eq!(read["sum"], pooled_out.to_string(), "{read}");
}

#[test]
fn accounts_are_one_row_each_as_they_stand_and_sum_to_the_ledgers_totals() {
    let ledger = ledger();
    let dir = out_dir(&ledger);
    let all = Table::read(&export(
        &ledger,
        &["accounts", "--format", "csv"],
        &dir.join("accounts.csv"),
    ));
    assert_eq!(
        all.header,
        [
            "member",
            "state",
            "region",
            "region_since",
            "scheme",
            "enrolled_on",
            "retired_on",
            "deceased_on",
            "closed_on",
            "balance",
            "credited_total",
            "paid_total",
            "months_credited",
            "relatives_bound",
            "bindings"
        ]
    );
    let members = all.cells("member");
    assert_eq!(members, ["M001", "M002", "M003", "M004", "M005"]);
    // Each row is `account --json` of its member.
    for (row, member) in all.rows.iter().zip(&members) {
        let account = ledger.query(&["account", member]);
        for column in ["state", "region", "region_since", "scheme", "balance"] {
            let expected = account[column].as_str().unwrap_or_default();
            assert_eq!(row[all.at(column)], expected, "{member}: {column}");
        }
        let closed = account["closed_on"].as_str().unwrap_or_default();
        assert_eq!(row[all.at("closed_on")], closed, "{member}");
        let bound = account["family"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["until"].is_null())
            .count();
        assert_eq!(
            row[all.at("relatives_bound")],
            bound.to_string(),
            "{member}"
        );
    }
    // The balances of a region's accounts are its accounts' balance. The credits and payments
    // of all accounts are every region's inflows and outflows but for transfers: a balance
    // moved between regions leaves one region's totals and enters the other's, while the
    // account's own credits and payments stay as they were.
    let (mut inflow, mut outflow) = (Money::ZERO, Money::ZERO);
    for region in REGIONS {
        let sum = all.sum("balance", "region", |r| r == region);
        assert_eq!(
            sum,
            fund(&ledger, region, ["accounts", "balance"]),
            "{region}"
        );
        inflow += fund(&ledger, region, ["accounts", "inflow"]);
        outflow += fund(&ledger, region, ["accounts", "outflow"]);
    }
    let moved = ledger.query(&["transfers", "M005"])["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| money(t["balance"].as_str().unwrap()))
        .fold(Money::ZERO, |sum, m| sum + m);
    assert!(moved > Money::ZERO);
    assert_eq!(
        all.sum("credited_total", "region", |_| true),
        inflow - moved
    );
    assert_eq!(all.sum("paid_total", "region", |_| true), outflow - moved);

    // One region: the accounts that belong to it now.
    let one = Table::read(&export(
        &ledger,
        &["accounts", "--format", "csv", "--region", "510100"],
        &dir.join("510100.csv"),
    ));
    assert_eq!(one.cells("member"), ["M005"]);
    // A period selects movements, not accounts: refused, and no file left.
    let refused = ledger.run(&[
        "export",
        "accounts",
        "--format",
        "csv",
        "--to",
        "2024-06-30",
        "--out",
        dir.join("dated.csv").to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--as-of"), "{}", text(&refused));
    assert!(!dir.join("dated.csv").exists());

    // Parquet, read back by pyarrow: the same rows and balances.
    let parquet = dir.join("accounts.parquet");
    export(&ledger, &["accounts", "--format", "parquet"], &parquet);
    let read = parquet_summary(&parquet, "balance");
    assert_eq!(read["rows"], all.rows.len(), "{read}");
    assert_eq!(read["types"][3], "date32[day]", "{read}");
    assert_eq!(read["types"][9], "decimal128(18, 2)", "{read}");
    assert_eq!(read["types"][12], "int64", "{read}");
    let balance = all.sum("balance", "region", |_| true);
    assert_eq!(read["sum"], balance.to_string(), "{read}");
}
