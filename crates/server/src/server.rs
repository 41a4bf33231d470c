//! Running the service: the runtime, the listener, the signals, and the order of shutdown.
//!
//! The bound address is printed on standard output as the first line
//! (`gongji serve: listening on http://ADDR`), so that a caller that asked for port 0 learns
//! the port. SIGTERM or SIGINT: stop accepting; command streams stop reading their bodies,
//! answer what they read (each line once durable) and end with an error line saying where
//! they stopped; the requests in flight finish; then the ledger is closed and `serve` returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use gongji_ledger::Ledger;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::app::{App, Limits};
use crate::listener::Bounded;
use crate::metrics::Metrics;
use crate::reads::{LedgerCell, Opener, Reads, Writer};
use crate::tokens::TokenSet;

/// Blocking threads at most (queries, access-log writes, command streams).
const BLOCKING_THREADS_MAX: usize = 64;

/// What `gongji serve` was asked.
pub struct ServeConfig {
    /// Where to listen, e.g. `127.0.0.1:8080` (port 0: any free port).
    pub listen: String,
    pub tokens: PathBuf,
    pub access_log: PathBuf,
    pub limits: Limits,
    /// Opens the ledger, as the command line does; called at start and to open it again after
    /// a stream stopped it.
    pub open: Opener,
}

/// `PATH_OF_DATA.SUFFIX`: a file beside the data directory (never in it: that is the log's).
pub fn beside(data: &Path, suffix: &str) -> Result<PathBuf, String> {
    let data = data.canonicalize().unwrap_or_else(|_| data.to_path_buf());
    let name = data.file_name().ok_or_else(|| {
        format!(
            "{} has no name to put a .{suffix} file beside: give the file's path",
            data.display()
        )
    })?;
    let mut file = name.to_owned();
    file.push(format!(".{suffix}"));
    Ok(data.with_file_name(file))
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
    let access = Arc::new(AccessLog::open(&config.access_log)?);
    let open = config.open.clone();
    let ledger: Ledger = tokio::task::spawn_blocking(move || open())
        .await
        .map_err(|e| e.to_string())??;
    let metrics = Arc::new(Metrics::default());
    metrics.durable_position.store(
        ledger.log().durable_end(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let cell = LedgerCell::new(config.open.clone(), ledger, config.limits.read_max);
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (stopping, shutdown) = watch::channel(false);
    let app = App {
        reads: Reads(cell.clone()),
        writer: Writer(cell.clone()),
        tokens,
        access,
        metrics,
        limits: config.limits,
        shutdown,
        openapi: Arc::new(OnceLock::new()),
    };
    let router = crate::openapi::router(app);
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "gongji serve: listening on http://{address}");
    let _ = out.flush();
    let signalled = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        let _ = stopping.send(true);
    };
    let listener = Bounded::new(listener, config.limits.connections_max);
    axum::serve(listener, router)
        .with_graceful_shutdown(signalled)
        .await
        .map_err(|e| format!("the server failed: {e}"))?;
    cell.close().await
}
