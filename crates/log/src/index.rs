//! Record locations and the index meta (how far the stream index reaches).

/// Layout version of the index meta and of the stream-index runs; a run with
/// another value is deleted at open and its records indexed again.
/// (Version 1 kept the stream index in sled; see `docs/log-format.md`.)
const INDEX_FORMAT: u8 = 2;

/// Where a record is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub position: u64,
    pub segment: u64,
    pub offset_bytes: u64,
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

pub(crate) const META_BYTES: usize = 1 + 8 * 4 + 32;

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
    fn meta_round_trips() {
        let meta = IndexMeta {
            next_position: 5,
            segment: 3,
            end_offset_bytes: 900,
            last_record_offset_bytes: 800,
            last_hash: [7; 32],
        };
        assert_eq!(IndexMeta::decode(&meta.encode()), Some(meta));
        assert_eq!(IndexMeta::decode(b"x"), None);
        let mut old = meta.encode();
        old[0] = 1;
        assert_eq!(IndexMeta::decode(&old), None);
    }
}
