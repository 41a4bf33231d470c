//! Policy files: reading one (`policy load` and `policy check` share it: a refusal names the
//! file and the field, `FILE is not a policy version: outpatient.ratios[3].bands[0].ratio:
//! rate '90%' is not a decimal number`) and `gongji policy check FILE`, which needs no ledger:
//! the rules as a clerk reads them and what the lint finds
//! ([`gongji_domain::policy_check::check`]), exit 1 if it finds anything.

use std::path::Path;
use std::process::ExitCode;

use gongji_domain::policy::{Band, When};
use gongji_domain::policy_check::{self, Finding};
use gongji_domain::PolicyVersion;
use serde_json::{json, Value};

use crate::failure::Failure;
use crate::print;
use crate::text::{policy_table, Style};

/// The policy version in `file`, and its JSON as written (what `policy load` sends).
pub fn read(file: &Path) -> Result<(Value, PolicyVersion), Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::io(format!("cannot read {}: {e}", file.display())))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::bad_input(format!("{} is not JSON: {e}", file.display())))?;
    let policy = PolicyVersion::from_json(&value).map_err(|e| {
        Failure::bad_input(format!("{} is not a policy version: {e}", file.display()))
    })?;
    Ok((value, policy))
}

/// `gongji policy check FILE`: the rules and the findings, as text or one JSON object; exit 1
/// if there are findings.
pub fn check(file: &Path, json: bool) -> Result<ExitCode, Failure> {
    let (_, policy) = read(file)?;
    let findings = policy_check::check(&policy);
    let answer = answer(&policy, &findings);
    if json {
        print::json_line(&answer.to_string())?;
    } else {
        print::text_line(&policy_table::policy_table(&answer, &Style::untimed()))?;
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The answer of `policy check`: the version, each list's rules with their paths (every key
/// always there, `null` for what a rule does not say), then the findings.
fn answer(policy: &PolicyVersion, findings: &[Finding]) -> Value {
    let o = &policy.outpatient;
    let credits: Vec<Value> = policy
        .credits
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({"rule": format!("credits[{i}]"), "when": when(&r.when), "paid_by": r.paid_by,
                   "share_of_base": r.share_of_base, "fixed": r.fixed})
        })
        .collect();
    let deductibles: Vec<Value> = o
        .deductibles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({"rule": format!("outpatient.deductibles[{i}]"), "when": when(&r.when),
                   "amount": r.amount, "group": r.group})
        })
        .collect();
    let ratios: Vec<Value> = o
        .ratios
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let bands: Vec<Value> = r.bands.iter().map(band).collect();
            json!({"rule": format!("outpatient.ratios[{i}]"), "when": when(&r.when), "bands": bands})
        })
        .collect();
    let limits: Vec<Value> = o
        .limits
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({"rule": format!("outpatient.limits[{i}]"), "when": when(&r.when),
                   "amount": r.amount})
        })
        .collect();
    json!({
        "region": policy.region,
        "version": policy.version,
        "effective": policy.effective,
        "year_start": policy.year_start,
        "credits": credits,
        "deductibles": deductibles,
        "deductible_cap": o.deductible_cap,
        "ratios": ratios,
        "limits": limits,
        "annual_max": o.annual_max,
        "findings": findings,
    })
}

/// A rule's conditions, every one named (`null`: the condition always holds).
fn when(when: &When) -> Value {
    json!({
        "statuses": when.statuses,
        "schemes": when.schemes,
        "levels": when.levels,
        "institution_kinds": when.institution_kinds,
        "age_min": when.age_min,
        "age_max": when.age_max,
        "in_lump_sum_period": when.in_lump_sum_period,
    })
}

fn band(band: &Band) -> Value {
    json!({"up_to": band.up_to, "ratio": band.ratio})
}
