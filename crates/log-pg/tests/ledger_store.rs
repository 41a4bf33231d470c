//! The ledger kept wholly in PostgreSQL (`Ledger::open_postgres` and its kin): its
//! projections stored in the database with their checkpoint, so that another `Ledger` opened
//! on it answers at once without replaying; a ledger whose projections are behind catching up
//! and storing; a reader beside the writer following it; and `rebuild` giving the same replay
//! digest as the same lines on a directory.

mod support;

use gongji_ledger::{Ledger, LineOutcome};
use gongji_log::ProjectionStore;
use gongji_log_pg::{PgLog, PgProjections};

const AT: i64 = 1_700_000_000_000_000;

fn apply(ledger: &mut Ledger, lines: &[String]) -> Vec<LineOutcome> {
    let mut outcomes = Vec::new();
    for group in lines.chunks(3) {
        for line in group {
            ledger.apply_line(line, AT).expect("apply");
        }
        outcomes.extend(ledger.commit().expect("commit"));
    }
    outcomes
}

/// What the tests compare: every member's account, the region's fund, the digest.
fn answers(ledger: &Ledger, members: usize) -> (Vec<String>, String, String) {
    let accounts = (0..members)
        .map(|i| format!("{:?}", ledger.account(&format!("M{i}")).expect("account")))
        .collect();
    let fund = format!("{:?}", ledger.fund("500000").expect("fund"));
    (accounts, fund, ledger.digest().expect("digest"))
}

/// The stored checkpoint and the log's durable end, as a new reader finds them.
fn checkpoint_and_end(uri: &str, name: &str) -> (Option<u64>, u64) {
    let store = PgProjections::open_read_only(uri, name).expect("projections");
    let log = PgLog::open_read_only(uri, name).expect("log");
    let end = gongji_log::DurableLog::durable_end(&log);
    (store.checkpoint().expect("checkpoint"), end)
}

/// The same lines on a directory: the answers to expect.
fn on_a_directory(lines: &[String], members: usize) -> (Vec<String>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ledger = Ledger::open(dir.path()).expect("file ledger");
    apply(&mut ledger, lines);
    let expected = answers(&ledger, members);
    ledger.close().expect("close");
    expected
}

#[test]
fn a_ledger_opened_again_answers_from_its_stored_projections_without_replaying() {
    let (uri, name) = (support::pg_uri(), support::fresh_log("ledger-store"));
    assert!(!Ledger::postgres_exists(&uri, &name).expect("exists"));
    let lines = support::ledger_lines(12);
    let expected = on_a_directory(&lines, 12);
    let mut ledger = Ledger::open_postgres(&uri, &name).expect("open");
    assert!(Ledger::postgres_exists(&uri, &name).expect("exists"));
    apply(&mut ledger, &lines);
    assert_eq!(answers(&ledger, 12), expected);
    ledger.close().expect("close");

    let (checkpoint, end) = checkpoint_and_end(&uri, &name);
    assert!(end > lines.len() as u64);
    assert_eq!(
        checkpoint,
        Some(end),
        "the projections are stored to the end"
    );
    let mut reader = Ledger::open_postgres_read_only(&uri, &name).expect("reader");
    let opened = reader.refresh_read_only().expect("refresh");
    assert_eq!(opened.durable_end, end);
    assert_eq!(opened.folded_in_memory, 0, "nothing replayed");
    assert_eq!(answers(&reader, 12), expected);

    let again = Ledger::open_postgres(&uri, &name).expect("open again");
    assert_eq!(answers(&again, 12), expected);
    assert_eq!(checkpoint_and_end(&uri, &name), (Some(end), end));
    // One writer at a time.
    let second = Ledger::open_postgres(&uri, &name).err().expect("refused");
    assert!(second.is_locked(), "{second}");
}

#[test]
fn a_ledger_whose_projections_are_behind_its_log_catches_up_and_stores_them() {
    let (uri, name) = (support::pg_uri(), support::fresh_log("ledger-behind"));
    let lines = support::ledger_lines(10);
    let expected = on_a_directory(&lines, 10);
    let mut ledger = Ledger::open_postgres(&uri, &name).expect("open");
    let (stored, rest) = lines.split_at(5);
    apply(&mut ledger, stored);
    // Durable, not stored (fewer dirty entities than the deferred store waits for), and the
    // ledger dropped without closing, as a process killed would leave it.
    for line in rest {
        ledger.apply_line(line, AT).expect("apply");
    }
    ledger.commit_deferred().expect("commit");
    drop(ledger);
    let (checkpoint, end) = checkpoint_and_end(&uri, &name);
    assert!(
        checkpoint.expect("stored once") < end,
        "{checkpoint:?} < {end}"
    );

    let ledger = Ledger::open_postgres(&uri, &name).expect("open again");
    assert_eq!(checkpoint_and_end(&uri, &name), (Some(end), end));
    assert_eq!(answers(&ledger, 10), expected);
}

#[test]
fn a_reader_beside_the_writer_sees_what_it_made_durable_after_a_refresh() {
    let (uri, name) = (support::pg_uri(), support::fresh_log("ledger-reader"));
    let lines = support::ledger_lines(9);
    let (first, second) = lines.split_at(11);
    let (before, after) = (on_a_directory(first, 9), on_a_directory(&lines, 9));
    let mut writer = Ledger::open_postgres(&uri, &name).expect("open");
    apply(&mut writer, first);
    let mut reader = Ledger::open_postgres_read_only(&uri, &name).expect("reader");
    assert_eq!(answers(&reader, 9), before);
    assert!(
        reader.apply_line(&lines[0], AT).is_err(),
        "a reader takes no commands"
    );

    // Stored by the writer: the reader sees it only after a refresh.
    let (stored, deferred) = second.split_at(4);
    apply(&mut writer, stored);
    assert_eq!(answers(&reader, 9), before);
    reader.refresh_read_only().expect("refresh");
    let stored_too = [first, stored].concat();
    assert_eq!(answers(&reader, 9), on_a_directory(&stored_too, 9));

    // Durable and not stored: the reader folds it from the log, in memory.
    let (deferred, last) = deferred.split_at(2);
    for line in deferred {
        writer.apply_line(line, AT).expect("apply");
    }
    writer.commit_deferred().expect("commit");
    let refreshed = reader.refresh_read_only().expect("refresh");
    assert_eq!(refreshed.durable_end, writer.log().durable_end());
    assert!(refreshed.folded_in_memory > 0);
    let so_far = [first, stored, deferred].concat();
    assert_eq!(answers(&reader, 9), on_a_directory(&so_far, 9));
    // The writer stores all of it and more (the region's fund, which the reader holds folded
    // in memory, changes again): the reader drops what it folded and reads the new snapshot.
    apply(&mut writer, last);
    let refreshed = reader.refresh_read_only().expect("refresh");
    assert_eq!(
        refreshed.folded_in_memory, 0,
        "the stored projections hold it all"
    );
    assert_eq!(answers(&reader, 9), after);
    writer.close().expect("close");
    assert_eq!(reader.refresh_read_only().expect("refresh"), refreshed);
    assert_eq!(answers(&reader, 9), after);
}

#[test]
fn rebuild_on_postgresql_gives_the_replay_digest_of_the_same_lines_on_a_directory() {
    let (uri, name) = (support::pg_uri(), support::fresh_log("ledger-rebuild"));
    let lines = support::ledger_lines(7);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut on_dir = Ledger::open(dir.path()).expect("file ledger");
    apply(&mut on_dir, &lines);
    on_dir.close().expect("close");
    let mut on_dir = Ledger::open_to_rebuild(dir.path(), Default::default()).expect("open");
    let expected = on_dir.audit_replay(&mut |_, _| {}).expect("replay");

    let mut ledger = Ledger::open_postgres(&uri, &name).expect("open");
    apply(&mut ledger, &lines);
    ledger.close().expect("close");
    let mut ledger = Ledger::open_postgres_to_rebuild(&uri, &name).expect("open to rebuild");
    let report = ledger.audit_replay(&mut |_, _| {}).expect("replay");
    assert_eq!(report, expected);
    drop(ledger);
    let (checkpoint, end) = checkpoint_and_end(&uri, &name);
    assert_eq!(
        (checkpoint, end),
        (Some(expected.records), expected.records)
    );
    let reader = Ledger::open_postgres_read_only(&uri, &name).expect("reader");
    assert_eq!(reader.digest().expect("digest"), expected.digest);
}

#[test]
fn projections_stored_beyond_the_logs_end_are_not_folded_onto() {
    let (uri, name) = (support::pg_uri(), support::fresh_log("ledger-ahead"));
    let lines = support::ledger_lines(6);
    let expected = on_a_directory(&lines, 6);
    let mut ledger = Ledger::open_postgres(&uri, &name).expect("open");
    apply(&mut ledger, &lines);
    ledger.close().expect("close");
    let (_, end) = checkpoint_and_end(&uri, &name);
    // As if the log were restored from a backup older than the projections.
    let store = PgProjections::open(&uri, &name)
        .expect("projections")
        .into_kv();
    store
        .apply(
            vec![(b"m/M0".to_vec(), Some(b"from later".to_vec()))],
            end + 100,
        )
        .expect("apply");
    drop(store);

    let reader = Ledger::open_postgres_read_only(&uri, &name).expect("reader");
    assert_eq!(
        answers(&reader, 6),
        expected,
        "folded from the start in memory"
    );
    assert_eq!(checkpoint_and_end(&uri, &name), (Some(end + 100), end));
    let writer = Ledger::open_postgres(&uri, &name).expect("open again");
    assert_eq!(answers(&writer, 6), expected);
    assert_eq!(checkpoint_and_end(&uri, &name), (Some(end), end));
}

/// Enrolments of `members` members of region 500000, then a contribution of each for every
/// month of the year: a fund every line changes.
fn year_lines(members: usize) -> Vec<String> {
    let mut lines = support::ledger_lines(members);
    for month in 3..=12 {
        for i in 0..members {
            lines.push(format!(
                r#"{{"cmd":"contribute","member":"M{i}","month":"2024-{month:02}","base":"8000.00"}}"#
            ));
        }
    }
    lines
}

#[test]
fn a_reader_following_a_writer_that_stores_in_the_background_answers_as_a_directory_does() {
    let (uri, name) = (support::pg_uri(), support::fresh_log("ledger-follow"));
    let lines = year_lines(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut on_dir = Ledger::open(dir.path()).expect("file ledger");
    let mut writer = Ledger::open_postgres(&uri, &name).expect("open");
    // Stores start every few lines and land while later lines are made durable, so that the
    // reader finds checkpoints behind, at and past what it folded.
    writer.set_deferred_dirty_max(4);
    let mut reader = Ledger::open_postgres_read_only(&uri, &name).expect("reader");
    let mut dropped = 0;
    for line in &lines {
        writer.apply_line(line, AT).expect("apply");
        writer.commit_deferred().expect("commit");
        on_dir.apply_line(line, AT).expect("apply");
        on_dir.commit().expect("commit");
        let before = reader
            .refresh_read_only()
            .expect("refresh")
            .folded_in_memory;
        let after = reader
            .refresh_read_only()
            .expect("refresh")
            .folded_in_memory;
        dropped += u64::from(after < before);
        assert_eq!(answers(&reader, 5), answers(&on_dir, 5), "after {line}");
    }
    assert!(dropped > 0, "the reader never dropped what it folded");
    writer.close().expect("close");
    reader.refresh_read_only().expect("refresh");
    assert_eq!(answers(&reader, 5), answers(&on_dir, 5));
}
