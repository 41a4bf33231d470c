//! The access log: who read whose data, when, through which route, and with what status. It
//! is audit data in its own right; auditors read it through `GET /v1/access-log`.
//!
//! One JSON object per line, appended to a file the server keeps open (mode 0600; by default
//! `DIR/access-log`, opened through `gongji_log::service_files`: no link followed). Invariant:
//! an entry is written and synced to disk ([`AccessLog::record`]) before the answer it is about
//! is sent; if it cannot be, the answer is not sent (the request fails instead). Entries are
//! written by one thread of the log's own, which takes every entry waiting (at most
//! [`GROUP_ENTRIES_MAX`]), writes them and syncs once for all of them (group commit): readers
//! asking at once share a sync. Entries are
//! numbered from 0 by their line; a last line without its newline (a write cut by a crash) is
//! not an entry, and the server ends it with a newline when it opens the file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use gongji_log::service_files;

use tokio::sync::{mpsc, oneshot};

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Most entries one page holds.
pub const PAGE_ENTRIES_MAX: usize = 1000;

/// One read of a member's data.
#[derive(Serialize, ToSchema)]
pub struct AccessEntry {
    /// When the answer was given: RFC 3339, UTC, microseconds.
    #[schema(format = DateTime)]
    pub at: String,
    /// The token's name.
    pub token: String,
    #[schema(value_type = String)]
    pub role: &'static str,
    pub method: String,
    /// The route's template, e.g. `/v1/members/{id}/years/{year}`.
    #[schema(value_type = String)]
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
    /// To the writing thread: a line, and where to say it is synced.
    to_writer: mpsc::Sender<Waiting>,
}

/// An entry's line for the writing thread, and where to say it is synced (or why not).
type Waiting = (Vec<u8>, oneshot::Sender<Result<(), String>>);

/// Entries waiting for the writing thread, at most.
const WAITING_ENTRIES_MAX: usize = 4096;

/// Entries written before one sync, at most.
pub const GROUP_ENTRIES_MAX: usize = 1024;

/// One page of the access log.
#[derive(Serialize, ToSchema)]
pub struct Page {
    /// The entries from `from` on, at most `limit` (null for a line that does not read).
    #[schema(value_type = Vec<Option<AccessEntry>>)]
    pub entries: Vec<Value>,
    /// The number of the entry after the last one given: the `from` of the next page.
    pub next: u64,
}

impl AccessLog {
    /// Opens (or creates) the access log at `path` for appending.
    pub fn open(path: &Path) -> Result<AccessLog, String> {
        let failed = |e: io::Error| format!("cannot open the access log {}: {e}", path.display());
        let mut file = service_files::open_append(path)
            .map_err(|e| format!("cannot open the access log {}: {e}", path.display()))?;
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
        let (to_writer, waiting) = mpsc::channel(WAITING_ENTRIES_MAX);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_groups(file, waiting))
            .map_err(failed)?;
        Ok(AccessLog {
            path: path.to_path_buf(),
            to_writer,
        })
    }

    /// Appends `entry`; returns once it is synced to disk.
    pub async fn record(&self, entry: &AccessEntry) -> Result<(), String> {
        let mut line = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let (synced, wait) = oneshot::channel();
        let gone = || "the access log's writer has stopped".to_string();
        self.to_writer
            .send((line, synced))
            .await
            .map_err(|_| gone())?;
        wait.await.map_err(|_| gone())?
    }

    /// Up to `limit` entries from entry number `from` on. Blocking.
    pub fn page(&self, from: u64, limit: usize) -> io::Result<Page> {
        let limit = limit.min(PAGE_ENTRIES_MAX);
        if limit == 0 {
            return Ok(Page {
                next: from,
                entries: Vec::new(),
            });
        }
        let mut entries = Vec::new();
        let number = self.each_line(&mut |number, line| {
            if number >= from {
                entries.push(serde_json::from_slice(line).unwrap_or(Value::Null));
            }
            entries.len() < limit
        })?;
        Ok(Page {
            next: from.max(number),
            entries,
        })
    }

    /// The last `count` entries (at most [`PAGE_ENTRIES_MAX`]) of those numbered `from` on;
    /// `next` is the number of entries (where the entries after them will start).
    pub fn last(&self, from: u64, count: usize) -> io::Result<Page> {
        let count = count.min(PAGE_ENTRIES_MAX);
        let mut kept: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
        let number = self.each_line(&mut |number, line| {
            if number < from {
                return true;
            }
            if kept.len() == count {
                kept.pop_front();
            }
            if count > 0 {
                kept.push_back(line.to_vec());
            }
            true
        })?;
        let entries = kept
            .iter()
            .map(|line| serde_json::from_slice(line).unwrap_or(Value::Null))
            .collect();
        Ok(Page {
            next: number,
            entries,
        })
    }

    /// Hands each whole line with its number to `each` until it answers false or the file
    /// ends (a line cut short, being written, is not handed); returns the lines read.
    fn each_line(&self, each: &mut dyn FnMut(u64, &[u8]) -> bool) -> io::Result<u64> {
        let file = service_files::open_read(&self.path).map_err(io::Error::other)?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
                return Ok(number);
            }
            let more = each(number, &line);
            number += 1;
            if !more {
                return Ok(number);
            }
        }
    }
}

/// The writing thread: every entry waiting, written, then one sync, then each told.
fn write_groups(mut file: File, mut waiting: mpsc::Receiver<Waiting>) {
    let mut group = Vec::with_capacity(GROUP_ENTRIES_MAX);
    while let Some(first) = waiting.blocking_recv() {
        group.push(first);
        while group.len() < GROUP_ENTRIES_MAX {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let lines: Vec<u8> = group.iter().flat_map(|(line, _)| line.clone()).collect();
        let written = file
            .write_all(&lines)
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        for (_, synced) in group.drain(..) {
            let _ = synced.send(written.clone());
        }
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
    fn entries_recorded_at_once_are_all_written_and_each_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(AccessLog::open(&dir.path().join("a")).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread().build().unwrap();
        runtime.block_on(async {
            let asks: Vec<_> = (0..300)
                .map(|i| {
                    let log = log.clone();
                    tokio::spawn(async move { log.record(&entry(&format!("M{i}"))).await })
                })
                .collect();
            for ask in asks {
                ask.await.unwrap().unwrap();
            }
        });
        let page = log.page(0, 1000).unwrap();
        assert_eq!(page.entries.len(), 300);
        assert!(page.entries.iter().all(|e| e["status"] == 200));
    }

    #[test]
    fn pages_follow_the_entries_and_a_cut_line_is_ended_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access");
        let log = AccessLog::open(&path).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let record = |log: &AccessLog, member: &str| runtime.block_on(log.record(&entry(member)));
        for member in ["M1", "M2", "M3"] {
            record(&log, member).unwrap();
        }
        let page = log.page(1, 1).unwrap();
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0]["member"], "M2");
        assert_eq!(page.next, 2);
        assert_eq!(log.page(3, 10).unwrap().entries.len(), 0);
        let none = log.page(1, 0).unwrap();
        assert_eq!((none.entries.len(), none.next), (0, 1));
        let last = log.last(0, 2).unwrap();
        assert_eq!(last.entries.len(), 2);
        assert_eq!(last.entries[0]["member"], "M2");
        assert_eq!(last.entries[1]["member"], "M3");
        assert_eq!(last.next, 3);
        assert_eq!(log.last(0, 10).unwrap().entries.len(), 3);
        assert_eq!(log.last(2, 10).unwrap().entries.len(), 1);
        assert_eq!(log.last(5, 10).unwrap().entries.len(), 0);
        drop(log);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"{\"cut").unwrap();
        let log = AccessLog::open(&path).unwrap();
        record(&log, "M4").unwrap();
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
