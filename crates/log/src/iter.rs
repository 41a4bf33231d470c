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
    /// False for [`DeferredLinks`]: the hash chain is left to the records' holders.
    check_links: bool,
    /// Segment (its first position) and byte offset of the record returned last.
    last_location: (u64, u64),
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
            check_links: true,
            last_location: (0, 0),
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
            } else if !self.check_links {
                self.last_location = (self.log.segments()[self.segment_index], offset_bytes);
                Ok((view.position >= self.from).then(|| view.to_record([0; 32])))
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

/// One record's link in the hash chain, to be checked by whoever folds the record (see
/// [`Log::read_range_links_deferred`]): the hash the record after it says this record has.
#[derive(Clone, Debug)]
pub struct Link {
    /// The previous-hash of the next record (or the log's last hash, for its last record).
    expected_hash: [u8; 32],
    /// Where the record that makes the claim lies: what a mismatch is reported as.
    next_position: u64,
    next_segment: u64,
    next_offset: u64,
}

/// Durable records of a position range, like [`RecordIter`], but the reader checks only each
/// frame's CRC and position: each record comes with its [`Link`], and [`Log::check_link`]
/// (typically on another thread) recomputes its hash and compares it with what the next record
/// says. Every link of the range is handed out once, so checking all of them checks the whole
/// chain, on as many threads as hold records. `Record::hash` is zeros in these records.
pub struct DeferredLinks<'a> {
    inner: RecordIter<'a>,
    /// The record read ahead (its link waits for the next record's previous-hash).
    held: Option<(Record, (u64, u64))>,
    end: u64,
}

impl Iterator for DeferredLinks<'_> {
    type Item = Result<(Record, Link), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let next = self.inner.next();
            let location = self.inner.last_location;
            let Some((held, _)) = self.held.take() else {
                match next? {
                    Ok(record) => {
                        self.held = Some((record, location));
                        continue;
                    }
                    Err(e) => return Some(Err(e)),
                }
            };
            return Some(match next {
                Some(Ok(record)) => {
                    let link = Link {
                        expected_hash: record.prev_hash,
                        next_position: record.position,
                        next_segment: location.0,
                        next_offset: location.1,
                    };
                    self.held = Some((record, location));
                    Ok((held, link))
                }
                Some(Err(e)) => Err(e),
                None => self.last_link(held),
            });
        }
    }
}

impl DeferredLinks<'_> {
    /// The link of the range's last record: the log's last hash if the range reaches the end,
    /// else the previous-hash of the record after the range.
    fn last_link(&self, held: Record) -> Result<(Record, Link), LogError> {
        let log = self.inner.log;
        let (expected_hash, next_segment, next_offset) = if self.end >= log.durable_end() {
            let (segment, offset) = log.last_record;
            (log.durable_hash, segment, offset)
        } else {
            let mut after = RecordIter::new(log, self.end, self.end + 1)?;
            after.check_links = false;
            match after.next() {
                Some(Ok(record)) => {
                    let (segment, offset) = after.last_location;
                    (record.prev_hash, segment, offset)
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(LogError::Index(format!(
                        "no record at position {}",
                        self.end
                    )))
                }
            }
        };
        let link = Link {
            expected_hash,
            next_position: self.end,
            next_segment,
            next_offset,
        };
        Ok((held, link))
    }
}

impl Log {
    /// Durable records with `from <= position < to_exclusive`, each with the [`Link`] that
    /// [`Log::check_link`] checks: the hash chain is checked by the records' holders, in
    /// parallel, instead of by the reader. CRCs and positions are checked as they are read.
    pub fn read_range_links_deferred(
        &self,
        from: u64,
        to_exclusive: u64,
    ) -> Result<DeferredLinks<'_>, LogError> {
        let end = to_exclusive.min(self.durable_end());
        let mut inner = RecordIter::new(self, from, end)?;
        inner.check_links = false;
        Ok(DeferredLinks {
            inner,
            held: None,
            end,
        })
    }

    /// Checks one link of the chain: `record`'s hash, computed from its fields, must be what
    /// the record after it names as its previous-hash. A mismatch is damage: it puts the log
    /// in quarantine, as any read that finds damage does.
    pub fn check_link(&self, record: &Record, link: &Link) -> Result<(), LogError> {
        if record.recompute_hash() == link.expected_hash {
            return Ok(());
        }
        let reason = if link.next_position >= self.durable_end() {
            "the last record's hash is not the hash the log ends with".to_string()
        } else {
            "the record's previous-hash does not match the hash of the record before it".to_string()
        };
        let error = LogError::Corrupt {
            position: link.next_position.min(self.durable_end().saturating_sub(1)),
            segment: crate::segment::segment_path(self.segments_dir(), link.next_segment),
            offset: link.next_offset,
            reason,
        };
        Err(self.remember_damage(error, "read_range"))
    }
}
