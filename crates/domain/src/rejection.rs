//! Why a command was refused: a stable machine-readable code from one closed list, beside a
//! message naming the values involved.
//!
//! Every code any crate uses is a variant of [`RejectionCode`]; its string (as `as_str`,
//! `Display` and serde show it) is the snake_case name the README lists and results carry.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! rejection_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)+) => {
        /// The stable code of a rejection. Serializes, and displays, as its snake_case string.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RejectionCode {
            $($(#[$doc])* $variant,)+
        }

        impl RejectionCode {
            /// Every code, in the order they are declared.
            pub const ALL: &'static [RejectionCode] = &[$(RejectionCode::$variant,)+];

            /// The code as results and the README show it, e.g. `"insufficient_balance"`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(RejectionCode::$variant => $text,)+
                }
            }
        }
    };
}

rejection_codes! {
    // Reading a line (the binary and `parse_command`).
    LineTooLong = "line_too_long",
    EmptyLine = "empty_line",
    MalformedEncoding = "malformed_encoding",
    MalformedJson = "malformed_json",
    UnknownCommand = "unknown_command",
    UnknownField = "unknown_field",
    /// A field the command needs is not on the line.
    MissingField = "missing_field",
    /// A field's value is not one it allows (an unknown channel, a number where text goes).
    InvalidValue = "invalid_value",
    /// JSON that is not a command object, or a refusal no finer code names.
    MalformedCommand = "malformed_command",
    MalformedAmount = "malformed_amount",
    MalformedDate = "malformed_date",
    MalformedId = "malformed_id",
    NegativeAmount = "negative_amount",
    // Members and enrolment.
    UnknownMember = "unknown_member",
    AlreadyEnrolled = "already_enrolled",
    BeforeEnrolment = "before_enrolment",
    AlreadyRetired = "already_retired",
    LumpSumMismatch = "lump_sum_mismatch",
    // Policies.
    InvalidPolicy = "invalid_policy",
    DuplicatePolicy = "duplicate_policy",
    NoPolicyInForce = "no_policy_in_force",
    NoPolicyRule = "no_policy_rule",
    NoContributionRule = "no_contribution_rule",
    // Credits.
    NotActive = "not_active",
    AlreadyCredited = "already_credited",
    /// A region with more members than one atomic unit of the log can credit or close.
    TooManyMembers = "too_many_members",
    // Claims and payments.
    DuplicateId = "duplicate_id",
    InvalidLevel = "invalid_level",
    SpecialExceedsEligible = "special_exceeds_eligible",
    PurposeNotAllowed = "purpose_not_allowed",
    InsufficientBalance = "insufficient_balance",
    // Reversals.
    UnknownTransaction = "unknown_transaction",
    AlreadyReversed = "already_reversed",
    ReversalBeforeOriginal = "reversal_before_original",
    ReasonTooLong = "reason_too_long",
    // Family sharing.
    SelfBinding = "self_binding",
    AlreadyBound = "already_bound",
    RelativeNotBound = "relative_not_bound",
    UnbindBeforeBinding = "unbind_before_binding",
    RelationNotAllowed = "relation_not_allowed",
    TooManyRelatives = "too_many_relatives",
    YearlyLimitNotAllowed = "yearly_limit_not_allowed",
    RelativeBoundElsewhere = "relative_bound_elsewhere",
    RelativeIsHolder = "relative_is_holder",
    HolderIsRelative = "holder_is_relative",
    RelativeLimitExceeded = "relative_limit_exceeded",
    // Death, inheritance, transfer.
    MemberDeceased = "member_deceased",
    AccountClosed = "account_closed",
    AlreadyDeceased = "already_deceased",
    NotDeceased = "not_deceased",
    InheritBeforeDeath = "inherit_before_death",
    InheritBeforeLastMovement = "inherit_before_last_movement",
    AlreadyInherited = "already_inherited",
    SharesNotOne = "shares_not_one",
    InvalidHeirs = "invalid_heirs",
    RetireeNotTransferable = "retiree_not_transferable",
    SameRegion = "same_region",
    TransferBeforeLast = "transfer_before_last",
    /// A transfer between two ledgers whose arrival this ledger already recorded.
    TransferAlreadyReceived = "transfer_already_received",
    /// A transfer's account that does not match its id, or arrives over an account held here.
    InvalidTransfer = "invalid_transfer",
    /// A region the region map does not place.
    UnmappedRegion = "unmapped_region",
    /// A member whose account is in transit between two regions' ledgers.
    InTransit = "in_transit",
    /// A transaction recorded in a region whose ledger no longer holds its member's account.
    AccountMoved = "account_moved",
    /// A fund event another region's ledger owed this one, landed already.
    AlreadyLanded = "already_landed",
    /// A member bound to a family (as holder or relative) moving to another region's ledger.
    FamilyBindingOpen = "family_binding_open",
    // Bounds.
    /// A running total the state keeps would pass `money::TOTAL_FEN_MAX`.
    TotalOverflow = "total_overflow",
    /// The command's events are over one of the log's limits (set by `gongji-ledger`).
    TooLarge = "too_large",
}

impl fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RejectionCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RejectionCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RejectionCode, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        RejectionCode::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown rejection code '{text}'")))
    }
}

impl PartialEq<str> for RejectionCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RejectionCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A rejected command: a stable code for machines and a message naming the values involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectionCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectionCode, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_and_display_as_their_snake_case_string() {
        for code in RejectionCode::ALL {
            let text = code.as_str();
            assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(code.to_string(), text);
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(text));
            let back: RejectionCode = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn codes_are_distinct() {
        let texts: std::collections::BTreeSet<_> =
            RejectionCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(texts.len(), RejectionCode::ALL.len());
    }
}
