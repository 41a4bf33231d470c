//! The projection store's run files (`{seq:020}.kvrun`): the key/value layout on top of the
//! shared sorted-run machinery (`crate::sorted_run`).
//!
//! A run holds entries sorted by key, one per key, each a value or a tombstone (a delete), in
//! blocks of about 4 KiB with a CRC-32 each; after the blocks, the trailer: the fences (first
//! key, offset and length of every block, the run's last key, the Bloom filter), then a fixed
//! footer. The bytes are described in `docs/log-format.md` ("Projection store").
//!
//! Invariant: a [`Run`] is only made from a file whose trailer passed its CRC and whose
//! fences tile its blocks with keys in order; a block is used only after its CRC checks.
//! No bytes make this module panic.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{io_err, LogError};
use crate::sorted_run::bloom::Bloom;
use crate::sorted_run::file::{read_trailer, RunFileWriter, CRC_BYTES};
use crate::sorted_run::merge::{merge_next, SortedSource};
use crate::sorted_run::{hash64, le_u32, le_u64, read_exact_at};
use crate::varint;

/// A block is closed once it holds about this many bytes of entries; an entry
/// larger than that gets a block of its own.
pub(crate) const BLOCK_TARGET_BYTES: usize = 4096;
/// The largest entry (key and value) the store takes: a block's length is a u32.
pub(crate) const ENTRY_BYTES_MAX: u64 = (u32::MAX as u64) - 64;

const RUN_MAGIC: [u8; 8] = *b"GJKVRUN1";
/// Version of the run and manifest layouts described in `docs/log-format.md`.
pub(crate) const FORMAT_VERSION: u32 = 2;
pub(crate) const RUN_SUFFIX: &str = ".kvrun";
const TMP_SUFFIX: &str = ".tmp";
/// magic, format version, entry count, fence offset, fence length, crc32.
const FOOTER_BYTES: usize = 8 + 4 + 8 + 8 + 8 + CRC_BYTES;
/// Bytes of one block's fence before its first key: offset u64, length u32, key length u32.
const FENCE_FIXED_BYTES: usize = 8 + 4 + 4;

/// One write: a key and its new value, `None` for a delete.
pub(crate) type KvWrite = (Vec<u8>, Option<Vec<u8>>);
/// Takes one merged entry: its key and value (`None`: a tombstone).
pub(crate) type Visit<'a> = dyn FnMut(&[u8], Option<&[u8]>) -> Result<(), LogError> + 'a;

pub(crate) fn run_name(seq: u64) -> String {
    format!("{seq:020}{RUN_SUFFIX}")
}

/// The error of a run whose bytes do not hold what they should.
fn damaged(path: &Path, what: String) -> LogError {
    let index_dir = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("DIR/index"));
    LogError::Index(format!(
        "the projection run {} is damaged: {what}; delete {} while no process uses the log, \
         or run `gongji rebuild`, to rebuild the projections",
        path.display(),
        index_dir.display()
    ))
}

/// The fences of a run: the first key, offset and length of every block.
#[derive(Default)]
struct Fences {
    /// The first keys, one after the other.
    keys: Vec<u8>,
    /// End of each block's first key in `keys`.
    key_ends: Vec<usize>,
    offsets: Vec<u64>,
    lens: Vec<u32>,
}

impl Fences {
    fn len(&self) -> usize {
        self.offsets.len()
    }

    fn first_key(&self, block: usize) -> &[u8] {
        let start = if block == 0 {
            0
        } else {
            self.key_ends[block - 1]
        };
        &self.keys[start..self.key_ends[block]]
    }

    fn push(&mut self, first_key: &[u8], offset: u64, len: u32) {
        self.keys.extend_from_slice(first_key);
        self.key_ends.push(self.keys.len());
        self.offsets.push(offset);
        self.lens.push(len);
    }

    /// The block that holds `key` if any does: the last whose first key is at
    /// or before it. `None` if `key` is before the first block.
    fn block_for(&self, key: &[u8]) -> Option<usize> {
        let mut lo = 0;
        let mut hi = self.len();
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.first_key(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// The fence section: block count, each block's fence, the last key, the Bloom filter.
    fn encode(&self, last_key: &[u8], bloom: &Bloom, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for block in 0..self.len() {
            let key = self.first_key(block);
            out.extend_from_slice(&self.offsets[block].to_le_bytes());
            out.extend_from_slice(&self.lens[block].to_le_bytes());
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
        }
        out.extend_from_slice(&(last_key.len() as u32).to_le_bytes());
        out.extend_from_slice(last_key);
        out.extend_from_slice(&(bloom.bits.len() as u64).to_le_bytes());
        out.extend_from_slice(&bloom.bits);
    }

    /// Decodes a fence section (checked by its CRC already); `None` if the blocks
    /// it describes do not tile `0..blocks_end` or their keys are out of order.
    fn decode(section: &[u8], blocks_end: u64) -> Option<(Fences, Vec<u8>, Bloom)> {
        let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
            let bytes = section.get(*at..at.checked_add(n)?)?;
            *at += n;
            Some(bytes)
        };
        let u32_of = |bytes: &[u8]| le_u32(bytes, 0);
        let mut at = 0usize;
        let count = le_u64(take(&mut at, 8)?, 0);
        // Every fence takes at least FENCE_FIXED_BYTES: bound the count before allocating.
        if count > (section.len() / FENCE_FIXED_BYTES) as u64 {
            return None;
        }
        let mut fences = Fences::default();
        let mut next_offset = 0u64;
        for block in 0..count as usize {
            let offset = le_u64(take(&mut at, 8)?, 0);
            let len = u32_of(take(&mut at, 4)?);
            let key_len = u32_of(take(&mut at, 4)?);
            let key = take(&mut at, key_len as usize)?;
            if offset != next_offset || len < 5 {
                return None;
            }
            if block > 0 && fences.first_key(block - 1) >= key {
                return None;
            }
            fences.push(key, offset, len);
            next_offset = offset.checked_add(u64::from(len))?;
        }
        let last_len = u32_of(take(&mut at, 4)?);
        let last_key = take(&mut at, last_len as usize)?.to_vec();
        let bloom_len = le_u64(take(&mut at, 8)?, 0);
        let bloom = Bloom {
            bits: take(&mut at, usize::try_from(bloom_len).ok()?)?.to_vec(),
        };
        if at != section.len() || next_offset != blocks_end {
            return None;
        }
        if count > 0 && fences.first_key(count as usize - 1) > last_key.as_slice() {
            return None;
        }
        Some((fences, last_key, bloom))
    }
}

/// A run file, its fences in memory.
pub(crate) struct Run {
    pub seq: u64,
    pub path: PathBuf,
    file: File,
    pub bytes: u64,
    fences: Fences,
    last_key: Vec<u8>,
    bloom: Bloom,
}

impl Run {
    /// Block `block`'s entries (its CRC checked and cut off).
    fn read_block(&self, block: usize) -> Result<Vec<u8>, LogError> {
        let offset = self.fences.offsets[block];
        let len = self.fences.lens[block] as usize;
        let mut bytes = vec![0u8; len];
        read_exact_at(&self.file, &mut bytes, offset)
            .map_err(|e| io_err("reading projection run", &self.path, e))?;
        let crc_at = len - CRC_BYTES;
        let stored = le_u32(&bytes, crc_at);
        let computed = crc32fast::hash(&bytes[..crc_at]);
        if stored != computed {
            return Err(damaged(
                &self.path,
                format!(
                    "block {block} at byte offset {offset} fails its checksum \
                     (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        bytes.truncate(crc_at);
        Ok(bytes)
    }

    /// What the run says of `key`: `None` if nothing, `Some(None)` if it was
    /// deleted, `Some(Some(value))` if it was put.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, LogError> {
        if key > self.last_key.as_slice() || !self.bloom.may_hold(hash64(key)) {
            return Ok(None);
        }
        let Some(block) = self.fences.block_for(key) else {
            return Ok(None);
        };
        let mut entries = BlockEntries::new(self.read_block(block)?);
        while entries
            .advance()
            .map_err(|what| damaged(&self.path, format!("block {block}: {what}")))?
        {
            match entries.key.as_slice().cmp(key) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(Some(entries.value().map(<[u8]>::to_vec))),
                std::cmp::Ordering::Greater => break,
            }
        }
        Ok(None)
    }
}

/// Decodes the entries of one block in order.
pub(crate) struct BlockEntries {
    bytes: Vec<u8>,
    /// Where the next entry starts.
    at: usize,
    key: Vec<u8>,
    /// The current entry's value in `bytes`; `None` for a tombstone.
    value: Option<Range<usize>>,
}

impl BlockEntries {
    pub(crate) fn new(bytes: Vec<u8>) -> BlockEntries {
        BlockEntries {
            bytes,
            at: 0,
            key: Vec::new(),
            value: None,
        }
    }

    fn value(&self) -> Option<&[u8]> {
        self.value.clone().map(|r| &self.bytes[r])
    }

    /// Moves to the next entry; false at the end of the block. The error says
    /// why the bytes are not a valid entry (never a panic).
    pub(crate) fn advance(&mut self) -> Result<bool, String> {
        if self.at >= self.bytes.len() {
            return Ok(false);
        }
        let bytes = &self.bytes;
        let mut at = self.at;
        let bad = |what: &str| format!("entry at byte {} of the block: {what}", self.at);
        let shared = varint::get(bytes, &mut at).ok_or_else(|| bad("bad shared length"))?;
        let suffix = varint::get(bytes, &mut at).ok_or_else(|| bad("bad key length"))?;
        let tag = varint::get(bytes, &mut at).ok_or_else(|| bad("bad value length"))?;
        if shared > self.key.len() as u64 {
            return Err(bad("shares more of the key before it than there is"));
        }
        let left = (bytes.len() - at) as u64;
        let value_len = tag.saturating_sub(1);
        if suffix > left || value_len > left - suffix {
            return Err(bad("runs past the end of the block"));
        }
        let (suffix, value_len) = (suffix as usize, value_len as usize);
        self.key.truncate(shared as usize);
        self.key.extend_from_slice(&bytes[at..at + suffix]);
        at += suffix;
        self.value = (tag > 0).then(|| at..at + value_len);
        at += value_len;
        self.at = at;
        Ok(true)
    }
}

/// Reads a run's entries in key order from a starting key, one block in memory.
struct Cursor {
    run: Arc<Run>,
    next_block: usize,
    entries: BlockEntries,
    /// Whether `entries` is at an entry (false: the run is exhausted).
    valid: bool,
}

impl Cursor {
    /// A cursor at the first entry of `run` at or after `from`.
    fn seek(run: Arc<Run>, from: &[u8]) -> Result<Cursor, LogError> {
        let skip_all = from > run.last_key.as_slice() || run.fences.len() == 0;
        let next_block = if skip_all {
            run.fences.len()
        } else {
            run.fences.block_for(from).unwrap_or(0)
        };
        let mut cursor = Cursor {
            run,
            next_block,
            entries: BlockEntries::new(Vec::new()),
            valid: false,
        };
        cursor.advance()?;
        while cursor.valid && cursor.entries.key.as_slice() < from {
            cursor.advance()?;
        }
        Ok(cursor)
    }
}

impl SortedSource for Cursor {
    type Key = [u8];

    fn key(&self) -> Option<&[u8]> {
        self.valid.then_some(self.entries.key.as_slice())
    }

    fn advance(&mut self) -> Result<(), LogError> {
        loop {
            let block = self.next_block.saturating_sub(1);
            let moved = self
                .entries
                .advance()
                .map_err(|what| damaged(&self.run.path, format!("block {block}: {what}")))?;
            if moved {
                self.valid = true;
                return Ok(());
            }
            if self.next_block >= self.run.fences.len() {
                self.valid = false;
                return Ok(());
            }
            self.entries = BlockEntries::new(self.run.read_block(self.next_block)?);
            self.next_block += 1;
        }
    }
}

/// Merges runs (oldest first) into one stream in key order, one entry per key: the newest
/// run's.
pub(crate) struct Merge {
    cursors: Vec<Cursor>,
}

impl Merge {
    pub(crate) fn new(runs: &[Arc<Run>], from: &[u8]) -> Result<Merge, LogError> {
        let cursors = runs
            .iter()
            .map(|run| Cursor::seek(Arc::clone(run), from))
            .collect::<Result<_, _>>()?;
        Ok(Merge { cursors })
    }

    /// The next key and what the newest run holding it says (`None`: deleted).
    pub(crate) fn next_entry(&mut self) -> Result<Option<KvWrite>, LogError> {
        let mut entry = None;
        self.next_with(&mut |key, value| {
            entry = Some((key.to_vec(), value.map(<[u8]>::to_vec)));
            Ok(())
        })?;
        Ok(entry)
    }

    /// Hands the next key and what the newest run holding it says (`None`:
    /// deleted) to `visit`; false when every run is exhausted.
    pub(crate) fn next_with(&mut self, visit: &mut Visit<'_>) -> Result<bool, LogError> {
        let Some(next) = merge_next(&mut self.cursors)? else {
            return Ok(false);
        };
        let cursor = &mut self.cursors[next];
        visit(&cursor.entries.key, cursor.entries.value())?;
        cursor.advance()?;
        Ok(true)
    }
}

/// Writes a run file: entries pushed in strictly increasing key order.
pub(crate) struct RunWriter {
    seq: u64,
    file: RunFileWriter,
    block: Vec<u8>,
    block_first_key: Vec<u8>,
    previous_key: Option<Vec<u8>>,
    fences: Fences,
    entries: u64,
    /// The keys' hashes, for the Bloom filter written with the fences.
    hashes: Vec<u64>,
}

impl RunWriter {
    pub(crate) fn create(dir: &Path, seq: u64) -> Result<RunWriter, LogError> {
        let path = dir.join(run_name(seq));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", run_name(seq)));
        Ok(RunWriter {
            seq,
            file: RunFileWriter::create(tmp, path)?,
            block: Vec::with_capacity(2 * BLOCK_TARGET_BYTES),
            block_first_key: Vec::new(),
            previous_key: None,
            fences: Fences::default(),
            entries: 0,
            hashes: Vec::new(),
        })
    }

    pub(crate) fn push(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), LogError> {
        let entry_bytes = (key.len() + value.map_or(0, <[u8]>::len)) as u64;
        if entry_bytes > ENTRY_BYTES_MAX {
            return Err(LogError::TooLarge {
                what: "projection entry (key and value bytes)",
                actual: entry_bytes,
                limit: ENTRY_BYTES_MAX,
            });
        }
        // Sorted and deduplicated by `apply`; merged from runs whose blocks
        // passed their CRC. Only a run damaged behind a valid CRC gets here.
        if self.previous_key.as_deref().is_some_and(|p| p >= key) {
            return Err(damaged(
                self.file.path(),
                "its entries would be out of key order (an input run holds keys out of order)"
                    .into(),
            ));
        }
        let estimate = entry_bytes as usize + 3 * varint::MAX_BYTES;
        if !self.block.is_empty() && self.block.len() + estimate > BLOCK_TARGET_BYTES {
            self.finish_block()?;
        }
        let shared = if self.block.is_empty() {
            self.block_first_key.clear();
            self.block_first_key.extend_from_slice(key);
            0
        } else {
            let previous = self.previous_key.as_deref().unwrap_or_default();
            previous.iter().zip(key).take_while(|(a, b)| a == b).count()
        };
        varint::put(&mut self.block, shared as u64);
        varint::put(&mut self.block, (key.len() - shared) as u64);
        varint::put(&mut self.block, value.map_or(0, |v| v.len() as u64 + 1));
        self.block.extend_from_slice(&key[shared..]);
        if let Some(value) = value {
            self.block.extend_from_slice(value);
        }
        match &mut self.previous_key {
            Some(previous) => {
                previous.clear();
                previous.extend_from_slice(key);
            }
            None => self.previous_key = Some(key.to_vec()),
        }
        self.entries += 1;
        self.hashes.push(hash64(key));
        if self.block.len() >= BLOCK_TARGET_BYTES {
            self.finish_block()?;
        }
        Ok(())
    }

    fn finish_block(&mut self) -> Result<(), LogError> {
        if self.block.is_empty() {
            return Ok(());
        }
        let crc = crc32fast::hash(&self.block);
        self.block.extend_from_slice(&crc.to_le_bytes());
        let len = u32::try_from(self.block.len()).expect("entries are bounded by ENTRY_BYTES_MAX");
        let offset = self.file.body_bytes();
        self.file.write(&self.block)?;
        self.fences.push(&self.block_first_key, offset, len);
        self.block.clear();
        Ok(())
    }

    /// Closes the run: fences, footer, fdatasync, rename into place. `None`
    /// (and no file) if no entry was pushed.
    pub(crate) fn finish(mut self) -> Result<Option<Run>, LogError> {
        self.finish_block()?;
        if self.entries == 0 {
            self.file.abandon()?;
            return Ok(None);
        }
        let last_key = self.previous_key.take().unwrap_or_default();
        let bloom = Bloom::build(&std::mem::take(&mut self.hashes));
        let mut trailer = Vec::with_capacity(
            8 + self.fences.len() * FENCE_FIXED_BYTES
                + self.fences.keys.len()
                + bloom.bits.len()
                + FOOTER_BYTES,
        );
        self.fences.encode(&last_key, &bloom, &mut trailer);
        let fence_bytes = trailer.len() as u64;
        let blocks_end = self.file.body_bytes();
        trailer.extend_from_slice(&RUN_MAGIC);
        trailer.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        trailer.extend_from_slice(&self.entries.to_le_bytes());
        trailer.extend_from_slice(&blocks_end.to_le_bytes());
        trailer.extend_from_slice(&fence_bytes.to_le_bytes());
        let path = self.file.path().to_path_buf();
        let (file, bytes) = self.file.finish(trailer)?;
        Ok(Some(Run {
            seq: self.seq,
            path,
            file,
            bytes,
            fences: self.fences,
            last_key,
            bloom,
        }))
    }
}

/// Opens the run `seq` named by the manifest with `bytes` bytes. Outer error:
/// I/O; inner error: why the run cannot be used.
pub(crate) fn load_run(dir: &Path, seq: u64, bytes: u64) -> Result<Result<Run, String>, LogError> {
    let path = dir.join(run_name(seq));
    // The footer: magic, version, entries, fence offset (= bytes of the blocks), fence bytes.
    let locate = |footer: &[u8], len: u64| {
        if len != bytes {
            return Err("does not have the length the manifest says");
        }
        if le_u32(footer, 8) != FORMAT_VERSION {
            return Err("is of another format version");
        }
        let (entries, fence_offset, fence_bytes) =
            (le_u64(footer, 12), le_u64(footer, 20), le_u64(footer, 28));
        let expected_len = fence_offset
            .checked_add(fence_bytes)
            .and_then(|n| n.checked_add(FOOTER_BYTES as u64));
        if expected_len != Some(len) || fence_bytes < 20 {
            return Err("does not have the length its footer says");
        }
        Ok((fence_offset, (entries, fence_bytes)))
    };
    let trailer = match read_trailer(&path, FOOTER_BYTES, &RUN_MAGIC, locate)? {
        Ok(trailer) => trailer,
        Err(why) => return Ok(Err(why)),
    };
    let unusable = |why: &str| Ok(Err(format!("the run {} {why}", path.display())));
    let (entries, fence_bytes) = trailer.footer;
    let Some((fences, last_key, bloom)) =
        Fences::decode(&trailer.bytes[..fence_bytes as usize], trailer.start)
    else {
        return unusable("has fences that do not describe its blocks");
    };
    if (entries == 0) != (fences.len() == 0) || entries < fences.len() as u64 {
        return unusable("has an entry count that does not match its blocks");
    }
    Ok(Ok(Run {
        seq,
        path,
        file: trailer.file,
        bytes,
        fences,
        last_key,
        bloom,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_decoding_never_panics_on_garbage() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for len in 0..400usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let mut entries = BlockEntries::new(bytes);
            for _ in 0..1000 {
                match entries.advance() {
                    Ok(true) => {}
                    Ok(false) | Err(_) => break,
                }
            }
        }
    }
}
