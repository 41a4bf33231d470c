//! The PostgreSQL the end-to-end tests run the ledger on, and fresh log names in it.
//!
//! The database is `GONGJI_TEST_PG` (a connection URI) when set; otherwise the tests start the
//! project's throwaway cluster themselves with `tools/pg-local up` (quick when it is up
//! already) and use the URI it prints, so that a plain `cargo test` runs them: a test skipped
//! for want of a database could never fail. `tools/pg-local down` stops it.
//!
//! `GONGJI_TEST_STORE=pg` puts every [`TestLedger`](super::TestLedger) of the behaviour tests
//! in PostgreSQL (a fresh log each), so that they run against that backend too.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Where the behaviour tests keep their ledgers: `GONGJI_TEST_STORE=pg` for PostgreSQL.
pub fn store_is_pg() -> bool {
    std::env::var("GONGJI_TEST_STORE").is_ok_and(|store| store == "pg")
}

/// The connection URI of the test database.
pub fn pg_uri() -> String {
    static URI: OnceLock<String> = OnceLock::new();
    URI.get_or_init(|| {
        if let Ok(uri) = std::env::var("GONGJI_TEST_PG") {
            return uri;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new("bash")
            .arg(root.join("tools/pg-local"))
            .arg("up")
            .output()
            .expect("running tools/pg-local up");
        assert!(
            out.status.success(),
            "tools/pg-local up failed (set GONGJI_TEST_PG to use another database):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .last()
            .expect("tools/pg-local prints the URI last")
            .trim()
            .to_owned()
    })
    .clone()
}

/// A log name no other test (of this run or an earlier one) uses.
pub fn fresh_log(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
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
