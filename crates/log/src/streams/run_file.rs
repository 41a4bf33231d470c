//! The stream index's run files (`{from:020}-{to:020}.run`): the entry layout on top of the
//! shared sorted-run machinery (`crate::sorted_run`).
//!
//! ```text
//! blocks:  the entries sorted by (hash, version, position), 128 a block, each coded against
//!          the one before as varints, a CRC-32 closing each block (`block`)
//! trailer: fences (each block's first hash and where the block starts; u64 LE) · sparse
//!          points (position, segment, offset; u64 LE) · footer: magic GJSIDX03 · from · to ·
//!          entry count · sparse count · bytes of the blocks (u64 LE) · index meta · crc32 of
//!          the trailer
//! ```
//!
//! A lookup finds the blocks that can hold a hash by a binary search in the fences (kept in
//! memory) and reads them with one positioned read: usually one block of about a kilobyte.
//!
//! Invariant: a [`Run`] is only made from a file whose trailer passed its CRC, whose footer
//! matches its name, whose length is what the footer's counts say, and whose fences tile its
//! blocks in hash order, each block as long as its entry count allows. A block's entries are
//! used only after its CRC checks, and each is still confirmed against the record it points
//! at. A run of another layout (`GJSIDX02`'s fixed 32-byte entries) has another magic and is
//! not a usable run. No bytes make this module panic.

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::block::{
    block_bytes_bounds, decode_block, decode_block_of, BlockEncoder, BLOCK_ENTRIES,
};
use super::Entry;
use crate::error::{io_err, LogError};
use crate::index::{IndexMeta, Location, META_BYTES};
use crate::sorted_run::file::{read_trailer, RunFileWriter, CRC_BYTES};
use crate::sorted_run::merge::{merge_next, SortedSource};
use crate::sorted_run::{le_u64, read_exact_at, IO_BUFFER_BYTES};

/// Bytes of one fence: the block's first hash and where the block starts in the file.
const FENCE_BYTES: usize = 16;
/// Bytes of one sparse position point in a run: position, segment, offset.
const SPARSE_BYTES: usize = 24;
/// A lookup reads at most this many blocks at a time (a stream with more entries is read in
/// several reads).
const READ_BLOCKS_MAX: usize = 64;

const RUN_MAGIC: [u8; 8] = *b"GJSIDX03";
const RUN_SUFFIX: &str = ".run";
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// magic, from, to, entry count, sparse count, bytes of the blocks, index meta, crc32.
const FOOTER_BYTES: usize = 8 + 5 * 8 + META_BYTES + CRC_BYTES;

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
    /// The first hash of each block, ascending.
    fences: Vec<u64>,
    /// Where each block starts in the file, then where the blocks end (one more than
    /// `fences`): block `i` is `block_starts[i]..block_starts[i + 1]`.
    block_starts: Vec<u64>,
    sparse_count: u64,
    pub meta: IndexMeta,
}

/// What a run's footer says.
struct Footer {
    entries: u64,
    blocks: u64,
    sparse_count: u64,
    blocks_bytes: u64,
    meta: IndexMeta,
}

/// Decodes a footer (`FOOTER_BYTES`, its magic checked) of the run `from..to` in a file of
/// `len` bytes; returns where the trailer starts, or why the footer does not fit.
fn decode_footer(
    footer: &[u8],
    len: u64,
    from: u64,
    to: u64,
) -> Result<(u64, Footer), &'static str> {
    let (f_from, f_to, entries, sparse_count, blocks_bytes) = (
        le_u64(footer, 8),
        le_u64(footer, 16),
        le_u64(footer, 24),
        le_u64(footer, 32),
        le_u64(footer, 40),
    );
    let meta =
        IndexMeta::decode(&footer[48..48 + META_BYTES]).ok_or("has an unknown meta layout")?;
    if f_from != from || f_to != to || to <= from || meta.next_position != to {
        return Err("has a footer that does not match the file name");
    }
    let blocks = entries.div_ceil(BLOCK_ENTRIES);
    let expected_len = blocks
        .checked_mul(FENCE_BYTES as u64)
        .and_then(|b| b.checked_add(blocks_bytes))
        .and_then(|b| b.checked_add(sparse_count.checked_mul(SPARSE_BYTES as u64)?))
        .and_then(|b| b.checked_add(FOOTER_BYTES as u64));
    if expected_len != Some(len) || entries < to - from {
        return Err("does not have the length its footer says");
    }
    let footer = Footer {
        entries,
        blocks,
        sparse_count,
        blocks_bytes,
        meta,
    };
    Ok((blocks_bytes, footer))
}

/// Decodes the fences (checked by the trailer's CRC already) into the first hashes and the
/// starts of the blocks; `None` unless they tile `0..blocks_bytes` in hash order, each block
/// as long as its entry count allows.
fn decode_fences(section: &[u8], footer: &Footer) -> Option<(Vec<u64>, Vec<u64>)> {
    let blocks = usize::try_from(footer.blocks).ok()?;
    let fences = section.get(..blocks.checked_mul(FENCE_BYTES)?)?;
    let mut hashes = Vec::with_capacity(blocks);
    let mut starts = Vec::with_capacity(blocks + 1);
    for fence in fences.chunks_exact(FENCE_BYTES) {
        hashes.push(le_u64(fence, 0));
        starts.push(le_u64(fence, 8));
    }
    starts.push(footer.blocks_bytes);
    let in_order = hashes.windows(2).all(|w| w[0] <= w[1]);
    let tiled = starts[0] == 0
        && (0..blocks).all(|block| {
            let entries = (footer.entries - block as u64 * BLOCK_ENTRIES).min(BLOCK_ENTRIES);
            starts[block + 1]
                .checked_sub(starts[block])
                .is_some_and(|bytes| block_bytes_bounds(entries).contains(&bytes))
        });
    (in_order && tiled).then_some((hashes, starts))
}

/// Opens the run `from..to` at `path`. Outer error: I/O; inner error: why the run cannot
/// be used (it is then deleted and its records indexed again).
pub(crate) fn load_run(path: &Path, from: u64, to: u64) -> Result<Result<Run, String>, LogError> {
    let locate = |footer: &[u8], len: u64| decode_footer(footer, len, from, to);
    let trailer = match read_trailer(path, FOOTER_BYTES, &RUN_MAGIC, locate)? {
        Ok(trailer) => trailer,
        Err(why) => return Ok(Err(why)),
    };
    let footer = trailer.footer;
    let Some((fences, block_starts)) = decode_fences(&trailer.bytes, &footer) else {
        return Ok(Err(format!(
            "the run {} has fences that do not tile its blocks in hash order",
            path.display()
        )));
    };
    Ok(Ok(Run {
        path: path.to_path_buf(),
        file: trailer.file,
        from,
        to,
        entries: footer.entries,
        fences,
        block_starts,
        sparse_count: footer.sparse_count,
        meta: footer.meta,
    }))
}

/// The sparse position points a run holds (read again from its trailer).
pub(crate) fn sparse_of_run(run: &Run) -> Result<Vec<Location>, LogError> {
    let start = run.blocks_bytes() + run.fences.len() as u64 * FENCE_BYTES as u64;
    // Bounded by the file's length: `load_run` checked it against this count.
    let mut bytes = vec![0u8; run.sparse_count as usize * SPARSE_BYTES];
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

/// Writes a run file from entries sorted by (hash, version, position), all of positions in
/// `from..to`, and returns it (synced, renamed into place).
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
    let mut block_starts = Vec::new();
    let mut block: Option<BlockEncoder> = None;
    let mut count = 0u64;
    let mut previous: Option<(u64, u64, u64)> = None;
    for entry in entries {
        let entry = entry?;
        debug_assert!(previous.is_none_or(|p| p < entry.key()));
        previous = Some(entry.key());
        // A block decodes only entries of the run's positions.
        assert!(
            (from..to).contains(&entry.position),
            "an entry of position {} in the run {from}..{to}",
            entry.position
        );
        if block.as_ref().is_none_or(|b| b.count() == BLOCK_ENTRIES) {
            if let Some(full) = block.take() {
                out.write(&full.finish())?;
            }
            fences.push(entry.hash);
            block_starts.push(out.body_bytes());
            block = Some(BlockEncoder::new(entry.hash, from));
        }
        block
            .as_mut()
            .expect("a block was started above")
            .push(&entry);
        count += 1;
    }
    if let Some(last) = block {
        out.write(&last.finish())?;
    }
    let blocks_bytes = out.body_bytes();
    block_starts.push(blocks_bytes);
    let mut trailer =
        Vec::with_capacity(fences.len() * FENCE_BYTES + sparse.len() * SPARSE_BYTES + FOOTER_BYTES);
    for (hash, start) in fences.iter().zip(&block_starts) {
        trailer.extend_from_slice(&hash.to_le_bytes());
        trailer.extend_from_slice(&start.to_le_bytes());
    }
    for point in sparse {
        trailer.extend_from_slice(&point.position.to_le_bytes());
        trailer.extend_from_slice(&point.segment.to_le_bytes());
        trailer.extend_from_slice(&point.offset_bytes.to_le_bytes());
    }
    trailer.extend_from_slice(&RUN_MAGIC);
    for n in [from, to, count, sparse.len() as u64, blocks_bytes] {
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
        block_starts,
        sparse_count: sparse.len() as u64,
        meta: *meta,
    })
}

/// Reads a run's entries in order, a block at a time.
struct RunReader<'a> {
    run: &'a Run,
    reader: BufReader<File>,
    /// The next block to read.
    next_block: usize,
    bytes: Vec<u8>,
    /// The entries of the block read last; `current` is `block[at]`.
    block: Vec<Entry>,
    at: usize,
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
            next_block: 0,
            bytes: Vec::new(),
            block: Vec::new(),
            at: 0,
            current: None,
            key: (0, 0, 0),
        };
        reader.advance()?;
        Ok(reader)
    }

    /// Reads and decodes the next block; false after the last.
    fn next_block(&mut self) -> Result<bool, LogError> {
        let block = self.next_block;
        if block == self.run.fences.len() {
            return Ok(false);
        }
        let bytes = self.run.block_bytes(block);
        self.bytes.resize((bytes.end - bytes.start) as usize, 0);
        self.reader
            .read_exact(&mut self.bytes)
            .map_err(|e| io_err("reading index run", &self.run.path, e))?;
        self.block.clear();
        self.run.decode(block, &self.bytes, None, &mut self.block)?;
        self.next_block += 1;
        self.at = 0;
        Ok(true)
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
        if self.current.is_some() {
            self.at += 1;
        }
        if self.at == self.block.len() && !self.next_block()? {
            self.current = None;
            return Ok(());
        }
        let entry = self.block[self.at];
        self.key = entry.key();
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
    /// Where the blocks end in the file (where the trailer starts).
    fn blocks_bytes(&self) -> u64 {
        *self
            .block_starts
            .last()
            .expect("a run has the end of its blocks")
    }

    /// Where block `block` lies in the file.
    fn block_bytes(&self, block: usize) -> Range<u64> {
        self.block_starts[block]..self.block_starts[block + 1]
    }

    /// Entries in block `block` (all of them but the last hold `BLOCK_ENTRIES`).
    fn block_entries(&self, block: usize) -> u64 {
        (self.entries - block as u64 * BLOCK_ENTRIES).min(BLOCK_ENTRIES)
    }

    /// Decodes block `block` (`bytes`) onto `out`: all its entries, or with `of_hash` only
    /// those of that hash.
    fn decode(
        &self,
        block: usize,
        bytes: &[u8],
        of_hash: Option<u64>,
        out: &mut Vec<Entry>,
    ) -> Result<(), LogError> {
        let (count, first_hash) = (self.block_entries(block), self.fences[block]);
        let positions = self.from..self.to;
        match of_hash {
            None => decode_block(bytes, count, first_hash, &positions, out),
            Some(hash) => decode_block_of(bytes, count, first_hash, &positions, hash, out),
        }
        .map_err(|why| {
            LogError::Index(format!(
                "the stream-index run {} is damaged: its block {block} {why}",
                self.path.display()
            ))
        })
    }

    /// The entries of `hash` in `blocks` (consecutive), in order, onto `out`: read with one
    /// read for every [`READ_BLOCKS_MAX`] blocks.
    pub(crate) fn entries_in(
        &self,
        blocks: Range<usize>,
        hash: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), LogError> {
        let mut bytes = Vec::new();
        let mut first = blocks.start;
        while first < blocks.end {
            let end = (first + READ_BLOCKS_MAX).min(blocks.end);
            let start = self.block_starts[first];
            bytes.resize((self.block_starts[end] - start) as usize, 0);
            read_exact_at(&self.file, &mut bytes, start)
                .map_err(|e| io_err("reading index run", &self.path, e))?;
            for block in first..end {
                let range = self.block_bytes(block);
                let within = (range.start - start) as usize..(range.end - start) as usize;
                self.decode(block, &bytes[within], Some(hash), out)?;
            }
            first = end;
        }
        Ok(())
    }

    /// The blocks that can hold entries of `hash`; empty if none can.
    pub(crate) fn candidate_blocks(&self, hash: u64) -> Range<usize> {
        let upto = self.fences.partition_point(|&f| f <= hash);
        if upto == 0 {
            return 0..0;
        }
        let first = self.fences.partition_point(|&f| f < hash).saturating_sub(1);
        first..upto
    }

    /// Entries of `hash` in version order.
    pub(crate) fn entries_of(&self, hash: u64) -> Result<Vec<Entry>, LogError> {
        let mut out = Vec::new();
        self.entries_in(self.candidate_blocks(hash), hash, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::stream_hash;

    fn meta(next_position: u64) -> IndexMeta {
        IndexMeta {
            next_position,
            ..IndexMeta::empty()
        }
    }

    /// The entries of positions `from..to`, position `p` for stream `p % streams` (versions
    /// counted from `from`), sorted as a run holds them.
    fn entries(from: u64, to: u64, streams: u64) -> Vec<Entry> {
        let mut versions = vec![0u64; streams as usize];
        let mut entries: Vec<Entry> = (from..to)
            .map(|position| {
                let s = position % streams;
                versions[s as usize] += 1;
                Entry {
                    hash: stream_hash(format!("s{s}").as_bytes()),
                    version: versions[s as usize],
                    position,
                    offset_bytes: 64 + position * 151,
                }
            })
            .collect();
        entries.sort_unstable_by_key(Entry::key);
        entries
    }

    fn write(dir: &Path, from: u64, to: u64, entries: &[Entry]) -> Run {
        let sparse = [Location {
            position: from,
            segment: 0,
            offset_bytes: 64 + from * 151,
        }];
        let mut all = entries.iter().copied().map(Ok);
        write_run(dir, from, to, &mut all, &sparse, &meta(to)).expect("write")
    }

    /// Every entry by its hash, read back from `run`.
    fn lookups(run: &Run, hashes: &[u64]) -> Result<Vec<Entry>, LogError> {
        let mut found = Vec::new();
        for &hash in hashes {
            found.extend(run.entries_of(hash)?);
        }
        Ok(found)
    }

    #[test]
    fn a_run_finds_every_entry_and_reopens_as_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (from, to) = (1_000, 1_700);
        let written = entries(from, to, 37);
        let run = write(tmp.path(), from, to, &written);
        assert_eq!(run.fences.len(), 6);
        let reopened = load_run(&run.path, from, to).expect("io").expect("usable");
        assert_eq!(reopened.fences, run.fences);
        assert_eq!(reopened.block_starts, run.block_starts);
        assert_eq!(reopened.entries, 700);
        let mut hashes: Vec<u64> = written.iter().map(|e| e.hash).collect();
        hashes.dedup();
        assert_eq!(lookups(&reopened, &hashes).expect("lookups"), written);
        assert!(reopened
            .entries_of(stream_hash(b"nobody"))
            .expect("none")
            .is_empty());
        let sparse = sparse_of_run(&reopened).expect("sparse");
        assert_eq!(
            sparse.iter().map(|p| p.position).collect::<Vec<_>>(),
            [from]
        );
        // 19 entries a stream, each 37 positions after the one before: a few bytes each.
        let bytes = std::fs::metadata(&run.path).expect("metadata").len();
        assert!(bytes < 700 * 8, "{bytes} bytes");
        // Another run's name, or a merge of two runs.
        assert!(load_run(&run.path, from, to + 1).expect("io").is_err());
        let next = write(tmp.path(), to, to + 300, &entries(to, to + 300, 11));
        let merged = merge_runs(tmp.path(), &reopened, &next, &[]).expect("merge");
        let mut all = entries(from, to, 37);
        all.extend(entries(to, to + 300, 11));
        all.sort_unstable_by_key(Entry::key);
        let mut reader = RunReader::new(&merged).expect("reader");
        let mut read = Vec::new();
        while let Some(entry) = reader.current {
            read.push(entry);
            reader.advance().expect("advance");
        }
        assert_eq!(read, all);
    }

    #[test]
    fn a_damaged_byte_anywhere_is_refused_never_read_as_other_entries() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let written = entries(0, 300, 13);
        let run = write(tmp.path(), 0, 300, &written);
        let mut hashes: Vec<u64> = written.iter().map(|e| e.hash).collect();
        hashes.dedup();
        let bytes = std::fs::read(&run.path).expect("read");
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            std::fs::write(&run.path, &damaged).expect("write");
            let Ok(run) = load_run(&run.path, 0, 300).expect("io") else {
                continue;
            };
            assert!(
                at < run.blocks_bytes() as usize,
                "byte {at} of the trailer passed"
            );
            let sparse = sparse_of_run(&run).expect("sparse");
            assert_eq!(sparse.len(), 1);
            assert!(
                lookups(&run, &hashes).is_err(),
                "byte {at} of a block passed"
            );
        }
        // Cut short, or only its footer.
        for len in [0, 10, bytes.len() - FOOTER_BYTES, bytes.len() - 1] {
            std::fs::write(&run.path, &bytes[..len]).expect("write");
            assert!(
                load_run(&run.path, 0, 300).expect("io").is_err(),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn names_parse() {
        let path = run_path(Path::new("/x"), 5, 17);
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(parse_run_name(name), Some((5, 17)));
        assert_eq!(parse_run_name("5-17.run"), None);
    }
}
