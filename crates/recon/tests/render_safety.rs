//! What the renderers make safe, for any text: nothing a terminal acts on survives
//! `terminal_safe`; `terminal_safe_json` keeps the JSON value; no CSV cell a spreadsheet would
//! run survives `spreadsheet_safe`, and amounts stay as they are.

use gongji_domain::Money;
use gongji_recon::render::{spreadsheet_safe, terminal_safe, terminal_safe_json};
use proptest::prelude::*;

/// Text rich in what attacks a terminal or a spreadsheet: escapes, C1, bidi, formula leads.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\u{1b}[31m".to_string()),
        Just("\u{1b}]0;title\u{7}".to_string()),
        Just("\u{9b}2J".to_string()),
        Just("\u{202e}".to_string()),
        Just("\u{7f}".to_string()),
        Just("=".to_string()),
        Just("+".to_string()),
        Just("-".to_string()),
        Just("@".to_string()),
        Just("\t".to_string()),
        Just("\r".to_string()),
        Just("\n".to_string()),
        "[a-z0-9. ,\"]{0,4}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

fn acts_on_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

proptest! {
    #[test]
    fn terminal_safe_text_holds_nothing_a_terminal_acts_on(text in hostile_text()) {
        let safe = terminal_safe(&text);
        prop_assert!(!safe.chars().any(|c| c != '\n' && acts_on_terminal(c)), "{safe:?}");
        prop_assert_eq!(safe.lines().count(), text.lines().count());
    }

    #[test]
    fn terminal_safe_json_is_the_same_value(text in hostile_text()) {
        let json = serde_json::to_string(&serde_json::json!({ "field": text })).unwrap();
        let safe = terminal_safe_json(&json);
        prop_assert!(!safe.chars().any(acts_on_terminal), "{safe:?}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        prop_assert_eq!(back["field"].as_str(), Some(text.as_str()));
    }

    #[test]
    fn no_cell_a_spreadsheet_would_run_survives(text in hostile_text()) {
        let cell = spreadsheet_safe(&text);
        let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
        prop_assert!(!formula || cell.parse::<Money>().is_ok(), "{cell:?}");
        prop_assert!(cell == text || cell.strip_prefix('\'') == Some(text.as_str()));
    }

    #[test]
    fn amounts_stay_numbers(fen in -100_000_000_000_000i64..=100_000_000_000_000) {
        let amount = Money::from_fen(fen).to_string();
        prop_assert_eq!(spreadsheet_safe(&amount), amount.as_str());
    }
}
