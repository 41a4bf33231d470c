//! The ledger side: settlements and reversals streamed from the log, in log order.

use gongji_domain::{Event, Settlement, Stream};
use gongji_ledger::Ledger;
use gongji_log::LogError;

use crate::ReconError;

/// Records read between two progress calls.
const PROGRESS_RECORDS: u64 = 16 * 1024;

/// A claim event as reconciliation sees it.
pub enum ClaimEvent<'a> {
    Settled(&'a Settlement),
    /// A reversal on `date` of the settlement it carries.
    Reversed {
        date: gongji_domain::Day,
        settlement: &'a Settlement,
    },
}

/// The log's durable end: the number of records a scan reads.
pub fn records_total(ledger: &Ledger) -> u64 {
    ledger.log().durable_end()
}

/// Calls `each` for every claim settlement and reversal in the log, in log order.
/// `progress(done_records)` is called every few thousand records. Other events are skipped.
pub fn scan_claims(
    ledger: &Ledger,
    progress: &mut dyn FnMut(u64),
    each: &mut dyn FnMut(ClaimEvent<'_>),
) -> Result<(), ReconError> {
    let log = ledger.log();
    let end = log.durable_end();
    let records = log.read_range(0, end).map_err(log_error)?;
    let mut done_records: u64 = 0;
    let member_prefix = Stream::Member(String::new()).name();
    for record in records {
        let record = record.map_err(log_error)?;
        done_records += 1;
        if done_records.is_multiple_of(PROGRESS_RECORDS) {
            progress(done_records);
        }
        // Claim events live on member streams; skipping the others saves decoding them.
        if !record.stream.starts_with(&member_prefix) {
            continue;
        }
        let event = Event::decode(&record.payload).map_err(|e| {
            ReconError::Ledger(format!(
                "record {} of stream {} does not decode: {e}",
                record.position, record.stream
            ))
        })?;
        match &event {
            Event::ClaimSettled { settlement } => each(ClaimEvent::Settled(settlement)),
            Event::ClaimReversed {
                date, settlement, ..
            } => each(ClaimEvent::Reversed {
                date: *date,
                settlement,
            }),
            _ => {}
        }
    }
    progress(done_records);
    Ok(())
}

/// A log that could not be read: for want of its store (an I/O error), or damaged.
fn log_error(error: LogError) -> ReconError {
    let message = format!("cannot read the log: {error}");
    match error {
        LogError::Io(_) => ReconError::LogIo {
            unreachable: error.is_unreachable(),
            message,
        },
        _ => ReconError::Ledger(message),
    }
}
