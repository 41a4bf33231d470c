//! One pass over the whole log in order, for the readers that look at every record (what-if,
//! monitoring): a thread reads the segments ahead, the caller's thread checks each record's
//! link in the hash chain and decodes the kinds it asked for (the others are passed by on
//! their tag alone).

use gongji_domain::Event;
use gongji_log::{DurableLog, Link, Record};

use crate::views::HistoryEntry;
use crate::{Ledger, LedgerError};

/// Records read between two batches handed to the caller (and two progress reports).
const BATCH_RECORDS: usize = 1 << 12;

/// Batches read ahead of the caller, at most.
const READ_AHEAD_BATCHES: usize = 4;

/// Where a [`Ledger::scan_range`] ended.
#[derive(Clone, Copy, Debug)]
pub struct ScanEnd {
    /// Records read.
    pub records: u64,
    /// The hash of the last record read (checked against the chain), or the `after` given
    /// when none was read.
    pub last_hash: Option<[u8; 32]>,
}

/// One record of a pass, with its event decoded.
pub struct Scanned<'a> {
    pub position: u64,
    /// The record's hash in the chain (checked).
    pub hash: [u8; 32],
    pub recorded_at_micros: i64,
    pub event: &'a Event,
}

impl Ledger {
    /// Every durable record from the first, in order, its link in the chain checked; `each`
    /// sees the events of the kinds in `kinds` (every kind when None), decoded;
    /// `progress(done, total)` counts records. Returns the records read.
    pub fn scan(
        &self,
        kinds: Option<&[&str]>,
        each: &mut dyn FnMut(Scanned<'_>) -> Result<(), LedgerError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, LedgerError> {
        let end = self.log.durable_end();
        Ok(self
            .scan_range(0..end, None, kinds, each, progress)?
            .records)
    }

    /// [`Ledger::scan`] of the durable records in `range` (cut at the durable end): what a
    /// reader keeping up with a growing log reads each time. `after`, the hash of the record
    /// before the range as the previous step ended on (its [`ScanEnd::last_hash`]), is checked
    /// against the first record's link, so that steps check the chain as one pass would.
    /// `progress` counts the records of the range.
    pub fn scan_range(
        &self,
        range: std::ops::Range<u64>,
        after: Option<[u8; 32]>,
        kinds: Option<&[&str]>,
        each: &mut dyn FnMut(Scanned<'_>) -> Result<(), LedgerError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ScanEnd, LedgerError> {
        self.refuse_if_broken()?;
        let end = range.end.min(self.log.durable_end());
        let start = range.start.min(end);
        let log = self.log.as_ref();
        let mut records_read = 0;
        let mut last_hash = after;
        std::thread::scope(|threads| {
            let (batches, received) = std::sync::mpsc::sync_channel(READ_AHEAD_BATCHES);
            threads.spawn(|| read_batches(log, start, end, batches));
            for batch in received {
                for (record, link) in batch? {
                    if let Some(expected) = last_hash.filter(|_| records_read == 0) {
                        if record.prev_hash != expected {
                            return Err(LedgerError::Projection(format!(
                                "record {} does not follow the record before it in the hash \
                                 chain",
                                record.position
                            )));
                        }
                    }
                    log.check_link(&record, &link)?;
                    last_hash = Some(link.expected_hash());
                    records_read += 1;
                    let wanted = kinds.is_none_or(|kinds| {
                        Event::peek_kind(&record.payload).is_some_and(|k| kinds.contains(&k))
                    });
                    if !wanted {
                        continue;
                    }
                    let event = Event::decode(&record.payload).map_err(|e| {
                        LedgerError::Projection(format!("record {}: {e}", record.position))
                    })?;
                    each(Scanned {
                        position: record.position,
                        hash: link.expected_hash(),
                        recorded_at_micros: record.recorded_at_micros,
                        event: &event,
                    })?;
                }
                progress(records_read, end - start);
            }
            Ok::<(), LedgerError>(())
        })?;
        Ok(ScanEnd {
            records: records_read,
            last_hash,
        })
    }

    /// The records at `positions` (each below the durable end), as `history` shows them, in
    /// the order asked.
    pub fn entries_at(&self, positions: &[u64]) -> Result<Vec<HistoryEntry>, LedgerError> {
        self.refuse_if_broken()?;
        let end = self.log.durable_end();
        let mut entries = Vec::with_capacity(positions.len());
        for &position in positions {
            if position >= end {
                return Err(LedgerError::Projection(format!(
                    "record {position} is beyond the log's end ({end} records)"
                )));
            }
            let record = self
                .log
                .read_range(position, position + 1)?
                .next()
                .ok_or_else(|| {
                    LedgerError::Projection(format!("record {position} is missing"))
                })??;
            let event = Event::decode(&record.payload)
                .map_err(|e| LedgerError::Projection(format!("record {position}: {e}")))?;
            entries.push(HistoryEntry::of(&record, &event));
        }
        Ok(entries)
    }
}

/// A batch of records, each with its link in the chain, from the reading thread.
type Batch = Result<Vec<(Record, Link)>, LedgerError>;

/// Reads records `start..end` and sends them on in batches, links unchecked (the receiver
/// checks them). Stops at the first error (sent on) or when the receiver stops taking batches.
fn read_batches(
    log: &dyn DurableLog,
    start: u64,
    end: u64,
    batches: std::sync::mpsc::SyncSender<Batch>,
) {
    let records = match log.read_range_links_deferred(start, end) {
        Ok(records) => records,
        Err(error) => {
            let _ = batches.send(Err(error.into()));
            return;
        }
    };
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    for record in records {
        match record {
            Ok(linked) => batch.push(linked),
            Err(error) => {
                let _ = batches.send(Err(error.into()));
                return;
            }
        }
        if batch.len() == BATCH_RECORDS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_RECORDS));
            if batches.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    let _ = batches.send(Ok(batch));
}
