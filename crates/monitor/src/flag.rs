//! A flag: what a rule found, with the figures that crossed its threshold and the positions of
//! the events that are its evidence.

use gongji_domain::types::FlagDecision;
use gongji_domain::Day;
use serde::Serialize;

/// The most evidence positions a flag lists (an institution's month may have thousands of
/// claims): `evidence_count` says how many there were.
pub const EVIDENCE_MAX: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// Derived from the rules' version, the rule, the subject and the evidence: the same log
    /// and rules give the same ids, and new evidence gives a new id.
    pub id: String,
    /// `KIND/CHECK`: `frequency/NAME`, `splitting`, `duplicate_visit/same_visit`, …
    pub rule: String,
    pub rules_version: String,
    pub region: String,
    /// The member the flag is about (for family rules, the account holder)…
    pub member: Option<String>,
    /// …or the institution (or both: a splitting flag names the place too).
    pub institution: Option<String>,
    /// The period the evidence lies in (own dates).
    pub from: Day,
    pub to: Day,
    pub figures: Vec<Figure>,
    /// Log positions of the evidence, ascending (at most [`EVIDENCE_MAX`]).
    pub evidence: Vec<u64>,
    pub evidence_count: u64,
    /// The latest decision an auditor recorded on the flag, if any.
    pub decision: Option<Decided>,
}

/// An auditor's decision on a flag, as the log records it (`flag_decided`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decided {
    pub decision: FlagDecision,
    pub reason: String,
    pub by: String,
    pub date: Day,
    /// The decision's record in the log.
    pub position: u64,
}

/// One figure of a flag and the threshold it crossed (as text: counts, days and amounts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: String,
    /// The rule's threshold and how the figure compares with it (`> 2`, `>= 3`).
    pub threshold: String,
}

impl Figure {
    pub fn new(name: &str, value: impl ToString, threshold: impl ToString) -> Figure {
        Figure {
            name: name.to_string(),
            value: value.to_string(),
            threshold: threshold.to_string(),
        }
    }
}

/// What a detector found, before the flag is made.
pub struct Found {
    pub rule: String,
    pub member: Option<String>,
    pub institution: Option<String>,
    pub from: Day,
    pub to: Day,
    pub figures: Vec<Figure>,
    pub evidence: Vec<u64>,
}

impl Found {
    /// The flag, its id derived from `rules_version` and everything found.
    pub fn flag(mut self, rules_version: &str, region: &str) -> Flag {
        self.evidence.sort_unstable();
        self.evidence.dedup();
        let mut hash = blake3::Hasher::new();
        for part in [
            rules_version,
            &self.rule,
            region,
            self.member.as_deref().unwrap_or(""),
            self.institution.as_deref().unwrap_or(""),
        ] {
            hash.update(part.as_bytes());
            hash.update(&[0]);
        }
        for position in &self.evidence {
            hash.update(&position.to_le_bytes());
        }
        let digest = hash.finalize();
        let id: String = digest.as_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let evidence_count = self.evidence.len() as u64;
        self.evidence.truncate(EVIDENCE_MAX);
        Flag {
            id: format!("F{id}"),
            rule: self.rule,
            rules_version: rules_version.to_string(),
            region: region.to_string(),
            member: self.member,
            institution: self.institution,
            from: self.from,
            to: self.to,
            figures: self.figures,
            evidence: self.evidence,
            evidence_count,
            decision: None,
        }
    }
}
