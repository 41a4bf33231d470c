//! `gongji-log-pg`: the log of record in PostgreSQL, a second backend of
//! [`gongji_log::DurableLog`] beside the segment files of [`gongji_log::Log`].
//!
//! **What it is for.** Keeping a ledger's events in a (replicated) PostgreSQL database with the
//! file log's guarantees: a unit's records are committed all or none; expected stream versions
//! are checked; positions run from 0 without gaps in commit order; each record carries the
//! file log's blake3 chain link, checked on every read and by `verify`; a record is
//! acknowledged only once the transaction holding it committed. [`PgLog::open`] opens a log as
//! its only writer, [`PgLog::open_read_only`] beside it. And keeping the log's projections in
//! the same database ([`PgProjections`], a [`gongji_log::ProjectionStore`]: the module
//! `projections` says how), so that a ledger opened on another machine answers at once.
//!
//! **What it is not for.** It decides nothing about what projections hold (the ledger does),
//! does not pick which database a region lives on (the caller passes a connection string),
//! does not speak TLS yet (`NoTls`: loopback or a trusted network only), and does not manage
//! replication or failover: a multi-host connection string with
//! `target_session_attrs=read-write` finds the primary, and the writer connects again after
//! losing it (below).
//!
//! # Tables
//!
//! Created on a writer's first open (idempotent, under a transaction-scoped advisory lock),
//! versioned in `gongji_schema` (component `log`, version 2; a newer version is refused, a
//! version-1 database is migrated by adding the projections' tables, see `projections`):
//!
//! ```text
//! gongji_log_heads   (log text PRIMARY KEY, lock_key integer identity UNIQUE,
//!                     end_position bigint, last_hash bytea(32), updated_at timestamptz)
//! gongji_log_records (log text, position bigint, stream text, stream_version bigint,
//!                     event_id uuid, recorded_at_micros bigint, unit_end boolean,
//!                     payload bytea, prev_hash bytea(32), hash bytea(32),
//!                     PRIMARY KEY (log, position), UNIQUE (log, stream, stream_version))
//! ```
//!
//! A log is keyed by its name (the ledger's unit of placement is the region: its code names
//! its log), so several logs share a database, each with its own positions, chain, head row
//! and writer lock, and a log can move to another database by copying its rows.
//!
//! # One writer, readers beside it
//!
//! The writer holds a **session-scoped** advisory lock, `pg_try_advisory_lock(0x676a6c67,
//! lock_key)`, for the life of its [`PgLog`], on the connection that commits. Session-scoped
//! because the single-writer contract spans the whole life of the log object, as the file
//! log's `LOCK` does: `append` checks expected versions against versions held in memory, which
//! only hold while nobody else appends, and a second writer must be refused at open
//! (`LogError::Locked`), not at its first commit. A transaction-scoped lock would only
//! serialize commits. As a second guard every commit is **fenced** on the head row: it moves
//! `end_position`/`last_hash` only from where this writer left them, so even a writer that lost
//! its lock without noticing cannot fork the chain. (A session lock does not survive a
//! pooler in transaction mode: connect to PostgreSQL itself.)
//!
//! Readers take no lock: a reader's durable end is the head row it read, and since the head is
//! updated in the transaction that inserts the records, every record below it is committed
//! and none above it is read: position N+1 is never seen before N.
//!
//! # The chain
//!
//! Exactly the file log's: a record's hash is blake3(prev_hash || frame body) with the frame
//! body of the log format (`Record::recompute_hash`), the first record's `prev_hash` zeros.
//! Both are stored per row. `read_range` and `verify` recompute each hash and chain it onto
//! the one before; `read_range_links_deferred` hands out each record's link (the next row's
//! `prev_hash`, or the head's `last_hash` for the last record) for its holder to check;
//! `verify` also matches the count and last hash with the head. Damage is
//! `LogError::Corrupt` (its `segment` names `postgres:gongji_log_records/LOG`) and refuses
//! further appends from this [`PgLog`].
//!
//! # Stream versions
//!
//! What an expected version is checked against (staged, in-flight and durable records) a writer
//! keeps in memory, for up to 2^20 streams. On a log opened empty that table is complete; on a
//! log opened with records, the first stream it lacks loads every durable version in one query
//! (`GROUP BY stream`), so that new streams cost no round trip each. Past the bound the table
//! is emptied once nothing is in flight, and a stream it lacks is looked up alone.
//!
//! # A sync
//!
//! `append` checks and stages a unit in memory. `sync_start` hands every staged unit (a batch)
//! to the writer's threads and returns a [`gongji_log::SyncTicket`] at once: the sealer
//! completes the batch's chain and encodes its rows; the committer commits the batches sealed
//! when it wakes in ONE transaction (the fenced `UPDATE` of the head, one binary `COPY` of the
//! rows, `COMMIT`) while the sealer seals the next. The ticket resolves only after `COMMIT`
//! returned. At most 4 batches are in flight. A failed commit fails its batch and every
//! later one, and the log refuses further work (`LogError::Broken`): open it again.
//!
//! **A connection lost mid-commit** leaves the outcome unknown. The committer connects again
//! (with a multi-host string: to the new primary), retrying for
//! [`PgLogOptions::reconnect_within`], and first takes the lock again: holding it means the old
//! session is gone, so its transaction is final. Then the head decides: at the batch's end with
//! its last hash, the batch committed (acknowledged); where the writer left it, it did not (it
//! is committed again); anywhere else, the batch fails. Nothing is applied twice and nothing
//! is acknowledged that did not commit. With synchronous replication, a commit that returned
//! is on a standby, so the new primary's head holds it. On a replicated primary a batch commits
//! only while `synchronous_standby_names` is set, and a batch read back as committed is
//! acknowledged only once a synchronous standby has flushed past it (see `session`).
//!
//! **Reads ride out a lost connection too**: a read (a stream, a range, a version, the head a
//! reader's refresh reads) whose connection was lost connects again and runs again, until
//! `reconnect_within` from the loss, then fails naming what it was reading; a projection
//! reader's refresh does the same (a read inside a lost snapshot fails: the next refresh takes
//! a new one). The loss is one per connection, not one per read (`reconnect`): the first read
//! to find the connection lost records when, one read at a time makes the new connection
//! without holding the lock the others queue on, and the others wait for it until that same
//! instant plus `reconnect_within`, so reads made at once during a failover all give up
//! together (never one window after another) or all go on through one new connection. The
//! first connection at open is not retried.
//!
//! # Differences from the file log
//!
//! A stream name holding NUL is refused at `append` (`InvalidInput`): PostgreSQL's `text`
//! cannot hold it. Damage found is remembered by this [`PgLog`] only (appends refused until it
//! is opened again), not in a marker the next open reads as the file log's `QUARANTINE` is.
//! `LogError::Locked` and `LogError::Corrupt` name `postgres:TABLE/LOG` where the file log
//! names a directory or segment (offset 0).
//!
//! # Tests
//!
//! `tests/contract.rs` runs the same cases against the file log and this one;
//! `tests/projections.rs` the projection store against the file log's runs store, and
//! `tests/ledger_store.rs` the ledger kept wholly in PostgreSQL;
//! `tests/pg.rs` what only this one has (several logs in a database, sessions killed between
//! and in the middle of commits, the fence, damage at open). They run against
//! `GONGJI_TEST_PG` or, when it is unset, the throwaway cluster `tools/pg-local up` starts
//! (PostgreSQL 15 on 127.0.0.1), so that `cargo test --workspace` runs them: a test skipped
//! for want of a database could never fail. `examples/append_bench.rs` measures appends
//! against PostgreSQL's own COPY of the same rows.
//!
//! # Modules, one job each
//!
//! `admin` (renaming and dropping whole logs), `conn` (connection strings, connections, errors), `schema` (the tables), `session` (the
//! writer's connection: lock, commit, in-doubt resolution), `copy` (binary COPY rows),
//! `writer` (the threads sealing and committing batches, and the progress tickets wait on),
//! `reconnect` (a connection that reads share, made again after a loss), `open`,
//! `append` (checks, staging, syncs), `read` (reads and links), `verify`, `durable` (the
//! [`gongji_log::DurableLog`] implementation), `projections` (the projection store: its
//! writer's side `projections::write`, a reader's `projections::read_only`, the reads both
//! prepare `projections::statements`).

mod admin;
mod append;
mod conn;
mod copy;
mod durable;
mod open;
mod projections;
mod read;
mod reconnect;
mod schema;
mod session;
mod verify;
mod writer;

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use gongji_log::LogError;

pub use admin::WRITER_LOCK_WAIT;
pub use open::{PgLogOptions, MAX_LOG_NAME_BYTES};
pub use projections::PgProjections;
pub use read::read_aheads_started;

use append::StreamVersions;
use reconnect::Reconnecting;
use session::Head;
use writer::{Progress, Writer};

/// A log of record in PostgreSQL: one writer per log name, any number of readers. See the
/// crate documentation; its API is [`gongji_log::DurableLog`].
pub struct PgLog {
    log: String,
    config: postgres::Config,
    /// The connection reads use (the writer's session is its committer thread's), made again
    /// after a loss for up to `reconnect_within` from it (`None`: lost).
    reads: Reconnecting<Option<postgres::Client>>,
    /// `None`: opened read-only.
    writer: Option<Writer>,
    progress: Arc<Progress>,
    streams: StreamVersions,
    /// Units appended since the last `sync_start`, positions and versions assigned.
    staged: Vec<gongji_log::Record>,
    /// (seq, end position) of the batches handed over and not yet taken in.
    in_flight: VecDeque<(u64, u64)>,
    last_seq: u64,
    /// Records handed over (durable or in flight).
    submitted_end: u64,
    /// The head as taken in: every record below its end is committed; reads stop there.
    durable: Head,
    broken: Option<String>,
    /// A damaged record was found since open: appends are refused.
    damaged: AtomicBool,
}

impl std::fmt::Debug for PgLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLog")
            .field("log", &self.log)
            .field("durable_end", &self.durable.end_position)
            .field("submitted_end", &self.submitted_end)
            .field("staged", &self.staged.len())
            .field("read_only", &self.writer.is_none())
            .finish_non_exhaustive()
    }
}

impl PgLog {
    /// What errors name as the log's place.
    fn where_(&self) -> String {
        format!("postgres:gongji_log_records/{}", self.log)
    }
}

/// Damage at `position` of log `log`.
pub(crate) fn corrupt(log: &str, position: u64, reason: String) -> LogError {
    LogError::Corrupt {
        position,
        segment: format!("postgres:gongji_log_records/{log}").into(),
        offset: 0,
        reason,
    }
}
