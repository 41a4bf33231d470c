//! Reads ride out a lost connection: the read connection (of a reader, or of the writer's
//! reads) and a projection reader's refresh connect again, for up to `reconnect_within`, when
//! the database stops answering, as during a failover; past it they fail with a clear error,
//! and the next read connects. The loss is made by a proxy in front of the test database
//! (`support::proxy`): every connection through it closed, nothing accepted, then the same
//! port again.

#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/records.rs"]
mod records;
mod support;

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

#[test]
fn a_reader_s_reads_and_refresh_ride_out_a_lost_connection() {
    let name = support::fresh_log("ride-out");
    let mut writer = PgLog::open(&support::pg_uri(), &name).expect("writer");
    records::append(&mut writer, 0, 20, 5).expect("append");
    let proxy = Proxy::start(&support::pg_uri());
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
    let name = support::fresh_log("give-up");
    let mut writer = PgLog::open(&support::pg_uri(), &name).expect("writer");
    records::append(&mut writer, 0, 4, 2).expect("append");
    let mut proxy = Proxy::start(&support::pg_uri());
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
