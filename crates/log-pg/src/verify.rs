//! Verification: every durable record from position 0 read through the chain check (`read`'s
//! pages), and the end matched against the head.
//!
//! Invariants as the code holds them: `verify` accepts a log only if its records are exactly
//! positions `0..end` of the head, each hash is its fields' hash chained onto the one before
//! (zeros before position 0), the last hash is the head's, the last record ends its unit, and
//! (a writer with nothing in flight) no record lies beyond the head; damage found marks the
//! log damaged.

use gongji_log::LogError;

use crate::read::{nothing_beyond, Pages};
use crate::{corrupt, PgLog};

/// `progress` is called every this many records (and at the end).
const PROGRESS_EVERY_RECORDS: u64 = 1 << 16;

impl PgLog {
    pub(crate) fn verify_all(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, LogError> {
        self.verify_records(progress)
            .map_err(|e| self.remember_damage(e))
    }

    fn verify_records(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, LogError> {
        let end = self.durable.end_position;
        let mut count = 0u64;
        let mut last = None;
        for record in Pages::new(self, 0, end, true) {
            let record = record?;
            count += 1;
            if count.is_multiple_of(PROGRESS_EVERY_RECORDS) {
                progress(count);
            }
            last = Some((record.hash, record.unit_end));
        }
        let last_hash = last.map_or([0; 32], |(hash, _)| hash);
        if count != end || last_hash != self.durable.last_hash {
            return Err(corrupt(
                &self.log,
                count,
                format!(
                    "the table holds {count} records of the log, but its head says {end} \
                     (or the last hash differs)"
                ),
            ));
        }
        if last.is_some_and(|(_, unit_end)| !unit_end) {
            return Err(corrupt(
                &self.log,
                end - 1,
                "the last record does not end its unit".into(),
            ));
        }
        if self.writer.is_some() && self.in_flight.is_empty() {
            self.riding_out_logged("looking beyond the head", |client| {
                nothing_beyond(client, &self.log, end)
            })?;
        }
        progress(count);
        Ok(count)
    }
}
