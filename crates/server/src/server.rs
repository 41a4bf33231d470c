//! Running the service: the runtime, the listener, the signals, and the order of shutdown.
//!
//! The bound address is printed on standard output as the first line
//! (`gongji serve: listening on http://ADDR`, `https://` with TLS), so that a caller that
//! asked for port 0 learns the port. While it serves a data directory, `DIR/SERVER` names it
//! (`PID URL`, written through `gongji_log::service_files` once the ledger is open and the port
//! bound, removed after the ledger is closed at a clean stop), so that a second writer's refusal
//! names the server (a ledger in PostgreSQL has no such note: a second writer, a second
//! server among them, is refused by the log's lock alone). Plain HTTP is served only on a loopback address unless
//! `insecure_http` says otherwise. SIGTERM or SIGINT: stop accepting; command streams stop reading their bodies,
//! answer what they read (each line once durable) and end with an error line saying where
//! they stopped; the requests in flight finish; then the ledger is closed and `serve` returns.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use gongji_ledger::Ledger;
use gongji_log::service_files::{self, ServerNote};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::app::{App, Limits, Placement};
use crate::listener::{Bounded, TlsBounded};
use crate::map::{MapConfig, MapService};
use crate::metrics::Metrics;
use crate::reads::{LedgerCell, Opener, Reads, Writer};
use crate::tls::TlsFiles;
use crate::tokens::TokenSet;

/// Blocking threads at most (queries, access-log writes, command streams).
const BLOCKING_THREADS_MAX: usize = 64;

/// What `gongji serve` was asked.
pub struct ServeConfig {
    /// The data directory, where `SERVER` names this server while it holds the ledger; `None`
    /// when the ledger is not in a directory (PostgreSQL): no note is written, and a refused
    /// writer is told only that another writer holds the log.
    pub note_dir: Option<PathBuf>,
    /// Where to listen, e.g. `127.0.0.1:8080` (port 0: any free port).
    pub listen: String,
    pub tokens: PathBuf,
    pub access_log: PathBuf,
    pub limits: Limits,
    /// The ledger served, or the region map's ledgers.
    pub ledgers: ServedLedgers,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Serve plain HTTP on an address that is not loopback (refused otherwise).
    pub insecure_http: bool,
}

/// What `gongji serve` serves.
pub enum ServedLedgers {
    One {
        /// Opens the ledger, as the command line does; called at start and to open it again
        /// after a stream stopped it.
        open: Opener,
        /// Opens the ledger read-only, beside the writer, as the command line's queries do:
        /// the view queries are answered from.
        open_read_only: Opener,
    },
    /// Every region's ledger of a region map (`--regions MAP`): see the `map` module.
    Map(MapConfig),
}

/// Serves until SIGTERM or SIGINT, then closes the ledger.
pub fn serve(config: ServeConfig) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS_MAX)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(run(config))
}

async fn run(config: ServeConfig) -> Result<(), String> {
    let tokens = Arc::new(TokenSet::open(&config.tokens)?);
    let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    let metrics = Arc::new(Metrics::default());
    match &config.ledgers {
        ServedLedgers::One {
            open,
            open_read_only,
        } => {
            let (open, open_read_only) = (open.clone(), open_read_only.clone());
            run_one(&config, open, open_read_only, tokens, tls, metrics).await
        }
        ServedLedgers::Map(map) => run_map(&config, map.clone(), tokens, tls, metrics).await,
    }
}

async fn run_one(
    config: &ServeConfig,
    open: Opener,
    open_read_only: Opener,
    tokens: Arc<TokenSet>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Arc<Metrics>,
) -> Result<(), String> {
    // The writer hands what it makes durable to the read view: its refresh then indexes
    // entries instead of scanning records the writer has just written, and its fold folds
    // the writer's events instead of reading and decoding those records.
    let handover = Handover {
        index: Arc::new(gongji_log::Handover::new()),
        events: Arc::new(gongji_ledger::EventHandover::new()),
    };
    let open = sharing(open, handover.clone());
    let open_read_only = sharing(open_read_only, handover);
    let opening = open.clone();
    // The ledger first: its open creates the data directory the access log may be kept in.
    let ledger: Ledger = tokio::task::spawn_blocking(move || opening())
        .await
        .map_err(|e| e.to_string())??;
    metrics.durable_position.store(
        ledger.log().durable_end(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let cell = LedgerCell::new(open, ledger, config.limits.read_max);
    // From here every path closes the ledger, and the read view, on a blocking thread: a
    // ledger in PostgreSQL holds connections of the synchronous client, which must never be
    // dropped on the runtime's threads (its drop blocks on a runtime of its own).
    let mut published = false;
    let served = serve_ledger(
        config,
        open_read_only,
        &cell,
        tokens,
        tls,
        metrics,
        &mut published,
    )
    .await;
    let closed = cell.close().await;
    let withdrawn = match (&config.note_dir, published) {
        (Some(dir), true) => service_files::withdraw_server(dir)
            .map_err(|e| format!("cannot remove the server's note: {e}")),
        _ => Ok(()),
    };
    served.and(closed).and(withdrawn)
}

/// Serves a region map: its writers and views opened, the relay run beside the requests;
/// closed (views, then writers, on blocking threads) whatever happens.
async fn run_map(
    config: &ServeConfig,
    map: MapConfig,
    tokens: Arc<TokenSet>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Arc<Metrics>,
) -> Result<(), String> {
    let read_max = config.limits.read_max;
    let service = tokio::task::spawn_blocking(move || MapService::open(map, read_max))
        .await
        .map_err(|e| e.to_string())??;
    let service = Arc::new(service);
    let (stopping, shutdown) = watch::channel(false);
    let relay = tokio::spawn(service.clone().relay_until(shutdown.clone()));
    let served = async {
        let access = Arc::new(AccessLog::open(&config.access_log)?);
        let placement = Placement::Map(service.clone());
        let app = App::new(placement, tokens, access, metrics, config.limits, shutdown);
        let mut published = false;
        listen(config, app, tls, stopping, &mut published).await
    }
    .await;
    relay.abort();
    let _stopped = relay.await;
    let closed = service.close().await;
    served.and(closed)
}

/// What the writer hands to the read view: each durable batch's index entries and events.
#[derive(Clone)]
struct Handover {
    index: Arc<gongji_log::Handover>,
    events: Arc<gongji_ledger::EventHandover>,
}

/// `open`, then the ledger opened shares `handover` (see `Ledger::share_handover` and
/// `Ledger::share_events`).
fn sharing(open: Opener, handover: Handover) -> Opener {
    Arc::new(move || {
        let mut ledger = open()?;
        ledger.share_handover(handover.index.clone());
        ledger.share_events(handover.events.clone());
        Ok(ledger)
    })
}

/// Opens the access log and the read view beside the ledger `cell` holds, and serves until
/// stopped; the read view is closed (on a blocking thread) whatever happens. `published`: the
/// `SERVER` note was written.
async fn serve_ledger(
    config: &ServeConfig,
    open_read_only: Opener,
    cell: &LedgerCell,
    tokens: Arc<TokenSet>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Arc<Metrics>,
    published: &mut bool,
) -> Result<(), String> {
    let access = Arc::new(AccessLog::open(&config.access_log)?);
    let read_max = config.limits.read_max;
    let reads_metrics = metrics.clone();
    let reads =
        tokio::task::spawn_blocking(move || Reads::open(open_read_only, reads_metrics, read_max))
            .await
            .map_err(|e| e.to_string())??;
    let (stopping, shutdown) = watch::channel(false);
    let placement = Placement::One {
        reads: reads.clone(),
        writer: Writer(cell.clone()),
    };
    let app = App::new(placement, tokens, access, metrics, config.limits, shutdown);
    // Monitoring follows the log beside the change feed (the versions asked for at /v1/flags).
    let monitoring = tokio::spawn(crate::flags::follow(app.clone()));
    let served = listen(config, app, tls, stopping, published).await;
    monitoring.abort();
    let _stopped = monitoring.await;
    reads.close().await;
    served
}

/// Binds the address, publishes the `SERVER` note (setting `published`), prints the first line
/// and serves `app` until SIGTERM or SIGINT.
async fn listen(
    config: &ServeConfig,
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stopping: watch::Sender<bool>,
    published: &mut bool,
) -> Result<(), String> {
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    refuse_plain_http_beyond_loopback(address, tls.is_some(), config.insecure_http)?;
    let router = crate::openapi::router(app);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{address}");
    let note = ServerNote {
        pid: std::process::id(),
        url: url.clone(),
    };
    // The handlers are in place before anyone can learn the address: a SIGTERM sent as soon as
    // the first line is read stops the server cleanly, never by the signal's default action.
    let signalled = stop_signal(stopping)?;
    if let Some(dir) = &config.note_dir {
        service_files::publish_server(dir, &note)
            .map_err(|e| format!("cannot write the server's note in {}: {e}", dir.display()))?;
        *published = true;
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "gongji serve: listening on {url}");
    let _ = out.flush();
    let listener = Bounded::new(listener, config.limits.connections_max);
    match tls {
        Some(acceptor) => serve_on(TlsBounded::new(listener, acceptor), router, signalled).await,
        None => serve_on(listener, router, signalled).await,
    }
}

/// Resolves at SIGTERM or SIGINT, once it has told every stream to stop.
fn stop_signal(stopping: watch::Sender<bool>) -> Result<impl Future<Output = ()>, String> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        let _ = stopping.send(true);
    })
}

async fn serve_on<L>(
    listener: L,
    router: axum::Router,
    signalled: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router)
        .with_graceful_shutdown(signalled)
        .await
        .map_err(|e| format!("the server failed: {e}"))
}

/// Plain HTTP carries the tokens in clear: only on a loopback address, unless the operator
/// says otherwise (`--insecure-http`, e.g. behind a proxy on a private network).
fn refuse_plain_http_beyond_loopback(
    address: SocketAddr,
    tls: bool,
    insecure_http: bool,
) -> Result<(), String> {
    if tls || insecure_http || address.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to serve plain HTTP on {address}, which is not a loopback address: tokens \
         would cross the network in clear. Give --tls-cert and --tls-key, or put a TLS proxy \
         in front and pass --insecure-http"
    ))
}
