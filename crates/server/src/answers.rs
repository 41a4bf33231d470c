//! The one shaping of the answers both the command line and the service give: an as-of
//! question read from text ([`Asked`]), an input line's outcome as one JSON line
//! ([`write_outcome_json`]), a policy version's line ([`policy_lines`]), a member's history
//! between two days ([`history_between`]), and the sentences said when there is nothing to
//! show. `gongji`'s `--json` answers and the HTTP answers call these same functions, so the two
//! cannot drift apart.
//!
//! Local times and days given for a recording time are read in the ledger's zone (UTC+08:00
//! unless `GONGJI_TZ_OFFSET` says otherwise), and an answer that depends on it states it
//! ([`Asked::state`]). No I/O but the writer handed in; no async.

use std::io::{self, Write};

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, TimeZone};
use gongji_domain::Day;
use gongji_ledger::{AsOf, HistoryEntry, Ledger, LedgerError, LineOutcome};
use gongji_recon::render::terminal_safe_json;
use serde_json::{json, Value};

/// The environment variable naming the ledger's time zone as a fixed offset (`+08:00`).
pub const TZ_OFFSET_VAR: &str = "GONGJI_TZ_OFFSET";

/// The zone local times and days are read in when `GONGJI_TZ_OFFSET` is not set: China
/// Standard Time (Asia/Shanghai has kept UTC+08:00 without daylight saving since 1991).
const TZ_OFFSET_DEFAULT_SECONDS: i32 = 8 * 3600;

/// What the two times of an as-of question are called where they were asked (`--as-of` on
/// the command line, `as_of` in a URL), for the messages that name them.
#[derive(Clone, Copy)]
pub struct AsOfNames {
    pub as_of: &'static str,
    pub recorded_before: &'static str,
}

/// The command line's names.
pub const FLAG_NAMES: AsOfNames = AsOfNames {
    as_of: "--as-of",
    recorded_before: "--recorded-before",
};

/// The service's query parameters.
pub const QUERY_NAMES: AsOfNames = AsOfNames {
    as_of: "as_of",
    recorded_before: "recorded_before",
};

/// An as-of question as asked: which events it admits, and the zone its recording time was
/// read in (set exactly when a recording time was given), which the answer states.
pub struct Asked {
    pub as_of: AsOf,
    zone: Option<FixedOffset>,
}

impl Asked {
    /// Reads an as-of question: `as_of` a day (YYYY-MM-DD), `recorded_before` RFC 3339 with
    /// an offset (honoured), a local time YYYY-MM-DDTHH:MM:SS or a day meaning its midnight,
    /// local ones in the ledger's zone.
    pub fn parse(
        as_of: Option<&str>,
        recorded_before: Option<&str>,
        names: AsOfNames,
    ) -> Result<Asked, String> {
        let date = as_of
            .map(|t| t.parse().map_err(|e| format!("{}: {e}", names.as_of)))
            .transpose()?;
        let (recorded_before_micros, zone) = match recorded_before {
            Some(text) => {
                let zone = ledger_zone()?;
                let micros = parse_timestamp(text, zone, names.recorded_before)?;
                (Some(micros), Some(zone))
            }
            None => (None, None),
        };
        let as_of = AsOf {
            date,
            recorded_before_micros,
        };
        Ok(Asked { as_of, zone })
    }

    /// Adds to an answer the recording time asked, shown in the ledger's zone, and that zone
    /// (`recorded_before`, `time_zone`); an answer that does not depend on the zone is left
    /// as it is.
    pub fn state(&self, answer: &mut Value) {
        let (Some(zone), Some(micros), Some(object)) = (
            self.zone,
            self.as_of.recorded_before_micros,
            answer.as_object_mut(),
        ) else {
            return;
        };
        if let Some(time) = DateTime::from_timestamp_micros(micros) {
            let shown = time
                .with_timezone(&zone)
                .to_rfc3339_opts(SecondsFormat::AutoSi, false);
            object.insert("recorded_before".into(), Value::from(shown));
        }
        object.insert("time_zone".into(), Value::from(zone.to_string()));
    }

    /// `answer` as JSON with the zone it depends on stated ([`Asked::state`]).
    pub fn stated(&self, answer: impl serde::Serialize) -> Value {
        let mut answer = json!(answer);
        self.state(&mut answer);
        answer
    }
}

/// The ledger's zone: `GONGJI_TZ_OFFSET` (`+HH:MM` or `-HH:MM`) if set, else UTC+08:00.
pub fn ledger_zone() -> Result<FixedOffset, String> {
    match std::env::var(TZ_OFFSET_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(FixedOffset::east_opt(TZ_OFFSET_DEFAULT_SECONDS)
            .expect("UTC+08:00 is within a day of UTC")),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!(
            "{TZ_OFFSET_VAR} is not an offset like +08:00 or -05:00"
        )),
        Ok(text) => parse_offset(&text).ok_or_else(|| {
            format!("{TZ_OFFSET_VAR}: '{text}' is not an offset like +08:00 or -05:00")
        }),
    }
}

/// `+HH:MM` or `-HH:MM`, less than a day either way.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    let digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if minutes >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// A recording time in microseconds since the Unix epoch: an explicit offset is honoured; a
/// local time, or a day (its midnight), is read in `zone`. `name` is what it was given as.
fn parse_timestamp(text: &str, zone: FixedOffset, name: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "{name}: '{text}' is not a time like 2024-07-01T08:00:00+08:00, a local \
             time like 2024-07-01T08:00:00 or a day like 2024-07-01"
        )
    };
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_micros());
    }
    let local = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok());
    let local = match local {
        Some(local) => local,
        None => {
            let day: Day = text.parse().map_err(|_| bad())?;
            day.date().and_hms_opt(0, 0, 0).ok_or_else(bad)?
        }
    };
    let time = zone.from_local_datetime(&local).single().ok_or_else(bad)?;
    Ok(time.timestamp_micros())
}

/// Today in China Standard Time (UTC+08:00): the day of a decision or a rules version recorded
/// without one.
pub fn today_in_china() -> Day {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+08:00 is an offset");
    Day::from_date(chrono::Utc::now().with_timezone(&china).date_naive())
}

/// One input line's outcome as `gongji apply --json` prints it, newline included:
/// `{"line":N,"ok":true,"result":{…}}` or `{"line":N,"ok":false,"error":{"code","message"}}`.
pub fn write_outcome_json(
    out: &mut impl Write,
    line: usize,
    outcome: &LineOutcome,
) -> io::Result<()> {
    match outcome {
        LineOutcome::Applied(result) => {
            // Written straight to the output: no intermediate JSON value per line.
            write!(out, "{{\"line\":{line},\"ok\":true,\"result\":")?;
            serde_json::to_writer(&mut *out, result)?;
            writeln!(out, "}}")
        }
        LineOutcome::Rejected(rejection) => {
            let error = json!({"code": rejection.code, "message": rejection.message});
            let said = json!({"line": line, "ok": false, "error": error}).to_string();
            writeln!(out, "{}", terminal_safe_json(&said))
        }
    }
}

/// Every region's policy versions, one object each (`region`, `version`, `effective`,
/// `year_start`), as `gongji policy list --json` prints them.
pub fn policy_lines(ledger: &Ledger) -> Result<Vec<Value>, LedgerError> {
    let mut lines = Vec::new();
    for region in ledger.policy_regions()? {
        for policy in ledger.policies(&region)? {
            lines.push(json!({"region": region, "version": policy.version, "effective": policy.effective, "year_start": policy.year_start}));
        }
    }
    Ok(lines)
}

/// A member's history entries whose own date is within `from..=to` (either open), as JSON
/// objects; `Err` with what to say when the member has no events at all.
pub fn history_between(
    ledger: &Ledger,
    member: &str,
    from: Option<Day>,
    to: Option<Day>,
) -> Result<Result<Vec<Value>, String>, LedgerError> {
    let entries: Vec<HistoryEntry> = ledger.history(member)?;
    if entries.is_empty() {
        return Ok(Err(format!("member {member} has no events")));
    }
    let entries = entries.into_iter().filter(|e| {
        let date = e.event.date();
        from.is_none_or(|f| date >= f) && to.is_none_or(|t| date <= t)
    });
    Ok(Ok(entries.map(|entry| json!(entry)).collect()))
}

/// What is said when a region has neither fund nor policy.
pub fn no_fund(region: &str) -> String {
    format!("region {region} has no fund or policy in this ledger")
}
