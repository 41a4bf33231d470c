//! The crash harness through HTTP: real SIGKILLs of `gongji serve` while a `POST /v1/commands`
//! stream of a generated region year is being decided, synced and answered. After every kill
//! the server is started again on the same data directory and the client sends the stream again
//! from the first line it was not answered for, as a client of the service would. Checked:
//! - every line the client was answered for carries exactly the answer an uninterrupted
//!   `gongji apply --json` of the same file gives that line;
//! - every answered line is in the ledger exactly once: sent again, it is answered as `apply`
//!   answers a retried line (its id or natural key is already there); a line `apply` refused
//!   that was in a group durable before the kill left nothing in the log: sent again, it is
//!   decided again after that group's later lines, and must be refused again with the same code;
//! - nothing is half applied: `audit verify` passes after every kill (chain, money conserved over
//!   every unit, projections equal to a rebuild);
//! - the end state's `audit replay` digest equals the uninterrupted run's.
//!
//! (SIGTERM mid-stream is `tests/server.rs`'s `sigterm_mid_stream_…`.)
//!
//! CI runs a short form (5 kills). The long form:
//! `GONGJI_SERVE_KILLS=200 GONGJI_SERVE_MEMBERS=2000 cargo test -p gongji-cli --test server_crash -- --nocapture`
//! (`GONGJI_SERVE_KILL_MS`, default 150: half the kills land at most this long into a stream).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gen::{region_year, Rng};
use support::serve::{self, Serve};
use support::{add_token, assert_already_there, is_duplicate, is_keyless, text, TestLedger};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `gongji serve` on a loopback port the system picked, its standard error discarded.
fn start_quiet(ledger: &TestLedger) -> Serve {
    let mut command = serve::command(ledger, "127.0.0.1:0", &[]);
    Serve::spawn_http(command.stderr(Stdio::null()))
}

/// One `POST /v1/commands` of `lines`: the body is written by one thread while the answer is
/// read as it comes by another, so the server can be killed at any moment of either.
struct Post {
    answers: std::thread::JoinHandle<Vec<Value>>,
    received: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Post {
    fn send(address: &str, token: &str, lines: &[String]) -> Post {
        let stream = TcpStream::connect(address).expect("the server accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let body = lines.join("\n") + "\n";
        let head = format!(
            "POST /v1/commands HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        std::thread::spawn(move || {
            // The server may die while the body is sent: a broken pipe is expected then.
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(body.as_bytes());
        });
        let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = received.clone();
        let answers = std::thread::spawn(move || read_answers(stream, &counter));
        Post { answers, received }
    }

    fn received(&self) -> usize {
        self.received.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn answers(self) -> Vec<Value> {
        self.answers.join().expect("reader thread")
    }
}

/// The answer lines of a chunked `200` response, as far as they arrived whole: a line cut by the
/// connection's end was not answered.
fn read_answers(stream: TcpStream, counter: &std::sync::atomic::AtomicUsize) -> Vec<Value> {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let before = head.len();
        if reader.read_line(&mut head).unwrap_or(0) == 0 {
            return Vec::new(); // killed before it answered
        }
        if &head[before..] == "\r\n" {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (mut pending, mut answers) = (Vec::new(), Vec::new());
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 || !size.ends_with("\r\n") {
            return answers;
        }
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        let mut chunk = vec![0u8; size + 2];
        if size == 0 || reader.read_exact(&mut chunk).is_err() {
            return answers;
        }
        pending.extend_from_slice(&chunk[..size]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            answers.push(serde_json::from_slice(&line).expect("an answer line is JSON"));
            counter.store(answers.len(), std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// `audit verify` passes (chain, invariants: nothing half applied, projections equal a rebuild).
fn verified(ledger: &TestLedger, when: &str) {
    let out = ledger.run(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{when}: {}", text(&out));
}

fn replay_digest(ledger: &TestLedger) -> String {
    let out = ledger.run(&["audit", "replay", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["digest"].as_str().unwrap().to_string()
}

/// An answer without its line number (which counts from each stream's start).
fn unnumbered(answer: &Value) -> Value {
    let mut answer = answer.clone();
    answer.as_object_mut().map(|o| o.remove("line"));
    answer
}

/// Each answer is, line for line, what the uninterrupted `apply` answered the same line, but for
/// lines made durable by a killed server before their answer reached the client: those lead the
/// resent stream and are answered as `apply` answers a retried line (already there; a keyless
/// allocation or rollover is answered as it is answered again; a line `apply` refused left
/// nothing in the log, so it is decided again after the later lines of that durable group and
/// must be refused again with the same code, its figures those of the later state). From the
/// first line this stream newly applies on, every answer is `apply`'s. Returns how many lines
/// were retried.
fn answered_as_apply(
    answers: &[Value],
    expected: &[Value],
    lines: &[String],
    kill: usize,
) -> usize {
    let mut retried = 0;
    let mut new_seen = false;
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer["line"].as_u64(), Some(i as u64 + 1), "line order");
        let keyless = is_keyless(&lines[i]);
        if unnumbered(answer) == unnumbered(&expected[i]) {
            new_seen |= answer["ok"] == true && !keyless;
            continue;
        }
        let code = answer["error"]["code"].as_str().unwrap_or("");
        // A line apply refused left nothing in the log: sent again, it is decided again, after
        // the later lines of its durable group (a balance's figure in the message may differ).
        let refused_again = expected[i]["ok"] == false
            && answer["ok"] == false
            && answer["error"]["code"] == expected[i]["error"]["code"];
        assert!(
            !new_seen
                && ((expected[i]["ok"] == true && (is_duplicate(code) || keyless))
                    || refused_again),
            "kill {kill}: answered differently from apply: {}\n got {answer}\n apply {}",
            lines[i],
            expected[i]
        );
        retried += 1;
    }
    retried
}

/// Sends the lines answered applied again: each is refused as already there (allocations and rollovers,
/// which have no key, excepted: they are checked by the digest).
fn resent_lines_are_already_there(serve: &Serve, token: &str, answered: &[String], kill: usize) {
    let keyed: Vec<String> = answered
        .iter()
        .filter(|l| !is_keyless(l))
        .cloned()
        .collect();
    if keyed.is_empty() {
        return;
    }
    let again = Post::send(&serve.address, token, &keyed).answers();
    assert_already_there(&keyed, &again, &format!("kill {kill}"));
}

#[test]
fn killed_server_loses_no_answered_line_and_half_applies_none() {
    let kills_wanted = setting("GONGJI_SERVE_KILLS", 5);
    let kill_window_ms = setting("GONGJI_SERVE_KILL_MS", 150) as u64;
    let lines = region_year(23, setting("GONGJI_SERVE_MEMBERS", 400));
    let started = Instant::now();

    let reference = TestLedger::new();
    let (_, expected_answers) = reference.apply(&lines);
    assert_eq!(expected_answers.len(), lines.len());
    let expected = replay_digest(&reference);

    let ledger = TestLedger::new();
    let token = add_token(&ledger, "crash", "operator", &[]);
    let mut rng = Rng::new(41);
    let (mut kills, mut rounds, mut next, mut retried) = (0usize, 0usize, 0usize, 0usize);
    while kills < kills_wanted && lines.len() - next > 1 {
        let serve = start_quiet(&ledger);
        let rest = &lines[next..];
        let post = Post::send(&serve.address, &token, rest);
        // Half the kills land at a random moment (opening, deciding, syncing), half just after
        // the client received a random number of answers (delivering the rest).
        if rng.below(2) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(kill_window_ms)));
        } else {
            let most = (rest.len() / 3).min(lines.len() / kills_wanted);
            let wanted = 1 + rng.below(most as u64 + 1) as usize;
            let waited = Instant::now();
            while post.received() < wanted && waited.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        serve.kill();
        let answers = post.answers();
        // A kill counts when it cut the stream short.
        kills += usize::from(answers.len() < rest.len());
        retried += answered_as_apply(&answers, &expected_answers[next..], &lines[next..], kills);
        verified(&ledger, &format!("after kill {kills}"));
        let serve = start_quiet(&ledger);
        let applied: Vec<String> = answers
            .iter()
            .zip(rest)
            .filter(|(answer, _)| answer["ok"] == true)
            .map(|(_, line)| line.clone())
            .collect();
        resent_lines_are_already_there(&serve, &token, &applied, kills);
        serve.stop();
        eprintln!(
            "round {rounds}: {} of {} lines answered, killed: {kills}",
            answers.len(),
            rest.len()
        );
        next += answers.len();
        rounds += 1;
    }
    assert!(
        kills >= rounds / 2 && kills > 0,
        "the stream ended before most kills: {kills} of {rounds}"
    );
    let serve = start_quiet(&ledger);
    let answers = match next < lines.len() {
        true => Post::send(&serve.address, &token, &lines[next..]).answers(),
        false => Vec::new(),
    };
    assert_eq!(answers.len(), lines.len() - next, "the rest answered whole");
    retried += answered_as_apply(&answers, &expected_answers[next..], &lines[next..], kills);
    serve.stop();
    verified(&ledger, "at the end");
    let digest = replay_digest(&ledger);
    println!(
        "server crash harness: {kills} kills in {rounds} rounds, {} commands ({next} answered before kills, {retried} durable before a kill and answered as retried), {:.1} s, digest {digest} {}",
        lines.len(),
        started.elapsed().as_secs_f64(),
        if digest == expected { "matches the uninterrupted run" } else { "DIFFERS" }
    );
    assert_eq!(digest, expected, "killed and resumed differs from apply");
}

/// A SIGTERM as soon as the server said where it listens is a clean stop (exit 0), not a death
/// by the signal: the handler is in place before the first line is printed.
#[test]
fn sigterm_right_after_the_listening_line_exits_0() {
    let ledger = TestLedger::new();
    add_token(&ledger, "crash", "operator", &[]);
    for _ in 0..5 {
        start_quiet(&ledger).stop();
    }
}
