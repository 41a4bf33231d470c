//! The durable end the writer publishes for readers: `DIR/DURABLE_END`.
//!
//! The writer's syncer rewrites this small file (in place, one positioned write) after every
//! successful `fdatasync`, *before* the batches it covers are acknowledged; the writer's open
//! writes it once it has recovered (after making the recovered segment's bytes durable). It
//! holds an [`IndexMeta`]: how many records are durable, the segment and byte offsets of the
//! last one and its hash, with a magic and a CRC.
//!
//! Invariants as the code holds them: the file never names a record that was not durable when
//! it was written (so after a crash it still names records recovery keeps); it is never
//! synced itself (a crash may leave an older value or a damaged one, which readers treat as
//! absent); it is opened without following a link, like every file of the log. A reader
//! ([`read`]) checks the CRC and retries a torn read (a write landing while it reads) a few
//! times; it never writes the file.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::io_err;
use crate::files;
use crate::index::{IndexMeta, META_BYTES};
use crate::LogError;

/// The file's name in the log's directory.
pub const DURABLE_END_FILE: &str = "DURABLE_END";
const MAGIC: [u8; 8] = *b"GJDURAB1";
const FILE_BYTES: usize = MAGIC.len() + META_BYTES + 4;
/// Reads of a file whose CRC fails (a write landing meanwhile) before it counts as absent.
const TORN_READS_MAX: u32 = 8;

/// The writer's handle on `DIR/DURABLE_END`.
#[derive(Debug)]
pub(crate) struct Publisher {
    file: File,
    path: PathBuf,
}

impl Publisher {
    /// Opens (creating) the file in `dir`, never through a link.
    pub(crate) fn open(dir: &Path) -> Result<Publisher, LogError> {
        let path = dir.join(DURABLE_END_FILE);
        let file = files::open(
            &path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            "opening the durable end file",
        )?;
        Ok(Publisher { file, path })
    }

    /// Says that every record up to `meta` is durable. Call only once it is.
    pub(crate) fn publish(&self, meta: &IndexMeta) -> io::Result<()> {
        files::write_all_at(&self.file, &encode(meta), 0)
    }

    /// [`publish`](Publisher::publish) with the error naming the file.
    pub(crate) fn publish_or_err(&self, meta: &IndexMeta) -> Result<(), LogError> {
        self.publish(meta)
            .map_err(|e| io_err("writing the durable end file", &self.path, e))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn encode(meta: &IndexMeta) -> [u8; FILE_BYTES] {
    let mut out = [0u8; FILE_BYTES];
    out[..MAGIC.len()].copy_from_slice(&MAGIC);
    out[MAGIC.len()..MAGIC.len() + META_BYTES].copy_from_slice(&meta.encode());
    let crc = crc32fast::hash(&out[..FILE_BYTES - 4]);
    out[FILE_BYTES - 4..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<IndexMeta> {
    if bytes.len() != FILE_BYTES || bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[FILE_BYTES - 4..].try_into().ok()?);
    if crc32fast::hash(&bytes[..FILE_BYTES - 4]) != crc {
        return None;
    }
    IndexMeta::decode(&bytes[MAGIC.len()..MAGIC.len() + META_BYTES])
}

/// The durable end the writer last published in `dir`, or `None` if there is no such file
/// (a log last written before there was one) or it stays unreadable (a crash tore it).
pub(crate) fn read(dir: &Path) -> Result<Option<IndexMeta>, LogError> {
    let path = dir.join(DURABLE_END_FILE);
    for _ in 0..TORN_READS_MAX {
        let bytes = match files::read(&path, "reading the durable end file") {
            Ok(bytes) => bytes,
            Err(e) if files::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        if let Some(meta) = decode(&bytes) {
            return Ok(Some(meta));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(next_position: u64) -> IndexMeta {
        IndexMeta {
            next_position,
            segment: 3,
            end_offset_bytes: 900,
            last_record_offset_bytes: 800,
            last_hash: [7; 32],
        }
    }

    #[test]
    fn a_published_end_reads_back_and_a_damaged_one_reads_as_absent() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read(tmp.path()).unwrap(), None);
        let publisher = Publisher::open(tmp.path()).unwrap();
        publisher.publish(&meta(5)).unwrap();
        assert_eq!(read(tmp.path()).unwrap(), Some(meta(5)));
        publisher.publish(&meta(9)).unwrap();
        assert_eq!(read(tmp.path()).unwrap(), Some(meta(9)));
        let mut bytes = std::fs::read(publisher.path()).unwrap();
        bytes[10] ^= 1;
        std::fs::write(publisher.path(), &bytes).unwrap();
        assert_eq!(read(tmp.path()).unwrap(), None);
    }
}
