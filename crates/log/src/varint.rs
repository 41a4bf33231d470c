//! Unsigned LEB128 varints, the one integer coding of the log's files: 7 bits a byte, least
//! significant first, the high bit set on every byte but the last. Frames (format 2), the
//! stream index's blocks and the projection store's runs all write them with [`put`] and read
//! them with [`get`] (the stream index with faster paths of its own on top, `streams::block`).

/// A varint of a u64 has at most this many bytes.
pub(crate) const MAX_BYTES: usize = 10;

/// Bytes of `value` as a varint.
pub(crate) const fn bytes_of(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `value` as a varint.
pub(crate) fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decodes a varint at `*at`, advancing it; `None` if cut short or longer than a u64.
pub(crate) fn get(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..MAX_BYTES {
        let byte = *bytes.get(*at)?;
        *at += 1;
        if i == MAX_BYTES - 1 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_bad_ones_are_refused() {
        for n in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put(&mut out, n);
            assert_eq!(out.len(), bytes_of(n), "{n}");
            let mut at = 0;
            assert_eq!(get(&out, &mut at), Some(n));
            assert_eq!(at, out.len());
            let mut at = 0;
            assert_eq!(get(&out[..out.len() - 1], &mut at), None);
        }
        let mut at = 0;
        assert_eq!(get(&[0xff; 11], &mut at), None);
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(get(&over, &mut 0), None);
    }
}
