//! Bringing the projections level with the log: at open, folding the records after the
//! checkpoint ([`Ledger::catch_up`]); in `rebuild`, dropping them and folding the whole log on
//! every core.
//!
//! The log is read once, in order, on the calling thread; its records go in batches to one of
//! two workers per core, chosen by the entity the record's stream belongs to (a member's stream
//! by the member, a fund's or policy's stream by its region). Each worker folds its share with
//! `evolve` into a state of its own: a member's events, and the transactions and bindings they
//! create, are all in one stream, so they meet in one worker in log order. The workers' funds,
//! policies and bindings are then merged and the per-region account totals, which every worker
//! adds to, summed; their members, transactions and region indexes stay in the worker states
//! ([`Folded`]), whose entries are encoded (on several threads) and written to the projection
//! store once.
//!
//! The catch-up folds on the calling thread, a chunk of records at a time: their events are
//! decoded first and, with a store in a database (PostgreSQL's), the keys of the entities
//! they change handed to it (`Kv::prefetch`), which reads them in one query instead of a round
//! trip per entity.
//!
//! Every record is decoded, checked to sit on its event's own stream and checked admissible
//! (`gongji_domain::state::admissible`) before `evolve` folds it, so a log written behind the
//! ledger's back is an error naming the record, not a panic. At open, such a record stops the
//! catch-up before it and marks the ledger broken (commands and queries refused).
//!
//! The reader checks each frame's CRC and position; the hash chain is checked by the workers:
//! every record comes with the hash the next record says it has, and the worker that folds it
//! recomputes its hash and compares (blake3 was two fifths of the reader's work, and the reader
//! is what bounds a replay).

use std::sync::mpsc;

use gongji_domain::{evolve, Event, State};
use gongji_log::Kv;

use crate::commit::store_projections;
use crate::{load_for, store, Ledger, LedgerError, ProjectionBackend, CACHE_MEMBERS_MAX};

/// Records folded between projection checkpoints during catch-up.
const REPLAY_CHECKPOINT_RECORDS: u64 = 50_000;
/// Records a catch-up decodes (and whose entities it asks the store for) at a time.
const CATCH_UP_CHUNK_RECORDS: usize = 2048;
/// Entities written to a sled projection store in one batch by a rebuild.
const STORE_BATCH_ENTRIES: usize = 100_000;

/// Records sent to a worker at a time.
const BATCH_RECORDS: usize = 4096;
/// Batches waiting per worker before the reader waits (bounds memory).
const QUEUE_BATCHES: usize = 8;

/// Records on their way to a worker, each with the link that checks its hash.
type Batch = Vec<(gongji_log::Record, gongji_log::Link)>;

/// Which worker folds a stream's records.
fn partition(stream: &str, workers: usize) -> usize {
    let key = stream.split_once('/').map_or(stream, |(_, key)| key);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % workers as u64) as usize
}

/// What [`fold_parallel`] folded: its workers' states. Members, transactions and region-index
/// entries are spread over `merged` and `parts`, each in one of them (a log that puts one in two
/// is refused by [`Folded::entries`]); everything else is in `merged`.
pub(crate) struct Folded {
    pub(crate) merged: State,
    pub(crate) parts: Vec<State>,
}

impl Folded {
    /// Every entity, as the store keeps it, in key order.
    pub(crate) fn entries(&self) -> Result<Vec<store::Entry>, LedgerError> {
        store::all_entries(&self.merged, &self.parts)
    }

    /// Drops the states on a thread of their own: freeing a whole ledger's members and
    /// transactions takes a tenth of a replay, and nothing waits for it.
    pub(crate) fn drop_aside(self) {
        // A thread that cannot be started drops the closure, and the states with it, here.
        let _ = std::thread::Builder::new()
            .name("gongji-drop".into())
            .spawn(move || drop(self));
    }
}

/// Folds the log's records up to `to` on `workers` threads.
pub(crate) fn fold_parallel(
    log: &dyn gongji_log::DurableLog,
    to: u64,
    workers: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Folded, LedgerError> {
    let workers = workers.max(1);
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        // Emptied batches go back to the reader to be filled again: a fresh one is most of a
        // megabyte, which the allocator would take from (and the kernel zero in) new pages.
        let (recycle, recycled) = mpsc::channel::<Batch>();
        for _ in 0..workers {
            let (sender, receiver) = mpsc::sync_channel::<Batch>(QUEUE_BATCHES);
            senders.push(sender);
            let recycle = recycle.clone();
            handles.push(scope.spawn(move || -> Result<State, LedgerError> {
                let mut state = State::untracked();
                for mut batch in receiver {
                    for (record, link) in batch.drain(..) {
                        log.check_link(&record, &link)?;
                        let event = decode_admissible(&state, &record)?;
                        evolve(&mut state, &event);
                    }
                    let _ = recycle.send(batch);
                }
                Ok(state)
            }));
        }
        drop(recycle);
        let mut batches: Vec<Batch> = (0..workers)
            .map(|_| Vec::with_capacity(BATCH_RECORDS))
            .collect();
        let mut read = 0u64;
        let mut failed = None;
        for item in log.read_range_links_deferred(0, to)? {
            let (record, link) = match item {
                Ok(item) => item,
                Err(error) => {
                    failed = Some(LedgerError::from(error));
                    break;
                }
            };
            let worker = partition(&record.stream, workers);
            batches[worker].push((record, link));
            if batches[worker].len() >= BATCH_RECORDS {
                let empty = recycled
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BATCH_RECORDS));
                let batch = std::mem::replace(&mut batches[worker], empty);
                if senders[worker].send(batch).is_err() {
                    break; // The worker stopped on an error; it is reported below.
                }
            }
            read += 1;
            if read.is_multiple_of(1 << 16) {
                progress(read, to);
            }
        }
        for (sender, batch) in senders.iter().zip(batches) {
            let _ = sender.send(batch);
        }
        drop(senders);
        let mut states = Vec::with_capacity(handles.len());
        for handle in handles {
            states.push(
                handle
                    .join()
                    .expect("a replay worker does not panic: it folds only admissible events")?,
            );
        }
        // The others' funds, policies, bindings and account totals are merged into the
        // first; their members, transactions and region indexes, nearly all of a ledger, stay
        // where they are (moving them into one state took a tenth of a replay).
        let mut states = states.into_iter();
        let mut merged = states.next().unwrap_or_default();
        let mut parts = Vec::with_capacity(states.len());
        for mut state in states {
            merge(&mut merged, &mut state)?;
            parts.push(state);
        }
        if let Some(error) = failed {
            return Err(error);
        }
        progress(read, to);
        Ok(Folded { merged, parts })
    })
}

/// Moves a worker's funds, policies and bindings into the merged state and adds its account
/// totals to the merged ones (workers own disjoint funds and policies; account totals are
/// sums). Its members, transactions and region indexes stay in it.
fn merge(into: &mut State, from: &mut State) -> Result<(), LedgerError> {
    into.funds.extend(from.funds.drain());
    into.policies.append(&mut from.policies);
    into.relatives.append(&mut from.relatives);
    for (region, totals) in std::mem::take(&mut from.accounts) {
        let merged = into.accounts.entry(region.clone()).or_default();
        let sum = |a: gongji_domain::Money, b| {
            a.checked_add(b)
                .filter(|sum| sum.fen() <= gongji_domain::money::TOTAL_FEN_MAX)
                .ok_or_else(|| {
                    LedgerError::Projection(format!(
                        "region {region}'s personal accounts add up past the bound on running totals"
                    ))
                })
        };
        merged.inflow = sum(merged.inflow, totals.inflow)?;
        merged.outflow = sum(merged.outflow, totals.outflow)?;
    }
    Ok(())
}

/// A record's event, if it decodes, belongs to the record's stream and is admissible in
/// `state` (a log that breaks an invariant is refused naming the record, never folded into a
/// panic).
fn decode_admissible(state: &State, record: &gongji_log::Record) -> Result<Event, LedgerError> {
    let event = decode_own(record)?;
    admissible_at(state, record, &event)?;
    Ok(event)
}

/// A record and its event (or why it has none it may fold).
type Decoded = (gongji_log::Record, Result<Event, LedgerError>);

/// The next records (up to [`CATCH_UP_CHUNK_RECORDS`]), each with its event decoded (or why
/// not), once a store that reads over the network was handed the keys of every entity their
/// events change (`Kv::prefetch`: one query instead of a round trip per entity).
fn decoded_chunk(
    records: &mut gongji_log::Records<'_>,
    kv: &Kv,
) -> Result<Vec<Decoded>, LedgerError> {
    let mut chunk = Vec::with_capacity(CATCH_UP_CHUNK_RECORDS);
    for record in records.by_ref().take(CATCH_UP_CHUNK_RECORDS) {
        let record = record?;
        let event = decode_own(&record);
        chunk.push((record, event));
    }
    let events: Vec<&Event> = chunk
        .iter()
        .filter_map(|(_, event)| event.as_ref().ok())
        .collect();
    prefetch(kv, events)?;
    Ok(chunk)
}

/// Hands a store that reads over the network (`Kv::prefetch`) the keys of every entity
/// `events` change, so that loading them takes one query; nothing for other stores.
fn prefetch<'a>(kv: &Kv, events: impl IntoIterator<Item = &'a Event>) -> Result<(), LedgerError> {
    if kv.prefetches() {
        let mut keys: Vec<Vec<u8>> = events
            .into_iter()
            .flat_map(Event::entities)
            .map(store::ref_bytes)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        kv.prefetch(&keys)?;
    }
    Ok(())
}

/// A record's event, if it decodes and belongs to the record's stream.
fn decode_own(record: &gongji_log::Record) -> Result<Event, LedgerError> {
    let event = Event::decode(&record.payload).map_err(|e| refused(record, "decode", e))?;
    crate::audit::check_stream(&record.stream, &event).map_err(|m| refused(record, "stream", m))?;
    Ok(event)
}

fn admissible_at(
    state: &State,
    record: &gongji_log::Record,
    event: &Event,
) -> Result<(), LedgerError> {
    gongji_domain::state::admissible(state, event)
        .map_err(|why| refused(record, why.check, why.message))
}

fn refused(record: &gongji_log::Record, check: &str, why: impl std::fmt::Display) -> LedgerError {
    LedgerError::Projection(format!(
        "record {} of stream {} breaks the {check} check: {why}; `gongji audit verify` names it",
        record.position, record.stream
    ))
}

/// What [`Ledger::refresh_read_only`] (or [`Ledger::fold_read_only`]) reached, and what the
/// ledger holds in memory since open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refreshed {
    /// The log's durable end: what the log holds, and what a member's answers are of (see
    /// [`Ledger::folded_end`]).
    pub durable_end: u64,
    /// Where the projections are folded to ([`Ledger::folded_end`]): `None` while a fold
    /// stopped partway.
    pub folded_end: Option<u64>,
    /// Records folded into the layer in memory since open (at open and by refreshes), or, on
    /// PostgreSQL, since the last refresh that dropped them (the writer stored up to them).
    pub folded_in_memory: u64,
    /// Stream-index entries the log holds in memory (the records after its index runs).
    pub index_in_memory: usize,
    /// Records the fold under way has left to fold ([`Ledger::fold_remaining`]).
    pub fold_remaining: u64,
    /// Records this call folded, and of them those whose events it took from the writer's
    /// [`EventHandover`](crate::EventHandover) (the rest it read from the log).
    pub folded_now: u64,
    pub handed_now: u64,
}

impl Ledger {
    /// Brings a ledger opened with [`Ledger::open_read_only`] up to the durable end its writer
    /// published now: the log scans only the records after its own end (checked, indexed in
    /// memory) and they are folded into the layer in memory over the stored projections, as
    /// the open folds the records after the checkpoint. Answers given after it are of that
    /// durable state, never of one not durable. A writer's ledger is at its durable end
    /// already and is left as it is. It is [`extend_read_only`](Ledger::extend_read_only)
    /// followed by a whole [`fold_read_only`](Ledger::fold_read_only).
    ///
    /// Memory grows with every refresh ([`Refreshed`]): open the ledger again (it starts from
    /// the projections the writer stored since) past a bound of the
    /// caller's. After an error, drop the ledger and open it again.
    ///
    /// On PostgreSQL the stored projections are read in a snapshot that each refresh takes
    /// again: when the writer has stored up to or past what was folded in memory (or rebuilt
    /// its projections), that is dropped and the fold starts from the new checkpoint
    /// (`folded_in_memory` counts from there); a store landing within what was folded keeps
    /// it (the usual case beside a stream), and memory grows as on a directory.
    pub fn refresh_read_only(&mut self) -> Result<Refreshed, LedgerError> {
        self.extend_read_only()?;
        // A fold stopped partway goes to its own end first, then on to the log's.
        let mut reached = self.fold_read_only(u64::MAX)?;
        if reached.folded_end != Some(reached.durable_end) && self.broken.is_none() {
            reached = self.fold_read_only(u64::MAX)?;
        }
        Ok(reached)
    }

    /// The first half of [`refresh_read_only`](Ledger::refresh_read_only): the log takes in
    /// the records its writer made durable since (up to the durable end published now), and
    /// nothing is folded. Returns the log's durable end. The projections stay where they were
    /// ([`Ledger::folded_end`]; on PostgreSQL they may go back to the writer's newer
    /// checkpoint, see `refresh_read_only`). Cheap: a scan of the new frames and their stream
    /// index. A writer's ledger is left as it is.
    pub fn extend_read_only(&mut self) -> Result<u64, LedgerError> {
        if self.read_only {
            self.refuse_if_broken()?;
            // A store read beside a writer that goes on storing (PostgreSQL's) takes a new
            // snapshot first, so that its checkpoint is not beyond the end read after it. If
            // the store drops what was folded over the old snapshot (see
            // `ProjectionStore::refresh`), the cache goes with it and the fold starts again
            // from the new checkpoint (a directory's store never moves).
            if self.kv.refresh_snapshot()? {
                self.state = State::default();
                self.folded_in_memory = 0;
                self.fold_target = None;
            }
            self.log.refresh_read_only()?;
            self.clear_store_ahead_of_log()?;
        }
        Ok(self.log.durable_end())
    }

    /// Whether a read-only ledger's projections, read beside their writer in a database, lost
    /// the connection of their snapshot: every query that reads them fails until
    /// [`extend_read_only`](Ledger::extend_read_only) (or `refresh_read_only`) connects again.
    /// Cheap; `false` for every other store.
    pub fn snapshot_lost(&self) -> bool {
        self.read_only && self.kv.snapshot_lost()
    }

    /// The second half of [`refresh_read_only`](Ledger::refresh_read_only): folds at most
    /// `records_max` of the records the log holds past the projections. A fold started goes to
    /// the log's durable end of its start (a unit's end) before another starts; until then
    /// [`Ledger::folded_end`] is `None` and answers from the projections are refused; a
    /// member's answers are of the log's end. A writer's ledger is left as it is.
    pub fn fold_read_only(&mut self, records_max: u64) -> Result<Refreshed, LedgerError> {
        let (mut folded_now, handed_before) = (0, self.handed_folded);
        if self.read_only {
            self.refuse_if_broken()?;
            folded_now = self.fold_step(records_max)?;
            self.folded_in_memory += folded_now;
        }
        Ok(Refreshed {
            durable_end: self.log.durable_end(),
            folded_end: self.folded_end()?,
            folded_in_memory: self.folded_in_memory,
            index_in_memory: self.log.memory_index_records(),
            fold_remaining: self.fold_remaining()?,
            folded_now,
            handed_now: self.handed_folded - handed_before,
        })
    }

    /// Records the fold under way still has to fold before [`Ledger::folded_end`] is known
    /// again (0 when no fold is under way).
    pub fn fold_remaining(&self) -> Result<u64, LedgerError> {
        match self.fold_target {
            Some(target) => Ok(target.saturating_sub(self.kv.checkpoint()?.unwrap_or(0))),
            None => Ok(0),
        }
    }

    /// Where the projections are folded to: every answer read from them is of the log up to
    /// that position (a durable end, so whole units). `None` while a read-only ledger's fold
    /// stopped partway ([`Ledger::fold_read_only`]): a member's answers (account, year,
    /// history, inheritance, transfers) are then of the log's durable end, folded from the
    /// member's own stream, and every other answer from the projections is refused.
    pub fn folded_end(&self) -> Result<Option<u64>, LedgerError> {
        if !self.read_only {
            return Ok(Some(self.log.durable_end()));
        }
        if self.fold_target.is_some() {
            return Ok(None);
        }
        Ok(Some(self.kv.checkpoint()?.unwrap_or(0)))
    }

    /// Where the fold starts: the projections' checkpoint (none: whatever the store holds, a
    /// rebuild cut short, is not to be trusted, and goes).
    fn fold_start(&mut self) -> Result<u64, LedgerError> {
        let mut checkpoint = self.kv.checkpoint()?;
        // Entities stored by a build of another event schema do not decode here: the log is
        // folded again from its first record.
        if checkpoint.is_some() && !store::schema_is_current(&self.kv)? {
            checkpoint = None;
        }
        if checkpoint.is_none() {
            store::clear(&self.kv)?;
            self.state = State::default();
        }
        Ok(checkpoint.unwrap_or(0))
    }

    /// Folds the log records the projections have not seen yet. `progress(done, total)`.
    pub(crate) fn catch_up(
        &mut self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, LedgerError> {
        if self.read_only {
            return self.fold_step(u64::MAX);
        }
        let from = self.fold_start()?;
        let to = self.log.durable_end();
        if from >= to {
            return Ok(0);
        }
        let folded = self.fold_records(from, to, progress)?;
        if self.broken.is_none() {
            self.store_projections(to)?;
            // The fold loaded members without their regions' policies and funds (it needs
            // none); deciding needs a cached member's regions cached, so the cache starts
            // empty.
            self.state = State::default();
            progress(folded, to - from);
        }
        Ok(folded)
    }

    /// A read-only ledger's fold: at most `records_max` more records towards the end of the
    /// fold under way (or, if none is, the log's durable end now).
    fn fold_step(&mut self, records_max: u64) -> Result<u64, LedgerError> {
        let from = self.fold_start()?;
        let target = *self.fold_target.get_or_insert(self.log.durable_end());
        if from >= target {
            self.fold_target = None;
            return Ok(0);
        }
        let to = target.min(from.saturating_add(records_max));
        let folded = self.fold_records(from, to, &mut |_, _| {})?;
        if self.broken.is_some() {
            self.fold_target = None;
            return Ok(folded);
        }
        // A read-only ledger stores nothing it folded: the entities stay decoded in its cache,
        // marked dirty, and its queries read them there (`Ledger::unstored`); its store's
        // layer takes them only before a scan. Only the checkpoint moves; past the cache's
        // bound, what is not dirty leaves it (not at every refresh: eviction walks the whole
        // cache, and a reader refreshes every few milliseconds).
        self.kv.apply(Vec::new(), to)?;
        if to == target {
            self.fold_target = None;
            if self.state.members.len() > CACHE_MEMBERS_MAX {
                crate::commit::evict_stored(
                    &mut self.state,
                    &Default::default(),
                    CACHE_MEMBERS_MAX,
                );
            }
        }
        Ok(folded)
    }

    /// Folds records `from..to` into the cache (a writer stores a checkpoint every
    /// [`REPLAY_CHECKPOINT_RECORDS`]). A record that breaks an invariant is not folded: the
    /// projections stop before it and the ledger refuses commands and queries (`broken`), so
    /// `audit verify` can still open it and name the record.
    fn fold_records(
        &mut self,
        from: u64,
        to: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, LedgerError> {
        let mut folded = 0u64;
        let mut from = from;
        // A read-only ledger beside its writer folds the writer's own events where the
        // handover holds them (trusted: decided in this process), and reads the rest.
        if let (true, Some(staged)) = (self.read_only, &self.events) {
            for batch in staged.handover().take(from, to) {
                let events = batch.range(from, to);
                // A chunk at a time, as the log's records are: a store that reads over the
                // network is handed the chunk's entities first (one query, not one a miss).
                for chunk in events.chunks(CATCH_UP_CHUNK_RECORDS) {
                    prefetch(&self.kv, chunk)?;
                    for event in chunk {
                        load_for(&self.kv, &mut self.state, event)?;
                        evolve(&mut self.state, event);
                    }
                }
                from += events.len() as u64;
                folded += events.len() as u64;
            }
            self.handed_folded += folded;
            if from >= to {
                return Ok(folded);
            }
        }
        let (log, kv, state) = (&self.log, &self.kv, &mut self.state);
        let mut records = log.read_range(from, to)?;
        loop {
            let chunk = decoded_chunk(&mut records, kv)?;
            if chunk.is_empty() {
                break;
            }
            for (record, event) in chunk {
                if let Ok(event) = &event {
                    load_for(kv, state, event)?;
                }
                let checked = event.and_then(|event| {
                    admissible_at(state, &record, &event)?;
                    Ok(event)
                });
                let event = match checked {
                    Ok(event) => event,
                    Err(error) => {
                        store_projections(kv, state, record.position, CACHE_MEMBERS_MAX)?;
                        self.state = State::default();
                        self.broken = Some(error.to_string());
                        return Ok(folded);
                    }
                };
                evolve(state, &event);
                folded += 1;
                if folded.is_multiple_of(REPLAY_CHECKPOINT_RECORDS) {
                    if !self.read_only {
                        store_projections(kv, state, record.position + 1, CACHE_MEMBERS_MAX)?;
                    }
                    progress(folded, to - from);
                }
            }
        }
        Ok(folded)
    }

    /// Drops every projection and rebuilds them from the first record of the log.
    /// Returns the number of records folded.
    pub fn rebuild(&mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<u64, LedgerError> {
        // A write still running would land after the clear. A failed one is what a rebuild
        // repairs, so it does not stop it.
        if let Some(handle) = self.storing.0.take() {
            let _ = handle.join();
        }
        self.store_failed = None;
        store::clear(&self.kv)?;
        self.state = State::default();
        let to = self.log.durable_end();
        // Twice as many workers as cores: a region's fund streams all go to one worker, so with
        // one worker per core that worker had twice the work of the others.
        let workers = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
        let folded = fold_parallel(self.log.as_ref(), to, workers, progress)?;
        let entries = folded.entries();
        folded.drop_aside();
        let entries = entries?;
        // Written in batches; only the last carries the checkpoint, so a rebuild cut short
        // leaves no checkpoint and the next open starts again from a cleared store. sled takes
        // a large state in batches; the runs store writes it as one sorted run.
        let batch = match self.projections {
            ProjectionBackend::Sled => STORE_BATCH_ENTRIES,
            ProjectionBackend::Runs => entries.len().max(1),
        };
        let mut entries = entries
            .into_iter()
            .map(|(key, value)| (key, Some(value)))
            .peekable();
        loop {
            let chunk: Vec<_> = entries.by_ref().take(batch).collect();
            if entries.peek().is_some() {
                self.kv.apply_without_checkpoint(chunk)?;
            } else {
                self.kv.apply(chunk, to)?;
                break;
            }
        }
        self.kv.flush()?;
        Ok(to)
    }
}
