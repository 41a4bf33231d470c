//! Appending: a unit's bounds and expected versions are checked, then its frames are staged in
//! memory, without their hash chain (the syncer completes it: see `sync` and `syncer`).
//!
//! Invariants as the code holds them: a unit is staged whole or not at all (every check,
//! every version lookup, happens before the first frame is staged); positions and stream
//! versions are consecutive from the end of what is staged, in flight and durable; nothing
//! here touches a file; a quarantined or broken log stages nothing.

use crate::error::{ExpectedVersion, LogError};
use crate::frame::{self, FrameFields};
use crate::streams::{self, Entry};
use crate::{quarantine, Appended, Log, NewRecord};
use crate::{MAX_PAYLOAD_BYTES, MAX_STREAM_BYTES, MAX_UNIT_RECORDS};

fn check_stream_name(stream: &str) -> Result<(), LogError> {
    if stream.is_empty() {
        return Err(LogError::InvalidInput(
            "a stream name must not be empty".into(),
        ));
    }
    at_most("stream name (bytes)", stream.len(), MAX_STREAM_BYTES)
}

/// `TooLarge` if `actual` exceeds `limit`.
fn at_most(what: &'static str, actual: usize, limit: usize) -> Result<(), LogError> {
    if actual > limit {
        return Err(LogError::TooLarge {
            what,
            actual: actual as u64,
            limit: limit as u64,
        });
    }
    Ok(())
}

/// Checks a unit against the format's bounds before anything of it is staged: at least one
/// record, at most [`MAX_UNIT_RECORDS`], stream names of 1..=[`MAX_STREAM_BYTES`] bytes (the
/// expected versions' too), payloads of at most [`MAX_PAYLOAD_BYTES`]. Every backend of
/// [`DurableLog`](crate::DurableLog) refuses what this refuses, with the same errors.
pub fn check_unit(
    expected: &[(&str, ExpectedVersion)],
    records: &[NewRecord<'_>],
) -> Result<(), LogError> {
    if records.is_empty() {
        return Err(LogError::InvalidInput(
            "a unit needs at least one record".into(),
        ));
    }
    at_most("unit (records)", records.len(), MAX_UNIT_RECORDS)?;
    for record in records {
        check_stream_name(record.stream)?;
        at_most("payload (bytes)", record.payload.len(), MAX_PAYLOAD_BYTES)?;
    }
    for (stream, _) in expected {
        check_stream_name(stream)?;
    }
    Ok(())
}

/// Checks a unit's expected versions against `version_of` (a stream's version with everything
/// appended so far), then looks up every stream the unit appends to, so that a backend's
/// staging after it cannot fail half-way. The first mismatch is `WrongExpectedVersion`.
pub fn check_versions(
    expected: &[(&str, ExpectedVersion)],
    records: &[NewRecord<'_>],
    mut version_of: impl FnMut(&str) -> Result<u64, LogError>,
) -> Result<(), LogError> {
    for &(stream, expected_version) in expected {
        let actual = version_of(stream)?;
        if !expected_version.matches(actual) {
            return Err(LogError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected: expected_version,
                actual,
            });
        }
    }
    for record in records {
        version_of(record.stream)?;
    }
    Ok(())
}

impl Log {
    /// The stream's slot in the table, looking its version up if needed.
    fn slot_of(&mut self, stream: &str) -> Result<streams::Slot, LogError> {
        if let Some(slot) = self.streams.get(stream) {
            return Ok(slot);
        }
        let version = self.indexed_version(stream)?;
        Ok(self.streams.set(stream, version))
    }

    /// Appends one atomic unit: all its records or none, ever.
    ///
    /// Checks every expected version against durable, in-flight and staged
    /// records and refuses the whole unit on a mismatch (nothing is staged
    /// then). Assigns consecutive global positions and stream versions. The
    /// unit is staged in memory and NOT durable until [`Log::sync`] returns, or
    /// the ticket of the [`Log::sync_start`] that hands it over resolves. Its
    /// frames are staged without their hash chain, which the syncer completes
    /// before writing them.
    pub fn append(
        &mut self,
        expected: &[(&str, ExpectedVersion)],
        records: &[NewRecord<'_>],
        recorded_at_micros: i64,
    ) -> Result<Appended, LogError> {
        self.check_writable()?;
        if self.is_quarantined() {
            return Err(match quarantine::read(&self.dir)? {
                Some(marker) => quarantine::refusal(&self.dir, marker),
                None => LogError::Broken(
                    "a damaged record was found in the log since it was opened".into(),
                ),
            });
        }
        check_unit(expected, records)?;
        // Look every version up first, so nothing below can fail half-way.
        // (A looked-up stream stays in the table: that changes no version.)
        check_versions(expected, records, |stream| {
            Ok(self.slot_of(stream)?.version)
        })?;

        let first_position = self.end_position();
        let last_index = records.len() - 1;
        self.staged_entries.reserve(records.len());
        for (i, record) in records.iter().enumerate() {
            let slot_state = self
                .streams
                .get_mut(record.stream)
                .expect("every stream of the unit was looked up above");
            slot_state.version += 1;
            let position = first_position + i as u64;
            let offset = self.staged.len();
            let fields = FrameFields {
                unit_end: i == last_index,
                position,
                stream_version: slot_state.version,
                event_id: *record.event_id.as_bytes(),
                recorded_at_micros,
                // The syncer fills in the chain (see `syncer`).
                prev_hash: [0; 32],
                stream: record.stream,
                payload: record.payload,
            };
            self.staged_entries.push(Entry {
                hash: slot_state.hash,
                version: slot_state.version,
                position,
                offset_bytes: offset as u64,
            });
            self.staged_last_offset = offset;
            frame::encode_unsealed(&mut self.staged, &fields);
        }
        self.staged_records += records.len() as u64;
        Ok(Appended {
            first_position,
            last_position: first_position + last_index as u64,
        })
    }

    /// Drops every staged record (after a failed `sync_start`).
    pub(crate) fn discard_staged(&mut self) {
        // A stream's version before the staged records is one below its first
        // staged version: read the streams back from the staged frames.
        for entry in self.staged_entries.drain(..) {
            let start = entry.offset_bytes as usize;
            let header: [u8; frame::FRAME_HEADER_BYTES] = self.staged
                [start..start + frame::FRAME_HEADER_BYTES]
                .try_into()
                .expect("slice has the header's length");
            let (body_len, _) =
                frame::parse_header(header).expect("staged frames were encoded by this log");
            let body_start = start + frame::FRAME_HEADER_BYTES;
            let view = frame::decode_body(&self.staged[body_start..body_start + body_len])
                .expect("staged frames were encoded by this log");
            if let Some(slot) = self.streams.get_mut(view.stream) {
                slot.version = slot.version.min(view.stream_version - 1);
            }
        }
        self.staged.clear();
        self.staged_records = 0;
    }

    /// The next position to assign (durable, in flight and staged records).
    pub fn end_position(&self) -> u64 {
        self.submitted_end + self.staged_records
    }
}
