//! A refused line, through the real `gongji apply - --json`, names the field, the value and
//! what the field allows, in plain words (issue 14, item 7).

mod support;

use serde_json::Value;
use support::TestLedger;

const ENROLL: &str = r#"{"cmd":"enroll","member":"A","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01"}"#;
const CLAIM: &str = r#"{"cmd":"claim","id":"C1","member":"A","date":"2024-03-01","level":2,"channel":"institution","eligible":"100.00"}"#;

/// Parser terms a clerk cannot act on.
const JARGON: &[&str] = &[
    "expected u8",
    "expected ident",
    "line 1 column",
    "invalid type",
    "`",
];

/// Applies `lines` after an enrolment; returns each refused line's code and message.
fn refusals(lines: &[String]) -> Vec<(String, String)> {
    let ledger = TestLedger::new();
    let mut all = vec![ENROLL.to_string()];
    all.extend_from_slice(lines);
    let (code, results) = ledger.apply(&all);
    assert_eq!(code, 1, "{results:?}");
    assert_eq!(results.len(), all.len(), "{results:?}");
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    results[1..]
        .iter()
        .map(|result: &Value| {
            assert_eq!(result["ok"], false, "{result}");
            let error = &result["error"];
            let code = error["code"].as_str().unwrap_or_default().to_string();
            let message = error["message"].as_str().unwrap_or_default().to_string();
            for word in JARGON {
                assert!(!message.contains(word), "{message} speaks parser ({word})");
            }
            (code, message)
        })
        .collect()
}

#[test]
fn apply_names_the_field_the_value_and_what_is_allowed() {
    let lines = [
        CLAIM.replace(r#","eligible":"100.00""#, ""),
        CLAIM.replace(r#""channel":"institution""#, r#""channel":"hospital""#),
        ENROLL
            .replace("active", "retird")
            .replace(r#""A""#, r#""B""#),
        CLAIM.replace("2024-03-01", "2024-02-30"),
        CLAIM.replace(r#""level":2"#, r#""level":300"#),
        "{not json".to_string(),
        r#"{"cmd":"withdraw","member":"A"}"#.to_string(),
    ];
    let expected: [(&str, &[&str]); 7] = [
        ("missing_field", &["eligible", "claim"]),
        (
            "invalid_value",
            &["channel", "hospital", "institution, pharmacy, manual"],
        ),
        ("invalid_value", &["status", "retird", "active, retired"]),
        ("malformed_date", &["date", "2024-02-30", "2024-03-31"]),
        ("invalid_level", &["level", "300", "1, 2 or 3"]),
        ("malformed_json", &["not JSON", "character 2"]),
        ("unknown_command", &["withdraw", "claim", "transfer"]),
    ];
    let refused = refusals(&lines);
    for ((code, message), (want_code, words)) in refused.iter().zip(expected) {
        assert_eq!(code, want_code, "{message}");
        for word in words {
            assert!(message.contains(word), "{code}: {message} lacks {word}");
        }
    }
}
