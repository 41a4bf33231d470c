//! The baselines measured in the same run: a plain file, sled, and PostgreSQL when a server is
//! reachable.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::figures::{dir_bytes, emit, note, rate};
use super::log::payload;
use super::options::Options;
use super::{BATCH_RECORDS, PAYLOAD_BYTES};

/// Stage 2, sled with a flush per 1000 inserts.
pub fn sled_baseline(o: &Options, work: &Path, log_rate: f64) -> Result<(), String> {
    note(&format!("sled insert of {} records", o.sled_records));
    let sled_dir = work.join("sled");
    let _ = std::fs::remove_dir_all(&sled_dir);
    let (sled_rate, sled_iter, sled_bytes) = bench_sled(&sled_dir, o.sled_records)?;
    let _ = std::fs::remove_dir_all(&sled_dir);
    emit(
        "sled_insert_flush_per_1000_records_per_second",
        sled_rate,
        "records/s",
    );
    emit("sled_iterate_records_per_second", sled_iter, "records/s");
    emit(
        "sled_disk_vs_logical_bytes",
        sled_bytes as f64 / (o.sled_records as f64 * (PAYLOAD_BYTES + 8) as f64),
        "ratio",
    );
    emit("log_append_vs_sled", log_rate / sled_rate, "ratio");
    Ok(())
}

/// Stage 3, PostgreSQL, when a server is reachable. Returns its ordered scan rate.
pub fn postgres_baseline(o: &Options, log_rate: f64, log_scan: f64) -> Option<f64> {
    let Some(base) = o.postgres.then(find_psql).flatten() else {
        note("no PostgreSQL server reachable (try `pg_ctlcluster 15 main start`); skipped");
        return None;
    };
    let records = if o.quick {
        5_000
    } else {
        1_000_000.min(o.records)
    };
    note(&format!("PostgreSQL COPY of {records} rows"));
    match bench_postgres(&base, records) {
        Ok((write, scan, bytes)) => {
            emit("postgres_copy_1000_per_tx_rows_per_second", write, "rows/s");
            emit("postgres_ordered_scan_rows_per_second", scan, "rows/s");
            emit(
                "postgres_bytes_per_row",
                bytes as f64 / records as f64,
                "bytes/row",
            );
            emit("log_append_vs_postgres_copy", log_rate / write, "ratio");
            emit("log_scan_vs_postgres_scan", log_scan / scan, "ratio");
            Some(scan)
        }
        Err(e) => {
            note(&format!("PostgreSQL measurement failed: {e}"));
            None
        }
    }
}

/// A plain file: `record_bytes` per record, one write and one fdatasync per
/// batch of 1000. Returns (records/s written, records/s read back).
pub fn bench_plain_file(
    path: &Path,
    records: u64,
    record_bytes: usize,
) -> Result<(f64, f64), String> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let mut batch = Vec::with_capacity(record_bytes * BATCH_RECORDS as usize);
    let start = Instant::now();
    let mut n = 0u64;
    while n < records {
        batch.clear();
        for _ in 0..BATCH_RECORDS.min(records - n) {
            let p = payload(n);
            batch.extend((0..record_bytes).map(|i| p[i % PAYLOAD_BYTES]));
            n += 1;
        }
        file.write_all(&batch).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
    }
    let write_rate = rate(records, start.elapsed());
    drop(file);
    let start = Instant::now();
    let mut reader =
        BufReader::with_capacity(256 * 1024, File::open(path).map_err(|e| e.to_string())?);
    let mut record = vec![0u8; record_bytes];
    let mut count = 0u64;
    let mut checksum = 0u64;
    while reader.read_exact(&mut record).is_ok() {
        checksum = checksum.wrapping_add(u64::from(record[0]));
        count += 1;
    }
    std::hint::black_box(checksum);
    let read_rate = rate(count, start.elapsed());
    let _ = std::fs::remove_file(path);
    Ok((write_rate, read_rate))
}

/// sled: 1000 inserts then a flush, repeated. Returns (inserts/s, iterated/s, bytes on disk).
fn bench_sled(dir: &Path, records: u64) -> Result<(f64, f64, u64), String> {
    let db = sled::open(dir).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut n = 0u64;
    while n < records {
        for _ in 0..BATCH_RECORDS.min(records - n) {
            db.insert(n.to_be_bytes(), &payload(n)[..])
                .map_err(|e| e.to_string())?;
            n += 1;
        }
        db.flush().map_err(|e| e.to_string())?;
    }
    let write_rate = rate(records, start.elapsed());
    let start = Instant::now();
    let mut count = 0u64;
    for item in db.iter() {
        item.map_err(|e| e.to_string())?;
        count += 1;
    }
    let iter_rate = rate(count, start.elapsed());
    drop(db);
    Ok((write_rate, iter_rate, dir_bytes(dir)))
}

// ---- PostgreSQL -------------------------------------------------------------

/// A way to run psql against a reachable server, if there is one.
fn find_psql() -> Option<Vec<String>> {
    let candidates: Vec<Vec<String>> = vec![
        vec![
            "psql".into(),
            "-X".into(),
            "-q".into(),
            "-d".into(),
            "postgres".into(),
        ],
        vec![
            "runuser".into(),
            "-u".into(),
            "postgres".into(),
            "--".into(),
            "psql".into(),
            "-X".into(),
            "-q".into(),
            "-d".into(),
            "postgres".into(),
        ],
    ];
    candidates.into_iter().find(|c| {
        Command::new(&c[0])
            .args(&c[1..])
            .args(["-v", "ON_ERROR_STOP=1", "-c", "select 1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn psql(base: &[String], sql: &str) -> Result<(), String> {
    let status = Command::new(&base[0])
        .args(&base[1..])
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("psql failed on {sql:?}"))
}

/// COPY of 1000 rows per transaction (synchronous commit), then an ordered scan.
fn bench_postgres(base: &[String], records: u64) -> Result<(f64, f64, u64), String> {
    psql(base, "DROP TABLE IF EXISTS gongji_bench")?;
    psql(
        base,
        "CREATE TABLE gongji_bench (position bigint PRIMARY KEY, stream text NOT NULL, payload bytea NOT NULL)",
    )?;
    let mut child = Command::new(&base[0])
        .args(&base[1..])
        .args(["-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut script = Vec::new();
    let mut n = 0u64;
    while n < records {
        script.extend_from_slice(b"BEGIN;\nCOPY gongji_bench FROM STDIN;\n");
        for _ in 0..BATCH_RECORDS.min(records - n) {
            let hex: String = payload(n).iter().map(|b| format!("{b:02x}")).collect();
            writeln!(script, "{n}\tm/M{:07}\t\\\\x{hex}", n % 100_000).expect("vec write");
            n += 1;
        }
        script.extend_from_slice(b"\\.\nCOMMIT;\n");
    }
    let start = Instant::now();
    {
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(&script).map_err(|e| e.to_string())?;
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let write_rate = rate(records, start.elapsed());
    if !status.success() {
        return Err("psql COPY failed".into());
    }
    psql(base, "VACUUM ANALYZE gongji_bench")?;
    let start = Instant::now();
    let mut scan = Command::new(&base[0])
        .args(&base[1..])
        .args([
            "-c",
            "COPY (SELECT position, stream, payload FROM gongji_bench ORDER BY position) TO STDOUT",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut lines = 0u64;
    for line in BufReader::new(scan.stdout.take().expect("piped")).lines() {
        line.map_err(|e| e.to_string())?;
        lines += 1;
    }
    scan.wait().map_err(|e| e.to_string())?;
    let scan_rate = rate(lines, start.elapsed());
    let mut size = Command::new(&base[0])
        .args(&base[1..])
        .args([
            "-t",
            "-A",
            "-c",
            "SELECT pg_total_relation_size('gongji_bench')",
        ])
        .output()
        .map_err(|e| e.to_string())?
        .stdout;
    size.retain(|b| b.is_ascii_digit());
    let bytes = String::from_utf8_lossy(&size).parse().unwrap_or(0);
    psql(base, "DROP TABLE gongji_bench")?;
    Ok((write_rate, scan_rate, bytes))
}
