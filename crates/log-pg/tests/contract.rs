//! The contract of the log of record, as the same cases run against both backends: the file
//! log (`gongji_log::Log`, in a temp dir) and `PgLog` (a fresh log in the test database; see
//! `support`). Each case takes a `Backend` and drives the log only through `DurableLog`.

mod support;

use gongji_log::{DurableLog, ExpectedVersion, Log, LogError, LogOptions, NewRecord, Record};
use gongji_log_pg::PgLog;
use uuid::Uuid;

/// What a case needs of a backend besides the trait.
trait Backend {
    fn open(&self) -> Result<Box<dyn DurableLog>, LogError>;
    fn open_reader(&self) -> Result<Box<dyn DurableLog>, LogError>;
    /// Changes the payload of the durable record at `position` (whose payload holds `marker`)
    /// behind the log's back, with the log closed.
    fn tamper(&self, position: u64, marker: &[u8]);
}

struct FileBackend(tempfile::TempDir);

impl Backend for FileBackend {
    fn open(&self) -> Result<Box<dyn DurableLog>, LogError> {
        Ok(Box::new(Log::open(self.0.path())?))
    }

    fn open_reader(&self) -> Result<Box<dyn DurableLog>, LogError> {
        Ok(Box::new(Log::open_read_only(
            self.0.path(),
            LogOptions::default(),
        )?))
    }

    fn tamper(&self, _position: u64, marker: &[u8]) {
        let segment = self
            .0
            .path()
            .join("segments")
            .join(format!("{:020}.seg", 0));
        let mut bytes = std::fs::read(&segment).expect("segment");
        let at = bytes
            .windows(marker.len())
            .position(|w| w == marker)
            .expect("the marker is in the segment");
        bytes[at] ^= 0x01;
        std::fs::write(&segment, bytes).expect("segment written back");
    }
}

struct PgBackend {
    uri: String,
    log: String,
}

impl Backend for PgBackend {
    fn open(&self) -> Result<Box<dyn DurableLog>, LogError> {
        Ok(Box::new(PgLog::open(&self.uri, &self.log)?))
    }

    fn open_reader(&self) -> Result<Box<dyn DurableLog>, LogError> {
        Ok(Box::new(PgLog::open_read_only(&self.uri, &self.log)?))
    }

    fn tamper(&self, position: u64, marker: &[u8]) {
        let mut payload = marker.to_vec();
        payload[0] ^= 0x01;
        let changed = support::client()
            .execute(
                "UPDATE gongji_log_records SET payload = $3 WHERE log = $1 AND position = $2",
                &[&self.log, &(position as i64), &payload],
            )
            .expect("update");
        assert_eq!(changed, 1);
    }
}

fn payload_of(unit: u64) -> Vec<u8> {
    format!("payload of unit {unit:04}").into_bytes()
}

/// Appends units `from..to` of two records each (streams `a` and `b`), each expecting the
/// versions the units before it left; syncs every other unit through a ticket.
fn append_units(log: &mut dyn DurableLog, from: u64, to: u64) -> Result<(), LogError> {
    for unit in from..to {
        let expected = [
            ("a", ExpectedVersion::Exact(unit)),
            ("b", ExpectedVersion::Exact(unit)),
        ];
        let payload = payload_of(unit);
        let records = [
            NewRecord {
                stream: "a",
                event_id: Uuid::from_u64_pair(unit, 0),
                payload: &payload,
            },
            NewRecord {
                stream: "b",
                event_id: Uuid::from_u64_pair(unit, 1),
                payload: b"",
            },
        ];
        let appended = log.append(&expected, &records, 1_000 + unit as i64)?;
        assert_eq!(appended.first_position, unit * 2);
        assert_eq!(appended.last_position, unit * 2 + 1);
        assert_eq!(log.end_position(), unit * 2 + 2);
        if unit % 2 == 1 {
            let ticket = log.sync_start()?;
            assert_eq!(ticket.wait()?, unit * 2 + 2);
            assert_eq!(log.settle_syncs()?, unit * 2 + 2);
        }
    }
    Ok(())
}

fn all_records(log: &dyn DurableLog) -> Vec<Record> {
    log.read_range(0, u64::MAX)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("records")
}

fn appends_syncs_and_reads(backend: &dyn Backend) {
    let mut log = backend.open().expect("open");
    append_units(&mut *log, 0, 5).expect("appends");
    // The fifth unit is staged, not durable: reads do not see it, versions count it.
    assert_eq!(log.durable_end(), 8);
    assert_eq!(log.stream_version("a").expect("version"), 5);
    assert_eq!(log.read_stream("a").expect("read").len(), 4);
    assert_eq!(log.sync().expect("sync"), 10);

    let stream_a = log.read_stream("a").expect("read");
    let versions: Vec<u64> = stream_a.iter().map(|r| r.stream_version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert_eq!(stream_a[4].payload, payload_of(4));
    assert_eq!(stream_a[4].event_id, Uuid::from_u64_pair(4, 0));
    assert_eq!(stream_a[4].recorded_at_micros, 1_004);
    assert!(log.read_stream("nobody").expect("read").is_empty());
    assert_eq!(log.stream_version("nobody").expect("version"), 0);

    let range: Vec<Record> = log
        .read_range(3, 7)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("records");
    let positions: Vec<u64> = range.iter().map(|r| r.position).collect();
    assert_eq!(positions, [3, 4, 5, 6]);
    assert!(range.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    assert!(range.iter().all(|r| r.recompute_hash() == r.hash));
    let all = all_records(&*log);
    assert_eq!(all.len(), 10);
    assert_eq!(all[0].prev_hash, [0; 32]);

    let mut reported = Vec::new();
    assert_eq!(log.verify(&mut |n| reported.push(n)).expect("verify"), 10);
    assert_eq!(reported.last(), Some(&10));
    log.close().expect("close");

    // What was durable is there after a reopen, chain and all; the writer continues it.
    let mut log = backend.open().expect("reopen");
    assert_eq!(log.durable_end(), 10);
    assert_eq!(all_records(&*log), all);
    assert_eq!(log.stream_version("b").expect("version"), 5);
    append_units(&mut *log, 5, 8).expect("appends after reopen");
    assert_eq!(log.sync().expect("sync"), 16);
    assert_eq!(log.verify(&mut |_| {}).expect("verify"), 16);
    log.close().expect("close");
}

fn one(stream: &str, id: u64) -> NewRecord<'_> {
    NewRecord {
        stream,
        event_id: Uuid::from_u64_pair(id, 7),
        payload: b"x",
    }
}

fn expected_versions_are_checked_and_a_refused_unit_stages_nothing(backend: &dyn Backend) {
    let mut log = backend.open().expect("open");
    log.append(&[("s", ExpectedVersion::NoStream)], &[one("s", 1)], 0)
        .expect("first");
    log.sync().expect("sync");
    let refusals = [
        ("s", ExpectedVersion::NoStream, 1),
        ("s", ExpectedVersion::Exact(0), 1),
        ("s", ExpectedVersion::Exact(2), 1),
        ("t", ExpectedVersion::Exact(1), 0),
    ];
    for (stream, expected, actual) in refusals {
        // The first expectation holds; the second does not: nothing of the unit is staged.
        let refused = log.append(
            &[("s", ExpectedVersion::Exact(1)), (stream, expected)],
            &[one("s", 2), one("t", 3)],
            0,
        );
        match refused {
            Err(LogError::WrongExpectedVersion {
                stream: s,
                expected: e,
                actual: a,
            }) => assert_eq!((s.as_str(), e, a), (stream, expected, actual)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(log.end_position(), 1);
        assert_eq!(log.stream_version("s").expect("version"), 1);
        assert_eq!(log.stream_version("t").expect("version"), 0);
    }
    // Staged records count: a second unit expecting the first's version is taken.
    log.append(&[("s", ExpectedVersion::Exact(1))], &[one("s", 4)], 0)
        .expect("exact");
    log.append(&[("s", ExpectedVersion::Exact(2))], &[one("s", 5)], 0)
        .expect("exact, on a staged version");
    log.append(&[("s", ExpectedVersion::Any)], &[one("s", 6)], 0)
        .expect("any");
    assert_eq!(log.sync().expect("sync"), 4);
    assert_eq!(log.read_stream("s").expect("read").len(), 4);
    log.close().expect("close");
}

fn units_are_atomic_and_bad_units_are_refused_whole(backend: &dyn Backend) {
    let mut log = backend.open().expect("open");
    let unit = [one("p", 1), one("q", 2), one("p", 3)];
    let appended = log.append(&[], &unit, 5).expect("unit");
    assert_eq!((appended.first_position, appended.last_position), (0, 2));
    let long = "x".repeat(gongji_log::MAX_STREAM_BYTES + 1);
    let big = vec![0u8; gongji_log::MAX_PAYLOAD_BYTES + 1];
    let bad_payload = [
        one("p", 4),
        NewRecord {
            stream: "p",
            event_id: Uuid::nil(),
            payload: &big,
        },
    ];
    let refused = [
        log.append(&[], &[], 0),
        log.append(&[], &[one("p", 4), one("", 5)], 0),
        log.append(&[], &[one("p", 4), one(&long, 5)], 0),
        log.append(&[(&long, ExpectedVersion::Any)], &[one("p", 4)], 0),
        log.append(&[], &bad_payload, 0),
    ];
    for result in refused {
        assert!(
            matches!(
                result,
                Err(LogError::InvalidInput(_) | LogError::TooLarge { .. })
            ),
            "{result:?}"
        );
    }
    assert_eq!(log.end_position(), 3);
    assert_eq!(log.stream_version("p").expect("version"), 2);
    assert_eq!(log.sync().expect("sync"), 3);
    let records = all_records(&*log);
    let ends: Vec<bool> = records.iter().map(|r| r.unit_end).collect();
    assert_eq!(ends, [false, false, true]);
    let versions: Vec<(String, u64)> = records
        .iter()
        .map(|r| (r.stream.clone(), r.stream_version))
        .collect();
    assert_eq!(
        versions,
        [("p".into(), 1), ("q".into(), 1), ("p".into(), 2)]
    );
    // Staged and never synced: gone after close, as if never appended.
    log.append(&[], &[one("q", 9)], 0).expect("staged");
    log.close().expect("close");
    let log = backend.open().expect("reopen");
    assert_eq!(log.durable_end(), 3);
    assert_eq!(log.stream_version("q").expect("version"), 1);
    log.close().expect("close");
}

fn links_are_handed_out_and_checked(backend: &dyn Backend) {
    let mut log = backend.open().expect("open");
    append_units(&mut *log, 0, 4).expect("appends");
    for (from, to) in [(0, u64::MAX), (2, 6), (7, 8)] {
        let mut positions = Vec::new();
        for item in log.read_range_links_deferred(from, to).expect("range") {
            let (record, link) = item.expect("record");
            log.check_link(&record, &link).expect("the link holds");
            assert_eq!(link.next_position(), record.position + 1);
            positions.push(record.position);
        }
        let expected: Vec<u64> = (from..to.min(8)).collect();
        assert_eq!(positions, expected);
    }
    let (mut record, link) = log
        .read_range_links_deferred(3, 4)
        .expect("range")
        .next()
        .expect("one")
        .expect("record");
    record.payload.push(b'!');
    assert!(matches!(
        log.check_link(&record, &link),
        Err(LogError::Corrupt { .. })
    ));
}

fn a_tampered_record_is_corrupt(backend: &dyn Backend) {
    let mut log = backend.open().expect("open");
    append_units(&mut *log, 0, 6).expect("appends");
    log.close().expect("close");
    backend.tamper(4, &payload_of(2));
    let log = backend.open().expect("reopen");
    match log.verify(&mut |_| {}) {
        Err(LogError::Corrupt { position, .. }) => assert_eq!(position, 4),
        other => panic!("verify must find the damage: {other:?}"),
    }
    let read: Result<Vec<Record>, LogError> = log.read_range(0, u64::MAX).expect("range").collect();
    assert!(
        matches!(read, Err(LogError::Corrupt { position: 4, .. })),
        "{read:?}"
    );
    let linked: Result<Vec<()>, LogError> = log
        .read_range_links_deferred(0, u64::MAX)
        .expect("range")
        .map(|item| item.and_then(|(record, link)| log.check_link(&record, &link)))
        .collect();
    assert!(
        matches!(linked, Err(LogError::Corrupt { .. })),
        "{linked:?}"
    );
}

fn a_reader_beside_the_writer_sees_only_what_is_durable(backend: &dyn Backend) {
    let mut writer = backend.open().expect("open");
    append_units(&mut *writer, 0, 2).expect("appends");
    let mut reader = backend.open_reader().expect("reader");
    assert_eq!(reader.durable_end(), 4);
    append_units(&mut *writer, 2, 4).expect("appends");
    writer
        .append(&[], &[one("staged", 1)], 0)
        .expect("staged, never synced");
    // The reader stays at the end it read until it refreshes, and never sees staged records.
    assert_eq!(all_records(&*reader).len(), 4);
    assert_eq!(reader.refresh_read_only().expect("refresh"), 8);
    assert_eq!(all_records(&*reader), all_records(&*writer));
    assert_eq!(reader.read_stream("a").expect("read").len(), 4);
    assert_eq!(reader.stream_version("staged").expect("version"), 0);
    assert_eq!(reader.verify(&mut |_| {}).expect("verify"), 8);
    assert!(matches!(
        reader.append(&[], &[one("r", 1)], 0),
        Err(LogError::ReadOnly { .. })
    ));
    writer.sync().expect("sync");
    assert_eq!(reader.refresh_read_only().expect("refresh"), 9);
    reader.close().expect("close reader");
    writer.close().expect("close writer");
}

fn a_reader_opened_on_an_empty_log_follows_the_writer(backend: &dyn Backend) {
    let mut writer = backend.open().expect("open");
    let mut reader = backend.open_reader().expect("reader");
    assert_eq!(reader.durable_end(), 0);
    assert_eq!(reader.stream_version("a").expect("version"), 0);
    append_units(&mut *writer, 0, 2).expect("appends");
    assert_eq!(reader.refresh_read_only().expect("refresh"), 4);
    assert_eq!(reader.stream_version("a").expect("version"), 2);
    assert_eq!(reader.read_stream("b").expect("read").len(), 2);
    writer.close().expect("close writer");
}

fn a_second_writer_is_refused(backend: &dyn Backend) {
    let mut first = backend.open().expect("open");
    append_units(&mut *first, 0, 2).expect("appends");
    assert!(matches!(backend.open(), Err(LogError::Locked { .. })));
    first.close().expect("close");
    let second = backend.open().expect("open once the first closed");
    assert_eq!(second.durable_end(), 4);
}

/// Each case as a test against each backend. Every test waits for the database first, the
/// file log's too: `pg_uri` may start `tools/pg-local` (once per test binary), and a child
/// process forked while a file log holds its `LOCK` holds the lock too until it execs, so a
/// reopen at that moment would find it locked.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod file_log {
            $(#[test]
            fn $case() {
                super::support::pg_uri();
                let dir = tempfile::tempdir().expect("tempdir");
                super::$case(&super::FileBackend(dir));
            })*
        }
        mod pg_log {
            $(#[test]
            fn $case() {
                let backend = super::PgBackend {
                    uri: super::support::pg_uri(),
                    log: super::support::fresh_log("contract"),
                };
                super::$case(&backend);
            })*
        }
    };
}

contract!(
    appends_syncs_and_reads,
    expected_versions_are_checked_and_a_refused_unit_stages_nothing,
    units_are_atomic_and_bad_units_are_refused_whole,
    links_are_handed_out_and_checked,
    a_tampered_record_is_corrupt,
    a_reader_beside_the_writer_sees_only_what_is_durable,
    a_reader_opened_on_an_empty_log_follows_the_writer,
    a_second_writer_is_refused,
);
