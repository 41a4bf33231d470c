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
