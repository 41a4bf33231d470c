//! The queries: one member's account, year, inheritance and transfers (now or as of a past
//! time), a region's funds, a member's history, a claim's explanation, the policies loaded.
//! Each opens the ledger, asks it, and prints JSON or text; when there is nothing to show, it
//! fails `unknown_member` or `not_found` (exit 1). With `--json` each answer is one JSON document on one line,
//! except `history` and `policy list`, whose answers are lists of records: JSON Lines, one
//! record a line (none for an empty list).

use std::process::ExitCode;

use gongji_ledger::{not_enrolled, AsOf, Ledger, LedgerError};
use gongji_server::answers;
use serde_json::{json, Value};

use crate::args::{self, AsOfArgs, ExplainArgs, FundArgs, HistoryArgs, MemberArgs, YearArgs};
use crate::failure::Failure;
use crate::location::Location;
use crate::open::open;
use crate::print;
use crate::text::labels::{self, Table};
use crate::text::{self, reports, Style};

pub fn account(data: &Location, args: &MemberArgs) -> Result<ExitCode, Failure> {
    member_view(
        data,
        &args.member,
        args.json,
        &args.as_of,
        |ledger, as_of| ledger.account_at(&args.member, as_of),
        labels::ACCOUNT,
    )
}

pub fn inheritance(data: &Location, args: &MemberArgs) -> Result<ExitCode, Failure> {
    member_view(
        data,
        &args.member,
        args.json,
        &args.as_of,
        |ledger, as_of| ledger.inheritance(&args.member, as_of),
        labels::INHERITANCE,
    )
}

pub fn transfers(data: &Location, args: &MemberArgs) -> Result<ExitCode, Failure> {
    member_view(
        data,
        &args.member,
        args.json,
        &args.as_of,
        |ledger, as_of| ledger.transfers(&args.member, as_of),
        labels::TRANSFERS,
    )
}

pub fn year(data: &Location, args: &YearArgs) -> Result<ExitCode, Failure> {
    let asked = args.as_of.parse().map_err(Failure::bad_argument)?;
    let ledger = open(data)?;
    let answer = ledger.year_answer(
        &args.member,
        args.year,
        args.region.as_deref(),
        &asked.as_of,
    )?;
    match answer {
        Ok(view) => show(&asked.stated(view), args.json, labels::YEAR_ANSWER),
        // The ledger says why with `not_enrolled` when the member is the reason.
        Err(why) if why == not_enrolled(&args.member, &asked.as_of) => {
            Err(Failure::unknown_member(why))
        }
        Err(why) => Err(Failure::not_found(why)),
    }
}

/// Answers a query about one member, now or as of a past time: JSON or text; `unknown_member`
/// (exit 1) if the member was not enrolled then.
fn member_view<T: serde::Serialize>(
    data: &Location,
    member: &str,
    json: bool,
    as_of: &AsOfArgs,
    query: impl FnOnce(&Ledger, &AsOf) -> Result<Option<T>, LedgerError>,
    table: Table,
) -> Result<ExitCode, Failure> {
    let asked = as_of.parse().map_err(Failure::bad_argument)?;
    let ledger = open(data)?;
    let view = query(&ledger, &asked.as_of)?;
    let view = view.ok_or_else(|| Failure::unknown_member(not_enrolled(member, &asked.as_of)))?;
    show(&asked.stated(view), json, table)
}

pub fn fund(data: &Location, args: &FundArgs) -> Result<ExitCode, Failure> {
    let asked = args.as_of.parse().map_err(Failure::bad_argument)?;
    let ledger = open(data)?;
    let view = ledger
        .fund_at(&args.region, &asked.as_of)?
        .ok_or_else(|| Failure::not_found(answers::no_fund(&args.region)))?;
    show(&asked.stated(view), args.json, labels::FUND_ANSWER)
}

pub fn history(data: &Location, args: &HistoryArgs) -> Result<ExitCode, Failure> {
    let from = args::day("--from", &args.from).map_err(Failure::bad_argument)?;
    let to = args::day("--to", &args.to).map_err(Failure::bad_argument)?;
    let ledger = open(data)?;
    let values = answers::history_between(&ledger, &args.member, from, to)?
        .map_err(Failure::unknown_member)?;
    let lines: Vec<String> = if args.json {
        values.iter().map(Value::to_string).collect()
    } else if values.is_empty() {
        Vec::new()
    } else {
        reports::history_table(&values, &Style::current().map_err(Failure::bad_argument)?)
    };
    print_lines(args.json, &lines)
}

pub fn timeline(data: &Location, args: &MemberArgs) -> Result<ExitCode, Failure> {
    let asked = args.as_of.parse().map_err(Failure::bad_argument)?;
    let ledger = open(data)?;
    let view = ledger
        .timeline(&args.member, &asked.as_of)?
        .ok_or_else(|| Failure::unknown_member(not_enrolled(&args.member, &asked.as_of)))?;
    let value = json!(asked.stated(view));
    if args.json {
        print::json_line(&value.to_string())?;
    } else {
        let style = Style::current().map_err(Failure::bad_argument)?;
        print_lines(false, &reports::timeline_table(&value, &style))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn explain(data: &Location, args: &ExplainArgs) -> Result<ExitCode, Failure> {
    let ledger = open(data)?;
    let view = ledger.explain(&args.claim)?.map_err(Failure::not_found)?;
    let value = json!(view);
    if args.json {
        print::json_line(&value.to_string())?;
    } else {
        print::text_line(&reports::explanation(
            &value,
            &Style::current().map_err(Failure::bad_argument)?,
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `gongji policy list`: every region's policy versions.
pub fn policy_list(data: &Location, json: bool) -> Result<ExitCode, Failure> {
    let ledger = open(data)?;
    let style = Style::untimed();
    let lines: Vec<String> = answers::policy_lines(&ledger)?
        .iter()
        .map(|value| {
            if json {
                value.to_string()
            } else {
                text::inline(value, labels::POLICY_VERSION, &style)
            }
        })
        .collect();
    print_lines(json, &lines)
}

/// Prints lines of JSON or of text at once (nothing when there are none).
fn print_lines(json: bool, lines: &[String]) -> Result<ExitCode, Failure> {
    if !lines.is_empty() {
        print::line(json, &lines.join("\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints an answer as one JSON document or as text labelled by `table` ([`text::block`]).
fn show(value: &Value, json: bool, table: Table) -> Result<ExitCode, Failure> {
    if json {
        print::json_line(&value.to_string())?;
    } else {
        let style = Style::current().map_err(Failure::bad_argument)?;
        print::text_line(&text::block(value, table, &style))?;
    }
    Ok(ExitCode::SUCCESS)
}
