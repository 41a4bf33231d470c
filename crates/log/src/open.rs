//! Opening a log: the lock, the quarantine marker, the stream index and the sled database
//! (sled backend), the recovery scan (`recovery`), the segment written to from now on (cut
//! back to its complete units), the projection store, and the durable end published for
//! readers (`durable_end`, after an `fdatasync` of the last segment). The read-only open beside
//! a writer is `reader`'s.
//!
//! Invariants as the code holds them: one `Log` per directory (an exclusive lock on
//! `DIR/LOCK`, held for the `Log`'s life); a quarantined log is never opened to serve
//! (`OpenMode::Serve` refuses while `DIR/QUARANTINE` exists); bytes are cut from the last
//! segment only past its last complete unit, as the recovery scan found it; clearing a
//! quarantine never cuts the quarantined record away.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::durable_end::Publisher;
use crate::error::io_err;
use crate::files;
use crate::index::IndexMeta;
use crate::quarantine::{self, remember_damage, Quarantine};
use crate::recovery::{self, Recovered, ScanTo};
use crate::segment;
use crate::streams::{StreamIndex, StreamTable};
use crate::syncer::Syncer;
use crate::{kv, sync_dir, Kv, Log, LogError, LogOptions, OpenReport, ProjectionBackend};

/// sled's page cache for the projection store.
const SLED_CACHE_BYTES: u64 = 128 * 1024 * 1024;
/// The sled tree that held the stream index up to index format 1; dropped at open.
const OLD_INDEX_TREE: &str = "stream_index";
/// The stream index's run files, inside the sled directory so that deleting
/// `DIR/index` drops the whole index.
pub(crate) const STREAMS_DIR: &str = "streams";
/// The segments, in the log's directory.
pub(crate) const SEGMENTS_DIR: &str = "segments";
/// What can be rebuilt (stream index, projections, sled), in the log's directory.
pub(crate) const INDEX_DIR: &str = "index";
pub(crate) const KV_TREE: &str = "kv";
/// The projection store's run files (runs backend), inside `DIR/index` too.
pub(crate) const PROJECTIONS_DIR: &str = "projections";

type Trees = (sled::Db, sled::Tree);

fn try_open_index(path: &Path) -> Result<Trees, String> {
    let opened = std::panic::catch_unwind(|| -> sled::Result<Trees> {
        // sled's page cache defaults to 1 GiB; the projections' working set is the ledger's
        // own cache, so sled keeps a smaller one.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(SLED_CACHE_BYTES)
            .open()?;
        if db
            .tree_names()
            .iter()
            .any(|n| n == OLD_INDEX_TREE.as_bytes())
        {
            db.drop_tree(OLD_INDEX_TREE)?;
        }
        let kv = db.open_tree(KV_TREE)?;
        Ok((db, kv))
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

/// How `open` treats the quarantine marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenMode {
    /// Refuse while a marker exists; damage found is remembered (the earliest position wins).
    Serve,
    /// `clear_quarantine`: ignore the marker, but refuse (and rewrite the marker with what is
    /// found now) if the complete records would end at or before `records_min` records, so
    /// that no record acknowledged before the damage is cut away as a torn tail.
    Clearing { records_min: u64 },
}

impl Log {
    /// Whether `dir` holds a log: its `segments` directory is there (every open creates it
    /// before anything else is written in `dir`). Creates nothing; a missing `dir` holds none.
    /// For callers that must not create a log where they expected one (a mistyped path).
    pub fn exists_in(dir: &Path) -> Result<bool, LogError> {
        let segments_dir = dir.join(SEGMENTS_DIR);
        match std::fs::symlink_metadata(&segments_dir) {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(io_err("looking for", &segments_dir, e)),
        }
    }

    /// Opens (creating if needed) the log in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Log, LogError> {
        Log::open_with(dir, LogOptions::default())
    }

    /// Opens (creating if needed) the log in `dir`: takes the lock, recovers
    /// the tail, brings the index up to date. See the crate documentation.
    ///
    /// Refuses with [`LogError::Quarantined`] while the quarantine marker
    /// `DIR/QUARANTINE` exists (a damaged record was found in the middle of
    /// the log; see [`Log::clear_quarantine`]). Damage found by the recovery
    /// scan is returned as [`LogError::Corrupt`] and quarantines the log.
    pub fn open_with(dir: &Path, options: LogOptions) -> Result<Log, LogError> {
        Log::open_inner(dir, options, OpenMode::Serve)
    }

    /// Removes the quarantine marker after checking that the log is whole
    /// again: opens the log (recovering a torn tail as any open does, but
    /// refusing to cut away the quarantined record or anything before it),
    /// then verifies every record from position 0 as [`Log::verify`] does.
    /// Returns what the removed marker said (`None` if the log was not
    /// quarantined, or its marker could not be read).
    ///
    /// If the log still fails, the marker is rewritten to name the first
    /// damaged record found now, and the error (`Corrupt`) is returned; the
    /// log stays quarantined. Takes the log's lock like `open`: no other
    /// process may have the log open.
    pub fn clear_quarantine(dir: &Path) -> Result<Option<Quarantine>, LogError> {
        Log::clear_quarantine_with(dir, LogOptions::default())
    }

    /// As [`clear_quarantine`](Log::clear_quarantine), with `options` (whether to wait for
    /// another writer's lock, among them).
    pub fn clear_quarantine_with(
        dir: &Path,
        options: LogOptions,
    ) -> Result<Option<Quarantine>, LogError> {
        let marker = match quarantine::read(dir)? {
            None => return Ok(None),
            Some(marker) => marker,
        };
        let records_min = marker.as_ref().map_or(0, |q| q.position.saturating_add(1));
        let log = Log::open_inner(dir, options, OpenMode::Clearing { records_min })?;
        log.verify_records(&mut |_| {})
            .map_err(|e| remember_damage(dir, e, "clear_quarantine", true))?;
        quarantine::remove(dir)?;
        log.close()?;
        Ok(marker.ok())
    }

    fn open_inner(dir: &Path, options: LogOptions, mode: OpenMode) -> Result<Log, LogError> {
        if options.segment_bytes_max == 0 {
            return Err(LogError::InvalidInput(
                "segment_bytes_max must be at least 1".into(),
            ));
        }
        let lock = lock_dir(dir, options.lock_wait)?;
        if mode == OpenMode::Serve {
            if let Some(marker) = quarantine::read(dir)? {
                return Err(quarantine::refusal(dir, marker));
            }
        }
        let (found_by, overwrite) = match mode {
            OpenMode::Serve => ("open", false),
            OpenMode::Clearing { .. } => ("clear_quarantine", true),
        };
        let remember = |error: LogError| remember_damage(dir, error, found_by, overwrite);
        let segments_dir = dir.join(SEGMENTS_DIR);
        files::ensure_dir(&segments_dir, "creating segments directory")?;
        let index_dir = dir.join(INDEX_DIR);
        // sled opens its own files in `index`: none of them may be a link either.
        files::ensure_dir(&index_dir, "creating index directory")?;
        files::refuse_links_in(&index_dir)?;
        // The runs backend never opens sled: its open is what that backend saves.
        let (sled_store, index_reopened) = match options.projections {
            ProjectionBackend::Sled => {
                let ((db, kv_tree), reopened) = open_index(&index_dir)?;
                (Some((db, kv_tree)), reopened)
            }
            ProjectionBackend::Runs => (None, None),
        };
        let mut segments = segment::list_segments(&segments_dir)?;
        let mut report = OpenReport {
            index_rebuilt: index_reopened,
            ..OpenReport::default()
        };

        let (stream_index, streams, recovered) =
            open_stream_index(&index_dir, &segments, &segments_dir, &mut report)
                .map_err(remember)?;
        check_clearing(mode, &recovered, &segments, &segments_dir).map_err(remember)?;
        let committed = recovered.committed;

        let writer = open_writer(
            &segments_dir,
            &mut segments,
            recovered.last_segment_end,
            &mut report,
        )?;
        let (db, kv) = open_kv(sled_store, &index_dir, committed.next_position, &mut report)?;
        // What recovery kept may be a killed writer's bytes not yet synced: synced now, before
        // the durable end names them for readers.
        writer
            .file
            .sync_data()
            .map_err(|e| io_err("syncing the last segment", &segments_dir, e))?;
        let publisher = Publisher::open(dir)?;
        publisher.publish_or_err(&committed)?;
        Ok(Opened {
            dir,
            options,
            db,
            stream_index,
            streams,
            kv,
            segments,
            writer: Some(writer),
            committed,
            publisher: Some(publisher),
            report,
            lock: Some(lock),
        }
        .into_log())
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
}

/// Creates `dir` and takes its lock (`DIR/LOCK`), held as long as the returned file is;
/// waits for it if `wait`, else refuses at once with `Locked` while another writer holds it.
/// The directory itself may be reached through a link the operator made; a link inside it is
/// refused before anything is opened there.
fn lock_dir(dir: &Path, wait: bool) -> Result<File, LogError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("creating log directory", dir, e))?;
    files::refuse_links_in(dir)?;
    let lock_path = dir.join("LOCK");
    let lock = files::open(
        &lock_path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
        "opening lock file",
    )?;
    if wait {
        lock.lock()
            .map_err(|e| io_err("waiting for the lock", &lock_path, e))?;
        return Ok(lock);
    }
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Locked {
            dir: dir.to_path_buf(),
            holder: None,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err("locking", &lock_path, e)),
    }
}

/// The stream index brought level with the segments: its runs (the last one's meta checked
/// against the segments: where to continue from), then the recovery scan of the rest.
fn open_stream_index(
    index_dir: &Path,
    segments: &[u64],
    segments_dir: &Path,
    report: &mut OpenReport,
) -> Result<(StreamIndex, StreamTable, Recovered), LogError> {
    let (mut stream_index, dropped) =
        StreamIndex::open(&index_dir.join(STREAMS_DIR), &mut |meta| {
            validate_meta(meta, segments, segments_dir)
        })?;
    if let Some(reason) = dropped {
        report.index_rebuilt.get_or_insert(reason);
    }
    let meta = stream_index.runs_meta();
    let mut streams = StreamTable::default();
    let recovered = recovery::recover(
        &mut stream_index,
        Some(&mut streams),
        segments,
        segments_dir,
        (meta.unwrap_or_else(IndexMeta::empty), meta.is_some()),
        ScanTo::LastSegment { flush_runs: true },
    )?;
    report.truncated_records = recovered.truncated_records;
    if meta.is_none() && recovered.records_indexed > 0 {
        report.index_rebuilt.get_or_insert_with(|| {
            "the index did not say how far it reaches (new, deleted or cleared)".into()
        });
    }
    report.records_indexed = recovered.records_indexed;
    Ok((stream_index, streams, recovered))
}

/// When clearing a quarantine: a damaged last frame with nothing valid after it looks like a
/// torn tail, but the quarantined record must survive recovery.
fn check_clearing(
    mode: OpenMode,
    recovered: &Recovered,
    segments: &[u64],
    segments_dir: &Path,
) -> Result<(), LogError> {
    let complete_records = recovered.committed.next_position;
    let records_min = match mode {
        OpenMode::Clearing { records_min } => records_min,
        OpenMode::Serve => 0,
    };
    if complete_records >= records_min {
        return Ok(());
    }
    let last = segments.last().copied().unwrap_or(0);
    Err(LogError::Corrupt {
        position: complete_records,
        segment: segment::segment_path(segments_dir, last),
        offset: recovered.last_segment_end,
        reason: format!(
            "the log's complete records end at position {complete_records}, but the \
             quarantined record {} was there: acknowledged records from position \
             {complete_records} on are damaged or missing, and opening would cut them \
             away as if they were a torn tail",
            records_min - 1
        ),
    })
}

/// What an open found and made, to become a [`Log`].
pub(crate) struct Opened<'a> {
    pub dir: &'a Path,
    pub options: LogOptions,
    pub db: Option<sled::Db>,
    pub stream_index: StreamIndex,
    pub streams: StreamTable,
    pub kv: Kv,
    pub segments: Vec<u64>,
    /// `None`: a reader.
    pub writer: Option<Writer>,
    /// Where the durable records end.
    pub committed: IndexMeta,
    pub publisher: Option<Publisher>,
    pub report: OpenReport,
    /// `None`: a reader.
    pub lock: Option<File>,
}

impl Opened<'_> {
    pub(crate) fn into_log(self) -> Log {
        let committed = self.committed;
        let read_only = self.writer.is_none();
        let (writer, writer_segment, writer_offset_bytes) = match self.writer {
            Some(w) => (Some(w.file), w.segment, w.offset_bytes),
            None => (None, committed.segment, committed.end_offset_bytes),
        };
        Log {
            dir: self.dir.to_path_buf(),
            segments_dir: self.dir.join(SEGMENTS_DIR),
            options: self.options,
            db: self.db,
            index_dir: self.dir.join(INDEX_DIR),
            stream_index: self.stream_index,
            streams: self.streams,
            kv: Some(self.kv),
            segments: self.segments,
            writer,
            writer_segment,
            writer_offset_bytes,
            durable_end: committed.next_position,
            durable_hash: committed.last_hash,
            last_record: (committed.segment, committed.last_record_offset_bytes),
            last_record_end_bytes: committed.end_offset_bytes,
            submitted_end: committed.next_position,
            in_flight: VecDeque::new(),
            last_seq: 0,
            syncer: Syncer::new(committed.last_hash, self.publisher),
            spare_entries: Vec::new(),
            table_clear_due: false,
            staged: Vec::new(),
            staged_records: 0,
            staged_entries: Vec::new(),
            staged_last_offset: 0,
            lookup_files: std::sync::Mutex::new(Vec::new()),
            resume: std::sync::Mutex::new(None),
            handover: None,
            handed_records: 0,
            broken: None,
            quarantined: AtomicBool::new(false),
            report: self.report,
            read_only,
            _lock: self.lock,
        }
    }
}

/// The segment written to from now on.
pub(crate) struct Writer {
    file: Arc<File>,
    segment: u64,
    offset_bytes: u64,
}

/// Opens the last segment, cut back to `last_segment_end` (its complete units), or creates
/// segment 0 in an empty log.
fn open_writer(
    segments_dir: &Path,
    segments: &mut Vec<u64>,
    last_segment_end: u64,
    report: &mut OpenReport,
) -> Result<Writer, LogError> {
    let Some(&last) = segments.last() else {
        let file = segment::create_segment(segments_dir, 0)?;
        sync_dir(segments_dir)?;
        segments.push(0);
        return Ok(Writer {
            file: Arc::new(file),
            segment: 0,
            offset_bytes: 0,
        });
    };
    let path = segment::segment_path(segments_dir, last);
    // A regular file opened without following a link: only that is ever cut back.
    let mut file = files::open(
        &path,
        OpenOptions::new().read(true).write(true),
        "opening segment",
    )?;
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
    Ok(Writer {
        file: Arc::new(file),
        segment: last,
        offset_bytes: last_segment_end,
    })
}

/// Opens the projection store (the sled tree, or the run files), cleared if its checkpoint
/// lies beyond `end_position`.
fn open_kv(
    sled_store: Option<Trees>,
    index_dir: &Path,
    end_position: u64,
    report: &mut OpenReport,
) -> Result<(Option<sled::Db>, Kv), LogError> {
    let (db, kv) = match sled_store {
        Some((db, kv_tree)) => {
            let kv = Kv::sled(kv::sled_tree::SledKv::new(db.clone(), KV_TREE, kv_tree));
            (Some(db), kv)
        }
        None => {
            let (store, unusable) = kv::runs::RunsKv::open(&index_dir.join(PROJECTIONS_DIR))?;
            report.kv_cleared = unusable.is_some();
            (None, Kv::runs(store))
        }
    };
    let kv_beyond_end = match kv.checkpoint() {
        Ok(Some(checkpoint)) => checkpoint > end_position,
        Ok(None) => false,
        Err(_) => true,
    };
    if kv_beyond_end {
        kv.clear()?;
        report.kv_cleared = true;
    }
    Ok((db, kv))
}

/// Checks that the record the index meta names as its last is really there.
/// Outer error: I/O; inner error: why the meta does not match the segments.
pub(crate) fn validate_meta(
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
    let file = files::open_read(&path, "opening segment")?;
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
