//! Opening a log: as its writer ([`PgLog::open`]: schema, head row, lock, the tail checked
//! against the head, the writer's threads) or to read beside it ([`PgLog::open_read_only`]: no
//! lock, nothing written); and closing.
//!
//! Invariants as the code holds them: a writer starts only at a head whose last record is
//! there with the head's hash and with no record beyond it; a reader's durable end is a head
//! it read (so it never sees a record before the transaction that made it durable committed);
//! closing or dropping a writer waits for every batch handed over.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use gongji_log::LogError;
use postgres::Client;

use crate::conn::{connect, parse, pg_err, to_i64};
use crate::read::nothing_beyond;
use crate::session::{read_head, Head, Session};
use crate::writer::{Progress, Writer};
use crate::{corrupt, schema, PgLog, Reconnecting, StreamVersions};

/// Longest log name, in bytes.
pub const MAX_LOG_NAME_BYTES: usize = 64;

/// Options for [`PgLog::open_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgLogOptions {
    /// How long the writer keeps trying, after its connection was lost in the middle of a
    /// commit, to connect again (to the new primary, with a multi-host connection string) and
    /// take its lock again, before it gives the batch up as failed (outcome unknown until the
    /// log is opened again). pg_auto_failover's default failover takes about 40 to 55 s; the
    /// default of 180 s rides out one after another (a second failover, or a candidate that
    /// takes long to promote, on a loaded machine). Reads ride out a lost connection for as
    /// long (from the loss), and so do the projections'. Zero
    /// rides nothing out: a read that finds its connection lost fails at once, and the next
    /// one tries once to connect (for a reader that is opened again rather than wait, as a
    /// server's read view is).
    pub reconnect_within: Duration,
}

impl Default for PgLogOptions {
    fn default() -> Self {
        PgLogOptions {
            reconnect_within: Duration::from_secs(180),
        }
    }
}

pub(crate) fn check_name(log: &str) -> Result<(), LogError> {
    if log.is_empty() || log.len() > MAX_LOG_NAME_BYTES || log.chars().any(char::is_control) {
        return Err(LogError::InvalidInput(format!(
            "a log name has 1..={MAX_LOG_NAME_BYTES} bytes and no control character: {log:?}"
        )));
    }
    Ok(())
}

impl PgLog {
    /// Opens log `log` in the database `uri` names (a libpq connection string) as its only
    /// writer, with the default options.
    pub fn open(uri: &str, log: &str) -> Result<PgLog, LogError> {
        PgLog::open_with(uri, log, PgLogOptions::default())
    }

    /// Opens log `log` as its only writer: creates the schema and the log if missing, takes
    /// the log's writer lock (`LogError::Locked` at once if another session holds it) and
    /// checks that the last record is there with the head's hash.
    pub fn open_with(uri: &str, log: &str, options: PgLogOptions) -> Result<PgLog, LogError> {
        check_name(log)?;
        let config = parse(uri)?;
        let (session, head) = Session::open(&config, log, options.reconnect_within)?;
        let mut reads = connect(&config, log, "reads")?;
        check_tail(&mut reads, log, head, true)?;
        let writer = Writer::start(session, head)?;
        let progress = Arc::clone(&writer.progress);
        let within = options.reconnect_within;
        Ok(PgLog::new(
            config,
            log,
            reads,
            head,
            progress,
            Some(writer),
            within,
        ))
    }

    /// Opens log `log` to read beside its writer: no lock, nothing written. It reads up to the
    /// head it read at open, and [`refresh_read_only`](gongji_log::DurableLog) reads the head
    /// again. Every append and sync with records is refused with `LogError::ReadOnly`. With the
    /// default options: a read whose connection was lost connects again for up to 180 s.
    pub fn open_read_only(uri: &str, log: &str) -> Result<PgLog, LogError> {
        PgLog::open_read_only_with(uri, log, PgLogOptions::default())
    }

    /// As [`open_read_only`](PgLog::open_read_only); a read whose connection was lost (a
    /// failover) connects again, to the new primary with a multi-host connection string, for
    /// up to `options.reconnect_within` before it fails. The first connection is not retried:
    /// a wrong address fails at once.
    pub fn open_read_only_with(
        uri: &str,
        log: &str,
        options: PgLogOptions,
    ) -> Result<PgLog, LogError> {
        check_name(log)?;
        let config = parse(uri)?;
        let mut reads = connect(&config, log, "reader")?;
        schema::check_version(&mut reads)?;
        let head = read_head(&mut reads, log)?;
        check_tail(&mut reads, log, head, false)?;
        let progress = Progress::new(head);
        let within = options.reconnect_within;
        Ok(PgLog::new(config, log, reads, head, progress, None, within))
    }

    /// A writer's table of stream versions starts complete on an empty log (every stream it
    /// will know is one it appends to); a reader's never is (its writer appends behind it).
    fn new(
        config: postgres::Config,
        log: &str,
        reads: Client,
        head: Head,
        progress: Arc<Progress>,
        writer: Option<Writer>,
        reconnect_within: std::time::Duration,
    ) -> PgLog {
        let complete = writer.is_some() && head.end_position == 0;
        PgLog {
            log: log.to_owned(),
            config,
            reads: Reconnecting::new(Some(reads), reconnect_within),
            writer,
            progress,
            streams: StreamVersions {
                versions: Default::default(),
                complete,
                loaded: false,
            },
            staged: Vec::new(),
            in_flight: VecDeque::new(),
            last_seq: 0,
            submitted_end: head.end_position,
            durable: head,
            broken: None,
            damaged: AtomicBool::new(false),
        }
    }

    /// Whether the database `uri` names holds log `log` (its head row: a writer opened it once).
    /// Creates nothing; a database without the log's tables holds no log.
    pub fn exists(uri: &str, log: &str) -> Result<bool, LogError> {
        check_name(log)?;
        let config = parse(uri)?;
        let mut client = connect(&config, log, "probe")?;
        let action = format!("looking for log {log:?}");
        let row = client
            .query_one("SELECT to_regclass('gongji_log_heads') IS NOT NULL", &[])
            .map_err(|e| pg_err(&action, &e))?;
        if !row.get::<_, bool>(0) {
            return Ok(false);
        }
        let head = client
            .query_opt("SELECT 1 FROM gongji_log_heads WHERE log = $1", &[&log])
            .map_err(|e| pg_err(&action, &e))?;
        Ok(head.is_some())
    }

    /// The log's name (its key in the tables: the region code, as the ledger names it).
    pub fn name(&self) -> &str {
        &self.log
    }

    /// Waits for every batch handed over, then ends the writer's session (releasing its lock).
    pub(crate) fn close_log(mut self) -> Result<(), LogError> {
        let waited = self.wait_in_flight();
        if let Some(mut writer) = self.writer.take() {
            writer.stop();
        }
        waited
    }
}

/// The record before `head`'s end must be there with the head's hash; a writer also checks
/// that no record lies beyond the head (a reader may find the writer's newer ones).
fn check_tail(client: &mut Client, log: &str, head: Head, writer: bool) -> Result<(), LogError> {
    let action = format!("checking the last record of log {log:?}");
    if head.end_position > 0 {
        let last = to_i64(head.end_position - 1, "position")?;
        let hash = client
            .query_opt(
                "SELECT hash FROM gongji_log_records WHERE log = $1 AND position = $2",
                &[&log, &last],
            )
            .map_err(|e| pg_err(&action, &e))?;
        let found: Option<Vec<u8>> = hash.map(|row| row.get(0));
        if found.as_deref() != Some(&head.last_hash[..]) {
            return Err(corrupt(
                log,
                head.end_position - 1,
                "the last record is missing or its hash is not the head's".into(),
            ));
        }
    }
    if writer {
        nothing_beyond(client, log, head.end_position)?;
    }
    Ok(())
}
