//! A read-only ledger whose fold stopped partway (the log extended to the writer's durable
//! end, the projections part of the way there) answers a member's reads from the member's own
//! stream and the region's policy stream: these answers must be the ones its projections give
//! once folded to the same end, for every member, after every durable end.
//! If an event on another stream changed a member's state, these would differ.

use gongji_ledger::{AsOf, Ledger, LogOptions};

const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");
const SAMPLE: &str = include_str!("../../../examples/sample.jsonl");

/// Every answer about `member` that may come from the log, as text.
fn member_answers(ledger: &Ledger, member: &str) -> String {
    let now = AsOf::NOW;
    let mut out = format!("{:?}\n", ledger.account(member).expect("account"));
    for region in [None, Some("500000"), Some("510100")] {
        let year = ledger.year_answer(member, 2024, region, &now);
        out += &format!("{:?}\n", year.expect("year"));
    }
    out += &format!("{:?}\n", ledger.history(member).expect("history"));
    out += &format!("{:?}\n", ledger.inheritance(member, &now).expect("inherit"));
    out += &format!("{:?}\n", ledger.transfers(member, &now).expect("transfers"));
    out
}

/// Applies `lines`, `per_unit` at a time made durable, and after each durable end compares
/// every member's answers from a reader whose log was extended and whose fold stopped partway
/// with a reader folded to the same end.
fn members_answer_from_the_log_as_from_the_projections(
    lines: &[String],
    per_unit: usize,
    members: &[String],
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut writer = Ledger::open(tmp.path()).expect("open");
    let mut behind = Ledger::open_read_only(tmp.path(), LogOptions::default()).expect("reader");
    let mut folded = Ledger::open_read_only(tmp.path(), LogOptions::default()).expect("reader");
    let mut partway_seen = 0;
    let mut previous_end = writer.log().durable_end();
    for (round, unit) in lines.chunks(per_unit).enumerate() {
        for line in unit {
            writer.apply_line(line, 0).expect("a line decided");
        }
        // Durable, the projections stored only now and then (as the server's writer).
        match round % 4 {
            3 => writer.commit().expect("commit"),
            _ => writer.commit_deferred().expect("commit"),
        };
        let end = writer.log().durable_end();
        if end == previous_end {
            continue; // the lines were refused: nothing new to answer from
        }
        previous_end = end;
        assert_eq!(behind.extend_read_only().expect("extend"), end);
        // A fold started and stopped partway (none of it folded, or three records of it).
        // (A fold under way from the round before ends first, at its own end.)
        let step = loop {
            let step = behind
                .fold_read_only(3 * (round as u64 % 2))
                .expect("a step");
            if step.folded_end.is_none_or(|folded| folded == end) {
                break step;
            }
        };
        if step.folded_end.is_none() {
            partway_seen += 1;
            assert!(behind.fund("500000").is_err(), "partway: no fund answer");
        }
        let reached = folded.refresh_read_only().expect("refresh");
        assert_eq!((reached.durable_end, reached.folded_end), (end, Some(end)));
        for member in members {
            assert_eq!(
                member_answers(&behind, member),
                member_answers(&folded, member),
                "member {member} after round {round}"
            );
        }
    }
    assert!(
        partway_seen > 0,
        "some answers were given partway through a fold"
    );
    let last = behind.refresh_read_only().expect("refresh");
    assert_eq!(last.folded_end, Some(last.durable_end));
    for member in members {
        assert_eq!(
            member_answers(&behind, member),
            member_answers(&folded, member)
        );
    }
    writer.close().expect("close");
}

fn policy_line() -> String {
    format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#)
}

#[test]
fn the_sample_members_answer_from_their_streams_as_from_the_projections() {
    let mut lines = vec![policy_line()];
    lines.extend(
        SAMPLE
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string),
    );
    let members: Vec<String> = (1..=5).map(|i| format!("M00{i}")).collect();
    members_answer_from_the_log_as_from_the_projections(&lines, 1, &members);
}

#[test]
fn a_generated_year_answers_from_each_members_stream_as_from_the_projections() {
    let config = gongji_tools::gen::Config {
        members: 200,
        seed: 15,
        ..Default::default()
    };
    let mut out = Vec::new();
    gongji_tools::gen::generate(&config, &mut out).expect("generated");
    let mut lines = vec![policy_line()];
    lines.extend(
        String::from_utf8(out)
            .expect("UTF-8")
            .lines()
            .map(str::to_string),
    );
    let members: Vec<String> = (0..config.members).map(|i| format!("M{i:07}")).collect();
    members_answer_from_the_log_as_from_the_projections(&lines, 97, &members);
}
