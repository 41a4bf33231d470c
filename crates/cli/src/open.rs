//! Opening the ledger the command line names, with the projection store it chose.
//!
//! Only the commands that write a ledger's first records (`apply`, `policy load`, and
//! `audit import`, which restores one) may create it: [`open_or_create`]. Every other command
//! refuses a directory holding no ledger (absent, or without the log's `segments`) before
//! anything is created there, so a mistyped `--data` is named rather than answered from an
//! empty ledger.
//!
//! Queries ([`open`]) open the ledger read-only: no lock, nothing written, answers from the
//! durable state the writer published (`Ledger::open_read_only`), so they run beside each
//! other and beside a writer. Commands that write ([`open_or_create`], [`open_to_rebuild`],
//! [`clear_quarantine`]) take the writer's lock: a second one is refused at once with advice
//! a person can act on, or with `--wait` waits for the first, saying so once on stderr.

use std::path::Path;
use std::sync::OnceLock;

use gongji_ledger::{Ledger, LedgerError, LogOptions, ProjectionBackend};

use crate::args::Projections;
use crate::failure::{Code, Failure};
use crate::print;

/// The projection store chosen on the command line, for every ledger this process opens.
static PROJECTIONS: OnceLock<ProjectionBackend> = OnceLock::new();
/// `--wait`: a writer waits for another writer's lock instead of being refused.
static WAIT: OnceLock<bool> = OnceLock::new();

/// Chooses the projection store, and whether a writer waits for the lock (`--wait`), for
/// every ledger this process opens.
pub fn configure(projections: Projections, wait: bool) {
    PROJECTIONS.get_or_init(|| match projections {
        Projections::Runs => ProjectionBackend::Runs,
        Projections::Sled => ProjectionBackend::Sled,
    });
    WAIT.get_or_init(|| wait);
}

fn log_options(lock_wait: bool) -> LogOptions {
    LogOptions {
        projections: PROJECTIONS.get().copied().unwrap_or_default(),
        lock_wait,
        ..LogOptions::default()
    }
}

/// Opens the ledger in `data`, which must hold one, to answer queries: read-only, beside any
/// other query and beside a writer.
pub fn open(data: &Path) -> Result<Ledger, Failure> {
    require_ledger(data)?;
    Ledger::open_read_only(data, log_options(false)).map_err(|e| cannot_open(data, e))
}

/// Opens the ledger in `data`, creating it if there is none: for `apply` and `policy load`.
pub fn open_or_create(data: &Path) -> Result<Ledger, Failure> {
    as_writer(data, |options| Ledger::open_with(data, options))
}

/// For `rebuild` and `audit replay`: opened without folding onto the projections they replace
/// (which may be what is damaged). `data` must hold a ledger.
pub fn open_to_rebuild(data: &Path) -> Result<Ledger, Failure> {
    require_ledger(data)?;
    as_writer(data, |options| Ledger::open_to_rebuild(data, options))
}

/// `audit clear-quarantine`: a writer too (it may cut a torn tail). `data` must hold a ledger.
pub fn clear_quarantine(data: &Path) -> Result<Option<gongji_ledger::Quarantine>, Failure> {
    require_ledger(data)?;
    as_writer(data, |options| Ledger::clear_quarantine_with(data, options))
}

/// Runs `open` as the ledger's one writer: refused at once while another writer holds the
/// lock, unless `--wait` was given; then it says once that it waits, and waits.
fn as_writer<T>(
    data: &Path,
    open: impl Fn(LogOptions) -> Result<T, LedgerError>,
) -> Result<T, Failure> {
    let wait = WAIT.get().copied().unwrap_or(false);
    match open(log_options(false)) {
        Err(e) if e.is_locked() && wait => {
            print::error_line(&format!(
                "another command is writing to the ledger at {}; waiting for it to finish (--wait)",
                data.display()
            ));
            open(log_options(true)).map_err(|e| cannot_open(data, e))
        }
        opened => opened.map_err(|e| cannot_open(data, e)),
    }
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

fn cannot_open(data: &Path, error: LedgerError) -> Failure {
    if error.is_locked() {
        if let Some(server) = gongji_log::service_files::running_server(data) {
            return Failure::new(
                Code::Locked,
                format!(
                    "the ledger at {} is held by a running server, gongji serve (pid {}) at {}: \
                     it is the ledger's only writer while it runs. Send commands to it \
                     (POST {}/v1/commands with an operator's token), or stop it (SIGTERM) \
                     first. Queries need not wait: they run beside it",
                    data.display(),
                    server.pid,
                    server.url,
                    server.url
                ),
            );
        }
        return Failure::new(
            Code::Locked,
            format!(
                "another command is writing to the ledger at {} (apply, policy load, rebuild, \
                 audit replay or audit clear-quarantine: one at a time); run this again once it \
                 has finished, or add --wait to start as soon as it has. Queries need not wait: \
                 they run beside it",
                data.display()
            ),
        );
    }
    Failure::ledger(&format!("cannot open ledger at {}", data.display()), &error)
}
