//! `gongji serve` and `gongji token`: the arguments of the service and of its tokens, and the
//! calls into `gongji-server` (which owns everything the service does). The token file and the
//! access log default to `DIR/tokens` and `DIR/access-log`, in the data directory, made and
//! read only through `gongji_log::service_files` (the log's rules for its directory). With the
//! ledger in PostgreSQL there is no data directory: `--tokens FILE` and `--access-log FILE` must
//! be given (files of the server's machine), and no `SERVER` note is written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use gongji_ledger::regions::RegionMap;
use gongji_log::service_files::{self, ACCESS_LOG_FILE, TOKENS_FILE};
use gongji_server::roles::Role;
use gongji_server::{tokens, Limits, MapConfig, ServeConfig, ServedLedgers, TlsFiles};

use crate::failure::Failure;
use crate::location::Location;
use crate::open::{log_options, open_or_create, open_view};
use crate::print;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where to listen: ADDRESS:PORT (port 0 picks a free one; the first line printed says
    /// which).
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// The token file (default: DIR/tokens).
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// The access log (default: DIR/access-log).
    #[arg(long, value_name = "FILE")]
    access_log: Option<PathBuf>,
    /// Connections open at once; more wait to be accepted until one closes.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections_max: u32,
    /// Seconds a command stream may leave its answers unread before it is ended.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    answer_stall_secs: f64,
    /// Seconds a command stream may send no body before it is ended.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    body_idle_secs: f64,
    /// Seconds a read may take (then 503; reads never wait for a command stream); a command
    /// stream waits as long for another stream to let the ledger go.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    read_timeout_secs: f64,
    /// Serve HTTPS with this certificate chain (PEM; the server's certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address that is not loopback (tokens then cross the network in
    /// clear: only behind a TLS proxy on a network you trust).
    #[arg(long)]
    insecure_http: bool,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Add a token; it is printed once and only its hash is kept.
    Add {
        /// The token's name (letters, digits, '.', '_', '-').
        name: String,
        /// operator, clerk, auditor or reconciler.
        #[arg(long)]
        role: String,
        /// The token file (default: DIR/tokens).
        #[arg(long, value_name = "FILE")]
        tokens: Option<PathBuf>,
    },
    /// List the tokens: name, role, created (never a token or its hash).
    List {
        /// The token file (default: DIR/tokens).
        #[arg(long, value_name = "FILE")]
        tokens: Option<PathBuf>,
    },
    /// Revoke a token: a running server refuses it from its next request on.
    Revoke {
        /// The token's name.
        name: String,
        /// The token file (default: DIR/tokens).
        #[arg(long, value_name = "FILE")]
        tokens: Option<PathBuf>,
    },
}

/// The file given, or `DIR/NAME` (`flag` gives another); with `create_dir`, the data directory
/// is created if absent (for `token add` before the first `apply`). With the ledger in
/// PostgreSQL there is no `DIR`: the file must be given.
fn file_in(
    data: &Location,
    given: &Option<PathBuf>,
    name: &str,
    flag: &str,
    create_dir: bool,
) -> Result<PathBuf, Failure> {
    if let Some(path) = given {
        return Ok(path.clone());
    }
    let dir = data.require_dir(
        &format!("the default {name} file (DIR/{name})"),
        &format!(
            "give {flag} FILE (the ledger is in the database; this server's {name} file is \
             kept on its machine)"
        ),
    )?;
    match create_dir {
        true => service_files::service_path(dir, name).map_err(|e| Failure::io(e.to_string())),
        false => Ok(dir.join(name)),
    }
}

fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag}: {value} is not a positive number of seconds"))
}

/// `gongji serve`: serves until SIGTERM or SIGINT; exit 0 once the ledger is closed.
pub fn serve(data: &Location, args: &ServeArgs) -> Result<ExitCode, Failure> {
    let (writer_at, reader_at) = (data.clone(), data.clone());
    let ledgers = ServedLedgers::One {
        open: Arc::new(move || open_or_create(&writer_at).map_err(|failure| failure.message)),
        open_read_only: Arc::new(move || open_view(&reader_at).map_err(|failure| failure.message)),
    };
    let config = ServeConfig {
        note_dir: data.dir().map(Path::to_path_buf),
        tokens: file_in(data, &args.tokens, TOKENS_FILE, "--tokens", false)?,
        access_log: file_in(
            data,
            &args.access_log,
            ACCESS_LOG_FILE,
            "--access-log",
            false,
        )?,
        ..config(args, ledgers)?
    };
    gongji_server::serve(config)?;
    Ok(ExitCode::SUCCESS)
}

/// `gongji --regions MAP serve`: every region's ledger of the map served, the relay running
/// beside the requests. The map has no data directory: `--tokens` and `--access-log` are
/// given, and no `SERVER` note is written.
pub fn serve_map(map: RegionMap, args: &ServeArgs) -> Result<ExitCode, Failure> {
    let given = |file: &Option<PathBuf>, flag: &str| {
        file.clone().ok_or_else(|| {
            Failure::bad_argument(format!(
                "with --regions, give {flag} FILE (a region map has no data directory to keep \
                 it in)"
            ))
        })
    };
    let (tokens, access_log) = (
        given(&args.tokens, "--tokens")?,
        given(&args.access_log, "--access-log")?,
    );
    let (writing, reading) = (map.clone(), map.clone());
    let map_config = MapConfig {
        read_options: log_options(false),
        open: Arc::new(move || {
            crate::regions::open_all(writing.clone()).map_err(|failure| failure.message)
        }),
        open_view: Arc::new(move |region: &str| {
            let location = crate::regions::location_of(&reading, region);
            let view = location.and_then(|location| open_view(&location));
            view.map_err(|failure| failure.message)
        }),
        map,
    };
    let config = ServeConfig {
        note_dir: None,
        tokens,
        access_log,
        ..config(args, ServedLedgers::Map(map_config))?
    };
    gongji_server::serve(config)?;
    Ok(ExitCode::SUCCESS)
}

/// The service's configuration from its arguments; the token file and the access log are
/// left for the caller to say.
fn config(args: &ServeArgs, ledgers: ServedLedgers) -> Result<ServeConfig, Failure> {
    let limits = Limits {
        connections_max: args.connections_max as usize,
        read_max: seconds("--read-timeout-secs", args.read_timeout_secs)?,
        answer_stall_max: seconds("--answer-stall-secs", args.answer_stall_secs)?,
        body_idle_max: seconds("--body-idle-secs", args.body_idle_secs)?,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    Ok(ServeConfig {
        note_dir: None,
        listen: args.listen.clone(),
        tokens: PathBuf::new(),
        access_log: PathBuf::new(),
        limits,
        ledgers,
        tls,
        insecure_http: args.insecure_http,
    })
}

/// `gongji --regions MAP token …`: the token file must be named (a map has no data directory).
pub fn token_over_map(action: &TokenCmd) -> Result<ExitCode, Failure> {
    let (TokenCmd::Add { tokens, .. }
    | TokenCmd::List { tokens }
    | TokenCmd::Revoke { tokens, .. }) = action;
    match tokens {
        // Named, the file is used as given: the location is never asked for it.
        Some(file) => token(&Location::Dir(file.clone()), action),
        None => Err(Failure::bad_argument(
            "with --regions, give --tokens FILE (a region map has no data directory to keep it in)",
        )),
    }
}

/// `gongji token add|list|revoke`.
pub fn token(data: &Location, action: &TokenCmd) -> Result<ExitCode, Failure> {
    match action {
        TokenCmd::Add { name, role, tokens } => {
            let path = file_in(data, tokens, TOKENS_FILE, "--tokens", true)?;
            let token = tokens::add(&path, name, Role::parse(role)?)?;
            print::text_line(&token)?;
        }
        TokenCmd::List { tokens } => {
            let path = file_in(data, tokens, TOKENS_FILE, "--tokens", false)?;
            for entry in tokens::Tokens::read(&path)?.entries() {
                let role = entry.role.as_str();
                print::text_line(&format!("{}  {role}  {}", entry.name, entry.created))?;
            }
        }
        TokenCmd::Revoke { name, tokens } => {
            let path = file_in(data, tokens, TOKENS_FILE, "--tokens", false)?;
            tokens::revoke(&path, name)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
