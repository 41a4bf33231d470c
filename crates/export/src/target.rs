//! The one file an export writes: a temporary file beside the destination, created new
//! (`O_EXCL`, a name no one else has, mode 0600: it holds members' data), removed whenever
//! the export stops short, and renamed over the destination only once it is complete and
//! synced (then the directory is synced). The destination is never a cut file, an existing
//! one is replaced whole, and a link at its name is replaced, never written through.

use std::fs::File;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::ExportError;

/// A destination and the temporary file that becomes it.
pub struct Target {
    path: PathBuf,
    temporary: NamedTempFile,
}

impl Target {
    /// Creates the temporary file (`.NAME.XXXXXX.partial` in the destination's directory).
    /// Refused, creating nothing, when the destination is a directory or its directory cannot
    /// be written.
    pub fn create(path: &Path) -> Result<Target, ExportError> {
        let name = path
            .file_name()
            .filter(|_| !path.is_dir())
            .ok_or_else(|| ExportError::write(path, "it is a directory, not a file name"))?;
        let directory = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let prefix = format!(".{}.", name.to_string_lossy());
        let temporary = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".partial")
            .tempfile_in(directory)
            .map_err(|e| ExportError::write(path, without_temporary_name(e)))?;
        Ok(Target {
            path: path.to_path_buf(),
            temporary,
        })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle on the temporary file to write through.
    pub fn file(&self) -> Result<File, ExportError> {
        self.temporary
            .as_file()
            .try_clone()
            .map_err(|e| ExportError::write(&self.path, e))
    }

    /// Syncs `written` (the handle the writer used, its content complete), renames the
    /// temporary file over the destination and syncs the directory.
    pub fn commit(self, written: File) -> Result<(), ExportError> {
        let path = self.path;
        written
            .sync_all()
            .map_err(|e| ExportError::write(&path, e))?;
        drop(written);
        self.temporary
            .persist(&path)
            .map_err(|e| ExportError::write(&path, e.error))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ExportError::write(&path, e))?;
        }
        Ok(())
    }
}

/// An error creating the temporary file, without the temporary's name that tempfile adds
/// (`… at path "…"`): the person asked for the destination, and the message names that.
fn without_temporary_name(error: std::io::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at path \"") {
        Some(at) => message[..at].to_string(),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("a directory")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_destination_appears_only_on_commit_and_nothing_is_left_otherwise() {
        let dir = tempfile::tempdir().expect("a directory");
        let out = dir.path().join("x.csv");
        std::fs::write(&out, "old").expect("an old file");
        let target = Target::create(&out).expect("created");
        use std::io::Write;
        let mut file = target.file().expect("a handle");
        file.write_all(b"new").expect("written");
        assert_eq!(std::fs::read(&out).expect("the old file"), b"old");
        target.commit(file).expect("committed");
        assert_eq!(std::fs::read(&out).expect("the new file"), b"new");
        assert_eq!(listing(dir.path()), ["x.csv"]);

        let dropped = Target::create(&dir.path().join("y.csv")).expect("created");
        drop(dropped);
        assert_eq!(
            listing(dir.path()),
            ["x.csv"],
            "a target dropped leaves nothing"
        );
    }

    #[test]
    fn a_directory_or_a_missing_one_is_refused() {
        let dir = tempfile::tempdir().expect("a directory");
        assert!(Target::create(dir.path()).is_err());
        let missing = dir.path().join("no/such/x.csv");
        let Err(refused) = Target::create(&missing) else {
            panic!("a missing directory is refused");
        };
        let said = refused.to_string();
        assert!(
            said.contains("no/such/x.csv:") && !said.contains("partial"),
            "{said}"
        );
        assert!(listing(dir.path()).is_empty());
    }
}
