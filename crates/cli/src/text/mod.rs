//! Text for people: an answer's JSON value shown with the labels of its table ([`labels`]), in
//! the table's order, in the language chosen (`--lang`, `GONGJI_LANG`, Chinese by default);
//! amounts with their unit and grouping, codes with their names, recorded times in the ledger's
//! zone with the offset written (`2024-03-05 10:12:00 +08:00`).
//!
//! The invariant: every key of the answer is shown (a key no table names comes last, under its
//! JSON name), so text never hides what `--json` says. JSON output never passes through here.

pub mod labels;
pub mod policy_table;
pub mod reports;
mod steps;

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset};
use gongji_recon::words::{self, aligned, Lang};
use serde_json::{Map, Value};

use labels::{Kind, Table};

/// The language chosen on the command line, for everything this process prints.
static LANG: OnceLock<Lang> = OnceLock::new();

/// Chooses the language of text output for this process.
pub fn choose_lang(lang: Lang) {
    LANG.get_or_init(|| lang);
}

/// The language of text output (Chinese unless chosen otherwise).
pub fn lang() -> Lang {
    LANG.get().copied().unwrap_or_default()
}

/// How text is written: the language, and the zone recorded times are shown in.
#[derive(Clone, Copy)]
pub struct Style {
    pub lang: Lang,
    /// `None`: times are shown as recorded (UTC); for answers that hold none.
    zone: Option<FixedOffset>,
}

impl Style {
    /// The language chosen and the ledger's zone ([`crate::args::ledger_zone`]; refused when
    /// `GONGJI_TZ_OFFSET` is no offset).
    pub fn current() -> Result<Style, String> {
        Ok(Style {
            lang: lang(),
            zone: Some(crate::args::ledger_zone()?),
        })
    }

    /// The language chosen, for text that shows no recorded time.
    pub fn untimed() -> Style {
        Style {
            lang: lang(),
            zone: None,
        }
    }

    /// The text in this style's language.
    pub fn pick(&self, zh: &'static str, en: &'static str) -> &'static str {
        self.lang.pick(zh, en)
    }

    /// An amount (a decimal string, or any JSON value) with its unit and grouping.
    pub fn money(&self, value: &Value) -> String {
        match value {
            Value::String(amount) => words::money(amount, self.lang),
            other => plain(other),
        }
    }

    /// A recorded time (RFC 3339) in the ledger's zone with its offset, to the second; text
    /// that is no such time is shown as it is.
    pub fn time(&self, value: &Value) -> String {
        let (Some(zone), Some(Ok(time))) =
            (self.zone, value.as_str().map(DateTime::parse_from_rfc3339))
        else {
            return plain(value);
        };
        time.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string()
    }

    fn label(&self, label: &labels::Label) -> &'static str {
        self.pick(label.zh, label.en)
    }

    /// `, ` between the parts of one line (`，` in Chinese).
    pub fn comma(&self) -> &'static str {
        self.pick("，", ", ")
    }
}

/// A value as it is: text unquoted, `-` for nothing, anything else as JSON.
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// A scalar value of `kind`.
fn scalar(value: &Value, kind: Kind, style: &Style) -> String {
    match (kind, value) {
        (_, Value::Null) => "-".to_string(),
        (Kind::Money, value) => style.money(value),
        (Kind::Time, value) => style.time(value),
        (Kind::Code(vocabulary), Value::String(code)) => words::code(vocabulary, code, style.lang),
        (Kind::Flag, Value::Bool(yes)) => style
            .pick(
                if *yes { "是" } else { "否" },
                if *yes { "yes" } else { "no" },
            )
            .to_string(),
        (Kind::Object(table) | Kind::Flatten(table) | Kind::List(table), value) => {
            inline(value, table, style)
        }
        (_, value) => plain(value),
    }
}

/// The keys of `map` in `table`'s order, then those it does not name in the map's order, each
/// with its label and kind (a key no table names: its JSON name, shown as it is).
fn ordered<'a>(
    map: &'a Map<String, Value>,
    table: Table,
    style: &Style,
) -> Vec<(String, Kind, &'a Value)> {
    let mut fields: Vec<(String, Kind, &Value)> = table
        .iter()
        .filter_map(|label| {
            map.get(label.key)
                .map(|value| (style.label(label).to_string(), label.kind, value))
        })
        .collect();
    let unnamed = map
        .iter()
        .filter(|(key, _)| !table.iter().any(|label| label.key == key.as_str()));
    fields.extend(unnamed.map(|(key, value)| (key.clone(), Kind::Plain, value)));
    fields
}

/// An answer as `label  value` lines, values aligned: objects under their label, indented;
/// lists one item a line, numbered; an empty list says so.
pub fn block(value: &Value, table: Table, style: &Style) -> String {
    let mut rows = Vec::new();
    block_rows(value, table, style, "", &mut rows);
    aligned(&rows).join("\n")
}

fn block_rows(
    value: &Value,
    table: Table,
    style: &Style,
    indent: &str,
    rows: &mut Vec<(String, String)>,
) {
    let Value::Object(map) = value else {
        rows.push((indent.to_string(), plain(value)));
        return;
    };
    for (label, kind, value) in ordered(map, table, style) {
        let label = format!("{indent}{label}");
        match (kind, value) {
            (Kind::Object(inner) | Kind::Flatten(inner), Value::Object(_)) => {
                rows.push((label, String::new()));
                block_rows(value, inner, style, &format!("{indent}  "), rows);
            }
            (_, Value::Array(items)) if items.is_empty() => {
                rows.push((label, style.pick("无", "none").to_string()));
            }
            (kind, Value::Array(items)) => {
                let inner = match kind {
                    Kind::List(inner) => inner,
                    _ => &[],
                };
                rows.push((label, String::new()));
                for (i, item) in items.iter().enumerate() {
                    let item = format!("{indent}  {}. {}", i + 1, inline(item, inner, style));
                    rows.push((item, String::new()));
                }
            }
            (kind, value) => rows.push((label, scalar(value, kind, style))),
        }
    }
}

/// An answer on one line: `label value` pairs in the table's order (nothing is said of a key
/// whose value is null); a flattened object's pairs in its place, a list's items in brackets.
pub fn inline(value: &Value, table: Table, style: &Style) -> String {
    let Value::Object(map) = value else {
        return match value {
            Value::Array(items) => items
                .iter()
                .map(|item| format!("[{}]", inline(item, table, style)))
                .collect::<Vec<_>>()
                .join(" "),
            other => plain(other),
        };
    };
    let mut pairs = Vec::new();
    for (label, kind, value) in ordered(map, table, style) {
        match (kind, value) {
            (_, Value::Null) => {}
            (Kind::Flatten(inner), Value::Object(_)) => pairs.push(inline(value, inner, style)),
            (_, Value::Array(items)) if items.is_empty() => {
                pairs.push(format!("{label} {}", style.pick("无", "none")));
            }
            (Kind::Object(inner), value @ Value::Object(_)) => {
                let said = inline(value, inner, style);
                pairs.push(match style.lang {
                    Lang::Zh => format!("{label}（{said}）"),
                    Lang::En => format!("{label} ({said})"),
                });
            }
            (Kind::List(inner), value) => {
                pairs.push(format!("{label} {}", inline(value, inner, style)));
            }
            (kind, value) => pairs.push(format!("{label} {}", scalar(value, kind, style))),
        }
    }
    pairs.join(style.comma())
}

#[cfg(test)]
mod tests {
    use super::labels::{Label, ACCOUNT};
    use super::*;
    use serde_json::json;

    fn style(lang: Lang) -> Style {
        Style {
            lang,
            zone: FixedOffset::east_opt(8 * 3600),
        }
    }

    #[test]
    fn keys_follow_the_table_and_a_key_no_table_names_comes_last_under_its_json_name() {
        let answer = json!({"balance": "5.00", "added_later": "x", "member": "M1"});
        let said = block(&answer, ACCOUNT, &style(Lang::En));
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(
            lines,
            [
                "member           M1",
                "account balance  5.00 yuan",
                "added_later      x"
            ]
        );
    }

    #[test]
    fn times_are_shown_in_the_zone_with_the_offset_and_other_text_as_it_is() {
        let s = style(Lang::Zh);
        assert_eq!(
            s.time(&json!("2024-03-05T02:12:00.123456Z")),
            "2024-03-05 10:12:00 +08:00"
        );
        assert_eq!(s.time(&json!("yesterday")), "yesterday");
        assert_eq!(
            Style::untimed().time(&json!("2024-03-05T02:12:00Z")),
            "2024-03-05T02:12:00Z"
        );
    }

    #[test]
    fn nested_objects_lists_flags_and_nothing_are_shown_in_words() {
        const TABLE: &[Label] = &[
            Label {
                key: "loaded",
                zh: "已载入",
                en: "loaded",
                kind: Kind::Flag,
            },
            Label {
                key: "items",
                zh: "明细",
                en: "items",
                kind: Kind::List(&[]),
            },
            Label {
                key: "gone",
                zh: "无值",
                en: "gone",
                kind: Kind::Money,
            },
        ];
        let answer = json!({"gone": null, "items": [], "loaded": true});
        assert_eq!(
            block(&answer, TABLE, &style(Lang::Zh)),
            "已载入  是\n明细    无\n无值    -"
        );
        assert_eq!(
            inline(&answer, TABLE, &style(Lang::En)),
            "loaded yes, items none"
        );
    }
}
