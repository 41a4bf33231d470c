//! `Ledger::apply_stream` called as a service would call it: lines from an in-memory reader,
//! outcomes to a sink. Outcomes arrive in input order, each group only once its events are
//! durable, and no later group is made durable before the sink has taken the one before.

use std::io::{self, Cursor, Read};
use std::sync::Arc;

use gongji_ledger::{
    DurableGroup, Ledger, LedgerError, LineOutcome, ProjectionBackend, StreamError, StreamOptions,
};
use gongji_log::{
    Appended, DurableLog, ExpectedVersion, Link, LinkedRecords, Log, LogError, NewRecord, Record,
    Records, SyncProgress, SyncTicket,
};
use serde_json::{json, Value};

const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");

/// Lines that apply, lines the rules reject, and lines that are not commands.
fn input_lines() -> Vec<String> {
    let policy: Value = serde_json::from_str(POLICY).unwrap();
    let mut lines = vec![json!({"cmd":"load_policy","policy":policy}).to_string()];
    for i in 0..6 {
        lines.push(json!({"cmd":"enroll","member":format!("M{i}"),"region":"500000","born":"1980-05-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"10.00"}).to_string());
    }
    lines.push(json!({"cmd":"enroll","member":"M0","region":"500000","born":"1980-05-01","status":"active","scheme":"employer","date":"2024-01-01"}).to_string());
    lines.push("not a command".to_string());
    for i in 0..6 {
        lines.push(
            json!({"cmd":"contribute","member":format!("M{i}"),"month":"2024-02","base":"8000.00"})
                .to_string(),
        );
    }
    lines.push(
        json!({"cmd":"contribute","member":"nobody","month":"2024-02","base":"8000.00"})
            .to_string(),
    );
    lines
}

fn recorded_at_zero() -> i64 {
    0
}

fn options(batch_lines: usize) -> StreamOptions {
    StreamOptions {
        batch_lines,
        recorded_at_micros: recorded_at_zero,
        store_interval: None,
    }
}

/// Each line committed on its own: its outcome, and the log's durable end after it.
fn reference(lines: &[String]) -> Vec<(LineOutcome, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let mut expected = Vec::new();
    for line in lines {
        ledger.apply_line(line, 0).unwrap();
        let outcome = ledger.commit().unwrap().remove(0);
        expected.push((outcome, ledger.log().durable_end()));
    }
    expected
}

/// What a sink saw of one group: its lines and outcomes, and the durable end it was given.
type Delivered = (Vec<(usize, LineOutcome)>, u64);

/// A sink that keeps what it is given.
fn recording(groups: &mut Vec<Delivered>) -> impl FnMut(&DurableGroup) -> Result<(), String> + '_ {
    |group: &DurableGroup| {
        groups.push((group.lines().to_vec(), group.durable_end()));
        Ok(())
    }
}

fn bytes_of(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

/// Every group delivered covers lines in order with the reference's outcomes, and its durable
/// end is exactly the reference's after its last line: all its events durable, none of a later
/// group's.
fn check_groups(groups: &[Delivered], expected: &[(LineOutcome, u64)]) {
    let mut next_line = 1;
    for (lines, durable_end) in groups {
        for (number, outcome) in lines {
            assert_eq!(*number, next_line, "lines arrive in input order");
            assert_eq!(outcome, &expected[number - 1].0, "line {number}");
            next_line += 1;
        }
        let last = lines.last().expect("no empty group").0;
        assert_eq!(
            *durable_end,
            expected[last - 1].1,
            "group ending at line {last}"
        );
    }
}

#[test]
fn outcomes_arrive_in_input_order_each_group_once_durable() {
    let lines = input_lines();
    let expected = reference(&lines);
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let mut groups: Vec<Delivered> = Vec::new();
    let mut progress = Vec::new();
    let summary = ledger
        .apply_stream(
            Cursor::new(bytes_of(&lines)),
            &options(3),
            &mut recording(&mut groups),
            &mut |read| progress.push(read),
        )
        .unwrap();
    assert_eq!(summary.lines, lines.len());
    assert_eq!(summary.read_bytes, bytes_of(&lines).len() as u64);
    assert_eq!(
        groups.len(),
        lines.len().div_ceil(3),
        "groups of batch_lines"
    );
    check_groups(&groups, &expected);
    assert!(progress.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(progress.last(), Some(&summary.read_bytes));
    ledger.close().unwrap();
}

/// A reader that hands out its bytes and then fails.
struct FailingAfter(Cursor<Vec<u8>>);

impl Read for FailingAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(io::Error::other("the disk went away")),
            n => Ok(n),
        }
    }
}

#[test]
fn unreadable_input_ends_the_stream_after_every_line_read_is_delivered() {
    let lines = input_lines();
    let expected = reference(&lines);
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let mut groups: Vec<Delivered> = Vec::new();
    let input = FailingAfter(Cursor::new(bytes_of(&lines[..10])));
    let error = ledger
        .apply_stream(input, &options(4), &mut recording(&mut groups), &mut |_| {})
        .unwrap_err();
    match error {
        StreamError::Unreadable { after_line, error } => {
            assert_eq!(after_line, 10);
            assert_eq!(error.to_string(), "the disk went away");
        }
        other => panic!("expected Unreadable, got {other}"),
    }
    check_groups(&groups, &expected);
    assert_eq!(groups.iter().map(|(l, _)| l.len()).sum::<usize>(), 10);
    ledger.close().unwrap();
}

#[test]
fn a_failing_sink_stops_the_stream_with_no_later_group_durable() {
    let lines = input_lines();
    let expected = reference(&lines);
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let mut groups: Vec<Delivered> = Vec::new();
    let mut sink = |group: &DurableGroup| -> Result<(), String> {
        groups.push((group.lines().to_vec(), group.durable_end()));
        if groups.len() == 2 {
            return Err("the client hung up".to_string());
        }
        Ok(())
    };
    let error = ledger
        .apply_stream(
            Cursor::new(bytes_of(&lines)),
            &options(2),
            &mut sink,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(&error, StreamError::Sink(e) if e == "the client hung up"));
    check_groups(&groups, &expected);
    // The refused group is durable (it was handed over as such); nothing after it is, though
    // the next group may have been decided and staged: the ledger refuses to commit or close,
    // and those lines go with it.
    let refused = ledger.close().unwrap_err();
    assert!(matches!(refused, LedgerError::Stopped(_)), "{refused}");
    let reopened = Ledger::open(dir.path()).unwrap();
    assert_eq!(reopened.log().durable_end(), expected[3].1);
}

/// A sync that never becomes durable: the disk went away.
struct DiskGone;

impl SyncProgress for DiskGone {
    fn wait_for(&self, _seq: u64) -> Result<(), LogError> {
        Err(LogError::Io(io::Error::other("the disk went away")))
    }
    fn poll(&self, seq: u64) -> Option<Result<(), LogError>> {
        Some(self.wait_for(seq))
    }
}

/// The file log through the `DurableLog` seam, whose syncs fail from the `ok_syncs + 1`th on:
/// their tickets report an error and nothing they carried is durable.
struct FailingSyncs {
    inner: Log,
    ok_syncs: usize,
}

impl DurableLog for FailingSyncs {
    fn append(
        &mut self,
        expected: &[(&str, ExpectedVersion)],
        records: &[NewRecord<'_>],
        recorded_at_micros: i64,
    ) -> Result<Appended, LogError> {
        self.inner.append(expected, records, recorded_at_micros)
    }
    fn sync_start(&mut self) -> Result<SyncTicket, LogError> {
        if self.ok_syncs == 0 {
            let end = self.inner.end_position();
            return Ok(SyncTicket::new(Arc::new(DiskGone), 0, end));
        }
        self.ok_syncs -= 1;
        self.inner.sync_start()
    }
    fn sync(&mut self) -> Result<u64, LogError> {
        self.sync_start()?.wait()
    }
    fn settle_syncs(&mut self) -> Result<u64, LogError> {
        self.inner.settle_syncs()
    }
    fn end_position(&self) -> u64 {
        self.inner.end_position()
    }
    fn durable_end(&self) -> u64 {
        self.inner.durable_end()
    }
    fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        self.inner.stream_version(stream)
    }
    fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        self.inner.read_stream(stream)
    }
    fn read_range(&self, from: u64, to: u64) -> Result<Records<'_>, LogError> {
        DurableLog::read_range(&self.inner, from, to)
    }
    fn read_range_links_deferred(&self, from: u64, to: u64) -> Result<LinkedRecords<'_>, LogError> {
        DurableLog::read_range_links_deferred(&self.inner, from, to)
    }
    fn check_link(&self, record: &Record, link: &Link) -> Result<(), LogError> {
        self.inner.check_link(record, link)
    }
    fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, LogError> {
        self.inner.verify(progress)
    }
    fn close(self: Box<Self>) -> Result<(), LogError> {
        self.inner.close()
    }
}

#[test]
fn a_group_that_cannot_be_made_durable_is_never_delivered_and_stops_the_ledger() {
    let lines = input_lines();
    let expected = reference(&lines);
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let kv = log.kv().clone();
    let failing = FailingSyncs {
        inner: log,
        ok_syncs: 2,
    };
    let mut ledger = Ledger::with_log(Box::new(failing), kv, ProjectionBackend::Runs).unwrap();
    let mut groups = Vec::new();
    let error = ledger
        .apply_stream(
            Cursor::new(bytes_of(&lines)),
            &options(2),
            &mut recording(&mut groups),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(
        matches!(error, StreamError::NotDurable { first_line: 5, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("lines from 5 on were not applied"),
        "{error}"
    );
    // The two groups synced before the failure were delivered; nothing of the third was.
    assert_eq!(groups.len(), 2);
    check_groups(&groups, &expected);
    let refused = ledger.apply_line(&lines[0], 0).unwrap_err();
    assert!(matches!(refused, LedgerError::Stopped(_)), "{refused}");
    let refused = ledger.close().unwrap_err();
    assert!(matches!(refused, LedgerError::Stopped(_)), "{refused}");
    // Reopened, the ledger holds exactly what was delivered.
    let reopened = Ledger::open(dir.path()).unwrap();
    assert_eq!(reopened.log().durable_end(), expected[3].1);
}

/// Members credited month after month, every month of a member credited twice (the second a
/// `month_already_credited` refusal only if the member's state is whole), and a relative bound
/// and unbound every month (bound again only if the unbinding, a deletion in the store, is
/// seen while its write runs).
fn busy_year(members: usize) -> Vec<String> {
    let policy: Value = serde_json::from_str(POLICY).unwrap();
    let mut lines = vec![json!({"cmd":"load_policy","policy":policy}).to_string()];
    for i in 0..members {
        lines.push(json!({"cmd":"enroll","member":format!("M{i}"),"region":"500000","born":"1980-05-01","status":"active","scheme":"employer","date":"2024-01-01"}).to_string());
    }
    for month in 1..=12 {
        for again in [false, true] {
            for i in 0..members {
                let base = if again { "9000.00" } else { "8000.00" };
                lines.push(json!({"cmd":"contribute","member":format!("M{i}"),"month":format!("2024-{month:02}"),"base":base}).to_string());
            }
        }
        for i in 0..members {
            lines.push(json!({"cmd":"bind_family","holder":format!("M{i}"),"relative":format!("M{i}-R"),"relation":"spouse","date":format!("2024-{month:02}-02")}).to_string());
            lines.push(json!({"cmd":"unbind_family","holder":format!("M{i}"),"relative":format!("M{i}-R"),"date":format!("2024-{month:02}-20")}).to_string());
        }
    }
    lines
}

#[test]
fn a_timed_store_with_entities_encoded_ahead_keeps_every_outcome_and_projection() {
    let lines = busy_year(12);
    let expected = reference(&lines);
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    // Every store evicts every member it can: a member encoded ahead and evicted before its
    // write landed would be read back stale, and its second credit of a month accepted.
    ledger.set_cache_limits(1_000_000, 2);
    let timed = StreamOptions {
        batch_lines: 3,
        recorded_at_micros: recorded_at_zero,
        store_interval: Some(std::time::Duration::from_millis(2)),
    };
    let mut groups: Vec<Delivered> = Vec::new();
    ledger
        .apply_stream(
            Cursor::new(bytes_of(&lines)),
            &timed,
            &mut recording(&mut groups),
            &mut |_| {},
        )
        .unwrap();
    check_groups(&groups, &expected);
    ledger.close().unwrap();
    let reopened = Ledger::open(dir.path()).unwrap();
    let reference_dir = tempfile::tempdir().unwrap();
    let mut reference_ledger = Ledger::open(reference_dir.path()).unwrap();
    for line in &lines {
        reference_ledger.apply_line(line, 0).unwrap();
    }
    reference_ledger.commit().unwrap();
    for i in 0..12 {
        let member = format!("M{i}");
        assert_eq!(
            reopened.account(&member).unwrap(),
            reference_ledger.account(&member).unwrap(),
            "{member}, as stored"
        );
    }
    assert_eq!(
        reopened.digest().unwrap(),
        reference_ledger.digest().unwrap()
    );
}
