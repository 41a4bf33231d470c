//! The ledger in PostgreSQL through the real binary (`--data postgres://… --pg-log NAME`),
//! against the throwaway cluster `tools/pg-local up` starts (or `GONGJI_TEST_PG`): every main
//! command answers as it does on a directory for the same input; queries run beside a writer,
//! a second writer is refused or waits; `gongji serve` takes a command stream and answers
//! reads; a password never appears in what is printed; what only a directory has is refused
//! naming the option; a log that is not there is refused, creating nothing; reads while the
//! database is cut off are refused within the read timeout (503, a read that meets the lost
//! connection included), and answered again after.

#[path = "../crates/log-pg/tests/support/proxy.rs"]
mod proxy;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::pg::{fresh_log, pg_uri};
use support::serve::{agent, command as serve_command, get, post_ndjson, Serve};
use support::{
    add_token, examples, gongji_path, march_detail_args, parse_lines, text, TestLedger,
    DETAIL_HEADER,
};

/// A detail file of H500101 for March 2024 holding one of the sample's settlements, with an
/// amount that differs.
fn march_detail() -> String {
    format!("{DETAIL_HEADER}\nC001,V1,M001,150.00,0.00,140.00,10.00,0\n")
}

/// The sample applied on a ledger in a directory and on one in PostgreSQL.
fn sample_pair() -> (TestLedger, TestLedger) {
    let sample = examples("sample.jsonl");
    let pair = (
        TestLedger::directory().with_policy(),
        TestLedger::postgres().with_policy(),
    );
    for ledger in [&pair.0, &pair.1] {
        let out = ledger.run(&["apply", sample.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    }
    pair
}

/// What differs between two ledgers given the same lines at different times: when each line
/// was recorded, and so the hashes that cover it, and how long a command took.
fn without_times(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| {
                !(key.contains("recorded_at") || key.contains("hash") || key == "elapsed_ms")
            });
            map.values_mut().for_each(without_times);
        }
        Value::Array(items) => items.iter_mut().for_each(without_times),
        _ => {}
    }
}

/// `args` run with `--json` on `ledger`: exit code and every JSON line printed, times removed.
fn answered(ledger: &TestLedger, args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ledger.run(&all);
    let mut lines = parse_lines(&out.stdout);
    lines.iter_mut().for_each(without_times);
    (out.status.code(), lines)
}

#[test]
fn the_main_commands_answer_on_postgres_as_on_a_directory() {
    let (dir, pg) = sample_pair();
    let root = pg.dir.path();
    let detail = root.join("march.csv");
    std::fs::write(&detail, march_detail()).unwrap();
    let detail_args = march_detail_args(&detail, &[]);
    let asked: Vec<Vec<&str>> = vec![
        vec!["account", "M001"],
        vec!["account", "M001", "--as-of", "2024-02-15"],
        vec!["year", "M001", "2024"],
        vec!["history", "M001"],
        vec!["inheritance", "M004"],
        vec!["transfers", "M005"],
        vec!["explain", "C002"],
        vec!["fund", "500000"],
        vec!["policy", "list"],
        vec!["settlement", "H500101", "2024-03"],
        detail_args,
        vec!["audit", "verify"],
        vec!["audit", "replay"],
        vec!["rebuild"],
        vec!["account", "M001"],
        vec!["audit", "verify"],
    ];
    for args in &asked {
        let on_dir = answered(&dir, args);
        assert!(!on_dir.1.is_empty(), "{args:?} printed nothing");
        assert_eq!(answered(&pg, args), on_dir, "{args:?}");
    }
    // The archive holds the same events, and checks to the same digest.
    let digests: Vec<Value> = [&dir, &pg]
        .iter()
        .map(|ledger| {
            let file = ledger.dir.path().join("export.jsonl");
            let out = ledger.run(&["audit", "export", file.to_str().unwrap(), "--json"]);
            assert!(out.status.success(), "{}", text(&out));
            let check = ledger.run(&["audit", "check", file.to_str().unwrap(), "--json"]);
            assert!(check.status.success(), "{}", text(&check));
            let report: Value = serde_json::from_slice(&check.stdout).unwrap();
            assert_eq!(report["manifest"]["records"], 28, "{report}");
            report["digest"].clone()
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    assert!(digests[0].is_string(), "{}", digests[0]);
}

/// `apply -` on `ledger`, its standard input held open by the caller (the writer's lock held).
fn apply_held_open(ledger: &TestLedger) -> std::process::Child {
    ledger
        .command(&["apply", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gongji starts")
}

#[test]
fn queries_run_beside_a_writer_and_a_second_writer_is_refused_or_waits() {
    let ledger = TestLedger::postgres().with_policy();
    let mut writer = apply_held_open(&ledger);
    let mut stdin = writer.stdin.take().expect("stdin piped");
    let enroll = r#"{"cmd":"enroll","member":"M1","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01"}"#;
    writeln!(stdin, "{enroll}").unwrap();
    stdin.flush().unwrap();
    // The line is answered once durable: a query beside the writer then sees it.
    let started = Instant::now();
    loop {
        let out = ledger.run(&["account", "M1", "--json"]);
        if out.status.success() {
            break;
        }
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = ledger.run(&["policy", "load", support::CHONGQING_POLICY, "--json"]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    let error: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(error["error"]["code"], "locked", "{error}");
    let said = error["error"]["message"].as_str().unwrap();
    let log = &ledger.pg.as_ref().unwrap().log;
    assert!(said.contains(log) && said.contains("--wait"), "{said}");
    // It names the session holding the lock: the writer's process and where it connects from.
    let holder = format!("held by \"gongji-log {log} writer pid {}\"", writer.id());
    assert!(said.contains(&holder), "{said}");
    assert!(
        said.contains(", connected from ") && said.contains(" since "),
        "{said}"
    );
    // With --wait, it starts as soon as the first has finished.
    let mut waiting = ledger
        .command(&["--wait", "rebuild", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(waiting.try_wait().unwrap().is_none(), "it waits");
    drop(stdin);
    let first = writer.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    let waited = waiting.wait_with_output().unwrap();
    assert!(waited.status.success(), "{}", text(&waited));
    assert!(
        String::from_utf8_lossy(&waited.stderr).contains("waiting"),
        "{}",
        text(&waited)
    );
    assert_eq!(ledger.query(&["account", "M1"])["member"], "M1");
}

#[test]
fn serve_on_postgres_takes_a_command_stream_and_answers_reads() {
    let ledger = TestLedger::postgres().with_policy();
    let operator = add_token(&ledger, "op", "operator", &[]);
    let clerk = add_token(&ledger, "desk", "clerk", &[]);
    let serve = Serve::start(&ledger, &[]);
    let agent = agent();
    let sample = std::fs::read_to_string(examples("sample.jsonl")).unwrap();
    let url = format!("{}/v1/commands", serve.url);
    let mut response = post_ndjson(&agent, &url, Some(&operator), sample.as_bytes());
    assert_eq!(response.status().as_u16(), 200);
    let answers = response.body_mut().read_to_string().unwrap();
    let by_cli = TestLedger::directory().with_policy();
    let printed = by_cli.run(&[
        "apply",
        examples("sample.jsonl").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(answers, String::from_utf8(printed.stdout).unwrap());
    // Read-your-writes from the read view, and the same JSON the command line prints.
    let (status, account) = get(
        &agent,
        &format!("{}/v1/members/M001", serve.url),
        Some(&clerk),
    );
    assert_eq!(status, 200, "{account}");
    let printed = ledger.run(&["account", "M001", "--json"]);
    assert_eq!(
        account,
        String::from_utf8(printed.stdout).unwrap().trim_end()
    );
    // A second server on the same log is refused at its start: one writer.
    let second = ledger
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("another command is writing"), "{said}");
    serve.stop();
    // Everything answered is in the log, and the log verifies.
    let verified = ledger.query(&["audit", "verify"]);
    assert_eq!(verified["failure"], Value::Null, "{verified}");
    assert_eq!(ledger.query(&["account", "M001"])["balance"], "1282.00");
}

/// `gongji ARGS` with nothing else: its output.
fn gongji(args: &[&str]) -> std::process::Output {
    Command::new(gongji_path()).args(args).output().unwrap()
}

/// The test database's URI with a password in it (trust authentication ignores it).
fn uri_with_password(password: &str) -> String {
    let uri = pg_uri();
    let rest = uri.split_once("://").expect("a URI").1;
    let (user, hosts) = rest.split_once('@').unwrap_or(("postgres", rest));
    format!("postgresql://{user}:{password}@{hosts}")
}

#[test]
fn a_password_in_the_uri_is_never_printed() {
    let secret = "s3cret-Pa55";
    let uri = uri_with_password(secret);
    let unreachable = format!("postgres://gongji:{secret}@127.0.0.1:1/gongji?connect_timeout=2");
    let log = fresh_log("masked");
    let runs = [
        gongji(&["--data", &uri, "--pg-log", &log, "account", "M1", "--json"]),
        gongji(&["--data", &uri, "--pg-log", &log, "audit", "verify"]),
        gongji(&["--data", &unreachable, "account", "M1", "--json"]),
        gongji(&[
            "--data",
            &unreachable,
            "--pg-log",
            "x",
            "apply",
            "-",
            "--json",
        ]),
        gongji(&["--data", &uri, "--projections", "sled", "fund", "500000"]),
        gongji(&["--data", &uri, "token", "list"]),
        gongji(&["--data", &uri, "serve", "--listen", "127.0.0.1:0"]),
    ];
    for out in &runs {
        assert_eq!(out.status.code(), Some(2), "{}", text(out));
        let all = text(out);
        assert!(!all.contains(secret), "{all}");
        assert!(
            all.contains(":***@"),
            "the message names the database: {all}"
        );
    }
    // PGPASSWORD, taken when the URI has none, is not printed either.
    let without = "postgres://gongji@127.0.0.1:1/gongji?connect_timeout=2";
    let out = Command::new(gongji_path())
        .env("PGPASSWORD", secret)
        .args(["--data", without, "account", "M1", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(!all.contains(secret) && all.contains(without), "{all}");
}

#[test]
fn what_only_a_directory_has_is_refused_naming_the_option() {
    let ledger = TestLedger::postgres().with_policy();
    let dir = ledger.dir.path();
    let tokens = dir.join("tokens");
    let refused: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--projections", "sled", "fund", "500000"],
            "--projections sled",
        ),
        (vec!["audit", "clear-quarantine"], "audit clear-quarantine"),
        (vec!["token", "list"], "--tokens"),
    ];
    for (args, named) in refused {
        let out = Command::new(gongji_path())
            .args(ledger.data_args())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(named), "{args:?}: {said}");
    }
    // serve needs both files named, and says which.
    let out = Command::new(gongji_path())
        .args(ledger.data_args())
        .args(["serve", "--listen", "127.0.0.1:0", "--tokens"])
        .arg(&tokens)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--access-log"),
        "{}",
        text(&out)
    );
    // --pg-log means nothing with a directory.
    let out = gongji(&[
        "--data",
        dir.to_str().unwrap(),
        "--pg-log",
        "x",
        "fund",
        "500000",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--pg-log"),
        "{}",
        text(&out)
    );
    assert!(
        std::fs::read_dir(dir).unwrap().next().is_none(),
        "nothing written in {dir:?}"
    );
}

#[test]
fn a_log_that_is_not_there_is_refused_creating_nothing_and_apply_creates_it() {
    let uri = pg_uri();
    let log = fresh_log("absent");
    for args in [
        vec!["account", "M1", "--json"],
        vec!["audit", "verify", "--json"],
        vec!["rebuild", "--json"],
        vec!["audit", "replay", "--json"],
    ] {
        let mut all = vec!["--data", &uri, "--pg-log", &log];
        all.extend(&args);
        let out = gongji(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let error: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(error["error"]["code"], "no_ledger", "{error}");
        let said = error["error"]["message"].as_str().unwrap();
        assert!(said.contains(&log) && said.contains("--pg-log"), "{said}");
        assert!(
            said.contains("apply") && said.contains("policy load") && said.contains("audit import"),
            "names the commands that create one: {said}"
        );
    }
    let mut client = support::pg::client();
    let tables = client
        .query_one("SELECT to_regclass('gongji_log_heads') IS NOT NULL", &[])
        .unwrap();
    if tables.get::<_, bool>(0) {
        let heads = client
            .query_one(
                "SELECT count(*) FROM gongji_log_heads WHERE log = $1",
                &[&log],
            )
            .unwrap();
        assert_eq!(heads.get::<_, i64>(0), 0, "nothing created for {log}");
    }
    let out = gongji(&[
        "--data",
        &uri,
        "--pg-log",
        &log,
        "policy",
        "load",
        support::CHONGQING_POLICY,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = gongji(&["--data", &uri, "--pg-log", &log, "policy", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(parse_lines(&out.stdout).len(), 1);
}

#[test]
fn serve_on_postgres_that_cannot_start_says_why_and_closes_the_ledger_cleanly() {
    // Plain HTTP beyond loopback is refused after the ledger and its read view are open: they
    // are closed on the way out (a PostgreSQL connection dropped on the runtime's threads
    // would abort the process instead).
    let ledger = TestLedger::postgres().with_policy();
    add_token(&ledger, "op", "operator", &[]);
    let out = ledger
        .command(&["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to serve plain HTTP"),
        "{}",
        text(&out)
    );
    // The log's lock went with the writer's session: a writer opens it at once.
    let out = ledger.run(&["rebuild", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_second_server_with_wait_takes_over_when_the_first_dies() {
    use std::io::{BufRead, BufReader};
    let ledger = TestLedger::postgres().with_policy();
    let operator = add_token(&ledger, "op", "operator", &[]);
    let first = Serve::start(&ledger, &[]);
    let agent = agent();
    let sample = std::fs::read_to_string(examples("sample.jsonl")).unwrap();
    let url = format!("{}/v1/commands", first.url);
    let mut answered = post_ndjson(&agent, &url, Some(&operator), sample.as_bytes());
    assert_eq!(answered.status().as_u16(), 200);
    let answered = answered.body_mut().read_to_string().unwrap();
    // The standby waits for the log's lock before it listens.
    let mut standby = ledger
        .command(&["serve", "--listen", "127.0.0.1:0", "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = standby.stdout.take().unwrap();
    let (said, first_line) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = said.send(line);
    });
    assert!(
        first_line.recv_timeout(Duration::from_secs(2)).is_err(),
        "the standby listens only once it holds the log"
    );
    first.kill();
    let line = first_line
        .recv_timeout(Duration::from_secs(60))
        .expect("the standby takes over");
    let address = line
        .trim()
        .strip_prefix("gongji serve: listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    // Everything the first server answered is there, and the standby takes commands.
    let (status, account) = get(
        &agent,
        &format!("{address}/v1/members/M001"),
        Some(&operator),
    );
    assert_eq!(status, 200, "{account}");
    assert_eq!(
        serde_json::from_str::<Value>(&account).unwrap()["balance"],
        "1282.00"
    );
    let url = format!("{address}/v1/commands");
    let mut again = post_ndjson(&agent, &url, Some(&operator), sample.as_bytes());
    assert_eq!(again.status().as_u16(), 200);
    let again = again.body_mut().read_to_string().unwrap();
    // Answered as `apply` answers the sample a second time: nothing applied twice.
    let by_cli = TestLedger::directory().with_policy();
    let file = examples("sample.jsonl");
    let first_apply = by_cli.run(&["apply", file.to_str().unwrap(), "--json"]);
    assert_eq!(answered, String::from_utf8(first_apply.stdout).unwrap());
    let second_apply = by_cli.run(&["apply", file.to_str().unwrap(), "--json"]);
    assert_eq!(again, String::from_utf8(second_apply.stdout).unwrap());
    standby.kill().unwrap();
    let out = standby.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("waiting for it to finish (--wait)"),
        "{}",
        text(&out)
    );
}

/// How long a read may take at most in the test of a cut-off database.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// What `stderr` says, collected as it comes (and passed on to the test's standard error).
fn said_by(stderr: std::process::ChildStderr) -> Arc<Mutex<String>> {
    let said = Arc::new(Mutex::new(String::new()));
    let collected = said.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let mut said = collected.lock().unwrap();
            said.push_str(&line);
            said.push('\n');
        }
    });
    said
}

/// GETs `url` with `token` from `count` threads at once: each answer's status, body and time.
fn gets_at_once(url: &str, token: &str, count: usize) -> Vec<(u16, String, Duration)> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..count)
            .map(|_| {
                scope.spawn(|| {
                    let asked = Instant::now();
                    let (status, body) = get(&agent(), url, Some(token));
                    (status, body, asked.elapsed())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// A ledger with a policy in the test database, reached through a proxy that can be cut, an
/// operator's and a clerk's tokens, and a `gongji serve` of it on a loopback port whose reads
/// time out after [`READ_TIMEOUT`] (its standard error collected in `said`), once it has taken
/// the sample commands and answered a read of M001.
struct ServedBehindAProxy {
    proxy: proxy::Proxy,
    serve: Serve,
    said: Arc<Mutex<String>>,
    agent: ureq::Agent,
    operator: String,
    clerk: String,
    reconciler: String,
    _ledger: TestLedger,
}

impl ServedBehindAProxy {
    fn start(name: &str) -> ServedBehindAProxy {
        let proxy = proxy::Proxy::start(&pg_uri());
        let ledger = TestLedger {
            dir: tempfile::tempdir().unwrap(),
            pg: Some(support::pg::PgLedger {
                uri: proxy.url.clone(),
                log: fresh_log(name),
            }),
        }
        .with_policy();
        let operator = add_token(&ledger, "op", "operator", &[]);
        let clerk = add_token(&ledger, "desk", "clerk", &[]);
        let reconciler = add_token(&ledger, "recon", "reconciler", &[]);
        let timeout = READ_TIMEOUT.as_secs_f64().to_string();
        let mut command = serve_command(&ledger, "127.0.0.1:0", &["--read-timeout-secs", &timeout]);
        let mut serve = Serve::spawn_http(command.stderr(Stdio::piped()));
        let said = said_by(serve.child.stderr.take().unwrap());
        let served = ServedBehindAProxy {
            proxy,
            serve,
            said,
            agent: agent(),
            operator,
            clerk,
            reconciler,
            _ledger: ledger,
        };
        let sample = std::fs::read_to_string(examples("sample.jsonl")).unwrap();
        served.post(&sample);
        let (status, account) = served.member("M001");
        assert_eq!(status, 200, "{account}");
        served
    }

    /// POSTs `lines` to /v1/commands as the operator: the answers.
    fn post(&self, lines: &str) -> String {
        let commands = format!("{}/v1/commands", self.serve.url);
        let mut response = post_ndjson(
            &self.agent,
            &commands,
            Some(&self.operator),
            lines.as_bytes(),
        );
        assert_eq!(response.status().as_u16(), 200);
        response.body_mut().read_to_string().unwrap()
    }

    fn member_url(&self, id: &str) -> String {
        format!("{}/v1/members/{id}", self.serve.url)
    }

    /// GET /v1/members/{id} as the clerk: the status and the body.
    fn member(&self, id: &str) -> (u16, String) {
        get(&self.agent, &self.member_url(id), Some(&self.clerk))
    }

    /// POST /v1/reconcile/detail of one settlement of March 2024 as the reconciler: the status
    /// and the body.
    fn reconcile(&self) -> (u16, String) {
        let url = format!(
            "{}/v1/reconcile/detail?institution=H500101&from=2024-03-01&to=2024-03-31",
            self.serve.url
        );
        let mut response = self
            .agent
            .post(&url)
            .header("Authorization", format!("Bearer {}", self.reconciler))
            .header("Content-Type", "text/csv")
            .send(march_detail().as_bytes())
            .expect("the server answers");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    /// The database back: member `id` answered within 20 s (its body).
    fn restore_and_read(&mut self, id: &str) -> String {
        self.proxy.restore();
        let restored = Instant::now();
        loop {
            let (status, body) = self.member(id);
            if status == 200 {
                return body;
            }
            assert!(
                restored.elapsed() < Duration::from_secs(20),
                "no answer 20 s after the database came back: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn serve_refuses_reads_within_the_read_timeout_while_the_database_is_cut_off() {
    let mut served = ServedBehindAProxy::start("cut");
    // No query for a while: the read view rests, so the next line's end is taken in only when
    // a read asks for it, with the database cut off.
    std::thread::sleep(Duration::from_secs(6));
    let enrol = r#"{"cmd":"enroll","member":"M900","region":"500000","born":"1990-01-01","status":"active","scheme":"employer","date":"2024-06-01"}"#;
    let answered = served.post(enrol);
    assert!(!answered.contains("error"), "{answered}");

    served.proxy.cut();
    let m900 = served.member_url("M900");
    for round in 0..3 {
        for (status, body, took) in gets_at_once(&m900, &served.clerk, 12) {
            assert_eq!(status, 503, "round {round}: {body}");
            assert!(body.contains("\"timeout\""), "round {round}: {body}");
            assert!(
                took < READ_TIMEOUT + Duration::from_millis(1500),
                "round {round}: a read took {took:?} with the database cut off"
            );
        }
    }

    // The view gave the lost connection up (and is being opened again) rather than waiting
    // for the database under its lock.
    let stderr = served.said.lock().unwrap().clone();
    assert!(stderr.contains("could not follow the ledger"), "{stderr}");

    let body = served.restore_and_read("M900");
    let account: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(account["member"], "M900", "{body}");
    served.serve.stop();
}

#[test]
fn a_read_that_meets_the_lost_database_is_refused_as_unavailable_not_failed() {
    let mut served = ServedBehindAProxy::start("lost");
    // The view is at the end; members not read before are read from the database, through a
    // connection that is gone: refused as worth asking again (503), never a failure (500).
    // The first reads meet the lost connections themselves (nothing else reads the database
    // while nothing is written): a reconciliation reading the log, then a member's read of the
    // projections; the next ones meet them too, or wait for a view being opened again.
    served.proxy.cut();
    let (status, body) = served.reconcile();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"unavailable\""), "{body}");
    let (status, body) = served.member("M002");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"unavailable\""), "{body}");
    for id in ["M003", "M004", "M005"] {
        let (status, body) = served.member(id);
        assert_eq!(status, 503, "{id}: {body}");
        assert!(
            body.contains("\"unavailable\"") || body.contains("\"timeout\""),
            "{id}: {body}"
        );
    }
    served.restore_and_read("M002");
    let (status, body) = served.reconcile();
    assert_eq!(status, 200, "{body}");
    served.serve.stop();
}
