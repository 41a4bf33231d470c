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
//! Beside the segments, a sled database in `DIR/index` holds only what can
//! always be rebuilt from them: the stream index (stream, version) → record
//! location, and a key-value store ([`Kv`]) in which the projection layer keeps
//! its projections and checkpoint. All storage access of the project goes
//! through this crate, so nothing else touches sled.
//!
//! **What it is not for.** It knows nothing of insurance: payloads are opaque
//! bytes and stream names opaque strings. It does not deduplicate event ids,
//! interpret timestamps, encrypt, compact or delete records, or serve more
//! than one writer: [`Log::open`] takes an exclusive lock on `DIR/LOCK` for the
//! life of the [`Log`]. It is not a general database: the [`Kv`] store is for
//! data that can be rebuilt from the log.
//!
//! # Layout on disk
//!
//! ```text
//! DIR/LOCK                                  exclusive lock of the single writer
//! DIR/segments/{first_position:020}.seg     frames, appended; roll past segment_bytes_max
//! DIR/index/                                sled: tree "stream_index", tree "kv"
//! ```
//!
//! A frame is `body_len: u32 LE | crc32(body): u32 LE | body` with
//! `body = format_version u8 (=1) | flags u8 (bit 0: last record of its unit)
//! | position u64 LE | stream_version u64 LE | event_id [16] | recorded_at_micros i64 LE
//! | prev_hash [32] | stream_len u16 LE | stream utf8 | payload_len u32 LE | payload`.
//! A record's hash is `blake3(prev_hash || body)`; the first record's
//! `prev_hash` is all zeros. A unit never spans two segments. Bounds: stream
//! names 1..=255 bytes ([`MAX_STREAM_BYTES`]), payloads up to 1 MiB
//! ([`MAX_PAYLOAD_BYTES`]), units up to 1 000 000 records ([`MAX_UNIT_RECORDS`]).
//! See `docs/log-format.md` for the full description.
//!
//! # Recovery
//!
//! [`Log::open`] continues from where the index says it got to (after checking
//! that the record it names is really there), checks checksums and the hash
//! chain of the rest, and indexes it. A torn tail of the last segment (a frame
//! cut short, bad frames at the very end, records after the last end-of-unit
//! flag) was never acknowledged and is truncated away; damage followed by valid
//! frames is reported as [`LogError::Corrupt`] and never truncated. A missing,
//! unreadable or inconsistent index is rebuilt from the segments.
//! [`Log::open_report`] says what open did.

mod error;
mod frame;
mod index;
mod iter;
mod kv;
mod segment;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use error::{ExpectedVersion, LogError};
pub use frame::{MAX_PAYLOAD_BYTES, MAX_STREAM_BYTES, MAX_UNIT_RECORDS};
pub use iter::RecordIter;
pub use kv::Kv;

use error::io_err;
use frame::{FrameFields, FRAME_HEADER_BYTES};
use index::{IndexMeta, Location, META_KEY, SPARSE_EVERY_RECORDS};
use segment::{FrameReader, Step};

/// Default size past which the log starts a new segment: 256 MiB.
pub const DEFAULT_SEGMENT_BYTES_MAX: u64 = 256 << 20;

/// Records indexed per sled batch while recovering (bounds memory on a rebuild).
const RECOVERY_BATCH_RECORDS: usize = 100_000;
/// A staged buffer larger than this is freed after a sync instead of kept for reuse.
const STAGED_KEEP_BYTES: usize = 64 << 20;

const INDEX_TREE: &str = "stream_index";
const KV_TREE: &str = "kv";

/// Options for [`Log::open_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// A sync that finds the current segment at or past this size first starts
    /// a new segment. A segment can exceed it by one sync's worth of records.
    pub segment_bytes_max: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes_max: DEFAULT_SEGMENT_BYTES_MAX,
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
        let mut frame = Vec::new();
        frame::encode_frame(
            &mut frame,
            &frame::FrameFields {
                unit_end: self.unit_end,
                position: self.position,
                stream_version: self.stream_version,
                event_id: *self.event_id.as_bytes(),
                recorded_at_micros: self.recorded_at_micros,
                prev_hash: self.prev_hash,
                stream: &self.stream,
                payload: &self.payload,
            },
        )
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
    /// end of the log (the projection layer must rebuild).
    pub kv_cleared: bool,
}

/// The event log. Single writer; see the crate documentation.
pub struct Log {
    dir: PathBuf,
    segments_dir: PathBuf,
    options: LogOptions,
    db: sled::Db,
    index: sled::Tree,
    kv: Kv,
    /// First positions of the segments, ascending; the last one is written to.
    segments: Vec<u64>,
    writer: File,
    writer_segment: u64,
    /// End of the durable bytes of the current segment.
    writer_offset_bytes: u64,
    durable_end: u64,
    durable_hash: [u8; 32],
    last_sparse_position: Option<u64>,
    /// Versions (including staged records) of streams touched since open.
    /// Cleared when staged records are discarded; it is only a cache.
    versions: HashMap<String, u64>,
    staged: Vec<u8>,
    staged_records: u64,
    staged_hash: [u8; 32],
    key_buf: Vec<u8>,
    broken: Option<String>,
    report: OpenReport,
    /// Held for the life of the Log; dropped last.
    _lock: File,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("durable_end", &self.durable_end)
            .field("staged_records", &self.staged_records)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("syncing directory", dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), LogError> {
    Ok(())
}

fn check_stream_name(stream: &str) -> Result<(), LogError> {
    if stream.is_empty() {
        return Err(LogError::InvalidInput(
            "a stream name must not be empty".into(),
        ));
    }
    if stream.len() > MAX_STREAM_BYTES {
        return Err(LogError::TooLarge {
            what: "stream name (bytes)",
            actual: stream.len() as u64,
            limit: MAX_STREAM_BYTES as u64,
        });
    }
    Ok(())
}

type Trees = (sled::Db, sled::Tree, sled::Tree);

fn try_open_index(path: &Path) -> Result<Trees, String> {
    let opened = std::panic::catch_unwind(|| -> sled::Result<Trees> {
        let db = sled::Config::new().path(path).open()?;
        let index = db.open_tree(INDEX_TREE)?;
        let kv = db.open_tree(KV_TREE)?;
        Ok((db, index, kv))
    });
    match opened {
        Ok(Ok(trees)) => Ok(trees),
        Ok(Err(e)) => Err(format!(
            "the index at {} could not be opened: {e}",
            path.display()
        )),
        Err(_) => Err(format!(
            "the index at {} could not be opened (sled panicked)",
            path.display()
        )),
    }
}

/// Opens the sled database, deleting and recreating it if it cannot be opened.
fn open_index(path: &Path) -> Result<(Trees, Option<String>), LogError> {
    match try_open_index(path) {
        Ok(trees) => Ok((trees, None)),
        Err(reason) => {
            match std::fs::remove_dir_all(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing unreadable index", path, e)),
            }
            let trees = try_open_index(path).map_err(LogError::Index)?;
            Ok((trees, Some(reason)))
        }
    }
}

/// Adds the index entries of one record to `batch`: its stream key and, when
/// due, a sparse position point.
fn index_record(
    batch: &mut sled::Batch,
    key_buf: &mut Vec<u8>,
    stream: &str,
    stream_version: u64,
    location: Location,
    last_sparse_position: &mut Option<u64>,
) {
    index::stream_key(key_buf, stream, stream_version);
    batch.insert(&key_buf[..], &location.encode()[..]);
    let sparse_due = location.offset_bytes == 0
        || last_sparse_position.is_none_or(|p| location.position >= p + SPARSE_EVERY_RECORDS);
    if sparse_due {
        batch.insert(
            &index::sparse_key(location.position)[..],
            &location.encode()[..],
        );
        *last_sparse_position = Some(location.position);
    }
}

/// Index entries of a unit not yet known to be complete.
struct PendingEntry {
    stream: String,
    stream_version: u64,
    location: Location,
}

/// State of the recovery scan.
struct Recovery<'a> {
    index: &'a sled::Tree,
    segments_dir: &'a Path,
    batch: sled::Batch,
    batch_records: usize,
    key_buf: Vec<u8>,
    /// Everything up to here is complete units.
    committed: IndexMeta,
    last_sparse_position: Option<u64>,
    pending: Vec<PendingEntry>,
    pending_hash: [u8; 32],
    records_indexed: u64,
}

impl Recovery<'_> {
    fn next_expected_position(&self) -> u64 {
        self.committed.next_position + self.pending.len() as u64
    }

    fn corrupt(&self, segment: u64, offset: u64, reason: String) -> LogError {
        LogError::Corrupt {
            position: self.next_expected_position(),
            segment: segment::segment_path(self.segments_dir, segment),
            offset,
            reason,
        }
    }

    fn commit_unit(&mut self, segment: u64, end_offset_bytes: u64) -> Result<(), LogError> {
        let mut key_buf = std::mem::take(&mut self.key_buf);
        let mut last_offset = self.committed.last_record_offset_bytes;
        for entry in self.pending.drain(..) {
            index_record(
                &mut self.batch,
                &mut key_buf,
                &entry.stream,
                entry.stream_version,
                entry.location,
                &mut self.last_sparse_position,
            );
            last_offset = entry.location.offset_bytes;
            self.committed.next_position += 1;
            self.batch_records += 1;
            self.records_indexed += 1;
        }
        self.key_buf = key_buf;
        self.committed.segment = segment;
        self.committed.end_offset_bytes = end_offset_bytes;
        self.committed.last_record_offset_bytes = last_offset;
        self.committed.last_hash = self.pending_hash;
        if self.batch_records >= RECOVERY_BATCH_RECORDS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), LogError> {
        let mut batch = std::mem::take(&mut self.batch);
        batch.insert(META_KEY, &self.committed.encode()[..]);
        self.index.apply_batch(batch)?;
        self.batch_records = 0;
        Ok(())
    }

    /// Scans one segment from `start_offset_bytes`. Returns the end of its
    /// complete units. `is_last`: damage at the end may be a torn tail.
    fn scan_segment(
        &mut self,
        segment: u64,
        start_offset_bytes: u64,
        is_last: bool,
    ) -> Result<u64, LogError> {
        let path = segment::segment_path(self.segments_dir, segment);
        if start_offset_bytes == 0 && segment != self.committed.next_position {
            return Err(self.corrupt(
                segment,
                0,
                format!(
                    "the segment's file name says it starts at position {segment}, \
                     but the segments before it end at position {}",
                    self.committed.next_position
                ),
            ));
        }
        let mut committed_end = start_offset_bytes;
        let mut reader = FrameReader::open(path.clone(), start_offset_bytes)?;
        loop {
            match reader.next_frame()? {
                Step::End => break,
                Step::Frame { view, offset_bytes } => {
                    let expected = self.next_expected_position();
                    if view.position != expected {
                        return Err(self.corrupt(
                            segment,
                            offset_bytes,
                            format!(
                                "a valid frame holds position {} where position {expected} was expected",
                                view.position
                            ),
                        ));
                    }
                    if view.prev_hash != self.pending_hash {
                        return Err(self.corrupt(
                            segment,
                            offset_bytes,
                            "the record's previous-hash does not match the hash of the record before it"
                                .into(),
                        ));
                    }
                    self.pending_hash = view.hash();
                    self.pending.push(PendingEntry {
                        stream: view.stream.to_owned(),
                        stream_version: view.stream_version,
                        location: Location {
                            position: view.position,
                            segment,
                            offset_bytes,
                        },
                    });
                    if view.is_unit_end() {
                        committed_end = offset_bytes + view.frame_bytes();
                        self.commit_unit(segment, committed_end)?;
                    }
                }
                Step::Bad {
                    offset_bytes,
                    error,
                } => {
                    if !is_last {
                        return Err(self.corrupt(segment, offset_bytes, error.to_string()));
                    }
                    let rest = segment::read_tail(&path, offset_bytes.saturating_add(1))?;
                    if segment::contains_valid_frame(&rest, self.next_expected_position()) {
                        return Err(self.corrupt(
                            segment,
                            offset_bytes,
                            format!("{error}, and valid records follow it"),
                        ));
                    }
                    break;
                }
            }
        }
        if !self.pending.is_empty() && !is_last {
            return Err(self.corrupt(
                segment,
                committed_end,
                "the segment ends inside an atomic unit (a record without the end-of-unit flag)"
                    .into(),
            ));
        }
        Ok(committed_end)
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Log, LogError> {
        Log::open_with(dir, LogOptions::default())
    }

    /// Opens (creating if needed) the log in `dir`: takes the lock, recovers
    /// the tail, brings the index up to date. See the crate documentation.
    pub fn open_with(dir: &Path, options: LogOptions) -> Result<Log, LogError> {
        if options.segment_bytes_max == 0 {
            return Err(LogError::InvalidInput(
                "segment_bytes_max must be at least 1".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_err("creating log directory", dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_err("opening lock file", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    dir: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err("locking", &lock_path, e)),
        }
        let segments_dir = dir.join("segments");
        std::fs::create_dir_all(&segments_dir)
            .map_err(|e| io_err("creating segments directory", &segments_dir, e))?;
        let ((db, index, kv_tree), index_reopened) = open_index(&dir.join("index"))?;
        let mut segments = segment::list_segments(&segments_dir)?;
        let mut report = OpenReport {
            index_rebuilt: index_reopened,
            ..OpenReport::default()
        };

        // Where to continue from: the index's meta, if it checks out.
        let meta = match index.get(META_KEY)? {
            None => None,
            Some(bytes) => match IndexMeta::decode(&bytes) {
                None => {
                    report.index_rebuilt.get_or_insert_with(|| {
                        "the index's meta record has an unknown layout".into()
                    });
                    None
                }
                Some(meta) if meta.next_position == 0 => None,
                Some(meta) => match validate_meta(&meta, &segments, &segments_dir)? {
                    Ok(()) => Some(meta),
                    Err(reason) => {
                        report.index_rebuilt.get_or_insert(reason);
                        None
                    }
                },
            },
        };
        let last_sparse_position = if meta.is_some() {
            last_sparse_position(&index)?
        } else {
            if !index.is_empty() {
                index.remove(META_KEY)?;
                index.clear()?;
            }
            None
        };
        let start = meta.unwrap_or_else(IndexMeta::empty);
        let start_index = if meta.is_some() {
            segments.partition_point(|&s| s < start.segment)
        } else {
            0
        };

        let mut recovery = Recovery {
            index: &index,
            segments_dir: &segments_dir,
            batch: sled::Batch::default(),
            batch_records: 0,
            key_buf: Vec::new(),
            committed: start,
            last_sparse_position,
            pending: Vec::new(),
            pending_hash: start.last_hash,
            records_indexed: 0,
        };
        let mut last_segment_end = start.end_offset_bytes;
        for i in start_index..segments.len() {
            let segment = segments[i];
            let start_offset = if i == start_index && meta.is_some() {
                start.end_offset_bytes
            } else {
                0
            };
            let is_last = i + 1 == segments.len();
            last_segment_end = recovery.scan_segment(segment, start_offset, is_last)?;
        }
        report.truncated_records = recovery.pending.len() as u64;
        if meta.is_none() && recovery.records_indexed > 0 {
            report.index_rebuilt.get_or_insert_with(|| {
                "the index did not say how far it reaches (new, deleted or cleared)".into()
            });
        }
        recovery.flush_batch()?;
        report.records_indexed = recovery.records_indexed;
        let committed = recovery.committed;
        let last_sparse_position = recovery.last_sparse_position;
        drop(recovery);

        // The segment written to from now on, cut back to its complete units.
        let (writer, writer_segment, writer_offset_bytes) = match segments.last() {
            Some(&last) => {
                let path = segment::segment_path(&segments_dir, last);
                let mut file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| io_err("opening segment", &path, e))?;
                let len_bytes = file
                    .metadata()
                    .map_err(|e| io_err("reading metadata of segment", &path, e))?
                    .len();
                if len_bytes > last_segment_end {
                    file.set_len(last_segment_end)
                        .and_then(|()| file.sync_all())
                        .map_err(|e| io_err("truncating torn tail of segment", &path, e))?;
                    report.truncated_bytes = len_bytes - last_segment_end;
                }
                file.seek(SeekFrom::Start(last_segment_end))
                    .map_err(|e| io_err("seeking in segment", &path, e))?;
                (file, last, last_segment_end)
            }
            None => {
                let path = segment::segment_path(&segments_dir, 0);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| io_err("creating segment", &path, e))?;
                sync_dir(&segments_dir)?;
                segments.push(0);
                (file, 0, 0)
            }
        };

        let kv = Kv::new(db.clone(), kv_tree);
        let kv_beyond_end = match kv.checkpoint() {
            Ok(Some(checkpoint)) => checkpoint > committed.next_position,
            Ok(None) => false,
            Err(_) => true,
        };
        if kv_beyond_end {
            kv.clear()?;
            report.kv_cleared = true;
        }

        Ok(Log {
            dir: dir.to_path_buf(),
            segments_dir,
            options,
            db,
            index,
            kv,
            segments,
            writer,
            writer_segment,
            writer_offset_bytes,
            durable_end: committed.next_position,
            durable_hash: committed.last_hash,
            last_sparse_position,
            versions: HashMap::new(),
            staged: Vec::new(),
            staged_records: 0,
            staged_hash: committed.last_hash,
            key_buf: Vec::new(),
            broken: None,
            report,
            _lock: lock,
        })
    }

    /// What open found and repaired.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &LogOptions {
        &self.options
    }

    fn check_usable(&self) -> Result<(), LogError> {
        match &self.broken {
            Some(reason) => Err(LogError::Broken(reason.clone())),
            None => Ok(()),
        }
    }

    /// The stream's durable version from the index (staged records not included).
    fn indexed_version(&self, stream: &str) -> Result<u64, LogError> {
        if stream.is_empty() || stream.len() > MAX_STREAM_BYTES {
            return Ok(0);
        }
        let mut prefix = Vec::with_capacity(stream.len() + 2);
        index::stream_prefix(&mut prefix, stream);
        match self.index.scan_prefix(&prefix).next_back() {
            None => Ok(0),
            Some(item) => {
                let (key, _) = item?;
                index::version_from_key(&key).ok_or_else(|| {
                    LogError::Index(format!("malformed index key for stream {stream:?}"))
                })
            }
        }
    }

    /// Makes sure `versions` holds the stream's current version.
    fn load_version(&mut self, stream: &str) -> Result<(), LogError> {
        if !self.versions.contains_key(stream) {
            let version = self.indexed_version(stream)?;
            self.versions.insert(stream.to_owned(), version);
        }
        Ok(())
    }

    /// Appends one atomic unit: all its records or none, ever.
    ///
    /// Checks every expected version against durable and staged records and
    /// refuses the whole unit on a mismatch (nothing is staged then). Assigns
    /// consecutive global positions and stream versions. The unit is staged in
    /// memory and NOT durable until [`Log::sync`] returns.
    pub fn append(
        &mut self,
        expected: &[(&str, ExpectedVersion)],
        records: &[NewRecord<'_>],
        recorded_at_micros: i64,
    ) -> Result<Appended, LogError> {
        self.check_usable()?;
        if records.is_empty() {
            return Err(LogError::InvalidInput(
                "a unit needs at least one record".into(),
            ));
        }
        if records.len() > MAX_UNIT_RECORDS {
            return Err(LogError::TooLarge {
                what: "unit (records)",
                actual: records.len() as u64,
                limit: MAX_UNIT_RECORDS as u64,
            });
        }
        for record in records {
            check_stream_name(record.stream)?;
            if record.payload.len() > MAX_PAYLOAD_BYTES {
                return Err(LogError::TooLarge {
                    what: "payload (bytes)",
                    actual: record.payload.len() as u64,
                    limit: MAX_PAYLOAD_BYTES as u64,
                });
            }
        }
        for (stream, _) in expected {
            check_stream_name(stream)?;
        }
        // Load every version first, so nothing below can fail half-way.
        for (stream, _) in expected {
            self.load_version(stream)?;
        }
        for record in records {
            self.load_version(record.stream)?;
        }
        for &(stream, expected_version) in expected {
            let actual = self.versions.get(stream).copied().unwrap_or_default();
            if !expected_version.matches(actual) {
                return Err(LogError::WrongExpectedVersion {
                    stream: stream.to_owned(),
                    expected: expected_version,
                    actual,
                });
            }
        }

        let first_position = self.end_position();
        let last_index = records.len() - 1;
        for (i, record) in records.iter().enumerate() {
            let version = self
                .versions
                .get_mut(record.stream)
                .expect("versions of all streams of the unit were loaded above");
            *version += 1;
            let fields = FrameFields {
                unit_end: i == last_index,
                position: first_position + i as u64,
                stream_version: *version,
                event_id: *record.event_id.as_bytes(),
                recorded_at_micros,
                prev_hash: self.staged_hash,
                stream: record.stream,
                payload: record.payload,
            };
            self.staged_hash = frame::encode_frame(&mut self.staged, &fields);
        }
        self.staged_records += records.len() as u64;
        Ok(Appended {
            first_position,
            last_position: first_position + last_index as u64,
        })
    }

    /// Drops every staged record (after a failed sync).
    fn discard_staged(&mut self) {
        self.staged.clear();
        self.staged_records = 0;
        self.staged_hash = self.durable_hash;
        self.versions.clear();
    }

    /// Starts a new segment if the current one is full.
    fn roll_if_needed(&mut self) -> Result<(), LogError> {
        if self.writer_offset_bytes < self.options.segment_bytes_max
            || self.writer_offset_bytes == 0
        {
            return Ok(());
        }
        let first_position = self.durable_end;
        let path = segment::segment_path(&self.segments_dir, first_position);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_err("creating segment", &path, e))?;
        // From here the new, empty segment is the current one: a valid state
        // even if syncing the directory fails below.
        self.writer = file;
        self.writer_segment = first_position;
        self.writer_offset_bytes = 0;
        self.segments.push(first_position);
        sync_dir(&self.segments_dir)
    }

    /// Group commit: writes every staged unit to the current segment with one
    /// write, `fdatasync`s it, then updates the stream index with one sled
    /// batch. Returns the durable end (number of durable records).
    ///
    /// On a write or sync error the segment is cut back to its last durable
    /// byte and the error returned; no staged record survives. If the records
    /// became durable but the index update failed, this returns `Ok` (the
    /// records are durable) and the `Log` then refuses further work with
    /// [`LogError::Broken`]; reopening re-indexes them.
    pub fn sync(&mut self) -> Result<u64, LogError> {
        self.check_usable()?;
        if self.staged_records == 0 {
            return Ok(self.durable_end);
        }
        if let Err(e) = self.roll_if_needed() {
            self.discard_staged();
            return Err(e);
        }
        let write_start = self.writer_offset_bytes;
        let written = self
            .writer
            .write_all(&self.staged)
            .and_then(|()| self.writer.sync_data());
        if let Err(e) = written {
            let path = segment::segment_path(&self.segments_dir, self.writer_segment);
            let error = io_err("writing segment", &path, e);
            let rolled_back = self
                .writer
                .set_len(write_start)
                .and_then(|()| self.writer.seek(SeekFrom::Start(write_start)))
                .and_then(|_| self.writer.sync_data());
            if let Err(e) = rolled_back {
                self.broken = Some(format!(
                    "a failed write to {} could not be cut back: {e}",
                    path.display()
                ));
            }
            self.discard_staged();
            return Err(error);
        }

        let first_position = self.durable_end;
        self.durable_end += self.staged_records;
        self.durable_hash = self.staged_hash;
        self.writer_offset_bytes += self.staged.len() as u64;
        let indexed = self.index_staged(first_position, write_start);
        self.staged.clear();
        if self.staged.capacity() > STAGED_KEEP_BYTES {
            self.staged = Vec::new();
        }
        self.staged_records = 0;
        if let Err(e) = indexed {
            self.broken = Some(format!(
                "records up to position {} are durable, but updating the index failed: {e}",
                self.durable_end
            ));
        }
        Ok(self.durable_end)
    }

    /// Indexes the just-written staged frames with one sled batch.
    fn index_staged(&mut self, first_position: u64, write_start: u64) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        let mut key_buf = std::mem::take(&mut self.key_buf);
        let mut last_sparse_position = self.last_sparse_position;
        let mut offset = 0usize;
        let mut last_record_offset = write_start;
        let mut position = first_position;
        while offset < self.staged.len() {
            let header: [u8; FRAME_HEADER_BYTES] = self.staged[offset..offset + FRAME_HEADER_BYTES]
                .try_into()
                .expect("slice has the header's length");
            let (body_len, _) =
                frame::parse_header(header).expect("staged frames were encoded by this log");
            let body_start = offset + FRAME_HEADER_BYTES;
            let view = frame::decode_body(&self.staged[body_start..body_start + body_len])
                .expect("staged frames were encoded by this log");
            debug_assert_eq!(view.position, position);
            let location = Location {
                position,
                segment: self.writer_segment,
                offset_bytes: write_start + offset as u64,
            };
            index_record(
                &mut batch,
                &mut key_buf,
                view.stream,
                view.stream_version,
                location,
                &mut last_sparse_position,
            );
            last_record_offset = location.offset_bytes;
            offset = body_start + body_len;
            position += 1;
        }
        let meta = IndexMeta {
            next_position: self.durable_end,
            segment: self.writer_segment,
            end_offset_bytes: self.writer_offset_bytes,
            last_record_offset_bytes: last_record_offset,
            last_hash: self.durable_hash,
        };
        batch.insert(META_KEY, &meta.encode()[..]);
        self.key_buf = key_buf;
        self.index.apply_batch(batch)?;
        self.last_sparse_position = last_sparse_position;
        Ok(())
    }

    /// The next position to assign (durable and staged records).
    pub fn end_position(&self) -> u64 {
        self.durable_end + self.staged_records
    }

    /// The number of durable records.
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    /// The stream's version including staged records (0 for a stream without records).
    pub fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        self.check_usable()?;
        match self.versions.get(stream) {
            Some(&version) => Ok(version),
            None => self.indexed_version(stream),
        }
    }

    /// The durable records of a stream in version order, read directly at the
    /// locations the index gives.
    pub fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        self.check_usable()?;
        if stream.is_empty() || stream.len() > MAX_STREAM_BYTES {
            return Ok(Vec::new());
        }
        let mut prefix = Vec::with_capacity(stream.len() + 2);
        index::stream_prefix(&mut prefix, stream);
        let mut out = Vec::new();
        let mut open: Option<(u64, PathBuf, File)> = None;
        let mut buf = Vec::new();
        for item in self.index.scan_prefix(&prefix) {
            let (key, value) = item?;
            let version = index::version_from_key(&key);
            let location = Location::decode(&value);
            let (Some(version), Some(location)) = (version, location) else {
                return Err(LogError::Index(format!(
                    "malformed index entry for stream {stream:?}"
                )));
            };
            if open.as_ref().is_none_or(|(s, _, _)| *s != location.segment) {
                let path = segment::segment_path(&self.segments_dir, location.segment);
                let file = File::open(&path).map_err(|e| io_err("opening segment", &path, e))?;
                open = Some((location.segment, path, file));
            }
            let (_, path, file) = open.as_ref().expect("opened just above");
            let view = segment::read_frame_at(file, path, location.offset_bytes, &mut buf)?
                .map_err(|e| LogError::Corrupt {
                    position: location.position,
                    segment: path.clone(),
                    offset: location.offset_bytes,
                    reason: e.to_string(),
                })?;
            if view.position != location.position
                || view.stream != stream
                || view.stream_version != version
            {
                return Err(LogError::Index(format!(
                    "index entry {stream:?} version {version} points at position {} but the \
                     record there is {:?} version {} at position {}",
                    location.position, view.stream, view.stream_version, view.position
                )));
            }
            let hash = view.hash();
            out.push(view.to_record(hash));
        }
        Ok(out)
    }

    /// Durable records with `from <= position < to_exclusive`, in position
    /// order, streamed from the segments (never the whole log in memory).
    pub fn read_range(&self, from: u64, to_exclusive: u64) -> Result<RecordIter<'_>, LogError> {
        RecordIter::new(self, from, to_exclusive.min(self.durable_end))
    }

    /// The projection key-value store.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// Reads every durable record from position 0, checking checksums, the
    /// hash chain, positions, segment names and unit boundaries. Calls
    /// `progress` with the number of records checked now and then and at the
    /// end. Returns the number of records, or `Corrupt` naming the first bad one.
    pub fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, LogError> {
        const PROGRESS_EVERY_RECORDS: u64 = 1 << 16;
        let mut count = 0u64;
        let mut prev_hash = [0u8; 32];
        let mut last_path = segment::segment_path(&self.segments_dir, 0);
        let mut last_offset = 0u64;
        for &segment in &self.segments {
            let path = segment::segment_path(&self.segments_dir, segment);
            let corrupt = |position: u64, offset: u64, reason: String| LogError::Corrupt {
                position,
                segment: path.clone(),
                offset,
                reason,
            };
            if segment != count {
                return Err(corrupt(
                    count,
                    0,
                    format!(
                        "the segment's file name says it starts at position {segment}, \
                         but the segments before it end at position {count}"
                    ),
                ));
            }
            let mut reader = FrameReader::open(path.clone(), 0)?;
            let mut unit_open = false;
            loop {
                match reader.next_frame()? {
                    Step::End => break,
                    Step::Bad {
                        offset_bytes,
                        error,
                    } => return Err(corrupt(count, offset_bytes, error.to_string())),
                    Step::Frame { view, offset_bytes } => {
                        if count >= self.durable_end {
                            return Err(corrupt(
                                count,
                                offset_bytes,
                                format!(
                                    "a record lies beyond the durable end {}",
                                    self.durable_end
                                ),
                            ));
                        }
                        if view.position != count {
                            return Err(corrupt(
                                count,
                                offset_bytes,
                                format!(
                                    "a valid frame holds position {} where position {count} was expected",
                                    view.position
                                ),
                            ));
                        }
                        if view.prev_hash != prev_hash {
                            return Err(corrupt(
                                count,
                                offset_bytes,
                                "the record's previous-hash does not match the hash of the record before it"
                                    .into(),
                            ));
                        }
                        prev_hash = view.hash();
                        unit_open = !view.is_unit_end();
                        count += 1;
                        if count.is_multiple_of(PROGRESS_EVERY_RECORDS) {
                            progress(count);
                        }
                    }
                }
            }
            if unit_open {
                return Err(corrupt(
                    count,
                    reader.offset_bytes(),
                    "the segment ends inside an atomic unit".into(),
                ));
            }
            last_offset = reader.offset_bytes();
            last_path = path;
        }
        if count != self.durable_end || prev_hash != self.durable_hash {
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

    /// Flushes the index and projection store and closes the log.
    pub fn close(self) -> Result<(), LogError> {
        self.db.flush()?;
        Ok(())
    }

    pub(crate) fn segments(&self) -> &[u64] {
        &self.segments
    }

    pub(crate) fn segments_dir(&self) -> &Path {
        &self.segments_dir
    }

    /// The sparse position point at or before `position`, if any.
    pub(crate) fn sparse_point_at_or_before(
        &self,
        position: u64,
    ) -> Result<Option<Location>, LogError> {
        let range = index::sparse_key(0)..=index::sparse_key(position);
        match self.index.range(range).next_back() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item?;
                Ok(Location::decode(&value))
            }
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Best effort: the index can always be rebuilt from the segments.
        let _ = self.db.flush();
    }
}

/// Position of the last sparse point in the index.
fn last_sparse_position(index: &sled::Tree) -> Result<Option<u64>, LogError> {
    let range = index::sparse_key(0)..=index::sparse_key(u64::MAX);
    match index.range(range).next_back() {
        None => Ok(None),
        Some(item) => {
            let (key, _) = item?;
            Ok(index::position_from_sparse_key(&key))
        }
    }
}

/// Checks that the record the index meta names as its last is really there.
/// Outer error: I/O; inner error: why the meta does not match the segments.
fn validate_meta(
    meta: &IndexMeta,
    segments: &[u64],
    segments_dir: &Path,
) -> Result<Result<(), String>, LogError> {
    if segments.binary_search(&meta.segment).is_err() {
        return Ok(Err(format!(
            "the index reaches into segment {} which does not exist",
            meta.segment
        )));
    }
    let path = segment::segment_path(segments_dir, meta.segment);
    let file = File::open(&path).map_err(|e| io_err("opening segment", &path, e))?;
    let mut buf = Vec::new();
    let view = match segment::read_frame_at(&file, &path, meta.last_record_offset_bytes, &mut buf)?
    {
        Ok(view) => view,
        Err(e) => {
            return Ok(Err(format!(
                "the last indexed record (position {}) is not readable at {} offset {}: {e}",
                meta.next_position - 1,
                path.display(),
                meta.last_record_offset_bytes
            )))
        }
    };
    let matches = view.position + 1 == meta.next_position
        && view.hash() == meta.last_hash
        && meta.last_record_offset_bytes + view.frame_bytes() == meta.end_offset_bytes;
    if !matches {
        return Ok(Err(format!(
            "the last indexed record (position {}) does not match the segment {}",
            meta.next_position - 1,
            path.display()
        )));
    }
    Ok(Ok(()))
}
