//! The quarantine marker, `DIR/QUARANTINE`: the log's memory that a damaged record was found
//! in the middle of it.
//!
//! Any read path ([`crate::Log::read_stream`], [`crate::Log::read_range`]), [`crate::Log::verify`]
//! or recovery at open that finds a durable record it cannot trust (bad checksum, broken hash
//! chain, wrong position, a missing segment) writes this marker before it returns
//! [`LogError::Corrupt`]. While the marker exists, [`crate::Log::open`] refuses with
//! [`LogError::Quarantined`]; [`crate::Log::clear_quarantine`] removes it only after the whole
//! log verifies again. A torn tail at open is not damage (it was never acknowledged) and never
//! quarantines.
//!
//! The marker is a small text file, one `key=value` a line after a first line naming the
//! format, written to `QUARANTINE.tmp`, synced and renamed, so that it is either whole or
//! absent:
//!
//! ```text
//! gongji-log quarantine 1
//! position=7
//! segment=/data/ledger/segments/00000000000000000000.seg
//! offset_bytes=1416
//! found_by=verify
//! found_at_unix_seconds=1767225600
//! reason=checksum mismatch: stored 0x1c2d3e4f, computed 0x5a6b7c8d
//! ```
//!
//! Values escape `\` as `\\` and a line break as `\n`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use std::sync::atomic::Ordering;

use crate::error::{io_err, LogError};
use crate::files;
use crate::Log;

/// The marker's file name inside the log's directory.
pub const QUARANTINE_FILE: &str = "QUARANTINE";
const QUARANTINE_TMP_FILE: &str = "QUARANTINE.tmp";
const MAGIC_LINE: &str = "gongji-log quarantine 1";
/// A marker larger than this is not one this crate wrote.
const MARKER_BYTES_MAX: u64 = 64 * 1024;
/// A reason longer than this is cut when the marker is written.
const REASON_BYTES_MAX: usize = 4096;

/// What a quarantine marker says: which durable record was found damaged, where, how and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantine {
    /// Position of the damaged record (the position the log expected at that place).
    pub position: u64,
    /// The segment file holding it.
    pub segment: PathBuf,
    /// Byte offset of the damaged frame in that segment.
    pub offset_bytes: u64,
    /// Why the record cannot be trusted.
    pub reason: String,
    /// What found it: `read_stream`, `read_range`, `verify`, `open` or `clear_quarantine`.
    pub found_by: String,
    /// When it was found, seconds since 1970-01-01 UTC.
    pub found_at_unix_seconds: u64,
}

impl Quarantine {
    /// The quarantine a `Corrupt` error describes; `None` for any other error.
    pub(crate) fn from_corrupt(error: &LogError, found_by: &str) -> Option<Quarantine> {
        match error {
            LogError::Corrupt {
                position,
                segment,
                offset,
                reason,
            } => Some(Quarantine {
                position: *position,
                segment: segment.clone(),
                offset_bytes: *offset,
                reason: reason.clone(),
                found_by: found_by.to_owned(),
                found_at_unix_seconds: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            }),
            _ => None,
        }
    }

    fn encode(&self) -> String {
        let mut reason = self.reason.as_str();
        if reason.len() > REASON_BYTES_MAX {
            let mut cut = REASON_BYTES_MAX;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason = &reason[..cut];
        }
        format!(
            "{MAGIC_LINE}\nposition={}\nsegment={}\noffset_bytes={}\nfound_by={}\n\
             found_at_unix_seconds={}\nreason={}\n",
            self.position,
            escape(&self.segment.to_string_lossy()),
            self.offset_bytes,
            escape(&self.found_by),
            self.found_at_unix_seconds,
            escape(reason),
        )
    }

    fn decode(text: &str) -> Result<Quarantine, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC_LINE) {
            return Err(format!("its first line is not {MAGIC_LINE:?}"));
        }
        let mut fields = std::collections::BTreeMap::new();
        for line in lines {
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("the line {line:?} is not key=value"));
            };
            fields.insert(key, unescape(value));
        }
        let text_field = |key: &str| {
            fields
                .get(key)
                .cloned()
                .ok_or_else(|| format!("it has no {key}"))
        };
        let number_field = |key: &str| -> Result<u64, String> {
            text_field(key)?
                .parse::<u64>()
                .map_err(|e| format!("its {key} is not a number: {e}"))
        };
        Ok(Quarantine {
            position: number_field("position")?,
            segment: PathBuf::from(text_field("segment")?),
            offset_bytes: number_field("offset_bytes")?,
            reason: text_field("reason")?,
            found_by: text_field("found_by")?,
            found_at_unix_seconds: number_field("found_at_unix_seconds")?,
        })
    }

    /// `found_at_unix_seconds` as `YYYY-MM-DD hh:mm:ss UTC`.
    pub fn found_at_utc(&self) -> String {
        const SECONDS_PER_DAY: u64 = 86_400;
        let days = (self.found_at_unix_seconds / SECONDS_PER_DAY) as i64;
        let in_day = self.found_at_unix_seconds % SECONDS_PER_DAY;
        let (year, month, day) = civil_from_days(days);
        format!(
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
            in_day / 3600,
            in_day / 60 % 60,
            in_day % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

pub(crate) fn marker_path(dir: &Path) -> PathBuf {
    dir.join(QUARANTINE_FILE)
}

/// Reads the marker. `Ok(None)`: there is none. `Ok(Some(Err(why)))`: there is one, but it
/// cannot be read as a marker (the log is quarantined all the same).
pub(crate) fn read(dir: &Path) -> Result<Option<Result<Quarantine, String>>, LogError> {
    let path = marker_path(dir);
    let file = match files::open_read(&path, "opening quarantine marker") {
        Ok(file) => file,
        Err(e) if files::is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MARKER_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("reading quarantine marker", &path, e))?;
    if bytes.len() as u64 > MARKER_BYTES_MAX {
        return Ok(Some(Err(format!(
            "it is larger than {MARKER_BYTES_MAX} bytes"
        ))));
    }
    let decoded = match String::from_utf8(bytes) {
        Ok(text) => Quarantine::decode(&text),
        Err(_) => Err("it is not UTF-8".to_owned()),
    };
    Ok(Some(decoded))
}

/// The error `Log::open` gives while the marker exists.
pub(crate) fn refusal(dir: &Path, marker: Result<Quarantine, String>) -> LogError {
    let path = marker_path(dir);
    match marker {
        Ok(quarantine) => LogError::Quarantined {
            marker: path,
            quarantine: Some(Box::new(quarantine)),
            unreadable: None,
        },
        Err(why) => LogError::Quarantined {
            marker: path,
            quarantine: None,
            unreadable: Some(why),
        },
    }
}

/// Writes the marker atomically: a temporary file, synced, renamed over the marker, and the
/// directory synced.
pub(crate) fn write(dir: &Path, quarantine: &Quarantine) -> Result<(), LogError> {
    let tmp = dir.join(QUARANTINE_TMP_FILE);
    let path = marker_path(dir);
    let mut file = files::create_temporary(&tmp, "creating quarantine marker")?;
    file.write_all(quarantine.encode().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err("writing quarantine marker", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| io_err("renaming quarantine marker", &path, e))?;
    crate::sync_dir(dir)
}

/// Writes the marker for `found` unless one naming an earlier (or the same) position is there.
pub(crate) fn record(dir: &Path, found: &Quarantine) -> Result<(), LogError> {
    if let Some(Ok(existing)) = read(dir)? {
        if existing.position <= found.position {
            return Ok(());
        }
    }
    write(dir, found)
}

/// Removes the marker (and a leftover temporary file) and syncs the directory.
pub(crate) fn remove(dir: &Path) -> Result<(), LogError> {
    for name in [QUARANTINE_TMP_FILE, QUARANTINE_FILE] {
        files::remove_own_file(&dir.join(name))?;
    }
    crate::sync_dir(dir)
}

/// If `error` is `Corrupt`, writes the quarantine marker for it (`overwrite`: even if the
/// marker names an earlier record) and returns the error; a marker that cannot be written is
/// named in the error's reason.
pub(crate) fn remember_damage(
    dir: &Path,
    error: LogError,
    found_by: &str,
    overwrite: bool,
) -> LogError {
    let Some(found) = Quarantine::from_corrupt(&error, found_by) else {
        return error;
    };
    let written = if overwrite {
        write(dir, &found)
    } else {
        record(dir, &found)
    };
    match (written, error) {
        (Ok(()), error) => error,
        (
            Err(e),
            LogError::Corrupt {
                position,
                segment,
                offset,
                reason,
            },
        ) => LogError::Corrupt {
            position,
            segment,
            offset,
            reason: format!("{reason} (and the quarantine marker could not be written: {e})"),
        },
        (Err(_), error) => error,
    }
}

impl Log {
    /// If `error` is `Corrupt` (a durable record that cannot be trusted),
    /// quarantines the log: writes `DIR/QUARANTINE` and refuses new units
    /// from now on. Returns the error.
    pub(crate) fn remember_damage(&self, error: LogError, found_by: &str) -> LogError {
        if !matches!(error, LogError::Corrupt { .. }) {
            return error;
        }
        self.quarantined.store(true, Ordering::Relaxed);
        self::remember_damage(&self.dir, error, found_by, false)
    }

    /// Whether this `Log` found a damaged record since it was opened (and
    /// quarantined the log: the next open will refuse).
    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Quarantine {
        Quarantine {
            position: 7,
            segment: PathBuf::from("/d/segments/00000000000000000000.seg"),
            offset_bytes: 1416,
            reason: "checksum mismatch\nwith a \\ line".into(),
            found_by: "verify".into(),
            found_at_unix_seconds: 1_767_225_600,
        }
    }

    #[test]
    fn marker_round_trips_through_its_text() {
        let q = sample();
        assert_eq!(Quarantine::decode(&q.encode()), Ok(q));
    }

    #[test]
    fn garbled_markers_are_reported_not_panicked_on() {
        for text in [
            "",
            "gongji-log quarantine 1\nposition=x\n",
            "hello",
            "\u{0}",
        ] {
            assert!(Quarantine::decode(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn found_at_is_shown_as_a_utc_time() {
        assert_eq!(sample().found_at_utc(), "2026-01-01 00:00:00 UTC");
        let epoch = Quarantine {
            found_at_unix_seconds: 951_782_400 + 3_661, // 2000-02-29 01:01:01
            ..sample()
        };
        assert_eq!(epoch.found_at_utc(), "2000-02-29 01:01:01 UTC");
    }
}
