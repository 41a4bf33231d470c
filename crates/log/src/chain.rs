//! The chain walk: the one piece of code that decides whether frames read in order are the log.
//!
//! Every reader of segments in order walks their frames through a [`Walk`]: recovery at open
//! (`recovery::scan_segment`), [`Log::verify`](crate::Log::verify), the streaming reads
//! ([`RecordIter`](crate::RecordIter) and its deferred-links form) and, through
//! `fuzzing` (feature `testing`), the `log_frames` fuzz target. A walk checks, frame by frame:
//!
//! * a segment read from its first byte is named for the position the chain stands at
//!   ([`Walk::segment`]);
//! * positions are consecutive (and, for `verify`, end at the durable end: [`Chain::ending_at`]);
//! * each record's previous-hash is the hash of the record before it (unless the links are
//!   left to the records' holders: [`Chain::deferring_links`]);
//! * units end cleanly: [`Walk::check_units_closed`] refuses a segment that ends inside a unit;
//! * bytes that are not a frame are damage, except under [`TailRule::TornTail`] (the last
//!   segment at open, the fuzz target) when no valid frame starts anywhere after them: then
//!   they are a torn tail, never acknowledged.
//!
//! A walk owns no buffer of its own and allocates nothing per record: the frame is read into
//! the source's buffer and handed to the caller's visitor as a borrowed view, with its hash
//! (computed once, here). What breaks the chain is [`LogError::Corrupt`], naming the position
//! the chain expected, the segment file and the byte offset.

use std::path::Path;

use crate::error::LogError;
use crate::frame::{FrameError, FrameView};
use crate::segment::Step;

/// Where frames come from: a segment file read in order ([`FrameReader`](crate::segment::FrameReader))
/// or bytes in memory (the fuzz target's).
pub(crate) trait FrameSource {
    /// The next frame, the clean end of the source, or bad bytes (the source's offset then
    /// stays at them).
    fn next_frame(&mut self) -> Result<Step<'_>, LogError>;
    /// Offset of the next frame to read.
    fn offset_bytes(&self) -> u64;
    /// The segment file these bytes are (named in errors).
    fn path(&self) -> &Path;
    /// Whether a valid frame at `min_position` or later starts anywhere after the byte at
    /// `offset_bytes`: what tells a torn tail from damage in the middle.
    fn valid_frame_after(&self, offset_bytes: u64, min_position: u64) -> Result<bool, LogError>;
}

/// What the next frame must be: the chain's state between two frames. Small and `Copy`, so a
/// walk hands it on from one segment to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    /// The position the next record must hold; `None` after a record at `u64::MAX` (no record
    /// can follow it).
    next_position: Option<u64>,
    /// The hash the next record must name as its previous one; `None`: not known (a read that
    /// starts in the middle of the log takes the first record's).
    prev_hash: Option<[u8; 32]>,
    /// False: the hash chain is checked by the records' holders (`Log::check_link`).
    check_links: bool,
    /// A record at or past this position is damage (`verify`: the durable end).
    end: Option<u64>,
}

impl Chain {
    /// The chain before the record at `position`, whose previous-hash must be `prev_hash`.
    pub fn at(position: u64, prev_hash: [u8; 32]) -> Chain {
        Chain {
            next_position: Some(position),
            prev_hash: Some(prev_hash),
            check_links: true,
            end: None,
        }
    }

    /// The chain before the record at `position`, the hash before it not known: the first
    /// record read is taken as linked, and the chain is checked from it on.
    pub fn at_unknown_hash(position: u64) -> Chain {
        Chain {
            prev_hash: None,
            ..Chain::at(position, [0; 32])
        }
    }

    /// The same chain, without the hash check or the hashing (see `Log::check_link`).
    pub fn deferring_links(self) -> Chain {
        Chain {
            check_links: false,
            prev_hash: None,
            ..self
        }
    }

    /// The same chain, refusing any record at or past `end`.
    pub fn ending_at(self, end: u64) -> Chain {
        Chain {
            end: Some(end),
            ..self
        }
    }

    /// The position the next record must hold (`u64::MAX` if none can follow).
    pub fn next_position(&self) -> u64 {
        self.next_position.unwrap_or(u64::MAX)
    }

    /// The hash of the last record walked (with links checked), if known.
    pub fn last_hash(&self) -> Option<[u8; 32]> {
        self.prev_hash
    }

    /// Checks that `view` continues the chain and moves past it. Returns its hash (zeros when
    /// the links are deferred), or why it does not continue the chain.
    #[inline]
    fn link(&mut self, view: &FrameView<'_>) -> Result<[u8; 32], String> {
        let expected = self.next_position();
        if let Some(end) = self.end.filter(|&end| expected >= end) {
            return Err(format!("a record lies beyond the durable end {end}"));
        }
        if Some(view.position) != self.next_position {
            return Err(format!(
                "a valid frame holds position {} where position {expected} was expected",
                view.position
            ));
        }
        let hash = if self.check_links {
            if self.prev_hash.is_some_and(|h| h != view.prev_hash) {
                return Err(
                    "the record's previous-hash does not match the hash of the record before it"
                        .into(),
                );
            }
            let hash = view.hash();
            self.prev_hash = Some(hash);
            hash
        } else {
            [0; 32]
        };
        self.next_position = view.position.checked_add(1);
        Ok(hash)
    }
}

/// What a walk does with bytes that are not a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TailRule {
    /// They are damage wherever they are (everything read is durable: `verify`, reads, a
    /// segment other than the last at open).
    Damage,
    /// With no valid frame after them they are a torn tail (the last segment at open);
    /// followed by a valid frame, damage.
    TornTail,
}

/// A record that continues the chain, as handed to a walk's visitor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Linked<'a> {
    pub view: FrameView<'a>,
    /// Where the frame starts in its segment.
    pub offset_bytes: u64,
    /// The record's hash (zeros when the links are deferred).
    pub hash: [u8; 32],
}

/// One step of a walk.
#[derive(Debug)]
pub(crate) enum Walked<R> {
    /// A record that continues the chain: what the visitor made of it.
    Record(R),
    /// The source ended at a frame boundary.
    End,
    /// Bad bytes at `offset_bytes` with nothing valid after them, under [`TailRule::TornTail`].
    TornTail {
        offset_bytes: u64,
        error: FrameError,
    },
}

/// A walk of one source of frames, continuing a [`Chain`].
pub(crate) struct Walk<S> {
    source: S,
    chain: Chain,
    tail: TailRule,
    /// Records walked since the last end-of-unit flag (in this source).
    open_unit_records: u64,
    /// Offset just past the last end-of-unit frame walked (the start offset before one).
    units_end_offset: u64,
}

impl<S: FrameSource> Walk<S> {
    /// Walks `source` from where it stands (inside a segment), the chain at `chain`.
    pub fn resume(source: S, chain: Chain, tail: TailRule) -> Walk<S> {
        let units_end_offset = source.offset_bytes();
        Walk {
            source,
            chain,
            tail,
            open_unit_records: 0,
            units_end_offset,
        }
    }

    /// Walks a segment from its first byte: its name, `first_position`, must be the position
    /// the chain stands at.
    pub fn segment(
        source: S,
        first_position: u64,
        chain: Chain,
        tail: TailRule,
    ) -> Result<Walk<S>, LogError> {
        let walk = Walk::resume(source, chain, tail);
        let expected = chain.next_position();
        if first_position != expected {
            return Err(walk.corrupt(
                0,
                format!(
                    "the segment's file name says it starts at position {first_position}, \
                     but the segments before it end at position {expected}"
                ),
            ));
        }
        Ok(walk)
    }

    /// Reads the next frame and checks that it continues the chain; a record that does is
    /// handed to `visit` (borrowed from the source's buffer) and what it returns is the step.
    #[inline]
    pub fn step<R>(&mut self, visit: impl FnOnce(Linked<'_>) -> R) -> Result<Walked<R>, LogError> {
        let expected = self.chain.next_position();
        let (reason, offset_bytes) = match self.source.next_frame()? {
            Step::End => return Ok(Walked::End),
            Step::Frame { view, offset_bytes } => match self.chain.link(&view) {
                Ok(hash) => {
                    if view.is_unit_end() {
                        self.open_unit_records = 0;
                        self.units_end_offset = offset_bytes + view.frame_bytes();
                    } else {
                        self.open_unit_records += 1;
                    }
                    return Ok(Walked::Record(visit(Linked {
                        view,
                        offset_bytes,
                        hash,
                    })));
                }
                Err(reason) => (reason, offset_bytes),
            },
            Step::Bad {
                offset_bytes,
                error,
            } => match self.tail {
                TailRule::Damage => (error.to_string(), offset_bytes),
                TailRule::TornTail => {
                    if !self.source.valid_frame_after(offset_bytes, expected)? {
                        return Ok(Walked::TornTail {
                            offset_bytes,
                            error,
                        });
                    }
                    (
                        format!("{error}, and valid records follow it"),
                        offset_bytes,
                    )
                }
            },
        };
        Err(self.corrupt(offset_bytes, reason))
    }

    /// At the end of the source: refuses a segment that ends inside an atomic unit.
    pub fn check_units_closed(&self) -> Result<(), LogError> {
        if self.open_unit_records == 0 {
            return Ok(());
        }
        Err(self.corrupt(
            self.source.offset_bytes(),
            "the segment ends inside an atomic unit (a record without the end-of-unit flag)".into(),
        ))
    }

    /// At the end of the source: no segment follows it, though the chain goes on.
    pub fn no_next_segment(&self) -> LogError {
        self.corrupt(
            self.source.offset_bytes(),
            "the segment ends and no segment starts at this position".into(),
        )
    }

    /// Damage where the chain stands, at `offset_bytes` of this source.
    fn corrupt(&self, offset_bytes: u64, reason: String) -> LogError {
        LogError::Corrupt {
            position: self.chain.next_position(),
            segment: self.source.path().to_path_buf(),
            offset: offset_bytes,
            reason,
        }
    }

    /// Where the chain stands.
    pub fn chain(&self) -> Chain {
        self.chain
    }

    /// Records walked since the last end-of-unit flag of this source.
    pub fn open_unit_records(&self) -> u64 {
        self.open_unit_records
    }

    /// Offset just past the last complete unit walked in this source.
    pub fn units_end_offset(&self) -> u64 {
        self.units_end_offset
    }

    /// Offset of the next frame to read.
    pub fn offset_bytes(&self) -> u64 {
        self.source.offset_bytes()
    }

    /// The segment file walked.
    pub fn path(&self) -> &Path {
        self.source.path()
    }
}
