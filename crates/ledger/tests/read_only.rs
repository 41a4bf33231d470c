//! A ledger opened read-only beside its writer (in this process here; `tests/concurrent_readers.rs`
//! has real processes): it answers from the durable state, folds what the stored projections
//! lack in memory, and refuses every command.

use gongji_ledger::{Ledger, LedgerError, LogOptions};

const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");

fn enroll(member: &str, balance: &str) -> String {
    format!(
        r#"{{"cmd":"enroll","member":"{member}","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"{balance}"}}"#
    )
}

fn balance(ledger: &Ledger, member: &str) -> Option<String> {
    ledger
        .account(member)
        .expect("account")
        .map(|a| a.balance.to_string())
}

#[test]
fn a_read_only_ledger_answers_the_durable_state_beside_its_writer_and_takes_no_command() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut writer = Ledger::open(tmp.path()).expect("open");
    writer
        .apply_line(&format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#), 0)
        .expect("policy");
    writer.apply_line(&enroll("M1", "100.00"), 0).expect("M1");
    // Durable, but its projections not stored: a reader folds them in memory.
    writer.commit_deferred().expect("commit");
    writer.apply_line(&enroll("M2", "200.00"), 0).expect("M2");

    let mut reader = Ledger::open_read_only(tmp.path(), LogOptions::default()).expect("reader");
    assert_eq!(balance(&reader, "M1").as_deref(), Some("100.00"));
    assert_eq!(balance(&reader, "M2"), None, "M2 is staged, not durable");
    assert!(matches!(
        reader.apply_line(&enroll("M3", "1.00"), 0),
        Err(LedgerError::ReadOnly)
    ));
    assert!(matches!(reader.commit(), Err(LedgerError::ReadOnly)));

    writer.commit().expect("commit");
    assert_eq!(
        balance(&reader, "M2"),
        None,
        "a reader keeps the state it opened"
    );
    let later = Ledger::open_read_only(tmp.path(), LogOptions::default()).expect("reader");
    assert_eq!(balance(&later, "M2").as_deref(), Some("200.00"));
    writer.close().expect("close");
    later.close().expect("a reader closes without writing");
}

fn contribute(member: &str, month: u32) -> String {
    format!(
        r#"{{"cmd":"contribute","member":"{member}","month":"2024-{month:02}","base":"1000.00"}}"#
    )
}

/// Every member's balance and history length, as `ledger` answers them.
fn answers(ledger: &Ledger, members: &[String]) -> Vec<(Option<String>, usize)> {
    members
        .iter()
        .map(|m| {
            let history = ledger.history(m).expect("history").len();
            (balance(ledger, m), history)
        })
        .collect()
}

#[test]
fn a_refreshed_reader_follows_its_writer_to_each_durable_end_and_never_past_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Small segments: the writer rolls to new segments the reader has not listed yet.
    let options = LogOptions {
        segment_bytes_max: 4096,
        ..LogOptions::default()
    };
    let mut writer = Ledger::open_with(tmp.path(), options.clone()).expect("open");
    writer
        .apply_line(&format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#), 0)
        .expect("policy");
    writer.commit().expect("commit");
    let mut reader = Ledger::open_read_only(tmp.path(), options.clone()).expect("reader");
    let members: Vec<String> = (0..40).map(|i| format!("M{i:03}")).collect();
    for round in 0..6u32 {
        for (i, member) in members.iter().enumerate() {
            let line = if round == 0 {
                enroll(member, &format!("{i}.00"))
            } else {
                contribute(member, round)
            };
            writer.apply_line(&line, 0).expect("line");
        }
        // Durable, projections not stored (as the server's writer between its stores).
        writer.commit_deferred().expect("commit");
        let durable = writer.log().durable_end();
        let staged = format!("X{round}");
        writer
            .apply_line(&enroll(&staged, "1.00"), 0)
            .expect("staged");
        let refreshed = reader.refresh_read_only().expect("refresh");
        assert_eq!(refreshed.durable_end, durable, "round {round}");
        let fresh = Ledger::open_read_only(tmp.path(), options.clone()).expect("fresh");
        assert_eq!(fresh.log().durable_end(), durable);
        assert_eq!(
            answers(&reader, &members),
            answers(&fresh, &members),
            "round {round}: the refreshed reader answers as a reader opened now"
        );
        assert_eq!(balance(&reader, &staged), None, "staged, not durable");
        writer.commit().expect("commit the staged line");
        let again = reader.refresh_read_only().expect("refresh");
        assert!(again.durable_end > durable);
        assert!(again.folded_in_memory > refreshed.folded_in_memory);
        assert_eq!(balance(&reader, &staged).as_deref(), Some("1.00"));
    }
    assert!(
        reader.refresh_read_only().expect("refresh").index_in_memory > 0,
        "the records after the index runs are indexed in memory"
    );
    writer.close().expect("close");
}

const SAMPLE: &str = include_str!("../../../examples/sample.jsonl");

/// Every answer a read-only ledger gives (members, years, inheritance, transfers, the fund,
/// policies, explanations, totals and the projections' digest), as text.
fn every_answer(ledger: &Ledger) -> String {
    let now = gongji_ledger::AsOf::NOW;
    let mut out = String::new();
    for member in ["M001", "M002", "M003", "M004", "M005", "M999"] {
        out += &format!("{:?}\n", ledger.account(member).expect("account"));
        out += &format!("{:?}\n", ledger.year(member, 2024).expect("year"));
        out += &format!("{:?}\n", ledger.inheritance(member, &now).expect("inherit"));
        out += &format!("{:?}\n", ledger.transfers(member, &now).expect("transfers"));
    }
    for claim in ["C001", "C002", "C003", "P001", "C999"] {
        out += &format!("{:?}\n", ledger.explain(claim).expect("explain"));
    }
    out += &format!("{:?}\n", ledger.fund("500000").expect("fund"));
    out += &format!("{:?}\n", ledger.policies("500000").expect("policies"));
    out += &format!("{:?}\n", ledger.policy_regions().expect("regions"));
    out += &format!("{:?}\n", ledger.totals().expect("totals"));
    out += &format!("{}\n", ledger.digest().expect("digest"));
    out
}

#[test]
fn a_reader_refreshed_line_by_line_answers_every_query_as_its_writer_does_after_storing() {
    // The reader folds each line in memory and keeps what it folded decoded in its cache, not
    // stored (queries read it there; scans see it stored first); the writer stores its
    // projections after every line. Every answer, line after line, must be the same.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut writer = Ledger::open(tmp.path()).expect("open");
    // Opened before the policy: the reader holds it in its cache, never stored.
    let mut reader = Ledger::open_read_only(tmp.path(), LogOptions::default()).expect("reader");
    assert_eq!(every_answer(&reader), every_answer(&writer), "at open");
    writer
        .apply_line(&format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#), 0)
        .expect("policy");
    writer.commit().expect("commit");
    reader.refresh_read_only().expect("refresh");
    assert_eq!(
        every_answer(&reader),
        every_answer(&writer),
        "after the policy"
    );
    for (n, line) in SAMPLE.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        writer.apply_line(line, 0).expect("a line decided");
        writer.commit().expect("commit");
        reader.refresh_read_only().expect("refresh");
        assert_eq!(
            every_answer(&reader),
            every_answer(&writer),
            "after line {}: {line}",
            n + 1
        );
    }
    writer.close().expect("close");
}

/// A writer and a reader of one directory sharing what the writer makes durable (as the
/// server's writer and read view do): the index entries and the events.
fn sharing_pair(dir: &std::path::Path, events_max: usize) -> (Ledger, Ledger) {
    let index = std::sync::Arc::new(gongji_log::Handover::new());
    let events = std::sync::Arc::new(gongji_ledger::EventHandover::with_max(events_max));
    let mut writer = Ledger::open(dir).expect("open");
    writer.share_handover(index.clone());
    writer.share_events(events.clone());
    let mut reader = Ledger::open_read_only(dir, LogOptions::default()).expect("reader");
    reader.share_handover(index);
    reader.share_events(events);
    (writer, reader)
}

#[test]
fn a_reader_folding_its_writers_handed_events_answers_every_query_as_its_writer_does() {
    // Every record after the reader's open is folded from the events the writer handed over
    // (none read from the log), and every answer, line after line, is the writer's.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut writer, mut reader) = sharing_pair(tmp.path(), gongji_ledger::HANDOVER_EVENTS_MAX);
    writer
        .apply_line(&format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#), 0)
        .expect("policy");
    writer.commit().expect("commit");
    reader.refresh_read_only().expect("refresh");
    for (n, line) in SAMPLE.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        writer.apply_line(line, 0).expect("a line decided");
        // Both ways a writer commits hand its events over once durable.
        if n % 2 == 0 {
            writer.commit().expect("commit");
        } else {
            writer.commit_deferred().expect("commit");
        }
        reader.refresh_read_only().expect("refresh");
        // The reference: a reader that reads the log (the writer answers its stored state
        // only after a `commit`).
        let fresh = Ledger::open_read_only(tmp.path(), LogOptions::default()).expect("reader");
        assert_eq!(
            every_answer(&reader),
            every_answer(&fresh),
            "after line {}: {line}",
            n + 1
        );
    }
    writer.commit().expect("commit");
    assert_eq!(every_answer(&reader), every_answer(&writer));
    let end = writer.log().durable_end();
    assert!(end > 20, "the sample makes records");
    assert_eq!(
        reader.events_handed_over(),
        end,
        "every record folded from the handover"
    );
    writer.close().expect("close");
}

#[test]
fn a_reader_behind_what_the_handover_keeps_reads_the_log_for_the_rest() {
    // A handover keeping a few events, a reader refreshed every few lines and folding a few
    // records a step: parts of its folds come from the log, parts from the handover, and its
    // answers are the writer's. Then a stream: its groups are handed over before the sink
    // hears of them.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut writer, mut reader) = sharing_pair(tmp.path(), 6);
    writer
        .apply_line(&format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#), 0)
        .expect("policy");
    writer.commit().expect("commit");
    for (n, line) in SAMPLE.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        writer.apply_line(line, 0).expect("a line decided");
        writer.commit().expect("commit");
        if n % 5 == 4 {
            reader.extend_read_only().expect("extend");
            while reader.fold_read_only(3).expect("fold").fold_remaining > 0 {}
            assert_eq!(
                every_answer(&reader),
                every_answer(&writer),
                "line {}",
                n + 1
            );
        }
    }
    reader.refresh_read_only().expect("refresh");
    assert_eq!(every_answer(&reader), every_answer(&writer));
    let end = writer.log().durable_end();
    let handed = reader.events_handed_over();
    assert!(
        0 < handed && handed < end,
        "both the handover and the log were folded from ({handed} of {end})"
    );

    // A stream whose sink refreshes the reader: each group is folded from the handover.
    let more: Vec<String> = (1..=12).map(|month| contribute("M001", month)).collect();
    let input: Vec<u8> = more
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let before = reader.events_handed_over();
    let start = writer.log().durable_end();
    let mut sink = |_: &gongji_ledger::DurableGroup| -> Result<(), String> {
        reader
            .refresh_read_only()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let options = gongji_ledger::StreamOptions {
        batch_lines: 1,
        ..gongji_ledger::StreamOptions::default()
    };
    writer
        .apply_stream(
            std::io::Cursor::new(input),
            &options,
            &mut sink,
            &mut |_| {},
        )
        .expect("stream");
    writer.commit().expect("commit");
    let end = writer.log().durable_end();
    assert!(end > start, "the stream made records");
    assert_eq!(
        reader.events_handed_over() - before,
        end - start,
        "handed {before} before the stream, from {start} to {end}"
    );
    assert_eq!(
        every_answer(&reader),
        every_answer(&writer),
        "after the stream"
    );
    writer.close().expect("close");
}
