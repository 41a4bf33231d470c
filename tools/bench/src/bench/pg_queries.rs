//! `gongji-pg-bench --queries`: issue 16's query target, whole processes answering from the
//! projections in PostgreSQL, against the embedded file log in the same run.
//!
//! 1. The region of `--members N` members (`gongji-gen`, seed 1, after its policy) piped into
//!    the real `gongji … apply -` twice: once with `--data URI --pg-log NAME` (log and
//!    projections in PostgreSQL), once with a data directory (the embedded file log, the
//!    baseline; `--file-members` gives it another size when the disk is short). Progress goes
//!    to standard error.
//! 2. The queries, each a whole `gongji` process (`account M`, `year M 2024`, `history M`,
//!    `fund 500000`, `account --as-of 2024-06-30 M`) for a random sample of enrolled members,
//!    `--runs` a kind on each store, the stores and kinds interleaved so that the machine's load
//!    falls on all alike. Every answer (`--json` output and exit code, 0 or 1 for a member not
//!    enrolled as of the day asked) must be the same on both stores but for the recording times
//!    (`recorded_at`, `recorded_at_micros`) of `history`'s events.
//! 3. Figures: p50, p99 and max in milliseconds per kind and store, the ratios PG / file, the
//!    events and bytes each store holds, each apply's rate.
//!
//! The bench's log is dropped from the database and the file ledger deleted at the end.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gongji_log::Log;
use gongji_log_pg::PgLog;
use gongji_tools::rng::Rng;
use postgres::{Client, NoTls};

use super::figures::{dir_bytes, emit, note, rate, run_measured, work_dir};

const POLICY: &str = "policies/500000-2024-01-01.json";
/// The region `gongji-gen` writes by default, which `fund` is asked about.
const REGION: &str = "500000";
/// The issue's target for a whole-process query, in milliseconds.
const TARGET_MS: f64 = 50.0;
/// How often the apply's progress is noted, in lines.
const PROGRESS_LINES: u64 = 500_000;

/// What `--queries` reads from the command line.
pub struct QueryOptions {
    pub uri: String,
    pub members: u64,
    /// The file log's size, when it differs from PostgreSQL's (a short disk).
    pub file_members: Option<u64>,
    pub runs: usize,
    /// The bench's log in the database (default `bench-queries-PID`); it must not exist.
    pub log: Option<String>,
    pub gongji: Option<PathBuf>,
    pub work: Option<PathBuf>,
}

impl QueryOptions {
    /// The defaults (no URI yet): about 10 million events and 200 runs a kind; with `quick`,
    /// tiny sizes, a check that the stage works (its figures mean nothing).
    pub fn defaults(quick: bool) -> QueryOptions {
        QueryOptions {
            uri: String::new(),
            members: if quick { 300 } else { 350_000 },
            file_members: None,
            runs: if quick { 5 } else { 200 },
            log: None,
            gongji: None,
            work: None,
        }
    }
}

/// One kind of query: its name in the figures and its arguments around the member.
struct Kind {
    name: &'static str,
    before: &'static [&'static str],
    after: &'static [&'static str],
    /// Whether the member is an argument (`fund` asks about the region).
    per_member: bool,
}

const KINDS: [Kind; 5] = [
    Kind {
        name: "account",
        before: &["account"],
        after: &[],
        per_member: true,
    },
    Kind {
        name: "year",
        before: &["year"],
        after: &["2024"],
        per_member: true,
    },
    Kind {
        name: "history",
        before: &["history"],
        after: &[],
        per_member: true,
    },
    Kind {
        name: "fund",
        before: &["fund", REGION],
        after: &[],
        per_member: false,
    },
    Kind {
        name: "account_as_of",
        before: &["account", "--as-of", "2024-06-30"],
        after: &[],
        per_member: true,
    },
];

/// Where a ledger is: a data directory, or a log in a PostgreSQL database.
enum Store {
    File(PathBuf),
    Pg { uri: String, log: String },
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::File(_) => "file",
            Store::Pg { .. } => "pg",
        }
    }

    fn command(&self, gongji: &Path) -> Command {
        let mut c = Command::new(gongji);
        match self {
            Store::File(dir) => c.arg("--data").arg(dir),
            Store::Pg { uri, log } => c.args(["--data", uri, "--pg-log", log]),
        };
        c
    }

    /// The events the ledger holds and the bytes it takes (for PostgreSQL, the whole
    /// database's size: the bench's cluster holds little else).
    fn size(&self) -> Result<(u64, u64), String> {
        match self {
            Store::File(dir) => {
                let log = Log::open(dir).map_err(|e| e.to_string())?;
                Ok((log.durable_end(), dir_bytes(dir)))
            }
            Store::Pg { uri, log } => {
                let err = |e: postgres::Error| format!("reading the log's size: {e}");
                let mut client = Client::connect(uri, NoTls).map_err(err)?;
                let row = client
                    .query_one(
                        "SELECT end_position, pg_database_size(current_database()) \
                         FROM gongji_log_heads WHERE log = $1",
                        &[log],
                    )
                    .map_err(err)?;
                let (events, bytes): (i64, i64) = (row.get(0), row.get(1));
                Ok((events.unsigned_abs(), bytes.unsigned_abs()))
            }
        }
    }

    /// Where the ledger is, as a message names it.
    fn place(&self) -> String {
        match self {
            Store::File(dir) => dir.display().to_string(),
            Store::Pg { log, .. } => format!("log {log:?}"),
        }
    }

    /// Refuses a ledger that is there already: the stage builds its own and removes it.
    fn refuse_existing(&self) -> Result<(), String> {
        let there = match self {
            Store::File(dir) => dir.exists(),
            Store::Pg { uri, log } => PgLog::exists(uri, log).map_err(|e| e.to_string())?,
        };
        if there {
            return Err(format!(
                "the {} ledger exists already ({}): the stage builds its own and removes it",
                self.name(),
                self.place()
            ));
        }
        Ok(())
    }

    fn remove(&self) -> Result<(), String> {
        match self {
            Store::File(dir) => std::fs::remove_dir_all(dir).map_err(|e| e.to_string()),
            Store::Pg { uri, log } => PgLog::drop_log(uri, log)
                .map(|_| ())
                .map_err(|e| format!("dropping the bench's log: {e}")),
        }
    }
}

/// The programs the stage runs: `gongji` and `gongji-gen`.
struct Programs {
    gongji: PathBuf,
    gen: PathBuf,
}

/// Runs the stage. Without a `gongji` binary (beside this program or `--gongji`) it says so
/// and measures nothing.
pub fn run(o: &QueryOptions) -> Result<(), String> {
    let here = std::env::current_exe().map_err(|e| e.to_string())?;
    let programs = Programs {
        gongji: o
            .gongji
            .clone()
            .unwrap_or_else(|| here.with_file_name("gongji")),
        gen: here.with_file_name("gongji-gen"),
    };
    if !programs.gongji.exists() {
        note(&format!(
            "{} not found: build it (cargo build --release -p gongji-cli) or pass --gongji; \
             query figures skipped",
            programs.gongji.display()
        ));
        return Ok(());
    }
    let (work, _tmp) = work_dir(o.work.as_deref(), "gongji-pg-queries")?;
    let stores = [
        Store::Pg {
            uri: o.uri.clone(),
            log: o
                .log
                .clone()
                .unwrap_or_else(|| format!("bench-queries-{}", std::process::id())),
        },
        Store::File(work.join("file-ledger")),
    ];
    for store in &stores {
        store.refuse_existing()?;
    }
    let measured = build_and_query(o, &programs, &work, &stores);
    for store in &stores {
        if let Err(e) = store.remove() {
            note(&format!("cleaning up the {} ledger: {e}", store.name()));
        }
    }
    measured
}

fn build_and_query(
    o: &QueryOptions,
    programs: &Programs,
    work: &Path,
    stores: &[Store; 2],
) -> Result<(), String> {
    let file_members = o.file_members.unwrap_or(o.members);
    for (store, members) in stores.iter().zip([o.members, file_members]) {
        build(programs, store, members)?;
    }
    // Members enrolled in both ledgers.
    let sample_members = o.members.min(file_members);
    let mut rng = Rng::new(16);
    let sample: Vec<String> = (0..o.runs)
        .map(|_| format!("M{:07}", rng.below(sample_members)))
        .collect();
    emit("machine_load_1m_before_queries", load_1m(), "processes");
    let timings = query_all(programs, work, stores, &sample)?;
    emit("machine_load_1m_after_queries", load_1m(), "processes");
    timings.emit(o.members == file_members)
}

/// The machine's load average over the last minute (`/proc/loadavg`; -1 where there is none):
/// the queries' tail times depend on it.
fn load_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(-1.0)
}

/// Loads the policy and pipes `gongji-gen --members N` into `gongji … apply -`, noting
/// progress; emits the apply's figures and the ledger's size.
fn build(programs: &Programs, store: &Store, members: u64) -> Result<(), String> {
    let name = store.name();
    note(&format!(
        "{name}: policy load and apply of {members} members"
    ));
    let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(POLICY);
    let status = store
        .command(&programs.gongji)
        .args(["policy", "load"])
        .arg(&policy)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("gongji policy load: {e}"))?;
    if !status.success() {
        return Err(format!("{name}: gongji policy load failed ({status})"));
    }
    let started = Instant::now();
    let mut gen = Command::new(&programs.gen)
        .args(["--members", &members.to_string(), "--seed", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", programs.gen.display()))?;
    let input = gen
        .stdout
        .take()
        .ok_or("gongji-gen has no standard output")?;
    let mut apply = store
        .command(&programs.gongji)
        .args(["apply", "-", "--json"])
        .stdin(input)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("gongji apply: {e}"))?;
    let (lines, refused) = follow_apply(name, &mut apply, started)?;
    let elapsed = started.elapsed();
    let (gen_status, apply_status) = (gen.wait(), apply.wait());
    let gen_ok = gen_status.as_ref().is_ok_and(|s| s.success());
    let apply_code = apply_status.map_err(|e| e.to_string())?.code();
    // `apply` exits 1 when some lines were refused (the generator writes a few on purpose).
    if !gen_ok || !matches!(apply_code, Some(0 | 1)) {
        return Err(format!(
            "{name}: gongji-gen ({gen_status:?}) or gongji apply (exit {apply_code:?}) failed"
        ));
    }
    let (events, bytes) = store.size()?;
    note(&format!(
        "{name}: {lines} lines ({refused} refused), {events} events in {:.0} s, {bytes} bytes",
        elapsed.as_secs_f64()
    ));
    emit(&format!("{name}_members"), members as f64, "members");
    emit(&format!("{name}_events"), events as f64, "events");
    emit(&format!("{name}_apply_lines"), lines as f64, "commands");
    emit(&format!("{name}_apply_seconds"), elapsed.as_secs_f64(), "s");
    emit(
        &format!("{name}_apply_events_per_s"),
        rate(events, elapsed),
        "events/s",
    );
    emit(&format!("{name}_bytes"), bytes as f64, "bytes");
    Ok(())
}

/// Reads `apply --json`'s answers as they come: the lines answered and refused.
fn follow_apply(name: &str, apply: &mut Child, started: Instant) -> Result<(u64, u64), String> {
    let answers = apply.stdout.take().ok_or("gongji apply has no output")?;
    let (mut lines, mut refused) = (0u64, 0u64);
    for answer in BufReader::with_capacity(1 << 20, answers).lines() {
        let answer = answer.map_err(|e| format!("reading apply's answers: {e}"))?;
        lines += 1;
        refused += u64::from(answer.contains("\"ok\":false"));
        if lines % PROGRESS_LINES == 0 {
            note(&format!(
                "{name}: {lines} lines applied, {:.0} lines/s",
                rate(lines, started.elapsed())
            ));
        }
    }
    Ok((lines, refused))
}

/// Each kind's wall times on each store, in the order of [`KINDS`]; index 0 PostgreSQL, 1 file.
struct Timings {
    samples: Vec<[Vec<Duration>; 2]>,
    /// Each kind's answers "not there" (exit 1), PostgreSQL's (the file log's are the same).
    not_found: Vec<u64>,
    /// Queries whose answers (exit code and output) differ between the stores.
    differing: u64,
}

/// Runs every kind for every sampled member on both stores, alternating which store goes
/// first; checks that both stores give the same answer.
fn query_all(
    programs: &Programs,
    work: &Path,
    stores: &[Store; 2],
    sample: &[String],
) -> Result<Timings, String> {
    let mut timings = Timings {
        samples: KINDS.iter().map(|_| [Vec::new(), Vec::new()]).collect(),
        not_found: vec![0; KINDS.len()],
        differing: 0,
    };
    let answer_files = [work.join("answer-pg.json"), work.join("answer-file.json")];
    for (run, member) in sample.iter().enumerate() {
        if run > 0 && run % 50 == 0 {
            note(&format!("queries: {run} of {} rounds", sample.len()));
        }
        for (k, kind) in KINDS.iter().enumerate() {
            let mut codes = [0; 2];
            for s in [run % 2, 1 - run % 2] {
                let (elapsed, code) = query(programs, &stores[s], kind, member, &answer_files[s])?;
                timings.samples[k][s].push(elapsed);
                codes[s] = code;
            }
            timings.not_found[k] += u64::from(codes[0] == 1);
            if codes[0] != codes[1] || !same_answers(&answer_files)? {
                timings.differing += 1;
                note(&format!(
                    "{} {member}: the stores answer differently (see {})",
                    kind.name,
                    work.display()
                ));
            }
        }
    }
    Ok(timings)
}

/// One whole `gongji` process answering one query, its answer written to `answer`: its wall
/// time and exit code, 0 or 1 (`not_found`, `unknown_member`: the member not enrolled as of
/// the day asked is an answer too); any other exit is an error.
fn query(
    programs: &Programs,
    store: &Store,
    kind: &Kind,
    member: &str,
    answer: &Path,
) -> Result<(Duration, i32), String> {
    let mut c = store.command(&programs.gongji);
    c.args(kind.before);
    if kind.per_member {
        c.arg(member);
    }
    c.args(kind.after).arg("--json");
    let out = File::create(answer).map_err(|e| e.to_string())?;
    let (code, elapsed, _) = run_measured(c.stdout(out).stderr(Stdio::null()))?;
    if code != 0 && code != 1 {
        return Err(format!(
            "gongji {} {member} on {} exited with {code}",
            kind.name,
            store.name()
        ));
    }
    Ok((elapsed, code))
}

fn same_answers(files: &[PathBuf; 2]) -> Result<bool, String> {
    let read = |path: &PathBuf| std::fs::read_to_string(path).map_err(|e| e.to_string());
    Ok(without_recording_times(&read(&files[0])?) == without_recording_times(&read(&files[1])?))
}

/// An answer without the times its events were recorded at (`"recorded_at":"…"` and
/// `"recorded_at_micros":…`, which differ between two ledgers built from the same input).
fn without_recording_times(answer: &str) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut rest = answer;
    while let Some(at) = rest.find("\"recorded_at") {
        out.push_str(&rest[..at]);
        let field = &rest[at..];
        rest = &field[field.find([',', '}']).unwrap_or(field.len())..];
    }
    out.push_str(rest);
    out
}

/// The sample's `q`-quantile (nearest rank), in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

impl Timings {
    /// Prints the figures; an error if the stores answered differently anywhere.
    fn emit(mut self, same_size: bool) -> Result<(), String> {
        let mut worst_pg_p99 = 0f64;
        for (k, (kind, samples)) in KINDS.iter().zip(&mut self.samples).enumerate() {
            let mut figures = [[0f64; 3]; 2];
            for (s, store) in ["pg", "file"].iter().enumerate() {
                samples[s].sort();
                let sorted = &samples[s];
                figures[s] = [
                    quantile_ms(sorted, 0.5),
                    quantile_ms(sorted, 0.99),
                    quantile_ms(sorted, 1.0),
                ];
                for (stat, value) in ["p50", "p99", "max"].iter().zip(figures[s]) {
                    emit(&format!("{store}_query_{}_{stat}", kind.name), value, "ms");
                }
            }
            worst_pg_p99 = worst_pg_p99.max(figures[0][1]);
            emit(
                &format!("query_{}_not_found", kind.name),
                self.not_found[k] as f64,
                "answers",
            );
            for (i, stat) in ["p50", "p99"].iter().enumerate() {
                emit(
                    &format!("query_{}_{stat}_pg_over_file", kind.name),
                    figures[0][i] / figures[1][i],
                    "ratio",
                );
            }
        }
        let runs = self.samples.first().map_or(0, |s| s[0].len());
        emit("query_runs_per_kind_and_store", runs as f64, "runs");
        emit("pg_query_worst_p99", worst_pg_p99, "ms");
        emit(
            "pg_query_worst_p99_over_target_50ms",
            worst_pg_p99 / TARGET_MS,
            "ratio",
        );
        emit(
            "query_stores_same_size",
            f64::from(u8::from(same_size)),
            "bool",
        );
        emit("query_answers_differing", self.differing as f64, "answers");
        if self.differing > 0 {
            return Err(format!(
                "{} answers differ between PostgreSQL and the file log",
                self.differing
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_times_are_left_out_of_a_compared_answer() {
        let a = r#"{"position":1,"recorded_at":"2026-11-30T23:23:42.751751Z","recorded_at_micros":1796081022751751,"event_id":"x"}"#;
        let b = r#"{"position":1,"recorded_at":"2026-12-01T00:00:00Z","recorded_at_micros":9,"event_id":"x"}"#;
        assert_eq!(without_recording_times(a), without_recording_times(b));
        let c = r#"{"position":2,"recorded_at":"2026-12-01T00:00:00Z","recorded_at_micros":9,"event_id":"x"}"#;
        assert_ne!(without_recording_times(b), without_recording_times(c));
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&sorted, 0.5), 100.0);
        assert_eq!(quantile_ms(&sorted, 0.99), 198.0);
        assert_eq!(quantile_ms(&sorted, 1.0), 200.0);
        assert_eq!(quantile_ms(&sorted[..1], 0.99), 1.0);
    }
}
