//! A real SIGKILL in the middle of `gongji apply`: nothing reported is lost, nothing is
//! half-applied, and finishing the stream gives exactly what an uninterrupted run gives.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;
use support::gen::{region_year, Rng};
use support::{text, TestLedger};

const MEMBERS: usize = 120;

fn write_input(dir: &std::path::Path, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join("commands.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").expect("input written");
    path
}

/// Every member's account and 2024 year, and the region's funds: the answers to compare.
fn answers(ledger: &TestLedger) -> Vec<Value> {
    let mut all = vec![ledger.query(&["fund", "500000"])];
    for m in 0..MEMBERS {
        let member = format!("M{m:05}");
        all.push(ledger.query(&["account", &member]));
        all.push(ledger.query(&["year", &member, "2024"]));
    }
    all
}

/// Runs `apply` on `input` and kills it with SIGKILL once `kill_after` results were printed.
/// Returns the results it printed before dying.
fn apply_and_kill(ledger: &TestLedger, input: &std::path::Path, kill_after: usize) -> Vec<Value> {
    let mut child = ledger
        .command(&[
            "apply",
            input.to_str().unwrap(),
            "--json",
            "--batch-lines",
            "37",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gongji starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut reported = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        reported.push(serde_json::from_str::<Value>(&line).expect("result is JSON"));
        if reported.len() >= kill_after {
            child.kill().expect("SIGKILL delivered");
            break;
        }
    }
    child.wait().expect("child reaped");
    reported
}

/// Compares answer by answer, printing only the first difference.
fn compare(actual: &[Value], expected: &[Value], when: &str) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a, e, "{when}: the ledger differs from an uninterrupted run");
    }
}

/// Codes that say "this line's effect is already in the ledger".
fn is_duplicate(code: &str) -> bool {
    matches!(
        code,
        "duplicate_id"
            | "already_enrolled"
            | "already_credited"
            | "already_reversed"
            | "already_bound"
    )
}

#[test]
fn killed_apply_loses_no_reported_line_and_half_applies_none() {
    let lines = region_year(7, MEMBERS);
    let scratch = tempfile::tempdir().unwrap();
    let input = write_input(scratch.path(), &lines);

    let reference = TestLedger::new();
    let out = reference.run(&["apply", input.to_str().unwrap(), "--json"]);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        text(&out)
    );
    let expected = answers(&reference);

    let ledger = TestLedger::new();
    let mut rng = Rng::new(99);
    let mut kills = 0;
    // The index of the first line not yet reported: each run continues the stream from there,
    // as an operator would after a crash.
    let mut next = 0usize;
    for round in 0..8 {
        let rest = &lines[next..];
        if rest.len() < 2 {
            break;
        }
        let input = write_input(scratch.path(), rest);
        let kill_after = 1 + rng.below(rest.len() as u64 / 3) as usize;
        let reported = apply_and_kill(&ledger, &input, kill_after);
        for (i, result) in reported.iter().enumerate() {
            assert_eq!(
                result["line"].as_u64(),
                Some(i as u64 + 1),
                "results come in line order"
            );
        }
        if reported.len() >= kill_after {
            kills += 1;
        }
        // Every line reported applied is durable: applying those lines again finds each one
        // already there.
        let acknowledged: Vec<String> = reported
            .iter()
            .filter(|r| r["ok"] == true)
            .map(|r| rest[r["line"].as_u64().unwrap() as usize - 1].clone())
            .filter(|l| !l.contains("\"allocate\""))
            .collect();
        let (_, again) = ledger.apply(&acknowledged);
        assert_eq!(again.len(), acknowledged.len());
        for (line, result) in acknowledged.iter().zip(&again) {
            let code = result["error"]["code"].as_str().unwrap_or("applied again");
            assert!(
                is_duplicate(code),
                "round {round}: reported line lost: {line} -> {result}"
            );
        }
        next += reported.len();
    }
    assert!(
        kills >= 6,
        "the process finished before most kills: {kills}"
    );
    let input = write_input(scratch.path(), &lines[next..]);
    let out = ledger.run(&["apply", input.to_str().unwrap(), "--json"]);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        text(&out)
    );
    compare(
        &answers(&ledger),
        &expected,
        "after kills, continuing the stream",
    );

    let out = ledger.run(&["rebuild"]);
    assert!(out.status.success(), "{}", text(&out));
    compare(
        &answers(&ledger),
        &expected,
        "after a rebuild of the projections",
    );
}
