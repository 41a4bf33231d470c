//! The CSV of differences as a file, the one file this crate writes, at a path the caller
//! names. Invariants, as the code holds them: it is never the input file (same device and
//! inode, or the same canonical path), never written through a symbolic link, never anything
//! but a regular file; the rows go to `NAME.partial`, created only if nothing is there
//! (`O_CREAT | O_EXCL`, which follows no link), synced and renamed over `NAME` only once the
//! job succeeded, so an existing `NAME` is replaced whole or not touched; a job that fails
//! removes the partial file it created and nothing else.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::detail::Difference;
use crate::render::DifferenceCsv;
use crate::ReconError;

/// A CSV of differences being written; it lands at its path only through [`CsvFile::commit`].
pub struct CsvFile {
    path: PathBuf,
    partial: PathBuf,
    /// `None` once committed.
    writer: Option<DifferenceCsv<BufWriter<File>>>,
}

impl CsvFile {
    /// Checks that `path` may receive the differences found in `input` (which must exist) and
    /// creates `NAME.partial` beside it with the header row.
    pub fn create(path: &Path, input: &Path) -> Result<CsvFile, String> {
        let input_metadata = std::fs::metadata(input).map_err(|e| {
            ReconError::Io {
                action: "cannot open".to_string(),
                path: input.to_path_buf(),
                message: e.to_string(),
            }
            .to_string()
        })?;
        let refuse = |why: &str| format!("refusing to write {}: {why}", path.display());
        let name = path.file_name().ok_or_else(|| refuse("it names no file"))?;
        match std::fs::symlink_metadata(path) {
            Ok(found) if found.file_type().is_symlink() => {
                return Err(refuse(
                    "it is a symbolic link (the CSV is never written through one)",
                ))
            }
            Ok(found) if !found.is_file() => return Err(refuse("it is not a regular file")),
            Ok(found) if same_file(path, &found, input, &input_metadata) => {
                return Err(refuse(&format!("it is the input file {}", input.display())))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot write {}: {e}", path.display())),
        }
        let mut partial_name = name.to_os_string();
        partial_name.push(".partial");
        let partial = path.with_file_name(partial_name);
        let handle = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => format!(
                    "cannot create {}: something is already there (left by a run that stopped, or planted): remove it",
                    partial.display()
                ),
                _ => format!("cannot create {}: {e}", partial.display()),
            })?;
        let mut file = CsvFile {
            path: path.to_path_buf(),
            partial,
            writer: None,
        };
        let writer = DifferenceCsv::new(BufWriter::new(handle)).map_err(|e| file.failed(&e))?;
        file.writer = Some(writer);
        Ok(file)
    }

    pub fn write(&mut self, difference: &Difference) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => writer.write(difference),
            None => Ok(()),
        }
    }

    /// Flushes and syncs the rows, then renames them over the CSV's path.
    pub fn commit(mut self) -> Result<(), String> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let synced = writer
            .finish()
            .and_then(|out| out.into_inner().map_err(|e| e.into_error()))
            .and_then(|handle| handle.sync_all())
            .and_then(|()| std::fs::rename(&self.partial, &self.path));
        if let Err(e) = synced {
            return Err(self.failed(&e));
        }
        // The rename is durable once the directory is; a failure here loses nothing written.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        // Renamed: there is no partial file left to remove.
        self.partial = PathBuf::new();
        Ok(())
    }

    fn failed(&self, error: &io::Error) -> String {
        format!("cannot write {}: {error}", self.partial.display())
    }
}

impl Drop for CsvFile {
    /// A job that did not commit removes the partial file it created.
    fn drop(&mut self) {
        if !self.partial.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Whether `csv` (a regular file, as found) is `input`: the same device and inode (a hard link
/// included), or the same canonical path.
fn same_file(csv: &Path, found: &Metadata, input: &Path, input_metadata: &Metadata) -> bool {
    if found.dev() == input_metadata.dev() && found.ino() == input_metadata.ino() {
        return true;
    }
    match (std::fs::canonicalize(csv), std::fs::canonicalize(input)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
