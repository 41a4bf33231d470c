//! Reads ride out a lost connection: the read connection (of a reader, or of the writer's
//! reads) and a projection reader's refresh connect again, for up to `reconnect_within`, when
//! the database stops answering, as during a failover; past it they fail with a clear error,
//! and the next read connects. The loss is made by a proxy in front of the test database
//! (`support::proxy`): every connection through it closed, nothing accepted, then the same
//! port again. Reads made at once during a loss share it: they all give up at the loss plus
//! `reconnect_within` (not one window after another), and one new connection serves them all.

#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/records.rs"]
mod records;
mod support;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use gongji_log::{DurableLog, ProjectionStore};
use gongji_log_pg::{PgLog, PgLogOptions, PgProjections};
use proxy::Proxy;

/// How long the database is unreachable in the tests that ride it out.
const CUT: Duration = Duration::from_millis(1500);

/// Cuts the proxy now and restores it after `CUT`, on another thread.
fn cut_for_a_while(mut proxy: Proxy) -> std::thread::JoinHandle<Proxy> {
    proxy.cut();
    std::thread::spawn(move || {
        std::thread::sleep(CUT);
        proxy.restore();
        proxy
    })
}

/// A fresh log named after `tag` holding `units` units (`records::append`, synced every
/// `per_sync`), its writer (connected directly), and a proxy in front of the test database for
/// the readers.
fn a_log_behind_a_proxy(tag: &str, units: u64, per_sync: u64) -> (String, PgLog, Proxy) {
    let name = support::fresh_log(tag);
    let mut writer = PgLog::open(&support::pg_uri(), &name).expect("writer");
    records::append(&mut writer, 0, units, per_sync).expect("append");
    (name, writer, Proxy::start(&support::pg_uri()))
}

#[test]
fn a_reader_s_reads_and_refresh_ride_out_a_lost_connection() {
    let (name, mut writer, proxy) = a_log_behind_a_proxy("ride-out", 20, 5);
    let mut reader = PgLog::open_read_only(&proxy.uri, &name).expect("reader");
    assert_eq!(reader.read_stream("fund").expect("read").len(), 20);

    // The stream read while nothing answers: it waits, then reads on a new connection.
    let restored = cut_for_a_while(proxy);
    let started = Instant::now();
    let fund = reader.read_stream("fund").expect("read across the loss");
    assert_eq!(fund.len(), 20);
    assert!(
        started.elapsed() >= CUT / 2,
        "the read did not wait for the database"
    );
    let proxy = restored.join().expect("restore");

    // The refresh (the head read again) while nothing answers: it waits, then sees new records.
    records::append(&mut writer, 20, 5, 5).expect("append more");
    let restored = cut_for_a_while(proxy);
    assert_eq!(
        reader.refresh_read_only().expect("refresh across the loss"),
        50
    );
    assert_eq!(reader.read_stream("fund").expect("read").len(), 25);
    drop(restored.join().expect("restore"));
    drop(writer);
}

#[test]
fn a_read_past_reconnect_within_fails_clearly_and_the_next_one_connects() {
    let (name, writer, mut proxy) = a_log_behind_a_proxy("give-up", 4, 2);
    let options = PgLogOptions {
        reconnect_within: Duration::from_millis(600),
    };
    let reader = PgLog::open_read_only_with(&proxy.uri, &name, options).expect("reader");
    proxy.cut();
    let started = Instant::now();
    let error = reader.read_stream("fund").expect_err("nothing answers");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(10),
        "gave up after {waited:?}"
    );
    let message = error.to_string();
    assert!(message.contains("PostgreSQL"), "{message}");
    assert!(!message.contains("password"), "{message}");
    proxy.restore();
    assert_eq!(
        reader
            .read_stream("fund")
            .expect("read once it answers")
            .len(),
        4
    );
    drop(writer);
}

#[test]
fn a_projection_reader_s_refresh_rides_out_a_lost_connection() {
    let name = support::fresh_log("proj-ride-out");
    let store = PgProjections::open(&support::pg_uri(), &name).expect("projections writer");
    store
        .apply(vec![(b"k".to_vec(), Some(b"v1".to_vec()))], Some(1))
        .expect("store");
    let proxy = Proxy::start(&support::pg_uri());
    let reader = PgProjections::open_read_only(&proxy.uri, &name).expect("reader");
    assert_eq!(reader.get(b"k").expect("get"), Some(b"v1".to_vec()));
    store
        .apply(vec![(b"k".to_vec(), Some(b"v2".to_vec()))], Some(2))
        .expect("store again");

    let restored = cut_for_a_while(proxy);
    assert!(
        reader.get(b"k").is_err(),
        "a read in a lost snapshot must fail, not answer"
    );
    reader.refresh().expect("refresh across the loss");
    assert_eq!(reader.get(b"k").expect("get"), Some(b"v2".to_vec()));
    assert_eq!(reader.checkpoint().expect("checkpoint"), Some(2));
    drop(restored.join().expect("restore"));
}

/// Reads made at once in the tests of a loss shared by several reads.
const READS_AT_ONCE: usize = 4;
/// `reconnect_within` in the tests of a loss that outlasts it.
const WINDOW: Duration = Duration::from_millis(1500);
/// What a read may take past the window to give up: reads made one window after another would
/// take `READS_AT_ONCE` windows.
const GIVE_UP_SLACK: Duration = Duration::from_millis(900);

/// Runs `read` on `READS_AT_ONCE` threads started together; each thread's outcome, and how long
/// after `from` it came.
fn reads_at_once<T: Send>(
    from: Instant,
    read: impl Fn() -> Result<T, gongji_log::LogError> + Sync,
) -> Vec<(Result<T, gongji_log::LogError>, Duration)> {
    let start = Barrier::new(READS_AT_ONCE);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..READS_AT_ONCE)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    let outcome = read();
                    (outcome, from.elapsed())
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("a read's thread"))
            .collect()
    })
}

/// Every read failed, the last of them within the window (from the cut) and the slack.
fn all_gave_up_together<T>(outcomes: &[(Result<T, gongji_log::LogError>, Duration)]) {
    for (outcome, after) in outcomes {
        let error = outcome
            .as_ref()
            .err()
            .expect("nothing answers: the read fails");
        assert!(error.to_string().contains("PostgreSQL"), "{error}");
        assert!(
            *after >= WINDOW && *after < WINDOW + GIVE_UP_SLACK,
            "a read gave up {after:?} after the cut, not at the loss plus {WINDOW:?}: {error}"
        );
    }
}

#[test]
fn reads_made_at_once_during_a_loss_give_up_together_at_the_loss_plus_the_window() {
    let (name, writer, mut proxy) = a_log_behind_a_proxy("together", 4, 2);
    let options = PgLogOptions {
        reconnect_within: WINDOW,
    };
    let reader = PgLog::open_read_only_with(&proxy.uri, &name, options.clone()).expect("reader");
    let store = PgProjections::open_with(&proxy.uri, &name, options.clone()).expect("store");
    let snapshot = PgProjections::open_read_only_with(&proxy.uri, &name, options).expect("reader");

    proxy.cut();
    let cut = Instant::now();
    all_gave_up_together(&reads_at_once(cut, || reader.read_stream("fund")));
    let cut = Instant::now();
    all_gave_up_together(&reads_at_once(cut, || store.get(b"k")));
    let cut = Instant::now();
    all_gave_up_together(&reads_at_once(cut, || snapshot.refresh()));

    // The loss ran out with the window: once the database answers, the next read connects.
    proxy.restore();
    assert_eq!(reader.read_stream("fund").expect("read").len(), 4);
    assert_eq!(store.get(b"k").expect("get"), None);
    snapshot.refresh().expect("refresh");
    drop(writer);
}

#[test]
fn reads_waiting_through_a_loss_all_go_on_through_one_new_connection() {
    let (name, writer, proxy) = a_log_behind_a_proxy("one-reconnect", 4, 2);
    let reader = PgLog::open_read_only(&proxy.uri, &name).expect("reader");
    let snapshot = PgProjections::open_read_only(&proxy.uri, &name).expect("reader");
    let before = proxy.accepted();

    let restored = cut_for_a_while(proxy);
    let cut = Instant::now();
    let (read, refreshed) = std::thread::scope(|scope| {
        let refreshing = scope.spawn(|| reads_at_once(cut, || snapshot.refresh()));
        let read = reads_at_once(cut, || reader.read_stream("fund"));
        (read, refreshing.join().expect("the refreshes"))
    });
    let proxy = restored.join().expect("restore");
    for (outcome, after) in &read {
        let fund = outcome.as_ref().expect("a read across the loss");
        assert_eq!(fund.len(), 4);
        assert!(*after >= CUT / 2, "the read did not wait for the database");
    }
    for (outcome, after) in &refreshed {
        outcome.as_ref().expect("a refresh across the loss");
        assert!(
            *after >= CUT / 2,
            "the refresh did not wait for the database"
        );
    }
    assert_eq!(
        proxy.accepted() - before,
        2,
        "one new connection for the log's reads and one for the projections' snapshot"
    );
    drop(writer);
}

#[test]
fn with_a_window_of_zero_a_lost_connection_fails_at_once_and_the_next_read_connects() {
    let (name, writer, mut proxy) = a_log_behind_a_proxy("zero-window", 4, 2);
    let options = PgLogOptions {
        reconnect_within: Duration::ZERO,
    };
    let reader = PgLog::open_read_only_with(&proxy.uri, &name, options.clone()).expect("reader");
    let snapshot = PgProjections::open_read_only_with(&proxy.uri, &name, options).expect("reader");

    proxy.cut();
    let cut = Instant::now();
    reader
        .read_stream("fund")
        .expect_err("the connection is lost");
    snapshot.refresh().expect_err("the connection is lost");
    assert!(
        cut.elapsed() < Duration::from_millis(500),
        "a window of zero waited {:?}",
        cut.elapsed()
    );

    proxy.restore();
    assert_eq!(reader.read_stream("fund").expect("connects").len(), 4);
    snapshot.refresh().expect("connects");
    drop(writer);
}
