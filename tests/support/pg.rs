//! The PostgreSQL the end-to-end tests run the ledger on, and fresh log names in it.
//!
//! The database is `GONGJI_TEST_PG` (a connection URI) when set; otherwise the tests start the
//! project's throwaway cluster themselves with `tools/pg-local up` (quick when it is up
//! already) and use the URI it prints, so that a plain `cargo test` runs them: a test skipped
//! for want of a database could never fail. `tools/pg-local down` stops it.
//!
//! `GONGJI_TEST_STORE=pg` puts every [`TestLedger`](super::TestLedger) of the behaviour tests
//! in PostgreSQL (a fresh log each), so that they run against that backend too.

/// The database and the log names are the PostgreSQL log's own tests' (one way to start
/// and find the test database).
#[path = "../../crates/log-pg/tests/support/mod.rs"]
mod log_pg;

#[allow(unused_imports)] // each test binary uses some of them
pub use log_pg::{client, fresh_log, pg_uri};

/// Where the behaviour tests keep their ledgers: `GONGJI_TEST_STORE=pg` for PostgreSQL.
pub fn store_is_pg() -> bool {
    std::env::var("GONGJI_TEST_STORE").is_ok_and(|store| store == "pg")
}

/// Whether a test, or the part of it that follows, is skipped because what it tests exists
/// only in a data directory (its files, a link among them, a quarantine marker, the service's
/// files and note kept there): true with `GONGJI_TEST_STORE=pg`, after saying so with `why`.
/// Only for that: a behaviour PostgreSQL also has is tested there. Printed straight to standard
/// error, past the test harness's capture, so that the run's log lists every skip:
/// `skipped on PostgreSQL (directory only): TEST: WHY`.
pub fn directory_only(why: &str) -> bool {
    if !store_is_pg() {
        return false;
    }
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    let said = format!("skipped on PostgreSQL (directory only): {test}: {why}\n");
    // The skip is only reported; a closed standard error does not fail the test.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), said.as_bytes());
    true
}

/// A ledger's place in the test database: the URI and the log's name, as `--data` and
/// `--pg-log` take them.
#[derive(Clone, Debug)]
pub struct PgLedger {
    pub uri: String,
    pub log: String,
}

impl PgLedger {
    /// A fresh log in the test database.
    pub fn fresh() -> PgLedger {
        PgLedger {
            uri: pg_uri(),
            log: fresh_log("cli"),
        }
    }
}
