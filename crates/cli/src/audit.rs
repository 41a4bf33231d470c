//! What auditors and operators run: `audit replay`, `verify`, `export`, `check`, `import`,
//! `clear-quarantine`, and `rebuild`. Each is one call into the ledger and a report printed.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use gongji_ledger::archive::{ArchiveFilter, ExportRefusal};
use serde_json::{json, Value};

use crate::args::{self, ExportArgs};
use crate::open::{open, open_to_rebuild, require_ledger};
use crate::output::{self, Progress};
use crate::print;

pub fn replay(data: &Path, json: bool) -> Result<ExitCode, String> {
    let mut ledger = open_to_rebuild(data)?;
    let mut bar = Progress::on_terminal("replay");
    let report = ledger
        .audit_replay(&mut |done, total| bar.step("fold", done, total))
        .map_err(|e| e.to_string())?;
    bar.finish();
    ledger.close().map_err(|e| e.to_string())?;
    print_report(&json!(report), json, output::audit_replay, false)
}

pub fn verify(data: &Path, json: bool) -> Result<ExitCode, String> {
    let ledger = open(data)?;
    let mut bar = Progress::on_terminal("verify");
    let report = ledger
        .audit_verify(&mut |phase, done, total| bar.step(phase, done, total))
        .map_err(|e| e.to_string())?;
    bar.finish();
    print_report(
        &json!(report),
        json,
        output::audit_verify,
        report.failure.is_some(),
    )
}

pub fn export(data: &Path, args: &ExportArgs) -> Result<ExitCode, String> {
    let filter = ArchiveFilter {
        from: args::day("--from", &args.from)?,
        to: args::day("--to", &args.to)?,
        region: args.region.clone(),
    };
    let ledger = open(data)?;
    match ledger
        .export_refusal(&args.file, &filter, args.force)
        .map_err(|e| e.to_string())?
    {
        Some(refusal @ ExportRefusal::UnknownRegion(_)) => {
            print::error_line(&refusal.to_string());
            return Ok(ExitCode::from(1));
        }
        Some(refusal @ ExportRefusal::Exists(_)) => return Err(refusal.to_string()),
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
        .map_err(|e| e.to_string())?;
    bar.finish();
    let value = json!(manifest);
    if args.json {
        print::json_line(&value.to_string())?;
    } else {
        print::text_line(&format!(
            "wrote {}\n{}",
            args.file.display(),
            output::readable(&value)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit check` needs no ledger at all.
pub fn check(file: &Path, json: bool) -> Result<ExitCode, String> {
    let mut bar = Progress::on_terminal("check");
    bar.phase("archive");
    let report =
        gongji_ledger::archive::check_archive(file, &mut |done, total| bar.show(done, total))
            .map_err(|e| e.to_string())?;
    bar.finish();
    print_report(
        &json!(report),
        json,
        output::archive_check,
        report.failure.is_some(),
    )
}

pub fn clear_quarantine(data: &Path) -> Result<ExitCode, String> {
    require_ledger(data)?;
    let said = match crate::open::clear_quarantine(data)? {
        Some(marker) => format!(
            "the log verifies again: quarantine of record {} ({}) lifted",
            marker.position, marker.reason
        ),
        None => format!("the ledger at {} is not quarantined", data.display()),
    };
    print::text_line(&said)?;
    Ok(ExitCode::SUCCESS)
}

pub fn import(data: &Path, file: &Path, json: bool) -> Result<ExitCode, String> {
    let mut bar = Progress::on_terminal("import");
    let (report, ledger) =
        gongji_ledger::archive::import_archive(data, file, &mut |phase, done, total| {
            bar.step(phase, done, total)
        })
        .map_err(|e| e.to_string())?;
    bar.finish();
    let Some(ledger) = ledger else {
        print_report(&json!(report), json, output::archive_check, true)?;
        print::error_line(&format!(
            "{} was not imported: it fails the check or is not a complete archive",
            file.display()
        ));
        return Ok(ExitCode::from(1));
    };
    let digest = ledger.digest().map_err(|e| e.to_string())?;
    ledger.close().map_err(|e| e.to_string())?;
    if json {
        print::json_line(&json!({"imported": report.manifest, "digest": digest}).to_string())?;
    } else {
        print::text_line(&format!(
            "imported {} into {}; digest {digest}",
            file.display(),
            data.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rebuild(data: &Path) -> Result<ExitCode, String> {
    let mut ledger = open_to_rebuild(data)?;
    let started = Instant::now();
    let mut bar = Progress::on_terminal("rebuild");
    let folded = ledger
        .rebuild(&mut |done, total| bar.step("fold", done, total))
        .map_err(|e| e.to_string())?;
    bar.finish();
    ledger.close().map_err(|e| e.to_string())?;
    print::text_line(&format!(
        "rebuilt projections from {folded} records in {:.2?}",
        started.elapsed()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a report as JSON or as text; exit status 1 when it records a failure.
fn print_report(
    value: &Value,
    json: bool,
    readable: fn(&Value) -> String,
    failed: bool,
) -> Result<ExitCode, String> {
    if json {
        print::json_line(&value.to_string())?;
    } else {
        print::text_line(&readable(value))?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
