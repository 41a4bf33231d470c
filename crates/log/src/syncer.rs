//! The background syncer: makes handed-over batches durable off the caller's
//! thread, so that the caller encodes the next batch while the disk works.
//!
//! [`Log::sync_start`](crate::Log::sync_start) hands the staged bytes of one
//! batch over as a [`Job`] (the segment file, the offset to write at, the
//! bytes) and gets a [`SyncTicket`] back at once. Two threads carry it on:
//!
//! * the **writer** takes the queued jobs in order, completes their hash chain
//!   and writes them to their segment (into the page cache);
//! * the **fsyncer** takes every batch written so far and `fdatasync`s once
//!   per segment they touch: one `fdatasync` covering several batches resolves
//!   all their tickets (group commit), and the writer seals and writes the
//!   next batches meanwhile.
//!
//! A ticket resolves when its batch *and every batch before it* is durable.
//! After each `fdatasync`, and before the tickets it covers resolve, the fsyncer
//! rewrites the durable end file (`durable_end`) for readers in other
//! processes: one positioned write of 77 bytes per sync, never more than is synced.
//!
//! The writer completes the hash chain: `append` encodes frames with zeros
//! where the previous record's hash and the crc go, and the writer, which sees
//! every batch in order, fills them in ([`frame::seal_frames`]) just before
//! writing, so blake3 runs off the caller's core. Nothing reads a record's
//! hash before it is durable, and the bytes written are exactly the ones
//! `append` used to write.
//!
//! What the syncer never does: touch the stream index, the stream table or
//! any field of the `Log`. It only reports, through [`Shared`], how far the
//! batches are durable (`durable_seq`) or that one failed; the `Log` applies
//! that on its own thread (index entries, `durable_end`, roll-over).
//!
//! A failed write or `fdatasync` fails its batch and every batch after it
//! (they chain onto its records): the segment is cut back to where the failed
//! batch started (under the write gate, so no write lands after the cut),
//! every waiter of those batches gets the error, later jobs are dropped
//! unwritten, and the `Log` turns broken when it next looks. A new segment is
//! only started with nothing in flight, so everything written after a failed
//! batch is in the same segment, behind the cut.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crate::durable_end::Publisher;
use crate::error::LogError;
use crate::frame;
use crate::index::IndexMeta;

/// Batches handed to the syncer and not yet known durable, at most. A caller
/// that starts one more waits for the oldest first (bounds memory and
/// the distance between what was appended and what is durable).
pub(crate) const IN_FLIGHT_MAX: usize = 4;

/// Reusable staging buffers kept by the syncer, at most.
const FREE_BUFFERS_MAX: usize = IN_FLIGHT_MAX + 1;

/// One batch to make durable.
pub(crate) struct Job {
    /// 1, 2, 3, … in the order of `sync_start`.
    pub seq: u64,
    pub file: Arc<File>,
    /// For error messages.
    pub path: PathBuf,
    /// Byte offset in the segment at which `bytes` go.
    pub write_start: u64,
    /// Frames from `frame::encode_unsealed`, sealed by the writer.
    pub bytes: Vec<u8>,
    /// Set by the writer to the hash of the batch's last record once sealed.
    pub end_hash: Arc<OnceLock<[u8; 32]>>,
    /// A buffer larger than this is dropped after the write, not reused.
    pub keep_bytes_max: usize,
    /// Where the batch ends: what the durable end file says once it is durable (its hash is
    /// filled in from `end_hash` once sealed).
    pub end: IndexMeta,
}

/// A batch in the page cache, waiting for its `fdatasync`.
struct Written {
    seq: u64,
    file: Arc<File>,
    path: PathBuf,
    write_start: u64,
    /// Where the batch ends, hash included.
    end: IndexMeta,
}

/// Why a batch could not be made durable.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// The first batch that failed; it and every later one are lost.
    pub seq: u64,
    pub kind: io::ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn to_error(&self) -> LogError {
        LogError::Io(io::Error::new(self.kind, self.message.clone()))
    }
}

struct State {
    /// Handed over, not yet written.
    queue: VecDeque<Job>,
    /// Written, not yet synced.
    written: VecDeque<Written>,
    /// Every batch with `seq <= durable_seq` is durable.
    durable_seq: u64,
    failed: Option<Failure>,
    shutdown: bool,
    /// The writer has ended (after `shutdown`, with the queue empty).
    writer_done: bool,
    free: Vec<Vec<u8>>,
    /// Tests: the next `fdatasync` fails (after its batches were written).
    fail_next_sync: bool,
}

/// What the `Log`, its tickets and the syncer threads share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Held by the writer around each write, and by whoever cuts a segment
    /// back after a failure: no write lands after a cut.
    write_gate: Mutex<()>,
    /// The writer has work (queue or shutdown).
    to_write: Condvar,
    /// The fsyncer has work (written or writer done).
    to_sync: Condvar,
    /// `durable_seq` or `failed` changed (tickets, the `Log`).
    changed: Condvar,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                written: VecDeque::new(),
                durable_seq: 0,
                failed: None,
                shutdown: false,
                writer_done: false,
                free: Vec::new(),
                fail_next_sync: false,
            }),
            write_gate: Mutex::new(()),
            to_write: Condvar::new(),
            to_sync: Condvar::new(),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, condvar: &Condvar, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        condvar.wait(state).unwrap_or_else(PoisonError::into_inner)
    }

    /// (durable_seq, failure) now, without waiting.
    pub fn progress(&self) -> (u64, Option<Failure>) {
        let state = self.lock();
        (state.durable_seq, state.failed.clone())
    }

    /// Waits until batch `seq` is durable (`Ok`) or lost (`Err`).
    pub fn wait_for(&self, seq: u64) -> Result<(), Failure> {
        let mut state = self.lock();
        loop {
            if let Some(settled) = settled(&state, seq) {
                return settled;
            }
            state = self.wait(&self.changed, state);
        }
    }

    /// Whether batch `seq` is settled now: `None` while it is in flight.
    pub fn poll(&self, seq: u64) -> Option<Result<(), Failure>> {
        settled(&self.lock(), seq)
    }

    pub fn submit(&self, job: Job) {
        self.lock().queue.push_back(job);
        self.to_write.notify_one();
    }

    /// A cleared buffer to stage into, reused if the syncer has one.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.lock().free.pop().unwrap_or_default()
    }

    /// Makes the next `fdatasync` of the syncer fail (failure-injection for tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    fn stop(&self) {
        self.lock().shutdown = true;
        self.to_write.notify_all();
        self.to_sync.notify_all();
    }

    /// Records that batch `seq` and every later one are lost (the earliest
    /// failure wins) and wakes everyone.
    fn fail(&self, failure: Failure) {
        let mut state = self.lock();
        if state.failed.as_ref().is_none_or(|f| failure.seq < f.seq) {
            state.failed = Some(failure);
        }
        drop(state);
        self.changed.notify_all();
        self.to_sync.notify_all();
        self.to_write.notify_all();
    }

    fn recycle(&self, mut bytes: Vec<u8>, keep_bytes_max: usize) {
        let mut state = self.lock();
        if state.free.len() < FREE_BUFFERS_MAX && bytes.capacity() <= keep_bytes_max {
            bytes.clear();
            state.free.push(bytes);
        }
    }
}

fn settled(state: &State, seq: u64) -> Option<Result<(), Failure>> {
    if state.durable_seq >= seq {
        return Some(Ok(()));
    }
    match &state.failed {
        Some(failure) if failure.seq <= seq => Some(Err(failure.clone())),
        _ => None,
    }
}

/// The writer and fsyncer threads, started at the first `sync_start` with records.
pub(crate) struct Syncer {
    pub shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The hash of the last durable record when the threads start.
    chain_hash: [u8; 32],
    /// Where the fsyncer publishes the durable end for readers (`None`: a read-only log,
    /// which never starts the threads).
    publisher: Option<Arc<Publisher>>,
}

impl Syncer {
    /// `chain_hash`: the hash of the log's last record (zeros if none); `publisher`: where
    /// the durable end is published after each `fdatasync`.
    pub fn new(chain_hash: [u8; 32], publisher: Option<Publisher>) -> Syncer {
        Syncer {
            shared: Shared::new(),
            threads: Vec::new(),
            chain_hash,
            publisher: publisher.map(Arc::new),
        }
    }

    /// Starts the threads if they are not running yet.
    pub fn start(&mut self) -> Result<(), LogError> {
        if self.threads.is_empty() {
            let Some(publisher) = self.publisher.clone() else {
                return Err(LogError::InvalidInput(
                    "a read-only log has no syncer".into(),
                ));
            };
            let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(body)
                    .map_err(|e| {
                        LogError::Io(io::Error::new(
                            e.kind(),
                            format!("starting the log's {name} thread: {e}"),
                        ))
                    })
            };
            let shared = Arc::clone(&self.shared);
            let fsyncer = spawn(
                "gongji-log-fsync",
                Box::new(move || run_fsyncer(&shared, &publisher)),
            )?;
            let shared = Arc::clone(&self.shared);
            let chain_hash = self.chain_hash;
            let writer = spawn(
                "gongji-log-write",
                Box::new(move || run_writer(&shared, chain_hash)),
            );
            self.threads.push(fsyncer);
            match writer {
                Ok(writer) => self.threads.push(writer),
                Err(e) => {
                    self.stop();
                    // `stop` marked the shared state shut down: a retry starts afresh.
                    self.shared = Shared::new();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Hands a job to the threads (started by `start`).
    pub fn submit(&mut self, job: Job) {
        debug_assert!(!self.threads.is_empty(), "start comes first");
        self.shared.submit(job);
    }

    /// Lets the threads finish what is queued, then ends them.
    pub fn stop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.shared.stop();
        if self.threads.len() == 1 {
            // Only the fsyncer started: it waits for a writer that never ran.
            self.shared.lock().writer_done = true;
            self.shared.to_sync.notify_all();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// If a thread unwinds, every waiter learns it instead of waiting forever.
struct PanicGuard<'a> {
    shared: &'a Shared,
    writer: bool,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let seq = self.shared.lock().durable_seq + 1;
            self.shared.fail(Failure {
                seq,
                kind: io::ErrorKind::Other,
                message: "a thread of the log's syncer panicked".into(),
            });
        }
        if self.writer {
            self.shared.lock().writer_done = true;
            self.shared.to_sync.notify_all();
        }
    }
}

/// Seals and writes each job in order; hands it to the fsyncer.
fn run_writer(shared: &Shared, mut chain_hash: [u8; 32]) {
    let _guard = PanicGuard {
        shared,
        writer: true,
    };
    loop {
        let jobs: Vec<Job> = {
            let mut state = shared.lock();
            while state.queue.is_empty() && !state.shutdown {
                state = shared.wait(&shared.to_write, state);
            }
            if state.queue.is_empty() {
                return;
            }
            state.queue.drain(..).collect()
        };
        for mut job in jobs {
            if shared.lock().failed.is_none() {
                chain_hash = frame::seal_frames(&mut job.bytes, chain_hash);
                let _ = job.end_hash.set(chain_hash);
                write_one(shared, &job);
            }
            shared.recycle(job.bytes, job.keep_bytes_max);
        }
    }
}

/// Writes one sealed job under the write gate (unless a failure came first).
fn write_one(shared: &Shared, job: &Job) {
    let _gate = shared
        .write_gate
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if shared.lock().failed.is_some() {
        return;
    }
    match crate::files::write_all_at(&job.file, &job.bytes, job.write_start) {
        Ok(()) => {
            shared.lock().written.push_back(Written {
                seq: job.seq,
                file: Arc::clone(&job.file),
                path: job.path.clone(),
                write_start: job.write_start,
                end: IndexMeta {
                    last_hash: job.end_hash.get().copied().unwrap_or_default(),
                    ..job.end
                },
            });
            shared.to_sync.notify_one();
        }
        Err(e) => {
            let message = format!("writing segment {}: {e}", job.path.display());
            let message = cut_back(&job.file, &job.path, job.write_start, message);
            shared.fail(Failure {
                seq: job.seq,
                kind: e.kind(),
                message,
            });
        }
    }
}

/// Cuts a segment back to `len` bytes (its durable end), so that a restart
/// does not find records that were reported lost; says so in `message` if it
/// cannot.
fn cut_back(file: &File, path: &std::path::Path, len: u64, mut message: String) -> String {
    if let Err(cut) = file.set_len(len).and_then(|()| file.sync_data()) {
        message.push_str(&format!(
            "; and cutting {} back to {len} bytes failed: {cut}",
            path.display()
        ));
    }
    message
}

/// `fdatasync`s everything written, once per segment, and publishes it: first in the durable
/// end file (for readers in other processes), then to the tickets. A batch whose end cannot be
/// published fails like one that cannot be synced (without the cut: its bytes are durable).
fn run_fsyncer(shared: &Shared, publisher: &Publisher) {
    let _guard = PanicGuard {
        shared,
        writer: false,
    };
    loop {
        let written: Vec<Written> = {
            let mut state = shared.lock();
            while state.written.is_empty() && !state.writer_done {
                state = shared.wait(&shared.to_sync, state);
            }
            if state.written.is_empty() {
                return;
            }
            state.written.drain(..).collect()
        };
        let mut start = 0;
        while start < written.len() {
            let file = &written[start].file;
            let end = start
                + written[start..]
                    .iter()
                    .take_while(|w| Arc::ptr_eq(&w.file, file))
                    .count();
            let first = &written[start];
            let injected = std::mem::take(&mut shared.lock().fail_next_sync);
            let synced = if injected {
                Err(io::Error::other("injected failure"))
            } else {
                file.sync_data()
            };
            let last = &written[end - 1];
            let publishable = shared
                .lock()
                .failed
                .as_ref()
                .is_none_or(|f| last.seq < f.seq);
            if synced.is_ok() && publishable {
                if let Err(e) = publisher.publish(&last.end) {
                    shared.fail(Failure {
                        seq: first.seq,
                        kind: e.kind(),
                        message: format!(
                            "publishing the durable end in {}: {e}",
                            publisher.path().display()
                        ),
                    });
                    break;
                }
            }
            match synced {
                Ok(()) => {
                    let mut state = shared.lock();
                    let last = written[end - 1].seq;
                    if state.failed.as_ref().is_none_or(|f| last < f.seq) {
                        state.durable_seq = last;
                    }
                    drop(state);
                    shared.changed.notify_all();
                }
                Err(e) => {
                    // Everything written after `first` is in this segment (a new
                    // one starts only with nothing in flight): one cut drops it all.
                    let _gate = shared
                        .write_gate
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    let message = format!("syncing segment {}: {e}", first.path.display());
                    let message = cut_back(file, &first.path, first.write_start, message);
                    shared.fail(Failure {
                        seq: first.seq,
                        kind: e.kind(),
                        message,
                    });
                    break;
                }
            }
            start = end;
        }
    }
}

/// What a [`SyncTicket`] waits on: a backend's own record of which of its batches are durable.
/// Batches are numbered 1, 2, 3, … in the order they were handed over; batch 0 is "nothing was
/// ever handed over" and is durable from the start. The file log's syncer is one; another
/// backend of [`DurableLog`](crate::DurableLog) builds its tickets on its own.
pub trait SyncProgress: Send + Sync {
    /// Blocks until batch `seq` and every batch before it are durable, or one of them failed
    /// (then every waiter of it and of later batches gets the error).
    fn wait_for(&self, seq: u64) -> Result<(), LogError>;
    /// Like [`SyncProgress::wait_for`] without blocking: `None` while batch `seq` is in flight.
    fn poll(&self, seq: u64) -> Option<Result<(), LogError>>;
}

impl SyncProgress for Shared {
    fn wait_for(&self, seq: u64) -> Result<(), LogError> {
        Shared::wait_for(self, seq).map_err(|f| f.to_error())
    }

    fn poll(&self, seq: u64) -> Option<Result<(), LogError>> {
        Shared::poll(self, seq).map(|r| r.map_err(|f| f.to_error()))
    }
}

/// A batch handed over by [`Log::sync_start`](crate::Log::sync_start) (or another backend's
/// [`DurableLog::sync_start`](crate::DurableLog::sync_start)).
///
/// [`SyncTicket::wait`] blocks until the batch and every batch before it are
/// durable (written and `fdatasync`ed), from any thread, even after the `Log`
/// was dropped (dropping the `Log` waits for every batch in flight). Cheap to
/// clone and `Send + Sync`.
#[derive(Clone)]
pub struct SyncTicket {
    progress: Arc<dyn SyncProgress>,
    /// The batch; 0: nothing was ever handed over (resolves at once).
    seq: u64,
    /// The number of records durable once the batch is.
    end_position: u64,
}

impl std::fmt::Debug for SyncTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncTicket")
            .field("batch", &self.seq)
            .field("end_position", &self.end_position)
            .finish()
    }
}

impl SyncTicket {
    /// A ticket for batch `seq` of a backend whose batches `progress` follows; the log's
    /// durable end will be `end_position` once the batch is durable.
    pub fn new(progress: Arc<dyn SyncProgress>, seq: u64, end_position: u64) -> SyncTicket {
        SyncTicket {
            progress,
            seq,
            end_position,
        }
    }

    /// Blocks until every record before [`SyncTicket::end_position`] is durable
    /// and returns that position. If writing or syncing this batch or one
    /// before it failed, every waiter gets the error (`LogError::Io`, naming
    /// the segment), none of the batch's records was acknowledged, and the
    /// `Log` refuses further work ([`LogError::Broken`]); reopen it.
    pub fn wait(&self) -> Result<u64, LogError> {
        self.progress.wait_for(self.seq).map(|()| self.end_position)
    }

    /// Like [`SyncTicket::wait`] without blocking: `None` while the batch is in flight.
    pub fn try_wait(&self) -> Option<Result<u64, LogError>> {
        self.progress
            .poll(self.seq)
            .map(|r| r.map(|()| self.end_position))
    }

    /// The log's durable end once this batch is durable: the position after
    /// its last record.
    pub fn end_position(&self) -> u64 {
        self.end_position
    }
}
