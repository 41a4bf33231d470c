//! Rows in PostgreSQL's binary COPY format: a batch of records, for
//! `COPY gongji_log_records (COLUMNS) FROM STDIN (FORMAT binary)`, and a batch of projection
//! entries ([`entry`]: log, key, value) for the projections' table or its staging table.
//!
//! Invariant as the code holds it: every record row has exactly the fields of [`COLUMNS`], in
//! order, each in the binary form of its column's type (text: UTF-8; bigint: i64 big-endian;
//! uuid: 16 bytes; boolean: 1 byte; bytea: the bytes).

use gongji_log::Record;

/// The columns each row carries, in order.
pub(crate) const COLUMNS: &str = "log, position, stream, stream_version, event_id, \
     recorded_at_micros, unit_end, payload, prev_hash, hash";
const FIELDS: i16 = 10;

/// The file header: signature, flags, header extension length.
pub(crate) fn begin(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// One record's row. Positions and versions fit a bigint (`append` refuses the rest).
pub(crate) fn row(out: &mut Vec<u8>, log: &str, record: &Record) {
    out.extend_from_slice(&FIELDS.to_be_bytes());
    field(out, log.as_bytes());
    field(out, &(record.position as i64).to_be_bytes());
    field(out, record.stream.as_bytes());
    field(out, &(record.stream_version as i64).to_be_bytes());
    field(out, record.event_id.as_bytes());
    field(out, &record.recorded_at_micros.to_be_bytes());
    field(out, &[u8::from(record.unit_end)]);
    field(out, &record.payload);
    field(out, &record.prev_hash);
    field(out, &record.hash);
}

/// One projection entry's row: the log's name, the key and the value (text, bytea, bytea).
/// A key or value is at most a few MiB (a projected entity is bounded well below 2 GiB, and
/// the store refuses more than 1 GiB): its length fits an i32.
pub(crate) fn entry(out: &mut Vec<u8>, log: &str, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&3i16.to_be_bytes());
    field(out, log.as_bytes());
    field(out, key);
    field(out, value);
}

/// The trailer.
pub(crate) fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // A field is at most a payload (1 MiB) or a stream name: its length fits an i32.
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}
