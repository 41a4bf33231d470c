//! `gongji-bench`: the measurements of issue 6, with their baselines measured
//! in the same run. Prints one JSON object per figure on standard output:
//! `{"name":...,"value":...,"unit":...}`; progress and notes go to standard error.
//!
//! ```text
//! gongji-bench [--quick] [--gongji PATH] [--work DIR] [--members N] [--records N]
//!              [--query-members N] [--no-postgres] [--only-append]
//! ```
//! `--quick` runs every measurement on small sizes (a check that the benchmark
//! works, for CI; its figures mean nothing). `--gongji` defaults to the
//! `gongji` beside this program. `--only-append` stops after the durable-append
//! figures (log, plain files, log scan). See `docs/performance.md`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use gongji_log::{Log, NewRecord, SyncTicket};
use gongji_tools::gen::{generate, Config};
use gongji_tools::rng::Rng;

const BATCH_RECORDS: u64 = 1000;
const PAYLOAD_BYTES: usize = 100;
const POLICY: &str = "policies/500000-2024-01-01.json";

struct Options {
    quick: bool,
    gongji: Option<PathBuf>,
    work: Option<PathBuf>,
    members: u64,
    records: u64,
    sled_records: u64,
    query_members: u64,
    postgres: bool,
    only_append: bool,
}

fn emit(name: &str, value: f64, unit: &str) {
    let value = if value.is_finite() { value } else { -1.0 };
    println!(
        "{{\"name\":\"{name}\",\"value\":{},\"unit\":\"{unit}\"}}",
        if value.fract() == 0.0 && value.abs() < 1e15 {
            format!("{value:.0}")
        } else {
            format!("{value:.4}")
        }
    );
}

fn note(message: &str) {
    eprintln!("gongji-bench: {message}");
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Runs a child to completion; returns (exit code, wall time, peak RSS bytes).
fn run_measured(command: &mut Command) -> Result<(i32, Duration, u64), String> {
    let start = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    if waited != pid {
        return Err(format!("waiting for {command:?} failed"));
    }
    // The child was reaped by wait4; forget it so its Drop does nothing.
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, elapsed, usage.ru_maxrss as u64 * 1024))
}

// ---- log append vs plain file vs sled -------------------------------------

fn payload(n: u64) -> [u8; PAYLOAD_BYTES] {
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

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A plain file: `record_bytes` per record, one write and one fdatasync per
/// batch of 1000. Returns (records/s written, records/s read back).
fn bench_plain_file(path: &Path, records: u64, record_bytes: usize) -> Result<(f64, f64), String> {
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

// ---- the ledger as whole processes -----------------------------------------

struct Ledger<'a> {
    gongji: &'a Path,
    data: PathBuf,
    /// `gongji --projections`: `runs` (the default) or `sled` (the baseline).
    projections: &'static str,
}

impl Ledger<'_> {
    fn command(&self) -> Command {
        let mut c = Command::new(self.gongji);
        c.arg("--data")
            .arg(&self.data)
            .arg("--projections")
            .arg(self.projections);
        c
    }

    fn events(&self) -> Result<u64, String> {
        let log = Log::open(&self.data).map_err(|e| e.to_string())?;
        Ok(log.durable_end())
    }
}

fn generate_file(path: &Path, members: u64, seed: u64) -> Result<u64, String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let config = Config {
        members,
        seed,
        ..Config::default()
    };
    let start = Instant::now();
    let stats = generate(&config, &mut out).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    emit(
        "gen_lines_per_second",
        rate(stats.lines, start.elapsed()),
        "lines/s",
    );
    note(&format!("generated {}: {stats:?}", path.display()));
    Ok(stats.lines)
}

/// What `apply_year` measured.
struct Applied {
    lines: u64,
    elapsed: Duration,
}

/// A generated year: its command file and how many lines it has.
struct Year {
    file: PathBuf,
    members: u64,
    lines: u64,
}

impl Year {
    fn generate(work: &Path, name: &str, members: u64) -> Result<Year, String> {
        let file = work.join(format!("{name}.jsonl"));
        let lines = generate_file(&file, members, 1)?;
        Ok(Year {
            file,
            members,
            lines,
        })
    }
}

/// `policy load` + `apply` of a generated year; returns the ledger. Figures are printed when
/// `report` says so: `Some("")` for the ledger as it runs, `Some("sled_")` for the baseline.
fn apply_year<'a>(
    gongji: &'a Path,
    work: &Path,
    name: &str,
    year: &Year,
    projections: &'static str,
    report: Option<&str>,
) -> Result<(Ledger<'a>, Applied), String> {
    let (file, members, lines) = (&year.file, year.members, year.lines);
    let ledger = Ledger {
        gongji,
        data: work.join(name),
        projections,
    };
    let _ = std::fs::remove_dir_all(&ledger.data);
    let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(POLICY);
    let status = ledger
        .command()
        .args(["policy", "load"])
        .arg(&policy)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("gongji policy load failed".into());
    }
    let results = work.join(format!("{name}.results"));
    let (code, elapsed, peak) = run_measured(
        ledger
            .command()
            .arg("apply")
            .arg(file)
            .arg("--json")
            .stdout(File::create(&results).map_err(|e| e.to_string())?),
    )?;
    if code != 0 && code != 1 {
        return Err(format!("gongji apply exited with {code}"));
    }
    let rejected = BufReader::new(File::open(&results).map_err(|e| e.to_string())?)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("\"ok\":false"))
        .count();
    let events = ledger.events()?;
    let applied = Applied { lines, elapsed };
    if let Some("sled_") = report {
        emit(
            "sled_projections_apply_commands_per_second",
            rate(lines, elapsed),
            "commands/s",
        );
        emit(
            "sled_projections_apply_peak_rss",
            peak as f64 / (1 << 20) as f64,
            "MiB",
        );
        emit(
            "sled_projections_footprint_total_bytes_per_event",
            (dir_bytes(&ledger.data.join("segments")) + dir_bytes(&ledger.data.join("index")))
                as f64
                / events as f64,
            "bytes/event",
        );
    } else if report.is_some() {
        emit("apply_members", members as f64, "members");
        emit("apply_lines", lines as f64, "commands");
        emit("apply_rejected_lines", rejected as f64, "commands");
        emit("apply_events", events as f64, "events");
        emit("apply_seconds", elapsed.as_secs_f64(), "s");
        emit(
            "apply_commands_per_second",
            rate(lines, elapsed),
            "commands/s",
        );
        emit("apply_events_per_second", rate(events, elapsed), "events/s");
        emit("apply_peak_rss", peak as f64 / (1 << 20) as f64, "MiB");
        emit(
            "apply_vs_target_300k_commands_per_second",
            rate(lines, elapsed) / 300_000.0,
            "ratio",
        );
        let segments = dir_bytes(&ledger.data.join("segments"));
        let index = dir_bytes(&ledger.data.join("index"));
        emit(
            "footprint_segments_bytes_per_event",
            segments as f64 / events as f64,
            "bytes/event",
        );
        emit(
            "footprint_index_and_projections_bytes_per_event",
            index as f64 / events as f64,
            "bytes/event",
        );
        emit(
            "footprint_total_bytes_per_event",
            (segments + index) as f64 / events as f64,
            "bytes/event",
        );
    }
    Ok((ledger, applied))
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

fn bench_queries(ledger: &Ledger<'_>, members: u64, runs: u64, prefix: &str) -> Result<(), String> {
    let mut rng = Rng::new(9);
    for (label, args) in [
        ("account", vec!["account"]),
        ("year", vec!["year"]),
        ("account_as_of", vec!["account", "--as-of", "2024-06-30"]),
    ] {
        let mut samples = Vec::new();
        let mut peak_max = 0;
        for _ in 0..runs {
            let member = format!("M{:07}", rng.below(members));
            let mut c = ledger.command();
            c.args(&args).arg(&member);
            if label == "year" {
                c.arg("2024");
            }
            let (code, elapsed, peak) =
                run_measured(c.stdout(Stdio::null()).stderr(Stdio::null()))?;
            if code > 1 {
                return Err(format!("gongji {label} {member} exited with {code}"));
            }
            samples.push(elapsed);
            peak_max = peak_max.max(peak);
        }
        emit(
            &format!("{prefix}query_{label}_median"),
            median_ms(samples.clone()),
            "ms",
        );
        emit(
            &format!("{prefix}query_{label}_max"),
            samples.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            "ms",
        );
    }
    // history reads the member's stream from the log.
    let mut samples = Vec::new();
    for _ in 0..runs {
        let member = format!("M{:07}", rng.below(members));
        let (code, elapsed, _) = run_measured(
            ledger
                .command()
                .args(["history", &member])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        if code > 1 {
            return Err(format!("gongji history {member} exited with {code}"));
        }
        samples.push(elapsed);
    }
    emit(
        &format!("{prefix}query_history_median"),
        median_ms(samples),
        "ms",
    );
    Ok(())
}

/// `gongji rebuild`; returns events a second. Figures are printed unless `prefix` is `sled_`
/// (the baseline, whose rate the caller compares).
fn bench_rebuild(
    ledger: &Ledger<'_>,
    scan_baseline: Option<f64>,
    prefix: &str,
) -> Result<f64, String> {
    let events = ledger.events()?;
    let (code, elapsed, peak) = run_measured(
        ledger
            .command()
            .arg("rebuild")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    if code != 0 {
        return Err(format!("gongji rebuild exited with {code}"));
    }
    let events_rate = rate(events, elapsed);
    if prefix == "sled_" {
        emit(
            "sled_projections_replay_events_per_second",
            events_rate,
            "events/s",
        );
        return Ok(events_rate);
    }
    emit("replay_events", events as f64, "events");
    emit("replay_events_per_second", events_rate, "events/s");
    emit("replay_peak_rss", peak as f64 / (1 << 20) as f64, "MiB");
    emit(
        "replay_vs_target_3m_events_per_second",
        events_rate / 3e6,
        "ratio",
    );
    if let Some(pg) = scan_baseline {
        emit("replay_vs_postgres_scan", events_rate / pg, "ratio");
    }
    Ok(events_rate)
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        gongji: None,
        work: None,
        members: 100_000,
        records: 5_000_000,
        sled_records: 200_000,
        query_members: 0,
        postgres: true,
        only_append: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes_given = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--quick" => o.quick = true,
            "--no-postgres" => o.postgres = false,
            "--only-append" => o.only_append = true,
            "--gongji" => o.gongji = Some(PathBuf::from(value()?)),
            "--work" => o.work = Some(PathBuf::from(value()?)),
            "--members" => {
                o.members = number(value()?)?;
                sizes_given.push("members");
            }
            "--records" => {
                o.records = number(value()?)?;
                sizes_given.push("records");
            }
            "--query-members" => {
                o.query_members = number(value()?)?;
                sizes_given.push("query-members");
            }
            "-h" | "--help" => {
                return Err(
                    "usage: gongji-bench [--quick] [--gongji PATH] [--work DIR] \
                            [--members N] [--records N] [--query-members N] [--no-postgres] \
                            [--only-append]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.quick {
        if !sizes_given.contains(&"members") {
            o.members = 300;
        }
        if !sizes_given.contains(&"records") {
            o.records = 20_000;
        }
        o.sled_records = 2_000;
    }
    Ok(o)
}

fn run(o: &Options) -> Result<(), String> {
    let tmp;
    let work = match &o.work {
        Some(w) => {
            std::fs::create_dir_all(w).map_err(|e| e.to_string())?;
            w.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("gongji-bench")
                .tempdir()
                .map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    emit(
        "machine_cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get()) as f64,
        "cpus",
    );
    emit("quick_mode", if o.quick { 1.0 } else { 0.0 }, "bool");

    // 1. Durable append: log vs plain file, same batches and fsyncs, in
    // interleaved rounds (the disk is shared: a ratio is taken per round).
    let rounds = if o.quick { 2 } else { 5 };
    let per_round = (o.records / rounds).max(BATCH_RECORDS);
    note(&format!(
        "log append of {} records in {rounds} rounds",
        per_round * rounds
    ));
    let log_dir = work.join("log");
    let _ = std::fs::remove_dir_all(&log_dir);
    let names: Vec<String> = (0..100_000).map(|i| format!("m/M{i:07}")).collect();
    let mut log = Log::open(&log_dir).map_err(|e| e.to_string())?;
    let frame_bytes = 8 + 81 + names[0].len() - 1 + PAYLOAD_BYTES;
    let (mut log_rates, mut plain_rates, mut frame_rates) = (Vec::new(), Vec::new(), Vec::new());
    let (mut plain_reads, mut frame_reads) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        log_rates.push(log_appends(&mut log, &names, round * per_round, per_round)?);
        let (w, r) = bench_plain_file(&work.join("plain.dat"), per_round, PAYLOAD_BYTES)?;
        plain_rates.push(w);
        plain_reads.push(r);
        let (w, r) = bench_plain_file(&work.join("plain-frames.dat"), per_round, frame_bytes)?;
        frame_rates.push(w);
        frame_reads.push(r);
        note(&format!(
            "round {round}: log {:.0}/s, plain 100 B {:.0}/s, plain {frame_bytes} B {:.0}/s",
            log_rates[round as usize], plain_rates[round as usize], frame_rates[round as usize]
        ));
    }
    log.close().map_err(|e| e.to_string())?;
    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    let (log_scan, log_bytes, segment_bytes_per_record) = log_reads(&log_dir, &names)?;
    let _ = std::fs::remove_dir_all(&log_dir);
    let log_rate = median(log_rates.clone());
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
    emit(
        "plain_file_append_100B_records_per_second",
        median(plain_rates.clone()),
        "records/s",
    );
    emit(
        "plain_file_append_frame_sized_records_per_second",
        median(frame_rates.clone()),
        "records/s",
    );
    emit(
        "log_append_vs_plain_file_100B",
        ratio(&log_rates, &plain_rates),
        "ratio",
    );
    emit(
        "log_append_vs_plain_file_frame_sized",
        ratio(&log_rates, &frame_rates),
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
        median(plain_reads),
        "records/s",
    );
    let frame_read = median(frame_reads);
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
    if o.only_append {
        return Ok(());
    }

    // 2. sled with a flush per 1000 inserts.
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

    // 3. PostgreSQL, when a server is reachable.
    let mut pg_scan = None;
    match o.postgres.then(find_psql).flatten() {
        Some(base) => {
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
                    pg_scan = Some(scan);
                }
                Err(e) => note(&format!("PostgreSQL measurement failed: {e}")),
            }
        }
        None => note("no PostgreSQL server reachable (try `pg_ctlcluster 15 main start`); skipped"),
    }

    // 4. The ledger as whole processes.
    let gongji = match &o.gongji {
        Some(g) => g.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("gongji"),
    };
    if !gongji.exists() {
        note(&format!(
            "{} not found: build it (cargo build --release -p gongji-cli) or pass --gongji; \
             apply, replay and query figures skipped",
            gongji.display()
        ));
        return Ok(());
    }
    note(&format!("gongji apply of a {}-member year", o.members));
    let year = Year::generate(&work, "year", o.members)?;
    let (ledger, applied) = apply_year(&gongji, &work, "ledger", &year, "runs", Some(""))?;
    let runs = if o.quick { 3 } else { 21 };
    bench_queries(&ledger, o.members, runs, "")?;
    let replay_rate = bench_rebuild(&ledger, pg_scan, "")?;
    let _ = std::fs::remove_dir_all(&ledger.data);
    // The same year with the projections in sled (the store before issue 6's own), as the
    // same-run baseline of the projection store.
    note("the same year with --projections sled (baseline)");
    let (sled, sled_applied) =
        apply_year(&gongji, &work, "ledger-sled", &year, "sled", Some("sled_"))?;
    emit(
        "apply_vs_sled_projections",
        rate(applied.lines, applied.elapsed) / rate(sled_applied.lines, sled_applied.elapsed),
        "ratio",
    );
    bench_queries(&sled, o.members, runs, "sled_")?;
    let sled_replay = bench_rebuild(&sled, None, "sled_")?;
    emit(
        "replay_vs_sled_projections",
        replay_rate / sled_replay,
        "ratio",
    );
    let _ = std::fs::remove_dir_all(&sled.data);
    if o.query_members > 0 {
        note(&format!("a {}-member ledger for queries", o.query_members));
        let big_year = Year::generate(&work, "big", o.query_members)?;
        let (big, _) = apply_year(&gongji, &work, "big-ledger", &big_year, "runs", None)?;
        emit("big_ledger_events", big.events()? as f64, "events");
        bench_queries(&big, o.query_members, runs, "big_")?;
        let _ = std::fs::remove_dir_all(&big.data);
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gongji-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
