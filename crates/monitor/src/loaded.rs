//! Monitoring rules versions as the log holds them (`monitor_rules_loaded` on each region's
//! supervision stream), the version a pass uses, and the command that loads a new one.
//!
//! A version name is loaded once in a ledger: `gongji monitor rules load` holds the ledger's
//! only writer while it reads what is loaded ([`load_command`]) and appends, so two versions of
//! one name never both land; loading the same rules again is nothing to do. The shipped
//! Chongqing defaults are used where no version is loaded for their region, and by their own
//! name always (flags decided under them stay explainable), which no other rules may take. A
//! recorded version this program cannot read (an import's) is set aside, never chosen.

use gongji_domain::{Command, Day, Event};
use gongji_ledger::{Ledger, LedgerError};

use crate::MonitorRules;

/// A version as the log recorded it.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub rules: MonitorRules,
    /// The log position of its `monitor_rules_loaded` event.
    pub position: u64,
    pub by: String,
    pub date: Day,
}

/// A recorded version whose rules this program cannot read (an imported log's, or a later
/// program's): left out of every choice, and listed with the reason.
#[derive(Clone, Debug)]
pub struct Unreadable {
    pub region: String,
    pub version: String,
    pub position: u64,
    pub why: String,
}

/// Every version recorded in a ledger.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    /// Region by region, each region's in log order.
    pub loaded: Vec<Loaded>,
    pub unreadable: Vec<Unreadable>,
}

/// Where the rules of a pass come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A version loaded into the ledger.
    Loaded {
        position: u64,
        by: String,
        date: Day,
    },
    /// The shipped defaults.
    Shipped,
    /// A file not loaded (a draft tried out); no decision may be recorded on its flags.
    Draft,
}

/// Rules for a pass, and where they come from.
#[derive(Clone, Debug)]
pub struct Chosen {
    pub rules: MonitorRules,
    pub source: Source,
}

/// Why no rules were chosen.
#[derive(Debug)]
pub enum NotChosen {
    /// No version of that name (or none for that region) is loaded.
    Unknown(String),
    /// The question does not name one version: several regions have rules and none was
    /// named, or the version named does not read.
    Unclear(String),
    /// The ledger could not be read.
    Ledger(LedgerError),
}

impl std::fmt::Display for NotChosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotChosen::Unknown(why) | NotChosen::Unclear(why) => f.write_str(why),
            NotChosen::Ledger(error) => write!(f, "{error}"),
        }
    }
}

/// Every version loaded into the ledger.
pub fn loaded(ledger: &Ledger) -> Result<Versions, LedgerError> {
    let mut versions = Versions::default();
    for region in ledger.policy_regions()? {
        for entry in ledger.supervision(&region)? {
            if let Event::MonitorRulesLoaded {
                rules,
                rules_version,
                by,
                date,
                ..
            } = &entry.event
            {
                match MonitorRules::from_json(rules) {
                    Ok(parsed) => versions.loaded.push(Loaded {
                        rules: parsed,
                        position: entry.position,
                        by: by.clone(),
                        date: *date,
                    }),
                    Err(why) => versions.unreadable.push(Unreadable {
                        region: region.clone(),
                        version: rules_version.clone(),
                        position: entry.position,
                        why,
                    }),
                }
            }
        }
    }
    Ok(versions)
}

/// The rules a pass uses: version `version` as loaded (or the shipped defaults, by their
/// name); without a version, the latest loaded for `region` (or for the one region that has
/// any), the shipped defaults where nothing is loaded for their region. Version names are
/// unique in a ledger ([`load_command`]).
pub fn choose(
    ledger: &Ledger,
    region: Option<&str>,
    version: Option<&str>,
) -> Result<Chosen, NotChosen> {
    let versions = loaded(ledger).map_err(NotChosen::Ledger)?;
    let all = &versions.loaded;
    let shipped = MonitorRules::chongqing();
    let listing = || {
        if all.is_empty() {
            "none is loaded".to_string()
        } else {
            let names: Vec<String> = all
                .iter()
                .map(|l| format!("{} (region {})", l.rules.version, l.rules.region))
                .collect();
            format!("loaded: {}", names.join(", "))
        }
    };
    let from_log = |l: &Loaded| Chosen {
        rules: l.rules.clone(),
        source: Source::Loaded {
            position: l.position,
            by: l.by.clone(),
            date: l.date,
        },
    };
    let shipped_region = |region: Option<&str>| region.is_none_or(|r| r == shipped.region);
    if let Some(version) = version {
        let of_region = |r: &str| region.is_none_or(|region| r == region);
        if let Some(found) = all
            .iter()
            .find(|l| l.rules.version == version && of_region(&l.rules.region))
        {
            return Ok(from_log(found));
        }
        if let Some(bad) = versions
            .unreadable
            .iter()
            .find(|u| u.version == version && of_region(&u.region))
        {
            return Err(NotChosen::Unclear(format!(
                "monitoring rules {version} (position {}) do not read: {}",
                bad.position, bad.why
            )));
        }
        if version == shipped.version && shipped_region(region) {
            return Ok(Chosen {
                rules: shipped,
                source: Source::Shipped,
            });
        }
        let whose = region.map_or(String::new(), |r| format!(" for region {r}"));
        return Err(NotChosen::Unknown(format!(
            "no monitoring rules {version} are loaded{whose} ({}); load a version with \
             `gongji monitor rules load FILE`",
            listing()
        )));
    }
    let region = match region {
        Some(region) => region.to_string(),
        None => {
            let mut regions: Vec<&str> = all.iter().map(|l| l.rules.region.as_str()).collect();
            regions.sort_unstable();
            regions.dedup();
            match regions.as_slice() {
                [] => shipped.region.clone(),
                [one] => one.to_string(),
                several => {
                    return Err(NotChosen::Unclear(format!(
                        "monitoring rules are loaded for regions {}: name the region, or \
                         the rules version",
                        several.join(", ")
                    )))
                }
            }
        }
    };
    if let Some(latest) = all.iter().rev().find(|l| l.rules.region == region) {
        return Ok(from_log(latest));
    }
    if region == shipped.region {
        return Ok(Chosen {
            rules: shipped,
            source: Source::Shipped,
        });
    }
    Err(NotChosen::Unknown(format!(
        "no monitoring rules are loaded for region {region}; load a version with \
         `gongji monitor rules load FILE`"
    )))
}

/// The command that loads `rules` (read and validated), by `by` on `date`; None when the same
/// rules are loaded already. Refused: a version of the same name with other rules (in any
/// region: a name picks one version), or the shipped defaults' name for other rules.
pub fn load_command(
    ledger: &Ledger,
    rules: &MonitorRules,
    by: &str,
    date: Day,
) -> Result<Option<Command>, String> {
    rules.validate()?;
    let shipped = MonitorRules::chongqing();
    if rules.version == shipped.version && *rules != shipped {
        return Err(format!(
            "{} is the name of the shipped defaults; give these rules a version of their own",
            rules.version
        ));
    }
    let versions = loaded(ledger).map_err(|e| e.to_string())?;
    for loaded in &versions.loaded {
        if loaded.rules.version != rules.version {
            continue;
        }
        if loaded.rules == *rules {
            return Ok(None);
        }
        return Err(format!(
            "monitoring rules {} are loaded already (region {}, position {}, by {}) with \
             other thresholds; a change is a new version, under a name of its own",
            rules.version, loaded.rules.region, loaded.position, loaded.by
        ));
    }
    if let Some(bad) = versions
        .unreadable
        .iter()
        .find(|u| u.version == rules.version)
    {
        return Err(format!(
            "monitoring rules {} are recorded already (position {}, unreadable: {})",
            rules.version, bad.position, bad.why
        ));
    }
    let text = serde_json::to_string(rules).map_err(|e| e.to_string())?;
    Ok(Some(Command::LoadMonitorRules {
        region: rules.region.clone(),
        version: rules.version.clone(),
        effective: rules.effective,
        rules: text,
        by: by.to_string(),
        date,
    }))
}
