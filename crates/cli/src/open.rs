//! Opening the ledger the command line names ([`Location`]: a data directory or a log in
//! PostgreSQL), with the projection store it chose.
//!
//! Only the commands that write a ledger's first records (`apply`, `policy load`, and
//! `audit import`, which restores one) may create it: [`open_or_create`]. Every other command
//! refuses a location holding no ledger (a directory absent or without the log's `segments`,
//! a database without the log's head row) before anything is created there, so a mistyped
//! `--data` or `--pg-log` is named rather than answered from an empty ledger.
//!
//! Queries ([`open`]) open the ledger read-only: no lock, nothing written, answers from the
//! durable state the writer published (`Ledger::open_read_only`,
//! `Ledger::open_postgres_read_only`), so they run beside each other and beside a writer; a
//! server's read view ([`open_view`]) too, its reads in PostgreSQL riding out no lost
//! connection (the server opens the view again).
//! Commands that write ([`open_or_create`], [`open_to_rebuild`], [`clear_quarantine`]) take the
//! writer's lock (`DIR/LOCK`, or the log's advisory lock in PostgreSQL): a second one is
//! refused at once with advice a person can act on, or with `--wait` waits for the first,
//! saying so once on stderr (in PostgreSQL, where the lock is only tried, by trying again
//! every [`PG_LOCK_RETRY`]).

use std::sync::OnceLock;
use std::time::Duration;

use gongji_ledger::{Ledger, LedgerError, LogOptions, ProjectionBackend};
use gongji_log::LogError;

use crate::args::Projections;
use crate::failure::{Code, Failure};
use crate::location::Location;
use crate::print;

/// With `--wait` on PostgreSQL: how often a writer tries the log's lock again.
pub const PG_LOCK_RETRY: Duration = Duration::from_millis(200);

/// The projection store chosen on the command line, for every ledger this process opens.
static PROJECTIONS: OnceLock<ProjectionBackend> = OnceLock::new();
/// `--wait`: a writer waits for another writer's lock instead of being refused.
static WAIT: OnceLock<bool> = OnceLock::new();

/// Chooses the projection store, and whether a writer waits for the lock (`--wait`), for
/// every ledger this process opens. The projection store is the data directory's choice: on
/// PostgreSQL the projections are in the database, and `--projections sled` is refused.
pub fn configure(location: &Location, projections: Projections, wait: bool) -> Result<(), Failure> {
    if let Projections::Sled = projections {
        location.require_dir(
            "--projections sled",
            "sled keeps the projections in a data directory; on PostgreSQL they are kept in \
             the database beside the log",
        )?;
    }
    PROJECTIONS.get_or_init(|| match projections {
        Projections::Runs => ProjectionBackend::Runs,
        Projections::Sled => ProjectionBackend::Sled,
    });
    WAIT.get_or_init(|| wait);
    Ok(())
}

pub(crate) fn log_options(lock_wait: bool) -> LogOptions {
    LogOptions {
        projections: PROJECTIONS.get().copied().unwrap_or_default(),
        lock_wait,
        ..LogOptions::default()
    }
}

/// Whether `--wait` was given: a writer waits for another writer's lock.
pub(crate) fn waits() -> bool {
    WAIT.get().copied().unwrap_or(false)
}

/// Opens the ledger at `location`, which must hold one, to answer queries: read-only, beside
/// any other query and beside a writer.
pub fn open(location: &Location) -> Result<Ledger, Failure> {
    match location {
        Location::Dir(dir) => {
            require_ledger(location)?;
            Ledger::open_read_only(dir, log_options(false)).map_err(|e| cannot_open(location, e))
        }
        // In PostgreSQL the check costs a connection of its own (a third of a query's time):
        // it is made only to say why an open failed.
        Location::Postgres(pg) => Ledger::open_postgres_read_only(pg.uri(), &pg.log).map_err(|e| {
            match require_ledger(location) {
                Err(none) if none.code == Code::NoLedger => none,
                // The ledger is there, or the probe failed too: the open's own error says why.
                _ => cannot_open(location, e),
            }
        }),
    }
}

/// Opens the ledger at `location` as [`open`] does, for a server's read view: in PostgreSQL its
/// reads ride out no lost connection (the server opens the view again instead of holding it
/// while a failover lasts: `gongji_server`'s `reads`).
pub fn open_view(location: &Location) -> Result<Ledger, Failure> {
    match location {
        Location::Dir(_) => open(location),
        Location::Postgres(pg) => {
            Ledger::open_postgres_read_only_with(pg.uri(), &pg.log, Duration::ZERO)
                .map_err(|e| cannot_open(location, e))
        }
    }
}

/// Opens the ledger at `location`, creating it if there is none: for `apply`, `policy load`
/// and `gongji serve`.
pub fn open_or_create(location: &Location) -> Result<Ledger, Failure> {
    as_writer(location, |options| match location {
        Location::Dir(dir) => Ledger::open_with(dir, options),
        Location::Postgres(pg) => Ledger::open_postgres(pg.uri(), &pg.log),
    })
}

/// For `rebuild` and `audit replay`: opened without folding onto the projections they replace
/// (which may be what is damaged). `location` must hold a ledger.
pub fn open_to_rebuild(location: &Location) -> Result<Ledger, Failure> {
    require_ledger(location)?;
    as_writer(location, |options| match location {
        Location::Dir(dir) => Ledger::open_to_rebuild(dir, options),
        Location::Postgres(pg) => Ledger::open_postgres_to_rebuild(pg.uri(), &pg.log),
    })
}

/// `audit clear-quarantine`: a writer too (it may cut a torn tail). Only a data directory has a
/// quarantine marker; `dir` must hold a ledger.
pub fn clear_quarantine(
    dir: &std::path::Path,
) -> Result<Option<gongji_ledger::Quarantine>, Failure> {
    let location = Location::Dir(dir.to_path_buf());
    require_ledger(&location)?;
    as_writer(&location, |options| {
        Ledger::clear_quarantine_with(dir, options)
    })
}

/// Runs `open` as the ledger's one writer: refused at once while another writer holds the
/// lock, unless `--wait` was given; then it says once that it waits, and waits.
fn as_writer<T>(
    location: &Location,
    open: impl Fn(LogOptions) -> Result<T, LedgerError>,
) -> Result<T, Failure> {
    let wait = WAIT.get().copied().unwrap_or(false);
    let opened = match open(log_options(false)) {
        Err(e) if e.is_locked() && wait => {
            print::error_line(&format!(
                "another command is writing to the ledger at {location}; waiting for it to \
                 finish (--wait)"
            ));
            match location {
                Location::Dir(_) => open(log_options(true)),
                // PostgreSQL's writer lock is only tried (`pg_try_advisory_lock`): try again.
                Location::Postgres(_) => loop {
                    std::thread::sleep(PG_LOCK_RETRY);
                    match open(log_options(false)) {
                        Err(e) if e.is_locked() => continue,
                        opened => break opened,
                    }
                },
            }
        }
        opened => opened,
    };
    opened.map_err(|e| cannot_open(location, e))
}

/// Refuses, naming it, a location that holds no ledger; creates nothing.
pub fn require_ledger(location: &Location) -> Result<(), Failure> {
    let exists = match location {
        Location::Dir(dir) => Ledger::exists_in(dir),
        Location::Postgres(pg) => Ledger::postgres_exists(pg.uri(), &pg.log),
    };
    if exists.map_err(|e| cannot_open(location, e))? {
        return Ok(());
    }
    let advice = match location {
        Location::Dir(_) => {
            "check --data (only `apply`, `policy load` and `audit import` create a ledger)"
        }
        Location::Postgres(_) => {
            "check --data and --pg-log (only `apply`, `policy load` and `audit import` create a \
             ledger)"
        }
    };
    Err(Failure::new(
        Code::NoLedger,
        format!("no ledger at {location}: {advice}"),
    ))
}

fn cannot_open(location: &Location, error: LedgerError) -> Failure {
    if !error.is_locked() {
        return Failure::ledger(&format!("cannot open ledger at {location}"), &error);
    }
    let server = location
        .dir()
        .and_then(gongji_log::service_files::running_server);
    if let Some(server) = server {
        return Failure::new(
            Code::Locked,
            format!(
                "the ledger at {location} is held by a running server, gongji serve (pid {}) \
                 at {}: it is the ledger's only writer while it runs. Send commands to it \
                 (POST {}/v1/commands with an operator's token), or stop it (SIGTERM) first. \
                 Queries need not wait: they run beside it",
                server.pid, server.url, server.url
            ),
        );
    }
    let writers = match location {
        Location::Dir(_) => "apply, policy load, rebuild, audit replay or audit clear-quarantine",
        // No `SERVER` note in a database: the holder may be a server on another machine.
        Location::Postgres(_) => {
            "apply, policy load, rebuild, audit replay, or a gongji serve on this or another \
             machine"
        }
    };
    // A database names the session holding the lock (its process id and address).
    let held = match &error {
        LedgerError::Log(LogError::Locked {
            holder: Some(holder),
            ..
        }) => format!(", {holder}"),
        _ => String::new(),
    };
    Failure::new(
        Code::Locked,
        format!(
            "another command is writing to the ledger at {location} ({writers}: one at a \
             time){held}; run this again once it has finished, or add --wait to start as soon \
             as it has. Queries need not wait: they run beside it"
        ),
    )
}
