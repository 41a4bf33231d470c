//! Whole logs as units (`PgLog::rename_log`, `PgLog::drop_log`): a rename moves the head,
//! records, projections and checkpoint together and never overwrites; a drop removes all four;
//! neither runs beside an open writer.

mod support;

use gongji_log::{DurableLog, ExpectedVersion, KvWrite, LogError, NewRecord, ProjectionStore};
use gongji_log_pg::{PgLog, PgProjections};
use uuid::Uuid;

/// A log of `units` records (one stream each) with one projection entry and its checkpoint.
fn filled_log(uri: &str, log: &str, units: u64) {
    let mut writer = PgLog::open(uri, log).expect("open");
    for unit in 0..units {
        let stream = format!("m-{unit}");
        writer
            .append(
                &[(stream.as_str(), ExpectedVersion::NoStream)],
                &[NewRecord {
                    stream: &stream,
                    event_id: Uuid::from_u64_pair(unit, 0),
                    payload: format!("unit {unit}").as_bytes(),
                }],
                unit as i64,
            )
            .expect("append");
    }
    writer.sync().expect("sync");
    let store = PgProjections::open(uri, log).expect("projections");
    let put: KvWrite = (b"key".to_vec(), Some(log.as_bytes().to_vec()));
    store.apply(vec![put], Some(units)).expect("apply");
    drop(store);
    Box::new(writer).close().expect("close");
}

/// Rows of `log` in each of the four tables (records, projections, checkpoints, heads).
fn rows_of(log: &str) -> [i64; 4] {
    let mut client = support::client();
    let tables = [
        "gongji_log_records",
        "gongji_projections",
        "gongji_projection_checkpoints",
        "gongji_log_heads",
    ];
    tables.map(|table| {
        let sql = format!("SELECT count(*) FROM {table} WHERE log = $1");
        client.query_one(&sql, &[&log]).expect("count").get(0)
    })
}

#[test]
fn a_renamed_log_keeps_its_records_chain_projections_and_checkpoint_under_the_new_name() {
    let uri = support::pg_uri();
    let (from, to) = (support::fresh_log("from"), support::fresh_log("to"));
    filled_log(&uri, &from, 3);
    PgLog::rename_log(&uri, &from, &to).expect("rename");
    assert_eq!(rows_of(&from), [0, 0, 0, 0]);
    assert_eq!(rows_of(&to), [3, 1, 1, 1]);
    let log = PgLog::open(&uri, &to).expect("open the renamed log");
    assert_eq!(log.verify(&mut |_| {}).expect("verify"), 3);
    let store = PgProjections::open(&uri, &to).expect("projections");
    assert_eq!(store.checkpoint().expect("checkpoint"), Some(3));
    assert_eq!(store.get(b"key").expect("get"), Some(from.into_bytes()));
}

#[test]
fn a_rename_onto_an_existing_log_is_refused_and_changes_neither() {
    let uri = support::pg_uri();
    let (from, to) = (support::fresh_log("from"), support::fresh_log("to"));
    filled_log(&uri, &from, 2);
    filled_log(&uri, &to, 1);
    let refused = PgLog::rename_log(&uri, &from, &to).expect_err("a rename over a log");
    assert!(
        matches!(&refused, LogError::InvalidInput(m) if m.contains("already exists")),
        "{refused}"
    );
    assert_eq!(rows_of(&from), [2, 1, 1, 1]);
    assert_eq!(rows_of(&to), [1, 1, 1, 1]);
    let missing = support::fresh_log("missing");
    let refused = PgLog::rename_log(&uri, &missing, &support::fresh_log("to"));
    assert!(
        matches!(refused, Err(LogError::InvalidInput(_))),
        "{refused:?}"
    );
}

#[test]
fn neither_a_rename_nor_a_drop_runs_beside_an_open_writer() {
    let uri = support::pg_uri();
    let (from, to) = (support::fresh_log("from"), support::fresh_log("to"));
    filled_log(&uri, &from, 1);
    let writer = PgLog::open(&uri, &from).expect("open");
    let renamed = PgLog::rename_log(&uri, &from, &to);
    assert!(
        matches!(renamed, Err(LogError::Locked { .. })),
        "{renamed:?}"
    );
    let dropped = PgLog::drop_log(&uri, &from);
    assert!(
        matches!(dropped, Err(LogError::Locked { .. })),
        "{dropped:?}"
    );
    assert_eq!(rows_of(&from), [1, 1, 1, 1]);
    Box::new(writer).close().expect("close");
    PgLog::rename_log(&uri, &from, &to).expect("rename once the writer closed");
}

#[test]
fn a_dropped_log_leaves_no_row_and_another_log_is_untouched() {
    let uri = support::pg_uri();
    let (gone, kept) = (support::fresh_log("gone"), support::fresh_log("kept"));
    filled_log(&uri, &gone, 2);
    filled_log(&uri, &kept, 2);
    assert!(PgLog::drop_log(&uri, &gone).expect("drop"));
    assert_eq!(rows_of(&gone), [0, 0, 0, 0]);
    assert_eq!(rows_of(&kept), [2, 1, 1, 1]);
    assert!(!PgLog::drop_log(&uri, &gone).expect("drop again"));
}
