//! A log written in frame format 1, before format 2 (made here frame by frame, as the previous
//! release wrote it): it opens, verifies, answers reads, and goes on in format 2 after its last
//! record, with one hash chain across both formats.

use crate::frame::{self, FrameFields};
use crate::segment::segment_path;
use crate::{derived_event_id, Log, NewRecord, Record};

/// Writes `units` units of format-1 frames as the log's first segment; returns its records.
fn write_format1_log(dir: &std::path::Path, units: u64) -> Vec<Record> {
    let segments = dir.join("segments");
    std::fs::create_dir_all(&segments).expect("segments dir");
    let mut bytes = Vec::new();
    let mut records = Vec::new();
    let mut prev_hash = [0u8; 32];
    let mut versions = std::collections::HashMap::new();
    let mut position = 0u64;
    for unit in 0..units {
        let count = 1 + unit % 3;
        for i in 0..count {
            let stream = format!("member/M{:03}", (unit + i) % 5);
            let version = versions.entry(stream.clone()).or_insert(0u64);
            *version += 1;
            let payload = format!("unit {unit} record {i}").into_bytes();
            // The ledger's events carry the derived id; other writers their own.
            let event_id = if unit % 2 == 0 {
                derived_event_id(position, &payload)
            } else {
                uuid::Uuid::from_u64_pair(unit, i)
            };
            let fields = FrameFields {
                unit_end: i + 1 == count,
                position,
                stream_version: *version,
                event_id: event_id.into_bytes(),
                recorded_at_micros: 1_704_067_200_000_000 + unit as i64,
                prev_hash,
                stream: &stream,
                payload: &payload,
            };
            let hash = frame::encode_frame_v1(&mut bytes, &fields);
            records.push(Record {
                position,
                stream: stream.clone(),
                stream_version: *version,
                event_id,
                recorded_at_micros: fields.recorded_at_micros,
                payload: payload.clone(),
                hash,
                prev_hash,
                unit_end: fields.unit_end,
            });
            prev_hash = hash;
            position += 1;
        }
    }
    std::fs::write(segment_path(&segments, 0), &bytes).expect("segment");
    records
}

fn all_records(log: &Log) -> Vec<Record> {
    log.read_range(0, u64::MAX)
        .expect("read_range")
        .collect::<Result<_, _>>()
        .expect("records")
}

#[test]
fn a_format1_log_opens_verifies_and_goes_on_in_format2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let written = write_format1_log(tmp.path(), 20);
    let format1_bytes = std::fs::metadata(segment_path(&tmp.path().join("segments"), 0))
        .expect("segment")
        .len();
    {
        let log = Log::open(tmp.path()).expect("a format-1 log opens");
        assert_eq!(log.durable_end(), written.len() as u64);
        assert_eq!(
            log.verify(&mut |_| {}).expect("verifies"),
            written.len() as u64
        );
        assert_eq!(all_records(&log), written);
        let stream: Vec<Record> = written
            .iter()
            .filter(|r| r.stream == "member/M002")
            .cloned()
            .collect();
        assert_eq!(log.read_stream("member/M002").expect("read_stream"), stream);
    }
    // Go on: the new records are format 2, after the format-1 ones, in the same segment.
    let mut log = Log::open(tmp.path()).expect("reopen");
    let next = log.durable_end();
    let payload = b"after format 1";
    let records = [
        NewRecord {
            stream: "member/M002",
            event_id: derived_event_id(next, payload),
            payload,
        },
        NewRecord {
            stream: "fund/pooled/500000",
            event_id: uuid::Uuid::from_u64_pair(7, 7),
            payload: b"",
        },
    ];
    log.append(&[], &records, 1_800_000_000_000_000)
        .expect("append");
    log.sync().expect("sync");
    drop(log);

    let log = Log::open(tmp.path()).expect("reopen after going on");
    assert_eq!(log.verify(&mut |_| {}).expect("verifies"), next + 2);
    let all = all_records(&log);
    assert_eq!(&all[..written.len()], &written[..]);
    assert_eq!(all[written.len()].prev_hash, written.last().unwrap().hash);
    assert_eq!(all[written.len()].event_id, derived_event_id(next, payload));
    assert_eq!(
        all[written.len() + 1].event_id,
        uuid::Uuid::from_u64_pair(7, 7)
    );
    for record in &all {
        assert_eq!(record.recompute_hash(), record.hash);
    }
    let segment = std::fs::read(segment_path(&tmp.path().join("segments"), 0)).expect("segment");
    let decoded = crate::fuzzing::decode_segment(&segment);
    assert_eq!(decoded.records, all);
    let mut formats = vec![1u8; written.len()];
    formats.extend([2, 2]);
    assert_eq!(decoded.formats, formats);
    assert!(segment.len() as u64 > format1_bytes);
    crate::fuzzing::check_segment_bytes(&segment);
}
