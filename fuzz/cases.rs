//! What each fuzz target does with one input, shared by the fuzz targets (`fuzz/fuzz_targets`)
//! and the regression test that replays seeds and found crashes (`tests/fuzz_regressions.rs`).

use std::sync::OnceLock;

use gongji_domain::{decide, evolve, parse_command, Event, State};
use gongji_ledger::Ledger;

/// The policy every case starts from.
const POLICY: &str = include_str!("../policies/500000-2024-01-01.json");

fn apply_lines(state: &mut State, lines: &[String]) {
    for line in lines {
        if let Ok(command) = parse_command(line) {
            if let Ok(decision) = decide(state, &command) {
                for (_, event) in &decision.events {
                    evolve(state, event);
                }
            }
        }
    }
    state.dirty.clear();
}

fn base_state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut state = State::default();
        let mut lines = vec![format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#)];
        for (id, born, status, scheme) in [
            ("A", "1980-01-01", "active", "employer"),
            ("R", "1954-06-15", "retired", "employer"),
            ("T", "1990-01-01", "active", "individual_tier1"),
        ] {
            lines.push(format!(r#"{{"cmd":"enroll","member":"{id}","region":"500000","born":"{born}","status":"{status}","scheme":"{scheme}","date":"2024-01-01","opening_balance":"500.00"}}"#));
        }
        lines.push(r#"{"cmd":"bind_family","holder":"A","relative":"S","relation":"spouse","date":"2024-01-02"}"#.to_string());
        lines.push(r#"{"cmd":"claim","id":"C1","member":"A","date":"2024-02-01","level":2,"channel":"institution","eligible":"300.00"}"#.to_string());
        apply_lines(&mut state, &lines);
        state
    })
}

/// A command line: parsing never panics; a parsed command is decided against a state with a
/// policy and members of several kinds, its events round-trip their encoding and fold in.
pub fn command(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    let Ok(command) = parse_command(&line) else {
        return;
    };
    let mut state = base_state().clone();
    if let Ok(decision) = decide(&state, &command) {
        for (_, event) in &decision.events {
            let decoded = Event::decode(&event.encode()).expect("the ledger's own events decode");
            assert_eq!(&decoded, event);
            evolve(&mut state, event);
        }
    }
}

/// A stored event's bytes: decoding never panics; what decodes re-encodes to the same event,
/// and can be dated, shown and folded into a state holding its entities.
pub fn event_decode(data: &[u8]) {
    if let Ok(event) = Event::decode(data) {
        let again = Event::decode(&event.encode()).expect("a re-encoded event decodes");
        assert_eq!(again, event);
        let _ = event.date().to_string();
        let _ = serde_json::to_string(&event).expect("events serialize");
        let _ = event.entities().count();
        let _ = event.external_flow();
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    file: std::path::PathBuf,
}

// The fixture is only read after it is built, and libFuzzer runs a target on one thread.
unsafe impl Sync for Fixture {}
unsafe impl Send for Fixture {}

fn fixture() -> &'static std::sync::Mutex<Fixture> {
    static FIXTURE: OnceLock<std::sync::Mutex<Fixture>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ledger = Ledger::open(&dir.path().join("ledger")).expect("ledger opens");
        let lines = [
            format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#),
            r#"{"cmd":"enroll","member":"M1","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"900.00"}"#.to_string(),
            r#"{"cmd":"claim","id":"S1","member":"M1","date":"2024-03-02","level":2,"channel":"institution","eligible":"300.00","institution":"H1","visit":"V1"}"#.to_string(),
            r#"{"cmd":"claim","id":"S2","member":"M1","date":"2024-03-05","level":3,"channel":"pharmacy","eligible":"80.00","institution":"H1","visit":"V2"}"#.to_string(),
            r#"{"cmd":"reverse","id":"S2","date":"2024-03-09","reason":"fuzz fixture"}"#.to_string(),
        ];
        for line in &lines {
            ledger.apply_line(line, 0).expect("fixture line applies");
        }
        ledger.commit().expect("fixture commits");
        let file = dir.path().join("detail.csv");
        std::sync::Mutex::new(Fixture { _dir: dir, ledger, file })
    })
}

/// An institution's detail file: reconciliation against a small real ledger never panics; it
/// reports every row as matched, different or malformed, or refuses the file with an error.
pub fn csv_detail(data: &[u8]) {
    let fixture = fixture().lock().expect("fixture lock");
    std::fs::write(&fixture.file, data).expect("input written");
    let from = "2024-03-01".parse().expect("a valid day");
    let to = "2024-03-31".parse().expect("a valid day");
    let options = gongji_recon::DetailOptions::default();
    let _ = gongji_recon::reconcile_detail(
        &fixture.ledger,
        &fixture.file,
        "H1",
        from,
        to,
        &options,
        &mut |_, _| {},
    );
}

/// An archive's bytes, with its hashes, chain and manifest recomputed first (as a forger would:
/// `gongji_ledger::archive::reseal`) so that mutations reach the checks behind the chain:
/// `check_archive` and `import_archive` never panic and agree (an archive the check passes
/// with a digest imports to a ledger with that digest; any other is refused and the import's
/// target is left absent).
pub fn archive(data: &[u8]) {
    use gongji_ledger::archive::{check_archive, import_archive, reseal};
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("archive.jsonl");
    std::fs::write(&file, reseal(data)).expect("archive written");
    let checked = check_archive(&file, &mut |_, _| {})
        .ok()
        .and_then(|report| report.digest);
    let target = dir.path().join("ledger");
    let imported = import_archive(&target, &file, &mut |_, _, _| {});
    match imported {
        Ok((_, Some(ledger))) => {
            let digest = ledger.digest().expect("the restored ledger has a digest");
            assert_eq!(
                checked,
                Some(digest),
                "import restored what the check refused"
            );
        }
        Ok((_, None)) | Err(_) => {
            assert_eq!(checked, None, "the check passed what import refused");
            assert!(!target.exists(), "a refused import left its target behind");
        }
    }
}

/// The log's cases. Only in the fuzz build (`cargo fuzz` sets `--cfg fuzzing`, hence the
/// `allow`): `tests/fuzz_regressions.rs`, which also includes this file, belongs to a crate
/// without `gongji-log`; the log crate's own `crates/log/tests/fuzz_seeds.rs` replays this
/// target's seeds and regressions.
#[allow(unexpected_cfgs)]
pub mod log {
    /// Bytes as a log segment: decoding never panics; what decodes re-encodes to exactly its
    /// bytes with the same hashes, positions run on and the hash chain links; a bad frame is
    /// told apart as a torn tail or damage by recovery itself (`gongji_log::fuzzing` runs the
    /// recovery scan `Log::open` runs, on the bytes in memory; feature `testing`).
    #[cfg(fuzzing)]
    pub fn log_frames(data: &[u8]) {
        gongji_log::fuzzing::check_segment_bytes(data);
    }
}
