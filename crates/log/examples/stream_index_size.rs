//! Measures the stream index: its bytes on disk per record, and the time of stream lookups
//! served from its runs.
//!
//! Appends RECORDS records (ledger-like: a stream name of 9 bytes, a payload of 45) spread
//! at random over STREAMS streams, writes the index as runs and reopens the log, so every
//! lookup goes to the runs (the stream table and the tail are empty). Then times LOOKUPS
//! `read_stream` calls and LOOKUPS `stream_version` calls of random streams, ROUNDS times.
//!
//! ```text
//! cargo run --release -p gongji-log --example stream_index_size -- [RECORDS [STREAMS [LOOKUPS [ROUNDS]]]]
//! ```
//!
//! Defaults: 1 000 000 records, 100 000 streams, 10 000 lookups, 3 rounds. Prints one
//! `key=value` line per figure, for a script to compare two builds.

use std::path::Path;
use std::time::Instant;

use gongji_log::{Log, LogError, NewRecord};
use uuid::Uuid;

/// Records a unit (and a sync) holds while appending.
const UNIT_RECORDS: u64 = 10_000;

/// xorshift64*: the same streams in every run of the example.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn stream_name(s: u64) -> String {
    format!("m/M{s:06}")
}

fn append_all(dir: &Path, records: u64, streams: u64) -> Result<f64, LogError> {
    let mut log = Log::open(dir)?;
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut payload = [b'x'; 45];
    let mut position = 0u64;
    while position < records {
        let unit = UNIT_RECORDS.min(records - position);
        let names: Vec<String> = (0..unit)
            .map(|_| stream_name(random.below(streams)))
            .collect();
        let payloads: Vec<[u8; 45]> = (position..position + unit)
            .map(|n| {
                payload[..8].copy_from_slice(&n.to_le_bytes());
                payload
            })
            .collect();
        let unit_records: Vec<NewRecord<'_>> = names
            .iter()
            .zip(&payloads)
            .enumerate()
            .map(|(i, (stream, payload))| NewRecord {
                stream,
                event_id: Uuid::from_u64_pair(0x0062_656e_6368, position + i as u64),
                payload,
            })
            .collect();
        log.append(&[], &unit_records, 1_700_000_000_000_000)?;
        log.sync()?;
        position += unit;
    }
    let started = Instant::now();
    log.flush_index()?;
    let flush_seconds = started.elapsed().as_secs_f64();
    log.close()?;
    Ok(flush_seconds)
}

fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        bytes += entry?.metadata()?.len();
    }
    Ok(bytes)
}

/// Microseconds a call of `lookup` takes over `lookups` random streams, and the records
/// (or versions) it found in all.
fn time_lookups(
    lookups: u64,
    streams: u64,
    seed: u64,
    mut lookup: impl FnMut(&str) -> Result<u64, LogError>,
) -> Result<(f64, u64), LogError> {
    let mut random = Random(seed);
    let names: Vec<String> = (0..lookups)
        .map(|_| stream_name(random.below(streams)))
        .collect();
    let started = Instant::now();
    let mut found = 0;
    for name in &names {
        found += lookup(name)?;
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / lookups as f64;
    Ok((micros, found))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (records, streams) = (arg(0, 1_000_000), arg(1, 100_000));
    let (lookups, rounds) = (arg(2, 10_000), arg(3, 3));
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();

    let flush_seconds = append_all(dir, records, streams)?;
    let index_bytes = dir_bytes(&dir.join("index").join("streams"))?;
    let segment_bytes = dir_bytes(&dir.join("segments"))?;
    println!("records={records} streams={streams}");
    println!("flush_index_ms={:.1}", flush_seconds * 1e3);
    println!("stream_index_bytes={index_bytes}");
    println!(
        "stream_index_bytes_per_record={:.2}",
        index_bytes as f64 / records as f64
    );
    println!(
        "segment_bytes_per_record={:.2}",
        segment_bytes as f64 / records as f64
    );

    let started = Instant::now();
    let log = Log::open(dir)?;
    println!("open_ms={:.1}", started.elapsed().as_secs_f64() * 1e3);
    assert_eq!(
        log.open_report().records_indexed,
        0,
        "the runs cover the log"
    );
    for round in 0..rounds {
        let seed = 0x5eed + round;
        let (read_micros, read) = time_lookups(lookups, streams, seed, |name| {
            Ok(log.read_stream(name)?.len() as u64)
        })?;
        let (version_micros, versions) =
            time_lookups(lookups, streams, seed, |name| log.stream_version(name))?;
        assert_eq!(read, versions, "a stream's version is its record count");
        println!(
            "round={round} read_stream_us={read_micros:.2} stream_version_us={version_micros:.2} \
             records_read={read}"
        );
    }
    Ok(())
}
