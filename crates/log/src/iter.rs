//! Streaming reads of a position range, walked through the chain check (`chain`).

use crate::chain::{Chain, TailRule, Walk, Walked};
use crate::segment::{segment_path, FrameReader};
use crate::{Log, LogError, Record};

/// Durable records of a position range, in position order, read from the
/// segments through a buffer (never the whole log in memory). Yields
/// `Err(Corrupt)` once and then ends if a record cannot be read.
///
/// It starts at the nearest sparse position point at or before `from` (one is
/// kept at least every 1024 records and at each segment start), so reaching
/// `from` costs at most a few thousand frame reads; or, when `from` is where the
/// last checked read of this log stopped, right there, the chain checked from
/// that read's last hash (a read view folding the log in steps of a few hundred
/// records reads each record once, not the thousand before it again). A read that
/// resumes does not read the records before `from` again: damage to them after the
/// read that went over them is found by the next read or verify that goes over them.
pub struct RecordIter<'a> {
    log: &'a Log,
    from: u64,
    end: u64,
    /// The walk of the current segment; `None` for an empty range.
    walk: Option<Walk<FrameReader>>,
    segment_index: usize,
    /// The first position of the segment walked (`segments[segment_index]`).
    segment: u64,
    done: bool,
    /// Segment (its first position) and byte offset of the record returned last.
    last_location: (u64, u64),
    /// The hash chain is checked here (not deferred to the records' holders).
    check_links: bool,
    /// A read failed: where it stopped is no place to resume from.
    failed: bool,
}

/// Where a checked read stopped: the next record's position, the segment and byte offset of
/// its frame, and the hash of the record before it (computed by that read, so the next read
/// checks the link between the two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResumePoint {
    position: u64,
    segment: u64,
    offset_bytes: u64,
    prev_hash: [u8; 32],
}

impl std::fmt::Debug for RecordIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let next_position = self.walk.as_ref().map(|w| w.chain().next_position());
        f.debug_struct("RecordIter")
            .field("next_position", &next_position)
            .field("from", &self.from)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl<'a> RecordIter<'a> {
    /// `end` must not exceed the log's durable end. `check_links`: false for
    /// [`DeferredLinks`], whose records' holders check the hash chain.
    pub(crate) fn new(
        log: &'a Log,
        from: u64,
        end: u64,
        check_links: bool,
    ) -> Result<RecordIter<'a>, LogError> {
        let mut iter = RecordIter {
            log,
            from,
            end,
            walk: None,
            segment_index: 0,
            segment: 0,
            done: from >= end,
            last_location: (0, 0),
            check_links,
            failed: false,
        };
        if iter.done {
            return Ok(iter);
        }
        if check_links && iter.resume_at_last_stop()? {
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
        let mut chain = Chain::at_unknown_hash(start_position);
        if !check_links {
            chain = chain.deferring_links();
        }
        let source = FrameReader::open(segment_path(log.segments_dir(), segment), start_offset)?;
        iter.segment_index = segment_index;
        iter.segment = segment;
        iter.walk = Some(Walk::resume(source, chain, TailRule::Damage));
        Ok(iter)
    }

    /// Starts where the log's last checked read stopped, if that is `from` (and its segment
    /// is still this log's); false otherwise.
    fn resume_at_last_stop(&mut self) -> Result<bool, LogError> {
        let last = *self
            .log
            .resume
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(point) = last.filter(|point| point.position == self.from) else {
            return Ok(false);
        };
        let Ok(segment_index) = self.log.segments().binary_search(&point.segment) else {
            return Ok(false);
        };
        let path = segment_path(self.log.segments_dir(), point.segment);
        let source = FrameReader::open(path, point.offset_bytes)?;
        let chain = Chain::at(point.position, point.prev_hash);
        self.segment_index = segment_index;
        self.segment = point.segment;
        self.walk = Some(Walk::resume(source, chain, TailRule::Damage));
        Ok(true)
    }

    fn advance(&mut self) -> Result<Option<Record>, LogError> {
        loop {
            let Some(walk) = self.walk.as_mut() else {
                return Ok(None);
            };
            if walk.chain().next_position() >= self.end {
                return Ok(None);
            }
            let from = self.from;
            let step = walk.step(|linked| {
                let view = linked.view;
                let record = (view.position >= from).then(|| view.to_record(linked.hash));
                (record, linked.offset_bytes)
            })?;
            match step {
                Walked::Record((Some(record), offset_bytes)) => {
                    self.last_location = (self.segment, offset_bytes);
                    return Ok(Some(record));
                }
                Walked::Record((None, _)) => {}
                Walked::End => self.next_segment()?,
                Walked::TornTail { .. } => {
                    unreachable!("a walk under TailRule::Damage reports bad bytes as Corrupt")
                }
            }
        }
    }

    /// At the end of a segment: walks on into the next one, which must start where the
    /// chain stands.
    fn next_segment(&mut self) -> Result<(), LogError> {
        let walk = self.walk.as_ref().expect("a segment was being walked");
        let chain = walk.chain();
        let next_index = self.segment_index + 1;
        let Some(&first_position) = self.log.segments().get(next_index) else {
            return Err(walk.no_next_segment());
        };
        let source = FrameReader::open(segment_path(self.log.segments_dir(), first_position), 0)?;
        self.walk = Some(Walk::segment(
            source,
            first_position,
            chain,
            TailRule::Damage,
        )?);
        self.segment_index = next_index;
        self.segment = first_position;
        Ok(())
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
                self.failed = true;
                Some(Err(self.log.remember_damage(e, "read_range")))
            }
        }
    }
}

impl std::iter::FusedIterator for RecordIter<'_> {}

impl Drop for RecordIter<'_> {
    /// A checked read that did not fail leaves where it stopped for the next read from there.
    fn drop(&mut self) {
        let Some(walk) = self
            .walk
            .as_ref()
            .filter(|_| self.check_links && !self.failed)
        else {
            return;
        };
        let chain = walk.chain();
        let Some(prev_hash) = chain.last_hash() else {
            return; // nothing walked yet: the hash before the next record is not known
        };
        let point = ResumePoint {
            position: chain.next_position(),
            segment: self.segment,
            offset_bytes: walk.offset_bytes(),
            prev_hash,
        };
        *self
            .log
            .resume
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(point);
    }
}

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

impl Link {
    /// A link for another backend of [`DurableLog`](crate::DurableLog): `expected_hash` is
    /// what the record at `next_position` names as its previous-hash. (The file log's links
    /// also say where that record lies, for its error messages.)
    pub fn new(expected_hash: [u8; 32], next_position: u64) -> Link {
        Link {
            expected_hash,
            next_position,
            next_segment: 0,
            next_offset: 0,
        }
    }

    /// The hash the record holding this link must have.
    pub fn expected_hash(&self) -> [u8; 32] {
        self.expected_hash
    }

    /// The position of the record that names the hash (the log's end for its last record).
    pub fn next_position(&self) -> u64 {
        self.next_position
    }
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
            let mut after = RecordIter::new(log, self.end, self.end + 1, false)?;
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
        let inner = RecordIter::new(self, from, end, false)?;
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
