//! Gongji's ledger: the command engine and the projections.
//!
//! What it is for: taking one command line at a time, loading the state it needs from the
//! projections, deciding it with `gongji-domain`, appending the events to `gongji-log` as one
//! atomic unit, folding them into the projections, and answering queries from those projections.
//! Results are only handed out after [`Ledger::commit`] made their events durable (group commit).
//!
//! What it is not for: it holds no insurance rule (those are `gongji-domain`'s) and touches no
//! file or database itself (all storage goes through `gongji-log`'s API). Projections never
//! write to the log.

pub mod archive;
pub mod audit;
pub mod input;
mod replay;
mod store;
mod stream;
pub mod views;

use std::collections::BTreeSet;
use std::path::Path;

use gongji_domain::{
    decide, evolve, parse_command, Command, EntityKey, Event, FundKind, Rejection, State,
};
use gongji_log::{Log, LogError, NewRecord};
pub use gongji_log::{LogOptions, ProjectionBackend, SyncTicket};

pub use stream::{
    now_micros, DurableGroup, OutcomeSink, StreamError, StreamOptions, StreamSummary,
};
pub use views::{AccountView, FundView, HistoryEntry, InheritanceView, TransfersView, YearView};

/// Which events an answer takes into account: those whose own date is on or before `date`
/// ("what was the balance on 30 June"), and those the ledger had recorded before
/// `recorded_before_micros` ("what did the ledger say then"); either, both or neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsOf {
    pub date: Option<gongji_domain::Day>,
    pub recorded_before_micros: Option<i64>,
}

impl AsOf {
    pub const NOW: AsOf = AsOf {
        date: None,
        recorded_before_micros: None,
    };

    pub fn is_now(&self) -> bool {
        *self == AsOf::NOW
    }

    pub fn admits(&self, recorded_at_micros: i64, date: gongji_domain::Day) -> bool {
        self.date.is_none_or(|d| date <= d)
            && self
                .recorded_before_micros
                .is_none_or(|t| recorded_at_micros < t)
    }
}

/// Members kept in the in-memory cache between commits before it is dropped (it is reloaded
/// from the projections on demand): bounds memory on long runs.
const CACHE_MEMBERS_MAX: usize = 200_000;
/// Records folded between projection checkpoints during catch-up and rebuild.
const REPLAY_CHECKPOINT_RECORDS: u64 = 50_000;
/// Entities written to a sled projection store in one batch by a rebuild.
const STORE_BATCH_ENTRIES: usize = 100_000;
/// Dirty entities held in memory between commits before `commit_deferred` stores them.
const DEFERRED_DIRTY_MAX: usize = 140_000;

#[derive(Debug)]
pub enum LedgerError {
    Log(LogError),
    /// A stored event or projection could not be read back.
    Projection(String),
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::Log(e) => write!(f, "{e}"),
            LedgerError::Projection(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LedgerError {}

/// What became of one input line once its events are durable.
#[derive(Debug, Clone, PartialEq)]
pub enum LineOutcome {
    /// The command's result, as `gongji apply` shows it.
    Applied(gongji_domain::Outcome),
    Rejected(Rejection),
}

/// An open ledger: the log, and the cache of projected state for the commands in flight.
pub struct Ledger {
    log: Log,
    state: State,
    /// Outcomes decided since the last commit, not yet durable.
    pending: Vec<LineOutcome>,
    /// The projection write `commit_deferred` left running on its own thread, if any.
    storing: Option<std::thread::JoinHandle<Result<(), LogError>>>,
    /// Why a projection write failed, if one did: the ledger then refuses to commit more, since
    /// what that write held is neither stored nor marked dirty any more.
    store_failed: Option<String>,
    limits: CacheLimits,
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
        Ok(Ledger {
            log: Log::open_with(dir, options)?,
            state: State::default(),
            pending: Vec::new(),
            storing: None,
            store_failed: None,
            limits: CacheLimits::default(),
        })
    }

    /// Lifts the quarantine a damaged record put on the ledger in `dir`, once the whole log
    /// verifies again (after the damaged segment was restored from a backup). Returns what the
    /// marker said, or None if the ledger was not quarantined.
    pub fn clear_quarantine(dir: &Path) -> Result<Option<gongji_log::Quarantine>, LedgerError> {
        Ok(Log::clear_quarantine(dir)?)
    }

    /// The log below, for reading records.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Decides one input line and stages its events. The outcome is held until [`commit`]
    /// returns it: nothing is reported before it is durable.
    pub fn apply_line(&mut self, line: &str, recorded_at_micros: i64) -> Result<(), LedgerError> {
        let outcome = match parse_command(line) {
            Ok(command) => self.apply_command(&command, recorded_at_micros)?,
            Err(rejection) => LineOutcome::Rejected(rejection),
        };
        self.pending.push(outcome);
        Ok(())
    }

    /// Decides a line parsed elsewhere (`gongji apply` parses on a reader thread) and stages
    /// its events, as [`apply_line`] does.
    pub fn apply_parsed(
        &mut self,
        parsed: Result<Command, Rejection>,
        recorded_at_micros: i64,
    ) -> Result<(), LedgerError> {
        let outcome = match parsed {
            Ok(command) => self.apply_command(&command, recorded_at_micros)?,
            Err(rejection) => LineOutcome::Rejected(rejection),
        };
        self.pending.push(outcome);
        Ok(())
    }

    /// Reports a line that could not even be read as text (it stays in the outcome order).
    pub fn reject_line(&mut self, rejection: Rejection) {
        self.pending.push(LineOutcome::Rejected(rejection));
    }

    /// Lines decided and not yet committed.
    pub fn pending_lines(&self) -> usize {
        self.pending.len()
    }

    fn apply_command(
        &mut self,
        command: &Command,
        recorded_at_micros: i64,
    ) -> Result<LineOutcome, LedgerError> {
        self.prefetch(command)?;
        let decision = match decide(&self.state, command) {
            Ok(decision) => decision,
            Err(rejection) => return Ok(LineOutcome::Rejected(rejection)),
        };
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
                    "too_large",
                    format!("the command's {what} is {actual}, over the log's limit of {limit}"),
                )));
            }
            Err(error) => return Err(error.into()),
        }
        for (_, event) in &decision.events {
            self.load_for(event)?;
            evolve(&mut self.state, event);
        }
        Ok(LineOutcome::Applied(decision.outcome))
    }

    /// Makes every staged event durable, then stores the projections they changed, and hands
    /// back the outcomes of the lines since the last commit, in input order.
    pub fn commit(&mut self) -> Result<Vec<LineOutcome>, LedgerError> {
        self.finish_storing()?;
        let durable_end = self.log.sync()?;
        self.store_projections(durable_end)?;
        Ok(std::mem::take(&mut self.pending))
    }

    /// As [`commit`], but the projections are stored only once many entities are dirty (or at
    /// [`close`]): a long `apply` writes each busy account once per batch instead of once per
    /// group. The events are durable all the same; after a crash, opening folds the records
    /// the projections had not stored. Queries in this process must follow a [`commit`].
    ///
    /// The store itself (sorting, writing and merging runs) runs on a thread of its own while
    /// the next lines are decided; the entities it writes stay in the cache until it is done, so
    /// nothing is ever read from a store that does not hold it yet.
    ///
    /// An error means the lines since the last commit are not durable. A projection write that
    /// fails after their sync does not make this call fail (they are durable and are handed
    /// back); the next call fails instead, before it syncs anything.
    pub fn commit_deferred(&mut self) -> Result<Vec<LineOutcome>, LedgerError> {
        let (outcomes, ticket) = self.commit_pipelined()?;
        ticket.wait()?;
        self.log.settle_syncs()?;
        Ok(outcomes)
    }

    /// As [`commit_deferred`](Ledger::commit_deferred), but without waiting for the disk: the
    /// lines' events are handed to the log's syncer, and the outcomes come back with the ticket
    /// that says when they are durable. **The outcomes must not be reported before
    /// `ticket.wait()` returns `Ok`**: only [`apply_stream`](Ledger::apply_stream) calls it, and
    /// it hands the sink a group only through a waited ticket. If the wait fails, these lines and
    /// all later ones are not durable, and the log refuses further work.
    pub(crate) fn commit_pipelined(
        &mut self,
    ) -> Result<(Vec<LineOutcome>, gongji_log::SyncTicket), LedgerError> {
        self.refuse_if_store_failed()?;
        let ticket = self.log.sync_start()?;
        if self.state.dirty.len() >= self.limits.deferred_dirty_max {
            // The checkpoint stored must be durable: wait for this group first (rare).
            let durable_end = ticket.wait()?;
            self.log.settle_syncs()?;
            // Failures are remembered in `store_failed` and reported by the next call.
            let _ = self.store_in_background(durable_end);
        }
        Ok((std::mem::take(&mut self.pending), ticket))
    }

    fn refuse_if_store_failed(&self) -> Result<(), LedgerError> {
        match &self.store_failed {
            None => Ok(()),
            Some(why) => Err(LedgerError::Projection(format!(
                "the projections could not be stored ({why}); every line reported before this \
                 is durable; run `gongji rebuild`"
            ))),
        }
    }

    /// Waits for the projection write left running by [`commit_deferred`], if any.
    /// A failure is remembered: the ledger refuses to commit from then on.
    fn finish_storing(&mut self) -> Result<(), LedgerError> {
        self.refuse_if_store_failed()?;
        let failed = match self.storing.take() {
            None => None,
            Some(handle) => match handle.join() {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some("the projection writer thread panicked".to_string()),
            },
        };
        if let Some(why) = failed {
            self.store_failed = Some(why);
            self.refuse_if_store_failed()?;
        }
        Ok(())
    }

    /// Encodes the dirty entities and hands them, with `checkpoint`, to a writer thread.
    fn store_in_background(&mut self, checkpoint: u64) -> Result<(), LedgerError> {
        // The previous write is published once joined: what it held and is not dirty again can
        // leave the cache. What is dirty now stays until the write started below is joined.
        self.finish_storing()?;
        evict_stored(&mut self.state, self.limits.members_max);
        let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = store::dirty_writes(&self.state).collect();
        self.state.dirty.clear();
        let kv = self.log.kv().clone();
        // A deleted entity (an unbinding, a member leaving a region's index) is absent from the
        // cache, so it would be looked up in the store, which still holds it until the write
        // lands: a batch with deletes is waited for. They are rare (unbindings, transfers).
        let deletes = writes.iter().any(|(_, value)| value.is_none());
        let spawned = std::thread::Builder::new()
            .name("projections".into())
            .spawn(move || kv.apply(writes, checkpoint));
        match spawned {
            Ok(handle) => self.storing = Some(handle),
            Err(e) => {
                self.store_failed = Some(format!("no thread for the projection writer: {e}"));
                return self.refuse_if_store_failed();
            }
        }
        if deletes {
            self.finish_storing()?;
        }
        Ok(())
    }

    fn store_projections(&mut self, checkpoint: u64) -> Result<(), LedgerError> {
        store_projections(
            &self.log,
            &mut self.state,
            checkpoint,
            self.limits.members_max,
        )
    }

    /// Stores deferred projections once `deferred_dirty_max` entities are dirty (default
    /// 140,000). For tests that want the background writer at work on small inputs.
    #[doc(hidden)]
    pub fn set_deferred_dirty_max(&mut self, deferred_dirty_max: usize) {
        self.limits.deferred_dirty_max = deferred_dirty_max;
    }

    /// As [`set_deferred_dirty_max`](Ledger::set_deferred_dirty_max), and keeps at most about
    /// `members_max` members in the cache (default 200,000): every store and eviction path
    /// taken often.
    #[doc(hidden)]
    pub fn set_cache_limits(&mut self, deferred_dirty_max: usize, members_max: usize) {
        self.limits = CacheLimits {
            deferred_dirty_max,
            members_max,
        };
    }

    /// Stores any projections still held in memory and flushes the projection store to disk
    /// (the log itself is durable at every commit).
    pub fn close(mut self) -> Result<(), LedgerError> {
        self.finish_storing()?;
        // Also reports a pipelined group that failed after its outcomes were handed out.
        let durable_end = self.log.sync()?;
        if !self.state.dirty.is_empty() {
            self.store_projections(durable_end)?;
        }
        self.log.kv().flush()?;
        Ok(())
    }

    /// Loads every entity `command` may read or change into the cache.
    fn prefetch(&mut self, command: &Command) -> Result<(), LedgerError> {
        let mut members: Vec<&str> = Vec::new();
        let mut regions: Vec<String> = Vec::new();
        match command {
            Command::LoadPolicy { policy } => regions.push(policy.region.clone()),
            Command::Enroll { member, region, .. } => {
                members.push(member);
                regions.push(region.clone());
            }
            Command::Retire { member, .. } | Command::Contribute { member, .. } => {
                members.push(member)
            }
            Command::Allocate { region, .. } | Command::Rollover { region, .. } => {
                let ids = store::load_region_members(self.log.kv(), &mut self.state, region)?;
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
                    let key = EntityKey::Relative(person.clone());
                    store::load(self.log.kv(), &mut self.state, &key)?;
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
        if store::load(
            self.log.kv(),
            &mut self.state,
            &EntityKey::Tx(id.to_string()),
        )? {
            let member = self.state.txs[id].member.clone();
            self.load_member(&member)?;
        }
        Ok(())
    }

    fn load_member(&mut self, id: &str) -> Result<(), LedgerError> {
        load_member(&self.log, &mut self.state, id)
    }

    fn load_region(&mut self, region: &str) -> Result<(), LedgerError> {
        load_region(&self.log, &mut self.state, region)
    }

    fn load_for(&mut self, event: &Event) -> Result<(), LedgerError> {
        load_for(&self.log, &mut self.state, event)
    }

    /// Folds the log records the projections have not seen yet. `progress(done, total)`.
    fn catch_up(&mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<u64, LedgerError> {
        let checkpoint = self.log.kv().checkpoint()?;
        if checkpoint.is_none() && self.log.durable_end() > 0 {
            // No checkpoint: whatever the store holds (a rebuild cut short) is not to be trusted.
            self.log.kv().clear()?;
            self.state = State::default();
        }
        let from = checkpoint.unwrap_or(0);
        let to = self.log.durable_end();
        if from >= to {
            return Ok(0);
        }
        let mut folded = 0u64;
        let (log, state) = (&self.log, &mut self.state);
        for record in log.read_range(from, to)? {
            let record = record?;
            let event = Event::decode(&record.payload).map_err(|e| {
                LedgerError::Projection(format!(
                    "record {} of stream {}: {e}",
                    record.position, record.stream
                ))
            })?;
            load_for(log, state, &event)?;
            evolve(state, &event);
            folded += 1;
            if folded.is_multiple_of(REPLAY_CHECKPOINT_RECORDS) {
                store_projections(log, state, record.position + 1, CACHE_MEMBERS_MAX)?;
                progress(folded, to - from);
            }
        }
        self.store_projections(to)?;
        // The fold loaded members without their regions' policies and funds (it needs none);
        // deciding needs a cached member's regions cached, so the cache starts empty.
        self.state = State::default();
        progress(folded, to - from);
        Ok(folded)
    }

    /// Drops every projection and rebuilds them from the first record of the log.
    /// Returns the number of records folded.
    pub fn rebuild(&mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<u64, LedgerError> {
        // A write still running would land after the clear. A failed one is what a rebuild
        // repairs, so it does not stop it.
        if let Some(handle) = self.storing.take() {
            let _ = handle.join();
        }
        self.store_failed = None;
        self.log.kv().clear()?;
        self.state = State::default();
        let to = self.log.durable_end();
        // Twice as many workers as cores: a region's fund streams all go to one worker, so with
        // one worker per core that worker had twice the work of the others.
        let workers = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
        let state = replay::fold_parallel(&self.log, to, workers, progress)?;
        // Written in batches; only the last carries the checkpoint, so a rebuild cut short
        // leaves no checkpoint and the next open starts again from a cleared store.
        let entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = store::all_entries(&state)
            .into_iter()
            .map(|(key, value)| (key, Some(value)))
            .collect();
        // sled takes a large state in batches; the runs store writes it as one sorted run.
        let batch = match self.log.options().projections {
            ProjectionBackend::Sled => STORE_BATCH_ENTRIES,
            ProjectionBackend::Runs => entries.len().max(1),
        };
        let mut chunks = entries.chunks(batch).peekable();
        while let Some(chunk) = chunks.next() {
            if chunks.peek().is_some() {
                self.log.kv().apply_without_checkpoint(chunk.to_vec())?;
            } else {
                self.log.kv().apply(chunk.to_vec(), to)?;
            }
        }
        if entries.is_empty() {
            self.log.kv().apply(Vec::new(), to)?;
        }
        self.log.kv().flush()?;
        Ok(to)
    }

    pub fn account(&self, member: &str) -> Result<Option<AccountView>, LedgerError> {
        self.account_at(member, &AsOf::NOW)
    }

    /// The account as it stood `as_of`: from the projections for now, else by folding the
    /// member's stream with only the events `as_of` admits.
    pub fn account_at(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<Option<AccountView>, LedgerError> {
        Ok(self.member_at(member, as_of)?.map(|m| AccountView::of(&m)))
    }

    pub fn year(&self, member: &str, year: i32) -> Result<Option<YearView>, LedgerError> {
        self.year_at(member, year, None, &AsOf::NOW)
    }

    /// A member's standing in an insurance year, in `region` (by default the region the member
    /// belonged to at the end of that year), as it stood `as_of`.
    pub fn year_at(
        &self,
        member: &str,
        year: i32,
        region: Option<&str>,
        as_of: &AsOf,
    ) -> Result<Option<YearView>, LedgerError> {
        let Some(account) = self.member_at(member, as_of)? else {
            return Ok(None);
        };
        let region = match region {
            Some(region) => region.to_string(),
            None => {
                let year_end =
                    gongji_domain::Day::from_ymd(year, 12, 31).unwrap_or(account.region_since);
                account.region_on(year_end).to_string()
            }
        };
        let policies = store::get_policies(self.log.kv(), &region)?;
        Ok(Some(YearView::of(&account, &region, year, &policies)))
    }

    /// The member's state as of `as_of`.
    fn member_at(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<Option<gongji_domain::state::Member>, LedgerError> {
        if as_of.is_now() {
            return store::get_member(self.log.kv(), member);
        }
        Ok(self.fold_member(member, as_of)?.0)
    }

    /// Folds the member's stream, keeping only the events `as_of` admits. Returns the state and
    /// the admitted records with their events.
    fn fold_member(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<(Option<gongji_domain::state::Member>, Vec<HistoryEntry>), LedgerError> {
        let mut state = State::untracked();
        let mut admitted = Vec::new();
        for entry in self.history(member)? {
            if as_of.admits(entry.recorded_at_micros, entry.event.date()) {
                evolve(&mut state, &entry.event);
                admitted.push(entry);
            }
        }
        Ok((state.members.remove(member), admitted))
    }

    /// What happened to a deceased member's account: the balance on the day of death, what
    /// moved it after, the payout per heir, and the account's state.
    pub fn inheritance(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<Option<InheritanceView>, LedgerError> {
        let (account, entries) = self.fold_member(member, as_of)?;
        Ok(account.map(|account| InheritanceView::of(&account, &entries)))
    }

    /// The member's transfers between regions, with the balances moved.
    pub fn transfers(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<Option<TransfersView>, LedgerError> {
        let (account, entries) = self.fold_member(member, as_of)?;
        Ok(account.map(|account| TransfersView::of(&account, &entries)))
    }

    pub fn fund(&self, region: &str) -> Result<Option<FundView>, LedgerError> {
        self.fund_at(region, &AsOf::NOW)
    }

    /// A region's funds, now (with its personal accounts taken together) or as of a past time
    /// (folding the funds' streams from the log).
    pub fn fund_at(&self, region: &str, as_of: &AsOf) -> Result<Option<FundView>, LedgerError> {
        let kv = self.log.kv();
        let policies = store::get_policies(kv, region)?;
        let (pooled, large, accounts) = if as_of.is_now() {
            (
                store::get_fund(kv, FundKind::Pooled, region)?,
                store::get_fund(kv, FundKind::LargeAmount, region)?,
                store::get_accounts(kv, region)?,
            )
        } else {
            let mut state = State::untracked();
            let mut seen = false;
            for kind in [FundKind::Pooled, FundKind::LargeAmount] {
                let stream = gongji_domain::Stream::Fund(kind, region.to_string()).name();
                for entry in self.stream_entries(&stream)? {
                    if as_of.admits(entry.recorded_at_micros, entry.event.date()) {
                        evolve(&mut state, &entry.event);
                        seen = true;
                    }
                }
            }
            let fund = |kind| seen.then(|| state.fund(kind, region));
            (fund(FundKind::Pooled), fund(FundKind::LargeAmount), None)
        };
        if pooled.is_none() && large.is_none() && accounts.is_none() && policies.is_empty() {
            return Ok(None);
        }
        Ok(Some(FundView::of(
            region,
            pooled.unwrap_or_default(),
            large.unwrap_or_default(),
            accounts,
        )))
    }

    /// Why a claim settled as it did: the recorded figures step by step, and every event the
    /// claim produced. None if no claim has that id.
    pub fn explain(&self, claim: &str) -> Result<Option<views::ExplainView>, LedgerError> {
        let mut state = State::default();
        let key = EntityKey::Tx(claim.to_string());
        if !store::load(self.log.kv(), &mut state, &key)? {
            return Ok(None);
        }
        let tx = &state.txs[claim];
        let gongji_domain::state::TxKind::Claim(settlement) = &tx.kind else {
            return Ok(None);
        };
        // The claim's own events sit in its member's stream; the fund events of the same unit
        // follow each of them directly in the log.
        let mut events = Vec::new();
        for entry in self.history(&tx.member)? {
            let mine = match &entry.event {
                Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
                    settlement.claim == claim
                }
                _ => false,
            };
            if !mine {
                continue;
            }
            let after = (entry.position + 1)..(entry.position + 3).min(self.log.durable_end());
            events.push(entry);
            for record in self
                .log
                .read_range(after.start, after.end.max(after.start))?
            {
                let record = record?;
                let event = Event::decode(&record.payload).map_err(|e| {
                    LedgerError::Projection(format!("record {}: {e}", record.position))
                })?;
                let same_claim = matches!(&event,
                    Event::FundClaimPaid { claim: c, .. } | Event::FundClaimRefunded { claim: c, .. } if c == claim);
                if same_claim {
                    events.push(HistoryEntry::of(&record, &event));
                }
            }
        }
        Ok(Some(views::ExplainView::of(settlement, events)))
    }

    /// The member's events in order, read from the log itself.
    pub fn history(&self, member: &str) -> Result<Vec<HistoryEntry>, LedgerError> {
        self.stream_entries(&gongji_domain::Stream::Member(member.to_string()).name())
    }

    /// A stream's events in order, decoded.
    fn stream_entries(&self, stream: &str) -> Result<Vec<HistoryEntry>, LedgerError> {
        self.log
            .read_stream(stream)?
            .into_iter()
            .map(|record| {
                let event = Event::decode(&record.payload).map_err(|e| {
                    LedgerError::Projection(format!(
                        "record {} of stream {}: {e}",
                        record.position, record.stream
                    ))
                })?;
                Ok(HistoryEntry::of(&record, &event))
            })
            .collect()
    }

    /// The regions whose policies are loaded, each with its versions.
    pub fn policy_regions(&self) -> Result<BTreeSet<String>, LedgerError> {
        let mut regions = BTreeSet::new();
        for entry in self.log.kv().scan_prefix(b"p/") {
            let (key, _) = entry?;
            regions.insert(String::from_utf8_lossy(&key[2..]).into_owned());
        }
        Ok(regions)
    }

    pub fn policies(&self, region: &str) -> Result<Vec<gongji_domain::PolicyVersion>, LedgerError> {
        store::get_policies(self.log.kv(), region)
    }
}

/// Loads what `evolve` needs for `event`: its entities, a member with its regions.
fn load_for(log: &Log, state: &mut State, event: &Event) -> Result<(), LedgerError> {
    for key in event.entities() {
        match &key {
            EntityKey::Member(id) => load_member(log, state, id)?,
            _ => {
                store::load(log.kv(), state, &key)?;
            }
        }
    }
    Ok(())
}

/// A member, and with it the policies, funds and account totals of every region the member
/// belonged to. A cached member's regions are cached with it (they are loaded together here,
/// and dropped together when the cache is emptied), so a hit needs nothing more.
fn load_member(log: &Log, state: &mut State, id: &str) -> Result<(), LedgerError> {
    if state.members.contains_key(id) {
        return Ok(());
    }
    let key = EntityKey::Member(id.to_string());
    if store::load(log.kv(), state, &key)? {
        let account = &state.members[id];
        let regions: Vec<String> = std::iter::once(&account.region)
            .chain(account.past_regions.iter().map(|p| &p.region))
            .cloned()
            .collect();
        for region in regions {
            load_region(log, state, &region)?;
        }
    }
    Ok(())
}

fn load_region(log: &Log, state: &mut State, region: &str) -> Result<(), LedgerError> {
    let kv = log.kv();
    store::load(kv, state, &EntityKey::Policies(region.to_string()))?;
    store::load(kv, state, &EntityKey::Accounts(region.to_string()))?;
    for kind in [FundKind::Pooled, FundKind::LargeAmount] {
        store::load(kv, state, &EntityKey::Fund(kind, region.to_string()))?;
    }
    Ok(())
}

/// Writes every dirty entity with the checkpoint `checkpoint` in one atomic batch.
fn store_projections(
    log: &Log,
    state: &mut State,
    checkpoint: u64,
    members_max: usize,
) -> Result<(), LedgerError> {
    let writes = store::dirty_writes(state);
    log.kv().apply(writes, checkpoint)?;
    state.dirty.clear();
    evict_stored(state, members_max);
    Ok(())
}

impl Drop for Ledger {
    /// A projection write still running finishes before the log (and its lock) goes.
    fn drop(&mut self) {
        if let Some(handle) = self.storing.take() {
            let _ = handle.join();
        }
    }
}

/// Drops from the cache what the store holds and nothing has changed since (everything not
/// dirty, once every write is published): settled transactions always (read again only by a
/// duplicate or a reversal), and members, bindings and region indexes when the cache holds
/// more than `members_max` members. A region's policies, funds and totals stay: a cached
/// member's regions must be cached.
fn evict_stored(state: &mut State, members_max: usize) {
    let dirty = std::mem::take(&mut state.dirty);
    state
        .txs
        .retain(|id, _| dirty.contains(&EntityKey::Tx(id.clone())));
    if state.members.len() > members_max {
        state
            .members
            .retain(|id, _| dirty.contains(&EntityKey::Member(id.clone())));
        state
            .relatives
            .retain(|relative, _| dirty.contains(&EntityKey::Relative(relative.clone())));
        for (region, members) in &mut state.region_members {
            members.retain(|m| dirty.contains(&EntityKey::RegionMember(region.clone(), m.clone())));
        }
    }
    state.dirty = dirty;
}

/// A deterministic event id (uuid version 8): the log position, unique in the ledger, and an
/// FNV-1a hash of the payload. Cheap enough for millions of events a second.
fn event_id(position: u64, payload: &[u8]) -> uuid::Uuid {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in payload {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&position.to_be_bytes());
    bytes[8..].copy_from_slice(&hash.to_be_bytes());
    uuid::Uuid::new_v8(bytes)
}
