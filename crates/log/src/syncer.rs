//! The background syncer: makes handed-over batches durable off the caller's
//! thread, so that the caller encodes the next batch while the disk works.
//!
//! [`Log::sync_start`](crate::Log::sync_start) hands the staged bytes of one
//! batch over as a [`Job`] (the segment file, the offset to write at, the
//! bytes) and gets a [`SyncTicket`] back at once. The syncer thread takes every
//! queued job, writes them in order, and `fdatasync`s once per segment they
//! touch: one `fdatasync` covering several batches resolves all their tickets
//! (group commit). A ticket resolves when its batch *and every batch before
//! it* is durable.
//!
//! What the syncer never does: touch the stream index, the stream table or
//! any field of the `Log`. It only reports, through [`Shared`], how far the
//! batches are durable (`durable_seq`) or that one failed; the `Log` applies
//! that on its own thread (index entries, `durable_end`, roll-over).
//!
//! The syncer also completes the hash chain: `append` encodes frames with
//! zeros where the previous record's hash and the crc go, and the syncer,
//! which sees every batch in order, fills them in ([`frame::seal_frames`])
//! just before writing, so blake3 runs on the syncer's core. Nothing reads a
//! record's hash before it is durable, and the bytes written are exactly the
//! ones `append` used to write.
//!
//! A failed write or `fdatasync` fails its batch and every batch after it (they
//! chain onto its records): the file is cut back to where the failed group
//! started, every waiter of those batches gets the error, later jobs are
//! refused unwritten, and the `Log` turns broken when it next looks.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crate::error::LogError;
use crate::frame;

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
    /// Frames from `frame::encode_unsealed`, sealed by the syncer.
    pub bytes: Vec<u8>,
    /// Set by the syncer to the hash of the batch's last record once sealed.
    pub end_hash: Arc<OnceLock<[u8; 32]>>,
    /// A buffer larger than this is dropped after the write, not reused.
    pub keep_bytes_max: usize,
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
    queue: VecDeque<Job>,
    /// Every batch with `seq <= durable_seq` is durable.
    durable_seq: u64,
    failed: Option<Failure>,
    shutdown: bool,
    free: Vec<Vec<u8>>,
    /// Tests: the next group's `fdatasync` fails (after its bytes were written).
    fail_next_sync: bool,
}

/// What the `Log`, its tickets and the syncer thread share.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                durable_seq: 0,
                failed: None,
                shutdown: false,
                free: Vec::new(),
                fail_next_sync: false,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
            if state.durable_seq >= seq {
                return Ok(());
            }
            if let Some(failure) = &state.failed {
                if failure.seq <= seq {
                    return Err(failure.clone());
                }
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether batch `seq` is settled now: `None` while it is in flight.
    pub fn poll(&self, seq: u64) -> Option<Result<(), Failure>> {
        let state = self.lock();
        if state.durable_seq >= seq {
            return Some(Ok(()));
        }
        match &state.failed {
            Some(failure) if failure.seq <= seq => Some(Err(failure.clone())),
            _ => None,
        }
    }

    pub fn submit(&self, job: Job) {
        self.lock().queue.push_back(job);
        self.changed.notify_all();
    }

    /// A cleared buffer to stage into, reused if the syncer has one.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.lock().free.pop().unwrap_or_default()
    }

    /// Makes the next `fdatasync` of the syncer fail (failure-injection for tests).
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    fn stop(&self) {
        self.lock().shutdown = true;
        self.changed.notify_all();
    }
}

/// The syncer thread, started at the first `sync_start` with records.
pub(crate) struct Syncer {
    pub shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The hash of the last durable record when the thread starts.
    chain_hash: [u8; 32],
}

impl Syncer {
    /// `chain_hash`: the hash of the log's last record (zeros if none).
    pub fn new(chain_hash: [u8; 32]) -> Syncer {
        Syncer {
            shared: Shared::new(),
            thread: None,
            chain_hash,
        }
    }

    /// Hands a job to the thread, starting it if needed.
    pub fn submit(&mut self, job: Job) -> Result<(), LogError> {
        if self.thread.is_none() {
            let shared = Arc::clone(&self.shared);
            let chain_hash = self.chain_hash;
            let thread = std::thread::Builder::new()
                .name("gongji-log-syncer".into())
                .spawn(move || run(&shared, chain_hash))
                .map_err(|e| {
                    LogError::Io(io::Error::new(
                        e.kind(),
                        format!("starting the log's syncer thread: {e}"),
                    ))
                })?;
            self.thread = Some(thread);
        }
        self.shared.submit(job);
        Ok(())
    }

    /// Lets the thread finish what is queued, then ends it.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared.stop();
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// If the thread unwinds, every waiter learns it instead of waiting forever.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.lock();
            if state.failed.is_none() {
                let seq = state.durable_seq + 1;
                state.failed = Some(Failure {
                    seq,
                    kind: io::ErrorKind::Other,
                    message: "the log's syncer thread panicked".into(),
                });
            }
            drop(state);
            self.0.changed.notify_all();
        }
    }
}

fn run(shared: &Shared, mut chain_hash: [u8; 32]) {
    let _guard = PanicGuard(shared);
    loop {
        let (mut jobs, failed) = {
            let mut state = shared.lock();
            while state.queue.is_empty() && !state.shutdown {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.queue.is_empty() {
                return;
            }
            let jobs: Vec<Job> = state.queue.drain(..).collect();
            (jobs, state.failed.is_some())
        };
        // After a failure nothing more is written: later batches chain onto lost records.
        let outcome = if failed {
            Ok(())
        } else {
            for job in &mut jobs {
                chain_hash = frame::seal_frames(&mut job.bytes, chain_hash);
                let _ = job.end_hash.set(chain_hash);
            }
            write_and_sync(shared, &jobs)
        };
        let mut state = shared.lock();
        if let Err(failure) = outcome {
            state.failed = Some(failure);
        }
        for job in jobs {
            let mut bytes = job.bytes;
            if state.free.len() < FREE_BUFFERS_MAX && bytes.capacity() <= job.keep_bytes_max {
                bytes.clear();
                state.free.push(bytes);
            }
        }
        drop(state);
        shared.changed.notify_all();
    }
}

/// Writes the jobs in order, one `fdatasync` per run of jobs in the same
/// segment; publishes each run's durability as soon as it has it.
fn write_and_sync(shared: &Shared, jobs: &[Job]) -> Result<(), Failure> {
    let mut start = 0;
    while start < jobs.len() {
        let file = &jobs[start].file;
        let end = start
            + jobs[start..]
                .iter()
                .take_while(|j| Arc::ptr_eq(&j.file, file))
                .count();
        let group = &jobs[start..end];
        let mut done = Ok(());
        for job in group {
            done = write_all_at(&job.file, &job.bytes, job.write_start)
                .map_err(|e| (job, "writing segment", e));
            if done.is_err() {
                break;
            }
        }
        let done = done.and_then(|()| {
            let injected = std::mem::take(&mut shared.lock().fail_next_sync);
            if injected {
                return Err((
                    &group[0],
                    "syncing segment",
                    io::Error::other("injected failure"),
                ));
            }
            file.sync_data()
                .map_err(|e| (&group[0], "syncing segment", e))
        });
        if let Err((job, action, e)) = done {
            let first = &group[0];
            let mut message = format!("{action} {}: {e}", job.path.display());
            // Cut back to the last durable byte, so that a restart does not find
            // records that were reported as lost.
            let cut = file
                .set_len(first.write_start)
                .and_then(|()| file.sync_data());
            if let Err(cut) = cut {
                message.push_str(&format!(
                    "; and cutting {} back to {} bytes failed: {cut}",
                    first.path.display(),
                    first.write_start
                ));
            }
            return Err(Failure {
                seq: first.seq,
                kind: e.kind(),
                message,
            });
        }
        {
            let mut state = shared.lock();
            state.durable_seq = group[group.len() - 1].seq;
        }
        shared.changed.notify_all();
        start = end;
    }
    Ok(())
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        match file.seek_write(bytes, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes = &bytes[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A batch handed to the syncer by [`Log::sync_start`](crate::Log::sync_start).
///
/// [`SyncTicket::wait`] blocks until the batch and every batch before it are
/// durable (written and `fdatasync`ed), from any thread, even after the `Log`
/// was dropped (dropping the `Log` waits for every batch in flight). Cheap to
/// clone and `Send + Sync`.
#[derive(Clone)]
pub struct SyncTicket {
    pub(crate) shared: Arc<Shared>,
    /// The batch; 0: nothing was ever handed over (resolves at once).
    pub(crate) seq: u64,
    /// The number of records durable once the batch is.
    pub(crate) end_position: u64,
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
    /// Blocks until every record before [`SyncTicket::end_position`] is durable
    /// and returns that position. If writing or syncing this batch or one
    /// before it failed, every waiter gets the error (`LogError::Io`, naming
    /// the segment), none of the batch's records was acknowledged, and the
    /// `Log` refuses further work ([`LogError::Broken`]); reopen it.
    pub fn wait(&self) -> Result<u64, LogError> {
        self.shared
            .wait_for(self.seq)
            .map(|()| self.end_position)
            .map_err(|f| f.to_error())
    }

    /// Like [`SyncTicket::wait`] without blocking: `None` while the batch is in flight.
    pub fn try_wait(&self) -> Option<Result<u64, LogError>> {
        self.shared
            .poll(self.seq)
            .map(|r| r.map(|()| self.end_position).map_err(|f| f.to_error()))
    }

    /// The log's durable end once this batch is durable: the position after
    /// its last record.
    pub fn end_position(&self) -> u64 {
        self.end_position
    }
}
