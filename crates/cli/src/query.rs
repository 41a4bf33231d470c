//! The queries: one member's account, year, inheritance and transfers (now or as of a past
//! time), a region's funds, a member's history, a claim's explanation, the policies loaded.
//! Each opens the ledger, asks it, and prints JSON or text; exit 1 when there is nothing to
//! show.

use std::path::Path;
use std::process::ExitCode;

use gongji_ledger::{not_enrolled, AsOf, Ledger, LedgerError};
use serde_json::{json, Value};

use crate::args::{
    self, AsOfArgs, Asked, ExplainArgs, FundArgs, HistoryArgs, MemberArgs, YearArgs,
};
use crate::open::open;
use crate::print;
use crate::text::labels::{self, Table};
use crate::text::{self, reports, Style};

pub fn account(data: &Path, args: &MemberArgs) -> Result<ExitCode, String> {
    member_view(
        data,
        &args.member,
        args.json,
        &args.as_of,
        |ledger, as_of| ledger.account_at(&args.member, as_of),
        labels::ACCOUNT,
    )
}

pub fn inheritance(data: &Path, args: &MemberArgs) -> Result<ExitCode, String> {
    member_view(
        data,
        &args.member,
        args.json,
        &args.as_of,
        |ledger, as_of| ledger.inheritance(&args.member, as_of),
        labels::INHERITANCE,
    )
}

pub fn transfers(data: &Path, args: &MemberArgs) -> Result<ExitCode, String> {
    member_view(
        data,
        &args.member,
        args.json,
        &args.as_of,
        |ledger, as_of| ledger.transfers(&args.member, as_of),
        labels::TRANSFERS,
    )
}

pub fn year(data: &Path, args: &YearArgs) -> Result<ExitCode, String> {
    let asked = args.as_of.parse()?;
    let ledger = open(data)?;
    let answer = ledger
        .year_answer(
            &args.member,
            args.year,
            args.region.as_deref(),
            &asked.as_of,
        )
        .map_err(|e| e.to_string())?;
    match answer {
        Ok(view) => found(
            Some(stated(json!(view), &asked)),
            args.json,
            "",
            labels::YEAR_ANSWER,
        ),
        Err(why) => found(None, args.json, &why, labels::YEAR_ANSWER),
    }
}

/// Answers a query about one member, now or as of a past time: JSON or text, exit 1 if the
/// member was not enrolled then.
fn member_view<T: serde::Serialize>(
    data: &Path,
    member: &str,
    json: bool,
    as_of: &AsOfArgs,
    query: impl FnOnce(&Ledger, &AsOf) -> Result<Option<T>, LedgerError>,
    table: Table,
) -> Result<ExitCode, String> {
    let asked = as_of.parse()?;
    let ledger = open(data)?;
    let view = query(&ledger, &asked.as_of).map_err(|e| e.to_string())?;
    let answer = view.map(|v| stated(json!(v), &asked));
    found(answer, json, &not_enrolled(member, &asked.as_of), table)
}

/// The answer with the zone it depends on stated ([`Asked::state`]).
fn stated(mut answer: Value, asked: &Asked) -> Value {
    asked.state(&mut answer);
    answer
}

pub fn fund(data: &Path, args: &FundArgs) -> Result<ExitCode, String> {
    let asked = args.as_of.parse()?;
    let ledger = open(data)?;
    let view = ledger
        .fund_at(&args.region, &asked.as_of)
        .map_err(|e| e.to_string())?;
    found(
        view.map(|v| stated(json!(v), &asked)),
        args.json,
        &format!(
            "region {} has no fund or policy in this ledger",
            args.region
        ),
        labels::FUND_ANSWER,
    )
}

pub fn history(data: &Path, args: &HistoryArgs) -> Result<ExitCode, String> {
    let from = args::day("--from", &args.from)?;
    let to = args::day("--to", &args.to)?;
    let ledger = open(data)?;
    let entries = ledger.history(&args.member).map_err(|e| e.to_string())?;
    if entries.is_empty() {
        let missing = format!("member {} has no events", args.member);
        return found(None, args.json, &missing, &[]);
    }
    let entries = entries.into_iter().filter(|e| {
        let date = e.event.date();
        from.is_none_or(|f| date >= f) && to.is_none_or(|t| date <= t)
    });
    let values: Vec<Value> = entries.map(|entry| json!(entry)).collect();
    let lines: Vec<String> = if args.json {
        values.iter().map(Value::to_string).collect()
    } else if values.is_empty() {
        Vec::new()
    } else {
        reports::history_table(&values, &Style::current()?)
    };
    print_lines(args.json, &lines)
}

pub fn explain(data: &Path, args: &ExplainArgs) -> Result<ExitCode, String> {
    let ledger = open(data)?;
    let view = match ledger.explain(&args.claim).map_err(|e| e.to_string())? {
        Ok(view) => view,
        Err(why) => return found(None, args.json, &why, &[]),
    };
    let value = json!(view);
    if args.json {
        print::json_line(&value.to_string())?;
    } else {
        print::text_line(&reports::explanation(&value, &Style::current()?))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `gongji policy list`: every region's policy versions.
pub fn policy_list(data: &Path, json: bool) -> Result<ExitCode, String> {
    let ledger = open(data)?;
    let style = Style::untimed();
    let mut lines = Vec::new();
    for region in ledger.policy_regions().map_err(|e| e.to_string())? {
        for policy in ledger.policies(&region).map_err(|e| e.to_string())? {
            let value = json!({"region": region, "version": policy.version, "effective": policy.effective, "year_start": policy.year_start});
            let line = if json {
                value.to_string()
            } else {
                text::inline(&value, labels::POLICY_VERSION, &style)
            };
            lines.push(line);
        }
    }
    print_lines(json, &lines)
}

/// Prints lines of JSON or of text at once (nothing when there are none).
fn print_lines(json: bool, lines: &[String]) -> Result<ExitCode, String> {
    if !lines.is_empty() {
        print::line(json, &lines.join("\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what was found as JSON or text (labelled by `table`, [`text::block`]); if nothing
/// was, says `missing` and exits 1.
fn found(
    value: Option<Value>,
    json: bool,
    missing: &str,
    table: Table,
) -> Result<ExitCode, String> {
    match value {
        Some(value) => {
            if json {
                print::json_line(&value.to_string())?;
            } else {
                print::text_line(&text::block(&value, table, &Style::current()?))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            print::error_line(missing);
            Ok(ExitCode::from(1))
        }
    }
}
