//! A ledger written by the release before frame format 2 (commit 9bd7207, `tests/fixtures/
//! format1`: `gongji-gen --members 15 --seed 7 --months 4` applied after the Chongqing policy,
//! every frame in format 1, with its index, its archive and what that release answered) opens,
//! verifies, replays to the same digest, answers as that release did, and goes on: its new
//! records are format-2 frames after the format-1 ones, with one hash chain across both.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::{check_and_import, copy_dir, first_segment, frames, text, TestLedger};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/format1")
        .join(name)
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(name)).expect("fixture")).expect("fixture JSON")
}

/// The format byte (the body's first) of every frame of the ledger's first segment.
fn frame_formats(ledger: &TestLedger) -> Vec<u8> {
    let bytes = std::fs::read(first_segment(ledger)).expect("segment");
    frames(&bytes)
        .iter()
        .map(|(start, _)| bytes[start + 8])
        .collect()
}

/// `history --json`, as printed.
fn history(ledger: &TestLedger, member: &str) -> String {
    let out = ledger.run(&["history", member, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn a_format_1_ledger_opens_verifies_answers_and_goes_on_in_format_2() {
    let ledger = TestLedger::directory();
    copy_dir(&fixture("ledger"), &ledger.data());
    assert_eq!(frame_formats(&ledger), vec![1; 156]);
    let out = ledger.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ledger.query(&["audit", "replay"]),
        fixture_json("replay.json")
    );
    assert_eq!(
        ledger.query(&["account", "M0000003"]),
        fixture_json("account-M0000003.json")
    );
    // Every event as that release read it: positions, event ids, own dates, figures.
    let old_history = std::fs::read_to_string(fixture("history-M0000003.json")).expect("fixture");
    assert_eq!(history(&ledger, "M0000003"), old_history);

    let answers = ledger.apply_ok(&[
        json!({"cmd": "contribute", "member": "M0000000", "month": "2024-05", "base": "6284.12"})
            .to_string(),
        json!({"cmd": "claim", "id": "C9", "member": "M0000003", "date": "2024-05-03",
               "level": 1, "channel": "institution", "eligible": "300.00"})
        .to_string(),
    ]);
    assert_eq!(answers.len(), 2, "{answers:?}");
    let formats = frame_formats(&ledger);
    assert_eq!(&formats[..156], &[1; 156][..]);
    assert!(
        formats.len() > 156 && formats[156..].iter().all(|&f| f == 2),
        "{formats:?}"
    );
    let out = ledger.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ledger.run(&["rebuild"]);
    assert!(out.status.success(), "{}", text(&out));
    let after: Value = ledger.query(&["audit", "replay"]);
    assert_eq!(after["records"], formats.len());
    assert_ne!(after["digest"], fixture_json("replay.json")["digest"]);
    // The old events read the same after the new ones (history grows by the claim only).
    assert!(history(&ledger, "M0000003").starts_with(old_history.trim_end_matches(['\n', ']'])));

    // Its own archive, old frames and new, checks and imports to the same digest.
    let archive = ledger.dir.path().join("continued.archive");
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = TestLedger::directory();
    check_and_import(&archive, &restored);
    assert_eq!(restored.query(&["audit", "replay"]), after);
    assert!(frame_formats(&restored).iter().all(|&f| f == 2));
}

#[test]
fn the_format_1_releases_archive_checks_and_imports() {
    let ledger = TestLedger::empty();
    check_and_import(&fixture("format1.archive"), &ledger);
    assert_eq!(
        ledger.query(&["audit", "replay"]),
        fixture_json("replay.json")
    );
    assert_eq!(
        ledger.query(&["account", "M0000003"]),
        fixture_json("account-M0000003.json")
    );
}
