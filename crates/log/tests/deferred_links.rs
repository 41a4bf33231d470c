//! `Log::read_range_links_deferred`: the reader checks CRCs and positions, the holders of the
//! records check the hash chain with `Log::check_link`. Checking every link handed out must
//! find exactly what a checked read finds.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use gongji_log::{Link, Log, LogError, NewRecord, Record};
use uuid::Uuid;

/// 60 records in units of 1–3, on three streams.
fn write_log(dir: &Path) -> Vec<Record> {
    let mut log = Log::open(dir).expect("open");
    let mut n = 0u64;
    while n < 60 {
        let size = 1 + (n % 3);
        let names: Vec<String> = (0..size).map(|i| format!("s{}", (n + i) % 3)).collect();
        let payloads: Vec<Vec<u8>> = (0..size)
            .map(|i| format!("payload {}", n + i).into_bytes())
            .collect();
        let records: Vec<NewRecord<'_>> = names
            .iter()
            .zip(&payloads)
            .enumerate()
            .map(|(i, (stream, payload))| NewRecord {
                stream,
                event_id: Uuid::from_u64_pair(7, n + i as u64),
                payload,
            })
            .collect();
        log.append(&[], &records, 1_700_000_000_000_000 + n as i64)
            .expect("append");
        log.sync().expect("sync");
        n += size;
    }
    let records = log
        .read_range(0, u64::MAX)
        .expect("read")
        .collect::<Result<Vec<_>, _>>()
        .expect("records");
    log.close().expect("close");
    records
}

fn deferred(log: &Log, from: u64, to: u64) -> Vec<(Record, Link)> {
    log.read_range_links_deferred(from, to)
        .expect("read")
        .collect::<Result<Vec<_>, _>>()
        .expect("records")
}

fn segment(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("segments"))
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files.remove(0)
}

/// Changes the last payload byte of the frame at `position` and gives the frame a CRC that
/// matches again: only the hash chain can tell.
fn rewrite_payload(path: &Path, position: u64) {
    let mut bytes = Vec::new();
    OpenOptions::new()
        .read(true)
        .open(path)
        .expect("open")
        .read_to_end(&mut bytes)
        .expect("read");
    let mut offset = 0usize;
    for _ in 0..position {
        let body_len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        offset += 8 + body_len;
    }
    let body_len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
    let body = offset + 8..offset + 8 + body_len;
    bytes[body.end - 1] ^= 0x01;
    let crc = crc32fast::hash(&bytes[body.clone()]);
    bytes[offset + 4..offset + 8].copy_from_slice(&crc.to_le_bytes());
    let mut file = OpenOptions::new().write(true).open(path).expect("open");
    file.seek(SeekFrom::Start(0)).expect("seek");
    file.write_all(&bytes).expect("write");
}

#[test]
fn every_link_of_a_sound_log_checks_and_the_records_are_those_of_a_checked_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checked = write_log(dir.path());
    let log = Log::open(dir.path()).expect("open");
    for (from, to) in [(0, u64::MAX), (0, 60), (10, 30), (59, 60), (0, 1)] {
        let read = deferred(&log, from, to);
        let expected: Vec<&Record> = checked
            .iter()
            .filter(|r| r.position >= from && r.position < to)
            .collect();
        assert_eq!(read.len(), expected.len(), "range {from}..{to}");
        for ((record, link), want) in read.iter().zip(expected) {
            assert_eq!(record.payload, want.payload);
            assert_eq!(record.prev_hash, want.prev_hash);
            assert_eq!(record.position, want.position);
            log.check_link(record, link).expect("a sound link");
        }
    }
    assert!(deferred(&log, 60, 70).is_empty());
}

#[test]
fn a_rewritten_record_with_a_matching_crc_fails_its_link_where_a_checked_read_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    rewrite_payload(&segment(dir.path()), 20);
    let log = Log::open(dir.path()).expect("open: the damage is in the middle");
    let position_of = |error: LogError| match error {
        LogError::Corrupt { position, .. } => position,
        other => panic!("expected Corrupt, got {other:?}"),
    };
    let failures: Vec<u64> = deferred(&log, 0, u64::MAX)
        .iter()
        .filter_map(|(record, link)| log.check_link(record, link).err())
        .map(position_of)
        .collect();
    assert_eq!(failures, vec![21], "record 21 names record 20's old hash");
    assert!(log.is_quarantined(), "a failed link quarantines the log");
    let checked = log
        .read_range(0, u64::MAX)
        .expect("read")
        .find_map(Result::err)
        .expect("the checked read finds the damage");
    assert_eq!(failures, vec![position_of(checked)]);
}
