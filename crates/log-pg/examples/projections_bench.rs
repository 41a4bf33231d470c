//! Storing projections in PostgreSQL (`PgProjections::apply`) against PostgreSQL's own binary
//! COPY of the same rows, in the same run, on the same database: ENTITIES entries (member-like
//! keys, 160-byte values) in one transaction each way, as the ledger's background store hands
//! them over. The apply is measured storing new keys (inserts) and storing the same keys again
//! (updates: the steady state of a long `apply`) and after a clear (a rebuild's store, which
//! goes straight into the table); so is the alternative tried, one
//! `INSERT … SELECT FROM unnest($2, $3) ON CONFLICT DO UPDATE` with the rows as two array
//! parameters and no staging table, and an `UPDATE … FROM` the staging table followed by an
//! `INSERT` of the keys not there. The cases run in interleaved rounds; each figure is the
//! median of five.
//!
//! `cargo run -p gongji-log-pg --example projections_bench [ENTITIES]` against
//! `GONGJI_TEST_PG`, or the cluster `tools/pg-local up` starts.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use gongji_log::ProjectionStore;
use gongji_log_pg::PgProjections;

type Entry = (Vec<u8>, Option<Vec<u8>>);

/// Rounds of every case.
const ROUNDS: u8 = 5;

fn entries(count: u32, round: u8) -> Vec<Entry> {
    (0..count)
        .map(|i| {
            let mut value = vec![round; 160];
            value[..4].copy_from_slice(&i.to_be_bytes());
            (format!("m/M{i:08}").into_bytes(), Some(value))
        })
        .collect()
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// PostgreSQL's own binary COPY of the rows into the projections table, one transaction.
fn copy_baseline(log: &str, rows: &[Entry]) -> Duration {
    let mut client = support::client();
    let mut data = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
    for (key, value) in rows {
        data.extend_from_slice(&3i16.to_be_bytes());
        field(&mut data, log.as_bytes());
        field(&mut data, key);
        field(&mut data, value.as_deref().unwrap_or_default());
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    let start = Instant::now();
    let mut tx = client.transaction().expect("begin");
    let mut sink = tx
        .copy_in("COPY gongji_projections (log, key, value) FROM STDIN (FORMAT binary)")
        .expect("copy");
    sink.write_all(&data).expect("rows");
    sink.finish().expect("finish");
    tx.commit().expect("commit");
    start.elapsed()
}

/// The alternative: the rows as two array parameters of one upsert.
fn unnest_upsert(log: &str, rows: &[Entry]) -> Duration {
    let mut client = support::client();
    let keys: Vec<&[u8]> = rows.iter().map(|(k, _)| k.as_slice()).collect();
    let values: Vec<&[u8]> = rows
        .iter()
        .map(|(_, v)| v.as_deref().unwrap_or_default())
        .collect();
    let start = Instant::now();
    let mut tx = client.transaction().expect("begin");
    tx.execute(
        "INSERT INTO gongji_projections (log, key, value) \
         SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v) \
         ON CONFLICT (log, key) DO UPDATE SET value = EXCLUDED.value",
        &[&log, &keys, &values],
    )
    .expect("upsert");
    tx.commit().expect("commit");
    start.elapsed()
}

/// The other alternative: staged as the store stages them, then an `UPDATE … FROM` of the
/// keys there and an `INSERT` of the keys that were not.
fn update_then_insert(log: &str, rows: &[Entry]) -> Duration {
    let mut client = support::client();
    let mut data = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
    for (key, value) in rows {
        data.extend_from_slice(&2i16.to_be_bytes());
        field(&mut data, key);
        field(&mut data, value.as_deref().unwrap_or_default());
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    let start = Instant::now();
    let mut tx = client.transaction().expect("begin");
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS bench_stage (key bytea NOT NULL, value bytea NOT NULL) \
         ON COMMIT DELETE ROWS",
    )
    .expect("stage");
    let mut sink = tx
        .copy_in("COPY bench_stage (key, value) FROM STDIN (FORMAT binary)")
        .expect("copy");
    sink.write_all(&data).expect("rows");
    sink.finish().expect("finish");
    tx.execute(
        "UPDATE gongji_projections p SET value = s.value FROM bench_stage s \
         WHERE p.log = $1 AND p.key = s.key",
        &[&log],
    )
    .expect("update");
    tx.execute(
        "INSERT INTO gongji_projections (log, key, value) SELECT $1, key, value \
         FROM bench_stage s WHERE NOT EXISTS \
         (SELECT 1 FROM gongji_projections p WHERE p.log = $1 AND p.key = s.key)",
        &[&log],
    )
    .expect("insert");
    tx.commit().expect("commit");
    start.elapsed()
}

fn rate(count: u32, took: Duration) -> f64 {
    f64::from(count) / took.as_secs_f64()
}

/// What is measured: a name, and one timed run given the round.
type Case<'a> = (&'static str, Box<dyn FnMut(u8) -> Duration + 'a>);

fn main() {
    let count: u32 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ENTITIES is a number"))
        .unwrap_or(100_000);
    let uri = support::pg_uri();
    let name = |what: &str| support::fresh_log(&format!("bench-{what}"));
    // The tables exist once a writer opened one store.
    let _ = PgProjections::open(&uri, &name("tables")).expect("open");
    let store = PgProjections::open(&uri, &name("update")).expect("open");
    store.apply(entries(count, 9), Some(1)).expect("apply");
    let (unnest_log, split_log) = (name("unnest-update"), name("split-update"));
    unnest_upsert(&unnest_log, &entries(count, 9));
    update_then_insert(&split_log, &entries(count, 9));
    let timed_apply = |store: &PgProjections, round: u8| {
        let rows = entries(count, round);
        let start = Instant::now();
        store
            .apply(rows, Some(2 + u64::from(round)))
            .expect("apply");
        start.elapsed()
    };
    let mut cases: Vec<Case<'_>> = vec![
        (
            "COPY (PostgreSQL's own, baseline)",
            Box::new(|round| copy_baseline(&name("copy"), &entries(count, round))),
        ),
        (
            "apply, new keys (staged, update, insert)",
            Box::new(|round| {
                let fresh = PgProjections::open(&uri, &name("insert")).expect("open");
                timed_apply(&fresh, round)
            }),
        ),
        (
            "apply, same keys again",
            Box::new(|round| timed_apply(&store, round)),
        ),
        (
            "apply after a clear (a rebuild's store)",
            Box::new(|round| {
                let cleared = PgProjections::open(&uri, &name("cleared")).expect("open");
                cleared.clear().expect("clear");
                timed_apply(&cleared, round)
            }),
        ),
        (
            "unnest upsert, new keys",
            Box::new(|round| unnest_upsert(&name("unnest"), &entries(count, round))),
        ),
        (
            "unnest upsert, same keys again",
            Box::new(|round| unnest_upsert(&unnest_log, &entries(count, round))),
        ),
        (
            "update then insert, new keys",
            Box::new(|round| update_then_insert(&name("split"), &entries(count, round))),
        ),
        (
            "update then insert, same keys again",
            Box::new(|round| update_then_insert(&split_log, &entries(count, round))),
        ),
    ];
    // Interleaved rounds, so that the machine's load falls on every case alike.
    let mut took: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS {
        for (case, times) in cases.iter_mut().zip(&mut took) {
            times.push((case.1)(round));
        }
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let copy_rate = rate(count, median(&mut took[0]));
    println!("{count} entries of 160 bytes, one transaction each, median of {ROUNDS} rounds:");
    for ((what, _), times) in cases.iter().zip(&mut took) {
        let median = median(times);
        println!(
            "  {what:<42} {:>8.1} ms  {:>10.0} rows/s  {:.2} of COPY",
            median.as_secs_f64() * 1e3,
            rate(count, median),
            rate(count, median) / copy_rate
        );
    }
}
