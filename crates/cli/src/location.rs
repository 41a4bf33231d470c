//! Where the ledger is: `--data` parsed once, into a data directory or a log in PostgreSQL.
//!
//! `--data` is a directory unless it starts with `postgres://` or `postgresql://`: then it is a
//! libpq connection URI (multi-host allowed, as `tools/pg-ha up` prints it), and `--pg-log`
//! names the log in that database (default [`PG_LOG_DEFAULT`]; the ledger is one log for all
//! its regions today). A directory whose name starts so is given as `./postgres:…`.
//!
//! Invariant: a URI's password never leaves this module unmasked except to the library that
//! connects. [`Location`]'s `Display` (what every message names) shows the URI through
//! [`masked`], which replaces the password of the user part and the value of every
//! `…password` parameter with `***`; `Debug` does the same.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::failure::Failure;

/// The log `--pg-log` names when it is not given.
pub const PG_LOG_DEFAULT: &str = "gongji";

/// What `--data` and `--pg-log` name.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A data directory: the embedded log and its projections.
    Dir(PathBuf),
    /// Log `log` in the PostgreSQL database `uri` names.
    Postgres(PgLocation),
}

/// A log in PostgreSQL: the connection URI (which may hold a password: shown only
/// [`masked`]) and the log's name.
#[derive(Clone, PartialEq, Eq)]
pub struct PgLocation {
    /// As given, for messages (always through [`masked`]).
    given: String,
    /// What the library connects with: `given`, with `PGPASSWORD` when it names no password.
    uri: String,
    pub log: String,
}

impl PgLocation {
    /// The connection URI, password included: for the library that connects, never for a
    /// message.
    pub fn uri(&self) -> &str {
        &self.uri
    }
}

impl Location {
    /// `--data` and `--pg-log` as given: a URI when `data` starts with `postgres://` or
    /// `postgresql://`, a directory otherwise (where `--pg-log` is refused: it would mean
    /// nothing there).
    pub fn parse(data: &Path, pg_log: Option<&str>) -> Result<Location, Failure> {
        let uri = data.to_str().filter(|text| is_uri(text));
        match (uri, pg_log) {
            (Some(uri), log) => Ok(Location::Postgres(PgLocation {
                given: uri.to_string(),
                uri: with_password(uri, std::env::var("PGPASSWORD").ok().as_deref()),
                log: log.unwrap_or(PG_LOG_DEFAULT).to_string(),
            })),
            (None, None) => Ok(Location::Dir(data.to_path_buf())),
            (None, Some(_)) => Err(Failure::bad_argument(format!(
                "--pg-log names a log in PostgreSQL, but --data {} is a directory (a \
                 PostgreSQL --data starts with postgres:// or postgresql://)",
                data.display()
            ))),
        }
    }

    /// The data directory, if the ledger is in one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Location::Dir(dir) => Some(dir),
            Location::Postgres(_) => None,
        }
    }

    /// The data directory, for `what` (a thing that exists only in a data directory); on
    /// PostgreSQL, refused naming `what` and `why`.
    pub fn require_dir(&self, what: &str, why: &str) -> Result<&Path, Failure> {
        match self {
            Location::Dir(dir) => Ok(dir),
            Location::Postgres(pg) => Err(Failure::bad_argument(format!(
                "{what} is not available with --data {}: {why}",
                masked(&pg.given)
            ))),
        }
    }
}

/// Whether `text` is a libpq connection URI (rather than a directory).
fn is_uri(text: &str) -> bool {
    ["postgres://", "postgresql://"].iter().any(|scheme| {
        text.len() >= scheme.len() && text[..scheme.len()].eq_ignore_ascii_case(scheme)
    })
}

/// How messages name the ledger: the directory, or `URI (log "NAME")` with the URI
/// [`masked`].
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::Postgres(pg) => write!(f, "{} (log {:?})", masked(&pg.given), pg.log),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

/// `uri` with `password` (`PGPASSWORD`, as libpq reads it) as its `password` parameter, when
/// `uri` names no password of its own (a password in the URI wins, as with libpq).
fn with_password(uri: &str, password: Option<&str>) -> String {
    match password {
        Some(password) if !password.is_empty() && masked(uri) == uri => {
            let separator = if uri.contains('?') { '&' } else { '?' };
            format!("{uri}{separator}password={}", percent_encoded(password))
        }
        _ => uri.to_string(),
    }
}

/// `text` with every byte but the URI's unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `uri` with its secrets replaced by `***`: the password of the user part
/// (`postgres://user:***@host/db`) and the value of every parameter whose name ends in
/// `password` (`password`, `sslpassword`), percent-encoded names included. What is not a
/// secret (users, hosts, ports, the database, other parameters) is kept, so the message still
/// says where. Parsers differ on an `@` or `/` left unencoded in a password, so everything
/// before the last `@` past the user's name (its first `:`, `/` or `?`) is masked.
pub fn masked(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://").map(|at| at + 3) else {
        return uri.to_string();
    };
    let (scheme, rest) = uri.split_at(scheme_end);
    let (user, rest) = match rest.rfind('@') {
        Some(at) => {
            let user_info = &rest[..at];
            let name_end = user_info.find([':', '/', '?']).unwrap_or(user_info.len());
            let hidden = if name_end < user_info.len() {
                ":***"
            } else {
                ""
            };
            (
                format!("{}{hidden}@", &user_info[..name_end]),
                &rest[at + 1..],
            )
        }
        None => (String::new(), rest),
    };
    let mut shown = format!("{scheme}{user}");
    match rest.split_once('?') {
        Some((before, query)) => {
            let parameters: Vec<String> = query.split('&').map(masked_parameter).collect();
            shown.push_str(&format!("{before}?{}", parameters.join("&")));
        }
        None => shown.push_str(rest),
    }
    shown
}

/// `NAME=VALUE` with the value replaced by `***` when NAME (percent-decoded, any case) ends in
/// `password`.
fn masked_parameter(parameter: &str) -> String {
    let name = parameter.split('=').next().unwrap_or(parameter);
    if percent_decoded(name)
        .to_ascii_lowercase()
        .ends_with("password")
    {
        format!("{name}=***")
    } else {
        parameter.to_string()
    }
}

/// `text` with its `%XX` escapes decoded (an escape that is not one is kept as it is).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escape = bytes
            .get(at + 1..at + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[at], escape) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_is_postgres_and_anything_else_a_directory() {
        let pg = Location::parse(Path::new("postgresql://u@h1:1,h2:2/db"), None).unwrap();
        let Location::Postgres(pg) = pg else {
            panic!("a URI is PostgreSQL")
        };
        assert_eq!(
            (pg.given.as_str(), pg.log.as_str()),
            ("postgresql://u@h1:1,h2:2/db", "gongji")
        );
        let named = Location::parse(Path::new("POSTGRES://h/db"), Some("500000")).unwrap();
        assert!(matches!(named, Location::Postgres(pg) if pg.log == "500000"));
        for dir in [
            "data",
            "./postgres://h/db",
            "postgres:/h",
            "/tmp/postgresql",
        ] {
            assert_eq!(
                Location::parse(Path::new(dir), None).unwrap(),
                Location::Dir(PathBuf::from(dir))
            );
        }
        let refused = Location::parse(Path::new("data"), Some("x")).unwrap_err();
        assert!(refused.message.contains("--pg-log"), "{}", refused.message);
    }

    #[test]
    fn pgpassword_is_taken_only_when_the_uri_names_no_password() {
        let cases = [
            (
                "postgres://u@h/db",
                Some("p w&%"),
                "postgres://u@h/db?password=p%20w%26%25",
            ),
            (
                "postgres://u@h/db?x=1",
                Some("pw"),
                "postgres://u@h/db?x=1&password=pw",
            ),
            (
                "postgres://u:mine@h/db",
                Some("pw"),
                "postgres://u:mine@h/db",
            ),
            (
                "postgres://u@h/db?password=mine",
                Some("pw"),
                "postgres://u@h/db?password=mine",
            ),
            ("postgres://u@h/db", Some(""), "postgres://u@h/db"),
            ("postgres://u@h/db", None, "postgres://u@h/db"),
        ];
        for (uri, password, connects) in cases {
            assert_eq!(with_password(uri, password), connects, "{uri} {password:?}");
        }
    }

    #[test]
    fn masking_hides_every_password_and_keeps_the_rest() {
        let cases = [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            (
                "postgresql://u:p%40ss@h1:1,h2:2/db?target_session_attrs=read-write",
                "postgresql://u:***@h1:1,h2:2/db?target_session_attrs=read-write",
            ),
            (
                "postgres://u@h/db?password=secret&sslpassword=two&PassWord=three&pass%77ord=four",
                "postgres://u@h/db?password=***&sslpassword=***&PassWord=***&pass%77ord=***",
            ),
            ("postgres://h/db", "postgres://h/db"),
            ("postgres://u:a@b@h/db?x=1", "postgres://u:***@h/db?x=1"),
            ("postgres://u:secret@", "postgres://u:***@"),
            ("postgres://h?password", "postgres://h?password=***"),
            ("postgres://u:pa/ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:pa?ss@h/db", "postgres://u:***@h/db"),
            ("postgres://h/db?password=a@b", "postgres://h:***@b"),
        ];
        for (uri, shown) in cases {
            assert_eq!(masked(uri), shown, "{uri}");
        }
        let location = Location::parse(Path::new("postgres://u:secret@h/db"), None).unwrap();
        for said in [location.to_string(), format!("{location:?}")] {
            assert!(!said.contains("secret"), "{said}");
            assert!(said.contains("postgres://u:***@h/db"), "{said}");
        }
    }
}
