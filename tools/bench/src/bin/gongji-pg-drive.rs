//! `gongji-pg-drive`: the ledger's work on a PostgreSQL log while `tools/pg-failover` kills
//! the formation's nodes under it, and the checks of what came out.
//!
//! ```text
//! gongji-pg-drive --uri URI --log NAME --acks FILE [--until FILE] [--members N]
//!                 [--lines-per-commit K] [--pause-ms P] [--policy PATH] [--projections-dir]
//! ```
//!
//! Applies a generated region's year (`gongji_tools::gen`, after its policy) through the
//! ledger in PostgreSQL (`Ledger::open_postgres`: the log and the projections there; with
//! `--projections-dir`, `Ledger::with_log` over a `PgLog`, projections in a temp dir), `K`
//! lines a commit with `P`
//! ms between commits, in ONE process that is never restarted: failovers are the log's to
//! ride. After each commit returns, appends to `--acks` the count of lines acknowledged so far
//! and the log's durable end (`LINES END`, a line each). Stops when the lines run out or `--until` exists. Then checks,
//! and prints `check: ...` lines, exiting 0 only if all held:
//! * `audit verify` of the ledger over PostgreSQL passes (chain, invariants, projections);
//! * the log as read back by a new reader (on whatever node is primary now) holds exactly the
//!   records the same lines give on the embedded file log in an uninterrupted run: every
//!   acknowledged line's events once, in order, hash chain included (a batch applied twice or
//!   lost would differ);
//! * the outcomes reported are the file log's, and the replay digests are equal.
//!
//! Lines are stamped `recorded_at` = a fixed base + their index, so both runs are the same.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use gongji_ledger::{Ledger, LineOutcome, ProjectionBackend};
use gongji_log::{DurableLog, Log, Record};
use gongji_log_pg::PgLog;
use gongji_tools::gen;

const RECORDED_AT_BASE_MICROS: i64 = 1_700_000_000_000_000;
/// Lines a commit in the uninterrupted run on the file log.
const FILE_LINES_PER_COMMIT: usize = 1000;

struct Options {
    uri: String,
    log: String,
    acks: PathBuf,
    until: Option<PathBuf>,
    members: u64,
    lines_per_commit: usize,
    pause: Duration,
    policy: PathBuf,
    projections_dir: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let (mut uri, mut log, mut acks) = (None, None, None);
    let mut o = Options {
        uri: String::new(),
        log: String::new(),
        acks: PathBuf::new(),
        until: None,
        members: 2000,
        lines_per_commit: 20,
        pause: Duration::from_millis(50),
        policy: PathBuf::from("policies/500000-2024-01-01.json"),
        projections_dir: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--projections-dir" {
            o.projections_dir = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--uri" => uri = Some(value),
            "--log" => log = Some(value),
            "--acks" => acks = Some(PathBuf::from(value)),
            "--until" => o.until = Some(PathBuf::from(value)),
            "--members" => o.members = number()?,
            "--lines-per-commit" => o.lines_per_commit = number()?.clamp(1, 100_000) as usize,
            "--pause-ms" => o.pause = Duration::from_millis(number()?),
            "--policy" => o.policy = PathBuf::from(value),
            _ => return Err(format!("unknown option {flag} (see the source's header)")),
        }
    }
    o.uri = uri.ok_or("--uri is required")?;
    o.log = log.ok_or("--log is required")?;
    o.acks = acks.ok_or("--acks is required")?;
    Ok(o)
}

/// The policy's `load_policy` line, then the generated year.
fn input_lines(o: &Options) -> Result<Vec<String>, String> {
    let policy = std::fs::read_to_string(&o.policy)
        .map_err(|e| format!("reading {}: {e}", o.policy.display()))?;
    let mut year = Vec::new();
    let config = gen::Config {
        members: o.members,
        ..gen::Config::default()
    };
    gen::generate(&config, &mut year).map_err(|e| format!("generating the year: {e}"))?;
    let year = String::from_utf8(year).map_err(|e| format!("the year is not UTF-8: {e}"))?;
    let mut lines = vec![format!(
        "{{\"cmd\":\"load_policy\",\"policy\":{}}}",
        policy.trim()
    )];
    lines.extend(year.lines().map(str::to_owned));
    Ok(lines)
}

/// Applies `lines` `per_commit` at a time, calling `acked` with the count acknowledged after
/// each commit; stops early when `stop` says so. The outcomes, in order.
fn drive(
    ledger: &mut Ledger,
    lines: &[String],
    per_commit: usize,
    mut stop: impl FnMut() -> bool,
    mut acked: impl FnMut(usize, u64) -> Result<(), String>,
) -> Result<Vec<LineOutcome>, String> {
    let mut outcomes = Vec::with_capacity(lines.len());
    for chunk in lines.chunks(per_commit) {
        if stop() {
            break;
        }
        for line in chunk {
            let at = RECORDED_AT_BASE_MICROS + outcomes.len() as i64;
            ledger
                .apply_line(line, at)
                .map_err(|e| format!("applying line {}: {e}", outcomes.len() + 1))?;
            outcomes.push(None);
        }
        let committed = ledger
            .commit()
            .map_err(|e| format!("commit after line {}: {e}", outcomes.len()))?;
        let start = outcomes.len() - committed.len();
        for (slot, outcome) in outcomes[start..].iter_mut().zip(committed) {
            *slot = Some(outcome);
        }
        acked(outcomes.len(), ledger.log().durable_end())?;
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// Every record of a log, in order.
fn records_of(log: &dyn DurableLog) -> Result<Vec<Record>, String> {
    log.read_range(0, u64::MAX)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading the log: {e}"))
}

/// The digest `audit replay` reports, folded from the log afresh.
fn replay_digest(ledger: &Ledger) -> Result<String, String> {
    ledger
        .audit_replay_in_memory(&mut |_, _| {})
        .map(|r| r.digest)
        .map_err(|e| format!("replay: {e}"))
}

struct Run {
    outcomes: Vec<LineOutcome>,
    digest: String,
    started: Instant,
}

/// The work on PostgreSQL, with the acknowledged counts written to `--acks`.
fn run_on_postgres(o: &Options, lines: &[String], projections: &Path) -> Result<Run, String> {
    let started = Instant::now();
    let mut ledger = if o.projections_dir {
        let pg = PgLog::open(&o.uri, &o.log).map_err(|e| format!("opening the log: {e}"))?;
        let store = Log::open(projections).map_err(|e| format!("projection store: {e}"))?;
        Ledger::with_log(Box::new(pg), store.kv().clone(), ProjectionBackend::Runs)
    } else {
        Ledger::open_postgres(&o.uri, &o.log)
    }
    .map_err(|e| format!("the ledger in PostgreSQL: {e}"))?;
    let mut acks = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&o.acks)
        .map_err(|e| format!("opening {}: {e}", o.acks.display()))?;
    let until = o.until.clone();
    let stop = || until.as_deref().is_some_and(Path::exists);
    let pause = o.pause;
    let outcomes = drive(&mut ledger, lines, o.lines_per_commit, stop, |n, end| {
        writeln!(acks, "{n} {end}").map_err(|e| format!("writing {}: {e}", o.acks.display()))?;
        std::thread::sleep(pause);
        Ok(())
    })?;
    eprintln!(
        "gongji-pg-drive: {} lines acknowledged in {:.1} s",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    let report = ledger
        .audit_verify(&mut |_, _, _| {})
        .map_err(|e| format!("audit verify: {e}"))?;
    if let Some(failure) = report.failure {
        return Err(format!("audit verify failed: {failure:?}"));
    }
    println!(
        "check: audit verify passed on PostgreSQL ({} records)",
        report.records
    );
    let digest = replay_digest(&ledger)?;
    ledger.close().map_err(|e| format!("closing: {e}"))?;
    Ok(Run {
        outcomes,
        digest,
        started,
    })
}

/// The same lines, uninterrupted, on the embedded file log; compared with what PostgreSQL holds.
fn compare_with_file_log(o: &Options, lines: &[String], pg: &Run) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut file = Ledger::open(dir.path()).map_err(|e| format!("file ledger: {e}"))?;
    let applied = &lines[..pg.outcomes.len()];
    // Commits of any size give the same records: this run takes large ones.
    let outcomes = drive(
        &mut file,
        applied,
        FILE_LINES_PER_COMMIT,
        || false,
        |_, _| Ok(()),
    )?;
    let file_records = records_of(file.log())?;
    let file_digest = replay_digest(&file)?;
    file.close()
        .map_err(|e| format!("closing the file ledger: {e}"))?;

    let reader = PgLog::open_read_only(&o.uri, &o.log).map_err(|e| format!("reader: {e}"))?;
    let verified = reader
        .verify(&mut |_| {})
        .map_err(|e| format!("verify: {e}"))?;
    let pg_records = records_of(&reader)?;
    if outcomes != pg.outcomes {
        return Err("the outcomes reported differ from the file log's".into());
    }
    if let Some(i) = (0..file_records.len().max(pg_records.len()))
        .find(|&i| file_records.get(i) != pg_records.get(i))
    {
        return Err(format!(
            "the logs differ from position {i}: PostgreSQL holds {} records, the file log {}",
            pg_records.len(),
            file_records.len()
        ));
    }
    println!(
        "check: PostgreSQL holds the file log's {} records exactly (chain verified: {verified}), \
         the outcomes of {} lines are the same",
        pg_records.len(),
        outcomes.len()
    );
    if file_digest != pg.digest {
        return Err(format!(
            "replay digests differ: PostgreSQL {}, file log {file_digest}",
            pg.digest
        ));
    }
    println!("check: replay digest {file_digest} equal on both logs");
    Ok(())
}

fn run() -> Result<(), String> {
    let o = parse_options()?;
    let lines = input_lines(&o)?;
    eprintln!("gongji-pg-drive: {} lines to apply", lines.len());
    let projections = tempfile::tempdir().map_err(|e| e.to_string())?;
    let pg = run_on_postgres(&o, &lines, projections.path())?;
    compare_with_file_log(&o, &lines, &pg)?;
    println!(
        "ok: {} lines in {:.1} s",
        pg.outcomes.len(),
        pg.started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gongji-pg-drive: {e}");
            println!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
