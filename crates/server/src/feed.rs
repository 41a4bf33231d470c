//! `GET /v1/events`: the change feed, as server-sent events. Every durable record of the log
//! from a position on, in order, then the records that become durable after, live; each event's
//! `id` is the record's position and its `data` the record as `gongji history --json` prints an
//! event (the same [`HistoryEntry`] shaping), so a subscriber that stopped resumes from the
//! position after the last one it has (`?from=` or the `Last-Event-ID` header).
//!
//! Past records are read from the log in chunks ([`read_chunk`]: at most
//! [`CHUNK_RECORDS_MAX`] records or about [`CHUNK_BYTES_MAX`] bytes, through the read side,
//! which gives durable records only). Live: the feed looks every [`POLL_INTERVAL`] at the
//! durable position the command streams report ([`Metrics::durable_position`], fed by their
//! sink as each group becomes durable) and reads when it passed the feed's position; no lock is
//! taken to look. A subscriber is served by one task sending chunks through a channel of
//! [`CHUNKS_IN_FLIGHT`]; the log itself is the backlog.
//!
//! Invariants: a record is sent only once durable, in position order, each once per
//! subscription; memory per subscriber is bounded by the chunks in flight whatever its lag (a
//! slow subscriber is read for from the log when it asks, never buffered for); no subscriber
//! holds the writer (each chunk is one short query); a subscriber that takes nothing for
//! `answer_stall_max` is dropped; when the server stops, the feed ends with an `end` event
//! naming the position to resume from. The subscription is in the access log before the first
//! event (the feed shows every member's events).
//!
//! [`Metrics::durable_position`]: crate::metrics::Metrics

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use gongji_domain::Event;
use gongji_ledger::{HistoryEntry, Ledger, LedgerError};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::bulk::{channel_body, logged};
use crate::error::{query, ApiError, ErrorBody};
use crate::members::Asker;

/// Most records read and sent as one chunk.
pub const CHUNK_RECORDS_MAX: u64 = 1024;
/// A chunk ends after the record that takes it past this many bytes.
pub const CHUNK_BYTES_MAX: usize = 256 * 1024;
/// Chunks sent and not yet taken by the connection, per subscriber.
pub const CHUNKS_IN_FLIGHT: usize = 4;
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
        ("Last-Event-ID" = Option<String>, Header, description = "The position of the last record received: the feed resumes after it")),
    responses((status = 200, description = "text/event-stream: per record `id: POSITION` and `data:` the record as `gongji history --json` prints an event; a last `event: end` with an error object when the server stops", content_type = "text/event-stream", body = FeedEvent),
        (status = 400, description = "The position does not read, or is past the log's durable end", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody)),
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
    let first = read(app, from).await?;
    let reported = app.metrics.durable_position.load(Ordering::Relaxed);
    let end = first.durable_end.max(reported);
    if from > end {
        return Err(ApiError::bad_request(format!(
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

/// The first position to send: after `Last-Event-ID` if given, else `from`, else 0.
fn start(headers: &HeaderMap, from: Option<String>) -> Result<u64, ApiError> {
    if let Some(last) = headers.get("last-event-id") {
        let last = last.to_str().unwrap_or("").trim();
        return last
            .parse::<u64>()
            .ok()
            .and_then(|last| last.checked_add(1))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Last-Event-ID: '{last}' is not the position of a record"
                ))
            });
    }
    from.map_or(Ok(0), |text| {
        text.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("from: '{text}' is not a position (a whole number)"))
        })
    })
}

/// The records from `from` on, one chunk, through the read side.
async fn read(app: &App, from: u64) -> Result<Chunk, ApiError> {
    let chunk = app
        .reads
        .run(move |ledger| read_chunk(ledger, from))
        .await?;
    chunk.map_err(ApiError::ledger)
}

/// Reads at most one chunk of durable records from `from`, as event text.
fn read_chunk(ledger: &Ledger, from: u64) -> Result<Chunk, LedgerError> {
    let log = ledger.log();
    let durable_end = log.durable_end();
    let mut text = Vec::new();
    let mut next = from;
    let to = durable_end.min(from.saturating_add(CHUNK_RECORDS_MAX));
    if from < to {
        for record in log.read_range(from, to)? {
            let record = record?;
            let event = Event::decode(&record.payload)
                .map_err(|e| LedgerError::Projection(format!("record {}: {e}", record.position)))?;
            write_event(&mut text, &HistoryEntry::of(&record, &event))?;
            next = record.position + 1;
            if text.len() >= CHUNK_BYTES_MAX {
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

/// One server-sent event: `id: POSITION`, `data: JSON` (one line: compact JSON has no newline).
fn write_event(out: &mut Vec<u8>, entry: &HistoryEntry) -> Result<(), LedgerError> {
    let failed = |e: &dyn std::fmt::Display| LedgerError::Projection(e.to_string());
    write!(out, "id: {}\ndata: ", entry.position).map_err(|e| failed(&e))?;
    serde_json::to_writer(&mut *out, entry).map_err(|e| failed(&e))?;
    out.extend_from_slice(b"\n\n");
    Ok(())
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
    let mut chunk = Some(Ok(first));
    let mut quiet_since = Instant::now();
    loop {
        let read = match chunk.take() {
            Some(read) => read,
            None => read(&app, next).await,
        };
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
