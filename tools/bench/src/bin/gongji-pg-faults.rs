//! `gongji-pg-faults --uri URI`: what the PostgreSQL log's writer does when the primary it is
//! connected to stops being a primary it may commit on, without dying. Run by
//! `tools/pg-failover` on the replicated formation (`tools/pg-ha`), where it changes the
//! primary's settings the way pg_auto_failover's keeper does (`ALTER SYSTEM` and a reload) and
//! puts them back. Prints `check: ...` lines; exits 0 only if every check held.
//!
//! * **No quorum** (pg_auto_failover's `wait_primary`: `synchronous_standby_names` emptied, so
//!   the primary would acknowledge a commit alone): a sync is refused with a clear error after
//!   the writer's deadline, and nothing of it is committed. Then a writer opened again commits.
//! * **The primary turned read-only** (`default_transaction_read_only`, as the keeper sets it
//!   on a primary it demotes or a standby it promotes, until writes are allowed): the writer
//!   does not break; it waits for a writable primary, and once the setting is back, the sync
//!   is acknowledged with every record once.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gongji_log::{DurableLog, ExpectedVersion, LogError, NewRecord};
use gongji_log_pg::{PgLog, PgLogOptions};
use postgres::{Client, NoTls};

/// A connection to the primary (the URI's `target_session_attrs=read-write` finds it) that
/// keeps writing whatever the server's defaults become.
fn admin(uri: &str) -> Result<Client, String> {
    let mut client = Client::connect(uri, NoTls).map_err(|e| format!("connecting: {e}"))?;
    client
        .batch_execute("SET default_transaction_read_only = off")
        .map_err(|e| format!("admin session: {e}"))?;
    Ok(client)
}

/// Sets a server setting as pg_auto_failover does (ALTER SYSTEM, reload) and waits a moment
/// for every backend to take it.
fn set_system(client: &mut Client, name: &str, value: &str) -> Result<(), String> {
    let quoted = value.replace('\'', "''");
    // ALTER SYSTEM refuses a transaction block: two statements, not one batch.
    for statement in [
        format!("ALTER SYSTEM SET {name} = '{quoted}'"),
        "SELECT pg_reload_conf()".to_owned(),
    ] {
        client
            .batch_execute(&statement)
            .map_err(|e| format!("setting {name}: {e:?}"))?;
    }
    std::thread::sleep(Duration::from_millis(1500));
    Ok(())
}

fn show(client: &mut Client, name: &str) -> Result<String, String> {
    client
        .query_one(&format!("SHOW {name}"), &[])
        .map(|row| row.get(0))
        .map_err(|e| format!("SHOW {name}: {e}"))
}

fn head_of(client: &mut Client, log: &str) -> Result<i64, String> {
    client
        .query_one(
            "SELECT end_position FROM gongji_log_heads WHERE log = $1",
            &[&log],
        )
        .map(|row| row.get(0))
        .map_err(|e| format!("reading the head: {e}"))
}

/// Appends one unit of one record to `stream` (expected at `version`) and syncs it.
fn sync_one(log: &mut PgLog, stream: &str, version: u64) -> Result<u64, LogError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = uuid::Uuid::from_u128(nanos << 8 | u128::from(version));
    let record = NewRecord {
        stream,
        event_id: id,
        payload: id.as_bytes(),
    };
    log.append(&[(stream, ExpectedVersion::Exact(version))], &[record], 0)?;
    log.sync()
}

fn fresh_name(case: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("faults-{case}-{}-{nanos}", std::process::id())
}

fn no_quorum(uri: &str, client: &mut Client) -> Result<(), String> {
    let name = fresh_name("quorum");
    let options = PgLogOptions {
        reconnect_within: Duration::from_secs(4),
    };
    let mut log = PgLog::open_with(uri, &name, options.clone()).map_err(|e| e.to_string())?;
    sync_one(&mut log, "s", 0).map_err(|e| format!("first sync: {e}"))?;
    let quorum = show(client, "synchronous_standby_names")?;
    if quorum.is_empty() {
        return Err("the primary has no synchronous standbys named: not the formation".into());
    }
    set_system(client, "synchronous_standby_names", "")?;
    let refused = sync_one(&mut log, "s", 1);
    let head = head_of(client, &name);
    set_system(client, "synchronous_standby_names", &quorum)?;
    match refused {
        Err(e) if e.to_string().contains("no synchronous standby") => {
            println!("check: a sync without a quorum is refused: {e}")
        }
        Err(e) => {
            return Err(format!(
                "a sync without a quorum failed, but not clearly: {e}"
            ))
        }
        Ok(_) => return Err("a sync was acknowledged by a primary with no quorum".into()),
    }
    if head? != 1 {
        return Err("the refused sync's record was committed".into());
    }
    drop(log);
    let mut again = PgLog::open_with(uri, &name, options).map_err(|e| e.to_string())?;
    let end = sync_one(&mut again, "s", 1).map_err(|e| format!("sync after: {e}"))?;
    if end != 2 {
        return Err(format!(
            "the log ends at {end} after the quorum is back, not 2"
        ));
    }
    println!("check: nothing of it was committed; once the quorum was back a writer commits");
    Ok(())
}

fn read_only_primary(uri: &str, client: &mut Client) -> Result<(), String> {
    let name = fresh_name("read-only");
    let options = PgLogOptions {
        reconnect_within: Duration::from_secs(30),
    };
    let mut log = PgLog::open_with(uri, &name, options).map_err(|e| e.to_string())?;
    sync_one(&mut log, "s", 0).map_err(|e| format!("first sync: {e}"))?;
    // Connected before: once the primary is read-only, the URI finds no node to write on.
    let mut restoring = admin(uri)?;
    set_system(client, "default_transaction_read_only", "on")?;
    let restorer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        set_system(&mut restoring, "default_transaction_read_only", "off")
    });
    let started = Instant::now();
    let synced = sync_one(&mut log, "s", 1);
    let restored = restorer
        .join()
        .map_err(|_| "the restoring thread panicked")?;
    restored?;
    let end = synced.map_err(|e| format!("the writer broke on a read-only primary: {e}"))?;
    let verified = log
        .verify(&mut |_| {})
        .map_err(|e| format!("verify: {e}"))?;
    if end != 2 || verified != 2 || head_of(client, &name)? != 2 {
        return Err(format!(
            "after the read-only spell the log ends at {end}, not 2"
        ));
    }
    println!(
        "check: a primary turned read-only is waited out ({:.1} s); the sync is acknowledged \
         once, the log verifies",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let uri = match (args.next().as_deref(), args.next()) {
        (Some("--uri"), Some(uri)) => uri,
        _ => return Err("usage: gongji-pg-faults --uri URI".into()),
    };
    let mut client = admin(&uri)?;
    no_quorum(&uri, &mut client)?;
    read_only_primary(&uri, &mut client)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
