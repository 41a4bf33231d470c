//! A refused line says which field was wrong, with which value, and what the field allows, in
//! plain words (issue 14, item 7).

use gongji_domain::{parse_command, Rejection};

const CLAIM_LINE: &str = r#"{"cmd":"claim","id":"c1","member":"a","date":"2024-03-01","level":2,"channel":"institution","eligible":"2800.00"}"#;
const ENROLL_LINE: &str = r#"{"cmd":"enroll","member":"a","region":"r","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01"}"#;

/// Parser terms a clerk cannot act on.
const JARGON: &[&str] = &[
    "expected u8",
    "expected ident",
    "line 1 column",
    "invalid type",
    "unknown variant",
    "`",
];

fn refused(line: &str) -> Rejection {
    let rejection = parse_command(line).expect_err("the line is refused");
    for word in JARGON {
        assert!(
            !rejection.message.contains(word),
            "{rejection} speaks parser ({word})"
        );
    }
    rejection
}

fn assert_names(rejection: &Rejection, words: &[&str]) {
    for word in words {
        assert!(rejection.message.contains(word), "{rejection} lacks {word}");
    }
}

#[test]
fn missing_eligible_is_missing_field_naming_eligible_and_claim() {
    let rejection = refused(&CLAIM_LINE.replace(r#","eligible":"2800.00""#, ""));
    assert_eq!(rejection.code, "missing_field");
    assert_names(&rejection, &["eligible", "claim"]);
}

#[test]
fn unknown_channel_is_invalid_value_naming_channel_value_and_allowed_values() {
    let rejection = refused(&CLAIM_LINE.replace("institution", "hospital"));
    assert_eq!(rejection.code, "invalid_value");
    assert_names(
        &rejection,
        &["channel", "hospital", "institution", "pharmacy", "manual"],
    );
}

#[test]
fn misspelt_status_is_invalid_value_naming_status_value_and_allowed_values() {
    let rejection = refused(&ENROLL_LINE.replace("active", "retird"));
    assert_eq!(rejection.code, "invalid_value");
    assert_names(&rejection, &["status", "retird", "active", "retired"]);
}

#[test]
fn unknown_scheme_purpose_and_relation_are_invalid_values() {
    let rejection = refused(&ENROLL_LINE.replace("employer", "company"));
    assert_eq!(rejection.code, "invalid_value");
    assert_names(
        &rejection,
        &["scheme", "company", "individual_tier1", "lump_sum"],
    );
    let pay = r#"{"cmd":"account_pay","id":"p","holder":"a","date":"2024-01-01","purpose":"gym","amount":"1.00"}"#;
    let rejection = refused(pay);
    assert_eq!(rejection.code, "invalid_value");
    assert_names(&rejection, &["purpose", "gym", "pharmacy", "fitness"]);
    let bind = r#"{"cmd":"bind_family","holder":"a","relative":"b","relation":"cousin","date":"2024-01-01"}"#;
    let rejection = refused(bind);
    assert_eq!(rejection.code, "invalid_value");
    assert_names(&rejection, &["relation", "cousin", "spouse", "grandchild"]);
}

#[test]
fn impossible_date_names_the_field_and_the_value() {
    let rejection = refused(&CLAIM_LINE.replace("2024-03-01", "2024-02-30"));
    assert_eq!(rejection.code, "malformed_date");
    assert_names(&rejection, &["date", "claim", "2024-02-30", "2024-03-31"]);
    let rejection = refused(&ENROLL_LINE.replace("1980-01-01", "1980/01/01"));
    assert_eq!(rejection.code, "malformed_date");
    assert_names(&rejection, &["born", "enroll", "1980/01/01"]);
}

#[test]
fn bad_amount_names_the_field_and_the_value() {
    let rejection = refused(&CLAIM_LINE.replace(r#""2800.00""#, "2800"));
    assert_eq!(rejection.code, "malformed_amount");
    assert_names(&rejection, &["eligible", "claim", "2800", "\"2800.00\""]);
}

#[test]
fn level_out_of_range_names_the_level_and_the_allowed_levels() {
    for level in ["300", "-1", "\"2\"", "2.5"] {
        let rejection =
            refused(&CLAIM_LINE.replace(r#""level":2"#, &format!(r#""level":{level}"#)));
        assert_eq!(rejection.code, "invalid_level", "{level}");
        assert_names(&rejection, &["level", level, "1, 2 or 3"]);
    }
}

#[test]
fn a_number_where_text_goes_is_invalid_value() {
    let rejection = refused(&CLAIM_LINE.replace(r#""member":"a""#, r#""member":12"#));
    assert_eq!(rejection.code, "invalid_value");
    assert_names(&rejection, &["member", "12", "string"]);
    let rejection = refused(&CLAIM_LINE.replace(r#""level":2"#, r#""level":2,"use_account":"no""#));
    assert_eq!(rejection.code, "invalid_value");
    assert_names(&rejection, &["use_account", "\"no\"", "true or false"]);
}

#[test]
fn bad_heirs_name_the_heir_and_the_field() {
    let inherit = |heirs: &str| {
        format!(r#"{{"cmd":"inherit","member":"a","date":"2024-06-01","heirs":{heirs}}}"#)
    };
    let rejection = refused(&inherit(r#"[{"name":"w"}]"#));
    assert_eq!(rejection.code, "missing_field");
    assert_names(&rejection, &["heir 1", "share"]);
    let rejection = refused(&inherit(r#"[{"name":"w","share":"2"}]"#));
    assert_eq!(rejection.code, "invalid_value");
    assert_names(&rejection, &["share", "heir 1", "'2'"]);
}

#[test]
fn text_that_is_not_json_is_malformed_json_with_a_position_in_plain_words() {
    for line in ["{not json", "n", r#"{"cmd":"claim","#] {
        let rejection = refused(line);
        assert_eq!(rejection.code, "malformed_json", "{line}");
        assert_names(&rejection, &["not JSON", "at character"]);
    }
}

#[test]
fn unknown_cmd_is_still_unknown_command_with_the_list() {
    let rejection = refused(r#"{"cmd":"withdraw","member":"a"}"#);
    assert_eq!(rejection.code, "unknown_command");
    assert_names(
        &rejection,
        &["withdraw", "claim", "transfer", "load_policy"],
    );
}

#[test]
fn unknown_field_names_the_field_and_the_fields_allowed() {
    let rejection = refused(&CLAIM_LINE.replace(r#""level":2"#, r#""level":2,"colour":"red""#));
    assert_eq!(rejection.code, "unknown_field");
    assert_names(&rejection, &["colour", "claim", "eligible", "use_account"]);
}

/// Parse speed of valid lines, the serde pass alone against `parse_command`: run with
/// `GONGJI_PARSE_LINES=/tmp/y.jsonl cargo test --release -p gongji-domain --test command_errors
/// -- --ignored --nocapture` on a year from `gongji-gen`.
#[test]
#[ignore = "a timing, run by hand on a generated year"]
fn parse_speed_of_valid_lines_is_the_serde_pass() {
    use std::time::Instant;
    let path = std::env::var("GONGJI_PARSE_LINES").expect("GONGJI_PARSE_LINES names a file");
    let text = std::fs::read_to_string(path).expect("the file is readable");
    let lines: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
    let (mut serde_only, mut ours) = (0.0, 0.0);
    for _ in 0..3 {
        let start = Instant::now();
        let parsed = lines
            .iter()
            .filter(|line| serde_json::from_str::<gongji_domain::Command>(line).is_ok())
            .count();
        serde_only += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let ok = lines
            .iter()
            .filter(|line| parse_command(line).is_ok())
            .count();
        ours += start.elapsed().as_secs_f64();
        assert_eq!(parsed, ok);
    }
    println!(
        "{} lines: serde alone {serde_only:.3} s, parse_command {ours:.3} s, ratio {:.3}",
        lines.len(),
        ours / serde_only
    );
}

mod any_value {
    use super::*;
    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "[^`]{0,12}".prop_map(serde_json::Value::from),
            Just(serde_json::json!([1, "x"])),
            Just(serde_json::json!({"x": 1})),
        ]
    }

    proptest! {
        /// Whatever one field of a claim holds, a refusal names that field in plain words.
        #[test]
        fn any_refused_field_value_is_named_without_parser_terms(
            field in prop::sample::select(vec![
                "id", "member", "date", "level", "channel", "eligible", "special_paid",
                "uncovered", "use_account", "institution", "visit",
            ]),
            value in scalar(),
        ) {
            let mut line: serde_json::Value = serde_json::from_str(CLAIM_LINE).unwrap();
            line[field] = value;
            if let Err(rejection) = parse_command(&line.to_string()) {
                prop_assert!(rejection.message.contains(field), "{}", rejection);
                prop_assert!(!rejection.message.contains('`'), "{}", rejection);
                prop_assert_ne!(rejection.code, "malformed_command");
            }
        }
    }
}
