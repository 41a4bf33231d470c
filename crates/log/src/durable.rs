//! The seam for a second backend of the log of record: [`DurableLog`], what the ledger needs of
//! the log, with no file, directory or segment in it. [`Log`] (segment files) is one backend;
//! issue 16's PostgreSQL log will be another. How a backend is opened (a directory, a
//! connection string) stays outside the trait, as do the projection store ([`Log::kv`]) and
//! everything about files ([`Log::dir`], [`Log::options`], [`Log::open_report`]).
//!
//! The contract every backend keeps (the file log's documentation says how it does):
//! * `append` stages one atomic unit (all its records or none), checking expected versions
//!   against everything appended so far, and assigns consecutive positions from
//!   `end_position`;
//! * nothing is durable, nor reported as durable, before a [`SyncTicket`] covering it resolves
//!   (`wait` returns `Ok`); tickets resolve in order; `durable_end` never counts a record that
//!   is not durable;
//! * reads (`read_stream`, `read_range`, `read_range_links_deferred`) return durable records
//!   only, each with its hash chain link, so that `verify` and `check_link` can prove the
//!   records are the ones appended;
//! * damage found is `LogError::Corrupt` and is never skipped.

use crate::{Appended, ExpectedVersion, Link, Log, LogError, NewRecord, Record, SyncTicket};

/// Durable records in position order, as a backend streams them.
pub type Records<'a> = Box<dyn Iterator<Item = Result<Record, LogError>> + 'a>;
/// Durable records with their hash-chain links (see [`DurableLog::read_range_links_deferred`]).
pub type LinkedRecords<'a> = Box<dyn Iterator<Item = Result<(Record, Link), LogError>> + 'a>;

/// The log of record, whatever stores it. `Send + Sync`: the ledger checks links on worker
/// threads and waits for tickets on another thread.
pub trait DurableLog: Send + Sync {
    /// Appends one atomic unit (not durable until a sync that follows resolves); refuses the
    /// whole unit if a stream is not at its expected version.
    fn append(
        &mut self,
        expected: &[(&str, ExpectedVersion)],
        records: &[NewRecord<'_>],
        recorded_at_micros: i64,
    ) -> Result<Appended, LogError>;

    /// Hands everything appended so far to be made durable and returns at once; the records
    /// are acknowledged once the ticket resolves.
    fn sync_start(&mut self) -> Result<SyncTicket, LogError>;

    /// `sync_start`, then waits for its ticket: returns the durable end.
    fn sync(&mut self) -> Result<u64, LogError>;

    /// Takes in what became durable since the last call (without waiting) and returns the
    /// durable end.
    fn settle_syncs(&mut self) -> Result<u64, LogError>;

    /// The next position to assign (durable, in flight and staged records).
    fn end_position(&self) -> u64;

    /// The number of durable records (as taken in: see `settle_syncs`).
    fn durable_end(&self) -> u64;

    /// The stream's version including records not yet durable (0 for a stream without
    /// records): what an expected version is checked against.
    fn stream_version(&self, stream: &str) -> Result<u64, LogError>;

    /// The durable records of a stream, in version order.
    fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError>;

    /// Durable records with `from <= position < to_exclusive`, in position order, each checked
    /// against the hash chain.
    fn read_range(&self, from: u64, to_exclusive: u64) -> Result<Records<'_>, LogError>;

    /// Like `read_range`, but each record comes with its [`Link`], checked by whoever holds
    /// the record (`check_link`, on any thread) instead of by the reader.
    fn read_range_links_deferred(
        &self,
        from: u64,
        to_exclusive: u64,
    ) -> Result<LinkedRecords<'_>, LogError>;

    /// Checks one link of the chain handed out by `read_range_links_deferred`.
    fn check_link(&self, record: &Record, link: &Link) -> Result<(), LogError>;

    /// Checks every durable record from position 0 (the whole chain), calling `progress` with
    /// the records checked now and then; returns the record count.
    fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, LogError>;

    /// Waits for everything handed over to be durable (or its error) and closes the log.
    fn close(self: Box<Self>) -> Result<(), LogError>;

    /// A log opened to read beside its writer: takes in the records the writer made durable
    /// since, up to the durable end published now, and returns the durable end (never a
    /// record that is not durable). A writer's log is at its durable end already: the default
    /// returns it.
    fn refresh_read_only(&mut self) -> Result<u64, LogError> {
        Ok(self.durable_end())
    }

    /// Shares a [`Handover`](crate::Handover) between this log's writer and its readers in
    /// one process (see [`Log::share_handover`](crate::Log::share_handover)); a log without
    /// one (the default) ignores it and its readers read the records.
    fn share_handover(&mut self, _handover: std::sync::Arc<crate::Handover>) {}

    /// Index entries a reader holds in memory, which a refresh adds to (0 by default).
    fn memory_index_records(&self) -> usize {
        0
    }
}

impl DurableLog for Log {
    fn append(
        &mut self,
        expected: &[(&str, ExpectedVersion)],
        records: &[NewRecord<'_>],
        recorded_at_micros: i64,
    ) -> Result<Appended, LogError> {
        Log::append(self, expected, records, recorded_at_micros)
    }

    fn sync_start(&mut self) -> Result<SyncTicket, LogError> {
        Log::sync_start(self)
    }

    fn sync(&mut self) -> Result<u64, LogError> {
        Log::sync(self)
    }

    fn settle_syncs(&mut self) -> Result<u64, LogError> {
        Log::settle_syncs(self)
    }

    fn end_position(&self) -> u64 {
        Log::end_position(self)
    }

    fn durable_end(&self) -> u64 {
        Log::durable_end(self)
    }

    fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        Log::stream_version(self, stream)
    }

    fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        Log::read_stream(self, stream)
    }

    fn read_range(&self, from: u64, to_exclusive: u64) -> Result<Records<'_>, LogError> {
        Ok(Box::new(Log::read_range(self, from, to_exclusive)?))
    }

    fn read_range_links_deferred(
        &self,
        from: u64,
        to_exclusive: u64,
    ) -> Result<LinkedRecords<'_>, LogError> {
        Ok(Box::new(Log::read_range_links_deferred(
            self,
            from,
            to_exclusive,
        )?))
    }

    fn check_link(&self, record: &Record, link: &Link) -> Result<(), LogError> {
        Log::check_link(self, record, link)
    }

    fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, LogError> {
        Log::verify(self, progress)
    }

    fn close(self: Box<Self>) -> Result<(), LogError> {
        Log::close(*self)
    }

    fn refresh_read_only(&mut self) -> Result<u64, LogError> {
        Log::refresh_read_only(self)
    }

    fn share_handover(&mut self, handover: std::sync::Arc<crate::Handover>) {
        Log::share_handover(self, handover)
    }

    fn memory_index_records(&self) -> usize {
        Log::index_tail_records(self)
    }
}
