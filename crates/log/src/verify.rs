//! Verification: every durable record from position 0 walked through the chain check
//! (`chain`), and the end matched against the log's durable state.
//!
//! Invariants as the code holds them: what `verify` accepts is exactly what recovery accepts
//! of a whole log, with no torn tail allowed (everything it reads was acknowledged); damage
//! found quarantines the log.

use crate::chain::{Chain, TailRule, Walk, Walked};
use crate::segment::{self, FrameReader};
use crate::{Log, LogError};

/// `progress` is called every this many records (and at the end).
const PROGRESS_EVERY_RECORDS: u64 = 1 << 16;

impl Log {
    /// Reads every durable record from position 0, checking checksums, the
    /// hash chain, positions, segment names and unit boundaries. Calls
    /// `progress` with the number of records checked now and then and at the
    /// end. Returns the number of records, or `Corrupt` naming the first bad one.
    /// With batches in flight it stops at [`Log::durable_end`] (the frames
    /// after it are being written); otherwise a record beyond it is damage.
    ///
    /// Damage found quarantines the log (see [`Log::clear_quarantine`]).
    pub fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, LogError> {
        self.verify_records(progress)
            .map_err(|e| self.remember_damage(e, "verify"))
    }

    /// [`Log::verify`] without the quarantine (`clear_quarantine` writes its own marker).
    pub(crate) fn verify_records(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, LogError> {
        // Batches in flight lie beyond the durable end, being written: stop there. So does a
        // reader: what lies beyond the durable end it opened at is the writer's.
        let in_flight = !self.in_flight.is_empty() || self.read_only;
        let stop_at_durable_end = |chain: Chain, open_unit_records: u64| {
            in_flight && chain.next_position() == self.durable_end && open_unit_records == 0
        };
        let mut chain = Chain::at(0, [0; 32]).ending_at(self.durable_end);
        let mut last_path = segment::segment_path(&self.segments_dir, 0);
        let mut last_offset = 0u64;
        'segments: for &first_position in &self.segments {
            if stop_at_durable_end(chain, 0) {
                break 'segments;
            }
            let path = segment::segment_path(&self.segments_dir, first_position);
            let source = FrameReader::open(path, 0)?;
            let mut walk = Walk::segment(source, first_position, chain, TailRule::Damage)?;
            loop {
                if stop_at_durable_end(walk.chain(), walk.open_unit_records()) {
                    chain = walk.chain();
                    break 'segments;
                }
                match walk.step(|_| ())? {
                    Walked::Record(()) => {
                        let count = walk.chain().next_position();
                        if count.is_multiple_of(PROGRESS_EVERY_RECORDS) {
                            progress(count);
                        }
                    }
                    Walked::End | Walked::TornTail { .. } => break,
                }
            }
            walk.check_units_closed()?;
            chain = walk.chain();
            last_offset = walk.offset_bytes();
            last_path = walk.path().to_path_buf();
        }
        let count = chain.next_position();
        if count != self.durable_end || chain.last_hash() != Some(self.durable_hash) {
            return Err(LogError::Corrupt {
                position: count,
                segment: last_path,
                offset: last_offset,
                reason: format!(
                    "the segments hold {count} records, but {} were made durable \
                     (or the last hash differs)",
                    self.durable_end
                ),
            });
        }
        progress(count);
        Ok(count)
    }
}
