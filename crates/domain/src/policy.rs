//! Policy versions as data: every figure the rules use, per region and effective date.
//!
//! A policy version is loaded into the ledger as an event, so replay never depends on files
//! outside the log. Rules are lists matched in order: the first rule whose conditions all hold
//! applies. That one shape carries Chongqing's tables and the variations other regions publish
//! (level-dependent deductibles with a yearly cap, ratios by age band or by cumulative cost band,
//! no annual limit, an insurance year starting on 1 July, fixed or age-banded credits).

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::event::SchemaVersion;
use crate::money::{Money, Rate};
use crate::policy_check::Finding;
use crate::time::{Day, Month};
use crate::types::{InstitutionKind, RejectionCode, Relation, Scheme, Status};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[bincode(decode_context = "SchemaVersion")]
#[serde(deny_unknown_fields)]
pub struct PolicyVersion {
    /// The pooling region's administrative code, e.g. "500000" for Chongqing.
    pub region: String,
    /// A name for this version, unique within the region, recorded on every settlement.
    pub version: String,
    pub effective: Day,
    /// The first day of the insurance year, "MM-DD" ("01-01" for a calendar year).
    #[serde(default = "calendar_year")]
    pub year_start: String,
    /// Where the figures come from, for auditors.
    #[serde(default)]
    pub sources: Vec<String>,
    /// How each contribution is split: the share of the base paid into the pooled fund.
    pub contributions: Vec<ContributionRule>,
    /// What is credited to personal accounts each month.
    pub credits: Vec<CreditRule>,
    pub outpatient: Outpatient,
    /// Family sharing (家庭共济): who may be bound, how many, with what limits.
    #[serde(default)]
    pub family: FamilyRules,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields)]
pub struct FamilyRules {
    /// Relations that may be bound to a holder's account.
    pub relations: Vec<Relation>,
    /// Most relatives bound to one holder at a time; None: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relatives_max: Option<u32>,
    /// Whether the holder may set a yearly spending limit for a relative.
    #[serde(default = "yes")]
    pub yearly_limit_allowed: bool,
}

fn yes() -> bool {
    true
}

/// Spouse, parents and children, no cap, limits allowed: the 2021 national rule (国办发〔2021〕14号).
impl Default for FamilyRules {
    fn default() -> FamilyRules {
        FamilyRules {
            relations: vec![Relation::Spouse, Relation::Parent, Relation::Child],
            relatives_max: None,
            yearly_limit_allowed: true,
        }
    }
}

fn calendar_year() -> String {
    "01-01".to_string()
}

/// Conditions on a rule; an absent condition always holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Encode)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<Status>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemes: Option<Vec<Scheme>>,
    /// Institution levels (1, 2, 3); for pharmacy claims, the prescriber's level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<u8>>,
    /// Kinds of the place a claim was settled at (a grass-roots institution, another
    /// hospital, a pharmacy); rules without claims (credits) never match a list of kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_kinds: Option<Vec<InstitutionKind>>,
    /// Age bands, inclusive, with age counted from the calendar month of the birthday.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_min: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_max: Option<i32>,
    /// For lump-sum (趸缴) members: inside (true) or after (false) the lump-sum period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_lump_sum_period: Option<bool>,
}

/// What is known about a member and a claim when a rule is chosen.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    pub status: Status,
    pub scheme: Scheme,
    pub level: Option<u8>,
    /// The claim's institution kind; None outside a claim.
    pub kind: Option<InstitutionKind>,
    pub age: i32,
    pub in_lump_sum_period: bool,
}

impl When {
    pub fn holds(&self, facts: &Facts) -> bool {
        let listed = |list: &Option<Vec<_>>, value| {
            list.as_ref().is_none_or(|l: &Vec<_>| l.contains(&value))
        };
        listed(&self.statuses, facts.status)
            && self
                .schemes
                .as_ref()
                .is_none_or(|l| l.contains(&facts.scheme))
            && match (&self.levels, facts.level) {
                (None, _) => true,
                (Some(levels), Some(level)) => levels.contains(&level),
                (Some(_), None) => false,
            }
            && match (&self.institution_kinds, facts.kind) {
                (None, _) => true,
                (Some(kinds), Some(kind)) => kinds.contains(&kind),
                (Some(_), None) => false,
            }
            && self.age_min.is_none_or(|min| facts.age >= min)
            && self.age_max.is_none_or(|max| facts.age <= max)
            && self
                .in_lump_sum_period
                .is_none_or(|inside| inside == facts.in_lump_sum_period)
    }
}

/// Written by hand for the condition schema 2 added: a schema-1 rule has no
/// `institution_kinds` (it holds at every kind).
impl bincode::Decode<SchemaVersion> for When {
    fn decode<D: bincode::de::Decoder<Context = SchemaVersion>>(
        decoder: &mut D,
    ) -> Result<When, bincode::error::DecodeError> {
        use bincode::Decode as D_;
        let statuses = D_::decode(decoder)?;
        let schemes = D_::decode(decoder)?;
        let levels = D_::decode(decoder)?;
        let institution_kinds = if decoder.context().has(2) {
            D_::decode(decoder)?
        } else {
            None
        };
        Ok(When {
            statuses,
            schemes,
            levels,
            institution_kinds,
            age_min: D_::decode(decoder)?,
            age_max: D_::decode(decoder)?,
            in_lump_sum_period: D_::decode(decoder)?,
        })
    }
}
bincode::impl_borrow_decode_with_context!(When, SchemaVersion);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields)]
pub struct ContributionRule {
    pub schemes: Vec<Scheme>,
    /// Share of the contribution base paid into the pooled fund (for employees: the employer's
    /// contribution, 单位缴费, all of which goes to the pooled fund).
    pub pooled_rate: Rate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "snake_case")]
pub enum CreditSource {
    /// Part of the member's own contribution: credited by `contribute`.
    Contribution,
    /// Paid by the region's pooled fund: credited by the monthly `allocate` run.
    PooledFund,
    /// Out of a lump sum paid in advance: credited by the monthly `allocate` run.
    LumpSum,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[bincode(decode_context = "SchemaVersion")]
#[serde(deny_unknown_fields)]
pub struct CreditRule {
    #[serde(default)]
    pub when: When,
    pub paid_by: CreditSource,
    /// A share of the contribution base (or of the lump-sum base)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_of_base: Option<Rate>,
    /// ...or a fixed amount a month. Exactly one of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<Money>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[bincode(decode_context = "SchemaVersion")]
#[serde(deny_unknown_fields)]
pub struct Outpatient {
    pub deductibles: Vec<DeductibleRule>,
    /// The most deductible a member pays in one insurance year across all groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deductible_cap: Option<Money>,
    pub ratios: Vec<RatioRule>,
    pub limits: Vec<LimitRule>,
    /// The pooled fund's yearly maximum per member (最高支付限额), special and ordinary payments
    /// together; beyond it the large-amount fund pays. None: no maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annual_max: Option<Money>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[bincode(decode_context = "SchemaVersion")]
#[serde(deny_unknown_fields)]
pub struct DeductibleRule {
    #[serde(default)]
    pub when: When,
    /// The yearly deductible for claims this rule matches.
    pub amount: Money,
    /// Rules with the same group fill one accumulated deductible.
    #[serde(default = "default_group")]
    pub group: String,
}

fn default_group() -> String {
    "outpatient".to_string()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[bincode(decode_context = "SchemaVersion")]
#[serde(deny_unknown_fields)]
pub struct RatioRule {
    #[serde(default)]
    pub when: When,
    /// Ratios by band of the year's cumulative ordinary-pooling cost; the last band has no
    /// upper end. A single band is a flat ratio.
    pub bands: Vec<Band>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// The band ends where the year's cumulative cost reaches this amount; None: no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<Money>,
    pub ratio: Rate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[bincode(decode_context = "SchemaVersion")]
#[serde(deny_unknown_fields)]
pub struct LimitRule {
    #[serde(default)]
    pub when: When,
    /// The yearly limit of ordinary outpatient payments; None: no limit. Required in the JSON:
    /// a rule without `amount` is refused, and no limit is written `"amount": null`, never
    /// left out (a forgotten figure must not read as "no limit"). `null` is what a policy
    /// version has always been written back as (answers, archives), so they read unchanged.
    #[serde(deserialize_with = "amount_or_null")]
    pub amount: Option<Money>,
}

/// An amount or `null`, the field required (serde's derive takes a missing `Option` field as
/// `None` unless the field is read by a function of its own).
fn amount_or_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Money>, D::Error> {
    Option::<Money>::deserialize(deserializer)
}

impl PolicyVersion {
    /// Reads a policy version from its JSON; a refusal says where (`outpatient.ratios[3].bands
    /// [0].ratio`) and what is wrong. Checks only what JSON types say: see [`Self::validate`]
    /// and [`crate::policy_check`] for the rest.
    pub fn from_json(value: &serde_json::Value) -> Result<PolicyVersion, ParseError> {
        serde_path_to_error::deserialize(value).map_err(|error| {
            let path = match error.path().to_string() {
                root if root == "." => String::new(),
                path => path,
            };
            ParseError::new(path, &error.into_inner().to_string())
        })
    }

    /// Checks what JSON types cannot: one amount kind per credit rule, bands in order, a valid
    /// year start, levels 1 to 3, every amount from 0 to `AMOUNT_FEN_MAX` (a decoded policy is
    /// held to what a parsed one is: its figures are copied into settlements). Refuses with
    /// the first of [`Self::faults`]. This is what a version in a log is held to: it never
    /// gets stricter (stricter checks go into [`crate::policy_check`]).
    pub fn validate(&self) -> Result<(), String> {
        match self.faults().into_iter().next() {
            Some(fault) => Err(fault.to_string()),
            None => Ok(()),
        }
    }

    /// Everything [`Self::validate`] refuses, each with its path, in the order of the file.
    pub fn faults(&self) -> Vec<Finding> {
        let mut faults = Vec::new();
        let mut fault = |path: String, message: String| faults.push(Finding { path, message });
        if self.region.is_empty() || self.region.len() > 32 {
            fault("region".into(), "must be 1 to 32 characters".into());
        }
        if self.version.is_empty() || self.version.len() > 64 {
            fault("version".into(), "must be 1 to 64 characters".into());
        }
        if let Err(why) = self.year_start_month_day() {
            fault("year_start".into(), why);
        }
        for (rule, when) in self.rule_conditions() {
            if let Some(levels) = &when.levels {
                if levels.iter().any(|l| !(1..=3).contains(l)) {
                    fault(
                        format!("{rule}.when.levels"),
                        format!("levels {levels:?} must each be 1, 2 or 3"),
                    );
                }
            }
        }
        for (index, rule) in self.credits.iter().enumerate() {
            match (&rule.share_of_base, &rule.fixed) {
                (Some(_), None) => {}
                (None, Some(amount)) if !amount.is_negative() => {}
                _ => fault(
                    format!("credits[{index}]"),
                    "needs exactly one of share_of_base and a non-negative fixed".into(),
                ),
            }
        }
        let out_of_bounds = |m: Money| m.is_negative() || m.fen() > crate::money::AMOUNT_FEN_MAX;
        for (path, amount) in self.amounts() {
            if out_of_bounds(amount) {
                let max = Money::from_fen(crate::money::AMOUNT_FEN_MAX);
                fault(path, format!("must be from 0 to {max}; {amount} is not"));
            }
        }
        for (index, rule) in self.outpatient.ratios.iter().enumerate() {
            let path = format!("outpatient.ratios[{index}].bands");
            let ends: Vec<Option<Money>> = rule.bands.iter().map(|b| b.up_to).collect();
            let Some((last, inner)) = ends.split_last() else {
                fault(path, "a ratio rule needs at least one band".into());
                continue;
            };
            let inner_ok = inner.iter().all(Option::is_some)
                && inner.windows(2).all(|w| w[0] < w[1])
                && last.is_none();
            if !inner_ok {
                fault(
                    path,
                    "bands must have increasing up_to and the last none".into(),
                );
            }
        }
        faults
    }

    /// Every rule's path (`credits[0]`, `outpatient.ratios[2]`) and conditions, in the order of
    /// the file.
    pub fn rule_conditions(&self) -> impl Iterator<Item = (String, &When)> {
        let o = &self.outpatient;
        let credits = self.credits.iter().map(|r| &r.when);
        let at = |list: &'static str| move |(i, when)| (format!("{list}[{i}]"), when);
        credits
            .enumerate()
            .map(at("credits"))
            .chain(
                o.deductibles
                    .iter()
                    .map(|r| &r.when)
                    .enumerate()
                    .map(at("outpatient.deductibles")),
            )
            .chain(
                o.ratios
                    .iter()
                    .map(|r| &r.when)
                    .enumerate()
                    .map(at("outpatient.ratios")),
            )
            .chain(
                o.limits
                    .iter()
                    .map(|r| &r.when)
                    .enumerate()
                    .map(at("outpatient.limits")),
            )
    }

    /// Every amount the version states, with its path.
    fn amounts(&self) -> Vec<(String, Money)> {
        let o = &self.outpatient;
        let mut amounts = Vec::new();
        let mut add = |path: String, amount: Option<Money>| {
            if let Some(amount) = amount {
                amounts.push((path, amount));
            }
        };
        for (i, rule) in self.credits.iter().enumerate() {
            add(format!("credits[{i}].fixed"), rule.fixed);
        }
        for (i, rule) in o.deductibles.iter().enumerate() {
            add(
                format!("outpatient.deductibles[{i}].amount"),
                Some(rule.amount),
            );
        }
        add("outpatient.deductible_cap".into(), o.deductible_cap);
        for (i, rule) in o.ratios.iter().enumerate() {
            for (j, band) in rule.bands.iter().enumerate() {
                add(
                    format!("outpatient.ratios[{i}].bands[{j}].up_to"),
                    band.up_to,
                );
            }
        }
        for (i, rule) in o.limits.iter().enumerate() {
            add(format!("outpatient.limits[{i}].amount"), rule.amount);
        }
        add("outpatient.annual_max".into(), o.annual_max);
        amounts
    }

    fn year_start_month_day(&self) -> Result<(u32, u32), String> {
        let bad = || {
            format!(
                "year_start '{}' is not the first day of a month like \"07-01\"",
                self.year_start
            )
        };
        let (month, day) = self.year_start.split_once('-').ok_or_else(bad)?;
        let month: u32 = month.parse().map_err(|_| bad())?;
        let day: u32 = day.parse().map_err(|_| bad())?;
        // The year starts on the first of a month, so a year is made of whole months.
        if day != 1 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok((month, day))
    }

    /// The first day of insurance year `year`.
    pub fn year_first_day(&self, year: i32) -> Option<Day> {
        let (month, day) = self
            .year_start_month_day()
            .expect("a loaded policy version was validated");
        Day::from_ymd(year, month, day)
    }

    /// The insurance year a day falls in, named by the calendar year it starts in.
    pub fn insurance_year(&self, day: Day) -> i32 {
        let (month, start_day) = self
            .year_start_month_day()
            .expect("a loaded policy version was validated");
        let date = day.date();
        use chrono::Datelike;
        if (date.month(), date.day()) >= (month, start_day) {
            date.year()
        } else {
            date.year() - 1
        }
    }

    pub fn pooled_rate(&self, scheme: Scheme) -> Option<Rate> {
        self.contributions
            .iter()
            .find(|r| r.schemes.contains(&scheme))
            .map(|r| r.pooled_rate)
    }

    /// The first credit rule that applies; `sources` limits which kinds are considered.
    pub fn credit_rule(&self, facts: &Facts, sources: &[CreditSource]) -> Option<&CreditRule> {
        self.credits
            .iter()
            .filter(|r| sources.contains(&r.paid_by))
            .find(|r| r.when.holds(facts))
    }

    pub fn deductible_rule(&self, facts: &Facts) -> Option<&DeductibleRule> {
        self.outpatient
            .deductibles
            .iter()
            .find(|r| r.when.holds(facts))
    }

    pub fn ratio_rule(&self, facts: &Facts) -> Option<&RatioRule> {
        self.outpatient.ratios.iter().find(|r| r.when.holds(facts))
    }

    pub fn limit_rule(&self, facts: &Facts) -> Option<&LimitRule> {
        self.outpatient.limits.iter().find(|r| r.when.holds(facts))
    }
}

/// Why a policy version's JSON is not one: where, and what, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The field, like `outpatient.ratios[3].bands[0].ratio`; empty: the policy as a whole.
    pub path: String,
    pub message: String,
    /// `malformed_amount` or `malformed_date` for an amount or a day, else `invalid_value`.
    pub code: RejectionCode,
}

impl ParseError {
    /// From serde's refusal at `path`: the code an amount's or a day's refusal starts with
    /// taken off, a missing or unknown field said in words.
    fn new(path: String, refusal: &str) -> ParseError {
        let coded = [RejectionCode::MalformedAmount, RejectionCode::MalformedDate]
            .into_iter()
            .find_map(|code| {
                let prefix = format!("{}: ", code.as_str());
                refusal
                    .strip_prefix(&prefix)
                    .map(|why| (code, why.to_string()))
            });
        let (code, message) = match coded {
            Some(coded) => coded,
            None => (RejectionCode::InvalidValue, field_words(&path, refusal)),
        };
        ParseError {
            path,
            message,
            code,
        }
    }
}

/// serde's words for a missing or an unknown field, said for a clerk; others as they are.
fn field_words(path: &str, refusal: &str) -> String {
    let named = |rest: &str| rest.split('`').nth(1).map(str::to_string);
    if let Some(field) = refusal.strip_prefix("missing field ").and_then(named) {
        let hint = if field == "amount" && path.starts_with("outpatient.limits[") {
            " (a limit rule states its amount; write \"amount\": null for no limit)"
        } else {
            ""
        };
        return format!("the field \"{field}\" is missing{hint}");
    }
    if let Some(rest) = refusal.strip_prefix("unknown field ") {
        let field = named(rest).unwrap_or_default();
        let allowed = rest
            .split_once("expected ")
            .map(|(_, list)| list.trim_start_matches("one of ").replace('`', ""))
            .unwrap_or_else(|| "none".to_string());
        return format!("\"{field}\" is not a field here; the fields are {allowed}");
    }
    refusal.to_string()
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.path.as_str() {
            "" => f.write_str(&self.message),
            path => write!(f, "{path}: {}", self.message),
        }
    }
}

/// Whether a lump-sum member's `month` is inside the period paid for.
pub fn in_lump_sum_period(until: Option<Month>, month: Month) -> bool {
    until.is_some_and(|until| month <= until)
}

impl RatioRule {
    /// The payment for `amount` of cost lying above `cumulative_before` on the year's cost axis:
    /// each part times its band's ratio, summed exactly, rounded half up once.
    pub fn pay(&self, cumulative_before: Money, amount: Money) -> Money {
        let mut exact = rust_decimal::Decimal::ZERO;
        let mut from = cumulative_before;
        let to = cumulative_before + amount;
        for band in &self.bands {
            if from >= to {
                break;
            }
            let band_end = band.up_to.map_or(to, |end| end.min(to));
            if band_end > from {
                exact += (band_end - from).to_decimal() * band.ratio.as_decimal();
                from = band_end;
            }
        }
        crate::money::round_half_up(exact)
    }
}
