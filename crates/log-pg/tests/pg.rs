//! What only the PostgreSQL backend has: several logs in one database, the writer's session
//! lost and found again (between commits and in the middle of them), the head row as a fence,
//! and damage an open finds.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gongji_log::{DurableLog, ExpectedVersion, LogError, NewRecord, Record};
use gongji_log_pg::{PgLog, PgLogOptions};
use uuid::Uuid;

#[path = "support/records.rs"]
mod records;

use records::append;

fn rows_of(log: &str) -> i64 {
    support::client()
        .query_one(
            "SELECT count(*) FROM gongji_log_records WHERE log = $1",
            &[&log],
        )
        .expect("count")
        .get(0)
}

fn terminate_writer(log: &str) -> u64 {
    support::client()
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!(
                "gongji-log {log} writer pid {}",
                std::process::id()
            )],
        )
        .expect("terminate")
        .len() as u64
}

#[test]
fn several_logs_share_a_database_each_with_its_own_positions_and_chain() {
    let uri = support::pg_uri();
    let (east, west) = (support::fresh_log("east"), support::fresh_log("west"));
    let mut a = PgLog::open(&uri, &east).expect("open east");
    let mut b = PgLog::open(&uri, &west).expect("open west");
    assert_eq!(append(&mut a, 0, 3, 2).expect("east"), 6);
    assert_eq!(append(&mut b, 0, 5, 2).expect("west"), 10);
    assert_eq!(a.verify(&mut |_| {}).expect("verify east"), 6);
    assert_eq!(b.verify(&mut |_| {}).expect("verify west"), 10);
    // The same streams, positions and payloads in both: the same chain, kept apart.
    let first = |log: &PgLog| {
        log.read_range(0, 6)
            .expect("range")
            .map(|r| r.expect("record").hash)
            .collect::<Vec<_>>()
    };
    assert_eq!(first(&a), first(&b));
    assert_eq!(a.read_stream("fund").expect("read").len(), 3);
    assert_eq!(b.read_stream("fund").expect("read").len(), 5);
    assert_eq!(a.name(), east);
}

#[test]
fn a_writer_whose_session_was_terminated_reconnects_and_commits_once() {
    let uri = support::pg_uri();
    let name = support::fresh_log("reconnect");
    let mut log = PgLog::open(&uri, &name).expect("open");
    assert_eq!(append(&mut log, 0, 4, 2).expect("before"), 8);
    assert_eq!(terminate_writer(&name), 1);
    // The next commit finds the connection gone, connects again, takes the lock again, reads
    // the head (where the writer left it: not committed) and commits.
    assert_eq!(append(&mut log, 4, 4, 2).expect("after"), 16);
    assert_eq!(rows_of(&name), 16);
    assert_eq!(log.verify(&mut |_| {}).expect("verify"), 16);
    Box::new(log).close().expect("close");
}

#[test]
fn sessions_terminated_in_the_middle_of_commits_lose_nothing_and_apply_nothing_twice() {
    let uri = support::pg_uri();
    let name = support::fresh_log("midcommit");
    let options = PgLogOptions {
        reconnect_within: Duration::from_secs(30),
    };
    let mut log = PgLog::open_with(&uri, &name, options).expect("open");
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, name) = (Arc::clone(&stop), name.clone());
        std::thread::spawn(move || {
            let mut killed = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                killed += terminate_writer(&name);
                std::thread::sleep(Duration::from_millis(15));
            }
            killed
        })
    };
    let end = append(&mut log, 0, 600, 20);
    stop.store(true, Ordering::Relaxed);
    let killed = killer.join().expect("killer");
    assert_eq!(end.expect("every sync acknowledged"), 1200);
    assert!(killed > 0, "no session was terminated");
    assert_eq!(rows_of(&name), 1200);
    assert_eq!(log.verify(&mut |_| {}).expect("verify"), 1200);
    assert_eq!(log.read_stream("fund").expect("read").len(), 600);
}

#[test]
fn a_head_moved_behind_the_writers_back_fails_the_batch_and_breaks_the_log() {
    let uri = support::pg_uri();
    let name = support::fresh_log("fence");
    let mut log = PgLog::open(&uri, &name).expect("open");
    assert_eq!(append(&mut log, 0, 2, 2).expect("before"), 4);
    support::client()
        .execute(
            "UPDATE gongji_log_heads SET last_hash = $2 WHERE log = $1",
            &[&name, &&[7u8; 32][..]],
        )
        .expect("move the head");
    let refused = append(&mut log, 2, 2, 2);
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(log.durable_end(), 4);
    assert_eq!(rows_of(&name), 4);
    assert!(matches!(
        append(&mut log, 4, 1, 1),
        Err(LogError::Broken(_))
    ));
}

#[test]
fn an_open_finds_a_record_beyond_the_head_or_a_last_record_that_is_not_the_heads() {
    let uri = support::pg_uri();
    let name = support::fresh_log("tail");
    let mut log = PgLog::open(&uri, &name).expect("open");
    append(&mut log, 0, 2, 2).expect("append");
    Box::new(log).close().expect("close");
    let mut client = support::client();
    client
        .execute(
            "INSERT INTO gongji_log_records SELECT log, 4, stream, 9, event_id, \
             recorded_at_micros, unit_end, payload, hash, hash FROM gongji_log_records \
             WHERE log = $1 AND position = 3",
            &[&name],
        )
        .expect("a row beyond the head");
    assert!(matches!(
        PgLog::open(&uri, &name),
        Err(LogError::Corrupt { position: 4, .. })
    ));
    client
        .execute(
            "DELETE FROM gongji_log_records WHERE log = $1 AND position >= 3",
            &[&name],
        )
        .expect("cut the last record");
    assert!(matches!(
        PgLog::open(&uri, &name),
        Err(LogError::Corrupt { position: 3, .. })
    ));
    assert!(matches!(
        PgLog::open_read_only(&uri, &name),
        Err(LogError::Corrupt { position: 3, .. })
    ));
}

#[test]
fn a_reader_of_a_log_that_does_not_exist_is_refused_and_names_are_checked() {
    let uri = support::pg_uri();
    let _schema = PgLog::open(&uri, &support::fresh_log("schema")).expect("open");
    assert!(matches!(
        PgLog::open_read_only(&uri, "no-such-log"),
        Err(LogError::InvalidInput(_))
    ));
    for bad in ["", "tab\there", &"x".repeat(65)] {
        assert!(matches!(
            PgLog::open(&uri, bad),
            Err(LogError::InvalidInput(_))
        ));
    }
    assert!(matches!(
        PgLog::open("not a connection string ===", "x"),
        Err(LogError::InvalidInput(_))
    ));
}

#[test]
fn a_closed_writer_releases_its_lock_at_once() {
    let uri = support::pg_uri();
    let name = support::fresh_log("release");
    for round in 0..20u64 {
        let mut log = PgLog::open(&uri, &name).expect("open right after the close before");
        assert_eq!(
            append(&mut log, round, 1, 1).expect("append"),
            2 * round + 2
        );
        Box::new(log).close().expect("close");
    }
}

#[test]
fn a_stream_name_postgresql_cannot_store_is_refused_and_stages_nothing() {
    let uri = support::pg_uri();
    let name = support::fresh_log("nul");
    let mut log = PgLog::open(&uri, &name).expect("open");
    let record = |stream| NewRecord {
        stream,
        event_id: Uuid::nil(),
        payload: b"x",
    };
    let refused = [
        log.append(&[], &[record("ok"), record("nul\0inside")], 0),
        log.append(&[("nul\0", ExpectedVersion::Any)], &[record("ok")], 0),
    ];
    for result in refused {
        assert!(
            matches!(result, Err(LogError::InvalidInput(_))),
            "{result:?}"
        );
    }
    assert_eq!(log.end_position(), 0);
    log.append(&[], &[record("ok")], 0).expect("append");
    assert_eq!(log.sync().expect("the log is not broken"), 1);
}

#[test]
fn a_reopened_writer_checks_expected_versions_against_the_earlier_sessions_records() {
    let uri = support::pg_uri();
    let name = support::fresh_log("reopened");
    let mut log = PgLog::open(&uri, &name).expect("open");
    assert_eq!(append(&mut log, 0, 3, 2).expect("first session"), 6);
    Box::new(log).close().expect("close");
    let mut log = PgLog::open(&uri, &name).expect("reopen");
    let record = |stream| NewRecord {
        stream,
        event_id: Uuid::nil(),
        payload: b"x",
    };
    // The first stream the table lacks loads every durable version.
    log.append(&[], &[record("fund")], 0)
        .expect("fund, staged at 4");
    log.append(&[("m-0", ExpectedVersion::Exact(1))], &[record("m-0")], 0)
        .expect("m-0 is at 1");
    log.append(&[("fund", ExpectedVersion::Exact(4))], &[record("new")], 0)
        .expect("fund's staged version counts");
    let refused = log.append(&[("m-2", ExpectedVersion::NoStream)], &[record("m-2")], 0);
    assert!(
        matches!(
            refused,
            Err(LogError::WrongExpectedVersion { actual: 1, .. })
        ),
        "{refused:?}"
    );
    log.append(&[("new", ExpectedVersion::Exact(1))], &[record("new")], 0)
        .expect("new is at 1");
    assert_eq!(log.sync().expect("sync"), 10);
    assert_eq!(log.read_stream("fund").expect("read").len(), 4);
    assert_eq!(log.stream_version("new").expect("version"), 2);
}

#[test]
fn a_reader_refreshing_beside_a_committing_writer_sees_whole_prefixes_only() {
    let uri = support::pg_uri();
    let name = support::fresh_log("prefix");
    let mut log = PgLog::open(&uri, &name).expect("open");
    append(&mut log, 0, 1, 1).expect("first unit");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, uri, name) = (Arc::clone(&stop), uri.clone(), name.clone());
        std::thread::spawn(move || {
            let mut reader = PgLog::open_read_only(&uri, &name).expect("reader");
            let (mut refreshes, mut last_end) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) && refreshes < 2_000 {
                let end = reader.refresh_read_only().expect("refresh");
                assert!(end >= last_end, "the durable end went back");
                assert_eq!(end % 2, 0, "a unit was seen in part");
                // Every position below the end is there, chained, and nothing beyond it.
                assert_eq!(reader.verify(&mut |_| {}).expect("verify"), end);
                last_end = end;
                refreshes += 1;
            }
            (refreshes, last_end)
        })
    };
    let end = append(&mut log, 1, 300, 3).expect("appends");
    stop.store(true, Ordering::Relaxed);
    let (refreshes, last_end) = reader.join().expect("reader");
    assert_eq!(end, 602);
    assert!(refreshes > 0 && last_end <= end);
}

/// The application names of this process's sessions of log `log` now.
fn sessions_of(log: &str) -> Vec<String> {
    support::client()
        .query(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1",
            &[&format!("gongji-log {log} % pid {}", std::process::id())],
        )
        .expect("sessions")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn reads_ahead(log: &str) -> usize {
    sessions_of(log)
        .iter()
        .filter(|s| s.contains(" read-ahead "))
        .count()
}

/// Waits (up to 10 s) until log `log` has `count` read-ahead sessions.
fn read_aheads_become(log: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while reads_ahead(log) != count {
        assert!(
            Instant::now() < deadline,
            "{} read-ahead sessions, not {count}: {:?}",
            reads_ahead(log),
            sessions_of(log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A range read's records: `first`, taken already, then the rest.
fn with_the_rest(first: Record, rest: gongji_log::Records<'_>) -> Vec<Record> {
    std::iter::once(Ok(first))
        .chain(rest)
        .map(|r| r.expect("record"))
        .collect()
}

/// Read aheads this process has started so far.
fn started() -> u64 {
    gongji_log_pg::read_aheads_started()
}

/// One test, not several: read aheads are bounded per process, so two tests reading long
/// ranges at once could each find the other's (no other test in this file reads one).
#[test]
fn a_long_range_is_read_ahead_on_a_session_of_its_own_and_reads_as_page_by_page_reads() {
    let uri = support::pg_uri();
    let name = support::fresh_log("ahead");
    let mut log = PgLog::open(&uri, &name).expect("open");
    let end = append(&mut log, 0, 25_000, 1_000).expect("append");
    assert_eq!(end, 50_000);
    let records = |log: &PgLog, from: u64, to: u64| -> Vec<Record> {
        log.read_range(from, to)
            .expect("range")
            .map(|r| r.expect("record"))
            .collect()
    };
    // Reads of 1,000 records (short ranges: a page at a time), together the whole range.
    let mut by_pages = Vec::new();
    for from in (0..end).step_by(1_000) {
        by_pages.extend(records(&log, from, from + 1_000));
    }
    let by_pages = by_pages;
    let before = started();
    assert_eq!(records(&log, 7, 7 + 32_767), by_pages[7..7 + 32_767]);
    assert_eq!(
        started(),
        before,
        "a range of 32,767 records is not read ahead"
    );
    assert_eq!(records(&log, 7, 7 + 32_768), by_pages[7..7 + 32_768]);
    assert_eq!(
        started(),
        before + 1,
        "a range of 32,768 records is read ahead"
    );
    read_aheads_become(&name, 0);

    // The whole range, read ahead on a session of its own.
    let mut whole = log.read_range(0, end).expect("range");
    let first = whole.next().expect("a record").expect("record 0");
    assert_eq!(started(), before + 2);
    read_aheads_become(&name, 1);
    let whole = with_the_rest(first, whole);
    assert_eq!(whole, by_pages);
    read_aheads_become(&name, 0);

    let links: Vec<_> = log
        .read_range_links_deferred(5, end)
        .expect("range")
        .map(|item| item.expect("linked record"))
        .collect();
    assert_eq!(started(), before + 3);
    assert_eq!(links.len() as u64, end - 5);
    for (record, link) in &links {
        log.check_link(record, link).expect("every link holds");
    }
    assert!(links.iter().map(|(r, _)| r).eq(&whole[5..]));
    read_aheads_become(&name, 0);

    // Three long reads at once: two read ahead, the third a page at a time; all read alike.
    let mut three: Vec<_> = (0..3)
        .map(|_| {
            let mut range = log.read_range(0, end).expect("range");
            let first = range.next().expect("a record").expect("record 0");
            (first, range)
        })
        .collect();
    assert_eq!(started(), before + 5);
    read_aheads_become(&name, 2);
    for (first, range) in three.drain(..) {
        assert_eq!(with_the_rest(first, range), by_pages);
    }
    drop(three);
    read_aheads_become(&name, 0);

    // The read ahead's session cut partway: the reader fetches the rest itself.
    let mut cut = log.read_range(0, end).expect("range");
    let first = cut.next().expect("a record").expect("record 0");
    assert_eq!(started(), before + 6, "every place was given back");
    read_aheads_become(&name, 1);
    let terminated = support::client()
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!(
                "gongji-log {name} read-ahead pid {}",
                std::process::id()
            )],
        )
        .expect("terminate")
        .len();
    assert_eq!(terminated, 1);
    assert_eq!(with_the_rest(first, cut), by_pages);
    read_aheads_become(&name, 0);

    // A reader dropped partway: its read ahead ends.
    let mut partway = log.read_range(0, end).expect("range");
    partway.nth(10_000).expect("a record").expect("record");
    drop(partway);
    read_aheads_become(&name, 0);
    Box::new(log).close().expect("close");

    // A reader that rides out no lost connection (a server's read view) makes no second one.
    let view = PgLog::open_read_only_with(
        &uri,
        &name,
        PgLogOptions {
            reconnect_within: Duration::ZERO,
        },
    )
    .expect("view");
    let before_view = started();
    assert_eq!(records(&view, 0, end), by_pages);
    assert_eq!(
        started(),
        before_view,
        "a view that rides out nothing reads ahead"
    );

    // Damage past the first pages is found at its position, in either kind of read.
    let mut client = support::client();
    let reader = PgLog::open_read_only(&uri, &name).expect("reader");
    client
        .execute(
            "UPDATE gongji_log_records SET payload = 'forged' WHERE log = $1 AND position = 30001",
            &[&name],
        )
        .expect("forge a payload");
    let before_damage = started();
    let read: Result<Vec<_>, _> = reader.read_range(0, end).expect("range").collect();
    assert!(
        matches!(
            read,
            Err(LogError::Corrupt {
                position: 30_001,
                ..
            })
        ),
        "{read:?}"
    );
    read_aheads_become(&name, 0);
    let reader = PgLog::open_read_only(&uri, &name).expect("reader");
    client
        .execute(
            "DELETE FROM gongji_log_records WHERE log = $1 AND position = 40000",
            &[&name],
        )
        .expect("cut a record");
    let read: Result<Vec<_>, _> = reader
        .read_range_links_deferred(0, end)
        .expect("range")
        .map(|item| item.map(|(record, _)| record.position))
        .collect();
    assert!(
        matches!(
            read,
            Err(LogError::Corrupt {
                position: 40_000,
                ..
            })
        ),
        "{read:?}"
    );
    assert_eq!(started(), before_damage + 2, "the damaged reads read ahead");
}
