//! The answers whose text is more than labelled lines: history as a table, a claim's
//! explanation, the audit reports (replay, verify, archive check). Each takes the answer's
//! JSON value and a [`Style`].

use gongji_recon::words::{self, code, Lang, EVENT};
use serde_json::{json, Value};

use super::labels::{EVENT_FIELDS, FIGURES};
use super::{inline, plain, Style};

/// Rows under a header, columns padded to their widest cell ([`words::width`]); the last column
/// unpadded; columns marked in `right` aligned to the right.
pub(crate) fn columns(header: &[String], rows: &[Vec<String>], right: &[usize]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| words::width(h)).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(words::width(cell));
        }
    }
    let line = |row: &[String]| {
        let last = row.len().saturating_sub(1);
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| match i {
                i if right.contains(&i) => {
                    let room = widths[i].saturating_sub(words::width(cell));
                    format!("{}{cell}", " ".repeat(room))
                }
                i if i == last => cell.clone(),
                i => words::pad(cell, widths[i]),
            })
            .collect();
        cells.join("  ").trim_end().to_string()
    };
    std::iter::once(line(header))
        .chain(rows.iter().map(|row| line(row)))
        .collect()
}

/// History entries as aligned rows under a header: position, own date, recorded time (in the
/// ledger's zone), event kind (named, with its code), the claim or payment id (`-` when the
/// event has none), then its other fields labelled.
pub fn history_table(entries: &[Value], style: &Style) -> Vec<String> {
    let header: Vec<String> = match style.lang {
        Lang::Zh => ["位置", "发生日期", "记录时间", "事件", "单号", "详情"],
        Lang::En => ["position", "date", "recorded at", "event", "id", "details"],
    }
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = entries.iter().map(|e| history_row(e, style)).collect();
    columns(&header, &rows, &[])
}

/// A member's timeline: the balance, then one row per record: position, own date, recorded
/// time, event kind, id (as `history`), what it changed in the account and the balance after.
pub fn timeline_table(value: &Value, style: &Style) -> Vec<String> {
    let header: Vec<String> = match style.lang {
        Lang::Zh => [
            "位置",
            "发生日期",
            "记录时间",
            "事件",
            "单号",
            "账户变动",
            "变动后余额",
        ],
        Lang::En => [
            "position",
            "date",
            "recorded at",
            "event",
            "id",
            "change",
            "balance after",
        ],
    }
    .map(String::from)
    .to_vec();
    let empty = Vec::new();
    let entries = value["entries"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let mut row = history_row(&e["entry"], style);
            row.truncate(5);
            row.push(style.money(&e["change"]));
            row.push(style.money(&e["balance_after"]));
            row
        })
        .collect();
    let balance = match style.lang {
        Lang::Zh => "个人账户余额",
        Lang::En => "account balance",
    };
    let mut lines = vec![format!(
        "{} {balance} {}",
        plain(&value["member"]),
        style.money(&value["balance"])
    )];
    lines.extend(columns(&header, &rows, &[5, 6]));
    lines
}

/// One history entry's columns and the rest of its fields.
fn history_row(value: &Value, style: &Style) -> Vec<String> {
    let mut value = value.clone();
    let id = [
        &value["id"],
        &value["claim"],
        &value["settlement"]["claim"],
        &value["settlement"]["id"],
    ]
    .into_iter()
    .find_map(Value::as_str)
    .unwrap_or("-")
    .to_string();
    let kind = code(EVENT, value["event"].as_str().unwrap_or("-"), style.lang);
    let mut row = vec![
        format!("#{}", value["position"]),
        plain(&value["own_date"]),
        style.time(&value["recorded_at"]),
        kind,
        id,
    ];
    if let Value::Object(map) = &mut value {
        for shown in [
            "version",
            "event_id",
            "recorded_at_micros",
            "recorded_at",
            "own_date",
            "position",
            "event",
            "date",
            "id",
        ] {
            map.remove(shown);
        }
        // A settlement's basis is for `explain`; the history line keeps the outcome.
        if let Some(Value::Object(settlement)) = map.get_mut("settlement") {
            settlement.remove("basis");
        }
    }
    row.push(inline(&value, EVENT_FIELDS, style));
    row
}

/// A claim's explanation: header, reversal, steps, positions before and after, events.
pub fn explanation(value: &Value, style: &Style) -> String {
    let (claim, member, region) = (
        plain(&value["id"]),
        plain(&value["member"]),
        plain(&value["region"]),
    );
    let (date, year, policy) = (
        plain(&value["date"]),
        plain(&value["year"]),
        plain(&value["policy"]),
    );
    let mut lines = vec![match style.lang {
        Lang::Zh => format!("结算单 {claim}：参保人 {member}，统筹地区 {region}，就诊日期 {date}（医保年度 {year}），政策版本 {policy}"),
        Lang::En => format!("claim {claim} of member {member} in region {region}, {date} (insurance year {year}), policy {policy}"),
    }];
    if let Some(reversal) = value.get("reversed").filter(|r| !r.is_null()) {
        let (date, reason) = (plain(&reversal["date"]), plain(&reversal["reason"]));
        let (event, position) = (plain(&reversal["event_id"]), plain(&reversal["position"]));
        let recorded = style.time(&reversal["recorded_at"]);
        lines.push(match style.lang {
            Lang::Zh => format!("  已冲销：{date}（{reason}），事件 {event}，日志位置 {position}，记录时间 {recorded}"),
            Lang::En => format!("  REVERSED on {date} ({reason}): event {event} at position {position}, recorded {recorded}"),
        });
    }
    // Told from the settlement's figures in the language chosen; the ledger's own sentences
    // if a figure is missing.
    let steps = super::steps::steps(&value["settlement"], style).unwrap_or_else(|| {
        let ledgers = value["steps"].as_array().into_iter().flatten();
        ledgers.map(plain).collect()
    });
    for (i, step) in steps.iter().enumerate() {
        lines.push(format!("  {}. {step}", i + 1));
    }
    let rules = &value["rules"];
    if rules.is_object() {
        let (deductible, ratio, limit) = (
            plain(&rules["deductible"]),
            plain(&rules["ratio"]),
            plain(&rules["limit"]),
        );
        lines.push(match style.lang {
            Lang::Zh => {
                format!("  适用规则：起付线 {deductible}，支付比例 {ratio}，年度限额 {limit}")
            }
            Lang::En => {
                format!("  rules applied: deductible {deductible}, ratio {ratio}, limit {limit}")
            }
        });
    }
    lines.extend(positions(value, style));
    lines.push(style.pick("  事件：", "  events:").to_string());
    let events = value["events"].as_array().map_or(&[][..], Vec::as_slice);
    for row in history_table(events, style) {
        lines.push(format!("    {row}"));
    }
    lines.join("\n")
}

/// The claim's four positions, before and after, with their limits.
fn positions(value: &Value, style: &Style) -> Vec<String> {
    let named = [
        ("起付线累计", "deductible filled", "deductible"),
        ("年度限额已用", "ordinary limit used", "ordinary_limit"),
        ("统筹基金年度累计", "pooled fund year total", "annual_max"),
        ("个人账户余额", "account balance", "account"),
    ];
    let rows: Vec<(String, String)> = named
        .iter()
        .map(|(zh, en, key)| {
            let position = &value[*key];
            let limit = match position.get("limit") {
                Some(Value::Null) => style.pick("（无限额）", " (no limit)").to_string(),
                Some(limit) => match style.lang {
                    Lang::Zh => format!("（限额 {}）", style.money(limit)),
                    Lang::En => format!(" (limit {})", style.money(limit)),
                },
                None => String::new(),
            };
            let (before, after) = (
                style.money(&position["before"]),
                style.money(&position["after"]),
            );
            (
                format!("  {}", style.pick(zh, en)),
                format!("{before} -> {after}{limit}"),
            )
        })
        .collect();
    words::aligned(&rows)
}

/// The replay report: records, digest, then a table of each region's funds.
pub fn audit_replay(value: &Value, style: &Style) -> String {
    let records = plain(&value["records"]);
    let digest = plain(&value["digest"]);
    let mut lines = vec![match style.lang {
        Lang::Zh => format!("已重放 {records} 条记录\n摘要 {digest}"),
        Lang::En => format!("replayed {records} records\ndigest {digest}"),
    }];
    let header: Vec<String> = match style.lang {
        Lang::Zh => ["统筹地区", "基金", "收入", "支出", "结余"],
        Lang::En => ["region", "", "inflow", "outflow", "balance"],
    }
    .map(String::from)
    .to_vec();
    let funds = [
        ("统筹基金", "pooled fund", "pooled"),
        ("大额医疗互助基金", "large-amount", "large_amount"),
        ("个人账户", "accounts", "accounts"),
    ];
    let mut rows = Vec::new();
    for region in value["regions"].as_array().into_iter().flatten() {
        for (zh, en, key) in funds {
            let figures = &region[key];
            let mut row = vec![plain(&region["region"]), style.pick(zh, en).to_string()];
            row.extend(FIGURES.iter().map(|f| style.money(&figures[f.key])));
            rows.push(row);
        }
    }
    lines.extend(columns(&header, &rows, &[2, 3, 4]));
    lines.join("\n")
}

/// The verification report: OK with the count and digest, or the first failure.
pub fn audit_verify(value: &Value, style: &Style) -> String {
    let failure = &value["failure"];
    if failure.is_null() {
        let (records, digest) = (plain(&value["records"]), plain(&value["digest"]));
        return match style.lang {
            Lang::Zh => format!("通过：{records} 条记录；校验和、哈希链、不变量与投影均已核验；摘要 {digest}"),
            Lang::En => format!("OK: {records} records; checksums, hash chain, invariants and projections verified; digest {digest}"),
        };
    }
    let (check, message) = (plain(&failure["check"]), plain(&failure["message"]));
    match (style.lang, &failure["position"]) {
        (Lang::Zh, Value::Null) => format!("未通过（{check} 检查）：{message}"),
        (Lang::Zh, position) => format!("未通过（{check} 检查），第 {position} 条记录：{message}"),
        (Lang::En, Value::Null) => format!("FAILED ({check} check): {message}"),
        (Lang::En, position) => format!("FAILED ({check} check) at record {position}: {message}"),
    }
}

/// An archive check: OK with what it holds (and the replay's digest and totals), or where it
/// fails.
pub fn archive_check(value: &Value, style: &Style) -> String {
    let failure = &value["failure"];
    if !failure.is_null() {
        let (line, message) = (plain(&failure["line"]), plain(&failure["message"]));
        return match (style.lang, &failure["position"]) {
            (Lang::Zh, Value::Null) => format!("未通过：第 {line} 行：{message}"),
            (Lang::Zh, position) => {
                format!("未通过：第 {line} 行（日志位置 {position}）：{message}")
            }
            (Lang::En, Value::Null) => format!("FAILED at line {line}: {message}"),
            (Lang::En, position) => {
                format!("FAILED at line {line} (record at position {position}): {message}")
            }
        };
    }
    let manifest = &value["manifest"];
    let (records, policies) = (plain(&manifest["records"]), plain(&manifest["policies"]));
    let (chain, last) = (plain(&manifest["chain"]), plain(&manifest["last_hash"]));
    let mut text = match style.lang {
        Lang::Zh => format!(
            "通过：{records} 条记录，{policies} 个政策版本，哈希链 {chain}，末条哈希 {last}"
        ),
        Lang::En => format!(
            "OK: {records} records, {policies} policy versions, chain {chain}, last hash {last}"
        ),
    };
    if let Value::String(digest) = &value["digest"] {
        text.push_str(&match style.lang {
            Lang::Zh => format!("\n重放所得摘要 {digest}\n"),
            Lang::En => format!("\nreplayed to digest {digest}\n"),
        });
        let replay =
            json!({"records": manifest["records"], "digest": digest, "regions": value["regions"]});
        text.push_str(&audit_replay(&replay, style));
    } else {
        text.push_str(style.pick(
            "\n部分档案（已筛选）：已核验完整性；重放需要完整档案",
            "\npartial archive (filtered): integrity checked; a replay needs a complete archive",
        ));
    }
    text
}
