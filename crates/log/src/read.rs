//! Reads: a stream's records at the locations the stream index gives, a stream's version, a
//! position range (streamed by `iter`), and the projection store.
//!
//! Invariants as the code holds them: reads see only records up to `durable_end` (never a
//! record in flight); a record read through the index is checked against its entry (position,
//! stream, version) and its CRC; a record that fails its CRC quarantines the log.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::index::Location;
use crate::segment;
use crate::streams::{self, Entry};
use crate::{Kv, Log, LogError, Record, RecordIter, MAX_STREAM_BYTES};

/// Segment files an index lookup keeps open (the oldest opened is closed first).
pub(crate) const LOOKUP_FILES: usize = 32;

impl Log {
    /// The segment file of `segment`, opened once and shared: readers do not
    /// wait for each other's reads, only for this lookup.
    fn lookup_file(&self, segment: u64, path: &Path) -> Result<Arc<File>, LogError> {
        let mut open = self
            .lookup_files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, file)) = open.iter().find(|(s, _)| *s == segment) {
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(crate::files::open_read(path, "opening segment")?);
        if open.len() >= LOOKUP_FILES {
            open.remove(0);
        }
        open.push((segment, Arc::clone(&file)));
        Ok(file)
    }

    /// The segment holding `position` (a durable one).
    fn segment_of(&self, position: u64) -> u64 {
        let after = self.segments.partition_point(|&s| s <= position);
        self.segments[after.saturating_sub(1)]
    }

    /// Reads the record an index entry points at, through the shared file.
    /// `Ok(None)`: the record there belongs to another stream with the same
    /// hash (the entry is not this stream's).
    fn read_entry(&self, entry: &Entry, stream: &str) -> Result<Option<Record>, LogError> {
        let segment = self.segment_of(entry.position);
        let path = segment::segment_path(&self.segments_dir, segment);
        let file = self.lookup_file(segment, &path)?;
        let mut buf = Vec::new();
        let view =
            segment::read_frame_at(&file, &path, entry.offset_bytes, &mut buf)?.map_err(|e| {
                self.remember_damage(
                    LogError::Corrupt {
                        position: entry.position,
                        segment: path.clone(),
                        offset: entry.offset_bytes,
                        reason: e.to_string(),
                    },
                    "read_stream",
                )
            })?;
        if view.position != entry.position {
            return Err(LogError::Index(format!(
                "the index says position {} is at {} offset {}, but the record there has position {}",
                entry.position,
                path.display(),
                entry.offset_bytes,
                view.position
            )));
        }
        if view.stream != stream {
            if streams::stream_hash(view.stream.as_bytes()) == entry.hash {
                return Ok(None);
            }
            return Err(LogError::Index(format!(
                "the index entry of position {} does not match the record's stream {:?}",
                entry.position, view.stream
            )));
        }
        if view.stream_version != entry.version {
            return Err(LogError::Index(format!(
                "index entry {stream:?} version {} points at position {} whose version is {}",
                entry.version, entry.position, view.stream_version
            )));
        }
        let hash = view.hash();
        Ok(Some(view.to_record(hash)))
    }

    /// The stream's durable version from the index runs (staged records and
    /// the tail are not included: every stream of the tail is in `streams`).
    pub(crate) fn indexed_version(&self, stream: &str) -> Result<u64, LogError> {
        if stream.is_empty() || stream.len() > MAX_STREAM_BYTES {
            return Ok(0);
        }
        let hash = streams::stream_hash(stream.as_bytes());
        let found = self.stream_index.last_version_in_runs(hash, &mut |entry| {
            Ok(self.read_entry(entry, stream)?.is_some())
        })?;
        Ok(found.unwrap_or(0))
    }

    /// The stream's version including staged and in-flight records (0 for a
    /// stream without records): what an expected version is checked against. A
    /// reader (which stages nothing) counts the stream's durable records, reading
    /// them: not for a hot path.
    pub fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        self.check_usable()?;
        if self.read_only {
            // A reader keeps no stream table (see `recovery`): its records say.
            return Ok(self.read_stream(stream)?.len() as u64);
        }
        match self.streams.get(stream) {
            Some(slot) => Ok(slot.version),
            None => self.indexed_version(stream),
        }
    }

    /// The durable records of a stream in version order, read directly at the
    /// locations the index gives. Records of batches in flight are not
    /// included, nor those of batches durable since the `Log` last applied
    /// what its syncer did (see [`Log::sync_start`]).
    pub fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        self.check_usable()?;
        if stream.is_empty() || stream.len() > MAX_STREAM_BYTES {
            return Ok(Vec::new());
        }
        let hash = streams::stream_hash(stream.as_bytes());
        let mut out: Vec<Record> = Vec::new();
        for entry in self.stream_index.entries_of(hash)? {
            if entry.position >= self.durable_end {
                break;
            }
            let Some(record) = self.read_entry(&entry, stream)? else {
                continue;
            };
            if record.stream_version != out.len() as u64 + 1 {
                return Err(LogError::Index(format!(
                    "the index holds version {} of stream {stream:?} after version {}",
                    record.stream_version,
                    out.len()
                )));
            }
            out.push(record);
        }
        Ok(out)
    }

    /// Durable records with `from <= position < to_exclusive`, in position
    /// order, streamed from the segments (never the whole log in memory).
    /// Ends at [`Log::durable_end`] (see [`Log::read_stream`]).
    pub fn read_range(&self, from: u64, to_exclusive: u64) -> Result<RecordIter<'_>, LogError> {
        RecordIter::new(self, from, to_exclusive.min(self.durable_end), true)
    }

    /// The projection key-value store.
    pub fn kv(&self) -> &Kv {
        self.kv
            .as_ref()
            .expect("the store is there until the log is dropped")
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
        Ok(self.stream_index.sparse_at_or_before(position))
    }
}
