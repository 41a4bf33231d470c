//! What the PostgreSQL tests share: the database they run against and fresh log names.
//!
//! The database is `GONGJI_TEST_PG` (a connection string) when set; otherwise the tests start
//! the project's throwaway cluster themselves with `tools/pg-local up` (quick when it is up
//! already) and use the URI it prints, so that `cargo test --workspace` always runs them: a
//! test skipped for want of a database could never fail. `tools/pg-local down` stops it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The connection string of the test database.
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

/// A plain client on the test database, for what the tests do behind the log's back.
pub fn client() -> postgres::Client {
    postgres::Client::connect(&pg_uri(), postgres::NoTls).expect("connecting to the test database")
}

const POLICY: &str = include_str!("../../../../policies/500000-2024-01-01.json");

/// Command lines for a ledger of region 500000: its policy, `members` enrolments (one of them
/// again, which is refused) and a contribution of each member.
pub fn ledger_lines(members: usize) -> Vec<String> {
    use serde_json::{json, Value};
    let policy: Value = serde_json::from_str(POLICY).expect("policy");
    let mut lines = vec![json!({"cmd":"load_policy","policy":policy}).to_string()];
    for i in 0..members {
        lines.push(json!({"cmd":"enroll","member":format!("M{i}"),"region":"500000","born":"1980-05-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"10.00"}).to_string());
    }
    lines.push(json!({"cmd":"enroll","member":"M0","region":"500000","born":"1980-05-01","status":"active","scheme":"employer","date":"2024-01-01"}).to_string());
    for i in 0..members {
        lines.push(
            json!({"cmd":"contribute","member":format!("M{i}"),"month":"2024-02","base":"8000.00"})
                .to_string(),
        );
    }
    lines
}
