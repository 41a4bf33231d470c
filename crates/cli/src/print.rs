//! The one way the binary writes to standard output and standard error.
//!
//! Rust ignores SIGPIPE, so a write to a pipe whose reader went away (`gongji ... | head`)
//! returns `EPIPE`, which `println!` turns into a panic (exit 101). Everything this binary
//! prints goes through [`Stdout`] instead: a reader that went away ends the output quietly
//! (what is left to print is dropped, no message) and the command finishes its work and exits
//! with the status it would have had. Any other write error is reported (exit 2). Standard
//! error is written with errors ignored: there is nowhere left to report them.
//!
//! Text that can carry what a file or a command line said is made terminal-safe first
//! ([`gongji_recon::render::terminal_safe`]): no escape sequence reaches the terminal raw.

use std::io::{self, Write};

use gongji_recon::render::{terminal_safe, terminal_safe_json};

/// Standard output that treats a closed pipe as the end of the output.
pub struct Stdout {
    inner: io::Stdout,
    /// The reader went away: every later write is dropped.
    closed: bool,
}

/// Standard output, for writers that print as they go.
pub fn stdout() -> Stdout {
    Stdout {
        inner: io::stdout(),
        closed: false,
    }
}

impl Stdout {
    /// `Ok(default)` when the error is the reader having gone away (and from then on).
    fn quiet<T>(&mut self, result: io::Result<T>, default: T) -> io::Result<T> {
        match result {
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(default)
            }
            other => other,
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(bytes.len());
        }
        let written = self.inner.write(bytes);
        self.quiet(written, bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let flushed = self.inner.flush();
        self.quiet(flushed, ())
    }
}

/// Writes `text` as it is (it must already be terminal-safe) and flushes.
pub fn raw(text: &str) -> Result<(), String> {
    let mut out = stdout();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to standard output: {e}"))
}

/// Prints a line of text for people, control characters escaped.
pub fn text_line(text: &str) -> Result<(), String> {
    raw(&format!("{}\n", terminal_safe(text)))
}

/// Prints a line of JSON, with the control characters serde_json leaves raw (DEL, C1)
/// escaped as `\uXXXX`.
pub fn json_line(json: &str) -> Result<(), String> {
    raw(&format!("{}\n", terminal_safe_json(json)))
}

/// Prints a line of JSON or of text, as asked.
pub fn line(json: bool, text: &str) -> Result<(), String> {
    if json {
        json_line(text)
    } else {
        text_line(text)
    }
}

/// Writes `text` to standard error, terminal-safe, ignoring failures.
pub fn error_text(text: &str) {
    let _ = io::stderr().write_all(terminal_safe(text).as_bytes());
}

/// `gongji: MESSAGE` on standard error.
pub fn error_line(message: &str) {
    error_text(&format!("gongji: {message}\n"));
}
