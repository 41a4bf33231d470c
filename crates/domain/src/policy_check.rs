//! The lint of a policy version: what a policy file may say, and [`PolicyVersion::validate`]
//! lets through, but that no region means. `load_policy` refuses a version with any finding
//! (`invalid_policy`, the findings in the message) and `gongji policy check FILE` lists them.
//!
//! What it is not: `validate`. A version already in a log is held to `validate` alone
//! (`Event::decode` runs it), so old logs stay readable; nothing here is ever run on a decoded
//! event, and every check stricter than what logs hold goes here.
//!
//! Each [`Finding`] names the rule by its path in the file (`outpatient.limits[2]`, or a field
//! of it) and says what is wrong in words a clerk understands. The lint refuses:
//! - an age band with `age_min` above `age_max` (no age is in it);
//! - a rule that never applies: rules are tried in order and the first that matches applies, so
//!   a rule whose every case an earlier rule of the same list takes, or that matches nothing,
//!   is dead. Credits compete as `credit_rule`'s callers filter them: contribution credits
//!   among themselves (`contribute`, active members), pooled-fund and lump-sum credits together
//!   (the monthly `allocate` run, retirees and lump-sum members);
//! - a claim no deductible, ratio or limit rule covers (it would be refused `no_policy_rule`);
//! - a pooled-fund credit given as a share of base: `allocate` credits a pooled-fund rule only
//!   as a fixed amount (it has no base for it) and skips the members it matches.
//!
//! (A limit rule without an amount is refused before this, when the JSON is read.)
//!
//! Exact, not sampled: every fact a rule's conditions read takes finitely many values (status,
//! scheme, with a lump-sum member inside or after the period, level 1 to 3, institution kind),
//! and ages are cut into bands at every `age_min` and `age_max` boundary the list mentions, so
//! every rule holds on a band wholly or not at all. Each list is checked against one
//! representative of every cell. A list holds at most [`RULES_PER_LIST_MAX`] rules, which
//! bounds the work (cells times rules).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::policy::{CreditSource, Facts, PolicyVersion, When};
use crate::types::{InstitutionKind, Scheme, Status};

/// The most rules one list (credits, deductibles, ratios, limits) may hold; a region's tables
/// have a handful.
pub const RULES_PER_LIST_MAX: usize = 256;

/// What is wrong with a policy version, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule or field, as written in the file: `outpatient.ratios[2]`,
    /// `credits[1].share_of_base`, `outpatient.limits` for the list as a whole.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Everything wrong with `policy`: what [`PolicyVersion::validate`] refuses
/// ([`PolicyVersion::faults`]), then the lint's findings ([`lint`]).
pub fn check(policy: &PolicyVersion) -> Vec<Finding> {
    let mut findings = policy.faults();
    findings.extend(lint(policy));
    findings
}

/// The lint's findings alone, list by list in the order of the file.
pub fn lint(policy: &PolicyVersion) -> Vec<Finding> {
    let mut findings = Vec::new();
    credits(policy, &mut findings);
    let o = &policy.outpatient;
    let claim_lists: [(&str, &str, Vec<&When>); 3] = [
        (
            "outpatient.deductibles",
            "deductible",
            o.deductibles.iter().map(|r| &r.when).collect(),
        ),
        (
            "outpatient.ratios",
            "ratio",
            o.ratios.iter().map(|r| &r.when).collect(),
        ),
        (
            "outpatient.limits",
            "annual limit",
            o.limits.iter().map(|r| &r.when).collect(),
        ),
    ];
    for (list, what, whens) in claim_lists {
        let rules: Vec<(String, &When)> = whens
            .into_iter()
            .enumerate()
            .map(|(i, when)| (format!("{list}[{i}]"), when))
            .collect();
        if too_many(list, rules.len(), &mut findings) {
            continue;
        }
        let space = Space::new(Use::Claim, &rules);
        let first = rules_in_order(&space, &rules, &mut findings);
        gaps(list, what, &space, &first, &mut findings);
    }
    findings
}

/// Credits: pooled-fund shares, then each group of rules `credit_rule` is asked to choose from.
fn credits(policy: &PolicyVersion, findings: &mut Vec<Finding>) {
    if too_many("credits", policy.credits.len(), findings) {
        return;
    }
    for (i, rule) in policy.credits.iter().enumerate() {
        if rule.paid_by == CreditSource::PooledFund && rule.share_of_base.is_some() {
            findings.push(Finding {
                path: format!("credits[{i}].share_of_base"),
                message: "a credit paid by the pooled fund must be a fixed amount a month \
                          (\"fixed\"): the monthly allocate run has no base to take a share of \
                          for it, so the members this rule matches would be credited nothing \
                          (they are skipped; no later rule is tried)"
                    .into(),
            });
        }
    }
    let groups = [
        (Use::Contribution, &[CreditSource::Contribution][..]),
        (
            Use::Allocation,
            &[CreditSource::PooledFund, CreditSource::LumpSum][..],
        ),
    ];
    for (used, sources) in groups {
        let rules: Vec<(String, &When)> = policy
            .credits
            .iter()
            .enumerate()
            .filter(|(_, r)| sources.contains(&r.paid_by))
            .map(|(i, r)| (format!("credits[{i}]"), &r.when))
            .collect();
        let space = Space::new(used, &rules);
        rules_in_order(&space, &rules, findings);
    }
}

/// A finding if `list` holds more rules than the lint reads; whether it does.
fn too_many(list: &str, count: usize, findings: &mut Vec<Finding>) -> bool {
    let over = count > RULES_PER_LIST_MAX;
    if over {
        findings.push(Finding {
            path: list.to_string(),
            message: format!(
                "{count} rules are more than the {RULES_PER_LIST_MAX} a list may hold"
            ),
        });
    }
    over
}

/// Which caller asks a list to choose a rule, and so which members and claims reach it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// A claim: every status and scheme, a level and an institution kind.
    Claim,
    /// `contribute`: active members (it refuses retirees), no level, no kind.
    Contribution,
    /// The monthly `allocate` run: retirees, and lump-sum members whatever their status.
    Allocation,
}

impl Use {
    /// What reaches a rule of this use, for "every … it matches".
    fn cases(self) -> &'static str {
        match self {
            Use::Claim => "claim",
            Use::Contribution => "contribution",
            Use::Allocation => "member the monthly allocate run credits",
        }
    }
}

/// The statuses, in the order cells and descriptions use.
const STATUSES: [Status; 2] = [Status::Active, Status::Retired];
/// The schemes as the rules see them: a lump-sum member inside or after the period paid for
/// (only lump-sum members have one; for the others `in_lump_sum_period` is always false).
const SCHEMES: [(Scheme, bool); 5] = [
    (Scheme::Employer, false),
    (Scheme::IndividualTier1, false),
    (Scheme::IndividualTier2, false),
    (Scheme::LumpSum, true),
    (Scheme::LumpSum, false),
];
const LEVELS: [u8; 3] = [1, 2, 3];

/// One cell of the facts: indexes into `STATUSES`, `SCHEMES`, `LEVELS`, the institution kinds
/// and the space's age bands (level and kind `None` outside a claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Cell {
    status: usize,
    scheme: usize,
    level: Option<usize>,
    kind: Option<usize>,
    age: usize,
}

/// The cells a list of rules is asked about, and the age bands cut at its boundaries.
struct Space {
    used: Use,
    /// Age bands, `(first, last)`, the last open (`None`); the first starts at 0 (a member is
    /// born on or before enrolment, and claims and credits come after it).
    ages: Vec<(i64, Option<i64>)>,
    cells: Vec<Cell>,
}

impl Space {
    fn new(used: Use, rules: &[(String, &When)]) -> Space {
        let mut starts: BTreeSet<i64> = BTreeSet::from([0]);
        for (_, when) in rules {
            starts.extend(when.age_min.map(i64::from));
            starts.extend(when.age_max.map(|max| i64::from(max) + 1));
        }
        // An age past i32's range is no member's: a band starting there is never reached.
        let starts: Vec<i64> = starts
            .into_iter()
            .filter(|age| (0..=i64::from(i32::MAX)).contains(age))
            .collect();
        let ages: Vec<(i64, Option<i64>)> = starts
            .iter()
            .enumerate()
            .map(|(i, first)| (*first, starts.get(i + 1).map(|next| next - 1)))
            .collect();
        let mut cells = Vec::new();
        for (status, status_is) in STATUSES.iter().enumerate() {
            for (scheme, (scheme_is, _)) in SCHEMES.iter().enumerate() {
                let reached = match used {
                    Use::Claim => true,
                    Use::Contribution => *status_is == Status::Active,
                    Use::Allocation => {
                        *status_is == Status::Retired || *scheme_is == Scheme::LumpSum
                    }
                };
                if !reached {
                    continue;
                }
                for age in 0..ages.len() {
                    if used != Use::Claim {
                        cells.push(Cell {
                            status,
                            scheme,
                            level: None,
                            kind: None,
                            age,
                        });
                        continue;
                    }
                    for level in 0..LEVELS.len() {
                        for kind in 0..InstitutionKind::ALL.len() {
                            cells.push(Cell {
                                status,
                                scheme,
                                level: Some(level),
                                kind: Some(kind),
                                age,
                            });
                        }
                    }
                }
            }
        }
        Space { used, ages, cells }
    }

    /// The facts of `cell`, its age band's first age standing for the band.
    fn facts(&self, cell: &Cell) -> Facts {
        let (scheme, in_lump_sum_period) = SCHEMES[cell.scheme];
        let age = i32::try_from(self.ages[cell.age].0).expect("band starts come from i32 ages");
        Facts {
            status: STATUSES[cell.status],
            scheme,
            level: cell.level.map(|l| LEVELS[l]),
            kind: cell.kind.map(|k| InstitutionKind::ALL[k]),
            age,
            in_lump_sum_period,
        }
    }
}

/// For every cell of `space`, the first of `rules` that holds there (what the ledger would
/// apply); a finding for each rule that never applies.
fn rules_in_order(
    space: &Space,
    rules: &[(String, &When)],
    findings: &mut Vec<Finding>,
) -> Vec<Option<usize>> {
    let holds: Vec<Vec<bool>> = rules
        .iter()
        .map(|(_, when)| {
            space
                .cells
                .iter()
                .map(|cell| when.holds(&space.facts(cell)))
                .collect()
        })
        .collect();
    let first: Vec<Option<usize>> = (0..space.cells.len())
        .map(|c| (0..rules.len()).find(|&r| holds[r][c]))
        .collect();
    for (r, (path, when)) in rules.iter().enumerate() {
        if let (Some(min), Some(max)) = (when.age_min, when.age_max) {
            if min > max {
                findings.push(Finding {
                    path: format!("{path}.when"),
                    message: format!(
                        "age_min {min} is above age_max {max}: no age is in that band, so the \
                         rule never applies"
                    ),
                });
                continue;
            }
        }
        let matched: Vec<usize> = (0..space.cells.len()).filter(|&c| holds[r][c]).collect();
        if matched.is_empty() {
            findings.push(Finding {
                path: path.clone(),
                message: format!("never applies: {}", matches_nothing(when, space.used)),
            });
            continue;
        }
        if matched.iter().any(|&c| first[c] == Some(r)) {
            continue;
        }
        let earlier: BTreeSet<usize> = matched.iter().filter_map(|&c| first[c]).collect();
        let earlier: Vec<&str> = earlier.iter().map(|&e| rules[e].0.as_str()).collect();
        findings.push(Finding {
            path: path.clone(),
            message: format!(
                "never applies: every {} it matches is taken first by {} (rules are tried in \
                 order and the first that matches applies)",
                space.used.cases(),
                earlier.join(", ")
            ),
        });
    }
    first
}

/// Why conditions that hold on no cell of a `used` list match nothing: the first reason that
/// suffices.
fn matches_nothing(when: &When, used: Use) -> String {
    let empty = [
        ("statuses", when.statuses.as_ref().map(Vec::len)),
        ("schemes", when.schemes.as_ref().map(Vec::len)),
        ("levels", when.levels.as_ref().map(Vec::len)),
        (
            "institution_kinds",
            when.institution_kinds.as_ref().map(Vec::len),
        ),
    ];
    if let Some((name, _)) = empty.iter().find(|(_, len)| *len == Some(0)) {
        return format!("its {name} list is empty, so nothing matches it");
    }
    if used != Use::Claim {
        if when.levels.is_some() {
            return "a monthly credit is no claim and has no institution level, so a credit rule \
                    with levels matches no member"
                .into();
        }
        if when.institution_kinds.is_some() {
            return "a monthly credit is no claim and has no institution kind, so a credit rule \
                    with institution_kinds matches no member"
                .into();
        }
    }
    if when.age_max.is_some_and(|max| max < 0) {
        return "age_max is below 0, and every member is 0 or older".into();
    }
    let lump_sum_listed = when
        .schemes
        .as_ref()
        .is_none_or(|schemes| schemes.contains(&Scheme::LumpSum));
    if when.in_lump_sum_period.is_some() && !lump_sum_listed {
        return "in_lump_sum_period is about lump_sum members, and its schemes leave them out"
            .into();
    }
    match used {
        Use::Claim => "its conditions together match no claim".into(),
        Use::Contribution => "contribute credits active members only (retirees are credited by \
                              the monthly allocate run), and its conditions match none"
            .into(),
        Use::Allocation => "the monthly allocate run credits retirees and lump_sum members only, \
                            and its conditions match none"
            .into(),
    }
}

/// A finding for each group of claims no rule of `list` takes.
fn gaps(
    list: &str,
    what: &str,
    space: &Space,
    first: &[Option<usize>],
    findings: &mut Vec<Finding>,
) {
    let uncovered: Vec<Cell> = space
        .cells
        .iter()
        .zip(first)
        .filter(|(_, rule)| rule.is_none())
        .map(|(cell, _)| *cell)
        .collect();
    for group in grouped(&uncovered) {
        findings.push(Finding {
            path: list.to_string(),
            message: format!(
                "no {what} rule for {}: such a claim would be refused (no_policy_rule)",
                described(&group, space)
            ),
        });
    }
}

/// Cells merged into rectangles: one set of values per dimension, every combination of them
/// in the group. Dimension by dimension, groups equal in all other dimensions are merged, until
/// nothing merges.
type Group = [BTreeSet<usize>; 5];

fn grouped(cells: &[Cell]) -> Vec<Group> {
    let one = |value: usize| BTreeSet::from([value]);
    let mut groups: Vec<Group> = cells
        .iter()
        .map(|c| {
            [
                one(c.status),
                one(c.scheme),
                one(c.level.unwrap_or(0)),
                one(c.kind.unwrap_or(0)),
                one(c.age),
            ]
        })
        .collect();
    // Kind, level, age, scheme, status: the order that makes "any kind, any level" first.
    let order = [3, 2, 4, 1, 0];
    // Each pass that changes anything merges at least two groups: at most `cells` passes.
    for _ in 0..=cells.len() {
        let before = groups.len();
        for dimension in order {
            let mut merged: BTreeMap<Vec<BTreeSet<usize>>, BTreeSet<usize>> = BTreeMap::new();
            for group in groups {
                let mut others: Vec<BTreeSet<usize>> = group.to_vec();
                let values = others.remove(dimension);
                merged.entry(others).or_default().extend(values);
            }
            groups = merged
                .into_iter()
                .map(|(mut others, values)| {
                    others.insert(dimension, values);
                    others.try_into().expect("a group has five dimensions")
                })
                .collect();
        }
        if groups.len() == before {
            break;
        }
    }
    groups
}

/// A group of claims in words: `retired, individual_tier1, level 3, any kind, ages 0–69`.
fn described(group: &Group, space: &Space) -> String {
    let [statuses, schemes, levels, kinds, ages] = group;
    let full = |set: &BTreeSet<usize>, len: usize| set.len() == len;
    if full(statuses, STATUSES.len())
        && full(schemes, SCHEMES.len())
        && full(levels, LEVELS.len())
        && full(kinds, InstitutionKind::ALL.len())
        && full(ages, space.ages.len())
    {
        return "any claim".into();
    }
    let statuses = if full(statuses, STATUSES.len()) {
        "any status".to_string()
    } else {
        or_list(statuses.iter().map(|&s| code_name(&STATUSES[s])))
    };
    let levels = match levels.len() {
        n if n == LEVELS.len() => "any level".to_string(),
        1 => format!(
            "level {}",
            or_list(levels.iter().map(|&l| LEVELS[l].to_string()))
        ),
        _ => format!(
            "levels {}",
            or_list(levels.iter().map(|&l| LEVELS[l].to_string()))
        ),
    };
    let kinds = if full(kinds, InstitutionKind::ALL.len()) {
        "any kind".to_string()
    } else {
        let names = kinds.iter().map(|&k| code_name(&InstitutionKind::ALL[k]));
        format!("at a {} institution", or_list(names))
    };
    [
        statuses,
        schemes_described(schemes),
        levels,
        kinds,
        ages_described(ages, &space.ages),
    ]
    .join(", ")
}

fn schemes_described(schemes: &BTreeSet<usize>) -> String {
    if schemes.len() == SCHEMES.len() {
        return "any scheme".into();
    }
    let mut names: Vec<String> = schemes
        .iter()
        .filter(|&&s| SCHEMES[s].0 != Scheme::LumpSum)
        .map(|&s| code_name(&SCHEMES[s].0))
        .collect();
    let lump_sum = code_name(&Scheme::LumpSum);
    let inside = SCHEMES.iter().position(|s| *s == (Scheme::LumpSum, true));
    let after = SCHEMES.iter().position(|s| *s == (Scheme::LumpSum, false));
    match (
        inside.is_some_and(|i| schemes.contains(&i)),
        after.is_some_and(|i| schemes.contains(&i)),
    ) {
        (true, true) => names.push(lump_sum),
        (true, false) => names.push(format!("{lump_sum} inside its period")),
        (false, true) => names.push(format!("{lump_sum} after its period")),
        (false, false) => {}
    }
    or_list(names.into_iter())
}

/// Age bands, contiguous ones joined: `ages 0–69`, `ages 70 and over`, `any age`.
fn ages_described(bands: &BTreeSet<usize>, ages: &[(i64, Option<i64>)]) -> String {
    if bands.len() == ages.len() {
        return "any age".into();
    }
    let mut ranges: Vec<(i64, Option<i64>)> = Vec::new();
    for &band in bands {
        let (first, last) = ages[band];
        match ranges.last_mut() {
            Some(range) if range.1.is_some_and(|end| end + 1 == first) => range.1 = last,
            _ => ranges.push((first, last)),
        }
    }
    let said: Vec<String> = ranges
        .iter()
        .map(|range| match range {
            (first, None) => format!("{first} and over"),
            (first, Some(last)) if first == last => first.to_string(),
            (first, Some(last)) => format!("{first}–{last}"),
        })
        .collect();
    let single = ranges.len() == 1 && ranges[0].1 == Some(ranges[0].0);
    format!(
        "{} {}",
        if single { "age" } else { "ages" },
        said.join(", ")
    )
}

fn or_list(names: impl Iterator<Item = String>) -> String {
    names.collect::<Vec<_>>().join(" or ")
}

/// A vocabulary value's JSON name (`individual_tier1`).
fn code_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
