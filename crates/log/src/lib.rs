//! `gongji-log`: Gongji's own append-only event log.
//!
//! **What it is for.** It is the system of record. Every event the ledger ever
//! accepted is a record in a set of append-only segment files under the log's
//! directory, each record chained to the one before it by a blake3 hash, so
//! that any damage or tampering is found by [`Log::verify`]. Records are
//! appended in *atomic units* (all of a unit's records become durable together
//! or not at all) with optimistic concurrency checks on stream versions
//! ([`ExpectedVersion`]), and made durable in groups by [`Log::sync`] (one
//! write and one `fdatasync` per group).
//!
//! **Pipelined sync.** [`Log::sync_start`] hands the staged group to the log's
//! syncer threads and returns a [`SyncTicket`] at once, so the caller encodes
//! the next group while the disk works; the group is acknowledged when
//! [`SyncTicket::wait`] (from any thread) returns. A writer thread completes
//! the hash chain (blake3, off the caller's core) and writes; an fsyncer thread
//! `fdatasync`s whatever is written, so several groups waiting share one
//! `fdatasync`. Tickets resolve in order. What became durable is applied to
//! the `Log` (index entries, [`Log::durable_end`], what reads see) on its own
//! thread, at its next `&mut` call. `sync` is `sync_start` plus the wait.
//!
//! Beside the segments, `DIR/index` holds only what can always be rebuilt
//! from them: the stream index (stream, version) → record location, in run
//! files of this crate's own, and the key-value store ([`Kv`]) in which the
//! projection layer keeps its projections and checkpoint: by default sorted
//! run files of this crate's own too ([`ProjectionBackend::Runs`]), or a sled
//! tree ([`ProjectionBackend::Sled`], chosen in [`LogOptions`]). All storage
//! access of the project goes through this crate, so nothing else
//! touches sled or the index files.
//!
//! The stream index is off the durable path: once a group is durable, each
//! record's index entry is pushed onto an in-memory tail; every 2^20 records
//! the tail is sorted and written as a run on a background thread (its entries
//! stay readable meanwhile), at [`Log::close`], [`Log::flush_index`] and drop on
//! the caller's, and runs are merged so that about log2(records / 2^20)
//! remain. A crash loses at most the tail, which open re-indexes from the
//! segments. (Up to index format 1 the stream index was
//! a sled tree; at about 20 µs per sled insert it limited appends to under
//! 100 000 records a second.)
//!
//! **What it is not for.** It knows nothing of insurance: payloads are opaque
//! bytes and stream names opaque strings. It does not deduplicate event ids,
//! interpret timestamps, encrypt, compact or delete records, or serve more
//! than one writer: [`Log::open`] takes an exclusive lock on `DIR/LOCK` for the
//! life of the [`Log`] (refused at once while another holds it, or waited for
//! with [`LogOptions::lock_wait`]). Readers need no lock:
//! [`Log::open_read_only`] reads the log beside its writer, up to the durable
//! end the writer publishes in `DIR/DURABLE_END` after each `fdatasync`, and
//! writes nothing. It is not a general database: the [`Kv`] store is for
//! data that can be rebuilt from the log.
//!
//! # Layout on disk
//!
//! ```text
//! DIR/LOCK                                  exclusive lock of the single writer
//! DIR/DURABLE_END                           the writer's durable end, for readers
//! DIR/segments/{first_position:020}.seg     frames, appended; roll past segment_bytes_max
//! DIR/index/streams/{from:020}-{to:020}.run stream-index runs (sorted entries)
//! DIR/index/projections/MANIFEST            projection store (runs backend): live runs, checkpoint
//! DIR/index/projections/{seq:020}.kvrun     projection runs (sorted keys, blocks, fences)
//! DIR/index/                                sled, with the sled backend only: tree "kv"
//! DIR/tokens, DIR/access-log                the server's token file and access log (mode 0600)
//! DIR/SERVER                                `PID URL` of the server holding LOCK, while it runs
//! ```
//!
//! The last three are the service's, made and read only through [`service_files`] (by the
//! `files` rules); nothing of the log reads them, and they are never needed to recover.
//!
//! A frame is `body_len: u32 LE | crc32(body): u32 LE | body`. The log writes bodies in format 2,
//! `format_version u8 (=2) | flags u8 (bit 0: last record of its unit; bit 1: the event id is
//! the derived one, not stored) | prev_hash [32] | position varint | stream_version varint
//! | event_id [16] unless derived | recorded_at_micros i64 LE | stream_len u8 | stream utf8
//! | payload_len varint | payload`, and reads format 1 too (fixed-width fields, every event
//! id stored), which logs written before format 2 hold. A record's hash is
//! `blake3(prev_hash || the body in format 1)` whatever format stores it; the first record's
//! `prev_hash` is all zeros. A unit never spans two segments. Bounds: stream
//! names 1..=255 bytes ([`MAX_STREAM_BYTES`]), payloads up to 1 MiB
//! ([`MAX_PAYLOAD_BYTES`]), units up to 1 000 000 records ([`MAX_UNIT_RECORDS`]).
//! See `docs/log-format.md` for the full description.
//!
//! # Recovery
//!
//! [`Log::open`] continues from where the last index run says it got to (after
//! checking that the record it names is really there), checks checksums and
//! the hash chain of the rest, and indexes it. A torn tail of the last segment (a frame
//! cut short, bad frames at the very end, records after the last end-of-unit
//! flag) was never acknowledged and is truncated away; damage followed by valid
//! frames is reported as [`LogError::Corrupt`] and never truncated. A missing,
//! unreadable or inconsistent index is rebuilt from the segments.
//! [`Log::open_report`] says what open did.
//!
//! Damage in the middle is remembered: whatever finds it (a read, [`Log::verify`],
//! the recovery scan) writes the marker `DIR/QUARANTINE` ([`Quarantine`]), and
//! [`Log::open`] then refuses with [`LogError::Quarantined`] until
//! [`Log::clear_quarantine`] has verified the whole log again.
//!
//! # No links inside the directory
//!
//! The log never follows a symbolic link inside its directory: files are opened with
//! `O_NOFOLLOW` and only as regular files, temporaries are created with `O_EXCL`, only
//! regular files are deleted, and a directory or listing holding a link is refused with
//! [`LogError::Symlink`] naming it, before anything is changed. So a torn-tail cut, a
//! temporary file or a cleanup can only ever touch a file the log could have made. `DIR`'s
//! own path is the operator's: it may be a link. All of it is in the `files` module.
//!
//! # The seam for another backend
//!
//! [`DurableLog`] is what the ledger needs of the log of record, with no file
//! in it (append, sync with a [`SyncTicket`], reads with hash links, verify,
//! close); [`Log`] implements it, and a second backend (PostgreSQL) can. How a
//! backend is opened, and the projection store ([`Log::kv`]), stay outside it.
//!
//! # Modules, one job each
//!
//! `open` (lock, index, projection store, the writer's segment), `reader`
//! (the read-only open beside a writer), `durable_end` (the file the writer
//! publishes its durable end in), `recovery` (the scan at open), `chain` (the one chain walk every reader of segments
//! uses: recovery, `verify`, `iter`, the fuzz decoder), `append` (checks and
//! staging), `sync` and `syncer` (the pipeline that makes batches durable),
//! `read` and `iter` (reads), `verify`, `close`, `quarantine`, `frame` and
//! `segment` (the bytes and the files), `files` (every open, create, listing and delete
//! inside the directory, none through a link), `service_files` (the service's files in the
//! directory, by the same rules, and whether a server holds the lock), `durable` (the [`DurableLog`] seam);
//! `streams`, `index` and `kv` hold what can be rebuilt. Feature `testing`
//! adds test scaffolding that is not part of the stable API: `fuzzing` (the
//! fuzz target's decoder, which runs recovery's own scan) and
//! `Log::inject_sync_failure`.

mod append;
mod chain;
mod close;
mod durable;
mod durable_end;
mod error;
mod files;
#[cfg(test)]
mod format1_tests;
mod frame;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
mod handover;
mod index;
mod iter;
mod kv;
#[cfg(feature = "kv-compare")]
pub mod kv_compare;
mod open;
mod quarantine;
mod read;
mod reader;
mod recovery;
mod segment;
pub mod service_files;
mod sorted_run;
mod streams;
mod sync;
mod syncer;
mod varint;
mod verify;

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use append::{check_unit, check_versions};
pub use durable::{DurableLog, LinkedRecords, Records};
pub use durable_end::DURABLE_END_FILE;
pub use error::{ExpectedVersion, LogError};
pub use frame::{derived_event_id, MAX_PAYLOAD_BYTES, MAX_STREAM_BYTES, MAX_UNIT_RECORDS};
pub use handover::{Handover, HANDOVER_RECORDS_MAX};
pub use iter::{DeferredLinks, Link, RecordIter};
pub use kv::external::{KvPair, KvScan, KvWrite};
pub use kv::{Kv, ProjectionBackend, ProjectionStore};
pub use quarantine::{Quarantine, QUARANTINE_FILE};
pub use syncer::{SyncProgress, SyncTicket};

use error::io_err;
use streams::{Entry, StreamIndex, StreamTable};
use sync::InFlight;
use syncer::Syncer;

/// Default size past which the log starts a new segment: 256 MiB.
pub const DEFAULT_SEGMENT_BYTES_MAX: u64 = 256 << 20;

/// Options for [`Log::open_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// A sync that finds the current segment at or past this size first starts
    /// a new segment. A segment can exceed it by one sync's worth of records.
    pub segment_bytes_max: u64,
    /// Where [`Log::kv`] keeps the projections. Each backend has its own
    /// checkpoint, so switching between opens costs at most a rebuild.
    pub projections: ProjectionBackend,
    /// When another writer holds the lock, [`Log::open_with`] waits for it
    /// (`true`) instead of refusing at once with [`LogError::Locked`].
    pub lock_wait: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes_max: DEFAULT_SEGMENT_BYTES_MAX,
            projections: ProjectionBackend::default(),
            lock_wait: false,
        }
    }
}

/// One record to append.
#[derive(Clone, Copy, Debug)]
pub struct NewRecord<'a> {
    pub stream: &'a str,
    pub event_id: uuid::Uuid,
    pub payload: &'a [u8],
}

/// A durable record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Global position, from 0, consecutive.
    pub position: u64,
    pub stream: String,
    /// Version of the stream after this record (first record of a stream: 1).
    pub stream_version: u64,
    pub event_id: uuid::Uuid,
    pub recorded_at_micros: i64,
    pub payload: Vec<u8>,
    /// This record's hash in the chain: blake3(previous record's hash || body).
    pub hash: [u8; 32],
    /// The previous record's hash (zeros for position 0).
    pub prev_hash: [u8; 32],
    /// Whether this record ends its atomic unit.
    pub unit_end: bool,
}

impl Record {
    /// The hash this record's fields give when encoded as a frame body and chained onto
    /// `prev_hash`: equal to `hash` for a genuine record. Lets an archive be checked without the
    /// log it came from.
    pub fn recompute_hash(&self) -> [u8; 32] {
        frame::hash_of(&self.frame_fields())
    }

    /// The record's fields as a frame encodes them.
    pub(crate) fn frame_fields(&self) -> frame::FrameFields<'_> {
        frame::FrameFields {
            unit_end: self.unit_end,
            position: self.position,
            stream_version: self.stream_version,
            event_id: *self.event_id.as_bytes(),
            recorded_at_micros: self.recorded_at_micros,
            prev_hash: self.prev_hash,
            stream: &self.stream,
            payload: &self.payload,
        }
    }
}

/// Positions given to an appended unit (inclusive range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub first_position: u64,
    pub last_position: u64,
}

/// What [`Log::open`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Why the stream index was rebuilt from position 0, if it was
    /// (missing, unreadable, or not matching the segments).
    pub index_rebuilt: Option<String>,
    /// Records (re)indexed by this open.
    pub records_indexed: u64,
    /// Bytes cut from the end of the last segment (a torn, unacknowledged tail).
    pub truncated_bytes: u64,
    /// Complete, checksummed records among them that belonged to a unit whose
    /// end never reached the disk.
    pub truncated_records: u64,
    /// The projection store was cleared because its checkpoint lay beyond the
    /// end of the log, or (runs backend) because its manifest or a run failed
    /// its checks (the projection layer must rebuild).
    pub kv_cleared: bool,
}

/// The event log. Single writer; see the crate documentation.
pub struct Log {
    dir: PathBuf,
    segments_dir: PathBuf,
    options: LogOptions,
    /// The sled database (sled backend only); `None` with the runs backend,
    /// and while the log is dropped (see `settle_index`).
    db: Option<sled::Db>,
    index_dir: PathBuf,
    stream_index: StreamIndex,
    /// Versions of the streams appended to since open and of every stream
    /// with a record in the index tail.
    streams: StreamTable,
    kv: Option<Kv>,
    /// First positions of the segments, ascending; the last one is written to. A reader's
    /// end with the segment of its durable end.
    segments: Vec<u64>,
    /// The segment written to (`None`: opened read-only).
    writer: Option<Arc<File>>,
    writer_segment: u64,
    /// End of the bytes of the current segment handed to the syncer (durable
    /// or in flight).
    writer_offset_bytes: u64,
    /// Records durable and applied (index entries pushed): everything the
    /// reads see. Only ever a durable position.
    durable_end: u64,
    durable_hash: [u8; 32],
    /// Segment and offset of the last durable record (for the index meta).
    last_record: (u64, u64),
    /// End of the durable bytes in the segment of `last_record`.
    last_record_end_bytes: u64,
    /// Records handed to the syncer (durable or in flight).
    submitted_end: u64,
    /// Batches handed to the syncer and not yet applied, oldest first.
    in_flight: VecDeque<InFlight>,
    /// The seq of the last batch handed to the syncer (0: none yet).
    last_seq: u64,
    syncer: Syncer,
    /// Emptied entry vectors of applied batches, for reuse.
    spare_entries: Vec<Vec<Entry>>,
    /// The stream table is over its bound and is emptied once nothing is
    /// staged or in flight.
    table_clear_due: bool,
    staged: Vec<u8>,
    staged_records: u64,
    /// One per staged record: its index entry, with the offset relative to
    /// the start of `staged`.
    staged_entries: Vec<Entry>,
    /// Offset in `staged` of the last staged frame.
    staged_last_offset: usize,
    /// Segment files opened by index lookups (at most `read::LOOKUP_FILES`, by
    /// segment number), shared so that readers read at once, not in turn.
    lookup_files: std::sync::Mutex<Vec<(u64, std::sync::Arc<File>)>>,
    /// Where the last checked range read stopped (`iter::ResumePoint`): a read starting there
    /// goes on from it, its chain check unbroken, instead of from a sparse point before it.
    resume: std::sync::Mutex<Option<iter::ResumePoint>>,
    /// Shared with the writer or readers of this log in the same process ([`Log::share_handover`]).
    handover: Option<std::sync::Arc<Handover>>,
    /// Records a reader indexed from the handover since its open.
    handed_records: u64,
    broken: Option<String>,
    /// A damaged record was found (and the quarantine marker written) since open: `append`
    /// refuses new units.
    quarantined: AtomicBool,
    report: OpenReport,
    /// Opened by [`Log::open_read_only`]: no lock, nothing written.
    read_only: bool,
    /// Held for the life of the Log; dropped last (`None`: opened read-only).
    _lock: Option<File>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("durable_end", &self.durable_end)
            .field("submitted_end", &self.submitted_end)
            .field("in_flight", &self.in_flight.len())
            .field("staged_records", &self.staged_records)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("syncing directory", dir, e))
}

#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> Result<(), LogError> {
    Ok(())
}
