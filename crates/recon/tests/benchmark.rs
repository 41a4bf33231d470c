//! A generated month of a large hospital, reconciled: time and peak memory.
//!
//! `cargo test --release -p gongji-recon --test benchmark -- --ignored --nocapture`
//! (`GONGJI_BENCH_SETTLEMENTS` sets the size; 300,000 by default).

mod common;

use std::time::Instant;

use gongji_domain::Month;
use gongji_ledger::Ledger;
use gongji_recon::synthetic::build_hospital_month;
use gongji_recon::{reconcile_detail, reconcile_totals, settlement_statement, DetailOptions};

/// A figure from /proc/self/status, in kB (0 where there is no /proc).
fn status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "a benchmark: builds a ledger of hundreds of thousands of settlements"]
fn a_large_hospital_month_reconciles_in_bounded_memory() {
    let settlements: u64 = std::env::var("GONGJI_BENCH_SETTLEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let generated = build_hospital_month(
        &dir.path().join("ledger"),
        &common::policy_json(),
        "H1",
        "2024-03".parse().unwrap(),
        settlements,
        &dir.path().join(FILE_NAME),
    )
    .unwrap();
    println!(
        "generated {} settlements, {} reversals, {} members; file {} rows, {:.1} MB, in {:.1?}",
        generated.settlements,
        generated.reversals,
        generated.members,
        generated.file_rows,
        generated.file_bytes as f64 / 1e6,
        started.elapsed()
    );
    // Reconcile in a fresh process, so its peak memory is its own and not the build's.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "reconcile_the_generated_month",
            "--nocapture",
        ])
        .env(DIR_VARIABLE, dir.path())
        .env("GONGJI_BENCH_ROWS", generated.file_rows.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines().filter(|l| l.starts_with("  ")) {
        println!("{}", line.trim_start());
    }
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const DIR_VARIABLE: &str = "GONGJI_BENCH_DIR";
const FILE_NAME: &str = "h1-2024-03.csv";

#[test]
#[ignore = "run by a_large_hospital_month_reconciles_in_bounded_memory in a process of its own"]
fn reconcile_the_generated_month() {
    let Some(dir) = std::env::var_os(DIR_VARIABLE) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let rows: u64 = std::env::var("GONGJI_BENCH_ROWS").unwrap().parse().unwrap();
    let month: Month = "2024-03".parse().unwrap();
    let file = dir.join(FILE_NAME);

    let ledger = Ledger::open(&dir.join("ledger")).unwrap();
    let records = ledger.log().durable_end();
    let rss_opened_kb = status_kb("VmRSS:");
    let peak_opened_kb = status_kb("VmHWM:");
    let started = Instant::now();
    let report = reconcile_detail(
        &ledger,
        &file,
        "H1",
        month.first_day(),
        month.last_day(),
        &DetailOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    let elapsed = started.elapsed();
    println!(
        "  detail: {} rows against {} log records in {:.2?} ({:.0} rows/s)",
        report.counts.file_rows,
        records,
        elapsed,
        report.counts.file_rows as f64 / elapsed.as_secs_f64(),
    );
    println!(
        "  memory: resident {} MB after opening the ledger (peak {} MB); peak {} MB after the detail reconciliation",
        rss_opened_kb / 1024,
        peak_opened_kb / 1024,
        status_kb("VmHWM:") / 1024
    );
    assert_eq!(
        report.exit_code(),
        0,
        "{:?}",
        &report.differences[..report.differences.len().min(5)]
    );
    assert_eq!(report.counts.matched_rows, rows);

    let started = Instant::now();
    let statement = settlement_statement(&ledger, "H1", month, &mut |_, _| {}).unwrap();
    println!(
        "  statement: {} settlements, {} reversals, fund owed {} in {:.2?}",
        statement.settlements,
        statement.reversals,
        statement.fund_owed,
        started.elapsed()
    );
    let totals_file = dir.join("totals.csv");
    let totals = format!(
        "fixmedins_code,stmt_begndate,stmt_enddate,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,fixmedins_setl_cnt\nH1,{},{},{},{},{},{},{}\n",
        month.first_day(),
        month.last_day(),
        statement.medfee_sumamt,
        statement.fund_owed,
        statement.account_paid,
        statement.cash_paid,
        statement.net_settlements
    );
    std::fs::write(&totals_file, totals).unwrap();
    let started = Instant::now();
    let totals = reconcile_totals(&ledger, &totals_file, &mut |_, _| {}).unwrap();
    println!("  totals: {} in {:.2?}", totals.status, started.elapsed());
    assert_eq!(totals.exit_code(), 0, "{totals:?}");
    println!(
        "  peak resident over all three: {} MB",
        status_kb("VmHWM:") / 1024
    );
}
