//! Forged archives, through the real binary. A forger can always recompute an archive's hashes,
//! chain and manifest (`gongji_ledger::archive::reseal` does it), so every archive here has a
//! chain that matches: what must refuse it is the check behind the chain, the same invariant
//! fold `audit verify` runs. Each forged archive is refused by `audit check` (exit 1) and by
//! `audit import` (exit 1, never 101), with a message naming the record and the invariant, and
//! a refused import leaves its target as it found it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use gongji_domain::{Event, Money};
use serde_json::Value;
use support::{examples, text, TestLedger};

/// The sample ledger (three members, claims, payments, a reversal) and its complete archive.
struct Sample {
    ledger: TestLedger,
    lines: Vec<Value>,
}

fn sample() -> Sample {
    let ledger = TestLedger::new();
    let input = examples("sample.jsonl");
    let out = ledger.run(&["apply", input.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let archive = ledger.dir.path().join("all.jsonl");
    let out = ledger.run(&["audit", "export", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = std::fs::read_to_string(&archive)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    Sample { ledger, lines }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sample {
    /// The position of the first record whose event `pick` chooses.
    fn position_of(&self, pick: impl Fn(&Event) -> bool) -> u64 {
        self.lines
            .iter()
            .filter_map(|line| line.get("record"))
            .find(|record| pick(&event_of(record)))
            .map(|record| record["position"].as_u64().unwrap())
            .expect("the sample holds such an event")
    }

    /// The archive with the record at `position` changed by `forge` (its event, and the record
    /// line itself), every hash, the chain and the manifest recomputed.
    fn forged(&self, position: u64, forge: impl Fn(&mut Event, &mut Value)) -> Vec<u8> {
        let mut text = String::new();
        for line in &self.lines {
            let mut line = line.clone();
            if let Some(record) = line.get_mut("record") {
                if record["position"].as_u64() == Some(position) {
                    let mut event = event_of(record);
                    forge(&mut event, record);
                    record["payload"] = Value::from(hex(&event.encode()));
                }
            }
            text.push_str(&line.to_string());
            text.push('\n');
        }
        gongji_ledger::archive::reseal(text.as_bytes())
    }

    /// Forges the first event `pick` chooses with `forge`; asserts that check and import refuse
    /// the archive naming the record's position, the `check` it breaks and `said`.
    fn refuses(
        &self,
        pick: impl Fn(&Event) -> bool,
        check: &str,
        said: &str,
        forge: impl Fn(&mut Event, &mut Value),
    ) {
        let position = self.position_of(pick);
        let forged = self.forged(position, forge);
        let breaks = format!("record at position {position} breaks the {check} check");
        refused(&self.write("forged.jsonl", &forged), &[&breaks, said]);
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.ledger.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

fn event_of(record: &Value) -> Event {
    Event::decode(&unhex(record["payload"].as_str().unwrap())).unwrap()
}

fn check(archive: &Path) -> Output {
    std::process::Command::new(support::gongji_path())
        .args(["audit", "check", archive.to_str().unwrap(), "--lang", "en"])
        .output()
        .unwrap()
}

/// Asserts `audit check` and `audit import` both refuse `archive` with exit 1, saying every
/// piece of `said`, and that the import left no directory behind.
#[track_caller]
fn refused(archive: &Path, said: &[&str]) {
    let out = check(archive);
    assert_eq!(out.status.code(), Some(1), "check: {}", text(&out));
    for piece in said {
        assert!(
            text(&out).contains(piece),
            "check does not say {piece:?}: {}",
            text(&out)
        );
    }
    let target = TestLedger::empty();
    let out = target.run(&["audit", "import", archive.to_str().unwrap(), "--lang", "en"]);
    assert_eq!(out.status.code(), Some(1), "import: {}", text(&out));
    for piece in said {
        assert!(
            text(&out).contains(piece),
            "import does not say {piece:?}: {}",
            text(&out)
        );
    }
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    let left: Vec<_> = std::fs::read_dir(target.dir.path()).unwrap().collect();
    assert!(left.is_empty(), "a refused import left {left:?} behind");
}

fn is_opening(event: &Event) -> bool {
    matches!(event, Event::Enrolled { opening_balance, .. } if *opening_balance > Money::ZERO)
}

fn is_payment(event: &Event) -> bool {
    matches!(event, Event::AccountPaid { .. })
}

fn is_settlement(event: &Event) -> bool {
    matches!(event, Event::ClaimSettled { .. })
}

#[test]
fn the_untouched_archive_resealed_is_the_same_archive_and_imports() {
    let sample = sample();
    let position = sample.position_of(is_opening);
    let same = sample.forged(position, |_, _| {});
    let resealed: Vec<Value> = String::from_utf8(same.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        resealed == sample.lines,
        "reseal changes nothing in a genuine archive"
    );
    let path = sample.write("same.jsonl", &same);
    assert_eq!(check(&path).status.code(), Some(0));
    let target = TestLedger::empty();
    let out = target.run(&["audit", "import", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_negative_opening_balance_is_refused() {
    sample().refuses(
        is_opening,
        "bounds",
        "opening balance is -123456.00",
        set_opening(-12_345_600),
    );
}

#[test]
fn a_negative_account_payment_is_refused() {
    sample().refuses(is_payment, "bounds", "amount is -50000.00", |event, _| {
        if let Event::AccountPaid { amount, .. } = event {
            *amount = Money::from_fen(-5_000_000);
        }
    });
}

#[test]
fn a_negative_fund_payment_is_refused() {
    let fund_paid = |e: &Event| matches!(e, Event::FundClaimPaid { .. });
    sample().refuses(fund_paid, "bounds", "fund_claim_paid", |event, _| {
        if let Event::FundClaimPaid { amount, .. } = event {
            *amount = -*amount;
        }
    });
}

#[test]
fn years_at_the_ends_of_i32_are_refused() {
    let sample = sample();
    for extreme in [i32::MAX, i32::MIN] {
        let said = format!("year {extreme} is outside 1900..=2200");
        sample.refuses(is_payment, "bounds", &said, |event, _| {
            if let Event::AccountPaid { year, .. } = event {
                *year = extreme;
            }
        });
    }
}

#[test]
fn a_payment_moved_onto_another_members_stream_is_refused() {
    let said = "filed on stream member/M002, but it belongs to stream member/M001";
    sample().refuses(is_payment, "stream", said, |_, record| {
        record["stream"] = Value::from("member/M002");
    });
}

#[test]
fn fields_the_chain_does_not_cover_are_refused_in_header_and_record_lines() {
    let sample = sample();
    let position = sample.position_of(is_opening);
    let genuine = sample.forged(position, |_, _| {});
    let text = String::from_utf8(genuine).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[0]["operator_note"] = Value::from("approved");
    let header = lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    refused(
        &sample.write("header.jsonl", header.as_bytes()),
        &["line 1", "unknown field"],
    );

    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[3]["record"]["approved_by"] = Value::from("auditor");
    let record = lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    refused(
        &sample.write("record.jsonl", record.as_bytes()),
        &["line 4", "unknown field"],
    );
}

#[test]
fn a_settlement_part_of_i64_max_is_refused_without_a_crash() {
    sample().refuses(
        is_settlement,
        "bounds",
        "special-drug payment",
        |event, _| {
            if let Event::ClaimSettled { settlement } = event {
                settlement.special_paid = Money::from_fen(i64::MAX);
            }
        },
    );
}

#[test]
fn a_contribution_of_i64_max_is_refused_without_a_crash() {
    let credit = |e: &Event| matches!(e, Event::AccountCredited { .. });
    sample().refuses(
        credit,
        "bounds",
        "account_credited event's amount",
        |event, _| {
            if let Event::AccountCredited { amount, .. } = event {
                *amount = Money::from_fen(i64::MAX);
            }
        },
    );
}

#[test]
fn settlement_basis_figures_at_i64_max_are_refused() {
    sample().refuses(is_settlement, "bounds", "basis", |event, _| {
        if let Event::ClaimSettled { settlement } = event {
            settlement.basis.balance_before = Money::from_fen(i64::MAX);
            settlement.basis.deductible_used_before = Money::from_fen(i64::MAX);
        }
    });
}

#[test]
fn an_opening_balance_near_i64_max_is_refused() {
    sample().refuses(
        is_opening,
        "bounds",
        "opening balance",
        set_opening(i64::MAX - 1_000),
    );
}

#[test]
fn a_claim_counted_in_a_region_the_member_never_belonged_to_is_refused() {
    // Counted there, the claim's costs would add to counters no bound checks (a run of such
    // claims overflowed them into a panic).
    sample().refuses(is_settlement, "existence", "never had", |event, _| {
        if let Event::ClaimSettled { settlement } = event {
            settlement.region = "NOWHERE".into();
        }
    });
}

#[test]
fn a_policy_figure_past_the_amount_bound_is_refused() {
    // Settlements copy a policy's figures into their basis: an unbounded one would make the
    // ledger refuse its own later claims. A stored policy is validated as it decodes.
    sample().refuses(
        |event| matches!(event, Event::PolicyLoaded { .. }),
        "decode",
        "must be from 0 to 1000000000000.00",
        |event, _| {
            if let Event::PolicyLoaded { policy } = event {
                policy.outpatient.annual_max = Some(Money::from_fen(i64::MAX));
            }
        },
    );
}

#[test]
fn an_overdrawn_account_is_refused_naming_the_balance() {
    sample().refuses(is_payment, "balance", "below zero", overdraw);
}

/// The enrolment's opening balance set to `fen`.
fn set_opening(fen: i64) -> impl Fn(&mut Event, &mut Value) {
    move |event, _| {
        if let Event::Enrolled {
            opening_balance, ..
        } = event
        {
            *opening_balance = Money::from_fen(fen);
        }
    }
}

/// An account payment far beyond any balance in the sample.
fn overdraw(event: &mut Event, _: &mut Value) {
    if let Event::AccountPaid { amount, .. } = event {
        *amount = Money::from_fen(99_999_900);
    }
}

#[test]
fn a_stream_name_over_the_logs_limit_is_named() {
    let sample = sample();
    let position = sample.position_of(is_payment);
    let forged = sample.forged(position, |_, record| {
        record["stream"] = Value::from(format!("member/{}", "x".repeat(300)));
    });
    refused(
        &sample.write("long-stream.jsonl", &forged),
        &[
            &format!("position {position}"),
            "stream name of 307 bytes, over the limit of 255",
        ],
    );
}

#[test]
fn a_refused_import_leaves_an_empty_target_directory_empty() {
    let sample = sample();
    // A stream version the log would not give the record: the restored log would differ.
    let position = sample.position_of(is_payment);
    let forged = sample.forged(position, |_, record| {
        record["version"] = Value::from(99);
    });
    let path = sample.write("empty-target.jsonl", &forged);
    let target = TestLedger::empty();
    std::fs::create_dir(target.data()).unwrap();
    let out = target.run(&["audit", "import", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "position {position} breaks the log check: version 99"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(target.data()).unwrap().count(), 0);
    let beside: Vec<_> = std::fs::read_dir(target.dir.path()).unwrap().collect();
    assert_eq!(beside.len(), 1, "only the target is there: {beside:?}");
}

/// The file served to each open of a FIFO in turn: the first reader gets `first`, a second
/// reader `second`. Returns the thread serving it.
fn serve_fifo(fifo: &Path, first: Vec<u8>, second: Vec<u8>) -> std::thread::JoinHandle<()> {
    let status = std::process::Command::new("mkfifo")
        .arg(fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || {
        for (serving, bytes) in [first, second].into_iter().enumerate() {
            use std::io::Write;
            if serving > 0 {
                // A reader still holding the first open would read on into the second serving:
                // the second waits until the first reader has had ample time to finish.
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            // Opening for writing waits for a reader; a reader that stops early is an EPIPE.
            let mut file = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let _ = file.write_all(&bytes);
        }
    })
}

#[test]
fn import_restores_exactly_the_archive_it_checked() {
    let sample = sample();
    let good = std::fs::read(sample.ledger.dir.path().join("all.jsonl")).unwrap();
    let position = sample.position_of(is_payment);
    let bad = sample.forged(position, overdraw);
    let fifo = sample.ledger.dir.path().join("archive.fifo");
    let server = serve_fifo(&fifo, good.clone(), bad.clone());
    let target = TestLedger::empty();
    let out = target.run(&["audit", "import", fifo.to_str().unwrap(), "--json"]);
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the good archive imports: {}",
        text(&out)
    );
    // The importer opened the archive once: the second serving is still waiting for a reader.
    let second = std::fs::read(&fifo).unwrap();
    server.join().unwrap();
    assert_eq!(
        second, bad,
        "the second serving was the forged archive, never read by import"
    );
    let json = |out: Output| -> Value { serde_json::from_slice(&out.stdout).unwrap() };
    let restored = json(target.run(&["audit", "verify", "--json"]));
    let original = json(sample.ledger.run(&["audit", "verify", "--json"]));
    assert_eq!(restored["digest"], original["digest"]);
    assert_eq!(restored["failure"], Value::Null);
}

/// Runs `audit check` with its address space capped at `kib`: a reading that held a long line
/// whole would fail to allocate.
fn check_within(archive: &Path, kib: u64) -> Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {kib} && exec \"$0\" audit check \"$1\" --lang en"
        ))
        .arg(support::gongji_path())
        .arg(archive)
        .output()
        .unwrap()
}

#[test]
fn a_gibibyte_after_the_manifest_or_in_a_line_costs_bounded_memory() {
    let sample = sample();
    let genuine = std::fs::read(sample.ledger.dir.path().join("all.jsonl")).unwrap();
    let lines = genuine.iter().filter(|&&b| b == b'\n').count();
    let gib = 1u64 << 30;
    // A sparse gibibyte of zeros after the manifest: one more line, read whole before.
    let tail = sample.write("tail.jsonl", &genuine);
    let file = std::fs::OpenOptions::new().write(true).open(&tail).unwrap();
    file.set_len(genuine.len() as u64 + gib).unwrap();
    let out = check_within(&tail, 512 * 1024);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("line {}", lines + 1))
            && text(&out).contains("follows the manifest"),
        "{}",
        text(&out)
    );
    // A gibibyte with no newline in place of the manifest.
    let cut = genuine[..genuine.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap();
    let long = sample.write("long-line.jsonl", &genuine[..=cut]);
    let file = std::fs::OpenOptions::new().write(true).open(&long).unwrap();
    file.set_len(cut as u64 + 1 + gib).unwrap();
    let out = check_within(&long, 512 * 1024);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("line {lines}")),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("longer than an archive line"),
        "{}",
        text(&out)
    );
}
