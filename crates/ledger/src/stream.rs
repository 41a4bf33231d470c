//! [`Ledger::apply_stream`]: command lines from a reader, outcomes to a sink, nothing handed
//! over before it is durable.
//!
//! Three stages on their own threads, so that reading and delivering run beside deciding and
//! syncing: a reader reads lines with a length bound, parses them and hands them on in batches
//! (of `batch_lines`, or fewer when no more input is ready yet); the ledger, on the caller's
//! thread, decides a batch and hands it to the log's syncer as one group, and decides the next
//! batch while the syncer writes and fsyncs it; a delivering thread waits for the group's
//! ticket and then gives the group's outcomes to the sink.
//!
//! The rules, as the types hold them:
//! - The sink is only ever given a [`DurableGroup`], and the only way to make one is to wait on
//!   the group's [`SyncTicket`] and have it succeed ([`PendingGroup::wait`]): no path hands the
//!   sink an outcome whose events are not durable.
//! - A group is synced only through [`Handoff::commit`], which first waits for the sink to have
//!   taken the group before: a crash leaves at most one group durable and not delivered (its
//!   lines are refused as duplicates when the stream is continued after the last delivered line;
//!   a rejected line of a durable group would be decided again against the group's later lines).

use std::io::{self, BufReader, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};

use gongji_domain::command::LINE_BYTES_MAX;
use gongji_domain::{Command, Rejection};
use gongji_log::SyncTicket;

use crate::handover::Offer;
use crate::input::{parse_line, read_line_bounded};
use crate::{Ledger, LedgerError, LineOutcome};

/// Input buffer: large, so a file is read in big chunks and commits come every `batch_lines`.
const INPUT_BUFFER_BYTES: usize = 1024 * 1024;

/// Batches of parsed lines in flight between the reader and the ledger, and of groups between
/// the ledger and the sink: enough to keep every stage busy, few enough to bound memory.
const PIPELINE_BATCHES: usize = 4;
/// How long the ledger's thread encodes entities ahead of a timed store after handing a group
/// to the syncer (with `StreamOptions::store_interval` only): the store's encoding, spread
/// over the groups between two stores, instead of all of it while the writer waits.
const ENCODE_AHEAD_BUDGET: std::time::Duration = std::time::Duration::from_millis(2);

/// How [`Ledger::apply_stream`] reads and stamps lines.
#[derive(Clone, Copy, Debug)]
pub struct StreamOptions {
    /// Most lines decided before their events are made durable together (group commit); at
    /// least 1.
    pub batch_lines: usize,
    /// The time each line is recorded at, in microseconds since the Unix epoch.
    pub recorded_at_micros: fn() -> i64,
    /// Also store the projections once this long has passed since the last store (besides
    /// once many entities are dirty), so that a reader beside the writer
    /// ([`Ledger::open_read_only`]) opened meanwhile folds at most about this much of the
    /// stream on top of them. `None`: only once many entities are dirty (the fastest for a
    /// stream nobody reads beside).
    pub store_interval: Option<std::time::Duration>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            batch_lines: 1000,
            recorded_at_micros: now_micros,
            store_interval: None,
        }
    }
}

/// The system clock in microseconds since the Unix epoch (0 before it).
pub fn now_micros() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// The outcomes of one group of lines whose events the log has made durable. Only
/// [`PendingGroup::wait`] makes one, once the group's sync succeeded.
#[derive(Debug)]
pub struct DurableGroup {
    lines: Vec<(usize, LineOutcome)>,
    durable_end: u64,
}

impl DurableGroup {
    /// Each line's number (from 1, counting every line of the input) and outcome, in input
    /// order.
    pub fn lines(&self) -> &[(usize, LineOutcome)] {
        &self.lines
    }

    /// The log position every record before which is durable: the end of this group's events
    /// (no later group is synced before the sink has taken this one).
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }
}

/// A group handed to the log's syncer, not yet known to be durable.
struct PendingGroup {
    ticket: SyncTicket,
    lines: Vec<(usize, LineOutcome)>,
    /// Its events, for the read-only ledgers beside the writer, once durable.
    events: Option<Offer>,
}

impl PendingGroup {
    /// Waits for the group's sync: the only way to a [`DurableGroup`].
    fn wait<E>(self) -> Result<DurableGroup, StreamError<E>> {
        match self.ticket.wait() {
            Ok(durable_end) => {
                // Before the sink answers the group's lines: a query sent after an answer
                // finds the events handed over.
                if let Some(events) = self.events {
                    events.durable();
                }
                Ok(DurableGroup {
                    lines: self.lines,
                    durable_end,
                })
            }
            Err(error) => Err(StreamError::NotDurable {
                first_line: self.lines.first().map_or(0, |(n, _)| *n),
                error: error.into(),
            }),
        }
    }
}

/// Where [`Ledger::apply_stream`] delivers outcomes: called once per group, in input order,
/// on a thread of the stream's own, only once the group is durable. The next group is not made
/// durable before this returns `Ok`; an `Err` ends the stream.
pub trait OutcomeSink: Send {
    type Error: Send;
    fn deliver(&mut self, group: &DurableGroup) -> Result<(), Self::Error>;
}

impl<F, E> OutcomeSink for F
where
    F: FnMut(&DurableGroup) -> Result<(), E> + Send,
    E: Send,
{
    type Error = E;
    fn deliver(&mut self, group: &DurableGroup) -> Result<(), E> {
        self(group)
    }
}

/// Why [`Ledger::apply_stream`] stopped early. Every line delivered before it is durable.
/// After any error but `Unreadable`, lines may have been decided and not made durable: the
/// ledger then refuses everything with [`LedgerError::Stopped`] and is to be dropped (those
/// lines go with it, never made durable) and opened again.
#[derive(Debug)]
pub enum StreamError<E> {
    /// The input could not be read after line `after_line`; every line up to it was decided,
    /// made durable and delivered. The ledger is sound: close it.
    Unreadable { after_line: usize, error: io::Error },
    /// The ledger could not take line `line` (an error of the ledger, not a rejection); it and
    /// the lines after it were not applied.
    Line { line: usize, error: LedgerError },
    /// The group from line `first_line` on could not be made durable: it and every later line
    /// are not applied, and the log refuses further work.
    NotDurable {
        first_line: usize,
        error: LedgerError,
    },
    /// The sink refused a group (the group is durable; the lines after it are not applied).
    Sink(E),
    /// The sink panicked while taking a group (the group is durable; the lines after it are
    /// not applied).
    SinkPanicked,
}

impl<E> StreamError<E> {
    /// Why the ledger refuses further work after this error, if it does.
    fn stops_ledger(&self) -> Option<String> {
        match self {
            StreamError::Unreadable { .. } => None,
            StreamError::Line { line, .. } => Some(format!("line {line} could not be taken")),
            StreamError::NotDurable { first_line, .. } => Some(format!(
                "lines from {first_line} on could not be made durable"
            )),
            StreamError::Sink(_) => Some("the sink refused a group".into()),
            StreamError::SinkPanicked => Some("the sink panicked".into()),
        }
    }
}

impl<E: std::fmt::Display> std::fmt::Display for StreamError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Unreadable { after_line, error } => {
                write!(f, "reading failed after line {after_line}: {error}")
            }
            StreamError::Line { line, error } => write!(
                f,
                "line {line}: {error}; earlier lines that were reported are durable"
            ),
            StreamError::NotDurable { first_line, error } => write!(
                f,
                "could not make lines durable: {error}; lines from {first_line} on were not \
                 applied"
            ),
            StreamError::Sink(error) => write!(f, "{error}"),
            StreamError::SinkPanicked => write!(f, "the output thread panicked"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for StreamError<E> {}

/// What a stream that ran to the end of its input did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// Lines read, decided, made durable and delivered.
    pub lines: usize,
    /// Bytes read from the input.
    pub read_bytes: u64,
}

impl Ledger {
    /// Applies every command line `input` holds, and gives their outcomes to `sink` group by
    /// group, each group only once its events are durable, with at most one group durable and
    /// not yet taken by the sink. `progress(read_bytes)` follows the input as groups are handed
    /// to the syncer. Projections are stored as [`commit_deferred`](Ledger::commit_deferred)
    /// stores them; [`close`](Ledger::close) the ledger after. Lines applied with
    /// [`apply_line`](Ledger::apply_line) before must be committed first.
    ///
    /// On an error the reader thread may be left blocked on its input (a terminal, a pipe); it
    /// ends with the input or with the process.
    pub fn apply_stream<R, S>(
        &mut self,
        input: R,
        options: &StreamOptions,
        sink: &mut S,
        progress: &mut dyn FnMut(u64),
    ) -> Result<StreamSummary, StreamError<S::Error>>
    where
        R: Read + Send + 'static,
        S: OutcomeSink,
    {
        let batch_lines = options.batch_lines.max(1);
        let (input_tx, input_rx) = mpsc::sync_channel::<Input>(PIPELINE_BATCHES);
        let reader = std::thread::spawn(move || read_lines(input, batch_lines, &input_tx));
        let (group_tx, group_rx) = mpsc::sync_channel::<PendingGroup>(PIPELINE_BATCHES);
        let (taken_tx, taken_rx) = mpsc::sync_channel::<()>(PIPELINE_BATCHES);
        let mut handoff = Handoff {
            to_sink: group_tx,
            taken: taken_rx,
            untaken: false,
        };
        let (stop, delivered) = std::thread::scope(|scope| {
            let deliverer = scope.spawn(move || deliver_groups(group_rx, sink, &taken_tx));
            let stop = self.decide_groups(&input_rx, &mut handoff, options, progress);
            drop(input_rx); // a reader still sending stops
            drop(handoff); // the deliverer ends once it has delivered what it holds
            let delivered = deliverer.join().unwrap_or(Err(StreamError::SinkPanicked));
            (stop, delivered)
        });
        let result = delivered.and_then(|lines| match stop {
            Stop::Ended { read_bytes } => {
                // The reader has sent its last batch.
                let _ = reader.join();
                Ok(StreamSummary { lines, read_bytes })
            }
            Stop::Failed(error) => Err(error),
            Stop::SinkStopped => {
                unreachable!("the delivering thread stops early only on an error, returned above")
            }
        });
        if let Err(error) = &result {
            self.stopped = error.stops_ledger();
            if self.stopped.is_some() {
                // Lines decided and not made durable: never handed over.
                if let Some(staged) = &mut self.events {
                    staged.discard();
                }
            }
        }
        result
    }

    /// The ledger's stage: decides each batch the reader sends and commits it through the
    /// handoff, until the input ends or something fails.
    fn decide_groups<E>(
        &mut self,
        input: &Receiver<Input>,
        handoff: &mut Handoff,
        options: &StreamOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Stop<E> {
        let mut read_bytes = 0u64;
        for batch in input {
            let (lines, bytes) = match batch {
                Input::Lines { lines, read_bytes } => (lines, read_bytes),
                Input::Failed { after_line, error } => {
                    return Stop::Failed(StreamError::Unreadable { after_line, error })
                }
            };
            read_bytes += bytes;
            let first_line = lines.first().map_or(0, |(n, _)| *n);
            let mut numbers = Vec::with_capacity(lines.len());
            for (line, parsed) in lines {
                if let Err(error) = self.apply_parsed(parsed, (options.recorded_at_micros)()) {
                    return Stop::Failed(StreamError::Line { line, error });
                }
                numbers.push(line);
            }
            match handoff.commit(self, numbers, options.store_interval) {
                Ok(true) => progress(read_bytes),
                Ok(false) => return Stop::SinkStopped,
                Err(error) => return Stop::Failed(StreamError::NotDurable { first_line, error }),
            }
        }
        Stop::Ended { read_bytes }
    }
}

/// Why the ledger's stage stopped.
enum Stop<E> {
    /// The input ended and every batch was committed.
    Ended {
        read_bytes: u64,
    },
    Failed(StreamError<E>),
    /// The delivering thread stopped; its own error says why.
    SinkStopped,
}

/// The ledger's end of the way to the sink: the one place a stream's group is synced.
struct Handoff {
    to_sink: SyncSender<PendingGroup>,
    /// One message per group the sink has taken.
    taken: Receiver<()>,
    /// A group was handed over and the sink has not yet taken it.
    untaken: bool,
}

impl Handoff {
    /// Hands the lines decided since the last commit (numbered `numbers`) to the log's syncer
    /// and on to the sink, once the sink has taken the group before; then, if the projections
    /// are due to be stored (`store_interval`), waits for the sink to take this group too and
    /// stores them: a store never stands between a durable group and its delivery. False if
    /// the delivering thread has stopped (its error says why).
    fn commit(
        &mut self,
        ledger: &mut Ledger,
        numbers: Vec<usize>,
        store_interval: Option<std::time::Duration>,
    ) -> Result<bool, LedgerError> {
        // The group before this one must be delivered before this one is written: a crash then
        // leaves at most one group durable and not delivered. Deciding this group still ran
        // beside that group's sync.
        if self.untaken && self.taken.recv().is_err() {
            return Ok(false);
        }
        let (outcomes, ticket, events) = ledger.commit_pipelined()?;
        assert_eq!(
            outcomes.len(),
            numbers.len(),
            "every outcome committed was decided in this stream (apply_stream starts with none \
             pending)"
        );
        let durable_end = ticket.end_position();
        self.untaken = true;
        let group = PendingGroup {
            ticket,
            lines: numbers.into_iter().zip(outcomes).collect(),
            events,
        };
        if self.to_sink.send(group).is_err() {
            return Ok(false);
        }
        if ledger.store_due(store_interval) {
            // Delivered means durable: the checkpoint stored is.
            if self.taken.recv().is_err() {
                return Ok(false);
            }
            self.untaken = false;
            ledger.store_deferred(durable_end)?;
        } else if store_interval.is_some() {
            // While this group syncs: a slice of the next store's encoding, so that the store
            // holds the writer for less (a reader waits on the writer's next group).
            ledger.encode_ahead(ENCODE_AHEAD_BUDGET);
        }
        Ok(true)
    }
}

/// The delivering stage: waits for each group to be durable, gives it to the sink, and says so.
/// Returns the number of lines delivered.
fn deliver_groups<S: OutcomeSink>(
    groups: Receiver<PendingGroup>,
    sink: &mut S,
    taken: &SyncSender<()>,
) -> Result<usize, StreamError<S::Error>> {
    let mut lines = 0;
    for pending in groups {
        let group = pending.wait()?;
        sink.deliver(&group).map_err(StreamError::Sink)?;
        lines += group.lines.len();
        let _ = taken.send(());
    }
    Ok(lines)
}

/// What the reader stage hands on: parsed lines, or why reading stopped.
enum Input {
    Lines {
        lines: Vec<(usize, Result<Command, Rejection>)>,
        read_bytes: u64,
    },
    Failed {
        after_line: usize,
        error: io::Error,
    },
}

/// The reader stage: reads lines with a length bound, parses them, and sends them on in batches
/// of `batch_lines`, or as soon as no more input is ready (so a command typed on a terminal or
/// piped slowly is answered without waiting for a full batch).
fn read_lines(source: impl Read, batch_lines: usize, to: &SyncSender<Input>) {
    let mut reader = BufReader::with_capacity(INPUT_BUFFER_BYTES, source);
    let mut line_bytes = Vec::new();
    let mut batch = Batch::new(batch_lines);
    let mut line_number = 0usize;
    loop {
        let read = match read_line_bounded(&mut reader, &mut line_bytes, LINE_BYTES_MAX) {
            Ok(Some(read)) => read,
            Ok(None) => break,
            Err(error) => {
                if batch.send(to) {
                    let _ = to.send(Input::Failed {
                        after_line: line_number,
                        error,
                    });
                }
                return;
            }
        };
        line_number += 1;
        batch.read_bytes += read.bytes_consumed;
        batch
            .lines
            .push((line_number, parse_line(&read, &line_bytes)));
        if (batch.lines.len() >= batch_lines || reader.buffer().is_empty()) && !batch.send(to) {
            return; // the ledger stopped
        }
    }
    batch.send(to);
}

/// The lines the reader has parsed and not yet handed on.
struct Batch {
    lines: Vec<(usize, Result<Command, Rejection>)>,
    read_bytes: u64,
    lines_max: usize,
}

impl Batch {
    fn new(lines_max: usize) -> Batch {
        Batch {
            lines: Vec::with_capacity(lines_max),
            read_bytes: 0,
            lines_max,
        }
    }

    /// Hands on the lines read so far, if any; false once the ledger has stopped.
    fn send(&mut self, to: &SyncSender<Input>) -> bool {
        if self.lines.is_empty() {
            return true;
        }
        let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(self.lines_max));
        to.send(Input::Lines {
            lines,
            read_bytes: std::mem::take(&mut self.read_bytes),
        })
        .is_ok()
    }
}
