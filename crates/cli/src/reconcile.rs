//! `reconcile detail`, `reconcile totals` and `settlement`: the arguments parsed here, the
//! work and the report `gongji-recon`'s. A job that cannot run fails with its error's code
//! ([`Failure::recon`]).

use std::path::Path;
use std::process::ExitCode;

use gongji_recon::report::{Form, Printed};
use gongji_recon::ReconError;

use crate::args::{self, DetailArgs, SettlementArgs};
use crate::failure::Failure;
use crate::location::Location;
use crate::open::open;
use crate::output::Progress;
use crate::print;
use crate::text;

pub fn detail(data: &Location, args: &DetailArgs) -> Result<ExitCode, Failure> {
    let ledger = open(data)?;
    let from = args::required_day("--from", &args.from).map_err(Failure::bad_argument)?;
    let to = args::required_day("--to", &args.to).map_err(Failure::bad_argument)?;
    let mut bar = Progress::on_terminal("reconcile");
    let printed = gongji_recon::report::detail(
        &ledger,
        &args.file,
        &args.institution,
        from..=to,
        Form::new(args.json, text::lang()),
        args.csv.as_deref(),
        &mut |done, total| bar.show(done, total),
    );
    finish(bar, printed)
}

pub fn totals(data: &Location, file: &Path, json: bool) -> Result<ExitCode, Failure> {
    let ledger = open(data)?;
    let mut bar = Progress::on_terminal("reconcile");
    let printed =
        gongji_recon::report::totals(&ledger, file, Form::new(json, text::lang()), &mut |d, t| {
            bar.show(d, t)
        });
    finish(bar, printed)
}

pub fn settlement(data: &Location, args: &SettlementArgs) -> Result<ExitCode, Failure> {
    let ledger = open(data)?;
    let month = args::month("MONTH", &args.month).map_err(Failure::bad_argument)?;
    let mut bar = Progress::on_terminal("settlement");
    let printed = gongji_recon::report::statement(
        &ledger,
        &args.institution,
        month,
        Form::new(args.json, text::lang()),
        &mut |d, t| bar.show(d, t),
    );
    finish(bar, printed)
}

/// Ends the progress bar, then prints the report and exits with its status.
fn finish(mut bar: Progress, printed: Result<Printed, ReconError>) -> Result<ExitCode, Failure> {
    let printed = printed.map_err(|e| Failure::recon(&e))?;
    bar.finish();
    print::raw(&printed.text)?;
    Ok(ExitCode::from(printed.exit_code))
}
