//! Shared helpers for the end-to-end tests: run the real `gongji` binary on a fresh ledger.
#![allow(dead_code)]

pub mod gen;
pub mod misuse;
pub mod pg;
pub mod schema;
pub mod serve;

#[allow(unused_imports)] // each test binary uses it or not
pub use pg::directory_only;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const CHONGQING_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/500000-2024-01-01.json"
);

/// The header row of a detail settlement file (3202), as institutions export it.
pub const DETAIL_HEADER: &str =
    "setl_id,mdtrt_id,psn_no,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,refd_setl_flag";
/// The header row of a totals file (3201).
pub const TOTALS_HEADER: &str = "fixmedins_code,stmt_begndate,stmt_enddate,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,fixmedins_setl_cnt";

/// `reconcile detail FILE` for H500101 in March 2024 (the sample's hospital and month), with
/// `extra` arguments.
pub fn march_detail_args<'a>(file: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "reconcile",
        "detail",
        file.to_str().unwrap(),
        "--institution",
        "H500101",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-31",
    ];
    args.extend_from_slice(extra);
    args
}

pub fn gongji_path() -> &'static str {
    env!("CARGO_BIN_EXE_gongji")
}

/// A fresh ledger with the Chongqing policy loaded: in a directory of its own, or, with
/// `GONGJI_TEST_STORE=pg` (or [`TestLedger::postgres`]), in a fresh log in PostgreSQL
/// ([`pg`]), `dir` then holding only what the test writes beside it.
pub struct TestLedger {
    pub dir: tempfile::TempDir,
    /// The ledger's log in PostgreSQL, if it is there.
    pub pg: Option<pg::PgLedger>,
}

impl TestLedger {
    pub fn new() -> TestLedger {
        TestLedger::empty().with_policy()
    }

    /// A ledger with the shipped sample applied (`examples/sample.jsonl`, which refuses some
    /// lines on purpose: exit 1).
    pub fn sample() -> TestLedger {
        let ledger = TestLedger::new();
        let sample = examples("sample.jsonl");
        let out = ledger.run(&["apply", sample.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        ledger
    }

    pub fn empty() -> TestLedger {
        TestLedger {
            dir: tempfile::tempdir().expect("temp dir"),
            pg: pg::store_is_pg().then(pg::PgLedger::fresh),
        }
    }

    /// An empty ledger in a fresh log in PostgreSQL, whatever `GONGJI_TEST_STORE` says.
    pub fn postgres() -> TestLedger {
        TestLedger {
            dir: tempfile::tempdir().expect("temp dir"),
            pg: Some(pg::PgLedger::fresh()),
        }
    }

    /// An empty ledger in a directory, whatever `GONGJI_TEST_STORE` says.
    pub fn directory() -> TestLedger {
        TestLedger {
            dir: tempfile::tempdir().expect("temp dir"),
            pg: None,
        }
    }

    /// [`TestLedger::new`]'s policy loaded into `self`.
    pub fn with_policy(self) -> TestLedger {
        let out = self.run(&["policy", "load", CHONGQING_POLICY, "--json"]);
        assert!(out.status.success(), "policy load failed: {}", text(&out));
        self
    }

    /// `--data` (and `--pg-log`) as the ledger's commands take them.
    pub fn data_args(&self) -> Vec<std::ffi::OsString> {
        match &self.pg {
            Some(pg) => vec![
                "--data".into(),
                pg.uri.clone().into(),
                "--pg-log".into(),
                pg.log.clone().into(),
            ],
            None => vec!["--data".into(), self.data().into()],
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("ledger")
    }

    /// How the binary's messages name the ledger: its data directory, or `URI (log "NAME")`
    /// (the test database's URI holds no password, so masking it changes nothing).
    pub fn named(&self) -> String {
        match &self.pg {
            Some(pg) => format!("{} (log {:?})", pg.uri, pg.log),
            None => self.data().display().to_string(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(gongji_path());
        command.args(self.data_args()).args(args);
        if self.pg.is_some() {
            command.args(self.service_files(args));
        }
        command
    }

    /// On PostgreSQL, where there is no data directory to keep them in by default, the token
    /// file and the access log a `token` or `serve` command is given (in `data()`, created for
    /// them), unless `args` name them.
    fn service_files(&self, args: &[&str]) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let given = |flag: &str| args.contains(&flag);
        let kind = args.first().copied();
        if !matches!(kind, Some("token" | "serve")) {
            return files;
        }
        // Where a directory ledger keeps them, so that tests reading them find them.
        std::fs::create_dir_all(self.data()).expect("the service files' directory");
        if !given("--tokens") {
            files.extend(["--tokens".into(), self.data().join("tokens")]);
        }
        if kind == Some("serve") && !given("--access-log") {
            files.extend(["--access-log".into(), self.data().join("access-log")]);
        }
        files
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("gongji runs")
    }

    /// Runs `apply - --json` with `lines` on standard input; returns the exit code and the parsed
    /// result objects.
    pub fn apply(&self, lines: &[String]) -> (i32, Vec<Value>) {
        let mut child = self
            .command(&["apply", "-", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gongji starts");
        let mut stdin = child.stdin.take().expect("stdin piped");
        let input = lines.join("\n");
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().expect("gongji finishes");
        writer
            .join()
            .expect("writer thread")
            .expect("stdin written");
        let results = parse_lines(&out.stdout);
        (out.status.code().expect("exit code"), results)
    }

    /// Applies lines that must all succeed; returns their results.
    pub fn apply_ok(&self, lines: &[String]) -> Vec<Value> {
        let (code, results) = self.apply(lines);
        for r in &results {
            assert_eq!(r["ok"], true, "line rejected: {r}");
        }
        assert_eq!(code, 0);
        results.into_iter().map(|r| r["result"].clone()).collect()
    }

    pub fn query(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "query {args:?} failed: {}",
            text(&out)
        );
        serde_json::from_slice(&out.stdout).expect("query prints JSON")
    }
}

/// `token add NAME --role ROLE EXTRA…`, which must succeed: the token it prints.
pub fn add_token(ledger: &TestLedger, name: &str, role: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "add", name, "--role", role];
    args.extend_from_slice(extra);
    let out = ledger.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `micros` (microseconds since the Unix epoch) as RFC 3339 in UTC with six decimals, as
/// `--recorded-before` and `?recorded_before=` read it: `2024-03-01T08:00:00.000001+00:00`.
pub fn rfc3339_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let nanos = (micros.rem_euclid(1_000_000) * 1000) as u32;
    let at = chrono::DateTime::from_timestamp(secs, nanos).expect("a time");
    at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// The `recorded_at_micros` of `events` (a member's history, oldest first), a run of equal
/// times once.
pub fn recorded_times(events: &[Value]) -> Vec<i64> {
    let mut times: Vec<i64> = events
        .iter()
        .map(|e| {
            e["recorded_at_micros"]
                .as_i64()
                .expect("recorded_at_micros")
        })
        .collect();
    times.dedup();
    times
}

/// Codes that say "this line's effect is already in the ledger" (a retried line's answer).
pub fn is_duplicate(code: &str) -> bool {
    matches!(
        code,
        "duplicate_id"
            | "already_enrolled"
            | "already_credited"
            | "already_reversed"
            | "already_bound"
    )
}

/// Whether a command line has no id to be recognised by when sent again (the monthly allocation
/// and the year-end rollover): a resend decides it again rather than answering it as before.
pub fn is_keyless(line: &str) -> bool {
    line.contains("\"allocate\"") || line.contains("\"rollover\"")
}

/// Asserts that every line of `resent` (lines with an id that were reported applied, sent again)
/// was answered as already in the ledger: none lost, none applied twice. `after` names the
/// moment in the messages.
pub fn assert_already_there(resent: &[String], answers: &[Value], after: &str) {
    assert_eq!(
        answers.len(),
        resent.len(),
        "{after}: every resent line answered"
    );
    for (line, result) in resent.iter().zip(answers) {
        let code = result["error"]["code"].as_str().unwrap_or("applied again");
        assert!(
            is_duplicate(code),
            "{after}: a reported line lost or applied twice: {line} -> {result}"
        );
    }
}

pub fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn examples(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// `audit check` of `archive`, then `audit import` of it into `into`; both must succeed.
pub fn check_and_import(archive: &Path, into: &TestLedger) {
    let archive = archive.to_str().expect("UTF-8 path");
    for step in ["check", "import"] {
        let out = into.run(&["audit", step, archive]);
        assert!(out.status.success(), "audit {step}: {}", text(&out));
    }
}

/// Copies the directory `from` (a fixture ledger) into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("fixture copy");
    for entry in std::fs::read_dir(from).expect("fixture listing") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("fixture file");
        }
    }
}

/// The ledger's first segment file (the sample's whole log).
pub fn first_segment(ledger: &TestLedger) -> PathBuf {
    let dir = ledger.data().join("segments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files.into_iter().next().expect("a segment file")
}

/// Byte ranges of the frames in a segment: (start, end) of each.
pub fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let body = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        frames.push((at, at + 8 + body));
        at += 8 + body;
    }
    frames
}

/// Flips a bit in the last byte of record `position`'s frame in the ledger's first segment (a
/// damaged record `audit verify` names); returns the segment's path and its bytes before.
pub fn damage_record(ledger: &TestLedger, position: usize) -> (PathBuf, Vec<u8>) {
    let path = first_segment(ledger);
    let original = std::fs::read(&path).expect("segment");
    let mut damaged = original.clone();
    damaged[frames(&original)[position].1 - 1] ^= 0x20;
    std::fs::write(&path, &damaged).expect("segment written");
    (path, original)
}
