//! Index entries handed from a writer to the readers beside it in the same process (the
//! server's read view), so that a reader's refresh takes the entries of what the writer made
//! durable instead of reading, checking and indexing those records again from the segments.
//!
//! The writer offers each batch once it is durable and applied (`Log::apply_synced`): its
//! entries, its segment, and the index meta at its end (position, offsets, last hash). A
//! reader's refresh ([`Log::refresh_read_only`](crate::Log::refresh_read_only)) takes the
//! batches that follow its own end without a gap and end at or before the durable end the
//! writer published, then scans from the segments whatever is left (a batch not offered yet,
//! or dropped). What a reader takes this way is trusted as the writer's own (its CRC and hash
//! chain were computed by the writer in this process, not checked again); `audit verify` and a
//! reader's open still check every record.
//!
//! Invariants as the code holds them: the batches kept are consecutive in position; at most
//! [`HANDOVER_RECORDS_MAX`] entries are kept (the oldest batches go first); a batch given to a
//! reader starts exactly at its end and is never past what it asked for.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crate::index::IndexMeta;
use crate::streams::Entry;

/// Entries kept for readers (32 MiB); a reader further behind scans the segments.
pub const HANDOVER_RECORDS_MAX: usize = 1 << 20;

/// One durable batch: its entries (offsets within `segment`; shared, so that a reader's take
/// copies none under the lock the writer offers through) and the index meta at its end.
#[derive(Clone)]
pub(crate) struct HandedBatch {
    pub entries: Arc<[Entry]>,
    pub segment: u64,
    pub end: IndexMeta,
}

impl HandedBatch {
    fn start(&self) -> u64 {
        self.end.next_position - self.entries.len() as u64
    }
}

/// What a writer hands to the readers beside it (see the module documentation).
#[derive(Default)]
pub struct Handover {
    batches: Mutex<Kept>,
}

/// The batches kept, and how many entries they hold.
#[derive(Default)]
struct Kept {
    batches: VecDeque<HandedBatch>,
    entries: usize,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover").finish_non_exhaustive()
    }
}

impl Handover {
    pub fn new() -> Handover {
        Handover::default()
    }

    /// A durable batch, after the ones offered before it (a batch that does not follow them,
    /// a writer opened again after a gap, starts the handover again).
    pub(crate) fn offer(&self, batch: HandedBatch) {
        if batch.entries.is_empty() {
            return;
        }
        let mut kept = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        if kept
            .batches
            .back()
            .is_some_and(|last| last.end.next_position != batch.start())
        {
            *kept = Kept::default();
        }
        kept.entries += batch.entries.len();
        kept.batches.push_back(batch);
        while kept.entries > HANDOVER_RECORDS_MAX && kept.batches.len() > 1 {
            let dropped = kept.batches.pop_front().expect("more than one");
            kept.entries -= dropped.entries.len();
        }
    }

    /// The batches from position `from` on (the first starting exactly there) that end at or
    /// before `to`, in order; none if the first kept after `from` does not start there.
    pub(crate) fn take(&self, from: u64, to: u64) -> Vec<HandedBatch> {
        let kept = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        let batches = &kept.batches;
        let first = batches.partition_point(|b| b.end.next_position <= from);
        let mut out = Vec::new();
        let mut at = from;
        for batch in batches.range(first..) {
            if batch.start() != at || batch.end.next_position > to {
                break;
            }
            at = batch.end.next_position;
            out.push(batch.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(from: u64, records: u64) -> HandedBatch {
        let entries: Vec<Entry> = (from..from + records)
            .map(|position| Entry {
                hash: position % 13,
                version: 1,
                position,
                offset_bytes: 0,
            })
            .collect();
        let entries = entries.into();
        HandedBatch {
            entries,
            segment: 0,
            end: IndexMeta {
                next_position: from + records,
                ..IndexMeta::empty()
            },
        }
    }

    fn ends(batches: &[HandedBatch]) -> Vec<u64> {
        batches.iter().map(|b| b.end.next_position).collect()
    }

    #[test]
    fn a_reader_gets_the_batches_from_its_end_up_to_what_was_published() {
        let handover = Handover::new();
        for (from, records) in [(0, 10), (10, 5), (15, 20)] {
            handover.offer(batch(from, records));
        }
        assert_eq!(ends(&handover.take(0, 35)), vec![10, 15, 35]);
        assert_eq!(
            ends(&handover.take(10, 34)),
            vec![15],
            "not past what was published"
        );
        assert!(handover.take(12, 35).is_empty(), "no batch starts at 12");
        assert!(handover.take(35, 40).is_empty());
        // A batch that does not follow (a writer opened again after a gap) starts afresh.
        handover.offer(batch(50, 5));
        assert!(handover.take(0, 55).is_empty());
        assert_eq!(ends(&handover.take(50, 55)), vec![55]);
    }

    #[test]
    fn the_oldest_batches_go_past_the_bound() {
        let handover = Handover::new();
        let half = HANDOVER_RECORDS_MAX as u64 / 2 - 1;
        handover.offer(batch(0, half));
        handover.offer(batch(half, half));
        assert_eq!(ends(&handover.take(0, 3 * half)), vec![half, 2 * half]);
        handover.offer(batch(2 * half, half));
        assert!(
            handover.take(0, 3 * half).is_empty(),
            "the first batch went"
        );
        assert_eq!(
            ends(&handover.take(half, 3 * half)),
            vec![2 * half, 3 * half]
        );
    }
}
