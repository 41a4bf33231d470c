//! `gongji --regions MAP …`: the commands over a region map (`gongji_ledger::regions`). `apply`
//! routes each line to the region holding what it names, `relay` lands what is in transit,
//! `audit verify` verifies every region and the map as a whole, `audit replay` rebuilds every
//! region, and the member queries
//! (`account`, `year`, `history`, `transfers`, `inheritance`) answer from the region holding
//! the member (as of a past day, the region that held the member then). Every other command
//! is asked of one region's ledger with `--data` (the map names where each one is).

use std::io::{self, BufReader, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use gongji_ledger::regions::{self, Located, RegionMap, Regions, Store};
use gongji_ledger::LineOutcome;
use gongji_recon::render::terminal_safe;
use serde_json::json;

use crate::args::{AuditCmd, Cmd};
use crate::failure::{Code, Failure};
use crate::location::Location;
use crate::open::log_options;
use crate::output;
use crate::print;
use crate::text;

/// Runs `command` over the region map in `map_file`.
pub fn run(map_file: &Path, command: Cmd) -> Result<ExitCode, Failure> {
    let map = RegionMap::load(map_file).map_err(Failure::bad_argument)?;
    match command {
        Cmd::Apply(args) => apply(map, &args),
        Cmd::Relay { json } => relay(map, json),
        Cmd::Serve(args) => crate::serve::serve_map(map, &args),
        Cmd::Token { action } => crate::serve::token_over_map(&action),
        Cmd::Audit {
            action: AuditCmd::Verify { json },
        } => verify(&map, json),
        Cmd::Audit {
            action: AuditCmd::Replay { json },
        } => replay(&map, json),
        Cmd::Account(args) => {
            let location = member_location(&map, &args.member, &args.as_of)?;
            crate::query::account(&location, &args)
        }
        Cmd::Inheritance(args) => {
            let location = member_location(&map, &args.member, &args.as_of)?;
            crate::query::inheritance(&location, &args)
        }
        Cmd::Transfers(args) => {
            let location = member_location(&map, &args.member, &args.as_of)?;
            crate::query::transfers(&location, &args)
        }
        Cmd::Year(args) => {
            let location = member_location(&map, &args.member, &args.as_of)?;
            crate::query::year(&location, &args)
        }
        Cmd::History(args) => {
            let location = located(&map, &args.member, None)?;
            crate::query::history(&location, &args)
        }
        _ => Err(Failure::bad_argument(
            "with --regions: apply, relay, serve, token, audit verify, audit replay and the member queries (account, year, \
             history, transfers, inheritance); ask one region's ledger anything else with --data \
             (the map names where it is)",
        )),
    }
}

/// The ledger of the region holding `member` on the day asked (now without one).
fn member_location(
    map: &RegionMap,
    member: &str,
    as_of: &crate::args::AsOfArgs,
) -> Result<Location, Failure> {
    let asked = as_of.parse().map_err(Failure::bad_argument)?;
    located(map, member, asked.as_of.date)
}

fn located(
    map: &RegionMap,
    member: &str,
    on: Option<gongji_domain::Day>,
) -> Result<Location, Failure> {
    match regions::locate(map, &log_options(false), member)? {
        Located::Held { region, account } => {
            let region = match on {
                Some(day) => account.region_on(day).to_string(),
                None => region,
            };
            location_of(map, &region)
        }
        Located::InTransit {
            transfer,
            from_region,
            to_region,
        } => Err(Failure::unknown_member(format!(
            "member {member}'s account is in transit from region {from_region} to region \
             {to_region} (transfer {transfer}); `gongji --regions MAP relay` lands it"
        ))),
        Located::Unknown => Err(Failure::unknown_member(format!(
            "member {member} is held by no region of the map {}",
            map.file.display()
        ))),
    }
}

pub(crate) fn location_of(map: &RegionMap, region: &str) -> Result<Location, Failure> {
    match map.regions.get(region) {
        Some(Store::Dir(dir)) => Ok(Location::Dir(dir.clone())),
        Some(Store::Postgres(uri)) => Location::parse(Path::new(uri), Some(region)),
        None => Err(Failure::not_found(format!(
            "region {region} is not in the region map {}",
            map.file.display()
        ))),
    }
}

pub(crate) fn open_all(map: RegionMap) -> Result<Regions, Failure> {
    Regions::open(map, &log_options(crate::open::waits())).map_err(|e| {
        let failure = Failure::from(e);
        match failure.code {
            Code::Locked => Failure::new(
                Code::Locked,
                format!(
                    "{} (another apply or relay on this map is running: run with --wait to wait for it)",
                    failure.message
                ),
            ),
            _ => failure,
        }
    })
}

fn apply(map: RegionMap, args: &crate::args::ApplyArgs) -> Result<ExitCode, Failure> {
    let file = args.file.as_str();
    let (source, size): (Box<dyn io::Read + Send>, Option<u64>) = if file == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let handle = std::fs::File::open(file)
            .map_err(|e| Failure::io(format!("cannot read {file}: {e}")))?;
        let size = handle.metadata().ok().map(|m| m.len());
        (Box::new(handle), size)
    };
    let mut regions = open_all(map)?;
    let started = Instant::now();
    let show = io::stderr().is_terminal() && size.is_some_and(|s| s > 4 * 1024 * 1024);
    let mut bar = output::Progress::new("apply", show);
    let mut out = io::BufWriter::new(print::stdout());
    let mut totals = output::Totals::default();
    let (json, quiet) = (args.json, args.quiet);
    let mut sink = |lines: &[(usize, LineOutcome)]| -> io::Result<()> {
        let rejected = lines
            .iter()
            .filter(|(_, o)| matches!(o, LineOutcome::Rejected(_)))
            .count();
        if quiet {
            let shown: Vec<(usize, LineOutcome)> = lines
                .iter()
                .filter(|(_, o)| matches!(o, LineOutcome::Rejected(_)))
                .cloned()
                .collect();
            output::print_outcomes(&mut out, &shown, json)?;
        } else {
            output::print_outcomes(&mut out, lines, json)?;
        }
        out.flush()?;
        totals.add(lines.len(), rejected);
        Ok(())
    };
    let summary = regions::apply_routed(
        &mut regions,
        &mut regions::RelayCursor::default(),
        BufReader::new(source),
        args.batch_lines as usize,
        &mut sink,
        &mut |read| bar.show(read, size.unwrap_or(0)),
    );
    bar.finish();
    let closed = regions.close();
    let summary = summary.map_err(gongji_ledger::LedgerError::from)?;
    closed?;
    if !json {
        print::text_line(&totals.summary(started.elapsed(), text::lang()))?;
    }
    for why in &summary.owed_left {
        print::error_line(&format!(
            "a fund event owed to another region is left for `relay`: {}",
            terminal_safe(why)
        ));
    }
    for (transfer, why) in &summary.left_in_transit {
        print::error_line(&format!(
            "transfer {transfer} is left in transit ({}): `gongji --regions MAP relay` lands it",
            terminal_safe(why)
        ));
    }
    Ok(if summary.rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn relay(map: RegionMap, json: bool) -> Result<ExitCode, Failure> {
    let mut regions = open_all(map)?;
    let mut bar = output::Progress::on_terminal("relay");
    let report = regions::relay(&mut regions, &mut |done, total| {
        bar.step("transfers", done, total)
    });
    bar.finish();
    let closed = regions.close();
    let report = report?;
    closed?;
    if json {
        print::json_line(&json!(report).to_string())?;
    } else {
        let zh = text::lang() == gongji_recon::words::Lang::Zh;
        print::text_line(&if zh {
            format!(
                "已转出 {}，本次转入 {}，此前已转入 {}，仍在途 {}",
                report.sent,
                report.landed.len(),
                report.already_landed,
                report.in_transit.len()
            )
        } else {
            format!(
                "sent {}, landed now {}, landed before {}, still in transit {}",
                report.sent,
                report.landed.len(),
                report.already_landed,
                report.in_transit.len()
            )
        })?;
        print::text_line(&if zh {
            format!(
                "欠他区基金事件 {}，本次入账 {}，此前已入账 {}，未入账 {}",
                report.owed,
                report.owed_landed,
                report.owed_already_landed,
                report.owed_left.len()
            )
        } else {
            format!(
                "fund events owed to other regions {}, landed now {}, landed before {}, not landed {}",
                report.owed,
                report.owed_landed,
                report.owed_already_landed,
                report.owed_left.len()
            )
        })?;
        for left in &report.owed_left {
            print::text_line(&format!("  {}", terminal_safe(left)))?;
        }
        for left in &report.in_transit {
            print::text_line(&format!(
                "  {} {} {} -> {} {}: {}",
                left.transfer,
                left.member,
                left.from_region,
                left.to_region,
                left.balance,
                terminal_safe(&left.why)
            ))?;
        }
    }
    Ok(
        if report.in_transit.is_empty() && report.owed_left.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

fn verify(map: &RegionMap, json: bool) -> Result<ExitCode, Failure> {
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
    let report = regions::national_verify(map, &log_options(false), parallel, &|region| {
        if io::stderr().is_terminal() {
            print::error_text(&format!("verified region {region}\n"));
        }
    })?;
    print_national(&report, json)
}

/// `audit check-transfers REGION=FILE…`: regions' archives checked alone and against each other.
pub fn check_transfers(archives: &[String], json: bool) -> Result<ExitCode, Failure> {
    let mut named = Vec::new();
    for given in archives {
        let Some((region, file)) = given.split_once('=') else {
            return Err(Failure::bad_argument(format!(
                "{given}: each archive is given as REGION=FILE"
            )));
        };
        named.push((region.to_string(), std::path::PathBuf::from(file)));
    }
    let report = regions::check_archives(&named, &mut |region| {
        if io::stderr().is_terminal() {
            print::error_text(&format!("checked the archive of region {region}\n"));
        }
    })?;
    print_national(&report, json)
}

fn print_national(report: &regions::NationalReport, json: bool) -> Result<ExitCode, Failure> {
    if json {
        print::json_line(&json!(report).to_string())?;
    } else {
        let zh = text::lang() == gongji_recon::words::Lang::Zh;
        for check in &report.regions {
            let failure = check
                .verify
                .as_ref()
                .map(|v| v.failure.as_ref().map(|f| (f.check, f.message.clone())))
                .or_else(|| {
                    check.archive.as_ref().map(|a| {
                        a.failure
                            .as_ref()
                            .map(|f| ("archive", format!("line {}: {}", f.line, f.message)))
                    })
                });
            let digest = check
                .verify
                .as_ref()
                .map(|v| format!("{} {}", v.records, v.digest))
                .or_else(|| check.archive.as_ref().and_then(|a| a.digest.clone()))
                .unwrap_or_default();
            let said = match failure {
                None => (if zh { "无账本" } else { "no ledger" }).to_string(),
                Some(None) => format!("{} {digest}", if zh { "通过" } else { "passed" }),
                Some(Some((check, message))) => format!(
                    "{} {check}: {}",
                    if zh { "失败" } else { "FAILED" },
                    terminal_safe(&message)
                ),
            };
            print::text_line(&format!("{} ({}): {said}", check.region, check.store))?;
        }
        let t = &report.transfers;
        print::text_line(&format!(
            "{} {} / {} / {} ({})",
            if zh {
                "转移 已转出/已转入/在途"
            } else {
                "transfers sent/received/in transit"
            },
            t.sent,
            t.received,
            t.in_transit.len(),
            t.in_transit_total
        ))?;
        print::text_line(&format!(
            "{} {} / {}",
            if zh {
                "欠他区基金事件 总数/未入账"
            } else {
                "fund events owed between regions, all / not landed"
            },
            t.owed,
            t.owed_pending
        ))?;
        print::text_line(&format!(
            "{} {} + {} = {}",
            if zh {
                "全国 账户与基金 + 在途 = 净流入"
            } else {
                "national: held + in transit = entered - left"
            },
            report.held,
            t.in_transit_total,
            report.entered_minus_left
        ))?;
        for failure in &report.failures {
            print::text_line(&format!("  {}", terminal_safe(failure)))?;
        }
        print::text_line(if report.passed {
            if zh {
                "全国核验通过"
            } else {
                "the map verifies"
            }
        } else if zh {
            "全国核验失败"
        } else {
            "the map does NOT verify"
        })?;
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn replay(map: &RegionMap, json: bool) -> Result<ExitCode, Failure> {
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
    let options = log_options(crate::open::waits());
    let report = regions::national_replay(map, &options, parallel, &|region| {
        if io::stderr().is_terminal() {
            print::error_text(&format!("replayed region {region}\n"));
        }
    })?;
    if json {
        print::json_line(&json!(report).to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    let zh = text::lang() == gongji_recon::words::Lang::Zh;
    for region in &report.regions {
        let said = match &region.replay {
            None => (if zh { "无账本" } else { "no ledger" }).to_string(),
            Some(r) => format!("{} {}", r.records, r.digest),
        };
        print::text_line(&format!("{} ({}): {said}", region.region, region.store))?;
    }
    print::text_line(&format!(
        "{} {} {}",
        if zh {
            "全国 记录/账户与基金"
        } else {
            "national: records, held"
        },
        report.records,
        report.held
    ))?;
    Ok(ExitCode::SUCCESS)
}
