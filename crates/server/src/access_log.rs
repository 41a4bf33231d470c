//! The access log: who read whose data, when, through which route, and with what status. It
//! is audit data in its own right; auditors read it through `GET /v1/access-log`.
//!
//! One JSON object per line, appended to a file the server keeps open (mode 0600). Invariant:
//! an entry is written and synced to disk ([`AccessLog::record`]) before the answer it is about
//! is sent; if it cannot be, the answer is not sent (the request fails instead). Entries are
//! numbered from 0 by their line; a last line without its newline (a write cut by a crash) is
//! not an entry, and the server ends it with a newline when it opens the file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

/// Most entries one page holds.
pub const PAGE_ENTRIES_MAX: usize = 1000;

/// One read of a member's data.
#[derive(Serialize)]
pub struct AccessEntry {
    /// When the answer was given: RFC 3339, UTC, microseconds.
    pub at: String,
    /// The token's name.
    pub token: String,
    pub role: &'static str,
    pub method: String,
    /// The route's template, e.g. `/v1/members/{id}/years/{year}`.
    pub route: &'static str,
    /// The member whose data was asked for (for a claim's explanation: absent, see `claim`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// The request's path and query as sent.
    pub uri: String,
    /// The HTTP status answered.
    pub status: u16,
}

impl AccessEntry {
    pub fn now() -> String {
        Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

pub struct AccessLog {
    path: PathBuf,
    file: Mutex<File>,
}

/// One page of the access log.
#[derive(Serialize)]
pub struct Page {
    /// The entries from `from` on, at most `limit`.
    pub entries: Vec<Value>,
    /// The number of the entry after the last one given: the `from` of the next page.
    pub next: u64,
}

impl AccessLog {
    /// Opens (or creates) the access log at `path` for appending.
    pub fn open(path: &Path) -> Result<AccessLog, String> {
        let failed = |e: io::Error| format!("cannot open the access log {}: {e}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(failed)?;
        let length = file.metadata().map_err(failed)?.len();
        if length > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(length - 1)).map_err(failed)?;
            file.read_exact(&mut last).map_err(failed)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(failed)?;
                file.sync_data().map_err(failed)?;
            }
        }
        Ok(AccessLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Appends `entry` and syncs it to disk. Blocking: call it off the async threads.
    pub fn record(&self, entry: &AccessEntry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Up to `limit` entries from entry number `from` on. Blocking.
    pub fn page(&self, from: u64, limit: usize) -> io::Result<Page> {
        let limit = limit.min(PAGE_ENTRIES_MAX);
        let mut reader = BufReader::new(File::open(&self.path)?);
        let mut line = Vec::new();
        let mut number = 0u64;
        let mut entries = Vec::new();
        while entries.len() < limit {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
                break;
            }
            if number >= from {
                let entry = serde_json::from_slice(&line).unwrap_or(Value::Null);
                entries.push(entry);
            }
            number += 1;
        }
        Ok(Page {
            next: from.max(number),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(member: &str) -> AccessEntry {
        AccessEntry {
            at: AccessEntry::now(),
            token: "ana".into(),
            role: "clerk",
            method: "GET".into(),
            route: "/v1/members/{id}",
            member: Some(member.into()),
            claim: None,
            uri: format!("/v1/members/{member}"),
            status: 200,
        }
    }

    #[test]
    fn pages_follow_the_entries_and_a_cut_line_is_ended_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access");
        let log = AccessLog::open(&path).unwrap();
        for member in ["M1", "M2", "M3"] {
            log.record(&entry(member)).unwrap();
        }
        let page = log.page(1, 1).unwrap();
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0]["member"], "M2");
        assert_eq!(page.next, 2);
        assert_eq!(log.page(3, 10).unwrap().entries.len(), 0);
        drop(log);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"cut").unwrap();
        let log = AccessLog::open(&path).unwrap();
        log.record(&entry("M4")).unwrap();
        let page = log.page(0, 10).unwrap();
        assert_eq!(page.entries.len(), 5);
        assert_eq!(
            page.entries[3],
            Value::Null,
            "the cut line stays an entry of its own"
        );
        assert_eq!(page.entries[4]["member"], "M4");
    }
}
