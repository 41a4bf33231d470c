//! The runs backend of the projection store ([`crate::ProjectionBackend::Runs`]):
//! immutable sorted run files of this crate's own, built like the stream
//! index's (`crate::streams`), in `DIR/index/projections/`.
//!
//! * A **run** `{seq:020}.kvrun` holds entries sorted by key, one per key,
//!   each a value or a tombstone (a delete), in blocks of about 4 KiB with a
//!   CRC-32 each; after the blocks, the fences (first key, offset and length
//!   of every block, and the run's last key), then a fixed footer.
//! * The **manifest** `MANIFEST` lists the live runs, oldest first, and the
//!   checkpoint. Replacing it (write `MANIFEST.tmp`, fdatasync, rename, fsync
//!   the directory) is the commit point of every change: a run is written and
//!   synced before a manifest names it, and deleted only after a manifest no
//!   longer does. At open, files the manifest does not name are deleted.
//! * `apply` writes its (sorted, deduplicated) writes as a new run, then a
//!   manifest naming it with the new checkpoint. Then the last two runs are
//!   merged while the newest is at least half the size of the one before it
//!   (so sizes at least double from newest to oldest and a store has about
//!   log2(bytes / smallest run) runs); above [`RUNS_MAX`] runs the adjacent
//!   pair with the fewest bytes is merged. Merges stream one block per input.
//! * A lookup reads the runs newest first: a binary search in the run's fences
//!   (in memory since open) and one positioned read of one block.
//!
//! Everything here can be rebuilt from the log: a manifest or a run that fails
//! its checks at open makes the store start empty, without a checkpoint.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::error::{io_err, LogError};
use crate::streams::read_exact_at;
use crate::sync_dir;

/// A block is closed once it holds about this many bytes of entries; an entry
/// larger than that gets a block of its own.
pub(crate) const BLOCK_TARGET_BYTES: usize = 4096;
/// Above this many runs, the adjacent pair with the fewest bytes is merged.
pub(crate) const RUNS_MAX: usize = 10;
/// The largest entry (key and value) the store takes: a block's length is a u32.
pub(crate) const ENTRY_BYTES_MAX: u64 = (u32::MAX as u64) - 64;

const RUN_MAGIC: [u8; 8] = *b"GJKVRUN1";
const MANIFEST_MAGIC: [u8; 8] = *b"GJKVMAN1";
/// Version of the run and manifest layouts described in `docs/log-format.md`.
const FORMAT_VERSION: u32 = 2;
/// Bloom filter bits per key, and probes per lookup: about 1% false positives. Most lookups
/// of the ledger are for keys that do not exist yet (a new member, a new claim id), and each
/// of them would otherwise read a block of every run.
const BLOOM_BITS_PER_KEY: u64 = 10;
const BLOOM_PROBES: u64 = 6;
const RUN_SUFFIX: &str = ".kvrun";
const TMP_SUFFIX: &str = ".tmp";
const MANIFEST: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";
/// magic, format version, entry count, fence offset, fence length, crc32.
const FOOTER_BYTES: usize = 8 + 4 + 8 + 8 + 8 + 4;
/// magic, format version, next seq, checkpoint flag and value, run count, crc32.
const MANIFEST_FIXED_BYTES: usize = 8 + 4 + 8 + 1 + 8 + 4 + 4;
/// seq and bytes of one run in the manifest.
const MANIFEST_RUN_BYTES: usize = 16;
/// Bytes of one block's fence before its first key: offset u64, length u32, key length u32.
const FENCE_FIXED_BYTES: usize = 8 + 4 + 4;
const IO_BUFFER_BYTES: usize = 1 << 20;
/// A varint (LEB128) of a u64 has at most this many bytes.
const VARINT_BYTES_MAX: usize = 10;

/// One write: a key and its new value, `None` for a delete.
pub(crate) type KvWrite = (Vec<u8>, Option<Vec<u8>>);
/// A key and its value, as a scan yields them.
type KvPair = (Vec<u8>, Vec<u8>);
/// Takes one merged entry: its key and value (`None`: a tombstone).
type Visit<'a> = dyn FnMut(&[u8], Option<&[u8]>) -> Result<(), LogError> + 'a;

fn run_name(seq: u64) -> String {
    format!("{seq:020}{RUN_SUFFIX}")
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Decodes a varint at `*at`, advancing it; `None` if cut short or too long.
fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for i in 0..VARINT_BYTES_MAX {
        let b = *bytes.get(*at)?;
        *at += 1;
        let bits = u64::from(b & 0x7f);
        if i == VARINT_BYTES_MAX - 1 && b > 1 {
            return None;
        }
        n |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Deletes a file, ignoring one that is already gone.
fn remove_file(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing projection file", path, e)),
    }
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

/// A 64-bit hash of a key for the Bloom filter: FNV-1a, then the murmur3 finaliser.
fn key_hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// A Bloom filter over a run's keys: `BLOOM_PROBES` bits per key set by double hashing.
#[derive(Default)]
struct Bloom {
    bits: Vec<u8>,
}

impl Bloom {
    fn build(hashes: &[u64]) -> Bloom {
        let bytes = (hashes.len() as u64 * BLOOM_BITS_PER_KEY)
            .div_ceil(8)
            .max(8) as usize;
        let mut bloom = Bloom {
            bits: vec![0u8; bytes],
        };
        for &hash in hashes {
            for bit in bloom.probes(hash) {
                bloom.bits[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        bloom
    }

    fn probes(&self, hash: u64) -> impl Iterator<Item = u64> {
        let bits = self.bits.len() as u64 * 8;
        let step = (hash >> 32) | 1;
        (0..BLOOM_PROBES).map(move |i| hash.wrapping_add(i.wrapping_mul(step)) % bits)
    }

    /// False if the key is certainly not in the run.
    fn may_hold(&self, hash: u64) -> bool {
        if self.bits.is_empty() {
            return true;
        }
        self.probes(hash)
            .all(|bit| self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }
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
}

/// A run file, its fences in memory.
pub(crate) struct Run {
    seq: u64,
    path: PathBuf,
    file: File,
    bytes: u64,
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
        let crc_at = len - 4;
        let stored = u32_at(&bytes, crc_at);
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
    fn get(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, LogError> {
        if key > self.last_key.as_slice() || !self.bloom.may_hold(key_hash(key)) {
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
struct BlockEntries {
    bytes: Vec<u8>,
    /// Where the next entry starts.
    at: usize,
    key: Vec<u8>,
    /// The current entry's value in `bytes`; `None` for a tombstone.
    value: Option<Range<usize>>,
}

impl BlockEntries {
    fn new(bytes: Vec<u8>) -> BlockEntries {
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
    fn advance(&mut self) -> Result<bool, String> {
        if self.at >= self.bytes.len() {
            return Ok(false);
        }
        let bytes = &self.bytes;
        let mut at = self.at;
        let bad = |what: &str| format!("entry at byte {} of the block: {what}", self.at);
        let shared = get_varint(bytes, &mut at).ok_or_else(|| bad("bad shared length"))?;
        let suffix = get_varint(bytes, &mut at).ok_or_else(|| bad("bad key length"))?;
        let tag = get_varint(bytes, &mut at).ok_or_else(|| bad("bad value length"))?;
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

    fn key(&self) -> &[u8] {
        &self.entries.key
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

/// Merges cursors (oldest first) into one stream in key order, one entry per
/// key: the newest run's.
struct Merge {
    cursors: Vec<Cursor>,
    /// The key being merged (reused: no allocation per entry).
    key: Vec<u8>,
}

impl Merge {
    fn new(runs: &[Arc<Run>], from: &[u8]) -> Result<Merge, LogError> {
        let cursors = runs
            .iter()
            .map(|run| Cursor::seek(Arc::clone(run), from))
            .collect::<Result<_, _>>()?;
        Ok(Merge {
            cursors,
            key: Vec::new(),
        })
    }

    /// The next key and what the newest run holding it says (`None`: deleted).
    fn next_entry(&mut self) -> Result<Option<KvWrite>, LogError> {
        let mut entry = None;
        self.next_with(&mut |key, value| {
            entry = Some((key.to_vec(), value.map(<[u8]>::to_vec)));
            Ok(())
        })?;
        Ok(entry)
    }

    /// Hands the next key and what the newest run holding it says (`None`:
    /// deleted) to `visit`; false when every run is exhausted.
    fn next_with(&mut self, visit: &mut Visit<'_>) -> Result<bool, LogError> {
        let mut newest: Option<usize> = None;
        for (i, cursor) in self.cursors.iter().enumerate() {
            if !cursor.valid {
                continue;
            }
            // Later cursors are newer: on equal keys the later one wins.
            if newest.is_none_or(|n| cursor.key() <= self.cursors[n].key()) {
                newest = Some(i);
            }
        }
        let Some(newest) = newest else {
            return Ok(false);
        };
        self.key.clear();
        self.key.extend_from_slice(self.cursors[newest].key());
        for (i, cursor) in self.cursors.iter_mut().enumerate() {
            if i != newest && cursor.valid && cursor.key() == self.key.as_slice() {
                cursor.advance()?;
            }
        }
        let cursor = &self.cursors[newest];
        visit(cursor.key(), cursor.entries.value())?;
        self.cursors[newest].advance()?;
        Ok(true)
    }
}

/// Writes a run file: entries pushed in strictly increasing key order.
struct RunWriter {
    seq: u64,
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    block: Vec<u8>,
    block_first_key: Vec<u8>,
    previous_key: Option<Vec<u8>>,
    offset: u64,
    fences: Fences,
    entries: u64,
    /// The keys' hashes, for the Bloom filter written with the fences.
    hashes: Vec<u64>,
}

impl RunWriter {
    fn create(dir: &Path, seq: u64) -> Result<RunWriter, LogError> {
        let path = dir.join(run_name(seq));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", run_name(seq)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_err("creating projection run", &tmp, e))?;
        Ok(RunWriter {
            seq,
            path,
            tmp,
            out: BufWriter::with_capacity(IO_BUFFER_BYTES, file),
            block: Vec::with_capacity(2 * BLOCK_TARGET_BYTES),
            block_first_key: Vec::new(),
            previous_key: None,
            offset: 0,
            fences: Fences::default(),
            entries: 0,
            hashes: Vec::new(),
        })
    }

    fn push(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), LogError> {
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
                &self.path,
                "its entries would be out of key order (an input run holds keys out of order)"
                    .into(),
            ));
        }
        let estimate = entry_bytes as usize + 3 * VARINT_BYTES_MAX;
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
        put_varint(&mut self.block, shared as u64);
        put_varint(&mut self.block, (key.len() - shared) as u64);
        put_varint(&mut self.block, value.map_or(0, |v| v.len() as u64 + 1));
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
        self.hashes.push(key_hash(key));
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
        self.out
            .write_all(&self.block)
            .map_err(|e| io_err("writing projection run", &self.tmp, e))?;
        self.fences.push(&self.block_first_key, self.offset, len);
        self.offset += u64::from(len);
        self.block.clear();
        Ok(())
    }

    /// Closes the run: fences, footer, fdatasync, rename into place. `None`
    /// (and no file) if no entry was pushed.
    fn finish(mut self) -> Result<Option<Run>, LogError> {
        self.finish_block()?;
        if self.entries == 0 {
            drop(self.out);
            remove_file(&self.tmp)?;
            return Ok(None);
        }
        let last_key = self.previous_key.take().unwrap_or_default();
        let mut section = Vec::with_capacity(
            8 + self.fences.len() * FENCE_FIXED_BYTES + self.fences.keys.len() + FOOTER_BYTES,
        );
        section.extend_from_slice(&(self.fences.len() as u64).to_le_bytes());
        for block in 0..self.fences.len() {
            let key = self.fences.first_key(block);
            section.extend_from_slice(&self.fences.offsets[block].to_le_bytes());
            section.extend_from_slice(&self.fences.lens[block].to_le_bytes());
            section.extend_from_slice(&(key.len() as u32).to_le_bytes());
            section.extend_from_slice(key);
        }
        section.extend_from_slice(&(last_key.len() as u32).to_le_bytes());
        section.extend_from_slice(&last_key);
        let bloom = Bloom::build(&std::mem::take(&mut self.hashes));
        section.extend_from_slice(&(bloom.bits.len() as u64).to_le_bytes());
        section.extend_from_slice(&bloom.bits);
        let fence_bytes = section.len() as u64;
        section.extend_from_slice(&RUN_MAGIC);
        section.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        section.extend_from_slice(&self.entries.to_le_bytes());
        section.extend_from_slice(&self.offset.to_le_bytes());
        section.extend_from_slice(&fence_bytes.to_le_bytes());
        let crc = crc32fast::hash(&section);
        section.extend_from_slice(&crc.to_le_bytes());
        self.out
            .write_all(&section)
            .map_err(|e| io_err("writing projection run", &self.tmp, e))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| io_err("writing projection run", &self.tmp, e.into_error()))?;
        file.sync_data()
            .map_err(|e| io_err("syncing projection run", &self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| io_err("renaming projection run", &self.tmp, e))?;
        Ok(Some(Run {
            seq: self.seq,
            path: self.path,
            file,
            bytes: self.offset + section.len() as u64,
            fences: self.fences,
            last_key,
            bloom,
        }))
    }
}

/// Opens the run `seq` named by the manifest with `bytes` bytes. Outer error:
/// I/O; inner error: why the run cannot be used.
fn load_run(dir: &Path, seq: u64, bytes: u64) -> Result<Result<Run, String>, LogError> {
    let path = dir.join(run_name(seq));
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(format!("the run {} is missing", path.display())))
        }
        Err(e) => return Err(io_err("opening projection run", &path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| io_err("reading metadata of projection run", &path, e))?
        .len();
    let unusable = |why: &str| Ok(Err(format!("the run {} {why}", path.display())));
    if len != bytes {
        return unusable(&format!("has {len} bytes, the manifest says {bytes}"));
    }
    if len < FOOTER_BYTES as u64 {
        return unusable("is shorter than its footer");
    }
    let mut footer = [0u8; FOOTER_BYTES];
    read_exact_at(&file, &mut footer, len - FOOTER_BYTES as u64)
        .map_err(|e| io_err("reading projection run", &path, e))?;
    if footer[..8] != RUN_MAGIC {
        return unusable("has no run footer");
    }
    if u32_at(&footer, 8) != FORMAT_VERSION {
        return unusable("is of another format version");
    }
    let (entries, fence_offset, fence_bytes) = (
        u64_at(&footer, 12),
        u64_at(&footer, 20),
        u64_at(&footer, 28),
    );
    let expected_len = fence_offset
        .checked_add(fence_bytes)
        .and_then(|n| n.checked_add(FOOTER_BYTES as u64));
    if expected_len != Some(len) || fence_bytes < 20 {
        return unusable("does not have the length its footer says");
    }
    let mut section = vec![0u8; (fence_bytes as usize) + FOOTER_BYTES];
    read_exact_at(&file, &mut section, fence_offset)
        .map_err(|e| io_err("reading projection run", &path, e))?;
    let crc_at = section.len() - 4;
    if crc32fast::hash(&section[..crc_at]) != u32_at(&section, crc_at) {
        return unusable("fails the checksum of its fences and footer");
    }
    let fence_section = &section[..fence_bytes as usize];
    let Some((fences, last_key, bloom)) = decode_fences(fence_section, fence_offset) else {
        return unusable("has fences that do not describe its blocks");
    };
    if (entries == 0) != (fences.len() == 0) || entries < fences.len() as u64 {
        return unusable("has an entry count that does not match its blocks");
    }
    Ok(Ok(Run {
        seq,
        path,
        file,
        bytes,
        fences,
        last_key,
        bloom,
    }))
}

/// Decodes a fence section (checked by its CRC already); `None` if the blocks
/// it describes do not tile `0..blocks_end` or their keys are out of order.
fn decode_fences(section: &[u8], blocks_end: u64) -> Option<(Fences, Vec<u8>, Bloom)> {
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let bytes = section.get(*at..at.checked_add(n)?)?;
        *at += n;
        Some(bytes)
    };
    let mut at = 0usize;
    let count = u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?);
    // Every fence takes at least FENCE_FIXED_BYTES: bound the count before allocating.
    if count > (section.len() / FENCE_FIXED_BYTES) as u64 {
        return None;
    }
    let mut fences = Fences::default();
    let mut next_offset = 0u64;
    for block in 0..count as usize {
        let offset = u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?);
        let len = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?);
        let key_len = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?);
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
    let last_len = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?);
    let last_key = take(&mut at, last_len as usize)?.to_vec();
    let bloom_len = u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?);
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

/// What the manifest says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Manifest {
    /// The seq of the next run to write (greater than any ever named).
    next_seq: u64,
    checkpoint: Option<u64>,
    /// (seq, bytes) of each live run, oldest first.
    runs: Vec<(u64, u64)>,
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(MANIFEST_FIXED_BYTES + self.runs.len() * MANIFEST_RUN_BYTES);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.next_seq.to_le_bytes());
        out.push(u8::from(self.checkpoint.is_some()));
        out.extend_from_slice(&self.checkpoint.unwrap_or(0).to_le_bytes());
        let count = u32::try_from(self.runs.len()).expect("runs are few (RUNS_MAX)");
        out.extend_from_slice(&count.to_le_bytes());
        for (seq, bytes) in &self.runs {
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&bytes.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// `Err` says why the bytes are not a manifest.
    fn decode(bytes: &[u8]) -> Result<Manifest, &'static str> {
        if bytes.len() < MANIFEST_FIXED_BYTES {
            return Err("is shorter than a manifest");
        }
        if bytes[..8] != MANIFEST_MAGIC {
            return Err("does not start with the manifest magic");
        }
        let crc_at = bytes.len() - 4;
        if crc32fast::hash(&bytes[..crc_at]) != u32_at(bytes, crc_at) {
            return Err("fails its checksum");
        }
        if u32_at(bytes, 8) != FORMAT_VERSION {
            return Err("is of another format version");
        }
        let next_seq = u64_at(bytes, 12);
        let checkpoint = match bytes[20] {
            0 => None,
            1 => Some(u64_at(bytes, 21)),
            _ => return Err("has a bad checkpoint flag"),
        };
        let count = u32_at(bytes, 29) as usize;
        let runs_bytes = bytes.len() - MANIFEST_FIXED_BYTES;
        if !runs_bytes.is_multiple_of(MANIFEST_RUN_BYTES)
            || runs_bytes / MANIFEST_RUN_BYTES != count
        {
            return Err("does not have the length its run count says");
        }
        let runs: Vec<(u64, u64)> = bytes[33..crc_at]
            .chunks_exact(MANIFEST_RUN_BYTES)
            .map(|c| (u64_at(c, 0), u64_at(c, 8)))
            .collect();
        let mut seqs: Vec<u64> = runs.iter().map(|r| r.0).collect();
        seqs.sort_unstable();
        seqs.dedup();
        if seqs.len() != runs.len() || seqs.last().is_some_and(|&s| s >= next_seq) {
            return Err("names a run twice or a run not below its next seq");
        }
        Ok(Manifest {
            next_seq,
            checkpoint,
            runs,
        })
    }
}

/// Replaces the manifest: `MANIFEST.tmp`, fdatasync, rename, fsync of the directory.
fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), LogError> {
    let tmp = dir.join(MANIFEST_TMP);
    let path = dir.join(MANIFEST);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io_err("creating projection manifest", &tmp, e))?;
    file.write_all(&manifest.encode())
        .and_then(|()| file.sync_data())
        .map_err(|e| io_err("writing projection manifest", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| io_err("renaming projection manifest", &tmp, e))?;
    sync_dir(dir)
}

/// The live runs and the checkpoint, as readers see them.
#[derive(Default)]
struct Snapshot {
    /// Oldest first.
    runs: Vec<Arc<Run>>,
    checkpoint: Option<u64>,
}

impl Snapshot {
    fn manifest(&self, next_seq: u64) -> Manifest {
        Manifest {
            next_seq,
            checkpoint: self.checkpoint,
            runs: self.runs.iter().map(|r| (r.seq, r.bytes)).collect(),
        }
    }
}

struct Shared {
    dir: PathBuf,
    /// Readers take a clone of the `Arc`; a writer replaces it after the
    /// manifest naming the new state is in place.
    current: RwLock<Arc<Snapshot>>,
    /// Held by every writer: the seq of the next run to write.
    next_seq: Mutex<u64>,
}

/// The projection store in run files. Clones share it.
#[derive(Clone)]
pub(crate) struct RunsKv {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RunsKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunsKv")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

/// Deletes every file in `dir` (not subdirectories) for which `delete` says so.
fn remove_files_in(dir: &Path, delete: &dyn Fn(&str) -> bool) -> Result<(), LogError> {
    let listing = std::fs::read_dir(dir).map_err(|e| io_err("listing projection store", dir, e))?;
    for item in listing {
        let item = item.map_err(|e| io_err("listing projection store", dir, e))?;
        let is_file = item
            .file_type()
            .map_err(|e| io_err("listing projection store", dir, e))?
            .is_file();
        let name = item.file_name();
        if is_file && delete(&name.to_string_lossy()) {
            remove_file(&item.path())?;
        }
    }
    Ok(())
}

impl RunsKv {
    /// Opens the store in `dir` (creating it). Returns it and, if it was
    /// unusable and emptied, why.
    pub(crate) fn open(dir: &Path) -> Result<(RunsKv, Option<String>), LogError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| io_err("creating projection store directory", dir, e))?;
        let manifest_path = dir.join(MANIFEST);
        let (snapshot, next_seq, unusable) = match std::fs::read(&manifest_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Snapshot::default(), 0, None),
            Err(e) => return Err(io_err("reading projection manifest", &manifest_path, e)),
            Ok(bytes) => match Manifest::decode(&bytes) {
                Err(why) => (
                    Snapshot::default(),
                    0,
                    Some(format!("the manifest {} {why}", manifest_path.display())),
                ),
                Ok(manifest) => {
                    let mut runs = Vec::with_capacity(manifest.runs.len());
                    let mut unusable = None;
                    for &(seq, bytes) in &manifest.runs {
                        match load_run(dir, seq, bytes)? {
                            Ok(run) => runs.push(Arc::new(run)),
                            Err(why) => {
                                unusable = Some(why);
                                break;
                            }
                        }
                    }
                    if unusable.is_some() {
                        (Snapshot::default(), 0, unusable)
                    } else {
                        let snapshot = Snapshot {
                            runs,
                            checkpoint: manifest.checkpoint,
                        };
                        (snapshot, manifest.next_seq, None)
                    }
                }
            },
        };
        if unusable.is_some() {
            remove_files_in(dir, &|_| true)?;
        } else {
            // Orphans of a crash: runs written but never named, or no longer
            // named, and temporary files.
            let named: Vec<String> = snapshot.runs.iter().map(|r| run_name(r.seq)).collect();
            remove_files_in(dir, &|name| {
                name != MANIFEST && !named.iter().any(|n| n == name)
            })?;
        }
        let store = RunsKv {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                current: RwLock::new(Arc::new(snapshot)),
                next_seq: Mutex::new(next_seq),
            }),
        };
        Ok((store, unusable))
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(
            &self
                .shared
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn publish(&self, snapshot: Snapshot) {
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        let snapshot = self.snapshot();
        for run in snapshot.runs.iter().rev() {
            if let Some(found) = run.get(key)? {
                return Ok(found);
            }
        }
        Ok(None)
    }

    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> RunsScan {
        RunsScan {
            runs: self.snapshot().runs.clone(),
            prefix: prefix.to_vec(),
            merge: None,
            done: false,
        }
    }

    pub(crate) fn checkpoint(&self) -> Option<u64> {
        self.snapshot().checkpoint
    }

    /// Writes `writes` (the last write of a key counts) as a new run and sets
    /// the checkpoint if one is given, atomically; then merges runs.
    pub(crate) fn apply(
        &self,
        mut writes: Vec<KvWrite>,
        checkpoint: Option<u64>,
    ) -> Result<(), LogError> {
        let mut next_seq = self
            .shared
            .next_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot();
        // Sorted by key; for each key, the last write (a stable sort keeps
        // writes of one key in order; reversed, dedup keeps the first).
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        writes.reverse();
        writes.dedup_by(|later, earlier| later.0 == earlier.0);
        writes.reverse();
        let checkpoint = checkpoint.or(current.checkpoint);
        let mut runs = current.runs.clone();
        if !writes.is_empty() {
            let seq = *next_seq;
            *next_seq += 1;
            let mut writer = RunWriter::create(&self.shared.dir, seq)?;
            for (key, value) in &writes {
                writer.push(key, value.as_deref())?;
            }
            let run = writer.finish()?.expect("at least one entry was pushed");
            runs.push(Arc::new(run));
        } else if checkpoint == current.checkpoint {
            return Ok(());
        }
        let snapshot = Snapshot { runs, checkpoint };
        write_manifest(&self.shared.dir, &snapshot.manifest(*next_seq))?;
        self.publish(snapshot);
        self.compact(&mut next_seq)
    }

    /// Merges runs until the policy in the module documentation is met.
    fn compact(&self, next_seq: &mut u64) -> Result<(), LogError> {
        loop {
            let current = self.snapshot();
            let runs = &current.runs;
            let n = runs.len();
            let inputs = if n >= 2 && 2 * runs[n - 1].bytes >= runs[n - 2].bytes {
                n - 2..n
            } else if n > RUNS_MAX {
                let first = (0..n - 1)
                    .min_by_key(|&i| runs[i].bytes + runs[i + 1].bytes)
                    .expect("more than one run");
                first..first + 2
            } else {
                return Ok(());
            };
            // A tombstone hides older entries: it can go only when no older run is left.
            let drop_tombstones = inputs.start == 0;
            let seq = *next_seq;
            *next_seq += 1;
            let mut merge = Merge::new(&runs[inputs.clone()], &[])?;
            let mut writer = RunWriter::create(&self.shared.dir, seq)?;
            while merge.next_with(&mut |key, value| {
                if value.is_some() || !drop_tombstones {
                    writer.push(key, value)?;
                }
                Ok(())
            })? {}
            let merged = writer.finish()?;
            let mut new_runs = runs[..inputs.start].to_vec();
            new_runs.extend(merged.map(Arc::new));
            new_runs.extend_from_slice(&runs[inputs.end..]);
            let snapshot = Snapshot {
                runs: new_runs,
                checkpoint: current.checkpoint,
            };
            write_manifest(&self.shared.dir, &snapshot.manifest(*next_seq))?;
            self.publish(snapshot);
            // Readers holding the old snapshot keep the files open.
            for run in &runs[inputs] {
                remove_file(&run.path)?;
            }
        }
    }

    /// Empties the store: a manifest without runs or checkpoint, then the
    /// run files go.
    pub(crate) fn clear(&self) -> Result<(), LogError> {
        let next_seq = self
            .shared
            .next_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot();
        let empty = Snapshot::default();
        write_manifest(&self.shared.dir, &empty.manifest(*next_seq))?;
        self.publish(empty);
        for run in &current.runs {
            remove_file(&run.path)?;
        }
        Ok(())
    }

    /// The bytes of each live run, oldest first.
    #[cfg(test)]
    fn shape(&self) -> Vec<u64> {
        self.snapshot().runs.iter().map(|r| r.bytes).collect()
    }
}

/// The iterator of [`RunsKv::scan_prefix`]: a merge over the runs of the
/// snapshot taken when it was made, newest winning, tombstones hidden.
pub(crate) struct RunsScan {
    runs: Vec<Arc<Run>>,
    prefix: Vec<u8>,
    /// Made on the first `next` (it reads the first block of every run).
    merge: Option<Merge>,
    done: bool,
}

impl RunsScan {
    fn next_pair(&mut self) -> Result<Option<KvPair>, LogError> {
        let merge = match &mut self.merge {
            Some(merge) => merge,
            None => self.merge.insert(Merge::new(&self.runs, &self.prefix)?),
        };
        while let Some((key, value)) = merge.next_entry()? {
            if !key.starts_with(&self.prefix) {
                // Keys with the prefix are contiguous: none follow.
                return Ok(None);
            }
            if let Some(value) = value {
                return Ok(Some((key, value)));
            }
        }
        Ok(None)
    }
}

impl Iterator for RunsScan {
    type Item = Result<KvPair, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_pair();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
            self.merge = None;
        }
        next.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bloom_filter_holds_every_key_and_few_others() {
        let present: Vec<u64> = (0..10_000u32)
            .map(|i| key_hash(format!("m/M{i:07}").as_bytes()))
            .collect();
        let bloom = Bloom::build(&present);
        assert!(present.iter().all(|&h| bloom.may_hold(h)));
        let false_positives = (10_000..20_000u32)
            .filter(|i| bloom.may_hold(key_hash(format!("m/M{i:07}").as_bytes())))
            .count();
        assert!(
            false_positives < 300,
            "{false_positives} of 10000 absent keys pass"
        );
        assert!(
            Bloom::default().may_hold(1),
            "no filter: every key may be there"
        );
    }

    #[test]
    fn varints_round_trip_and_bad_ones_are_refused() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            let mut at = 0;
            assert_eq!(get_varint(&out, &mut at), Some(n));
            assert_eq!(at, out.len());
            let mut at = 0;
            assert_eq!(get_varint(&out[..out.len() - 1], &mut at), None);
        }
        let mut at = 0;
        assert_eq!(get_varint(&[0xff; 11], &mut at), None);
        let mut at = 0;
        assert_eq!(
            get_varint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                &mut at
            ),
            None
        );
    }

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

    #[test]
    fn manifests_round_trip_and_damage_is_found() {
        let manifest = Manifest {
            next_seq: 9,
            checkpoint: Some(41),
            runs: vec![(3, 100), (8, 7)],
        };
        let bytes = manifest.encode();
        assert_eq!(Manifest::decode(&bytes), Ok(manifest));
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(Manifest::decode(&bad).is_err(), "flip at {at}");
            assert!(Manifest::decode(&bytes[..at]).is_err(), "cut at {at}");
        }
    }

    /// Tombstones in the live runs: the newest entry of each key that is a delete.
    fn tombstones(store: &RunsKv) -> usize {
        let snapshot = store.snapshot();
        let mut count = 0;
        for run in &snapshot.runs {
            let mut merge = Merge::new(std::slice::from_ref(run), &[]).expect("merge");
            while let Some((_, value)) = merge.next_entry().expect("entry") {
                count += usize::from(value.is_none());
            }
        }
        count
    }

    #[test]
    fn tombstones_are_kept_by_partial_merges_and_dropped_by_full_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, _) = RunsKv::open(tmp.path()).expect("open");
        let puts = |prefix: &str, n: u64| -> Vec<KvWrite> {
            (0..n)
                .map(|k| (format!("{prefix}{k:06}").into_bytes(), Some(vec![7u8; 30])))
                .collect()
        };
        store.apply(puts("a", 10_000), Some(1)).expect("base");
        store
            .apply(vec![(b"a000001".to_vec(), None)], Some(2))
            .expect("delete");
        store.apply(puts("b", 3), Some(3)).expect("small");
        assert_eq!(
            store.shape().len(),
            2,
            "the small runs merged, not the base"
        );
        assert_eq!(tombstones(&store), 1);
        assert_eq!(store.get(b"a000001").expect("get"), None);
        store.apply(puts("c", 10_000), Some(4)).expect("large");
        assert_eq!(store.shape().len(), 1);
        assert_eq!(tombstones(&store), 0);
        assert_eq!(store.get(b"a000001").expect("get"), None);
        assert_eq!(store.get(b"a000002").expect("get"), Some(vec![7u8; 30]));
    }

    #[test]
    fn merges_keep_the_runs_logarithmic() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, why) = RunsKv::open(tmp.path()).expect("open");
        assert!(why.is_none());
        for i in 0..200u64 {
            let writes = (0..50u64)
                .map(|k| {
                    (
                        format!("k{:06}", i * 50 + k).into_bytes(),
                        Some(vec![1u8; 40]),
                    )
                })
                .collect();
            store.apply(writes, Some(i)).expect("apply");
            let shape = store.shape();
            assert!(shape.len() <= RUNS_MAX, "runs: {shape:?}");
            for pair in shape.windows(2) {
                assert!(pair[0] > pair[1], "sizes decrease from oldest: {shape:?}");
            }
        }
        let keys = store.scan_prefix(b"k").count();
        assert_eq!(keys, 200 * 50);
    }
}
