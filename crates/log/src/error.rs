use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::quarantine::Quarantine;

/// What the caller expects a stream's version to be before a unit is appended.
///
/// Stream versions count a stream's records: the first record of a stream has
/// version 1, and a stream without records is at version 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must have no records (same as `Exact(0)`).
    NoStream,
    /// The stream must be at exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream (version 0)"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Everything that can go wrong in the log.
#[derive(Debug)]
pub enum LogError {
    /// An I/O error; its message names the action and the path.
    Io(io::Error),
    /// Another `Log` (in this or another process) holds the directory's lock. `holder` names
    /// it when the store can tell (a PostgreSQL log: the session holding its lock).
    Locked {
        dir: PathBuf,
        holder: Option<String>,
    },
    /// A unit was refused because a stream was not at the expected version.
    /// Nothing of the unit was staged.
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    /// The segment files are damaged: the record at `position` (the position
    /// the log expected next) cannot be read at `offset` of `segment`.
    Corrupt {
        position: u64,
        segment: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The log is quarantined: a damaged record was found in the middle of it earlier (by a
    /// read, `verify` or open), and the marker `marker` (`DIR/QUARANTINE`) remembers it. The
    /// log refuses to open until the damage is repaired and
    /// [`Log::clear_quarantine`](crate::Log::clear_quarantine) has verified the whole log.
    Quarantined {
        /// The marker file.
        marker: PathBuf,
        /// What the marker says; `None` if it could not be read as a marker.
        quarantine: Option<Box<Quarantine>>,
        /// Why the marker could not be read, if it could not.
        unreadable: Option<String>,
    },
    /// A symbolic link where the log keeps a file or directory inside its data directory
    /// (a segment, `LOCK`, `QUARANTINE`, a temporary file, `index`, a run, a manifest...).
    /// The log never follows one: it would read, truncate, overwrite or delete whatever the
    /// link points at. Nothing was changed.
    Symlink { path: PathBuf },
    /// The sled index or key-value store failed.
    Index(String),
    /// A value exceeds a bound of the format.
    TooLarge {
        what: &'static str,
        actual: u64,
        limit: u64,
    },
    /// A request the log cannot carry out as given (e.g. an empty unit).
    InvalidInput(String),
    /// An earlier failure left this `Log` in a state it could not roll back;
    /// it refuses further work. Drop it and open the directory again.
    Broken(String),
    /// The `Log` was opened read-only ([`Log::open_read_only`](crate::Log::open_read_only)):
    /// it takes no records and writes nothing.
    ReadOnly { dir: PathBuf },
}

impl LogError {
    /// Whether the store is out of reach rather than failing: an I/O error of kind
    /// `ConnectionAborted` (a database connection lost, its server going away) or
    /// `NotConnected` (no connection could be made), as the PostgreSQL log reports them; worth
    /// trying again once the store answers (a failover). The file log reports those kinds only
    /// if its file system does (a network mount dropped), which is as much out of reach.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, LogError::Io(e)
            if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::NotConnected))
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io(e) => write!(f, "log I/O error: {e}"),
            LogError::Locked {
                dir,
                holder: Some(holder),
            } => write!(
                f,
                "the log at {} is in use by another writer ({holder}; one writer at a time): \
                 try again when it has finished; readers need not wait",
                dir.display()
            ),
            LogError::Locked { dir, holder: None } if dir.starts_with("postgres:") => write!(
                f,
                "the log at {} is in use by another writer (one writer at a time): try again \
                 when it has finished; readers need not wait",
                dir.display()
            ),
            LogError::Locked { dir, holder: None } => write!(
                f,
                "the log at {} is in use by another writer (it holds the LOCK file; one \
                 writer at a time): try again when it has finished, or wait for the lock \
                 (`LogOptions::lock_wait`); readers (`Log::open_read_only`) need not wait",
                dir.display()
            ),
            LogError::ReadOnly { dir } => write!(
                f,
                "the log at {} was opened read-only (for answering queries): it takes no \
                 records and writes nothing",
                dir.display()
            ),
            LogError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } => write!(
                f,
                "stream {stream:?} is at version {actual}, but the unit expected {expected}; \
                 nothing was appended: reload the stream and decide again"
            ),
            LogError::Corrupt {
                position,
                segment,
                offset,
                reason,
            } => write!(
                f,
                "the log is damaged at record position {position} (segment {}, byte offset {offset}): \
                 {reason}; the records before it are intact; restore the segment from a backup \
                 (do not delete records by hand)",
                segment.display()
            ),
            LogError::Quarantined {
                marker,
                quarantine,
                unreadable,
            } => {
                match (quarantine, unreadable) {
                    (Some(q), _) => write!(
                        f,
                        "the log is quarantined: record position {} (segment {}, byte offset {}) \
                         was found damaged by {} at {} ({}); it refuses to serve the log until \
                         an operator decides. ",
                        q.position,
                        q.segment.display(),
                        q.offset_bytes,
                        q.found_by,
                        q.found_at_utc(),
                        q.reason
                    )?,
                    (None, why) => write!(
                        f,
                        "the log is quarantined (a damaged record was found in it), but its \
                         quarantine marker cannot be read ({}); it refuses to serve the log \
                         until an operator decides. ",
                        why.as_deref().unwrap_or("unknown reason")
                    )?,
                }
                write!(
                    f,
                    "Stop writing. Either restore the damaged segment file from a backup copy \
                     of the log's directory and then clear the quarantine with `gongji --data \
                     DIR audit clear-quarantine` (it verifies the whole hash chain first and removes {} \
                     only if it holds), or restore the \
                     ledger into a new directory from the last good archive \
                     (`gongji --data NEW audit import FILE`) and reapply the command files since",
                    marker.display()
                )
            }
            LogError::Symlink { path } => write!(
                f,
                "{} is a symbolic link inside the ledger's data directory; the ledger refuses \
                 links there and follows none (it would read, truncate, overwrite or delete \
                 what the link points at), and changed nothing: remove the link, put back the \
                 real file or directory, and let only the ledger's user write the data directory",
                path.display()
            ),
            LogError::Index(msg) => write!(
                f,
                "index store error: {msg}; the index can be rebuilt from the segments by \
                 deleting the log's index directory while no process uses the log"
            ),
            LogError::TooLarge {
                what,
                actual,
                limit,
            } => write!(f, "{what} is too large: {actual}, at most {limit} allowed"),
            LogError::InvalidInput(msg) => write!(f, "invalid request to the log: {msg}"),
            LogError::Broken(msg) => write!(
                f,
                "the log refuses further work after an earlier failure ({msg}); \
                 close it and open the directory again to recover"
            ),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<sled::Error> for LogError {
    fn from(e: sled::Error) -> Self {
        LogError::Index(e.to_string())
    }
}

/// Wraps an I/O error with the action and path it came from.
pub(crate) fn io_err(action: &str, path: &Path, e: io::Error) -> LogError {
    LogError::Io(io::Error::new(
        e.kind(),
        format!("{action} {}: {e}", path.display()),
    ))
}
