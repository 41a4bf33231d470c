//! Every way the log opens, creates, lists or deletes something inside its data directory,
//! in one place, so that no link planted there is ever followed (issue 13).
//!
//! * Files are opened with `O_NOFOLLOW` (a link is refused with [`LogError::Symlink`], naming
//!   it) and `O_NONBLOCK` (a FIFO in a file's place cannot hang the open), and only a regular
//!   file is handed out: whatever is truncated (a torn tail) or written is a regular file the
//!   open itself checked.
//! * Temporary files are created with `O_EXCL` (`create_new`), after removing only a stale
//!   temporary that is a regular file.
//! * A file is deleted only once `symlink_metadata` says it is a regular file; a link or
//!   anything else in its place is refused, never removed or followed.
//! * A directory inside the data directory is used only if `symlink_metadata` says it is a
//!   directory and not a link; listings refuse any link among their entries.
//!
//! Not here: the data directory's own path, which the operator names (it may be a link the
//! operator made; see docs/operations.md), and sled's files inside `DIR/index` (sled opens
//! them itself; the directory is checked before sled opens it).

use std::fs::{DirEntry, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{io_err, LogError};

/// Opens the file at `path` with `options`, never through a link, and only if it is a
/// regular file. `action` names what was being done, for the error.
pub(crate) fn open(path: &Path, options: &mut OpenOptions, action: &str) -> Result<File, LogError> {
    let file = no_follow(options)
        .open(path)
        .map_err(|e| refusal(path, action, e))?;
    let is_file = file
        .metadata()
        .map_err(|e| io_err(action, path, e))?
        .is_file();
    if !is_file {
        return Err(not_regular(path, action));
    }
    Ok(file)
}

/// Opens the regular file at `path` for reading, never through a link.
pub(crate) fn open_read(path: &Path, action: &str) -> Result<File, LogError> {
    open(path, OpenOptions::new().read(true), action)
}

/// The whole regular file at `path`, read without following a link.
pub(crate) fn read(path: &Path, action: &str) -> Result<Vec<u8>, LogError> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut open_read(path, action)?, &mut bytes)
        .map_err(|e| io_err(action, path, e))?;
    Ok(bytes)
}

/// Creates the file `path`, which must not exist (`O_EXCL`: not even as a link).
pub(crate) fn create_new(path: &Path, action: &str) -> Result<File, LogError> {
    open(
        path,
        OpenOptions::new().read(true).write(true).create_new(true),
        action,
    )
}

/// Creates a temporary file at `path`: a stale one left by a crash is removed first if it
/// is a regular file (a link or anything else there is refused), then the file is created
/// with `O_EXCL`.
pub(crate) fn create_temporary(path: &Path, action: &str) -> Result<File, LogError> {
    remove_own_file(path)?;
    create_new(path, action)
}

/// Deletes the regular file at `path`, ignoring one that is already gone. A link or
/// anything other than a regular file there is refused and left alone.
pub(crate) fn remove_own_file(path: &Path) -> Result<(), LogError> {
    let kind = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.file_type(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("looking at", path, e)),
    };
    if kind.is_symlink() {
        return Err(symlink(path));
    }
    if !kind.is_file() {
        return Err(not_regular(path, "removing"));
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", path, e)),
    }
}

/// Makes sure `path` is a directory and not a link, creating it (and, for the data directory
/// given by the operator, its parents) if it does not exist.
pub(crate) fn ensure_dir(path: &Path, action: &str) -> Result<(), LogError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(|e| io_err(action, path, e))?;
        }
        Err(e) => return Err(io_err(action, path, e)),
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_err(action, path, e))?;
    if meta.file_type().is_symlink() {
        return Err(symlink(path));
    }
    if !meta.is_dir() {
        return Err(LogError::Io(std::io::Error::new(
            ErrorKind::InvalidInput,
            format!("{action} {}: it is not a directory", path.display()),
        )));
    }
    Ok(())
}

/// The entries of the directory `dir` (which the caller has checked with [`ensure_dir`]),
/// refusing the listing if any entry is a link.
pub(crate) fn list_dir(dir: &Path, action: &str) -> Result<Vec<DirEntry>, LogError> {
    let listing = std::fs::read_dir(dir).map_err(|e| io_err(action, dir, e))?;
    let mut entries = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| io_err(action, dir, e))?;
        let kind = entry.file_type().map_err(|e| io_err(action, dir, e))?;
        if kind.is_symlink() {
            return Err(symlink(&entry.path()));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Refuses `dir` if any of its entries is a link (the data directory at open: `LOCK`,
/// `QUARANTINE`, `QUARANTINE.tmp`, `segments`, `index`, or anything else put there).
pub(crate) fn refuse_links_in(dir: &Path) -> Result<(), LogError> {
    list_dir(dir, "listing").map(|_| ())
}

/// The error for a link found where the log keeps a file or directory.
pub(crate) fn symlink(path: &Path) -> LogError {
    LogError::Symlink {
        path: PathBuf::from(path),
    }
}

#[cfg(unix)]
fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
}

#[cfg(not(unix))]
fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

/// An open that failed: a link at `path` (`ELOOP` under `O_NOFOLLOW`) is [`LogError::Symlink`];
/// anything else keeps its kind (callers tell `NotFound` apart).
fn refusal(path: &Path, action: &str, e: std::io::Error) -> LogError {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return symlink(path);
    }
    #[cfg(not(unix))]
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return symlink(path);
    }
    io_err(action, path, e)
}

fn not_regular(path: &Path, action: &str) -> LogError {
    LogError::Io(std::io::Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{action} {}: it is not a regular file (a directory, FIFO, socket or device where \
             the log keeps a file); the log refuses to use or remove it",
            path.display()
        ),
    ))
}

/// Whether `error` is an I/O error saying the file was not there.
pub(crate) fn is_not_found(error: &LogError) -> bool {
    matches!(error, LogError::Io(e) if e.kind() == ErrorKind::NotFound)
}

/// Writes all of `bytes` at `offset` of `file` (a positioned write: the file's cursor is not used).
#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut bytes: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        match file.seek_write(bytes, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes = &bytes[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink as plant;

    const SECRET: &[u8] = b"not the log's\n";

    #[test]
    fn a_link_is_never_opened_truncated_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, SECRET).unwrap();
        let link = dir.path().join("link");
        plant(&target, &link).unwrap();
        for result in [
            open_read(&link, "opening").map(drop),
            open(&link, OpenOptions::new().read(true).write(true), "opening").map(drop),
            create_new(&link, "creating").map(drop),
            create_temporary(&link, "creating").map(drop),
            remove_own_file(&link),
            ensure_dir(&link, "creating"),
        ] {
            match result {
                Err(LogError::Symlink { path }) => assert_eq!(path, link),
                Err(LogError::Io(e)) if e.kind() == ErrorKind::AlreadyExists => {}
                other => panic!("a link was used: {other:?}"),
            }
        }
        assert_eq!(std::fs::read(&target).unwrap(), SECRET);
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let listed = list_dir(dir.path(), "listing");
        assert!(matches!(listed, Err(LogError::Symlink { path }) if path == link));
    }

    #[test]
    fn a_fifo_in_a_files_place_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no mkfifo here: nothing to check
        }
        let opened = open_read(&fifo, "opening");
        assert!(
            matches!(&opened, Err(LogError::Io(e)) if e.kind() == ErrorKind::InvalidInput),
            "{opened:?}"
        );
        assert!(remove_own_file(&fifo).is_err());
        assert!(fifo.exists());
    }

    #[test]
    fn a_stale_regular_temporary_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("x.tmp");
        std::fs::write(&tmp, b"stale").unwrap();
        let file = create_temporary(&tmp, "creating").unwrap();
        assert_eq!(file.metadata().unwrap().len(), 0);
        remove_own_file(&tmp).unwrap();
        assert!(!tmp.exists());
        remove_own_file(&tmp).unwrap();
    }
}
