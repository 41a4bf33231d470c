//! Opening a ledger kept in PostgreSQL: its log of record a [`PgLog`] and its projections
//! [`PgProjections`] in the same database, keyed by the same log name (the region's code, as
//! the caller names it), so that a `gongji` started on another machine answers queries from
//! the stored projections at once, and any number of processes read beside one writer.
//!
//! The opening functions mirror the directory's: [`Ledger::open_postgres`] (writer, as
//! [`Ledger::open`]), [`Ledger::open_postgres_to_rebuild`] (as [`Ledger::open_to_rebuild`]),
//! [`Ledger::open_postgres_read_only`] (as [`Ledger::open_read_only`], followed with
//! [`Ledger::refresh_read_only`]; `_with` sets how long its reads ride out a lost connection) and [`Ledger::postgres_exists`] (as [`Ledger::exists_in`]).
//!
//! Invariants as the code holds them: the writer's log is opened (taking its writer lock)
//! before its projections, and a reader's projection snapshot is taken before its log's head is
//! read, so a reader's stored checkpoint is never beyond its log's end; a store whose
//! checkpoint is beyond the log's end anyway (the log restored from an older backup) is not
//! folded onto: a writer clears it and folds the whole log, a reader folds from the start in
//! memory.

use gongji_log::ProjectionBackend;
use gongji_log_pg::{PgLog, PgLogOptions, PgProjections};

use crate::{Ledger, LedgerError};

/// How a rebuild writes PostgreSQL projections: like the runs store, the whole state in one
/// apply (one transaction, through one COPY).
const PG_REBUILD: ProjectionBackend = ProjectionBackend::Runs;

impl Ledger {
    /// Whether the database `uri` (a libpq connection string, multi-host allowed) holds the
    /// ledger `log_name` (its log's head row: a writer opened it once). Creates nothing.
    pub fn postgres_exists(uri: &str, log_name: &str) -> Result<bool, LedgerError> {
        Ok(PgLog::exists(uri, log_name)?)
    }

    /// Opens (or creates) the ledger `log_name` in the database `uri` as its only writer
    /// (`LedgerError::is_locked` if another process writes it) and brings the projections
    /// stored there up to the log's end, folding the records after their checkpoint and
    /// storing them. With projections stored up to the end, nothing is folded: the ledger
    /// answers from them at once.
    pub fn open_postgres(uri: &str, log_name: &str) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::open_postgres_to_rebuild(uri, log_name)?;
        ledger.clear_store_ahead_of_log()?;
        ledger.catch_up(&mut |_, _| {})?;
        Ok(ledger)
    }

    /// Opens the ledger `log_name` in the database `uri` as its only writer without bringing
    /// the projections up to the log's end: for [`rebuild`](Ledger::rebuild) and `audit
    /// replay`, as [`open_to_rebuild`](Ledger::open_to_rebuild) is for a directory. Call
    /// `rebuild` before anything that reads projections.
    pub fn open_postgres_to_rebuild(uri: &str, log_name: &str) -> Result<Ledger, LedgerError> {
        let log = PgLog::open(uri, log_name)?;
        let kv = PgProjections::open(uri, log_name)?.into_kv();
        Ok(Ledger::of_parts(Box::new(log), kv, PG_REBUILD))
    }

    /// Opens the ledger `log_name` in the database `uri` to answer queries beside its writer:
    /// no lock, nothing written. Its answers are those of the durable state the log's head
    /// names when it opens: the projections as the writer stored them (one snapshot of them)
    /// and the records after their checkpoint folded in memory. Follow the writer with
    /// [`refresh_read_only`](Ledger::refresh_read_only). Every command and commit is refused
    /// with [`LedgerError::ReadOnly`].
    pub fn open_postgres_read_only(uri: &str, log_name: &str) -> Result<Ledger, LedgerError> {
        let within = PgLogOptions::default().reconnect_within;
        Ledger::open_postgres_read_only_with(uri, log_name, within)
    }

    /// As [`open_postgres_read_only`](Ledger::open_postgres_read_only), its reads riding out a
    /// lost connection until `reconnect_within` from the loss (zero: not at all, for a reader
    /// that is opened again instead, as a server's read view is).
    pub fn open_postgres_read_only_with(
        uri: &str,
        log_name: &str,
        reconnect_within: std::time::Duration,
    ) -> Result<Ledger, LedgerError> {
        let options = PgLogOptions { reconnect_within };
        // The snapshot first: its checkpoint is then never beyond the head read after it.
        let kv = PgProjections::open_read_only_with(uri, log_name, options.clone())?.into_kv();
        let log = PgLog::open_read_only_with(uri, log_name, options)?;
        let mut ledger = Ledger::of_parts(Box::new(log), kv, PG_REBUILD);
        ledger.read_only = true;
        ledger.clear_store_ahead_of_log()?;
        ledger.folded_in_memory = ledger.catch_up(&mut |_, _| {})?;
        Ok(ledger)
    }

    /// A store whose checkpoint is beyond the log's durable end cannot be folded onto: it is
    /// cleared (a reader's only in memory), so that the catch-up folds from the first record.
    pub(crate) fn clear_store_ahead_of_log(&mut self) -> Result<(), LedgerError> {
        let end = self.log.durable_end();
        if self.kv.checkpoint()?.is_some_and(|c| c > end) {
            crate::store::clear(&self.kv)?;
            self.state = gongji_domain::State::default();
            self.fold_target = None;
        }
        Ok(())
    }
}
