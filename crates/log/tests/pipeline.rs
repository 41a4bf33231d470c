//! Pipelined sync: `Log::sync_start` hands a batch to the syncer thread and
//! returns a `SyncTicket`; these tests check what the tickets, the reads and
//! close/drop promise while batches are in flight.

use std::path::Path;

use gongji_log::{Log, LogError, LogOptions, NewRecord, Record, SyncTicket};
use uuid::Uuid;

const STREAMS: [&str; 5] = ["m/1", "m/2", "m/3", "claims/7", "a-longer-stream-name"];

/// Appends `count` one-record units, numbered from the log's end position.
fn append_batch(log: &mut Log, count: u64) {
    for _ in 0..count {
        let n = log.end_position();
        let payload = n.to_le_bytes();
        log.append(
            &[],
            &[NewRecord {
                stream: STREAMS[(n % STREAMS.len() as u64) as usize],
                event_id: Uuid::from_u64_pair(1, n),
                payload: &payload,
            }],
            n as i64,
        )
        .expect("append");
    }
}

fn all(log: &Log) -> Vec<Record> {
    log.read_range(0, u64::MAX)
        .expect("read_range")
        .collect::<Result<Vec<_>, _>>()
        .expect("records")
}

fn check_records(records: &[Record], count: u64) {
    assert_eq!(records.len() as u64, count);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.position, i as u64);
        assert_eq!(r.payload, (i as u64).to_le_bytes());
    }
}

fn small_segments() -> LogOptions {
    LogOptions {
        segment_bytes_max: 2_000,
        ..LogOptions::default()
    }
}

#[test]
fn sync_ticket_is_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<SyncTicket>();
}

#[test]
fn tickets_resolve_in_order_with_the_end_of_their_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(tmp.path()).expect("open");
    let mut tickets = Vec::new();
    for batch in 1..=20u64 {
        append_batch(&mut log, 7);
        let ticket = log.sync_start().expect("sync_start");
        assert_eq!(ticket.end_position(), batch * 7);
        tickets.push(ticket);
    }
    // Once a ticket resolves, every earlier one has.
    for (i, ticket) in tickets.iter().enumerate().rev() {
        assert_eq!(ticket.wait().expect("wait"), (i as u64 + 1) * 7);
        for earlier in &tickets[..i] {
            assert!(matches!(earlier.try_wait(), Some(Ok(_))));
        }
    }
    assert_eq!(log.settle_syncs().expect("settle"), 140);
    assert_eq!(log.durable_end(), 140);
    check_records(&all(&log), 140);
    // Nothing staged: a ticket for what was handed over last, resolved.
    let again = log.sync_start().expect("sync_start");
    assert_eq!(again.try_wait().expect("resolved").expect("ok"), 140);
}

#[test]
fn tickets_are_waited_on_from_another_thread() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(tmp.path()).expect("open");
    let (send, receive) = std::sync::mpsc::sync_channel::<SyncTicket>(2);
    let waiter = std::thread::spawn(move || {
        let mut ends = Vec::new();
        for ticket in receive {
            ends.push(ticket.wait().expect("wait"));
        }
        ends
    });
    for _ in 0..50 {
        append_batch(&mut log, 10);
        send.send(log.sync_start().expect("sync_start"))
            .expect("send");
    }
    drop(send);
    let ends = waiter.join().expect("waiter");
    assert_eq!(ends, (1..=50).map(|b| b * 10).collect::<Vec<_>>());
    log.close().expect("close");
    let log = Log::open(tmp.path()).expect("reopen");
    check_records(&all(&log), 500);
}

#[test]
fn durable_end_and_reads_never_run_ahead_of_resolved_tickets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(tmp.path()).expect("open");
    let mut tickets: Vec<SyncTicket> = Vec::new();
    for _ in 0..40 {
        append_batch(&mut log, 25);
        tickets.push(log.sync_start().expect("sync_start"));
        let durable = log.settle_syncs().expect("settle");
        assert_eq!(log.durable_end(), durable);
        // Every batch counted durable has its ticket resolved (it was fsynced).
        for ticket in tickets.iter().filter(|t| t.end_position() <= durable) {
            assert!(matches!(ticket.try_wait(), Some(Ok(_))));
        }
        // The reads see exactly the durable records, not the ones in flight.
        let records = all(&log);
        check_records(&records, durable);
        let stream_records: usize = STREAMS
            .iter()
            .map(|s| log.read_stream(s).expect("read_stream").len())
            .sum();
        assert_eq!(stream_records as u64, durable);
        assert!(log
            .read_range(durable, u64::MAX)
            .expect("range")
            .next()
            .is_none());
        // Versions count every appended record (they decide expected versions).
        let versions: u64 = STREAMS
            .iter()
            .map(|s| log.stream_version(s).expect("version"))
            .sum();
        assert_eq!(versions, log.end_position());
        // verify stops at the durable end while batches are being written.
        assert_eq!(log.verify(&mut |_| {}).expect("verify"), durable);
    }
    assert_eq!(log.sync().expect("sync"), 1000);
    check_records(&all(&log), 1000);
}

#[test]
fn sync_waits_for_every_batch_in_flight() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(tmp.path()).expect("open");
    let mut tickets = Vec::new();
    for _ in 0..3 {
        append_batch(&mut log, 5);
        tickets.push(log.sync_start().expect("sync_start"));
    }
    append_batch(&mut log, 5);
    assert_eq!(log.sync().expect("sync"), 20);
    assert_eq!(log.durable_end(), 20);
    for ticket in &tickets {
        assert!(matches!(ticket.try_wait(), Some(Ok(_))));
    }
    check_records(&all(&log), 20);
}

fn close_or_drop_with_syncs_in_flight(close: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut log = Log::open_with(dir, small_segments()).expect("open");
    let mut tickets = Vec::new();
    for _ in 0..30 {
        append_batch(&mut log, 13);
        tickets.push(log.sync_start().expect("sync_start"));
    }
    // Staged, never handed over: not acknowledged, gone after close or drop.
    append_batch(&mut log, 4);
    if close {
        log.close().expect("close");
    } else {
        drop(log);
    }
    // Every batch handed over was made durable before the log let go of its lock.
    for (i, ticket) in tickets.iter().enumerate() {
        assert_eq!(
            ticket.try_wait().expect("resolved").expect("ok"),
            (i as u64 + 1) * 13
        );
    }
    let log = Log::open_with(dir, small_segments()).expect("reopen");
    let report = log.open_report().clone();
    assert_eq!(report.truncated_bytes, 0, "{report:?}");
    assert_eq!(
        report.records_indexed, 0,
        "the index run was written: {report:?}"
    );
    assert_eq!(report.index_rebuilt, None);
    assert_eq!(log.durable_end(), 390);
    check_records(&all(&log), 390);
    assert_eq!(log.verify(&mut |_| {}).expect("verify"), 390);
}

#[test]
fn close_with_syncs_in_flight_keeps_every_handed_over_batch() {
    close_or_drop_with_syncs_in_flight(true);
}

#[test]
fn drop_with_syncs_in_flight_keeps_every_handed_over_batch() {
    close_or_drop_with_syncs_in_flight(false);
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("segments"))
        .expect("segments")
        .count()
}

#[test]
fn segments_roll_over_while_batches_are_in_flight() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut log = Log::open_with(dir, small_segments()).expect("open");
    let mut tickets = Vec::new();
    for round in 0..60u64 {
        append_batch(&mut log, 1 + round % 9);
        tickets.push(log.sync_start().expect("sync_start"));
        if round % 10 == 9 {
            let durable = log.settle_syncs().expect("settle");
            check_records(&all(&log), durable);
        }
    }
    let end = log.end_position();
    assert_eq!(tickets.last().expect("tickets").wait().expect("wait"), end);
    assert_eq!(log.sync().expect("sync"), end);
    assert!(segment_count(dir) > 5, "segments: {}", segment_count(dir));
    check_records(&all(&log), end);
    assert_eq!(log.verify(&mut |_| {}).expect("verify"), end);
    for s in STREAMS {
        let records = log.read_stream(s).expect("read_stream");
        assert!(records
            .iter()
            .enumerate()
            .all(|(i, r)| r.stream_version == i as u64 + 1));
    }
    drop(log);
    let log = Log::open_with(dir, small_segments()).expect("reopen");
    assert_eq!(log.open_report().truncated_bytes, 0);
    check_records(&all(&log), end);
    assert_eq!(log.verify(&mut |_| {}).expect("verify"), end);
}

#[test]
fn a_failed_background_sync_reaches_every_waiter_and_breaks_the_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut log = Log::open(dir).expect("open");
    append_batch(&mut log, 10);
    let good = log.sync_start().expect("sync_start");
    assert_eq!(good.wait().expect("first batch"), 10);

    log.inject_sync_failure();
    let mut lost = Vec::new();
    for _ in 0..3 {
        append_batch(&mut log, 10);
        // Once the log has seen the failure it refuses to start more.
        match log.sync_start() {
            Ok(ticket) => lost.push(ticket),
            Err(LogError::Broken(_)) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(!lost.is_empty());
    let waiters: Vec<_> = lost
        .iter()
        .flat_map(|t| [t.clone(), t.clone()])
        .map(|t| std::thread::spawn(move || t.wait()))
        .collect();
    for waiter in waiters {
        match waiter.join().expect("waiter") {
            Err(LogError::Io(e)) => assert!(e.to_string().contains("injected failure"), "{e}"),
            other => panic!("expected the I/O error, got {other:?}"),
        }
    }
    assert!(
        good.wait().is_ok(),
        "an acknowledged batch stays acknowledged"
    );

    // The log is broken from now on.
    assert!(matches!(log.sync_start(), Err(LogError::Broken(_))));
    assert!(matches!(log.sync(), Err(LogError::Broken(_))));
    assert!(matches!(log.settle_syncs(), Err(LogError::Broken(_))));
    assert!(matches!(
        log.append(
            &[],
            &[NewRecord {
                stream: "m/1",
                event_id: Uuid::nil(),
                payload: b"x",
            }],
            0
        ),
        Err(LogError::Broken(_))
    ));
    assert_eq!(
        log.durable_end(),
        10,
        "lost records are never counted durable"
    );
    check_records(&all(&log), 10);
    drop(log);

    // The failed batch was cut back: reopening finds the acknowledged records only.
    let log = Log::open(dir).expect("reopen");
    assert_eq!(log.open_report().truncated_bytes, 0);
    assert_eq!(log.durable_end(), 10);
    check_records(&all(&log), 10);
    assert_eq!(log.verify(&mut |_| {}).expect("verify"), 10);
}

#[test]
fn a_failed_sync_in_flight_is_returned_by_close() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(tmp.path()).expect("open");
    log.inject_sync_failure();
    append_batch(&mut log, 3);
    let ticket = log.sync_start().expect("sync_start");
    assert!(matches!(log.close(), Err(LogError::Io(_))));
    assert!(ticket.wait().is_err());
    let log = Log::open(tmp.path()).expect("reopen");
    assert_eq!(log.durable_end(), 0);
}

#[test]
fn index_runs_are_written_from_applied_batches() {
    // More than one index run's worth (2^20) would be slow in debug; instead
    // check that flush_index in the middle of pipelined syncs writes a run
    // that a reopen accepts.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut log = Log::open_with(dir, small_segments()).expect("open");
    for round in 0..20 {
        append_batch(&mut log, 11);
        log.sync_start().expect("sync_start");
        if round % 5 == 4 {
            log.flush_index().expect("flush_index");
        }
    }
    let end = log.sync().expect("sync");
    log.flush_index().expect("flush_index");
    std::mem::forget(log); // a crash: nothing more is written
                           // The lock of the forgotten log is still held by this process's file
                           // handle; the lock is per open file description, so open a copy.
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(dir, copy.path());
    let log = Log::open_with(copy.path(), small_segments()).expect("reopen");
    assert_eq!(log.open_report().index_rebuilt, None);
    assert_eq!(log.open_report().records_indexed, 0);
    check_records(&all(&log), end);
    for s in STREAMS {
        let records = log.read_stream(s).expect("read_stream");
        assert!(records
            .iter()
            .enumerate()
            .all(|(i, r)| r.stream_version == i as u64 + 1 && r.stream == s));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_failed_sync_around_a_segment_roll_over_reopens_cleanly() {
    // Batches are 1..9 records of ~110 bytes against segments of 2000 bytes:
    // a roll-over every few batches. Fail the sync at each point in turn.
    for fail_after in 0..12u64 {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let mut log = Log::open_with(dir, small_segments()).expect("open");
        let mut acknowledged = 0;
        for round in 0..30u64 {
            if round == fail_after {
                log.inject_sync_failure();
            }
            append_batch(&mut log, 1 + round % 9);
            match log.sync_start() {
                Ok(ticket) => {
                    if round < fail_after && round % 3 == 0 {
                        acknowledged = ticket.wait().expect("before the failure");
                    }
                }
                Err(LogError::Broken(_)) => break,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        drop(log);
        let log = Log::open_with(dir, small_segments())
            .unwrap_or_else(|e| panic!("failing after batch {fail_after}: reopen: {e}"));
        let end = log.durable_end();
        assert!(end >= acknowledged, "acknowledged records survive");
        check_records(&all(&log), end);
        assert_eq!(log.verify(&mut |_| {}).expect("verify"), end);
    }
}
