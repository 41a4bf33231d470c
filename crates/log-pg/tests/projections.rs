//! The projections in PostgreSQL (`PgProjections`) behind the ledger's `Kv`: the same answers
//! as the runs store for the same writes (gets, scans in key order over many pages, the last
//! write of a key winning, checkpoints, clearing), applies that are all or nothing when their
//! session is terminated in the middle, and a reader that reads one snapshot until it
//! refreshes, under a layer of its own writes.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gongji_log::{Kv, Log, ProjectionStore};
use gongji_log_pg::{PgLogOptions, PgProjections};

type Write = (Vec<u8>, Option<Vec<u8>>);

/// A small deterministic generator (xorshift), so that a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Keys under a few prefixes, some with 0x00 and 0xff bytes (order and prefix bounds).
fn key(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(400);
    match rng.below(5) {
        0 => format!("m/M{n:04}").into_bytes(),
        1 => format!("t/T{n}").into_bytes(),
        2 => [b"r/500000\0".as_slice(), format!("M{n}").as_bytes()].concat(),
        3 => vec![b'z', 0xff, (n % 256) as u8],
        _ => vec![0xff, 0xff, (n % 7) as u8],
    }
}

fn batch(rng: &mut Rng) -> Vec<Write> {
    (0..rng.below(60))
        .map(|_| {
            let key = key(rng);
            let value = (rng.below(4) != 0).then(|| rng.next().to_be_bytes().to_vec());
            (key, value)
        })
        .collect()
}

const PREFIXES: &[&[u8]] = &[
    b"",
    b"m/",
    b"m/M00",
    b"t/",
    b"r/500000\0",
    b"z\xff",
    b"\xff\xff",
    b"\xff",
    b"q",
];

fn scan(kv: &Kv, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    kv.scan_prefix(prefix)
        .collect::<Result<_, _>>()
        .expect("scan")
}

fn assert_same(pg: &Kv, runs: &Kv, keys: &[Vec<u8>]) {
    assert_eq!(
        pg.checkpoint().expect("checkpoint"),
        runs.checkpoint().expect("checkpoint")
    );
    for key in keys {
        assert_eq!(
            pg.get(key).expect("get"),
            runs.get(key).expect("get"),
            "{key:?}"
        );
    }
    for prefix in PREFIXES {
        assert_eq!(scan(pg, prefix), scan(runs, prefix), "prefix {prefix:?}");
    }
}

fn writer(log: &str) -> Kv {
    PgProjections::open(&support::pg_uri(), log)
        .expect("open projections")
        .into_kv()
}

#[test]
fn the_projections_answer_as_the_runs_store_does_for_the_same_writes() {
    let name = support::fresh_log("kv");
    let pg = writer(&name);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path()).expect("runs store");
    let runs = log.kv().clone();
    assert_eq!(pg.checkpoint().expect("checkpoint"), None);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut keys = Vec::new();
    for round in 0..40u64 {
        let writes = batch(&mut rng);
        keys.extend(writes.iter().map(|(k, _)| k.clone()));
        if round % 7 == 3 {
            pg.apply_without_checkpoint(writes.clone()).expect("pg");
            runs.apply_without_checkpoint(writes).expect("runs");
        } else {
            pg.apply(writes.clone(), round * 10).expect("pg");
            runs.apply(writes, round * 10).expect("runs");
        }
        if round % 10 == 9 {
            assert_same(&pg, &runs, &keys);
        }
    }
    // The last write of a key in one batch counts, a put after a delete and the other way.
    let twice = vec![
        (b"m/twice".to_vec(), Some(b"first".to_vec())),
        (b"m/twice".to_vec(), Some(b"second".to_vec())),
        (b"m/gone".to_vec(), Some(b"put".to_vec())),
        (b"m/gone".to_vec(), None),
    ];
    pg.apply(twice.clone(), 1_000).expect("pg");
    runs.apply(twice, 1_000).expect("runs");
    assert_eq!(pg.get(b"m/twice").expect("get"), Some(b"second".to_vec()));
    assert_eq!(pg.get(b"m/gone").expect("get"), None);
    keys.extend([b"m/twice".to_vec(), b"m/gone".to_vec()]);
    assert_same(&pg, &runs, &keys);

    // Scans over many pages stay in key order and whole.
    let many: Vec<Write> = (0..25_000u32)
        .map(|i| {
            (
                format!("p/{i:06}").into_bytes(),
                Some(i.to_be_bytes().to_vec()),
            )
        })
        .collect();
    pg.apply(many.clone(), 2_000).expect("pg");
    runs.apply(many, 2_000).expect("runs");
    assert_eq!(scan(&pg, b"p/").len(), 25_000);
    assert_same(&pg, &runs, &keys);
    assert_eq!(scan(&pg, b""), scan(&runs, b""));

    pg.clear().expect("clear");
    runs.clear().expect("clear");
    assert_eq!(pg.checkpoint().expect("checkpoint"), None);
    assert!(scan(&pg, b"").is_empty());
    assert_same(&pg, &runs, &keys);

    // After a clear (a rebuild's), the first batch goes straight into the table, the next
    // ones over it as before.
    for round in 0..3u64 {
        let mut writes = batch(&mut rng);
        writes.extend(
            (0..300u32).map(|i| (format!("p/{i:06}").into_bytes(), Some(vec![round as u8; 9]))),
        );
        keys.extend(writes.iter().map(|(k, _)| k.clone()));
        pg.apply(writes.clone(), 3_000 + round).expect("pg");
        runs.apply(writes, 3_000 + round).expect("runs");
        assert_same(&pg, &runs, &keys);
    }
}

#[test]
fn logs_keep_their_projections_and_checkpoints_apart() {
    let (east, west) = (support::fresh_log("kv-east"), support::fresh_log("kv-west"));
    let (a, b) = (writer(&east), writer(&west));
    a.apply(vec![(b"k".to_vec(), Some(b"east".to_vec()))], 3)
        .expect("east");
    b.apply(vec![(b"k".to_vec(), Some(b"west".to_vec()))], 5)
        .expect("west");
    assert_eq!(a.get(b"k").expect("get"), Some(b"east".to_vec()));
    assert_eq!(b.checkpoint().expect("checkpoint"), Some(5));
    a.clear().expect("clear");
    assert_eq!(b.get(b"k").expect("get"), Some(b"west".to_vec()));
    assert_eq!(scan(&b, b"").len(), 1);
}

/// The projection writer's sessions of `log`, terminated; how many there were.
fn terminate_projection_writer(log: &str) -> u64 {
    support::client()
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name LIKE $1 AND state = 'active'",
            // Named `gongji-log LOG projections writer pid PID`, perhaps cut at 63 bytes.
            &[&format!("gongji-log {log} projections writer%")],
        )
        .expect("terminate")
        .len() as u64
}

fn big_batch(tag: u8) -> Vec<Write> {
    (0..200_000u32)
        .map(|i| (format!("m/{i:07}").into_bytes(), Some(vec![tag; 64])))
        .collect()
}

/// Applies a large batch on a thread and terminates the writer's session while it runs.
/// Returns the apply's result, or `None` if it finished before a session could be terminated.
fn apply_and_terminate(store: &Arc<PgProjections>, log: &str, tag: u8) -> Option<bool> {
    let applying = {
        let store = Arc::clone(store);
        std::thread::spawn(move || store.apply(big_batch(tag), Some(u64::from(tag))))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut killed = 0;
    while killed == 0 && !applying.is_finished() && Instant::now() < deadline {
        killed = terminate_projection_writer(log);
    }
    let result = applying.join().expect("apply thread");
    (killed > 0).then_some(result.is_ok())
}

fn count_tagged(log: &str, tag: u8) -> i64 {
    support::client()
        .query_one(
            "SELECT count(*) FROM gongji_projections WHERE log = $1 AND value = $2",
            &[&log, &vec![tag; 64]],
        )
        .expect("count")
        .get(0)
}

#[test]
fn an_apply_whose_session_is_terminated_leaves_all_of_it_or_nothing() {
    let name = support::fresh_log("kv-atomic");
    let options = PgLogOptions {
        reconnect_within: Duration::ZERO,
    };
    let store =
        Arc::new(PgProjections::open_with(&support::pg_uri(), &name, options).expect("open"));
    store.apply(big_batch(1), Some(1)).expect("first batch");
    let mut failed = false;
    for _ in 0..5 {
        match apply_and_terminate(&store, &name, 2) {
            Some(false) => {
                failed = true;
                break;
            }
            // Finished before (or as) it was terminated: all of it is there.
            Some(true) | None => {
                assert_eq!(count_tagged(&name, 2), 200_000);
                store
                    .apply(big_batch(1), Some(1))
                    .expect("back to the first");
            }
        }
    }
    assert!(failed, "no apply was terminated in the middle");
    // Terminated before its COMMIT (nearly always: the COPY and INSERT take most of the
    // time) nothing of it is there; terminated in its COMMIT, all of it may be.
    let (old, new) = (count_tagged(&name, 1), count_tagged(&name, 2));
    let checkpoint = store.checkpoint().expect("checkpoint");
    assert!(
        (old, new, checkpoint) == (200_000, 0, Some(1))
            || (old, new, checkpoint) == (0, 200_000, Some(2)),
        "all or nothing: {old} old entries, {new} new, checkpoint {checkpoint:?}"
    );
}

#[test]
fn an_apply_whose_session_is_terminated_is_done_again_on_a_new_connection() {
    let name = support::fresh_log("kv-again");
    let store = Arc::new(PgProjections::open(&support::pg_uri(), &name).expect("open"));
    store.apply(big_batch(1), Some(1)).expect("first batch");
    let mut terminated = false;
    for _ in 0..5 {
        if let Some(ok) = apply_and_terminate(&store, &name, 3) {
            assert!(
                ok,
                "the apply is done again after its session was terminated"
            );
            terminated = true;
            break;
        }
    }
    assert!(terminated, "no apply was terminated in the middle");
    assert_eq!(count_tagged(&name, 3), 200_000);
    assert_eq!(count_tagged(&name, 1), 0);
    assert_eq!(store.checkpoint().expect("checkpoint"), Some(3));
}

#[test]
fn a_reader_reads_one_snapshot_under_its_own_writes_until_it_refreshes() {
    let name = support::fresh_log("kv-reader");
    let uri = support::pg_uri();
    let writer = writer(&name);
    writer
        .apply(
            vec![
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"d".to_vec(), Some(b"4".to_vec())),
            ],
            5,
        )
        .expect("store");
    let reader = PgProjections::open_read_only(&uri, &name).expect("reader");
    assert_eq!(reader.checkpoint().expect("checkpoint"), Some(5));
    // The reader's writes land in its layer, which wins over the snapshot.
    reader
        .apply(
            vec![(b"b".to_vec(), Some(b"2".to_vec())), (b"d".to_vec(), None)],
            Some(7),
        )
        .expect("layer");
    // The writer stores more: the reader's snapshot does not move.
    writer
        .apply(
            vec![
                (b"a".to_vec(), Some(b"3".to_vec())),
                (b"c".to_vec(), Some(b"5".to_vec())),
            ],
            9,
        )
        .expect("store");
    assert_eq!(reader.get(b"a").expect("get"), Some(b"1".to_vec()));
    assert_eq!(reader.get(b"b").expect("get"), Some(b"2".to_vec()));
    assert_eq!(reader.get(b"c").expect("get"), None);
    assert_eq!(reader.get(b"d").expect("get"), None);
    assert_eq!(reader.checkpoint().expect("checkpoint"), Some(7));
    let seen: Vec<_> = reader
        .scan_prefix(b"")
        .collect::<Result<_, _>>()
        .expect("scan");
    assert_eq!(
        seen,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
    // A refresh finds the writer stored since: the layer goes, the new snapshot shows.
    assert!(reader.refresh().expect("refresh"));
    assert_eq!(reader.checkpoint().expect("checkpoint"), Some(9));
    assert_eq!(reader.get(b"a").expect("get"), Some(b"3".to_vec()));
    assert_eq!(reader.get(b"b").expect("get"), None);
    assert_eq!(reader.get(b"c").expect("get"), Some(b"5".to_vec()));
    assert_eq!(reader.get(b"d").expect("get"), Some(b"4".to_vec()));
    // Nothing stored since: the layer stays.
    reader
        .apply(vec![(b"e".to_vec(), Some(b"6".to_vec()))], Some(11))
        .expect("layer");
    assert!(!reader.refresh().expect("refresh"));
    assert_eq!(reader.get(b"e").expect("get"), Some(b"6".to_vec()));
    // Stored at a checkpoint within what the reader folded: the layer stays over the new
    // snapshot.
    writer
        .apply(vec![(b"f".to_vec(), Some(b"7".to_vec()))], 10)
        .expect("store");
    assert!(!reader.refresh().expect("refresh"));
    assert_eq!(reader.get(b"e").expect("get"), Some(b"6".to_vec()));
    assert_eq!(reader.get(b"f").expect("get"), Some(b"7".to_vec()));
    assert_eq!(reader.checkpoint().expect("checkpoint"), Some(11));
    // Stored up to the reader's end: the store holds what the reader folded, the layer goes.
    writer.apply(Vec::new(), 11).expect("store");
    assert!(reader.refresh().expect("refresh"));
    assert_eq!(reader.get(b"e").expect("get"), None);
    assert_eq!(reader.checkpoint().expect("checkpoint"), Some(11));
    // A reader's clear hides the snapshot and writes nothing.
    reader.clear().expect("clear");
    assert_eq!(reader.get(b"a").expect("get"), None);
    assert_eq!(reader.checkpoint().expect("checkpoint"), None);
    assert_eq!(writer.get(b"a").expect("get"), Some(b"3".to_vec()));
    assert_eq!(writer.checkpoint().expect("checkpoint"), Some(11));
    // A writer's clear moves the store too.
    writer.clear().expect("clear");
    assert!(reader.refresh().expect("refresh"));
    assert_eq!(reader.checkpoint().expect("checkpoint"), None);
    assert_eq!(reader.get(b"c").expect("get"), None);
}

/// The tables of schema version 1, as a database written before the projections holds them.
const VERSION_1: &str = "
CREATE TABLE gongji_schema (component text PRIMARY KEY, version integer NOT NULL);
CREATE TABLE gongji_log_heads (
    log text PRIMARY KEY,
    lock_key integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    end_position bigint NOT NULL CHECK (end_position >= 0),
    last_hash bytea NOT NULL CHECK (length(last_hash) = 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE gongji_log_records (
    log text NOT NULL,
    position bigint NOT NULL CHECK (position >= 0),
    stream text NOT NULL,
    stream_version bigint NOT NULL CHECK (stream_version >= 1),
    event_id uuid NOT NULL,
    recorded_at_micros bigint NOT NULL,
    unit_end boolean NOT NULL,
    payload bytea NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (log, position),
    UNIQUE (log, stream, stream_version)
);
INSERT INTO gongji_schema VALUES ('log', 1);
INSERT INTO gongji_log_heads (log, end_position, last_hash) VALUES ('v1', 0, '\\x0000000000000000000000000000000000000000000000000000000000000000');
";

#[test]
fn a_version_1_database_gets_the_projections_at_its_writers_open() {
    let uri = support::pg_uri();
    let database = support::fresh_log("gongji_v1").replace('-', "_");
    let mut admin = support::client();
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .expect("create database");
    let (base, query) = uri.split_once('?').unwrap_or((&uri, ""));
    let (server, _) = base.rsplit_once('/').expect("a database in the URI");
    let v1 = format!(
        "{server}/{database}{}{query}",
        if query.is_empty() { "" } else { "?" }
    );
    let mut client = postgres::Client::connect(&v1, postgres::NoTls).expect("connect");
    client.batch_execute(VERSION_1).expect("version 1");

    let refused = PgProjections::open_read_only(&v1, "v1").expect_err("no projections yet");
    assert!(refused.to_string().contains("version 1"), "{refused}");
    let log = gongji_log_pg::PgLog::open(&v1, "v1").expect("a writer's open migrates");
    let version: i32 = client
        .query_one(
            "SELECT version FROM gongji_schema WHERE component = 'log'",
            &[],
        )
        .expect("version")
        .get(0);
    assert_eq!(version, 2);
    let store = PgProjections::open(&v1, "v1")
        .expect("projections")
        .into_kv();
    store
        .apply(vec![(b"k".to_vec(), Some(b"v".to_vec()))], 0)
        .expect("apply");
    let reader = PgProjections::open_read_only(&v1, "v1").expect("reader");
    assert_eq!(reader.get(b"k").expect("get"), Some(b"v".to_vec()));
    drop((log, store, reader, client));
    admin
        .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .expect("drop database");
}

#[test]
fn what_a_reader_prefetched_is_answered_only_in_its_snapshot_and_under_its_layer() {
    let name = support::fresh_log("kv-prefetch");
    let writer = writer(&name);
    writer
        .apply(vec![(b"a".to_vec(), Some(b"1".to_vec()))], 5)
        .expect("store");
    let reader = PgProjections::open_read_only(&support::pg_uri(), &name).expect("reader");
    reader
        .apply(vec![(b"x".to_vec(), Some(b"layer".to_vec()))], Some(9))
        .expect("layer");
    reader
        .prefetch(&[b"a".to_vec(), b"missing".to_vec(), b"x".to_vec()])
        .expect("prefetch");
    assert_eq!(reader.get(b"a").expect("get"), Some(b"1".to_vec()));
    assert_eq!(reader.get(b"missing").expect("get"), None);
    assert_eq!(reader.get(b"x").expect("get"), Some(b"layer".to_vec()));
    reader
        .apply(vec![(b"a".to_vec(), None)], None)
        .expect("layer");
    assert_eq!(reader.get(b"a").expect("get"), None, "the layer wins");
    // The writer stores within what the reader folded: the layer stays, the snapshot moves,
    // and what was prefetched from the old one is not answered any more.
    reader.prefetch(&[b"b".to_vec()]).expect("prefetch");
    assert_eq!(reader.get(b"b").expect("get"), None);
    writer
        .apply(vec![(b"b".to_vec(), Some(b"2".to_vec()))], 7)
        .expect("store");
    assert!(!reader.refresh().expect("refresh"));
    assert_eq!(reader.get(b"x").expect("get"), Some(b"layer".to_vec()));
    assert_eq!(reader.get(b"b").expect("get"), Some(b"2".to_vec()));
}
