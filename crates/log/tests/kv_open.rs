//! How long the projection store (sled) takes to open, on a store shaped like the ledger's
//! projections. A measurement, not a check: run it in release with
//!
//! ```sh
//! GONGJI_KV_EVENTS=3000000 GONGJI_KV_MEMBERS=100000 \
//!   cargo test --release -p gongji-log --test kv_open -- --ignored --nocapture
//! ```
//!
//! It writes `GONGJI_KV_EVENTS` events' worth of projection updates through `Log::kv()`, in
//! commits of 1000 events (every member an event touches rewritten whole, a transaction key for
//! a third of the events, and the checkpoint), exactly as `gongji apply` stores them; then it
//! times `Log::open` (the whole store open plus the log's own) and one `Kv::get`, first right
//! after the writer closed and then again, and prints one line per figure.

use std::path::Path;
use std::time::{Duration, Instant};

use gongji_log::Log;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn member_key(n: u64) -> Vec<u8> {
    format!("m/M{n:07}").into_bytes()
}

/// Writes the store; returns the time the writer took (including its close). `settled`:
/// as `Log::close` leaves it (sled reopened once so that it writes a current snapshot);
/// otherwise as before that change (a clone of the `Kv` outlives the log, so sled is not
/// reopened: the baseline).
fn build(dir: &Path, events: u64, members: u64, settled: bool) -> Duration {
    const COMMIT_EVENTS: u64 = 1000;
    const MEMBER_BASE_BYTES: usize = 120;
    const MEMBER_BYTES_PER_EVENT: usize = 8;
    const MEMBER_BYTES_MAX: usize = 400;
    let started = Instant::now();
    let log = Log::open(dir).expect("open");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut sizes = vec![MEMBER_BASE_BYTES; members as usize];
    let mut done = 0u64;
    while done < events {
        let batch = COMMIT_EVENTS.min(events - done);
        let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(batch as usize);
        let mut touched = std::collections::BTreeSet::new();
        for i in 0..batch {
            let member = rng.next() % members;
            let size = &mut sizes[member as usize];
            *size = (*size + MEMBER_BYTES_PER_EVENT).min(MEMBER_BYTES_MAX);
            touched.insert(member);
            if (done + i).is_multiple_of(3) {
                let mut value = vec![0u8; 90];
                value[..8].copy_from_slice(&rng.next().to_le_bytes());
                writes.push((format!("t/T{:010}", done + i).into_bytes(), Some(value)));
            }
        }
        for member in touched {
            let mut value = vec![0u8; sizes[member as usize]];
            for chunk in value.chunks_mut(8) {
                let word = rng.next().to_le_bytes();
                let n = chunk.len();
                chunk.copy_from_slice(&word[..n]);
            }
            writes.push((member_key(member), Some(value)));
        }
        done += batch;
        // The checkpoint stays 0: this log has no records, and a checkpoint
        // beyond its end would make open clear the store.
        log.kv().apply(writes, 0).expect("apply");
    }
    log.kv().flush().expect("flush");
    let held = (!settled).then(|| log.kv().clone());
    log.close().expect("close");
    drop(held);
    started.elapsed()
}

fn timed_open(dir: &Path) -> (Duration, Duration) {
    let started = Instant::now();
    let log = Log::open(dir).expect("open");
    let opened = started.elapsed();
    let value = log.kv().get(&member_key(7)).expect("get");
    assert!(value.is_some());
    let answered = started.elapsed();
    drop(log);
    (opened, answered)
}

#[test]
#[ignore = "measurement; run in release"]
fn kv_open_time_on_a_ledger_sized_store() {
    let events = env_u64("GONGJI_KV_EVENTS", 300_000);
    let members = env_u64("GONGJI_KV_MEMBERS", 10_000);
    for settled in [false, true] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ledger");
        let wrote = build(&dir, events, members, settled);
        let store_bytes = dir_bytes(&dir.join("index"));
        println!(
            "kv_write settled={settled} events={events} members={members} seconds={:.2} \
             store_bytes={store_bytes} bytes_per_event={:.0}",
            wrote.as_secs_f64(),
            store_bytes as f64 / events as f64
        );
        for round in 0..4 {
            let (opened, answered) = timed_open(&dir);
            println!(
                "kv_open settled={settled} round={round} open_ms={:.1} open_and_get_ms={:.1}",
                opened.as_secs_f64() * 1e3,
                answered.as_secs_f64() * 1e3
            );
        }
    }
}
