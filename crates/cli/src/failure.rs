//! Why a command failed: a stable code from a closed list, a message for people, and the exit
//! status. `main` prints every failure the same way: `gongji: MESSAGE` on standard error and,
//! when the command was given `--json`, the error object `{"error":{"code":…,"message":…}}`
//! on standard output (`docs/answers.md`). Exit statuses are the ones each failure always had:
//! 1 when what was asked is not there, 2 for anything else. A code that means what a
//! [`RejectionCode`] means is that code's string (`unknown_member`).

use std::fmt;

use gongji_domain::RejectionCode;
use gongji_ledger::LedgerError;
use gongji_log::LogError;
use gongji_recon::ReconError;
use serde_json::json;

/// The codes of failed commands. A rejected input line keeps its own [`RejectionCode`]
/// (gongji_domain::RejectionCode) in `apply`'s outcome; these are for the command as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// An argument is malformed or out of range (clap's own refusals included).
    BadArgument,
    /// `--data` holds no ledger (only `apply`, `policy load` and `audit import` create one).
    NoLedger,
    /// What was asked (a claim, a region, a year, a member's stint in a region) is not in the
    /// ledger: exit 1.
    NotFound,
    /// The member asked about is not enrolled (now, or as of the time asked), or has no events:
    /// exit 1. The string is [`RejectionCode::UnknownMember`]'s, the code `apply` gives a
    /// command naming such a member.
    UnknownMember,
    /// The ledger is quarantined: a damaged record was found (see `audit clear-quarantine`).
    Quarantined,
    /// Another process holds the ledger's lock.
    Locked,
    /// The ledger's files are damaged, or it stopped and must be opened again.
    Damaged,
    /// A file given as input cannot be used: it is not what the command reads (not JSON, not
    /// a complete archive that passes the check, not a settlement file): exit 1 for an archive
    /// refused by `audit import`, 2 otherwise.
    BadInput,
    /// The file to write exists (`audit export` without `--force`).
    Exists,
    /// Reading or writing a file failed.
    Io,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadArgument => "bad_argument",
            Code::NoLedger => "no_ledger",
            Code::NotFound => "not_found",
            Code::UnknownMember => RejectionCode::UnknownMember.as_str(),
            Code::Quarantined => "quarantined",
            Code::Locked => "locked",
            Code::Damaged => "damaged",
            Code::BadInput => "bad_input",
            Code::Exists => "exists",
            Code::Io => "io",
        }
    }

    /// Every code, for the documentation's test.
    #[cfg(test)]
    pub const ALL: [Code; 10] = [
        Code::BadArgument,
        Code::NoLedger,
        Code::NotFound,
        Code::UnknownMember,
        Code::Quarantined,
        Code::Locked,
        Code::Damaged,
        Code::BadInput,
        Code::Exists,
        Code::Io,
    ];
}

/// A failed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// The exit status: 1 for `NotFound` and `UnknownMember` (and a refused import), 2
    /// otherwise.
    pub exit: u8,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Failure {
        let exit = if matches!(code, Code::NotFound | Code::UnknownMember) {
            1
        } else {
            2
        };
        Failure {
            code,
            message: message.into(),
            exit,
        }
    }

    pub fn bad_argument(message: impl Into<String>) -> Failure {
        Failure::new(Code::BadArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(Code::NotFound, message)
    }

    pub fn unknown_member(message: impl Into<String>) -> Failure {
        Failure::new(Code::UnknownMember, message)
    }

    pub fn io(message: impl Into<String>) -> Failure {
        Failure::new(Code::Io, message)
    }

    pub fn bad_input(message: impl Into<String>) -> Failure {
        Failure::new(Code::BadInput, message)
    }

    /// The same failure exiting with `exit`.
    pub fn exiting(self, exit: u8) -> Failure {
        Failure { exit, ..self }
    }

    /// A ledger error, its message prefixed with `context` (e.g. `cannot open ledger at D`).
    pub fn ledger(context: &str, error: &LedgerError) -> Failure {
        let message = if context.is_empty() {
            error.to_string()
        } else {
            format!("{context}: {error}")
        };
        Failure::new(ledger_code(error), message)
    }

    /// An error of an archive's export, check or import: the archive code reports the files it
    /// cannot read, write or use as `LedgerError::Projection`, so such an error is `io`.
    pub fn archive(error: &LedgerError) -> Failure {
        match error {
            LedgerError::Projection(message) => Failure::io(message.clone()),
            other => Failure::ledger("", other),
        }
    }

    /// A reconciliation that could not run: a file it cannot read or write is `io`, one it
    /// cannot use (no usable header, too many rows, sums past what a total holds) `bad_input`,
    /// a period that ends before it starts `bad_argument`, a log damaged `damaged` (one that
    /// could not be read for want of its store, an I/O error, is `io`).
    pub fn recon(error: &ReconError) -> Failure {
        let code = match error {
            ReconError::Io { .. } | ReconError::Output(_) | ReconError::LogIo { .. } => Code::Io,
            ReconError::Header { .. } | ReconError::TooLarge { .. } | ReconError::Overflow(_) => {
                Code::BadInput
            }
            ReconError::Request(_) => Code::BadArgument,
            ReconError::Ledger(_) => Code::Damaged,
        };
        Failure::new(code, error.to_string())
    }

    /// `{"error":{"code":…,"message":…}}`, one line.
    pub fn json(&self) -> String {
        json!({"error": {"code": self.code.as_str(), "message": self.message}}).to_string()
    }
}

/// The code of a ledger error.
fn ledger_code(error: &LedgerError) -> Code {
    match error {
        LedgerError::Log(LogError::Quarantined { .. }) => Code::Quarantined,
        LedgerError::Log(LogError::Locked { .. }) => Code::Locked,
        LedgerError::Log(LogError::Io(_)) => Code::Io,
        LedgerError::Log(LogError::InvalidInput(_)) => Code::BadArgument,
        _ => Code::Damaged,
    }
}

impl From<LedgerError> for Failure {
    fn from(error: LedgerError) -> Failure {
        Failure::ledger("", &error)
    }
}

/// A message with no more precise code: reading or writing went wrong (`io`). Code that knows
/// better says so ([`Failure::bad_argument`], [`Failure::not_found`], …).
impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::io(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::io(message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_words() {
        let names: std::collections::BTreeSet<&str> =
            Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len());
        assert!(names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn the_documented_codes_are_these() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/schemas/answers.schema.json"
        );
        let text = std::fs::read_to_string(path).expect("the answers' schemas");
        let schemas: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let documented =
            &schemas["$defs"]["error"]["properties"]["error"]["properties"]["code"]["enum"];
        let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(documented, &serde_json::json!(codes));
    }

    #[test]
    fn only_not_found_exits_1_by_default() {
        for code in Code::ALL {
            let exit = Failure::new(code, "m").exit;
            let not_there = matches!(code, Code::NotFound | Code::UnknownMember);
            assert_eq!(exit, if not_there { 1 } else { 2 });
        }
    }
}
