//! The audit archive: the log (or part of it) in one self-describing file that an auditor can
//! check with no ledger at all, replay to the ledger's digest, and restore a ledger from.
//!
//! The file is JSON Lines: a header, the policy versions the records refer to, the records
//! with their hashes, and a manifest. Every line after the header carries `chain`, a running
//! blake3 over the header and every item before it, so a line changed, removed, reordered or
//! added is named by the first line whose chain no longer matches. Each record also carries
//! the fields its log hash is computed from, so its hash is recomputed, and in a complete
//! archive each record's `prev_hash` must be the hash of the record before it. Beside its bytes
//! a record line carries its event decoded, for people and tools (`readable.rs`); the checker
//! renders it again from the bytes and refuses a line whose readable event differs.
//!
//! A forger can recompute all of that ([`reseal`] does, for tests and the fuzz target), so the
//! check goes on: every record's event decodes, sits on its own stream and has its figures
//! within bounds, and a complete archive is folded through `audit verify`'s `InvariantFold`,
//! each stream's versions running on and each unit recorded at once. Every line type refuses
//! unknown fields, and every line is read with a bound. Import (`import.rs`) checks and
//! restores in one pass, into a directory renamed into place only when all of it checked.

mod export;
mod forge;
mod import;
mod read;
mod readable;

use std::collections::HashMap;
use std::path::Path;

use gongji_domain::state::check_bounds;
use gongji_domain::{Day, Event};
use gongji_log::Record;
use serde::{Deserialize, Serialize};

use crate::audit::{check_stream, digest_of, totals_of, InvariantFold, RegionTotals};
use crate::{store, LedgerError};
pub use export::ExportRefusal;
pub use forge::reseal;
pub use import::{import_archive, import_archive_postgres};
use read::read_archive;

/// The format written. Format 2 adds the readable `event` to record lines; this build reads
/// formats 1 and 2 (the field is optional in both), a build that reads only 1 refuses 2 by its
/// number.
const ARCHIVE_FORMAT: u32 = 2;
/// The oldest format this build reads.
const ARCHIVE_FORMAT_OLDEST: u32 = 1;
/// The longest archive line read (a record's payload is at most 1 MiB, hex doubles it; export
/// leaves out a readable event that would make a line longer).
const ARCHIVE_LINE_BYTES_MAX: u64 = 4 * 1024 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveFilter {
    /// Only events whose own date is on or after / on or before these days.
    pub from: Option<Day>,
    pub to: Option<Day>,
    /// Only events of this region (members' events count for the region they belong to then).
    pub region: Option<String>,
}

impl ArchiveFilter {
    pub fn is_everything(&self) -> bool {
        *self == ArchiveFilter::default()
    }
}

// Every line type refuses a field it does not know: the chain covers only the fields it
// reads, so an unknown one would be carried along unchecked.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    archive: String,
    format: u32,
    filter: ArchiveFilter,
    /// The whole log from position 0, with nothing filtered out.
    complete: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
    position: u64,
    stream: String,
    version: u64,
    event_id: uuid::Uuid,
    recorded_at_micros: i64,
    unit_end: bool,
    prev_hash: String,
    hash: String,
    payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub records: u64,
    pub policies: u64,
    pub first_hash: Option<String>,
    pub last_hash: Option<String>,
    pub chain: String,
    pub complete: bool,
}

/// A policy line: the version and the chain after it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyLine {
    policy: gongji_domain::PolicyVersion,
    chain: String,
}

/// A record line: the record, its event decoded (absent in format 1; the checker renders it
/// again from the payload and compares) and the chain after it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordItem {
    record: RecordLine,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<serde_json::Value>,
    chain: String,
}

/// The last line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestLine {
    manifest: Manifest,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveFailure {
    /// The archive line (from 1) and, for a record, its log position.
    pub line: u64,
    pub position: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    pub manifest: Option<Manifest>,
    /// For a complete archive: the digest and totals its replay gives.
    pub digest: Option<String>,
    pub regions: Option<Vec<RegionTotals>>,
    pub failure: Option<ArchiveFailure>,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[(byte >> 4) as usize] as char);
        text.push(DIGITS[(byte & 15) as usize] as char);
    }
    text
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hash32(text: &str) -> Option<[u8; 32]> {
    unhex(text)?.try_into().ok()
}

fn chain_next(chain: &[u8; 32], item: &[u8; 32]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(chain);
    hasher.update(item);
    *hasher.finalize().as_bytes()
}

fn json_hash(value: &impl Serialize) -> [u8; 32] {
    let bytes = serde_json::to_vec(value).expect("archive items serialize");
    *blake3::hash(&bytes).as_bytes()
}

/// A record line's stream name and payload within the log's bounds (a record is hashed as the
/// frame the log would write, which only holds what is within them).
fn frame_bounds(line: &RecordLine) -> Result<(), String> {
    let (stream, max) = (line.stream.len(), gongji_log::MAX_STREAM_BYTES);
    if stream == 0 || stream > max {
        return Err(format!(
            "record at position {}: stream name of {stream} bytes, over the limit of {max} (or empty)",
            line.position
        ));
    }
    let (payload, max) = (line.payload.len() / 2, gongji_log::MAX_PAYLOAD_BYTES);
    if payload > max {
        return Err(format!(
            "record at position {}: payload of {payload} bytes, over the limit of {max}",
            line.position
        ));
    }
    Ok(())
}

/// The record a record line describes, if its fields are within the log's bounds and its
/// hashes and payload are well-formed hex.
fn record_of_line(line: &RecordLine) -> Option<Record> {
    frame_bounds(line).ok()?;
    Some(Record {
        position: line.position,
        stream: line.stream.clone(),
        stream_version: line.version,
        event_id: line.event_id,
        recorded_at_micros: line.recorded_at_micros,
        payload: unhex(&line.payload)?,
        hash: hash32(&line.hash)?,
        prev_hash: hash32(&line.prev_hash)?,
        unit_end: line.unit_end,
    })
}

/// The region an event belongs to; `members` tracks each member's region as the log goes.
fn event_region(event: &Event, members: &mut HashMap<String, String>) -> Vec<String> {
    match event {
        Event::PolicyLoaded { policy } => vec![policy.region.clone()],
        Event::FlagDecided { region, .. } | Event::MonitorRulesLoaded { region, .. } => {
            vec![region.clone()]
        }
        Event::Enrolled { member, region, .. } => {
            members.insert(member.clone(), region.clone());
            vec![region.clone()]
        }
        Event::Transferred {
            member,
            from_region,
            to_region,
            ..
        } => {
            members.insert(member.clone(), to_region.clone());
            vec![from_region.clone(), to_region.clone()]
        }
        Event::TransferSent {
            member,
            from_region,
            to_region,
            ..
        } => {
            members.insert(member.clone(), to_region.clone());
            vec![from_region.clone()]
        }
        Event::TransferReceived {
            member, to_region, ..
        } => {
            members.insert(member.clone(), to_region.clone());
            vec![to_region.clone()]
        }
        Event::FundEventOwed { owed } => members.get(&owed.member).cloned().into_iter().collect(),
        Event::OwedLanded { region, .. } => vec![region.clone()],
        Event::PooledContributed { region, .. }
        | Event::PooledCreditPaid { region, .. }
        | Event::FundClaimPaid { region, .. }
        | Event::FundClaimRefunded { region, .. }
        | Event::PremiumReceived { region, .. }
        | Event::PremiumRefunded { region, .. }
        | Event::AccountPaid { region, .. }
        | Event::YearClosed { region, .. } => vec![region.clone()],
        Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
            vec![settlement.region.clone()]
        }
        Event::AccountCredited { member, .. }
        | Event::Retired { member, .. }
        | Event::Deceased { member, .. }
        | Event::Inherited { member, .. }
        | Event::FamilyBound { holder: member, .. }
        | Event::FamilyUnbound { holder: member, .. }
        | Event::AccountPaymentReversed { holder: member, .. } => {
            members.get(member).cloned().into_iter().collect()
        }
    }
}

/// The policy versions an event was decided under.
fn policy_referred(event: &Event) -> Option<&str> {
    match event {
        Event::AccountCredited { policy, .. } => Some(policy),
        Event::ClaimSettled { settlement } => Some(&settlement.policy),
        _ => None,
    }
}

fn decode(record: &Record) -> Result<Event, LedgerError> {
    Event::decode(&record.payload)
        .map_err(|e| LedgerError::Projection(format!("record {}: {e}", record.position)))
}

/// What check and import do with each record the reading passed (its event decoded, and equal
/// to the line's readable event if it has one): in every archive its event sits on its own stream and has its figures within bounds; a complete archive is
/// also folded with `audit verify`'s [`InvariantFold`], holding it to every invariant the live
/// ledger holds.
/// In a complete archive, each stream's versions run 1, 2, 3... and the records of a unit share
/// the time they were recorded, as the log that wrote them numbers and stamps them.
#[derive(Default)]
struct Checker {
    fold: InvariantFold,
    versions: HashMap<String, u64>,
    unit_recorded_at: Option<i64>,
}

impl Checker {
    fn record(&mut self, record: &Record, event: &Event, complete: bool) -> Result<(), String> {
        let position = record.position;
        let broken = |check: &str, message: String| {
            format!("record at position {position} breaks the {check} check: {message}")
        };
        if complete {
            self.fold
                .fold(position, &record.stream, event, record.unit_end)
                .map_err(|f| broken(f.check, f.message))?;
            return self.as_logged(record).map_err(|m| broken("log", m));
        }
        check_stream(&record.stream, event).map_err(|m| broken("stream", m))?;
        check_bounds(event).map_err(|why| broken(why.check, why.message))
    }

    /// The record's stream version and time recorded are those the log would give it.
    fn as_logged(&mut self, record: &Record) -> Result<(), String> {
        let version = self.versions.entry(record.stream.clone()).or_default();
        if record.stream_version != *version + 1 {
            return Err(format!(
                "version {} of stream {} follows version {}",
                record.stream_version, record.stream, version
            ));
        }
        *version += 1;
        let unit_at = *self
            .unit_recorded_at
            .get_or_insert(record.recorded_at_micros);
        if record.recorded_at_micros != unit_at {
            return Err(format!(
                "recorded at {} but its unit at {unit_at}: a unit is recorded at once",
                record.recorded_at_micros
            ));
        }
        if record.unit_end {
            self.unit_recorded_at = None;
        }
        Ok(())
    }

    /// The report of a reading: for a complete archive that passed, its digest and totals.
    fn report(self, read: read::ArchiveRead) -> Result<CheckReport, LedgerError> {
        let (manifest, complete, failure) = read;
        let report = |failure, digest, regions| CheckReport {
            manifest: manifest.clone(),
            digest,
            regions,
            failure,
        };
        if failure.is_some() || !complete {
            return Ok(report(failure, None, None));
        }
        let finished = match self.unit_recorded_at {
            Some(_) => Err(("units", "the archive's last unit is unfinished".to_string())),
            None => self.fold.finish().map_err(|f| (f.check, f.message)),
        };
        if let Err((check, message)) = finished {
            let failure = ArchiveFailure {
                line: 0,
                position: None,
                message: format!("the archive breaks the {check} check: {message}"),
            };
            return Ok(report(Some(failure), None, None));
        }
        let entries = store::all_entries(&self.fold.state, &[])?;
        let digest = digest_of(entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
        let regions = totals_of(entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
        Ok(report(None, Some(digest), Some(regions)))
    }
}

/// Checks an archive with no ledger: every line, the chain, the manifest, and every record's
/// event (decoded, on its own stream, within bounds); a complete archive is also replayed,
/// checking the ledger's invariants, to its digest and totals. `progress(bytes read, bytes in
/// all)`.
pub fn check_archive(
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CheckReport, LedgerError> {
    check_archive_with(path, progress, &mut |_, _| {})
}

/// As [`check_archive`], handing `each` every record that passed the checks, with its event.
pub fn check_archive_with(
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
    each: &mut dyn FnMut(&Record, &Event),
) -> Result<CheckReport, LedgerError> {
    let mut checker = Checker::default();
    let read = read_archive(path, progress, &mut |record, event, complete| {
        checker.record(record, event, complete)?;
        each(record, event);
        Ok(())
    })?;
    checker.report(read)
}
