//! The crash harness: real SIGKILLs in the middle of `gongji apply`, `rebuild` and
//! `audit export`. After every restart: every line reported applied is in the log, no command is
//! half-applied, the hash chain verifies and the projections equal a rebuild (`audit verify`),
//! and continuing the stream from where the program said it stopped ends with exactly the
//! digest of an uninterrupted run.
//!
//! CI runs a short form. The full run (200 kills of `apply` on a 600-member year):
//! `GONGJI_CRASH_KILLS=200 GONGJI_CRASH_MEMBERS=3000 GONGJI_CRASH_KILL_MS=100 cargo test -p gongji-cli --test crash -- --nocapture`

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::gen::{region_year, Rng};
use support::{assert_already_there, is_keyless, text, TestLedger};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write_input(dir: &std::path::Path, name: &str, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("input written");
    path
}

/// Applies a whole command file; some lines are refused on purpose (exit 1), none may fail to
/// run (exit 2).
fn apply_whole(ledger: &TestLedger, input: &std::path::Path) {
    let out = ledger.run(&["apply", input.to_str().unwrap(), "--json"]);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        text(&out)
    );
}

/// The digest of the whole projection state, after a fresh replay.
fn replay_digest(ledger: &TestLedger) -> String {
    let out = ledger.run(&["audit", "replay", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["digest"].as_str().unwrap().to_string()
}

/// `audit verify` must pass: chain, invariants (nothing half-applied: money is conserved over
/// every unit), and projections equal to a fresh rebuild.
fn verified(ledger: &TestLedger, when: &str) -> String {
    let out = ledger.run(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{when}: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["digest"].as_str().unwrap().to_string()
}

/// Runs `apply` on `input` and kills it with SIGKILL `kill_after_ms` milliseconds in (while it
/// opens, decides, writes or fsyncs). Returns the results it printed before dying, and whether
/// it was killed rather than finishing first.
fn apply_and_kill(
    ledger: &TestLedger,
    input: &std::path::Path,
    kill_after_ms: u64,
) -> (Vec<Value>, bool) {
    let mut child = ledger
        .command(&[
            "apply",
            input.to_str().unwrap(),
            "--json",
            "--batch-lines",
            "37",
            // Projections stored by the background writer every few groups, so kills land
            // while it writes and merges runs too.
            "--store-after-dirty",
            "300",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gongji starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let mut reported = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            reported.push(serde_json::from_str::<Value>(&line).expect("result is JSON"));
        }
        reported
    });
    std::thread::sleep(Duration::from_millis(kill_after_ms));
    let killed = child.try_wait().expect("child state").is_none() && child.kill().is_ok();
    child.wait().expect("child reaped");
    (reader.join().expect("reader thread"), killed)
}

#[test]
fn killed_apply_loses_no_reported_line_and_half_applies_none() {
    let kills_wanted = setting("GONGJI_CRASH_KILLS", 20);
    // Each run is killed this many milliseconds in at most (a larger ledger opens slower).
    let kill_window_ms = setting("GONGJI_CRASH_KILL_MS", 60) as u64;
    let lines = region_year(7, setting("GONGJI_CRASH_MEMBERS", 120));
    let scratch = tempfile::tempdir().unwrap();

    let reference = TestLedger::new();
    let all = write_input(scratch.path(), "all.jsonl", &lines);
    apply_whole(&reference, &all);
    let expected = replay_digest(&reference);

    let ledger = TestLedger::new();
    let mut rng = Rng::new(99);
    let (mut kills, mut recoveries, mut reported_total) = (0usize, 0usize, 0usize);
    // The index of the first line not yet reported: each run continues the stream from there,
    // as an operator would after a crash.
    let mut next = 0usize;
    while kills < kills_wanted && lines.len() - next > 1 {
        let rest = &lines[next..];
        let input = write_input(scratch.path(), "rest.jsonl", rest);
        // Kill at a random moment while opening, deciding, writing or fsyncing.
        let (reported, killed) = apply_and_kill(&ledger, &input, rng.below(kill_window_ms));
        for (i, result) in reported.iter().enumerate() {
            assert_eq!(
                result["line"].as_u64(),
                Some(i as u64 + 1),
                "results come in line order"
            );
        }
        kills += usize::from(killed);
        // Every line reported applied is durable: applying those lines again finds each one
        // already there.
        let acknowledged: Vec<String> = reported
            .iter()
            .filter(|r| r["ok"] == true)
            .map(|r| rest[r["line"].as_u64().unwrap() as usize - 1].clone())
            .filter(|l| !is_keyless(l))
            .collect();
        let (_, again) = ledger.apply(&acknowledged);
        assert_already_there(&acknowledged, &again, &format!("kill {kills}"));
        verified(&ledger, &format!("after kill {kills}"));
        recoveries += 1;
        reported_total += reported.len();
        next += reported.len();
    }
    assert!(
        kills >= kills_wanted.min(recoveries) / 2 && kills > 0,
        "the process finished before most kills: {kills} of {recoveries}"
    );
    let input = write_input(scratch.path(), "rest.jsonl", &lines[next..]);
    apply_whole(&ledger, &input);
    let digest = replay_digest(&ledger);
    println!(
        "crash harness: {kills} kills, {recoveries} recoveries verified, {} commands ({reported_total} reported before kills), digest {} {}",
        lines.len(),
        digest,
        if digest == expected { "matches the uninterrupted run" } else { "DIFFERS" }
    );
    assert_eq!(
        digest, expected,
        "after kills, continuing the stream differs from an uninterrupted run"
    );
}

#[test]
fn killed_rebuild_and_export_leave_the_ledger_whole() {
    let lines = region_year(11, setting("GONGJI_CRASH_MEMBERS", 120));
    let scratch = tempfile::tempdir().unwrap();
    let ledger = TestLedger::new();
    let all = write_input(scratch.path(), "all.jsonl", &lines);
    apply_whole(&ledger, &all);
    let expected = verified(&ledger, "before any kill");
    let mut rng = Rng::new(5);
    let rounds = setting("GONGJI_CRASH_KILLS", 20) / 4 + 2;
    for round in 0..rounds {
        let mut child = ledger
            .command(&["rebuild"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(120)));
        let _ = child.kill();
        child.wait().unwrap();
        // Opening folds whatever the interrupted rebuild left behind its checkpoint.
        assert_eq!(
            verified(&ledger, &format!("after killed rebuild {round}")),
            expected
        );

        let archive = scratch.path().join("archive.jsonl");
        let mut child = ledger
            .command(&["audit", "export", archive.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(120)));
        let _ = child.kill();
        child.wait().unwrap();
        let check = std::process::Command::new(support::gongji_path())
            .args(["audit", "check", archive.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        // The archive is written beside its name and renamed into place when whole: after a
        // kill the name holds nothing (exit 2) or a whole archive replaying to the digest.
        if check.status.code() == Some(0) {
            let report: Value = serde_json::from_slice(&check.stdout).unwrap();
            assert_eq!(report["digest"], expected.as_str(), "{}", text(&check));
        } else {
            assert_eq!(check.status.code(), Some(2), "{}", text(&check));
        }
        let _ = std::fs::remove_file(&archive);
        assert_eq!(
            verified(&ledger, &format!("after killed export {round}")),
            expected
        );
    }
    let archive = scratch.path().join("archive.jsonl");
    assert!(ledger
        .run(&["audit", "export", archive.to_str().unwrap()])
        .status
        .success());
    let check = std::process::Command::new(support::gongji_path())
        .args(["audit", "check", archive.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
}
