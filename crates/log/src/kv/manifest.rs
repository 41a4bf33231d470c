//! The projection store's manifest (`MANIFEST`): the live runs, oldest first, and the
//! checkpoint. Replacing it is the commit point of every change to the store.
//!
//! Invariant: a manifest is used only if its magic, version, CRC and length check and it
//! names no run twice nor a run at or above its `next_seq`.

use std::path::Path;

use super::run_file::FORMAT_VERSION;
use crate::sorted_run::file::replace_file;
use crate::sorted_run::{le_u32, le_u64};
use crate::LogError;

const MANIFEST_MAGIC: [u8; 8] = *b"GJKVMAN1";
pub(crate) const MANIFEST: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";
/// magic, format version, next seq, checkpoint flag and value, run count, crc32.
const MANIFEST_FIXED_BYTES: usize = 8 + 4 + 8 + 1 + 8 + 4 + 4;
/// seq and bytes of one run in the manifest.
const MANIFEST_RUN_BYTES: usize = 16;

/// What the manifest says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The seq of the next run to write (greater than any ever named).
    pub next_seq: u64,
    pub checkpoint: Option<u64>,
    /// (seq, bytes) of each live run, oldest first.
    pub runs: Vec<(u64, u64)>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
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
    pub(crate) fn decode(bytes: &[u8]) -> Result<Manifest, &'static str> {
        if bytes.len() < MANIFEST_FIXED_BYTES {
            return Err("is shorter than a manifest");
        }
        if bytes[..8] != MANIFEST_MAGIC {
            return Err("does not start with the manifest magic");
        }
        let crc_at = bytes.len() - 4;
        if crc32fast::hash(&bytes[..crc_at]) != le_u32(bytes, crc_at) {
            return Err("fails its checksum");
        }
        if le_u32(bytes, 8) != FORMAT_VERSION {
            return Err("is of another format version");
        }
        let next_seq = le_u64(bytes, 12);
        let checkpoint = match bytes[20] {
            0 => None,
            1 => Some(le_u64(bytes, 21)),
            _ => return Err("has a bad checkpoint flag"),
        };
        let count = le_u32(bytes, 29) as usize;
        let runs_bytes = bytes.len() - MANIFEST_FIXED_BYTES;
        if !runs_bytes.is_multiple_of(MANIFEST_RUN_BYTES)
            || runs_bytes / MANIFEST_RUN_BYTES != count
        {
            return Err("does not have the length its run count says");
        }
        let runs: Vec<(u64, u64)> = bytes[33..crc_at]
            .chunks_exact(MANIFEST_RUN_BYTES)
            .map(|c| (le_u64(c, 0), le_u64(c, 8)))
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

    /// Replaces the manifest in `dir`: `MANIFEST.tmp`, fdatasync, rename, fsync of the
    /// directory.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), LogError> {
        replace_file(&dir.join(MANIFEST_TMP), &dir.join(MANIFEST), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
