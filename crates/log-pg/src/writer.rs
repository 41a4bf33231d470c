//! The writer thread: commits handed-over batches in order on the writer's session, off the
//! caller's thread, and reports how far they are committed ([`Progress`], which the log's
//! [`SyncTicket`](gongji_log::SyncTicket)s wait on).
//!
//! The thread completes the hash chain (each record's previous hash and hash, blake3 over the
//! file log's frame body: `Record::recompute_hash`) just before encoding the rows, as the file
//! log's syncer does: it is the one place that sees every batch in order. The batches queued
//! when it wakes are committed together, in one transaction (group commit): a sync's units are
//! never split across transactions.
//!
//! Invariants as the code holds them: batch `seq` is reported durable only after the
//! transaction holding it committed (see `session`), and only with every batch before it; a
//! batch that fails fails every later one (they chain onto it), and nothing after it is
//! committed; the chain hash moves on only past a committed batch.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use gongji_log::{LogError, Record, SyncProgress};

use crate::copy;
use crate::session::{Head, Sealed, Session};

/// Batches handed over and not yet known committed, at most (`sync_start` waits for the oldest
/// beyond it).
pub(crate) const IN_FLIGHT_MAX: usize = 4;

/// One `sync_start`'s records, positions assigned, chain not yet computed.
pub(crate) struct Batch {
    pub seq: u64,
    pub records: Vec<Record>,
}

#[derive(Clone, Debug)]
struct Failure {
    /// The first batch lost; it and every later one are.
    seq: u64,
    kind: io::ErrorKind,
    message: String,
}

struct State {
    queue: VecDeque<Batch>,
    /// Every batch with `seq <= durable_seq` is committed, and the log's head is `durable`.
    durable_seq: u64,
    durable: Head,
    failed: Option<Failure>,
    shutdown: bool,
}

/// What the log, its tickets and the writer thread share.
pub(crate) struct Progress {
    state: Mutex<State>,
    /// The thread has work (queue or shutdown).
    work: Condvar,
    /// `durable_seq` or `failed` changed.
    changed: Condvar,
}

/// How far the batches are committed, as [`Progress::snapshot`] reads it.
pub(crate) struct Snapshot {
    pub durable_seq: u64,
    pub durable: Head,
    pub failed: Option<String>,
}

impl Progress {
    /// Progress with nothing handed over yet, the log at `head`.
    pub fn new(head: Head) -> Arc<Progress> {
        Arc::new(Progress {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                durable_seq: 0,
                durable: head,
                failed: None,
                shutdown: false,
            }),
            work: Condvar::new(),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            durable_seq: state.durable_seq,
            durable: state.durable,
            failed: state.failed.as_ref().map(|f| f.message.clone()),
        }
    }

    fn fail(&self, failure: Failure) {
        let mut state = self.lock();
        if state.failed.as_ref().is_none_or(|f| failure.seq < f.seq) {
            state.failed = Some(failure);
        }
        drop(state);
        self.changed.notify_all();
    }
}

fn settled(state: &State, seq: u64) -> Option<Result<(), LogError>> {
    if state.durable_seq >= seq {
        return Some(Ok(()));
    }
    match &state.failed {
        Some(f) if f.seq <= seq => {
            Some(Err(LogError::Io(io::Error::new(f.kind, f.message.clone()))))
        }
        _ => None,
    }
}

impl SyncProgress for Progress {
    fn wait_for(&self, seq: u64) -> Result<(), LogError> {
        let mut state = self.lock();
        loop {
            if let Some(result) = settled(&state, seq) {
                return result;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn poll(&self, seq: u64) -> Option<Result<(), LogError>> {
        settled(&self.lock(), seq)
    }
}

/// The writer thread and what it shares.
pub(crate) struct Writer {
    pub progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread on `session`, the log at `head`.
    pub fn start(session: Session, head: Head) -> Result<Writer, LogError> {
        let progress = Progress::new(head);
        let shared = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("gongji-log-pg-writer".into())
            .spawn(move || run(&shared, session, head))
            .map_err(|e| {
                LogError::Io(io::Error::new(
                    e.kind(),
                    format!("starting the log's writer thread: {e}"),
                ))
            })?;
        Ok(Writer {
            progress,
            thread: Some(thread),
        })
    }

    pub fn submit(&self, batch: Batch) {
        self.progress.lock().queue.push_back(batch);
        self.progress.work.notify_one();
    }

    /// Lets the thread commit what is queued, then ends it (and its session: the lock is
    /// released).
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.progress.lock().shutdown = true;
        self.progress.work.notify_all();
        let _ = thread.join();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// If the thread unwinds, every waiter learns it instead of waiting forever.
struct PanicGuard<'a>(&'a Progress);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let seq = self.0.lock().durable_seq + 1;
            self.0.fail(Failure {
                seq,
                kind: io::ErrorKind::Other,
                message: "the log's writer thread panicked".into(),
            });
        }
    }
}

fn run(progress: &Progress, mut session: Session, mut head: Head) {
    let _guard = PanicGuard(progress);
    loop {
        let mut batches: Vec<Batch> = {
            let mut state = progress.lock();
            while state.queue.is_empty() && !state.shutdown {
                state = progress
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.queue.is_empty() {
                drop(state);
                session.release();
                return;
            }
            if state.failed.is_some() {
                // Lost with the batch that failed before them.
                state.queue.clear();
                continue;
            }
            state.queue.drain(..).collect()
        };
        let first_seq = batches[0].seq;
        let last_seq = batches[batches.len() - 1].seq;
        let sealed = seal(session.log(), &mut batches, head);
        match session.commit(&sealed) {
            Ok(()) => {
                head = sealed.to;
                let mut state = progress.lock();
                state.durable_seq = last_seq;
                state.durable = head;
                drop(state);
                progress.changed.notify_all();
            }
            Err(e) => progress.fail(Failure {
                seq: first_seq,
                kind: match &e {
                    LogError::Io(io) => io.kind(),
                    _ => io::ErrorKind::Other,
                },
                message: e.to_string(),
            }),
        }
    }
}

/// Completes the chain of `batches` from `head` and encodes their rows.
fn seal(log: &str, batches: &mut [Batch], head: Head) -> Sealed {
    let mut rows = Vec::new();
    copy::begin(&mut rows);
    let mut to = head;
    let mut count = 0u64;
    for record in batches.iter_mut().flat_map(|b| b.records.iter_mut()) {
        assert_eq!(
            record.position, to.end_position,
            "a batch's positions continue the log's"
        );
        record.prev_hash = to.last_hash;
        record.hash = record.recompute_hash();
        to = Head {
            end_position: record.position + 1,
            last_hash: record.hash,
        };
        copy::row(&mut rows, log, record);
        count += 1;
    }
    copy::end(&mut rows);
    Sealed {
        from: head,
        to,
        rows: count,
        copy: rows,
    }
}
