//! What-if is exact: the policy in force gives back every recorded settlement to the fen, and a
//! proposal gives, claim by claim, what a ledger that had it in force settled.

use std::collections::{HashMap, HashSet};

use gongji_domain::{Money, PolicyVersion, Settlement};
use gongji_ledger::whatif::{WhatIfReport, WhatIfScope};
use gongji_ledger::Ledger;

const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");

fn generated_year(members: u64, seed: u64) -> Vec<String> {
    let config = gongji_tools::gen::Config {
        members,
        seed,
        ..Default::default()
    };
    let mut out = Vec::new();
    gongji_tools::gen::generate(&config, &mut out).expect("generated");
    String::from_utf8(out)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A ledger in `dir` with `policy` in force and `lines` applied (refusals are fine: they are
/// the generator's own, and the same under both policies for the funds' figures).
fn ledger_with(dir: &std::path::Path, policy: &PolicyVersion, lines: &[String]) -> Ledger {
    let mut ledger = Ledger::open(dir).expect("open");
    let load = serde_json::json!({"cmd": "load_policy", "policy": policy}).to_string();
    ledger.apply_line(&load, 0).expect("policy decided");
    for (n, line) in lines.iter().enumerate() {
        ledger.apply_line(line, n as i64).expect("a line decided");
        if n % 4096 == 4095 {
            ledger.commit().expect("commit");
        }
    }
    ledger.commit().expect("commit");
    ledger
}

fn in_force() -> PolicyVersion {
    serde_json::from_str(POLICY).expect("the shipped policy parses")
}

/// The shipped policy with every deductible halved and every ratio 10 points higher.
fn proposal() -> PolicyVersion {
    let mut policy = in_force();
    policy.version = "500000/proposal".into();
    for rule in &mut policy.outpatient.deductibles {
        rule.amount = Money::from_fen(rule.amount.fen() / 2);
    }
    for rule in &mut policy.outpatient.ratios {
        for band in &mut rule.bands {
            let higher = band.ratio.as_decimal() + rust_decimal::Decimal::new(10, 2);
            band.ratio = higher.to_string().parse().expect("a rate");
        }
    }
    policy
}

/// Every claim's two settlements by claim id, the claims reversed, and the report.
type Pairs = HashMap<String, (Settlement, Settlement)>;

/// One figure of a settlement.
type Figure = fn(&Settlement) -> Money;

fn what_if(ledger: &Ledger, policy: &PolicyVersion) -> (Pairs, HashSet<String>, WhatIfReport) {
    let mut pairs = HashMap::new();
    let mut reversed = HashSet::new();
    let report = ledger
        .what_if(
            policy,
            WhatIfScope::default(),
            &mut |pair| {
                if pair.reversal {
                    reversed.insert(pair.recorded.claim.clone());
                } else {
                    pairs.insert(
                        pair.recorded.claim.clone(),
                        (pair.recorded.clone(), pair.proposed.clone()),
                    );
                }
                Ok(())
            },
            &mut |_, _| {},
        )
        .expect("what-if");
    (pairs, reversed, report)
}

#[test]
fn the_policy_in_force_gives_back_every_recorded_settlement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger_with(dir.path(), &in_force(), &generated_year(1500, 18));
    let (pairs, _, report) = what_if(&ledger, &in_force());
    assert!(pairs.len() > 1000, "{} claims", pairs.len());
    for (claim, (recorded, proposed)) in &pairs {
        assert_eq!(recorded, proposed, "claim {claim}");
    }
    assert_eq!(report.total.changed, 0);
    assert_eq!(report.total.recorded, report.total.proposed);
    assert_eq!(report.no_rule, 0);
    assert!(report.paying_more.is_empty() && report.paying_less.is_empty());
}

#[test]
fn a_proposal_settles_each_claim_as_a_ledger_with_it_in_force_did() {
    let lines = generated_year(1500, 19);
    let recorded_dir = tempfile::tempdir().expect("tempdir");
    let recorded = ledger_with(recorded_dir.path(), &in_force(), &lines);
    let proposed_dir = tempfile::tempdir().expect("tempdir");
    let with_proposal = ledger_with(proposed_dir.path(), &proposal(), &lines);

    let (pairs, reversed, report) = what_if(&recorded, &proposal());
    // The second ledger's own settlements, read the same way (its policy against itself).
    let (actual, _, _) = what_if(&with_proposal, &proposal());
    assert_eq!(pairs.len(), actual.len(), "the same claims settled");
    let mut pooled = Money::ZERO;
    for (claim, (_, proposed)) in &pairs {
        let (settled, _) = &actual[claim];
        // The funds' figures and the member's share do not depend on the account's balance,
        // which other movements (payments refused or not) may make differ.
        let figures = |s: &Settlement| {
            (
                s.deductible_group.clone(),
                s.deductible_applied,
                s.ordinary_computed,
                s.ordinary_paid,
                s.pooled_paid,
                s.large_amount_paid,
                s.own_share(),
            )
        };
        assert_eq!(figures(proposed), figures(settled), "claim {claim}");
        pooled += proposed.pooled_paid;
    }
    assert!(report.total.changed > 0);
    assert!(
        report.total.difference.pooled > Money::ZERO,
        "a lower deductible and a higher ratio cost the pooled fund more"
    );
    // The report's totals are the claims left standing, as the second ledger settled them.
    let standing = |s: &HashMap<String, (Settlement, Settlement)>,
                    pick: fn(&Settlement) -> Money| {
        s.iter()
            .filter(|(claim, _)| !reversed.contains(*claim))
            .map(|(_, (_, proposed))| pick(proposed))
            .sum::<Money>()
    };
    let actual_recorded: HashMap<String, (Settlement, Settlement)> = actual
        .iter()
        .map(|(c, (r, _))| (c.clone(), (r.clone(), r.clone())))
        .collect();
    let reported = &report.total.proposed;
    let picks: [(Figure, Money); 3] = [
        (|s| s.pooled_paid, reported.pooled),
        (|s| s.large_amount_paid, reported.large_amount),
        (
            |s| s.account_paid + s.cash_paid,
            reported.account + reported.cash,
        ),
    ];
    for (pick, reported) in picks {
        let summed = standing(&pairs, pick);
        assert_eq!(summed, standing(&actual_recorded, pick));
        assert_eq!(summed, reported);
    }
}
