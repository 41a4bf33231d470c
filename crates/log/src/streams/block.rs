//! The coding of one block of a stream-index run: up to [`BLOCK_ENTRIES`] entries, each coded
//! against the entry before it or against the block's base, then a CRC-32 of the block.
//!
//! ```text
//! entry: tag · [version part] · [hash delta] · position · offset   (unsigned LEB128 varints)
//! tag:   version part << 3 | offset back (4) | position back (2) | new hash (1)
//! ```
//!
//! * **new hash**: the entry's hash differs from the one before; the hash delta (the hash
//!   minus the one before) follows the tag. Without it the hash is the one before's.
//! * **version part**: for a new hash the version itself, else the version minus the one
//!   before (1 while a stream continues: the tag is then one byte). A part of
//!   [`VERSION_PART_ESCAPE`] or more is written as that escape, then the part as a varint.
//! * **position** and **offset**: for an entry continuing a hash, the distance from the one
//!   before's; for a new hash, from the block's base (below), so that a lookup passes over
//!   the entries of other hashes without working out their positions and offsets. Whether
//!   the entry's lies before is in the tag's "back" bits.
//!
//! A block's base is (its fence hash, version 0, the run's first position, offset 0): its
//! first entry (of the fence's hash) is coded against it, so a block is read alone, knowing
//! only its fence. The coding wraps: any sequence of entries round-trips, sorted or not; a
//! lookup ([`decode_block_of`]) relies on the order the run keeps, by hash.
//!
//! Not here: where blocks lie in the file, or what the fences hold (`run_file`).
//!
//! Invariant: decoding never panics and never allocates beyond the `count` entries asked
//! for, whatever the bytes; a block is decoded only after its CRC checks. Decoding a whole
//! block checks it holds `count` entries, all of positions in the run's range; a lookup
//! ([`decode_block_of`]) checks the positions of the entries it returns and stops at the first
//! greater hash.

use std::ops::Range;

use super::Entry;
use crate::sorted_run::file::CRC_BYTES;
use crate::sorted_run::le_u32;
use crate::varint;

/// Entries in a block (the last block of a run may hold fewer). A fence is kept for each.
pub(crate) const BLOCK_ENTRIES: u64 = 128;
/// The most bytes an entry takes: tag (escaped), version part, hash, position and offset.
const ENTRY_BYTES_MAX: usize = 5 * varint::MAX_BYTES;
/// The fewest bytes an entry takes: a tag, a position and an offset of one byte each.
const ENTRY_BYTES_MIN: usize = 3;
/// A version part this large or larger is written after the tag (the tag's bits above the
/// three flags cannot hold every u64).
const VERSION_PART_ESCAPE: u64 = u64::MAX >> TAG_FLAG_BITS;

const TAG_FLAG_BITS: u32 = 3;
const NEW_HASH: u64 = 1;
const POSITION_BACK: u64 = 2;
const OFFSET_BACK: u64 = 4;

/// The high bit of each of 8 bytes: a varint's bytes have it, but its last.
const CONTINUATION_BITS: u64 = 0x8080_8080_8080_8080;

const CUT_SHORT: &str = "has an entry cut short";
const OUTSIDE_RUN: &str = "has an entry of a position outside its run";

/// The bytes a block of `count` entries may take (its CRC included), as a range.
pub(crate) fn block_bytes_bounds(count: u64) -> Range<u64> {
    let crc = CRC_BYTES as u64;
    count * ENTRY_BYTES_MIN as u64 + crc..count * ENTRY_BYTES_MAX as u64 + crc + 1
}

/// The 8 bytes at `at` as a little-endian word and the length of the varint starting
/// there, if it ends within them.
#[inline]
fn short_varint(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let word = u64::from_le_bytes(*bytes.get(at..)?.first_chunk::<8>()?);
    let ends = !word & CONTINUATION_BITS;
    // The lowest end bit is bit 8k + 7 of the varint's last byte k.
    (ends != 0).then(|| (word, (ends.trailing_zeros() / 8 + 1) as usize))
}

/// Decodes a varint at `*at`, advancing it; `None` if cut short or longer than a u64.
/// (The LEB128 of [`varint`], read 8 bytes at a time where it can.)
#[inline(always)]
fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    // Most tags are one byte; most other varints end within 8 bytes.
    match bytes.get(*at) {
        Some(&b) if b < 0x80 => {
            *at += 1;
            Some(u64::from(b))
        }
        _ => match short_varint(bytes, *at) {
            Some((word, len)) => {
                *at += len;
                Some(compact(word, len))
            }
            // A varint of 9 or 10 bytes, or one near the end: a byte at a time.
            None => varint::get(bytes, at),
        },
    }
}

/// The varint of `len` bytes (at most 8) at the start of `word`.
#[inline(always)]
fn compact(word: u64, len: usize) -> u64 {
    let kept = if len == 8 {
        word
    } else {
        word & ((1 << (8 * len)) - 1)
    };
    // Byte i's seven low bits go to bits 7i..7i + 7.
    let mut n = 0u64;
    for i in 0..8 {
        n |= (kept >> i) & (0x7f << (7 * i));
    }
    n
}

/// Passes over two varints at `*at`; `None` as [`get_varint`].
#[inline(always)]
fn skip_two_varints(bytes: &[u8], at: &mut usize) -> Option<()> {
    // Usually both end within the next 8 bytes (a position and an offset: about 7).
    if let Some(word) = bytes.get(*at..).and_then(|rest| rest.first_chunk::<8>()) {
        let ends = !u64::from_le_bytes(*word) & CONTINUATION_BITS;
        let second = ends & ends.wrapping_sub(1);
        if second != 0 {
            *at += (second.trailing_zeros() / 8 + 1) as usize;
            return Some(());
        }
    }
    get_varint(bytes, at)?;
    get_varint(bytes, at).map(drop)
}

/// `to` as a distance from `from` and whether it lies before it.
fn distance(from: u64, to: u64) -> (u64, bool) {
    if to >= from {
        (to - from, false)
    } else {
        (from - to, true)
    }
}

/// `from` moved by `distance`, back or forth (wrapping: see the module documentation).
fn step(from: u64, distance: u64, back: bool) -> u64 {
    if back {
        from.wrapping_sub(distance)
    } else {
        from.wrapping_add(distance)
    }
}

/// The entry a block's first entry, and every entry of a new hash, is coded against.
fn block_base(first_hash: u64, first_position: u64) -> Entry {
    Entry {
        hash: first_hash,
        version: 0,
        position: first_position,
        offset_bytes: 0,
    }
}

/// Codes a block's entries; [`BlockEncoder::finish`] closes it with its CRC.
pub(crate) struct BlockEncoder {
    bytes: Vec<u8>,
    base: Entry,
    previous: Entry,
    count: u64,
}

impl BlockEncoder {
    /// A block whose fence is `first_hash` (its first entry's hash), of a run whose first
    /// position is `first_position`.
    pub(crate) fn new(first_hash: u64, first_position: u64) -> BlockEncoder {
        let base = block_base(first_hash, first_position);
        BlockEncoder {
            bytes: Vec::with_capacity(BLOCK_ENTRIES as usize * 10),
            base,
            previous: base,
            count: 0,
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn push(&mut self, entry: &Entry) {
        debug_assert!(
            self.count < BLOCK_ENTRIES,
            "a block holds {BLOCK_ENTRIES} entries"
        );
        let new_hash = entry.hash != self.previous.hash;
        let anchor = if new_hash { self.base } else { self.previous };
        let version_part = entry.version.wrapping_sub(anchor.version);
        let (position, position_back) = distance(anchor.position, entry.position);
        let (offset, offset_back) = distance(anchor.offset_bytes, entry.offset_bytes);
        let flag = |set: bool, bit: u64| if set { bit } else { 0 };
        let flags = flag(new_hash, NEW_HASH)
            | flag(position_back, POSITION_BACK)
            | flag(offset_back, OFFSET_BACK);
        varint::put(
            &mut self.bytes,
            (version_part.min(VERSION_PART_ESCAPE) << TAG_FLAG_BITS) | flags,
        );
        if version_part >= VERSION_PART_ESCAPE {
            varint::put(&mut self.bytes, version_part);
        }
        if new_hash {
            varint::put(&mut self.bytes, entry.hash.wrapping_sub(self.previous.hash));
        }
        varint::put(&mut self.bytes, position);
        varint::put(&mut self.bytes, offset);
        self.previous = *entry;
        self.count += 1;
    }

    /// The block's bytes: its entries, then their CRC-32.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.bytes);
        self.bytes.extend_from_slice(&crc.to_le_bytes());
        self.bytes
    }
}

/// An entry's tag, version part and hash: what comes before its position and offset.
struct Head {
    tag: u64,
    version_part: u64,
    hash: u64,
}

/// Reads a block's entries one after the other.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    base: Entry,
    /// The entry before; of an entry passed over, only the hash.
    previous: Entry,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], first_hash: u64, first_position: u64) -> Cursor<'a> {
        let base = block_base(first_hash, first_position);
        Cursor {
            bytes,
            at: 0,
            base,
            previous: base,
        }
    }

    #[inline]
    fn head(&mut self) -> Option<Head> {
        let tag = get_varint(self.bytes, &mut self.at)?;
        let mut version_part = tag >> TAG_FLAG_BITS;
        if version_part == VERSION_PART_ESCAPE {
            version_part = get_varint(self.bytes, &mut self.at)?;
        }
        let mut hash = self.previous.hash;
        if tag & NEW_HASH != 0 {
            hash = hash.wrapping_add(get_varint(self.bytes, &mut self.at)?);
        }
        Some(Head {
            tag,
            version_part,
            hash,
        })
    }

    /// The entry whose head was read last. Its hash's entry before it was read in full too,
    /// unless it is the first of its hash in the block (then coded against the base).
    #[inline]
    fn entry(&mut self, head: &Head) -> Option<Entry> {
        let new_hash = head.tag & NEW_HASH != 0;
        let anchor = if new_hash { self.base } else { self.previous };
        let position = get_varint(self.bytes, &mut self.at)?;
        let offset = get_varint(self.bytes, &mut self.at)?;
        let entry = Entry {
            hash: head.hash,
            version: anchor.version.wrapping_add(head.version_part),
            position: step(anchor.position, position, head.tag & POSITION_BACK != 0),
            offset_bytes: step(anchor.offset_bytes, offset, head.tag & OFFSET_BACK != 0),
        };
        self.previous = entry;
        Some(entry)
    }

    /// Passes over the rest of the entry whose head was read last.
    #[inline]
    fn skip(&mut self, head: &Head) -> Option<()> {
        skip_two_varints(self.bytes, &mut self.at)?;
        self.previous.hash = head.hash;
        Some(())
    }

    fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// The entries of `block` (its CRC checked and cut off), if its length fits `count` entries.
fn checked_entries(block: &[u8], count: u64) -> Result<&[u8], &'static str> {
    let Some(crc_at) = block.len().checked_sub(CRC_BYTES) else {
        return Err("is shorter than its checksum");
    };
    if count > BLOCK_ENTRIES || !block_bytes_bounds(count).contains(&(block.len() as u64)) {
        return Err("does not have the length its entry count allows");
    }
    if crc32fast::hash(&block[..crc_at]) != le_u32(block, crc_at) {
        return Err("fails its checksum");
    }
    Ok(&block[..crc_at])
}

/// Decodes a block of `count` entries whose fence is `first_hash`, of a run of the positions
/// `positions`, onto `out`. `Err` says why the bytes are not such a block.
pub(crate) fn decode_block(
    block: &[u8],
    count: u64,
    first_hash: u64,
    positions: &Range<u64>,
    out: &mut Vec<Entry>,
) -> Result<(), &'static str> {
    decode_entries(
        checked_entries(block, count)?,
        count,
        first_hash,
        positions,
        out,
    )
}

/// Decodes the entries of a block (without its CRC): see [`decode_block`].
fn decode_entries(
    bytes: &[u8],
    count: u64,
    first_hash: u64,
    positions: &Range<u64>,
    out: &mut Vec<Entry>,
) -> Result<(), &'static str> {
    if count > BLOCK_ENTRIES {
        return Err("holds more entries than a block");
    }
    let mut cursor = Cursor::new(bytes, first_hash, positions.start);
    out.reserve(count as usize);
    for _ in 0..count {
        let head = cursor.head().ok_or(CUT_SHORT)?;
        let entry = cursor.entry(&head).ok_or(CUT_SHORT)?;
        if !positions.contains(&entry.position) {
            return Err(OUTSIDE_RUN);
        }
        out.push(entry);
    }
    if !cursor.at_end() {
        return Err("has bytes after its last entry");
    }
    Ok(())
}

/// Like [`decode_block`], but only the entries of `hash` go onto `out`: the others are
/// passed over, and the block is read no further than its entries of `hash` (it is sorted
/// by hash).
pub(crate) fn decode_block_of(
    block: &[u8],
    count: u64,
    first_hash: u64,
    positions: &Range<u64>,
    hash: u64,
    out: &mut Vec<Entry>,
) -> Result<(), &'static str> {
    let bytes = checked_entries(block, count)?;
    let mut cursor = Cursor::new(bytes, first_hash, positions.start);
    for _ in 0..count {
        let head = cursor.head().ok_or(CUT_SHORT)?;
        if head.hash > hash {
            return Ok(());
        }
        if head.hash != hash {
            cursor.skip(&head).ok_or(CUT_SHORT)?;
            continue;
        }
        let entry = cursor.entry(&head).ok_or(CUT_SHORT)?;
        if !positions.contains(&entry.position) {
            return Err(OUTSIDE_RUN);
        }
        out.push(entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(entries: &[Entry], first_position: u64) -> Vec<u8> {
        let mut encoder = BlockEncoder::new(entries[0].hash, first_position);
        for entry in entries {
            encoder.push(entry);
        }
        encoder.finish()
    }

    fn entry((hash, version, position, offset_bytes): (u64, u64, u64, u64)) -> Entry {
        Entry {
            hash,
            version,
            position,
            offset_bytes,
        }
    }

    /// Up to a block of entries of any values, sorted as in a run or not.
    fn any_entries() -> impl Strategy<Value = (Vec<Entry>, bool)> {
        let fields = (any::<u64>(), any::<u64>(), 0..u64::MAX, any::<u64>());
        (
            proptest::collection::vec(fields.prop_map(entry), 1..=BLOCK_ENTRIES as usize),
            any::<bool>(),
        )
    }

    proptest! {
        #[test]
        fn blocks_round_trip_any_entries((mut entries, sorted) in any_entries()) {
            if sorted {
                entries.sort_unstable_by_key(Entry::key);
            }
            let from = entries.iter().map(|e| e.position).min().expect("one entry");
            let to = entries.iter().map(|e| e.position).max().expect("one entry") + 1;
            let bytes = encode(&entries, from);
            let count = entries.len() as u64;
            prop_assert!(block_bytes_bounds(count).contains(&(bytes.len() as u64)));
            let mut decoded = Vec::new();
            prop_assert_eq!(
                decode_block(&bytes, count, entries[0].hash, &(from..to), &mut decoded),
                Ok(())
            );
            prop_assert_eq!(&decoded, &entries);
            if sorted {
                // A lookup finds each hash's entries, and none of a hash the block lacks.
                for hash in entries.iter().map(|e| e.hash).chain([0, u64::MAX, entries[0].hash ^ 1]) {
                    let mut found = Vec::new();
                    let positions = from..to;
                    decode_block_of(&bytes, count, entries[0].hash, &positions, hash, &mut found)
                        .expect("decoded");
                    let expected: Vec<Entry> =
                        entries.iter().filter(|e| e.hash == hash).copied().collect();
                    prop_assert_eq!(found, expected);
                }
            }
        }

        #[test]
        fn varints_read_back_wherever_they_end(n in any::<u64>(), after in 0..10usize) {
            let mut bytes = vec![0xff];
            varint::put(&mut bytes, n);
            let end = bytes.len();
            bytes.extend(std::iter::repeat_n(0x80, after));
            let mut at = 1;
            prop_assert_eq!(get_varint(&bytes, &mut at), Some(n));
            prop_assert_eq!(at, end);
            let mut twice = bytes[..end].to_vec();
            twice.extend_from_slice(&bytes[1..]);
            let mut at = 1;
            prop_assert_eq!(skip_two_varints(&twice, &mut at), Some(()));
            prop_assert_eq!(at, 2 * end - 1);
        }

        #[test]
        fn blocks_of_streams_round_trip(
            streams in proptest::collection::vec((any::<u64>(), 1..1_000_000u64, 1..40usize), 1..20),
            gap in 1..5_000u64,
        ) {
            // Streams in hash order, versions up by one, positions and offsets ascending
            // within a stream: the entries of a run.
            let mut entries = Vec::new();
            for (i, &(hash, first_version, versions)) in streams.iter().enumerate() {
                for v in 0..versions as u64 {
                    let position = 1_000 + (i as u64 * 7 + v * gap) % 1_000_000;
                    entries.push(entry((hash, first_version + v, position, position * 150)));
                }
            }
            entries.sort_unstable_by_key(Entry::key);
            for block in entries.chunks(BLOCK_ENTRIES as usize) {
                let bytes = encode(block, 1_000);
                let mut decoded = Vec::new();
                let positions = 1_000..1_001_000;
                let count = block.len() as u64;
                prop_assert_eq!(
                    decode_block(&bytes, count, block[0].hash, &positions, &mut decoded),
                    Ok(())
                );
                prop_assert_eq!(&decoded, block);
                let hash = block[block.len() / 2].hash;
                let mut found = Vec::new();
                decode_block_of(&bytes, count, block[0].hash, &positions, hash, &mut found)
                    .expect("decoded");
                prop_assert!(found.iter().all(|e| e.hash == hash));
                prop_assert_eq!(found.len(), block.iter().filter(|e| e.hash == hash).count());
            }
        }

        #[test]
        fn any_bytes_decode_without_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2_000),
            count in 0..=BLOCK_ENTRIES + 2,
            first_hash in any::<u64>(),
            from in any::<u64>(),
            len in any::<u64>(),
        ) {
            let positions = from..from.saturating_add(len);
            let mut out = Vec::new();
            let _ = decode_entries(&bytes, count, first_hash, &positions, &mut out);
            prop_assert!(out.len() as u64 <= count);
            let _ = decode_block(&bytes, count, first_hash, &positions, &mut Vec::new());
            let mut found = Vec::new();
            let _ = decode_block_of(&bytes, count, first_hash, &positions, first_hash, &mut found);
        }

        #[test]
        fn damaged_blocks_decode_without_panic_and_fail_their_checksum(
            (entries, _) in any_entries(),
            flip_at in any::<usize>(),
            flip in 1..=255u8,
            cut in any::<usize>(),
        ) {
            let mut bytes = encode(&entries, 0);
            let count = entries.len() as u64;
            let at = flip_at % bytes.len();
            bytes[at] ^= flip;
            let (hash, all) = (entries[0].hash, 0..u64::MAX);
            // The entries alone, damaged: decoded or refused, never a panic.
            let crc_at = bytes.len() - CRC_BYTES;
            let _ = decode_entries(&bytes[..crc_at], count, hash, &all, &mut Vec::new());
            let _ = decode_entries(&bytes[..cut % crc_at], count, hash, &all, &mut Vec::new());
            // The block: its checksum catches the damage.
            let decoded = decode_block(&bytes, count, hash, &all, &mut Vec::new());
            prop_assert!(decoded.is_err());
            let found = decode_block_of(&bytes, count, hash, &all, hash, &mut Vec::new());
            prop_assert!(found.is_err());
        }
    }

    #[test]
    fn a_stream_continuing_takes_an_entry_a_few_bytes() {
        // One stream, versions up by one, each record 40 positions and 6 000 bytes after
        // the one before: a one-byte tag and position, a two-byte offset.
        let entries: Vec<Entry> = (0..BLOCK_ENTRIES)
            .map(|v| entry((0x9e37_79b9_7f4a_7c15, 500 + v, 2_000 + 40 * v, 6_000 * v)))
            .collect();
        let bytes = encode(&entries, 0);
        let first_bytes = 2 + 2 + 1; // version 500, position 2 000, offset 0
        let expected = first_bytes + (BLOCK_ENTRIES as usize - 1) * 4 + CRC_BYTES;
        assert_eq!(bytes.len(), expected);
    }

    #[test]
    fn blocks_that_do_not_fit_their_count_or_run_are_refused() {
        let entries: Vec<Entry> = (0..3).map(|v| entry((7, v + 1, 10 + v, 100 * v))).collect();
        let bytes = encode(&entries, 10);
        let decode = |bytes: &[u8], count: u64, positions: Range<u64>| {
            decode_block(bytes, count, 7, &positions, &mut Vec::new())
        };
        assert_eq!(decode(&bytes, 3, 10..13), Ok(()));
        assert!(
            decode(&bytes, 2, 10..13).is_err(),
            "bytes after the last entry"
        );
        assert!(decode(&bytes, 4, 10..13).is_err(), "an entry cut short");
        assert!(
            decode(&bytes, 3, 10..12).is_err(),
            "a position past the run"
        );
        assert!(
            decode(&bytes[..3], 3, 10..13).is_err(),
            "shorter than its checksum"
        );
        let mut escaped = BlockEncoder::new(7, 0);
        escaped.push(&entry((7, u64::MAX, 0, u64::MAX)));
        escaped.push(&entry((7, 3, u64::MAX - 1, 0)));
        let escaped = escaped.finish();
        let mut out = Vec::new();
        assert_eq!(
            decode_block(&escaped, 2, 7, &(0..u64::MAX), &mut out),
            Ok(())
        );
        assert_eq!(out[1], entry((7, 3, u64::MAX - 1, 0)));
    }
}
