//! Commands as they arrive, one JSON object per line, and their parsing into typed values.

use serde::Deserialize;

use crate::money::{Money, Rate};
use crate::policy::PolicyVersion;
use crate::time::{Day, Month};
use crate::types::{Channel, Purpose, Rejection, RejectionCode, Relation, Scheme, Status};

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
    serde_json::from_str(line).map_err(|error| {
        let text = error.to_string();
        for code in [RejectionCode::MalformedAmount, RejectionCode::MalformedDate] {
            if let Some(at) = text.find(&format!("{code}: ")) {
                let message = text[at + code.as_str().len() + 2..].to_string();
                return Rejection::new(code, message);
            }
        }
        if text.starts_with("unknown variant") {
            return Rejection::new(
                RejectionCode::UnknownCommand,
                format!("{text}; commands are {COMMAND_NAMES}"),
            );
        }
        if text.starts_with("missing field `cmd`") {
            return Rejection::new(
                RejectionCode::UnknownCommand,
                format!("line has no \"cmd\" field; commands are {COMMAND_NAMES}"),
            );
        }
        if text.starts_with("unknown field") {
            return Rejection::new(RejectionCode::UnknownField, text);
        }
        if error.is_syntax() || error.is_eof() {
            return Rejection::new(RejectionCode::MalformedJson, text);
        }
        Rejection::new(RejectionCode::MalformedCommand, text)
    })
}
