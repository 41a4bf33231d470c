//! Readers beside a writer, with real processes: queries run while `gongji apply` writes a
//! region's year, none is refused, and each answers a durable state of the ledger; a second
//! writer is refused at once with advice, or with `--wait` waits for the first.

mod support;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::process::{Child, Stdio};
use std::sync::{mpsc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gen::region_year;
use support::TestLedger;

/// Members of the generated year: its lines are fed to `apply` in `ROUNDS` chunks, one per
/// round of queries, so that the writer runs through every round.
const MEMBERS: usize = 3000;
/// Rounds of queries while `apply` runs.
const ROUNDS: usize = 12;
/// Members whose answers are checked against their history.
const WATCHED: [&str; 3] = ["M00000", "M00001", "M02999"];
/// How long the first round waits for a reader to see the last watched member enrolled (the
/// writer's first commits), however slow the build and the store.
const FIRST_COMMITS_WITHIN: Duration = Duration::from_secs(120);

/// One query's run: its arguments, exit code and output.
struct Answer {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Answer {
    fn describe(&self) -> String {
        format!(
            "{:?} exited {:?}\nstdout: {}\nstderr: {}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

fn run(ledger: &TestLedger, args: &[String]) -> Answer {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ledger.run(&strs);
    Answer {
        args: args.to_vec(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The queries of one round, all started at the same instant: two `account` of one member,
/// one of another, a `fund`, and now and then the heavier ones.
fn round_queries(round: usize, archive: &std::path::Path) -> Vec<Vec<String>> {
    let member = WATCHED[round % WATCHED.len()];
    let other = WATCHED[(round + 1) % WATCHED.len()];
    let third = WATCHED[(round + 2) % WATCHED.len()];
    let mut queries = vec![
        args(&["account", member, "--json"]),
        args(&["account", member, "--json"]),
        args(&["account", other, "--json"]),
        args(&["account", third, "--json"]),
        args(&["fund", "500000", "--json"]),
    ];
    // The heavier ones (they fold the log) once each, then lighter ones.
    match round {
        1 => queries.push(args(&["fund", "500000", "--as-of", "2024-06-30", "--json"])),
        3 => queries.push(args(&["audit", "verify", "--json"])),
        5 => queries.push(args(&["inheritance", member, "--json"])),
        6 => queries.push(args(&["transfers", member, "--json"])),
        7 => queries.push(args(&["settlement", "H1", "2024-01", "--json"])),
        8 => queries.push(args(&["explain", "C0000001", "--json"])),
        9 => queries.push(args(&[
            "audit",
            "export",
            archive.to_str().expect("utf-8 path"),
            "--json",
        ])),
        _ if round.is_multiple_of(3) => queries.push(args(&["history", WATCHED[1], "--json"])),
        _ if round % 3 == 1 => queries.push(args(&["year", member, "2024", "--json"])),
        _ => queries.push(args(&["policy", "list", "--json"])),
    }
    queries
}

/// Runs `queries` on threads released together; returns their answers in order.
fn at_once(ledger: &TestLedger, queries: &[Vec<String>]) -> Vec<Answer> {
    let barrier = Barrier::new(queries.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .iter()
            .map(|query| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    run(ledger, query)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("query thread"))
            .collect()
    })
}

/// Polls `account MEMBER` until it answers (exit 0); a "not there yet" (exit 1) is polled
/// again, anything else fails the test, as does `within` passing.
fn wait_until_enrolled(ledger: &TestLedger, member: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let answer = run(ledger, &args(&["account", member, "--json"]));
        match answer.code {
            Some(0) => return,
            Some(1) if started.elapsed() < within => std::thread::sleep(Duration::from_millis(100)),
            _ => panic!(
                "{member} not enrolled after {:?}: {}",
                started.elapsed(),
                answer.describe()
            ),
        }
    }
}

/// A query may answer that a member or claim is not there yet (exit 1): a durable state
/// too. `audit verify` must pass. Any other failure (exit 2), a refusal for the lock above
/// all, fails the test.
fn check_exit(answer: &Answer) {
    let legit_not_yet = answer.code == Some(1) && answer.args[0] != "audit";
    assert!(
        answer.code == Some(0) || legit_not_yet,
        "a query beside the writer failed: {}",
        answer.describe()
    );
    assert!(
        !answer.stderr.contains("writing to the ledger") && !answer.stderr.contains("in use"),
        "{}",
        answer.describe()
    );
}

/// `account MEMBER --recorded-before T` for every T just after one of the member's events in
/// the final ledger: every state a reader could have seen of the member's account.
struct AccountStates<'a> {
    ledger: &'a TestLedger,
    cache: HashMap<(String, i64), Option<Value>>,
}

impl AccountStates<'_> {
    fn recorded_times(&self, member: &str) -> Vec<i64> {
        let out = self.ledger.run(&["history", member, "--json"]);
        assert!(out.status.success(), "{}", support::text(&out));
        support::recorded_times(&support::parse_lines(&out.stdout))
    }

    /// The account as it stood with the events recorded before `micros` (`None`: not enrolled).
    fn state_before(&mut self, member: &str, micros: i64) -> Option<Value> {
        let key = (member.to_string(), micros);
        if let Some(found) = self.cache.get(&key) {
            return found.clone();
        }
        let at = support::rfc3339_micros(micros);
        let out = self.ledger.run(&[
            "account",
            member,
            "--json",
            "--recorded-before",
            at.as_str(),
        ]);
        let state = match out.status.code() {
            Some(0) => Some(serde_json::from_slice(&out.stdout).expect("JSON")),
            _ => None,
        };
        self.cache.insert(key, state.clone());
        state
    }

    /// Whether `answer` (an `account --json` answer) equals the account after some prefix of
    /// the member's events.
    fn is_durable(&mut self, member: &str, answer: &Value, times: &[i64]) -> bool {
        times.iter().rev().any(|&t| {
            self.state_before(member, t + 1).is_some_and(|mut state| {
                // What the as-of answer adds about the question itself.
                if let Some(object) = state.as_object_mut() {
                    object.retain(|key, _| answer.get(key).is_some());
                }
                &state == answer
            })
        })
    }
}

/// Starts `gongji apply FILE --json` (with `extra` arguments first; `-`: from standard input).
fn start_apply(ledger: &TestLedger, file: &str, extra: &[&str]) -> Child {
    let mut all: Vec<&str> = extra.to_vec();
    all.extend(["apply", file, "--json"]);
    ledger
        .command(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gongji starts")
}

/// Feeds `apply`'s standard input on a thread of its own: one chunk per message, closed when
/// the channel is.
fn feeder(apply: &mut Child) -> (mpsc::Sender<String>, std::thread::JoinHandle<()>) {
    let mut stdin = apply.stdin.take().expect("stdin piped");
    let (sender, receiver) = mpsc::channel::<String>();
    let handle = std::thread::spawn(move || {
        for chunk in receiver {
            stdin
                .write_all(chunk.as_bytes())
                .expect("apply reads its input");
        }
    });
    (sender, handle)
}

#[test]
fn queries_beside_a_running_apply_are_never_refused_and_answer_durable_states() {
    let ledger = TestLedger::new();
    let lines = region_year(5, MEMBERS);
    let chunks: Vec<String> = lines
        .chunks(lines.len().div_ceil(ROUNDS))
        .map(|chunk| chunk.iter().map(|line| format!("{line}\n")).collect())
        .collect();
    let empty = ledger.dir.path().join("empty.jsonl");
    fs::write(&empty, "").expect("empty input written");
    let empty = empty.to_str().expect("utf-8 path");

    let started = Instant::now();
    let mut apply = start_apply(&ledger, "-", &[]);
    let (feed, fed) = feeder(&mut apply);
    // A second writer: refused at once, with advice, while the first runs.
    std::thread::sleep(Duration::from_millis(300));
    let refused = run(&ledger, &args(&["apply", empty, "--json"]));
    let mut waiter = start_apply(&ledger, empty, &["--wait"]);

    let mut answers: Vec<Answer> = Vec::new();
    let mut funds: Vec<Value> = Vec::new();
    for (rounds, chunk) in chunks.into_iter().enumerate() {
        // The writer works on the next chunk while the round's queries run.
        feed.send(chunk).expect("feeder runs");
        if rounds == 0 {
            // The rounds are paced by the writer's progress, not the clock: they start once a
            // reader sees the enrolments (all in the first chunk) committed.
            wait_until_enrolled(&ledger, WATCHED[2], FIRST_COMMITS_WITHIN);
        }
        let archive = ledger.dir.path().join("archive.gja");
        let round = at_once(&ledger, &round_queries(rounds, &archive));
        if let Some(fund) = round
            .iter()
            .find(|a| a.args[0] == "fund" && a.args.len() == 3)
        {
            if fund.code == Some(0) {
                funds.push(serde_json::from_str(&fund.stdout).expect("fund JSON"));
            }
        }
        answers.extend(round);
        assert!(
            apply.try_wait().expect("apply polled").is_none(),
            "apply ended before its input did"
        );
        assert!(
            waiter.try_wait().expect("waiter polled").is_none(),
            "the waiting writer ran while the first one held the lock"
        );
    }
    drop(feed);
    fed.join().expect("feeder ends");
    let apply_status = apply.wait().expect("apply ends");
    assert!(
        matches!(apply_status.code(), Some(0 | 1)),
        "apply failed: {apply_status:?}"
    );
    eprintln!(
        "{ROUNDS} rounds, {} queries beside apply, in {:?}",
        answers.len(),
        started.elapsed()
    );

    assert_eq!(refused.code, Some(2), "{}", refused.describe());
    assert!(
        refused.stderr.contains("--wait") && !refused.stderr.contains("stop that process"),
        "the refusal gives advice a clerk can act on: {}",
        refused.describe()
    );
    drop(waiter.stdin.take());
    let waited = waiter.wait_with_output().expect("waiter ends");
    let waited_err = String::from_utf8_lossy(&waited.stderr);
    assert_eq!(waited.status.code(), Some(0), "{waited_err}");
    assert_eq!(
        waited_err.matches("waiting").count(),
        1,
        "says once that it waits: {waited_err}"
    );

    for answer in &answers {
        check_exit(answer);
    }
    let accounts = answers.iter().filter(|a| a.args[0] == "account");
    let answered = accounts.clone().filter(|a| a.code == Some(0)).count();
    assert_eq!(accounts.count(), 4 * ROUNDS);
    assert!(
        answered >= 2 * ROUNDS,
        "only {answered} account answers with a balance"
    );

    // Every account answer is the account after some prefix of the member's events.
    let mut states = AccountStates {
        ledger: &ledger,
        cache: HashMap::new(),
    };
    for member in WATCHED {
        let times = states.recorded_times(member);
        let mut seen: Vec<Value> = Vec::new();
        for answer in answers
            .iter()
            .filter(|a| a.args[0] == "account" && a.args[1] == member && a.code == Some(0))
        {
            let value: Value = serde_json::from_str(&answer.stdout).expect("account JSON");
            if seen.contains(&value) {
                continue;
            }
            assert!(
                states.is_durable(member, &value, &times),
                "not a durable state of {member}: {value}"
            );
            seen.push(value);
        }
    }

    // Every history answer is a prefix of the final history.
    let final_history = ledger.run(&["history", WATCHED[1], "--json"]);
    let final_lines: Vec<&str> = std::str::from_utf8(&final_history.stdout)
        .expect("utf-8")
        .lines()
        .collect();
    // A member not enrolled yet is a legitimate answer (exit 1, the error object): nothing to compare.
    for answer in answers
        .iter()
        .filter(|a| a.args[0] == "history" && a.code == Some(0))
    {
        let lines: Vec<&str> = answer.stdout.lines().collect();
        assert_eq!(
            lines[..],
            final_lines[..lines.len()],
            "{}",
            answer.describe()
        );
    }

    // Fund totals never go backwards from one round to the next.
    for pair in funds.windows(2) {
        let inflow = |fund: &Value| -> f64 {
            fund["pooled"]["inflow"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("pooled inflow")
        };
        assert!(
            inflow(&pair[1]) >= inflow(&pair[0]),
            "{} then {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn two_account_queries_at_the_same_instant_never_collide() {
    let ledger = TestLedger::sample();
    let query = args(&["account", "M001", "--json"]);
    for _ in 0..30 {
        let pair = at_once(&ledger, &[query.clone(), query.clone()]);
        for answer in &pair {
            assert_eq!(answer.code, Some(0), "{}", answer.describe());
        }
        assert_eq!(pair[0].stdout, pair[1].stdout);
    }
}

#[test]
fn a_query_beside_a_writer_on_the_sled_store_answers_without_opening_sled() {
    if support::directory_only(
        "the sled projection store lives in the data directory (--projections sled is refused on PostgreSQL)",
    ) {
        return;
    }
    // sled locks its directory: a reader never opens it, and answers from the run files and
    // the log instead (the hidden `--projections sled` is the benchmark's baseline).
    let ledger = TestLedger::sample();
    let alone = run(&ledger, &args(&["account", "M001", "--json"]));
    assert_eq!(alone.code, Some(0), "{}", alone.describe());
    let mut writer = start_apply(&ledger, "-", &["--projections", "sled"]);
    std::thread::sleep(Duration::from_millis(300));
    for query in [
        args(&["--projections", "sled", "account", "M001", "--json"]),
        args(&["account", "M001", "--json"]),
    ] {
        let beside = run(&ledger, &query);
        assert_eq!(beside.code, Some(0), "{}", beside.describe());
        assert_eq!(beside.stdout, alone.stdout);
    }
    drop(writer.stdin.take());
    assert!(writer.wait().expect("writer ends").success());
}
