//! The writer's side of the projections: reads on one connection, applies and clears on
//! another, each connected again after a loss (see `projections`).
//!
//! Invariants as the code holds them: an apply or a clear is one transaction, its checkpoint
//! row written in it; the puts of an apply hold each key once, with its last write; puts are
//! copied straight into the table only by a first attempt after this writer's clear, and
//! split into an update and an insert only by a first attempt (a retry upserts); work on a
//! lost connection is done again from the start on a new one, never continued, and only until
//! `reconnect_within` has passed since the loss.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gongji_log::{KvPair, KvWrite, LogError};
use postgres::{Config, Transaction};

use super::statements::{successor, upper_bound, Conn, Stored, PAGE_ROWS};
use crate::conn::{connect, connection_lost, describe, pg_err, to_i64};
use crate::reconnect::Reconnecting;
use crate::{copy, schema};

/// Longest key or value: PostgreSQL's bound on a `bytea`, less a byte.
const FIELD_BYTES_MAX: usize = (1 << 30) - 1;

const STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS gongji_projection_stage \
     (log text NOT NULL, key bytea NOT NULL, value bytea NOT NULL) ON COMMIT DELETE ROWS";
const COPY_STAGE: &str =
    "COPY gongji_projection_stage (log, key, value) FROM STDIN (FORMAT binary)";
/// What a first attempt does with the staged entries: updates the keys there, then inserts the
/// others (measured faster than one upsert: `examples/projections_bench.rs`). Correct only
/// while nothing else inserts the log's keys: the log's one writer.
const UPDATE_STAGED: &str = "UPDATE gongji_projections p SET value = s.value \
     FROM gongji_projection_stage s WHERE p.log = $1 AND p.key = s.key";
const INSERT_NEW: &str = "INSERT INTO gongji_projections (log, key, value) \
     SELECT log, key, value FROM gongji_projection_stage s WHERE NOT EXISTS \
     (SELECT 1 FROM gongji_projections p WHERE p.log = $1 AND p.key = s.key)";
/// What an attempt after a lost connection does: the transaction the lost session left may
/// still hold the keys' locks, and commit inserting them; an upsert waits and then updates.
const UPSERT: &str = "INSERT INTO gongji_projections (log, key, value) \
     SELECT log, key, value FROM gongji_projection_stage \
     ON CONFLICT (log, key) DO UPDATE SET value = EXCLUDED.value";
/// Straight into the table: only when the log holds no entry (after this writer's clear).
const COPY_TABLE: &str = "COPY gongji_projections (log, key, value) FROM STDIN (FORMAT binary)";

/// How the puts of an attempt reach the table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Put {
    /// COPY into the table: the log holds no entry.
    Straight,
    /// Staged, then an update and an insert.
    Split,
    /// Staged, then an upsert.
    Upsert,
}

const DELETE: &str = "DELETE FROM gongji_projections WHERE log = $1 AND key = ANY($2)";
const SET_CHECKPOINT: &str = "INSERT INTO gongji_projection_checkpoints AS c \
     (log, checkpoint, stores) VALUES ($1, $2, 1) \
     ON CONFLICT (log) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, stores = c.stores + 1";
const COUNT_STORE: &str = "INSERT INTO gongji_projection_checkpoints AS c \
     (log, checkpoint, stores) VALUES ($1, NULL, 1) \
     ON CONFLICT (log) DO UPDATE SET stores = c.stores + 1";

/// Why one attempt at some work failed.
enum Failed {
    Pg(postgres::Error),
    /// Sending rows failed: the connection is lost if its client says so.
    Send(std::io::Error),
    Log(LogError),
}

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Failed {
        Failed::Pg(e)
    }
}

/// A connection that is made again after a loss (`None`: lost).
struct Slot {
    role: &'static str,
    conn: Reconnecting<Option<Conn>>,
}

/// The projections of one log, as its writer's store.
pub(crate) struct Writer {
    config: Config,
    log: String,
    reconnect_within: Duration,
    reads: Slot,
    writes: Slot,
    /// The log holds no entry: this writer cleared it and has stored nothing since.
    empty: AtomicBool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgProjections")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

/// A batch ready to send: the puts in COPY form, the deleted keys.
struct Batch {
    copy: Vec<u8>,
    puts: u64,
    deletes: Vec<Vec<u8>>,
}

/// The batch of `writes` to log `log`, each key once with its last write, puts in key order.
fn batch(log: &str, writes: Vec<KvWrite>) -> Result<Batch, LogError> {
    let last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = writes.into_iter().collect();
    let mut batch = Batch {
        copy: Vec::new(),
        puts: 0,
        deletes: Vec::new(),
    };
    copy::begin(&mut batch.copy);
    for (key, value) in last {
        let longest = key.len().max(value.as_ref().map_or(0, Vec::len));
        if longest > FIELD_BYTES_MAX {
            return Err(LogError::TooLarge {
                what: "projection entry",
                actual: longest as u64,
                limit: FIELD_BYTES_MAX as u64,
            });
        }
        match value {
            Some(value) => {
                copy::entry(&mut batch.copy, log, &key, &value);
                batch.puts += 1;
            }
            None => batch.deletes.push(key),
        }
    }
    copy::end(&mut batch.copy);
    Ok(batch)
}

impl Writer {
    /// Creates the tables if missing (migrating a version-1 database) and connects.
    pub fn open(config: Config, log: &str, reconnect_within: Duration) -> Result<Writer, LogError> {
        let mut client = connect(&config, log, "projections")?;
        schema::ensure(&mut client)?;
        let reads = Conn::new(client, log)?;
        let writes = Conn::open(&config, log, "projections writer")?;
        Ok(Writer {
            config,
            log: log.to_owned(),
            reconnect_within,
            reads: Slot {
                role: "projections",
                conn: Reconnecting::new(Some(reads), reconnect_within),
            },
            writes: Slot {
                role: "projections writer",
                conn: Reconnecting::new(Some(writes), reconnect_within),
            },
            empty: AtomicBool::new(false),
        })
    }

    /// Runs `work` on `slot`'s connection; after a lost connection, again from the start on a
    /// new one (made by this call, or by another while this one waits), until
    /// `reconnect_within` has passed since the loss (see `reconnect`).
    fn run<T>(
        &self,
        slot: &Slot,
        action: &str,
        mut work: impl FnMut(&mut Conn) -> Result<T, Failed>,
    ) -> Result<T, LogError> {
        let connect = || Conn::open(&self.config, &self.log, slot.role);
        slot.conn.run(action, connect, |conn| {
            let lost = match work(conn) {
                Ok(done) => return Ok(Ok(done)),
                Err(Failed::Log(e)) => return Ok(Err(e)),
                Err(Failed::Pg(e)) if !connection_lost(&conn.client, &e) => {
                    return Ok(Err(pg_err(action, &e)))
                }
                Err(Failed::Send(e)) if !conn.client.is_closed() => {
                    return Ok(Err(LogError::Io(std::io::Error::new(
                        e.kind(),
                        format!("PostgreSQL, {action}: sending rows: {e}"),
                    ))))
                }
                Err(Failed::Pg(e)) => describe(&e),
                Err(Failed::Send(e)) => e.to_string(),
            };
            Err(LogError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                format!(
                    "PostgreSQL, {action}: the connection was lost ({lost}) and no new one did \
                     the work within {:?}",
                    self.reconnect_within
                ),
            )))
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        let action = format!("reading a projection of log {:?}", self.log);
        self.run(&self.reads, &action, |conn| Ok(conn.get(&self.log, key)?))
    }

    pub fn scan_prefix(&self, prefix: &[u8]) -> Scan<'_> {
        Scan {
            writer: self,
            upper: upper_bound(prefix),
            from: Some(prefix.to_vec()),
            page: Vec::new().into_iter(),
        }
    }

    fn stored(&self) -> Result<Stored, LogError> {
        let action = format!("reading the projection checkpoint of log {:?}", self.log);
        self.run(&self.reads, &action, |conn| {
            conn.stored(&self.log)?.map_err(Failed::Log)
        })
    }

    pub fn checkpoint(&self) -> Result<Option<u64>, LogError> {
        Ok(self.stored()?.checkpoint)
    }

    /// One transaction: the puts through the staging table, the deletes, the checkpoint row.
    /// Nothing is sent for a batch that changes nothing.
    pub fn apply(&self, writes: Vec<KvWrite>, checkpoint: Option<u64>) -> Result<(), LogError> {
        let batch = batch(&self.log, writes)?;
        let nothing = batch.puts == 0 && batch.deletes.is_empty();
        if nothing && (checkpoint.is_none() || checkpoint == self.checkpoint()?) {
            return Ok(());
        }
        let checkpoint = checkpoint
            .map(|c| to_i64(c, "projection checkpoint"))
            .transpose()?;
        let action = format!("storing projections of log {:?}", self.log);
        // A first attempt only goes straight into the table or splits the puts: after a lost
        // connection the lost transaction may have committed, or still hold the keys.
        let mut how = if self.empty.load(Ordering::Acquire) {
            Put::Straight
        } else {
            Put::Split
        };
        self.run(&self.writes, &action, |conn| {
            let how = std::mem::replace(&mut how, Put::Upsert);
            let mut tx = conn.client.transaction()?;
            // A large batch's plan passes JIT's cost thresholds; compiling costs more than it
            // saves on one statement.
            tx.batch_execute("SET LOCAL jit = off")?;
            if batch.puts > 0 {
                put(&mut tx, &self.log, &batch, how)?;
            }
            if !batch.deletes.is_empty() {
                tx.execute(DELETE, &[&self.log, &batch.deletes])?;
            }
            match checkpoint {
                Some(c) => tx.execute(SET_CHECKPOINT, &[&self.log, &c])?,
                None => tx.execute(COUNT_STORE, &[&self.log])?,
            };
            Ok(tx.commit()?)
        })?;
        self.empty.store(false, Ordering::Release);
        Ok(())
    }

    /// Drops every entry and the checkpoint of the log, in one transaction.
    pub fn clear(&self) -> Result<(), LogError> {
        let action = format!("clearing the projections of log {:?}", self.log);
        let none: Option<i64> = None;
        self.run(&self.writes, &action, |conn| {
            let mut tx = conn.client.transaction()?;
            tx.execute(
                "DELETE FROM gongji_projections WHERE log = $1",
                &[&self.log],
            )?;
            tx.execute(SET_CHECKPOINT, &[&self.log, &none])?;
            Ok(tx.commit()?)
        })?;
        self.empty.store(true, Ordering::Release);
        Ok(())
    }

    /// One page of a scan, from key `from` on.
    fn page(&self, from: &[u8], upper: Option<&[u8]>) -> Result<Vec<KvPair>, LogError> {
        let action = format!("scanning the projections of log {:?}", self.log);
        self.run(&self.reads, &action, |conn| {
            Ok(conn.page(&self.log, from, upper)?)
        })
    }
}

/// The batch's puts, `how` says how (see [`Put`]).
fn put(tx: &mut Transaction<'_>, log: &str, batch: &Batch, how: Put) -> Result<(), Failed> {
    if how != Put::Straight {
        tx.batch_execute(STAGE)?;
    }
    let mut rows = tx.copy_in(if how == Put::Straight {
        COPY_TABLE
    } else {
        COPY_STAGE
    })?;
    rows.write_all(&batch.copy).map_err(Failed::Send)?;
    let copied = rows.finish()?;
    if copied != batch.puts {
        return Err(Failed::Log(LogError::Broken(format!(
            "COPY took {copied} projection entries of {}",
            batch.puts
        ))));
    }
    match how {
        Put::Straight => {}
        Put::Split => {
            tx.execute(UPDATE_STAGED, &[&log])?;
            tx.execute(INSERT_NEW, &[&log])?;
        }
        Put::Upsert => {
            tx.execute(UPSERT, &[])?;
        }
    }
    Ok(())
}

/// A writer's scan: a page at a time, each page one query (the connection is not held
/// between pages, so the caller may read while it scans).
pub(crate) struct Scan<'a> {
    writer: &'a Writer,
    upper: Option<Vec<u8>>,
    /// Where the next page starts; `None` once the last page was read (or failed).
    from: Option<Vec<u8>>,
    page: std::vec::IntoIter<KvPair>,
}

impl Iterator for Scan<'_> {
    type Item = Result<KvPair, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(pair) = self.page.next() {
            return Some(Ok(pair));
        }
        let from = self.from.take()?;
        let page = match self.writer.page(&from, self.upper.as_deref()) {
            Ok(page) => page,
            Err(e) => return Some(Err(e)),
        };
        if page.len() as i64 == PAGE_ROWS {
            self.from = page.last().map(|(key, _)| successor(key));
        }
        self.page = page.into_iter();
        self.page.next().map(Ok)
    }
}
