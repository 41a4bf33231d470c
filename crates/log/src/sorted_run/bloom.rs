//! A Bloom filter over a run's keys, stored in the run: [`BLOOM_BITS_PER_KEY`] bits a key,
//! [`BLOOM_PROBES`] probes at `(h + i · ((h >> 32) | 1)) mod bits` where `h` is
//! [`hash64`](super::hash64) of the key; bit `b` is bit `b mod 8` of byte `b / 8`.
//!
//! Invariant: no false negatives (a key built into the filter always may be there); an
//! empty filter rules nothing out.

/// Bits per key and probes per lookup: about 1% of absent keys pass.
pub(crate) const BLOOM_BITS_PER_KEY: u64 = 10;
pub(crate) const BLOOM_PROBES: u64 = 6;

/// A Bloom filter; empty: every key may be there.
#[derive(Default)]
pub(crate) struct Bloom {
    pub bits: Vec<u8>,
}

impl Bloom {
    /// The filter of the keys with these hashes (at least 64 bits).
    pub(crate) fn build(hashes: &[u64]) -> Bloom {
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

    #[inline]
    fn probes(&self, hash: u64) -> impl Iterator<Item = u64> {
        let bits = self.bits.len() as u64 * 8;
        let step = (hash >> 32) | 1;
        (0..BLOOM_PROBES).map(move |i| hash.wrapping_add(i.wrapping_mul(step)) % bits)
    }

    /// False if the key with this hash is certainly not in the run.
    #[inline]
    pub(crate) fn may_hold(&self, hash: u64) -> bool {
        if self.bits.is_empty() {
            return true;
        }
        self.probes(hash)
            .all(|bit| self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sorted_run::hash64;

    #[test]
    fn the_bloom_filter_holds_every_key_and_few_others() {
        let present: Vec<u64> = (0..10_000u32)
            .map(|i| hash64(format!("m/M{i:07}").as_bytes()))
            .collect();
        let bloom = Bloom::build(&present);
        assert!(present.iter().all(|&h| bloom.may_hold(h)));
        let false_positives = (10_000..20_000u32)
            .filter(|i| bloom.may_hold(hash64(format!("m/M{i:07}").as_bytes())))
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
}
