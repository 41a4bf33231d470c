//! The text of one change-feed event: `id: POSITION`, then `data:` and the record as
//! `gongji history --json` prints an event ([`HistoryEntry`]'s JSON, byte for byte), written
//! straight from the record and its event into the chunk's buffer.
//!
//! [`HistoryEntry`] is built for one entry at a time: it clones the event, formats two dates
//! with chrono's format strings and the event id into fresh strings, and serialises the event
//! through serde's `flatten` (a map). Catching up, the feed writes a million of them a second,
//! so [`EventText`] writes the same bytes without those: the event serialises as itself (an
//! internally tagged object, `{"event":…,…}`), its opening brace becomes the comma after
//! `"position":N`, and the entry's own fields follow, the dates from a one-entry cache per day
//! (records come in position order: neighbours share their days). An event that does not
//! serialise as a non-empty object (none does) is written through [`HistoryEntry`] itself.
//!
//! Invariant, held by the tests: for every record and event, [`EventText::write`] writes
//! exactly `id: P\ndata: ` + `serde_json::to_vec(&HistoryEntry::of(record, event))` + `\n\n`.

use chrono::DateTime;
use gongji_domain::{Day, Event};
use gongji_ledger::HistoryEntry;
use gongji_log::Record;
use serde::Serialize;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Writes feed events; remembers the last days it formatted.
#[derive(Default)]
pub(super) struct EventText {
    /// The last own date written, as text.
    own_date: Option<(Day, String)>,
    /// The last recording day (microseconds since the epoch / a day's) and its
    /// `YYYY-MM-DDT` (none for a day chrono's calendar cannot show).
    recorded_day: Option<(i64, Option<String>)>,
}

impl EventText {
    /// Appends one server-sent event for `record`, whose payload decoded as `event`.
    pub(super) fn write(
        &mut self,
        out: &mut Vec<u8>,
        record: &Record,
        event: &Event,
    ) -> Result<(), serde_json::Error> {
        let start = out.len();
        out.extend_from_slice(b"id: ");
        number(out, record.position)?;
        out.extend_from_slice(b"\ndata: {\"position\":");
        number(out, record.position)?;
        let object = out.len();
        serde_json::to_writer(&mut *out, event)?;
        if out.len() - object <= 2 || out[object] != b'{' || out.last() != Some(&b'}') {
            out.truncate(start);
            return write_entry(out, &HistoryEntry::of(record, event));
        }
        out[object] = b',';
        out.pop();
        out.extend_from_slice(b",\"own_date\":\"");
        self.write_own_date(out, event.date());
        out.extend_from_slice(b"\",\"recorded_at\":");
        self.write_recorded_at(out, record.recorded_at_micros);
        out.extend_from_slice(b",\"recorded_at_micros\":");
        number(out, record.recorded_at_micros)?;
        out.extend_from_slice(b",\"event_id\":\"");
        let mut id = [0u8; 36];
        out.extend_from_slice(
            record
                .event_id
                .hyphenated()
                .encode_lower(&mut id)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"version\":");
        number(out, record.stream_version)?;
        out.extend_from_slice(b"}\n\n");
        Ok(())
    }

    fn write_own_date(&mut self, out: &mut Vec<u8>, day: Day) {
        match &self.own_date {
            Some((cached, text)) if *cached == day => out.extend_from_slice(text.as_bytes()),
            _ => {
                let text = day.to_string();
                out.extend_from_slice(text.as_bytes());
                self.own_date = Some((day, text));
            }
        }
    }

    /// `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` as chrono's `%Y-%m-%dT%H:%M:%S%.6fZ` writes it, or
    /// `null` for a time beyond what a calendar date can show (as [`HistoryEntry::of`]).
    fn write_recorded_at(&mut self, out: &mut Vec<u8>, micros: i64) {
        let day = micros.div_euclid(MICROS_PER_DAY);
        let prefix = match &self.recorded_day {
            Some((cached, prefix)) if *cached == day => prefix,
            _ => {
                let prefix = day
                    .checked_mul(MICROS_PER_DAY)
                    .and_then(DateTime::from_timestamp_micros)
                    .map(|midnight| midnight.format("%Y-%m-%dT").to_string());
                &self.recorded_day.insert((day, prefix)).1
            }
        };
        let Some(prefix) = prefix else {
            // Chrono's range ends within a day, not at its midnight: ask it for this time.
            return match recorded_at_text(micros) {
                Some(text) => quoted(out, &text),
                None => out.extend_from_slice(b"null"),
            };
        };
        let of_day = micros.rem_euclid(MICROS_PER_DAY);
        let seconds = of_day / 1_000_000;
        out.push(b'"');
        out.extend_from_slice(prefix.as_bytes());
        digits(out, seconds / 3600, 2);
        out.push(b':');
        digits(out, seconds / 60 % 60, 2);
        out.push(b':');
        digits(out, seconds % 60, 2);
        out.push(b'.');
        digits(out, of_day % 1_000_000, 6);
        out.extend_from_slice(b"Z\"");
    }
}

/// The recording time as [`HistoryEntry::of`] gives it.
fn recorded_at_text(micros: i64) -> Option<String> {
    DateTime::from_timestamp_micros(micros).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

fn quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// `value` (`0 <= value < 10^width`) in exactly `width` decimal digits.
fn digits(out: &mut Vec<u8>, mut value: i64, width: usize) {
    let at = out.len();
    out.resize(at + width, b'0');
    for slot in out[at..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// A number as JSON writes it.
fn number(out: &mut Vec<u8>, value: impl Serialize) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, &value)
}

/// One event through [`HistoryEntry`]'s own serialisation (compact JSON has no newline).
pub(super) fn write_entry(
    out: &mut Vec<u8>,
    entry: &HistoryEntry,
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"id: ");
    number(out, entry.position)?;
    out.extend_from_slice(b"\ndata: ");
    serde_json::to_writer(&mut *out, entry)?;
    out.extend_from_slice(b"\n\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongji_ledger::Ledger;
    use std::collections::BTreeSet;

    const POLICY: &str = include_str!("../../../../policies/500000-2024-01-01.json");
    const SAMPLE: &str = include_str!("../../../../examples/sample.jsonl");

    /// The records of a ledger with the policy loaded and the shipped sample applied.
    fn sample_records() -> Vec<(Record, Event)> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut ledger = Ledger::open(tmp.path()).expect("open");
        let policy = format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#);
        ledger
            .apply_line(&policy, 1_796_060_894_183_216)
            .expect("policy");
        for (i, line) in SAMPLE.lines().enumerate() {
            // Some of the sample's lines are refused on purpose: what is applied is enough.
            let _ = ledger.apply_line(line, 1_796_060_894_183_217 + i as i64 * 977_000_001);
        }
        ledger.commit().expect("commit");
        let log = ledger.log();
        let records = log.read_range(0, log.durable_end()).expect("read");
        records
            .map(|record| {
                let record = record.expect("a record");
                let event = Event::decode(&record.payload).expect("an event");
                (record, event)
            })
            .collect()
    }

    fn as_history_entry(record: &Record, event: &Event) -> String {
        let mut out = Vec::new();
        write_entry(&mut out, &HistoryEntry::of(record, event)).expect("writes");
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn every_record_of_the_sample_is_written_as_its_history_entry_byte_for_byte() {
        let records = sample_records();
        let kinds: BTreeSet<&str> = records.iter().map(|(_, event)| event.kind()).collect();
        assert!(
            kinds.len() >= 12,
            "the sample has many kinds of event: {kinds:?}"
        );
        let mut text = EventText::default();
        for (record, event) in &records {
            let mut fast = Vec::new();
            text.write(&mut fast, record, event).expect("writes");
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                as_history_entry(record, event)
            );
        }
        // Times no calendar date shows, and around the epoch, the same record written again.
        let (record, event) = &records[records.len() / 2];
        for micros in [i64::MIN, i64::MAX, -1, 0, 1, MICROS_PER_DAY - 1] {
            let mut record = record.clone();
            record.recorded_at_micros = micros;
            let mut fast = Vec::new();
            text.write(&mut fast, &record, event).expect("writes");
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                as_history_entry(&record, event)
            );
        }
    }

    #[test]
    fn the_recording_time_reads_as_chronos_format_at_every_edge_of_its_range() {
        let mut text = EventText::default();
        let day = MICROS_PER_DAY;
        let mut times = vec![
            0,
            1,
            -1,
            day - 1,
            day,
            -day,
            -day - 1,
            1_796_060_894_183_216,
        ];
        times.extend([i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1]);
        // Around chrono's own limits, on both sides.
        let max = DateTime::<chrono::Utc>::MAX_UTC.timestamp_micros();
        let min = DateTime::<chrono::Utc>::MIN_UTC.timestamp_micros();
        for edge in [max, min] {
            times.extend((-3..=3).map(|d| edge.saturating_add(d)));
            times.extend((-2..=2).map(|d| edge.saturating_add(d * day)));
        }
        // A walk over many days and times of day, with the cache in use.
        let mut t = -5 * 365 * day;
        while t < 60 * 365 * day {
            times.push(t);
            times.push(t + 1);
            t += 7_777_777_777_777;
        }
        for micros in times {
            let mut fast = Vec::new();
            text.write_recorded_at(&mut fast, micros);
            let expected = serde_json::to_vec(&recorded_at_text(micros)).unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(expected).unwrap(),
                "{micros}"
            );
        }
    }
}
