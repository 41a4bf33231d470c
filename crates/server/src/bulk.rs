//! What the routes that read or take whole files share: the access-log entry of a read of many
//! members' data at once ([`logged`]: the change feed, an audit archive, a detail
//! reconciliation), a private scratch directory for one request's file ([`Scratch`]), a
//! request body written to a file within a bound ([`body_to_file`]), and an answer streamed
//! from a bounded channel ([`channel_body`]).
//!
//! Invariants: such a read is in the access log, synced, before its answer is sent (if it cannot
//! be written, the answer is not sent); a scratch directory is created new (mode 0700, under the
//! system's temporary directory, with a random name) and removed with everything in it when its
//! [`Scratch`] is dropped, whatever happened; a body past its bound is refused (413) and never
//! written past it.

use std::convert::Infallible;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::app::App;
use crate::error::ApiError;
use crate::members::Asker;

/// Records `asker`'s read through `route` with `answer`'s status in the access log (no member
/// named: the route and the URI say what was read), then answers; if the entry cannot be
/// written, 500 instead of the answer.
pub async fn logged(
    app: &App,
    asker: Asker,
    route: &'static str,
    answer: Result<Response, ApiError>,
) -> Response {
    logged_about(app, asker, route, None, answer).await
}

/// As [`logged`], naming the one member the read was about (a listing filtered to a member).
pub async fn logged_about(
    app: &App,
    asker: Asker,
    route: &'static str,
    member: Option<String>,
    answer: Result<Response, ApiError>,
) -> Response {
    let status = match &answer {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.status.as_u16(),
    };
    let entry = asker.entry(route, member, None, status);
    match app.access.record(&entry).await {
        Ok(()) => answer.unwrap_or_else(IntoResponse::into_response),
        Err(e) => {
            ApiError::ledger(format!("the access log cannot be written: {e}")).into_response()
        }
    }
}

/// The file `write` makes at `name` in a new scratch directory, opened, with its length (an
/// audit archive, an export, before [`file_body`] sends it); the directory is gone when this
/// returns, whatever happened (the open file keeps its bytes until it is closed).
pub fn scratch_file(
    name: &str,
    write: impl FnOnce(&Path) -> Result<(), ApiError>,
) -> Result<(File, u64), ApiError> {
    let scratch = Scratch::create()
        .map_err(|e| ApiError::ledger(format!("cannot make a scratch directory: {e}")))?;
    let path = scratch.path(name);
    write(&path)?;
    let file = File::open(&path).map_err(ApiError::ledger)?;
    let bytes = file.metadata().map_err(ApiError::ledger)?.len();
    drop(scratch);
    Ok((file, bytes))
}

/// Bytes of a file read and sent at a time ([`file_body`]).
const FILE_CHUNK_BYTES: usize = 64 * 1024;
/// A file's chunks in flight to the connection.
const FILE_CHUNKS_MAX: usize = 8;

/// A response body of `file`'s bytes, read and sent in chunks by a blocking thread that waits
/// at most `stall_max` for room each time and stops when the client goes away or stops
/// reading (an audit archive, an export: files the route wrote and opened).
pub fn file_body(file: std::fs::File, stall_max: std::time::Duration) -> Body {
    let (to, chunks) = mpsc::channel(FILE_CHUNKS_MAX);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || send_file(file, &to, &runtime, stall_max));
    channel_body(chunks)
}

fn send_file(
    mut file: std::fs::File,
    to: &mpsc::Sender<Bytes>,
    runtime: &tokio::runtime::Handle,
    stall_max: std::time::Duration,
) {
    use std::io::Read;
    loop {
        let mut chunk = vec![0u8; FILE_CHUNK_BYTES];
        let read = match file.read(&mut chunk) {
            Ok(0) => return,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // The length was promised: the client sees a cut body, never a wrong one.
                eprintln!("gongji serve: cannot read a scratch file being sent: {e}");
                return;
            }
        };
        chunk.truncate(read);
        let sent = runtime
            .block_on(async { tokio::time::timeout(stall_max, to.send(Bytes::from(chunk))).await });
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
}

/// A response body of the chunks `chunks` receives, ending when every sender is gone.
pub fn channel_body(chunks: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
        let next = chunks.recv().await?;
        Some((Ok::<Bytes, Infallible>(next), chunks))
    });
    Body::from_stream(stream)
}

/// A directory of one request's own, removed with its contents when dropped.
pub struct Scratch {
    dir: PathBuf,
}

/// Names tried before giving up on making a scratch directory.
const SCRATCH_TRIES_MAX: usize = 8;

impl Scratch {
    /// Creates a new directory (mode 0700) with a random name under the system's temporary
    /// directory (`TMPDIR`, else `/tmp`).
    pub fn create() -> io::Result<Scratch> {
        let base = std::env::temp_dir();
        for _ in 0..SCRATCH_TRIES_MAX {
            let mut random = [0u8; 12];
            getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
            let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let dir = base.join(format!("gongji-serve-{name}"));
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Scratch { dir }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "no new scratch directory could be made in {}",
            base.display()
        )))
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates `name` in the directory, new (`O_EXCL`, mode 0600).
    pub fn create_file(&self, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.path(name))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "gongji serve: cannot remove the scratch directory {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// Body chunks in flight between the connection and the thread writing them.
const BODY_CHUNKS_MAX: usize = 16;

/// Writes `body` to `file` (on a blocking thread, through a channel of [`BODY_CHUNKS_MAX`]
/// chunks), refusing it with 413 `too_large` once it passes `bytes_max`. Returns the bytes
/// written, synced to the page cache (not to disk: the file is scratch).
pub async fn body_to_file(body: Body, file: File, bytes_max: u64) -> Result<u64, ApiError> {
    let (to_writer, mut chunks) = mpsc::channel::<Bytes>(BODY_CHUNKS_MAX);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut out = io::BufWriter::new(file);
        while let Some(chunk) = chunks.blocking_recv() {
            out.write_all(&chunk)?;
        }
        out.flush()
    });
    let mut stream = body.into_data_stream();
    let mut bytes: u64 = 0;
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                failed = Some(ApiError::bad_request(format!("the body broke off: {e}")));
                break;
            }
        };
        bytes = bytes.saturating_add(chunk.len() as u64);
        if bytes > bytes_max {
            failed = Some(too_large(bytes_max));
            break;
        }
        if to_writer.send(chunk).await.is_err() {
            break; // the writer failed: said below
        }
    }
    drop(to_writer);
    let written = writer.await.map_err(ApiError::ledger)?;
    if let Some(error) = failed {
        return Err(error);
    }
    written.map_err(|e| ApiError::ledger(format!("cannot write the body to scratch: {e}")))?;
    Ok(bytes)
}

fn too_large(bytes_max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body is longer than the {bytes_max} bytes this route takes"),
    )
}

/// `text` with every mention of `path` (a scratch file's) said as `name` instead.
pub fn renamed(text: &str, path: &Path, name: &str) -> String {
    text.replace(&path.display().to_string(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_directory_is_private_and_gone_once_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::create().unwrap();
        let dir = scratch.dir.clone();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mut file = scratch.create_file("body").unwrap();
        file.write_all(b"x").unwrap();
        assert!(scratch.create_file("body").is_err(), "created new only");
        drop(scratch);
        assert!(!dir.exists());
    }

    #[test]
    fn a_body_is_written_whole_within_its_bound_and_refused_past_it() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let scratch = Scratch::create().unwrap();
        let written = runtime.block_on(body_to_file(
            Body::from("0123456789"),
            scratch.create_file("a").unwrap(),
            10,
        ));
        assert_eq!(written.unwrap(), 10);
        assert_eq!(std::fs::read(scratch.path("a")).unwrap(), b"0123456789");
        let refused = runtime.block_on(body_to_file(
            Body::from("0123456789!"),
            scratch.create_file("b").unwrap(),
            10,
        ));
        assert_eq!(refused.unwrap_err().status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
