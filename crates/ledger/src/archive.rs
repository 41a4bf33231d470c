//! The audit archive: the log (or part of it) in one self-describing file that an auditor can
//! check with no ledger at all, replay to the ledger's digest, and restore a ledger from.
//!
//! The file is JSON Lines: a header, the policy versions the records refer to, the records
//! with their hashes, and a manifest. Every line after the header carries `chain`, a running
//! blake3 over the header and every item before it, so a line changed, removed, reordered or
//! added is named by the first line whose chain no longer matches. Each record also carries
//! the fields its log hash is computed from, so its hash is recomputed, and in a complete
//! archive each record's `prev_hash` must be the hash of the record before it.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use gongji_domain::{Day, Event, PolicyVersion};
use gongji_log::{Log, NewRecord, Record};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{digest_of, totals_of, InvariantFold, RegionTotals};
use crate::{store, Ledger, LedgerError};

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

impl Ledger {
    /// Writes the log, or the part `filter` selects, to `path`. Returns the manifest.
    pub fn export_archive(
        &self,
        path: &Path,
        filter: &ArchiveFilter,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Manifest, LedgerError> {
        let log = self.log();
        let end = log.durable_end();
        let io = |e: std::io::Error| {
            LedgerError::Projection(format!("cannot write {}: {e}", path.display()))
        };
        // First pass: which records and which policy versions go in.
        let mut members = HashMap::new();
        let mut selected = BTreeSet::new();
        let mut versions = BTreeSet::new();
        for record in log.read_range(0, end)? {
            let record = record?;
            let event = decode(&record)?;
            let regions = event_region(&event, &mut members);
            let date = event.date();
            let in_dates =
                filter.from.is_none_or(|f| date >= f) && filter.to.is_none_or(|t| date <= t);
            let in_region = filter.region.as_ref().is_none_or(|r| regions.contains(r));
            if in_dates && in_region {
                selected.insert(record.position);
                if let Some(version) = policy_referred(&event) {
                    versions.insert(version.to_string());
                }
            }
        }
        let mut policies: Vec<PolicyVersion> = Vec::new();
        for region in self.policy_regions()? {
            policies.extend(
                self.policies(&region)?
                    .into_iter()
                    .filter(|p| versions.contains(&p.version)),
            );
        }
        let complete = filter.is_everything();
        let header = Header {
            archive: "gongji".into(),
            format: ARCHIVE_FORMAT,
            filter: filter.clone(),
            complete,
        };
        let mut chain = chain_next(&[0; 32], &json_hash(&header));
        // Written beside the target and renamed into place once whole and synced, so the
        // target is never a cut archive.
        let partial = path.with_file_name(format!(
            "{}.partial",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let mut out = BufWriter::new(File::create(&partial).map_err(io)?);
        writeln!(
            out,
            "{}",
            serde_json::to_string(&header).expect("header serializes")
        )
        .map_err(io)?;
        for policy in &policies {
            chain = chain_next(&chain, &json_hash(policy));
            writeln!(
                out,
                "{}",
                serde_json::json!({"policy": policy, "chain": hex(&chain)})
            )
            .map_err(io)?;
        }
        let (mut first_hash, mut last_hash, mut written) = (None, None, 0u64);
        for record in log.read_range(0, end)? {
            let record = record?;
            if !selected.contains(&record.position) {
                continue;
            }
            chain = chain_next(&chain, &record.hash);
            let line = RecordLine {
                position: record.position,
                stream: record.stream.clone(),
                version: record.stream_version,
                event_id: record.event_id,
                recorded_at_micros: record.recorded_at_micros,
                unit_end: record.unit_end,
                prev_hash: hex(&record.prev_hash),
                hash: hex(&record.hash),
                payload: hex(&record.payload),
            };
            writeln!(
                out,
                "{}",
                serde_json::json!({"record": line, "chain": hex(&chain)})
            )
            .map_err(io)?;
            first_hash.get_or_insert_with(|| hex(&record.hash));
            last_hash = Some(hex(&record.hash));
            written += 1;
            if written.is_multiple_of(10_000) {
                progress(record.position, end);
            }
        }
        let manifest = Manifest {
            records: written,
            policies: policies.len() as u64,
            first_hash,
            last_hash,
            chain: hex(&chain),
            complete,
        };
        writeln!(out, "{}", serde_json::json!({ "manifest": manifest })).map_err(io)?;
        out.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        std::fs::rename(&partial, path).map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        progress(end, end);
        Ok(manifest)
    }
}

/// Reads an archive line by line, checking everything that can be checked without a ledger;
/// `each_record` sees every record that passed. Stops at the first failure.
fn read_archive(
    path: &Path,
    progress: &mut dyn FnMut(u64),
    each_record: &mut dyn FnMut(&Record, bool) -> Result<(), String>,
) -> Result<(Option<Manifest>, bool, Option<ArchiveFailure>), LedgerError> {
    let file = File::open(path)
        .map_err(|e| LedgerError::Projection(format!("cannot read {}: {e}", path.display())))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let fail = |line: u64, position: Option<u64>, message: String| {
        Ok((
            None,
            false,
            Some(ArchiveFailure {
                line,
                position,
                message,
            }),
        ))
    };
    let mut line_number = 0u64;
    let mut text = String::new();
    let mut chain = [0u8; 32];
    let mut complete = false;
    let mut previous: Option<(u64, [u8; 32])> = None;
    let (mut records, mut policies) = (0u64, 0u64);
    let mut first_hash = None;
    loop {
        text.clear();
        let read = std::io::Read::take(&mut reader, ARCHIVE_LINE_BYTES_MAX)
            .read_line(&mut text)
            .map_err(|e| LedgerError::Projection(format!("cannot read {}: {e}", path.display())))?;
        if read == 0 {
            return fail(
                line_number + 1,
                None,
                "the archive ends without a manifest: it was cut short".into(),
            );
        }
        line_number += 1;
        if !text.ends_with('\n') {
            return fail(
                line_number,
                None,
                "line is cut short or longer than an archive line can be".into(),
            );
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(e) => return fail(line_number, None, format!("line is not JSON: {e}")),
        };
        if line_number == 1 {
            let header: Header = match serde_json::from_value(value) {
                Ok(header) => header,
                Err(e) => return fail(1, None, format!("not a gongji archive header: {e}")),
            };
            if header.archive != "gongji" || header.format != ARCHIVE_FORMAT {
                return fail(1, None, format!("archive format {} of '{}' is not known (this build reads format {ARCHIVE_FORMAT})", header.format, header.archive));
            }
            complete = header.complete;
            chain = chain_next(&chain, &json_hash(&header));
            continue;
        }
        if let Some(manifest) = value.get("manifest") {
            let manifest: Manifest = match serde_json::from_value(manifest.clone()) {
                Ok(manifest) => manifest,
                Err(e) => return fail(line_number, None, format!("manifest does not read: {e}")),
            };
            let expected = Manifest {
                records,
                policies,
                first_hash: first_hash.clone(),
                last_hash: previous.map(|(_, hash)| hex(&hash)),
                chain: hex(&chain),
                complete,
            };
            if manifest != expected {
                return fail(
                    line_number,
                    None,
                    format!("manifest says {manifest:?} but the archive holds {expected:?}"),
                );
            }
            text.clear();
            if reader
                .read_line(&mut text)
                .map_err(|e| LedgerError::Projection(e.to_string()))?
                > 0
            {
                return fail(line_number + 1, None, "a line follows the manifest".into());
            }
            return Ok((Some(manifest), complete, None));
        }
        let stored_chain = value.get("chain").and_then(Value::as_str).and_then(hash32);
        if let Some(policy) = value.get("policy") {
            let policy: PolicyVersion = match serde_json::from_value(policy.clone()) {
                Ok(policy) => policy,
                Err(e) => return fail(line_number, None, format!("policy does not read: {e}")),
            };
            chain = chain_next(&chain, &json_hash(&policy));
            if stored_chain != Some(chain) {
                return fail(line_number, None, "the archive chain breaks at this policy line: it or a line before it was changed, removed, reordered or added".into());
            }
            policies += 1;
            continue;
        }
        let Some(line) = value.get("record") else {
            return fail(
                line_number,
                None,
                "line is neither a policy, a record nor the manifest".into(),
            );
        };
        let line: RecordLine = match serde_json::from_value(line.clone()) {
            Ok(line) => line,
            Err(e) => return fail(line_number, None, format!("record does not read: {e}")),
        };
        let position = Some(line.position);
        let (Some(prev_hash), Some(hash), Some(payload)) = (
            hash32(&line.prev_hash),
            hash32(&line.hash),
            unhex(&line.payload),
        ) else {
            return fail(
                line_number,
                position,
                "record has a malformed hash or payload".into(),
            );
        };
        let record = Record {
            position: line.position,
            stream: line.stream,
            stream_version: line.version,
            event_id: line.event_id,
            recorded_at_micros: line.recorded_at_micros,
            payload,
            hash,
            prev_hash,
            unit_end: line.unit_end,
        };
        if record.recompute_hash() != record.hash {
            return fail(
                line_number,
                position,
                format!(
                    "record at position {} does not match its hash: its contents were changed",
                    record.position
                ),
            );
        }
        chain = chain_next(&chain, &record.hash);
        if stored_chain != Some(chain) {
            return fail(line_number, position, format!("the archive chain breaks at the record at position {}: a line before it was removed, reordered or added, or this line was changed", record.position));
        }
        if let Some((last_position, last_hash)) = previous {
            if record.position <= last_position {
                return fail(line_number, position, format!("record at position {} comes after position {last_position}: records are out of order", record.position));
            }
            if complete && (record.position != last_position + 1 || record.prev_hash != last_hash) {
                return fail(line_number, position, format!("record at position {} does not follow position {last_position}: a record is missing, added or moved", record.position));
            }
        } else if complete && (record.position != 0 || record.prev_hash != [0; 32]) {
            return fail(
                line_number,
                position,
                format!(
                    "a complete archive starts at position 0, this one at {}",
                    record.position
                ),
            );
        }
        if let Err(message) = each_record(&record, complete) {
            return fail(line_number, position, message);
        }
        first_hash.get_or_insert_with(|| hex(&record.hash));
        previous = Some((record.position, record.hash));
        records += 1;
        if records.is_multiple_of(10_000) {
            progress(records);
        }
    }
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
