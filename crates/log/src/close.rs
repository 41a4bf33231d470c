//! Closing: every batch in flight is waited for, the stream index's tail written as a run,
//! the projection store flushed (and, with sled, its snapshot left current).
//!
//! Invariant as the code holds it: the lock is released only after every batch handed to the
//! syncer is durable or failed (close and drop both wait).

use crate::{Kv, Log, LogError};

impl Log {
    /// Writes the stream index's tail as a run, flushes the projection
    /// store and closes the log.
    ///
    /// Waits for every batch handed to the syncer first; if one of them
    /// failed, returns its error (its records were never durable). Records
    /// staged and never handed over are dropped, as with [`Log::sync`] never
    /// called.
    pub fn close(mut self) -> Result<(), LogError> {
        if let Some(last) = self.in_flight.back().map(|b| b.seq) {
            let waited = self.syncer.shared.wait_for(last);
            self.apply_synced();
            waited.map_err(|failure| failure.to_error())?;
        }
        self.syncer.stop();
        if self.broken.is_none() && !self.read_only {
            self.flush_index()?;
        }
        if let Some(db) = &self.db {
            db.flush()?;
        }
        Ok(())
    }

    /// Lets the next open of the projection store start fast. sled 0.34
    /// writes its snapshot (the page table) only while it opens, after
    /// replaying its own log since the last snapshot; so the first process
    /// to open the store after a writer replays everything the writer wrote
    /// (measured: 1.9 s for 3 million events' projections, against 80 ms for
    /// an open with a current snapshot). If anything was written to the
    /// store since this log was opened, this closes sled and opens it once
    /// more, so the writer pays that replay and leaves a current snapshot.
    /// Best effort: if a clone of the [`Kv`] is still alive elsewhere, the
    /// second open is refused by sled's own lock and nothing happens.
    /// Nothing to do with the runs backend (sled was never opened).
    fn settle_index(&mut self) {
        let written = self.kv.as_ref().is_some_and(Kv::sled_was_written);
        if let Some(db) = &self.db {
            let _ = db.flush();
        }
        if !written {
            return;
        }
        drop(self.kv.take());
        drop(self.db.take());
        let path = self.index_dir.clone();
        let _ = std::panic::catch_unwind(move || {
            if let Ok(db) = sled::Config::new().path(&path).open() {
                let _ = db.flush();
            }
        });
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Every batch handed to the syncer is made durable (or fails) before
        // the lock is released with the fields.
        self.wait_all_synced();
        self.syncer.stop();
        // Best effort: the index can always be rebuilt from the segments. A reader writes
        // nothing.
        if self.broken.is_none() && !self.read_only {
            let _ = self.flush_tail();
        }
        self.settle_index();
    }
}
