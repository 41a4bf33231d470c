//! `policy check`'s answer as a clerk reads it: the version, then each list of rules (credits,
//! deductibles with their yearly cap, ratios with their bands, annual limits, the pooled fund's
//! annual maximum), one row a rule: its path in the file, its conditions in words, its figures;
//! then the findings. Conditions and figures come from the answer's JSON, so the text says
//! what `--json` says.

use gongji_recon::words::{self, code, Lang, CREDIT_SOURCE, INSTITUTION_KIND, SCHEME, STATUS};
use serde_json::Value;

use super::{plain, Style};

/// A rule's figures in words.
type Figures = fn(&Value, &Style) -> String;

/// The whole answer as text.
pub fn policy_table(answer: &Value, style: &Style) -> String {
    let mut lines = vec![heading(answer, style), String::new()];
    let sections: [(&str, &str, &str, Figures); 4] = [
        ("credits", "个人账户划入", "credits", credit),
        ("deductibles", "起付线", "deductibles", deductible),
        ("ratios", "支付比例", "ratios", ratio),
        ("limits", "年度限额", "annual limits", limit),
    ];
    for (key, zh, en, figures) in sections {
        let mut title = style.pick(zh, en).to_string();
        if key == "deductibles" {
            let cap = match &answer["deductible_cap"] {
                Value::Null => style.pick("不设年度封顶", "no yearly cap").to_string(),
                cap => format!(
                    "{} {}",
                    style.pick("年度封顶", "yearly cap"),
                    style.money(cap)
                ),
            };
            title = bracketed(&title, &cap, style);
        }
        lines.push(title);
        lines.extend(rows(&answer[key], style, figures));
        lines.push(String::new());
    }
    let annual_max = match &answer["annual_max"] {
        Value::Null => style.pick("不设", "none").to_string(),
        max => style.money(max),
    };
    lines.extend(words::aligned(&[(
        style
            .pick(
                "统筹基金年度最高支付限额",
                "the pooled fund's annual maximum",
            )
            .to_string(),
        annual_max,
    )]));
    lines.push(String::new());
    lines.extend(findings(&answer["findings"], style));
    lines.join("\n")
}

fn heading(answer: &Value, style: &Style) -> String {
    let (version, region) = (plain(&answer["version"]), plain(&answer["region"]));
    let (effective, year_start) = (plain(&answer["effective"]), plain(&answer["year_start"]));
    match style.lang {
        Lang::Zh => format!(
            "政策版本 {version}：统筹地区 {region}，{effective} 起执行，医保年度自 {year_start} 起"
        ),
        Lang::En => format!(
            "policy version {version}: region {region}, in force from {effective}, insurance \
             year from {year_start}"
        ),
    }
}

/// `title（said）`, `title (said)` in English.
fn bracketed(title: &str, said: &str, style: &Style) -> String {
    match style.lang {
        Lang::Zh => format!("{title}（{said}）"),
        Lang::En => format!("{title} ({said})"),
    }
}

/// One row a rule: path, conditions, figures, the conditions padded to one width.
fn rows(rules: &Value, style: &Style, figures: Figures) -> Vec<String> {
    let rules = rules.as_array().map(Vec::as_slice).unwrap_or_default();
    if rules.is_empty() {
        return vec![format!("  {}", style.pick("（无规则）", "(no rules)"))];
    }
    let said: Vec<(String, String, String)> = rules
        .iter()
        .map(|rule| {
            (
                plain(&rule["rule"]),
                conditions(&rule["when"], style),
                figures(rule, style),
            )
        })
        .collect();
    let path_width = said.iter().map(|r| words::width(&r.0)).max().unwrap_or(0);
    let when_width = said.iter().map(|r| words::width(&r.1)).max().unwrap_or(0);
    said.iter()
        .map(|(path, when, figures)| {
            let row = format!(
                "  {}  {}  {figures}",
                words::pad(path, path_width),
                words::pad(when, when_width)
            );
            row.trim_end().to_string()
        })
        .collect()
}

/// A rule's conditions in words; `所有情形` / `always` when it has none.
fn conditions(when: &Value, style: &Style) -> String {
    let lang = style.lang;
    let names = |key: &str, vocabulary| {
        let listed = when[key].as_array().map(Vec::as_slice).unwrap_or_default();
        let said: Vec<String> = listed
            .iter()
            .map(|v| code(vocabulary, v.as_str().unwrap_or_default(), lang))
            .collect();
        said.join(style.pick("、", " or "))
    };
    let mut said = Vec::new();
    if when["statuses"].is_array() {
        said.push(names("statuses", STATUS));
    }
    if when["schemes"].is_array() {
        said.push(names("schemes", SCHEME));
    }
    if let Some(levels) = when["levels"].as_array() {
        let levels: Vec<String> = levels.iter().map(plain).collect();
        said.push(match lang {
            Lang::Zh => format!("{} 级", levels.join("、")),
            Lang::En => format!("level {}", levels.join(" or ")),
        });
    }
    if when["institution_kinds"].is_array() {
        said.push(names("institution_kinds", INSTITUTION_KIND));
    }
    if let Some(ages) = ages(&when["age_min"], &when["age_max"], lang) {
        said.push(ages);
    }
    if let Some(inside) = when["in_lump_sum_period"].as_bool() {
        said.push(match (inside, lang) {
            (true, Lang::Zh) => "趸缴期内".into(),
            (false, Lang::Zh) => "趸缴期满后".into(),
            (true, Lang::En) => "inside the lump-sum period".into(),
            (false, Lang::En) => "after the lump-sum period".into(),
        });
    }
    if said.is_empty() {
        return style.pick("所有情形", "always").into();
    }
    said.join(style.pick("；", "; "))
}

fn ages(min: &Value, max: &Value, lang: Lang) -> Option<String> {
    Some(match (min.as_i64(), max.as_i64(), lang) {
        (None, None, _) => return None,
        (Some(min), None, Lang::Zh) => format!("{min} 岁及以上"),
        (Some(min), None, Lang::En) => format!("age {min} and over"),
        (None, Some(max), Lang::Zh) => format!("{max} 岁及以下"),
        (None, Some(max), Lang::En) => format!("age {max} and under"),
        (Some(min), Some(max), Lang::Zh) => format!("{min}–{max} 岁"),
        (Some(min), Some(max), Lang::En) => format!("ages {min}–{max}"),
    })
}

/// How much, and who pays it: `每月 100.00 元（统筹基金 (pooled_fund)）`.
fn credit(rule: &Value, style: &Style) -> String {
    let paid_by = code(CREDIT_SOURCE, &plain(&rule["paid_by"]), style.lang);
    let lump_sum = rule["paid_by"] == "lump_sum";
    let amount = match (&rule["share_of_base"], &rule["fixed"], style.lang) {
        (Value::String(share), _, Lang::Zh) if lump_sum => format!("趸缴基数的 {}", percent(share)),
        (Value::String(share), _, Lang::Zh) => format!("缴费基数的 {}", percent(share)),
        (Value::String(share), _, Lang::En) if lump_sum => {
            format!("{} of the lump-sum base", percent(share))
        }
        (Value::String(share), _, Lang::En) => {
            format!("{} of the contribution base", percent(share))
        }
        (_, fixed, Lang::Zh) => format!("每月 {}", style.money(fixed)),
        (_, fixed, Lang::En) => format!("{} a month", style.money(fixed)),
    };
    match style.lang {
        Lang::Zh => format!("{amount}（{paid_by}）"),
        Lang::En => format!("{amount} (paid by {paid_by})"),
    }
}

/// The deductible and its group: `100.00 元（分组 level-1）`.
fn deductible(rule: &Value, style: &Style) -> String {
    let group = format!("{} {}", style.pick("分组", "group"), plain(&rule["group"]));
    bracketed(&style.money(&rule["amount"]), &group, style)
}

/// A flat ratio (`60%`), or each band on the year's cumulative cost: `10,000.00 元以内 70%；
/// 10,000.00 元以上 50%`.
fn ratio(rule: &Value, style: &Style) -> String {
    let bands = rule["bands"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if let [only] = bands {
        return percent(&plain(&only["ratio"]));
    }
    let mut from: Option<String> = None;
    let mut said = Vec::new();
    for band in bands {
        let ratio = percent(&plain(&band["ratio"]));
        let to = band["up_to"].as_str().map(|_| style.money(&band["up_to"]));
        said.push(match (&from, &to, style.lang) {
            (None, Some(to), Lang::Zh) => format!("{to}以内 {ratio}"),
            (None, Some(to), Lang::En) => format!("{ratio} up to {to}"),
            (Some(from), Some(to), Lang::Zh) => format!("{from}至{to} {ratio}"),
            (Some(from), Some(to), Lang::En) => format!("{ratio} from {from} to {to}"),
            (Some(from), None, Lang::Zh) => format!("{from}以上 {ratio}"),
            (Some(from), None, Lang::En) => format!("{ratio} above {from}"),
            (None, None, _) => ratio,
        });
        from = to;
    }
    let said = said.join(style.pick("；", "; "));
    match style.lang {
        Lang::Zh => format!("{said}（按年度累计费用）"),
        Lang::En => format!("{said} (of the year's cumulative cost)"),
    }
}

fn limit(rule: &Value, style: &Style) -> String {
    match &rule["amount"] {
        Value::Null => style.pick("不设限额", "no limit").into(),
        amount => style.money(amount),
    }
}

/// The findings, one a line, or that there are none.
fn findings(findings: &Value, style: &Style) -> Vec<String> {
    let findings = findings.as_array().map(Vec::as_slice).unwrap_or_default();
    if findings.is_empty() {
        return vec![style
            .pick("检查结果：未发现问题", "findings: none")
            .to_string()];
    }
    let mut lines = vec![match style.lang {
        Lang::Zh => format!("检查结果：{} 项问题", findings.len()),
        Lang::En => format!("findings: {}", findings.len()),
    }];
    for finding in findings {
        lines.push(format!(
            "  {}: {}",
            plain(&finding["path"]),
            plain(&finding["message"])
        ));
    }
    lines
}

/// A rate (`0.085`) as a percentage (`8.5%`), its digits moved, never rounded.
fn percent(rate: &str) -> String {
    let (whole, fraction) = rate.split_once('.').unwrap_or((rate, ""));
    let fraction = format!("{fraction:0<2}");
    let (moved, rest) = fraction.split_at(2);
    let whole = format!("{whole}{moved}");
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    match rest.trim_end_matches('0') {
        "" => format!("{whole}%"),
        rest => format!("{whole}.{rest}%"),
    }
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn a_rate_is_shown_as_a_percentage_exactly() {
        assert_eq!(percent("0.6"), "60%");
        assert_eq!(percent("0.085"), "8.5%");
        assert_eq!(percent("1"), "100%");
        assert_eq!(percent("0"), "0%");
        assert_eq!(percent("0.123456"), "12.3456%");
        assert_eq!(percent("0.05"), "5%");
    }
}
