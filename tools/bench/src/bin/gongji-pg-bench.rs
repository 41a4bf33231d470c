//! `gongji-pg-bench --uri URI [--members N]`: the ledger on a PostgreSQL log against
//! PostgreSQL's own work on the same rows, in the same run (issue 16's figures; see
//! `docs/performance.md`). Prints one JSON figure a line (`{"name":...,"value":...,"unit":...}`)
//! on standard output, notes on standard error. Run it on the formation (`tools/pg-ha up`) and
//! in a release build.
//!
//! 1. The year of `N` members (default 100,000; `gongji_tools::gen`, after its policy) applied
//!    through the ledger's `apply_stream` (what `gongji apply` runs, 1,000 lines a group
//!    commit), on the embedded file log and on a fresh PostgreSQL log (projections in a temp
//!    dir beside it): records per second each.
//! 2. PostgreSQL's COPY of the very rows the log holds (binary, 1,000 rows a transaction, into
//!    a scratch table with the log table's columns, keys and indexes): records per second.
//! 3. Replay (`audit replay`'s fold of the whole log, in memory) from PostgreSQL and from the
//!    file log, against an ordered scan of the log's rows (`SELECT` of every column `ORDER BY
//!    position`, streamed).
//!
//! Ratios: apply on PostgreSQL / COPY (target at least 0.5), / the file log; replay on
//! PostgreSQL / ordered scan (target at least 0.7). The bench's log and table are removed.
//!
//! `gongji-pg-bench --uri URI --queries [--quick] [--members N] [--file-members N] [--runs N]
//! [--pg-log NAME] [--gongji PATH] [--work DIR]` measures issue 16's query target instead: whole `gongji`
//! processes answering from the projections in PostgreSQL, against the embedded file log, on
//! ledgers the real `gongji apply` built (module `pg_queries`, `src/bench/pg_queries.rs`).
//! Defaults: 350,000 members (about 10 million events), 200 runs a kind; `--quick` 300
//! members and 5 runs (a check that the stage works).

/// The allocator `gongji` runs with (mimalloc): the replay and apply measured here run in this
/// process, and with glibc's malloc they measured the system allocator as much as the ledger.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../bench/figures.rs"]
#[allow(dead_code)]
mod figures;
#[path = "../bench/pg_queries.rs"]
mod pg_queries;

use std::io::{Cursor, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use figures::{emit, note, rate};
use gongji_ledger::{DurableGroup, Ledger, LineOutcome, ProjectionBackend, StreamOptions};
use gongji_log::Log;
use gongji_log_pg::PgLog;
use gongji_tools::gen;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

/// The log table's columns, in the order the log's own COPY sends them.
const COLUMNS: &str = "log, position, stream, stream_version, event_id, recorded_at_micros, \
     unit_end, payload, prev_hash, hash";
/// Rows a transaction in the COPY baseline.
const COPY_ROWS_PER_TRANSACTION: usize = 1000;
/// The binary COPY header (signature, flags, extension length) and trailer.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const COPY_TRAILER: &[u8] = &[0xff, 0xff];

fn input(members: u64) -> Result<Vec<u8>, String> {
    let policy = std::fs::read_to_string("policies/500000-2024-01-01.json")
        .map_err(|e| format!("reading the policy (run from the repository): {e}"))?;
    // One line: the policy file is pretty-printed (JSON takes a space wherever it has a newline).
    let policy = policy.replace(['\n', '\r'], " ");
    let mut out =
        format!("{{\"cmd\":\"load_policy\",\"policy\":{}}}\n", policy.trim()).into_bytes();
    let config = gen::Config {
        members,
        ..gen::Config::default()
    };
    gen::generate(&config, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Applies the input as `gongji apply` does; the records appended and the time taken.
fn apply(ledger: &mut Ledger, input: &[u8]) -> Result<(u64, Duration), String> {
    let from = ledger.log().end_position();
    let started = Instant::now();
    let mut rejected = 0usize;
    let mut first_rejection = None;
    let mut sink = |group: &DurableGroup| {
        for (_, outcome) in group.lines() {
            if let LineOutcome::Rejected(r) = outcome {
                rejected += 1;
                first_rejection.get_or_insert_with(|| format!("{r:?}"));
            }
        }
        Ok::<(), String>(())
    };
    let options = StreamOptions {
        batch_lines: 1000,
        ..StreamOptions::default()
    };
    let summary = ledger
        .apply_stream(
            Cursor::new(input.to_vec()),
            &options,
            &mut sink,
            &mut |_| {},
        )
        .map_err(|e| format!("apply: {e:?}"))?;
    let elapsed = started.elapsed();
    note(&format!(
        "applied {} lines ({} bytes; {rejected} refused, the first: {}) in {:.1} s",
        summary.lines,
        summary.read_bytes,
        first_rejection.unwrap_or_default(),
        elapsed.as_secs_f64()
    ));
    // Every line is durable once `apply_stream` returned (the log's own durable end is taken
    // in at its next sync).
    Ok((ledger.log().end_position() - from, elapsed))
}

fn replay(ledger: &Ledger) -> Result<(u64, Duration), String> {
    let started = Instant::now();
    let report = ledger
        .audit_replay_in_memory(&mut |_, _| {})
        .map_err(|e| format!("replay: {e}"))?;
    Ok((report.records, started.elapsed()))
}

/// The offsets where each row of a binary COPY stream starts, and where the trailer starts.
fn row_starts(data: &[u8]) -> Result<Vec<usize>, String> {
    let mut starts = Vec::new();
    let mut at = COPY_HEADER.len();
    let read = |at: usize, n: usize| -> Result<&[u8], String> {
        data.get(at..at + n)
            .ok_or_else(|| "a truncated COPY stream".to_owned())
    };
    loop {
        let fields = i16::from_be_bytes(read(at, 2)?.try_into().expect("2 bytes"));
        starts.push(at);
        if fields < 0 {
            return Ok(starts);
        }
        at += 2;
        for _ in 0..fields {
            let len = i32::from_be_bytes(read(at, 4)?.try_into().expect("4 bytes"));
            at += 4 + usize::try_from(len).unwrap_or(0);
        }
    }
}

/// PostgreSQL's COPY of the log's rows into a scratch table like the log's, 1,000 a
/// transaction: the rows copied and the time taken.
fn copy_baseline(client: &mut Client, log: &str) -> Result<(u64, Duration), String> {
    let sql = |e: postgres::Error| format!("COPY baseline: {e}");
    let mut data = Vec::new();
    let query = format!(
        "COPY (SELECT {COLUMNS} FROM gongji_log_records WHERE log = '{}' ORDER BY position) \
         TO STDOUT (FORMAT binary)",
        log.replace('\'', "''")
    );
    std::io::copy(&mut client.copy_out(&query).map_err(sql)?, &mut data)
        .map_err(|e| e.to_string())?;
    let starts = row_starts(&data)?;
    let table = format!("gongji_bench_copy_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; \
             CREATE TABLE {table} (LIKE gongji_log_records INCLUDING ALL)"
        ))
        .map_err(sql)?;
    let rows = starts.len() - 1;
    let started = Instant::now();
    for first in (0..rows).step_by(COPY_ROWS_PER_TRANSACTION) {
        let last = (first + COPY_ROWS_PER_TRANSACTION).min(rows);
        let mut tx = client.transaction().map_err(sql)?;
        let mut writer = tx
            .copy_in(&format!(
                "COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)"
            ))
            .map_err(sql)?;
        writer
            .write_all(COPY_HEADER)
            .and_then(|()| writer.write_all(&data[starts[first]..starts[last]]))
            .and_then(|()| writer.write_all(COPY_TRAILER))
            .map_err(|e| e.to_string())?;
        writer.finish().map_err(sql)?;
        tx.commit().map_err(sql)?;
    }
    let elapsed = started.elapsed();
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .map_err(sql)?;
    Ok((rows as u64, elapsed))
}

/// An ordered scan of the log's rows, every column read: the rows and the time taken.
fn ordered_scan(client: &mut Client, log: &str) -> Result<(u64, Duration), String> {
    let started = Instant::now();
    let sql = |e: postgres::Error| format!("ordered scan: {e}");
    let query =
        format!("SELECT {COLUMNS} FROM gongji_log_records WHERE log = $1 ORDER BY position");
    let mut rows = client.query_raw(query.as_str(), [log]).map_err(sql)?;
    let (mut count, mut bytes) = (0u64, 0usize);
    while let Some(row) = rows.next().map_err(sql)? {
        let payload: &[u8] = row.try_get(7).map_err(sql)?;
        let stream: &str = row.try_get(2).map_err(sql)?;
        bytes += payload.len() + stream.len();
        count += 1;
    }
    note(&format!(
        "ordered scan read {count} rows, {bytes} payload and stream bytes"
    ));
    Ok((count, started.elapsed()))
}

const USAGE: &str = "usage: gongji-pg-bench --uri URI [--members N]\n       \
    gongji-pg-bench --uri URI --queries [--quick] [--members N] [--file-members N] [--runs N] \
    [--pg-log NAME] [--gongji PATH] [--work DIR]";

/// What the command line asks for: the apply, COPY and replay figures, or the queries'.
enum Mode {
    ApplyAndReplay { uri: String, members: u64 },
    Queries(pg_queries::QueryOptions),
}

fn parse(args: Vec<String>) -> Result<Mode, String> {
    let queries = args.iter().any(|a| a == "--queries");
    let quick = args.iter().any(|a| a == "--quick");
    let mut flags = args
        .into_iter()
        .filter(|a| a != "--queries" && a != "--quick");
    let mut q = pg_queries::QueryOptions::defaults(quick);
    let (mut uri, mut members) = (None, None);
    while let Some(flag) = flags.next() {
        let value = flags
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--uri" => uri = Some(value),
            "--members" => members = Some(number(&value)?),
            "--file-members" if queries => q.file_members = Some(number(&value)?),
            "--runs" if queries => q.runs = number(&value)?.max(1) as usize,
            "--pg-log" if queries => q.log = Some(value),
            "--gongji" if queries => q.gongji = Some(value.into()),
            "--work" if queries => q.work = Some(value.into()),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    let uri = uri.ok_or(USAGE)?;
    if !queries {
        if quick {
            return Err(format!("--quick goes with --queries\n{USAGE}"));
        }
        let members = members.unwrap_or(100_000);
        return Ok(Mode::ApplyAndReplay { uri, members });
    }
    q.uri = uri;
    q.members = members.unwrap_or(q.members);
    Ok(Mode::Queries(q))
}

fn run() -> Result<(), String> {
    match parse(std::env::args().skip(1).collect())? {
        Mode::ApplyAndReplay { uri, members } => apply_and_replay(&uri, members),
        Mode::Queries(options) => pg_queries::run(&options),
    }
}

fn apply_and_replay(uri: &str, members: u64) -> Result<(), String> {
    let input = input(members)?;
    note(&format!("{members} members' year: {} bytes", input.len()));

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut file = Ledger::open(&dir.path().join("file")).map_err(|e| e.to_string())?;
    let (file_records, file_apply) = apply(&mut file, &input)?;
    let (_, file_replay) = replay(&file)?;
    file.close().map_err(|e| e.to_string())?;
    emit(
        "file_apply_records_per_s",
        rate(file_records, file_apply),
        "records/s",
    );
    emit(
        "file_replay_records_per_s",
        rate(file_records, file_replay),
        "records/s",
    );

    let log = format!(
        "bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let store = Log::open(&dir.path().join("projections")).map_err(|e| e.to_string())?;
    let pg = PgLog::open(uri, &log).map_err(|e| e.to_string())?;
    let mut ledger = Ledger::with_log(Box::new(pg), store.kv().clone(), ProjectionBackend::Runs)
        .map_err(|e| e.to_string())?;
    let (pg_records, pg_apply) = apply(&mut ledger, &input)?;
    let (_, pg_replay) = replay(&ledger)?;
    ledger.close().map_err(|e| e.to_string())?;
    if pg_records != file_records {
        return Err(format!(
            "{pg_records} records on PostgreSQL, {file_records} on file"
        ));
    }
    let mut client = Client::connect(uri, NoTls).map_err(|e| e.to_string())?;
    let (copied, copy) = copy_baseline(&mut client, &log)?;
    let (scanned, scan) = ordered_scan(&mut client, &log)?;
    client
        .execute("DELETE FROM gongji_log_records WHERE log = $1", &[&log])
        .and_then(|_| client.execute("DELETE FROM gongji_log_heads WHERE log = $1", &[&log]))
        .map_err(|e| format!("removing the bench's log: {e}"))?;

    let pg_apply_rate = rate(pg_records, pg_apply);
    emit("pg_apply_records_per_s", pg_apply_rate, "records/s");
    emit("pg_copy_records_per_s", rate(copied, copy), "records/s");
    emit(
        "pg_apply_over_copy",
        pg_apply_rate / rate(copied, copy),
        "ratio",
    );
    emit(
        "pg_apply_over_file_apply",
        pg_apply_rate / rate(file_records, file_apply),
        "ratio",
    );
    let pg_replay_rate = rate(pg_records, pg_replay);
    emit("pg_replay_records_per_s", pg_replay_rate, "records/s");
    emit(
        "pg_ordered_scan_records_per_s",
        rate(scanned, scan),
        "records/s",
    );
    emit(
        "pg_replay_over_scan",
        pg_replay_rate / rate(scanned, scan),
        "ratio",
    );
    emit("pg_records", pg_records as f64, "records");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gongji-pg-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
