//! The file log driven only through the backend-neutral seam, `DurableLog`: what the ledger
//! will hold once a second backend (PostgreSQL) sits beside the segment files.

use gongji_log::{DurableLog, ExpectedVersion, Log, LogError, NewRecord};
use uuid::Uuid;

/// Appends `units` units of two records (streams `a` and `b`), each expecting the versions
/// the units before it left, and syncs every other unit through a ticket.
fn append_units(log: &mut dyn DurableLog, units: u64) -> Result<(), LogError> {
    for unit in 0..units {
        let expected = [
            ("a", ExpectedVersion::Exact(unit)),
            ("b", ExpectedVersion::Exact(unit)),
        ];
        let payload = format!("unit {unit}").into_bytes();
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
        assert_eq!(log.end_position(), unit * 2 + 2);
        if unit % 2 == 1 {
            let ticket = log.sync_start()?;
            assert_eq!(ticket.wait()?, unit * 2 + 2);
            assert_eq!(log.settle_syncs()?, unit * 2 + 2);
        }
    }
    Ok(())
}

#[test]
fn a_log_driven_only_through_the_durable_log_trait_appends_syncs_reads_and_verifies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log: Box<dyn DurableLog> = Box::new(Log::open(tmp.path()).expect("open"));
    append_units(&mut *log, 5).expect("appends");
    // The fifth unit is staged, not durable: reads do not see it.
    assert_eq!(log.durable_end(), 8);
    assert_eq!(log.stream_version("a").expect("version"), 5);
    assert_eq!(log.read_stream("a").expect("read").len(), 4);
    assert_eq!(log.sync().expect("sync"), 10);

    // A unit whose expected version is stale is refused whole.
    let refused = log.append(
        &[("a", ExpectedVersion::Exact(2))],
        &[NewRecord {
            stream: "a",
            event_id: Uuid::from_u64_pair(9, 9),
            payload: b"late",
        }],
        0,
    );
    assert!(matches!(
        refused,
        Err(LogError::WrongExpectedVersion { actual: 5, .. })
    ));
    assert_eq!(log.end_position(), 10);

    let stream_a = log.read_stream("a").expect("read");
    let versions: Vec<u64> = stream_a.iter().map(|r| r.stream_version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert_eq!(stream_a[4].payload, b"unit 4");

    let range: Vec<_> = log
        .read_range(3, 7)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("records");
    let positions: Vec<u64> = range.iter().map(|r| r.position).collect();
    assert_eq!(positions, [3, 4, 5, 6]);
    assert!(range.windows(2).all(|w| w[1].prev_hash == w[0].hash));

    let mut linked = 0;
    for item in log.read_range_links_deferred(0, u64::MAX).expect("range") {
        let (record, link) = item.expect("record");
        log.check_link(&record, &link).expect("the link holds");
        assert_eq!(link.next_position(), record.position + 1);
        linked += 1;
    }
    assert_eq!(linked, 10);

    let mut reported = Vec::new();
    assert_eq!(log.verify(&mut |n| reported.push(n)).expect("verify"), 10);
    assert_eq!(reported.last(), Some(&10));
    log.close().expect("close");

    // What the trait made durable is the log of record: a plain open finds it all.
    let reopened = Log::open(tmp.path()).expect("reopen");
    assert_eq!(reopened.durable_end(), 10);
    assert_eq!(reopened.verify(&mut |_| {}).expect("verify"), 10);
}

/// Generic code over the trait compiles and runs against the file log too.
fn durable_records<L: DurableLog + ?Sized>(log: &L) -> Result<u64, LogError> {
    log.read_range(0, u64::MAX)?
        .try_fold(0, |count, record| record.map(|_| count + 1))
}

#[test]
fn generic_code_over_durable_log_reads_the_file_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(tmp.path()).expect("open");
    append_units(&mut log, 3).expect("appends");
    DurableLog::sync(&mut log).expect("sync");
    assert_eq!(durable_records(&log).expect("reads"), 6);
}
