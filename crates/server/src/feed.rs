//! `GET /v1/events`: the change feed, as server-sent events. Every durable record of the log
//! from a position on, in order, then the records that become durable after, live; each event's
//! `id` is the record's position and its `data` the record as `gongji history --json` prints an
//! event (the JSON of its [`HistoryEntry`](gongji_ledger::HistoryEntry), byte for byte, which
//! `event_text` writes without building one), so a subscriber that stopped resumes from the
//! position after the last one it has (`?from=` or the `Last-Event-ID` header).
//!
//! Past records are read from the log in chunks ([`read_chunk`]: at most
//! [`CHUNK_RECORDS_MAX`] records or about [`CHUNK_BYTES_MAX`] bytes, through the read side,
//! which gives durable records only), each record's link in the hash chain checked. Live: the feed looks every [`POLL_INTERVAL`] at the
//! durable position the command streams report ([`Metrics::durable_position`], fed by their
//! sink as each group becomes durable) and reads when it passed the feed's position; no lock is
//! taken to look. A subscriber is served by one task sending chunks through a channel of
//! [`CHUNKS_IN_FLIGHT`], with up to [`READS_AHEAD`] chunks being read at once (`Reader`, each
//! read on a blocking thread of its own); the log itself is the backlog.
//!
//! Invariants: a record is sent only once durable, in position order, each once per
//! subscription; memory per subscriber is bounded by the chunks in flight and being read
//! (`CHUNKS_IN_FLIGHT + READS_AHEAD + 1` chunks) whatever its lag (a
//! slow subscriber is read for from the log when it asks, never buffered for); no subscriber
//! holds the writer (each chunk is one short query); a subscriber that takes nothing for
//! `answer_stall_max` is dropped; when the server stops, the feed ends with an `end` event
//! naming the position to resume from. The subscription is in the access log before the first
//! event (the feed shows every member's events).
//!
//! [`Metrics::durable_position`]: crate::metrics::Metrics

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use gongji_domain::Event;
use gongji_ledger::{Ledger, LedgerError};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::bulk::{channel_body, logged};
use crate::error::{query, ApiError, ErrorBody};
use crate::members::Asker;

mod event_text;
use event_text::EventText;

/// Most records read and sent as one chunk: the positions one read covers.
pub const CHUNK_RECORDS_MAX: u64 = 1024;
/// A chunk ends after the record that takes it past this many bytes (records of the usual
/// size, a few hundred bytes, fill a chunk by count well before).
pub const CHUNK_BYTES_MAX: usize = 1024 * 1024;
/// Chunks sent and not yet taken by the connection, per subscriber.
pub const CHUNKS_IN_FLIGHT: usize = 2;
/// Chunks read at once for one subscriber, each on a blocking thread: while the connection
/// takes one, the next are being read (reading is most of the feed's work).
pub const READS_AHEAD: usize = 2;
/// How often a subscriber at the log's end looks whether more is durable.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A comment line is sent after this long without records (proxies keep the connection; a
/// subscriber that went away is noticed).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

const ROUTE: &str = "/v1/events";

/// `?from=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The position of the first record wanted (from 0; default 0). A `Last-Event-ID` header
    /// wins over it: the feed then starts after that position.
    #[param(value_type = Option<i64>, minimum = 0)]
    from: Option<String>,
}

/// Records read from the log: their events' text, the position after the last, and the durable
/// end the read saw.
struct Chunk {
    text: Vec<u8>,
    next: u64,
    durable_end: u64,
}

/// One server-sent event as a client parses it (OpenAPI 3.0/3.1 has no `itemSchema`: a
/// `text/event-stream` response's schema describes each event): `id` is the record's
/// position, `data` the record as `history --json` prints an event, or, on the last event
/// (`event: end`), the error object saying why the feed ended.
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used: the events are written as text
pub struct FeedEvent {
    /// The record as `gongji history --json` prints an event (a JSON object, as text), or the
    /// error object of the `end` event.
    data: String,
    /// `message` for a record, `end` for the last event.
    event: Option<String>,
    /// The record's position (absent on the `end` event).
    id: Option<String>,
}

/// The change feed (server-sent events): every record from `from` on, then live.
#[utoipa::path(get, path = "/v1/events", tag = "audit",
    params(FeedQuery,
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, minimum = 0, description = "The position of the last record received: the feed resumes after it")),
    responses((status = 200, description = "text/event-stream: per record `id: POSITION` and `data:` the record as `gongji history --json` prints an event; a last `event: end` with an error object when the server stops", content_type = "text/event-stream", body = FeedEvent),
        (status = 400, description = "The position does not read", body = ErrorBody),
        (status = 404, description = "The position is past the log's durable end: nothing there yet", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 501, description = "Over a region map: asked of one region's own ledger instead", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(app): State<App>,
    asker: Asker,
    headers: HeaderMap,
    q: Result<Query<FeedQuery>, QueryRejection>,
) -> Response {
    let answer = subscribe(&app, &headers, q).await;
    logged(&app, asker, ROUTE, answer).await
}

/// Checks where the feed starts, reads the first chunk, and starts the task that sends.
async fn subscribe(
    app: &App,
    headers: &HeaderMap,
    q: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let from = start(headers, query(q)?.from)?;
    let first = read(app, from, u64::MAX).await?;
    let reported = app.metrics.durable_position.load(Ordering::Relaxed);
    let end = first.durable_end.max(reported);
    if from > end {
        return Err(ApiError::not_found(format!(
            "position {from} is past the log's durable end ({end} records): nothing there yet"
        )));
    }
    let (to, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::spawn(pump(app.clone(), from, first, to));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(channel_body(chunks))
        .map_err(ApiError::ledger)
}

/// The first position to send: after `Last-Event-ID` if given, else `from`, else 0. Both are
/// checked when both are given; a position is at most `i64::MAX` (as the document says, and
/// as a log can hold).
fn start(headers: &HeaderMap, from: Option<String>) -> Result<u64, ApiError> {
    let from = from.map_or(Ok(0), |text| {
        position(&text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "from: '{text}' is not a position (a whole number from 0 to {})",
                i64::MAX
            ))
        })
    })?;
    let Some(last) = headers.get("last-event-id") else {
        return Ok(from);
    };
    let last = last.to_str().unwrap_or("").trim();
    position(last).map(|last| last + 1).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Last-Event-ID: '{last}' is not the position of a record"
        ))
    })
}

/// A position as a request gives it: a whole number from 0 to `i64::MAX`.
fn position(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|&p| p <= i64::MAX as u64)
}

/// The records from `from` on and before `to`, one chunk (at most [`CHUNK_RECORDS_MAX`]),
/// through the read side.
async fn read(app: &App, from: u64, to: u64) -> Result<Chunk, ApiError> {
    let chunk = app
        .one_ledger(ROUTE)?
        .run(move |ledger| read_chunk(ledger, from, to))
        .await?;
    chunk.map_err(ApiError::of_ledger)
}

/// Reads at most one chunk of durable records from `from` (before `to`), as event text. Each record's link in
/// the hash chain is checked (its hash against the previous-hash of the record after it, read
/// for that: the reads of a subscription check the chain from its first record on without
/// walking it again), and each record is written without building a [`HistoryEntry`].
///
/// [`HistoryEntry`]: gongji_ledger::HistoryEntry
fn read_chunk(ledger: &Ledger, from: u64, to: u64) -> Result<Chunk, LedgerError> {
    let log = ledger.log();
    let durable_end = log.durable_end();
    let mut text = Vec::with_capacity(CHUNK_BYTES_MAX / 2);
    let mut writer = EventText::default();
    let mut next = from;
    let to = durable_end
        .min(to)
        .min(from.saturating_add(CHUNK_RECORDS_MAX));
    if from < to {
        // One record past the chunk, when there is one: its previous-hash is the last link.
        for linked in log.read_range_links_deferred(from, durable_end.min(to + 1))? {
            let (record, link) = linked?;
            log.check_link(&record, &link)?;
            let event = Event::decode(&record.payload)
                .map_err(|e| LedgerError::Projection(format!("record {}: {e}", record.position)))?;
            writer
                .write(&mut text, &record, &event)
                .map_err(|e| LedgerError::Projection(e.to_string()))?;
            next = record.position + 1;
            if next >= to || text.len() >= CHUNK_BYTES_MAX {
                break;
            }
        }
    }
    Ok(Chunk {
        text,
        next,
        durable_end,
    })
}

/// The last event of a feed that ends: `event: end`, the error object as data.
fn end_event(error: &ApiError) -> Bytes {
    let line = error.json_line();
    Bytes::from(format!("event: end\ndata: {}\n\n", line.trim_end()))
}

fn stopping(next: u64) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "stream_ended",
        format!("the server is stopping: resume from position {next} (from={next})"),
    )
}

/// How a subscription goes on.
enum Next {
    /// Read (more).
    Go,
    /// The subscriber went away, or took nothing for `answer_stall_max`.
    Gone,
    Stopping,
}

/// How long the last event of a feed that ends may wait for room.
const END_EVENT_WAIT: Duration = Duration::from_secs(1);

/// Sends the last event, if the connection takes it soon.
async fn finish(to: &mpsc::Sender<Bytes>, error: &ApiError) {
    let _ = tokio::time::timeout(END_EVENT_WAIT, to.send(end_event(error))).await;
}

/// Sends the chunks of one subscription, from `first` on, until the subscriber goes or the
/// server stops.
async fn pump(app: App, mut next: u64, first: Chunk, to: mpsc::Sender<Bytes>) {
    let mut shutdown = app.shutdown.clone();
    let mut reader = Reader::new(app.clone());
    let mut known_end = first.durable_end;
    let mut chunk = Some(Ok(first));
    let mut quiet_since = Instant::now();
    loop {
        let read = match chunk.take() {
            Some(read) => read,
            None => reader.chunk(next, known_end).await,
        };
        if let Ok(chunk) = &read {
            known_end = known_end.max(chunk.durable_end);
        }
        let sent = match read {
            Ok(chunk) if chunk.next > next => {
                next = chunk.next;
                quiet_since = Instant::now();
                send(&app, &to, Bytes::from(chunk.text), &mut shutdown).await
            }
            Ok(_) => wait(&app, next, &to, &mut quiet_since, &mut shutdown).await,
            Err(error) if transient(&error) => {
                wait(&app, next, &to, &mut quiet_since, &mut shutdown).await
            }
            Err(error) => return finish(&to, &error).await,
        };
        match sent {
            Next::Go => {}
            Next::Gone => return,
            Next::Stopping => return finish(&to, &stopping(next)).await,
        }
    }
}

/// Reads one chunk of the positions from `.0` and before `.1` (the read side's [`read`], or a
/// test's).
type ReadFrom = Arc<dyn Fn(u64, u64) -> BoxFuture<Result<Chunk, ApiError>> + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The reads of one subscription: each of [`CHUNK_RECORDS_MAX`] positions, up to
/// [`READS_AHEAD`] under way at once (none starting past the durable end known), taken in
/// position order. A read ahead starts where the one before it ends unless that one is cut
/// short ([`CHUNK_BYTES_MAX`], or a failure): then the positions between are read first, so
/// chunks follow each other with no gap or overlap and no read is wasted.
struct Reader {
    read: ReadFrom,
    /// Each read's first position, and the read.
    under_way: VecDeque<(u64, JoinHandle<Result<Chunk, ApiError>>)>,
}

impl Reader {
    /// Reads through the read side.
    fn new(app: App) -> Reader {
        Reader::with(Arc::new(move |from, to| {
            let app = app.clone();
            Box::pin(async move { read(&app, from, to).await })
        }))
    }

    fn with(read: ReadFrom) -> Reader {
        Reader {
            read,
            under_way: VecDeque::with_capacity(READS_AHEAD),
        }
    }

    /// The chunk from `next` on; starts the reads after it, up to `known_end`.
    async fn chunk(&mut self, next: u64, known_end: u64) -> Result<Chunk, ApiError> {
        match self.under_way.front().map(|(start, _)| *start) {
            Some(start) if start > next => {
                let gap = tokio::spawn((self.read)(next, start));
                self.under_way.push_front((next, gap));
            }
            Some(start) if start < next => self.drop_all(), // not reached: reads do not overlap
            _ => {}
        }
        let mut start = self
            .under_way
            .back()
            .map_or(next, |(last, _)| last.saturating_add(CHUNK_RECORDS_MAX));
        while self.under_way.is_empty() || (self.under_way.len() < READS_AHEAD && start < known_end)
        {
            let to = start.saturating_add(CHUNK_RECORDS_MAX);
            self.under_way
                .push_back((start, tokio::spawn((self.read)(start, to))));
            start = to;
        }
        let (_, read) = self
            .under_way
            .pop_front()
            .expect("a read is under way: the loop above starts one when none is");
        read.await.map_err(ApiError::ledger)?
    }

    fn drop_all(&mut self) {
        for (_, read) in self.under_way.drain(..) {
            read.abort();
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.drop_all();
    }
}

/// A failure of the read side that passes (the ledger busy, or being opened again).
fn transient(error: &ApiError) -> bool {
    matches!(error.code, "busy" | "timeout" | "unavailable")
}

/// Hands `chunk` to the connection, waiting at most `answer_stall_max` for room.
async fn send(
    app: &App,
    to: &mpsc::Sender<Bytes>,
    chunk: Bytes,
    shutdown: &mut watch::Receiver<bool>,
) -> Next {
    tokio::select! {
        sent = tokio::time::timeout(app.limits.answer_stall_max, to.send(chunk)) => match sent {
            Ok(Ok(())) => Next::Go,
            _ => Next::Gone,
        },
        _ = shutdown.wait_for(|stopping| *stopping) => Next::Stopping,
    }
}

/// Waits until the reported durable position passes `next` (looking every [`POLL_INTERVAL`]),
/// sending a comment after [`KEEP_ALIVE`] without records.
async fn wait(
    app: &App,
    next: u64,
    to: &mpsc::Sender<Bytes>,
    quiet_since: &mut Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> Next {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return Next::Stopping,
        }
        if app.metrics.durable_position.load(Ordering::Relaxed) > next {
            return Next::Go;
        }
        if quiet_since.elapsed() >= KEEP_ALIVE {
            *quiet_since = Instant::now();
            let comment = Bytes::from_static(b": keep-alive\n\n");
            match send(app, to, comment, shutdown).await {
                Next::Go => {}
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn headers(last: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(last) = last {
            headers.insert("last-event-id", last.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_feed_starts_after_last_event_id_else_at_from_else_at_0() {
        assert_eq!(start(&headers(None), None).unwrap(), 0);
        assert_eq!(start(&headers(None), Some("7".into())).unwrap(), 7);
        assert_eq!(start(&headers(Some("7")), Some("2".into())).unwrap(), 8);
        for bad in ["x", "-1", &u64::MAX.to_string()] {
            assert!(start(&headers(Some(bad)), None).is_err(), "{bad}");
        }
        assert!(start(&headers(None), Some("soon".into())).is_err());
    }

    struct Running(Arc<AtomicUsize>);

    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A log of `end` positions read as chunks cut short wherever `cut` says (as
    /// [`CHUNK_BYTES_MAX`] cuts them), each read taking a moment; `most` counts the most reads
    /// under way at once.
    fn reads_of(end: u64, cut: fn(u64) -> bool, most: Arc<AtomicUsize>) -> ReadFrom {
        let under_way = Arc::new(AtomicUsize::new(0));
        Arc::new(move |from, to| {
            let (under_way, most) = (under_way.clone(), most.clone());
            Box::pin(async move {
                let now = under_way.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let _running = Running(under_way); // a read dropped is no longer under way
                tokio::time::sleep(Duration::from_millis(2)).await;
                let mut text = Vec::new();
                let mut next = from;
                while next < end.min(to).min(from + CHUNK_RECORDS_MAX) {
                    text.extend_from_slice(format!("{next}\n").as_bytes());
                    next += 1;
                    if cut(next) {
                        break;
                    }
                }
                Ok(Chunk {
                    text,
                    next,
                    durable_end: end,
                })
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_read_ahead_follow_each_other_with_no_gap_or_overlap_even_when_cut_short() {
        let end = 20 * CHUNK_RECORDS_MAX + 77;
        let cuts: [fn(u64) -> bool; 3] = [|_| false, |p| p % 700 == 0, |p| p % 3000 < 5];
        for (i, cut) in cuts.into_iter().enumerate() {
            let most = Arc::new(AtomicUsize::new(0));
            let mut reader = Reader::with(reads_of(end, cut, most.clone()));
            let (mut next, mut sent) = (0, Vec::new());
            while next < end {
                let chunk = reader.chunk(next, end).await.expect("a chunk");
                assert!(
                    chunk.next > next,
                    "case {i}: the chunk from {next} is not empty"
                );
                sent.extend_from_slice(&chunk.text);
                next = chunk.next;
            }
            let positions: Vec<u64> = String::from_utf8(sent)
                .unwrap()
                .lines()
                .map(|line| line.parse().unwrap())
                .collect();
            let first_wrong = (0..end).zip(&positions).find(|(want, got)| want != *got);
            assert_eq!(first_wrong, None, "case {i}: position, what was sent there");
            assert_eq!(positions.len() as u64, end, "case {i}: every position once");
            let most = most.load(Ordering::SeqCst);
            assert_eq!(most, READS_AHEAD, "case {i}: reads under way at once");
        }
    }

    #[test]
    fn an_ending_feed_says_why_in_one_event() {
        let event = end_event(&stopping(12));
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("event: end\ndata: {\"error\":{\"code\":\"stream_ended\""));
        assert!(
            text.ends_with("}\n\n"),
            "a blank line ends an event: {text:?}"
        );
        assert_eq!(text.matches('\n').count(), 3);
    }
}
