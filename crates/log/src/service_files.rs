//! The service's files inside the data directory, opened, created, replaced and removed by the
//! log's own rules (the `files` module), so that nothing outside this crate touches a file of
//! the data directory:
//!
//! * `DIR/tokens` ([`TOKENS_FILE`]): the server's token file, replaced whole ([`Replacement`]);
//! * `DIR/access-log` ([`ACCESS_LOG_FILE`]): the server's access log, appended to
//!   ([`open_append`]);
//! * `DIR/SERVER` ([`SERVER_FILE`]): which server holds the writer's lock ([`publish_server`]),
//!   so that a second writer's refusal can name it ([`running_server`]).
//!
//! The same functions serve a token file or access log put elsewhere (`--tokens`,
//! `--access-log`): the rules are the same wherever the file is. A directory holding only the
//! token file and the access log holds no ledger yet: `audit import` restores into it and
//! carries them into the restored ledger ([`only_kept_files`], [`carry_kept_files`]).
//!
//! Invariants as the code holds them: no link is followed (`O_NOFOLLOW`, and only a regular
//! file is used); every file made here is mode 0600; a file is replaced only through a
//! temporary `PATH.tmp` created with `O_EXCL`, written, synced, renamed over it, and the
//! directory synced; [`running_server`] names a server only while the process the note names
//! holds the writer's lock on `DIR/LOCK` (a note left by a killed server names nobody). The
//! log's own checks (recovery, `verify`, the read-only open) look only at the files they own
//! and refuse links among a directory's entries: these three are regular files and pass.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::io_err;
use crate::{files, sync_dir, LogError};

/// The server's token file in the data directory.
pub const TOKENS_FILE: &str = "tokens";
/// The server's access log in the data directory.
pub const ACCESS_LOG_FILE: &str = "access-log";
/// The note of the server holding the writer's lock: `PID URL`, one line.
pub const SERVER_FILE: &str = "SERVER";

/// The service's files that outlive a server and belong with the ledger: a directory holding
/// only these holds no ledger yet (`audit import` restores into it, carrying them).
pub const KEPT_FILES: [&str; 2] = [TOKENS_FILE, ACCESS_LOG_FILE];

/// Which of [`KEPT_FILES`] `dir` holds, if it holds nothing else (`Some(vec![])`: empty or
/// absent); `None` if anything else is there, or one of them is not a regular file (a link).
pub fn only_kept_files(dir: &Path) -> Result<Option<Vec<&'static str>>, LogError> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Some(Vec::new())),
        listing => listing.map_err(|e| io_err("listing", dir, e))?,
    };
    let mut kept = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("listing", dir, e))?;
        let name = entry.file_name();
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        match KEPT_FILES.iter().find(|k| name.as_os_str() == **k) {
            Some(kept_name) if regular => kept.push(*kept_name),
            _ => return Ok(None),
        }
    }
    Ok(Some(kept))
}

/// Moves the files `names` (of [`KEPT_FILES`]) from directory `from` to directory `to`, on the
/// same filesystem, each by one rename; a link in a file's place is refused and left. On an
/// error, the files moved so far are moved back.
pub fn carry_kept_files(from: &Path, to: &Path, names: &[&str]) -> Result<(), LogError> {
    if names.is_empty() {
        return Ok(());
    }
    for (i, name) in names.iter().enumerate() {
        let source = from.join(name);
        let moved = match std::fs::symlink_metadata(&source) {
            Ok(meta) if meta.is_file() => {
                std::fs::rename(&source, to.join(name)).map_err(|e| io_err("moving", &source, e))
            }
            Ok(_) => Err(files::symlink(&source)),
            Err(e) => Err(io_err("moving", &source, e)),
        };
        if let Err(error) = moved {
            for back in &names[..i] {
                let _ = std::fs::rename(to.join(back), from.join(back));
            }
            return Err(error);
        }
    }
    sync_dir(to).and_then(|()| sync_dir(from))
}

/// `DIR/NAME`, with `DIR` created if absent, as the log's open creates it (`DIR` itself is the
/// operator's and may be a link; a link inside it is never followed).
pub fn service_path(dir: &Path, name: &str) -> Result<PathBuf, LogError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("creating the data directory", dir, e))?;
    Ok(dir.join(name))
}

/// The whole regular file at `path`, or `None` if there is none; never through a link.
pub fn read_file(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    match files::read(path, "reading") {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if files::is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the regular file at `path` for reading; never through a link.
pub fn open_read(path: &Path) -> Result<File, LogError> {
    files::open_read(path, "opening")
}

/// Opens the regular file at `path` for reading and appending, creating it (mode 0600) if
/// absent; never through a link.
pub fn open_append(path: &Path) -> Result<File, LogError> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    files::open(path, private(&mut options), "opening")
}

/// Replacing a file whole: the temporary `PATH.tmp` is created exclusively (mode 0600) when
/// the replacement begins, so it is also a lock: a second replacement of the same file is
/// refused while one runs. Dropped without [`Replacement::commit`], the temporary is removed
/// and the file is left as it was.
#[derive(Debug)]
pub struct Replacement {
    file: File,
    temporary: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl Replacement {
    /// Begins replacing `path`. An existing `PATH.tmp` (another replacement running, or one
    /// interrupted) is refused with an [`ErrorKind::AlreadyExists`] I/O error, and left alone.
    pub fn begin(path: &Path) -> Result<Replacement, LogError> {
        let temporary = temporary_path(path);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        let file = files::open(&temporary, private(&mut options), "creating")?;
        Ok(Replacement {
            file,
            temporary,
            path: path.to_path_buf(),
            committed: false,
        })
    }

    /// The temporary file's path (to name it when a replacement is refused).
    pub fn temporary_of(path: &Path) -> PathBuf {
        temporary_path(path)
    }

    /// Writes `bytes` as the file's new content: written and synced, renamed over the file,
    /// the directory synced.
    pub fn commit(mut self, bytes: &[u8]) -> Result<(), LogError> {
        let failed = |e| io_err("writing", &self.temporary, e);
        self.file.write_all(bytes).map_err(failed)?;
        self.file.sync_all().map_err(failed)?;
        std::fs::rename(&self.temporary, &self.path)
            .map_err(|e| io_err("replacing", &self.path, e))?;
        self.committed = true;
        sync_dir(parent_of(&self.path))
    }
}

impl Drop for Replacement {
    fn drop(&mut self) {
        if !self.committed {
            let _ = files::remove_own_file(&self.temporary);
        }
    }
}

/// Removes the regular file at `path` (nothing if it is gone); a link there is refused.
pub fn remove_file(path: &Path) -> Result<(), LogError> {
    files::remove_own_file(path)?;
    sync_dir(parent_of(path))
}

/// What `DIR/SERVER` says: the server's process and where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerNote {
    pub pid: u32,
    /// The URL it serves, e.g. `http://127.0.0.1:8080`.
    pub url: String,
}

/// Writes `DIR/SERVER` naming `note`; for the process holding the log's writer lock (so no
/// other writes it: a stale temporary left by a crash is removed first).
pub fn publish_server(dir: &Path, note: &ServerNote) -> Result<(), LogError> {
    let path = dir.join(SERVER_FILE);
    files::remove_own_file(&temporary_path(&path))?;
    let line = format!("{} {}\n", note.pid, note.url);
    Replacement::begin(&path)?.commit(line.as_bytes())
}

/// Removes `DIR/SERVER`: at a server's clean stop.
pub fn withdraw_server(dir: &Path) -> Result<(), LogError> {
    remove_file(&dir.join(SERVER_FILE))
}

/// The server holding the writer's lock on the log in `dir`, if `DIR/SERVER` names one and
/// the process it names holds the lock now. A note left by a server that was killed (its
/// process gone, or the lock held by someone else) names nobody: `None`, as for no note.
pub fn running_server(dir: &Path) -> Option<ServerNote> {
    let bytes = read_file(&dir.join(SERVER_FILE)).ok()??;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (pid, url) = text.trim_end().split_once(' ')?;
    let note = ServerNote {
        pid: pid.parse().ok()?,
        url: url.to_string(),
    };
    holds_lock(dir, note.pid).then_some(note)
}

/// Whether process `pid` holds the writer's lock (`flock`) on `DIR/LOCK`: from the kernel's
/// table of locks where there is one (`/proc/locks`); elsewhere, whether the process lives.
fn holds_lock(dir: &Path, pid: u32) -> bool {
    let lock_path = dir.join("LOCK");
    let Ok(meta) = std::fs::symlink_metadata(&lock_path) else {
        return false;
    };
    match std::fs::read_to_string("/proc/locks") {
        Ok(table) => locks_table_names(&table, pid, inode(&meta)),
        Err(_) => process_lives(pid),
    }
}

/// Whether a `/proc/locks` table holds an exclusive `FLOCK` on inode `inode` by `pid`; lines
/// of waiters (`->`) are not holders.
fn locks_table_names(table: &str, pid: u32, inode: u64) -> bool {
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "FLOCK", _, "WRITE", holder, device_inode, ..] = fields[..] else {
            return false;
        };
        let on_inode = device_inode.rsplit(':').next() == Some(&inode.to_string());
        holder == pid.to_string() && on_inode
    })
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u64 {
    0
}

#[cfg(unix)]
fn process_lives(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // Signal 0 checks only that the process exists (EPERM: it exists, not ours to signal).
    // SAFETY: kill with signal 0 sends nothing; it has no effect on memory.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn process_lives(_pid: u32) -> bool {
    true
}

#[cfg(unix)]
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600)
}

#[cfg(not(unix))]
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Whether `error` says a file was already there (a replacement's temporary: another one runs).
pub fn is_already_there(error: &LogError) -> bool {
    matches!(error, LogError::Io(e) if e.kind() == ErrorKind::AlreadyExists)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    #[test]
    fn files_are_private_replaced_whole_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = service_path(&dir.path().join("data"), TOKENS_FILE).unwrap();
        Replacement::begin(&path).unwrap().commit(b"one\n").unwrap();
        assert_eq!(read_file(&path).unwrap().unwrap(), b"one\n");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let running = Replacement::begin(&path).unwrap();
        let second = Replacement::begin(&path).unwrap_err();
        assert!(is_already_there(&second), "{second}");
        drop(running);
        assert!(
            !temporary_path(&path).exists(),
            "an abandoned temporary is removed"
        );
        assert_eq!(read_file(&path).unwrap().unwrap(), b"one\n");

        let target = dir.path().join("target");
        std::fs::write(&target, b"not ours").unwrap();
        let link = dir.path().join("data").join(ACCESS_LOG_FILE);
        symlink(&target, &link).unwrap();
        assert!(matches!(open_append(&link), Err(LogError::Symlink { .. })));
        assert!(matches!(read_file(&link), Err(LogError::Symlink { .. })));
        assert!(remove_file(&link).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"not ours");
        assert_eq!(read_file(&dir.path().join("absent")).unwrap(), None);
    }

    #[test]
    fn a_server_note_names_a_server_only_while_its_process_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let log = crate::Log::open(dir.path()).unwrap();
        let ours = ServerNote {
            pid: std::process::id(),
            url: "http://127.0.0.1:9".into(),
        };
        publish_server(dir.path(), &ours).unwrap();
        assert_eq!(running_server(dir.path()), Some(ours.clone()));
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let theirs = ServerNote {
            pid: other.id(),
            url: ours.url.clone(),
        };
        publish_server(dir.path(), &theirs).unwrap();
        assert_eq!(
            running_server(dir.path()),
            None,
            "alive, but not the lock's holder"
        );
        let _ = other.kill();
        let _ = other.wait();
        publish_server(dir.path(), &ours).unwrap();
        drop(log);
        assert_eq!(
            running_server(dir.path()),
            None,
            "no lock held: a stale note"
        );
        withdraw_server(dir.path()).unwrap();
        assert!(!dir.path().join(SERVER_FILE).exists());
        withdraw_server(dir.path()).unwrap();
    }

    #[test]
    fn a_directory_holding_only_kept_files_is_told_apart_and_they_are_carried() {
        let root = tempfile::tempdir().unwrap();
        let (dir, other) = (root.path().join("d"), root.path().join("o"));
        assert_eq!(only_kept_files(&dir).unwrap(), Some(vec![]));
        carry_kept_files(&dir, &other, &[]).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(&other).unwrap();
        std::fs::write(dir.join(TOKENS_FILE), b"t").unwrap();
        assert_eq!(only_kept_files(&dir).unwrap(), Some(vec![TOKENS_FILE]));
        carry_kept_files(&dir, &other, &[TOKENS_FILE]).unwrap();
        assert_eq!(std::fs::read(other.join(TOKENS_FILE)).unwrap(), b"t");
        assert_eq!(only_kept_files(&dir).unwrap(), Some(vec![]));
        std::fs::write(dir.join(TOKENS_FILE), b"t").unwrap();
        let refused = carry_kept_files(&dir, &other, &[TOKENS_FILE, ACCESS_LOG_FILE]);
        assert!(refused.is_err(), "no access log to move");
        assert!(dir.join(TOKENS_FILE).exists(), "moved back");
        std::fs::write(dir.join(SERVER_FILE), b"1 x").unwrap();
        assert_eq!(only_kept_files(&dir).unwrap(), None);
        std::fs::remove_file(dir.join(SERVER_FILE)).unwrap();
        symlink(root.path().join("x"), dir.join(ACCESS_LOG_FILE)).unwrap();
        assert_eq!(
            only_kept_files(&dir).unwrap(),
            None,
            "a link is not a kept file"
        );
    }

    #[test]
    fn the_locks_table_is_read_for_exclusive_holders_only() {
        let table = "1: FLOCK  ADVISORY  WRITE 42 fd:01:777 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 43 fd:01:777 0 EOF\n\
                     2: FLOCK  ADVISORY  READ 44 fd:01:777 0 EOF\n";
        assert!(locks_table_names(table, 42, 777));
        assert!(!locks_table_names(table, 42, 778));
        assert!(!locks_table_names(table, 43, 777));
        assert!(!locks_table_names(table, 44, 777));
    }
}
