//! The sorted-run machinery that the stream index (`crate::streams`) and the projection
//! store's runs backend (`crate::kv::runs`) share: immutable files of entries sorted by key,
//! written once and read by positioned reads.
//!
//! * [`file`]: writing a run file (to a `.tmp` name, buffered, then a trailer of fences and a
//!   footer closed by a CRC-32 of the whole trailer, `fdatasync`, rename into place) and
//!   reading and checking a run's trailer at open; replacing a small file (a manifest)
//!   atomically.
//! * [`merge`]: the k-way merge of sorted sources (the newest source wins a key) and the
//!   merge policy that keeps the number of runs logarithmic.
//! * [`bloom`]: the Bloom filter over a run's keys.
//! * Here: the stable 64-bit hash both stores put on disk ([`hash64`]), positioned reads, and
//!   deleting files.
//!
//! Not here: what an entry is, how entries are laid out in a run, what the fences hold and
//! what names a run (the stream index: delta-coded entries in CRC'd blocks of 128, a run per
//! position range, its meta in the footer; the projection store: prefix-compressed key/value
//! entries in CRC'd blocks, listed by a manifest). Each store keeps its own layout and in-memory state.
//!
//! Invariant held here: a run file exists under its final name only once all of it, its
//! trailer's CRC included, is `fdatasync`ed; a trailer is used only after its CRC checks.

pub(crate) mod bloom;
pub(crate) mod file;
pub(crate) mod merge;

use std::fs::File;
use std::path::Path;

use crate::error::{io_err, LogError};

/// Buffer size of the writers and sequential readers of run files.
pub(crate) const IO_BUFFER_BYTES: usize = 1 << 20;

/// The stable 64-bit hash of a name or key stored in runs (FNV-1a, then the murmur3
/// finaliser). Changing it changes both run formats.
#[inline]
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The little-endian u32 at `at` (the caller has checked the length).
#[inline]
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// The little-endian u64 at `at` (the caller has checked the length).
#[inline]
pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
pub(crate) fn read_exact_at(
    file: &File,
    mut buf: &mut [u8],
    mut offset: u64,
) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Deletes a regular file, ignoring one that is already gone; a link is refused, never
/// removed or followed (`crate::files`).
pub(crate) use crate::files::remove_own_file as remove_file;

/// The files (not subdirectories) in `dir` whose names are UTF-8, as (name, path). A link
/// among them refuses the whole listing ([`LogError::Symlink`]).
pub(crate) fn list_files(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>, LogError> {
    let mut files = Vec::new();
    for item in crate::files::list_dir(dir, "listing index files in")? {
        let is_file = item
            .file_type()
            .map_err(|e| io_err("listing index files in", dir, e))?
            .is_file();
        if let (true, Ok(name)) = (is_file, item.file_name().into_string()) {
            files.push((name, item.path()));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable() {
        // Stored in both run formats: must never change without new formats.
        assert_eq!(hash64(b"m/M000001"), 0x4948178c736ce352);
        assert_ne!(hash64(b"m/M000001"), hash64(b"m/M000002"));
    }
}
