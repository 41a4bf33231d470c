//! Committing: making the staged lines durable and storing the projections they changed.
//!
//! [`Ledger::commit`] syncs and stores at once; [`Ledger::commit_deferred`] stores only once
//! many entities are dirty, on a thread of its own; `commit_pipelined` (for
//! [`Ledger::apply_stream`]) hands the group to the log's syncer and returns its ticket, and
//! the stream stores (`store_deferred`) once the sink has taken the group. With a timed store
//! (the service), the stream encodes dirty entities a slice at a time between its groups
//! (`encode_ahead`), so the store itself holds the writer's thread for little more than the
//! eviction; an entity deleted (an unbinding) stays dirty until the write deleting it lands,
//! rather than the writer waiting for that write.
//! Invariants: an outcome leaves the ledger only after its events are durable (or with the
//! ticket that says when, to `apply_stream` alone); a projection checkpoint stored is always
//! durable; what a running projection write holds stays in the cache until it has landed; a
//! failed write stops every later commit.

use std::thread::JoinHandle;

use gongji_domain::state::{EntityRef, KeySet};
use gongji_domain::State;
use gongji_log::{Kv, LogError};

use crate::handover::Offer;
use crate::{store, CacheLimits, Ledger, LedgerError, LineOutcome};

impl Ledger {
    /// Makes every staged event durable, then stores the projections they changed, and hands
    /// back the outcomes of the lines since the last commit, in input order.
    pub fn commit(&mut self) -> Result<Vec<LineOutcome>, LedgerError> {
        self.refuse_if_stopped()?;
        self.finish_storing()?;
        let offer = self.staged_events();
        let durable_end = self.log.sync()?;
        if let Some(offer) = offer {
            offer.durable();
        }
        self.store_projections(durable_end)?;
        Ok(std::mem::take(&mut self.pending))
    }

    /// As [`commit`], but the projections are stored only once many entities are dirty, or at
    /// [`close`]: a long `apply` writes each busy account once per batch instead of once per
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
        let (outcomes, ticket, offer) = self.commit_pipelined()?;
        let durable_end = ticket.wait()?;
        if let Some(offer) = offer {
            offer.durable();
        }
        if self.store_due(None) {
            self.store_deferred(durable_end)?;
        } else {
            self.log.settle_syncs()?;
        }
        Ok(outcomes)
    }

    /// As [`commit_deferred`](Ledger::commit_deferred), but without waiting for the disk and
    /// without storing: the lines' events are handed to the log's syncer, and the outcomes come
    /// back with the ticket that says when they are durable. **The outcomes must not be
    /// reported before `ticket.wait()` returns `Ok`**: only
    /// [`apply_stream`](Ledger::apply_stream) calls it, and it hands the sink a group only
    /// through a waited ticket, and stores the projections ([`store_deferred`]) only after the
    /// sink has taken the group, so that a store never stands between a durable group and its
    /// answer (a process killed there would leave a whole group durable and unanswered, whose
    /// refused lines a client's resend decides again: refusals leave no record). If the wait
    /// fails, these lines and all later ones are not durable, and the log refuses further
    /// work.
    /// The events staged for the shared [`EventHandover`](crate::EventHandover) come back too:
    /// they are offered (`Offer::durable`) only once the ticket said they are durable.
    pub(crate) fn commit_pipelined(
        &mut self,
    ) -> Result<(Vec<LineOutcome>, gongji_log::SyncTicket, Option<Offer>), LedgerError> {
        self.refuse_if_stopped()?;
        self.refuse_if_store_failed()?;
        let offer = self.staged_events();
        let ticket = self.log.sync_start()?;
        Ok((std::mem::take(&mut self.pending), ticket, offer))
    }

    /// The events staged for the shared handover since the last commit, if it has one.
    fn staged_events(&mut self) -> Option<Offer> {
        self.events.as_mut().and_then(crate::handover::Staged::take)
    }

    /// Whether the projections are due to be stored: once many entities are dirty, or, with
    /// `interval`, once that long has passed since the last store and something is dirty.
    pub(crate) fn store_due(&self, interval: Option<std::time::Duration>) -> bool {
        let dirty = self.state.dirty.len() + self.encoded.keys.len();
        dirty >= self.limits.deferred_dirty_max
            || interval.is_some_and(|every| dirty > 0 && self.stored_at.elapsed() >= every)
    }

    /// Stores the dirty entities on a thread of their own, with `durable_end` as checkpoint,
    /// once every line decided is durable (`durable_end` is the log's end); otherwise (a
    /// caller that decided more since) stores nothing, since the checkpoint stored must be
    /// durable and the state must be of it. Failures are remembered in `store_failed` and
    /// reported by the next commit.
    pub(crate) fn store_deferred(&mut self, durable_end: u64) -> Result<(), LedgerError> {
        let settled = self.log.settle_syncs()?;
        if settled != durable_end || self.log.end_position() != durable_end {
            return Ok(());
        }
        let _ = self.store_in_background(durable_end);
        self.stored_at = std::time::Instant::now();
        Ok(())
    }

    /// Refuses once a stream stopped with lines decided and not made durable: their events are
    /// staged in the log and folded into the cache, so nothing may be committed after them.
    /// Refuses a read-only ledger too.
    pub(crate) fn refuse_if_stopped(&self) -> Result<(), LedgerError> {
        if self.read_only {
            return Err(LedgerError::ReadOnly);
        }
        match &self.stopped {
            None => Ok(()),
            Some(why) => Err(LedgerError::Stopped(why.clone())),
        }
    }

    /// Refuses when the log holds a record that breaks an invariant (found at open).
    pub(crate) fn refuse_if_broken(&self) -> Result<(), LedgerError> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(LedgerError::Projection(format!(
                "the ledger's log holds a record it cannot fold: {why}"
            ))),
        }
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
        let failed = match self.storing.0.take() {
            None => None,
            Some(handle) => match handle.join() {
                Ok(Ok(())) => {
                    self.encoded.landed(&mut self.state);
                    None
                }
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
        evict_stored(&mut self.state, &self.encoded.keys, self.limits.members_max);
        // A deleted entity (an unbinding, a member leaving a region's index) is absent from the
        // cache, so it would be looked up in the store, which still holds it until the write
        // lands: it stays dirty until then (`Encoded::landed`), which `load` reads as absent.
        let writes = self.encoded.take_with_dirty(&mut self.state);
        let kv = self.kv.clone();
        let spawned = std::thread::Builder::new()
            .name("projections".into())
            .spawn(move || kv.apply(writes, checkpoint));
        match spawned {
            Ok(handle) => self.storing.0 = Some(handle),
            Err(e) => {
                self.store_failed = Some(format!("no thread for the projection writer: {e}"));
                return self.refuse_if_store_failed();
            }
        }
        Ok(())
    }

    /// Stores every entity encoded ahead or dirty, with `checkpoint`, and waits for it. No
    /// write may be running (`finish_storing` first).
    pub(crate) fn store_projections(&mut self, checkpoint: u64) -> Result<(), LedgerError> {
        let writes = self.encoded.take_with_dirty(&mut self.state);
        self.kv.apply(writes, checkpoint)?;
        self.encoded.landed(&mut self.state);
        evict_stored(&mut self.state, &KeySet::default(), self.limits.members_max);
        Ok(())
    }

    /// Between a stream's groups while no store is due: encodes dirty entities for up to
    /// `budget`, so that the store (`store_deferred`) has that much less to encode while the
    /// writer waits on it.
    pub(crate) fn encode_ahead(&mut self, budget: std::time::Duration) {
        self.encoded.encode_some(&mut self.state, budget);
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

    /// Stores any projections still held in memory, flushes the projection store to disk
    /// (the log itself is durable at every commit) and closes the log.
    /// A read-only ledger has nothing to store: it is dropped.
    pub fn close(mut self) -> Result<(), LedgerError> {
        if self.read_only {
            return Ok(());
        }
        self.refuse_if_stopped()?;
        self.finish_storing()?;
        // Also reports a pipelined group that failed after its outcomes were handed out.
        let durable_end = self.log.sync()?;
        if !self.state.dirty.is_empty() || !self.encoded.keys.is_empty() {
            self.store_projections(durable_end)?;
        }
        self.kv.flush()?;
        // No other handle on the store may be alive while the log closes (the file log leaves
        // sled's snapshot current only then).
        let Ledger { kv, log, .. } = self;
        drop(kv);
        log.close()?;
        Ok(())
    }
}

/// Writes every dirty entity with the checkpoint `checkpoint` in one atomic batch.
pub(crate) fn store_projections(
    kv: &Kv,
    state: &mut State,
    checkpoint: u64,
    members_max: usize,
) -> Result<(), LedgerError> {
    let writes = store::dirty_writes(state);
    kv.apply(writes, checkpoint)?;
    state.dirty.clear();
    evict_stored(state, &KeySet::default(), members_max);
    Ok(())
}

/// The projection write left running on its own thread, if any. `Ledger` declares it first,
/// so that a write still running finishes before the store and the log (and its lock) go.
#[derive(Default)]
pub(crate) struct ProjectionWriter(pub(crate) Option<JoinHandle<Result<(), LogError>>>);

impl Drop for ProjectionWriter {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

/// Drops from the cache what the store holds and nothing has changed since (everything
/// neither dirty nor `encoded` ahead of its store, once every write is published): settled
/// transactions always (read again only by a duplicate or a reversal), and members, bindings
/// and region indexes when the cache holds more than `members_max` members. A region's
/// policies, funds and totals stay: a cached member's regions must be cached.
pub(crate) fn evict_stored(state: &mut State, encoded: &KeySet, members_max: usize) {
    let dirty = std::mem::take(&mut state.dirty);
    let unstored = |key: EntityRef<'_>| dirty.contains(key) || encoded.contains(&key);
    state.txs.retain(|id, _| unstored(EntityRef::Tx(id)));
    if state.members.len() > members_max {
        state
            .members
            .retain(|id, _| unstored(EntityRef::Member(id)));
        state
            .relatives
            .retain(|relative, _| unstored(EntityRef::Relative(relative)));
        for (region, members) in &mut state.region_members {
            members.retain(|m| unstored(EntityRef::RegionMember(region, m)));
        }
    }
    state.dirty = dirty;
}
