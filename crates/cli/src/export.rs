//! `gongji export settlements|events|funds|accounts`: the arguments turned into a `gongji-export` request,
//! the export run on a read-only ledger with a progress bar on a terminal, and one line
//! saying what was written. Everything else (rows, formats, the file landing whole or not at
//! all) is the library's.

use std::process::ExitCode;

use gongji_export::{Encoding, ExportError, Format, Request, Table};
use gongji_ledger::archive::ArchiveFilter;
use gongji_recon::words::Lang;

use crate::args::{ExportEncoding, ExportFormat, ExportWhat, TableExportArgs};
use crate::failure::Failure;
use crate::location::Location;
use crate::open::open;
use crate::output::Progress;
use crate::print;
use crate::text::Style;

pub fn export(data: &Location, args: &TableExportArgs) -> Result<ExitCode, Failure> {
    let request = request(args)?;
    let ledger = open(data)?;
    let mut bar = Progress::on_terminal("export");
    let counted = match request.table {
        Table::Accounts => "accounts",
        _ => "records",
    };
    let exported = gongji_export::export(&ledger, &request, &mut |done, total| {
        bar.step(counted, done, total)
    });
    bar.finish();
    let exported = exported.map_err(failure)?;
    // `text_line` makes the line terminal-safe (a file name may hold anything).
    let path = request.out.to_string_lossy();
    let (rows, records) = (exported.rows, exported.records);
    let said = match (Style::untimed().lang, request.table) {
        (Lang::Zh, Table::Accounts) => format!("已导出 {rows} 行到 {path}（个人账户，按当前状态）"),
        (Lang::En, Table::Accounts) => {
            format!("exported {rows} rows to {path} (the accounts as they stand)")
        }
        (Lang::Zh, _) => format!("已导出 {rows} 行到 {path}（读取日志记录 {records} 条）"),
        (Lang::En, _) => format!("exported {rows} rows to {path} ({records} log records read)"),
    };
    print::text_line(&said)?;
    Ok(ExitCode::SUCCESS)
}

/// The export the arguments ask for; `--encoding gb18030` is for CSV only.
fn request(args: &TableExportArgs) -> Result<Request, Failure> {
    let format = match (args.format, args.encoding) {
        (ExportFormat::Csv, None | Some(ExportEncoding::Utf8)) => Format::Csv(Encoding::Utf8Bom),
        (ExportFormat::Csv, Some(ExportEncoding::Gb18030)) => Format::Csv(Encoding::Gb18030),
        (ExportFormat::Parquet, None) => Format::Parquet,
        (ExportFormat::Parquet, Some(_)) => {
            return Err(Failure::bad_argument(
                "--encoding is for --format csv: Parquet text is always UTF-8",
            ))
        }
    };
    let table = match args.what {
        ExportWhat::Settlements => Table::Settlements,
        ExportWhat::Events => Table::Events,
        ExportWhat::Funds => Table::Funds,
        ExportWhat::Accounts => Table::Accounts,
    };
    Ok(Request {
        table,
        filter: ArchiveFilter {
            from: args.from,
            to: args.to,
            region: args.region.clone(),
        },
        format,
        out: args.out.clone(),
    })
}

/// An export's failure as the command's: a request that cannot be answered is a bad
/// argument, a ledger that cannot be read says why, a file that cannot be written is `io`.
fn failure(error: ExportError) -> Failure {
    match error {
        ExportError::Request(why) => Failure::bad_argument(why),
        ExportError::Ledger(error) => Failure::ledger("export", &error),
        write @ ExportError::Write { .. } => Failure::io(write.to_string()),
    }
}
