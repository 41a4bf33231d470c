//! Fund supervision through the service, end to end against the real `gongji serve` with a
//! real HTTP client: `GET /v1/flags` answers what `gongji monitor run` prints for the same
//! log, follows the log as commands stream in, filters; `POST /v1/flags/{id}/decision`
//! records an auditor's decision that the command line then sees; only auditors get in.

mod support;

use serde_json::{json, Value};
use support::misuse::{claim, load_rules, planted, rules_version};
use support::serve::{agent, post_ndjson, RoleTokens, Serve};
use support::TestLedger;

struct Server {
    serve: Serve,
    ledger: TestLedger,
    tokens: RoleTokens,
    agent: ureq::Agent,
}

impl Server {
    fn start(ledger: TestLedger) -> Server {
        let tokens = RoleTokens::add(&ledger);
        Server {
            serve: Serve::start(&ledger, &[]),
            ledger,
            tokens,
            agent: agent(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.serve.address)
    }

    fn get(&self, role: &str, path: &str) -> (u16, Value) {
        let (status, body) =
            support::serve::get(&self.agent, &self.url(path), Some(self.tokens.of(role)));
        let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, value)
    }

    fn flags(&self, path: &str) -> Value {
        let (status, value) = self.get("auditor", path);
        assert_eq!(status, 200, "{path}: {value}");
        value
    }

    fn decide(&self, role: &str, flag: &str, body: &Value) -> (u16, Value) {
        let mut response = self
            .agent
            .post(self.url(&format!("/v1/flags/{flag}/decision")))
            .header("Authorization", format!("Bearer {}", self.tokens.of(role)))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("the server answers");
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (response.status().as_u16(), value)
    }

    /// Waits (at most 20 s) until `/metrics` shows the live monitor of `rules` at the durable
    /// position.
    fn wait_for_monitor_level(&self, region: &str, rules: &str) {
        let wanted = format!("gongji_monitor_records{{region=\"{region}\",rules=\"{rules}\"}} ");
        let started = std::time::Instant::now();
        loop {
            let (status, text) = support::serve::get(
                &self.agent,
                &self.url("/metrics"),
                Some(self.tokens.of("auditor")),
            );
            assert_eq!(status, 200, "{text}");
            let figure = |prefix: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(prefix))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            let durable = figure("gongji_durable_position ");
            let observed = figure(&wanted);
            if durable.is_some() && observed == durable {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "the monitor stayed behind: {observed:?} of {durable:?}\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn commands(&self, lines: &[String]) {
        let body = lines.join("\n") + "\n";
        let url = self.url("/v1/commands");
        let token = Some(self.tokens.of("operator"));
        let mut response = post_ndjson(&self.agent, &url, token, body.as_bytes());
        assert_eq!(response.status().as_u16(), 200);
        let answers = response.body_mut().read_to_string().unwrap();
        for line in answers.lines() {
            let answer: Value = serde_json::from_str(line).unwrap();
            assert_eq!(answer["ok"], true, "{line}");
        }
    }
}

fn ids(flags: &Value) -> Vec<&str> {
    flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect()
}

#[test]
fn flags_over_http_are_the_command_lines_follow_the_log_and_take_decisions() {
    let server = Server::start(planted());
    let cli = server.ledger.query(&["monitor", "run"]);
    let served = server.flags("/v1/flags");
    for field in ["rules_version", "region", "records", "by_rule", "flags"] {
        assert_eq!(served[field], cli[field], "{field}: {served}");
    }
    assert_eq!(served["total"], 2);
    let rules: Vec<&str> = served["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["frequency/institution_claims_per_day", "splitting"]);

    // Only auditors.
    for role in ["operator", "clerk", "reconciler"] {
        let (status, said) = server.get(role, "/v1/flags");
        assert_eq!(status, 403, "{role}: {said}");
        let (status, said) = server.decide(role, "F0123456789abcdef", &json!({}));
        assert_eq!(status, 403, "{role}: {said}");
    }

    // Filters.
    assert_eq!(server.flags("/v1/flags?member=A")["total"], 1);
    assert_eq!(
        server.flags("/v1/flags?institution=P7")["flags"][0]["member"],
        "B"
    );
    assert_eq!(server.flags("/v1/flags?rule=frequency")["total"], 1);
    assert_eq!(server.flags("/v1/flags?rule=freq")["total"], 0);
    let page = server.flags("/v1/flags?offset=1&limit=1");
    assert_eq!(
        (page["total"].clone(), ids(&page)),
        (json!(2), vec![ids(&served)[1]])
    );
    for bad in [
        "/v1/flags?decision=maybe",
        "/v1/flags?limit=0",
        "/v1/flags?limit=10001",
        "/v1/flags?offset=-1",
    ] {
        let (status, said) = server.get("auditor", bad);
        assert_eq!(
            (status, said["error"]["code"].clone()),
            (400, json!("bad_request")),
            "{bad}"
        );
    }
    let (status, said) = server.get("auditor", "/v1/flags?rules=500000-none");
    assert_eq!(status, 404, "{said}");

    // Live: commands streamed in raise a flag for C, as the command line then finds it.
    server.commands(&[
        claim("c4", "C", "2024-04-20", "H2"),
        claim("c5", "C", "2024-04-20", "H2"),
    ]);
    // The server's monitor follows the log by itself: no request needed to bring it level.
    server.wait_for_monitor_level("500000", "500000-monitor-2024-1");
    let served = server.flags("/v1/flags?member=C");
    assert_eq!(served["total"], 1, "{served}");
    let cli = server.ledger.query(&["monitor", "run"]);
    assert_eq!(server.flags("/v1/flags")["flags"], cli["flags"]);

    // A decision: recorded under the token's name, durable, seen by the command line.
    let splitting = server.flags("/v1/flags?rule=splitting")["flags"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"decision": "dismissed", "reason": "a pharmacy's loyalty scheme"});
    let (status, said) = server.decide("auditor", &splitting, &body);
    assert_eq!(status, 200, "{said}");
    assert_eq!(
        said,
        json!({"flag": splitting, "region": "500000", "decision": "dismissed"})
    );
    assert_eq!(server.flags("/v1/flags?rule=splitting")["total"], 0);
    let dismissed = server.flags("/v1/flags?decision=dismissed");
    assert_eq!(ids(&dismissed), [splitting.as_str()]);
    let decision = &dismissed["flags"][0]["decision"];
    assert_eq!(decision["by"], "auditor", "{decision}");
    assert_eq!(decision["reason"], "a pharmacy's loyalty scheme");
    assert_eq!(server.flags("/v1/flags")["dismissed"], 1);
    let cli = server.ledger.query(&["monitor", "run", "--with-dismissed"]);
    let listed = cli["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == splitting.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["decision"], *decision);

    // Refused: no such flag, a decision that is neither, a reason of two lines.
    let (status, said) = server.decide("auditor", "F0123456789abcdef", &body);
    assert_eq!(
        (status, said["error"]["code"].clone()),
        (404, json!("not_found")),
        "{said}"
    );
    let (status, said) = server.decide(
        "auditor",
        &splitting,
        &json!({"decision": "maybe", "reason": "r"}),
    );
    assert_eq!(status, 400, "{said}");
    let (status, said) = server.decide(
        "auditor",
        &splitting,
        &json!({"decision": "confirmed", "reason": "one\ntwo"}),
    );
    assert_eq!(
        (status, said["error"]["code"].clone()),
        (400, json!("invalid_value")),
        "{said}"
    );
    let (status, said) = server.decide("auditor", &splitting, &json!({"decision": "confirmed"}));
    assert_eq!(status, 400, "{said}");

    // Every listing is in the access log, a listing filtered to a member under the member.
    let (status, log) = server.get("auditor", "/v1/access-log?limit=1000");
    assert_eq!(status, 200, "{log}");
    let listings: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == "/v1/flags")
        .collect();
    assert!(listings.len() >= 10, "{log}");
    assert!(
        listings
            .iter()
            .any(|e| e["member"] == "A" && e["status"] == 200),
        "{log}"
    );
    server.serve.stop();
}

#[test]
fn a_rules_version_loaded_is_in_the_change_feed_under_its_own_name_and_the_server_runs_it() {
    let ledger = planted();
    let file = rules_version(&ledger, "500000-strict-1", 4);
    let out = ledger.run(&load_rules(&file, "chief"));
    assert!(out.status.success(), "{}", support::text(&out));
    let server = Server::start(ledger);

    let served = server.flags("/v1/flags");
    assert_eq!(served["rules_version"], "500000-strict-1");
    assert_eq!(served["by_rule"]["splitting"], 0, "{served}");
    // The shipped defaults by their name still.
    let shipped = server.flags("/v1/flags?rules=500000-monitor-2024-1");
    assert_eq!(shipped["by_rule"]["splitting"], 1, "{shipped}");

    // The change feed's event: the rules' version and the record's stream version, apart.
    let mut response = agent_with_timeout()
        .get(server.url("/v1/events?from=0"))
        .header(
            "Authorization",
            format!("Bearer {}", server.tokens.of("auditor")),
        )
        .call()
        .unwrap();
    let mut reader = response.body_mut().as_reader();
    let mut text = String::new();
    let mut buffer = [0u8; 4096];
    while !text.contains("monitor_rules_loaded") {
        let read = std::io::Read::read(&mut reader, &mut buffer).expect("the feed sends");
        assert!(read > 0, "the feed ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
    let line = text
        .lines()
        .find(|l| l.contains("monitor_rules_loaded"))
        .unwrap();
    let data = line.strip_prefix("data:").unwrap().trim();
    assert_eq!(data.matches("\"version\"").count(), 1, "{data}");
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["rules_version"], "500000-strict-1", "{event}");
    assert_eq!(event["version"], 1, "{event}");
    assert_eq!(event["by"], "chief");
    drop(response);
    server.serve.stop();
}

/// A client that gives up on a read after ten seconds (a change feed never ends).
fn agent_with_timeout() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into()
}
