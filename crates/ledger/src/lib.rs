//! Gongji's ledger: the command engine and the projections.
//!
//! What it is for: taking one command line at a time, loading the state it needs from the
//! projections, deciding it with `gongji-domain`, appending the events to `gongji-log` as one
//! atomic unit, folding them into the projections, and answering queries from those projections.
//! Results are only handed out after their events are durable: [`Ledger::commit`] (group
//! commit) returns them after the sync, and [`Ledger::apply_stream`] (a stream of lines to a
//! sink, what `gongji apply` and a service call) gives its sink only a [`DurableGroup`], which
//! only a successful sync makes.
//!
//! Modules: `stream` (apply_stream), `input` (bounded line reading), `commit` (sync and
//! projection stores), `replay` (catch-up and rebuild), `queries` and `views` (answers),
//! `store` (projection encoding), `scan` (one pass over the whole log, for what-if and
//! monitoring), `audit` (digest, totals, verify), `archive` (export, check,
//! import), `postgres` (opening a ledger whose log and projections are in PostgreSQL).
//!
//! What it is not for: it holds no insurance rule (those are `gongji-domain`'s). Its data
//! directory is `gongji-log`'s alone: the ledger reads and writes it only through the log's
//! API. The one file it touches outside it is an audit archive named by the caller:
//! [`Ledger::export_archive`] writes that file (as `NAME.partial`, synced, then renamed into
//! place), and [`archive::check_archive`] and [`archive::import_archive`] read it (import
//! appends what it checked, in the same pass, to a new ledger through the log's `append`, in a
//! directory beside the target that it renames into place only when everything checked, and
//! removes otherwise; in PostgreSQL, [`archive::import_archive_postgres`], in a temporary log
//! renamed likewise). Projections never write to the log.
//!
//! A ledger may instead be kept wholly in PostgreSQL (`postgres`: [`Ledger::open_postgres`] and
//! its kin): the log of record a `gongji_log_pg::PgLog`, the projections a
//! `gongji_log_pg::PgProjections` in the same database, under the same log name; the ledger
//! reaches both only through the log's seams (`DurableLog`, `Kv`).
//!
//! A ledger opened with [`Ledger::open_read_only`] answers queries beside the writer (another
//! process's `apply`): it reads the durable state the log's writer published, folds the records
//! after the stored projections in memory, writes nothing, and refuses every command and commit
//! ([`LedgerError::ReadOnly`]).
//!
//! A log the ledger did not just decide (at open, in a rebuild, in an archive) is folded only
//! event by event through `gongji_domain::state::admissible`: a record breaking an invariant is
//! an error naming it, never a panic; found at open, it stops the projections before it and the
//! ledger refuses commands and queries, so that `audit verify` can name it.
//!
//! A read-only ledger follows its writer with [`Ledger::refresh_read_only`]: the log takes in
//! the records made durable since (the durable end published then) and the ledger folds them
//! into its layer in memory; what it holds in memory grows with each refresh, and
//! [`Refreshed`] says how much, so that the caller opens it again past a bound of its own. The
//! two halves may be called apart ([`Ledger::extend_read_only`], then
//! [`Ledger::fold_read_only`] a bounded step at a time): while a fold is partway the
//! projections answer nothing, and a member's answers are folded from the member's own stream
//! at the log's durable end ([`Ledger::folded_end`]).

pub mod archive;
pub mod audit;
mod commit;
mod handover;
pub mod input;
mod postgres;
mod queries;
pub mod regions;
mod replay;
pub mod scan;
mod store;
mod stream;
pub mod views;
pub mod whatif;

use std::path::Path;

use gongji_domain::{
    decide, evolve, parse_command, Command, EntityRef, Event, FundKind, Rejection, State,
};
use gongji_log::{DurableLog, Kv, Log, LogError, NewRecord};
pub use gongji_log::{LogOptions, ProjectionBackend, Quarantine, SyncTicket};

pub use handover::{EventHandover, HANDOVER_EVENTS_MAX};
pub use queries::{not_enrolled, AsOf};
pub use replay::Refreshed;
pub use stream::{
    now_micros, DurableGroup, OutcomeSink, StreamError, StreamOptions, StreamSummary,
};
pub use views::{
    AccountView, FundView, HistoryEntry, InheritanceView, TimelineView, TransfersView, YearView,
};

/// Members kept in the in-memory cache between commits before it is dropped (it is reloaded
/// from the projections on demand): bounds memory on long runs.
const CACHE_MEMBERS_MAX: usize = 200_000;
/// Dirty entities held in memory between commits before `commit_deferred` stores them.
const DEFERRED_DIRTY_MAX: usize = 140_000;

#[derive(Debug)]
pub enum LedgerError {
    Log(LogError),
    /// A stored event or projection could not be read back.
    Projection(String),
    /// A stream stopped with lines decided and never made durable (see
    /// [`Ledger::apply_stream`]): the ledger refuses every further command, commit and close;
    /// drop it (the undecided-durable lines go with it) and open the ledger again.
    Stopped(String),
    /// The ledger was opened to answer queries ([`Ledger::open_read_only`]): it decides no
    /// command and commits nothing.
    ReadOnly,
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::Log(e) => write!(f, "{e}"),
            LedgerError::Projection(e) => write!(f, "{e}"),
            LedgerError::Stopped(why) => write!(
                f,
                "this ledger stopped with lines not made durable ({why}); open it again"
            ),
            LedgerError::ReadOnly => write!(
                f,
                "this ledger was opened to answer queries: it takes no commands"
            ),
        }
    }
}

impl std::error::Error for LedgerError {}

impl LedgerError {
    /// Whether another writer holds the ledger's lock (a second writer, refused at once unless
    /// it asked to wait: [`LogOptions::lock_wait`]).
    pub fn is_locked(&self) -> bool {
        matches!(self, LedgerError::Log(LogError::Locked { .. }))
    }
}

/// What became of one input line once its events are durable.
#[derive(Debug, Clone, PartialEq)]
pub enum LineOutcome {
    /// The command's result, as `gongji apply` shows it.
    Applied(gongji_domain::Outcome),
    Rejected(Rejection),
}

/// An open ledger: the log, and the cache of projected state for the commands in flight.
pub struct Ledger {
    /// The projection write `commit_deferred` left running on its own thread, if any; joined
    /// when dropped, before the store and the log below go.
    storing: commit::ProjectionWriter,
    /// The projection store. Declared before `log` so that it is dropped first: the file log's
    /// close leaves sled's snapshot current only once no other handle holds the store.
    kv: Kv,
    /// Where the projections are kept (how a rebuild writes them).
    projections: ProjectionBackend,
    /// The log of record, through the seam every backend implements: no file path above it.
    log: Box<dyn DurableLog>,
    state: State,
    /// Outcomes decided since the last commit, not yet durable.
    pending: Vec<LineOutcome>,
    /// Why a projection write failed, if one did: the ledger then refuses to commit more, since
    /// what that write held is neither stored nor marked dirty any more.
    store_failed: Option<String>,
    /// Why a stream stopped with lines decided and not made durable, if one did.
    stopped: Option<String>,
    /// Opened by [`Ledger::open_read_only`]: commands and commits are refused.
    read_only: bool,
    /// The record catch-up found breaking an invariant, if it did: the projections stop before
    /// it, and every command and query is refused naming it (`audit verify` still runs).
    broken: Option<String>,
    limits: CacheLimits,
    /// When the projections were last stored by a stream (or the ledger was opened).
    stored_at: std::time::Instant,
    /// Read-only: the records folded in memory (over the stored projections) since open.
    folded_in_memory: u64,
    /// Read-only: the end of the fold under way, while it stopped partway
    /// ([`Ledger::fold_read_only`]): the projections are then of no durable end.
    fold_target: Option<u64>,
    /// Entities a stream encoded ahead of its next store (`Ledger::encode_ahead`).
    encoded: store::Encoded,
    /// The handover shared with the other ledgers of this log in this process
    /// ([`Ledger::share_events`]): a writer's events staged for it until durable.
    events: Option<handover::Staged>,
    /// Read-only: the events folded from the handover rather than read from the log.
    handed_folded: u64,
    /// In a region map, the region this ledger keeps: another region's fund events a
    /// decision makes are recorded as owed to that region's ledger
    /// (`gongji_domain::decide::owed_elsewhere`).
    own_region: Option<String>,
}

/// When `commit_deferred` stores, and how many members the cache keeps.
#[derive(Clone, Copy, Debug)]
struct CacheLimits {
    deferred_dirty_max: usize,
    members_max: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            deferred_dirty_max: DEFERRED_DIRTY_MAX,
            members_max: CACHE_MEMBERS_MAX,
        }
    }
}

impl Ledger {
    /// Whether `dir` holds a ledger (see [`Log::exists_in`]); creates nothing.
    pub fn exists_in(dir: &Path) -> Result<bool, LedgerError> {
        Ok(Log::exists_in(dir)?)
    }

    /// Opens (or creates) the ledger in `dir` and brings the projections up to the log's end.
    pub fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open_with(dir, LogOptions::default())
    }

    /// As [`open`], with the log's options (where the projections are kept, among them).
    pub fn open_with(dir: &Path, options: LogOptions) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::open_to_rebuild(dir, options)?;
        ledger.catch_up(&mut |_, _| {})?;
        Ok(ledger)
    }

    /// Opens the ledger without bringing the projections up to the log's end: for
    /// [`rebuild`](Ledger::rebuild) (and `audit replay`), which drop them anyway, and which must
    /// work when the projections are too damaged to fold onto. Call `rebuild` before anything
    /// that reads projections.
    pub fn open_to_rebuild(dir: &Path, options: LogOptions) -> Result<Ledger, LedgerError> {
        let log = Log::open_with(dir, options)?;
        let (kv, projections) = (log.kv().clone(), log.options().projections);
        Ok(Ledger::of_parts(Box::new(log), kv, projections))
    }

    /// Opens the ledger in `dir` to answer queries beside its writer (another process's
    /// `apply`): no lock is taken and nothing is written (see [`Log::open_read_only`]). The
    /// answers are those of a durable state of the ledger, the one the log's durable end
    /// names when it opens: the projections as the writer stored them, and the records after
    /// their checkpoint folded in memory. Every command and commit is refused with
    /// [`LedgerError::ReadOnly`].
    pub fn open_read_only(dir: &Path, options: LogOptions) -> Result<Ledger, LedgerError> {
        let log = Log::open_read_only(dir, options)?;
        let (kv, projections) = (log.kv().clone(), log.options().projections);
        let mut ledger = Ledger::of_parts(Box::new(log), kv, projections);
        ledger.read_only = true;
        ledger.folded_in_memory = ledger.catch_up(&mut |_, _| {})?;
        Ok(ledger)
    }

    /// Opens the ledger over any backend of the log of record, with the projection store kept
    /// beside it (`projections` says which kind it is), and brings the projections up to the
    /// log's end.
    pub fn with_log(
        log: Box<dyn DurableLog>,
        kv: Kv,
        projections: ProjectionBackend,
    ) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::of_parts(log, kv, projections);
        ledger.catch_up(&mut |_, _| {})?;
        Ok(ledger)
    }

    fn of_parts(log: Box<dyn DurableLog>, kv: Kv, projections: ProjectionBackend) -> Ledger {
        Ledger {
            kv,
            projections,
            log,
            state: State::default(),
            pending: Vec::new(),
            storing: commit::ProjectionWriter::default(),
            store_failed: None,
            stopped: None,
            read_only: false,
            broken: None,
            limits: CacheLimits::default(),
            stored_at: std::time::Instant::now(),
            folded_in_memory: 0,
            fold_target: None,
            encoded: store::Encoded::default(),
            events: None,
            handed_folded: 0,
            own_region: None,
        }
    }

    /// Lifts the quarantine a damaged record put on the ledger in `dir`, once the whole log
    /// verifies again (after the damaged segment was restored from a backup). Returns what the
    /// marker said, or None if the ledger was not quarantined.
    pub fn clear_quarantine(dir: &Path) -> Result<Option<gongji_log::Quarantine>, LedgerError> {
        Ledger::clear_quarantine_with(dir, LogOptions::default())
    }

    /// As [`clear_quarantine`](Ledger::clear_quarantine), with the log's options (whether to
    /// wait for another writer's lock, among them).
    pub fn clear_quarantine_with(
        dir: &Path,
        options: LogOptions,
    ) -> Result<Option<gongji_log::Quarantine>, LedgerError> {
        Ok(Log::clear_quarantine_with(dir, options)?)
    }

    /// The log below, for reading records.
    pub fn log(&self) -> &dyn DurableLog {
        self.log.as_ref()
    }

    /// Shares `handover` between this ledger's log and the other ledgers of the same log in
    /// this process: a writer hands each durable batch's index entries to it, and a read-only
    /// ledger's refresh takes them instead of scanning those records again (the server's
    /// writer and read view; a log in PostgreSQL ignores it).
    pub fn share_handover(&mut self, handover: std::sync::Arc<gongji_log::Handover>) {
        self.log.share_handover(handover);
    }

    /// Shares `handover` between this ledger and the other ledgers of the same log in this
    /// process: a writer hands it the events of each commit once durable, and a read-only
    /// ledger's fold takes them there instead of reading, checking and decoding those records
    /// again (see [`EventHandover`]; the server's writer and read view).
    pub fn share_events(&mut self, handover: std::sync::Arc<EventHandover>) {
        self.events = Some(handover::Staged::new(handover));
    }

    /// Read-only: how many events its folds took from the shared [`EventHandover`] rather
    /// than from the log, since it was opened.
    pub fn events_handed_over(&self) -> u64 {
        self.handed_folded
    }

    /// Decides one input line and stages its events. The outcome is held until [`commit`]
    /// returns it: nothing is reported before it is durable.
    pub fn apply_line(&mut self, line: &str, recorded_at_micros: i64) -> Result<(), LedgerError> {
        self.apply_parsed(parse_command(line), recorded_at_micros)
    }

    /// Decides a line parsed elsewhere (`gongji apply` parses on a reader thread) and stages
    /// its events, as [`apply_line`] does.
    pub fn apply_parsed(
        &mut self,
        parsed: Result<Command, Rejection>,
        recorded_at_micros: i64,
    ) -> Result<(), LedgerError> {
        self.refuse_if_stopped()?;
        self.refuse_if_broken()?;
        let outcome = match parsed {
            Ok(command) => self.apply_command(&command, recorded_at_micros)?,
            Err(rejection) => LineOutcome::Rejected(rejection),
        };
        self.pending.push(outcome);
        Ok(())
    }

    fn apply_command(
        &mut self,
        command: &Command,
        recorded_at_micros: i64,
    ) -> Result<LineOutcome, LedgerError> {
        self.prefetch(command)?;
        if let Some(rejection) = self.moved_away(command) {
            return Ok(LineOutcome::Rejected(rejection));
        }
        let mut decision = match decide(&self.state, command) {
            Ok(decision) => decision,
            Err(rejection) => return Ok(LineOutcome::Rejected(rejection)),
        };
        if let Some(own) = &self.own_region {
            decision.events = gongji_domain::decide::owed_elsewhere(decision.events, own);
        }
        if decision.events.is_empty() {
            return Ok(LineOutcome::Applied(decision.outcome));
        }
        let names: Vec<String> = decision
            .events
            .iter()
            .map(|(stream, _)| stream.name())
            .collect();
        let payloads: Vec<Vec<u8>> = decision
            .events
            .iter()
            .map(|(_, event)| event.encode())
            .collect();
        let first_position = self.log.end_position();
        let records: Vec<NewRecord<'_>> = names
            .iter()
            .zip(&payloads)
            .enumerate()
            .map(|(i, (stream, payload))| NewRecord {
                stream,
                event_id: event_id(first_position + i as u64, payload),
                payload,
            })
            .collect();
        match self.log.append(&[], &records, recorded_at_micros) {
            Ok(_) => {}
            // Refused before anything was staged: the line is rejected and nothing changed.
            Err(LogError::TooLarge {
                what,
                actual,
                limit,
            }) => {
                return Ok(LineOutcome::Rejected(Rejection::new(
                    gongji_domain::RejectionCode::TooLarge,
                    format!("the command's {what} is {actual}, over the log's limit of {limit}"),
                )));
            }
            Err(error) => return Err(error.into()),
        }
        for (_, event) in &decision.events {
            self.load_for(event)?;
            evolve(&mut self.state, event);
        }
        if let Some(staged) = &mut self.events {
            staged.push(first_position, decision.events.into_iter().map(|(_, e)| e));
        }
        Ok(LineOutcome::Applied(decision.outcome))
    }

    /// In a region map, a command about a member whose account this ledger no longer holds
    /// (the copy a transfer away left here) is refused: the account is decided where it is.
    fn moved_away(&self, command: &Command) -> Option<Rejection> {
        let own = self.own_region.as_deref()?;
        let member = match command {
            Command::Retire { member, .. }
            | Command::Contribute { member, .. }
            | Command::Claim { member, .. }
            | Command::Decease { member, .. }
            | Command::Inherit { member, .. }
            | Command::Transfer { member, .. }
            | Command::SendTransfer { member, .. }
            | Command::AccountPay { holder: member, .. }
            | Command::BindFamily { holder: member, .. }
            | Command::UnbindFamily { holder: member, .. } => member,
            _ => return None,
        };
        let account = self.state.members.get(member)?;
        (account.region != own).then(|| {
            Rejection::new(
                gongji_domain::RejectionCode::AccountMoved,
                format!(
                    "member {member}'s account has left region {own} for region {}",
                    account.region
                ),
            )
        })
    }

    /// Loads every entity `command` may read or change into the cache.
    fn prefetch(&mut self, command: &Command) -> Result<(), LedgerError> {
        let mut members: Vec<&str> = Vec::new();
        let mut regions: Vec<String> = Vec::new();
        match command {
            Command::LoadPolicy { policy } => regions.push(policy.region.clone()),
            // A decision on a flag reads nothing the ledger keeps.
            Command::DecideFlag { .. } => {}
            // Rules are for a region whose policy is loaded.
            Command::LoadMonitorRules { region, .. } => regions.push(region.clone()),
            Command::Enroll { member, region, .. } => {
                members.push(member);
                regions.push(region.clone());
            }
            Command::Retire { member, .. } | Command::Contribute { member, .. } => {
                members.push(member)
            }
            Command::Allocate { region, .. } | Command::Rollover { region, .. } => {
                let ids = store::load_region_members(&self.kv, &mut self.state, region)?;
                for id in &ids {
                    self.load_member(id)?;
                }
                regions.push(region.clone());
            }
            Command::Decease { member, .. } | Command::Inherit { member, .. } => {
                members.push(member)
            }
            Command::Transfer {
                member, to_region, ..
            } => {
                members.push(member);
                regions.push(to_region.clone());
            }
            Command::SendTransfer { member, .. } => {
                members.push(member);
                store::load(&self.kv, &mut self.state, EntityRef::Relative(member))?;
            }
            Command::LandOwed { owed, event, .. } => {
                store::load(&self.kv, &mut self.state, EntityRef::Tx(owed))?;
                if let Some((_, region)) = gongji_domain::event::fund_event(event) {
                    regions.push(region.to_string());
                }
            }
            Command::ReceiveTransfer { account, .. } => {
                members.push(&account.id);
                regions.push(account.region.clone());
            }
            Command::Claim { id, member, .. } => {
                self.load_tx(id)?;
                members.push(member);
            }
            Command::BindFamily {
                holder, relative, ..
            }
            | Command::UnbindFamily {
                holder, relative, ..
            } => {
                members.push(holder);
                members.push(relative);
                for person in [holder, relative] {
                    store::load(&self.kv, &mut self.state, EntityRef::Relative(person))?;
                }
            }
            Command::AccountPay { id, holder, .. } => {
                self.load_tx(id)?;
                members.push(holder);
            }
            Command::Reverse { id, .. } => self.load_tx(id)?,
        }
        for id in members {
            self.load_member(id)?;
        }
        for region in regions {
            self.load_region(&region)?;
        }
        Ok(())
    }

    fn load_tx(&mut self, id: &str) -> Result<(), LedgerError> {
        if store::load(&self.kv, &mut self.state, EntityRef::Tx(id))? {
            let member = self.state.txs[id].member.clone();
            self.load_member(&member)?;
        }
        Ok(())
    }

    fn load_member(&mut self, id: &str) -> Result<(), LedgerError> {
        load_member(&self.kv, &mut self.state, id)
    }

    fn load_region(&mut self, region: &str) -> Result<(), LedgerError> {
        load_region(&self.kv, &mut self.state, region)
    }

    fn load_for(&mut self, event: &Event) -> Result<(), LedgerError> {
        load_for(&self.kv, &mut self.state, event)
    }
}

/// Loads what `evolve` needs for `event`: its entities, a member with its regions.
fn load_for(kv: &Kv, state: &mut State, event: &Event) -> Result<(), LedgerError> {
    for key in event.entities() {
        match key {
            EntityRef::Member(id) => load_member(kv, state, id)?,
            _ => {
                store::load(kv, state, key)?;
            }
        }
    }
    Ok(())
}

/// A member, and with it the policies, funds and account totals of every region the member
/// belonged to. A cached member's regions are cached with it (they are loaded together here,
/// and dropped together when the cache is emptied), so a hit needs nothing more.
fn load_member(kv: &Kv, state: &mut State, id: &str) -> Result<(), LedgerError> {
    if state.members.contains_key(id) {
        return Ok(());
    }
    if store::load(kv, state, EntityRef::Member(id))? {
        let account = &state.members[id];
        let regions: Vec<String> = std::iter::once(&account.region)
            .chain(account.past_regions.iter().map(|p| &p.region))
            .cloned()
            .collect();
        for region in regions {
            load_region(kv, state, &region)?;
        }
    }
    Ok(())
}

fn load_region(kv: &Kv, state: &mut State, region: &str) -> Result<(), LedgerError> {
    store::load(kv, state, EntityRef::Policies(region))?;
    store::load(kv, state, EntityRef::Accounts(region))?;
    for kind in [FundKind::Pooled, FundKind::LargeAmount] {
        store::load(kv, state, EntityRef::Fund(kind, region))?;
    }
    Ok(())
}

/// A deterministic event id (uuid version 8): the log position, unique in the ledger, and an
/// FNV-1a hash of the payload. Cheap enough for millions of events a second, and not stored:
/// the log derives it again when it reads the record.
fn event_id(position: u64, payload: &[u8]) -> uuid::Uuid {
    gongji_log::derived_event_id(position, payload)
}

/// A read-only ledger is shared by queries on several threads at once (`&self` queries).
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Ledger>();
};
