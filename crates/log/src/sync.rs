//! The sync pipeline's `Log` side: handing staged batches to the syncer (`syncer`), tickets,
//! and applying what became durable (durable end and hash, index tail, index runs) on the
//! `Log`'s own thread; segment roll-over; the broken state.
//!
//! Invariants as the code holds them: `durable_end` only ever counts records whose batch the
//! syncer reported durable, in order; at most `IN_FLIGHT_MAX` batches are in flight; a new
//! segment starts only with nothing in flight (so a failed batch never leaves a segment named
//! beyond the durable end); after a failed write, sync or index write the `Log` is broken and
//! refuses further work.

use std::sync::Arc;

use crate::handover::HandedBatch;
use crate::index::IndexMeta;
use crate::segment;
use crate::streams::{Entry, INDEX_FLUSH_RECORDS, STREAM_TABLE_MAX};
use crate::syncer::{Job, IN_FLIGHT_MAX};
use crate::{sync_dir, Log, LogError, SyncTicket};

/// A staged buffer larger than this is freed after a sync instead of kept for reuse.
const STAGED_KEEP_BYTES: usize = 64 << 20;

/// A batch handed to the syncer, not yet applied to the `Log`'s state.
pub(crate) struct InFlight {
    pub(crate) seq: u64,
    /// `durable_end` and `durable_hash` once it is durable.
    end_position: u64,
    /// Set by the syncer when it has sealed the batch (before it is durable).
    end_hash: Arc<std::sync::OnceLock<[u8; 32]>>,
    segment: u64,
    write_start: u64,
    bytes: u64,
    /// Offset in the segment of its last frame.
    last_record_offset_bytes: u64,
    /// Its records' index entries, offsets relative to `write_start`.
    entries: Vec<Entry>,
}

impl Log {
    pub(crate) fn check_usable(&self) -> Result<(), LogError> {
        match &self.broken {
            Some(reason) => Err(LogError::Broken(reason.clone())),
            None => Ok(()),
        }
    }

    /// [`check_usable`](Log::check_usable), and refuses a read-only log: for everything that
    /// takes records or writes.
    pub(crate) fn check_writable(&self) -> Result<(), LogError> {
        self.check_usable()?;
        if self.read_only {
            return Err(LogError::ReadOnly {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Whether the next batch goes to a new segment.
    fn roll_due(&self) -> bool {
        self.writer_offset_bytes >= self.options.segment_bytes_max && self.writer_offset_bytes != 0
    }

    /// Starts a new segment if the current one is full. Only with nothing in
    /// flight (see `sync_start`): a segment is named by its first position,
    /// which must be the end of the durable records if a batch then fails.
    fn roll_if_needed(&mut self) -> Result<(), LogError> {
        if !self.roll_due() {
            return Ok(());
        }
        debug_assert!(self.in_flight.is_empty());
        let first_position = self.submitted_end;
        let file = segment::create_segment(&self.segments_dir, first_position)?;
        // From here the new, empty segment is the current one: a valid state
        // even if syncing the directory fails below.
        self.writer = Some(Arc::new(file));
        self.writer_segment = first_position;
        self.writer_offset_bytes = 0;
        self.segments.push(first_position);
        sync_dir(&self.segments_dir)
    }

    /// Group commit: writes every staged unit to the current segment with one
    /// write and `fdatasync`s it; returns the durable end (number of durable
    /// records). The same as [`Log::sync_start`] followed by waiting for its
    /// ticket: every batch handed over before is durable too when it returns.
    /// The records' stream-index entries go to the in-memory tail; when it
    /// holds 2^20 entries it is written as an index run.
    ///
    /// On a write or sync error the segment is cut back to its last durable
    /// byte, the error returned, and the `Log` refuses further work
    /// ([`LogError::Broken`]): reopen the directory. No record of the failed
    /// batch (or of a batch after it) was acknowledged. If the records became
    /// durable but writing the index run failed, this returns `Ok` (the
    /// records are durable) and the `Log` then refuses further work with
    /// [`LogError::Broken`]; reopening re-indexes them.
    pub fn sync(&mut self) -> Result<u64, LogError> {
        let ticket = self.sync_start()?;
        let waited = ticket.wait();
        self.apply_synced();
        waited.map(|_| self.durable_end)
    }

    /// Pipelined group commit: hands every staged unit (a batch) to the log's
    /// syncer threads, which complete its hash chain, write it to the current
    /// segment and `fdatasync` it, and returns at once with a ticket for it. The caller goes on
    /// appending (and starting more syncs) while the disk works; the records
    /// are acknowledged only once [`SyncTicket::wait`] returns `Ok`, which may
    /// be called from any thread. Tickets resolve in order: a batch is durable
    /// only with every batch started before it. Batches queued while the
    /// syncer is busy are written together and share one `fdatasync`.
    ///
    /// At most 4 batches are in flight: starting a fifth waits for the oldest.
    /// With nothing staged, returns a ticket for the last batch started (which
    /// resolves at once if it is durable already).
    ///
    /// What became durable is applied to this `Log` (index entries,
    /// [`Log::durable_end`], what the reads see, segment roll-over) on its own
    /// thread: at the next `sync_start`, `sync`, [`Log::settle_syncs`],
    /// [`Log::flush_index`], `close` and drop. Until then the reads see only
    /// the records durable at the last of those. `close` and drop wait for
    /// every batch in flight; records staged and never handed over are lost
    /// as before.
    ///
    /// If a background write or sync fails, the segment is cut back to its
    /// last durable byte, every waiter of that batch and of later ones gets
    /// the error, and the `Log` refuses further work ([`LogError::Broken`]).
    pub fn sync_start(&mut self) -> Result<SyncTicket, LogError> {
        self.apply_synced();
        self.check_usable()?;
        if self.staged_records == 0 {
            return Ok(self.ticket(self.last_seq, self.submitted_end));
        }
        // Nothing is handed over if the threads cannot start: the staged
        // records stay staged.
        self.syncer.start()?;
        while self.in_flight.len() >= IN_FLIGHT_MAX {
            let oldest = self.in_flight.front().expect("in flight").seq;
            let _ = self.syncer.shared.wait_for(oldest);
            self.apply_synced();
            self.check_usable()?;
        }
        if self.roll_due() && !self.in_flight.is_empty() {
            // A new segment starts only once everything before it is durable:
            // were a batch of the old segment to fail with the new one already
            // created, the new segment's name would lie beyond the durable end
            // and reopening would find a gap. One pipeline bubble per segment.
            self.wait_all_synced();
            self.check_usable()?;
        }
        if let Err(e) = self.roll_if_needed() {
            self.discard_staged();
            return Err(e);
        }
        let Some(writer) = self.writer.clone() else {
            // Unreachable: a read-only log has nothing staged (`append` refuses).
            self.discard_staged();
            return Err(LogError::ReadOnly {
                dir: self.dir.clone(),
            });
        };
        let bytes = std::mem::replace(&mut self.staged, self.syncer.shared.take_buffer());
        let entries = std::mem::replace(
            &mut self.staged_entries,
            self.spare_entries.pop().unwrap_or_default(),
        );
        let seq = self.last_seq + 1;
        let write_start = self.writer_offset_bytes;
        let batch = InFlight {
            seq,
            end_position: self.submitted_end + self.staged_records,
            end_hash: Arc::default(),
            segment: self.writer_segment,
            write_start,
            bytes: bytes.len() as u64,
            last_record_offset_bytes: write_start + self.staged_last_offset as u64,
            entries,
        };
        let job = Job {
            end_hash: Arc::clone(&batch.end_hash),
            seq,
            file: writer,
            path: segment::segment_path(&self.segments_dir, self.writer_segment),
            write_start,
            bytes,
            keep_bytes_max: STAGED_KEEP_BYTES,
            end: IndexMeta {
                next_position: batch.end_position,
                segment: batch.segment,
                end_offset_bytes: write_start + batch.bytes,
                last_record_offset_bytes: batch.last_record_offset_bytes,
                last_hash: [0; 32],
            },
        };
        self.syncer.submit(job);
        self.last_seq = seq;
        self.writer_offset_bytes += batch.bytes;
        self.submitted_end = batch.end_position;
        self.staged_records = 0;
        self.in_flight.push_back(batch);
        let ticket = self.ticket(seq, self.submitted_end);
        if self.table_clear_due {
            // Rare (a stream table past its bound): drain the pipeline and the
            // index flush once, and write the tail as a run, so that no version
            // lives only in the table when it is cleared (a lookup of a stream
            // not in the table reads the runs only).
            let _ = self.syncer.shared.wait_for(seq);
            let finished = self.stream_index.finish_flush();
            self.note_index_failure(finished);
            self.apply_synced();
            if self.broken.is_none() {
                let written = self.flush_tail();
                self.note_index_failure(written);
            }
        }
        Ok(ticket)
    }

    /// Failure injection for tests (feature `testing`), not part of the stable API: the
    /// syncer's next `fdatasync` fails as if the disk had refused it (after the batch's bytes
    /// were written).
    #[cfg(any(test, feature = "testing"))]
    pub fn inject_sync_failure(&self) {
        self.syncer.shared.fail_next_sync();
    }

    fn ticket(&self, seq: u64, end_position: u64) -> SyncTicket {
        SyncTicket::new(self.syncer.shared.clone(), seq, end_position)
    }

    /// Applies every batch the syncer has made durable since the last call
    /// (without waiting) and returns the durable end. Reads see those records
    /// from now on. `Err` if a background write or sync failed (the log is
    /// then broken).
    pub fn settle_syncs(&mut self) -> Result<u64, LogError> {
        self.apply_synced();
        self.check_usable()?;
        Ok(self.durable_end)
    }

    /// Waits for every batch in flight and applies them (errors are applied
    /// as the broken state).
    pub(crate) fn wait_all_synced(&mut self) {
        if let Some(last) = self.in_flight.back() {
            let _ = self.syncer.shared.wait_for(last.seq);
        }
        self.apply_synced();
    }

    /// What `sync` did after its `fdatasync`, for every batch now durable, in
    /// order: durable end and hash, index tail, index run when due. A failed
    /// batch breaks the log.
    pub(crate) fn apply_synced(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        let (durable_seq, failed) = self.syncer.shared.progress();
        while self.in_flight.front().is_some_and(|b| b.seq <= durable_seq) {
            let mut batch = self.in_flight.pop_front().expect("checked");
            debug_assert!(batch.end_position > self.durable_end);
            self.durable_end = batch.end_position;
            self.durable_hash = *batch
                .end_hash
                .get()
                .expect("the syncer seals a batch before it makes it durable");
            self.last_record = (batch.segment, batch.last_record_offset_bytes);
            self.last_record_end_bytes = batch.write_start + batch.bytes;
            let mut handed = Vec::new();
            for mut entry in batch.entries.drain(..) {
                entry.offset_bytes += batch.write_start;
                self.stream_index.push(entry, batch.segment);
                if self.handover.is_some() {
                    handed.push(entry);
                }
            }
            if let Some(handover) = &self.handover {
                handover.offer(HandedBatch {
                    entries: handed.into(),
                    segment: batch.segment,
                    end: self.index_meta(),
                });
            }
            if self.spare_entries.len() < IN_FLIGHT_MAX {
                self.spare_entries.push(batch.entries);
            }
            if self.stream_index.tail.len() >= INDEX_FLUSH_RECORDS && self.broken.is_none() {
                // Sorted, written and merged on a background thread; a flush
                // still running from 2^20 records ago is waited for first.
                let started = self.stream_index.start_flush(self.index_meta());
                self.note_index_failure(started);
                self.table_clear_due |= self.streams.len() > STREAM_TABLE_MAX;
            }
        }
        let polled = self.stream_index.poll_flush();
        self.note_index_failure(polled);
        if let Some(failure) = failed {
            if self.broken.is_none() {
                self.broken = Some(format!(
                    "records from position {} on could not be made durable: {}",
                    self.durable_end, failure.message
                ));
            }
        }
        if self.table_clear_due
            && self.in_flight.is_empty()
            && self.staged_records == 0
            && !self.stream_index.is_flushing()
            && self.stream_index.tail.is_empty()
        {
            self.streams.clear();
            self.table_clear_due = false;
        }
    }

    /// A failed index write leaves durable records unindexed: the log refuses
    /// further work (reopening re-indexes them).
    fn note_index_failure(&mut self, result: Result<(), LogError>) {
        if let Err(e) = result {
            if self.broken.is_none() {
                self.broken = Some(format!(
                    "records up to position {} are durable, but writing the stream index failed: {e}",
                    self.durable_end
                ));
            }
        }
    }

    /// Where the durable records end, as an index run's meta records it.
    pub(crate) fn index_meta(&self) -> IndexMeta {
        let (segment, last_record_offset_bytes) = self.last_record;
        IndexMeta {
            next_position: self.durable_end,
            segment,
            end_offset_bytes: self.last_record_end_bytes,
            last_record_offset_bytes,
            last_hash: self.durable_hash,
        }
    }

    /// Writes the stream index's in-memory tail (the entries of the durable
    /// records since the last index run) as an index run, so that the next
    /// open need not re-index them. `sync` does this every 2^20 records, and
    /// `close` and dropping the log do it too; calling it at a checkpoint of
    /// one's own is allowed and never needed for durability. Applies the
    /// batches the syncer has made durable first (without waiting for the
    /// others).
    pub fn flush_index(&mut self) -> Result<(), LogError> {
        self.apply_synced();
        self.check_writable()?;
        self.flush_tail()
    }

    /// Writes the tail as a run and waits for it (and for a background flush).
    pub(crate) fn flush_tail(&mut self) -> Result<(), LogError> {
        if self.stream_index.tail.is_empty() && !self.stream_index.is_flushing() {
            return Ok(());
        }
        self.stream_index.flush(self.index_meta())?;
        if self.streams.len() > STREAM_TABLE_MAX {
            if self.staged_records == 0 && self.in_flight.is_empty() {
                self.streams.clear();
            } else {
                self.table_clear_due = true;
            }
        }
        Ok(())
    }

    /// The number of durable records (as applied: see [`Log::sync_start`]).
    /// Never counts a record that is not durable.
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }
}
