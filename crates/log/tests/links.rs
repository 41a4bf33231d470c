//! Links planted inside a log's directory, through the library: `Log::open` and
//! `Log::clear_quarantine` refuse them with `LogError::Symlink` naming the link, and what they
//! point at (a file or directory in the test's temp dir) is never read, written or deleted.
//! The end-to-end attacks through the binary are in `tests/hostile_files.rs`.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use gongji_log::{Log, LogError, LogOptions, NewRecord, ProjectionBackend};
use uuid::Uuid;

const SECRET: &[u8] = b"not the log's to touch\n";

/// A log of 5 records with a stream-index run and a projection store written, closed.
fn write_log(dir: &Path) {
    let mut log = Log::open(dir).expect("open");
    for n in 0..5u64 {
        let payload = format!("payload {n}").into_bytes();
        let record = NewRecord {
            stream: "s",
            event_id: Uuid::from_u64_pair(1, n),
            payload: &payload,
        };
        log.append(&[], &[record], 1_700_000_000_000_000)
            .expect("append");
    }
    log.sync().expect("sync");
    log.flush_index().expect("index run");
    log.kv()
        .apply(vec![(b"k".to_vec(), Some(b"v".to_vec()))], 5)
        .expect("projections");
    log.kv().flush().expect("flush");
    log.close().expect("close");
}

struct Planted {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    victim: PathBuf,
}

/// A written log and a victim file beside it (outside the log's directory).
fn log_and_victim() -> Planted {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("log");
    write_log(&dir);
    let victim = temp.path().join("victim");
    std::fs::write(&victim, SECRET).unwrap();
    Planted {
        dir,
        victim,
        _temp: temp,
    }
}

/// Replaces `path` (a file or directory of the log) by a link to `target`.
fn plant(path: &Path, target: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
    symlink(target, path).unwrap();
}

fn assert_symlink_refused(result: Result<impl std::fmt::Debug, LogError>, link: &Path) {
    match result {
        Err(LogError::Symlink { path }) => {
            assert_eq!(path, link);
            let said = LogError::Symlink { path }.to_string();
            assert!(said.contains(&link.display().to_string()), "{said}");
        }
        other => panic!("{} was not refused as a link: {other:?}", link.display()),
    }
}

fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().into_string().unwrap(), bytes)
        })
        .collect()
}

#[test]
fn links_to_a_file_among_the_index_files_are_refused_and_never_read_or_removed() {
    for path in [
        ["index", "projections", "MANIFEST"],
        ["index", "streams", "stale.tmp"],
        ["index", "projections", "MANIFEST.tmp"],
    ] {
        let p = log_and_victim();
        let link = path.iter().fold(p.dir.clone(), |at, part| at.join(part));
        plant(&link, &p.victim);
        assert_symlink_refused(Log::open(&p.dir), &link);
        assert_eq!(std::fs::read(&p.victim).unwrap(), SECRET);
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    }
}

#[test]
fn a_sled_index_link_is_refused_before_sled_opens_it() {
    let p = log_and_victim();
    let victim_dir = p.victim.with_file_name("victim-dir");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("keep"), SECRET).unwrap();
    let before = contents(&victim_dir);
    let link = p.dir.join("index");
    plant(&link, &victim_dir);
    let options = LogOptions {
        projections: ProjectionBackend::Sled,
        ..LogOptions::default()
    };
    assert_symlink_refused(Log::open_with(&p.dir, options), &link);
    assert_eq!(
        contents(&victim_dir),
        before,
        "sled wrote into the link's target"
    );
}

#[test]
fn a_quarantine_marker_link_is_refused_by_open_and_by_clearing() {
    let p = log_and_victim();
    let link = p.dir.join(gongji_log::QUARANTINE_FILE);
    plant(&link, &p.victim);
    assert_symlink_refused(Log::open(&p.dir), &link);
    assert_symlink_refused(Log::clear_quarantine(&p.dir), &link);
    assert_eq!(std::fs::read(&p.victim).unwrap(), SECRET);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
}

#[test]
fn a_log_directory_reached_through_a_link_opens_as_the_operator_named_it() {
    // The directory's own path is the operator's choice; links inside it are refused.
    let p = log_and_victim();
    let alias = p.dir.with_file_name("alias");
    symlink(&p.dir, &alias).unwrap();
    let log = Log::open(&alias).expect("a log named through a link opens");
    assert_eq!(log.end_position(), 5);
    log.close().expect("close");
    assert!(std::fs::symlink_metadata(&alias).unwrap().is_symlink());
}
