//! Writing and opening run files: a body of entries, then a trailer (the layout's fences and
//! footer) closed by a CRC-32 of the whole trailer.
//!
//! ```text
//! body (the layout's entries) · trailer: section · footer (starts with an 8-byte magic) · crc32 (u32 LE)
//! ```
//!
//! The CRC covers the trailer only: a layout checks its entries itself (the blocks of both
//! layouts carry CRCs of their own; the stream index also confirms every entry against the
//! record it points at).
//!
//! Invariants: a run file has its final name only once all of it is `fdatasync`ed;
//! [`read_trailer`] hands out a trailer only after its CRC checks, and never panics or
//! allocates more than the file holds, whatever its bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{le_u32, read_exact_at, remove_file, IO_BUFFER_BYTES};
use crate::error::{io_err, LogError};
use crate::files;

/// Bytes of the CRC that closes a trailer.
pub(crate) const CRC_BYTES: usize = 4;

/// A run file being written under its `.tmp` name.
pub(crate) struct RunFileWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    body_bytes: u64,
}

impl RunFileWriter {
    /// Creates `tmp` (`O_EXCL`, after removing a stale regular file of that name; a link
    /// there is refused); [`RunFileWriter::finish`] renames it to `path`.
    pub(crate) fn create(tmp: PathBuf, path: PathBuf) -> Result<RunFileWriter, LogError> {
        let file = files::create_temporary(&tmp, "creating index run")?;
        Ok(RunFileWriter {
            path,
            tmp,
            out: BufWriter::with_capacity(IO_BUFFER_BYTES, file),
            body_bytes: 0,
        })
    }

    /// The name the run gets once finished.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the body written so far (the offset of the next byte).
    #[inline]
    pub(crate) fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Appends bytes to the body.
    #[inline]
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        self.out
            .write_all(bytes)
            .map_err(|e| io_err("writing index run", &self.tmp, e))?;
        self.body_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Appends `trailer` and its CRC, `fdatasync`s and renames the file into place. Returns
    /// the file (open for reading) and its length in bytes.
    pub(crate) fn finish(mut self, mut trailer: Vec<u8>) -> Result<(File, u64), LogError> {
        let crc = crc32fast::hash(&trailer);
        trailer.extend_from_slice(&crc.to_le_bytes());
        self.out
            .write_all(&trailer)
            .map_err(|e| io_err("writing index run", &self.tmp, e))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| io_err("writing index run", &self.tmp, e.into_error()))?;
        file.sync_data()
            .map_err(|e| io_err("syncing index run", &self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| io_err("renaming index run", &self.tmp, e))?;
        Ok((file, self.body_bytes + trailer.len() as u64))
    }

    /// Drops the unfinished file.
    pub(crate) fn abandon(self) -> Result<(), LogError> {
        drop(self.out);
        remove_file(&self.tmp)
    }
}

/// A run file's trailer, its CRC checked (and cut off).
pub(crate) struct Trailer<T> {
    pub file: File,
    /// Where the trailer starts in the file (= the bytes of the body).
    pub start: u64,
    /// The trailer: the layout's section, then its footer (without the CRC).
    pub bytes: Vec<u8>,
    /// What the layout read from the footer.
    pub footer: T,
}

/// Opens the run at `path` and reads its trailer. The footer is the last `footer_bytes`
/// (CRC included) and starts with `magic`; `locate(footer, len)` decodes it and says where
/// the trailer starts, or why the footer does not fit the file. Outer error: I/O; inner
/// error: why the file is not a usable run.
pub(crate) fn read_trailer<T>(
    path: &Path,
    footer_bytes: usize,
    magic: &[u8; 8],
    locate: impl FnOnce(&[u8], u64) -> Result<(u64, T), &'static str>,
) -> Result<Result<Trailer<T>, String>, LogError> {
    let unusable = |why: &str| Ok(Err(format!("the run {} {why}", path.display())));
    let file = match files::open_read(path, "opening index run") {
        Ok(file) => file,
        Err(e) if files::is_not_found(&e) => return unusable("is missing"),
        Err(e) => return Err(e),
    };
    let len = file
        .metadata()
        .map_err(|e| io_err("reading metadata of index run", path, e))?
        .len();
    if len < footer_bytes as u64 {
        return unusable("is shorter than its footer");
    }
    let mut footer = vec![0u8; footer_bytes];
    read_exact_at(&file, &mut footer, len - footer_bytes as u64)
        .map_err(|e| io_err("reading index run", path, e))?;
    if footer[..8] != magic[..] {
        return unusable("has no run footer");
    }
    let (start, decoded) = match locate(&footer, len) {
        Ok(found) => found,
        Err(why) => return unusable(why),
    };
    if start > len - footer_bytes as u64 {
        return unusable("has a footer that points past itself");
    }
    let mut bytes = vec![0u8; (len - start) as usize];
    read_exact_at(&file, &mut bytes, start).map_err(|e| io_err("reading index run", path, e))?;
    let crc_at = bytes.len() - CRC_BYTES;
    if crc32fast::hash(&bytes[..crc_at]) != le_u32(&bytes, crc_at) {
        return unusable("fails the checksum of its fences and footer");
    }
    bytes.truncate(crc_at);
    Ok(Ok(Trailer {
        file,
        start,
        bytes,
        footer: decoded,
    }))
}

/// Replaces `path` by a file holding `bytes`: written to `tmp`, `fdatasync`ed, renamed over
/// `path`, then the directory `fsync`ed. The rename is the commit point.
pub(crate) fn replace_file(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let mut file = files::create_temporary(tmp, "creating")?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| io_err("writing", tmp, e))?;
    drop(file);
    std::fs::rename(tmp, path).map_err(|e| io_err("renaming", tmp, e))?;
    crate::sync_dir(path.parent().unwrap_or(Path::new(".")))
}
