//! The service, end to end: the real `gongji serve` on a loopback port, driven by a real HTTP
//! client (ureq), and by a hand-written HTTP/1.1 client where a test needs to hold a request
//! body open (streaming, disconnecting, stopping the server mid-stream).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::serve::{agent, get, open_chunked_commands, post_ndjson, RoleTokens, Serve, ROLES};
use support::{add_token, examples, gongji_path, parse_lines, text, TestLedger};

/// A running `gongji serve` over `ledger`, with a token for each role.
struct Server {
    serve: Serve,
    ledger: TestLedger,
    tokens: RoleTokens,
    agent: ureq::Agent,
}

impl Server {
    fn start(ledger: TestLedger, extra: &[&str]) -> Server {
        let tokens = RoleTokens::add(&ledger);
        Server {
            serve: Serve::start(&ledger, extra),
            ledger,
            tokens,
            agent: agent(),
        }
    }

    fn token(&self, role: &str) -> &str {
        self.tokens.of(role)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.serve.address)
    }

    /// GET `path` with `token` (if any): the status and the body.
    fn get(&self, token: Option<&str>, path: &str) -> (u16, String) {
        get(&self.agent, &self.url(path), token)
    }

    /// GET `path` as `role`, which must answer 200 with JSON.
    fn get_json(&self, role: &str, path: &str) -> Value {
        let (status, body) = self.get(Some(self.token(role)), path);
        assert_eq!(status, 200, "GET {path} as {role}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    fn post_commands(&self, token: Option<&str>, body: &str) -> (u16, String) {
        let url = self.url("/v1/commands");
        let mut response = post_ndjson(&self.agent, &url, token, body.as_bytes());
        let text = response.body_mut().read_to_string().expect("a text body");
        (response.status().as_u16(), text)
    }

    /// Sends SIGTERM; the server must exit 0. Returns the ledger.
    fn stop(self) -> TestLedger {
        self.serve.stop();
        self.ledger
    }
}

fn enroll(member: &str) -> String {
    json!({"cmd":"enroll","member":member,"region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01"}).to_string()
}

fn sample_text() -> String {
    std::fs::read_to_string(examples("sample.jsonl")).unwrap()
}

/// A POST /v1/commands whose body is sent by hand, chunk by chunk, and whose answer is read
/// line by line as it comes.
struct RawStream {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Answer bytes decoded from the chunked response and not yet returned as lines.
    pending: Vec<u8>,
    ended: bool,
}

impl RawStream {
    fn open(server: &Server) -> RawStream {
        let (writer, stream) = open_chunked_commands(
            &server.serve.address,
            server.token("operator"),
            Duration::from_secs(20),
        );
        RawStream {
            writer,
            reader: BufReader::new(stream),
            pending: Vec::new(),
            ended: false,
        }
    }

    fn send(&mut self, bytes: &str) -> std::io::Result<()> {
        write!(self.writer, "{:x}\r\n{bytes}\r\n", bytes.len())?;
        self.writer.flush()
    }

    fn finish(&mut self) {
        self.writer.write_all(b"0\r\n\r\n").unwrap();
    }

    /// Reads the response's head: its status.
    fn status(&mut self) -> u16 {
        let mut status = String::new();
        self.reader.read_line(&mut status).unwrap();
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).unwrap();
            if header == "\r\n" {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if lower.starts_with("transfer-encoding") {
                assert!(lower.contains("chunked"), "{header}");
            }
        }
        status.split(' ').nth(1).unwrap().parse().unwrap()
    }

    /// The next answer line, or None once the answer has ended.
    fn line(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("an answer line is JSON"));
            }
            if self.ended || !self.read_chunk() {
                self.ended = true;
                return None;
            }
        }
    }

    /// Reads one chunk of the response; false at its end (or the connection's).
    fn read_chunk(&mut self) -> bool {
        let mut size = String::new();
        if self.reader.read_line(&mut size).unwrap_or(0) == 0 {
            return false;
        }
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        let mut chunk = vec![0u8; size + 2];
        self.reader.read_exact(&mut chunk).unwrap();
        self.pending.extend_from_slice(&chunk[..size]);
        size > 0
    }

    fn lines_to_end(&mut self) -> Vec<Value> {
        std::iter::from_fn(|| self.line()).collect()
    }
}

#[test]
fn every_role_against_every_route_is_allowed_or_refused_as_the_table_says() {
    let server = Server::start(TestLedger::sample(), &[]);
    let public: &[&str] = &[];
    let readers = &["operator", "clerk", "auditor"][..];
    let table: Vec<(&str, &str, &[&str])> = vec![
        ("GET", "/healthz", public),
        ("GET", "/v1/openapi.json", public),
        ("GET", "/", public),
        ("GET", "/ui/app.js", public),
        (
            "GET",
            "/v1/me",
            &["operator", "clerk", "auditor", "reconciler"],
        ),
        ("GET", "/metrics", &["operator", "auditor"]),
        ("POST", "/v1/commands", &["operator"]),
        ("GET", "/v1/members/M001", readers),
        ("GET", "/v1/members/M001/years/2024", readers),
        ("GET", "/v1/members/M001/history", readers),
        ("GET", "/v1/members/M004/inheritance", readers),
        ("GET", "/v1/members/M005/transfers", readers),
        ("GET", "/v1/members/M001/timeline", readers),
        ("GET", "/v1/claims/C002/explain", readers),
        ("GET", "/v1/funds/500000", &["auditor"]),
        ("GET", "/v1/policies", &["operator", "auditor"]),
        ("GET", "/v1/access-log", &["auditor"]),
        ("GET", "/v1/audit/replay", &["auditor"]),
        ("GET", "/v1/audit/export", &["auditor"]),
        ("GET", "/v1/flags", &["auditor"]),
        ("GET", "/v1/export/events", &["auditor"]),
        (
            "GET",
            "/v1/statements/H500101/2024-03",
            &["reconciler", "auditor"],
        ),
    ];
    let gone = add_token(&server.ledger, "gone", "auditor", &[]);
    let ask = |method: &str, path: &str, token: Option<&str>| match method {
        "GET" => server.get(token, path),
        _ => server.post_commands(token, ""),
    };
    for (method, path, allowed) in &table {
        for role in ROLES {
            let (status, body) = ask(method, path, Some(server.token(role)));
            let expected = if allowed.is_empty() || allowed.contains(&role) {
                200
            } else {
                403
            };
            assert_eq!(status, expected, "{method} {path} as {role}: {body}");
            if status == 403 {
                let error: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(error["error"]["code"], "forbidden", "{body}");
            }
        }
        let refused = if allowed.is_empty() { 200 } else { 401 };
        for token in [None, Some("not-a-token"), Some("Bearer")] {
            let (status, body) = ask(method, path, token);
            assert_eq!(status, refused, "{method} {path} with {token:?}: {body}");
            if status == 401 {
                let error: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(error["error"]["code"], "unauthorized", "{body}");
            }
        }
    }
    let (status, _) = server.get(Some("x"), "/v1/policies");
    assert_eq!(status, 401);
    let lower = server
        .agent
        .get(server.url("/v1/policies"))
        .header(
            "Authorization",
            format!("bearer {}", server.token("auditor")),
        )
        .call()
        .unwrap();
    assert_eq!(
        lower.status().as_u16(),
        200,
        "the scheme's name is case-insensitive"
    );
    // Revoked while the server runs: refused from the next request on, without a restart.
    assert_eq!(server.get(Some(&gone), "/v1/funds/500000").0, 200);
    let out = server.ledger.run(&["token", "revoke", "gone"]);
    assert!(out.status.success(), "{}", text(&out));
    let (status, body) = server.get(Some(&gone), "/v1/funds/500000");
    assert_eq!(status, 401, "{body}");
}

#[test]
fn the_sample_settles_through_the_service_to_the_fen_and_answers_as_apply_json() {
    let by_cli = TestLedger::new();
    let sample = examples("sample.jsonl");
    let printed = by_cli.run(&["apply", sample.to_str().unwrap(), "--json"]);
    let server = Server::start(TestLedger::new(), &[]);
    let (status, answered) = server.post_commands(Some(server.token("operator")), &sample_text());
    assert_eq!(status, 200);
    assert_eq!(
        answered,
        String::from_utf8(printed.stdout).unwrap(),
        "byte for byte"
    );
    // Read-your-writes: every answer below reflects the stream answered above.
    let results = parse_lines(answered.as_bytes());
    assert_eq!(results[10]["result"]["ordinary_paid"], "300.00");
    assert_eq!(results[10]["result"]["account_paid"], "385.50");
    let clerk = |path: &str| server.get_json("clerk", path);
    assert_eq!(clerk("/v1/members/M001")["balance"], "1282.00");
    let year = clerk("/v1/members/M001/years/2024");
    assert_eq!(year["deductible_used"], "150.00");
    assert_eq!(year["ordinary_remaining"], "3000.00");
    let fund = server.get_json("auditor", "/v1/funds/500000");
    assert_eq!(fund["pooled"]["inflow"], "1520.00");
    assert_eq!(fund["pooled"]["outflow"], "340.00");
    assert_eq!(fund["pooled"]["balance"], "1180.00");
    // M004 dies on 20 May; the 860.00 of the account goes to the heirs, 60:40, to the fen.
    let inheritance = clerk("/v1/members/M004/inheritance");
    assert_eq!(inheritance["inherited_balance"], "860.00");
    assert_eq!(inheritance["payouts"][0]["amount"], "516.00");
    assert_eq!(inheritance["payouts"][1]["amount"], "344.00");
    let transfers = clerk("/v1/members/M005/transfers");
    assert_eq!(transfers["transfers"][0]["balance"], "420.00");
    // A retried stream is answered as `apply` answers it: every line a duplicate or refused.
    let (_, again) = server.post_commands(Some(server.token("operator")), &sample_text());
    let printed_again = by_cli.run(&["apply", sample.to_str().unwrap(), "--json"]);
    assert_eq!(again, String::from_utf8(printed_again.stdout).unwrap());
}

#[test]
fn every_read_answers_the_json_the_command_line_prints() {
    let ledger = TestLedger::sample();
    let asked: Vec<(Vec<&str>, &str)> = vec![
        (vec!["account", "M001"], "/v1/members/M001"),
        (
            vec!["account", "M001", "--as-of", "2024-02-15"],
            "/v1/members/M001?as_of=2024-02-15",
        ),
        (
            vec![
                "account",
                "M001",
                "--recorded-before",
                "2030-01-01T08:00:00",
            ],
            "/v1/members/M001?recorded_before=2030-01-01T08:00:00",
        ),
        (vec!["year", "M001", "2024"], "/v1/members/M001/years/2024"),
        (
            vec!["year", "M001", "2024", "--region", "500000"],
            "/v1/members/M001/years/2024?region=500000",
        ),
        (vec!["inheritance", "M004"], "/v1/members/M004/inheritance"),
        (vec!["transfers", "M005"], "/v1/members/M005/transfers"),
        (vec!["timeline", "M004"], "/v1/members/M004/timeline"),
        (
            vec!["timeline", "M001", "--as-of", "2024-02-15"],
            "/v1/members/M001/timeline?as_of=2024-02-15",
        ),
        (vec!["explain", "C002"], "/v1/claims/C002/explain"),
        (vec!["fund", "500000"], "/v1/funds/500000"),
        (
            vec!["fund", "500000", "--as-of", "2024-03-01"],
            "/v1/funds/500000?as_of=2024-03-01",
        ),
    ];
    let printed: Vec<String> = asked
        .iter()
        .map(|(args, _)| {
            let mut args = args.clone();
            args.push("--json");
            let out = ledger.run(&args);
            assert!(out.status.success(), "{}", text(&out));
            String::from_utf8(out.stdout)
                .unwrap()
                .trim_end()
                .to_string()
        })
        .collect();
    let history = ledger.run(&["history", "M001", "--json", "--from", "2024-02-01"]);
    let policies = ledger.run(&["policy", "list", "--json"]);
    let server = Server::start(ledger, &[]);
    for ((_, path), printed) in asked.iter().zip(&printed) {
        let (status, body) = server.get(Some(server.token("auditor")), path);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(&body, printed, "{path}");
    }
    let lines = |out: &std::process::Output| Value::Array(parse_lines(&out.stdout));
    let got = server.get_json("auditor", "/v1/members/M001/history?from=2024-02-01");
    assert_eq!(got, lines(&history));
    assert_eq!(server.get_json("auditor", "/v1/policies"), lines(&policies));
    // Nothing to show, and questions that do not read.
    let missing = [
        ("/v1/members/M999", 404, "not_found"),
        ("/v1/members/M001?as_of=2024-13-01", 400, "bad_request"),
        ("/v1/members/M001?recorded_before=soon", 400, "bad_request"),
        ("/v1/members/M001/years/nineteen", 400, "bad_request"),
        (
            "/v1/members/M001/history?from=yesterday",
            400,
            "bad_request",
        ),
        ("/v1/members/M999/history", 404, "not_found"),
        ("/v1/members/M999/timeline", 404, "not_found"),
        ("/ui/secrets.txt", 404, "not_found"),
        ("/v1/claims/C999/explain", 404, "not_found"),
        ("/v1/funds/999999", 404, "not_found"),
        ("/v1/access-log?limit=many", 400, "bad_request"),
        ("/v1/nothing", 404, "not_found"),
    ];
    for (path, status, code) in missing {
        let (got, body) = server.get(Some(server.token("auditor")), path);
        assert_eq!(got, status, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], code, "{path}: {body}");
        assert!(error["error"]["message"].as_str().unwrap().len() > 5);
    }
}

#[test]
fn member_reads_are_in_the_access_log_before_they_are_answered_and_auditors_page_it() {
    let server = Server::start(TestLedger::sample(), &[]);
    server.get_json("clerk", "/v1/members/M001");
    server.get_json("operator", "/v1/members/M002/years/2024");
    server.get_json("clerk", "/v1/claims/C002/explain");
    assert_eq!(
        server
            .get(Some(server.token("clerk")), "/v1/members/M999")
            .0,
        404
    );
    assert_eq!(
        server
            .get(Some(server.token("reconciler")), "/v1/members/M003")
            .0,
        403
    );
    server.get_json("auditor", "/v1/funds/500000");
    let page = server.get_json("auditor", "/v1/access-log");
    let entries = page["entries"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str, u64)> = entries
        .iter()
        .map(|e| {
            let who = e["token"].as_str().unwrap();
            let member = e["member"].as_str().unwrap_or("-");
            (
                who,
                e["route"].as_str().unwrap(),
                member,
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("clerk", "/v1/members/{id}", "M001", 200),
            ("operator", "/v1/members/{id}/years/{year}", "M002", 200),
            ("clerk", "/v1/claims/{id}/explain", "M001", 200),
            ("clerk", "/v1/members/{id}", "M999", 404),
        ]
    );
    assert_eq!(entries[2]["claim"], "C002");
    assert_eq!(entries[0]["role"], "clerk");
    assert!(entries[0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(page["next"], 4);
    let second = server.get_json("auditor", "/v1/access-log?from=1&limit=2");
    assert_eq!(second["entries"].as_array().unwrap().len(), 2);
    assert_eq!(second["entries"][0]["member"], "M002");
    assert_eq!(second["next"], 3);
    let latest = server.get_json("auditor", "/v1/access-log?last=2");
    let members: Vec<&Value> = latest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["member"])
        .collect();
    assert_eq!(members, [&json!("M001"), &json!("M999")], "{latest}");
    assert_eq!(latest["next"], 4);
    // Of those from `from` on, at most `limit`.
    let tail = server.get_json("auditor", "/v1/access-log?last=3&from=1&limit=2");
    let members: Vec<&Value> = tail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["member"])
        .collect();
    assert_eq!(members, [&json!("M001"), &json!("M999")], "{tail}");
    // The log is in the data directory, synced line by line: all four are on disk now.
    let on_disk = std::fs::read_to_string(server.ledger.data().join("access-log"));
    assert_eq!(on_disk.unwrap().lines().count(), 4);
}

#[test]
fn answers_stream_back_before_the_body_has_ended() {
    let server = Server::start(TestLedger::new(), &[]);
    let mut stream = RawStream::open(&server);
    let first: String = (1..=5).map(|i| enroll(&format!("S{i}")) + "\n").collect();
    stream.send(&first).unwrap();
    assert_eq!(stream.status(), 200);
    for i in 1..=5 {
        let answer = stream
            .line()
            .expect("answered while the body is still open");
        assert_eq!(answer["line"], i);
        assert_eq!(answer["ok"], true, "{answer}");
    }
    let rest: String = (6..=8).map(|i| enroll(&format!("S{i}")) + "\n").collect();
    stream.send(&rest).unwrap();
    stream.finish();
    let answers = stream.lines_to_end();
    let numbers: Vec<u64> = answers
        .iter()
        .map(|a| a["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![6, 7, 8]);
    assert_eq!(server.get_json("clerk", "/v1/members/S8")["member"], "S8");
}

#[test]
fn a_client_gone_mid_stream_leaves_every_answered_line_applied_and_no_line_half_applied() {
    let server = Server::start(TestLedger::new(), &[]);
    let mut stream = RawStream::open(&server);
    let lines: String = (1..=5).map(|i| enroll(&format!("D{i}")) + "\n").collect();
    let half = &enroll("D6")[..40];
    stream.send(&format!("{lines}{half}")).unwrap();
    assert_eq!(stream.status(), 200);
    for _ in 1..=5 {
        assert_eq!(stream.line().unwrap()["ok"], true);
    }
    stream.writer.shutdown(Shutdown::Both).unwrap();
    drop(stream);
    for i in 1..=5 {
        server.get_json("clerk", &format!("/v1/members/D{i}"));
    }
    let (status, body) = server.get(Some(server.token("clerk")), "/v1/members/D6");
    assert_eq!(status, 404, "the cut line is not applied: {body}");
    // The writer is free again, and the ledger takes the next stream.
    let (status, body) = server.post_commands(Some(server.token("operator")), &enroll("D6"));
    assert_eq!(status, 200);
    assert_eq!(parse_lines(body.as_bytes())[0]["ok"], true, "{body}");
}

#[test]
fn sigterm_mid_stream_answers_what_was_read_exits_0_and_loses_nothing_answered() {
    let server = Server::start(TestLedger::new(), &[]);
    let mut stream = RawStream::open(&server);
    let first: String = (1..=20).map(|i| enroll(&format!("T{i}")) + "\n").collect();
    stream.send(&first).unwrap();
    assert_eq!(stream.status(), 200);
    let mut answers = vec![stream.line().unwrap()];
    server.serve.terminate();
    // Whatever the server still reads of this is answered; the rest is not applied.
    let _ = stream.send(
        &(21..=40)
            .map(|i| enroll(&format!("T{i}")) + "\n")
            .collect::<String>(),
    );
    answers.extend(stream.lines_to_end());
    let last = answers.pop().expect("an error line ends the stream");
    assert_eq!(last["error"]["code"], "stream_ended", "{last}");
    assert!(
        answers.len() >= 20,
        "every line read before the signal: {}",
        answers.len()
    );
    assert!(answers.iter().all(|a| a["ok"] == true));
    let ledger = server.stop();
    for i in 1..=40 {
        let member = format!("T{i}");
        let found = ledger.run(&["account", &member, "--json"]).status.success();
        assert_eq!(
            found,
            i <= answers.len(),
            "{member}: applied exactly when answered"
        );
    }
}

#[test]
fn a_client_that_stops_reading_its_answers_does_not_hold_the_writer() {
    let server = Server::start(
        TestLedger::new(),
        &["--answer-stall-secs", "1", "--read-timeout-secs", "60"],
    );
    let mut stream = RawStream::open(&server);
    // Refused lines, answered at once: far more answer bytes than the sockets buffer.
    let body = "{\"cmd\":\"nope\"}\n".repeat(20_000);
    let writer = std::thread::spawn(move || {
        for _ in 0..40 {
            if stream.send(&body).is_err() {
                break;
            }
        }
        stream // never read
    });
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let (status, body) = server.get(Some(server.token("operator")), "/v1/policies");
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let (status, body) = server.post_commands(Some(server.token("operator")), &enroll("W1"));
    assert_eq!(status, 200);
    assert_eq!(parse_lines(body.as_bytes())[0]["ok"], true, "{body}");
    drop(writer);
}

#[test]
fn the_openapi_document_lists_every_route_with_its_parameters_and_responses() {
    let server = Server::start(TestLedger::new(), &[]);
    let (status, body) = server.get(None, "/v1/openapi.json");
    assert_eq!(status, 200);
    let api: Value = serde_json::from_str(&body).unwrap();
    assert!(api["openapi"].as_str().unwrap().starts_with("3."));
    let routes: Vec<(&str, &str, &[&str], &[&str])> = vec![
        ("get", "/healthz", &[], &["200"]),
        ("get", "/v1/openapi.json", &[], &["200"]),
        ("get", "/metrics", &[], &["200", "401", "403"]),
        (
            "post",
            "/v1/commands",
            &[],
            &["200", "401", "403", "415", "503"],
        ),
        (
            "get",
            "/v1/members/{id}",
            &["id", "as_of", "recorded_before"],
            &["200", "400", "404", "503"],
        ),
        (
            "get",
            "/v1/members/{id}/years/{year}",
            &["id", "year", "region", "as_of", "recorded_before"],
            &["200", "400", "404", "503"],
        ),
        (
            "get",
            "/v1/members/{id}/history",
            &["id", "from", "to"],
            &["200", "400", "404", "503"],
        ),
        (
            "get",
            "/v1/members/{id}/inheritance",
            &["id", "as_of", "recorded_before"],
            &["200", "404", "503"],
        ),
        (
            "get",
            "/v1/members/{id}/transfers",
            &["id", "as_of", "recorded_before"],
            &["200", "404", "503"],
        ),
        (
            "get",
            "/v1/members/{id}/timeline",
            &["id", "as_of", "recorded_before"],
            &["200", "404", "503"],
        ),
        ("get", "/", &[], &["200"]),
        ("get", "/ui/{file}", &["file"], &["200", "404"]),
        ("get", "/v1/me", &[], &["200", "401"]),
        (
            "get",
            "/v1/claims/{id}/explain",
            &["id"],
            &["200", "404", "503"],
        ),
        (
            "get",
            "/v1/funds/{region}",
            &["region", "as_of", "recorded_before"],
            &["200", "400", "403", "404", "503"],
        ),
        ("get", "/v1/policies", &[], &["200", "403", "503"]),
        (
            "get",
            "/v1/access-log",
            &["from", "limit", "last"],
            &["200", "400", "403"],
        ),
        (
            "get",
            "/v1/events",
            &["from", "Last-Event-ID"],
            &["200", "400", "401", "403", "503"],
        ),
        (
            "post",
            "/v1/audit/verify",
            &[],
            &["200", "401", "403", "503"],
        ),
        (
            "get",
            "/v1/audit/replay",
            &[],
            &["200", "401", "403", "503"],
        ),
        (
            "get",
            "/v1/audit/export",
            &["region", "from", "to"],
            &["200", "400", "401", "403", "404", "503"],
        ),
        (
            "post",
            "/v1/reconcile/detail",
            &["institution", "from", "to"],
            &["200", "400", "401", "403", "413", "422", "503"],
        ),
        (
            "post",
            "/v1/reconcile/totals",
            &[],
            &["200", "401", "403", "413", "422", "503"],
        ),
        (
            "get",
            "/v1/statements/{institution}/{month}",
            &["institution", "month"],
            &["200", "400", "401", "403", "503"],
        ),
        (
            "get",
            "/v1/export/{table}",
            &["table", "format", "encoding", "region", "from", "to"],
            &["200", "400", "401", "403", "404", "503"],
        ),
        (
            "get",
            "/v1/flags",
            &[
                "rules",
                "region",
                "rule",
                "member",
                "institution",
                "decision",
                "offset",
                "limit",
            ],
            &["200", "400", "401", "403", "404", "501", "503"],
        ),
        (
            "post",
            "/v1/flags/{id}/decision",
            &["id"],
            &["200", "400", "401", "403", "404", "501", "503"],
        ),
    ];
    let paths = api["paths"].as_object().unwrap();
    assert_eq!(paths.len(), routes.len(), "{:?}", paths.keys());
    for (method, path, parameters, responses) in routes {
        let operation = &api["paths"][path][method];
        assert!(operation.is_object(), "{method} {path}");
        let names: Vec<&str> = operation["parameters"]
            .as_array()
            .map(|all| all.iter().map(|p| p["name"].as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(names, parameters, "{method} {path}");
        for status in responses {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path} {status}"
            );
        }
        let public = ["/healthz", "/v1/openapi.json", "/", "/ui/{file}"].contains(&path);
        assert_eq!(operation["security"].is_array(), !public, "{method} {path}");
    }
    assert_eq!(
        api["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[test]
fn metrics_count_requests_by_route_and_status_and_the_lines_applied() {
    let server = Server::start(TestLedger::new(), &[]);
    let (status, body) = server.post_commands(Some(server.token("operator")), &sample_text());
    assert_eq!(status, 200, "{body}");
    server.get_json("clerk", "/v1/members/M001");
    server.get_json("clerk", "/v1/members/M002");
    server.get(None, "/v1/members/M002");
    let (status, text) = server.get(Some(server.token("auditor")), "/metrics");
    assert_eq!(status, 200);
    for expected in [
        "gongji_http_requests_total{route=\"/v1/members/{id}\",status=\"200\"} 2\n",
        "gongji_http_requests_total{route=\"/v1/members/{id}\",status=\"401\"} 1\n",
        "gongji_http_requests_total{route=\"/v1/commands\",status=\"200\"} 1\n",
        "gongji_command_lines_applied_total 20\n",
        "gongji_command_lines_refused_total 4\n",
        "# TYPE gongji_durable_position gauge\n",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    let position = text
        .lines()
        .find_map(|l| l.strip_prefix("gongji_durable_position "))
        .unwrap();
    assert!(position.parse::<u64>().unwrap() > 20, "{position}");
    // The read view reads none of those records from the log: it folds the events the writer
    // handed over (in PostgreSQL the writer's store at the stream's end may leave it nothing
    // to fold; `the_read_view_folds_the_events_the_writer_handed_over` has a directory).
    assert_eq!(
        figure(&text, "gongji_read_view_folded_read_total"),
        0,
        "{text}"
    );
}

/// The value of the figure `name` in the metrics `text`.
fn figure(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn the_read_view_folds_the_events_the_writer_handed_over() {
    // A directory's writer stores its projections only once many entities are dirty: the view
    // folds the stream after its open, every record from the events the writer handed over.
    let server = Server::start(TestLedger::directory(), &[]);
    let (status, body) = server.post_commands(Some(server.token("operator")), &sample_text());
    assert_eq!(status, 200, "{body}");
    server.get_json("clerk", "/v1/members/M001");
    let (status, text) = server.get(Some(server.token("auditor")), "/metrics");
    assert_eq!(status, 200);
    // The view opened on the empty ledger: every record, from the handover.
    let durable = figure(&text, "gongji_durable_position");
    assert!(durable >= 10, "{text}");
    assert_eq!(
        figure(&text, "gongji_read_view_folded_handed_total"),
        durable,
        "{text}"
    );
    assert_eq!(
        figure(&text, "gongji_read_view_folded_read_total"),
        0,
        "{text}"
    );
}

#[test]
fn commands_need_ndjson_and_healthz_needs_no_token() {
    let server = Server::start(TestLedger::new(), &[]);
    assert_eq!(
        server.get(None, "/healthz"),
        (200, "{\"status\":\"ok\"}".to_string())
    );
    let response = server
        .agent
        .post(server.url("/v1/commands"))
        .header(
            "Authorization",
            format!("Bearer {}", server.token("operator")),
        )
        .header("Content-Type", "application/json")
        .send(enroll("X1").as_bytes())
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    // A line over the ledger's bound is refused as `apply` refuses it, and the next applies.
    let long = format!(
        "{{\"cmd\":\"enroll\",\"member\":\"{}\"}}",
        "x".repeat(300 * 1024)
    );
    let body = format!("{long}\n{}\n", enroll("X2"));
    let (status, answered) = server.post_commands(Some(server.token("operator")), &body);
    assert_eq!(status, 200);
    let answers = parse_lines(answered.as_bytes());
    assert_eq!(
        answers[0]["error"]["code"], "line_too_long",
        "{}",
        answers[0]
    );
    assert_eq!(answers[1]["ok"], true);
}

#[test]
fn tokens_are_kept_in_the_data_directory_as_hashes_only() {
    let ledger = TestLedger::new();
    // On PostgreSQL the tests keep the token file where a directory ledger keeps it.
    std::fs::create_dir_all(ledger.data()).unwrap();
    let before: Vec<PathBuf> = files_in(&ledger.data());
    let token = add_token(&ledger, "ana", "clerk", &[]);
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let file = ledger.data().join("tokens");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(&token));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut expected = before;
    expected.push(file.clone());
    expected.sort();
    assert_eq!(
        files_in(&ledger.data()),
        expected,
        "nothing new in the data directory but DIR/tokens"
    );
    let listed = ledger.run(&["token", "list"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.starts_with("ana  clerk  20"), "{listed}");
    let hash = stored.lines().nth(1).unwrap().rsplit(' ').next().unwrap();
    assert!(!listed.contains(hash));
    let refused = ledger.run(&["token", "add", "bo", "--role", "admin"]);
    assert_eq!(refused.status.code(), Some(2));
    let out = ledger.run(&["token", "revoke", "ana"]);
    assert!(out.status.success());
    let listed = ledger.run(&["token", "list"]);
    assert!(listed.stdout.is_empty());
    let _ = gongji_path();
}

#[test]
fn serve_refuses_to_start_without_a_token_file_and_creates_nothing() {
    let ledger = TestLedger::new();
    let out = ledger.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("token add"), "{}", text(&out));
    assert!(!ledger.data().join("access-log").exists());
}

fn files_in(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_connection_past_the_bound_waits_until_one_closes() {
    let server = Server::start(TestLedger::new(), &["--connections-max", "1"]);
    let mut stream = RawStream::open(&server);
    stream.send(&(enroll("C1") + "\n")).unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.line().unwrap()["ok"], true);
    let mut second = TcpStream::connect(&server.serve.address).unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gongji\r\nConnection: close\r\n\r\n")
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut answer = Vec::new();
    let waited = second.read_to_end(&mut answer);
    assert!(
        waited.is_err() && answer.is_empty(),
        "not served while the first is open"
    );
    stream.finish();
    assert!(stream.lines_to_end().is_empty());
    drop(stream);
    second
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    second.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_body_far_larger_than_any_buffer_is_answered_line_for_line() {
    let server = Server::start(TestLedger::new(), &[]);
    let lines = 300_000;
    let mut body = "{\"cmd\":\"nope\"}\n".repeat(lines - 1);
    body.push_str(&enroll("B1"));
    let url = server.url("/v1/commands");
    let token = Some(server.token("operator"));
    let mut response = post_ndjson(&server.agent, &url, token, body.as_bytes());
    assert_eq!(response.status().as_u16(), 200);
    let reader = BufReader::new(response.body_mut().as_reader());
    let mut answered = 0;
    let mut last = String::new();
    for line in reader.lines() {
        answered += 1;
        last = line.unwrap();
    }
    assert_eq!(answered, lines);
    let last: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(
        (last["line"].as_u64(), &last["ok"]),
        (Some(lines as u64), &json!(true))
    );
    let peak_kib = peak_memory_kib(server.serve.child.id());
    assert!(peak_kib < 200 * 1024, "the server peaked at {peak_kib} KiB");
}

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_read_is_answered_while_a_stream_holds_the_writer_and_a_second_stream_waits_its_timeout() {
    let server = Server::start(TestLedger::new(), &["--read-timeout-secs", "0.5"]);
    let mut stream = RawStream::open(&server);
    stream.send(&(enroll("R1") + "\n")).unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.line().unwrap()["ok"], true);
    // The stream is open and holds the writer; reads never wait for it, and see R1, answered.
    let started = Instant::now();
    let (status, body) = server.get(Some(server.token("clerk")), "/v1/members/R1");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"R1\""), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let (status, body) = server.post_commands(Some(server.token("operator")), &enroll("R2"));
    assert!(body.contains("\"busy\""), "{body}");
    assert_eq!(status, 503, "a second stream waits as long: {body}");
    stream.finish();
    assert!(stream.lines_to_end().is_empty());
    assert_eq!(server.get_json("clerk", "/v1/members/R1")["member"], "R1");
    let mut response = server
        .agent
        .post(server.url("/v1/policies"))
        .header(
            "Authorization",
            format!("Bearer {}", server.token("auditor")),
        )
        .send_empty()
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body = response.body_mut().read_to_string().unwrap();
    assert!(body.contains("\"method_not_allowed\""), "{body}");
}

/// GET `path` as `role` must be refused with 400 `bad_request` and a message naming `name`.
fn assert_refused(server: &Server, role: &str, path: &str, name: &str) {
    let (status, body) = server.get(Some(server.token(role)), path);
    assert_eq!(status, 400, "{path}: {body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "bad_request", "{path}: {body}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(&format!("{name}: ")), "{path}: {body}");
}

#[test]
fn a_parameter_past_the_bounds_the_document_gives_is_refused_and_one_within_them_is_taken() {
    let server = Server::start(TestLedger::sample(), &[]);
    let taken = [
        ("auditor", "/v1/access-log?limit=1000"),
        ("auditor", "/v1/access-log?from=9223372036854775807&limit=0"),
        ("clerk", "/v1/members/M001?as_of=1900-01-01"),
        (
            "clerk",
            "/v1/members/M001/history?from=1900-01-01&to=2200-12-31",
        ),
        ("clerk", "/v1/members/M001/years/2024?as_of=2200-12-31"),
        ("clerk", "/v1/members/M001/years/2200"),
        (
            "clerk",
            "/v1/members/M001?recorded_before=0001-01-01T00:00:00Z",
        ),
        (
            "clerk",
            "/v1/members/M001?recorded_before=9999-12-31T23:59:59.999999-23:59",
        ),
        (
            "clerk",
            "/v1/members/M001?recorded_before=2024-02-28T08:00:00.123456789",
        ),
        ("clerk", "/v1/members/M001?recorded_before=2200-12-31"),
        ("reconciler", "/v1/statements/H001/1900-01"),
        ("reconciler", "/v1/statements/H001/2200-12"),
    ];
    for (role, path) in taken {
        let (status, body) = server.get(Some(server.token(role)), path);
        assert!(status == 200 || status == 404, "{path}: {status} {body}");
    }
    let refused = [
        ("auditor", "/v1/access-log?limit=1001", "limit"),
        (
            "auditor",
            "/v1/access-log?limit=18446744073709551615",
            "limit",
        ),
        ("auditor", "/v1/access-log?from=9223372036854775808", "from"),
        ("clerk", "/v1/members/M001/years/2201", "year"),
        ("clerk", "/v1/members/M001/years/1899", "year"),
        ("clerk", "/v1/members/M001/years/-5", "year"),
        ("clerk", "/v1/members/M001?as_of=1899-12-31", "as_of"),
        ("clerk", "/v1/members/M001?as_of=2201-01-01", "as_of"),
        ("clerk", "/v1/members/M001/history?to=2024-02-30", "to"),
        ("auditor", "/v1/audit/export?from=2201-01-01", "from"),
        ("reconciler", "/v1/statements/H001/2201-01", "month"),
    ];
    for (role, path, name) in refused {
        assert_refused(&server, role, path, name);
    }
}

/// The schema the document gives parameter `name` of `method path`, which must be `required`
/// or not as said.
fn parameter_schema(api: &Value, method: &str, path: &str, name: &str, required: bool) -> Value {
    let parameters = api["paths"][path][method]["parameters"].as_array().unwrap();
    let parameter = parameters.iter().find(|p| p["name"] == name);
    let parameter = parameter.unwrap_or_else(|| panic!("{method} {path} has no {name}"));
    assert_eq!(parameter["required"], required, "{method} {path} {name}");
    parameter["schema"].clone()
}

#[test]
fn the_openapi_document_gives_each_parameter_the_values_the_server_takes() {
    let server = Server::start(TestLedger::new(), &[]);
    let (_, body) = server.get(None, "/v1/openapi.json");
    let api: Value = serde_json::from_str(&body).unwrap();
    let years = "(19[0-9]{2}|2[01][0-9]{2}|2200)";
    let day = json!({"type": "string", "format": "date",
        "pattern": format!("^{years}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")});
    let days = [
        ("get", "/v1/members/{id}", "as_of", false),
        ("get", "/v1/members/{id}/years/{year}", "as_of", false),
        ("get", "/v1/members/{id}/inheritance", "as_of", false),
        ("get", "/v1/members/{id}/transfers", "as_of", false),
        ("get", "/v1/members/{id}/timeline", "as_of", false),
        ("get", "/v1/funds/{region}", "as_of", false),
        ("get", "/v1/members/{id}/history", "from", false),
        ("get", "/v1/members/{id}/history", "to", false),
        ("get", "/v1/audit/export", "from", false),
        ("get", "/v1/audit/export", "to", false),
        ("post", "/v1/reconcile/detail", "from", true),
        ("post", "/v1/reconcile/detail", "to", true),
    ];
    for (method, path, name, required) in days {
        assert_eq!(
            parameter_schema(&api, method, path, name, required),
            day,
            "{path} {name}"
        );
    }
    for path in ["/v1/members/{id}", "/v1/funds/{region}"] {
        let time = parameter_schema(&api, "get", path, "recorded_before", false);
        let forms = time["anyOf"].as_array().unwrap();
        assert_eq!(forms[0], json!({"type": "string", "format": "date-time"}));
        assert_eq!(forms[2], day);
    }
    let year = parameter_schema(&api, "get", "/v1/members/{id}/years/{year}", "year", true);
    assert_eq!(
        (&year["minimum"], &year["maximum"]),
        (&json!(1900), &json!(2200))
    );
    let statement = "/v1/statements/{institution}/{month}";
    let month = parameter_schema(&api, "get", statement, "month", true);
    assert_eq!(month["pattern"], format!("^{years}-(0[1-9]|1[0-2])$"));
    let institution = parameter_schema(&api, "post", "/v1/reconcile/detail", "institution", true);
    assert_eq!(institution["type"], "string");
    let limit = parameter_schema(&api, "get", "/v1/access-log", "limit", false);
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&json!(0), &json!(1000))
    );
    let from = parameter_schema(&api, "get", "/v1/access-log", "from", false);
    assert_eq!(from["maximum"], json!(i64::MAX));
    // The reconciliation bodies: a header line naming the columns, then the rows.
    for (path, header) in [
        ("/v1/reconcile/detail", "setl_id,mdtrt_id,psn_no,"),
        ("/v1/reconcile/totals", "fixmedins_code,stmt_begndate,"),
    ] {
        let body = &api["paths"][path]["post"]["requestBody"]["content"]["text/csv"]["schema"];
        let name = body["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        let pattern = api["components"]["schemas"][name]["pattern"]
            .as_str()
            .unwrap();
        assert!(
            pattern.starts_with(&format!("^{header}")),
            "{path}: {pattern}"
        );
    }
}

#[test]
fn the_openapi_document_gives_each_report_the_schema_of_the_command_lines_json() {
    let server = Server::start(TestLedger::new(), &[]);
    let (_, body) = server.get(None, "/v1/openapi.json");
    let api: Value = serde_json::from_str(&body).unwrap();
    for (method, path, answer) in [
        ("post", "/v1/audit/verify", "audit_verify"),
        ("get", "/v1/audit/replay", "audit_replay"),
        ("post", "/v1/reconcile/detail", "reconcile_detail"),
        ("post", "/v1/reconcile/totals", "reconcile_totals"),
        (
            "get",
            "/v1/statements/{institution}/{month}",
            "settlement_statement",
        ),
    ] {
        let ok = &api["paths"][path][method]["responses"]["200"];
        let schema = &ok["content"]["application/json"]["schema"];
        // The marker's component, which refers to the answer's.
        let marker = schema["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        let named = format!("#/components/schemas/{answer}");
        let marked = &api["components"]["schemas"][marker]["$ref"];
        assert_eq!(marked, &json!(named), "{method} {path}");
        assert!(api["components"]["schemas"][answer]["properties"].is_object());
    }
    let page = &api["paths"]["/v1/access-log"]["get"]["responses"]["200"]["content"];
    let page = page["application/json"]["schema"]["$ref"].as_str().unwrap();
    let page = &api["components"]["schemas"][page.rsplit('/').next().unwrap()];
    assert_eq!(page["required"], json!(["entries", "next"]));
    let entry = &page["properties"]["entries"]["items"]["oneOf"][1]["$ref"];
    let entry = &api["components"]["schemas"][entry.as_str().unwrap().rsplit('/').next().unwrap()];
    assert_eq!(entry["properties"]["at"]["format"], "date-time");
    assert_eq!(entry["properties"]["status"]["type"], "integer");
}

#[test]
fn the_web_page_comes_from_the_binary_and_asks_nothing_of_another_host() {
    let server = Server::start(TestLedger::sample(), &[]);
    let response = server.agent.get(server.url("/")).call().unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(header("content-type").starts_with("text/html"));
    let policy = header("content-security-policy");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(part), "{policy}");
    }
    let (_, page) = server.get(None, "/");
    assert!(
        page.contains("/ui/app.js") && page.contains("/ui/app.css"),
        "{page}"
    );
    // No address of another host in any file the page loads (the SVG namespace names one and
    // loads nothing).
    for path in ["/", "/ui/app.js", "/ui/app.css"] {
        let (status, body) = server.get(None, path);
        assert_eq!(status, 200, "{path}");
        let outside: Vec<&str> = body
            .match_indices("//")
            .filter(|(at, _)| body[..*at].ends_with("http:") || body[..*at].ends_with("https:"))
            .map(|(at, _)| &body[at..(at + 30).min(body.len())])
            .filter(|address| !address.starts_with("//www.w3.org/2000/svg"))
            .collect();
        assert!(outside.is_empty(), "{path} names {outside:?}");
    }
    // The page's names for codes are the command line's.
    let words = server.get_json("clerk", "/ui/words.json");
    for (code, zh) in gongji_recon::words::EVENT {
        assert_eq!(words["event"][code], *zh, "{code}");
    }
    // Every API path the script reads is a route of the service.
    let (_, script) = server.get(None, "/ui/app.js");
    let openapi = server.get_json("clerk", "/v1/openapi.json");
    let routes: Vec<&String> = openapi["paths"].as_object().unwrap().keys().collect();
    for (at, _) in script
        .match_indices("`/v1/")
        .chain(script.match_indices("'/v1/"))
    {
        let path: String = script[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "/-_${}.()".contains(*c))
            .collect();
        let path = path.split('?').next().unwrap().to_string();
        let shape = path
            .split('/')
            .map(|part| match part.split("${").next().unwrap_or_default() {
                "" => "*",
                head => head,
            })
            .collect::<Vec<_>>()
            .join("/");
        let known = routes.iter().any(|route| {
            let parts: Vec<&str> = route.split('/').collect();
            let asked: Vec<&str> = shape.split('/').collect();
            parts.len() == asked.len()
                && parts
                    .iter()
                    .zip(&asked)
                    .all(|(r, a)| r == a || *a == "*" || (r.starts_with('{') && !a.is_empty()))
        });
        assert!(known, "the script reads {path}, which is no route");
    }
    // Who a token is, and what its role may read.
    let me = server.get_json("clerk", "/v1/me");
    assert_eq!(me["role"], "clerk", "{me}");
    let paths: Vec<&str> = me["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/v1/members/{id}/timeline"), "{me}");
    assert!(!paths.contains(&"/v1/funds/{region}"), "{me}");
}
