//! Fund supervision (智能监控): an auditor's decision on a monitoring flag, recorded on the
//! region's supervision stream. Flags are found by `gongji-monitor` over the log, never stored:
//! the decision names the flag by its id, which the caller has looked up.

use super::guards::check_id;
use super::{Decision, Outcome};
use crate::event::{Event, Stream};
use crate::time::Day;
use crate::types::{FlagDecision, Rejection, RejectionCode};

/// The longest reason recorded with a decision, in bytes.
pub const REASON_BYTES_MAX: usize = 1024;

pub(super) fn decide_flag(
    flag: &str,
    region: &str,
    decision: FlagDecision,
    reason: &str,
    by: &str,
    date: Day,
) -> Result<Decision, Rejection> {
    check_flag_id(flag)?;
    check_id("region", region)?;
    check_id("auditor", by)?;
    if reason.trim().is_empty() {
        return Err(Rejection::new(
            RejectionCode::InvalidValue,
            format!("flag {flag}: a decision needs a reason"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(Rejection::new(
            RejectionCode::InvalidValue,
            format!("flag {flag}: a reason is one line of printable text"),
        ));
    }
    if reason.len() > REASON_BYTES_MAX {
        return Err(Rejection::new(
            RejectionCode::ReasonTooLong,
            format!(
                "reason of {} bytes; at most {REASON_BYTES_MAX}",
                reason.len()
            ),
        ));
    }
    let event = Event::FlagDecided {
        flag: flag.to_string(),
        region: region.to_string(),
        decision,
        reason: reason.to_string(),
        by: by.to_string(),
        date,
    };
    Ok(Decision {
        events: vec![(Stream::Supervision(region.to_string()), event)],
        outcome: Outcome::FlagDecided {
            flag: flag.to_string(),
            region: region.to_string(),
            decision,
        },
    })
}

/// A flag id as monitoring derives it: `F` and sixteen lower-case hexadecimal digits.
pub fn check_flag_id(flag: &str) -> Result<(), Rejection> {
    let well_formed = flag.len() == 17
        && flag.starts_with('F')
        && flag[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(Rejection::new(
            RejectionCode::MalformedId,
            format!(
                "flag id '{}' must be F and 16 hexadecimal digits, as monitor run prints it",
                flag.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// Whether a recorded decision is one [`decide_flag`] would have made (an imported log's).
pub fn recheck(
    flag: &str,
    region: &str,
    decision: FlagDecision,
    reason: &str,
    by: &str,
    date: Day,
) -> Result<(), Rejection> {
    decide_flag(flag, region, decision, reason, by, date).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> Day {
        Day::from_ymd(2024, 6, 3).unwrap()
    }

    #[test]
    fn a_decision_goes_to_the_regions_supervision_stream() {
        let decided = decide_flag(
            "F0123456789abcdef",
            "500000",
            FlagDecision::Dismissed,
            "a loyalty scheme",
            "auditor-7",
            day(),
        )
        .unwrap();
        assert_eq!(decided.events.len(), 1);
        assert_eq!(decided.events[0].0.name(), "supervision/500000");
        let event = &decided.events[0].1;
        assert_eq!(event.kind(), "flag_decided");
        // The tag it is encoded with names the same kind, and it decodes back.
        let bytes = event.encode();
        assert_eq!(Event::peek_kind(&bytes), Some("flag_decided"));
        assert_eq!(&Event::decode(&bytes).unwrap(), event);
    }

    #[test]
    fn a_malformed_flag_id_an_empty_reason_and_a_long_one_are_refused() {
        let decide = |flag: &str, reason: &str| {
            decide_flag(flag, "500000", FlagDecision::Confirmed, reason, "a", day())
                .map_err(|r| r.code)
        };
        for flag in [
            "F0123",
            "f0123456789abcdef",
            "F0123456789ABCDEF",
            "X0123456789abcdef",
        ] {
            assert_eq!(
                decide(flag, "why").unwrap_err(),
                RejectionCode::MalformedId,
                "{flag}"
            );
        }
        for reason in [" ", "two\nlines", "\u{1b}[2Jcleared"] {
            assert_eq!(
                decide("F0123456789abcdef", reason).unwrap_err(),
                RejectionCode::InvalidValue
            );
        }
        let long = "x".repeat(REASON_BYTES_MAX + 1);
        assert_eq!(
            decide("F0123456789abcdef", &long).unwrap_err(),
            RejectionCode::ReasonTooLong
        );
    }
}
