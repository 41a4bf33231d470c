//! The stream index: (stream, version) → record location, kept in files of
//! this crate's own rather than in sled, so that indexing a record costs a
//! push onto a vector instead of a B-tree insert.
//!
//! * The **tail**: entries of durable records after the last run, in memory,
//!   in position order. `sync` pushes onto it; nothing is written then.
//! * **Runs** (`run_file`, on the shared `crate::sorted_run`):
//!   `DIR/index/streams/{from:020}-{to:020}.run`, each the entries of
//!   the positions `from..to` sorted by (stream hash, version), in blocks of
//!   128 entries each coded against the one before (`block`: 8.6 to 12.4 bytes an
//!   entry measured, where the fixed layout before took 32), with a fence per block (its first
//!   hash and where it starts) and the sparse position points of its range.
//!   When the tail holds [`INDEX_FLUSH_RECORDS`] entries, or the log is
//!   closed, it is written as a new run; a run is merged with the one before it
//!   while that one is at most twice its size (`sorted_run::merge::next_merge`),
//!   so a log has about log2(records / 2^20) runs.
//! * The **stream table** ([`StreamTable`]): the version (staged and durable)
//!   of every stream appended to since open, and of every stream with a record
//!   in the tail. A stream not in it is looked up in the runs, newest first.
//!
//! Streams are found by a 64-bit hash of their name ([`stream_hash`]); every
//! hit is confirmed by reading the record it points at, so two streams with
//! the same hash are told apart by their names.
//!
//! Not for: the projections (`crate::kv`), nor anything the segments do not hold.
//!
//! Invariants: the runs kept are consecutive from position 0 (each starts where
//! the one before ends) and the last one's meta checks out against the segments;
//! the tail holds exactly the durable records from `tail_from` on, in position
//! order. Everything here can be rebuilt from the segments: a run that is missing,
//! unreadable, or does not match the segments is deleted and the records it
//! covered are indexed again at open.

mod block;
mod run_file;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{io_err, LogError};
use crate::index::{IndexMeta, Location};
use crate::sorted_run::merge::next_merge;
use crate::sorted_run::{hash64, list_files, remove_file};
use run_file::{load_run, merge_runs, parse_run_name, sparse_of_run, write_run, Run, TMP_SUFFIX};

/// The tail is written as a run when it holds this many entries (40 MiB, and its map by hash).
pub(crate) const INDEX_FLUSH_RECORDS: usize = 1 << 20;
/// A sparse position point is kept at least every this many records
/// (and at the start of every segment).
pub(crate) const SPARSE_EVERY_RECORDS: u64 = 1024;
/// Above this many streams, the stream table is emptied after the tail is
/// written as a run (bounds memory; streams are then looked up in the runs).
pub(crate) const STREAM_TABLE_MAX: usize = 2_000_000;

/// The stable 64-bit hash of a stream name stored in runs (FNV-1a, then the
/// murmur3 finaliser). Changing it changes the run format.
#[inline]
pub(crate) fn stream_hash(stream: &[u8]) -> u64 {
    hash64(stream)
}

/// A `Hasher` for the stream table: a name (`[u8]`, or `str`) hashes as its
/// bytes; the length prefix (or the 0xff suffix of `str`) is ignored, so a
/// stream's table hash is its [`stream_hash`].
#[derive(Default)]
pub(crate) struct StreamHasher(u64);

impl Hasher for StreamHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 ^= stream_hash(bytes);
    }
    fn write_u8(&mut self, _: u8) {}
    fn write_usize(&mut self, _: usize) {}
    fn finish(&self) -> u64 {
        self.0
    }
}

/// One stream-index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub hash: u64,
    pub version: u64,
    pub position: u64,
    /// Byte offset of the record's frame in its segment (the segment follows
    /// from the position).
    pub offset_bytes: u64,
}

impl Entry {
    /// The sort key in runs: (hash, version), then position (unique in a log).
    fn key(&self) -> (u64, u64, u64) {
        (self.hash, self.version, self.position)
    }
}

/// A `Hasher` for keys that are [`stream_hash`]es already: the key is its own hash.
#[derive(Default)]
struct HashedKey(u64);

impl Hasher for HashedKey {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; any other key is folded in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// No earlier entry with the same hash (in [`Tail`]'s chain).
const NO_ENTRY: u32 = u32::MAX;

/// Entries a chunk of the tail holds (2 MiB of entries): the tail grows by whole chunks and
/// never moves what it holds (growing one vector of a million entries would copy 32 MiB and
/// touch twice that while the index is locked).
const TAIL_CHUNK_ENTRIES: usize = 1 << 16;

/// The entries of durable records after the last run, in position order, with a chain
/// through each hash's entries, so a stream's entries are found without scanning the tail
/// (up to [`INDEX_FLUSH_RECORDS`] entries for a writer; a reader's may grow further).
#[derive(Default)]
pub(crate) struct Tail {
    /// Entry `i` is `chunks[i / TAIL_CHUNK_ENTRIES][i % TAIL_CHUNK_ENTRIES]`, with the index
    /// of the entry before it with the same hash (or [`NO_ENTRY`]).
    chunks: Vec<Vec<(Entry, u32)>>,
    len: usize,
    /// The index of each hash's last entry.
    last: HashMap<u64, u32, BuildHasherDefault<HashedKey>>,
}

impl Tail {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, entry: Entry) {
        // A writer's tail is written as a run every 2^20 entries; a reader's (never written)
        // is bounded by its owner well below this (the server opens a fresh view past 2^21).
        let index = u32::try_from(self.len)
            .ok()
            .filter(|&i| i != NO_ENTRY)
            .expect("an index tail holds fewer than 2^32 - 1 entries");
        let previous = self.last.insert(entry.hash, index).unwrap_or(NO_ENTRY);
        if self.len.is_multiple_of(TAIL_CHUNK_ENTRIES) {
            self.chunks.push(Vec::with_capacity(TAIL_CHUNK_ENTRIES));
        }
        let chunk = self
            .chunks
            .last_mut()
            .expect("a chunk with room was pushed above");
        chunk.push((entry, previous));
        self.len += 1;
    }

    fn get(&self, index: u32) -> (Entry, u32) {
        let i = index as usize;
        self.chunks[i / TAIL_CHUNK_ENTRIES][i % TAIL_CHUNK_ENTRIES]
    }

    /// Every entry, in position order.
    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.chunks.iter().flatten().map(|&(entry, _)| entry)
    }

    /// The entries with `hash`, in position order (for one stream, version order).
    fn entries_of(&self, hash: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut at = self.last.get(&hash).copied().unwrap_or(NO_ENTRY);
        while at != NO_ENTRY {
            let (entry, previous) = self.get(at);
            out.push(entry);
            at = previous;
        }
        out.reverse();
        out
    }
}

/// Longest stream name kept inside the table's buckets (longer ones are boxed).
const INLINE_NAME_BYTES: usize = 30;

/// A stream name as a table key: short names (all of the ledger's) are kept
/// inline, so finding a stream touches only the table's own memory.
#[derive(Clone, Debug)]
enum StreamKey {
    Inline {
        len: u8,
        bytes: [u8; INLINE_NAME_BYTES],
    },
    Boxed(Box<[u8]>),
}

impl StreamKey {
    fn new(name: &[u8]) -> StreamKey {
        if name.len() <= INLINE_NAME_BYTES {
            let mut bytes = [0u8; INLINE_NAME_BYTES];
            bytes[..name.len()].copy_from_slice(name);
            StreamKey::Inline {
                len: name.len() as u8,
                bytes,
            }
        } else {
            StreamKey::Boxed(name.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            StreamKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            StreamKey::Boxed(bytes) => bytes,
        }
    }
}

impl PartialEq for StreamKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for StreamKey {}

impl std::hash::Hash for StreamKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for StreamKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// A stream's version (staged records included) and its hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub hash: u64,
    pub version: u64,
}

/// Versions of the streams appended to since open and of every stream with a
/// record in the tail (see the module documentation).
#[derive(Default)]
pub(crate) struct StreamTable {
    map: HashMap<StreamKey, Slot, BuildHasherDefault<StreamHasher>>,
}

impl StreamTable {
    pub fn get(&self, stream: &str) -> Option<Slot> {
        self.map.get(stream.as_bytes()).copied()
    }

    pub fn get_mut(&mut self, stream: &str) -> Option<&mut Slot> {
        self.map.get_mut(stream.as_bytes())
    }

    /// Sets a stream's version, adding the stream if needed; returns its slot.
    pub fn set(&mut self, stream: &str, version: u64) -> Slot {
        let slot = self
            .map
            .entry(StreamKey::new(stream.as_bytes()))
            .or_insert_with(|| Slot {
                hash: stream_hash(stream.as_bytes()),
                version,
            });
        slot.version = version;
        *slot
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn clear(&mut self) {
        self.map = HashMap::default();
    }
}

/// The runs, the tail and the sparse position points.
pub(crate) struct StreamIndex {
    dir: PathBuf,
    /// Consecutive: the first starts at 0, each starts where the one before ends.
    /// Shared with a background flush, which reads the ones it merges.
    runs: Vec<Arc<Run>>,
    /// A tail being written as a run (and merged) by a background thread; its
    /// entries are looked up here until the new run replaces them.
    flushing: Option<Flushing>,
    /// Entries of the durable records from `tail_from`, in position order.
    pub tail: Tail,
    pub tail_from: u64,
    /// Every sparse position point, ascending.
    sparse: Vec<Location>,
}

/// A background flush: the tail it writes, and the thread writing it.
struct Flushing {
    /// The flushed tail, in position order (the thread sorts a copy of its entries).
    entries: Arc<Tail>,
    thread: JoinHandle<Result<Flushed, LogError>>,
}

/// What a background flush made: `run` replaces `runs[keep..]` and the
/// flushed entries; the files of the replaced runs are deleted once it has.
struct Flushed {
    keep: usize,
    run: Run,
}

/// What a background flush needs: the runs before it (to merge), the entries,
/// the sparse points from the first run's start on, the meta of its end.
struct FlushJob {
    dir: PathBuf,
    runs: Vec<Arc<Run>>,
    entries: Arc<Tail>,
    from: u64,
    to: u64,
    sparse: Vec<Location>,
    meta: IndexMeta,
}

impl FlushJob {
    /// Sorts and writes the entries as a run, then merges it with the run
    /// before it while that one is at most twice its size. The runs merged
    /// away are left in place (the caller deletes them once it no longer
    /// reads them); a run this job wrote and then merged is deleted here.
    fn run(self) -> Result<Flushed, LogError> {
        let mut sorted: Vec<Entry> = self.entries.entries().collect();
        sorted.sort_unstable_by_key(Entry::key);
        let first_sparse = self.sparse.partition_point(|p| p.position < self.from);
        let mut run = write_run(
            &self.dir,
            self.from,
            self.to,
            &mut sorted.iter().copied().map(Ok),
            &self.sparse[first_sparse..],
            &self.meta,
        )?;
        drop(sorted);
        let mut keep = self.runs.len();
        // The stream index never caps its runs: only the newest two are ever merged.
        while keep > 0
            && next_merge(&[self.runs[keep - 1].entries, run.entries], usize::MAX).is_some()
        {
            let merged = merge_runs(&self.dir, &self.runs[keep - 1], &run, &self.sparse)?;
            let path = run.path.clone();
            drop(run);
            remove_file(&path)?;
            run = merged;
            keep -= 1;
        }
        Ok(Flushed { keep, run })
    }
}

/// Listings of the stream-index runs a reader makes before it does without them.
const LISTINGS_MAX: u32 = 16;

/// The longest chain of `candidates` from position 0, always the run reaching furthest;
/// and the runs left over.
fn chain_from_zero(mut candidates: Vec<Run>) -> (Vec<Run>, Vec<Run>) {
    candidates.sort_by_key(|r| (r.from, std::cmp::Reverse(r.to)));
    let mut runs: Vec<Run> = Vec::new();
    let mut leftovers = Vec::new();
    let mut next = 0u64;
    for run in candidates {
        if run.from == next {
            next = run.to;
            runs.push(run);
        } else {
            leftovers.push(run);
        }
    }
    (runs, leftovers)
}

/// The usable runs in `dir`, for a reader: `None` if one vanished while they were opened
/// (list again); none at all if there is no directory.
fn read_only_candidates(dir: &Path) -> Result<Option<Vec<Run>>, LogError> {
    let listed = match list_files(dir) {
        Ok(listed) => listed,
        Err(e) if crate::files::is_not_found(&e) => return Ok(Some(Vec::new())),
        Err(e) => return Err(e),
    };
    let mut candidates = Vec::new();
    for (name, path) in listed {
        let Some((from, to)) = parse_run_name(&name) else {
            continue;
        };
        match load_run(&path, from, to) {
            Ok(Ok(run)) => candidates.push(run),
            Ok(Err(_unusable)) => {}
            Err(e) if crate::files::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(candidates))
}

/// Checks a run's meta against the segments: outer error I/O, inner error
/// why the run does not match them.
pub(crate) type MetaCheck<'a> = dyn FnMut(&IndexMeta) -> Result<Result<(), String>, LogError> + 'a;

impl Drop for StreamIndex {
    fn drop(&mut self) {
        // A background flush never outlives the index (nor the log's lock).
        if let Some(flushing) = self.flushing.take() {
            let _ = flushing.thread.join();
        }
    }
}

impl StreamIndex {
    /// Opens the runs in `dir`, keeping the longest chain from position 0
    /// whose last run `validate` accepts (it checks the run's meta against
    /// the segments). Returns the index and, if runs were dropped, why.
    pub fn open(
        dir: &Path,
        validate: &mut MetaCheck<'_>,
    ) -> Result<(StreamIndex, Option<String>), LogError> {
        crate::files::ensure_dir(dir, "creating index directory")?;
        let mut candidates: Vec<Run> = Vec::new();
        let mut dropped: Option<String> = None;
        for (name, path) in list_files(dir)? {
            if name.ends_with(TMP_SUFFIX) {
                remove_file(&path)?;
                continue;
            }
            let Some((from, to)) = parse_run_name(&name) else {
                continue;
            };
            match load_run(&path, from, to)? {
                Ok(run) => candidates.push(run),
                Err(reason) => {
                    dropped
                        .get_or_insert_with(|| format!("a stream-index run is unusable: {reason}"));
                    remove_file(&path)?;
                }
            }
        }
        // The chain: from 0, always the run reaching furthest. Runs left over
        // (inputs of a merge that was interrupted) are deleted.
        let (mut runs, leftovers) = chain_from_zero(candidates);
        for run in leftovers {
            remove_file(&run.path)?;
        }
        while let Some(last) = runs.last() {
            match validate(&last.meta)? {
                Ok(()) => break,
                Err(reason) => {
                    dropped.get_or_insert(reason);
                    let last = runs.pop().expect("checked above");
                    remove_file(&last.path)?;
                }
            }
        }
        Ok((StreamIndex::of_runs(dir, runs)?, dropped))
    }

    /// Opens the runs in `dir` for a reader (a read-only log): chosen as
    /// [`open`](StreamIndex::open) chooses them, but nothing is written or deleted: a run that
    /// fails its checks is passed over, and the chain ends before a last run `validate`
    /// refuses. A run the writer's merge deleted after the listing is met by listing again,
    /// at most [`LISTINGS_MAX`] times; then the reader starts with no runs (and indexes the
    /// segments itself).
    pub fn open_read_only(
        dir: &Path,
        validate: &mut MetaCheck<'_>,
    ) -> Result<StreamIndex, LogError> {
        for _ in 0..LISTINGS_MAX {
            let Some(candidates) = read_only_candidates(dir)? else {
                continue;
            };
            let (mut runs, _leftovers) = chain_from_zero(candidates);
            while let Some(last) = runs.last() {
                match validate(&last.meta)? {
                    Ok(()) => break,
                    Err(_) => {
                        runs.pop();
                    }
                }
            }
            return StreamIndex::of_runs(dir, runs);
        }
        StreamIndex::of_runs(dir, Vec::new())
    }

    /// The index over `runs` (a chain from position 0), with an empty tail.
    fn of_runs(dir: &Path, runs: Vec<Run>) -> Result<StreamIndex, LogError> {
        let mut sparse = Vec::new();
        for run in &runs {
            sparse.extend(sparse_of_run(run)?);
        }
        let tail_from = runs.last().map_or(0, |r| r.to);
        Ok(StreamIndex {
            dir: dir.to_path_buf(),
            runs: runs.into_iter().map(Arc::new).collect(),
            flushing: None,
            tail: Tail::default(),
            tail_from,
            sparse,
        })
    }

    /// The meta of the last run (how far the runs reach), if any.
    pub fn runs_meta(&self) -> Option<IndexMeta> {
        self.runs.last().map(|r| r.meta)
    }

    /// Indexes one durable record (the next position after the tail).
    pub fn push(&mut self, entry: Entry, segment: u64) {
        debug_assert_eq!(entry.position, self.tail_from + self.tail.len() as u64);
        let sparse_due = entry.offset_bytes == 0
            || self
                .sparse
                .last()
                .is_none_or(|p| entry.position >= p.position + SPARSE_EVERY_RECORDS);
        if sparse_due {
            self.sparse.push(Location {
                position: entry.position,
                segment,
                offset_bytes: entry.offset_bytes,
            });
        }
        self.tail.push(entry);
    }

    /// The sparse position point at or before `position`, if any.
    pub fn sparse_at_or_before(&self, position: u64) -> Option<Location> {
        let after = self.sparse.partition_point(|p| p.position <= position);
        after.checked_sub(1).map(|i| self.sparse[i])
    }

    /// Writes the tail as a run whose end is described by `meta`, then merges
    /// runs while the one before the last is at most twice the last's size;
    /// returns when the runs are on disk (a background flush before it included).
    pub fn flush(&mut self, meta: IndexMeta) -> Result<(), LogError> {
        self.start_flush(meta)?;
        self.finish_flush()
    }

    /// Like [`StreamIndex::flush`], but the run is sorted, written and merged
    /// on a background thread; its entries stay readable meanwhile. A flush
    /// still running is finished first. Its errors are returned by a later
    /// `finish_flush`, `poll_flush` or `start_flush`.
    pub fn start_flush(&mut self, meta: IndexMeta) -> Result<(), LogError> {
        self.finish_flush()?;
        if self.tail.is_empty() {
            return Ok(());
        }
        let from = self.tail_from;
        let to = from + self.tail.len() as u64;
        assert_eq!(meta.next_position, to, "the meta describes the tail's end");
        let entries = Arc::new(std::mem::take(&mut self.tail));
        let first_sparse = self.runs.first().map_or(from, |r| r.from).min(from);
        let first_sparse = self.sparse.partition_point(|p| p.position < first_sparse);
        let job = FlushJob {
            dir: self.dir.clone(),
            runs: self.runs.clone(),
            entries: Arc::clone(&entries),
            from,
            to,
            sparse: self.sparse[first_sparse..].to_vec(),
            meta,
        };
        let thread = std::thread::Builder::new()
            .name("gongji-log-index".into())
            .spawn(move || job.run())
            .map_err(|e| io_err("starting a thread to write an index run in", &self.dir, e))?;
        self.flushing = Some(Flushing { entries, thread });
        self.tail_from = to;
        Ok(())
    }

    /// Whether a background flush is running (or done and not yet installed).
    pub fn is_flushing(&self) -> bool {
        self.flushing.is_some()
    }

    /// Installs a finished background flush, without waiting for one still running.
    pub fn poll_flush(&mut self) -> Result<(), LogError> {
        if self
            .flushing
            .as_ref()
            .is_some_and(|f| f.thread.is_finished())
        {
            self.finish_flush()?;
        }
        Ok(())
    }

    /// Waits for a background flush and puts its run in place of the runs it
    /// merged and of its entries.
    pub fn finish_flush(&mut self) -> Result<(), LogError> {
        let Some(flushing) = self.flushing.take() else {
            return Ok(());
        };
        let Flushed { keep, run } = flushing
            .thread
            .join()
            .map_err(|_| LogError::Index("the thread writing an index run panicked".into()))??;
        let replaced: Vec<Arc<Run>> = self.runs.drain(keep..).collect();
        self.runs.push(Arc::new(run));
        for old in replaced {
            let path = old.path.clone();
            drop(old);
            remove_file(&path)?;
        }
        Ok(())
    }
    /// The last version of the stream with `hash` in the runs (newest run
    /// first). Neither the tail nor a background flush's entries are looked
    /// at: the stream table holds every stream with an entry in them. `is_stream(entry)` says whether the record an entry points at
    /// belongs to the stream sought (false: another stream with the same hash).
    pub fn last_version_in_runs(
        &self,
        hash: u64,
        is_stream: &mut dyn FnMut(&Entry) -> Result<bool, LogError>,
    ) -> Result<Option<u64>, LogError> {
        let mut block = Vec::new();
        for run in self.runs.iter().rev() {
            let blocks = run.candidate_blocks(hash);
            if blocks.is_empty() {
                continue;
            }
            // The last block that can hold the hash holds its last entry.
            block.clear();
            run.entries_in(blocks.end - 1..blocks.end, hash, &mut block)?;
            if let Some(last) = block.last() {
                if is_stream(last)? {
                    return Ok(Some(last.version));
                }
                // Another stream shares the hash: look at every entry.
                for entry in run.entries_of(hash)?.iter().rev() {
                    if is_stream(entry)? {
                        return Ok(Some(entry.version));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Every entry with `hash`, runs first (oldest first), then the entries
    /// of a background flush, then the tail; in each, in version order.
    pub fn entries_of(&self, hash: u64) -> Result<Vec<Entry>, LogError> {
        let mut out = Vec::new();
        for run in &self.runs {
            out.extend(run.entries_of(hash)?);
        }
        if let Some(flushing) = &self.flushing {
            out.extend(flushing.entries.entries_of(hash));
        }
        out.extend(self.tail.entries_of(hash));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_hash_is_stable() {
        // Stored in run files: must never change without a new run format.
        assert_eq!(stream_hash(b"m/M000001"), stream_hash(b"m/M000001"));
        assert_ne!(stream_hash(b"m/M000001"), stream_hash(b"m/M000002"));
        let mut hasher = StreamHasher::default();
        std::hash::Hash::hash("m/M000001", &mut hasher);
        assert_eq!(hasher.finish(), stream_hash(b"m/M000001"));
        let mut hasher = StreamHasher::default();
        std::hash::Hash::hash(&StreamKey::new(b"m/M000001"), &mut hasher);
        assert_eq!(hasher.finish(), stream_hash(b"m/M000001"));
        // Pinned: stored in run files.
        assert_eq!(stream_hash(b"m/M000001"), 0x4948178c736ce352);
    }

    #[test]
    fn the_table_finds_short_and_long_names() {
        let mut table = StreamTable::default();
        let long = "x".repeat(200);
        table.set("a", 3);
        table.set(&long, 5);
        assert_eq!(table.get("a").map(|s| s.version), Some(3));
        assert_eq!(table.get(&long).map(|s| s.version), Some(5));
        assert_eq!(table.get(&long[..199]).map(|s| s.version), None);
        table.get_mut("a").expect("a").version += 1;
        assert_eq!(table.set("a", 9).version, 9);
        assert_eq!(
            table.get("a").map(|s| (s.version, s.hash)),
            Some((9, stream_hash(b"a")))
        );
        assert_eq!(table.len(), 2);
    }

    fn meta(next_position: u64) -> IndexMeta {
        IndexMeta {
            next_position,
            ..IndexMeta::empty()
        }
    }

    #[test]
    fn streams_sharing_a_hash_are_told_apart_by_the_record() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut index, _) =
            StreamIndex::open(&tmp.path().join("streams"), &mut |_| Ok(Ok(()))).expect("open");
        // Two streams with hash 7: even positions are stream A (versions
        // 1..=150), odd ones stream B (1..=150); a third stream has hash 9.
        for position in 0..300u64 {
            index.push(
                Entry {
                    hash: 7,
                    version: position / 2 + 1,
                    position,
                    offset_bytes: 0,
                },
                0,
            );
        }
        index.push(
            Entry {
                hash: 9,
                version: 1,
                position: 300,
                offset_bytes: 0,
            },
            0,
        );
        index.flush(meta(301)).expect("flush");
        let is_a = &mut |e: &Entry| Ok(e.position.is_multiple_of(2));
        assert_eq!(index.last_version_in_runs(7, is_a).expect("a"), Some(150));
        let none = &mut |_: &Entry| Ok(false);
        assert_eq!(index.last_version_in_runs(7, none).expect("c"), None);
        assert_eq!(index.entries_of(7).expect("entries").len(), 300);
        assert_eq!(index.last_version_in_runs(8, none).expect("d"), None);
    }

    #[test]
    fn the_tail_finds_a_hash_s_entries_in_position_order_through_a_flush() {
        let entry = |hash: u64, position: u64| Entry {
            hash,
            version: position + 1,
            position,
            offset_bytes: 0,
        };
        // Across chunks: more than two chunks' entries.
        let mut tail = Tail::default();
        let pushed = 2 * TAIL_CHUNK_ENTRIES as u64 + 1000;
        for position in 0..pushed {
            tail.push(entry(position % 7, position));
        }
        let of_three = tail.entries_of(3);
        assert_eq!(
            of_three.len() as u64,
            (0..pushed).filter(|p| p % 7 == 3).count() as u64
        );
        assert!(of_three.iter().all(|e| e.hash == 3));
        assert!(of_three.windows(2).all(|w| w[0].position < w[1].position));
        assert_eq!(of_three.first().map(|e| e.position), Some(3));
        assert!(tail.entries_of(7).is_empty());
        assert_eq!(tail.len() as u64, pushed);
        assert!(tail.entries().map(|e| e.position).eq(0..pushed));

        // In the index: the entries of a flush still running, then the tail's.
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut index, _) =
            StreamIndex::open(&tmp.path().join("streams"), &mut |_| Ok(Ok(()))).expect("open");
        let half = pushed / 2;
        for position in 0..half {
            index.push(entry(position % 7, position), 0);
        }
        index.start_flush(meta(half)).expect("start");
        for position in half..pushed {
            index.push(entry(position % 7, position), 0);
        }
        let found = index.entries_of(3).expect("entries");
        assert_eq!(found, of_three);
        index.finish_flush().expect("finish");
        assert_eq!(index.entries_of(3).expect("entries"), of_three);
    }

    /// Pushes `count` entries from `position` on, entry `p` for stream `(p * stride) % streams`
    /// at its next version (`versions` has one slot a stream); returns the next position.
    fn push_entries(
        index: &mut StreamIndex,
        versions: &mut [u64],
        mut position: u64,
        count: u64,
        stride: u64,
    ) -> u64 {
        let streams = versions.len() as u64;
        for _ in 0..count {
            let s = (position * stride) % streams;
            versions[s as usize] += 1;
            index.push(
                Entry {
                    hash: stream_hash(format!("s{s}").as_bytes()),
                    version: versions[s as usize],
                    position,
                    offset_bytes: position * 10,
                },
                0,
            );
            position += 1;
        }
        position
    }

    #[test]
    fn a_background_flush_keeps_its_entries_readable_and_merges() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("streams");
        let (mut index, _) = StreamIndex::open(&dir, &mut |_| Ok(Ok(()))).expect("open");
        let streams = 50u64;
        let mut versions = vec![0u64; streams as usize];
        let mut position = 0u64;
        let check = |index: &StreamIndex, versions: &[u64]| {
            for s in 0..streams {
                let entries = index
                    .entries_of(stream_hash(format!("s{s}").as_bytes()))
                    .expect("entries");
                let got: Vec<u64> = entries.iter().map(|e| e.version).collect();
                assert_eq!(got, (1..=versions[s as usize]).collect::<Vec<_>>());
            }
        };
        for round in 0..5u64 {
            position = push_entries(&mut index, &mut versions, position, 400 + round * 13, 31);
            index.start_flush(meta(position)).expect("start");
            assert!(index.tail.is_empty());
            assert_eq!(index.tail_from, position);
            // While the thread writes, the entries are found where they were.
            check(&index, &versions);
            index.poll_flush().expect("poll");
            check(&index, &versions);
        }
        index.finish_flush().expect("finish");
        assert!(!index.is_flushing());
        check(&index, &versions);
        assert!(index.runs.len() <= 3, "runs: {}", index.runs.len());
        let files = std::fs::read_dir(&dir).expect("dir").count();
        assert_eq!(files, index.runs.len(), "merged-away runs are deleted");
        drop(index);
        let (index, dropped) = StreamIndex::open(&dir, &mut |_| Ok(Ok(()))).expect("reopen");
        assert!(dropped.is_none());
        assert_eq!(index.tail_from, position);
        check(&index, &versions);
    }

    #[test]
    fn flushes_merge_and_lookups_find_every_entry() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("streams");
        let (mut index, dropped) = StreamIndex::open(&dir, &mut |_| Ok(Ok(()))).expect("open");
        assert!(dropped.is_none());
        let streams = 300u64;
        let mut versions = vec![0u64; streams as usize];
        let mut position = 0u64;
        for round in 0..6u64 {
            position = push_entries(&mut index, &mut versions, position, 500 + round * 37, 7919);
            index.flush(meta(position)).expect("flush");
        }
        assert!(index.runs.len() <= 3, "runs: {}", index.runs.len());
        for s in 0..streams {
            let hash = stream_hash(format!("s{s}").as_bytes());
            let entries = index.entries_of(hash).expect("entries");
            assert_eq!(entries.len() as u64, versions[s as usize]);
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(e.version, i as u64 + 1);
            }
            let last = index
                .last_version_in_runs(hash, &mut |_| Ok(true))
                .expect("last");
            assert_eq!(last, Some(versions[s as usize]));
        }
        let missing = stream_hash(b"nobody");
        assert_eq!(index.entries_of(missing).expect("entries"), vec![]);
        drop(index);
        let (index, dropped) = StreamIndex::open(&dir, &mut |_| Ok(Ok(()))).expect("reopen");
        assert!(dropped.is_none());
        assert_eq!(index.tail_from, position);
        assert_eq!(index.sparse_at_or_before(0).map(|p| p.position), Some(0));
    }
}
