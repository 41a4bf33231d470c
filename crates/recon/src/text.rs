//! Reports as text for people, in the language asked ([`Lang`]): the detail report with its
//! differences, the totals report, the monthly statement. Amounts carry their unit and digit
//! grouping ([`words::money`]); the platform's column names stay beside their Chinese names, as
//! the institutions' files spell them. JSON and CSV are written elsewhere ([`crate::report`],
//! [`crate::render`]) and are untouched by the language.

use std::fmt::Write as _;

use crate::detail::{DetailReport, Difference};
use crate::statement::Statement;
use crate::totals::{TotalsReport, TotalsStatus};
use crate::words::{self, aligned, code, Lang, Vocabulary, CHANNEL};
use crate::{Amounts, FieldDifference};

/// The platform's columns (interfaces 3201 and 3202) with their Chinese names.
const COLUMN: Vocabulary = &[
    ("medfee_sumamt", "医疗费总额"),
    ("fund_pay_sumamt", "基金支付总额"),
    ("acct_pay", "个人账户支出"),
    ("cash_payamt", "个人现金支出"),
    ("psn_no", "人员编号"),
    ("mdtrt_id", "就诊ID"),
    ("fixmedins_setl_cnt", "结算笔数"),
];

/// The columns whose values are amounts.
const AMOUNT_COLUMNS: [&str; 4] = [
    "medfee_sumamt",
    "fund_pay_sumamt",
    "acct_pay",
    "cash_payamt",
];

/// A row of the file: a settlement or a refund.
fn file_row(refund: bool, lang: Lang) -> &'static str {
    match refund {
        true => lang.pick("退费", "refund"),
        false => lang.pick("结算", "settlement"),
    }
}

/// A claim of the ledger: a settlement or its reversal.
fn ledger_row(refund: bool, lang: Lang) -> &'static str {
    match refund {
        true => lang.pick("冲销", "reversal"),
        false => lang.pick("结算", "settlement"),
    }
}

/// `, ` in English, `，` in Chinese.
fn comma(lang: Lang) -> &'static str {
    lang.pick("，", ", ")
}

fn amounts_text(amounts: &Amounts, lang: Lang) -> String {
    amounts
        .named()
        .iter()
        .map(|(name, value)| {
            let name = code(COLUMN, name, lang);
            format!("{name} {}", words::money(&value.to_string(), lang))
        })
        .collect::<Vec<_>>()
        .join(comma(lang))
}

/// A column's value: an amount with its unit, anything else as it is.
fn column_value(column: &str, value: &str, lang: Lang) -> String {
    if AMOUNT_COLUMNS.contains(&column) {
        words::money(value, lang)
    } else {
        value.to_string()
    }
}

fn fields_text(fields: &[FieldDifference], lang: Lang) -> String {
    fields
        .iter()
        .map(|f| {
            let (file, ledger) = (
                column_value(f.field, &f.file, lang),
                column_value(f.field, &f.ledger, lang),
            );
            match lang {
                Lang::Zh => format!("{} 文件 {file}，账本 {ledger}", code(COLUMN, f.field, lang)),
                Lang::En => format!("{} file {file} ledger {ledger}", f.field),
            }
        })
        .collect::<Vec<_>>()
        .join(lang.pick("；", "; "))
}

/// One line describing a difference.
pub fn difference_text(difference: &Difference, lang: Lang) -> String {
    match difference {
        Difference::InFileNotInLedger {
            line,
            setl_id,
            refund,
            psn_no,
            file,
            note,
            ..
        } => {
            let (row, amounts) = (file_row(*refund, lang), amounts_text(file, lang));
            let mut text = match lang {
                Lang::Zh => format!("第 {line} 行：{row} {setl_id}（人员编号 {psn_no}）在文件中，账本中没有；文件：{amounts}"),
                Lang::En => format!("line {line}: {row} {setl_id} (psn_no {psn_no}) is in the file but not in the ledger; file: {amounts}"),
            };
            if let Some(note) = note {
                let _ = match lang {
                    Lang::Zh => write!(text, "（{note}）"),
                    Lang::En => write!(text, " ({note})"),
                };
            }
            text
        }
        Difference::InLedgerNotInFile {
            setl_id,
            refund,
            psn_no,
            date,
            ledger,
            ..
        } => {
            let (row, amounts) = (ledger_row(*refund, lang), amounts_text(ledger, lang));
            match lang {
                Lang::Zh => format!("{row} {setl_id}（人员编号 {psn_no}，{date}）在账本中，文件中没有；账本：{amounts}"),
                Lang::En => format!("{row} {setl_id} (psn_no {psn_no}, {date}) is in the ledger but not in the file; ledger: {amounts}"),
            }
        }
        Difference::FieldsDiffer {
            line,
            setl_id,
            refund,
            fields,
            ..
        } => {
            let (row, fields) = (file_row(*refund, lang), fields_text(fields, lang));
            match lang {
                Lang::Zh => format!("第 {line} 行：{row} {setl_id} 不一致：{fields}"),
                Lang::En => format!("line {line}: {row} {setl_id} differs: {fields}"),
            }
        }
        Difference::DuplicateRow {
            line,
            first_line,
            setl_id,
            refund,
            ..
        } => {
            let row = file_row(*refund, lang);
            match lang {
                Lang::Zh => format!("第 {line} 行：{row} {setl_id} 与第 {first_line} 行重复；重复行不参与匹配"),
                Lang::En => format!("line {line}: {row} {setl_id} repeats line {first_line}; the repeat is not matched"),
            }
        }
        Difference::MalformedRow { line, reason } => match lang {
            Lang::Zh => format!("第 {line} 行：格式错误：{reason}"),
            Lang::En => format!("line {line}: malformed row: {reason}"),
        },
    }
}

/// The detail report as text: a heading, the counts, then every difference kept, the claims
/// no file can match, and the result.
pub fn detail_text(report: &DetailReport, lang: Lang) -> String {
    let mut out = detail_heading(report, lang);
    if !report.differences.is_empty() {
        let _ = writeln!(out, "\n{}", lang.pick("差异：", "differences:"));
        for difference in &report.differences {
            let _ = writeln!(out, "  {}", difference_text(difference, lang));
        }
    }
    if report.differences_left_out > 0 {
        let left_out = report.differences_left_out;
        let _ = writeln!(
            out,
            "{}",
            match lang {
                Lang::Zh => format!("  …… 另有 {left_out} 处差异未列出（用 --csv 导出全部差异）"),
                Lang::En => format!(
                    "  ... and {left_out} more differences not listed (use --csv for all of them)"
                ),
            }
        );
    }
    out.push_str(&unreconcilable_text(report, lang));
    let c = &report.counts;
    let result = match (report.is_match(), lang) {
        (true, Lang::Zh) => "结果：文件与账本一致".to_string(),
        (true, Lang::En) => "result: the file matches the ledger".to_string(),
        (false, Lang::Zh) => format!("结果：{} 处差异", c.differences()),
        (false, Lang::En) => format!("result: {} differences", c.differences()),
    };
    let _ = writeln!(out, "\n{result}");
    out
}

/// What was reconciled, and every count.
fn detail_heading(report: &DetailReport, lang: Lang) -> String {
    let c = &report.counts;
    let (file, encoding, institution) = (&report.file, report.encoding.name(), &report.institution);
    let (from, to) = (report.from, report.to);
    let mut out = match lang {
        Lang::Zh => format!(
            "对账：{file}（{encoding}），定点机构 {institution}，{from} 至 {to}\n文件：{} 行（其中退费 {} 行）；账本：结算 {} 笔，冲销 {} 笔\n",
            c.file_rows, c.file_refund_rows, c.ledger_settlements, c.ledger_reversals
        ),
        Lang::En => format!(
            "reconciliation of {file} ({encoding}) for institution {institution}, {from} to {to}\nfile: {} rows ({} refunds); ledger: {} settlements, {} reversals\n",
            c.file_rows, c.file_refund_rows, c.ledger_settlements, c.ledger_reversals
        ),
    };
    let counts = [
        (lang.pick("一致", "matched"), c.matched_rows),
        (
            lang.pick("文件有、账本无", "in file, not ledger"),
            c.in_file_not_in_ledger,
        ),
        (
            lang.pick("账本有、文件无", "in ledger, not file"),
            c.in_ledger_not_in_file,
        ),
        (lang.pick("字段不一致", "fields differ"), c.fields_differ),
        (lang.pick("重复行", "duplicate rows"), c.duplicate_rows),
        (lang.pick("格式错误行", "malformed rows"), c.malformed_rows),
    ];
    let rows: Vec<(String, String)> = counts
        .iter()
        .map(|(label, count)| (label.to_string(), count.to_string()))
        .collect();
    for line in aligned(&rows) {
        let _ = writeln!(out, "{line}");
    }
    if c.manual_claims_excluded > 0 {
        let _ = writeln!(
            out,
            "{}{}",
            lang.pick(
                "注明该机构的手工报销，不应出现在其文件中：",
                "manual claims naming the institution, not expected in its file: "
            ),
            c.manual_claims_excluded
        );
    }
    if !report.duplicate_check_complete {
        let _ = writeln!(
            out,
            "{}",
            lang.pick(
                "注：账本中没有的行太多，未能在全部行中查找重复",
                "note: too many rows unknown to the ledger to look for duplicates among all of them"
            )
        );
    }
    out
}

/// The claims of the period that carry no institution, if any.
fn unreconcilable_text(report: &DetailReport, lang: Lang) -> String {
    let count = report.counts.unreconcilable_claims;
    if count == 0 {
        return String::new();
    }
    let mut out = match lang {
        Lang::Zh => format!("\n无法对账：本期 {count} 笔结算未注明定点机构，任何文件都无法与之匹配：\n"),
        Lang::En => format!("\nunreconcilable: {count} claims of the period carry no institution, so no file can match them:\n"),
    };
    for claim in &report.unreconcilable {
        let row = ledger_row(claim.refund, lang);
        let (id, psn_no, date) = (&claim.setl_id, &claim.psn_no, claim.date);
        let channel = code(CHANNEL, channel_code(claim.channel), lang);
        let amounts = amounts_text(&claim.amounts, lang);
        let _ = writeln!(
            out,
            "{}",
            match lang {
                Lang::Zh =>
                    format!("  {row} {id}（人员编号 {psn_no}，{channel}，{date}）：{amounts}"),
                Lang::En => format!("  {row} {id} (psn_no {psn_no}, {channel}, {date}): {amounts}"),
            }
        );
    }
    if report.unreconcilable_left_out > 0 {
        let left_out = report.unreconcilable_left_out;
        let _ = writeln!(
            out,
            "{}",
            match lang {
                Lang::Zh => format!("  …… 另有 {left_out} 笔"),
                Lang::En => format!("  ... and {left_out} more"),
            }
        );
    }
    out
}

/// A channel's code, as the ledger's JSON spells it.
fn channel_code(channel: gongji_domain::types::Channel) -> &'static str {
    use gongji_domain::types::Channel;
    match channel {
        Channel::Institution => "institution",
        Channel::Pharmacy => "pharmacy",
        Channel::Manual => "manual",
    }
}

/// The totals report as text: one line per row of the file.
pub fn totals_text(report: &TotalsReport, lang: Lang) -> String {
    let (file, encoding) = (&report.file, report.encoding.name());
    let (rows, matched, differing, malformed) = (
        report.rows,
        report.matched,
        report.differing,
        report.malformed,
    );
    let mut out = match lang {
        Lang::Zh => format!("总额对账：{file}（{encoding}）：共 {rows} 行，一致 {matched} 行，不一致 {differing} 行，格式错误 {malformed} 行\n"),
        Lang::En => format!("totals reconciliation of {file} ({encoding}): {rows} rows, {matched} match, {differing} differ, {malformed} malformed\n"),
    };
    for result in &report.results {
        let line = result.line;
        let period = match (result.from, result.to, lang) {
            (Some(from), Some(to), Lang::Zh) => format!("{from} 至 {to}"),
            (Some(from), Some(to), Lang::En) => format!("{from} to {to}"),
            _ => String::new(),
        };
        let who = format!("{} {period}", result.institution);
        let said = match (result.status, lang) {
            (TotalsStatus::Malformed, Lang::Zh) => {
                format!(
                    "第 {line} 行：格式错误：{}",
                    result.reason.as_deref().unwrap_or("")
                )
            }
            (TotalsStatus::Malformed, Lang::En) => {
                format!(
                    "line {line}: malformed row: {}",
                    result.reason.as_deref().unwrap_or("")
                )
            }
            (TotalsStatus::Match, Lang::Zh) => format!(
                "第 {line} 行：{who}：一致（结算 {} 笔，冲销 {} 笔）",
                result.ledger_settlements, result.ledger_reversals
            ),
            (TotalsStatus::Match, Lang::En) => format!(
                "line {line}: {who}: match ({} settlements, {} reversals)",
                result.ledger_settlements, result.ledger_reversals
            ),
            (TotalsStatus::Differ, Lang::Zh) => format!(
                "第 {line} 行：{who}：不一致：{}",
                fields_text(&result.differences, lang)
            ),
            (TotalsStatus::Differ, Lang::En) => format!(
                "line {line}: {who}: differs: {}",
                fields_text(&result.differences, lang)
            ),
        };
        let _ = writeln!(out, "{said}");
    }
    out
}

/// The statement as aligned `label  value` lines, then one line per region when there are
/// several, and a note when the institution settled nothing in the month.
pub fn statement_text(statement: &Statement, lang: Lang) -> String {
    let money = |amount: &gongji_domain::Money| words::money(&amount.to_string(), lang);
    let mut rows: Vec<(&str, String)> = vec![
        (
            lang.pick("定点机构", "institution"),
            statement.institution.clone(),
        ),
        (lang.pick("结算月份", "month"), statement.month.to_string()),
        (
            lang.pick("结算笔数", "settlements"),
            statement.settlements.to_string(),
        ),
        (
            lang.pick("冲销笔数", "reversals"),
            statement.reversals.to_string(),
        ),
        (
            lang.pick("净结算笔数", "net settlements"),
            statement.net_settlements.to_string(),
        ),
        (
            lang.pick("医疗费总额", "medical costs"),
            money(&statement.medfee_sumamt),
        ),
        (
            lang.pick("统筹基金支付", "pooled fund paid"),
            money(&statement.pooled_paid),
        ),
        (
            lang.pick("大额医疗支付", "large-amount fund paid"),
            money(&statement.large_amount_paid),
        ),
        (
            lang.pick("基金应付合计", "funds owe"),
            money(&statement.fund_owed),
        ),
        (
            lang.pick("个人账户支付", "paid from accounts"),
            money(&statement.account_paid),
        ),
        (
            lang.pick("现金支付", "paid in cash"),
            money(&statement.cash_paid),
        ),
    ];
    if statement.manual_claims_excluded > 0 {
        rows.push((
            lang.pick("手工报销（不计入）", "manual claims left out"),
            statement.manual_claims_excluded.to_string(),
        ));
    }
    let rows: Vec<(String, String)> = rows.into_iter().map(|(l, v)| (l.to_string(), v)).collect();
    let mut out = aligned(&rows).join("\n") + "\n";
    if statement.by_region.len() > 1 {
        for r in &statement.by_region {
            let (region, settlements, reversals) = (&r.region, r.settlements, r.reversals);
            let (pooled, large, account) = (
                money(&r.pooled_paid),
                money(&r.large_amount_paid),
                money(&r.account_paid),
            );
            let _ = writeln!(
                out,
                "{}",
                match lang {
                    Lang::Zh => format!("统筹地区 {region}：结算 {settlements} 笔，冲销 {reversals} 笔，统筹基金支付 {pooled}，大额医疗支付 {large}，个人账户支付 {account}"),
                    Lang::En => format!("region {region}: {settlements} settlements, {reversals} reversals, pooled fund paid {pooled}, large-amount fund paid {large}, paid from accounts {account}"),
                }
            );
        }
    }
    if statement.is_empty() {
        let (institution, month) = (&statement.institution, statement.month);
        let _ = writeln!(
            out,
            "{}",
            match lang {
                Lang::Zh => format!("定点机构 {institution} 在 {month} 没有结算、冲销或手工报销：请核对机构编码和月份"),
                Lang::En => format!("institution {institution} has no settlement, reversal or manual claim dated in {month}: check the institution id and the month"),
            }
        );
    }
    out
}
