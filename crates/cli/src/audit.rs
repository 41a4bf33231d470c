//! What auditors and operators run: `audit replay`, `verify`, `export`, `check`, `import`,
//! `clear-quarantine`, and `rebuild`. Each is one call into the ledger and a report printed:
//! with `--json`, one JSON document on one line. A report that records a failure (`verify`,
//! `check`) is the answer, exit 1; a command that cannot answer fails ([`Failure`]).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use gongji_ledger::archive::{ArchiveFilter, ExportRefusal};
use gongji_recon::words::Lang;
use serde_json::{json, Value};

use crate::args::{self, ExportArgs};
use crate::failure::{Code, Failure};
use crate::location::Location;
use crate::open::{open, open_to_rebuild};
use crate::output::Progress;
use crate::print;
use crate::text::{self, labels, reports, Style};

pub fn replay(data: &Location, json: bool) -> Result<ExitCode, Failure> {
    let mut ledger = open_to_rebuild(data)?;
    let mut bar = Progress::on_terminal("replay");
    let report = ledger.audit_replay(&mut |done, total| bar.step("fold", done, total))?;
    bar.finish();
    ledger.close()?;
    print_report(&json!(report), json, reports::audit_replay, false)
}

pub fn verify(data: &Location, json: bool) -> Result<ExitCode, Failure> {
    let ledger = open(data)?;
    let mut bar = Progress::on_terminal("verify");
    let report = ledger.audit_verify(&mut |phase, done, total| bar.step(phase, done, total))?;
    bar.finish();
    print_report(
        &json!(report),
        json,
        reports::audit_verify,
        report.failure.is_some(),
    )
}

pub fn export(data: &Location, args: &ExportArgs) -> Result<ExitCode, Failure> {
    let filter = ArchiveFilter {
        from: args::day("--from", &args.from).map_err(Failure::bad_argument)?,
        to: args::day("--to", &args.to).map_err(Failure::bad_argument)?,
        region: args.region.clone(),
    };
    let ledger = open(data)?;
    match ledger.export_refusal(&args.file, &filter, args.force)? {
        Some(refusal @ ExportRefusal::UnknownRegion(_)) => {
            return Err(Failure::not_found(refusal.to_string()))
        }
        Some(refusal @ ExportRefusal::Exists(_)) => {
            return Err(Failure::new(Code::Exists, refusal.to_string()))
        }
        None => {}
    }
    let mut bar = Progress::on_terminal("export");
    let manifest = ledger
        .export_archive(
            &args.file,
            &filter,
            args.force,
            &mut |phase, done, total| bar.step(phase, done, total),
        )
        .map_err(|e| Failure::archive(&e))?;
    bar.finish();
    if args.json {
        let answer = json!({"file": args.file.display().to_string(), "manifest": manifest});
        print::json_line(&answer.to_string())?;
    } else {
        let style = Style::untimed();
        let wrote = style.pick("已写入", "wrote");
        let manifest = text::block(&json!(manifest), labels::MANIFEST, &style);
        print::text_line(&format!("{wrote} {}\n{manifest}", args.file.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit check` needs no ledger at all.
pub fn check(file: &Path, json: bool) -> Result<ExitCode, Failure> {
    let mut bar = Progress::on_terminal("check");
    bar.phase("archive");
    let report =
        gongji_ledger::archive::check_archive(file, &mut |done, total| bar.show(done, total))
            .map_err(|e| Failure::archive(&e))?;
    bar.finish();
    print_report(
        &json!(report),
        json,
        reports::archive_check,
        report.failure.is_some(),
    )
}

pub fn clear_quarantine(data: &Location, json: bool) -> Result<ExitCode, Failure> {
    let data = data.require_dir(
        "audit clear-quarantine",
        "a log in PostgreSQL keeps no quarantine marker (damage found is refused by the \
         process that found it, and checked again at every open)",
    )?;
    let marker = crate::open::clear_quarantine(data)?;
    if json {
        let (position, reason) = marker.map(|m| (m.position, m.reason)).unzip();
        let answer = json!({"lifted": position.is_some(), "position": position, "reason": reason});
        print::json_line(&answer.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    let said = match (marker, text::lang()) {
        (Some(marker), Lang::Zh) => format!(
            "日志已重新通过核验：第 {} 条记录的隔离（{}）已解除",
            marker.position, marker.reason
        ),
        (Some(marker), Lang::En) => format!(
            "the log verifies again: quarantine of record {} ({}) lifted",
            marker.position, marker.reason
        ),
        (None, Lang::Zh) => format!("{} 的账本未被隔离", data.display()),
        (None, Lang::En) => format!("the ledger at {} is not quarantined", data.display()),
    };
    print::text_line(&said)?;
    Ok(ExitCode::SUCCESS)
}

pub fn import(data: &Location, file: &Path, json: bool) -> Result<ExitCode, Failure> {
    let mut bar = Progress::on_terminal("import");
    let mut step = |phase, done, total| bar.step(phase, done, total);
    let imported = match data {
        Location::Dir(dir) => gongji_ledger::archive::import_archive(dir, file, &mut step),
        Location::Postgres(pg) => {
            gongji_ledger::archive::import_archive_postgres(pg.uri(), &pg.log, file, &mut step)
        }
    };
    let (report, ledger) = imported.map_err(|e| Failure::archive(&e))?;
    bar.finish();
    let Some(ledger) = ledger else {
        let why = match &report.failure {
            Some(failure) => format!("line {}: {}", failure.line, failure.message),
            None => "it is not a complete archive (a filtered export cannot restore a ledger)"
                .to_string(),
        };
        let refused = format!("{} was not imported: {why}", file.display());
        if !json {
            print_report(&json!(report), json, reports::archive_check, true)?;
        }
        return Err(Failure::bad_input(refused).exiting(1));
    };
    let digest = ledger.digest()?;
    ledger.close()?;
    if json {
        let answer = json!({"file": file.display().to_string(), "manifest": report.manifest, "digest": digest});
        print::json_line(&answer.to_string())?;
    } else {
        let file = file.display();
        print::text_line(&match text::lang() {
            Lang::Zh => format!("已将 {file} 导入 {data}；摘要 {digest}"),
            Lang::En => format!("imported {file} into {data}; digest {digest}"),
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rebuild(data: &Location, json: bool) -> Result<ExitCode, Failure> {
    let mut ledger = open_to_rebuild(data)?;
    let started = Instant::now();
    let mut bar = Progress::on_terminal("rebuild");
    let folded = ledger.rebuild(&mut |done, total| bar.step("fold", done, total))?;
    bar.finish();
    ledger.close()?;
    let elapsed = started.elapsed();
    if json {
        let answer = json!({"records": folded, "elapsed_ms": elapsed.as_millis() as u64});
        print::json_line(&answer.to_string())?;
    } else {
        print::text_line(&match text::lang() {
            Lang::Zh => format!("已从 {folded} 条记录重建投影，用时 {elapsed:.2?}"),
            Lang::En => format!("rebuilt projections from {folded} records in {elapsed:.2?}"),
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a report as JSON or as text; exit status 1 when it records a failure.
fn print_report(
    value: &Value,
    json: bool,
    readable: fn(&Value, &Style) -> String,
    failed: bool,
) -> Result<ExitCode, Failure> {
    if json {
        print::json_line(&value.to_string())?;
    } else {
        print::text_line(&readable(value, &Style::untimed()))?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
