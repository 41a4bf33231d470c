//! Links planted in the data directory or beside an export, through the real binary: the
//! ledger refuses them naming the link, and never truncates, deletes or writes what a link
//! points at (issue 13, item 1). Every target is a file or directory in the test's own temp
//! dir whose bytes are checked unchanged afterwards.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::{text, TestLedger};

const SECRET: &[u8] = b"root:x:0:0:not the ledger's to touch\n";

/// A file outside the data directory (inside the test's temp dir) with known bytes.
fn victim_file(ledger: &TestLedger, name: &str) -> PathBuf {
    let path = ledger.dir.path().join(name);
    std::fs::write(&path, SECRET).unwrap();
    path
}

/// A directory outside the data directory holding files a store would delete.
fn victim_dir(ledger: &TestLedger, names: &[&str]) -> PathBuf {
    let dir = ledger.dir.path().join("victim");
    std::fs::create_dir(&dir).unwrap();
    for name in names {
        std::fs::write(dir.join(name), SECRET).unwrap();
    }
    dir
}

/// The file's bytes are still `SECRET` (shown as text when they are not).
fn assert_untouched(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes == SECRET,
        "the link's target {} was changed: now {} bytes: {:?}",
        path.display(),
        bytes.len(),
        String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
    );
}

fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// The command failed cleanly (not a panic) and its message names `link`.
fn assert_refused_naming(out: &Output, link: &Path) {
    let said = text(out);
    let code = out.status.code();
    assert!(
        code.is_some_and(|c| c != 0 && c != 101),
        "exit {code:?}: {said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    assert!(
        said.contains(&link.display().to_string()),
        "the message does not name {}: {said}",
        link.display()
    );
    assert!(
        said.contains("link"),
        "the message does not say link: {said}"
    );
}

/// The segment after the last one, named for the next position.
fn next_segment(ledger: &TestLedger) -> PathBuf {
    let out = ledger.run(&["audit", "replay", "--json"]);
    let replay: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = replay["records"].as_u64().unwrap();
    ledger
        .data()
        .join("segments")
        .join(format!("{records:020}.seg"))
}

fn segment_link_is_refused(command: &[&str]) {
    let ledger = TestLedger::sample();
    let victim = victim_file(&ledger, "passwd");
    let link = next_segment(&ledger);
    symlink(&victim, &link).unwrap();
    let out = ledger.run(command);
    assert_untouched(&victim);
    assert_refused_naming(&out, &link);
}

#[test]
fn a_segment_link_is_refused_by_a_query_and_its_target_kept() {
    if support::directory_only("a link in place of a segment file of the data directory") {
        return;
    }
    segment_link_is_refused(&["account", "M001"]);
}

#[test]
fn a_segment_link_is_refused_by_audit_verify_and_its_target_kept() {
    if support::directory_only("a link in place of a segment file of the data directory") {
        return;
    }
    segment_link_is_refused(&["audit", "verify", "--json"]);
}

/// `index/NAME` replaced by a link to a directory holding `files` (names a store there would
/// delete or overwrite): `account` refuses naming the link, and the directory is unchanged.
fn index_dir_link_is_refused(name: &str, files: &[&str]) {
    let ledger = TestLedger::sample();
    let victim = victim_dir(&ledger, files);
    let before = contents(&victim);
    let link = ledger.data().join("index").join(name);
    std::fs::remove_dir_all(&link).unwrap();
    symlink(&victim, &link).unwrap();
    let out = ledger.run(&["account", "M001"]);
    let after = contents(&victim);
    assert!(
        after == before,
        "files in the link's target changed: {:?} became {:?}",
        before.keys().collect::<Vec<_>>(),
        after.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    assert_refused_naming(&out, &link);
}

#[test]
fn a_projections_link_is_refused_and_the_directory_it_names_kept() {
    if support::directory_only("a link in place of the data directory's projections") {
        return;
    }
    index_dir_link_is_refused(
        "projections",
        &["notes.txt", "00000000000000000001.run", "MANIFEST"],
    );
}

#[test]
fn a_streams_link_is_refused_and_the_directory_it_names_kept() {
    if support::directory_only("a link in place of the data directory's streams index") {
        return;
    }
    let run = format!("{:020}-{:020}.run", 0, 5);
    index_dir_link_is_refused("streams", &["work.tmp", &run, "other.txt"]);
}

#[test]
fn a_quarantine_tmp_link_is_refused_and_its_target_kept() {
    if support::directory_only("a link in place of the data directory's quarantine marker") {
        return;
    }
    let ledger = TestLedger::sample();
    let segment = ledger
        .data()
        .join("segments")
        .join(format!("{:020}.seg", 0));
    // Damage a byte in the middle, so that verify would write the quarantine marker.
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let victim = victim_file(&ledger, "shadow");
    let link = ledger.data().join("QUARANTINE.tmp");
    symlink(&victim, &link).unwrap();
    let out = ledger.run(&["audit", "verify", "--json"]);
    assert_untouched(&victim);
    assert_refused_naming(&out, &link);
}

#[test]
fn a_planted_partial_link_makes_export_refuse_and_its_target_is_kept() {
    let ledger = TestLedger::sample();
    let victim = victim_file(&ledger, "victim");
    let archive = ledger.dir.path().join("out.arch");
    let partial = ledger.dir.path().join("out.arch.partial");
    symlink(&victim, &partial).unwrap();
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert_untouched(&victim);
    assert_refused_naming(&out, &partial);
    assert!(!archive.exists(), "an archive was written");
    assert!(
        std::fs::symlink_metadata(&partial).unwrap().is_symlink(),
        "the planted link is the operator's to look at, not the ledger's to remove"
    );
}

#[test]
fn a_stale_regular_partial_left_by_a_killed_export_is_replaced() {
    let ledger = TestLedger::sample();
    let archive = ledger.dir.path().join("out.arch");
    let partial = ledger.dir.path().join("out.arch.partial");
    std::fs::write(&partial, b"{\"archive\":\"cut short").unwrap();
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!partial.exists());
    let check = ledger.run(&["audit", "check", archive.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn an_export_onto_a_link_replaces_the_link_and_never_writes_through_it() {
    // The final rename replaces whatever has the archive's name, a link included: the link's
    // target is never opened.
    let ledger = TestLedger::sample();
    let victim = victim_file(&ledger, "victim");
    let archive = ledger.dir.path().join("out.arch");
    symlink(&victim, &archive).unwrap();
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_untouched(&victim);
    assert!(std::fs::symlink_metadata(&archive).unwrap().is_file());
    let check = ledger.run(&["audit", "check", archive.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn a_lock_link_is_refused_and_its_target_kept() {
    if support::directory_only("a link in place of the data directory's LOCK file") {
        return;
    }
    let ledger = TestLedger::sample();
    let victim = victim_file(&ledger, "lock-target");
    let link = ledger.data().join("LOCK");
    std::fs::remove_file(&link).unwrap();
    symlink(&victim, &link).unwrap();
    let out = ledger.run(&["account", "M001"]);
    assert_untouched(&victim);
    assert_refused_naming(&out, &link);
}

#[test]
fn a_ledger_without_links_still_works_end_to_end() {
    let ledger = TestLedger::sample();
    let account = ledger.query(&["account", "M001"]);
    assert!(account["balance"].is_string(), "{account}");
    let verify = ledger.run(&["audit", "verify", "--json"]);
    assert!(verify.status.success(), "{}", text(&verify));
    let archive = ledger.dir.path().join("backup.arch");
    let export = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(export.status.success(), "{}", text(&export));
    assert!(!ledger.dir.path().join("backup.arch.partial").exists());
    let rebuild = ledger.run(&["rebuild"]);
    assert!(rebuild.status.success(), "{}", text(&rebuild));
}

#[test]
fn a_data_directory_named_through_a_link_is_the_operators_choice_and_works() {
    if support::directory_only("--data names a link to a data directory") {
        return;
    }
    // The path given with --data may itself be a link (e.g. /var/lib/gongji -> /srv/disk2):
    // the operator named it. Only what is inside the directory is held to "no links".
    let ledger = TestLedger::sample();
    let before = ledger.query(&["account", "M001"]);
    let alias = ledger.dir.path().join("alias");
    symlink(ledger.data(), &alias).unwrap();
    let out = std::process::Command::new(support::gongji_path())
        .arg("--data")
        .arg(&alias)
        .args(["account", "M001", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let through: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(through, before);
    let verify = std::process::Command::new(support::gongji_path())
        .arg("--data")
        .arg(&alias)
        .args(["audit", "verify", "--json"])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(std::fs::symlink_metadata(&alias).unwrap().is_symlink());
}
