//! Fund supervision (智能监控): an auditor's decision on a monitoring flag, recorded on the
//! region's supervision stream. Flags are found by `gongji-monitor` over the log, never stored:
//! the decision names the flag by its id, which the caller has looked up.

use super::guards::check_id;
use super::{Decision, Outcome};
use crate::event::{Event, Stream};
use crate::state::State;
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

/// The longest monitoring rules file a version may hold, in bytes.
pub const RULES_BYTES_MAX: usize = 64 * 1024;

pub(super) fn load_monitor_rules(
    state: &State,
    region: &str,
    version: &str,
    effective: Day,
    rules: &str,
    by: &str,
    date: Day,
) -> Result<Decision, Rejection> {
    check_rules(region, version, effective, rules, by)?;
    if state.policies.get(region).is_none_or(Vec::is_empty) {
        return Err(Rejection::new(
            RejectionCode::NoPolicyInForce,
            format!(
                "region {region} has no policy loaded: monitoring rules for it would watch nothing"
            ),
        ));
    }
    let event = Event::MonitorRulesLoaded {
        region: region.to_string(),
        rules_version: version.to_string(),
        effective,
        rules: rules.to_string(),
        by: by.to_string(),
        date,
    };
    Ok(Decision {
        events: vec![(Stream::Supervision(region.to_string()), event)],
        outcome: Outcome::MonitorRulesLoaded {
            region: region.to_string(),
            version: version.to_string(),
        },
    })
}

/// The form of a rules version: its ids, who loaded it, and the rules a JSON object of at most
/// [`RULES_BYTES_MAX`] bytes naming the same region, version and effective day (what they hold
/// besides is `gongji-monitor`'s to read).
fn check_rules(
    region: &str,
    version: &str,
    effective: Day,
    rules: &str,
    by: &str,
) -> Result<(), Rejection> {
    check_id("region", region)?;
    check_id("version", version)?;
    check_id("loaded by", by)?;
    if rules.len() > RULES_BYTES_MAX {
        return Err(Rejection::new(
            RejectionCode::TooLarge,
            format!(
                "monitoring rules {version} of {} bytes; at most {RULES_BYTES_MAX}",
                rules.len()
            ),
        ));
    }
    let invalid = |what: String| {
        Rejection::new(
            RejectionCode::InvalidValue,
            format!("monitoring rules {version}: {what}"),
        )
    };
    let value: serde_json::Value =
        serde_json::from_str(rules).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    let effective_text = effective.to_string();
    for (name, expected) in [
        ("region", region),
        ("version", version),
        ("effective", effective_text.as_str()),
    ] {
        if field(name) != Some(expected) {
            return Err(invalid(format!("the rules' {name} is not {expected}")));
        }
    }
    Ok(())
}

/// Whether a recorded rules version is one [`load_monitor_rules`] would have made, as far as
/// its own fields say (an imported log's).
pub fn recheck_rules(
    region: &str,
    version: &str,
    effective: Day,
    rules: &str,
    by: &str,
    _date: Day,
) -> Result<(), Rejection> {
    check_rules(region, version, effective, rules, by)
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

    #[test]
    fn rules_are_loaded_only_for_a_region_with_a_policy_and_only_as_they_name_themselves() {
        let rules = r#"{"version":"500000-1","region":"500000","effective":"2024-01-01"}"#;
        let effective = Day::from_ymd(2024, 1, 1).unwrap();
        let load = |state: &State, region: &str, rules: &str| {
            load_monitor_rules(state, region, "500000-1", effective, rules, "a", day())
                .map_err(|r| r.code)
        };
        let empty = State::default();
        assert_eq!(
            load(&empty, "500000", rules).unwrap_err(),
            RejectionCode::NoPolicyInForce
        );
        let mut state = State::default();
        let line = format!(
            r#"{{"cmd":"load_policy","policy":{}}}"#,
            include_str!("../../../../policies/500000-2024-01-01.json")
        );
        let Ok(crate::Command::LoadPolicy { policy }) = crate::parse_command(&line) else {
            panic!("the shipped policy reads");
        };
        state.policies.insert("500000".into(), vec![*policy]);
        let loaded =
            load_monitor_rules(&state, "500000", "500000-1", effective, rules, "a", day()).unwrap();
        assert_eq!(loaded.events[0].0.name(), "supervision/500000");
        let bytes = loaded.events[0].1.encode();
        assert_eq!(Event::peek_kind(&bytes), Some("monitor_rules_loaded"));
        assert_eq!(Event::decode(&bytes).unwrap(), loaded.events[0].1);
        for wrong in [
            "not json",
            r#"{"version":"500000-2","region":"500000","effective":"2024-01-01"}"#,
            r#"{"version":"500000-1","region":"110000","effective":"2024-01-01"}"#,
            r#"{"version":"500000-1","region":"500000","effective":"2024-02-01"}"#,
        ] {
            assert_eq!(
                load(&state, "500000", wrong).unwrap_err(),
                RejectionCode::InvalidValue,
                "{wrong}"
            );
        }
        let long = format!("{}{}", rules, " ".repeat(RULES_BYTES_MAX));
        assert_eq!(
            load(&state, "500000", &long).unwrap_err(),
            RejectionCode::TooLarge
        );
    }
}
