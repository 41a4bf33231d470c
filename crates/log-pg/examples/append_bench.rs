//! Appending to the log of record in PostgreSQL against PostgreSQL's own COPY of the same rows,
//! in the same run, on the same database: 100,000 records in units of 2, a sync (one
//! transaction) every 1,000 units; the baseline COPYs the same rows (hashes computed
//! beforehand) into the same table under another log name, 2,000 rows a transaction. The
//! file log's time for the same appends is printed beside them.
//!
//! `cargo run -p gongji-log-pg --example append_bench [RECORDS]` against `GONGJI_TEST_PG`, or
//! the cluster `tools/pg-local up` starts.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use gongji_log::{DurableLog, ExpectedVersion, Log, NewRecord, Record};
use gongji_log_pg::PgLog;
use uuid::Uuid;

const UNITS_PER_SYNC: u64 = 1_000;

fn payload(unit: u64) -> Vec<u8> {
    format!(
        "{{\"type\":\"ClaimSettled\",\"claim\":\"C{unit:09}\",\"member\":\"M{:07}\",\
         \"amount_fen\":{},\"fund_fen\":{},\"year\":2026}}",
        unit % 10_000,
        unit * 37 % 100_000,
        unit * 29 % 80_000
    )
    .into_bytes()
}

/// Appends `units` units of two records through the seam, syncing every `UNITS_PER_SYNC`
/// units without waiting (as the ledger does), then waits for the last.
fn append_all(log: &mut dyn DurableLog, from: u64, units: u64) -> Duration {
    let start = Instant::now();
    let mut last = None;
    for unit in from..from + units {
        let member = format!("member-{}", unit % 10_000);
        let claim = format!("claim-{unit}");
        let body = payload(unit);
        log.append(
            &[(claim.as_str(), ExpectedVersion::NoStream)],
            &[
                NewRecord {
                    stream: &claim,
                    event_id: Uuid::from_u64_pair(unit, 0),
                    payload: &body,
                },
                NewRecord {
                    stream: &member,
                    event_id: Uuid::from_u64_pair(unit, 1),
                    payload: &body,
                },
            ],
            1_700_000_000_000_000 + unit as i64,
        )
        .expect("append");
        if (unit + 1) % UNITS_PER_SYNC == 0 {
            last = Some(log.sync_start().expect("sync_start"));
        }
    }
    let end = log.sync().expect("sync");
    if let Some(ticket) = last {
        ticket.wait().expect("ticket");
    }
    assert_eq!(end, (from + units) * 2);
    start.elapsed()
}

/// The binary COPY of `records` under log `name`, `rows_per_tx` rows a transaction.
fn copy_baseline(uri: &str, name: &str, records: &[Record], rows_per_tx: usize) -> Duration {
    let mut client = postgres::Client::connect(uri, postgres::NoTls).expect("connect");
    let start = Instant::now();
    for chunk in records.chunks(rows_per_tx) {
        let mut buf = Vec::new();
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&[0; 8]);
        for r in chunk {
            buf.extend_from_slice(&10i16.to_be_bytes());
            let fields: [&[u8]; 10] = [
                name.as_bytes(),
                &(r.position as i64).to_be_bytes(),
                r.stream.as_bytes(),
                &(r.stream_version as i64).to_be_bytes(),
                r.event_id.as_bytes(),
                &r.recorded_at_micros.to_be_bytes(),
                &[u8::from(r.unit_end)],
                &r.payload,
                &r.prev_hash,
                &r.hash,
            ];
            for field in fields {
                buf.extend_from_slice(&(field.len() as i32).to_be_bytes());
                buf.extend_from_slice(field);
            }
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        let mut tx = client.transaction().expect("begin");
        let mut writer = tx
            .copy_in(
                "COPY gongji_log_records (log, position, stream, stream_version, event_id, \
                 recorded_at_micros, unit_end, payload, prev_hash, hash) FROM STDIN (FORMAT binary)",
            )
            .expect("copy");
        writer.write_all(&buf).expect("rows");
        writer.finish().expect("finish");
        tx.commit().expect("commit");
    }
    start.elapsed()
}

fn rate(records: u64, took: Duration) -> f64 {
    records as f64 / took.as_secs_f64()
}

fn main() {
    let records: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("RECORDS is a number"))
        .unwrap_or(100_000);
    let units = records / 2;
    let uri = support::pg_uri();
    let name = support::fresh_log("bench");
    let mut pg = PgLog::open(&uri, &name).expect("open");
    let pg_took = append_all(&mut pg, 0, units);
    let rows: Vec<Record> = pg
        .read_range(0, u64::MAX)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("records");
    Box::new(pg).close().expect("close");
    // Reopened, the log holds records whose streams' versions it must learn: its first new
    // stream loads them all.
    let mut reopened = PgLog::open(&uri, &name).expect("reopen");
    let reopened_took = append_all(&mut reopened, units, units);
    Box::new(reopened).close().expect("close");
    let baseline = support::fresh_log("bench-copy");
    let rows_per_tx = (UNITS_PER_SYNC * 2) as usize;
    let copy_took = copy_baseline(&uri, &baseline, &rows, rows_per_tx);
    let mut client = postgres::Client::connect(&uri, postgres::NoTls).expect("connect");
    for table in ["gongji_log_records", "gongji_log_heads"] {
        client
            .execute(
                &format!("DELETE FROM {table} WHERE log = $1 OR log = $2"),
                &[&name, &baseline],
            )
            .expect("the benchmark's rows deleted");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = Log::open(dir.path()).expect("file log");
    let file_took = append_all(&mut file, 0, units);
    let (pg_rate, copy_rate, file_rate, reopened_rate) = (
        rate(records, pg_took),
        rate(records, copy_took),
        rate(records, file_took),
        rate(records, reopened_took),
    );
    println!(
        "{records} records, units of 2, {UNITS_PER_SYNC} units a sync (transaction):\n\
         PgLog append+sync  {:>8.3} s  {pg_rate:>9.0} records/s\n\
         COPY, same rows    {:>8.3} s  {copy_rate:>9.0} records/s\n\
         file log           {:>8.3} s  {file_rate:>9.0} records/s\n\
         PgLog, reopened    {:>8.3} s  {reopened_rate:>9.0} records/s (versions loaded at the first new stream)\n\
         PgLog / COPY = {:.2}; PgLog / file log = {:.2}",
        pg_took.as_secs_f64(),
        copy_took.as_secs_f64(),
        file_took.as_secs_f64(),
        reopened_took.as_secs_f64(),
        pg_rate / copy_rate,
        pg_rate / file_rate,
    );
}
