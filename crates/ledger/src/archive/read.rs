//! Reading an archive back line by line, checking everything that can be checked without a
//! ledger: the header's format, the running chain of every line, each record's own hash, the
//! order of positions (and, in a complete archive, that each record follows the one before),
//! each record's event decoded from its payload and equal to the line's readable event (if it
//! has one), and the manifest against what was read. The first failure stops the reading and is named by
//! its line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use gongji_domain::{Event, PolicyVersion};
use gongji_log::Record;
use serde_json::Value;

use super::readable::checked_event;
use super::{
    chain_next, frame_bounds, hash32, hex, json_hash, record_of_line, ArchiveFailure, Header,
    Manifest, ManifestLine, PolicyLine, RecordItem, RecordLine, ARCHIVE_FORMAT,
    ARCHIVE_FORMAT_OLDEST, ARCHIVE_LINE_BYTES_MAX,
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
/// `each_record` sees every record that passed, with its event. Stops at the first failure. `progress(bytes
/// read, bytes in all)`: the file's size, or what was read when that is more (a pipe has
/// none); both are what was read once the manifest checked.
pub(super) fn read_archive(
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
    each_record: &mut dyn FnMut(&Record, &Event, bool) -> Result<(), String>,
) -> Result<ArchiveRead, LedgerError> {
    let cannot_read =
        |e: std::io::Error| LedgerError::Projection(format!("cannot read {}: {e}", path.display()));
    let file = File::open(path).map_err(cannot_read)?;
    let size_bytes = file.metadata().map_or(0, |m| m.len());
    let mut read_bytes = 0u64;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut seen = Tally::default();
    let mut line_number = 0u64;
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        // At most one line of at most the bound is ever held: a longer one is refused unread.
        let read = Read::take(&mut reader, ARCHIVE_LINE_BYTES_MAX)
            .read_until(b'\n', &mut bytes)
            .map_err(cannot_read)?;
        line_number += 1;
        read_bytes += read as u64;
        let records_before = seen.records;
        let step = if read == 0 {
            Err(fault(
                "the archive ends without a manifest: it was cut short",
            ))
        } else {
            line_text(&bytes).and_then(|text| seen.line(line_number, text, each_record))
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
            Ok(Some(manifest)) => {
                let read = after_manifest(&mut reader, line_number, manifest, &seen)
                    .map_err(cannot_read)?;
                if read.2.is_none() {
                    progress(read_bytes, read_bytes);
                }
                return Ok(read);
            }
            Ok(None) => {}
        }
        if seen.records != records_before && seen.records.is_multiple_of(PROGRESS_RECORDS) {
            progress(read_bytes, size_bytes.max(read_bytes));
        }
    }
}

/// A whole line's text: ended by its newline, within the bound, UTF-8.
fn line_text(bytes: &[u8]) -> Result<&str, Fault> {
    if bytes.last() != Some(&b'\n') {
        return Err(fault(format!(
            "line is cut short or longer than an archive line can be ({ARCHIVE_LINE_BYTES_MAX} bytes)"
        )));
    }
    std::str::from_utf8(bytes).map_err(|e| fault(format!("line is not UTF-8: {e}")))
}

/// The manifest is the last line: anything after it is a failure (found without reading it).
fn after_manifest(
    reader: &mut impl BufRead,
    line_number: u64,
    manifest: Manifest,
    seen: &Tally,
) -> std::io::Result<ArchiveRead> {
    if !reader.fill_buf()?.is_empty() {
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
        each_record: &mut dyn FnMut(&Record, &Event, bool) -> Result<(), String>,
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
        } else if value.get("manifest").is_some() {
            let line: ManifestLine = typed(value, "manifest")?;
            return self.manifest(line.manifest).map(Some);
        } else if value.get("policy").is_some() {
            let line: PolicyLine = typed(value, "policy")?;
            self.policy(line.policy, hash32(&line.chain))?;
        } else if value.get("record").is_some() {
            let line: RecordItem = typed(value, "record")?;
            let record = self.record(line.record, hash32(&line.chain))?;
            let at = |message| Fault {
                position: Some(record.position),
                message,
            };
            let event = checked_event(&record, line.event.as_ref()).map_err(at)?;
            each_record(&record, &event, self.complete).map_err(at)?;
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
        let formats = ARCHIVE_FORMAT_OLDEST..=ARCHIVE_FORMAT;
        if header.archive != "gongji" || !formats.contains(&header.format) {
            return Err(fault(format!(
                "archive format {} of '{}' is not known (this build reads formats \
                 {ARCHIVE_FORMAT_OLDEST} to {ARCHIVE_FORMAT} of 'gongji')",
                header.format, header.archive
            )));
        }
        self.complete = header.complete;
        self.chain = chain_next(&self.chain, &json_hash(&header));
        Ok(())
    }

    fn manifest(&self, manifest: Manifest) -> Result<Manifest, Fault> {
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

    fn policy(
        &mut self,
        policy: PolicyVersion,
        stored_chain: Option<[u8; 32]>,
    ) -> Result<(), Fault> {
        policy
            .validate()
            .map_err(|why| fault(format!("policy {} is invalid: {why}", policy.version)))?;
        self.chain = chain_next(&self.chain, &json_hash(&policy));
        if stored_chain != Some(self.chain) {
            return Err(fault("the archive chain breaks at this policy line: it or a line before it was changed, removed, reordered or added"));
        }
        self.policies += 1;
        Ok(())
    }

    /// A record line: its own hash, the chain, and its place after the record before.
    fn record(
        &mut self,
        line: RecordLine,
        stored_chain: Option<[u8; 32]>,
    ) -> Result<Record, Fault> {
        let at = |message: String| Fault {
            position: Some(line.position),
            message,
        };
        frame_bounds(&line).map_err(at)?;
        let record = record_of_line(&line)
            .ok_or_else(|| at("record has a malformed hash or payload".into()))?;
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

/// A line as its type, every field known: a field the chain does not cover is refused.
fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, Fault> {
    serde_json::from_value(value).map_err(|e| fault(format!("{what} line does not read: {e}")))
}
