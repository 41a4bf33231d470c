//! Segment files: naming, listing, sequential and positioned frame reads.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{io_err, LogError};
use crate::files;
use crate::frame::{
    check_and_decode_body, parse_header, FrameError, FrameView, FRAME_HEADER_BYTES,
};

pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// `DIR/segments/{first_position:020}.seg`
pub(crate) fn segment_path(segments_dir: &Path, first_position: u64) -> PathBuf {
    segments_dir.join(format!("{first_position:020}{SEGMENT_SUFFIX}"))
}

/// Creates the segment file that starts at `first_position` (it must not exist yet), open
/// for reading and writing. The caller syncs the directory.
pub(crate) fn create_segment(segments_dir: &Path, first_position: u64) -> Result<File, LogError> {
    let path = segment_path(segments_dir, first_position);
    files::create_new(&path, "creating segment")
}

/// The first positions of all segment files, ascending. Files that are not
/// named like segments are ignored; a link in the directory refuses the listing.
pub(crate) fn list_segments(segments_dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut ids = Vec::new();
    for entry in files::list_dir(segments_dir, "listing segments in")? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(id) = stem.parse::<u64>() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Fills `buf` as far as the reader allows; returns the bytes read (short only at EOF).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A file read from `offset` on by positional reads (`pread`): the file's own offset is
/// neither used nor moved, so several threads may read one file at once.
struct ReadAt<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// One step of a sequential read.
pub(crate) enum Step<'a> {
    /// Clean end of the file (at a frame boundary).
    End,
    /// A valid frame (checksum verified) starting at `offset_bytes`.
    Frame {
        view: FrameView<'a>,
        offset_bytes: u64,
    },
    /// Bytes at `offset_bytes` that are not a valid frame.
    Bad {
        offset_bytes: u64,
        error: FrameError,
    },
}

/// Reads frames one after another from a segment, through a buffer.
pub(crate) struct FrameReader {
    path: PathBuf,
    reader: BufReader<File>,
    offset_bytes: u64,
    body: Vec<u8>,
    /// The reader ends here (a reader of the log stops at the durable end).
    end_bytes: u64,
}

impl FrameReader {
    pub fn open(path: PathBuf, start_offset_bytes: u64) -> Result<Self, LogError> {
        FrameReader::open_until(path, start_offset_bytes, u64::MAX)
    }

    /// As [`open`](FrameReader::open), but the frames end at `end_bytes`: what lies after it
    /// is not read.
    pub fn open_until(
        path: PathBuf,
        start_offset_bytes: u64,
        end_bytes: u64,
    ) -> Result<Self, LogError> {
        let mut file = files::open_read(&path, "opening segment")?;
        if start_offset_bytes > 0 {
            file.seek(SeekFrom::Start(start_offset_bytes))
                .map_err(|e| io_err("seeking in segment", &path, e))?;
        }
        Ok(FrameReader {
            path,
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
            offset_bytes: start_offset_bytes,
            body: Vec::new(),
            end_bytes,
        })
    }

    /// Reads the next frame. After `Bad`, the reader's offset is unchanged
    /// (still at the bad frame).
    pub fn next_frame(&mut self) -> Result<Step<'_>, LogError> {
        let start = self.offset_bytes;
        if start >= self.end_bytes {
            return Ok(Step::End);
        }
        let mut header = [0u8; FRAME_HEADER_BYTES];
        let got = read_full(&mut self.reader, &mut header)
            .map_err(|e| io_err("reading segment", &self.path, e))?;
        if got == 0 {
            return Ok(Step::End);
        }
        if got < FRAME_HEADER_BYTES {
            return Ok(Step::Bad {
                offset_bytes: start,
                error: FrameError::Incomplete {
                    have_bytes: got,
                    need_bytes: FRAME_HEADER_BYTES,
                },
            });
        }
        let (body_len, crc) = match parse_header(header) {
            Ok(h) => h,
            Err(error) => {
                return Ok(Step::Bad {
                    offset_bytes: start,
                    error,
                })
            }
        };
        self.body.resize(body_len, 0);
        let got = read_full(&mut self.reader, &mut self.body)
            .map_err(|e| io_err("reading segment", &self.path, e))?;
        if got < body_len {
            return Ok(Step::Bad {
                offset_bytes: start,
                error: FrameError::Incomplete {
                    have_bytes: FRAME_HEADER_BYTES + got,
                    need_bytes: FRAME_HEADER_BYTES + body_len,
                },
            });
        }
        match check_and_decode_body(&self.body, crc) {
            Ok(view) => {
                self.offset_bytes = start + view.frame_bytes();
                Ok(Step::Frame {
                    view,
                    offset_bytes: start,
                })
            }
            Err(error) => Ok(Step::Bad {
                offset_bytes: start,
                error,
            }),
        }
    }
}

impl crate::chain::FrameSource for FrameReader {
    #[inline]
    fn next_frame(&mut self) -> Result<Step<'_>, LogError> {
        FrameReader::next_frame(self)
    }

    fn offset_bytes(&self) -> u64 {
        self.offset_bytes
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn valid_frame_after(&self, offset_bytes: u64, min_position: u64) -> Result<bool, LogError> {
        let rest = read_tail(&self.path, offset_bytes.saturating_add(1))?;
        Ok(contains_valid_frame(&rest, min_position))
    }
}

/// Reads and checks the frame at `offset_bytes` of an open segment file, with
/// positional reads (the file's own offset is neither used nor moved, so
/// several threads may read one file at once). `buf` is reused for the
/// frame's bytes. Errors carry no position; the caller adds it.
pub(crate) fn read_frame_at<'b>(
    file: &File,
    path: &Path,
    offset_bytes: u64,
    buf: &'b mut Vec<u8>,
) -> Result<Result<FrameView<'b>, FrameError>, LogError> {
    let mut reader = ReadAt {
        file,
        offset: offset_bytes,
    };
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let got =
        read_full(&mut reader, &mut header).map_err(|e| io_err("reading segment", path, e))?;
    if got < FRAME_HEADER_BYTES {
        return Ok(Err(FrameError::Incomplete {
            have_bytes: got,
            need_bytes: FRAME_HEADER_BYTES,
        }));
    }
    let (body_len, crc) = match parse_header(header) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    buf.resize(body_len, 0);
    let got = read_full(&mut reader, buf).map_err(|e| io_err("reading segment", path, e))?;
    if got < body_len {
        return Ok(Err(FrameError::Incomplete {
            have_bytes: FRAME_HEADER_BYTES + got,
            need_bytes: FRAME_HEADER_BYTES + body_len,
        }));
    }
    Ok(check_and_decode_body(buf, crc))
}

/// Whether any valid frame starts anywhere in `bytes` (used to tell a torn
/// tail from damage in the middle of the log). `min_position` filters out
/// frames that cannot belong after the damage.
pub(crate) fn contains_valid_frame(bytes: &[u8], min_position: u64) -> bool {
    (0..bytes.len()).any(|i| match crate::frame::decode_frame(&bytes[i..]) {
        Ok(view) => view.position >= min_position,
        Err(_) => false,
    })
}

/// Reads a whole file from `offset_bytes` to its end.
pub(crate) fn read_tail(path: &Path, offset_bytes: u64) -> Result<Vec<u8>, LogError> {
    let mut file = files::open_read(path, "opening segment")?;
    file.seek(SeekFrom::Start(offset_bytes))
        .map_err(|e| io_err("seeking in segment", path, e))?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)
        .map_err(|e| io_err("reading segment", path, e))?;
    Ok(out)
}
