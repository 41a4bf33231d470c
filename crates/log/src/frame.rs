//! Encoding and decoding of one record frame.
//!
//! ```text
//! frame    = body_len: u32 LE | crc32(body): u32 LE | body
//! body v1  = format_version 1: u8 | flags: u8 | position: u64 LE | stream_version: u64 LE
//!          | event_id: [u8; 16] | recorded_at_micros: i64 LE | prev_hash: [u8; 32]
//!          | stream_len: u16 LE | stream: utf8 | payload_len: u32 LE | payload
//! body v2  = format_version 2: u8 | flags: u8 | prev_hash: [u8; 32] | position: varint
//!          | stream_version: varint | event_id: [u8; 16] unless derived
//!          | recorded_at_micros: i64 LE | stream_len: u8 | stream: utf8
//!          | payload_len: varint | payload
//! hash     = blake3(prev_hash || the record's body in format 1)
//! ```
//!
//! The log writes format 2 and reads both: a log written in format 1 goes on in format 2
//! after its last record, frame by frame (the version is the body's first byte). A record's
//! hash is taken over its fields laid out as a format-1 body whatever format stores it, so the
//! chain, archives and the PostgreSQL log do not depend on the format on disk.
//!
//! The decoder never panics and never allocates: it validates every length
//! against the slice it is given and against the format's bounds.

use crate::varint;
use crate::Record;

/// Bytes before the body: body length and body checksum.
pub(crate) const FRAME_HEADER_BYTES: usize = 8;
/// The format of the frames written before format 2; still read.
const FORMAT_V1: u8 = 1;
/// The format this crate writes.
const FORMAT_V2: u8 = 2;
/// Flag bit 0: this record is the last one of its atomic unit.
pub(crate) const FLAG_UNIT_END: u8 = 0b0000_0001;
/// Flag bit 1 (format 2 only): the event id is not stored; it is [`derived_event_id`]'s.
const FLAG_DERIVED_ID: u8 = 0b0000_0010;

/// Longest stream name, in bytes of UTF-8.
pub const MAX_STREAM_BYTES: usize = 255;
/// Largest payload of one record, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Most records in one atomic unit.
pub const MAX_UNIT_RECORDS: usize = 1_000_000;

/// Format 1: version + flags + position + stream version + event id + recorded_at + prev hash
const V1_FIXED_BYTES: usize = 1 + 1 + 8 + 8 + 16 + 8 + 32;
/// Offset of `prev_hash` in a format-1 frame: header, version, flags, position, stream
/// version, event id, timestamp.
const V1_PREV_HASH_OFFSET: usize = FRAME_HEADER_BYTES + 1 + 1 + 8 + 8 + 16 + 8;
/// Offset of `prev_hash` in a format-2 frame: header, version, flags.
const V2_PREV_HASH_OFFSET: usize = FRAME_HEADER_BYTES + 1 + 1;
/// Format 2 at its widest: every field but the stream name and payload.
const V2_MAX_FIXED_BYTES: usize = 1 + 1 + 32 + varint::MAX_BYTES + varint::MAX_BYTES + 16 + 8 + 1;
/// Smallest valid body (format 2): one-byte position and stream version, a derived event id,
/// a one-byte stream name and an empty payload.
pub(crate) const MIN_BODY_BYTES: usize = 1 + 1 + 32 + 1 + 1 + 8 + 1 + 1 + 1;
/// Largest valid body (format 2, every varint at its widest, a stored event id).
pub(crate) const MAX_BODY_BYTES: usize = V2_MAX_FIXED_BYTES
    + MAX_STREAM_BYTES
    + varint::bytes_of(MAX_PAYLOAD_BYTES as u64)
    + MAX_PAYLOAD_BYTES;
const _: () =
    assert!(V1_FIXED_BYTES + 2 + MAX_STREAM_BYTES + 4 + MAX_PAYLOAD_BYTES <= MAX_BODY_BYTES);

/// The event id a record carries when its writer derives it from the record itself (the
/// ledger does, for every event): a uuid of version 8 holding the log position (big-endian, its
/// bits 12 to 15 taken by the uuid's version) and an FNV-1a hash of the payload. A format-2
/// frame of such a record stores no id, so this function is part of the format: its values
/// are pinned by a test and must never change.
pub fn derived_event_id(position: u64, payload: &[u8]) -> uuid::Uuid {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in payload {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&position.to_be_bytes());
    bytes[8..].copy_from_slice(&hash.to_be_bytes());
    uuid::Uuid::new_v8(bytes)
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The bytes end before the frame does (a torn write, or the end of a file).
    Incomplete {
        have_bytes: usize,
        need_bytes: usize,
    },
    /// The bytes are there but are not a valid frame.
    Invalid(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Incomplete {
                have_bytes,
                need_bytes,
            } => write!(
                f,
                "frame cut short: {have_bytes} bytes present, {need_bytes} needed"
            ),
            FrameError::Invalid(reason) => f.write_str(reason),
        }
    }
}

/// A decoded frame borrowing the bytes it was decoded from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameView<'a> {
    /// The body's format (1 or 2).
    pub format: u8,
    pub flags: u8,
    pub position: u64,
    pub stream_version: u64,
    pub event_id: [u8; 16],
    pub recorded_at_micros: i64,
    pub prev_hash: [u8; 32],
    pub stream: &'a str,
    pub payload: &'a [u8],
    pub body: &'a [u8],
}

impl FrameView<'_> {
    /// The record's own hash: blake3(prev_hash || the body in format 1). A format-1 body is
    /// hashed as it is; a format-2 one as its fields laid out in format 1 ([`hash_of`]).
    pub fn hash(&self) -> [u8; 32] {
        if self.format == FORMAT_V1 {
            record_hash(&self.prev_hash, self.body)
        } else {
            hash_of(&self.fields())
        }
    }

    /// The record's fields as an encoder takes them.
    pub fn fields(&self) -> FrameFields<'_> {
        FrameFields {
            unit_end: self.is_unit_end(),
            position: self.position,
            stream_version: self.stream_version,
            event_id: self.event_id,
            recorded_at_micros: self.recorded_at_micros,
            prev_hash: self.prev_hash,
            stream: self.stream,
            payload: self.payload,
        }
    }

    pub fn is_unit_end(&self) -> bool {
        self.flags & FLAG_UNIT_END != 0
    }

    /// Bytes the whole frame occupies in a segment.
    pub fn frame_bytes(&self) -> u64 {
        (FRAME_HEADER_BYTES + self.body.len()) as u64
    }

    /// The owned record; `hash` must be `self.hash()` (passed in so callers
    /// that already computed it for the chain check do not hash twice).
    pub fn to_record(self, hash: [u8; 32]) -> Record {
        Record {
            position: self.position,
            stream: self.stream.to_owned(),
            stream_version: self.stream_version,
            event_id: uuid::Uuid::from_bytes(self.event_id),
            recorded_at_micros: self.recorded_at_micros,
            payload: self.payload.to_vec(),
            hash,
            prev_hash: self.prev_hash,
            unit_end: self.is_unit_end(),
        }
    }
}

/// Inputs of up to this many bytes (blake3's chunk) are hashed in one call from a buffer on
/// the stack: `blake3::hash` of one chunk skips the incremental hasher's setup (a kilobyte and
/// a half of tree state zeroed) and its buffering, about a fifth of a record's hashing.
const ONE_CALL_BYTES: usize = 1024;

pub(crate) fn record_hash(prev_hash: &[u8; 32], body: &[u8]) -> [u8; 32] {
    if 32 + body.len() <= ONE_CALL_BYTES {
        let mut buffer = [0u8; ONE_CALL_BYTES];
        buffer[..32].copy_from_slice(prev_hash);
        buffer[32..32 + body.len()].copy_from_slice(body);
        return *blake3::hash(&buffer[..32 + body.len()]).as_bytes();
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev_hash);
    hasher.update(body);
    *hasher.finalize().as_bytes()
}

/// Reads the frame header: (body length, body crc). Refuses lengths out of bounds.
pub(crate) fn parse_header(header: [u8; FRAME_HEADER_BYTES]) -> Result<(usize, u32), FrameError> {
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    let body_len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&body_len) {
        return Err(FrameError::Invalid(format!(
            "frame body length {body_len} is outside {MIN_BODY_BYTES}..={MAX_BODY_BYTES}"
        )));
    }
    Ok((body_len, crc))
}

/// Checks the crc of `body` against `crc` and decodes it.
pub(crate) fn check_and_decode_body(body: &[u8], crc: u32) -> Result<FrameView<'_>, FrameError> {
    let actual = crc32fast::hash(body);
    if actual != crc {
        return Err(FrameError::Invalid(format!(
            "checksum mismatch: stored {crc:#010x}, computed {actual:#010x}"
        )));
    }
    decode_body(body)
}

/// Decodes one whole frame at the start of `bytes`. Trailing bytes are ignored
/// (the frame's length is `FrameView::frame_bytes`).
pub(crate) fn decode_frame(bytes: &[u8]) -> Result<FrameView<'_>, FrameError> {
    let Some(header) = bytes.first_chunk::<FRAME_HEADER_BYTES>() else {
        return Err(FrameError::Incomplete {
            have_bytes: bytes.len(),
            need_bytes: FRAME_HEADER_BYTES,
        });
    };
    let (body_len, crc) = parse_header(*header)?;
    let need_bytes = FRAME_HEADER_BYTES + body_len;
    let Some(body) = bytes.get(FRAME_HEADER_BYTES..need_bytes) else {
        return Err(FrameError::Incomplete {
            have_bytes: bytes.len(),
            need_bytes,
        });
    };
    check_and_decode_body(body, crc)
}

/// A cursor over a byte slice that never reads out of bounds.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FrameError> {
        if self.bytes.len() < n {
            return Err(FrameError::Invalid(format!(
                "frame body too short for its {what}"
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], FrameError> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    /// A varint in its shortest form.
    fn varint(&mut self, what: &str) -> Result<u64, FrameError> {
        let mut at = 0;
        let Some(value) = varint::get(self.bytes, &mut at) else {
            return Err(FrameError::Invalid(format!(
                "frame body too short for its {what}, or it overflows 64 bits"
            )));
        };
        if at != varint::bytes_of(value) {
            return Err(FrameError::Invalid(format!(
                "{what} is not in its shortest form"
            )));
        }
        self.bytes = &self.bytes[at..];
        Ok(value)
    }

    /// Fails unless every byte was read.
    fn end(&self) -> Result<(), FrameError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Invalid(format!(
                "{} unexpected bytes after the payload",
                self.bytes.len()
            )))
        }
    }
}

fn check_flags(flags: u8, known: u8) -> Result<u8, FrameError> {
    if flags & !known != 0 {
        return Err(FrameError::Invalid(format!(
            "unknown flag bits {flags:#04x}"
        )));
    }
    Ok(flags)
}

fn check_stream_version(stream_version: u64) -> Result<u64, FrameError> {
    if stream_version == 0 {
        return Err(FrameError::Invalid(
            "stream version 0 (versions start at 1)".into(),
        ));
    }
    Ok(stream_version)
}

fn stream_name(bytes: &[u8]) -> Result<&str, FrameError> {
    std::str::from_utf8(bytes).map_err(|_| FrameError::Invalid("stream name is not UTF-8".into()))
}

fn check_payload_len(payload_len: u64) -> Result<usize, FrameError> {
    if payload_len > MAX_PAYLOAD_BYTES as u64 {
        return Err(FrameError::Invalid(format!(
            "payload length {payload_len} exceeds {MAX_PAYLOAD_BYTES}"
        )));
    }
    Ok(payload_len as usize)
}

/// Decodes a body of either format without checking its crc (used for bodies this process
/// encoded).
pub(crate) fn decode_body(body: &[u8]) -> Result<FrameView<'_>, FrameError> {
    let mut cur = Cursor { bytes: body };
    let [version] = cur.array::<1>("format version")?;
    match version {
        FORMAT_V1 => decode_v1(cur, body),
        FORMAT_V2 => decode_v2(cur, body),
        _ => Err(FrameError::Invalid(format!(
            "unknown format version {version} (this build reads versions {FORMAT_V1} and {FORMAT_V2})"
        ))),
    }
}

/// The rest of a format-1 body, after its version.
fn decode_v1<'a>(mut cur: Cursor<'a>, body: &'a [u8]) -> Result<FrameView<'a>, FrameError> {
    let [flags] = cur.array::<1>("flags")?;
    let flags = check_flags(flags, FLAG_UNIT_END)?;
    let position = u64::from_le_bytes(cur.array("position")?);
    let stream_version = check_stream_version(u64::from_le_bytes(cur.array("stream version")?))?;
    let event_id = cur.array::<16>("event id")?;
    let recorded_at_micros = i64::from_le_bytes(cur.array("timestamp")?);
    let prev_hash = cur.array::<32>("previous hash")?;
    let stream_len = u16::from_le_bytes(cur.array("stream name length")?) as usize;
    if stream_len == 0 || stream_len > MAX_STREAM_BYTES {
        return Err(FrameError::Invalid(format!(
            "stream name length {stream_len} is outside 1..={MAX_STREAM_BYTES}"
        )));
    }
    let stream = stream_name(cur.take(stream_len, "stream name")?)?;
    let payload_len = check_payload_len(u32::from_le_bytes(cur.array("payload length")?).into())?;
    let payload = cur.take(payload_len, "payload")?;
    cur.end()?;
    Ok(FrameView {
        format: FORMAT_V1,
        flags,
        position,
        stream_version,
        event_id,
        recorded_at_micros,
        prev_hash,
        stream,
        payload,
        body,
    })
}

/// The rest of a format-2 body, after its version.
fn decode_v2<'a>(mut cur: Cursor<'a>, body: &'a [u8]) -> Result<FrameView<'a>, FrameError> {
    let [flags] = cur.array::<1>("flags")?;
    let flags = check_flags(flags, FLAG_UNIT_END | FLAG_DERIVED_ID)?;
    let prev_hash = cur.array::<32>("previous hash")?;
    let position = cur.varint("position")?;
    let stream_version = check_stream_version(cur.varint("stream version")?)?;
    let stored_id = if flags & FLAG_DERIVED_ID == 0 {
        Some(cur.array::<16>("event id")?)
    } else {
        None
    };
    let recorded_at_micros = i64::from_le_bytes(cur.array("timestamp")?);
    let [stream_len] = cur.array::<1>("stream name length")?;
    if stream_len == 0 {
        return Err(FrameError::Invalid(format!(
            "stream name length 0 is outside 1..={MAX_STREAM_BYTES}"
        )));
    }
    let stream = stream_name(cur.take(stream_len.into(), "stream name")?)?;
    let payload_len = check_payload_len(cur.varint("payload length")?)?;
    let payload = cur.take(payload_len, "payload")?;
    cur.end()?;
    let event_id = match stored_id {
        // One record, one encoding: the writer stores an id only when it is not the derived one.
        Some(id) if is_derived(&id, position, payload) => {
            return Err(FrameError::Invalid(
                "the stored event id is the derived one, which format 2 does not store".into(),
            ))
        }
        Some(id) => id,
        None => derived_event_id(position, payload).into_bytes(),
    };
    Ok(FrameView {
        format: FORMAT_V2,
        flags,
        position,
        stream_version,
        event_id,
        recorded_at_micros,
        prev_hash,
        stream,
        payload,
        body,
    })
}

/// Fields of a frame to encode.
pub(crate) struct FrameFields<'a> {
    pub unit_end: bool,
    pub position: u64,
    pub stream_version: u64,
    pub event_id: [u8; 16],
    pub recorded_at_micros: i64,
    pub prev_hash: [u8; 32],
    pub stream: &'a str,
    pub payload: &'a [u8],
}

/// Whether `event_id` is [`derived_event_id`]'s for this position and payload. An id whose
/// first six bytes are not the position's (a random or caller's id, nearly always) is told
/// without hashing the payload.
fn is_derived(event_id: &[u8; 16], position: u64, payload: &[u8]) -> bool {
    event_id[..6] == position.to_be_bytes()[..6]
        && *event_id == *derived_event_id(position, payload).as_bytes()
}

/// Most bytes `encode_unsealed` appends for a stream name and payload of these sizes.
pub(crate) fn frame_bytes_for(stream_bytes: usize, payload_bytes: usize) -> usize {
    FRAME_HEADER_BYTES
        + V2_MAX_FIXED_BYTES
        + stream_bytes
        + varint::bytes_of(payload_bytes as u64)
        + payload_bytes
}

/// Appends one frame to `out` and returns the record's hash. The caller has
/// checked the bounds (stream 1..=255 bytes, payload <= 1 MiB). For tests and the fuzzing
/// scaffolding: the log encodes frames unsealed and seals them in batches (`seal_frames`), and
/// a record's hash alone is [`hash_of`].
#[cfg(any(test, feature = "testing"))]
pub(crate) fn encode_frame(out: &mut Vec<u8>, fields: &FrameFields<'_>) -> [u8; 32] {
    let start = out.len();
    encode_unsealed(out, fields);
    seal_frame(&mut out[start..], &fields.prev_hash)
}

/// As [`encode_frame`], in format 1: what a log written before format 2 holds.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn encode_frame_v1(out: &mut Vec<u8>, fields: &FrameFields<'_>) -> [u8; 32] {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    body_parts(fields, |part| out.extend_from_slice(part));
    let body_len = (out.len() - start - FRAME_HEADER_BYTES) as u32;
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    seal_frame(&mut out[start..], &fields.prev_hash)
}

/// Appends one frame to `out` in format 2 without its chain: `prev_hash` and the crc are
/// zeros until [`seal_frames`] fills them in. The caller has checked the
/// bounds (stream 1..=255 bytes, payload <= 1 MiB).
pub(crate) fn encode_unsealed(out: &mut Vec<u8>, fields: &FrameFields<'_>) {
    debug_assert!(!fields.stream.is_empty() && fields.stream.len() <= MAX_STREAM_BYTES);
    debug_assert!(fields.payload.len() <= MAX_PAYLOAD_BYTES);
    let derived = is_derived(&fields.event_id, fields.position, fields.payload);
    let start = out.len();
    out.reserve(frame_bytes_for(fields.stream.len(), fields.payload.len()));
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    let mut flags = if fields.unit_end { FLAG_UNIT_END } else { 0 };
    if derived {
        flags |= FLAG_DERIVED_ID;
    }
    out.extend_from_slice(&[FORMAT_V2, flags]);
    out.extend_from_slice(&fields.prev_hash);
    varint::put(out, fields.position);
    varint::put(out, fields.stream_version);
    if !derived {
        out.extend_from_slice(&fields.event_id);
    }
    out.extend_from_slice(&fields.recorded_at_micros.to_le_bytes());
    out.push(fields.stream.len() as u8);
    out.extend_from_slice(fields.stream.as_bytes());
    varint::put(out, fields.payload.len() as u64);
    out.extend_from_slice(fields.payload);
    let body_len = (out.len() - start - FRAME_HEADER_BYTES) as u32;
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
}

/// A format-1 body's bytes, in order, a field at a time: what a record's hash is taken over
/// (after the previous record's hash) in either format.
fn body_parts(fields: &FrameFields<'_>, mut put: impl FnMut(&[u8])) {
    put(&[FORMAT_V1, if fields.unit_end { FLAG_UNIT_END } else { 0 }]);
    put(&fields.position.to_le_bytes());
    put(&fields.stream_version.to_le_bytes());
    put(&fields.event_id);
    put(&fields.recorded_at_micros.to_le_bytes());
    put(&fields.prev_hash);
    put(&(fields.stream.len() as u16).to_le_bytes());
    put(fields.stream.as_bytes());
    put(&(fields.payload.len() as u32).to_le_bytes());
    put(fields.payload);
}

/// The hash a frame of `fields` has in the chain (what `encode_frame` returns), without
/// building the frame: no allocation and no CRC. It hashes `prev_hash` then the body, the bytes
/// `record_hash` hashes: gathered in a buffer on the stack and hashed in one call when they fit
/// one blake3 chunk (nearly every record), else handed to blake3's hasher a buffer at a time.
pub(crate) fn hash_of(fields: &FrameFields<'_>) -> [u8; 32] {
    let mut buffer = [0u8; ONE_CALL_BYTES];
    buffer[..32].copy_from_slice(&fields.prev_hash);
    let mut used = 32;
    let mut hasher: Option<blake3::Hasher> = None;
    body_parts(fields, |part| {
        if used + part.len() > ONE_CALL_BYTES {
            let hasher = hasher.get_or_insert_with(blake3::Hasher::new);
            hasher.update(&buffer[..used]);
            used = 0;
            if part.len() > ONE_CALL_BYTES {
                hasher.update(part);
                return;
            }
        }
        buffer[used..used + part.len()].copy_from_slice(part);
        used += part.len();
    });
    match hasher {
        None => *blake3::hash(&buffer[..used]).as_bytes(),
        Some(mut hasher) => {
            hasher.update(&buffer[..used]);
            *hasher.finalize().as_bytes()
        }
    }
}

/// Completes the one frame `frame` (as `encode_unsealed` left it) as the
/// record after `prev_hash`: writes `prev_hash` and the crc into it and
/// returns the record's hash.
fn seal_frame(frame: &mut [u8], prev_hash: &[u8; 32]) -> [u8; 32] {
    let at = if frame[FRAME_HEADER_BYTES] == FORMAT_V1 {
        V1_PREV_HASH_OFFSET
    } else {
        V2_PREV_HASH_OFFSET
    };
    frame[at..at + 32].copy_from_slice(prev_hash);
    let body = &frame[FRAME_HEADER_BYTES..];
    let crc = crc32fast::hash(body);
    let hash = decode_body(body)
        .expect("frames are sealed only as this log encoded them")
        .hash();
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    hash
}

/// Completes the chain of consecutive frames written by `encode_unsealed`:
/// each gets the hash of the one before it (the first: `prev_hash`) and its
/// crc. Returns the hash of the last. The bytes are then exactly what
/// `encode_frame` would have written.
pub(crate) fn seal_frames(frames: &mut [u8], prev_hash: [u8; 32]) -> [u8; 32] {
    let mut hash = prev_hash;
    let mut at = 0;
    while at < frames.len() {
        let len_bytes: [u8; 4] = frames[at..at + 4].try_into().expect("4 bytes");
        let end = at + FRAME_HEADER_BYTES + u32::from_le_bytes(len_bytes) as usize;
        hash = seal_frame(&mut frames[at..end], &hash);
        at = end;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(out: &mut Vec<u8>) -> [u8; 32] {
        encode_frame(
            out,
            &FrameFields {
                unit_end: true,
                position: 7,
                stream_version: 3,
                event_id: [9; 16],
                recorded_at_micros: -5,
                prev_hash: [1; 32],
                stream: "member-1",
                payload: b"hello",
            },
        )
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        let hash = sample(&mut buf);
        let view = decode_frame(&buf).expect("valid frame");
        assert_eq!(view.position, 7);
        assert_eq!(view.stream_version, 3);
        assert_eq!(view.stream, "member-1");
        assert_eq!(view.payload, b"hello");
        assert_eq!(view.recorded_at_micros, -5);
        assert!(view.is_unit_end());
        assert_eq!(view.hash(), hash);
        assert_eq!(view.frame_bytes() as usize, buf.len());
        assert!(frame_bytes_for(8, 5) >= buf.len());
        assert_eq!(view.format, FORMAT_V2);
        assert_eq!(view.event_id, [9; 16]);
    }

    fn fields_with<'a>(event_id: [u8; 16], stream: &'a str, payload: &'a [u8]) -> FrameFields<'a> {
        FrameFields {
            unit_end: false,
            position: 300,
            stream_version: 2,
            event_id,
            recorded_at_micros: 1_700_000_000_000_000,
            prev_hash: [4; 32],
            stream,
            payload,
        }
    }

    #[test]
    fn both_formats_decode_to_the_same_record_with_the_same_hash() {
        let derived = *derived_event_id(300, b"payload").as_bytes();
        for event_id in [[7u8; 16], derived] {
            let fields = fields_with(event_id, "member/1", b"payload");
            let (mut v1, mut v2) = (Vec::new(), Vec::new());
            let hash_v1 = encode_frame_v1(&mut v1, &fields);
            let hash_v2 = encode_frame(&mut v2, &fields);
            assert_eq!(hash_v1, hash_v2);
            assert_eq!(hash_v1, hash_of(&fields));
            let (a, b) = (decode_frame(&v1).unwrap(), decode_frame(&v2).unwrap());
            assert_eq!((a.format, b.format), (FORMAT_V1, FORMAT_V2));
            assert_eq!(a.to_record(a.hash()), b.to_record(b.hash()));
            assert_eq!(b.hash(), hash_v2);
            assert!(v2.len() < v1.len());
        }
    }

    #[test]
    fn derived_event_ids_are_pinned() {
        // Frames of format 2 decode their ids through this function: these values may not move.
        // (Computed apart: FNV-1a 64 of the payload, big-endian, version and variant bits set.)
        assert_eq!(
            derived_event_id(0, b"").to_string(),
            "00000000-0000-8000-8bf2-9ce484222325"
        );
        assert_eq!(
            derived_event_id(2_910_738, b"payload").to_string(),
            "00000000-002c-8a12-8fb8-a9d063b5e9e5"
        );
    }

    #[test]
    fn a_derived_event_id_is_not_stored() {
        let derived = *derived_event_id(300, b"payload").as_bytes();
        let (mut stored, mut implied) = (Vec::new(), Vec::new());
        encode_frame(&mut stored, &fields_with([7; 16], "s", b"payload"));
        encode_frame(&mut implied, &fields_with(derived, "s", b"payload"));
        assert_eq!(stored.len(), implied.len() + 16);
        // The flag without its id: the id is the derived one, so the hash changes and a
        // record whose id is not derived cannot pass for one that is.
        let view = decode_frame(&implied).unwrap();
        assert_eq!(view.event_id, derived);
        assert_eq!(view.flags & FLAG_DERIVED_ID, FLAG_DERIVED_ID);
    }

    #[test]
    fn a_varint_longer_than_it_needs_is_refused() {
        let mut cur = Cursor {
            bytes: &[0x85, 0x00],
        };
        assert!(cur.varint("position").is_err());
        let mut cur = Cursor {
            bytes: &[0x85, 0x01],
        };
        assert_eq!(cur.varint("position").unwrap(), 133);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Cursor { bytes: &max }.varint("x").unwrap(), u64::MAX);
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Cursor { bytes: &over }.varint("x").is_err());
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX / 3, u64::MAX] {
            let mut out = Vec::new();
            varint::put(&mut out, value);
            assert_eq!(out.len(), varint::bytes_of(value), "{value}");
            assert_eq!(Cursor { bytes: &out }.varint("x").unwrap(), value);
        }
    }

    #[test]
    fn sealed_frames_equal_encoded_ones() {
        let mut encoded = Vec::new();
        let mut unsealed = Vec::new();
        let mut prev = [3u8; 32];
        let first_prev = prev;
        for i in 0..5u64 {
            let payload = vec![i as u8; i as usize * 7];
            let stream = format!("stream-{i}");
            let mut fields = FrameFields {
                unit_end: i % 2 == 0,
                position: 10 + i,
                stream_version: 1 + i,
                event_id: [i as u8; 16],
                recorded_at_micros: i as i64,
                prev_hash: prev,
                stream: &stream,
                payload: &payload,
            };
            prev = encode_frame(&mut encoded, &fields);
            fields.prev_hash = [0; 32];
            encode_unsealed(&mut unsealed, &fields);
        }
        assert_ne!(encoded, unsealed);
        assert_eq!(seal_frames(&mut unsealed, first_prev), prev);
        assert_eq!(encoded, unsealed);
    }

    #[test]
    fn bounds_match_the_documented_format() {
        assert_eq!(MIN_BODY_BYTES, 47);
        assert_eq!(MAX_BODY_BYTES, 1_048_913);
        let mut smallest = Vec::new();
        let derived = *derived_event_id(0, b"").as_bytes();
        encode_frame(
            &mut smallest,
            &FrameFields {
                unit_end: true,
                position: 0,
                stream_version: 1,
                event_id: derived,
                recorded_at_micros: 0,
                prev_hash: [0; 32],
                stream: "a",
                payload: b"",
            },
        );
        assert_eq!(smallest.len(), FRAME_HEADER_BYTES + MIN_BODY_BYTES);
        let mut largest = Vec::new();
        let payload = vec![0; MAX_PAYLOAD_BYTES];
        let stream = "s".repeat(MAX_STREAM_BYTES);
        encode_frame(
            &mut largest,
            &FrameFields {
                unit_end: true,
                position: u64::MAX,
                stream_version: u64::MAX,
                event_id: [1; 16],
                recorded_at_micros: 0,
                prev_hash: [0; 32],
                stream: &stream,
                payload: &payload,
            },
        );
        assert_eq!(largest.len(), FRAME_HEADER_BYTES + MAX_BODY_BYTES);
        assert_eq!(
            largest.len(),
            frame_bytes_for(MAX_STREAM_BYTES, MAX_PAYLOAD_BYTES)
        );
        assert!(decode_frame(&largest).is_ok());
    }

    #[test]
    fn every_prefix_is_incomplete_and_every_flip_is_detected() {
        let mut buf = Vec::new();
        sample(&mut buf);
        for cut in 0..buf.len() {
            assert!(matches!(
                decode_frame(&buf[..cut]),
                Err(FrameError::Incomplete { .. }) | Err(FrameError::Invalid(_))
            ));
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x20;
            assert!(decode_frame(&bad).is_err(), "flip at {i} not detected");
        }
    }

    #[test]
    fn a_hash_over_exactly_one_blake3_chunk_and_just_past_it_is_blake3s() {
        // prev_hash (32) and a body of 80 fixed bytes, a one-byte stream and the payload:
        // 1023, 1024 and 1025 bytes hashed, the last past the one-call buffer.
        for payload_bytes in [910, 911, 912] {
            let payload = vec![7u8; payload_bytes];
            let fields = FrameFields {
                unit_end: true,
                position: 3,
                stream_version: 2,
                event_id: [1; 16],
                recorded_at_micros: 5,
                prev_hash: [9; 32],
                stream: "a",
                payload: &payload,
            };
            let mut frame = Vec::new();
            let hash = encode_frame_v1(&mut frame, &fields);
            assert_eq!(32 + frame.len() - FRAME_HEADER_BYTES, 113 + payload_bytes);
            let mut hasher = blake3::Hasher::new();
            hasher.update(&[9; 32]);
            hasher.update(&frame[FRAME_HEADER_BYTES..]);
            assert_eq!(hash, *hasher.finalize().as_bytes(), "{payload_bytes}");
            assert_eq!(hash_of(&fields), hash, "{payload_bytes}");
            assert_eq!(
                encode_frame(&mut Vec::new(), &fields),
                hash,
                "{payload_bytes}"
            );
        }
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_frame(&bytes);
            let _ = decode_body(&bytes);
        }

        #[test]
        fn a_frames_hash_without_the_frame_is_the_hash_of_the_frame(
            unit_end in any::<bool>(),
            position in any::<u64>(),
            stream_version in any::<u64>(),
            event_id in any::<[u8; 16]>(),
            recorded_at_micros in any::<i64>(),
            prev_hash in any::<[u8; 32]>(),
            stream in "[a-z0-9/]{1,255}",
            // Across the 1024-byte buffer: parts that fill it, pass it, and are larger than it.
            payload in proptest::collection::vec(any::<u8>(), 0..2600),
        ) {
            let fields = FrameFields {
                unit_end,
                position,
                stream_version,
                event_id,
                recorded_at_micros,
                prev_hash,
                stream: &stream,
                payload: &payload,
            };
            let mut frame = Vec::new();
            let hash = encode_frame_v1(&mut frame, &fields);
            prop_assert_eq!(hash_of(&fields), hash);
            // Both against blake3's incremental hasher over prev_hash || body.
            let mut hasher = blake3::Hasher::new();
            hasher.update(&prev_hash);
            hasher.update(&frame[FRAME_HEADER_BYTES..]);
            prop_assert_eq!(hash, *hasher.finalize().as_bytes());
            // Format 2 stores other bytes and has the same hash and fields.
            let mut frame_v2 = Vec::new();
            prop_assert_eq!(encode_frame(&mut frame_v2, &fields), hash);
            let view = decode_frame(&frame_v2).expect("a frame just encoded");
            prop_assert_eq!(view.to_record(view.hash()), decode_frame(&frame).unwrap().to_record(hash));
        }

        #[test]
        fn decoder_never_panics_on_damaged_frames(idx in 0usize..200, byte in any::<u8>(), cut in 0usize..200) {
            let mut buf = Vec::new();
            sample(&mut buf);
            let i = idx % buf.len();
            buf[i] = byte;
            buf.truncate(buf.len() - cut % buf.len());
            let _ = decode_frame(&buf);
            let _ = decode_body(&buf);
        }
    }
}
