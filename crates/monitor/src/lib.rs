//! Fund supervision (智能监控): monitoring rules run over the ledger's log, and the flags they
//! raise with their evidence.
//!
//! What it is for: one streaming pass over the log in order ([`run`]), each claim, account
//! payment, binding, death and transfer handed to the detectors (`detect`: frequency,
//! splitting, duplicate visits, family sharing, timing, institution outliers), which keep only
//! what their rules' windows can still use; each flag ([`Flag`]) names the rule and the rules'
//! version, the member or institution, the period, the figures that crossed the threshold and
//! the log positions of its evidence, under an id derived from all of them, so the same log
//! and rules give the same flags. Rules are data ([`MonitorRules`]: a JSON file per region and
//! version, Chongqing's defaults shipped), loaded into the log as versions ([`loaded`]: which
//! version a pass uses, and the command that loads one). [`Live`] keeps a pass level with a
//! growing log (the service's `/v1/flags`).
//!
//! What it is not for: it decides nothing and writes nothing; the ledger is only read, through
//! `gongji-ledger`'s [`Ledger::scan`](gongji_ledger::Ledger::scan) (the chain checked over
//! every record on the way).

pub mod detect;
pub mod flag;
pub mod live;
pub mod loaded;
pub mod rules;

use std::collections::BTreeMap;

use gongji_domain::types::FlagDecision;
use gongji_ledger::{HistoryEntry, Ledger, LedgerError};
use serde::Serialize;

pub use detect::{Scope, Watch};
pub use flag::{Decided, Figure, Flag};
pub use live::Live;
pub use loaded::{choose, load_command, Chosen, NotChosen, Source};
pub use rules::MonitorRules;

/// The pass's maps: keyed by ids the ledger made, so a fast hash will do.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The event kinds the detectors look at (every other record is passed by undecoded).
pub(crate) const WATCHED: [&str; 8] = [
    "claim_settled",
    "claim_reversed",
    "account_paid",
    "family_bound",
    "deceased",
    "transferred",
    "transfer_sent",
    "flag_decided",
];

/// What a pass found.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorReport {
    pub rules_version: String,
    pub region: String,
    /// Log records read.
    pub records: u64,
    /// Flags per rule (every rule of the version, none found included; dismissed ones too).
    pub by_rule: BTreeMap<String, u64>,
    /// Flags an auditor confirmed, and dismissed (the latter listed only when asked).
    pub confirmed: u64,
    pub dismissed: u64,
    pub flags: Vec<Flag>,
}

/// What a version's flags come to: the flags per rule (every rule of the version, none found
/// included), and how many an auditor confirmed and dismissed.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub by_rule: BTreeMap<String, u64>,
    pub confirmed: u64,
    pub dismissed: u64,
}

impl Tally {
    pub fn of(rules: &MonitorRules, flags: &[Flag]) -> Tally {
        let mut tally = Tally {
            by_rule: rule_names(rules)
                .into_iter()
                .map(|name| (name, 0))
                .collect(),
            ..Tally::default()
        };
        for flag in flags {
            *tally.by_rule.entry(flag.rule.clone()).or_default() += 1;
            match flag.decision.as_ref().map(|d| d.decision) {
                Some(FlagDecision::Confirmed) => tally.confirmed += 1,
                Some(FlagDecision::Dismissed) => tally.dismissed += 1,
                None => {}
            }
        }
        tally
    }
}

/// Every rule a version can raise a flag under, by name.
pub fn rule_names(rules: &MonitorRules) -> Vec<String> {
    let mut names: Vec<String> = rules
        .frequency
        .iter()
        .map(|r| format!("frequency/{}", r.name))
        .collect();
    for name in [
        "splitting",
        "duplicate_visit/same_visit",
        "duplicate_visit/same_day",
        "family/yearly",
        "family/pharmacy_day",
        "family/after_binding",
        "timing/late",
        "timing/after_death",
        "timing/before_death",
        "timing/before_transfer",
        "institution/claims",
        "institution/fund",
        "institution/at_threshold",
    ] {
        names.push(name.to_string());
    }
    names
}

/// Runs `rules` over the ledger's whole log; `progress(done, total)` counts records.
pub fn run(
    ledger: &Ledger,
    rules: &MonitorRules,
    scope: Scope,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<MonitorReport, LedgerError> {
    let with_dismissed = scope.with_dismissed;
    let mut watch = Watch::new(rules, scope);
    let records = ledger.scan(
        Some(&WATCHED),
        &mut |scanned| {
            watch.observe(scanned.position, scanned.recorded_at_micros, scanned.event);
            Ok(())
        },
        progress,
    )?;
    let flags = watch.finish();
    let tally = Tally::of(rules, &flags);
    let flags = flags
        .into_iter()
        .filter(|f| {
            with_dismissed
                || f.decision
                    .as_ref()
                    .is_none_or(|d| d.decision != FlagDecision::Dismissed)
        })
        .collect();
    Ok(MonitorReport {
        rules_version: rules.version.clone(),
        region: rules.region.clone(),
        records,
        by_rule: tally.by_rule,
        confirmed: tally.confirmed,
        dismissed: tally.dismissed,
        flags,
    })
}

/// A flag and its evidence, each event as `history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FlagExplained {
    pub flag: Flag,
    pub evidence: Vec<HistoryEntry>,
}

/// The flag `id` of a pass of `rules` over the ledger, with its evidence events; None when the
/// pass raises no such flag.
pub fn explain(
    ledger: &Ledger,
    rules: &MonitorRules,
    id: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<FlagExplained>, LedgerError> {
    let scope = Scope {
        with_dismissed: true,
        ..Scope::default()
    };
    let report = run(ledger, rules, scope, progress)?;
    let Some(flag) = report.flags.into_iter().find(|f| f.id == id) else {
        return Ok(None);
    };
    let evidence = ledger.entries_at(&flag.evidence)?;
    Ok(Some(FlagExplained { flag, evidence }))
}
