//! The projections of a log kept in the log's database ([`PgProjections`], a
//! [`gongji_log::ProjectionStore`]): what the ledger stores of its folded state, so that a
//! `gongji` started on another machine answers queries from them at once, without replaying
//! the log, and any number of processes read them.
//!
//! # Tables (schema version 2)
//!
//! ```text
//! gongji_projections             (log text, key bytea, value bytea, PRIMARY KEY (log, key))
//! gongji_projection_checkpoints  (log text PRIMARY KEY, checkpoint bigint NULL,
//!                                 stores bigint: how many applies and clears there were)
//! ```
//!
//! Keyed by log name as the log is, so several logs' projections share a database. A log's
//! checkpoint row is written in the transaction of every `apply` and `clear`: the entries and
//! the checkpoint they reach are committed together or not at all. The checkpoint is stored
//! after the records it covers committed (the ledger stores only a durable end), so it is
//! never ahead of the log's head; a ledger finding it behind folds the records after it.
//!
//! # The writer (`write`)
//!
//! [`PgProjections::open`] is the store of the log's writer, which holds the log's writer lock
//! (`PgLog::open`): this store takes no lock of its own, and must not be opened as a writer by
//! anyone else. It reads on one connection and writes on another, so that the ledger's reads
//! go on while its background store writes a large batch. An `apply` is one transaction: the
//! puts (one per key, the last write counting, in key order) go by binary `COPY` into a
//! temporary staging table, and from there by an `UPDATE … FROM` of the keys the table holds
//! and an `INSERT` of the others; the deletes by one `DELETE … WHERE key = ANY(…)`; then the
//! checkpoint row. After this writer's `clear` (a rebuild's), the first apply's puts are
//! copied straight into the table. `examples/projections_bench.rs` measures these against
//! PostgreSQL's own COPY of the same rows and against one `INSERT … ON CONFLICT DO UPDATE`
//! (slower). The table keeps 30% of each page free (`fillfactor` 70), so that an entity
//! stored again is mostly updated in its page without a new index entry (HOT), and compares
//! log names bytewise (`COLLATE "C"`).
//!
//! A connection lost in the middle of an apply or a read is connected again (with a
//! multi-host connection string, to the new primary) and the work done again from the start,
//! within [`PgLogOptions::reconnect_within`]: an apply is idempotent, and the transaction the
//! lost session left is final once it is gone. A retried apply upserts (`INSERT … ON CONFLICT
//! DO UPDATE`), which waits for that transaction's row locks, whatever it did.
//!
//! # Readers beside the writer (`read_only`)
//!
//! [`PgProjections::open_read_only`] reads inside one `REPEATABLE READ` snapshot of the
//! database, taken at open and taken again by [`ProjectionStore::refresh`], so that every read
//! between two refreshes sees one stored state, whatever the writer stores meanwhile. What
//! the reader's ledger "stores" of the records it folds lands in a layer in memory, which
//! wins over the snapshot, as the file log's read-only store does (`gongji_log`'s overlay). A
//! refresh that finds the writer stored something since (the checkpoint row moved) keeps the
//! layer only when the new checkpoint lies within what the reader had already folded (past
//! the old checkpoint, before the reader's end: the usual case of a reader following a
//! stream, whose writer's store lands about a second after its checkpoint); otherwise it
//! empties the layer, which was folded over the old snapshot (mixing it with a newer one
//! would fold records twice), and the ledger folds again from the new checkpoint: nothing it
//! had folded when the new checkpoint is at or past its end. Taking the snapshot before the
//! reader reads the log's head keeps the checkpoint at or below the head.
//!
//! A reader folds every record its writer makes durable, and most of them change an entity it
//! has not read yet: before folding a chunk of records, the ledger hands the store their
//! entities' keys ([`ProjectionStore::prefetch`]) and the reader reads them in one query
//! instead of one round trip each.
//!
//! A reader holds its snapshot (an open transaction, idle between reads) until its next
//! refresh: a reader that never refreshes holds back vacuum of the projections table.
//!
//! Not for: anything that cannot be rebuilt from the log.

mod read_only;
mod statements;
mod write;

use std::sync::Arc;

use gongji_log::{KvScan, KvWrite, LogError, ProjectionStore};

use crate::conn::parse;
use crate::open::check_name;
use crate::PgLogOptions;

use read_only::ReadOnly;
use write::Writer;

/// A log's projections in its PostgreSQL database: as its writer's store
/// ([`PgProjections::open`]) or read beside it ([`PgProjections::open_read_only`]). See the
/// module documentation. Hand it to the ledger as `Kv::external(Arc::new(…))`.
#[derive(Debug)]
pub struct PgProjections {
    side: Side,
}

#[derive(Debug)]
enum Side {
    Writer(Box<Writer>),
    ReadOnly(Box<ReadOnly>),
}

impl PgProjections {
    /// The projections of log `log` in the database `uri` names, as the store of the log's
    /// writer (the one holding `PgLog::open`'s lock), with the default options. Creates the
    /// tables if they are missing (migrating a version-1 database).
    pub fn open(uri: &str, log: &str) -> Result<PgProjections, LogError> {
        PgProjections::open_with(uri, log, PgLogOptions::default())
    }

    /// As [`open`](PgProjections::open), reconnecting after a lost connection for
    /// `options.reconnect_within` before an apply or a read fails.
    pub fn open_with(
        uri: &str,
        log: &str,
        options: PgLogOptions,
    ) -> Result<PgProjections, LogError> {
        check_name(log)?;
        let config = parse(uri)?;
        let writer = Writer::open(config, log, options.reconnect_within)?;
        Ok(PgProjections {
            side: Side::Writer(Box::new(writer)),
        })
    }

    /// The projections of log `log` read beside its writer: a snapshot of what the writer
    /// stored, under a layer in memory that takes every write (see the module
    /// documentation). Creates nothing; refuses a database without the projections' tables.
    /// A refresh after a lost connection connects again for up to 180 s (a failover).
    pub fn open_read_only(uri: &str, log: &str) -> Result<PgProjections, LogError> {
        PgProjections::open_read_only_with(uri, log, PgLogOptions::default())
    }

    /// As [`open_read_only`](PgProjections::open_read_only), a refresh after a lost connection
    /// connecting again for up to `options.reconnect_within`.
    pub fn open_read_only_with(
        uri: &str,
        log: &str,
        options: PgLogOptions,
    ) -> Result<PgProjections, LogError> {
        check_name(log)?;
        let config = parse(uri)?;
        let reader = ReadOnly::open(config, log, options.reconnect_within)?;
        Ok(PgProjections {
            side: Side::ReadOnly(Box::new(reader)),
        })
    }

    /// This store as the ledger takes it.
    pub fn into_kv(self) -> gongji_log::Kv {
        gongji_log::Kv::external(Arc::new(self))
    }
}

impl ProjectionStore for PgProjections {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        match &self.side {
            Side::Writer(w) => w.get(key),
            Side::ReadOnly(r) => r.get(key),
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> KvScan<'_> {
        match &self.side {
            Side::Writer(w) => Box::new(w.scan_prefix(prefix)),
            Side::ReadOnly(r) => Box::new(r.scan_prefix(prefix).into_iter()),
        }
    }

    fn apply(&self, writes: Vec<KvWrite>, checkpoint: Option<u64>) -> Result<(), LogError> {
        match &self.side {
            Side::Writer(w) => w.apply(writes, checkpoint),
            Side::ReadOnly(r) => {
                r.apply(writes, checkpoint);
                Ok(())
            }
        }
    }

    fn checkpoint(&self) -> Result<Option<u64>, LogError> {
        match &self.side {
            Side::Writer(w) => w.checkpoint(),
            Side::ReadOnly(r) => r.checkpoint(),
        }
    }

    fn clear(&self) -> Result<(), LogError> {
        match &self.side {
            Side::Writer(w) => w.clear(),
            Side::ReadOnly(r) => {
                r.clear();
                Ok(())
            }
        }
    }

    /// A reader reads the keys at once; a writer ignores the hint (its store changes under
    /// its own background applies, and it catches up only when it opens).
    fn prefetch(&self, keys: &[Vec<u8>]) -> Result<(), LogError> {
        match &self.side {
            Side::Writer(_) => Ok(()),
            Side::ReadOnly(r) => r.prefetch(keys),
        }
    }

    fn refresh(&self) -> Result<bool, LogError> {
        match &self.side {
            Side::Writer(_) => Ok(false),
            Side::ReadOnly(r) => r.refresh(),
        }
    }

    fn snapshot_lost(&self) -> bool {
        match &self.side {
            Side::Writer(_) => false,
            Side::ReadOnly(r) => r.snapshot_lost(),
        }
    }
}
