//! `import_archive`: a ledger restored from a complete archive in one pass. Each record is read
//! once, checked (the line, the chain, its event against the invariant fold) and appended from
//! the same bytes, so what is restored is exactly what was checked, even if the file changes
//! under it (or is a FIFO serving something else on a second open: there is none).
//!
//! The ledger is built aside and put in place only when everything checked; on any failure
//! what was built aside is removed, so the target is left as it was found.
//!
//! Into a directory ([`import_archive`]): the ledger is built in a fresh directory beside the
//! target (`.NAME.import-PID`, on the same filesystem), synced and given its projections, and
//! renamed into place; the target is absent, or an empty directory. A target holding only the
//! service's token file and access log (`DIR/tokens`, `DIR/access-log`) counts as empty: they
//! are carried into the restored ledger before it is renamed into place (through
//! `gongji_log::service_files`).
//!
//! Into PostgreSQL ([`import_archive_postgres`]): the ledger is built in a temporary log of the
//! same database (`.import-PID-N-NAME`), committed and given its projections there, and renamed
//! to the target's name in one transaction (`PgLog::rename_log`), which refuses a target that
//! exists; on a failure the temporary log is dropped (`PgLog::drop_log`). A process killed in
//! the middle leaves its temporary log behind, never a half-restored target.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use gongji_log::{service_files, DurableLog, Log, LogOptions, NewRecord, Record, MAX_UNIT_RECORDS};
use gongji_log_pg::{PgLog, MAX_LOG_NAME_BYTES};

use super::{hex, read_archive, CheckReport, Checker};
use crate::{Ledger, LedgerError};

/// Units appended between syncs while importing.
const IMPORT_UNITS_PER_SYNC: usize = 1000;
/// The most payload bytes of one unit held in memory before it is appended.
const IMPORT_UNIT_BYTES_MAX: usize = 512 << 20;

/// What an import returns: the archive's check report, and the restored ledger (None if the
/// archive fails the check or is not complete).
type Imported = (CheckReport, Option<Ledger>);

/// Restores a ledger into `dir` (absent, or an empty directory) from a complete archive that
/// passes the check, then builds its projections. Returns the check report of the archive and
/// the restored ledger; None if the archive fails the check or is not complete (`dir` then
/// stays as it was). `dir` is refused before the archive is opened. `progress(phase, done,
/// total)` in two phases: `restore` (bytes of the archive read, checked and appended) and
/// `projections` (records folded).
pub fn import_archive(
    dir: &Path,
    path: &Path,
    progress: &mut dyn FnMut(&'static str, u64, u64),
) -> Result<Imported, LedgerError> {
    let kept = refuse_unless_empty(dir)?;
    let building = building_dir(dir)?;
    fs::create_dir(&building).map_err(|e| cannot(&building, "create", e))?;
    let outcome = restore(&Building::Dir(&building), path, progress);
    let discard = || fs::remove_dir_all(&building).map_err(|e| cannot(&building, "remove", e));
    settle(
        outcome,
        || place(&building, dir, &kept),
        discard,
        || Ledger::open(dir),
    )
}

/// As [`import_archive`], into the ledger `log_name` of the PostgreSQL database `uri` (a libpq
/// connection string), which must not exist yet (refused before the archive is opened; a
/// log of that name made meanwhile refuses the final rename). On a failure, or an archive
/// that does not restore, the database holds no new log.
pub fn import_archive_postgres(
    uri: &str,
    log_name: &str,
    path: &Path,
    progress: &mut dyn FnMut(&'static str, u64, u64),
) -> Result<Imported, LedgerError> {
    if Ledger::postgres_exists(uri, log_name)? {
        return Err(LedgerError::Projection(format!(
            "the database already holds a ledger named {log_name:?}; import restores into a new \
             log (name another with --pg-log)"
        )));
    }
    let building = building_log(log_name);
    let outcome = restore(&Building::Postgres(uri, &building), path, progress);
    let discard = || {
        PgLog::drop_log(uri, &building)
            .map(drop)
            .map_err(LedgerError::from)
    };
    settle(
        outcome,
        || Ok(PgLog::rename_log(uri, &building, log_name)?),
        discard,
        || Ledger::open_postgres(uri, log_name),
    )
}

/// After a restore: a restored ledger is put in place (`place`) and opened there (`open`);
/// whatever was built aside is discarded (`discard`) when the archive did not restore or
/// anything failed (an error of the discard itself is reported only when nothing else
/// failed).
fn settle(
    outcome: Result<(CheckReport, bool), LedgerError>,
    place: impl FnOnce() -> Result<(), LedgerError>,
    discard: impl Fn() -> Result<(), LedgerError>,
    open: impl FnOnce() -> Result<Ledger, LedgerError>,
) -> Result<Imported, LedgerError> {
    match outcome {
        Ok((report, true)) => {
            if let Err(error) = place() {
                let _ = discard();
                return Err(error);
            }
            Ok((report, Some(open()?)))
        }
        Ok((report, false)) => {
            discard()?;
            Ok((report, None))
        }
        Err(error) => {
            let _ = discard();
            Err(error)
        }
    }
}

/// Where a ledger is built before it is put in place.
enum Building<'a> {
    /// A directory beside the target.
    Dir(&'a Path),
    /// A temporary log: (the database's connection string, the log's name).
    Postgres(&'a str, &'a str),
}

impl Building<'_> {
    fn open_log(&self) -> Result<Box<dyn DurableLog>, LedgerError> {
        Ok(match *self {
            Building::Dir(dir) => Box::new(Log::open(dir)?),
            Building::Postgres(uri, log) => Box::new(PgLog::open(uri, log)?),
        })
    }

    /// The ledger built, to build its projections (its log closed before).
    fn open_to_rebuild(&self) -> Result<Ledger, LedgerError> {
        match *self {
            Building::Dir(dir) => Ledger::open_to_rebuild(dir, LogOptions::default()),
            Building::Postgres(uri, log) => Ledger::open_postgres_to_rebuild(uri, log),
        }
    }
}

/// The temporary log a ledger named `log_name` is built in: `.import-PID-N-` and as much of
/// `log_name` as fits in a log name (whole characters), so that no two imports (of this or
/// another process) share one and an operator can tell whose it was.
fn building_log(log_name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = format!(".import-{}-{n}-", std::process::id());
    for c in log_name.chars() {
        if name.len() + c.len_utf8() > MAX_LOG_NAME_BYTES {
            break;
        }
        name.push(c);
    }
    name
}

/// `dir` must be absent or a directory holding nothing but the service's kept files (the
/// token file, the access log), whose names are returned.
fn refuse_unless_empty(dir: &Path) -> Result<Vec<&'static str>, LedgerError> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(cannot(dir, "read", e)),
        Ok(meta) if !meta.is_dir() => Err(LedgerError::Projection(format!(
            "{} is not a directory; import restores into an empty or new directory",
            dir.display()
        ))),
        Ok(_) => service_files::only_kept_files(dir)?.ok_or_else(|| {
            LedgerError::Projection(format!(
                "{} is not empty (it may already hold a ledger); import restores into an empty or new directory (one holding only the service's tokens and access-log will do)",
                dir.display()
            ))
        }),
    }
}

/// Moves the restored ledger at `building` into `dir`, with the service's files `kept` of
/// `dir` carried into it first (so that `dir` is empty when the ledger is renamed over it);
/// on a failure they are carried back.
fn place(building: &Path, dir: &Path, kept: &[&str]) -> Result<(), LedgerError> {
    service_files::carry_kept_files(dir, building, kept)?;
    let placed = fs::rename(building, dir)
        .map_err(|e| cannot(dir, "move the restored ledger into", e))
        .and_then(|()| sync_parent(dir));
    if placed.is_err() {
        let _ = service_files::carry_kept_files(building, dir, kept);
    }
    placed
}

/// The directory the ledger is built in: beside `dir`, on the same filesystem.
fn building_dir(dir: &Path) -> Result<PathBuf, LedgerError> {
    let name = dir.file_name().ok_or_else(|| {
        LedgerError::Projection(format!(
            "{} names no directory to import into",
            dir.display()
        ))
    })?;
    let building = format!(".{}.import-{}", name.to_string_lossy(), std::process::id());
    Ok(dir.with_file_name(building))
}

fn cannot(path: &Path, what: &str, error: std::io::Error) -> LedgerError {
    LedgerError::Projection(format!("cannot {what} {}: {error}", path.display()))
}

fn sync_parent(dir: &Path) -> Result<(), LedgerError> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| cannot(parent, "sync", e))
}

/// Reads, checks and appends the archive into the ledger at `building` in one pass; on
/// success syncs and closes its log, then builds its projections. Whether a ledger was
/// restored.
fn restore(
    building: &Building<'_>,
    path: &Path,
    progress: &mut dyn FnMut(&'static str, u64, u64),
) -> Result<(CheckReport, bool), LedgerError> {
    let mut checker = Checker::default();
    let mut restorer = Restorer {
        log: building.open_log()?,
        unit: Vec::new(),
        unit_bytes: 0,
        units: 0,
    };
    let read = read_archive(
        path,
        &mut |done, total| progress("restore", done, total),
        &mut |record, event, complete| {
            checker.record(record, event, complete)?;
            match complete {
                true => restorer.push(record),
                false => Ok(()),
            }
        },
    )?;
    let report = checker.report(read)?;
    if report.failure.is_some() || report.digest.is_none() {
        return Ok((report, false));
    }
    let archived_last = report.manifest.as_ref().and_then(|m| m.last_hash.clone());
    restorer.finish(archived_last)?;
    let mut ledger = building.open_to_rebuild()?;
    ledger.rebuild(&mut |done, total| progress("projections", done, total))?;
    ledger.close()?;
    Ok((report, true))
}

/// The log being restored, and the unit read so far.
struct Restorer {
    log: Box<dyn DurableLog>,
    unit: Vec<Record>,
    unit_bytes: usize,
    units: usize,
}

impl Restorer {
    /// Takes a checked record (its unit recorded at once, `Checker` saw to it); appends its
    /// unit once the unit's last record is in.
    fn push(&mut self, record: &Record) -> Result<(), String> {
        self.unit_bytes += record.payload.len();
        self.unit.push(record.clone());
        if self.unit.len() > MAX_UNIT_RECORDS || self.unit_bytes > IMPORT_UNIT_BYTES_MAX {
            return Err(format!(
                "record at position {}: its unit holds {} records of {} bytes, over the limits of {MAX_UNIT_RECORDS} records and {IMPORT_UNIT_BYTES_MAX} bytes",
                record.position,
                self.unit.len(),
                self.unit_bytes
            ));
        }
        if record.unit_end {
            self.append()
                .map_err(|e| format!("record at position {}: {e}", record.position))?;
        }
        Ok(())
    }

    fn append(&mut self) -> Result<(), gongji_log::LogError> {
        let records: Vec<NewRecord<'_>> = self
            .unit
            .iter()
            .map(|r| NewRecord {
                stream: &r.stream,
                event_id: r.event_id,
                payload: &r.payload,
            })
            .collect();
        self.log
            .append(&[], &records, self.unit[0].recorded_at_micros)?;
        self.unit.clear();
        self.unit_bytes = 0;
        self.units += 1;
        if self.units.is_multiple_of(IMPORT_UNITS_PER_SYNC) {
            self.log.sync()?;
        }
        Ok(())
    }

    /// Syncs the restored log, checks it ends with the archive's last hash and closes it.
    fn finish(mut self, archived_last: Option<String>) -> Result<(), LedgerError> {
        if !self.unit.is_empty() {
            return Err(LedgerError::Projection(
                "the archive's last unit is unfinished".into(),
            ));
        }
        self.log.sync()?;
        let end = self.log.durable_end();
        let restored_last = self
            .log
            .read_range(end.saturating_sub(1), end)?
            .next()
            .transpose()?
            .map(|r| hex(&r.hash));
        if restored_last != archived_last {
            return Err(LedgerError::Projection(format!(
                "the restored log ends with hash {restored_last:?}, the archive with {archived_last:?}"
            )));
        }
        Ok(self.log.close()?)
    }
}
