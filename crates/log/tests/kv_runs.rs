//! The projection store (`Log::kv`) on both backends, and the runs backend's
//! own promises: merges that keep answers, crash safety, damage never giving
//! a wrong answer.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use gongji_log::{Kv, Log, LogError, LogOptions, NewRecord, ProjectionBackend};
use proptest::prelude::*;
use uuid::Uuid;

const BACKENDS: [ProjectionBackend; 2] = [ProjectionBackend::Runs, ProjectionBackend::Sled];

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn options(projections: ProjectionBackend) -> LogOptions {
    LogOptions {
        projections,
        ..LogOptions::default()
    }
}

fn open(dir: &Path, projections: ProjectionBackend) -> Log {
    Log::open_with(dir, options(projections)).expect("open")
}

/// A log with `records` records, so that checkpoints up to `records` are valid.
fn log_with_records(dir: &Path, projections: ProjectionBackend, records: u64) -> Log {
    let mut log = open(dir, projections);
    let have = log.durable_end();
    for n in have..records {
        let record = NewRecord {
            stream: "s",
            event_id: Uuid::from_u64_pair(7, n),
            payload: b"",
        };
        log.append(&[], &[record], 0).expect("append");
    }
    log.sync().expect("sync");
    log
}

fn projections_dir(dir: &Path) -> PathBuf {
    dir.join("index").join("projections")
}

/// The files in the runs store, by name.
fn store_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(projections_dir(dir))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn run_files(dir: &Path) -> Vec<PathBuf> {
    store_files(dir)
        .into_iter()
        .filter(|n| n.ends_with(".kvrun"))
        .map(|n| projections_dir(dir).join(n))
        .collect()
}

fn scan(kv: &Kv, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    kv.scan_prefix(prefix)
        .collect::<Result<Vec<_>, _>>()
        .expect("scan")
}

fn model_scan(model: &Model, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn apply_to_model(model: &mut Model, writes: &Writes) {
    for (key, value) in writes {
        match value {
            Some(v) => model.insert(key.clone(), v.clone()),
            None => model.remove(key),
        };
    }
}

/// Every key of the model, and the `probes`, answer as the model says.
fn assert_matches(kv: &Kv, model: &Model, probes: &[Vec<u8>]) {
    for (key, value) in model {
        assert_eq!(
            kv.get(key).expect("get").as_ref(),
            Some(value),
            "key {key:?}"
        );
    }
    for key in probes {
        assert_eq!(
            kv.get(key).expect("get").as_ref(),
            model.get(key),
            "probe {key:?}"
        );
    }
    assert_eq!(scan(kv, b""), model_scan(model, b""));
}

fn put(key: &[u8], value: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    (key.to_vec(), Some(value.to_vec()))
}

fn delete(key: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    (key.to_vec(), None)
}

#[test]
fn puts_deletes_checkpoint_and_clear_behave_alike_on_both_backends() {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let large = vec![0x5au8; 3 * 4096 + 17];
        {
            let log = log_with_records(dir, backend, 10);
            let kv = log.kv();
            assert_eq!(kv.checkpoint().expect("checkpoint"), None);
            assert_eq!(kv.get(b"a").expect("get"), None);
            assert_eq!(scan(kv, b""), vec![]);
            kv.apply(
                vec![
                    put(b"a", b"1"),
                    put(b"b/1", b""),
                    put(b"b/2", &large),
                    put(&[0x00], &[0xff]),
                    put(&[0xff, 0x00], b"ff00"),
                    put(&[0xff], b"ff"),
                    put(b"", b"empty key"),
                    put(b"a", b"2"),
                ],
                3,
            )
            .expect("apply");
            assert_eq!(kv.checkpoint().expect("checkpoint"), Some(3));
            // The last write of a key in one apply counts.
            assert_eq!(kv.get(b"a").expect("get"), Some(b"2".to_vec()));
            assert_eq!(kv.get(b"b/1").expect("get"), Some(Vec::new()));
            assert_eq!(kv.get(b"b/2").expect("get"), Some(large.clone()));
            assert_eq!(kv.get(&[0x00]).expect("get"), Some(vec![0xff]));
            assert_eq!(kv.get(&[0xff]).expect("get"), Some(b"ff".to_vec()));
            assert_eq!(kv.get(b"").expect("get"), Some(b"empty key".to_vec()));
            assert_eq!(kv.get(b"b").expect("get"), None);
            assert_eq!(
                scan(kv, b"b/"),
                vec![put(b"b/1", b""), put(b"b/2", &large)]
                    .into_iter()
                    .map(|(k, v)| (k, v.expect("put")))
                    .collect::<Vec<_>>()
            );
            assert_eq!(scan(kv, &[0xff]).len(), 2);
            assert_eq!(scan(kv, b"").len(), 7);
            assert_eq!(scan(kv, b"").first().map(|p| p.0.clone()), Some(Vec::new()));
            // A put then a delete in one apply is a delete; deletes of absent keys are harmless.
            kv.apply(
                vec![delete(b"b/1"), put(b"c", b"3"), delete(b"c"), delete(b"zz")],
                4,
            )
            .expect("apply");
            assert_eq!(kv.get(b"b/1").expect("get"), None);
            assert_eq!(kv.get(b"c").expect("get"), None);
            assert_eq!(scan(kv, b"b").len(), 1);
            kv.apply_without_checkpoint(vec![put(b"d", b"4")])
                .expect("apply without checkpoint");
            assert_eq!(kv.checkpoint().expect("checkpoint"), Some(4));
            // An apply without writes moves the checkpoint only.
            kv.apply(Vec::new(), 5).expect("empty apply");
            assert_eq!(kv.checkpoint().expect("checkpoint"), Some(5));
            assert_eq!(kv.get(b"d").expect("get"), Some(b"4".to_vec()));
            kv.flush().expect("flush");
        }
        let log = open(dir, backend);
        assert!(!log.open_report().kv_cleared, "{backend:?}");
        let kv = log.kv().clone();
        assert_eq!(kv.checkpoint().expect("checkpoint"), Some(5));
        assert_eq!(kv.get(b"b/2").expect("get"), Some(large));
        assert_eq!(kv.get(b"d").expect("get"), Some(b"4".to_vec()));
        assert_eq!(scan(&kv, b"").len(), 7);
        kv.clear().expect("clear");
        assert_eq!(kv.checkpoint().expect("checkpoint"), None);
        assert_eq!(kv.get(b"a").expect("get"), None);
        assert_eq!(scan(&kv, b""), vec![]);
        // The clone and the log's own handle are one store.
        assert_eq!(log.kv().get(b"d").expect("get"), None);
        kv.apply(vec![put(b"e", b"5")], 6)
            .expect("apply after clear");
        assert_eq!(log.kv().get(b"e").expect("get"), Some(b"5".to_vec()));
        drop(kv);
        log.kv().flush().expect("flush");
        drop(log);
        let log = open(dir, backend);
        assert_eq!(log.kv().checkpoint().expect("checkpoint"), Some(6));
        assert_eq!(scan(log.kv(), b""), vec![(b"e".to_vec(), b"5".to_vec())]);
    }
}

#[test]
fn many_overlapping_applies_agree_with_a_model_on_both_backends() {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let mut model = Model::new();
        let log = log_with_records(dir, backend, 400);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300u64 {
            let writes: Writes = (0..(1 + next() % 60))
                .map(|_| {
                    let key = format!(
                        "{}/{:04}",
                        ["m", "t", "p"][(next() % 3) as usize],
                        next() % 500
                    );
                    if next() % 5 == 0 {
                        delete(key.as_bytes())
                    } else {
                        let len = if next() % 50 == 0 {
                            9000
                        } else {
                            (next() % 200) as usize
                        };
                        (key.into_bytes(), Some(vec![(round % 251) as u8; len]))
                    }
                })
                .collect();
            apply_to_model(&mut model, &writes);
            log.kv().apply(writes, round).expect("apply");
            if backend == ProjectionBackend::Runs {
                assert!(run_files(dir).len() <= 10, "runs: {:?}", store_files(dir));
            }
            if round % 37 == 0 {
                for prefix in [&b"m/"[..], b"t/0", b"p/01", b"x"] {
                    assert_eq!(scan(log.kv(), prefix), model_scan(&model, prefix));
                }
            }
        }
        let probes: Vec<Vec<u8>> = (0..500).map(|k| format!("t/{k:04}").into_bytes()).collect();
        assert_matches(log.kv(), &model, &probes);
        log.kv().flush().expect("flush");
        drop(log);
        let log = open(dir, backend);
        assert_matches(log.kv(), &model, &probes);
        assert_eq!(log.kv().checkpoint().expect("checkpoint"), Some(299));
    }
}

/// Applies whose sizes shrink threefold never meet the merge rule (the newest
/// run at least half the one before), so only the cap keeps the runs few.
#[test]
fn the_cap_bounds_the_runs_and_newest_writes_win() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let log = log_with_records(dir, ProjectionBackend::Runs, 20);
    let key_count = 3u64.pow(10);
    for i in 0..=9u32 {
        let step = 3u64.pow(i);
        let writes: Writes = (0..key_count / step)
            .map(|j| {
                let key = format!("k{:06}", j * step).into_bytes();
                (key, Some(vec![i as u8; 100]))
            })
            .collect();
        log.kv().apply(writes, u64::from(i)).expect("apply");
        assert_eq!(
            run_files(dir).len(),
            i as usize + 1,
            "{:?}",
            store_files(dir)
        );
    }
    // One more, smaller still: eleven runs would be one too many.
    log.kv()
        .apply(vec![put(b"k000000", &[10u8; 10])], 10)
        .expect("apply");
    assert_eq!(run_files(dir).len(), 10, "{:?}", store_files(dir));
    let newest_writer = |k: u64| -> u8 {
        if k == 0 {
            return 10;
        }
        (0..=9u32)
            .rev()
            .find(|&i| k.is_multiple_of(3u64.pow(i)))
            .expect("i = 0 divides") as u8
    };
    let expected = |k: u64| {
        let writer = newest_writer(k);
        vec![writer; if writer == 10 { 10 } else { 100 }]
    };
    for k in (0..key_count)
        .step_by(7)
        .chain([0, 3, 9, 27, 19683, key_count - 1])
    {
        let value = log.kv().get(format!("k{k:06}").as_bytes()).expect("get");
        assert_eq!(value, Some(expected(k)), "key {k}");
    }
    let all = scan(log.kv(), b"k");
    assert_eq!(all.len() as u64, key_count);
    for (key, value) in &all {
        let k: u64 = std::str::from_utf8(&key[1..])
            .expect("utf8")
            .parse()
            .expect("number");
        assert_eq!(value, &expected(k), "key {k}");
    }
}

/// A delete must keep hiding older values while its run is merged only with
/// newer ones, and disappear when a merge takes in the oldest run.
#[test]
fn tombstones_hide_older_values_through_partial_merges() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let log = log_with_records(dir, ProjectionBackend::Runs, 100);
    let kv = log.kv();
    let base: Writes = (0..20_000u64)
        .map(|k| (format!("k{k:06}").into_bytes(), Some(vec![1u8; 30])))
        .collect();
    kv.apply(base, 1).expect("base");
    assert_eq!(run_files(dir).len(), 1);
    kv.apply(vec![delete(b"k000007")], 2).expect("delete");
    assert_eq!(run_files(dir).len(), 2);
    // Small applies merge with the tombstone's run, never with the base.
    for i in 0..20u64 {
        kv.apply(vec![put(format!("n{i:03}").as_bytes(), b"x")], 3 + i)
            .expect("small apply");
        assert_eq!(
            kv.get(b"k000007").expect("get"),
            None,
            "after small apply {i}"
        );
        assert!(run_files(dir).len() >= 2);
    }
    assert_eq!(scan(kv, b"k0000").len(), 99);
    let base_size = fs::metadata(&run_files(dir)[0]).expect("metadata").len();
    // A large apply merges everything.
    let large: Writes = (0..20_000u64)
        .map(|k| (format!("z{k:06}").into_bytes(), Some(vec![2u8; 30])))
        .collect();
    kv.apply(large, 50).expect("large");
    let runs = run_files(dir);
    assert_eq!(runs.len(), 1, "{:?}", store_files(dir));
    assert!(fs::metadata(&runs[0]).expect("metadata").len() > base_size);
    assert_eq!(kv.get(b"k000007").expect("get"), None);
    assert_eq!(kv.get(b"k000008").expect("get"), Some(vec![1u8; 30]));
    assert_eq!(scan(kv, b"").len(), 19_999 + 20 + 20_000);
}

#[test]
fn a_scan_keeps_reading_its_snapshot_while_runs_are_merged_away() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let log = log_with_records(dir, ProjectionBackend::Runs, 100);
    let kv = log.kv();
    for i in 0..4u64 {
        let writes: Writes = (0..2000u64)
            .map(|k| {
                (
                    format!("k{:05}", k * 4 + i).into_bytes(),
                    Some(vec![i as u8; 20]),
                )
            })
            .collect();
        kv.apply(writes, i).expect("apply");
    }
    let mut scan_iter = kv.scan_prefix(b"k");
    let first = scan_iter.next().expect("first").expect("ok");
    assert_eq!(first.0, b"k00000".to_vec());
    for i in 0..30u64 {
        let writes: Writes = (0..3000u64)
            .map(|k| (format!("k{:05}", k).into_bytes(), None))
            .collect();
        kv.apply(writes, 10 + i).expect("deletes");
    }
    assert_eq!(kv.get(b"k00001").expect("get"), None);
    let rest: Vec<_> = scan_iter.collect::<Result<_, _>>().expect("rest");
    assert_eq!(rest.len(), 7999);
}

#[test]
fn the_runs_backend_never_opens_sled_and_switching_backends_is_harmless() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let log = log_with_records(dir, ProjectionBackend::Runs, 10);
        log.kv().apply(vec![put(b"a", b"runs")], 5).expect("apply");
    }
    let mut index: Vec<String> = fs::read_dir(dir.join("index"))
        .expect("index")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    index.sort();
    assert_eq!(index, vec!["projections", "streams"], "no sled files");
    {
        let log = open(dir, ProjectionBackend::Sled);
        assert!(!log.open_report().kv_cleared);
        // Sled has its own (empty) store: the projection layer would rebuild.
        assert_eq!(log.kv().checkpoint().expect("checkpoint"), None);
        log.kv().apply(vec![put(b"a", b"sled")], 7).expect("apply");
        log.kv().flush().expect("flush");
    }
    {
        let log = open(dir, ProjectionBackend::Runs);
        assert!(!log.open_report().kv_cleared);
        assert_eq!(log.kv().checkpoint().expect("checkpoint"), Some(5));
        assert_eq!(log.kv().get(b"a").expect("get"), Some(b"runs".to_vec()));
    }
    {
        let log = open(dir, ProjectionBackend::Sled);
        assert_eq!(log.kv().checkpoint().expect("checkpoint"), Some(7));
        assert_eq!(log.kv().get(b"a").expect("get"), Some(b"sled".to_vec()));
    }
    fs::remove_dir_all(dir.join("index")).expect("remove index");
    for backend in BACKENDS {
        let log = open(dir, backend);
        assert_eq!(log.kv().checkpoint().expect("checkpoint"), None);
        assert_eq!(log.kv().get(b"a").expect("get"), None);
    }
}

#[test]
fn a_checkpoint_beyond_the_end_of_the_log_clears_the_store_on_both_backends() {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        {
            let log = log_with_records(dir, backend, 3);
            log.kv().apply(vec![put(b"a", b"1")], 3).expect("apply");
            log.kv().apply(vec![put(b"b", b"2")], 4).expect("apply");
            log.kv().flush().expect("flush");
        }
        let log = open(dir, backend);
        assert!(log.open_report().kv_cleared, "{backend:?}");
        assert_eq!(log.kv().checkpoint().expect("checkpoint"), None);
        assert_eq!(scan(log.kv(), b""), vec![]);
    }
}

/// A store with a few runs, the last of several blocks; returns the model.
fn build_small_store(dir: &Path) -> Model {
    let log = log_with_records(dir, ProjectionBackend::Runs, 50);
    let mut model = Model::new();
    let first: Writes = (0..300u64)
        .map(|k| {
            (
                format!("k{k:04}").into_bytes(),
                Some(vec![(k % 256) as u8; 50]),
            )
        })
        .collect();
    let second: Writes = (0..40u64)
        .map(|k| {
            (
                format!("k{:04}", k * 5).into_bytes(),
                Some(b"second".to_vec()),
            )
        })
        .collect();
    let third: Writes = vec![delete(b"k0003"), put(b"k9999", b"third")];
    for (i, writes) in [first, second, third].into_iter().enumerate() {
        apply_to_model(&mut model, &writes);
        log.kv().apply(writes, 10 + i as u64).expect("apply");
    }
    assert_eq!(run_files(dir).len(), 3, "{:?}", store_files(dir));
    model
}

fn probes() -> Vec<Vec<u8>> {
    (0..310u64)
        .map(|k| format!("k{k:04}").into_bytes())
        .chain([b"k9999".to_vec()])
        .collect()
}

#[test]
fn files_the_manifest_does_not_name_are_deleted_at_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let model = build_small_store(dir);
    let store = projections_dir(dir);
    let runs = run_files(dir);
    // A run written by an apply or merge whose manifest never made it, and temporary files.
    fs::copy(&runs[0], store.join("00000000000000000777.kvrun")).expect("copy");
    fs::write(store.join("00000000000000000778.kvrun.tmp"), b"half a run").expect("write");
    fs::write(store.join("MANIFEST.tmp"), b"half a manifest").expect("write");
    let before = store_files(dir);
    let log = open(dir, ProjectionBackend::Runs);
    assert!(!log.open_report().kv_cleared);
    let after = store_files(dir);
    assert_eq!(after.len() + 3, before.len(), "{after:?}");
    assert!(after
        .iter()
        .all(|n| !n.contains("777") && !n.ends_with(".tmp")));
    assert_eq!(log.kv().checkpoint().expect("checkpoint"), Some(12));
    assert_matches(log.kv(), &model, &probes());
}

/// Opens the damaged store: either it was found unusable (then it is empty,
/// without checkpoint, and reported), or every answer is the model's or an
/// `Index` error. Never a panic, never a wrong answer.
fn assert_cleared_or_right(dir: &Path, model: &Model, must_clear: bool, what: &str) -> Outcome {
    let log = open(dir, ProjectionBackend::Runs);
    let kv = log.kv();
    if log.open_report().kv_cleared {
        assert_eq!(kv.checkpoint().expect("checkpoint"), None, "{what}");
        assert_eq!(scan(kv, b""), vec![], "{what}");
        assert_eq!(store_files(dir), Vec::<String>::new(), "{what}");
        // Usable again.
        kv.apply(vec![put(b"x", b"y")], 1)
            .expect("apply after clearing");
        assert_eq!(kv.get(b"x").expect("get"), Some(b"y".to_vec()));
        return Outcome::Cleared;
    }
    let mut outcome = Outcome::Right;
    assert!(
        !must_clear,
        "{what}: expected the store to be found unusable"
    );
    assert_eq!(kv.checkpoint().expect("checkpoint"), Some(12), "{what}");
    for key in probes() {
        match kv.get(&key) {
            Ok(value) => assert_eq!(value.as_ref(), model.get(&key), "{what}: key {key:?}"),
            Err(LogError::Index(message)) => {
                assert!(message.contains("gongji rebuild"), "{message}");
                assert!(message.contains(".kvrun"), "{message}");
                outcome = Outcome::Refused;
            }
            Err(e) => panic!("{what}: unexpected error {e}"),
        }
    }
    match kv.scan_prefix(b"").collect::<Result<Vec<_>, _>>() {
        Ok(pairs) => assert_eq!(pairs, model_scan(model, b""), "{what}"),
        Err(LogError::Index(_)) => outcome = Outcome::Refused,
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
    outcome
}

/// What a damaged store did at open and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    /// Found unusable at open and emptied.
    Cleared,
    /// Opened; the damaged block was refused with an `Index` error.
    Refused,
    /// Opened; every answer right.
    Right,
}

#[test]
fn a_damaged_manifest_empties_the_store_and_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let model = build_small_store(dir);
    let saved = tempfile::tempdir().expect("tempdir");
    copy_files(&projections_dir(dir), saved.path());
    let manifest = projections_dir(dir).join("MANIFEST");
    let bytes = fs::read(&manifest).expect("manifest");
    for at in 0..bytes.len() {
        for damage in [Damage::Flip(at), Damage::Cut(at)] {
            restore(saved.path(), &projections_dir(dir));
            let mut bad = bytes.clone();
            damage.apply(&mut bad);
            fs::write(&manifest, &bad).expect("write");
            let what = format!("manifest {damage:?}");
            assert_cleared_or_right(dir, &model, true, &what);
        }
    }
}

#[test]
fn a_damaged_run_empties_the_store_or_answers_an_error_never_a_wrong_value() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let model = build_small_store(dir);
    let saved = tempfile::tempdir().expect("tempdir");
    copy_files(&projections_dir(dir), saved.path());
    let mut outcomes = std::collections::HashSet::new();
    for run in run_files(dir) {
        let name = run.file_name().expect("file name");
        let bytes = fs::read(saved.path().join(name)).expect("run");
        // Every byte of the small runs; a sample of the large one's blocks, all of its end.
        let len = bytes.len();
        let positions: Vec<usize> = (0..len)
            .filter(|&at| len < 2000 || at % 97 == 0 || at + 600 > len)
            .collect();
        for at in positions {
            for damage in [Damage::Flip(at), Damage::Cut(at)] {
                restore(saved.path(), &projections_dir(dir));
                let mut bad = bytes.clone();
                damage.apply(&mut bad);
                fs::write(&run, &bad).expect("write");
                // A cut run no longer has the length the manifest says.
                let must_clear = matches!(damage, Damage::Cut(_));
                let what = format!("{} {damage:?}", run.display());
                outcomes.insert(assert_cleared_or_right(dir, &model, must_clear, &what));
            }
        }
    }
    // A flipped bit in a block is refused at the read; in the fences or footer, found at open.
    assert!(outcomes.contains(&Outcome::Cleared) && outcomes.contains(&Outcome::Refused));
    assert!(!outcomes.contains(&Outcome::Right), "{outcomes:?}");
}

#[test]
fn a_missing_run_empties_the_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let model = build_small_store(dir);
    fs::remove_file(&run_files(dir)[1]).expect("remove");
    assert_cleared_or_right(dir, &model, true, "missing run");
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Flip(usize),
    Cut(usize),
}

impl Damage {
    fn apply(self, bytes: &mut Vec<u8>) {
        match self {
            Damage::Flip(at) => bytes[at] ^= 0x40,
            Damage::Cut(at) => bytes.truncate(at),
        }
    }
}

fn copy_files(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// Makes `store` hold exactly the files saved in `saved`.
fn restore(saved: &Path, store: &Path) {
    for entry in fs::read_dir(store).expect("read_dir") {
        fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    copy_files(saved, store);
}

#[derive(Clone, Debug)]
enum Op {
    Apply(Writes, u64),
    ApplyWithoutCheckpoint(Writes),
    Clear,
    Reopen,
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![0x00u8, 0x01, b'a', b'b', 0xff]),
        0..4,
    )
}

fn value_strategy() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        2 => Just(None),
        6 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Some),
        1 => (4000usize..9000, any::<u8>()).prop_map(|(n, b)| Some(vec![b; n])),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let writes = || prop::collection::vec((key_strategy(), value_strategy()), 0..30);
    prop_oneof![
        12 => (writes(), 0u64..=20).prop_map(|(w, c)| Op::Apply(w, c)),
        3 => writes().prop_map(Op::ApplyWithoutCheckpoint),
        1 => Just(Op::Clear),
        2 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_runs_store_answers_as_a_map_would(ops in prop::collection::vec(op_strategy(), 1..40)) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let mut log = log_with_records(dir, ProjectionBackend::Runs, 20);
        let mut model = Model::new();
        let mut checkpoint: Option<u64> = None;
        let all_keys: Vec<Vec<u8>> = {
            let alphabet = [0x00u8, 0x01, b'a', b'b', 0xff];
            let mut keys = vec![Vec::new()];
            for len in 1..=3 {
                let mut level: Vec<Vec<u8>> = vec![Vec::new()];
                for _ in 0..len {
                    level = level.iter().flat_map(|k| alphabet.iter().map(move |&b| {
                        let mut k = k.clone();
                        k.push(b);
                        k
                    })).collect();
                }
                keys.extend(level);
            }
            keys
        };
        for op in ops {
            match op {
                Op::Apply(writes, c) => {
                    apply_to_model(&mut model, &writes);
                    checkpoint = Some(c);
                    log.kv().apply(writes, c).expect("apply");
                }
                Op::ApplyWithoutCheckpoint(writes) => {
                    apply_to_model(&mut model, &writes);
                    log.kv().apply_without_checkpoint(writes).expect("apply");
                }
                Op::Clear => {
                    model.clear();
                    checkpoint = None;
                    log.kv().clear().expect("clear");
                }
                Op::Reopen => {
                    drop(log);
                    log = open(dir, ProjectionBackend::Runs);
                    prop_assert!(!log.open_report().kv_cleared);
                }
            }
            prop_assert_eq!(log.kv().checkpoint().expect("checkpoint"), checkpoint);
            prop_assert!(run_files(dir).len() <= 10);
            for prefix in [&[][..], &[0x00], b"a", &[0xff, 0xff], &[b'b', 0x01]] {
                prop_assert_eq!(scan(log.kv(), prefix), model_scan(&model, prefix));
            }
        }
        for key in &all_keys {
            let value = log.kv().get(key).expect("get");
            prop_assert_eq!(value.as_ref(), model.get(key));
        }
    }
}

/// fjall and redb behind the `Kv` API (feature `kv-compare`, for `tests/kv_open.rs`'s
/// measurement) answer as the run files do: gets, scans, checkpoints, deletes and clear,
/// also after a reopen.
#[cfg(feature = "kv-compare")]
#[test]
fn the_compared_stores_answer_as_a_model_does() {
    use gongji_log::kv_compare::ComparedStore;
    for which in [
        ComparedStore::Runs,
        ComparedStore::Fjall,
        ComparedStore::Redb,
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        let mut model = Model::new();
        let kv = Kv::open_for_comparison(which, &dir).expect("open");
        assert_eq!(kv.checkpoint().expect("checkpoint"), None);
        for round in 0..40u64 {
            let writes: Writes = (0..25u64)
                .map(|k| {
                    let key = format!(
                        "{}/{:03}",
                        ["m", "t"][(k % 2) as usize],
                        (round * 7 + k * 13) % 90
                    );
                    if (round + k) % 6 == 0 {
                        delete(key.as_bytes())
                    } else {
                        (
                            key.into_bytes(),
                            Some(vec![round as u8; (k * 11 % 70) as usize]),
                        )
                    }
                })
                .collect();
            apply_to_model(&mut model, &writes);
            if round % 5 == 4 {
                kv.apply_without_checkpoint(writes).expect("apply");
            } else {
                kv.apply(writes, round).expect("apply");
            }
        }
        let probes: Vec<Vec<u8>> = (0..90).map(|k| format!("t/{k:03}").into_bytes()).collect();
        assert_matches(&kv, &model, &probes);
        assert_eq!(scan(&kv, b"m/"), model_scan(&model, b"m/"), "{which:?}");
        assert_eq!(kv.checkpoint().expect("checkpoint"), Some(38), "{which:?}");
        kv.flush().expect("flush");
        drop(kv);
        let kv = Kv::open_for_comparison(which, &dir).expect("reopen");
        assert_matches(&kv, &model, &probes);
        assert_eq!(kv.checkpoint().expect("checkpoint"), Some(38), "{which:?}");
        kv.clear().expect("clear");
        assert_eq!(kv.checkpoint().expect("checkpoint"), None, "{which:?}");
        assert_eq!(scan(&kv, b""), vec![], "{which:?}");
        assert_eq!(kv.get(b"m/000").expect("get"), None);
    }
}
