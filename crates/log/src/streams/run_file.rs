//! The stream index's run files (`{from:020}-{to:020}.run`): the entry layout on top of the
//! shared sorted-run machinery (`crate::sorted_run`).
//!
//! ```text
//! entries (32 bytes each: hash, version, position, offset; u64 LE; sorted by hash, version)
//! trailer: fences (the hash of every 128th entry, u64 LE) · sparse points (position,
//!          segment, offset; u64 LE) · footer: magic GJSIDX02 · from · to · entry count ·
//!          sparse count (u64 LE) · index meta · crc32 of the trailer
//! ```
//!
//! Invariant: a [`Run`] is only made from a file whose trailer passed its CRC, whose footer
//! matches its name and whose length is what the footer's counts say. Entries carry no CRC:
//! every entry found is confirmed against the record it points at.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::Entry;
use crate::error::{io_err, LogError};
use crate::index::{IndexMeta, Location, META_BYTES};
use crate::sorted_run::file::{read_trailer, RunFileWriter, CRC_BYTES};
use crate::sorted_run::merge::{merge_next, SortedSource};
use crate::sorted_run::{le_u64, read_exact_at, IO_BUFFER_BYTES};

/// Bytes of one entry in a run: hash, version, position, offset (u64 LE each).
pub(crate) const ENTRY_BYTES: usize = 32;
/// A fence (the entry's hash) is kept for every this many entries of a run:
/// a lookup reads one block of this many entries (4 KiB).
pub(crate) const FENCE_EVERY_ENTRIES: u64 = 128;
/// Bytes of one sparse position point in a run: position, segment, offset.
const SPARSE_BYTES: usize = 24;

const RUN_MAGIC: [u8; 8] = *b"GJSIDX02";
const RUN_SUFFIX: &str = ".run";
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// magic, from, to, entry count, sparse count, index meta, crc32.
const FOOTER_BYTES: usize = 8 + 4 * 8 + META_BYTES + CRC_BYTES;

impl Entry {
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.hash.to_le_bytes());
        out[8..16].copy_from_slice(&self.version.to_le_bytes());
        out[16..24].copy_from_slice(&self.position.to_le_bytes());
        out[24..32].copy_from_slice(&self.offset_bytes.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Entry {
        Entry {
            hash: le_u64(bytes, 0),
            version: le_u64(bytes, 8),
            position: le_u64(bytes, 16),
            offset_bytes: le_u64(bytes, 24),
        }
    }
}

pub(crate) fn run_path(dir: &Path, from: u64, to: u64) -> PathBuf {
    dir.join(format!("{from:020}-{to:020}{RUN_SUFFIX}"))
}

pub(crate) fn parse_run_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(RUN_SUFFIX)?;
    let (from, to) = stem.split_once('-')?;
    if from.len() != 20 || to.len() != 20 {
        return None;
    }
    Some((from.parse().ok()?, to.parse().ok()?))
}

/// A run file of the chain: the entries of the positions `from..to`.
pub(crate) struct Run {
    pub path: PathBuf,
    file: File,
    pub from: u64,
    pub to: u64,
    pub entries: u64,
    fences: Vec<u64>,
    pub meta: IndexMeta,
}

/// Opens the run `from..to` at `path`. Outer error: I/O; inner error: why the run cannot
/// be used (it is then deleted and its records indexed again).
pub(crate) fn load_run(path: &Path, from: u64, to: u64) -> Result<Result<Run, String>, LogError> {
    let locate = |footer: &[u8], len: u64| {
        let (f_from, f_to, entries, sparse_count) = (
            le_u64(footer, 8),
            le_u64(footer, 16),
            le_u64(footer, 24),
            le_u64(footer, 32),
        );
        let meta =
            IndexMeta::decode(&footer[40..40 + META_BYTES]).ok_or("has an unknown meta layout")?;
        if f_from != from || f_to != to || to <= from || meta.next_position != to {
            return Err("has a footer that does not match the file name");
        }
        let fence_count = entries.div_ceil(FENCE_EVERY_ENTRIES);
        let expected_len = entries
            .checked_mul(ENTRY_BYTES as u64)
            .and_then(|b| b.checked_add(fence_count.checked_mul(8)?))
            .and_then(|b| b.checked_add(sparse_count.checked_mul(SPARSE_BYTES as u64)?))
            .and_then(|b| b.checked_add(FOOTER_BYTES as u64));
        if expected_len != Some(len) || entries < to - from {
            return Err("does not have the length its footer says");
        }
        Ok((entries * ENTRY_BYTES as u64, (entries, fence_count, meta)))
    };
    let trailer = match read_trailer(path, FOOTER_BYTES, &RUN_MAGIC, locate)? {
        Ok(trailer) => trailer,
        Err(why) => return Ok(Err(why)),
    };
    let (entries, fence_count, meta) = trailer.footer;
    let fences = trailer.bytes[..fence_count as usize * 8]
        .chunks_exact(8)
        .map(|c| le_u64(c, 0))
        .collect();
    Ok(Ok(Run {
        path: path.to_path_buf(),
        file: trailer.file,
        from,
        to,
        entries,
        fences,
        meta,
    }))
}

/// The sparse position points a run holds (read again from its trailer).
pub(crate) fn sparse_of_run(run: &Run) -> Result<Vec<Location>, LogError> {
    let len = run
        .file
        .metadata()
        .map_err(|e| io_err("reading metadata of index run", &run.path, e))?
        .len();
    let start = run.entries * ENTRY_BYTES as u64 + run.fences.len() as u64 * 8;
    let mut bytes = vec![0u8; (len - start) as usize - FOOTER_BYTES];
    read_exact_at(&run.file, &mut bytes, start)
        .map_err(|e| io_err("reading index run", &run.path, e))?;
    Ok(bytes
        .chunks_exact(SPARSE_BYTES)
        .map(|c| Location {
            position: le_u64(c, 0),
            segment: le_u64(c, 8),
            offset_bytes: le_u64(c, 16),
        })
        .collect())
}

/// Writes a run file from entries sorted by (hash, version) and returns it (synced,
/// renamed into place).
pub(crate) fn write_run(
    dir: &Path,
    from: u64,
    to: u64,
    entries: &mut dyn Iterator<Item = Result<Entry, LogError>>,
    sparse: &[Location],
    meta: &IndexMeta,
) -> Result<Run, LogError> {
    let path = run_path(dir, from, to);
    let tmp = path.with_extension(&TMP_SUFFIX[1..]);
    let mut out = RunFileWriter::create(tmp, path.clone())?;
    let mut fences = Vec::new();
    let mut count = 0u64;
    let mut buf = [0u8; ENTRY_BYTES];
    let mut previous: Option<(u64, u64)> = None;
    for entry in entries {
        let entry = entry?;
        debug_assert!(previous.is_none_or(|p| p <= (entry.hash, entry.version)));
        previous = Some((entry.hash, entry.version));
        if count.is_multiple_of(FENCE_EVERY_ENTRIES) {
            fences.push(entry.hash);
        }
        entry.encode(&mut buf);
        out.write(&buf)?;
        count += 1;
    }
    let mut trailer =
        Vec::with_capacity(fences.len() * 8 + sparse.len() * SPARSE_BYTES + FOOTER_BYTES);
    for fence in &fences {
        trailer.extend_from_slice(&fence.to_le_bytes());
    }
    for point in sparse {
        trailer.extend_from_slice(&point.position.to_le_bytes());
        trailer.extend_from_slice(&point.segment.to_le_bytes());
        trailer.extend_from_slice(&point.offset_bytes.to_le_bytes());
    }
    trailer.extend_from_slice(&RUN_MAGIC);
    for n in [from, to, count, sparse.len() as u64] {
        trailer.extend_from_slice(&n.to_le_bytes());
    }
    trailer.extend_from_slice(&meta.encode());
    let (file, _) = out.finish(trailer)?;
    Ok(Run {
        path,
        file,
        from,
        to,
        entries: count,
        fences,
        meta: *meta,
    })
}

/// Reads a run's entries in order.
struct RunReader<'a> {
    run: &'a Run,
    reader: BufReader<File>,
    left: u64,
    current: Option<Entry>,
    /// The current entry's key: (hash, version, position), unique in a log.
    key: (u64, u64, u64),
}

impl<'a> RunReader<'a> {
    fn new(run: &'a Run) -> Result<Self, LogError> {
        let file = crate::files::open_read(&run.path, "opening index run")?;
        let mut reader = RunReader {
            run,
            reader: BufReader::with_capacity(IO_BUFFER_BYTES, file),
            left: run.entries,
            current: None,
            key: (0, 0, 0),
        };
        reader.advance()?;
        Ok(reader)
    }
}

impl SortedSource for RunReader<'_> {
    type Key = (u64, u64, u64);

    #[inline]
    fn key(&self) -> Option<&(u64, u64, u64)> {
        self.current.is_some().then_some(&self.key)
    }

    #[inline]
    fn advance(&mut self) -> Result<(), LogError> {
        if self.left == 0 {
            self.current = None;
            return Ok(());
        }
        let mut buf = [0u8; ENTRY_BYTES];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| io_err("reading index run", &self.run.path, e))?;
        self.left -= 1;
        let entry = Entry::decode(&buf);
        self.key = (entry.hash, entry.version, entry.position);
        self.current = Some(entry);
        Ok(())
    }
}

/// Writes the entries of two consecutive runs as one (`a.from..b.to`). Entries of the two
/// never share a key (their positions differ), so the merge keeps every entry.
pub(crate) fn merge_runs(
    dir: &Path,
    a: &Run,
    b: &Run,
    sparse: &[Location],
) -> Result<Run, LogError> {
    let mut readers = [RunReader::new(a)?, RunReader::new(b)?];
    let mut merged = std::iter::from_fn(|| {
        let next = match merge_next(&mut readers) {
            Ok(next) => next?,
            Err(e) => return Some(Err(e)),
        };
        let entry = readers[next]
            .current
            .expect("a source with a key has an entry");
        Some(readers[next].advance().map(|()| entry))
    });
    let first_sparse = sparse.partition_point(|p| p.position < a.from);
    let end_sparse = sparse.partition_point(|p| p.position < b.to);
    write_run(
        dir,
        a.from,
        b.to,
        &mut merged,
        &sparse[first_sparse..end_sparse],
        &b.meta,
    )
}

impl Run {
    /// Entries `first..end` of the run.
    pub(crate) fn read_entries(&self, first: u64, end: u64) -> Result<Vec<Entry>, LogError> {
        let mut bytes = vec![0u8; ((end - first) as usize) * ENTRY_BYTES];
        read_exact_at(&self.file, &mut bytes, first * ENTRY_BYTES as u64)
            .map_err(|e| io_err("reading index run", &self.path, e))?;
        Ok(bytes.chunks_exact(ENTRY_BYTES).map(Entry::decode).collect())
    }

    /// The blocks (of `FENCE_EVERY_ENTRIES`) that can hold entries of `hash`,
    /// as an entry range; empty if none can.
    pub(crate) fn candidate_range(&self, hash: u64) -> (u64, u64) {
        let upto = self.fences.partition_point(|&f| f <= hash);
        if upto == 0 {
            return (0, 0);
        }
        let first_block = self.fences.partition_point(|&f| f < hash).saturating_sub(1);
        let first = first_block as u64 * FENCE_EVERY_ENTRIES;
        let end = (upto as u64 * FENCE_EVERY_ENTRIES).min(self.entries);
        (first, end)
    }

    /// Entries of `hash` in version order.
    pub(crate) fn entries_of(&self, hash: u64) -> Result<Vec<Entry>, LogError> {
        let (first, end) = self.candidate_range(hash);
        let mut out = Vec::new();
        let mut at = first;
        while at < end {
            let chunk_end = (at + 64 * FENCE_EVERY_ENTRIES).min(end);
            out.extend(
                self.read_entries(at, chunk_end)?
                    .into_iter()
                    .filter(|e| e.hash == hash),
            );
            at = chunk_end;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_names_parse() {
        let entry = Entry {
            hash: 1,
            version: 2,
            position: 3,
            offset_bytes: 4,
        };
        let mut buf = [0u8; ENTRY_BYTES];
        entry.encode(&mut buf);
        assert_eq!(Entry::decode(&buf), entry);
        let path = run_path(Path::new("/x"), 5, 17);
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(parse_run_name(name), Some((5, 17)));
        assert_eq!(parse_run_name("5-17.run"), None);
    }
}
