//! Reads: a stream's records, a stream's version, a position range in pages (each record
//! checked against the chain, or its link handed out to be checked by its holder), and the
//! read connection they share.
//!
//! Invariants as the code holds them: reads see only records below the durable end (the head
//! this log committed or read), never one in flight; a page must hold every position of its
//! span, in order (a missing row is damage, never skipped); a record whose hash, previous hash
//! or place in its stream does not hold is `Corrupt`, and marks the log damaged.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use gongji_log::{Link, LogError, Record, MAX_STREAM_BYTES};
use postgres::{Client, Row};

use crate::conn::{connect, connection_lost, pg_err, to_hash, to_i64, to_u64};
use crate::session::{read_head, Head};
use crate::{corrupt, PgLog};

/// Records fetched by one query of a range read.
const PAGE_RECORDS: u64 = 4096;
/// A range read with at least this many records left is read ahead ([`ReadAhead`]).
const READ_AHEAD_MIN_RECORDS: u64 = 8 * PAGE_RECORDS;
/// Pages read ahead and not yet taken (bounds the memory a read ahead holds).
const READ_AHEAD_PAGES: usize = 4;
/// How long a reader waits for its read ahead's first page while the read ahead has no
/// connection yet; then it goes on a page at a time.
const READ_AHEAD_CONNECT_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// Read aheads running at once in a process (each holds a connection): past it, a range is
/// fetched a page at a time, so that many whole-log reads at once in one process cannot take
/// the connections its writer and other readers need.
const READ_AHEADS_MAX: usize = 2;

/// Read aheads running now, in this process.
static READ_AHEADS: AtomicUsize = AtomicUsize::new(0);
/// Read aheads started in this process since it began.
static READ_AHEADS_STARTED: AtomicU64 = AtomicU64::new(0);

/// How many range reads have read ahead in this process so far (see `docs/operations.md`):
/// for tests, and for whoever counts the sessions a process opens.
pub fn read_aheads_started() -> u64 {
    READ_AHEADS_STARTED.load(Ordering::Relaxed)
}

const SELECT_RECORD: &str = "SELECT position, stream, stream_version, event_id, \
     recorded_at_micros, unit_end, payload, prev_hash, hash FROM gongji_log_records";

/// `Corrupt` if log `log` has a record at `end` or beyond: no commit writes one beyond the head.
pub(crate) fn nothing_beyond(client: &mut Client, log: &str, end: u64) -> Result<(), LogError> {
    let from = to_i64(end, "position")?;
    let beyond: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM gongji_log_records WHERE log = $1 AND position >= $2)",
            &[&log, &from],
        )
        .map(|row| row.get(0))
        .map_err(|e| {
            pg_err(
                &format!("looking for records beyond the head of log {log:?}"),
                &e,
            )
        })?;
    if beyond {
        return Err(corrupt(
            log,
            end,
            "records lie beyond the head (no commit of the log writes them)".into(),
        ));
    }
    Ok(())
}

/// The records of one log in a position range, in position order.
fn range_query() -> String {
    format!("{SELECT_RECORD} WHERE log = $1 AND position >= $2 AND position < $3 ORDER BY position")
}

/// A row as a record (`Err`: why it cannot be one).
fn record_of(row: &Row) -> Result<Record, String> {
    Ok(Record {
        position: to_u64(row.try_get(0).map_err(|e| e.to_string())?, "position")?,
        stream: row.try_get(1).map_err(|e| e.to_string())?,
        stream_version: to_u64(row.try_get(2).map_err(|e| e.to_string())?, "stream_version")?,
        event_id: row.try_get(3).map_err(|e| e.to_string())?,
        recorded_at_micros: row.try_get(4).map_err(|e| e.to_string())?,
        unit_end: row.try_get(5).map_err(|e| e.to_string())?,
        payload: row.try_get(6).map_err(|e| e.to_string())?,
        prev_hash: to_hash(row.try_get(7).map_err(|e| e.to_string())?, "prev_hash")?,
        hash: to_hash(row.try_get(8).map_err(|e| e.to_string())?, "hash")?,
    })
}

impl PgLog {
    /// Runs `query` on the read connection. If the connection was lost (a failover), it
    /// connects again and runs `query` again, until `reconnect_within` from the loss (reads
    /// change nothing, so running one again is safe).
    pub(crate) fn with_reads<T>(
        &self,
        action: &str,
        mut query: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, LogError> {
        self.riding_out_loss(action, |client| match query(client) {
            Ok(value) => Ok(Ok(value)),
            Err(e) if connection_lost(client, &e) => Err(pg_err(action, &e)),
            Err(e) => Ok(Err(pg_err(action, &e))),
        })
    }

    /// The head row as committed now (a reader's refresh).
    pub(crate) fn head_now(&self) -> Result<Head, LogError> {
        self.riding_out_logged("reading the head", |client| read_head(client, &self.log))
    }

    /// Runs `read` (whose errors are the log's already) on the read connection, as
    /// [`with_reads`](PgLog::with_reads) does: a closed connection is a loss ridden out.
    pub(crate) fn riding_out_logged<T>(
        &self,
        action: &str,
        mut read: impl FnMut(&mut Client) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        self.riding_out_loss(action, |client| match read(client) {
            Ok(value) => Ok(Ok(value)),
            Err(e) if client.is_closed() => Err(e),
            Err(e) => Ok(Err(e)),
        })
    }

    /// Runs `attempt` on the read connection: `Ok` is its outcome; `Err`, that the connection
    /// was lost, so a new one is made (by this read or another, shared by all: see
    /// `reconnect`) and `attempt` runs again, until `reconnect_within` from the loss; past
    /// it, the loss's error.
    fn riding_out_loss<T>(
        &self,
        action: &str,
        attempt: impl FnMut(&mut Client) -> Result<Result<T, LogError>, LogError>,
    ) -> Result<T, LogError> {
        let connect = || connect(&self.config, &self.log, "reads");
        let action = format!("{action} of log {:?}", self.log);
        self.reads.run(&action, connect, attempt)
    }

    /// Damage found: appends are refused from now on.
    pub(crate) fn remember_damage(&self, error: LogError) -> LogError {
        if matches!(error, LogError::Corrupt { .. }) {
            self.damaged.store(true, Ordering::Relaxed);
        }
        error
    }

    /// A stream's durable version, from the database.
    pub(crate) fn durable_version(&self, stream: &str) -> Result<u64, LogError> {
        if stream.is_empty() || stream.len() > MAX_STREAM_BYTES {
            return Ok(0);
        }
        let end = to_i64(self.durable.end_position, "position")?;
        let version: i64 = self.with_reads("reading a stream's version", |c| {
            c.query_one(
                "SELECT coalesce(max(stream_version), 0) FROM gongji_log_records \
                 WHERE log = $1 AND stream = $2 AND position < $3",
                &[&self.log, &stream, &end],
            )
            .map(|row| row.get(0))
        })?;
        to_u64(version, "stream_version").map_err(|reason| corrupt(&self.log, 0, reason))
    }

    /// Every stream's durable version, at most `limit` of them.
    pub(crate) fn durable_versions(&self, limit: usize) -> Result<Vec<(String, u64)>, LogError> {
        let end = to_i64(self.durable.end_position, "position")?;
        let limit = to_i64(limit as u64, "limit")?;
        let rows = self.with_reads("reading the streams' versions", |c| {
            c.query(
                "SELECT stream, max(stream_version) FROM gongji_log_records \
                 WHERE log = $1 AND position < $2 GROUP BY stream LIMIT $3",
                &[&self.log, &end, &limit],
            )
        })?;
        rows.iter()
            .map(|row| {
                let version = to_u64(row.get(1), "stream_version");
                version.map(|v| (row.get(0), v))
            })
            .collect::<Result<_, _>>()
            .map_err(|reason| corrupt(&self.log, 0, reason))
    }

    pub(crate) fn version_now(&self, stream: &str) -> Result<u64, LogError> {
        self.check_usable()?;
        match self.streams.versions.get(stream) {
            Some(&version) => Ok(version),
            None if self.streams.complete => Ok(0),
            None => self.durable_version(stream),
        }
    }

    /// The durable records of a stream, in version order, each checked against its hash.
    pub(crate) fn stream_records(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        self.check_usable()?;
        if stream.is_empty() || stream.len() > MAX_STREAM_BYTES {
            return Ok(Vec::new());
        }
        let end = to_i64(self.durable.end_position, "position")?;
        let sql = format!(
            "{SELECT_RECORD} WHERE log = $1 AND stream = $2 AND position < $3 \
             ORDER BY stream_version"
        );
        let rows = self.with_reads("reading a stream", |c| {
            c.query(&sql, &[&self.log, &stream, &end])
        })?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let record = record_of(row).map_err(|reason| corrupt(&self.log, 0, reason));
            let record = record.map_err(|e| self.remember_damage(e))?;
            let reason = if record.stream_version != records.len() as u64 + 1 {
                Some(format!(
                    "stream {stream:?} holds version {} after version {}",
                    record.stream_version,
                    records.len()
                ))
            } else if record.recompute_hash() != record.hash {
                Some("the record's hash is not the hash of its fields".to_string())
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(self.remember_damage(corrupt(&self.log, record.position, reason)));
            }
            records.push(record);
        }
        Ok(records)
    }

    /// Records with `from <= position < to` (`to` at most the durable end), fetched in pages.
    pub(crate) fn fetch(&self, from: u64, to: u64) -> Result<Vec<Record>, LogError> {
        let (low, high) = (to_i64(from, "position")?, to_i64(to, "position")?);
        let sql = range_query();
        let rows = self.with_reads("reading records", |c| {
            c.query(&sql, &[&self.log, &low, &high])
        })?;
        let mut records = Vec::with_capacity(rows.len());
        for (row, expected) in rows.iter().zip(from..) {
            let record = record_of(row).map_err(|reason| corrupt(&self.log, expected, reason))?;
            if record.position != expected {
                break;
            }
            records.push(record);
        }
        let next = from + records.len() as u64;
        if next < to {
            return Err(corrupt(
                &self.log,
                next,
                "the record is missing (positions have no gaps)".into(),
            ));
        }
        Ok(records)
    }

    /// Checks one link: the record's hash, computed from its fields, must be what the record
    /// after it names as its previous hash.
    pub(crate) fn check_one_link(&self, record: &Record, link: &Link) -> Result<(), LogError> {
        if record.recompute_hash() == link.expected_hash() {
            return Ok(());
        }
        let end = self.durable.end_position;
        let reason = if link.next_position() >= end {
            "the last record's hash is not the hash the log's head holds"
        } else {
            "the record's previous-hash does not match the hash of the record before it"
        };
        let position = link.next_position().min(end.saturating_sub(1));
        Err(self.remember_damage(corrupt(&self.log, position, reason.into())))
    }
}

/// Durable records of a range in position order, a page at a time. With `check_hashes`, each
/// record's hash is recomputed and chained onto the one before it; without, only positions
/// are checked (the links are checked by whoever holds the records). Yields `Err` once, then
/// ends.
pub(crate) struct Pages<'a> {
    log: &'a PgLog,
    next: u64,
    end: u64,
    page: std::vec::IntoIter<Record>,
    /// The hash the next record must name as its previous (zeros before position 0; unknown
    /// before the first record of a range that starts later).
    prev_hash: Option<[u8; 32]>,
    check_hashes: bool,
    done: bool,
    /// The rest of a long range, fetched ahead.
    ahead: Ahead,
}

/// Whether a range read reads ahead: once at most, from the second page of a long range on.
enum Ahead {
    NotYet,
    Reading(ReadAhead),
    /// A short range, or the read ahead stopped: pages are fetched one at a time.
    No,
}

impl<'a> Pages<'a> {
    pub fn new(log: &'a PgLog, from: u64, to: u64, check_hashes: bool) -> Pages<'a> {
        let end = to.min(log.durable.end_position);
        Pages {
            log,
            next: from,
            end,
            page: Vec::new().into_iter(),
            prev_hash: (from == 0).then_some([0; 32]),
            check_hashes,
            done: from >= end,
            ahead: Ahead::NotYet,
        }
    }

    /// The next page: from the read ahead while it keeps up, else (a short range, or the read
    /// ahead stopped: see [`ReadAhead`]) fetched here, where a lost connection is ridden out
    /// and damage reported.
    fn next_page(&mut self) -> Result<Vec<Record>, LogError> {
        let to = self.end.min(self.next.saturating_add(PAGE_RECORDS));
        if let Ahead::NotYet = self.ahead {
            // The first page is fetched here while the read ahead connects.
            self.ahead = match self.end - self.next >= READ_AHEAD_MIN_RECORDS {
                true => ReadAhead::start(self.log, to, self.end).map_or(Ahead::No, Ahead::Reading),
                false => Ahead::No,
            };
            return self.log.fetch(self.next, to);
        }
        if let Ahead::Reading(ahead) = &self.ahead {
            // Not connected by the time its first page is wanted (a host in the connection
            // string that does not answer, say): it is waited for a moment, no more.
            let page = match ahead.connected.load(Ordering::Acquire) {
                true => ahead.pages.recv().ok(),
                false => ahead.pages.recv_timeout(READ_AHEAD_CONNECT_WAIT).ok(),
            };
            match page {
                Some(page) if page.first().map(|r| r.position) == Some(self.next) => {
                    return Ok(page)
                }
                _ => self.ahead = Ahead::No,
            }
        }
        self.log.fetch(self.next, to)
    }

    fn advance(&mut self) -> Result<Option<Record>, LogError> {
        let record = match self.page.next() {
            Some(record) => record,
            None if self.next >= self.end => return Ok(None),
            None => {
                self.page = self.next_page()?.into_iter();
                self.page
                    .next()
                    .expect("a page holds every position of its span")
            }
        };
        self.next = record.position + 1;
        if self.check_hashes {
            let reason = if self.prev_hash.is_some_and(|h| h != record.prev_hash) {
                Some("the record's previous-hash does not match the hash of the record before it")
            } else if record.recompute_hash() != record.hash {
                Some("the record's hash is not the hash of its fields")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(corrupt(&self.log.log, record.position, reason.into()));
            }
            self.prev_hash = Some(record.hash);
        }
        Ok(Some(record))
    }
}

impl Iterator for Pages<'_> {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(self.log.remember_damage(e)))
            }
        }
    }
}

/// The rest of a long range read (all but its first page, which the reader fetches while this
/// connects), fetched ahead of the reader on a connection and a thread of its own, so that the
/// database produces the next pages while the reader takes in the ones before (with each page
/// fetched by the reader, the two took turns). It runs the reader's own page query, page after
/// page (each a short query with its own snapshot, so a long read holds back no vacuum), and
/// sends pages of whole, consecutive positions, at most [`READ_AHEAD_PAGES`] ahead of the
/// reader. It stops at the first thing that is not one (a lost connection, a row that is not a
/// record, a position missing), and the reader then fetches from where the pages stopped
/// itself, which rides out a lost connection and reports damage at its position; a reader
/// that goes away is found out at the next page sent, so at most one page query runs after
/// it. It reads only below the durable end the reader knows, where every row is committed, so
/// what it sends is what the reader's own queries would have read.
///
/// Started only for a log that rides out lost connections: a log opened to ride out none (a
/// server's read view) makes at most one attempt to connect in a read, and a read ahead would
/// be a second. At most [`READ_AHEADS_MAX`] run at once in a process.
struct ReadAhead {
    pages: mpsc::Receiver<Vec<Record>>,
    /// Its connection is made and its query prepared.
    connected: Arc<AtomicBool>,
}

impl ReadAhead {
    /// `None` if none may start (see above) or no thread could be started: the range is then
    /// fetched a page at a time.
    fn start(log: &PgLog, from: u64, to: u64) -> Option<ReadAhead> {
        if from >= to || !log.reads.rides_out_losses() {
            return None;
        }
        let slot = Slot::take()?;
        let (config, name) = (log.config.clone(), log.log.clone());
        // One page waits in the thread's `send`, the others in the channel.
        let (sender, pages) = mpsc::sync_channel(READ_AHEAD_PAGES - 1);
        let connected = Arc::new(AtomicBool::new(false));
        let connected_here = Arc::clone(&connected);
        std::thread::Builder::new()
            .name("gongji-pg-read-ahead".into())
            .spawn(move || {
                let _slot = slot;
                if let Ok(mut client) = connect(&config, &name, "read-ahead") {
                    // Every way it ends is the reader's to find out: the pages stop.
                    let _ = send_pages(&mut client, &name, from, to, sender, &connected_here);
                }
            })
            .ok()?;
        READ_AHEADS_STARTED.fetch_add(1, Ordering::Relaxed);
        Some(ReadAhead { pages, connected })
    }
}

/// A place among the [`READ_AHEADS_MAX`] read aheads of the process, given back when dropped.
struct Slot(());

impl Slot {
    /// A place, if fewer than [`READ_AHEADS_MAX`] are taken.
    fn take() -> Option<Slot> {
        let taken = READ_AHEADS.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(());
        (taken < READ_AHEADS_MAX).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        READ_AHEADS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sends the records of log `log` from `from` to `to` in pages of consecutive positions, until
/// the range ends, a row is not the record expected, a query fails or nobody receives.
fn send_pages(
    client: &mut Client,
    log: &str,
    from: u64,
    to: u64,
    sender: mpsc::SyncSender<Vec<Record>>,
    connected: &AtomicBool,
) -> Result<(), ()> {
    let query = client.prepare(&range_query()).map_err(drop)?;
    connected.store(true, Ordering::Release);
    let mut next = from;
    while next < to {
        let page_end = to.min(next.saturating_add(PAGE_RECORDS));
        let (low, high) = (
            to_i64(next, "position").map_err(drop)?,
            to_i64(page_end, "position").map_err(drop)?,
        );
        let rows = client.query(&query, &[&log, &low, &high]).map_err(drop)?;
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            match record_of(row) {
                Ok(record) if record.position == next => page.push(record),
                _ => break,
            }
            next += 1;
        }
        let whole = next == page_end;
        if !page.is_empty() {
            sender.send(page).map_err(drop)?;
        }
        if !whole {
            return Err(());
        }
    }
    Ok(())
}

/// Durable records of a range, each with its link (see `DurableLog::read_range_links_deferred`).
pub(crate) struct Links<'a> {
    pages: Pages<'a>,
    held: Option<Record>,
}

impl<'a> Links<'a> {
    pub fn new(log: &'a PgLog, from: u64, to: u64) -> Links<'a> {
        Links {
            pages: Pages::new(log, from, to, false),
            held: None,
        }
    }

    /// The link of the range's last record: the head's hash if the range reaches the durable
    /// end, else the previous hash of the record after the range.
    fn last_link(&self) -> Result<Link, LogError> {
        let log = self.pages.log;
        let end = self.pages.end;
        if end >= log.durable.end_position {
            return Ok(Link::new(log.durable.last_hash, end));
        }
        let after = log.fetch(end, end + 1)?;
        let record = after
            .first()
            .expect("fetch returns every position asked for");
        Ok(Link::new(record.prev_hash, end))
    }
}

impl Iterator for Links<'_> {
    type Item = Result<(Record, Link), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let next = self.pages.next();
            let Some(held) = self.held.take() else {
                match next? {
                    Ok(record) => {
                        self.held = Some(record);
                        continue;
                    }
                    Err(e) => return Some(Err(e)),
                }
            };
            return Some(match next {
                Some(Ok(record)) => {
                    let link = Link::new(record.prev_hash, record.position);
                    self.held = Some(record);
                    Ok((held, link))
                }
                Some(Err(e)) => Err(e),
                None => self
                    .last_link()
                    .map(|link| (held, link))
                    .map_err(|e| self.pages.log.remember_damage(e)),
            });
        }
    }
}
