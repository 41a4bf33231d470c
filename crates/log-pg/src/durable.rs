//! [`DurableLog`] for [`PgLog`]: each method is the module's that does the work.

use gongji_log::{
    Appended, DurableLog, ExpectedVersion, Link, LinkedRecords, LogError, NewRecord, Record,
    Records, SyncTicket,
};

use crate::read::{Links, Pages};
use crate::PgLog;

impl DurableLog for PgLog {
    fn append(
        &mut self,
        expected: &[(&str, ExpectedVersion)],
        records: &[NewRecord<'_>],
        recorded_at_micros: i64,
    ) -> Result<Appended, LogError> {
        self.append_unit(expected, records, recorded_at_micros)
    }

    fn sync_start(&mut self) -> Result<SyncTicket, LogError> {
        self.start_sync()
    }

    fn sync(&mut self) -> Result<u64, LogError> {
        self.sync_now()
    }

    fn settle_syncs(&mut self) -> Result<u64, LogError> {
        self.settle()
    }

    fn end_position(&self) -> u64 {
        self.end_position_now()
    }

    fn durable_end(&self) -> u64 {
        self.durable.end_position
    }

    fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        self.version_now(stream)
    }

    fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        self.stream_records(stream)
    }

    fn read_range(&self, from: u64, to_exclusive: u64) -> Result<Records<'_>, LogError> {
        self.check_usable()?;
        Ok(Box::new(Pages::new(self, from, to_exclusive, true)))
    }

    fn read_range_links_deferred(
        &self,
        from: u64,
        to_exclusive: u64,
    ) -> Result<LinkedRecords<'_>, LogError> {
        self.check_usable()?;
        Ok(Box::new(Links::new(self, from, to_exclusive)))
    }

    fn check_link(&self, record: &Record, link: &Link) -> Result<(), LogError> {
        self.check_one_link(record, link)
    }

    fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, LogError> {
        self.verify_all(progress)
    }

    fn close(self: Box<Self>) -> Result<(), LogError> {
        self.close_log()
    }

    /// A reader reads the head again; a writer is at its durable end already.
    fn refresh_read_only(&mut self) -> Result<u64, LogError> {
        if self.writer.is_none() {
            self.check_usable()?;
            let head = self.head_now()?;
            self.durable = head;
            self.submitted_end = head.end_position;
        }
        Ok(self.durable.end_position)
    }
}
