//! The durable log against plain files: appends in batches with an fsync each, and reading
//! back.

use std::path::Path;
use std::time::Instant;

use super::baselines::bench_plain_file;

use gongji_log::{Log, NewRecord, SyncTicket};

use gongji_tools::rng::Rng;

use super::figures::{dir_bytes, emit, median, note, rate};
use super::options::Options;
use super::{BATCH_RECORDS, PAYLOAD_BYTES};

/// What the later stages compare with: the log's append and scan rates.
pub struct AppendFigures {
    pub log_rate: f64,
    pub log_scan: f64,
}

/// Rates per round, each side measured in the same round.
#[derive(Default)]
struct Rounds {
    log: Vec<f64>,
    plain: Vec<f64>,
    frames: Vec<f64>,
    plain_reads: Vec<f64>,
    frame_reads: Vec<f64>,
}

/// Stage 1, durable append: log vs plain file, same batches and fsyncs, in interleaved rounds (the
/// disk is shared: a ratio is taken per round); then the log read back.
pub fn durable_append(o: &Options, work: &Path) -> Result<AppendFigures, String> {
    let rounds = if o.quick { 2 } else { 5 };
    let per_round = (o.records / rounds).max(BATCH_RECORDS);
    note(&format!(
        "log append of {} records in {rounds} rounds",
        per_round * rounds
    ));
    let log_dir = work.join("log");
    let _ = std::fs::remove_dir_all(&log_dir);
    let names: Vec<String> = (0..100_000).map(|i| format!("m/M{i:07}")).collect();
    let measured = measure_rounds(&log_dir, work, &names, rounds, per_round)?;
    let (log_scan, log_bytes, segment_bytes_per_record) = log_reads(&log_dir, &names)?;
    let _ = std::fs::remove_dir_all(&log_dir);
    let log_rate = median(measured.log.clone());
    emit("log_append_events_per_second", log_rate, "events/s");
    emit(
        "log_frame_bytes_per_event",
        segment_bytes_per_record,
        "bytes/event",
    );
    emit(
        "log_bytes_on_disk_per_event",
        log_bytes as f64 / (per_round * rounds) as f64,
        "bytes/event",
    );
    emit_against_plain(&measured, log_rate, log_scan);
    Ok(AppendFigures { log_rate, log_scan })
}

fn measure_rounds(
    log_dir: &Path,
    work: &Path,
    names: &[String],
    rounds: u64,
    per_round: u64,
) -> Result<Rounds, String> {
    let mut log = Log::open(log_dir).map_err(|e| e.to_string())?;
    let frame_bytes = 8 + 81 + names[0].len() - 1 + PAYLOAD_BYTES;
    let mut m = Rounds::default();
    for round in 0..rounds {
        m.log
            .push(log_appends(&mut log, names, round * per_round, per_round)?);
        let (w, r) = bench_plain_file(&work.join("plain.dat"), per_round, PAYLOAD_BYTES)?;
        m.plain.push(w);
        m.plain_reads.push(r);
        let (w, r) = bench_plain_file(&work.join("plain-frames.dat"), per_round, frame_bytes)?;
        m.frames.push(w);
        m.frame_reads.push(r);
        note(&format!(
            "round {round}: log {:.0}/s, plain 100 B {:.0}/s, plain {frame_bytes} B {:.0}/s",
            m.log[round as usize], m.plain[round as usize], m.frames[round as usize]
        ));
    }
    log.close().map_err(|e| e.to_string())?;
    Ok(m)
}

fn emit_against_plain(m: &Rounds, log_rate: f64, log_scan: f64) {
    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    emit(
        "plain_file_append_100B_records_per_second",
        median(m.plain.clone()),
        "records/s",
    );
    emit(
        "plain_file_append_frame_sized_records_per_second",
        median(m.frames.clone()),
        "records/s",
    );
    emit(
        "log_append_vs_plain_file_100B",
        ratio(&m.log, &m.plain),
        "ratio",
    );
    emit(
        "log_append_vs_plain_file_frame_sized",
        ratio(&m.log, &m.frames),
        "ratio",
    );
    emit(
        "log_append_vs_target_1m_events_per_second",
        log_rate / 1e6,
        "ratio",
    );
    emit("log_scan_events_per_second", log_scan, "events/s");
    emit(
        "plain_file_read_100B_records_per_second",
        median(m.plain_reads.clone()),
        "records/s",
    );
    let frame_read = median(m.frame_reads.clone());
    emit(
        "plain_file_read_frame_sized_records_per_second",
        frame_read,
        "records/s",
    );
    emit(
        "log_scan_vs_plain_file_frame_sized_read",
        log_scan / frame_read,
        "ratio",
    );
}

pub fn payload(n: u64) -> [u8; PAYLOAD_BYTES] {
    let mut p = [0u8; PAYLOAD_BYTES];
    for (i, b) in p.iter_mut().enumerate() {
        *b = (n as u8).wrapping_add(i as u8);
    }
    p
}

/// Durable appends through the log's API, the way the ledger writes: batches
/// of 1000 one-record units on streams drawn from `names`, each handed to the
/// log's syncer with `sync_start` while the next batch is encoded; an
/// acknowledging thread waits for each batch's ticket (its records written and
/// `fdatasync`ed) before counting the batch as acknowledged. The time includes
/// the wait for the last batch. Returns acknowledged records/s.
fn log_appends(log: &mut Log, names: &[String], first: u64, records: u64) -> Result<f64, String> {
    let mut rng = Rng::new(42 ^ first);
    let start = Instant::now();
    let (tickets, acknowledge) = std::sync::mpsc::sync_channel::<(SyncTicket, u64)>(4);
    let acknowledger = std::thread::spawn(move || -> Result<u64, String> {
        let mut acknowledged = 0u64;
        for (ticket, batch_records) in acknowledge {
            ticket.wait().map_err(|e| e.to_string())?;
            acknowledged += batch_records;
        }
        Ok(acknowledged)
    });
    let mut n = first;
    let end = first + records;
    let appended = (|| -> Result<(), String> {
        while n < end {
            let batch_records = BATCH_RECORDS.min(end - n);
            for _ in 0..batch_records {
                let stream = &names[rng.below(names.len() as u64) as usize];
                let p = payload(n);
                log.append(
                    &[],
                    &[NewRecord {
                        stream,
                        event_id: uuid::Uuid::from_u64_pair(7, n),
                        payload: &p,
                    }],
                    n as i64,
                )
                .map_err(|e| e.to_string())?;
                n += 1;
            }
            let ticket = log.sync_start().map_err(|e| e.to_string())?;
            tickets
                .send((ticket, batch_records))
                .map_err(|_| "the acknowledging thread ended early".to_string())?;
        }
        Ok(())
    })();
    drop(tickets);
    let acknowledged = acknowledger
        .join()
        .map_err(|_| "the acknowledging thread panicked".to_string())??;
    let elapsed = start.elapsed();
    appended?;
    if acknowledged != records {
        return Err(format!("{acknowledged} of {records} records acknowledged"));
    }
    Ok(rate(records, elapsed))
}

/// Reopens the log written by `log_appends`, scans it, reads some streams.
/// Returns (records/s scanned, bytes on disk, segment bytes per record).
fn log_reads(dir: &Path, names: &[String]) -> Result<(f64, u64, f64), String> {
    let segment_bytes = dir_bytes(&dir.join("segments"));
    let open_start = Instant::now();
    let log = Log::open(dir).map_err(|e| e.to_string())?;
    let open_time = open_start.elapsed();
    if log.open_report().records_indexed != 0 {
        note("the log re-indexed records at open after a clean close");
    }
    let start = Instant::now();
    let mut count = 0u64;
    for record in log.read_range(0, u64::MAX).map_err(|e| e.to_string())? {
        record.map_err(|e| e.to_string())?;
        count += 1;
    }
    let scan_rate = rate(count, start.elapsed());
    emit("log_open_after_close", open_time.as_secs_f64() * 1e3, "ms");
    let start = Instant::now();
    let reads = 200u64;
    let mut read_records = 0;
    for i in 0..reads {
        read_records += log
            .read_stream(&names[(i * 7919 % names.len() as u64) as usize])
            .map_err(|e| e.to_string())?
            .len();
    }
    emit(
        "log_read_stream_latency",
        start.elapsed().as_secs_f64() * 1e6 / reads as f64,
        "us",
    );
    emit(
        "log_read_stream_records",
        read_records as f64 / reads as f64,
        "records",
    );
    let start = Instant::now();
    for i in 0..reads {
        log.stream_version(&names[(i * 104_729 % names.len() as u64) as usize])
            .map_err(|e| e.to_string())?;
    }
    emit(
        "log_stream_version_lookup_latency",
        start.elapsed().as_secs_f64() * 1e6 / reads as f64,
        "us",
    );
    drop(log);
    Ok((
        scan_rate,
        dir_bytes(dir),
        segment_bytes as f64 / count.max(1) as f64,
    ))
}
