//! The ledger itself over a `PgLog` (through `Ledger::with_log`, the projections in a temp
//! dir): the same command lines give the same outcomes and the very same records as over the
//! file log, hash chain included, and the log verifies.

mod support;

use gongji_ledger::{Ledger, LineOutcome, ProjectionBackend};
use gongji_log::{DurableLog, Log, Record};
use gongji_log_pg::PgLog;

/// Applies the lines two at a time; the outcomes and every record of the log.
fn run(ledger: &mut Ledger, lines: &[String]) -> (Vec<LineOutcome>, Vec<Record>) {
    let mut outcomes = Vec::new();
    for pair in lines.chunks(2) {
        for line in pair {
            ledger
                .apply_line(line, 1_700_000_000_000_000)
                .expect("apply");
        }
        outcomes.extend(ledger.commit().expect("commit"));
    }
    let records = ledger
        .log()
        .read_range(0, u64::MAX)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("records");
    (outcomes, records)
}

#[test]
fn the_ledger_over_postgresql_writes_the_file_logs_records_and_chain() {
    // The database first: see `contract.rs` on starting it while a file log is open.
    let uri = support::pg_uri();
    let lines = support::ledger_lines(8);
    let file_dir = tempfile::tempdir().expect("tempdir");
    let mut on_file = Ledger::open(file_dir.path()).expect("file ledger");
    let (file_outcomes, file_records) = run(&mut on_file, &lines);
    on_file.close().expect("close");

    let projections = tempfile::tempdir().expect("tempdir");
    let store = Log::open(projections.path()).expect("projection store");
    let name = support::fresh_log("ledger");
    let pg = PgLog::open(&uri, &name).expect("open");
    let mut on_pg = Ledger::with_log(Box::new(pg), store.kv().clone(), ProjectionBackend::Runs)
        .expect("ledger over PostgreSQL");
    let (pg_outcomes, pg_records) = run(&mut on_pg, &lines);
    assert_eq!(pg_outcomes, file_outcomes);
    assert!(pg_records.len() > lines.len());
    assert_eq!(
        pg_records, file_records,
        "the same records, hashes included"
    );
    assert_eq!(
        on_pg.log().verify(&mut |_| {}).expect("verify"),
        pg_records.len() as u64
    );
    on_pg.close().expect("close");

    // A reader of the same log sees it all.
    let reader = PgLog::open_read_only(&uri, &name).expect("reader");
    assert_eq!(reader.durable_end(), pg_records.len() as u64);
}
