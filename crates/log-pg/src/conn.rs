//! Connections: parsing the connection string, connecting with the log's settings, and what a
//! PostgreSQL error means to the log (an `Io` error naming the action; whether the connection
//! is lost, so that what was in progress has an unknown outcome).

use std::io;
use std::time::{Duration, Instant};

use gongji_log::LogError;
use postgres::{Client, Config, NoTls};

/// TCP keepalive idle time when the connection string leaves the default (2 hours): a primary
/// that vanishes without closing its sockets is noticed within about a minute, not hours.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
/// Connect timeout when the connection string sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses a libpq connection string (URI or key=value, multi-host allowed). The string itself
/// is never repeated in an error: it may hold a password.
pub(crate) fn parse(uri: &str) -> Result<Config, LogError> {
    let mut config: Config = uri
        .parse()
        .map_err(|e| LogError::InvalidInput(format!("not a PostgreSQL connection string: {e}")))?;
    if config.get_keepalives_idle() > KEEPALIVES_IDLE * 60 {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// A new connection, named `gongji-log LOG ROLE pid PID` in `pg_stat_activity` (the process
/// id of this process, so that a writer refused the lock can say who holds it; PostgreSQL cuts
/// a name at 63 bytes).
pub(crate) fn connect(config: &Config, log: &str, role: &str) -> Result<Client, LogError> {
    let mut config = config.clone();
    config.application_name(&format!(
        "gongji-log {log} {role} pid {}",
        std::process::id()
    ));
    config.connect(NoTls).map_err(|e| {
        let action = format!("connecting for log {log:?}");
        // No server said why (refused, timed out, unreachable): no connection could be made.
        match e.code() {
            None if !e.is_closed() => io_err(io::ErrorKind::NotConnected, &action, &e),
            _ => pg_err(&action, &e),
        }
    })
}

/// Pause between two attempts to connect again after a connection was lost.
pub(crate) const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

/// A new connection in place of one that was lost (a failover: pg_auto_failover's takes 40 to
/// 55 s here, during which no node accepts read-write sessions), tried every
/// [`RECONNECT_PAUSE`] until `deadline`; past it, the last attempt's error.
pub(crate) fn reconnect(
    config: &Config,
    log: &str,
    role: &str,
    deadline: Instant,
) -> Result<Client, LogError> {
    retry_until(deadline, || connect(config, log, role))
}

/// `attempt` until it succeeds, every [`RECONNECT_PAUSE`]; past `deadline`, its last error.
pub(crate) fn retry_until<T>(
    deadline: Instant,
    mut attempt: impl FnMut() -> Result<T, LogError>,
) -> Result<T, LogError> {
    loop {
        match attempt() {
            Ok(done) => return Ok(done),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(RECONNECT_PAUSE),
        }
    }
}

/// Whether `error` means the connection is gone (closed, reset, terminated by an operator or a
/// shutdown) or no longer on a primary (`25006`: the node turned read-only, a demoted primary):
/// whatever was in progress on it has an unknown outcome, and a new connection (to the primary,
/// with a multi-host string) is the way on.
pub(crate) fn connection_lost(client: &Client, error: &postgres::Error) -> bool {
    client.is_closed() || server_gone(error)
}

/// [`connection_lost`] as the error alone says it.
fn server_gone(error: &postgres::Error) -> bool {
    error.is_closed()
        || error.code().is_some_and(|code| {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P") || code == "25006"
        })
}

/// A PostgreSQL error as the log reports it: `Io`, naming what the log was doing; of kind
/// `ConnectionAborted` when it means the connection is gone or its server going away (as
/// [`connection_lost`] reads it), so that a caller can tell a database out of reach (a
/// failover) from a failure (the server answers 503 to the one, 500 to the other). Errors of
/// connecting with no word from a server are `NotConnected` ([`connect`]).
pub(crate) fn pg_err(action: &str, error: &postgres::Error) -> LogError {
    let kind = if server_gone(error) {
        io::ErrorKind::ConnectionAborted
    } else {
        io::ErrorKind::Other
    };
    io_err(kind, action, error)
}

fn io_err(kind: io::ErrorKind, action: &str, error: &postgres::Error) -> LogError {
    LogError::Io(io::Error::new(
        kind,
        format!("PostgreSQL, {action}: {}", describe(error)),
    ))
}

/// The error with what the server said, if it said anything (`Display` of a server error is
/// only "db error").
pub(crate) fn describe(error: &postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        return error.to_string();
    };
    let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" ({detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}

/// A bigint column's value as a position, version or count (never negative in a sound log).
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, String> {
    u64::try_from(value).map_err(|_| format!("{what} is negative ({value})"))
}

/// A position, version or count as a bigint (the log refuses to grow past `i64::MAX`).
pub(crate) fn to_i64(value: u64, what: &'static str) -> Result<i64, LogError> {
    i64::try_from(value).map_err(|_| LogError::TooLarge {
        what,
        actual: value,
        limit: i64::MAX as u64,
    })
}

/// A bytea column's value as a hash.
pub(crate) fn to_hash(bytes: &[u8], what: &str) -> Result<[u8; 32], String> {
    bytes
        .try_into()
        .map_err(|_| format!("{what} has {} bytes, not 32", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_string_is_never_repeated_in_its_error() {
        let error = parse("postgresql://user:secret@[::1:5432/db").expect_err("malformed");
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn defaults_bound_the_connect_and_notice_a_dead_peer_within_a_minute() {
        let config = parse("postgresql://u@127.0.0.1:5/db").expect("parse");
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(config.get_keepalives_idle(), KEEPALIVES_IDLE);
        let own = parse("postgresql://u@h/db?connect_timeout=3&keepalives_idle=30").expect("parse");
        assert_eq!(own.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(own.get_keepalives_idle(), Duration::from_secs(30));
    }
}
