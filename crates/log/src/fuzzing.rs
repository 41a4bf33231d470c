//! Pure, panic-free decoding of segment bytes, for fuzzing and tests (feature `testing`).
//!
//! [`decode_segment`] reads bytes as the last segment of a log the way open does: it runs the
//! recovery scan itself (`recovery::scan_segment`, the same function open runs on segment
//! files, with the same chain walk, frame decoder and rule telling a torn tail from damage in
//! the middle), over a slice in memory instead of a file and collecting the records instead of
//! indexing them, so a fuzzer can run it millions of times without a directory or a lock.
//! [`check_segment_bytes`] is what the `log_frames` fuzz target runs: it decodes and asserts
//! what must hold of any input. Not part of the log's stable API.

use std::path::Path;

use crate::chain::{Chain, FrameSource, Linked};
use crate::frame::{self, FRAME_HEADER_BYTES, MIN_BODY_BYTES};
use crate::recovery::{self, ScanEnd, UnitSink};
use crate::segment::{contains_valid_frame, Step};
use crate::{LogError, Record};

/// How the bytes of a segment end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Every byte belongs to a valid frame.
    Clean,
    /// A bad or cut frame at `offset_bytes` with no valid frame after it: a torn tail, which
    /// open cuts away.
    TornTail { offset_bytes: u64, reason: String },
    /// A bad frame, or a valid one with the wrong position or previous-hash, at
    /// `offset_bytes`, where the record at `position` was expected: damage, which open refuses
    /// (and which quarantines the log).
    Damaged {
        position: u64,
        offset_bytes: u64,
        reason: String,
    },
}

/// What [`decode_segment`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedSegment {
    /// The valid, chained records from the start, in order, up to the first bad frame.
    pub records: Vec<Record>,
    /// Byte length of those records' frames.
    pub records_bytes: u64,
    /// Byte length of the complete atomic units among them (what open would keep of a last
    /// segment: records after the last end-of-unit flag are an unfinished unit).
    pub complete_units_bytes: u64,
    /// Records in those complete units.
    pub complete_units_records: u64,
    pub end: SegmentEnd,
    /// The frame format each record was read from (1 or 2), in the order of `records`.
    pub formats: Vec<u8>,
}

/// The name segment bytes in memory go by in errors.
const IN_MEMORY: &str = "segment in memory";

/// Frames of a segment held in memory: the recovery scan's source for the fuzz target.
struct SliceFrames<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl FrameSource for SliceFrames<'_> {
    fn next_frame(&mut self) -> Result<Step<'_>, LogError> {
        let rest = &self.bytes[self.offset..];
        if rest.is_empty() {
            return Ok(Step::End);
        }
        let offset_bytes = self.offset as u64;
        Ok(match frame::decode_frame(rest) {
            Ok(view) => {
                self.offset += FRAME_HEADER_BYTES + view.body.len();
                Step::Frame { view, offset_bytes }
            }
            Err(error) => Step::Bad {
                offset_bytes,
                error,
            },
        })
    }

    fn offset_bytes(&self) -> u64 {
        self.offset as u64
    }

    fn path(&self) -> &Path {
        Path::new(IN_MEMORY)
    }

    fn valid_frame_after(&self, offset_bytes: u64, min_position: u64) -> Result<bool, LogError> {
        let after = usize::try_from(offset_bytes.saturating_add(1)).unwrap_or(usize::MAX);
        let rest = self.bytes.get(after..).unwrap_or_default();
        Ok(contains_valid_frame(rest, min_position))
    }
}

/// The scan's sink: every record, and where the complete units end.
impl UnitSink for DecodedSegment {
    fn record(&mut self, linked: Linked<'_>) {
        self.records.push(linked.view.to_record(linked.hash));
        self.formats.push(linked.view.format);
        self.records_bytes = linked.offset_bytes + linked.view.frame_bytes();
    }

    fn unit_end(&mut self, end_offset_bytes: u64) -> Result<(), LogError> {
        self.complete_units_bytes = end_offset_bytes;
        self.complete_units_records = self.records.len() as u64;
        Ok(())
    }
}

/// Decodes `bytes` as the last segment of a log, with open's recovery scan: frames from
/// offset 0, positions consecutive from the first frame's, each frame's previous-hash the hash
/// of the frame before it (the first frame's previous-hash and position are taken as given: a
/// segment may start anywhere in the log). Never panics, never allocates from a length it has
/// not checked against `bytes`.
pub fn decode_segment(bytes: &[u8]) -> DecodedSegment {
    let mut out = DecodedSegment {
        records: Vec::new(),
        records_bytes: 0,
        complete_units_bytes: 0,
        complete_units_records: 0,
        end: SegmentEnd::Clean,
        formats: Vec::new(),
    };
    let chain = match frame::decode_frame(bytes) {
        Ok(first) => Chain::at(first.position, first.prev_hash),
        Err(_) => Chain::at(0, [0; 32]),
    };
    let source = SliceFrames { bytes, offset: 0 };
    out.end = match recovery::scan_segment(source, None, chain, true, &mut out) {
        Ok(scanned) => match scanned.end {
            ScanEnd::Clean => SegmentEnd::Clean,
            ScanEnd::TornTail {
                offset_bytes,
                error,
            } => SegmentEnd::TornTail {
                offset_bytes,
                reason: error.to_string(),
            },
        },
        Err(LogError::Corrupt {
            position,
            offset,
            reason,
            ..
        }) => SegmentEnd::Damaged {
            position,
            offset_bytes: offset,
            reason,
        },
        // Bytes in memory give no I/O error, and the sink none either.
        Err(other) => SegmentEnd::Damaged {
            position: u64::MAX,
            offset_bytes: out.records_bytes,
            reason: other.to_string(),
        },
    };
    out
}

/// Encodes `record` as a frame of `format` (1, else 2) onto `out`; returns the hash the frame
/// gives. For a record decoded from a valid frame of that format, the bytes and hash are the
/// original ones. `None` if the record is out of the format's bounds (stream or payload size).
pub fn encode_record(out: &mut Vec<u8>, record: &Record, format: u8) -> Option<[u8; 32]> {
    if record.stream.is_empty()
        || record.stream.len() > crate::MAX_STREAM_BYTES
        || record.payload.len() > crate::MAX_PAYLOAD_BYTES
        || record.stream_version == 0
    {
        return None;
    }
    Some(if format == 1 {
        frame::encode_frame_v1(out, &record.frame_fields())
    } else {
        frame::encode_frame(out, &record.frame_fields())
    })
}

/// What the `log_frames` fuzz target checks of any input: decoding never panics; what
/// decodes re-encodes to exactly the bytes it came from, with the same hashes
/// ([`Record::recompute_hash`] included); positions are consecutive and the hash chain
/// links; the lengths reported lie inside the input; a clean end means every byte was read.
/// Panics (which is what a fuzzer reports) if any of that fails.
pub fn check_segment_bytes(bytes: &[u8]) {
    let decoded = decode_segment(bytes);
    let records_bytes = usize::try_from(decoded.records_bytes).expect("fits: it is a slice length");
    assert!(records_bytes <= bytes.len());
    assert!(decoded.complete_units_bytes <= decoded.records_bytes);
    assert!(decoded.complete_units_records <= decoded.records.len() as u64);
    assert!(
        decoded.records.len() <= bytes.len() / (FRAME_HEADER_BYTES + MIN_BODY_BYTES),
        "more records than the bytes can hold"
    );
    let mut again = Vec::with_capacity(records_bytes);
    for (i, record) in decoded.records.iter().enumerate() {
        let hash = encode_record(&mut again, record, decoded.formats[i])
            .expect("a decoded record is in bounds");
        assert_eq!(hash, record.hash, "record {i}: the hash re-encodes");
        assert_eq!(
            record.recompute_hash(),
            record.hash,
            "record {i}: recompute_hash"
        );
        if let Some(next) = decoded.records.get(i + 1) {
            assert_eq!(
                next.position,
                record.position + 1,
                "positions are consecutive"
            );
            assert_eq!(next.prev_hash, record.hash, "the chain links");
        }
    }
    assert_eq!(
        again.as_slice(),
        &bytes[..records_bytes],
        "decoded records re-encode to their bytes"
    );
    match &decoded.end {
        SegmentEnd::Clean => assert_eq!(records_bytes, bytes.len()),
        SegmentEnd::TornTail { offset_bytes, .. } | SegmentEnd::Damaged { offset_bytes, .. } => {
            assert_eq!(*offset_bytes, decoded.records_bytes);
            assert!(records_bytes < bytes.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameFields;

    fn segment(records: u64, unit_every: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev_hash = [0u8; 32];
        for position in 0..records {
            prev_hash = frame::encode_frame(
                &mut out,
                &FrameFields {
                    unit_end: (position + 1) % unit_every == 0,
                    position,
                    stream_version: position + 1,
                    event_id: [position as u8; 16],
                    recorded_at_micros: 5,
                    prev_hash,
                    stream: "s",
                    payload: b"payload",
                },
            );
        }
        out
    }

    #[test]
    fn a_whole_segment_decodes_clean_and_round_trips() {
        let bytes = segment(6, 2);
        let decoded = decode_segment(&bytes);
        assert_eq!(decoded.records.len(), 6);
        assert_eq!(decoded.end, SegmentEnd::Clean);
        assert_eq!(decoded.complete_units_bytes, bytes.len() as u64);
        check_segment_bytes(&bytes);
    }

    #[test]
    fn every_cut_is_a_torn_tail_and_keeps_the_complete_units() {
        let bytes = segment(6, 3);
        for cut in 0..bytes.len() {
            let decoded = decode_segment(&bytes[..cut]);
            assert!(
                matches!(decoded.end, SegmentEnd::TornTail { .. } | SegmentEnd::Clean),
                "cut at {cut}: {:?}",
                decoded.end
            );
            assert_eq!(decoded.complete_units_records % 3, 0);
            check_segment_bytes(&bytes[..cut]);
        }
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_damage() {
        let mut bytes = segment(6, 1);
        let frame_bytes = bytes.len() / 6;
        bytes[frame_bytes + 20] ^= 0x40;
        match decode_segment(&bytes).end {
            SegmentEnd::Damaged { position, .. } => assert_eq!(position, 1),
            other => panic!("expected damage at 1, got {other:?}"),
        }
        check_segment_bytes(&bytes);
    }
}
