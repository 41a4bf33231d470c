//! `POST /v1/commands`: a JSON Lines body of commands in, a JSON Lines answer out, each line
//! exactly as `gongji apply --json` prints it, streamed as the lines become durable.
//!
//! Three parties, each bounded: a task feeding the request body's chunks into a channel of
//! [`BODY_CHUNKS_MAX`]; [`Ledger::apply_stream`](gongji_ledger::Ledger::apply_stream) on a
//! blocking thread, reading that channel as a [`Read`] ([`BodyReader`]) with the ledger's own
//! line bound; and its sink ([`AnswerSink`]), which hands each durable group's lines to the
//! response through a channel of [`ANSWER_GROUPS_MAX`]. Memory stays bounded whatever the body's
//! length.
//!
//! Invariants: a line is sent only once durable (only `apply_stream`'s sink sends, and it is
//! only given durable groups); a stream that ends early (the client went away or stopped
//! reading for `answer_stall_max`, sent nothing for `body_idle_max`, or the server is stopping)
//! leaves every answered line applied and no line half applied (a line's events are one atomic
//! append; lines decided and not yet durable go with the ledger, which is opened again). If the
//! stream ends for another reason than the body's end, its last line is an error object
//! `{"error":{"code","message"}}` naming the last line read.

use std::convert::Infallible;
use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use gongji_ledger::{DurableGroup, LineOutcome, OutcomeSink, StreamError, StreamOptions};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use crate::answers::write_outcome_json;
use crate::app::App;
use crate::app::Placement;
use crate::error::{ApiError, ErrorBody};
use crate::map::HeldMap;
use crate::metrics::Metrics;
use gongji_ledger::regions::RoutedError;

/// The writer a stream holds: the one ledger, or a region map's.
enum Held {
    One(crate::reads::Held),
    Map(HeldMap),
}

/// Body chunks in flight between the connection and the ledger's reader.
const BODY_CHUNKS_MAX: usize = 16;
/// Durable groups' answers in flight between the ledger and the connection.
const ANSWER_GROUPS_MAX: usize = 4;
/// Lines decided before their events are made durable together (as `apply`'s default).
const BATCH_LINES: usize = 1000;
/// The projections are stored at least this often during a stream, so that a fresh read view
/// (opened past its memory bound, see `reads`) folds at most about this much of the stream.
const STORE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies a JSON Lines body of commands (as `gongji apply`) and answers each line as
/// `gongji apply --json` prints it, streamed: each line only once it is durable.
#[utoipa::path(post, path = "/v1/commands", tag = "commands",
    request_body(content = String, content_type = "application/x-ndjson",
        description = "One command a line, as `gongji apply` reads them"),
    responses((status = 200, description = "One outcome a line, `{\"line\":N,\"ok\":true,\"result\":{…}}` or `{\"line\":N,\"ok\":false,\"error\":{\"code\",\"message\"}}`; if the stream ends early, a last line `{\"error\":{…}}`", content_type = "application/x-ndjson", body = String),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 415, description = "The body is not application/x-ndjson", body = ErrorBody),
        (status = 503, description = "Another command stream held the ledger too long", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_commands(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !kind.is_some_and(|k| k.trim_start().starts_with("application/x-ndjson")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the commands as Content-Type: application/x-ndjson, one JSON object a line",
        ));
    }
    let held = match &app.placement {
        Placement::One { writer, .. } => Held::One(writer.hold().await?),
        Placement::Map(map) => Held::Map(map.hold().await?),
    };
    let (chunks_in, chunks_out) = mpsc::channel(BODY_CHUNKS_MAX);
    let (answers_in, answers_out) = mpsc::channel::<Bytes>(ANSWER_GROUPS_MAX);
    let feeder = tokio::spawn(feed(
        body,
        chunks_in,
        app.shutdown.clone(),
        app.limits.body_idle_max,
    ));
    let sink = AnswerSink {
        to: answers_in,
        runtime: Handle::current(),
        stall_max: app.limits.answer_stall_max,
        metrics: app.metrics.clone(),
    };
    let reader = BodyReader::new(chunks_out);
    tokio::task::spawn_blocking(move || {
        match held {
            Held::One(held) => run_stream(held, reader, sink),
            Held::Map(held) => run_routed(held, reader, sink),
        }
        feeder.abort();
    });
    let answers = futures_util::stream::unfold(answers_out, |mut answers| async move {
        let next = answers.recv().await?;
        Some((Ok::<Bytes, Infallible>(next), answers))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(answers))
        .map_err(ApiError::ledger)
}

/// Feeds the request body into the channel the ledger reads, until the body ends; an error
/// instead if the body breaks off, sends nothing for `idle_max`, or the server is stopping.
async fn feed(
    body: Body,
    to: mpsc::Sender<io::Result<Bytes>>,
    mut shutdown: watch::Receiver<bool>,
    idle_max: Duration,
) {
    let mut chunks = body.into_data_stream();
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(idle_max, chunks.next()) => next,
            _ = async { drop(shutdown.wait_for(|stopping| *stopping).await) } => {
                let _ = to.send(Err(io::Error::other("the server is stopping"))).await;
                return;
            }
        };
        let chunk = match next {
            Ok(Some(Ok(chunk))) => Ok(chunk),
            Ok(Some(Err(e))) => Err(io::Error::other(format!("the request body broke off: {e}"))),
            Ok(None) => return,
            Err(_) => Err(io::Error::other(format!(
                "no body came for {} s",
                idle_max.as_secs_f64()
            ))),
        };
        let failed = chunk.is_err();
        if to.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

/// The request body as a [`Read`], for the ledger's reader thread (it blocks there). It hands
/// over whole lines when it can: the part of a line whose end has not arrived is held back
/// (up to [`HELD_BYTES_MAX`]) until it does, so that the ledger's reader, which answers what
/// it has as soon as its buffer runs dry, is not kept waiting on half a line meanwhile. At the
/// body's end a last line without its newline is handed over; if the body breaks off, it is
/// not (a cut line is never applied).
struct BodyReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    /// Ready to be read.
    ready: Bytes,
    /// The start of a line whose end has not arrived.
    held: Vec<u8>,
}

/// Most bytes of an unfinished line held back; past it they are handed over (the ledger's
/// reader bounds the line itself).
const HELD_BYTES_MAX: usize = 64 * 1024;

impl BodyReader {
    fn new(chunks: mpsc::Receiver<io::Result<Bytes>>) -> BodyReader {
        BodyReader {
            chunks,
            ready: Bytes::new(),
            held: Vec::new(),
        }
    }

    /// Takes in one chunk: what ends with its last newline becomes ready, the rest is held.
    fn take_in(&mut self, chunk: Bytes) {
        match chunk.iter().rposition(|b| *b == b'\n') {
            Some(end) if self.held.is_empty() => {
                self.ready = chunk.slice(..=end);
                self.held.extend_from_slice(&chunk[end + 1..]);
            }
            Some(end) => {
                let mut ready = std::mem::take(&mut self.held);
                ready.extend_from_slice(&chunk[..=end]);
                self.ready = Bytes::from(ready);
                self.held.extend_from_slice(&chunk[end + 1..]);
            }
            None => {
                self.held.extend_from_slice(&chunk);
                if self.held.len() >= HELD_BYTES_MAX {
                    self.ready = Bytes::from(std::mem::take(&mut self.held));
                }
            }
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.ready.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.take_in(chunk),
                Some(Err(error)) => return Err(error),
                None if self.held.is_empty() => return Ok(0),
                None => self.ready = Bytes::from(std::mem::take(&mut self.held)),
            }
        }
        let n = buf.len().min(self.ready.len());
        buf[..n].copy_from_slice(&self.ready.split_to(n));
        Ok(n)
    }
}

/// Where each durable group's answers go: formatted as `apply --json` prints them and sent to
/// the response, waiting at most `stall_max` for room.
struct AnswerSink {
    to: mpsc::Sender<Bytes>,
    runtime: Handle,
    stall_max: Duration,
    metrics: Arc<Metrics>,
}

impl AnswerSink {
    fn count(&self, outcome: &LineOutcome) {
        let counter = match outcome {
            LineOutcome::Applied(_) => &self.metrics.lines_applied,
            LineOutcome::Rejected(_) => &self.metrics.lines_refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn send(&self, chunk: Bytes) -> Result<(), String> {
        let sent = self
            .runtime
            .block_on(async { tokio::time::timeout(self.stall_max, self.to.send(chunk)).await });
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("the client went away".into()),
            Err(_) => Err(format!(
                "the client read no answer for {} s",
                self.stall_max.as_secs_f64()
            )),
        }
    }
}

impl OutcomeSink for AnswerSink {
    type Error = String;

    fn deliver(&mut self, group: &DurableGroup) -> Result<(), String> {
        let mut text = Vec::new();
        for (line, outcome) in group.lines() {
            write_outcome_json(&mut text, *line, outcome).map_err(|e| e.to_string())?;
            self.count(outcome);
        }
        let position = &self.metrics.durable_position;
        position.fetch_max(group.durable_end(), Ordering::Relaxed);
        self.send(Bytes::from(text))
    }
}

/// Runs the stream on this (blocking) thread; ends the response with an error line if it
/// ended early; then lets the ledger go (stored, or opened again).
fn run_stream(mut held: crate::reads::Held, reader: BodyReader, mut sink: AnswerSink) {
    let options = StreamOptions {
        batch_lines: BATCH_LINES,
        store_interval: Some(STORE_INTERVAL),
        ..StreamOptions::default()
    };
    let streamed = held
        .ledger()
        .apply_stream(reader, &options, &mut sink, &mut |_| {});
    let ended = match streamed {
        Ok(_) => None,
        Err(StreamError::Unreadable { after_line, error }) => Some(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_ended",
            format!("{error}: lines up to {after_line} were read and answered; send the lines after it again"),
        )),
        Err(StreamError::Sink(why)) => {
            eprintln!("gongji serve: a command stream ended: {why}");
            None // nobody to tell
        }
        Err(error) => Some(ApiError::ledger(error)),
    };
    held.finish();
    if let Some(error) = ended {
        let _ = sink.send(Bytes::from(error.json_line()));
    }
}

/// Runs the stream over a region map on this (blocking) thread, each line routed to its
/// region's ledger (`gongji_ledger::regions::apply_routed`), answered in input order once
/// durable there; ends the response with an error line if it ended early; then lets the
/// writers go (the directory published, or every writer dropped to be opened again).
fn run_routed(mut held: HeldMap, reader: BodyReader, sink: AnswerSink) {
    let mut deliver = |lines: &[(usize, LineOutcome)]| -> io::Result<()> {
        let mut text = Vec::new();
        for (line, outcome) in lines {
            write_outcome_json(&mut text, *line, outcome)?;
            sink.count(outcome);
        }
        sink.send(Bytes::from(text)).map_err(io::Error::other)
    };
    let (regions, relay) = held.writers();
    // A panic on one of its threads leaves the writers in doubt: told as a ledger's failure.
    let routed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gongji_ledger::regions::apply_routed(
            regions,
            relay,
            io::BufReader::new(reader),
            BATCH_LINES,
            &mut deliver,
            &mut |_| {},
        )
    }));
    let routed = routed.unwrap_or_else(|_| {
        let why = "a thread of the routed apply panicked".to_string();
        Err(RoutedError::Ledger(gongji_ledger::LedgerError::Projection(
            why,
        )))
    });
    let ended = match &routed {
        Ok(summary) => {
            for (transfer, why) in &summary.left_in_transit {
                eprintln!(
                    "gongji serve: transfer {transfer} is left in transit for the relay: {why}"
                );
            }
            None
        }
        Err(RoutedError::Input { after_line, error }) => Some(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_ended",
            format!("{error}: lines up to {after_line} were read and answered; send the lines after it again"),
        )),
        Err(RoutedError::Output(why)) => {
            eprintln!("gongji serve: a command stream ended: {why}");
            None // nobody to tell
        }
        Err(RoutedError::Ledger(error)) => Some(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_ended",
            format!(
                "{error}: the lines answered are durable; lines after the last answered may have \
                 been applied in other regions' ledgers: ask before sending them again (a line \
                 applied twice is refused as a duplicate where it has an id)"
            ),
        )),
    };
    // Only a ledger's failure leaves a writer in doubt: every writer is dropped then.
    held.finish(matches!(routed, Err(RoutedError::Ledger(_))));
    if let Some(error) = ended {
        let _ = sink.send(Bytes::from(error.json_line()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(chunks: &[&str], end: Option<io::Error>) -> BodyReader {
        let (to, from) = mpsc::channel(chunks.len() + 1);
        for chunk in chunks {
            to.try_send(Ok(Bytes::from(chunk.to_string()))).unwrap();
        }
        if let Some(error) = end {
            to.try_send(Err(error)).unwrap();
        }
        BodyReader::new(from)
    }

    fn next(reader: &mut BodyReader) -> io::Result<String> {
        let mut buf = [0u8; 100];
        let n = reader.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn whole_lines_are_handed_over_and_the_start_of_a_line_waits_for_its_end() {
        let mut body = reader(&["a\nb\nha", "lf\nlast"], None);
        assert_eq!(next(&mut body).unwrap(), "a\nb\n");
        assert_eq!(next(&mut body).unwrap(), "half\n");
        assert_eq!(
            next(&mut body).unwrap(),
            "last",
            "the body's end ends the last line"
        );
        assert_eq!(next(&mut body).unwrap(), "");
    }

    #[test]
    fn a_line_cut_by_a_broken_body_is_never_handed_over() {
        let mut body = reader(&["a\ncut"], Some(io::Error::other("gone")));
        assert_eq!(next(&mut body).unwrap(), "a\n");
        assert!(next(&mut body).is_err());
    }

    #[test]
    fn a_long_line_is_handed_over_in_parts_past_the_bound() {
        let long = "x".repeat(HELD_BYTES_MAX);
        let mut body = reader(&[&long, "\n"], None);
        let mut read = String::new();
        while let Ok(part) = next(&mut body) {
            if part.is_empty() {
                break;
            }
            read.push_str(&part);
        }
        assert_eq!(read.len(), HELD_BYTES_MAX + 1);
    }
}
