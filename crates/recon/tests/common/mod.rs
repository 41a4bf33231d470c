//! A real ledger in a temporary directory, built through `Ledger::apply_line`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gongji_ledger::{Ledger, LineOutcome};
use serde_json::Value;

pub const POLICY_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/500000-2024-01-01.json"
);

pub fn policy_json() -> String {
    std::fs::read_to_string(POLICY_PATH).expect("the shipped policy file is readable")
}

/// A claim's figures as the ledger settled it, in the platform's terms and more.
#[derive(Clone, Debug)]
pub struct Figures {
    pub medfee_sumamt: String,
    pub fund_pay_sumamt: String,
    pub acct_pay: String,
    pub cash_payamt: String,
    pub pooled_paid: String,
    pub large_amount_paid: String,
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub ledger: Ledger,
    pub claims: HashMap<String, Figures>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ledger = Ledger::open(&dir.path().join("ledger")).expect("a new ledger opens");
        let mut fixture = Fixture {
            dir,
            ledger,
            claims: HashMap::new(),
        };
        fixture.apply(&[&format!(
            r#"{{"cmd":"load_policy","policy":{}}}"#,
            policy_json()
        )]);
        fixture
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Applies lines; every one must be applied. Claim figures are remembered by claim id.
    pub fn apply(&mut self, lines: &[&str]) -> Vec<Value> {
        for line in lines {
            self.ledger.apply_line(line, 0).expect("the ledger works");
        }
        let outcomes = self.ledger.commit().expect("the ledger commits");
        let mut values = Vec::new();
        for (line, outcome) in lines.iter().zip(outcomes) {
            match outcome {
                LineOutcome::Applied(outcome) => {
                    let value = serde_json::to_value(outcome).expect("outcomes serialize");
                    let command: Value = serde_json::from_str(line).expect("test lines are JSON");
                    if command["cmd"] == "claim" {
                        let money = |field: &str| -> i64 {
                            command
                                .get(field)
                                .and_then(Value::as_str)
                                .map(|t| t.parse::<gongji_domain::Money>().unwrap().fen())
                                .unwrap_or(0)
                        };
                        let total =
                            gongji_domain::Money::from_fen(money("eligible") + money("uncovered"));
                        let text = |field: &str| value[field].as_str().unwrap().to_string();
                        self.claims.insert(
                            command["id"].as_str().unwrap().to_string(),
                            Figures {
                                medfee_sumamt: total.to_string(),
                                fund_pay_sumamt: text("fund_paid"),
                                acct_pay: text("account_paid"),
                                cash_payamt: text("cash_paid"),
                                pooled_paid: text("pooled_paid"),
                                large_amount_paid: text("large_amount_paid"),
                            },
                        );
                    }
                    values.push(value);
                }
                LineOutcome::Rejected(rejection) => panic!("line {line} was rejected: {rejection}"),
            }
        }
        values
    }

    pub fn figures(&self, claim: &str) -> &Figures {
        &self.claims[claim]
    }

    /// A 3202 row for `claim` as the ledger has it: `setl_id,mdtrt_id,psn_no,amounts...,flag`.
    pub fn row(&self, claim: &str, visit: &str, member: &str, refund: bool) -> String {
        let f = self.figures(claim);
        let sign = if refund { "-" } else { "" };
        format!(
            "{claim},{visit},{member},{sign}{},{sign}{},{sign}{},{sign}{},{}",
            f.medfee_sumamt,
            f.fund_pay_sumamt,
            f.acct_pay,
            f.cash_payamt,
            u8::from(refund)
        )
    }
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("the test file is written");
}

pub fn enroll(member: &str, opening_balance: &str) -> String {
    format!(
        r#"{{"cmd":"enroll","member":"{member}","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"{opening_balance}"}}"#
    )
}

pub fn claim(id: &str, member: &str, date: &str, eligible: &str, extra: &str) -> String {
    format!(
        r#"{{"cmd":"claim","id":"{id}","member":"{member}","date":"{date}","level":2,"channel":"institution","eligible":"{eligible}"{extra}}}"#
    )
}

pub fn reverse(id: &str, date: &str) -> String {
    format!(r#"{{"cmd":"reverse","id":"{id}","date":"{date}","reason":"refund at the window"}}"#)
}
