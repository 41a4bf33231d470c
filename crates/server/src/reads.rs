//! The ledger the server holds, and the two ways in: [`Reads`] answers queries, [`Writer`]
//! applies command streams. Both wait for one lock around the one open [`Ledger`]: for now a
//! query waits while a command stream runs (see docs/service.md, "Not yet"). A read is
//! answered within `read_max`, its wait included, or refused with 503 (a query already running
//! then finishes on its thread, unseen); a stream waits as long for the lock. Answering queries from a read-only view of the last durable state, beside the writer,
//! changes this module only.
//!
//! Invariants: the server's only [`Ledger`] is in here, and a query is answered only after the
//! commands whose answers were sent are stored in the projections it reads (the writer commits
//! before it lets the lock go). A ledger that stopped (a stream cut with lines not made durable)
//! is dropped and opened again before anything else uses it.

use std::sync::Arc;
use std::time::Duration;

use gongji_ledger::Ledger;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::Instant;

use crate::error::ApiError;

/// The lock and what it guards: `None` once closed, or when opening again failed.
type Cell = Arc<Mutex<Option<Ledger>>>;

/// Opens the ledger (again): as the command line opens it.
pub type Opener = Arc<dyn Fn() -> Result<Ledger, String> + Send + Sync>;

#[derive(Clone)]
pub struct LedgerCell {
    open: Opener,
    ledger: Cell,
    read_max: Duration,
}

impl LedgerCell {
    pub fn new(open: Opener, ledger: Ledger, read_max: Duration) -> LedgerCell {
        LedgerCell {
            open,
            ledger: Arc::new(Mutex::new(Some(ledger))),
            read_max,
        }
    }

    /// The ledger, once no command stream holds it, if that is before `deadline`.
    async fn lock(
        &self,
        deadline: Instant,
        what: &str,
    ) -> Result<OwnedMutexGuard<Option<Ledger>>, ApiError> {
        match tokio::time::timeout_at(deadline, self.ledger.clone().lock_owned()).await {
            Ok(guard) => Ok(guard),
            Err(_) => Err(ApiError::busy(format!(
                "the ledger was busy with a command stream for {} s; {what} again later",
                self.read_max.as_secs_f64()
            ))),
        }
    }

    /// Closes the ledger (at shutdown): waits for the stream that holds it.
    pub async fn close(&self) -> Result<(), String> {
        let mut guard = self.ledger.clone().lock_owned().await;
        match guard.take() {
            Some(ledger) => tokio::task::spawn_blocking(move || ledger.close())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the ledger is not open (closed, or it could not be opened again: see the server's log)",
    )
}

/// The read side: runs a query on a blocking thread against the ledger.
#[derive(Clone)]
pub struct Reads(pub LedgerCell);

impl Reads {
    pub async fn run<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Ledger) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let deadline = Instant::now() + self.0.read_max;
        let guard = self.0.lock(deadline, "ask").await?;
        let asked =
            tokio::task::spawn_blocking(move || guard.as_ref().map(query).ok_or_else(unavailable));
        match tokio::time::timeout_at(deadline, asked).await {
            Ok(answer) => answer.map_err(ApiError::ledger)?,
            Err(_) => Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the answer took longer than {} s",
                    self.0.read_max.as_secs_f64()
                ),
            )),
        }
    }
}

/// The write side: the lock held for a whole command stream.
#[derive(Clone)]
pub struct Writer(pub LedgerCell);

/// The ledger held for writing, on a blocking thread.
pub struct Held {
    guard: OwnedMutexGuard<Option<Ledger>>,
    open: Opener,
}

impl Writer {
    pub async fn hold(&self) -> Result<Held, ApiError> {
        let deadline = Instant::now() + self.0.read_max;
        let guard = self.0.lock(deadline, "send the commands").await?;
        if guard.is_none() {
            return Err(unavailable());
        }
        Ok(Held {
            guard,
            open: self.0.open.clone(),
        })
    }
}

impl Held {
    pub fn ledger(&mut self) -> &mut Ledger {
        self.guard
            .as_mut()
            .expect("Writer::hold gives out only a held ledger, and only `finish` takes it")
    }

    /// Ends a stream: stores the projections so that queries see every line answered; if the
    /// stream stopped the ledger, drops it and opens it again. Blocking.
    pub fn finish(mut self) {
        let Some(mut ledger) = self.guard.take() else {
            return;
        };
        if ledger.commit().is_ok() {
            *self.guard = Some(ledger);
            return;
        }
        drop(ledger);
        match (self.open)() {
            Ok(ledger) => *self.guard = Some(ledger),
            Err(e) => eprintln!("gongji serve: cannot open the ledger again: {e}"),
        }
    }
}
