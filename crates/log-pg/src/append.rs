//! Appending and syncing: a unit's checks and staging, handing staged units to the writer
//! thread (`sync_start`), taking in what it committed (`settle_syncs`), and the table of stream
//! versions that expected versions are checked against.
//!
//! Invariants as the code holds them: a unit is staged whole or not at all (every check and
//! version lookup comes before the first record is staged); positions and stream versions are
//! consecutive from the end of what is staged, in flight and durable; `durable` only ever
//! moves to a head the writer's committer reported committed, in order; after a failed batch the
//! log is broken and refuses further work; a damaged log stages nothing.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use gongji_log::{
    check_unit, check_versions, Appended, ExpectedVersion, LogError, NewRecord, Record,
    SyncProgress, SyncTicket,
};

use crate::conn::to_i64;
use crate::writer::{Batch, IN_FLIGHT_MAX};
use crate::PgLog;

/// Streams whose versions the table keeps, at most; past it the table is emptied once nothing
/// is staged or in flight (lookups then read the database).
const STREAMS_MAX: usize = 1 << 20;

/// Stream versions including staged and in-flight records.
pub(crate) struct StreamVersions {
    pub versions: HashMap<String, u64>,
    /// The table holds every stream of the log (the log was empty at open, or every durable
    /// version was loaded, and the table was never emptied since): a stream not in it has no
    /// records, with no lookup.
    pub complete: bool,
    /// The durable versions were loaded once already (see `version_of`).
    pub loaded: bool,
}

impl PgLog {
    pub(crate) fn check_usable(&self) -> Result<(), LogError> {
        match &self.broken {
            Some(reason) => Err(LogError::Broken(reason.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn check_writable(&self) -> Result<(), LogError> {
        self.check_usable()?;
        if self.writer.is_none() {
            return Err(LogError::ReadOnly {
                dir: self.where_().into(),
            });
        }
        if self.damaged.load(Ordering::Relaxed) {
            return Err(LogError::Broken(format!(
                "a damaged record was found in log {:?} since it was opened",
                self.log
            )));
        }
        Ok(())
    }

    /// A stream's version, looked up (and then kept) if the table does not hold it. A writer's
    /// first miss loads every durable version in one query (up to the table's bound) instead:
    /// on a log opened with records, looking up each new stream alone costs a round trip per
    /// stream (about ten times slower appends, measured).
    fn version_of(&mut self, stream: &str) -> Result<u64, LogError> {
        if let Some(&version) = self.streams.versions.get(stream) {
            return Ok(version);
        }
        if !self.streams.complete && !self.streams.loaded && self.writer.is_some() {
            self.load_versions()?;
            return self.version_of(stream);
        }
        let version = if self.streams.complete {
            0
        } else {
            self.durable_version(stream)?
        };
        self.streams.versions.insert(stream.to_owned(), version);
        Ok(version)
    }

    /// Loads every durable stream version into the table, up to its bound; the table is then
    /// complete if they all fit. Versions already in the table (staged, in flight) stay.
    fn load_versions(&mut self) -> Result<(), LogError> {
        self.streams.loaded = true;
        let room = STREAMS_MAX.saturating_sub(self.streams.versions.len());
        let loaded = self.durable_versions(room + 1)?;
        let all = loaded.len() <= room;
        for (stream, version) in loaded.into_iter().take(room) {
            self.streams.versions.entry(stream).or_insert(version);
        }
        self.streams.complete = all;
        Ok(())
    }

    pub(crate) fn append_unit(
        &mut self,
        expected: &[(&str, ExpectedVersion)],
        records: &[NewRecord<'_>],
        recorded_at_micros: i64,
    ) -> Result<Appended, LogError> {
        self.check_writable()?;
        check_unit(expected, records)?;
        let streams = records.iter().map(|r| r.stream);
        if let Some(stream) = streams
            .chain(expected.iter().map(|e| e.0))
            .find(|s| s.contains('\0'))
        {
            return Err(LogError::InvalidInput(format!(
                "stream name {stream:?} holds a NUL character, which PostgreSQL's text cannot"
            )));
        }
        let first_position = self.end_position_now();
        let last_index = records.len() - 1;
        to_i64(first_position + records.len() as u64, "log (records)")?;
        check_versions(expected, records, |stream| self.version_of(stream))?;
        self.staged.reserve(records.len());
        for (i, record) in records.iter().enumerate() {
            let version = self
                .streams
                .versions
                .get_mut(record.stream)
                .expect("every stream of the unit was looked up above");
            *version += 1;
            self.staged.push(Record {
                position: first_position + i as u64,
                stream: record.stream.to_owned(),
                stream_version: *version,
                event_id: record.event_id,
                recorded_at_micros,
                payload: record.payload.to_vec(),
                // The writer's sealer completes the chain.
                hash: [0; 32],
                prev_hash: [0; 32],
                unit_end: i == last_index,
            });
        }
        Ok(Appended {
            first_position,
            last_position: first_position + last_index as u64,
        })
    }

    pub(crate) fn end_position_now(&self) -> u64 {
        self.submitted_end + self.staged.len() as u64
    }

    fn ticket(&self, seq: u64, end_position: u64) -> SyncTicket {
        let progress: Arc<dyn SyncProgress> = self.progress.clone();
        SyncTicket::new(progress, seq, end_position)
    }

    /// Hands every staged unit to the writer's threads, which commit them in one transaction.
    pub(crate) fn start_sync(&mut self) -> Result<SyncTicket, LogError> {
        self.apply_synced();
        self.check_usable()?;
        if self.staged.is_empty() {
            return Ok(self.ticket(self.last_seq, self.submitted_end));
        }
        while self.in_flight.len() >= IN_FLIGHT_MAX {
            let oldest = self.in_flight.front().expect("in flight").0;
            let _ = self.progress.wait_for(oldest);
            self.apply_synced();
            self.check_usable()?;
        }
        let Some(writer) = &self.writer else {
            // Unreachable: a reader stages nothing (`append` refuses).
            return Err(LogError::ReadOnly {
                dir: self.where_().into(),
            });
        };
        let records = std::mem::take(&mut self.staged);
        let seq = self.last_seq + 1;
        let end = self.submitted_end + records.len() as u64;
        writer.submit(Batch { seq, records });
        self.last_seq = seq;
        self.submitted_end = end;
        self.in_flight.push_back((seq, end));
        Ok(self.ticket(seq, end))
    }

    /// Takes in every batch the writer committed (without waiting); a failed batch
    /// breaks the log.
    pub(crate) fn apply_synced(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        let snapshot = self.progress.snapshot();
        let mut applied = false;
        while self
            .in_flight
            .front()
            .is_some_and(|&(seq, _)| seq <= snapshot.durable_seq)
        {
            self.in_flight.pop_front();
            applied = true;
        }
        if applied {
            debug_assert!(snapshot.durable.end_position > self.durable.end_position);
            self.durable = snapshot.durable;
        }
        if let Some(message) = snapshot.failed {
            if self.broken.is_none() {
                self.broken = Some(format!(
                    "records from position {} on could not be committed: {message}",
                    self.durable.end_position
                ));
            }
        }
        if self.streams.versions.len() > STREAMS_MAX
            && self.in_flight.is_empty()
            && self.staged.is_empty()
        {
            self.streams.versions.clear();
            self.streams.complete = false;
        }
    }

    /// Waits for every batch in flight and takes them in; the first failure, if any.
    pub(crate) fn wait_in_flight(&mut self) -> Result<(), LogError> {
        let waited = match self.in_flight.back() {
            Some(&(seq, _)) => self.progress.wait_for(seq),
            None => Ok(()),
        };
        self.apply_synced();
        waited
    }

    pub(crate) fn sync_now(&mut self) -> Result<u64, LogError> {
        let ticket = self.start_sync()?;
        let waited = ticket.wait();
        self.apply_synced();
        waited.map(|_| self.durable.end_position)
    }

    pub(crate) fn settle(&mut self) -> Result<u64, LogError> {
        self.apply_synced();
        self.check_usable()?;
        Ok(self.durable.end_position)
    }
}
