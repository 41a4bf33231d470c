//! A nation of regions (`gongji --regions MAP`): three regions on two stores (the shared one a
//! PostgreSQL database with `GONGJI_TEST_STORE=pg`), each region's
//! ledger its own. A routed `apply` settles as one ledger holding every region does; transfers
//! between the regions' ledgers land exactly once through SIGKILLs of `apply` (which holds
//! both stores) and of the relay; the map verifies region by region and as a whole.
//!
//! CI runs the short form. The long one (1,000 transfers is the default; more kills):
//! `GONGJI_REGIONS_TRANSFERS=5000 GONGJI_REGIONS_KILL_MS=200 cargo test -p gongji-cli --test regions -- --nocapture`

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::gen::Rng;
use support::serve::{agent, get, post_ndjson, Serve};
use support::{gongji_path, text, TestLedger};

const CHONGQING: &str = include_str!("../policies/500000-2024-01-01.json");
const REGIONS: [&str; 3] = ["500000", "340100", "510100"];

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A region map over two stores: 500000 alone on the directory `s1`, 340100 and 510100
/// sharing `s2`: a directory, or with `GONGJI_TEST_STORE=pg` a fresh database of the test
/// PostgreSQL (each region's log named by its code there).
///
/// With `GONGJI_REGIONS_PG_A` and `GONGJI_REGIONS_PG_B` (two PostgreSQL servers' URIs, as
/// `tools/regions-pg-kills` starts them), both stores are PostgreSQL: 500000 in a fresh
/// database on A, 340100 and 510100 in one on B.
struct Nation {
    dir: tempfile::TempDir,
    /// The shared store's URI, when it is in PostgreSQL.
    pg: Option<String>,
    /// 500000's store's URI, when it is in PostgreSQL too.
    pg_alone: Option<String>,
}

/// A fresh database on the server of `uri`; its URI.
fn fresh_database(uri: &str) -> String {
    let database = support::pg::fresh_log("regions").replace('-', "_");
    let mut client = postgres::Client::connect(uri, postgres::NoTls).expect("the server answers");
    client
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .expect("a fresh database");
    // A formation's multi-host URI keeps its parameters (target_session_attrs=read-write).
    let (base, parameters) = uri
        .split_once('?')
        .map_or((uri, None), |(b, p)| (b, Some(p)));
    let server = &base[..base.rfind('/').expect("a URI with a database")];
    match parameters {
        Some(parameters) => format!("{server}/{database}?{parameters}"),
        None => format!("{server}/{database}"),
    }
}

impl Nation {
    fn new() -> Nation {
        let dir = tempfile::tempdir().expect("temp dir");
        let two = std::env::var("GONGJI_REGIONS_PG_A")
            .ok()
            .zip(std::env::var("GONGJI_REGIONS_PG_B").ok());
        let (pg_alone, pg) = match two {
            Some((a, b)) => (Some(fresh_database(&a)), Some(fresh_database(&b))),
            None => (
                None,
                support::pg::store_is_pg().then(|| fresh_database(&support::pg::pg_uri())),
            ),
        };
        let shared = pg.clone().unwrap_or_else(|| "s2".into());
        let alone = pg_alone.clone().unwrap_or_else(|| "s1".into());
        let map = json!({"500000": alone, "340100": shared, "510100": shared});
        std::fs::write(dir.path().join("map.json"), map.to_string()).expect("map written");
        Nation { dir, pg, pg_alone }
    }

    fn map(&self) -> PathBuf {
        self.dir.path().join("map.json")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(gongji_path());
        command
            .arg("--regions")
            .arg(self.map())
            .args(args)
            .env("GONGJI_LANG", "en");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("gongji runs")
    }

    fn input(&self, name: &str, lines: &[String]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("input written");
        path
    }

    /// `apply --json`: every line's outcome, in input order.
    fn apply(&self, lines: &[String]) -> Vec<Value> {
        let input = self.input("input.jsonl", lines);
        let out = self.run(&["apply", input.to_str().unwrap(), "--json"]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
        support::parse_lines(&out.stdout)
    }

    fn query(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("one JSON answer")
    }

    /// `audit verify --json` over the map.
    fn verify(&self) -> Value {
        let out = self.run(&["audit", "verify", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("a report: {}", text(&out)));
        assert_eq!(
            out.status.code(),
            Some(if report["passed"] == true { 0 } else { 1 }),
            "{}",
            text(&out)
        );
        report
    }

    /// Every region's archive exported and checked alone, then `audit check-transfers` over
    /// them all, which must pass: the archives (`REGION=FILE`) and its report.
    fn archives_checked(&self) -> (Vec<String>, Value) {
        let mut all = Vec::new();
        for region in REGIONS {
            let archive = self.dir.path().join(format!("{region}.archive"));
            let out = Command::new(gongji_path())
                .args(self.region_data(region))
                .args(["audit", "export"])
                .arg(&archive)
                .arg("--json")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            let out = Command::new(gongji_path())
                .args(["audit", "check"])
                .arg(&archive)
                .arg("--json")
                .output()
                .unwrap();
            assert!(out.status.success(), "{region}: {}", text(&out));
            all.push(format!("{region}={}", archive.display()));
        }
        let out = Command::new(gongji_path())
            .args(["audit", "check-transfers"])
            .args(&all)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        (all, serde_json::from_slice(&out.stdout).unwrap())
    }

    /// `--data` (and `--pg-log`) naming one region's own ledger.
    fn region_data(&self, region: &str) -> Vec<String> {
        let pg = match region {
            "500000" => &self.pg_alone,
            _ => &self.pg,
        };
        match (pg, region) {
            (Some(uri), _) => {
                vec![
                    "--data".into(),
                    uri.clone(),
                    "--pg-log".into(),
                    region.into(),
                ]
            }
            _ => {
                let store = if region == "500000" { "s1" } else { "s2" };
                let dir = self.dir.path().join(store).join(region);
                vec!["--data".into(), dir.display().to_string()]
            }
        }
    }
}

fn policy_lines() -> Vec<String> {
    REGIONS
        .iter()
        .map(|region| {
            let policy: Value =
                serde_json::from_str(&CHONGQING.replace("500000", region)).expect("policy JSON");
            json!({"cmd": "load_policy", "policy": policy}).to_string()
        })
        .collect()
}

fn enroll(member: &str, region: &str, opening: &str) -> String {
    json!({"cmd": "enroll", "member": member, "region": region, "born": "1980-05-20",
           "status": "active", "scheme": "employer", "date": "2024-01-01", "opening_balance": opening})
    .to_string()
}

fn retiree(member: &str, region: &str) -> String {
    json!({"cmd": "enroll", "member": member, "region": region, "born": "1958-05-20",
           "status": "retired", "scheme": "employer", "date": "2024-01-01"})
    .to_string()
}

fn transfer(member: &str, date: &str, to: &str) -> String {
    json!({"cmd": "transfer", "member": member, "date": date, "to_region": to}).to_string()
}

fn claim(id: &str, member: &str, date: &str, eligible: &str) -> String {
    json!({"cmd": "claim", "id": id, "member": member, "date": date, "level": 1,
           "channel": "institution", "eligible": eligible, "use_account": true})
    .to_string()
}

fn contribute(member: &str, month: &str) -> String {
    json!({"cmd": "contribute", "member": member, "month": month, "base": "9000.00"}).to_string()
}

/// `per_region` members enrolled in each region, named `PREFIX{r}-{m}`, with random opening
/// balances: the lines (policies first) and the members.
fn spread_members(prefix: &str, per_region: usize, rng: &mut Rng) -> (Vec<String>, Vec<String>) {
    let mut setup = policy_lines();
    let mut members = Vec::new();
    for (r, region) in REGIONS.iter().enumerate() {
        for m in 0..per_region {
            let member = format!("{prefix}{r}-{m}");
            setup.push(enroll(&member, region, &rng.amount(3000)));
            members.push(member);
        }
    }
    (setup, members)
}

/// `count` transfers of random `members` to random regions, all dated the `day`-th day of a
/// run of 28-day months from 2025.
fn transfers_on(day: u64, count: usize, members: &[String], rng: &mut Rng) -> Vec<String> {
    let date = format!(
        "{}-{:02}-{:02}",
        2025 + day / 336,
        1 + (day / 28) % 12,
        1 + day % 28
    );
    (0..count)
        .map(|_| {
            let member = &members[rng.below(members.len() as u64) as usize];
            transfer(member, &date, REGIONS[rng.below(3) as usize])
        })
        .collect()
}

/// A year over three regions: members in each, contributions, claims, monthly allocations,
/// members transferred (one twice: A -> B -> C), claims where they arrive.
fn three_region_year() -> (Vec<String>, Vec<String>) {
    let mut lines = policy_lines();
    let mut members = Vec::new();
    for (r, region) in REGIONS.iter().enumerate() {
        for m in 0..4 {
            let member = format!("M{r}{m}");
            lines.push(enroll(&member, region, &format!("{}.00", 500 + 100 * m)));
            members.push(member);
        }
        let member = format!("R{r}");
        lines.push(retiree(&member, region));
        members.push(member);
    }
    for member in &members {
        lines.push(contribute(member, "2024-01"));
    }
    for region in REGIONS {
        lines.push(json!({"cmd": "allocate", "region": region, "month": "2024-01"}).to_string());
    }
    lines.push(claim("C1", "M00", "2024-02-10", "400.00"));
    lines.push(transfer("M00", "2024-03-01", "340100"));
    lines.push(claim("C2", "M00", "2024-03-05", "300.00"));
    lines.push(transfer("M00", "2024-04-01", "510100"));
    lines.push(claim("C3", "M00", "2024-04-05", "250.00"));
    lines.push(transfer("M10", "2024-03-15", "500000"));
    lines.push(claim("C4", "M10", "2024-03-20", "800.00"));
    lines.push(transfer("M21", "2024-02-01", "340100"));
    lines.push(transfer("M21", "2024-02-01", "510100"));
    lines.push(claim("C5", "M21", "2024-05-01", "120.00"));
    for member in &members {
        lines.push(contribute(member, "2024-05"));
    }
    for region in REGIONS {
        lines.push(json!({"cmd": "allocate", "region": region, "month": "2024-05"}).to_string());
    }
    lines.push(claim("C6", "M01", "2024-06-01", "900.00"));
    // Late-dated: M00 is in 510100 now; these are dated when M00 was in 500000 (February)
    // and in 340100 (March): each settles against that region's policy, counters and funds.
    lines.push(claim("C8", "M00", "2024-02-20", "700.00"));
    lines.push(claim("C9", "M00", "2024-03-10", "650.00"));
    lines.push(contribute("M00", "2024-02"));
    lines.push(contribute("M00", "2024-03"));
    lines.push(
        json!({"cmd": "reverse", "id": "C9", "date": "2024-06-10", "reason": "late duplicate"})
            .to_string(),
    );
    lines.push(claim("C10", "M00", "2024-03-11", "640.00"));
    lines.push(
        json!({"cmd": "reverse", "id": "C4", "date": "2024-06-02", "reason": "billed twice"})
            .to_string(),
    );
    (lines, members)
}

#[test]
fn routed_apply_settles_as_one_ledger_holding_every_region_does() {
    let (lines, members) = three_region_year();
    let nation = Nation::new();
    let routed = nation.apply(&lines);
    let single = TestLedger::directory();
    let (_, one) = single.apply(&lines);
    assert_eq!(routed.len(), lines.len());
    for (line, (a, b)) in routed.iter().zip(&one).enumerate() {
        let (a_ok, b_ok) = (a.get("error").is_none(), b.get("error").is_none());
        assert_eq!(
            a_ok,
            b_ok,
            "line {}: {a} against one ledger's {b}",
            line + 1
        );
    }
    for member in &members {
        let mut there = nation.query(&["account", member, "--json"]);
        let mut here = single.query(&["account", member]);
        for answer in [&mut there, &mut here] {
            answer.as_object_mut().unwrap().remove("time_zone");
        }
        assert_eq!(there, here, "member {member}");
        assert_eq!(
            nation.query(&["year", member, "2024", "--json"]),
            single.query(&["year", member, "2024"]),
            "member {member}'s year"
        );
    }
    // An account as of a day before it moved on comes from the region that held it then
    // (from what that region's ledger recorded: see docs/regions.md).
    let then = nation.query(&["account", "M00", "--as-of", "2024-03-10", "--json"]);
    assert_eq!(then["region"], "340100");
    assert_eq!(then["region_since"], "2024-03-01");
    // Each region's funds, asked of its own ledger, are the one ledger's funds of the region.
    for region in REGIONS {
        let out = Command::new(gongji_path())
            .args(nation.region_data(region))
            .args(["fund", region, "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let there: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(there, single.query(&["fund", region]), "{region}");
    }
    let report = nation.verify();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["transfers"]["sent"], 5);
    assert_eq!(report["transfers"]["received"], 5);
    // C8, C9, C10's fund payments, C9's refund, two pooled contributions: owed and landed.
    assert_eq!(report["transfers"]["owed"], 6, "{report}");
    assert_eq!(report["transfers"]["owed_pending"], 0);
    assert_eq!(report["held"], report["entered_minus_left"]);
    // A replay of every region rebuilds what each verified, and the same national total.
    let replay = nation.query(&["audit", "replay", "--json"]);
    assert_eq!(replay["held"], report["held"]);
    for (replayed, verified) in replay["regions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(report["regions"].as_array().unwrap())
    {
        assert_eq!(replayed["region"], verified["region"]);
        assert_eq!(replayed["replay"]["digest"], verified["verify"]["digest"]);
    }
    // A reversal of a claim settled before its member moved on is refused, not misdirected.
    // A claim id is the map's: one another region's ledger holds is refused, as one ledger
    // refuses it, and its reversal goes to the ledger holding it; a bound member is not moved;
    // an id that looks like the ledger's own owed ids is refused.
    let refused = nation.apply(&[
        json!({"cmd": "reverse", "id": "C2", "date": "2024-06-03", "reason": "x"}).to_string(),
        transfer("M02", "2024-06-05", "999999"),
        enroll("M00", "500000", "1.00"),
        claim("C7", "NOBODY", "2024-06-05", "1.00"),
        claim("DUP", "M02", "2024-06-06", "10.00"),
        claim("DUP", "M12", "2024-06-06", "10.00"),
        json!({"cmd": "reverse", "id": "DUP", "date": "2024-06-07", "reason": "x"}).to_string(),
        json!({"cmd": "bind_family", "holder": "M03", "relative": "M02", "relation": "spouse",
               "date": "2024-06-08"})
        .to_string(),
        transfer("M03", "2024-06-09", "340100"),
        transfer("M02", "2024-06-09", "340100"),
        claim("owed:500000:1", "M03", "2024-06-10", "10.00"),
    ]);
    let codes: Vec<&str> = refused
        .iter()
        .map(|a| a["error"]["code"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(
        codes,
        [
            "account_moved",
            "unmapped_region",
            "already_enrolled",
            "unknown_member",
            "none",
            "duplicate_id",
            "none",
            "none",
            "family_binding_open",
            "family_binding_open",
            "malformed_id"
        ],
        "{refused:?}"
    );
    assert_eq!(nation.verify()["passed"], true);
}

/// Members spread over the regions, then transfers in every direction, applied in chunks by
/// `apply` processes killed at random moments, with relays killed too, until at least
/// `GONGJI_REGIONS_TRANSFERS` transfers were sent. At the end every transfer sent landed
/// exactly once, money is conserved nationally to the fen, and every region verifies.
#[test]
fn transfers_land_exactly_once_through_kills() {
    let wanted = setting("GONGJI_REGIONS_TRANSFERS", 1000);
    let kill_ms = setting("GONGJI_REGIONS_KILL_MS", 80) as u64;
    let nation = Nation::new();
    let mut rng = Rng::new(17);
    let (setup, members) = spread_members("T", 40, &mut rng);
    nation.apply(&setup);

    // `GONGJI_REGIONS_PG_CRASH_A`, `_B`: shell commands that kill a store's server and start
    // it again (`tools/pg-local crash`), given by `tools/regions-pg-kills`.
    let crashes: Vec<(String, String)> = ["A", "B"]
        .into_iter()
        .filter_map(|name| {
            let command = std::env::var(format!("GONGJI_REGIONS_PG_CRASH_{name}")).ok()?;
            Some((name.to_string(), command))
        })
        .collect();
    let mut stores_crashed = 0;
    let mut day = 0u64;
    let mut applies_killed = 0;
    let mut relays_killed = 0;
    let mut seen_in_transit = 0u64;
    let mut chunks = 0;
    loop {
        let sent = nation.verify()["transfers"]["sent"].as_u64().unwrap();
        if sent >= wanted as u64 {
            break;
        }
        chunks += 1;
        assert!(
            chunks < 400,
            "only {sent} transfers sent after {chunks} chunks"
        );
        day += 1;
        let lines = transfers_on(day, 60, &members, &mut rng);
        let input = nation.input(&format!("chunk{chunks}.jsonl"), &lines);
        let mut apply = nation
            .command(&["apply", input.to_str().unwrap(), "--json", "--wait"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Either store's server killed (and started again) under the apply, when the test is
        // given the commands that do it.
        let crash = (!crashes.is_empty() && rng.below(3) == 0).then(|| {
            let (name, command) = crashes[rng.below(crashes.len() as u64) as usize].clone();
            let after = Duration::from_millis(rng.below(kill_ms * 2));
            stores_crashed += 1;
            std::thread::spawn(move || {
                std::thread::sleep(after);
                let out = Command::new("sh").arg("-c").arg(&command).output().unwrap();
                assert!(
                    out.status.success(),
                    "crashing store {name}: {}",
                    text(&out)
                );
            })
        });
        if rng.below(2) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(kill_ms)));
            if apply.try_wait().unwrap().is_none() {
                applies_killed += 1;
            }
            apply.kill().unwrap();
        }
        apply.wait().unwrap();
        if let Some(crash) = crash {
            crash.join().unwrap();
        }
        let report = nation.verify();
        assert_eq!(report["passed"], true, "after chunk {chunks}: {report}");
        let in_transit = report["transfers"]["in_transit"].as_array().unwrap();
        if let Some(moving) = in_transit.first() {
            seen_in_transit += in_transit.len() as u64;
            let member = moving["member"].as_str().unwrap();
            let out = nation.run(&["account", member, "--json"]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            assert!(text(&out).contains("in transit"), "{}", text(&out));
            // The next apply lands it first: the member is not enrolled anew anywhere.
            let to = moving["to_region"].as_str().unwrap();
            let elsewhere = REGIONS.iter().find(|r| **r != to).unwrap();
            let again = nation.apply(&[enroll(member, elsewhere, "1.00")]);
            assert_eq!(again[0]["error"]["code"], "already_enrolled", "{again:?}");
        }
        if rng.below(2) == 0 {
            let mut relay = nation
                .command(&["relay", "--json", "--wait"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(kill_ms / 2 + 1)));
            if relay.try_wait().unwrap().is_none() {
                relays_killed += 1;
            }
            relay.kill().unwrap();
            relay.wait().unwrap();
            assert_eq!(nation.verify()["passed"], true, "after a relay killed");
        }
    }
    let out = nation.run(&["relay", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = nation.verify();
    let transfers = &report["transfers"];
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(transfers["in_transit"], json!([]), "{report}");
    assert_eq!(transfers["sent"], transfers["received"]);
    assert_eq!(transfers["mismatches"], json!([]));
    assert_eq!(report["held"], report["entered_minus_left"]);
    let routes = transfers["by_route"].as_object().unwrap();
    assert_eq!(
        routes.len(),
        6,
        "every direction between three regions: {routes:?}"
    );
    for region in &report["regions"].as_array().unwrap()[..] {
        assert_eq!(region["verify"]["failure"], Value::Null, "{region}");
    }
    // The regions' archives match each other as the ledgers do.
    let (_, across) = nation.archives_checked();
    assert_eq!(across["transfers"]["sent"], transfers["sent"]);
    assert_eq!(across["transfers"]["received"], transfers["sent"]);
    assert_eq!(across["held"], report["held"]);
    // Every member is held by exactly one region, and answers there.
    for member in &members {
        nation.query(&["account", member, "--json"]);
    }
    eprintln!(
        "regions: {} transfers sent and landed once over {chunks} chunks; {applies_killed} applies \
         and {relays_killed} relays killed mid-run, {stores_crashed} store servers killed; \
         {seen_in_transit} found in transit after a kill",
        transfers["sent"]
    );
}

/// Moving a region from one store to another, as docs/regions.md says: export its ledger,
/// import the archive into the new store, switch the map. Nothing is lost or doubled: the
/// region's digest and the national figures are the same after, every region's archive checks
/// on its own, and the map goes on from there.
#[test]
fn a_region_moves_to_another_store_without_losing_or_doubling_anything() {
    let (lines, _) = three_region_year();
    let nation = Nation::new();
    nation.apply(&lines);
    let before = nation.verify();
    assert_eq!(before["passed"], true, "{before}");

    // Every region's archive checks alone, and the three match each other: every transfer,
    // every fund event owed.
    let (all, across) = nation.archives_checked();
    assert_eq!(across["transfers"]["sent"], 5);
    assert_eq!(across["transfers"]["received"], 5);
    assert_eq!(across["transfers"]["owed"], 6);
    assert_eq!(across["transfers"]["owed_pending"], 0);
    assert_eq!(across["held"], before["held"]);
    // Without 510100's, what it sent and owed is unmatched: the check fails, naming it.
    let out = Command::new(gongji_path())
        .args(["audit", "check-transfers"])
        .args(&all[..2])
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let partial: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        partial["failures"].to_string().contains("no region"),
        "{partial}"
    );

    // 340100 moves to a store of its own, s3.
    let archive = nation.dir.path().join("340100.archive");
    let moved = nation.dir.path().join("s3").join("340100");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    let out = Command::new(gongji_path())
        .arg("--data")
        .arg(&moved)
        .args(["audit", "import"])
        .arg(&archive)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let map: Value = serde_json::from_str(&std::fs::read_to_string(nation.map()).unwrap()).unwrap();
    let mut map = map.as_object().unwrap().clone();
    map.insert("340100".into(), json!("s3"));
    std::fs::write(nation.map(), Value::Object(map).to_string()).unwrap();

    let after = nation.verify();
    assert_eq!(after["passed"], true, "{after}");
    assert_eq!(after["held"], before["held"]);
    assert_eq!(after["transfers"]["sent"], before["transfers"]["sent"]);
    assert_eq!(
        after["transfers"]["received"],
        before["transfers"]["received"]
    );
    let digests = |report: &Value| -> Vec<Value> {
        report["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["region"], r["verify"]["digest"], r["verify"]["records"]]))
            .collect()
    };
    assert_eq!(digests(&after), digests(&before));
    let store = |report: &Value| {
        report["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["region"] == "340100")
            .unwrap()["store"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(store(&after).ends_with("s3/340100"), "{}", store(&after));

    // The map goes on from the new store: M00 (in 510100) comes to 340100 and claims there.
    let answers = nation.apply(&[
        transfer("M00", "2024-07-01", "340100"),
        claim("C20", "M00", "2024-07-05", "300.00"),
    ]);
    assert!(answers.iter().all(|a| a["ok"] == true), "{answers:?}");
    assert_eq!(
        nation.query(&["account", "M00", "--json"])["region"],
        "340100"
    );
    let last = nation.verify();
    assert_eq!(last["passed"], true, "{last}");
    assert_eq!(last["transfers"]["received"], 6);
}

/// `gongji --regions MAP serve` over the map, with a token of `role` for each of `roles`.
struct MapService {
    tokens: PathBuf,
    access_log: PathBuf,
    roles: Vec<(&'static str, String)>,
}

impl MapService {
    fn new(nation: &Nation) -> MapService {
        let tokens = nation.dir.path().join("tokens");
        let roles = ["operator", "clerk", "auditor"]
            .into_iter()
            .map(|role| {
                let file = tokens.to_str().unwrap();
                let out = nation.run(&["token", "add", role, "--role", role, "--tokens", file]);
                assert!(out.status.success(), "{}", text(&out));
                (
                    role,
                    String::from_utf8(out.stdout).unwrap().trim().to_string(),
                )
            })
            .collect();
        MapService {
            tokens,
            access_log: nation.dir.path().join("access-log"),
            roles,
        }
    }

    fn token(&self, role: &str) -> &str {
        &self.roles.iter().find(|(r, _)| *r == role).unwrap().1
    }

    fn start(&self, nation: &Nation) -> Serve {
        let mut command = nation.command(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tokens",
            self.tokens.to_str().unwrap(),
            "--access-log",
            self.access_log.to_str().unwrap(),
        ]);
        command.stderr(Stdio::inherit());
        Serve::spawn_http(&mut command)
    }
}

fn post_lines(agent: &ureq::Agent, serve: &Serve, token: &str, lines: &[String]) -> Vec<Value> {
    let body = lines.join("\n") + "\n";
    let url = format!("{}/v1/commands", serve.url);
    let mut answer = post_ndjson(agent, &url, Some(token), body.as_bytes());
    assert_eq!(answer.status().as_u16(), 200);
    let text = answer.body_mut().read_to_string().unwrap();
    support::parse_lines(text.as_bytes())
}

fn get_json(agent: &ureq::Agent, serve: &Serve, token: &str, path: &str) -> (u16, Value) {
    let (status, body) = get(agent, &format!("{}{path}", serve.url), Some(token));
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn verify_over(agent: &ureq::Agent, serve: &Serve, token: &str) -> Value {
    let mut answer = agent
        .post(format!("{}/v1/audit/verify", serve.url))
        .header("Authorization", format!("Bearer {token}"))
        .send_empty()
        .expect("the server answers");
    assert_eq!(answer.status().as_u16(), 200);
    serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap()
}

/// The service over the map answers as the command line over it does: a command stream routed
/// line by line (settling as one ledger holding every region does), a member's reads from the
/// region holding the member (as of a day, the region that held it then), a claim's
/// explanation from the region that settled it, a region's fund from its ledger, and audit
/// verify and replay of the whole map; routes over one ledger's log say so.
#[test]
fn the_service_over_a_map_routes_commands_and_reads_to_each_region() {
    let (lines, members) = three_region_year();
    let nation = Nation::new();
    let service = MapService::new(&nation);
    let serve = service.start(&nation);
    let agent = agent();
    let (operator, clerk, auditor) = (
        service.token("operator"),
        service.token("clerk"),
        service.token("auditor"),
    );
    let answers = post_lines(&agent, &serve, operator, &lines);
    let single = TestLedger::directory();
    let (_, one) = single.apply(&lines);
    assert_eq!(answers.len(), lines.len());
    for (line, (a, b)) in answers.iter().zip(&one).enumerate() {
        assert_eq!(
            a["ok"],
            b.get("error").is_none(),
            "line {}: {a} / {b}",
            line + 1
        );
    }
    for member in &members {
        let (status, mut there) = get_json(&agent, &serve, clerk, &format!("/v1/members/{member}"));
        assert_eq!(status, 200, "{member}: {there}");
        let mut here = single.query(&["account", member]);
        for answer in [&mut there, &mut here] {
            answer.as_object_mut().unwrap().remove("time_zone");
        }
        assert_eq!(there, here, "member {member}");
        let (_, year) = get_json(
            &agent,
            &serve,
            clerk,
            &format!("/v1/members/{member}/years/2024"),
        );
        assert_eq!(
            year,
            single.query(&["year", member, "2024"]),
            "{member}'s year"
        );
    }
    let (_, then) = get_json(&agent, &serve, clerk, "/v1/members/M00?as_of=2024-03-10");
    assert_eq!(
        (&then["region"], &then["region_since"]),
        (&json!("340100"), &json!("2024-03-01"))
    );
    for (claim, region) in [("C1", "500000"), ("C2", "340100"), ("C3", "510100")] {
        let (status, explained) = get_json(
            &agent,
            &serve,
            clerk,
            &format!("/v1/claims/{claim}/explain"),
        );
        assert_eq!(
            (status, &explained["region"]),
            (200, &json!(region)),
            "{explained}"
        );
    }
    let (status, _) = get_json(&agent, &serve, clerk, "/v1/members/NOBODY");
    assert_eq!(status, 404);
    for region in REGIONS {
        let (status, fund) = get_json(&agent, &serve, auditor, &format!("/v1/funds/{region}"));
        assert_eq!(status, 200, "{fund}");
        assert_eq!(fund, single.query(&["fund", region]), "{region}");
    }
    let (_, policies) = get_json(&agent, &serve, auditor, "/v1/policies");
    let regions: Vec<&str> = policies
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["region"].as_str().unwrap())
        .collect();
    assert_eq!(
        regions,
        ["340100", "500000", "510100"],
        "each region's own versions once"
    );
    let report = verify_over(&agent, &serve, auditor);
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(
        (&report["transfers"]["sent"], &report["transfers"]["owed"]),
        (&json!(5), &json!(6))
    );
    assert_eq!(
        report["held"],
        nation.verify()["held"],
        "as the command line verifies it"
    );
    let (_, replay) = get_json(&agent, &serve, auditor, "/v1/audit/replay");
    assert_eq!(replay["held"], report["held"]);
    let (status, refused) = get_json(&agent, &serve, auditor, "/v1/events");
    assert_eq!(
        (status, &refused["error"]["code"]),
        (501, &json!("not_over_region_map"))
    );
    let (status, archive) = get(
        &agent,
        &format!("{}/v1/audit/export?region=340100", serve.url),
        Some(auditor),
    );
    assert_eq!(status, 200);
    assert!(
        archive.lines().last().unwrap().contains("\"manifest\""),
        "a whole archive"
    );
    // A read sent once a transfer is answered finds the account where it went.
    let moved = post_lines(
        &agent,
        &serve,
        operator,
        &[transfer("M02", "2024-07-01", "510100")],
    );
    assert_eq!(moved[0]["ok"], true, "{moved:?}");
    let (status, account) = get_json(&agent, &serve, clerk, "/v1/members/M02");
    assert_eq!((status, &account["region"]), (200, &json!("510100")));
    // A parameter that does not read is refused before any region is asked.
    let (status, _) = get_json(&agent, &serve, clerk, "/v1/members/NOBODY?as_of=someday");
    assert_eq!(status, 400);
    serve.stop();
}

/// The service over the map, SIGKILLed at random moments while command streams of transfers
/// run through it, and started again; transfers left in transit by command-line applies killed
/// between a transfer's two halves are landed by the service's own relay, with no request
/// asking for it. At the end every transfer landed once, the map verifies and money is
/// conserved nationally to the fen.
#[test]
fn the_service_relays_what_is_in_transit_and_survives_kills() {
    let kills = setting("GONGJI_REGIONS_SERVICE_KILLS", 6);
    let nation = Nation::new();
    let service = MapService::new(&nation);
    let operator = service.token("operator").to_string();
    let mut rng = Rng::new(23);
    let (setup, members) = spread_members("S", 20, &mut rng);
    let agent = agent();
    let serve = service.start(&nation);
    post_lines(&agent, &serve, &operator, &setup);
    let mut day = 0u64;
    let mut chunk = |rng: &mut Rng, count: usize| {
        day += 1;
        transfers_on(day, count, &members, rng)
    };
    let mut serve = Some(serve);
    let mut killed_streaming = 0;
    for _ in 0..kills {
        let running = serve.take().unwrap_or_else(|| service.start(&nation));
        let lines = chunk(&mut rng, 300);
        let (url, token) = (running.url.clone(), operator.clone());
        let stream = std::thread::spawn(move || {
            let body = lines.join("\n") + "\n";
            // Cut off by the kill: the answer breaks off, or never comes.
            let posted = support::serve::agent()
                .post(format!("{url}/v1/commands"))
                .header("Content-Type", "application/x-ndjson")
                .header("Authorization", format!("Bearer {token}"))
                .send(body.as_bytes());
            posted
                .ok()
                .and_then(|mut a| a.body_mut().read_to_string().ok())
                .is_some()
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        running.kill();
        killed_streaming += usize::from(!stream.join().unwrap());
        let report = nation.verify();
        assert_eq!(report["passed"], true, "after a kill: {report}");
    }
    // Command-line applies killed between a transfer's send and its landing, until something
    // is in transit for the service to land.
    let mut in_transit = 0;
    for attempt in 0.. {
        assert!(attempt < 40, "no apply killed left a transfer in transit");
        let input = nation.input("transfers.jsonl", &chunk(&mut rng, 200));
        let mut apply = nation
            .command(&["apply", input.to_str().unwrap(), "--wait"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Later, the later the attempt: opening the map takes longer on some stores.
        std::thread::sleep(Duration::from_millis(30 + rng.below(150 * (attempt + 1))));
        apply.kill().unwrap();
        apply.wait().unwrap();
        in_transit = nation.verify()["transfers"]["in_transit"]
            .as_array()
            .unwrap()
            .len();
        if in_transit > 0 {
            break;
        }
    }
    let serve = service.start(&nation);
    let auditor = service.token("auditor");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let report = loop {
        let report = verify_over(&agent, &serve, auditor);
        let transfers = &report["transfers"];
        if transfers["in_transit"] == json!([]) && transfers["owed_pending"] == 0 {
            break report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relay landed nothing: {report}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let transfers = &report["transfers"];
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(transfers["sent"], transfers["received"]);
    assert_eq!(report["held"], report["entered_minus_left"]);
    for member in &members {
        let (status, _) = get_json(
            &agent,
            &serve,
            service.token("clerk"),
            &format!("/v1/members/{member}"),
        );
        assert_eq!(
            status, 200,
            "{member} is held by one region and answers there"
        );
    }
    eprintln!(
        "regions service: {} transfers sent and landed once; the service killed {kills} times \
         ({killed_streaming} mid-stream); {in_transit} left in transit by a killed apply, landed \
         by the service's relay",
        transfers["sent"]
    );
    serve.stop();
}

/// A transaction id is the map's, as it is one ledger's: an id another region's ledger holds is
/// refused, one whose line its region refused is free again (in the same run and in the next),
/// and a reversal goes to the ledger holding its transaction. Every outcome as one ledger
/// holding every region gives it.
#[test]
fn transaction_ids_are_the_maps_as_they_are_one_ledgers() {
    let nation = Nation::new();
    let single = TestLedger::directory();
    let mut setup = policy_lines();
    setup.push(enroll("A1", "500000", "800.00"));
    setup.push(enroll("B1", "340100", "800.00"));
    setup.push(enroll("C1", "510100", "800.00"));
    let runs = [
        setup,
        vec![
            // Refused (before the enrolment), then the id taken in another region: free.
            claim("X", "A1", "2023-06-01", "100.00"),
            claim("X", "B1", "2024-02-01", "100.00"),
            // Held by 340100 now: refused elsewhere; its reversal goes there.
            claim("X", "C1", "2024-02-02", "100.00"),
            json!({"cmd": "reverse", "id": "X", "date": "2024-02-03", "reason": "x"}).to_string(),
            claim("Y", "A1", "2023-06-01", "100.00"),
            // Refused, then taken in the same region: held there.
            claim("Z", "A1", "2023-06-01", "100.00"),
            claim("Z", "A1", "2024-02-05", "100.00"),
        ],
        vec![
            // Y was refused in the run before: free in another region now.
            claim("Y", "C1", "2024-03-01", "100.00"),
            claim("Y", "A1", "2024-03-02", "100.00"),
            json!({"cmd": "reverse", "id": "Y", "date": "2024-03-03", "reason": "y"}).to_string(),
            json!({"cmd": "reverse", "id": "NONE", "date": "2024-03-03", "reason": "z"})
                .to_string(),
            claim("Z", "B1", "2024-03-04", "100.00"),
            json!({"cmd": "reverse", "id": "Z", "date": "2024-03-05", "reason": "z"}).to_string(),
        ],
    ];
    for lines in runs {
        let routed = nation.apply(&lines);
        let (_, one) = single.apply(&lines);
        let code = |a: &Value| a["error"]["code"].as_str().unwrap_or("none").to_string();
        let there: Vec<String> = routed.iter().map(code).collect();
        let here: Vec<String> = one.iter().map(code).collect();
        assert_eq!(there, here, "{routed:?}");
    }
    assert_eq!(nation.verify()["passed"], true);
}
