//! Streaming reads of a position range.

use crate::segment::{segment_path, FrameReader, Step};
use crate::{Log, LogError, Record};

/// Durable records of a position range, in position order, read from the
/// segments through a buffer (never the whole log in memory). Yields
/// `Err(Corrupt)` once and then ends if a record cannot be read.
///
/// It starts at the nearest sparse position point at or before `from` (one is
/// kept at least every 1024 records and at each segment start), so reaching
/// `from` costs at most a few thousand frame reads.
pub struct RecordIter<'a> {
    log: &'a Log,
    /// Position of the next frame the reader will return.
    next_position: u64,
    from: u64,
    end: u64,
    reader: Option<FrameReader>,
    segment_index: usize,
    prev_hash: Option<[u8; 32]>,
    done: bool,
}

impl std::fmt::Debug for RecordIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordIter")
            .field("next_position", &self.next_position)
            .field("from", &self.from)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl<'a> RecordIter<'a> {
    /// `end` must not exceed the log's durable end.
    pub(crate) fn new(log: &'a Log, from: u64, end: u64) -> Result<RecordIter<'a>, LogError> {
        let mut iter = RecordIter {
            log,
            next_position: from,
            from,
            end,
            reader: None,
            segment_index: 0,
            prev_hash: None,
            done: from >= end,
        };
        if iter.done {
            return Ok(iter);
        }
        let segments = log.segments();
        let Some(segment_index) = segments.partition_point(|&s| s <= from).checked_sub(1) else {
            return Err(LogError::Index(format!("no segment holds position {from}")));
        };
        let segment = segments[segment_index];
        let (start_position, start_offset) = match log.sparse_point_at_or_before(from)? {
            Some(point) if point.segment == segment && point.position >= segment => {
                (point.position, point.offset_bytes)
            }
            _ => (segment, 0),
        };
        iter.segment_index = segment_index;
        iter.next_position = start_position;
        iter.reader = Some(FrameReader::open(
            segment_path(log.segments_dir(), segment),
            start_offset,
        )?);
        Ok(iter)
    }

    fn advance(&mut self) -> Result<Option<Record>, LogError> {
        loop {
            if self.next_position >= self.end {
                return Ok(None);
            }
            let Some(reader) = self.reader.as_mut() else {
                return Ok(None);
            };
            let (view, offset_bytes) = match reader.next_frame()? {
                Step::Frame { view, offset_bytes } => (view, offset_bytes),
                Step::Bad {
                    offset_bytes,
                    error,
                } => {
                    return Err(LogError::Corrupt {
                        position: self.next_position,
                        segment: reader.path().to_path_buf(),
                        offset: offset_bytes,
                        reason: error.to_string(),
                    })
                }
                Step::End => {
                    let segments = self.log.segments();
                    let next_index = self.segment_index + 1;
                    if segments.get(next_index) != Some(&self.next_position) {
                        return Err(LogError::Corrupt {
                            position: self.next_position,
                            segment: reader.path().to_path_buf(),
                            offset: reader.offset_bytes(),
                            reason: "the segment ends and no segment starts at this position"
                                .into(),
                        });
                    }
                    self.segment_index = next_index;
                    self.reader = Some(FrameReader::open(
                        segment_path(self.log.segments_dir(), self.next_position),
                        0,
                    )?);
                    continue;
                }
            };
            // Check while `view` borrows the reader; report afterwards.
            let checked = if view.position != self.next_position {
                Err(format!(
                    "a valid frame holds position {} where position {} was expected",
                    view.position, self.next_position
                ))
            } else if self.prev_hash.is_some_and(|h| h != view.prev_hash) {
                Err(
                    "the record's previous-hash does not match the hash of the record before it"
                        .to_string(),
                )
            } else {
                let hash = view.hash();
                self.prev_hash = Some(hash);
                Ok((view.position >= self.from).then(|| view.to_record(hash)))
            };
            match checked {
                Ok(record) => {
                    self.next_position += 1;
                    if record.is_some() {
                        return Ok(record);
                    }
                }
                Err(reason) => {
                    return Err(LogError::Corrupt {
                        position: self.next_position,
                        segment: reader.path().to_path_buf(),
                        offset: offset_bytes,
                        reason,
                    })
                }
            }
        }
    }
}

impl Iterator for RecordIter<'_> {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(self.log.remember_damage(e, "read_range")))
            }
        }
    }
}

impl std::iter::FusedIterator for RecordIter<'_> {}
