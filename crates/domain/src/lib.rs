//! Gongji's domain: the insurance rules of the employee medical insurance ledger.
//!
//! What it is for: commands, events, policy versions, the state the rules need, and the two pure
//! functions at the heart of the ledger, [`decide()`] (command + state -> events or a rejection)
//! and [`evolve()`] (state + event -> state).
//!
//! Every rejection carries a [`RejectionCode`] from one closed list. Amounts are bounded one by
//! one (`money::AMOUNT_FEN_MAX`) and every running total the state keeps is bounded too
//! (`money::TOTAL_FEN_MAX`): `decide` refuses what would pass it, so `evolve` never overflows.
//! An event from a log `decide` did not produce (an import, a forged or damaged log) is checked
//! first with [`state::admissible`], which says which invariant it breaks instead of letting
//! `evolve`'s assertions panic; [`Event::stream`] is the stream every event belongs to.
//!
//! What it is not for: it does no I/O, reads no clock and draws no random numbers. Storage,
//! ids and time belong to the callers (`gongji-log`, `gongji-ledger`).

pub mod command;
pub mod decide;
pub mod event;
pub mod money;
pub mod policy;
pub mod policy_check;
pub mod rejection;
pub mod state;
pub mod time;
pub mod types;

pub use command::{parse_command, Command};
pub use decide::{decide, Decision, Outcome};
pub use event::{Event, Settlement, Stream};
pub use money::{Money, Rate};
pub use policy::PolicyVersion;
pub use rejection::{Rejection, RejectionCode};
pub use state::{evolve, EntityKey, EntityRef, State};
pub use time::{Day, Month};
pub use types::FundKind;
