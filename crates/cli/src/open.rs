//! Opening the ledger the command line names, with the projection store it chose.
//!
//! Only the commands that write a ledger's first records (`apply`, `policy load`, and
//! `audit import`, which restores one) may create it: [`open_or_create`]. Every other command
//! opens with [`open`] or [`open_to_rebuild`], which refuse a directory holding no ledger
//! (absent, or without the log's `segments`) before anything is created there, so a mistyped
//! `--data` is named rather than answered from an empty ledger.

use std::path::Path;
use std::sync::OnceLock;

use gongji_ledger::{Ledger, LogOptions, ProjectionBackend};

use crate::args::Projections;
use crate::failure::{Code, Failure};

/// The projection store chosen on the command line, for every ledger this process opens.
static PROJECTIONS: OnceLock<ProjectionBackend> = OnceLock::new();

/// Chooses the projection store for every ledger this process opens.
pub fn choose_projections(projections: Projections) {
    PROJECTIONS.get_or_init(|| match projections {
        Projections::Runs => ProjectionBackend::Runs,
        Projections::Sled => ProjectionBackend::Sled,
    });
}

fn log_options() -> LogOptions {
    LogOptions {
        projections: PROJECTIONS.get().copied().unwrap_or_default(),
        ..LogOptions::default()
    }
}

/// Opens the ledger in `data`, which must hold one.
pub fn open(data: &Path) -> Result<Ledger, Failure> {
    require_ledger(data)?;
    open_or_create(data)
}

/// Opens the ledger in `data`, creating it if there is none: for `apply` and `policy load`.
pub fn open_or_create(data: &Path) -> Result<Ledger, Failure> {
    Ledger::open_with(data, log_options()).map_err(|e| cannot_open(data, e))
}

/// For `rebuild` and `audit replay`: opened without folding onto the projections they replace
/// (which may be what is damaged). `data` must hold a ledger.
pub fn open_to_rebuild(data: &Path) -> Result<Ledger, Failure> {
    require_ledger(data)?;
    Ledger::open_to_rebuild(data, log_options()).map_err(|e| cannot_open(data, e))
}

/// Refuses, naming it, a directory that holds no ledger; creates nothing.
pub fn require_ledger(data: &Path) -> Result<(), Failure> {
    if Ledger::exists_in(data).map_err(|e| cannot_open(data, e))? {
        return Ok(());
    }
    Err(Failure::new(
        Code::NoLedger,
        format!(
            "no ledger at {}: check --data (only `apply`, `policy load` and `audit import` create a ledger)",
            data.display()
        ),
    ))
}

fn cannot_open(data: &Path, error: gongji_ledger::LedgerError) -> Failure {
    Failure::ledger(&format!("cannot open ledger at {}", data.display()), &error)
}
