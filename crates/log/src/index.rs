//! Key and value layouts of the sled stream-index tree.
//!
//! One tree holds three kinds of keys, told apart by their first byte:
//! - `s | len: u8 | stream | version: u64 BE` → `Location` (24 bytes)
//! - `p | position: u64 BE` → `Location`: sparse position points for `read_range`
//! - `m` → `IndexMeta`: how far the index reaches

/// Tag of stream keys.
const TAG_STREAM: u8 = b's';
/// Tag of sparse position keys.
const TAG_SPARSE: u8 = b'p';
/// The key of the index's meta record.
pub(crate) const META_KEY: &[u8] = b"m";
/// Layout version of the index; another value makes open rebuild the index.
const INDEX_FORMAT: u8 = 1;
/// A sparse position point is stored at least every this many records
/// (and at the start of every segment).
pub(crate) const SPARSE_EVERY_RECORDS: u64 = 1024;

/// Clears `out` and writes the key prefix shared by all of a stream's keys.
pub(crate) fn stream_prefix(out: &mut Vec<u8>, stream: &str) {
    out.clear();
    out.push(TAG_STREAM);
    // Stream names are at most 255 bytes; callers check before using a name
    // from outside, and longer names simply have no keys.
    out.push(stream.len().min(255) as u8);
    out.extend_from_slice(stream.as_bytes());
}

/// Clears `out` and writes the key of (stream, version).
pub(crate) fn stream_key(out: &mut Vec<u8>, stream: &str, version: u64) {
    stream_prefix(out, stream);
    out.extend_from_slice(&version.to_be_bytes());
}

/// The version at the end of a stream key.
pub(crate) fn version_from_key(key: &[u8]) -> Option<u64> {
    let tail = key
        .len()
        .checked_sub(8)
        .and_then(|start| key.get(start..))?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

pub(crate) fn sparse_key(position: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = TAG_SPARSE;
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

pub(crate) fn position_from_sparse_key(key: &[u8]) -> Option<u64> {
    match key {
        [TAG_SPARSE, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// Where a record is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub position: u64,
    pub segment: u64,
    pub offset_bytes: u64,
}

impl Location {
    pub fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.position.to_be_bytes());
        out[8..16].copy_from_slice(&self.segment.to_be_bytes());
        out[16..].copy_from_slice(&self.offset_bytes.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Location> {
        let bytes: &[u8; 24] = bytes.try_into().ok()?;
        let (p, rest) = bytes.split_at(8);
        let (s, o) = rest.split_at(8);
        Some(Location {
            position: u64::from_be_bytes(p.try_into().ok()?),
            segment: u64::from_be_bytes(s.try_into().ok()?),
            offset_bytes: u64::from_be_bytes(o.try_into().ok()?),
        })
    }
}

/// How far the index reaches: every record before `next_position` is indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexMeta {
    /// Number of indexed records (= the next position).
    pub next_position: u64,
    /// The segment holding the last indexed record (0 when nothing is indexed).
    pub segment: u64,
    /// Byte offset in `segment` just past the last indexed record.
    pub end_offset_bytes: u64,
    /// Byte offset in `segment` of the last indexed record.
    pub last_record_offset_bytes: u64,
    /// Hash of the last indexed record (zeros when nothing is indexed).
    pub last_hash: [u8; 32],
}

const META_BYTES: usize = 1 + 8 * 4 + 32;

impl IndexMeta {
    pub fn empty() -> IndexMeta {
        IndexMeta {
            next_position: 0,
            segment: 0,
            end_offset_bytes: 0,
            last_record_offset_bytes: 0,
            last_hash: [0; 32],
        }
    }

    pub fn encode(&self) -> [u8; META_BYTES] {
        let mut out = [0u8; META_BYTES];
        out[0] = INDEX_FORMAT;
        out[1..9].copy_from_slice(&self.next_position.to_be_bytes());
        out[9..17].copy_from_slice(&self.segment.to_be_bytes());
        out[17..25].copy_from_slice(&self.end_offset_bytes.to_be_bytes());
        out[25..33].copy_from_slice(&self.last_record_offset_bytes.to_be_bytes());
        out[33..].copy_from_slice(&self.last_hash);
        out
    }

    /// `None` for bytes of another layout version or length.
    pub fn decode(bytes: &[u8]) -> Option<IndexMeta> {
        let bytes: &[u8; META_BYTES] = bytes.try_into().ok()?;
        if bytes[0] != INDEX_FORMAT {
            return None;
        }
        let u = |range: std::ops::Range<usize>| -> Option<u64> {
            Some(u64::from_be_bytes(bytes.get(range)?.try_into().ok()?))
        };
        Some(IndexMeta {
            next_position: u(1..9)?,
            segment: u(9..17)?,
            end_offset_bytes: u(17..25)?,
            last_record_offset_bytes: u(25..33)?,
            last_hash: bytes[33..].try_into().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip() {
        let meta = IndexMeta {
            next_position: 5,
            segment: 3,
            end_offset_bytes: 900,
            last_record_offset_bytes: 800,
            last_hash: [7; 32],
        };
        assert_eq!(IndexMeta::decode(&meta.encode()), Some(meta));
        assert_eq!(IndexMeta::decode(b"x"), None);
        let loc = Location {
            position: 1,
            segment: 2,
            offset_bytes: 3,
        };
        assert_eq!(Location::decode(&loc.encode()), Some(loc));
        let mut key = Vec::new();
        stream_key(&mut key, "a", 42);
        assert_eq!(version_from_key(&key), Some(42));
        assert_eq!(position_from_sparse_key(&sparse_key(9)), Some(9));
    }

    #[test]
    fn stream_prefixes_do_not_overlap() {
        // "ab" must not be found under the prefix of "a".
        let mut a = Vec::new();
        stream_prefix(&mut a, "a");
        let mut ab = Vec::new();
        stream_key(&mut ab, "ab", 1);
        assert!(!ab.starts_with(&a));
    }
}
