//! `GET /v1/export/{table}` end to end against the real `gongji serve` with a real HTTP client:
//! the file served is, byte for byte, the file `gongji export` writes for the same ledger and
//! selection (CSV in either encoding, Parquet); only auditors get it; bad parameters are
//! refused; each export is in the access log; the server's scratch directory is left empty.

mod support;

use serde_json::Value;
use support::serve::{self, agent, RoleTokens, Serve};
use support::{text, TestLedger};

struct Server {
    serve: Serve,
    ledger: TestLedger,
    tokens: RoleTokens,
    agent: ureq::Agent,
    scratch: std::path::PathBuf,
}

impl Server {
    fn start(ledger: TestLedger) -> Server {
        let tokens = RoleTokens::add(&ledger);
        let scratch = ledger.dir.path().join("tmp");
        std::fs::create_dir(&scratch).unwrap();
        let mut command = serve::command(&ledger, "127.0.0.1:0", &[]);
        Server {
            serve: Serve::spawn_http(command.env("TMPDIR", &scratch)),
            ledger,
            tokens,
            agent: agent(),
            scratch,
        }
    }

    /// GET `path` as `role`: the status, the content type and the body's bytes.
    fn get(&self, role: &str, path: &str) -> (u16, String, Vec<u8>) {
        let mut response = self
            .agent
            .get(format!("http://{}{path}", self.serve.address))
            .header("Authorization", format!("Bearer {}", self.tokens.of(role)))
            .call()
            .expect("the server answers");
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.body_mut().as_reader(), &mut bytes).unwrap();
        (response.status().as_u16(), kind, bytes)
    }

    /// What `gongji export ARGS --out FILE` writes, read beside the running server.
    fn exported_by_cli(&self, args: &[&str]) -> Vec<u8> {
        let out = self.ledger.dir.path().join("cli-export");
        let mut all = vec!["export"];
        all.extend_from_slice(args);
        all.extend(["--out", out.to_str().unwrap()]);
        let ran = self.ledger.run(&all);
        assert!(ran.status.success(), "{all:?}: {}", text(&ran));
        let bytes = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        bytes
    }
}

#[test]
fn exports_over_http_are_the_command_lines_files_for_auditors_only() {
    let server = Server::start(TestLedger::sample());
    for (path, args, kind) in [
        (
            "/v1/export/settlements",
            vec!["settlements", "--format", "csv"],
            "text/csv; charset=utf-8",
        ),
        (
            "/v1/export/events?encoding=gb18030&from=2024-02-01",
            vec![
                "events",
                "--format",
                "csv",
                "--encoding",
                "gb18030",
                "--from",
                "2024-02-01",
            ],
            "text/csv; charset=gb18030",
        ),
        (
            "/v1/export/funds?format=parquet",
            vec!["funds", "--format", "parquet"],
            "application/vnd.apache.parquet",
        ),
        (
            "/v1/export/accounts?region=500000",
            vec!["accounts", "--format", "csv", "--region", "500000"],
            "text/csv; charset=utf-8",
        ),
        (
            "/v1/export/settlements?format=parquet&region=500000",
            vec!["settlements", "--format", "parquet", "--region", "500000"],
            "application/vnd.apache.parquet",
        ),
    ] {
        let (status, got_kind, body) = server.get("auditor", path);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        assert_eq!(got_kind, kind, "{path}");
        assert!(body.len() > 100, "{path}: {} bytes", body.len());
        assert!(
            body == server.exported_by_cli(&args),
            "{path}: not the CLI's file"
        );
    }

    for role in ["operator", "clerk", "reconciler"] {
        assert_eq!(server.get(role, "/v1/export/events").0, 403, "{role}");
    }
    for (path, status) in [
        ("/v1/export/members", 404),
        ("/v1/export/events?region=999999", 404),
        ("/v1/export/events?from=2024-03-01&to=2024-02-01", 400),
        ("/v1/export/events?format=xlsx", 400),
        ("/v1/export/accounts?to=2024-06-30", 400),
        ("/v1/export/events?from=yesterday", 400),
    ] {
        let (got, _, body) = server.get("auditor", path);
        assert_eq!(got, status, "{path}: {}", String::from_utf8_lossy(&body));
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert!(error["error"]["code"].is_string(), "{path}: {error}");
    }

    // Each export asked for is in the access log, whatever its status.
    let (status, _, log) = server.get("auditor", "/v1/access-log?limit=1000");
    assert_eq!(status, 200);
    let log: Value = serde_json::from_slice(&log).unwrap();
    let exports = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == "/v1/export/{table}")
        .count();
    assert_eq!(exports, 11, "{log}");
    let left: Vec<_> = std::fs::read_dir(&server.scratch).unwrap().collect();
    assert!(left.is_empty(), "the scratch directory holds {left:?}");
    server.serve.stop();
}
