//! The schema: created on first open, idempotent, versioned in `gongji_schema`.
//!
//! Version 1 held the log (`gongji_log_heads`, `gongji_log_records`); version 2 adds the
//! projections beside it (`gongji_projections`, `gongji_projection_checkpoints`, see
//! `projections`). A writer's open of a version-1 database migrates it: the new tables are
//! created and the version raised in the same transaction; nothing of the log changes.
//!
//! Invariants as the code holds them: the tables are created under a transaction-scoped
//! advisory lock (two first opens at once do not race on the catalog); a database whose
//! schema version is newer than this build's is refused, never written to; a reader creates
//! nothing (and reads projections only from a database at version 2 or later).

use gongji_log::LogError;
use postgres::Client;

use crate::conn::pg_err;

/// The schema version this build writes and reads.
pub(crate) const SCHEMA_VERSION: i32 = 2;

/// The first version holding the projections.
pub(crate) const PROJECTIONS_SINCE: i32 = 2;

/// The class of every advisory lock the log takes (`pg_advisory_lock(int, int)`), "gjlg":
/// object 0 is the schema's (transaction-scoped, while creating it), object `lock_key` a log's
/// writer (session-scoped).
pub(crate) const LOCK_CLASS: i32 = 0x676a_6c67;

const DDL: &str = "
CREATE TABLE IF NOT EXISTS gongji_schema (
    component text PRIMARY KEY,
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS gongji_log_heads (
    log text PRIMARY KEY,
    lock_key integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    end_position bigint NOT NULL CHECK (end_position >= 0),
    last_hash bytea NOT NULL CHECK (length(last_hash) = 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS gongji_log_records (
    log text NOT NULL,
    position bigint NOT NULL CHECK (position >= 0),
    stream text NOT NULL,
    stream_version bigint NOT NULL CHECK (stream_version >= 1),
    event_id uuid NOT NULL,
    recorded_at_micros bigint NOT NULL,
    unit_end boolean NOT NULL,
    payload bytea NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (log, position),
    UNIQUE (log, stream, stream_version)
);
CREATE TABLE IF NOT EXISTS gongji_projections (
    log text COLLATE \"C\" NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (log, key)
) WITH (fillfactor = 70);
CREATE TABLE IF NOT EXISTS gongji_projection_checkpoints (
    log text PRIMARY KEY,
    checkpoint bigint CHECK (checkpoint >= 0),
    stores bigint NOT NULL DEFAULT 0
);
";

/// Creates the tables if they are missing, migrates an older schema and checks the schema
/// version (a writer's open).
pub(crate) fn ensure(client: &mut Client) -> Result<(), LogError> {
    let err = |e: postgres::Error| pg_err("creating the log's tables", &e);
    let mut tx = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_CLASS])
        .map_err(err)?;
    tx.batch_execute(DDL).map_err(err)?;
    // A version-1 database now has the projection tables: it is at version 2. A newer one
    // keeps its version (and is refused below).
    tx.execute(
        "INSERT INTO gongji_schema (component, version) VALUES ('log', $1) \
         ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version \
         WHERE gongji_schema.version < EXCLUDED.version",
        &[&SCHEMA_VERSION],
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    check_version(client).map(|_| ())
}

/// Refuses a database without the log's schema or with a newer one (a reader's open);
/// returns its version.
pub(crate) fn check_version(client: &mut Client) -> Result<i32, LogError> {
    let row = client.query_opt(
        "SELECT version FROM gongji_schema WHERE component = 'log'",
        &[],
    );
    let version: i32 = match row {
        Ok(Some(row)) => row.get(0),
        Ok(None) => return Err(no_schema()),
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => {
            return Err(no_schema())
        }
        Err(e) => return Err(pg_err("reading the schema version", &e)),
    };
    if version > SCHEMA_VERSION {
        return Err(LogError::InvalidInput(format!(
            "the database's log schema is version {version}, newer than this build's \
             ({SCHEMA_VERSION}): use a newer gongji"
        )));
    }
    Ok(version)
}

fn no_schema() -> LogError {
    LogError::InvalidInput(
        "the database holds no gongji log (no log schema): a writer's open creates it".into(),
    )
}
