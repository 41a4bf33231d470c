//! Commands as they arrive, one JSON object per line, and their parsing into typed values.
//!
//! A line serde refuses is read again field by field, against a table of each command's fields
//! (a test holds it equal to what serde reads), so that its refusal names the field, the value
//! and what the field allows: `missing_field`, `invalid_value`, `unknown_field`,
//! `unknown_command`, `malformed_json`, `malformed_amount`, `malformed_date`, `invalid_level`.
//! It parses nothing else and decides nothing: an id's length and a level's range are `decide`'s.

use serde::Deserialize;

use crate::money::{Money, Rate};
use crate::policy::PolicyVersion;
use crate::state::Member;
use crate::time::{Day, Month};
use crate::types::{
    Channel, FlagDecision, InstitutionKind, Purpose, Rejection, RejectionCode, Relation, Scheme,
    Status,
};

/// The longest input line accepted, in bytes (a policy version fits easily).
pub const LINE_BYTES_MAX: usize = 256 * 1024;
/// The longest identifier (member, claim, region, institution...) accepted.
pub const ID_BYTES_MAX: usize = 64;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Load a policy version (also available as `gongji policy load FILE`).
    LoadPolicy {
        policy: Box<PolicyVersion>,
    },
    Enroll {
        member: String,
        region: String,
        born: Day,
        status: Status,
        scheme: Scheme,
        date: Day,
        #[serde(default)]
        opening_balance: Option<Money>,
        #[serde(default)]
        lump_sum_base: Option<Money>,
        #[serde(default)]
        lump_sum_until: Option<Month>,
    },
    Retire {
        member: String,
        date: Day,
    },
    Contribute {
        member: String,
        month: Month,
        base: Money,
    },
    Allocate {
        region: String,
        month: Month,
    },
    Claim {
        id: String,
        member: String,
        date: Day,
        level: u8,
        channel: Channel,
        eligible: Money,
        #[serde(default)]
        special_paid: Money,
        #[serde(default)]
        uncovered: Money,
        #[serde(default = "yes")]
        use_account: bool,
        #[serde(default)]
        institution: Option<String>,
        /// Where the claim was settled; absent: a pharmacy for a pharmacy claim, a hospital
        /// otherwise (what every claim was before the kind existed).
        #[serde(default)]
        institution_kind: Option<InstitutionKind>,
        #[serde(default)]
        visit: Option<String>,
    },
    BindFamily {
        holder: String,
        relative: String,
        relation: Relation,
        date: Day,
        /// A yearly limit on payments for this relative, where the policy allows one.
        #[serde(default)]
        yearly_limit: Option<Money>,
    },
    UnbindFamily {
        holder: String,
        relative: String,
        date: Day,
    },
    AccountPay {
        id: String,
        holder: String,
        #[serde(default)]
        beneficiary: Option<String>,
        date: Day,
        purpose: Purpose,
        amount: Money,
        /// The pharmacy or hospital paid, as the settlement front end names it.
        #[serde(default)]
        institution: Option<String>,
    },
    Reverse {
        id: String,
        date: Day,
        reason: String,
    },
    /// Closes an insurance year for every account of the region (结转).
    Rollover {
        region: String,
        year: i32,
    },
    /// Records a member's death: the account is frozen from the next day.
    Decease {
        member: String,
        date: Day,
    },
    /// Pays a deceased member's balance to the heirs and closes the account.
    Inherit {
        member: String,
        date: Day,
        heirs: Vec<Heir>,
    },
    /// Moves an active member's account, with its balance, to another pooling region.
    Transfer {
        member: String,
        date: Day,
        to_region: String,
    },
    /// An auditor's decision on a monitoring flag, kept in the log as the supervision history
    /// of the region. Made by `gongji monitor decide` once it has found the flag; never read
    /// from a line (a stream of commands is an operator's, and a decision is an auditor's).
    #[serde(skip)]
    DecideFlag {
        flag: String,
        region: String,
        decision: FlagDecision,
        reason: String,
        by: String,
        date: Day,
    },
    /// A version of a region's monitoring rules, loaded into the log. Made by `gongji monitor
    /// rules load` once `gongji-monitor` has read and checked the file (`rules` is the JSON it
    /// reads) and no other version of that name is loaded; never read from a line.
    #[serde(skip)]
    LoadMonitorRules {
        region: String,
        version: String,
        effective: Day,
        rules: String,
        by: String,
        date: Day,
    },
    /// The source's half of a transfer between two regions' ledgers: what a region map makes of
    /// a `transfer` line when the destination is another ledger. Never read from a line.
    #[serde(skip)]
    SendTransfer {
        member: String,
        date: Day,
        to_region: String,
    },
    /// The destination's half: the account a `TransferSent` carried arrives under its id.
    /// Made by the relay from the source's record, never read from a line.
    #[serde(skip)]
    ReceiveTransfer {
        transfer: String,
        account: Box<Member>,
    },
    /// A fund event another region's ledger owed this one (its record `owed`, an
    /// `event::owed_id`), landed once. Made by the relay, never read from a line.
    #[serde(skip)]
    LandOwed {
        owed: String,
        from_region: String,
        member: String,
        event: Box<crate::event::Event>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heir {
    pub name: String,
    /// The heir's share of the balance, a decimal like "0.5"; the shares sum to 1.
    pub share: Rate,
}

fn yes() -> bool {
    true
}

const COMMAND_NAMES: &str =
    "load_policy, enroll, retire, contribute, allocate, claim, bind_family, unbind_family, account_pay, reverse, rollover, decease, inherit, transfer";

/// Parses one input line into a command, or a rejection with a stable code.
///
/// A valid line takes one serde pass. Only a line serde refuses is read again, as a JSON value
/// checked field by field ([`explain`]), so that its rejection names the field, the value and
/// what the field allows, in plain words.
pub fn parse_command(line: &str) -> Result<Command, Rejection> {
    if line.len() > LINE_BYTES_MAX {
        return Err(Rejection::new(
            RejectionCode::LineTooLong,
            format!(
                "line is {} bytes; at most {LINE_BYTES_MAX} are read",
                line.len()
            ),
        ));
    }
    serde_json::from_str(line).map_err(|error| explain(line, &error))
}

/// What a field of a command holds, as far as the explanation of a refused line needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Day,
    Month,
    Amount,
    Level,
    Year,
    Flag,
    Channel,
    Place,
    Status,
    Scheme,
    Purpose,
    Relation,
    Heirs,
    Policy,
}

/// Whether a field may be left out, and whether `null` stands for leaving it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Required,
    /// An `Option`: left out or `null`.
    Optional,
    /// Has a default when left out; `null` is refused.
    Defaulted,
}

/// A field of a command: its name, what it holds, and whether it may be left out.
type Field = (&'static str, Kind, Need);

const REQUIRED: Need = Need::Required;
const OPTIONAL: Need = Need::Optional;
const DEFAULTED: Need = Need::Defaulted;

/// The fields of each command, as `Command` declares them (a test checks the two agree).
fn fields_of(cmd: &str) -> Option<&'static [Field]> {
    use Kind::*;
    let fields: &'static [Field] = match cmd {
        "load_policy" => &[("policy", Policy, REQUIRED)],
        "enroll" => &[
            ("member", Text, REQUIRED),
            ("region", Text, REQUIRED),
            ("born", Day, REQUIRED),
            ("status", Status, REQUIRED),
            ("scheme", Scheme, REQUIRED),
            ("date", Day, REQUIRED),
            ("opening_balance", Amount, OPTIONAL),
            ("lump_sum_base", Amount, OPTIONAL),
            ("lump_sum_until", Month, OPTIONAL),
        ],
        "retire" | "decease" => &[("member", Text, REQUIRED), ("date", Day, REQUIRED)],
        "contribute" => &[
            ("member", Text, REQUIRED),
            ("month", Month, REQUIRED),
            ("base", Amount, REQUIRED),
        ],
        "allocate" => &[("region", Text, REQUIRED), ("month", Month, REQUIRED)],
        "claim" => &[
            ("id", Text, REQUIRED),
            ("member", Text, REQUIRED),
            ("date", Day, REQUIRED),
            ("level", Level, REQUIRED),
            ("channel", Channel, REQUIRED),
            ("eligible", Amount, REQUIRED),
            ("special_paid", Amount, DEFAULTED),
            ("uncovered", Amount, DEFAULTED),
            ("use_account", Flag, DEFAULTED),
            ("institution", Text, OPTIONAL),
            ("institution_kind", Place, OPTIONAL),
            ("visit", Text, OPTIONAL),
        ],
        "bind_family" => &[
            ("holder", Text, REQUIRED),
            ("relative", Text, REQUIRED),
            ("relation", Relation, REQUIRED),
            ("date", Day, REQUIRED),
            ("yearly_limit", Amount, OPTIONAL),
        ],
        "unbind_family" => &[
            ("holder", Text, REQUIRED),
            ("relative", Text, REQUIRED),
            ("date", Day, REQUIRED),
        ],
        "account_pay" => &[
            ("id", Text, REQUIRED),
            ("holder", Text, REQUIRED),
            ("beneficiary", Text, OPTIONAL),
            ("date", Day, REQUIRED),
            ("purpose", Purpose, REQUIRED),
            ("amount", Amount, REQUIRED),
            ("institution", Text, OPTIONAL),
        ],
        "reverse" => &[
            ("id", Text, REQUIRED),
            ("date", Day, REQUIRED),
            ("reason", Text, REQUIRED),
        ],
        "rollover" => &[("region", Text, REQUIRED), ("year", Year, REQUIRED)],
        "inherit" => &[
            ("member", Text, REQUIRED),
            ("date", Day, REQUIRED),
            ("heirs", Heirs, REQUIRED),
        ],
        "transfer" => &[
            ("member", Text, REQUIRED),
            ("date", Day, REQUIRED),
            ("to_region", Text, REQUIRED),
        ],
        _ => return None,
    };
    Some(fields)
}

fn names(fields: &[Field]) -> String {
    let names: Vec<&str> = fields.iter().map(|(name, _, _)| *name).collect();
    names.join(", ")
}

/// Why serde refused `line`: the line read again as a JSON value and checked field by field.
fn explain(line: &str, error: &serde_json::Error) -> Rejection {
    use serde_json::Value;
    let value: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(syntax) => return not_json(&syntax),
    };
    let Value::Object(object) = value else {
        return Rejection::new(
            RejectionCode::MalformedCommand,
            format!("a line is one JSON object like {{\"cmd\":\"claim\",...}}, not {value}"),
        );
    };
    let cmd = match object.get("cmd") {
        None => {
            return Rejection::new(
                RejectionCode::MissingField,
                format!("line has no \"cmd\" field; commands are {COMMAND_NAMES}"),
            )
        }
        Some(cmd) => cmd,
    };
    let Some(fields) = cmd.as_str().and_then(fields_of) else {
        return Rejection::new(
            RejectionCode::UnknownCommand,
            format!("cmd {cmd} is not a command; commands are {COMMAND_NAMES}"),
        );
    };
    let cmd = cmd.as_str().unwrap_or_default();
    for key in object.keys().filter(|key| *key != "cmd") {
        if !fields.iter().any(|(name, _, _)| name == key) {
            return Rejection::new(
                RejectionCode::UnknownField,
                format!(
                    "\"{key}\" is not a field of {cmd}; its fields are {}",
                    names(fields)
                ),
            );
        }
    }
    for (name, kind, need) in fields {
        match object.get(*name) {
            None if *need == Need::Required => {
                return Rejection::new(
                    RejectionCode::MissingField,
                    format!(
                        "{cmd} has no \"{name}\" field, which it needs; its fields are {}",
                        names(fields)
                    ),
                )
            }
            Some(Value::Null) if *need == Need::Optional => {}
            Some(value) => {
                if let Err(rejection) = check(cmd, name, *kind, value) {
                    return rejection;
                }
            }
            None => {}
        }
    }
    Rejection::new(
        RejectionCode::MalformedCommand,
        format!("{cmd}: {}", without_position(&error.to_string())),
    )
}

/// Text that is not JSON: where it breaks, in plain words.
fn not_json(error: &serde_json::Error) -> Rejection {
    let text = without_position(&error.to_string());
    let why = if error.is_eof() {
        "it ends before the JSON object is closed".to_string()
    } else if text.starts_with("expected ident") {
        "a word there is not JSON (text needs double quotes; the only bare words are true, false and null)"
            .to_string()
    } else if text.starts_with("key must be a string") {
        "a field name there is not in double quotes".to_string()
    } else if text.starts_with("expected value") {
        "a value is missing or not JSON there".to_string()
    } else {
        text
    };
    Rejection::new(
        RejectionCode::MalformedJson,
        format!(
            "the line is not JSON: at character {}, {why}",
            error.column()
        ),
    )
}

/// A serde_json message without its " at line L column C" tail.
fn without_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// Checks one field's value; the rejection names the command, the field, the value and what
/// the field allows.
fn check(cmd: &str, field: &str, kind: Kind, value: &serde_json::Value) -> Result<(), Rejection> {
    let invalid = |code: RejectionCode, allowed: &str| {
        Rejection::new(code, format!("{field} of {cmd} is {value}; {allowed}"))
    };
    let at = format!("{field} of {cmd}");
    match kind {
        Kind::Text => value.as_str().map(|_| ()).ok_or_else(|| {
            invalid(
                RejectionCode::InvalidValue,
                "it must be a string in double quotes",
            )
        }),
        Kind::Day => parsed::<Day>(&at, value, RejectionCode::MalformedDate, DAY_FORM),
        Kind::Month => parsed::<Month>(&at, value, RejectionCode::MalformedDate, MONTH_FORM),
        Kind::Amount => parsed::<Money>(&at, value, RejectionCode::MalformedAmount, AMOUNT_FORM),
        Kind::Level => match value.as_u64() {
            Some(level) if u8::try_from(level).is_ok() => Ok(()),
            _ => Err(invalid(RejectionCode::InvalidLevel, "a level is 1, 2 or 3")),
        },
        Kind::Year => match value.as_i64() {
            Some(year) if i32::try_from(year).is_ok() => Ok(()),
            _ => Err(invalid(
                RejectionCode::InvalidValue,
                "a year is a whole number like 2024",
            )),
        },
        Kind::Flag => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| invalid(RejectionCode::InvalidValue, "it must be true or false")),
        Kind::Channel => choice::<Channel>(value)
            .map_err(|allowed| invalid(RejectionCode::InvalidValue, &allowed)),
        Kind::Place => choice::<InstitutionKind>(value)
            .map_err(|allowed| invalid(RejectionCode::InvalidValue, &allowed)),
        Kind::Status => choice::<Status>(value)
            .map_err(|allowed| invalid(RejectionCode::InvalidValue, &allowed)),
        Kind::Scheme => choice::<Scheme>(value)
            .map_err(|allowed| invalid(RejectionCode::InvalidValue, &allowed)),
        Kind::Purpose => choice::<Purpose>(value)
            .map_err(|allowed| invalid(RejectionCode::InvalidValue, &allowed)),
        Kind::Relation => choice::<Relation>(value)
            .map_err(|allowed| invalid(RejectionCode::InvalidValue, &allowed)),
        Kind::Heirs => check_heirs(cmd, value),
        // The refusal names the field inside the policy: `outpatient.limits[2]: the field
        // "amount" is missing`.
        Kind::Policy => PolicyVersion::from_json(value)
            .map(|_| ())
            .map_err(|error| Rejection::new(error.code, format!("policy of {cmd}: {error}"))),
    }
}

const DAY_FORM: &str = "a date in double quotes like \"2024-03-31\"";
const MONTH_FORM: &str = "a month in double quotes like \"2024-03\"";
const AMOUNT_FORM: &str = "an amount in double quotes like \"2800.00\"";

/// A field read from a string by `T::from_str`, whose refusal names the value and its form.
fn parsed<T: std::str::FromStr>(
    at: &str,
    value: &serde_json::Value,
    code: RejectionCode,
    form: &str,
) -> Result<(), Rejection>
where
    T::Err: std::fmt::Display,
{
    let why = match value.as_str().map(str::parse::<T>) {
        Some(Ok(_)) => return Ok(()),
        Some(Err(why)) => why.to_string(),
        None => format!("{value} is not {form}"),
    };
    Err(Rejection::new(code, format!("{at}: {why}")))
}

/// Whether `value` names a variant of the vocabulary `T`; if not, the values it allows.
fn choice<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<(), String> {
    if T::deserialize(value).is_ok() {
        return Ok(());
    }
    // serde's refusal of an empty name lists the variants: "... expected one of `a`, `b`".
    let listed = T::deserialize(serde_json::Value::String(String::new()))
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    Err(format!("allowed values are {}", expected_list(&listed)))
}

/// The names a serde refusal lists after "expected" ("`a`", "`a` or `b`", "one of `a`, `b`"),
/// as "a, b".
fn expected_list(refusal: &str) -> String {
    refusal
        .split_once("expected ")
        .map(|(_, list)| without_position(list.trim_start_matches("one of ")))
        .unwrap_or_default()
        .replace('`', "")
        .replace(" or ", ", ")
}

fn check_heirs(cmd: &str, value: &serde_json::Value) -> Result<(), Rejection> {
    let form = "heirs are a list like [{\"name\":\"W001\",\"share\":\"0.5\"}]";
    let Some(heirs) = value.as_array() else {
        return Err(Rejection::new(
            RejectionCode::InvalidValue,
            format!("heirs of {cmd} is {value}; {form}"),
        ));
    };
    for (at, heir) in heirs.iter().enumerate() {
        let number = at + 1;
        let Some(heir) = heir.as_object() else {
            return Err(Rejection::new(
                RejectionCode::InvalidValue,
                format!("heir {number} of {cmd} is {heir}; {form}"),
            ));
        };
        if let Some(key) = heir.keys().find(|key| *key != "name" && *key != "share") {
            return Err(Rejection::new(
                RejectionCode::UnknownField,
                format!("\"{key}\" is not a field of heir {number}; its fields are name, share"),
            ));
        }
        for field in ["name", "share"] {
            let Some(value) = heir.get(field) else {
                return Err(Rejection::new(
                    RejectionCode::MissingField,
                    format!("heir {number} of {cmd} has no \"{field}\" field, which it needs"),
                ));
            };
            let Some(text) = value.as_str() else {
                return Err(Rejection::new(
                    RejectionCode::InvalidValue,
                    format!(
                        "{field} of heir {number} is {value}; it must be a string in double quotes"
                    ),
                ));
            };
            if field == "share" {
                text.parse::<Rate>().map_err(|why| {
                    Rejection::new(
                        RejectionCode::InvalidValue,
                        format!("share of heir {number}: {why}, like \"0.5\""),
                    )
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields serde lists for `cmd` when refusing an unknown one.
    fn serde_fields(cmd: &str) -> String {
        let line = format!("{{\"cmd\":\"{cmd}\",\"not_a_field\":0}}");
        let text = serde_json::from_str::<Command>(&line)
            .expect_err("an unknown field is refused")
            .to_string();
        expected_list(&text)
    }

    #[test]
    fn the_field_table_lists_exactly_the_fields_serde_reads() {
        for cmd in COMMAND_NAMES.split(", ") {
            let fields = fields_of(cmd).expect("every command has its fields listed");
            let mut ours: Vec<&str> = fields.iter().map(|(name, _, _)| *name).collect();
            let theirs = serde_fields(cmd);
            let mut theirs: Vec<&str> = theirs.split(", ").collect();
            ours.sort_unstable();
            theirs.sort_unstable();
            assert_eq!(ours, theirs, "fields of {cmd}");
        }
    }

    fn sample(kind: Kind) -> serde_json::Value {
        use serde_json::json;
        match kind {
            Kind::Text => json!("x"),
            Kind::Day => json!("2024-01-01"),
            Kind::Month => json!("2024-01"),
            Kind::Amount => json!("1.00"),
            Kind::Level => json!(2),
            Kind::Year => json!(2024),
            Kind::Flag => json!(true),
            Kind::Channel => json!("institution"),
            Kind::Place => json!("hospital"),
            Kind::Status => json!("active"),
            Kind::Scheme => json!("employer"),
            Kind::Purpose => json!("pharmacy"),
            Kind::Relation => json!("spouse"),
            Kind::Heirs => json!([{"name": "h", "share": "1"}]),
            Kind::Policy => json!(null),
        }
    }

    #[test]
    fn the_field_table_says_what_each_field_holds_and_which_are_required() {
        for cmd in COMMAND_NAMES
            .split(", ")
            .filter(|cmd| *cmd != "load_policy")
        {
            let fields = fields_of(cmd).expect("every command has its fields listed");
            let line = |without: Option<&str>| {
                let mut object = serde_json::Map::new();
                object.insert("cmd".into(), cmd.into());
                for (name, kind, _) in fields.iter().filter(|f| Some(f.0) != without) {
                    object.insert((*name).into(), sample(*kind));
                }
                serde_json::Value::Object(object).to_string()
            };
            assert!(parse_command(&line(None)).is_ok(), "{}", line(None));
            for (name, _, need) in fields {
                let parsed = parse_command(&line(Some(name)));
                assert_eq!(
                    parsed.is_err(),
                    *need == Need::Required,
                    "{cmd} without {name}"
                );
            }
        }
    }
}
