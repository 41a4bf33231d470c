//! Monitoring rules versions as the log holds them (`monitor_rules_loaded` on each region's
//! supervision stream), the version a pass uses, and the command that loads a new one.
//!
//! A version is loaded once: `gongji monitor rules load` holds the ledger's only writer while
//! it reads what is loaded ([`load_command`]) and appends, so two versions of one name never
//! both land; loading the same rules again is nothing to do. The shipped Chongqing defaults
//! are used where no version is loaded for their region, under their own name, which no other
//! rules may take.

use gongji_domain::{Command, Day, Event};
use gongji_ledger::Ledger;

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

/// Where the rules of a pass come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A version loaded into the ledger.
    Loaded {
        position: u64,
        by: String,
        date: Day,
    },
    /// The shipped defaults (no version is loaded for their region).
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

/// Every version loaded into the ledger, region by region, each region's in log order.
pub fn loaded(ledger: &Ledger) -> Result<Vec<Loaded>, String> {
    let mut versions = Vec::new();
    for region in ledger.policy_regions().map_err(|e| e.to_string())? {
        for entry in ledger.supervision(&region).map_err(|e| e.to_string())? {
            if let Event::MonitorRulesLoaded {
                rules, by, date, ..
            } = &entry.event
            {
                let parsed = MonitorRules::from_json(rules).map_err(|why| {
                    format!(
                        "the monitoring rules recorded at position {} do not read: {why}",
                        entry.position
                    )
                })?;
                versions.push(Loaded {
                    rules: parsed,
                    position: entry.position,
                    by: by.clone(),
                    date: *date,
                });
            }
        }
    }
    Ok(versions)
}

/// The rules a pass uses: version `version` (of `region` when given) as loaded; without a
/// version, the latest loaded for `region` (or for the one region that has any). The shipped
/// defaults stand in where nothing is loaded for their region.
pub fn choose(
    ledger: &Ledger,
    region: Option<&str>,
    version: Option<&str>,
) -> Result<Chosen, String> {
    let all = loaded(ledger)?;
    let shipped = MonitorRules::chongqing();
    let of_region = |r: &Loaded| region.is_none_or(|region| r.rules.region == region);
    let loaded_for = |region: &str| all.iter().any(|l| l.rules.region == region);
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
    let shipped_fits = |region: Option<&str>| {
        region.is_none_or(|r| r == shipped.region) && !loaded_for(&shipped.region)
    };
    if let Some(version) = version {
        if let Some(found) = all
            .iter()
            .rev()
            .find(|l| l.rules.version == version && of_region(l))
        {
            return Ok(from_log(found));
        }
        if version == shipped.version && shipped_fits(region) {
            return Ok(Chosen {
                rules: shipped,
                source: Source::Shipped,
            });
        }
        let whose = region.map_or(String::new(), |r| format!(" for region {r}"));
        return Err(format!(
            "no monitoring rules {version} are loaded{whose} ({}); load a version with \
             `gongji monitor rules load FILE`",
            listing()
        ));
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
                    return Err(format!(
                        "monitoring rules are loaded for regions {}: name one with --region",
                        several.join(", ")
                    ))
                }
            }
        }
    };
    if let Some(latest) = all.iter().rev().find(|l| l.rules.region == region) {
        return Ok(from_log(latest));
    }
    if shipped_fits(Some(&region)) {
        return Ok(Chosen {
            rules: shipped,
            source: Source::Shipped,
        });
    }
    Err(format!(
        "no monitoring rules are loaded for region {region}; load a version with \
         `gongji monitor rules load FILE`"
    ))
}

/// The command that loads `rules` (read and validated), by `by` on `date`; None when the same
/// rules are loaded already. Refused: another version of the same name, or the shipped
/// defaults' name for other rules.
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
    for loaded in loaded(ledger)? {
        if loaded.rules.region == rules.region && loaded.rules.version == rules.version {
            if loaded.rules == *rules {
                return Ok(None);
            }
            return Err(format!(
                "monitoring rules {} of region {} are loaded already (position {}, by {}) \
                 with other thresholds; a change is a new version",
                rules.version, rules.region, loaded.position, loaded.by
            ));
        }
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
