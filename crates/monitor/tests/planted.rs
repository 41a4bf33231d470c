//! A generated year with every misuse pattern planted (`gongji_tools::plant`): each planted
//! case is flagged by its rule (recall 1.0), and the flags on ordinary members are few.

use gongji_ledger::Ledger;
use gongji_monitor::Live;
use gongji_monitor::{rule_names, MonitorRules, Scope};
use gongji_tools::gen::{generate_planted, Config};
use gongji_tools::plant::{plant, score, Planting};

const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");

/// A ledger of a generated year of `members` with misuse planted at `rate`, and the planting.
fn planted_ledger(members: u64, rate: f64) -> (tempfile::TempDir, Ledger, Planting) {
    let config = Config {
        members,
        seed: 7,
        ..Config::default()
    };
    let planting = plant(&config, rate);
    let mut out = Vec::new();
    generate_planted(&config, &planting, &mut out).expect("generated");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut ledger = Ledger::open(dir.path()).expect("open");
    let policy: serde_json::Value = serde_json::from_str(POLICY).expect("the policy parses");
    let load = serde_json::json!({"cmd": "load_policy", "policy": policy}).to_string();
    let now = gongji_ledger::now_micros();
    ledger.apply_line(&load, now).expect("decided");
    for (n, line) in String::from_utf8(out).expect("UTF-8").lines().enumerate() {
        ledger.apply_line(line, now + n as i64).expect("decided");
        if n % 4096 == 4095 {
            ledger.commit().expect("commit");
        }
    }
    ledger.commit().expect("commit");
    (dir, ledger, planting)
}

#[test]
fn every_planted_case_is_flagged_by_its_rule() {
    let (_dir, ledger, planting) = planted_ledger(1500, 0.002);
    let rules = MonitorRules::chongqing();
    let report =
        gongji_monitor::run(&ledger, &rules, Scope::default(), &mut |_, _| {}).expect("a pass");
    let swept = Scope {
        sweep_every: Some(1),
        ..Scope::default()
    };
    let eager = gongji_monitor::run(&ledger, &rules, swept, &mut |_, _| {}).expect("a pass");
    assert_eq!(eager.flags, report.flags, "sweeping after every movement");
    let flags: Vec<serde_json::Value> = report
        .flags
        .iter()
        .map(|f| serde_json::to_value(f).expect("a flag serializes"))
        .collect();
    let scores = score(&rule_names(&rules), &planting.cases, &flags);
    for scored in &scores {
        if scored.rule == "timing/before_transfer" {
            // The generated region has no second region to transfer to.
            assert_eq!(scored.planted, 0);
            continue;
        }
        assert!(scored.planted > 0, "nothing planted for {}", scored.rule);
        assert_eq!(scored.found, scored.planted, "{scored:?}");
    }
    let unplanted: u64 = scores.iter().map(|s| s.unplanted).sum();
    assert!(
        unplanted * 10 < report.flags.len() as u64,
        "{unplanted} of {} flags name no planted case: {scores:#?}",
        report.flags.len()
    );
}

#[test]
fn a_live_monitor_stepped_in_chunks_flags_what_one_pass_does() {
    let (_dir, ledger, _) = planted_ledger(400, 0.01);
    let rules = MonitorRules::chongqing();
    let pass = gongji_monitor::run(
        &ledger,
        &rules,
        Scope {
            with_dismissed: true,
            ..Scope::default()
        },
        &mut |_, _| {},
    )
    .expect("a pass");
    assert!(pass.flags.len() > 10, "{} flags", pass.flags.len());
    let end = ledger.log().durable_end();
    for (chunk, sweep_every) in [(7, None), (4096, Some(1)), (1 << 16, None)] {
        let scope = Scope {
            sweep_every,
            ..Scope::default()
        };
        let mut live = Live::with_scope(rules.clone(), scope);
        let mut steps = 0;
        while live.position() < end {
            let read = live.step(&ledger, chunk).expect("a step");
            assert!(read > 0 && read <= chunk);
            steps += 1;
            if steps % 97 == 0 {
                // Judging the flags midway leaves the detectors as they were.
                live.flags();
            }
        }
        assert_eq!(live.step(&ledger, chunk).expect("nothing more"), 0);
        assert_eq!(*live.flags(), pass.flags, "steps of {chunk}");
    }
}
