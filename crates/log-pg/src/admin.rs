//! Whole logs as units: [`PgLog::rename_log`] gives a log another name, [`PgLog::drop_log`]
//! removes one. What `audit import` needs to restore into a temporary log and put it in place
//! only once everything checked, as the file log's import renames a directory.
//!
//! Invariants as the code holds them: each is ONE transaction over the log's four places (its
//! head row, its records, its projections and its projection checkpoint), so a reader sees the
//! log whole under one name or the other, never half; each holds the log's writer lock
//! (transaction-scoped, waiting at most [`WRITER_LOCK_WAIT`] for a writer that just closed to
//! be gone), so no writer of the log is open meanwhile; a rename never overwrites: a target
//! with a head row, records or projections refuses it and changes nothing.

use std::time::Duration;

use gongji_log::LogError;
use postgres::Transaction;

use crate::conn::{connect, parse, pg_err};
use crate::open::check_name;
use crate::schema::LOCK_CLASS;
use crate::PgLog;

/// How long a rename or a drop waits for the log's writer lock: a writer closed just before
/// (its session ending on the server after the client let it go) releases it in moments; one
/// still open makes the call fail with `LogError::Locked`.
pub const WRITER_LOCK_WAIT: Duration = Duration::from_secs(10);

/// The tables holding a log's rows, keyed by its name.
const LOG_TABLES: [&str; 4] = [
    "gongji_log_records",
    "gongji_projections",
    "gongji_projection_checkpoints",
    "gongji_log_heads",
];

impl PgLog {
    /// Renames log `from` to `to` in the database `uri` names: its head row, records,
    /// projections and checkpoint, in one transaction. Refused (`LogError::InvalidInput`,
    /// nothing changed) when `from` does not exist or `to` holds anything; `LogError::Locked`
    /// when a writer of `from` is open.
    pub fn rename_log(uri: &str, from: &str, to: &str) -> Result<(), LogError> {
        check_name(from)?;
        check_name(to)?;
        let action = format!("renaming log {from:?} to {to:?}");
        let mut client = connect(&parse(uri)?, from, "admin")?;
        let mut tx = client.transaction().map_err(|e| pg_err(&action, &e))?;
        lock_writer(&mut tx, from, &action, false)?;
        for table in LOG_TABLES {
            let taken = tx
                .query_opt(
                    &format!("SELECT 1 FROM {table} WHERE log = $1 LIMIT 1"),
                    &[&to],
                )
                .map_err(|e| pg_err(&action, &e))?;
            if taken.is_some() {
                return Err(LogError::InvalidInput(format!(
                    "log {to:?} already exists (it has rows in {table}): a log is never \
                     renamed over another"
                )));
            }
        }
        for table in LOG_TABLES {
            tx.execute(
                &format!("UPDATE {table} SET log = $2 WHERE log = $1"),
                &[&from, &to],
            )
            .map_err(|e| pg_err(&action, &e))?;
        }
        tx.commit().map_err(|e| pg_err(&action, &e))
    }

    /// Removes log `log` from the database `uri` names: its head row, records, projections and
    /// checkpoint, in one transaction. Whether it existed (a log without a head row is none). `LogError::Locked` when a writer of
    /// it is open.
    pub fn drop_log(uri: &str, log: &str) -> Result<bool, LogError> {
        check_name(log)?;
        let action = format!("dropping log {log:?}");
        let mut client = connect(&parse(uri)?, log, "admin")?;
        let mut tx = client.transaction().map_err(|e| pg_err(&action, &e))?;
        if !lock_writer(&mut tx, log, &action, true)? {
            return Ok(false);
        }
        for table in LOG_TABLES {
            tx.execute(&format!("DELETE FROM {table} WHERE log = $1"), &[&log])
                .map_err(|e| pg_err(&action, &e))?;
        }
        tx.commit().map_err(|e| pg_err(&action, &e))?;
        Ok(true)
    }
}

/// Takes log `log`'s writer lock for the transaction (waiting up to [`WRITER_LOCK_WAIT`]),
/// then locks its head row, read again under the lock (another rename or drop may have gone
/// first). The lock comes first so that a live writer's commits are not held up on the head
/// row while this waits. Whether the log exists; a log that does not is refused unless
/// `missing_ok` (then `Ok(false)`). A database without the log's tables holds no log.
fn lock_writer(
    tx: &mut Transaction<'_>,
    log: &str,
    action: &str,
    missing_ok: bool,
) -> Result<bool, LogError> {
    let err = |e: postgres::Error| pg_err(action, &e);
    let missing = || match missing_ok {
        true => Ok(false),
        false => Err(LogError::InvalidInput(format!(
            "the database holds no log named {log:?}"
        ))),
    };
    let tables = tx
        .query_one("SELECT to_regclass('gongji_log_heads') IS NOT NULL", &[])
        .map_err(err)?;
    if !tables.get::<_, bool>(0) {
        return missing();
    }
    let key = "SELECT lock_key FROM gongji_log_heads WHERE log = $1";
    let Some(head) = tx.query_opt(key, &[&log]).map_err(err)? else {
        return missing();
    };
    let lock_key: i32 = head.get(0);
    let wait_ms = format!("{}", WRITER_LOCK_WAIT.as_millis());
    tx.execute("SELECT set_config('lock_timeout', $1, true)", &[&wait_ms])
        .map_err(err)?;
    let locked = tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_CLASS, &lock_key],
    );
    match locked {
        Err(e) if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            return Err(crate::session::locked(log, None))
        }
        Err(e) => return Err(err(e)),
        Ok(_) => {}
    }
    let again = tx
        .query_opt(&format!("{key} FOR UPDATE"), &[&log])
        .map_err(err)?;
    match again {
        Some(_) => Ok(true),
        None => missing(),
    }
}
