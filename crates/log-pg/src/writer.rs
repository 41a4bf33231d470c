//! The writer's two threads: they commit handed-over batches in order on the writer's session,
//! off the caller's thread, and report how far they are committed ([`Progress`], which the
//! log's [`SyncTicket`](gongji_log::SyncTicket)s wait on).
//!
//! * the **sealer** completes each batch's hash chain (each record's previous hash and hash,
//!   blake3 over the file log's frame body: `Record::recompute_hash`) and encodes its rows, as
//!   the file log's syncer does: it is the one place that sees every batch in order;
//! * the **committer** commits the sealed batches waiting when it wakes in one transaction
//!   (group commit; a sync's units are never split across transactions) while the sealer
//!   seals the next ones.
//!
//! Invariants as the code holds them: batch `seq` is reported durable only after the
//! transaction holding it committed (see `session`), and only with every batch before it; a
//! batch that fails fails every later one (they chain onto it), and nothing after it is
//! committed (the committer drops what was sealed after it).

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
    /// Handed over, not yet sealed.
    queue: VecDeque<Batch>,
    /// Sealed, not yet committed: (first seq, last seq, rows).
    sealed: VecDeque<(u64, u64, Sealed)>,
    /// The sealer has ended (after `shutdown`, with the queue empty).
    sealer_done: bool,
    /// Every batch with `seq <= durable_seq` is committed, and the log's head is `durable`.
    durable_seq: u64,
    durable: Head,
    failed: Option<Failure>,
    shutdown: bool,
}

/// What the log, its tickets and the writer's threads share.
pub(crate) struct Progress {
    state: Mutex<State>,
    /// The sealer has work (queue or shutdown).
    work: Condvar,
    /// The committer has work (sealed batches, or the sealer done).
    to_commit: Condvar,
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
                sealed: VecDeque::new(),
                sealer_done: false,
                durable_seq: 0,
                durable: head,
                failed: None,
                shutdown: false,
            }),
            work: Condvar::new(),
            to_commit: Condvar::new(),
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

    fn wait<'a>(&self, condvar: &Condvar, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        condvar.wait(state).unwrap_or_else(PoisonError::into_inner)
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

/// The writer's threads and what they share.
pub(crate) struct Writer {
    pub progress: Arc<Progress>,
    threads: Vec<JoinHandle<()>>,
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, LogError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|e| {
            LogError::Io(io::Error::new(
                e.kind(),
                format!("starting the log's {name} thread: {e}"),
            ))
        })
}

impl Writer {
    /// Starts the threads on `session`, the log at `head`.
    pub fn start(session: Session, head: Head) -> Result<Writer, LogError> {
        let progress = Progress::new(head);
        let log = session.log().to_owned();
        let shared = Arc::clone(&progress);
        let committer = spawn("gongji-log-pg-commit", move || {
            run_committer(&shared, session)
        })?;
        let mut writer = Writer {
            progress: Arc::clone(&progress),
            threads: vec![committer],
        };
        let shared = Arc::clone(&progress);
        match spawn("gongji-log-pg-seal", move || {
            run_sealer(&shared, &log, head)
        }) {
            Ok(sealer) => writer.threads.push(sealer),
            Err(e) => {
                // The committer waits for a sealer that never ran: end it.
                progress.lock().sealer_done = true;
                writer.stop();
                return Err(e);
            }
        }
        Ok(writer)
    }

    pub fn submit(&self, batch: Batch) {
        self.progress.lock().queue.push_back(batch);
        self.progress.work.notify_one();
    }

    /// Lets the threads commit what is queued, then ends them (and the session: the lock is
    /// released).
    pub fn stop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.progress.lock().shutdown = true;
        self.progress.work.notify_all();
        self.progress.to_commit.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// If a thread unwinds, every waiter learns it instead of waiting forever.
struct PanicGuard<'a> {
    progress: &'a Progress,
    sealer: bool,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let seq = self.progress.lock().durable_seq + 1;
            self.progress.fail(Failure {
                seq,
                kind: io::ErrorKind::Other,
                message: "a thread of the log's writer panicked".into(),
            });
        }
        if self.sealer {
            self.progress.lock().sealer_done = true;
            self.progress.to_commit.notify_all();
        }
    }
}

/// Seals each handed-over batch in order and passes it to the committer.
fn run_sealer(progress: &Progress, log: &str, mut head: Head) {
    let _guard = PanicGuard {
        progress,
        sealer: true,
    };
    loop {
        let mut batches: Vec<Batch> = {
            let mut state = progress.lock();
            while state.queue.is_empty() && !state.shutdown {
                state = progress.wait(&progress.work, state);
            }
            if state.queue.is_empty() {
                return;
            }
            state.queue.drain(..).collect()
        };
        if progress.lock().failed.is_some() {
            // Lost with the batch that failed before them.
            continue;
        }
        let first_seq = batches[0].seq;
        let last_seq = batches[batches.len() - 1].seq;
        let sealed = seal(log, &mut batches, head);
        head = sealed.to;
        progress
            .lock()
            .sealed
            .push_back((first_seq, last_seq, sealed));
        progress.to_commit.notify_one();
    }
}

/// Commits the sealed batches waiting, together, in order; ends the session when done.
fn run_committer(progress: &Progress, mut session: Session) {
    let _guard = PanicGuard {
        progress,
        sealer: false,
    };
    loop {
        let waiting: Vec<(u64, u64, Sealed)> = {
            let mut state = progress.lock();
            while state.sealed.is_empty() && !state.sealer_done {
                state = progress.wait(&progress.to_commit, state);
            }
            if state.sealed.is_empty() {
                drop(state);
                session.release();
                return;
            }
            state.sealed.drain(..).collect()
        };
        if progress.lock().failed.is_some() {
            continue;
        }
        let first_seq = waiting[0].0;
        let last_seq = waiting[waiting.len() - 1].1;
        let sealed = Sealed::merge(waiting.into_iter().map(|(_, _, s)| s));
        match session.commit(&sealed) {
            Ok(()) => {
                let mut state = progress.lock();
                state.durable_seq = last_seq;
                state.durable = sealed.to;
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
    Sealed {
        from: head,
        to,
        rows: count,
        copy: rows,
    }
}
