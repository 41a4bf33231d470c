//! Events handed from a writing ledger to the read-only ledgers beside it in the same process
//! (the server's writer and its read view), so that a reader folds the writer's own decided
//! events instead of reading, checking, hashing and decoding those records again.
//!
//! The writer keeps the events of the lines it decides since its last commit (`Staged`), in
//! log order, and hands them over ([`EventHandover::offer`]) only once the log has made them
//! durable: after a commit's sync, after a pipelined group's ticket resolved (before its
//! outcomes go to the sink). A read-only ledger's fold ([`Ledger::fold_read_only`]) takes the
//! events of the positions it folds from the handover where it holds them and reads the log for
//! the rest. What it takes is trusted as the writer's: those events were decided here, so they
//! are not checked for admissibility again (`audit verify` and any open still check every
//! record). An event encodes and decodes exactly, so folding it is folding its record.
//!
//! Invariants as the code holds them: only events at positions the log has made durable are
//! offered (a group whose sync failed is never offered, and the ledger that staged it stops);
//! the batches kept are consecutive in position (one that does not follow, from a writer
//! opened again, starts the handover afresh); at most `events_max` events are kept, the oldest
//! batches going first; a reader takes only the batches holding the positions it asks for.
//!
//! [`Ledger::fold_read_only`]: crate::Ledger::fold_read_only

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use gongji_domain::Event;

/// Events kept for readers by default. A reader further behind reads the log.
pub const HANDOVER_EVENTS_MAX: usize = 1 << 18;

/// The events of consecutive durable records, from position `from` on.
pub(crate) struct EventBatch {
    from: u64,
    events: Vec<Event>,
}

impl EventBatch {
    fn end(&self) -> u64 {
        self.from + self.events.len() as u64
    }

    /// The events of positions `from..to`, clamped to the batch's.
    pub(crate) fn range(&self, from: u64, to: u64) -> &[Event] {
        let start = from.clamp(self.from, self.end()) - self.from;
        let end = to.clamp(self.from, self.end()) - self.from;
        &self.events[start as usize..end.max(start) as usize]
    }
}

/// What a writing ledger hands to the read-only ledgers beside it (see the module docs).
pub struct EventHandover {
    kept: Mutex<Kept>,
    events_max: usize,
}

#[derive(Default)]
struct Kept {
    batches: VecDeque<Arc<EventBatch>>,
    events: usize,
}

impl Default for EventHandover {
    fn default() -> Self {
        EventHandover::new()
    }
}

impl std::fmt::Debug for EventHandover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHandover").finish_non_exhaustive()
    }
}

impl EventHandover {
    pub fn new() -> EventHandover {
        EventHandover::with_max(HANDOVER_EVENTS_MAX)
    }

    /// A handover keeping at most about `events_max` events (at least the last batch).
    pub fn with_max(events_max: usize) -> EventHandover {
        EventHandover {
            kept: Mutex::new(Kept::default()),
            events_max,
        }
    }

    /// A durable batch, after the ones offered before it.
    pub(crate) fn offer(&self, batch: EventBatch) {
        if batch.events.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            if kept
                .batches
                .back()
                .is_some_and(|last| last.end() != batch.from)
            {
                gone.extend(kept.batches.drain(..));
                kept.events = 0;
            }
            kept.events += batch.events.len();
            kept.batches.push_back(Arc::new(batch));
            while kept.events > self.events_max && kept.batches.len() > 1 {
                let first = kept.batches.pop_front().expect("more than one");
                kept.events -= first.events.len();
                gone.push(first);
            }
        }
        // The batches that went are freed here, outside the lock.
        drop(gone);
    }

    /// The batches holding positions `from..to` from `from` on, consecutive: the first holds
    /// `from` (none if no batch kept does), each next one starts where the one before ends,
    /// and none starts at or past `to`.
    pub(crate) fn take(&self, from: u64, to: u64) -> Vec<Arc<EventBatch>> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let first = kept.batches.partition_point(|b| b.end() <= from);
        let mut out = Vec::new();
        let mut at = from;
        for batch in kept.batches.range(first..) {
            if at >= to || batch.from > at {
                break;
            }
            at = batch.end();
            out.push(batch.clone());
        }
        out
    }

    /// The positions kept, `start..end` (empty when none).
    pub fn kept(&self) -> std::ops::Range<u64> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        match (kept.batches.front(), kept.batches.back()) {
            (Some(first), Some(last)) => first.from..last.end(),
            _ => 0..0,
        }
    }
}

/// A writer's events decided since its last commit, from position `from` on, with the
/// handover they go to once durable.
pub(crate) struct Staged {
    handover: Arc<EventHandover>,
    batch: EventBatch,
}

impl Staged {
    pub(crate) fn new(handover: Arc<EventHandover>) -> Staged {
        Staged {
            handover,
            batch: EventBatch {
                from: 0,
                events: Vec::new(),
            },
        }
    }

    /// The handover the events go to (and a reader takes them from).
    pub(crate) fn handover(&self) -> &EventHandover {
        &self.handover
    }

    /// The events of the records appended at `from` on (a line's unit).
    pub(crate) fn push(&mut self, from: u64, events: impl IntoIterator<Item = Event>) {
        if self.batch.end() != from {
            // Not after the lines staged before (cannot happen while lines are staged in log
            // order): what was staged is not offered.
            self.batch = EventBatch {
                from,
                events: Vec::new(),
            };
        }
        self.batch.events.extend(events);
    }

    /// What was staged, to offer once the log has made it durable; the next line's events
    /// start a new batch.
    pub(crate) fn take(&mut self) -> Option<Offer> {
        if self.batch.events.is_empty() {
            return None;
        }
        let end = self.batch.end();
        let batch = std::mem::replace(
            &mut self.batch,
            EventBatch {
                from: end,
                events: Vec::new(),
            },
        );
        Some(Offer {
            handover: self.handover.clone(),
            batch,
        })
    }

    /// Lines staged and never made durable (a stream that stopped): nothing is offered.
    pub(crate) fn discard(&mut self) {
        self.batch.events.clear();
    }
}

/// Staged events on their way to the handover, once the commit that holds them is durable.
pub(crate) struct Offer {
    handover: Arc<EventHandover>,
    batch: EventBatch,
}

impl Offer {
    /// Hands the events over. Only once every one of them is durable.
    pub(crate) fn durable(self) {
        self.handover.offer(self.batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongji_domain::Month;

    fn event(position: u64) -> Event {
        Event::PooledContributed {
            region: "500000".into(),
            member: format!("M{position}"),
            month: Month::new(2024, 1).expect("a month"),
            amount: gongji_domain::Money::from_fen(position as i64),
        }
    }

    fn batch(from: u64, count: u64) -> EventBatch {
        EventBatch {
            from,
            events: (from..from + count).map(event).collect(),
        }
    }

    fn spans(batches: &[Arc<EventBatch>]) -> Vec<(u64, u64)> {
        batches.iter().map(|b| (b.from, b.end())).collect()
    }

    #[test]
    fn a_reader_takes_the_batches_holding_what_it_folds() {
        let handover = EventHandover::new();
        for (from, count) in [(0, 10), (10, 5), (15, 20)] {
            handover.offer(batch(from, count));
        }
        assert_eq!(
            spans(&handover.take(0, 35)),
            vec![(0, 10), (10, 15), (15, 35)]
        );
        assert_eq!(spans(&handover.take(3, 12)), vec![(0, 10), (10, 15)]);
        assert_eq!(spans(&handover.take(10, 15)), vec![(10, 15)]);
        assert!(handover.take(35, 40).is_empty(), "nothing kept from 35");
        assert!(handover.take(5, 5).is_empty(), "nothing asked for");
        let taken = handover.take(3, 12);
        let events: Vec<&Event> = taken.iter().flat_map(|b| b.range(3, 12)).collect();
        assert_eq!(events.len(), 9);
        assert_eq!(events[0], &event(3));
        assert_eq!(events[8], &event(11));
        assert_eq!(handover.kept(), 0..35);
        // A batch that does not follow (a writer opened again after a gap) starts afresh.
        handover.offer(batch(50, 5));
        assert!(handover.take(0, 55).is_empty());
        assert_eq!(spans(&handover.take(52, 55)), vec![(50, 55)]);
        assert_eq!(handover.kept(), 50..55);
    }

    #[test]
    fn the_oldest_batches_go_past_the_bound() {
        let handover = EventHandover::with_max(25);
        handover.offer(batch(0, 10));
        handover.offer(batch(10, 10));
        handover.offer(batch(20, 10));
        assert_eq!(
            handover.kept(),
            10..30,
            "30 events passed 25: the first batch went"
        );
        assert!(handover.take(5, 30).is_empty());
        handover.offer(batch(30, 100));
        assert_eq!(
            handover.kept(),
            30..130,
            "the last batch stays, however large"
        );
    }

    #[test]
    fn staged_events_are_offered_only_when_taken_and_discarded_ones_never() {
        let handover = Arc::new(EventHandover::new());
        let mut staged = Staged::new(handover.clone());
        staged.push(0, [event(0), event(1)]);
        staged.push(2, [event(2)]);
        assert_eq!(handover.kept(), 0..0, "nothing before it is durable");
        staged.take().expect("staged").durable();
        assert_eq!(handover.kept(), 0..3);
        staged.push(3, [event(3)]);
        staged.discard();
        assert!(staged.take().is_none());
        staged.push(3, [event(3)]);
        staged.take().expect("staged").durable();
        assert_eq!(handover.kept(), 0..4);
        assert_eq!(handover.take(3, 4)[0].range(3, 4), &[event(3)]);
    }
}
