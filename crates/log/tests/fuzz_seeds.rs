//! Replays the `log_frames` fuzz target's seeds and every input a fuzzer once crashed on
//! (`fuzz/seeds/log_frames`, `fuzz/regressions/log_frames`) through the check the target runs,
//! `gongji_log::fuzzing::check_segment_bytes`. (The other targets' inputs are replayed by
//! `tests/fuzz_regressions.rs`, whose crate does not depend on this one.)

use std::path::{Path, PathBuf};

use gongji_log::{fuzzing, Log, NewRecord};

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

/// A real segment: units of one to three records with ledger-like stream names and payloads.
fn real_segment() -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(tmp.path()).expect("open");
    let payloads: [&[u8]; 3] = [
        b"\x01\x02M001\x00\x00\x01\x90\x10policy 500000-2024",
        b"{\"member\":\"M002\",\"amount\":\"160.00\"}",
        b"",
    ];
    for unit in 0u64..12 {
        let records: Vec<NewRecord<'_>> = (0..=unit % 3)
            .map(|i| NewRecord {
                stream: if i == 0 {
                    "member/M001"
                } else {
                    "fund/pooled/500000"
                },
                event_id: uuid::Uuid::from_u64_pair(unit, i),
                payload: payloads[((unit + i) % 3) as usize],
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

/// Writes the seeds: `cargo test -p gongji-log --test fuzz_seeds -- --ignored write_log_frames_seeds`.
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
        std::fs::write(dir.join(name), data).expect("seed written");
    }
}
