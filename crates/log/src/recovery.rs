//! The recovery scan at open: from where the stream index reaches to the end of the last
//! segment, every frame is walked through the chain check (`chain`) and every complete unit's
//! records are indexed.
//!
//! [`scan_segment`] is the scan of one segment, generic over where the frames come from: open
//! runs it on the segment files, and the `log_frames` fuzz target (through
//! `fuzzing::decode_segment`) on bytes in memory, so the
//! fuzzer checks the very code recovery runs.
//!
//! Invariants as the code holds them: a unit's records reach the index only once its
//! end-of-unit frame was read (`UnitSink::unit_end`); bad bytes or an unfinished unit are a
//! torn tail only at the end of the last segment with nothing valid after them; anywhere else
//! they, and any record that breaks the chain, are `Corrupt` and nothing is changed.

use std::path::Path;

use crate::chain::{Chain, FrameSource, Linked, TailRule, Walk, Walked};
use crate::error::LogError;
use crate::frame::FrameError;
use crate::index::{IndexMeta, Location};
use crate::segment::{self, FrameReader};
use crate::streams::{
    stream_hash, Entry, StreamIndex, StreamTable, INDEX_FLUSH_RECORDS, STREAM_TABLE_MAX,
};

/// What the scan does with the records it walks.
pub(crate) trait UnitSink {
    /// A record that continues the chain; its unit may not be complete yet.
    fn record(&mut self, linked: Linked<'_>);
    /// The records handed over since the last unit end are a complete unit, ending at
    /// `end_offset_bytes` of the segment.
    fn unit_end(&mut self, end_offset_bytes: u64) -> Result<(), LogError>;
}

/// How a scanned segment ends. (Open needs only where the complete units end; the fuzz
/// target's decoder, feature `testing`, reports the torn tail too.)
#[derive(Debug)]
#[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
pub(crate) enum ScanEnd {
    /// At a frame boundary.
    Clean,
    /// Bad bytes at `offset_bytes` with nothing valid after them (last segment only).
    TornTail {
        offset_bytes: u64,
        error: FrameError,
    },
}

/// What [`scan_segment`] found.
#[derive(Debug)]
#[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
pub(crate) struct Scanned {
    /// The chain after the last record walked (complete unit or not).
    pub chain: Chain,
    /// Offset just past the segment's last complete unit: what open keeps of a last segment.
    pub units_end_offset: u64,
    pub end: ScanEnd,
}

/// Scans one segment the way open does: `source` from where it stands, `named` the segment's
/// first position if `source` starts at its first byte (checked against the chain). In a last
/// segment (`is_last`) bad bytes with nothing valid after them, and records after the last
/// end-of-unit flag, are a torn tail; in another segment they are `Corrupt`.
pub(crate) fn scan_segment<S: FrameSource>(
    source: S,
    named: Option<u64>,
    chain: Chain,
    is_last: bool,
    sink: &mut impl UnitSink,
) -> Result<Scanned, LogError> {
    let tail = if is_last {
        TailRule::TornTail
    } else {
        TailRule::Damage
    };
    let mut walk = match named {
        Some(first_position) => Walk::segment(source, first_position, chain, tail)?,
        None => Walk::resume(source, chain, tail),
    };
    let end = loop {
        let step = walk.step(|linked| {
            sink.record(linked);
            let view = linked.view;
            (view.is_unit_end(), linked.offset_bytes + view.frame_bytes())
        })?;
        match step {
            Walked::Record((true, end_offset_bytes)) => sink.unit_end(end_offset_bytes)?,
            Walked::Record((false, _)) => {}
            Walked::End => break ScanEnd::Clean,
            Walked::TornTail {
                offset_bytes,
                error,
            } => {
                break ScanEnd::TornTail {
                    offset_bytes,
                    error,
                }
            }
        }
    };
    if !is_last {
        walk.check_units_closed()?;
    }
    Ok(Scanned {
        chain: walk.chain(),
        units_end_offset: walk.units_end_offset(),
        end,
    })
}

/// Index entries of a unit not yet known to be complete.
struct PendingEntry {
    /// The stream's name, kept only when the stream table is filled (a writer's open).
    stream: Option<String>,
    hash: u64,
    stream_version: u64,
    location: Location,
}

/// Recovery's sink: the stream index and, for a writer, the stream table (a reader keeps none:
/// it appends nothing, and a reader's scan is the view's refresh, on the path of every read).
struct IndexSink<'a> {
    stream_index: &'a mut StreamIndex,
    streams: Option<&'a mut StreamTable>,
    /// The segment being scanned.
    segment: u64,
    /// Everything up to here is complete units.
    committed: IndexMeta,
    pending: Vec<PendingEntry>,
    pending_hash: [u8; 32],
    records_indexed: u64,
    /// Whether a full tail is written as a run (the writer's open; never a reader's).
    flush_runs: bool,
}

impl UnitSink for IndexSink<'_> {
    fn record(&mut self, linked: Linked<'_>) {
        self.pending_hash = linked.hash;
        let keep_name = self.streams.is_some();
        self.pending.push(PendingEntry {
            stream: keep_name.then(|| linked.view.stream.to_owned()),
            hash: stream_hash(linked.view.stream.as_bytes()),
            stream_version: linked.view.stream_version,
            location: Location {
                position: linked.view.position,
                segment: self.segment,
                offset_bytes: linked.offset_bytes,
            },
        });
    }

    fn unit_end(&mut self, end_offset_bytes: u64) -> Result<(), LogError> {
        let mut last_offset = self.committed.last_record_offset_bytes;
        for entry in self.pending.drain(..) {
            if let (Some(table), Some(name)) = (self.streams.as_deref_mut(), &entry.stream) {
                table.set(name, entry.stream_version);
            }
            let hash = entry.hash;
            self.stream_index.push(
                Entry {
                    hash,
                    version: entry.stream_version,
                    position: entry.location.position,
                    offset_bytes: entry.location.offset_bytes,
                },
                entry.location.segment,
            );
            last_offset = entry.location.offset_bytes;
            self.committed.next_position += 1;
            self.records_indexed += 1;
        }
        self.committed.segment = self.segment;
        self.committed.end_offset_bytes = end_offset_bytes;
        self.committed.last_record_offset_bytes = last_offset;
        self.committed.last_hash = self.pending_hash;
        if self.flush_runs && self.stream_index.tail.len() >= INDEX_FLUSH_RECORDS {
            self.stream_index.flush(self.committed)?;
            if let Some(table) = self.streams.as_deref_mut() {
                if table.len() > STREAM_TABLE_MAX {
                    table.clear();
                }
            }
        }
        Ok(())
    }
}

/// What [`recover`] found.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Where the complete units end (the durable state from now on).
    pub committed: IndexMeta,
    /// End of the complete units of the last segment: it is cut back to here.
    pub last_segment_end: u64,
    pub records_indexed: u64,
    /// Complete, checksummed records after the last unit end (cut away).
    pub truncated_records: u64,
}

/// Where a scan stops.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ScanTo {
    /// To the end of the last segment, whose torn tail the writer's open cuts away later;
    /// a full index tail is written as a run on the way if `flush_runs` (the writer's open;
    /// never a reader's).
    LastSegment { flush_runs: bool },
    /// A reader: exactly to this durable end (in the last of the segments given, which is
    /// read no further), every frame before it acknowledged; nothing is written.
    Durable(IndexMeta),
}

/// Scans `segments` from `start` (where the index reaches; `resume`: it says so, else from
/// position 0) to where `to` says, indexing every complete unit into `stream_index` and
/// `streams`. `Corrupt` on damage; nothing is changed on disk here but index runs
/// (`ScanTo::LastSegment { flush_runs: true }` only).
pub(crate) fn recover(
    stream_index: &mut StreamIndex,
    streams: Option<&mut StreamTable>,
    segments: &[u64],
    segments_dir: &Path,
    (start, resume): (IndexMeta, bool),
    to: ScanTo,
) -> Result<Recovered, LogError> {
    let start_index = if resume {
        segments.partition_point(|&s| s < start.segment)
    } else {
        0
    };
    let mut sink = IndexSink {
        stream_index,
        streams,
        segment: 0,
        committed: start,
        pending: Vec::new(),
        pending_hash: start.last_hash,
        records_indexed: 0,
        flush_runs: matches!(to, ScanTo::LastSegment { flush_runs: true }),
    };
    let mut chain = Chain::at(start.next_position, start.last_hash);
    let mut last_segment_end = start.end_offset_bytes;
    for (i, &segment) in segments.iter().enumerate().skip(start_index) {
        let start_offset = if i == start_index && resume {
            start.end_offset_bytes
        } else {
            0
        };
        let path = segment::segment_path(segments_dir, segment);
        let (source, is_last) = match to {
            ScanTo::LastSegment { .. } => (
                FrameReader::open(path, start_offset)?,
                i + 1 == segments.len(),
            ),
            ScanTo::Durable(end) if segment == end.segment => (
                FrameReader::open_until(path, start_offset, end.end_offset_bytes)?,
                false,
            ),
            ScanTo::Durable(_) => (FrameReader::open(path, start_offset)?, false),
        };
        let named = (start_offset == 0).then_some(segment);
        sink.segment = segment;
        let scanned = scan_segment(source, named, chain, is_last, &mut sink)?;
        chain = scanned.chain;
        last_segment_end = scanned.units_end_offset;
    }
    Ok(Recovered {
        committed: sink.committed,
        last_segment_end,
        records_indexed: sink.records_indexed,
        truncated_records: sink.pending.len() as u64,
    })
}
