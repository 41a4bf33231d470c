//! The audit archive: the log (or part of it) in one self-describing file that an auditor can
//! check with no ledger at all, replay to the ledger's digest, and restore a ledger from.
//!
//! The file is JSON Lines: a header, the policy versions the records refer to, the records
//! with their hashes, and a manifest. Every line after the header carries `chain`, a running
//! blake3 over the header and every item before it, so a line changed, removed, reordered or
//! added is named by the first line whose chain no longer matches. Each record also carries
//! the fields its log hash is computed from, so its hash is recomputed, and in a complete
//! archive each record's `prev_hash` must be the hash of the record before it.

mod export;
mod read;

use std::collections::HashMap;
use std::path::Path;

use gongji_domain::{Day, Event};
use gongji_log::{Log, NewRecord, Record};
use serde::{Deserialize, Serialize};

use crate::audit::{digest_of, totals_of, InvariantFold, RegionTotals};
use crate::{store, Ledger, LedgerError};
use read::read_archive;

const ARCHIVE_FORMAT: u32 = 1;
/// The longest archive line read (a record's payload is at most 1 MiB, hex doubles it).
const ARCHIVE_LINE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Units appended between fsyncs while importing.
const IMPORT_UNITS_PER_SYNC: usize = 1000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    archive: String,
    format: u32,
    filter: ArchiveFilter,
    /// The whole log from position 0, with nothing filtered out.
    complete: bool,
}

#[derive(Debug, Serialize, Deserialize)]
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
pub struct Manifest {
    pub records: u64,
    pub policies: u64,
    pub first_hash: Option<String>,
    pub last_hash: Option<String>,
    pub chain: String,
    pub complete: bool,
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

/// The region an event belongs to; `members` tracks each member's region as the log goes.
fn event_region(event: &Event, members: &mut HashMap<String, String>) -> Vec<String> {
    match event {
        Event::PolicyLoaded { policy } => vec![policy.region.clone()],
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

/// Checks an archive with no ledger: every line, the chain, the manifest; a complete archive is
/// also replayed, checking the ledger's invariants, to its digest and totals.
pub fn check_archive(
    path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<CheckReport, LedgerError> {
    let mut fold = InvariantFold::default();
    // Only a complete archive replays: a filtered one lacks the events its records build on.
    let mut replay = |record: &Record, complete: bool| -> Result<(), String> {
        if !complete {
            return Ok(());
        }
        let event = Event::decode(&record.payload)
            .map_err(|e| format!("record at position {}: {e}", record.position))?;
        fold.fold(record.position, &event, record.unit_end)
            .map_err(|f| {
                format!(
                    "record at position {} breaks the {} check: {}",
                    record.position, f.check, f.message
                )
            })
    };
    let (manifest, complete, failure) = read_archive(path, progress, &mut replay)?;
    if failure.is_some() || !complete {
        return Ok(CheckReport {
            manifest,
            digest: None,
            regions: None,
            failure,
        });
    }
    if let Err(f) = fold.finish() {
        let failure = ArchiveFailure {
            line: 0,
            position: None,
            message: f.message,
        };
        return Ok(CheckReport {
            manifest,
            digest: None,
            regions: None,
            failure: Some(failure),
        });
    }
    let entries = store::all_entries(&fold.state);
    let digest = digest_of(entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    let regions = totals_of(entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
    Ok(CheckReport {
        manifest,
        digest: Some(digest),
        regions: Some(regions),
        failure: None,
    })
}

/// Restores a ledger in the empty directory `dir` from a complete archive that passes the
/// check, then builds its projections. Returns the check report of the archive and the
/// restored ledger.
pub fn import_archive(
    dir: &Path,
    path: &Path,
    progress: &mut dyn FnMut(&'static str, u64),
) -> Result<(CheckReport, Option<Ledger>), LedgerError> {
    let report = check_archive(path, &mut |done| progress("check", done))?;
    if report.failure.is_some() || report.digest.is_none() {
        return Ok((report, None));
    }
    let mut log = Log::open(dir)?;
    if log.durable_end() > 0 {
        return Err(LedgerError::Projection(format!(
            "{} already holds a ledger of {} records; import restores into an empty directory",
            dir.display(),
            log.durable_end()
        )));
    }
    let mut unit: Vec<Record> = Vec::new();
    let mut units = 0usize;
    let mut append = |log: &mut Log, unit: &mut Vec<Record>| -> Result<(), String> {
        let records: Vec<NewRecord<'_>> = unit
            .iter()
            .map(|r| NewRecord {
                stream: &r.stream,
                event_id: r.event_id,
                payload: &r.payload,
            })
            .collect();
        let recorded_at = unit[0].recorded_at_micros;
        log.append(&[], &records, recorded_at)
            .map_err(|e| e.to_string())?;
        unit.clear();
        units += 1;
        if units.is_multiple_of(IMPORT_UNITS_PER_SYNC) {
            log.sync().map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let mut restore = |record: &Record, _complete: bool| -> Result<(), String> {
        unit.push(record.clone());
        if record.unit_end {
            append(&mut log, &mut unit)?;
        }
        Ok(())
    };
    let (_, _, failure) = read_archive(path, &mut |done| progress("import", done), &mut restore)?;
    if let Some(failure) = failure {
        return Err(LedgerError::Projection(format!(
            "archive changed while importing: {}",
            failure.message
        )));
    }
    if !unit.is_empty() {
        return Err(LedgerError::Projection(
            "the archive's last unit is unfinished".into(),
        ));
    }
    log.sync()?;
    drop(log);
    let mut ledger = Ledger::open(dir)?;
    let restored_last = ledger
        .log()
        .read_range(
            ledger.log().durable_end().saturating_sub(1),
            ledger.log().durable_end(),
        )?
        .next()
        .transpose()?
        .map(|r| hex(&r.hash));
    let archived_last = report.manifest.as_ref().and_then(|m| m.last_hash.clone());
    if restored_last != archived_last {
        return Err(LedgerError::Projection(format!(
            "the restored log ends with hash {restored_last:?}, the archive with {archived_last:?}"
        )));
    }
    ledger.rebuild(&mut |done, _| progress("projections", done))?;
    Ok((report, Some(ledger)))
}
