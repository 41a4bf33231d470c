//! Running the service, end to end with the real `gongji serve`: its files in the data
//! directory, the second writer refused naming the server (and a stale note naming nobody),
//! the command line's reads beside a running server, HTTPS with a self-signed certificate, and
//! the latency histogram of `/metrics`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use support::serve::{self, agent, get, Serve};
use support::{add_token, examples, march_detail_args, text, TestLedger, DETAIL_HEADER};

/// `gongji serve` over `ledger` on `listen`, with `extra` arguments: plain HTTP or HTTPS, as the
/// arguments say.
fn start_on(ledger: &TestLedger, listen: &str, extra: &[&str]) -> Serve {
    Serve::spawn(&mut serve::command(ledger, listen, extra))
}

/// `gongji serve` over `ledger` on a loopback port the system picks.
fn start(ledger: &TestLedger, extra: &[&str]) -> Serve {
    start_on(ledger, "127.0.0.1:0", extra)
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_services_files_are_in_the_data_directory_and_the_logs_checks_accept_them() {
    if support::directory_only(
        "the service's files and SERVER note kept in the data directory by default",
    ) {
        return;
    }
    let ledger = TestLedger::sample();
    let data = ledger.data();
    let clerk = add_token(&ledger, "desk", "clerk", &[]);
    assert_eq!(mode_of(&data.join("tokens")), 0o600);
    let server = start(&ledger, &[]);
    let note = std::fs::read_to_string(data.join("SERVER")).unwrap();
    assert_eq!(note, format!("{} {}\n", server.child.id(), server.url));
    let (status, body) = get(
        &agent(),
        &format!("{}/v1/members/M001", server.url),
        Some(&clerk),
    );
    assert_eq!(status, 200, "{body}");
    let logged = std::fs::read_to_string(data.join("access-log")).unwrap();
    assert!(logged.contains("\"member\":\"M001\""), "{logged}");
    assert_eq!(mode_of(&data.join("access-log")), 0o600);
    server.stop();
    assert!(
        !data.join("SERVER").exists(),
        "a clean stop removes its note"
    );

    // The log opens, verifies and writes with the service's files beside its own.
    let verified = ledger.run(&["audit", "verify", "--json"]);
    assert!(verified.status.success(), "{}", text(&verified));
    let rebuilt = ledger.run(&["rebuild"]);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt));
    let line = r#"{"cmd":"enroll","member":"M900","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-05-01"}"#;
    let (code, answers) = ledger.apply(&[line.to_string()]);
    assert_eq!(code, 0, "{answers:?}");
    assert!(data.join("tokens").exists() && data.join("access-log").exists());

    // --tokens and --access-log still put them elsewhere.
    let elsewhere = ledger.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let (tokens, access) = (elsewhere.join("t"), elsewhere.join("a"));
    let auditor = add_token(
        &ledger,
        "aud",
        "auditor",
        &["--tokens", tokens.to_str().unwrap()],
    );
    let server = start(
        &ledger,
        &[
            "--tokens",
            tokens.to_str().unwrap(),
            "--access-log",
            access.to_str().unwrap(),
        ],
    );
    let (status, _) = get(
        &agent(),
        &format!("{}/v1/members/M001", server.url),
        Some(&auditor),
    );
    assert_eq!(status, 200);
    let (status, _) = get(
        &agent(),
        &format!("{}/v1/members/M001", server.url),
        Some(&clerk),
    );
    assert_eq!(
        status, 401,
        "the default file is not read when --tokens is given"
    );
    server.stop();
    assert_eq!(std::fs::read_to_string(&access).unwrap().lines().count(), 1);
    assert_eq!(
        std::fs::read_to_string(data.join("access-log"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}

#[test]
fn serve_on_a_new_directory_creates_the_ledger_then_its_access_log_in_it() {
    if support::directory_only("serve creating a data directory and its access log in it") {
        return;
    }
    let ledger = TestLedger::empty();
    let tokens = ledger.dir.path().join("tokens-elsewhere");
    add_token(
        &ledger,
        "aud",
        "auditor",
        &["--tokens", tokens.to_str().unwrap()],
    );
    assert!(
        !ledger.data().exists(),
        "token add --tokens FILE makes nothing in DIR"
    );
    let server = start(&ledger, &["--tokens", tokens.to_str().unwrap()]);
    assert!(ledger.data().join("access-log").exists());
    assert!(ledger.data().join("segments").exists());
    server.stop();
}

#[test]
fn import_restores_into_a_directory_holding_only_the_services_files_and_keeps_them() {
    if support::directory_only("import into a data directory holding the service's files") {
        return;
    }
    let source = TestLedger::sample();
    let archive = source.dir.path().join("archive.jsonl");
    let out = source.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = TestLedger::empty();
    let data = restored.data();
    let auditor = add_token(&restored, "aud", "auditor", &[]);
    let tokens = std::fs::read(data.join("tokens")).unwrap();
    let earlier = b"{\"member\":\"M001\",\"token\":\"earlier\"}\n";
    std::fs::write(data.join("access-log"), earlier).unwrap();
    let out = restored.run(&["audit", "import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(data.join("segments").is_dir());
    assert_eq!(std::fs::read(data.join("tokens")).unwrap(), tokens);
    assert_eq!(std::fs::read(data.join("access-log")).unwrap(), earlier);
    let server = start(&restored, &[]);
    let url = format!("{}/v1/members/M001", server.url);
    assert_eq!(get(&agent(), &url, Some(&auditor)).0, 200);
    server.stop();
    let logged = std::fs::read_to_string(data.join("access-log")).unwrap();
    assert_eq!(logged.lines().count(), 2, "{logged}");
}

#[test]
fn a_link_in_place_of_the_token_file_is_refused_and_its_target_left_alone() {
    let ledger = TestLedger::new();
    let target = ledger.dir.path().join("target");
    std::fs::write(&target, b"not the service's\n").unwrap();
    // On PostgreSQL the tests keep the token file where a directory ledger keeps it.
    std::fs::create_dir_all(ledger.data()).unwrap();
    std::os::unix::fs::symlink(&target, ledger.data().join("tokens")).unwrap();
    let out = ledger.run(&["token", "add", "ana", "--role", "clerk"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("link"), "{}", text(&out));
    let listed = ledger.run(&["token", "list"]);
    assert_eq!(listed.status.code(), Some(2), "{}", text(&listed));
    assert_eq!(std::fs::read(&target).unwrap(), b"not the service's\n");
    assert!(!ledger.data().join("tokens.tmp").exists());
}

/// `apply -` holding the writer's lock: started, and answered one line (so it holds it).
fn writer_holding_the_lock(ledger: &TestLedger) -> Child {
    let mut child = ledger
        .command(&["apply", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let line = r#"{"cmd":"enroll","member":"M901","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-05-01"}"#;
    let stdin = child.stdin.as_mut().unwrap();
    writeln!(stdin, "{line}").unwrap();
    stdin.flush().unwrap();
    child
}

#[test]
fn a_second_writer_is_refused_naming_the_server_and_a_stale_note_names_nobody() {
    if support::directory_only(
        "the SERVER note a server keeps in the data directory (on PostgreSQL the refusal names the log, not the server)",
    ) {
        return;
    }
    let ledger = TestLedger::sample();
    add_token(&ledger, "ops", "operator", &[]);
    let server = start(&ledger, &[]);
    let sample = examples("sample.jsonl");
    let policy = support::CHONGQING_POLICY;
    let pid = server.child.id().to_string();
    for args in [
        vec!["apply", sample.to_str().unwrap()],
        vec!["policy", "load", policy],
        vec!["rebuild"],
        vec!["audit", "replay"],
    ] {
        let out = ledger.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains(&format!("gongji serve (pid {pid}) at {}", server.url)),
            "{args:?}: {said}"
        );
        assert!(said.contains("/v1/commands"), "{said}");
    }
    server.kill();
    assert!(
        ledger.data().join("SERVER").exists(),
        "a killed server leaves its note"
    );

    // A stale note, its process gone: the lock is free, a writer runs.
    let out = ledger.run(&["rebuild"]);
    assert!(out.status.success(), "{}", text(&out));

    // A stale note naming a process that lives but does not hold the lock, while another
    // writer does: the refusal names that writer's kind, never the note's server.
    let mut living = Command::new("sleep").arg("60").spawn().unwrap();
    let note = format!("{} http://127.0.0.1:1\n", living.id());
    std::fs::write(ledger.data().join("SERVER"), &note).unwrap();
    let mut holder = writer_holding_the_lock(&ledger);
    let mut answer = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut answer)
        .unwrap();
    assert!(answer.contains("\"line\":1"), "{answer}");
    let out = ledger.run(&["rebuild"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("another command is writing"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("gongji serve"), "{}", text(&out));
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let _ = living.kill();
    let _ = living.wait();
}

#[test]
fn the_command_lines_reads_run_beside_a_running_server() {
    let ledger = TestLedger::sample();
    add_token(&ledger, "ops", "operator", &[]);
    let dir = ledger.dir.path();
    let detail = dir.join("march.csv");
    std::fs::write(
        &detail,
        format!(
            "{DETAIL_HEADER}\n\
             C001,V1,M001,150.00,0.00,150.00,0.00,0\nC002,V2,M001,685.50,300.00,385.50,0.00,0\n"
        ),
    )
    .unwrap();
    let archive = dir.join("archive.jsonl");
    let server = start(&ledger, &[]);
    let queries: Vec<Vec<&str>> = vec![
        vec!["account", "M001", "--json"],
        vec!["year", "M001", "2024", "--json"],
        vec!["history", "M001", "--json"],
        vec!["fund", "500000", "--json"],
        vec!["explain", "C002", "--json"],
        vec!["audit", "verify", "--json"],
        vec!["audit", "export", archive.to_str().unwrap()],
        march_detail_args(&detail, &["--json"]),
        vec!["settlement", "H500101", "2024-03", "--json"],
    ];
    for args in &queries {
        let out = ledger.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} beside the server: {}",
            text(&out)
        );
    }
    assert!(std::fs::metadata(&archive).unwrap().len() > 0);
    let account = ledger.query(&["account", "M001"]);
    assert!(account["balance"].is_string(), "{account}");
    server.stop();
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (openssl), and its key: PEM files.
fn self_signed(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status();
    made.is_ok_and(|s| s.success()).then_some((cert, key))
}

#[test]
fn https_serves_with_the_given_certificate_and_plain_http_stays_on_loopback() {
    let ledger = TestLedger::sample();
    let auditor = add_token(&ledger, "aud", "auditor", &[]);
    let (cert, key) = self_signed(ledger.dir.path()).expect("openssl makes a certificate");
    let server = start(
        &ledger,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let pem = std::fs::read(&cert).unwrap();
    let trusted = ureq::tls::Certificate::from_pem(&pem).unwrap().to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![trusted])))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .tls_config(tls)
        .build()
        .into();
    let (status, body) = get(&agent, &format!("{}/healthz", server.url), None);
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = get(
        &agent,
        &format!("{}/v1/funds/500000", server.url),
        Some(&auditor),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"pooled"), "{body}");
    let (status, _) = get(&agent, &format!("{}/v1/funds/500000", server.url), None);
    assert_eq!(status, 401);
    // A client that does not trust the certificate is refused by its own TLS check.
    let untrusting = ureq::Agent::new_with_defaults();
    assert!(untrusting
        .get(format!("{}/healthz", server.url))
        .call()
        .is_err());
    // Plain HTTP on the TLS port is not answered as HTTP.
    let plain = server.url.replace("https://", "http://");
    assert!(agent.get(format!("{plain}/healthz")).call().is_err());
    server.stop();

    let out = ledger.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--insecure-http"), "{}", text(&out));
    assert!(!ledger.data().join("SERVER").exists());
    let server = start_on(&ledger, "0.0.0.0:0", &["--insecure-http"]);
    let port = server.url.rsplit(':').next().unwrap().to_string();
    assert!(server.url.starts_with("http://0.0.0.0:"), "{}", server.url);
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    assert_eq!(get(&agent, &healthz, None).0, 200);
    server.stop();
    let out = ledger.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--tls-cert needs --tls-key: {}",
        text(&out)
    );
}

/// One route's histogram as `/metrics` shows it.
struct Histogram {
    route: String,
    /// Each bucket's upper bound and count, in the order shown.
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

/// Every route's histogram, in the order shown.
fn histograms(text: &str) -> Vec<Histogram> {
    let name = "gongji_http_request_duration_seconds";
    let mut routes: Vec<Histogram> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let Some(rest) = series.strip_prefix(name) else {
            continue;
        };
        let label = |key: &str| rest.split(key).nth(1).unwrap().split('"').next().unwrap();
        let route = label("route=\"");
        if routes.last().map(|r| r.route.as_str()) != Some(route) {
            routes.push(Histogram {
                route: route.to_string(),
                buckets: Vec::new(),
                count: 0,
                sum: 0.0,
            });
        }
        let entry = routes.last_mut().unwrap();
        if rest.starts_with("_bucket") {
            let le = label("le=\"");
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            entry.buckets.push((bound, value.parse().unwrap()));
        } else if rest.starts_with("_count") {
            entry.count = value.parse().unwrap();
        } else {
            assert!(rest.starts_with("_sum"), "{line}");
            entry.sum = value.parse().unwrap();
        }
    }
    routes
}

#[test]
fn metrics_show_a_latency_histogram_per_route() {
    let ledger = TestLedger::sample();
    let auditor = add_token(&ledger, "aud", "auditor", &[]);
    let server = start(&ledger, &[]);
    let agent = agent();
    for path in [
        "/healthz",
        "/healthz",
        "/v1/members/M001",
        "/v1/funds/500000",
        "/nowhere",
    ] {
        get(&agent, &format!("{}{path}", server.url), Some(&auditor));
    }
    let (status, text) = get(&agent, &format!("{}/metrics", server.url), Some(&auditor));
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE gongji_http_request_duration_seconds histogram\n"),
        "{text}"
    );
    let routes = histograms(&text);
    let names: Vec<&str> = routes.iter().map(|r| r.route.as_str()).collect();
    for route in ["/healthz", "/v1/members/{id}", "/v1/funds/{region}"] {
        assert!(names.contains(&route), "{route} in {names:?}");
    }
    for Histogram {
        route,
        buckets,
        count,
        sum,
    } in &routes
    {
        assert!(buckets.len() > 2, "{route}: {buckets:?}");
        for pair in buckets.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{route}: bounds ascend: {buckets:?}");
            assert!(
                pair[0].1 <= pair[1].1,
                "{route}: counts are cumulative: {buckets:?}"
            );
        }
        let last = buckets.last().unwrap();
        assert_eq!(last.0, f64::INFINITY, "{route}: +Inf last");
        assert_eq!(last.1, *count, "{route}: +Inf equals _count");
        assert!(*sum >= 0.0);
        let requests: u64 = text
            .lines()
            .filter(|l| l.starts_with(&format!("gongji_http_requests_total{{route=\"{route}\",")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(
            requests, *count,
            "{route}: each request in its histogram once"
        );
    }
    let healthz = routes.iter().find(|r| r.route == "/healthz").unwrap();
    assert_eq!(healthz.count, 2);
    server.stop();
}
