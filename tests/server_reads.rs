//! Reads never wait for writes: the real `gongji serve` on a loopback port, a long command
//! stream sent slowly through `POST /v1/commands` (by hand, chunk by chunk, its answers read
//! as they come), and member reads beside it: each answered quickly and never refused, each
//! reflecting every line answered before it was sent, each a durable state of the member.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::serve::{agent, get, open_chunked_commands, Serve};
use support::{add_token, recorded_times, TestLedger};

/// Lines of the stream: enrolments of `E00000`.., with a contribution of the watched member
/// every `CONTRIBUTION_EVERY` lines.
const STREAM_LINES: usize = 21_000;
const CONTRIBUTION_EVERY: usize = 175;
/// Lines sent at a time, and the pause after each send: the stream lasts over 3 s, longer
/// than a read may take ([`READ_MAX`]).
const SEND_LINES: usize = 300;
const SEND_PAUSE: Duration = Duration::from_millis(50);
/// The longest a read may take while the stream runs.
const READ_MAX: Duration = Duration::from_secs(2);
/// The member whose account changes all through the stream.
const WATCHED: &str = "W";

/// A running `gongji serve`, with an operator's and a clerk's token.
struct Server {
    serve: Serve,
    operator: String,
    clerk: String,
    agent: ureq::Agent,
    _ledger: TestLedger,
}

impl Server {
    fn start(ledger: TestLedger) -> Server {
        let operator = add_token(&ledger, "operator", "operator", &[]);
        let clerk = add_token(&ledger, "clerk", "clerk", &[]);
        Server {
            serve: Serve::start(&ledger, &[]),
            operator,
            clerk,
            agent: agent(),
            _ledger: ledger,
        }
    }

    /// GET `path` as the clerk: the status, the body, and how long the answer took.
    fn get(&self, path: &str) -> (u16, String, Duration) {
        let started = Instant::now();
        let url = format!("http://{}{path}", self.serve.address);
        let (status, body) = get(&self.agent, &url, Some(&self.clerk));
        (status, body, started.elapsed())
    }

    /// GET `path` as the clerk, which must answer 200 within [`READ_MAX`]: its JSON.
    fn get_quickly(&self, path: &str) -> Value {
        let (status, body, took) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        assert!(took < READ_MAX, "GET {path} took {took:?}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }
}

fn enroll(member: &str) -> String {
    json!({"cmd":"enroll","member":member,"region":"500000","born":"1980-01-01",
        "status":"active","scheme":"employer","date":"2024-01-01"})
    .to_string()
}

/// The stream's lines: the watched member's enrolment, then enrolments with the watched
/// member's contributions between them, one month after another.
fn stream_lines() -> Vec<String> {
    let mut lines = vec![enroll(WATCHED)];
    let mut month = 0;
    while lines.len() < STREAM_LINES {
        if lines.len().is_multiple_of(CONTRIBUTION_EVERY) {
            let (year, m) = (2024 + month / 12, month % 12 + 1);
            month += 1;
            lines.push(
                json!({"cmd":"contribute","member":WATCHED,"month":format!("{year}-{m:02}"),
                    "base":"1000.00"})
                .to_string(),
            );
        } else {
            lines.push(enroll(&format!("E{:05}", lines.len())));
        }
    }
    lines
}

/// Sends `lines` as a chunked `POST /v1/commands` body, slowly, on its own thread; hands each
/// answer line to `answered` as it comes, and returns them all once the answer has ended.
fn stream(server: &Server, lines: &[String], mut answered: impl FnMut(&Value)) -> Vec<Value> {
    let (mut writer, connection) = open_chunked_commands(
        &server.serve.address,
        &server.operator,
        Duration::from_secs(60),
    );
    let body: Vec<String> = lines
        .chunks(SEND_LINES)
        .map(|chunk| chunk.iter().map(|l| format!("{l}\n")).collect())
        .collect();
    let sender = std::thread::spawn(move || {
        for chunk in body {
            write!(writer, "{:x}\r\n{chunk}\r\n", chunk.len()).unwrap();
            writer.flush().unwrap();
            std::thread::sleep(SEND_PAUSE);
        }
        writer.write_all(b"0\r\n\r\n").unwrap();
    });
    let mut reader = BufReader::new(connection);
    let mut head_line = String::new();
    reader.read_line(&mut head_line).unwrap();
    assert!(head_line.contains(" 200 "), "{head_line}");
    while {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        header != "\r\n"
    } {}
    let mut pending: Vec<u8> = Vec::new();
    let mut all = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        let mut chunk = vec![0u8; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        pending.extend_from_slice(&chunk[..size]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let value: Value = serde_json::from_slice(&line).expect("an answer line is JSON");
            answered(&value);
            all.push(value);
        }
        if size == 0 {
            break;
        }
    }
    sender.join().expect("the body was sent");
    all
}

/// Runs the stream with a reader thread asking for the watched member's account all along,
/// and `after_answer` called on the stream's answers as they come. Returns every answer the
/// reader got, and the stream's answers.
fn stream_with_reads(
    server: &Server,
    after_answer: impl FnMut(&Value),
) -> (Vec<(u16, String, Duration)>, Vec<Value>) {
    let lines = stream_lines();
    let streaming = AtomicBool::new(true);
    let seen = Mutex::new(Vec::new());
    /// Stops the reader thread however the stream ends (a failed check included).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let answers = std::thread::scope(|scope| {
        let _stop = Stop(&streaming);
        scope.spawn(|| {
            while streaming.load(Ordering::Acquire) {
                let answer = server.get(&format!("/v1/members/{WATCHED}"));
                seen.lock().unwrap().push(answer);
            }
        });
        stream(server, &lines, after_answer)
    });
    assert_eq!(answers.len(), lines.len());
    assert!(
        answers.iter().all(|a| a["ok"] == true),
        "every line applies"
    );
    (seen.into_inner().unwrap(), answers)
}

#[test]
fn member_reads_are_answered_quickly_and_never_refused_while_a_long_stream_is_applied() {
    let server = Server::start(TestLedger::new());
    let started = Instant::now();
    let (seen, _) = stream_with_reads(&server, |_| {});
    let streamed_for = started.elapsed();
    let answered = seen.iter().filter(|(status, ..)| *status == 200).count();
    for (status, body, took) in &seen {
        assert!(
            *status == 200 || (*status == 404 && body.contains("not enrolled")),
            "{status}: {body}"
        );
        assert!(*took < READ_MAX, "a read took {took:?} beside the stream");
    }
    assert!(
        answered >= 20,
        "{answered} reads answered in the {streamed_for:?} the stream ran"
    );
}

#[test]
fn a_line_answered_on_the_stream_is_in_every_read_sent_after_its_answer() {
    let server = Server::start(TestLedger::new());
    let mut checked = 0;
    let (_, answers) = stream_with_reads(&server, |answer| {
        let result = &answer["result"];
        let line = answer["line"].as_u64().expect("a line number");
        if result.get("month").is_some() {
            // The watched member's contribution: its balance is in the next read, or a later one.
            let account = server.get_quickly(&format!("/v1/members/{WATCHED}"));
            let shown: f64 = account["balance"].as_str().unwrap().parse().unwrap();
            let answered: f64 = result["balance"].as_str().unwrap().parse().unwrap();
            assert!(shown >= answered, "line {line}: {account} after {answer}");
            checked += 1;
        } else if line % 997 == 0 {
            let member = result["member"].as_str().expect("an enrolment's member");
            assert_eq!(
                server.get_quickly(&format!("/v1/members/{member}"))["member"],
                member
            );
            checked += 1;
        }
    });
    assert!(
        checked > 100,
        "{checked} reads checked of {}",
        answers.len()
    );
}

/// The watched member's account after each of its events: every durable state a read could
/// have answered (by `recorded_before` just past each event, as `tests/concurrent_readers.rs`).
fn durable_states(server: &Server) -> Vec<Value> {
    let history = server.get_quickly(&format!("/v1/members/{WATCHED}/history"));
    recorded_times(history.as_array().expect("an array"))
        .iter()
        .map(|micros| {
            // The query string's `+` written `%2B`.
            let at = support::rfc3339_micros(micros + 1).replace('+', "%2B");
            server.get_quickly(&format!("/v1/members/{WATCHED}?recorded_before={at}"))
        })
        .collect()
}

#[test]
fn every_read_beside_a_stream_answers_a_durable_state_of_the_member() {
    let server = Server::start(TestLedger::new());
    let (seen, _) = stream_with_reads(&server, |_| {});
    let states = durable_states(&server);
    assert!(states.len() > 100, "{} states", states.len());
    let mut compared = 0;
    for (status, body, _) in seen.iter().filter(|(status, ..)| *status == 200) {
        let answer: Value = serde_json::from_str(body).expect("JSON");
        let durable = states.iter().any(|state| {
            let mut state = state.clone();
            if let Some(object) = state.as_object_mut() {
                object.retain(|key, _| answer.get(key).is_some());
            }
            state == answer
        });
        assert!(
            durable,
            "{status}: {answer} is no durable state of {WATCHED}"
        );
        compared += 1;
    }
    assert!(compared >= 20, "{compared} answers compared");
}
