//! The stream index's run files across layouts: a run of the fixed 32-byte layout
//! (`GJSIDX02`, before the delta-coded blocks of `GJSIDX03`) left in `DIR/index/streams` is
//! not a usable run: the writer deletes it and indexes its records again, a reader passes
//! over it, and every stream read still answers.

use std::fs;
use std::path::{Path, PathBuf};

use gongji_log::{Log, LogOptions, NewRecord, Record};
use uuid::Uuid;

const STREAMS: [&str; 3] = ["m/M000001", "m/M000002", "r/R01"];
const RECORDS: u64 = 300;
/// The index meta closing a run's footer, before the trailer's CRC (in both layouts).
const META_BYTES: usize = 65;
const CRC_BYTES: usize = 4;
/// The footer of a `GJSIDX03` run: magic, five u64s, the index meta, the CRC.
const FOOTER_BYTES: usize = 8 + 5 * 8 + META_BYTES + CRC_BYTES;

/// The stream hash the runs hold (`docs/log-format.md`): FNV-1a, then the murmur3 finaliser.
fn stream_hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A log of `RECORDS` records over `STREAMS`, closed; returns its records.
fn write_log(dir: &Path) -> Vec<Record> {
    let mut log = Log::open(dir).expect("open");
    let payloads: Vec<Vec<u8>> = (0..RECORDS).map(|n| n.to_le_bytes().repeat(3)).collect();
    for unit in (0..RECORDS).collect::<Vec<_>>().chunks(50) {
        let records: Vec<NewRecord<'_>> = unit
            .iter()
            .map(|&n| NewRecord {
                stream: STREAMS[(n % 3) as usize],
                event_id: Uuid::from_u64_pair(0x7374_7265_616d, n),
                payload: &payloads[n as usize],
            })
            .collect();
        log.append(&[], &records, 1_700_000_000_000_000)
            .expect("append");
        log.sync().expect("sync");
    }
    let records = log
        .read_range(0, u64::MAX)
        .expect("read_range")
        .collect::<Result<Vec<_>, _>>()
        .expect("records");
    log.close().expect("close");
    records
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// The byte offset of every frame in the log's one segment (a frame: its body length, u32
/// LE, its CRC, its body).
fn frame_offsets(dir: &Path) -> Vec<u64> {
    let segments = files_in(&dir.join("segments"));
    assert_eq!(segments.len(), 1, "one segment");
    let bytes = fs::read(&segments[0]).expect("segment");
    let mut offsets = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        offsets.push(at as u64);
        let body_len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        at += 8 + body_len as usize;
    }
    offsets
}

/// A `GJSIDX02` run of positions `0..records.len()`: 32-byte entries (hash, version,
/// position, offset) sorted by (hash, version, position); the hash of every 128th entry;
/// one sparse point; the footer (magic, from, to, entry count, sparse count, meta) and the
/// CRC-32 of fences, sparse point and footer.
fn old_layout_run(records: &[Record], offsets: &[u64], meta: &[u8]) -> Vec<u8> {
    let mut entries: Vec<[u64; 4]> = records
        .iter()
        .map(|r| {
            let hash = stream_hash(r.stream.as_bytes());
            let offset = offsets[r.position as usize];
            [hash, r.stream_version, r.position, offset]
        })
        .collect();
    entries.sort_unstable();
    let mut run = Vec::new();
    for entry in &entries {
        for n in entry {
            run.extend_from_slice(&n.to_le_bytes());
        }
    }
    let mut trailer = Vec::new();
    for entry in entries.iter().step_by(128) {
        trailer.extend_from_slice(&entry[0].to_le_bytes());
    }
    for n in [0u64, 0, 0] {
        trailer.extend_from_slice(&n.to_le_bytes());
    }
    trailer.extend_from_slice(b"GJSIDX02");
    let count = records.len() as u64;
    for n in [0, count, count, 1] {
        trailer.extend_from_slice(&n.to_le_bytes());
    }
    trailer.extend_from_slice(meta);
    let crc = crc32fast::hash(&trailer);
    run.extend_from_slice(&trailer);
    run.extend_from_slice(&crc.to_le_bytes());
    run
}

fn check_reads(log: &Log, records: &[Record]) {
    for stream in STREAMS {
        let expected: Vec<&Record> = records.iter().filter(|r| r.stream == stream).collect();
        let read = log.read_stream(stream).expect("read_stream");
        assert_eq!(read.iter().collect::<Vec<_>>(), expected, "{stream}");
        let version = log.stream_version(stream).expect("stream_version");
        assert_eq!(version, expected.len() as u64, "{stream}");
    }
    assert!(log
        .read_stream("m/M000003")
        .expect("read_stream")
        .is_empty());
}

#[test]
fn a_run_of_the_fixed_32_byte_layout_is_dropped_and_its_records_indexed_again() {
    assert_eq!(stream_hash(b"m/M000001"), 0x4948178c736ce352);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let records = write_log(dir);
    let runs_dir = dir.join("index").join("streams");
    let runs = files_in(&runs_dir);
    assert_eq!(runs.len(), 1, "close wrote one run");
    let run = fs::read(&runs[0]).expect("run");
    let footer = &run[run.len() - FOOTER_BYTES..];
    assert_eq!(&footer[..8], b"GJSIDX03");
    let meta = &footer[footer.len() - CRC_BYTES - META_BYTES..footer.len() - CRC_BYTES];

    // The same entries in the old layout, under the run's name: a run the old code used.
    let old = old_layout_run(&records, &frame_offsets(dir), meta);
    assert_eq!(
        old.len(),
        300 * 32 + 3 * 8 + 24 + 8 + 4 * 8 + META_BYTES + CRC_BYTES
    );
    fs::write(&runs[0], &old).expect("write old run");

    // A reader passes over it (deleting nothing) and indexes the segments itself.
    let reader = Log::open_read_only(dir, LogOptions::default()).expect("open read-only");
    check_reads(&reader, &records);
    drop(reader);
    assert_eq!(fs::read(&runs[0]).expect("still there"), old);

    // The writer deletes it and indexes every record again.
    let log = Log::open(dir).expect("open");
    let rebuilt = log.open_report().index_rebuilt.clone().expect("rebuilt");
    assert!(
        rebuilt.contains("stream-index run is unusable"),
        "{rebuilt}"
    );
    assert_eq!(log.open_report().records_indexed, RECORDS);
    check_reads(&log, &records);
    log.close().expect("close");

    // Closed, the index is a run of the new layout again, used as it is.
    let runs = files_in(&runs_dir);
    assert_eq!(runs.len(), 1);
    let run = fs::read(&runs[0]).expect("run");
    assert_eq!(&run[run.len() - FOOTER_BYTES..][..8], b"GJSIDX03");
    let log = Log::open(dir).expect("reopen");
    assert_eq!(log.open_report().index_rebuilt, None);
    assert_eq!(log.open_report().records_indexed, 0);
    check_reads(&log, &records);
}
