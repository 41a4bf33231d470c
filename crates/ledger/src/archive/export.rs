//! `export_archive`: which records and policy versions a filter selects, and the one file the
//! export writes. The archive is written beside its target as `NAME.partial` (created with
//! `O_EXCL`, after removing a stale regular file of that name; a link there is refused, never
//! written through), synced,
//! and renamed into place (then the directory is synced), so the target is never a cut archive
//! and a link at `NAME` is replaced, not written through. Before anything is read or written,
//! an existing `NAME` (unless replacing was asked for) and a region the ledger has no policy
//! for are refused (`ExportRefusal`). Each record line carries, beside the fields its hash
//! covers, its event decoded (`readable.rs`), unless that would make the line longer than a
//! reader takes (no event a command makes comes near; the line then holds the bytes alone).

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use gongji_domain::PolicyVersion;
use gongji_log::{DurableLog, Record};
use serde::Serialize;

use super::readable::event_object;
use super::{
    chain_next, decode, event_region, hex, json_hash, policy_referred, ArchiveFilter, Header,
    Manifest, RecordItem, RecordLine, ARCHIVE_FORMAT, ARCHIVE_LINE_BYTES_MAX,
};
use crate::{Ledger, LedgerError};

/// Records written between progress reports.
const PROGRESS_RECORDS: u64 = 10_000;

/// Why an export is refused before anything is read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportRefusal {
    /// Something is already at the destination and replacing it was not asked for.
    Exists(PathBuf),
    /// The filter names a region no policy was loaded for: nothing of it can be in the log.
    UnknownRegion(String),
}

impl std::fmt::Display for ExportRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportRefusal::Exists(path) => write!(
                f,
                "{} already exists: export writes a new file (--force replaces it)",
                path.display()
            ),
            ExportRefusal::UnknownRegion(region) => write!(
                f,
                "region {region} is not known to this ledger (no policy was loaded for it): \
                 nothing exported"
            ),
        }
    }
}

impl Ledger {
    /// Why exporting `filter` to `path` would be refused, checked before anything is read:
    /// an existing destination (unless `replace`), a region the ledger does not know.
    pub fn export_refusal(
        &self,
        path: &Path,
        filter: &ArchiveFilter,
        replace: bool,
    ) -> Result<Option<ExportRefusal>, LedgerError> {
        if !replace && std::fs::symlink_metadata(path).is_ok() {
            return Ok(Some(ExportRefusal::Exists(path.to_path_buf())));
        }
        if let Some(region) = &filter.region {
            if !self.policy_regions()?.contains(region) {
                return Ok(Some(ExportRefusal::UnknownRegion(region.clone())));
            }
        }
        Ok(None)
    }

    /// Writes the log, or the part `filter` selects, to the file `path` (the only file the
    /// ledger writes outside its data directory). Returns the manifest. Refused, writing
    /// nothing, for what [`Ledger::export_refusal`] names. `progress(phase, done, total)` in
    /// positions of the log, in two phases: `select` (what the filter takes) and `write`.
    pub fn export_archive(
        &self,
        path: &Path,
        filter: &ArchiveFilter,
        replace: bool,
        progress: &mut dyn FnMut(&'static str, u64, u64),
    ) -> Result<Manifest, LedgerError> {
        if let Some(refusal) = self.export_refusal(path, filter, replace)? {
            return Err(LedgerError::Projection(refusal.to_string()));
        }
        let log = self.log();
        let end = log.durable_end();
        let (selected, versions) =
            select(log, end, filter, &mut |done| progress("select", done, end))?;
        let policies = self.policies_named(&versions)?;
        let complete = filter.is_everything();
        let header = Header {
            archive: "gongji".into(),
            format: ARCHIVE_FORMAT,
            filter: filter.clone(),
            complete,
        };
        let mut out = ArchiveFile::create(path, &header)?;
        for policy in &policies {
            out.policy(policy)?;
        }
        for record in log.read_range(0, end)? {
            let record = record?;
            if selected.contains(&record.position) {
                out.record(&record)?;
                if out.records.is_multiple_of(PROGRESS_RECORDS) {
                    progress("write", record.position, end);
                }
            }
        }
        let manifest = out.finish(policies.len() as u64, complete)?;
        progress("write", end, end);
        Ok(manifest)
    }

    /// The loaded policy versions named in `versions`.
    fn policies_named(
        &self,
        versions: &BTreeSet<String>,
    ) -> Result<Vec<PolicyVersion>, LedgerError> {
        let mut policies = Vec::new();
        for region in self.policy_regions()? {
            policies.extend(
                self.policies(&region)?
                    .into_iter()
                    .filter(|p| versions.contains(&p.version)),
            );
        }
        Ok(policies)
    }
}

/// The positions of the records `filter` selects among `0..end`, and the policy versions they
/// were decided under. `progress(records read)`, every `PROGRESS_RECORDS` and at the end.
fn select(
    log: &dyn DurableLog,
    end: u64,
    filter: &ArchiveFilter,
    progress: &mut dyn FnMut(u64),
) -> Result<(BTreeSet<u64>, BTreeSet<String>), LedgerError> {
    let mut members = HashMap::new();
    let mut selected = BTreeSet::new();
    let mut versions = BTreeSet::new();
    for record in log.read_range(0, end)? {
        let record = record?;
        if record.position.is_multiple_of(PROGRESS_RECORDS) {
            progress(record.position);
        }
        let event = decode(&record)?;
        let regions = event_region(&event, &mut members);
        let date = event.date();
        let in_dates = filter.from.is_none_or(|f| date >= f) && filter.to.is_none_or(|t| date <= t);
        let in_region = filter.region.as_ref().is_none_or(|r| regions.contains(r));
        if in_dates && in_region {
            selected.insert(record.position);
            if let Some(version) = policy_referred(&event) {
                versions.insert(version.to_string());
            }
        }
    }
    progress(end);
    Ok((selected, versions))
}

/// An archive being written: its lines so far and their running chain.
struct ArchiveFile {
    out: BufWriter<File>,
    path: PathBuf,
    partial: PathBuf,
    chain: [u8; 32],
    records: u64,
    first_hash: Option<String>,
    last_hash: Option<String>,
}

impl ArchiveFile {
    /// Creates `NAME.partial` beside `path` and writes the header.
    fn create(path: &Path, header: &Header) -> Result<ArchiveFile, LedgerError> {
        let partial = path.with_file_name(format!(
            "{}.partial",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let file = create_partial(&partial)?;
        let mut archive = ArchiveFile {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            partial,
            chain: chain_next(&[0; 32], &json_hash(header)),
            records: 0,
            first_hash: None,
            last_hash: None,
        };
        archive.line(header)?;
        Ok(archive)
    }

    fn line(&mut self, value: &impl Serialize) -> Result<(), LedgerError> {
        self.text(&serde_json::to_string(value).expect("archive lines serialize"))
    }

    fn text(&mut self, text: &str) -> Result<(), LedgerError> {
        writeln!(self.out, "{text}").map_err(|e| write_failed(&self.path, e))
    }

    fn policy(&mut self, policy: &PolicyVersion) -> Result<(), LedgerError> {
        self.chain = chain_next(&self.chain, &json_hash(policy));
        self.line(&serde_json::json!({"policy": policy, "chain": hex(&self.chain)}))
    }

    /// A record line: the record's fields and hash, its event decoded, the chain after it.
    fn record(&mut self, record: &Record) -> Result<(), LedgerError> {
        let event = event_object(record, &decode(record)?);
        self.chain = chain_next(&self.chain, &record.hash);
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
        let item = RecordItem {
            record: line,
            event: Some(event),
            chain: hex(&self.chain),
        };
        self.text(&record_text(item, ARCHIVE_LINE_BYTES_MAX))?;
        self.first_hash.get_or_insert_with(|| hex(&record.hash));
        self.last_hash = Some(hex(&record.hash));
        self.records += 1;
        Ok(())
    }

    /// Writes the manifest, syncs the file and renames it into place.
    fn finish(mut self, policies: u64, complete: bool) -> Result<Manifest, LedgerError> {
        let manifest = Manifest {
            records: self.records,
            policies,
            first_hash: self.first_hash.take(),
            last_hash: self.last_hash.take(),
            chain: hex(&self.chain),
            complete,
        };
        self.line(&serde_json::json!({ "manifest": manifest }))?;
        let path = self.path;
        let io = |e| write_failed(&path, e);
        self.out
            .into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        std::fs::rename(&self.partial, &path).map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(manifest)
    }
}

/// A record line's text, shorter than `bound` bytes with its newline (what a reader takes):
/// without the readable event if it would not be (the payload, at most the log's 1 MiB, always
/// fits in hex; its rendering, several times larger for an event of many small figures, might
/// not).
fn record_text(mut item: RecordItem, bound: u64) -> String {
    let text = serde_json::to_string(&item).expect("archive lines serialize");
    if (text.len() as u64) < bound {
        return text;
    }
    item.event = None;
    serde_json::to_string(&item).expect("archive lines serialize")
}

/// Creates `NAME.partial` with `O_EXCL`. A regular file of that name (left by an export that
/// did not finish) is removed first; a link or anything else there is refused, never written
/// through, truncated or removed (nor is one planted between the two steps: `O_EXCL` refuses
/// it).
fn create_partial(partial: &Path) -> Result<File, LedgerError> {
    let refused = || {
        LedgerError::Projection(format!(
            "cannot write {}: it is a link or not a regular file (put there by someone, not \
             by an export); the export never writes through, truncates or removes it: look at \
             it, delete it, and export again",
            partial.display()
        ))
    };
    match std::fs::symlink_metadata(partial) {
        Ok(meta) if meta.is_file() => {
            std::fs::remove_file(partial).map_err(|e| write_failed(partial, e))?;
        }
        Ok(_) => return Err(refused()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_failed(partial, e)),
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(partial)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => refused(),
            _ => write_failed(partial, e),
        })
}

fn write_failed(path: &Path, error: std::io::Error) -> LedgerError {
    LedgerError::Projection(format!("cannot write {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> RecordItem {
        RecordItem {
            record: RecordLine {
                position: 7,
                stream: "member/M001".into(),
                version: 1,
                event_id: uuid::Uuid::nil(),
                recorded_at_micros: 0,
                unit_end: true,
                prev_hash: hex(&[0; 32]),
                hash: hex(&[1; 32]),
                payload: "01".repeat(100),
            },
            event: Some(serde_json::json!({"kind": "retired", "note": "x".repeat(500)})),
            chain: hex(&[2; 32]),
        }
    }

    #[test]
    fn a_record_line_keeps_its_readable_event_when_it_fits_and_drops_it_when_not() {
        let whole = record_text(item(), ARCHIVE_LINE_BYTES_MAX);
        assert!(whole.contains("\"event\":") && whole.contains(&"x".repeat(500)));
        let bound = whole.len() as u64;
        let bare = record_text(item(), bound);
        assert!(
            !bare.contains("\"event\"") && (bare.len() as u64) < bound,
            "{bare}"
        );
        assert!(bare.contains(&"01".repeat(100)), "the bytes stay: {bare}");
        let read: RecordItem = serde_json::from_str(&bare).expect("a bare line reads");
        assert!(read.event.is_none());
    }
}
