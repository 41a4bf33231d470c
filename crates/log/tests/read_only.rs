//! Readers beside the writer ([`Log::open_read_only`]): what they see (the durable end the
//! writer published, never more), that they take no lock and write nothing, and a second
//! writer that waits for the lock (`LogOptions::lock_wait`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gongji_log::{Handover, Log, LogError, LogOptions, NewRecord, DURABLE_END_FILE};
use uuid::Uuid;

fn append(log: &mut Log, n: u64) {
    let payload = n.to_le_bytes();
    let record = NewRecord {
        stream: "member/M1",
        event_id: Uuid::from_u64_pair(1, n),
        payload: &payload,
    };
    log.append(&[], &[record], 1_000 + n as i64)
        .expect("append");
}

fn reader(dir: &Path) -> Log {
    Log::open_read_only(dir, LogOptions::default()).expect("open read-only")
}

fn positions(log: &Log) -> Vec<u64> {
    log.read_range(0, u64::MAX)
        .expect("read_range")
        .map(|r| r.expect("record").position)
        .collect()
}

/// Every file under `dir`, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("listing") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .expect("inside")
                    .display()
                    .to_string();
                files.insert(name, std::fs::read(&path).expect("read"));
            }
        }
    }
    files
}

#[test]
fn a_reader_sees_what_was_durable_when_it_opened_and_nothing_staged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut writer = Log::open(tmp.path()).expect("open");
    for n in 0..3 {
        append(&mut writer, n);
    }
    writer.sync().expect("sync");
    append(&mut writer, 3);
    let early = reader(tmp.path());
    assert_eq!(
        positions(&early),
        vec![0, 1, 2],
        "staged records are not durable"
    );
    assert_eq!(early.read_stream("member/M1").expect("stream").len(), 3);
    writer.sync().expect("sync");
    let late = reader(tmp.path());
    assert_eq!(positions(&late), vec![0, 1, 2, 3]);
    assert_eq!(positions(&early), vec![0, 1, 2], "a reader keeps its state");
    assert_eq!(late.verify(&mut |_| {}).expect("verify"), 4);
    // A reader keeps no stream table: its versions are its durable records'.
    assert_eq!(early.stream_version("member/M1").expect("version"), 3);
    assert_eq!(late.stream_version("member/M1").expect("version"), 4);
    assert_eq!(late.stream_version("nobody").expect("version"), 0);
    let mut refreshed = reader(tmp.path());
    append(&mut writer, 4);
    writer.sync().expect("sync");
    refreshed.refresh_read_only().expect("refresh");
    assert_eq!(refreshed.stream_version("member/M1").expect("version"), 5);
}

#[test]
fn records_written_after_the_published_durable_end_are_not_seen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut writer = Log::open(tmp.path()).expect("open");
    for n in 0..3 {
        append(&mut writer, n);
    }
    writer.sync().expect("sync");
    let published = tmp.path().join(DURABLE_END_FILE);
    let at_three = std::fs::read(&published).expect("durable end");
    for n in 3..5 {
        append(&mut writer, n);
    }
    writer.sync().expect("sync");
    // As if the writer were killed with its last batch written but not yet synced: the bytes
    // are in the segment, the durable end still names position 3.
    std::mem::forget(writer);
    std::fs::write(&published, &at_three).expect("durable end set back");
    let log = reader(tmp.path());
    assert_eq!(positions(&log), vec![0, 1, 2]);
    assert_eq!(log.durable_end(), 3);
}

#[test]
fn a_reader_takes_no_lock_writes_nothing_and_takes_no_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut writer = Log::open(tmp.path()).expect("open");
    append(&mut writer, 0);
    writer.sync().expect("sync");
    writer.close().expect("close");
    let before = tree(tmp.path());
    let mut log = reader(tmp.path());
    assert_eq!(tree(tmp.path()), before, "opening wrote nothing");
    assert_eq!(positions(&log), vec![0]);
    // The writer's lock is free: a writer opens beside the reader, and closes.
    Log::open(tmp.path())
        .expect("a writer beside the reader")
        .close()
        .expect("close");
    let before_reads = tree(tmp.path());
    assert!(matches!(
        log.append(
            &[],
            &[NewRecord {
                stream: "member/M1",
                event_id: Uuid::from_u64_pair(1, 9),
                payload: b"x",
            }],
            1,
        ),
        Err(LogError::ReadOnly { .. })
    ));
    assert!(matches!(log.flush_index(), Err(LogError::ReadOnly { .. })));
    // Projection writes land in memory only.
    log.kv()
        .apply([(b"k".to_vec(), Some(b"v".to_vec()))], 1)
        .expect("apply in memory");
    assert_eq!(log.kv().get(b"k").expect("get"), Some(b"v".to_vec()));
    assert_eq!(log.kv().checkpoint().expect("checkpoint"), Some(1));
    assert_eq!(positions(&log), vec![0]);
    drop(log);
    assert_eq!(tree(tmp.path()), before_reads, "the reader wrote nothing");
}

#[test]
fn a_second_writer_waits_for_the_lock_when_asked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = Log::open(tmp.path()).expect("open");
    assert!(matches!(
        Log::open(tmp.path()),
        Err(LogError::Locked { .. })
    ));
    let released = Arc::new(AtomicBool::new(false));
    let second = {
        let (dir, released) = (tmp.path().to_path_buf(), Arc::clone(&released));
        std::thread::spawn(move || {
            let options = LogOptions {
                lock_wait: true,
                ..LogOptions::default()
            };
            let log = Log::open_with(&dir, options).expect("opens once the lock is free");
            assert!(
                released.load(Ordering::SeqCst),
                "opened while the first held the lock"
            );
            log.close().expect("close");
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    released.store(true, Ordering::SeqCst);
    first.close().expect("close");
    second.join().expect("second writer");
}

#[test]
fn without_a_published_durable_end_a_reader_reads_the_complete_units() {
    // A log no writer of this version wrote has no durable end file: the reader takes the end
    // of its complete units, as the writer's recovery would, and cuts nothing.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut writer = Log::open(tmp.path()).expect("open");
    for n in 0..4 {
        append(&mut writer, n);
    }
    writer.sync().expect("sync");
    writer.close().expect("close");
    std::fs::remove_file(tmp.path().join(DURABLE_END_FILE)).expect("remove");
    let segment = tmp.path().join("segments").join(format!("{:020}.seg", 0));
    let mut torn = std::fs::read(&segment).expect("segment");
    torn.extend_from_slice(&[1, 2, 3]);
    std::fs::write(&segment, &torn).expect("a torn tail");
    let log = reader(tmp.path());
    assert_eq!(positions(&log), vec![0, 1, 2, 3]);
    drop(log);
    assert_eq!(
        std::fs::read(&segment).expect("segment"),
        torn,
        "nothing cut"
    );
}

#[test]
fn a_reader_takes_what_its_writer_hands_over_and_scans_the_rest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Small segments: the batches handed over cross segment boundaries.
    let options = || LogOptions {
        segment_bytes_max: 4096,
        ..LogOptions::default()
    };
    let mut writer = Log::open_with(tmp.path(), options()).expect("open");
    let handover = Arc::new(Handover::new());
    writer.share_handover(handover.clone());
    let open_reader = || Log::open_read_only(tmp.path(), options()).expect("open read-only");
    let mut handed = open_reader();
    handed.share_handover(handover.clone());
    let mut scanning = open_reader();
    let mut n = 0;
    for round in 0..30 {
        for _ in 0..(round % 7) + 1 {
            append(&mut writer, n);
            n += 1;
        }
        writer.sync().expect("sync");
        assert_eq!(handed.refresh_read_only().expect("refresh"), n);
        assert_eq!(scanning.refresh_read_only().expect("refresh"), n);
        assert_eq!(positions(&handed), positions(&scanning));
        let stream = handed.read_stream("member/M1").expect("stream");
        assert_eq!(stream, scanning.read_stream("member/M1").expect("stream"));
        assert_eq!(stream.len() as u64, n);
    }
    assert_eq!(handed.handed_records(), n, "every record was handed over");
    assert_eq!(scanning.handed_records(), 0);
    assert_eq!(handed.verify(&mut |_| {}).expect("verify"), n);

    // A reader that joins late finds no batch starting at its end: it scans, then takes what
    // follows from the handover.
    for _ in 0..5 {
        append(&mut writer, n);
        n += 1;
    }
    writer.sync().expect("sync");
    let mut late = open_reader();
    late.share_handover(handover.clone());
    append(&mut writer, n);
    n += 1;
    writer.sync().expect("sync");
    assert_eq!(late.refresh_read_only().expect("refresh"), n);
    assert_eq!(late.handed_records(), 1);
    assert_eq!(positions(&late), (0..n).collect::<Vec<_>>());
    assert_eq!(
        late.read_stream("member/M1").expect("stream").len() as u64,
        n
    );
}
