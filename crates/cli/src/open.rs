//! Opening the ledger the command line names, with the projection store it chose.

use std::path::Path;
use std::sync::OnceLock;

use gongji_ledger::{Ledger, LogOptions, ProjectionBackend};

use crate::args::Projections;

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

pub fn open(data: &Path) -> Result<Ledger, String> {
    Ledger::open_with(data, log_options())
        .map_err(|e| format!("cannot open ledger at {}: {e}", data.display()))
}

/// For `rebuild` and `audit replay`: opened without folding onto the projections they replace
/// (which may be what is damaged).
pub fn open_to_rebuild(data: &Path) -> Result<Ledger, String> {
    Ledger::open_to_rebuild(data, log_options())
        .map_err(|e| format!("cannot open ledger at {}: {e}", data.display()))
}
