//! What auditors and operators run: `audit replay`, `verify`, `export`, `check`, `import`,
//! `clear-quarantine`, and `rebuild`. Each is one call into the ledger and a report printed.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use gongji_ledger::archive::{ArchiveFilter, ExportRefusal};
use gongji_ledger::Ledger;
use gongji_recon::words::Lang;
use serde_json::{json, Value};

use crate::args::{self, ExportArgs};
use crate::open::{open, open_to_rebuild, require_ledger};
use crate::output::Progress;
use crate::print;
use crate::text::{self, labels, reports, Style};

pub fn replay(data: &Path, json: bool) -> Result<ExitCode, String> {
    let mut ledger = open_to_rebuild(data)?;
    let mut bar = Progress::on_terminal("replay");
    let report = ledger
        .audit_replay(&mut |done, total| bar.step("fold", done, total))
        .map_err(|e| e.to_string())?;
    bar.finish();
    ledger.close().map_err(|e| e.to_string())?;
    print_report(&json!(report), json, reports::audit_replay, false)
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
        reports::audit_verify,
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
        let style = Style::untimed();
        let wrote = style.pick("已写入", "wrote");
        let manifest = text::block(&value, labels::MANIFEST, &style);
        print::text_line(&format!("{wrote} {}\n{manifest}", args.file.display()))?;
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
        reports::archive_check,
        report.failure.is_some(),
    )
}

pub fn clear_quarantine(data: &Path) -> Result<ExitCode, String> {
    require_ledger(data)?;
    let lang = text::lang();
    let said = match (
        Ledger::clear_quarantine(data).map_err(|e| e.to_string())?,
        lang,
    ) {
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

pub fn import(data: &Path, file: &Path, json: bool) -> Result<ExitCode, String> {
    let mut bar = Progress::on_terminal("import");
    let (report, ledger) =
        gongji_ledger::archive::import_archive(data, file, &mut |phase, done, total| {
            bar.step(phase, done, total)
        })
        .map_err(|e| e.to_string())?;
    bar.finish();
    let Some(ledger) = ledger else {
        print_report(&json!(report), json, reports::archive_check, true)?;
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
        let (file, data) = (file.display(), data.display());
        print::text_line(&match text::lang() {
            Lang::Zh => format!("已将 {file} 导入 {data}；摘要 {digest}"),
            Lang::En => format!("imported {file} into {data}; digest {digest}"),
        })?;
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
    let elapsed = started.elapsed();
    print::text_line(&match text::lang() {
        Lang::Zh => format!("已从 {folded} 条记录重建投影，用时 {elapsed:.2?}"),
        Lang::En => format!("rebuilt projections from {folded} records in {elapsed:.2?}"),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a report as JSON or as text; exit status 1 when it records a failure.
fn print_report(
    value: &Value,
    json: bool,
    readable: fn(&Value, &Style) -> String,
    failed: bool,
) -> Result<ExitCode, String> {
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
