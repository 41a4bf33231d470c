//! Reading an archive back line by line, checking everything that can be checked without a
//! ledger: the header's format, the running chain of every line, each record's own hash, the
//! order of positions (and, in a complete archive, that each record follows the one before),
//! and the manifest against what was read. The first failure stops the reading and is named by
//! its line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use gongji_domain::PolicyVersion;
use gongji_log::Record;
use serde_json::Value;

use super::{
    chain_next, hash32, hex, json_hash, unhex, ArchiveFailure, Header, Manifest, RecordLine,
    ARCHIVE_FORMAT, ARCHIVE_LINE_BYTES_MAX,
};
use crate::LedgerError;

/// Records read between progress reports.
const PROGRESS_RECORDS: u64 = 10_000;

/// What reading an archive found: its manifest (if it read to a good one), whether it says it
/// is complete, and the first failure.
pub(super) type ArchiveRead = (Option<Manifest>, bool, Option<ArchiveFailure>);

/// What a line was found to be wrong with, and the record's position if it is a record.
struct Fault {
    position: Option<u64>,
    message: String,
}

fn fault(message: impl Into<String>) -> Fault {
    Fault {
        position: None,
        message: message.into(),
    }
}

/// What the lines read so far add up to.
#[derive(Default)]
struct Tally {
    chain: [u8; 32],
    complete: bool,
    previous: Option<(u64, [u8; 32])>,
    records: u64,
    policies: u64,
    first_hash: Option<String>,
}

/// Reads an archive line by line, checking everything that can be checked without a ledger;
/// `each_record` sees every record that passed. Stops at the first failure.
pub(super) fn read_archive(
    path: &Path,
    progress: &mut dyn FnMut(u64),
    each_record: &mut dyn FnMut(&Record, bool) -> Result<(), String>,
) -> Result<ArchiveRead, LedgerError> {
    let cannot_read =
        |e: std::io::Error| LedgerError::Projection(format!("cannot read {}: {e}", path.display()));
    let file = File::open(path).map_err(cannot_read)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut seen = Tally::default();
    let mut line_number = 0u64;
    let mut text = String::new();
    loop {
        text.clear();
        let read = Read::take(&mut reader, ARCHIVE_LINE_BYTES_MAX)
            .read_line(&mut text)
            .map_err(cannot_read)?;
        line_number += 1;
        let records_before = seen.records;
        let step = if read == 0 {
            Err(fault(
                "the archive ends without a manifest: it was cut short",
            ))
        } else {
            seen.line(line_number, &text, each_record)
        };
        match step {
            Err(Fault { position, message }) => {
                let failure = ArchiveFailure {
                    line: line_number,
                    position,
                    message,
                };
                return Ok((None, false, Some(failure)));
            }
            Ok(Some(manifest)) => return after_manifest(&mut reader, line_number, manifest, &seen),
            Ok(None) => {}
        }
        if seen.records != records_before && seen.records.is_multiple_of(PROGRESS_RECORDS) {
            progress(seen.records);
        }
    }
}

/// The manifest is the last line: anything after it is a failure.
fn after_manifest(
    reader: &mut impl BufRead,
    line_number: u64,
    manifest: Manifest,
    seen: &Tally,
) -> Result<ArchiveRead, LedgerError> {
    let mut text = String::new();
    if reader
        .read_line(&mut text)
        .map_err(|e| LedgerError::Projection(e.to_string()))?
        > 0
    {
        let failure = ArchiveFailure {
            line: line_number + 1,
            position: None,
            message: "a line follows the manifest".into(),
        };
        return Ok((None, false, Some(failure)));
    }
    Ok((Some(manifest), seen.complete, None))
}

impl Tally {
    /// Checks one line; the manifest if it is the manifest and it matches.
    fn line(
        &mut self,
        line_number: u64,
        text: &str,
        each_record: &mut dyn FnMut(&Record, bool) -> Result<(), String>,
    ) -> Result<Option<Manifest>, Fault> {
        if !text.ends_with('\n') {
            return Err(fault(
                "line is cut short or longer than an archive line can be",
            ));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| fault(format!("line is not JSON: {e}")))?;
        if line_number == 1 {
            self.header(value)?;
        } else if let Some(manifest) = value.get("manifest") {
            return self.manifest(manifest).map(Some);
        } else if let Some(policy) = value.get("policy") {
            self.policy(policy, stored_chain(&value))?;
        } else if let Some(line) = value.get("record") {
            let record = self.record(line, stored_chain(&value))?;
            each_record(&record, self.complete).map_err(|message| Fault {
                position: Some(record.position),
                message,
            })?;
            self.first_hash.get_or_insert_with(|| hex(&record.hash));
            self.previous = Some((record.position, record.hash));
            self.records += 1;
        } else {
            return Err(fault("line is neither a policy, a record nor the manifest"));
        }
        Ok(None)
    }

    fn header(&mut self, value: Value) -> Result<(), Fault> {
        let header: Header = serde_json::from_value(value)
            .map_err(|e| fault(format!("not a gongji archive header: {e}")))?;
        if header.archive != "gongji" || header.format != ARCHIVE_FORMAT {
            return Err(fault(format!(
                "archive format {} of '{}' is not known (this build reads format {ARCHIVE_FORMAT})",
                header.format, header.archive
            )));
        }
        self.complete = header.complete;
        self.chain = chain_next(&self.chain, &json_hash(&header));
        Ok(())
    }

    fn manifest(&self, manifest: &Value) -> Result<Manifest, Fault> {
        let manifest: Manifest = serde_json::from_value(manifest.clone())
            .map_err(|e| fault(format!("manifest does not read: {e}")))?;
        let expected = Manifest {
            records: self.records,
            policies: self.policies,
            first_hash: self.first_hash.clone(),
            last_hash: self.previous.map(|(_, hash)| hex(&hash)),
            chain: hex(&self.chain),
            complete: self.complete,
        };
        if manifest != expected {
            return Err(fault(format!(
                "manifest says {manifest:?} but the archive holds {expected:?}"
            )));
        }
        Ok(manifest)
    }

    fn policy(&mut self, policy: &Value, stored_chain: Option<[u8; 32]>) -> Result<(), Fault> {
        let policy: PolicyVersion = serde_json::from_value(policy.clone())
            .map_err(|e| fault(format!("policy does not read: {e}")))?;
        self.chain = chain_next(&self.chain, &json_hash(&policy));
        if stored_chain != Some(self.chain) {
            return Err(fault("the archive chain breaks at this policy line: it or a line before it was changed, removed, reordered or added"));
        }
        self.policies += 1;
        Ok(())
    }

    /// A record line: its own hash, the chain, and its place after the record before.
    fn record(&mut self, line: &Value, stored_chain: Option<[u8; 32]>) -> Result<Record, Fault> {
        let line: RecordLine = serde_json::from_value(line.clone())
            .map_err(|e| fault(format!("record does not read: {e}")))?;
        let at = |message: String| Fault {
            position: Some(line.position),
            message,
        };
        let record =
            record_of(&line).ok_or_else(|| at("record has a malformed hash or payload".into()))?;
        if record.recompute_hash() != record.hash {
            return Err(at(format!(
                "record at position {} does not match its hash: its contents were changed",
                record.position
            )));
        }
        self.chain = chain_next(&self.chain, &record.hash);
        if stored_chain != Some(self.chain) {
            return Err(at(format!("the archive chain breaks at the record at position {}: a line before it was removed, reordered or added, or this line was changed", record.position)));
        }
        self.follows(&record).map_err(at)?;
        Ok(record)
    }

    /// Positions increase; in a complete archive each record follows the one before exactly.
    fn follows(&self, record: &Record) -> Result<(), String> {
        if let Some((last_position, last_hash)) = self.previous {
            if record.position <= last_position {
                return Err(format!("record at position {} comes after position {last_position}: records are out of order", record.position));
            }
            if self.complete
                && (record.position != last_position + 1 || record.prev_hash != last_hash)
            {
                return Err(format!("record at position {} does not follow position {last_position}: a record is missing, added or moved", record.position));
            }
        } else if self.complete && (record.position != 0 || record.prev_hash != [0; 32]) {
            return Err(format!(
                "a complete archive starts at position 0, this one at {}",
                record.position
            ));
        }
        Ok(())
    }
}

fn stored_chain(value: &Value) -> Option<[u8; 32]> {
    value.get("chain").and_then(Value::as_str).and_then(hash32)
}

/// The record a record line describes, if its hashes and payload are well-formed hex.
fn record_of(line: &RecordLine) -> Option<Record> {
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
