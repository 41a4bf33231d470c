//! `gongji policy check FILE` through the real binary, with no ledger: a good shape file shows
//! its rules with their figures and exits 0, a file the lint refuses names the rule and exits
//! 1; and `policy load` of a mistyped file names the file and the field path, creating
//! nothing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use support::{gongji_path, text, CHONGQING_POLICY};

fn shape(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies/shapes")
        .join(name)
}

fn gongji(args: &[&str]) -> Output {
    Command::new(gongji_path())
        .args(args)
        .env_remove("GONGJI_LANG")
        .output()
        .expect("gongji runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The shipped policy with `change` made to it, written to `dir/name`.
fn variant(dir: &Path, name: &str, change: impl FnOnce(&mut Value)) -> PathBuf {
    let text = std::fs::read_to_string(CHONGQING_POLICY).expect("the shipped policy");
    let mut policy: Value = serde_json::from_str(&text).expect("it is JSON");
    change(&mut policy);
    let path = dir.join(name);
    std::fs::write(&path, policy.to_string()).expect("written");
    path
}

#[test]
fn a_good_shape_shows_its_rules_with_their_figures_and_exits_0() {
    let file = shape("shape-high-deductible-bands.json");
    let file = file.to_str().unwrap();
    let out = gongji(&["policy", "check", file, "--lang", "en"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = stdout(&out);
    for figure in [
        "policy version shape-high-deductible-bands: region 990002",
        "outpatient.deductibles[0]  always  1,800.00 yuan (group outpatient)",
        "outpatient.ratios[0]  always  70% up to 10,000.00 yuan; 50% above 10,000.00 yuan",
        "outpatient.limits[0]  always  no limit",
        "findings: none",
    ] {
        assert!(said.contains(figure), "{figure:?} in {}", text(&out));
    }
    // Chinese by default.
    let out = gongji(&["policy", "check", file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = stdout(&out);
    assert!(said.contains("1,800.00 元（分组 outpatient）"), "{said}");
    assert!(said.contains("不设限额"), "{said}");
    assert!(said.contains("检查结果：未发现问题"), "{said}");
    // Every shape passes, and the JSON answer holds the rules and no findings.
    for name in [
        "shape-level-deductible-cap.json",
        "shape-high-deductible-bands.json",
        "shape-retiree-age-bands.json",
        "shape-grassroots-ratio.json",
    ] {
        let file = shape(name);
        let out = gongji(&["policy", "check", file.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        let answer: Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
        assert_eq!(answer["findings"], json!([]), "{name}");
        assert!(
            answer["ratios"][0]["rule"] == "outpatient.ratios[0]",
            "{answer}"
        );
    }
}

#[test]
fn a_file_the_lint_refuses_names_the_rule_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    // The retirees' level-3 ratio moved before their level-1-and-2 one, made to cover all
    // levels: the latter never applies.
    let file = variant(dir.path(), "shadowed.json", |p| {
        let ratios = p["outpatient"]["ratios"].as_array_mut().unwrap();
        let mut all_levels = ratios.remove(3);
        all_levels["when"] = json!({"statuses": ["retired"]});
        ratios.insert(2, all_levels);
    });
    let file = file.to_str().unwrap();
    let out = gongji(&["policy", "check", file, "--lang", "en"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains(
            "outpatient.ratios[3]: never applies: every claim it matches is taken first by \
             outpatient.ratios[2]"
        ),
        "{}",
        text(&out)
    );
    let out = gongji(&["policy", "check", file, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let answer: Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(answer["findings"][0]["path"], "outpatient.ratios[3]");
    assert_eq!(answer["findings"].as_array().map(Vec::len), Some(1));
    // `policy load` refuses it, naming the rule.
    let data = dir.path().join("ledger");
    let out = gongji(&["--data", data.to_str().unwrap(), "policy", "load", file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = stdout(&out);
    assert!(said.contains("invalid_policy"), "{}", text(&out));
    assert!(
        said.contains("outpatient.ratios[3]: never applies"),
        "{}",
        text(&out)
    );
}

#[test]
fn policy_load_of_a_mistyped_file_names_the_file_and_the_field_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = variant(dir.path(), "typo.json", |p| {
        p["outpatient"]["ratios"][3]["bands"][0]["ratio"] = json!("90%");
    });
    let file = file.to_str().unwrap();
    let data = dir.path().join("ledger");
    let data = data.to_str().unwrap();
    let out = gongji(&["--data", data, "policy", "load", file]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "{file} is not a policy version: outpatient.ratios[3].bands[0].ratio: rate '90%' \
             is not a decimal number"
        )),
        "{}",
        text(&out)
    );
    assert!(!Path::new(data).exists(), "no ledger was created");
    // With --json, the error object says the same (bad_input).
    let out = gongji(&["--data", data, "policy", "load", file, "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error: Value = serde_json::from_str(&stdout(&out)).expect("the error object");
    assert_eq!(error["error"]["code"], "bad_input");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("outpatient.ratios[3].bands[0].ratio"),
        "{message}"
    );
    // `policy check` says so too, with no ledger.
    let missing = variant(dir.path(), "missing.json", |p| {
        p["outpatient"]["limits"][2]
            .as_object_mut()
            .unwrap()
            .remove("amount");
    });
    let out = gongji(&["policy", "check", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("outpatient.limits[2]: the field \"amount\" is missing"),
        "{}",
        text(&out)
    );
}
