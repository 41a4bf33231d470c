//! `gongji whatif --policy FILE`: what a proposed policy version would have changed, every
//! claim of its region and period settled again under it (the ledger's
//! [`what_if`](gongji_ledger::Ledger::what_if)); the report as text or `--json`, and with
//! `--csv FILE` one row per claim and reversal with both settlements.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::process::ExitCode;

use gongji_domain::{Money, PolicyVersion};
use gongji_ledger::whatif::{ClaimPair, Compared, WhatIfReport, WhatIfScope};
use gongji_ledger::LedgerError;
use gongji_recon::words::{self, Lang};
use serde::Serialize;

use crate::args::WhatIfArgs;
use crate::failure::Failure;
use crate::location::Location;
use crate::open::open;
use crate::output::Progress;
use crate::print;
use crate::text::Style;

pub fn whatif(data: &Location, args: &WhatIfArgs) -> Result<ExitCode, Failure> {
    let proposal = read_policy(&args.policy)?;
    if let Some(region) = &args.region {
        if *region != proposal.region {
            return Err(Failure::bad_argument(format!(
                "{} is a version of region {}; it cannot be tried on region {region}",
                args.policy.display(),
                proposal.region
            )));
        }
    }
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from > to {
            return Err(Failure::bad_argument(format!(
                "--from {from} is after --to {to}"
            )));
        }
    }
    let mut rows = match &args.csv {
        Some(path) => Some(CsvRows::create(path)?),
        None => None,
    };
    let ledger = open(data)?;
    let scope = WhatIfScope {
        from: args.from,
        to: args.to,
    };
    let mut bar = Progress::on_terminal("whatif");
    let report = ledger.what_if(
        &proposal,
        scope,
        &mut |pair| match &mut rows {
            Some(rows) => rows.write(pair),
            None => Ok(()),
        },
        &mut |done, total| bar.step("claims", done, total),
    )?;
    bar.finish();
    if let Some(rows) = rows {
        rows.finish()?;
    }
    let printed = if args.json {
        print::json_line(&serde_json::to_string(&report).expect("a report serializes"))
    } else {
        print::raw(&text(&report, &Style::untimed()))
    };
    printed.map_err(|e| Failure::io(format!("cannot write to standard output: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// The proposal: a policy file, checked as `policy load` checks it (a version it would refuse
/// is no proposal: `policy check FILE` says why).
fn read_policy(file: &Path) -> Result<PolicyVersion, Failure> {
    let (_, policy) = crate::policy_file::read(file)?;
    policy
        .validate()
        .map_err(|why| Failure::bad_input(format!("{}: {why}", file.display())))?;
    let findings = gongji_domain::policy_check::check(&policy);
    if !findings.is_empty() {
        let said: Vec<String> = findings.iter().map(ToString::to_string).collect();
        return Err(Failure::bad_input(format!(
            "{} would be refused by policy load: {}",
            file.display(),
            said.join("; ")
        )));
    }
    Ok(policy)
}

/// One row of `--csv`: a claim or a reversal, its facts, and each figure recorded and proposed.
#[derive(Serialize)]
struct Row<'a> {
    position: u64,
    row: &'static str,
    claim: &'a str,
    member: &'a str,
    date: String,
    status: String,
    level: u8,
    channel: String,
    institution_kind: String,
    eligible: Money,
    recorded_policy: &'a str,
    recorded_deductible_applied: Money,
    recorded_pooled: Money,
    recorded_large_amount: Money,
    recorded_account: Money,
    recorded_cash: Money,
    proposed_deductible_applied: Money,
    proposed_pooled: Money,
    proposed_large_amount: Money,
    proposed_account: Money,
    proposed_cash: Money,
    pooled_difference: Money,
    own_share_difference: Money,
}

struct CsvRows {
    writer: csv::Writer<BufWriter<File>>,
    path: std::path::PathBuf,
}

impl CsvRows {
    fn create(path: &Path) -> Result<CsvRows, Failure> {
        let file = File::create(path)
            .map_err(|e| Failure::io(format!("cannot create {}: {e}", path.display())))?;
        Ok(CsvRows {
            writer: csv::Writer::from_writer(BufWriter::new(file)),
            path: path.to_path_buf(),
        })
    }

    fn write(&mut self, pair: &ClaimPair<'_>) -> Result<(), LedgerError> {
        let (r, p) = (pair.recorded, pair.proposed);
        let own = |s: &gongji_domain::Settlement| s.account_paid + s.cash_paid;
        let row = Row {
            position: pair.position,
            row: if pair.reversal { "reversal" } else { "claim" },
            claim: &r.claim,
            member: &r.member,
            date: r.date.to_string(),
            status: code_name(&r.status),
            level: r.level,
            channel: code_name(&r.channel),
            institution_kind: code_name(&r.institution_kind),
            eligible: r.eligible,
            recorded_policy: &r.policy,
            recorded_deductible_applied: r.deductible_applied,
            recorded_pooled: r.pooled_paid,
            recorded_large_amount: r.large_amount_paid,
            recorded_account: r.account_paid,
            recorded_cash: r.cash_paid,
            proposed_deductible_applied: p.deductible_applied,
            proposed_pooled: p.pooled_paid,
            proposed_large_amount: p.large_amount_paid,
            proposed_account: p.account_paid,
            proposed_cash: p.cash_paid,
            pooled_difference: p.pooled_paid - r.pooled_paid,
            own_share_difference: own(p) - own(r),
        };
        self.writer
            .serialize(row)
            .map_err(|e| LedgerError::Projection(format!("cannot write the CSV rows: {e}")))
    }

    fn finish(mut self) -> Result<(), Failure> {
        self.writer
            .flush()
            .map_err(|e| Failure::io(format!("cannot write {}: {e}", self.path.display())))
    }
}

/// A value's serialized name (`active`, `pharmacy`).
fn code_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => format!("{other:?}"),
    }
}

/// The report for people: totals, then each breakdown, then the limit and the members.
fn text(report: &WhatIfReport, style: &Style) -> String {
    let lang = style.lang;
    let zh = lang == Lang::Zh;
    let mut out = String::new();
    let period = match (report.from, report.to) {
        (None, None) => style.pick("全部", "all dates").to_string(),
        (from, to) => format!(
            "{} – {}",
            from.map_or("…".into(), |d| d.to_string()),
            to.map_or("…".into(), |d| d.to_string())
        ),
    };
    out += &if zh {
        format!(
            "政策调整测算：统筹地区 {}，测算版本 {}（现行 {}），期间 {period}，读取日志记录 {} 条\n",
            report.region,
            report.proposal,
            report.in_force.join("、"),
            report.records
        )
    } else {
        format!(
            "what-if for region {}: proposal {} (in force: {}), period {period}, {} log records read\n",
            report.region,
            report.proposal,
            report.in_force.join(", "),
            report.records
        )
    };
    out += &table(style.pick("合计", "total"), &[("", &report.total)], lang);
    let months: Vec<(String, &Compared)> = report
        .by_month
        .iter()
        .map(|(m, c)| (m.to_string(), c))
        .collect();
    out += &grouped(style.pick("按月份", "by month"), &months, lang);
    out += &grouped(
        style.pick("按人员类别", "by status"),
        &(report
            .by_status
            .iter()
            .map(|(k, c)| (words::code(words::STATUS, &code_name(k), lang), c))
            .collect::<Vec<_>>()),
        lang,
    );
    out += &grouped(
        style.pick("按医院等级", "by level"),
        &(report
            .by_level
            .iter()
            .map(|(k, c)| (k.to_string(), c))
            .collect::<Vec<_>>()),
        lang,
    );
    out += &grouped(
        style.pick("按结算渠道", "by channel"),
        &(report
            .by_channel
            .iter()
            .map(|(k, c)| (words::code(words::CHANNEL, &code_name(k), lang), c))
            .collect::<Vec<_>>()),
        lang,
    );
    out += &grouped(
        style.pick("按机构类别", "by institution kind"),
        &(report
            .by_institution_kind
            .iter()
            .map(|(k, c)| (words::code(words::INSTITUTION_KIND, &code_name(k), lang), c))
            .collect::<Vec<_>>()),
        lang,
    );
    let reached = report.limit_reached;
    out += &if zh {
        format!(
            "达到年度限额的参保人年度：实际 {}，测算 {}\n",
            reached.recorded, reached.proposed
        )
    } else {
        format!(
            "member-years reaching the annual limit: recorded {}, proposed {}\n",
            reached.recorded, reached.proposed
        )
    };
    if report.no_rule > 0 {
        out += &if zh {
            format!(
                "注意：{} 笔结算在测算版本中没有适用规则，按实际结算计入\n",
                report.no_rule
            )
        } else {
            format!(
                "note: the proposal has no rule for {} claims; they count as recorded\n",
                report.no_rule
            )
        };
    }
    for (title, list) in [
        (
            style.pick("个人负担增加最多", "paying most more"),
            &report.paying_more,
        ),
        (
            style.pick("个人负担减少最多", "paying most less"),
            &report.paying_less,
        ),
    ] {
        if list.is_empty() {
            continue;
        }
        out += &format!("{title}:\n");
        for member in list {
            out += &format!(
                "  {}  {} {}  {} {}\n",
                member.member,
                style.pick("个人负担", "own share"),
                signed(member.own_share_difference, lang),
                style.pick("基金支付", "funds"),
                signed(member.fund_difference, lang)
            );
        }
    }
    out
}

fn signed(amount: Money, lang: Lang) -> String {
    let text = words::money_fen(amount.fen(), lang);
    if amount > Money::ZERO {
        format!("+{text}")
    } else {
        text
    }
}

/// A breakdown: one small table per group.
fn grouped(title: &str, groups: &[(String, &Compared)], lang: Lang) -> String {
    let rows: Vec<(&str, &Compared)> = groups.iter().map(|(k, c)| (k.as_str(), *c)).collect();
    table(title, &rows, lang)
}

/// Rows of recorded, proposed and difference for each fund and the member's share.
fn table(title: &str, groups: &[(&str, &Compared)], lang: Lang) -> String {
    let zh = lang == Lang::Zh;
    let mut out = format!("{title}:\n");
    out += &format!(
        "  {:<12} {:>10} {:>16} {:>16} {:>16} {:>16} {:>16} {:>16}\n",
        "",
        if zh { "结算笔数" } else { "claims" },
        if zh {
            "统筹基金实际"
        } else {
            "pooled, rec."
        },
        if zh {
            "统筹基金测算"
        } else {
            "pooled, prop."
        },
        if zh {
            "统筹基金差额"
        } else {
            "pooled, diff."
        },
        if zh {
            "大额医疗差额"
        } else {
            "large, diff."
        },
        if zh {
            "个人账户差额"
        } else {
            "account, diff."
        },
        if zh { "现金差额" } else { "cash, diff." },
    );
    for (name, c) in groups {
        out += &format!(
            "  {:<12} {:>10} {:>16} {:>16} {:>16} {:>16} {:>16} {:>16}\n",
            name,
            c.claims,
            words::money_fen(c.recorded.pooled.fen(), lang),
            words::money_fen(c.proposed.pooled.fen(), lang),
            signed(c.difference.pooled, lang),
            signed(c.difference.large_amount, lang),
            signed(c.difference.account, lang),
            signed(c.difference.cash, lang),
        );
    }
    out
}
