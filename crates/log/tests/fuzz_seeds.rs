//! Replays the `log_frames` fuzz target's seeds and every input a fuzzer once crashed on
//! (`fuzz/seeds/log_frames`, `fuzz/regressions/log_frames`) through the check the target runs,
//! `gongji_log::fuzzing::check_segment_bytes`, and checks that the decoder it runs is open's
//! recovery: on every cut and many flipped bytes of a real segment, `decode_segment` keeps what
//! `Log::open` keeps and reports the damage open refuses. (The other targets' inputs are
//! replayed by `tests/fuzz_regressions.rs`, whose crate does not depend on this one.)

use std::path::{Path, PathBuf};

use gongji_log::fuzzing::{self, SegmentEnd};
use gongji_log::{Log, LogError, NewRecord};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn log_frames_inputs_never_panic() {
    let mut count = 0;
    for folder in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(folder).join("log_frames")) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let data = std::fs::read(&path).expect("input reads");
            fuzzing::check_segment_bytes(&data);
            count += 1;
        }
    }
    assert!(count > 0, "the log_frames seeds are there");
    for bytes in [&[][..], &[0; 8], &[0xff; 100], &[81, 0, 0, 0, 0, 0, 0, 0]] {
        fuzzing::check_segment_bytes(bytes);
    }
}

/// A real segment: units of one to three records with ledger-like stream names, payloads and
/// event ids (derived, as the ledger's, in every other unit).
fn real_segment() -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(tmp.path()).expect("open");
    let payloads: [&[u8]; 3] = [
        b"\x01\x02M001\x00\x00\x01\x90\x10policy 500000-2024",
        b"{\"member\":\"M002\",\"amount\":\"160.00\"}",
        b"",
    ];
    let mut position = 0;
    for unit in 0u64..12 {
        let records: Vec<NewRecord<'_>> = (0..=unit % 3)
            .map(|i| {
                let payload = payloads[((unit + i) % 3) as usize];
                // Every other unit has the ids the ledger gives (not stored in format 2).
                let event_id = if unit % 2 == 0 {
                    gongji_log::derived_event_id(position, payload)
                } else {
                    uuid::Uuid::from_u64_pair(unit, i)
                };
                position += 1;
                NewRecord {
                    stream: if i == 0 {
                        "member/M001"
                    } else {
                        "fund/pooled/500000"
                    },
                    event_id,
                    payload,
                }
            })
            .collect();
        log.append(&[], &records, 1_704_067_200_000_000 + unit as i64)
            .expect("append");
        log.sync().expect("sync");
    }
    let bytes =
        std::fs::read(tmp.path().join("segments/00000000000000000000.seg")).expect("segment reads");
    drop(log);
    bytes
}

/// What `Log::open` makes of `data` as the only segment of a log: the records and bytes it
/// keeps, or the damage it refuses (position and offset).
fn open_verdict(data: &[u8]) -> Result<(u64, u64), (u64, u64)> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let segment = tmp.path().join("segments/00000000000000000000.seg");
    std::fs::create_dir_all(tmp.path().join("segments")).expect("segments dir");
    std::fs::write(&segment, data).expect("segment written");
    match Log::open(tmp.path()) {
        Ok(log) => {
            let kept_bytes = std::fs::metadata(&segment).expect("segment").len();
            Ok((log.durable_end(), kept_bytes))
        }
        Err(LogError::Corrupt {
            position, offset, ..
        }) => Err((position, offset)),
        Err(other) => panic!("open failed otherwise: {other}"),
    }
}

/// What the fuzz target's decoder makes of `data`, in the terms of `open_verdict`.
fn decoder_verdict(data: &[u8]) -> Result<(u64, u64), (u64, u64)> {
    let decoded = fuzzing::decode_segment(data);
    match decoded.end {
        SegmentEnd::Damaged {
            position,
            offset_bytes,
            ..
        } => Err((position, offset_bytes)),
        SegmentEnd::Clean | SegmentEnd::TornTail { .. } => {
            Ok((decoded.complete_units_records, decoded.complete_units_bytes))
        }
    }
}

#[test]
fn the_fuzz_decoder_keeps_and_refuses_what_open_does() {
    let bytes = real_segment();
    // Every open syncs files: a cut every 23 bytes, every cut in the last 24, and a flip every
    // 41 bytes keep this to seconds and still reach every frame.
    let tail_start = bytes.len() - 24;
    let cuts = (0..tail_start).step_by(23).chain(tail_start..=bytes.len());
    let mut inputs: Vec<Vec<u8>> = cuts.map(|cut| bytes[..cut].to_vec()).collect();
    for at in (0..bytes.len()).step_by(41) {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x40;
        inputs.push(flipped);
    }
    // Four threads: the opens mostly wait for the disk.
    let damaged: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = inputs
            .chunks(inputs.len().div_ceil(4))
            .map(|chunk| {
                scope.spawn(move || {
                    let mut damaged = 0;
                    for data in chunk {
                        let open = open_verdict(data);
                        assert_eq!(decoder_verdict(data), open, "input {data:?}");
                        damaged += usize::from(open.is_err());
                    }
                    damaged
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("no input fails"))
            .sum()
    });
    assert!(damaged > 0, "some flipped bytes are damage in the middle");
}

/// Writes the seeds: `cargo test -p gongji-log --test fuzz_seeds -- --ignored write_log_frames_seeds`.
/// They are frames of format 2, what the log writes; the `format1-` seeds beside them were
/// written the same way before format 2 and are kept.
#[test]
#[ignore = "writes fuzz/seeds/log_frames"]
fn write_log_frames_seeds() {
    let bytes = real_segment();
    let dir = fuzz_dir().join("seeds/log_frames");
    std::fs::create_dir_all(&dir).expect("seeds dir");
    let first_frame_bytes =
        u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize + 8;
    let mut flipped = bytes.clone();
    flipped[first_frame_bytes + 30] ^= 0x40;
    let seeds: [(&str, Vec<u8>); 5] = [
        ("whole-segment", bytes.clone()),
        ("one-frame", bytes[..first_frame_bytes].to_vec()),
        (
            "torn-inside-the-last-frame",
            bytes[..bytes.len() - 7].to_vec(),
        ),
        ("flipped-byte-in-the-second-frame", flipped),
        (
            "starts-at-the-second-frame",
            bytes[first_frame_bytes..].to_vec(),
        ),
    ];
    for (name, data) in seeds {
        fuzzing::check_segment_bytes(&data);
        std::fs::write(dir.join(format!("format2-{name}")), data).expect("seed written");
    }
}
