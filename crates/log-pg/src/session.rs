//! The writer's session: its connection, the session-scoped advisory lock that makes it the
//! log's only writer, the commit of a sealed batch, and what happens when the connection is
//! lost in the middle of one (the outcome unknown).
//!
//! Invariants as the code holds them:
//! * a commit moves the head row from exactly where this writer left it (`end_position` and
//!   `last_hash`, the fence) to the batch's end, in the transaction that inserts the batch's
//!   rows; a head found elsewhere fails the batch (another writer, or a restore);
//! * after a lost connection, nothing is decided before the lock is held again on a new
//!   connection: holding it means the old session has ended, so its transaction is final; the
//!   head then says whether the batch committed (it is acknowledged), did not (it is committed
//!   again, once per reconnect, within `reconnect_within`), or something else happened (fail);
//! * a batch is acknowledged only after `COMMIT` returned or the head read back under the lock
//!   shows it;
//! * on a replicated primary (its `synchronous_standby_names` was set when a session of this
//!   writer connected) a batch commits only while the setting is not empty: the fenced
//!   `UPDATE` also requires it, so a new primary in pg_auto_failover's `wait_primary` (which
//!   empties it and would acknowledge commits alone) commits nothing; the writer waits for a
//!   quorum within the same deadline. A batch found committed after a reconnect is
//!   acknowledged only once a synchronous standby has flushed the primary's WAL past it
//!   (`pg_stat_replication`), so a commit left on one node alone is never acknowledged.
//!
//! What stays fatal (the batch fails and the log is broken): a head found elsewhere, a batch
//! the server refused for another reason than a lost connection (a constraint, a full disk's
//! error), a COPY that stored another count of rows, no writable primary with the lock (or no
//! quorum) within `reconnect_within`. What is ridden out: a lost connection (closed, reset,
//! `08*`, `57P*`, a session on a node that turned read-only, `25006`) and a primary without a
//! quorum.

use std::io::Write;
use std::time::{Duration, Instant};

use gongji_log::LogError;
use postgres::{Client, Config};

use crate::conn::{
    connect, connection_lost, describe, pg_err, retry_until, to_hash, to_i64, to_u64,
    RECONNECT_PAUSE,
};
use crate::copy;
use crate::schema::{self, LOCK_CLASS};

/// A log's head row: how many records it holds and the last one's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub end_position: u64,
    pub last_hash: [u8; 32],
}

/// A batch ready to commit: its rows in COPY form, the head it starts from and the head it
/// leaves.
pub(crate) struct Sealed {
    pub from: Head,
    pub to: Head,
    pub rows: u64,
    /// The rows (`copy::row`), without the COPY header and trailer.
    pub copy: Vec<u8>,
}

impl Sealed {
    /// Consecutive sealed batches (each starting where the one before ends) as one.
    pub fn merge(batches: impl IntoIterator<Item = Sealed>) -> Sealed {
        let mut batches = batches.into_iter();
        let mut merged = batches.next().expect("at least one batch to merge");
        for next in batches {
            assert_eq!(next.from, merged.to, "merged batches are consecutive");
            merged.to = next.to;
            merged.rows += next.rows;
            merged.copy.extend_from_slice(&next.copy);
        }
        merged
    }
}

/// What the head read back after a lost connection says of a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InDoubt {
    Committed,
    NotCommitted,
    /// Neither: the head moved some other way.
    Diverged,
}

/// The batch's fate from the head read back under the writer's lock.
pub(crate) fn in_doubt(head: &Head, sealed: &Sealed) -> InDoubt {
    if *head == sealed.to {
        InDoubt::Committed
    } else if *head == sealed.from {
        InDoubt::NotCommitted
    } else {
        InDoubt::Diverged
    }
}

enum CommitError {
    Pg(postgres::Error),
    Local(String),
    /// The head is not where this writer left it.
    Fence,
    /// A replicated primary has no synchronous standby now (`synchronous_standby_names` empty,
    /// or no standby has flushed the WAL yet): nothing was committed by this attempt.
    NoQuorum,
}

/// What the next attempt of a batch's commit does.
#[derive(Clone, Copy)]
enum Step {
    /// Commits the batch (it is known not committed).
    Commit,
    /// The batch committed (read back after a reconnect): waits for a standby to hold it.
    Confirm,
}

/// True once a synchronous standby has flushed the WAL up to where it is now on the primary
/// (a commit read back is then on two nodes).
const REPLICATED: &str = "SELECT EXISTS (SELECT 1 FROM pg_stat_replication \
     WHERE sync_state IN ('sync', 'quorum') AND flush_lsn >= pg_current_wal_lsn())";

/// The writer's connection, holding the log's lock.
pub(crate) struct Session {
    config: Config,
    log: String,
    lock_key: i32,
    client: Client,
    reconnect_within: Duration,
    /// A session of this writer found `synchronous_standby_names` set: commits need a quorum.
    replicated: bool,
}

impl Session {
    /// Connects, creates the schema and the log's head row if missing, and takes the log's
    /// writer lock (`Locked` if another session holds it). Returns the head.
    pub fn open(
        config: &Config,
        log: &str,
        reconnect_within: Duration,
    ) -> Result<(Session, Head), LogError> {
        let mut client = connect(config, log, "writer")?;
        schema::ensure(&mut client)?;
        client
            .execute(
                "INSERT INTO gongji_log_heads (log, end_position, last_hash) VALUES ($1, 0, $2) \
                 ON CONFLICT (log) DO NOTHING",
                &[&log, &&[0u8; 32][..]],
            )
            .map_err(|e| pg_err(&format!("creating the head of log {log:?}"), &e))?;
        let lock_key: i32 = client
            .query_one(
                "SELECT lock_key FROM gongji_log_heads WHERE log = $1",
                &[&log],
            )
            .map_err(|e| pg_err(&format!("reading the lock key of log {log:?}"), &e))?
            .get(0);
        if !try_lock(&mut client, lock_key, log)? {
            return Err(locked(log, holder(&mut client, lock_key)));
        }
        let head = read_head(&mut client, log)?;
        let replicated = sync_standbys_set(&mut client, log)?;
        let session = Session {
            config: config.clone(),
            log: log.to_owned(),
            lock_key,
            client,
            reconnect_within,
            replicated,
        };
        Ok((session, head))
    }

    pub fn log(&self) -> &str {
        &self.log
    }

    /// Releases the writer lock now (dropping the connection alone releases it only once the
    /// server has ended the session, which a writer opening right after could still find).
    pub fn release(mut self) {
        self.unlock();
    }

    fn unlock(&mut self) {
        let _ = self.client.execute(
            "SELECT pg_advisory_unlock($1, $2)",
            &[&LOCK_CLASS, &self.lock_key],
        );
    }

    /// Commits the batch; after a lost connection, finds out whether it committed and commits
    /// it again if it did not (see the module documentation).
    pub fn commit(&mut self, sealed: &Sealed) -> Result<(), LogError> {
        let mut deadline = None;
        let mut step = Step::Commit;
        loop {
            let attempt = match step {
                Step::Commit => self.try_commit(sealed),
                Step::Confirm => self.confirm_replicated(),
            };
            let error = match attempt {
                Ok(()) => return Ok(()),
                Err(CommitError::Fence) => return Err(self.diverged(sealed)),
                Err(CommitError::Local(message)) => return Err(LogError::Broken(message)),
                Err(CommitError::NoQuorum) => {
                    let deadline =
                        *deadline.get_or_insert_with(|| Instant::now() + self.reconnect_within);
                    self.wait_for_quorum(deadline, sealed, step)?;
                    continue;
                }
                Err(CommitError::Pg(e)) if !connection_lost(&self.client, &e) => {
                    return Err(pg_err(&self.batch_action(sealed), &e));
                }
                Err(CommitError::Pg(e)) => describe(&e),
            };
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.reconnect_within);
            let head = self.reconnect(deadline).map_err(|e| {
                LogError::Broken(format!(
                    "the connection was lost while {}, and no connection holding the log's lock \
                     could be made within {:?} ({error}; last: {e}); whether the batch \
                     committed is unknown until the log is opened again",
                    self.batch_action(sealed),
                    self.reconnect_within
                ))
            })?;
            step = match in_doubt(&head, sealed) {
                InDoubt::Committed => Step::Confirm,
                InDoubt::NotCommitted => Step::Commit,
                InDoubt::Diverged => return Err(self.diverged(sealed)),
            };
        }
    }

    /// Pauses before the next attempt while the primary has no quorum; past `deadline` the
    /// batch fails (with its outcome: not committed, or committed on the primary alone).
    fn wait_for_quorum(
        &self,
        deadline: Instant,
        sealed: &Sealed,
        step: Step,
    ) -> Result<(), LogError> {
        if Instant::now() < deadline {
            std::thread::sleep(RECONNECT_PAUSE);
            return Ok(());
        }
        let outcome = match step {
            Step::Commit => "it was not committed",
            Step::Confirm => {
                "it is committed on the primary, but no standby was seen holding it: it is not \
                 acknowledged, and the log must be opened again"
            }
        };
        Err(LogError::Broken(format!(
            "no synchronous standby acknowledged the primary's writes within {:?} while {} \
             (the primary's synchronous_standby_names is empty or no standby is streaming); \
             {outcome}",
            self.reconnect_within,
            self.batch_action(sealed)
        )))
    }

    /// A batch found committed after a reconnect: done once a synchronous standby has flushed
    /// the primary's WAL past it (at once when the database is not replicated).
    fn confirm_replicated(&mut self) -> Result<(), CommitError> {
        if !self.replicated {
            return Ok(());
        }
        let row = self
            .client
            .query_one(REPLICATED, &[])
            .map_err(CommitError::Pg)?;
        if row.get::<_, bool>(0) {
            Ok(())
        } else {
            Err(CommitError::NoQuorum)
        }
    }

    fn batch_action(&self, sealed: &Sealed) -> String {
        format!(
            "committing positions {}..{} of log {:?}",
            sealed.from.end_position, sealed.to.end_position, self.log
        )
    }

    fn diverged(&mut self, sealed: &Sealed) -> LogError {
        let now = read_head(&mut self.client, &self.log)
            .map(|h| format!("{} records", h.end_position))
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        LogError::Broken(format!(
            "the head of log {:?} is not where its writer left it ({} records) nor where the \
             batch would take it ({}); it holds {now}: another writer or a restore changed it; \
             nothing of the batch was acknowledged",
            self.log, sealed.from.end_position, sealed.to.end_position
        ))
    }

    /// One transaction: the fenced head update, the rows, `COMMIT`.
    fn try_commit(&mut self, sealed: &Sealed) -> Result<(), CommitError> {
        let from = to_i64(sealed.from.end_position, "position").map_err(local)?;
        let to = to_i64(sealed.to.end_position, "position").map_err(local)?;
        let mut tx = self.client.transaction().map_err(CommitError::Pg)?;
        let moved = tx
            .execute(
                "UPDATE gongji_log_heads SET end_position = $2, last_hash = $3, \
                 updated_at = now() \
                 WHERE log = $1 AND end_position = $4 AND last_hash = $5 \
                 AND (NOT $6 OR current_setting('synchronous_standby_names') <> '')",
                &[
                    &self.log,
                    &to,
                    &&sealed.to.last_hash[..],
                    &from,
                    &&sealed.from.last_hash[..],
                    &self.replicated,
                ],
            )
            .map_err(CommitError::Pg)?;
        if moved != 1 {
            // Dropping the transaction rolls it back.
            let quorum = tx
                .query_one("SHOW synchronous_standby_names", &[])
                .map_err(CommitError::Pg)?;
            if self.replicated && quorum.get::<_, String>(0).is_empty() {
                return Err(CommitError::NoQuorum);
            }
            return Err(CommitError::Fence);
        }
        let statement = format!(
            "COPY gongji_log_records ({}) FROM STDIN (FORMAT binary)",
            copy::COLUMNS
        );
        let mut writer = tx.copy_in(&statement).map_err(CommitError::Pg)?;
        let (mut header, mut trailer) = (Vec::new(), Vec::new());
        copy::begin(&mut header);
        copy::end(&mut trailer);
        let written = writer
            .write_all(&header)
            .and_then(|()| writer.write_all(&sealed.copy))
            .and_then(|()| writer.write_all(&trailer));
        if let Err(e) = written {
            // Dropping the writer and the transaction ends the COPY and rolls back.
            return Err(CommitError::Local(format!(
                "sending rows to PostgreSQL: {e}"
            )));
        }
        let rows = writer.finish().map_err(CommitError::Pg)?;
        if rows != sealed.rows {
            return Err(CommitError::Local(format!(
                "COPY stored {rows} rows of a batch of {}",
                sealed.rows
            )));
        }
        tx.commit().map_err(CommitError::Pg)
    }

    /// A new connection holding the lock, retried until `deadline`; returns the head read
    /// under the lock.
    fn reconnect(&mut self, deadline: Instant) -> Result<Head, LogError> {
        if !self.client.is_closed() {
            // The session is alive (a node turned read-only: its transaction failed, so ended)
            // and holds the lock: a new session, on that node again once it is writable,
            // could never take it otherwise.
            self.unlock();
        }
        let (client, head, replicated) = retry_until(deadline, || {
            let mut client = connect(&self.config, &self.log, "writer")?;
            if !try_lock(&mut client, self.lock_key, &self.log)? {
                return Err(locked(&self.log, holder(&mut client, self.lock_key)));
            }
            let head = read_head(&mut client, &self.log)?;
            let replicated = sync_standbys_set(&mut client, &self.log)?;
            Ok((client, head, replicated))
        })?;
        self.client = client;
        // Once replicated, always: a new primary in `wait_primary` has it empty.
        self.replicated |= replicated;
        Ok(head)
    }
}

fn local(e: LogError) -> CommitError {
    CommitError::Local(e.to_string())
}

/// Log `log`'s writer lock is held by another session: `holder`, if known.
pub(crate) fn locked(log: &str, holder: Option<String>) -> LogError {
    LogError::Locked {
        dir: format!("postgres:gongji_log_heads/{log}").into(),
        holder,
    }
}

/// Who holds the log's writer lock, as the server tells it: the holding session's application
/// name (a writer of this crate's names its log and its process id: `connect`), its client's
/// address and since when (both hidden from a role that may not see other roles' sessions,
/// without `pg_read_all_stats`). `None` when the server does not say: the lock was released
/// meanwhile, or the query failed.
fn holder(client: &mut Client, lock_key: i32) -> Option<String> {
    // An advisory lock on two int4 keys shows its keys as the oids `classid` and `objid`
    // (their bits read unsigned) with `objsubid` 2.
    let row = client
        .query_opt(
            "SELECT a.application_name, host(a.client_addr), a.client_port, \
                    to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.classid = ($1::int8 & 4294967295)::oid \
               AND l.objid = ($2::int8 & 4294967295)::oid",
            &[&i64::from(LOCK_CLASS), &i64::from(lock_key)],
        )
        .ok()??;
    let name: Option<String> = row.get(0);
    let name = name.filter(|name| !name.is_empty())?;
    // PostgreSQL keeps 63 bytes of a name: a long log name leaves the process id cut.
    let cut = match name.len() >= 63 {
        true => " (the name cut at 63 bytes: its process id may be incomplete)",
        false => "",
    };
    // No port: hidden from this role; port -1: a local socket.
    let from = match (
        row.get::<_, Option<String>>(1),
        row.get::<_, Option<i32>>(2),
    ) {
        (Some(address), Some(_)) => format!(", connected from {address}"),
        (None, Some(-1)) => ", connected over a local socket".to_string(),
        _ => String::new(),
    };
    let since = match row.get::<_, Option<String>>(3) {
        Some(since) => format!(" since {since} UTC"),
        None => String::new(),
    };
    Some(format!("held by {name:?}{cut}{from}{since}"))
}

/// Takes the log's writer lock for the session, without waiting.
fn try_lock(client: &mut Client, lock_key: i32, log: &str) -> Result<bool, LogError> {
    client
        .query_one(
            "SELECT pg_try_advisory_lock($1, $2)",
            &[&LOCK_CLASS, &lock_key],
        )
        .map(|row| row.get(0))
        .map_err(|e| pg_err(&format!("taking the writer lock of log {log:?}"), &e))
}

/// Whether the server runs with synchronous standbys named (a replicated primary).
fn sync_standbys_set(client: &mut Client, log: &str) -> Result<bool, LogError> {
    client
        .query_one("SHOW synchronous_standby_names", &[])
        .map(|row| !row.get::<_, String>(0).is_empty())
        .map_err(|e| {
            pg_err(
                &format!("reading the replication settings for log {log:?}"),
                &e,
            )
        })
}

/// The log's head row (`InvalidInput` if there is none).
pub(crate) fn read_head(client: &mut Client, log: &str) -> Result<Head, LogError> {
    let row = client
        .query_opt(
            "SELECT end_position, last_hash FROM gongji_log_heads WHERE log = $1",
            &[&log],
        )
        .map_err(|e| pg_err(&format!("reading the head of log {log:?}"), &e))?;
    let Some(row) = row else {
        return Err(LogError::InvalidInput(format!(
            "the database holds no log named {log:?}"
        )));
    };
    let damaged = |reason: String| crate::corrupt(log, 0, format!("its head row: {reason}"));
    let end_position = to_u64(row.get(0), "end_position").map_err(damaged)?;
    let last_hash = to_hash(row.get(1), "last_hash").map_err(damaged)?;
    Ok(Head {
        end_position,
        last_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> Sealed {
        Sealed {
            from: Head {
                end_position: 10,
                last_hash: [1; 32],
            },
            to: Head {
                end_position: 14,
                last_hash: [2; 32],
            },
            rows: 4,
            copy: Vec::new(),
        }
    }

    #[test]
    fn a_head_at_the_batch_end_means_it_committed() {
        let head = sealed().to;
        assert_eq!(in_doubt(&head, &sealed()), InDoubt::Committed);
    }

    #[test]
    fn a_head_where_the_writer_left_it_means_it_did_not_commit() {
        let head = sealed().from;
        assert_eq!(in_doubt(&head, &sealed()), InDoubt::NotCommitted);
    }

    #[test]
    fn any_other_head_is_divergence_even_at_the_same_position() {
        let moved_elsewhere = Head {
            end_position: 14,
            last_hash: [3; 32],
        };
        assert_eq!(in_doubt(&moved_elsewhere, &sealed()), InDoubt::Diverged);
        let cut_back = Head {
            end_position: 9,
            last_hash: [1; 32],
        };
        assert_eq!(in_doubt(&cut_back, &sealed()), InDoubt::Diverged);
        let same_end_other_start = Head {
            end_position: 10,
            last_hash: [9; 32],
        };
        assert_eq!(
            in_doubt(&same_end_other_start, &sealed()),
            InDoubt::Diverged
        );
    }
}
