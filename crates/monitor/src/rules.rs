//! Monitoring rules as data (监控规则): a version per region, read from a JSON file, every
//! threshold named. What each threshold means and why the shipped defaults are what they are
//! is `docs/supervision.md`.

use std::path::Path;

use gongji_domain::{Day, Money, Rate};
use serde::{Deserialize, Serialize};

/// The most frequency rules a version may hold.
pub const FREQUENCY_RULES_MAX: usize = 32;

/// The longest window any rule may keep open, in days: bounds what a pass holds in memory.
pub const WINDOW_DAYS_MAX: u32 = 366;

/// One version of a region's monitoring rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorRules {
    /// The version's name; every flag names it.
    pub version: String,
    /// The pooling region whose claims and payments the rules look at.
    pub region: String,
    /// The first day the rules apply to (movements dated earlier are not looked at).
    pub effective: Day,
    pub frequency: Vec<FrequencyRule>,
    pub splitting: SplittingRule,
    pub duplicate_visit: DuplicateVisitRule,
    pub family: FamilyRule,
    pub timing: TimingRule,
    pub institutions: InstitutionRule,
}

/// Which movements a frequency rule counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movements {
    /// Settled claims.
    Claims,
    /// Payments from personal accounts for care or medicine (premiums are not counted).
    AccountPayments,
}

/// Where the counted movements were made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// At a designated institution (a claim settled there, an account payment for its care).
    Institution,
    /// At a designated pharmacy.
    Pharmacy,
    /// Anywhere.
    Any,
}

/// The calendar period a frequency rule counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    /// Monday to Sunday.
    Week,
    Month,
}

/// Frequency (就诊频次): a member's movements of one kind in one period above `max`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyRule {
    /// The rule's name within the version (`frequency/NAME` in flags).
    pub name: String,
    pub movements: Movements,
    pub place: Place,
    pub period: Period,
    /// More than this many in one period is flagged.
    pub max: u32,
}

/// Splitting (分解支付, the 套现 pattern): account payments at one place within `window_days`,
/// each below `each_below`, at least `count_min` of them, together above `total_above`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplittingRule {
    pub window_days: u32,
    pub each_below: Money,
    pub count_min: u32,
    pub total_above: Money,
}

/// Duplicate visits (重复结算): one visit id settled more than once at one institution (its
/// claims dated within `visit_window_days` of each other, none reversed), or one member's
/// claims settled at `institutions_per_day_min` or more institutions on one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateVisitRule {
    pub visit_window_days: u32,
    pub institutions_per_day_min: u32,
}

/// Family sharing (家庭共济): a holder's payments for relatives in an insurance year above
/// `yearly_above`; payments for `relatives_per_day_min` or more relatives at pharmacies on one
/// day; payments for a relative within `after_binding_days` of binding, together above
/// `after_binding_above`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyRule {
    pub yearly_above: Money,
    pub relatives_per_day_min: u32,
    pub after_binding_days: u32,
    pub after_binding_above: Money,
}

/// Timing (时间异常): a claim or payment recorded more than `late_days` after its own date (by
/// the ledger's calendar: the latest date of a movement recorded before it); one recorded for
/// a member after the member's death was; account payments in the `before_exit_days` before
/// a death or a transfer, together above `before_exit_above`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingRule {
    pub late_days: u32,
    pub before_exit_days: u32,
    pub before_exit_above: Money,
}

/// Institution outliers (机构异常): an institution's month with at least `claims_min` claims
/// against its own `trailing_months` before (months without claims count as none): claims or
/// fund payments above `times_median` times the median; or more than `at_threshold_share` of
/// its claims settled exactly at the deductible or exactly at the annual limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionRule {
    pub trailing_months: u32,
    pub times_median: u32,
    pub claims_min: u32,
    pub at_threshold_share: Rate,
}

/// The defaults shipped for Chongqing (region 500000); `docs/supervision.md` gives the reason
/// for each figure.
pub const CHONGQING_DEFAULTS: &str =
    include_str!("../../../policies/monitor/500000-2024-01-01.json");

impl MonitorRules {
    /// The shipped Chongqing defaults.
    pub fn chongqing() -> MonitorRules {
        MonitorRules::from_json(CHONGQING_DEFAULTS).expect("the shipped defaults are valid")
    }

    /// Reads a version from JSON: a value that does not parse is named by its field path
    /// (`splitting.each_below: …`), and a version that parses is validated.
    pub fn from_json(text: &str) -> Result<MonitorRules, String> {
        let mut reader = serde_json::Deserializer::from_str(text);
        let rules: MonitorRules = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        })?;
        reader
            .end()
            .map_err(|e| format!("text after the rules: {e}"))?;
        rules.validate()?;
        Ok(rules)
    }

    /// Reads a version from a file, the file named in every error.
    pub fn from_file(path: &Path) -> Result<MonitorRules, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        MonitorRules::from_json(&text).map_err(|why| format!("{}: {why}", path.display()))
    }

    /// Every threshold sane: windows within [`WINDOW_DAYS_MAX`], amounts above zero, counts
    /// that can be crossed, names unique.
    pub fn validate(&self) -> Result<(), String> {
        check_id("version", &self.version)?;
        check_id("region", &self.region)?;
        if self.frequency.len() > FREQUENCY_RULES_MAX {
            return Err(format!(
                "frequency: {} rules, at most {FREQUENCY_RULES_MAX}",
                self.frequency.len()
            ));
        }
        for (at, rule) in self.frequency.iter().enumerate() {
            check_id(&format!("frequency[{at}].name"), &rule.name)?;
            if self.frequency[..at].iter().any(|r| r.name == rule.name) {
                return Err(format!(
                    "frequency[{at}].name: {} is the name of an earlier rule",
                    rule.name
                ));
            }
        }
        let s = &self.splitting;
        window("splitting.window_days", s.window_days)?;
        positive("splitting.each_below", s.each_below)?;
        positive("splitting.total_above", s.total_above)?;
        at_least("splitting.count_min", s.count_min, 2)?;
        let d = &self.duplicate_visit;
        window("duplicate_visit.visit_window_days", d.visit_window_days)?;
        at_least(
            "duplicate_visit.institutions_per_day_min",
            d.institutions_per_day_min,
            2,
        )?;
        let f = &self.family;
        positive("family.yearly_above", f.yearly_above)?;
        at_least("family.relatives_per_day_min", f.relatives_per_day_min, 2)?;
        window("family.after_binding_days", f.after_binding_days)?;
        positive("family.after_binding_above", f.after_binding_above)?;
        let t = &self.timing;
        window("timing.late_days", t.late_days)?;
        window("timing.before_exit_days", t.before_exit_days)?;
        positive("timing.before_exit_above", t.before_exit_above)?;
        let i = &self.institutions;
        if !(1..=12).contains(&i.trailing_months) {
            return Err(format!(
                "institutions.trailing_months: {} must be 1 to 12",
                i.trailing_months
            ));
        }
        at_least("institutions.times_median", i.times_median, 2)?;
        at_least("institutions.claims_min", i.claims_min, 1)?;
        Ok(())
    }
}

fn check_id(field: &str, id: &str) -> Result<(), String> {
    let printable = id.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if id.is_empty() || id.len() > gongji_domain::command::ID_BYTES_MAX || !printable {
        return Err(format!(
            "{field}: {id:?} must be 1 to {} printable bytes without spaces",
            gongji_domain::command::ID_BYTES_MAX
        ));
    }
    Ok(())
}

fn window(field: &str, days: u32) -> Result<(), String> {
    if !(1..=WINDOW_DAYS_MAX).contains(&days) {
        return Err(format!(
            "{field}: {days} must be 1 to {WINDOW_DAYS_MAX} days"
        ));
    }
    Ok(())
}

fn positive(field: &str, amount: Money) -> Result<(), String> {
    if amount <= Money::ZERO {
        return Err(format!("{field}: {amount} must be more than 0.00"));
    }
    Ok(())
}

fn at_least(field: &str, value: u32, min: u32) -> Result<(), String> {
    if value < min {
        return Err(format!("{field}: {value} must be at least {min}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_defaults_are_valid() {
        let rules = MonitorRules::chongqing();
        assert_eq!(rules.region, "500000");
        assert!(!rules.frequency.is_empty());
    }

    #[test]
    fn a_mistyped_threshold_is_named_by_its_field_path() {
        let text = CHONGQING_DEFAULTS.replace(
            r#""each_below": "200.00""#,
            r#""each_below": "two hundred""#,
        );
        let why = MonitorRules::from_json(&text).unwrap_err();
        assert!(why.starts_with("splitting.each_below: "), "{why}");
    }

    #[test]
    fn an_empty_window_and_a_count_that_cannot_be_crossed_are_refused() {
        let mut rules = MonitorRules::chongqing();
        rules.splitting.window_days = 0;
        assert!(rules
            .validate()
            .unwrap_err()
            .starts_with("splitting.window_days"));
        let mut rules = MonitorRules::chongqing();
        rules.duplicate_visit.institutions_per_day_min = 1;
        assert!(rules
            .validate()
            .unwrap_err()
            .starts_with("duplicate_visit.institutions_per_day_min"));
        let mut rules = MonitorRules::chongqing();
        rules.frequency.push(rules.frequency[0].clone());
        assert!(rules.validate().unwrap_err().contains("earlier rule"));
    }
}
