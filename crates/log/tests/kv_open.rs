//! The projection store's two backends (`ProjectionBackend::Sled` and `::Runs`) on one store
//! shaped like the ledger's projections: write throughput, bytes on disk, and how long a new
//! process takes to open it and answer one get. A measurement, not a check: run it in release
//! with
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
//! after the writer closed and then again, and prints one line per figure. The same workload
//! (same keys and values) goes to sled as the writer leaves it today (settled), to sled as it
//! was left before that (unsettled: the first open replays sled's log), and to the runs store;
//! the `kv_ratio` lines are the ratios of runs to settled sled.
//!
//! With the feature `kv-compare`, the same workload also goes, in the same run, to the run
//! files, fjall and redb each opened by itself behind the `Kv` API
//! (`Kv::open_for_comparison`, no log around them, each `apply` durable when it returns), and
//! the `kv_compare` lines give fjall's and redb's figures as ratios of the run files' (issue
//! 12: a store within 1.5 times of the run files on each of the three would replace them):
//!
//! ```sh
//! GONGJI_KV_EVENTS=1000000 GONGJI_KV_MEMBERS=100000 cargo test --release -p gongji-log \
//!   --features kv-compare --test kv_open -- --ignored --nocapture --test-threads=1 kv_compare
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

#[cfg(feature = "kv-compare")]
use gongji_log::kv_compare::ComparedStore;
use gongji_log::{Kv, Log, LogOptions, ProjectionBackend};

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

/// One store to measure.
#[derive(Clone, Copy, Debug)]
enum Store {
    /// sled as `Log::close` leaves it (reopened once so that it writes a current snapshot).
    SledSettled,
    /// sled as before that change (a clone of the `Kv` outlives the log, so sled is not
    /// reopened: the baseline).
    SledUnsettled,
    Runs,
    /// A store opened by itself behind the `Kv` API, without a log.
    #[cfg(feature = "kv-compare")]
    Bare(ComparedStore),
}

/// What a store is opened as: a log (whose `kv()` is measured) or a bare `Kv`.
enum Opened {
    Log(Box<Log>),
    #[cfg_attr(not(feature = "kv-compare"), allow(dead_code))]
    Kv(Kv),
}

impl Opened {
    fn kv(&self) -> &Kv {
        match self {
            Opened::Log(log) => log.kv(),
            Opened::Kv(kv) => kv,
        }
    }
}

impl Store {
    fn options(self) -> LogOptions {
        let projections = match self {
            Store::SledSettled | Store::SledUnsettled => ProjectionBackend::Sled,
            Store::Runs => ProjectionBackend::Runs,
            #[cfg(feature = "kv-compare")]
            Store::Bare(_) => unreachable!("a bare store has no log"),
        };
        LogOptions {
            projections,
            ..LogOptions::default()
        }
    }

    fn name(self) -> &'static str {
        match self {
            Store::SledSettled => "sled_settled",
            Store::SledUnsettled => "sled_unsettled",
            Store::Runs => "runs",
            #[cfg(feature = "kv-compare")]
            Store::Bare(ComparedStore::Runs) => "runs_bare",
            #[cfg(feature = "kv-compare")]
            Store::Bare(ComparedStore::Fjall) => "fjall",
            #[cfg(feature = "kv-compare")]
            Store::Bare(ComparedStore::Redb) => "redb",
        }
    }

    fn open(self, dir: &Path) -> Opened {
        match self {
            #[cfg(feature = "kv-compare")]
            Store::Bare(which) => {
                Opened::Kv(Kv::open_for_comparison(which, dir).expect("open bare store"))
            }
            _ => Opened::Log(Box::new(Log::open_with(dir, self.options()).expect("open"))),
        }
    }

    /// Where the store's bytes are.
    fn store_dir(self, dir: &Path) -> std::path::PathBuf {
        match self {
            #[cfg(feature = "kv-compare")]
            Store::Bare(_) => dir.to_path_buf(),
            _ => dir.join("index"),
        }
    }
}

/// Writes the store; returns the time the writer took (including its close) and the number
/// of keys written.
fn build(dir: &Path, events: u64, members: u64, store: Store) -> (Duration, u64) {
    const COMMIT_EVENTS: u64 = 1000;
    const MEMBER_BASE_BYTES: usize = 120;
    const MEMBER_BYTES_PER_EVENT: usize = 8;
    const MEMBER_BYTES_MAX: usize = 400;
    let started = Instant::now();
    let opened = store.open(dir);
    let kv = opened.kv();
    let mut keys_written = 0u64;
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
        keys_written += writes.len() as u64;
        // The checkpoint stays 0: this log has no records, and a checkpoint
        // beyond its end would make open clear the store.
        kv.apply(writes, 0).expect("apply");
    }
    kv.flush().expect("flush");
    let held = matches!(store, Store::SledUnsettled).then(|| kv.clone());
    match opened {
        Opened::Log(log) => log.close().expect("close"),
        Opened::Kv(kv) => drop(kv),
    }
    drop(held);
    (started.elapsed(), keys_written)
}

fn timed_open(dir: &Path, store: Store) -> (Duration, Duration) {
    let started = Instant::now();
    let store = store.open(dir);
    let opened = started.elapsed();
    let value = store.kv().get(&member_key(7)).expect("get");
    assert!(value.is_some());
    let answered = started.elapsed();
    drop(store);
    (opened, answered)
}

/// What one store measured.
struct Figures {
    keys_per_second: f64,
    store_bytes: u64,
    /// Open and first get of the first process after the writer.
    first_open_and_get: Duration,
    /// Median open and first get of the processes after it.
    later_open_and_get: Duration,
}

fn measure(store: Store, events: u64, members: u64) -> Figures {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ledger");
    let (wrote, keys) = build(&dir, events, members, store);
    let store_bytes = dir_bytes(&store.store_dir(&dir));
    let keys_per_second = keys as f64 / wrote.as_secs_f64();
    let name = store.name();
    println!(
        "kv_write store={name} events={events} members={members} keys={keys} seconds={:.2} \
         keys_per_second={keys_per_second:.0} store_bytes={store_bytes} bytes_per_event={:.0}",
        wrote.as_secs_f64(),
        store_bytes as f64 / events as f64
    );
    let mut later = Vec::new();
    let mut first = Duration::ZERO;
    for round in 0..5 {
        let (opened, answered) = timed_open(&dir, store);
        println!(
            "kv_open store={name} round={round} open_ms={:.2} open_and_get_ms={:.2}",
            opened.as_secs_f64() * 1e3,
            answered.as_secs_f64() * 1e3
        );
        if round == 0 {
            first = answered;
        } else {
            later.push(answered);
        }
    }
    later.sort();
    Figures {
        keys_per_second,
        store_bytes,
        first_open_and_get: first,
        later_open_and_get: later[later.len() / 2],
    }
}

#[test]
#[ignore = "measurement; run in release"]
fn kv_open_time_on_a_ledger_sized_store() {
    let events = env_u64("GONGJI_KV_EVENTS", 300_000);
    let members = env_u64("GONGJI_KV_MEMBERS", 10_000);
    let _baseline = measure(Store::SledUnsettled, events, members);
    let sled = measure(Store::SledSettled, events, members);
    let runs = measure(Store::Runs, events, members);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "kv_ratio write_keys_per_second runs={:.0} sled={:.0} runs_over_sled={:.2}",
        runs.keys_per_second,
        sled.keys_per_second,
        runs.keys_per_second / sled.keys_per_second
    );
    println!(
        "kv_ratio first_open_and_get_ms runs={:.2} sled={:.2} sled_over_runs={:.1}",
        ms(runs.first_open_and_get),
        ms(sled.first_open_and_get),
        sled.first_open_and_get.as_secs_f64() / runs.first_open_and_get.as_secs_f64()
    );
    println!(
        "kv_ratio median_later_open_and_get_ms runs={:.2} sled={:.2} sled_over_runs={:.1}",
        ms(runs.later_open_and_get),
        ms(sled.later_open_and_get),
        sled.later_open_and_get.as_secs_f64() / runs.later_open_and_get.as_secs_f64()
    );
    println!(
        "kv_ratio store_bytes runs={} sled={} runs_over_sled={:.2} bytes_per_event runs={:.0} \
         sled={:.0}",
        runs.store_bytes,
        sled.store_bytes,
        runs.store_bytes as f64 / sled.store_bytes as f64,
        runs.store_bytes as f64 / events as f64,
        sled.store_bytes as f64 / events as f64
    );
}

/// fjall and redb against the run files, each opened by itself behind the `Kv` API, on the
/// same workload in the same run (see the module documentation).
#[cfg(feature = "kv-compare")]
#[test]
#[ignore = "measurement; run in release with --features kv-compare"]
fn kv_compare_fjall_and_redb_with_the_run_files() {
    let events = env_u64("GONGJI_KV_EVENTS", 300_000);
    let members = env_u64("GONGJI_KV_MEMBERS", 10_000);
    let runs = measure(Store::Bare(ComparedStore::Runs), events, members);
    let sled = measure(Store::SledSettled, events, members);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (name, other) in [
        ("sled_settled", sled),
        (
            "fjall",
            measure(Store::Bare(ComparedStore::Fjall), events, members),
        ),
        (
            "redb",
            measure(Store::Bare(ComparedStore::Redb), events, members),
        ),
    ] {
        // Each figure as "how many times worse than the run files" (1.0: as good).
        let write = runs.keys_per_second / other.keys_per_second;
        let first_open =
            other.first_open_and_get.as_secs_f64() / runs.first_open_and_get.as_secs_f64();
        let later_open =
            other.later_open_and_get.as_secs_f64() / runs.later_open_and_get.as_secs_f64();
        let bytes = other.store_bytes as f64 / runs.store_bytes as f64;
        let within = [write, first_open, later_open, bytes]
            .iter()
            .all(|&r| r <= 1.5);
        println!(
            "kv_compare store={name} keys_per_second={:.0} runs={:.0} write_slower_x={write:.2} \
             first_open_and_get_ms={:.2} runs={:.2} first_open_x={first_open:.2} \
             later_open_and_get_ms={:.2} runs={:.2} later_open_x={later_open:.2} \
             store_bytes={} runs={} bytes_x={bytes:.2} within_1_5x_on_each={within}",
            other.keys_per_second,
            runs.keys_per_second,
            ms(other.first_open_and_get),
            ms(runs.first_open_and_get),
            ms(other.later_open_and_get),
            ms(runs.later_open_and_get),
            other.store_bytes,
            runs.store_bytes,
        );
    }
}
