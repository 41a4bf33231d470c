//! The queries: one member's account, year, inheritance and transfers (now or as of a past
//! time), a region's funds, a member's history, a claim's explanation, the policies loaded.
//! Each opens the ledger, asks it, and prints JSON or text; exit 1 when there is nothing to
//! show.

use std::path::Path;
use std::process::ExitCode;

use gongji_ledger::{not_enrolled, AsOf, Ledger, LedgerError};
use gongji_server::answers;
use serde_json::{json, Value};

use crate::args::{self, AsOfArgs, ExplainArgs, FundArgs, HistoryArgs, MemberArgs, YearArgs};
use crate::open::open;
use crate::output;
use crate::print;

pub fn account(data: &Path, args: &MemberArgs) -> Result<ExitCode, String> {
    member_view(
        data,
        &args.member,
        args.json,
        &args.as_of,
        |ledger, as_of| ledger.account_at(&args.member, as_of),
    )
}

pub fn inheritance(data: &Path, args: &MemberArgs) -> Result<ExitCode, String> {
    member_view(
        data,
        &args.member,
        args.json,
        &args.as_of,
        |ledger, as_of| ledger.inheritance(&args.member, as_of),
    )
}

pub fn transfers(data: &Path, args: &MemberArgs) -> Result<ExitCode, String> {
    member_view(
        data,
        &args.member,
        args.json,
        &args.as_of,
        |ledger, as_of| ledger.transfers(&args.member, as_of),
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
        Ok(view) => found(Some(asked.stated(view)), args.json, ""),
        Err(why) => found(None, args.json, &why),
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
) -> Result<ExitCode, String> {
    let asked = as_of.parse()?;
    let ledger = open(data)?;
    let view = query(&ledger, &asked.as_of).map_err(|e| e.to_string())?;
    let answer = view.map(|v| asked.stated(v));
    found(answer, json, &not_enrolled(member, &asked.as_of))
}

pub fn fund(data: &Path, args: &FundArgs) -> Result<ExitCode, String> {
    let asked = args.as_of.parse()?;
    let ledger = open(data)?;
    let view = ledger
        .fund_at(&args.region, &asked.as_of)
        .map_err(|e| e.to_string())?;
    found(
        view.map(|v| asked.stated(v)),
        args.json,
        &answers::no_fund(&args.region),
    )
}

pub fn history(data: &Path, args: &HistoryArgs) -> Result<ExitCode, String> {
    let from = args::day("--from", &args.from)?;
    let to = args::day("--to", &args.to)?;
    let ledger = open(data)?;
    let values = match answers::history_between(&ledger, &args.member, from, to)
        .map_err(|e| e.to_string())?
    {
        Ok(values) => values,
        Err(missing) => return found(None, args.json, &missing),
    };
    let lines: Vec<String> = if args.json {
        values.iter().map(Value::to_string).collect()
    } else if values.is_empty() {
        Vec::new()
    } else {
        output::history_table(&values)
    };
    print_lines(args.json, &lines)
}

pub fn explain(data: &Path, args: &ExplainArgs) -> Result<ExitCode, String> {
    let ledger = open(data)?;
    let view = match ledger.explain(&args.claim).map_err(|e| e.to_string())? {
        Ok(view) => view,
        Err(why) => return found(None, args.json, &why),
    };
    let value = json!(view);
    if args.json {
        print::json_line(&value.to_string())?;
    } else {
        print::text_line(&output::explanation(&value))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `gongji policy list`: every region's policy versions.
pub fn policy_list(data: &Path, json: bool) -> Result<ExitCode, String> {
    let ledger = open(data)?;
    let values = answers::policy_lines(&ledger).map_err(|e| e.to_string())?;
    let lines: Vec<String> = values
        .iter()
        .map(|value| {
            if json {
                value.to_string()
            } else {
                let field = |name: &str| value[name].as_str().unwrap_or_default().to_string();
                let (region, version) = (field("region"), field("version"));
                format!("{region}  {version}  effective {}", field("effective"))
            }
        })
        .collect();
    print_lines(json, &lines)
}

/// Prints lines of JSON or of text at once (nothing when there are none).
fn print_lines(json: bool, lines: &[String]) -> Result<ExitCode, String> {
    if !lines.is_empty() {
        print::line(json, &lines.join("\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what was found as JSON or text; if nothing was, says `missing` and exits 1.
fn found(value: Option<Value>, json: bool, missing: &str) -> Result<ExitCode, String> {
    match value {
        Some(value) => {
            if json {
                print::json_line(&value.to_string())?;
            } else {
                print::text_line(&output::readable(&value))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            print::error_line(missing);
            Ok(ExitCode::from(1))
        }
    }
}
