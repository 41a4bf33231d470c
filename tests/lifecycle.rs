//! An account from enrolment to inheritance, through the real binary: credits, claims, family
//! payments, two rollovers, a transfer, death and inheritance, with every figure checked, every
//! refusal's code, as-of answers in both times, and replay reproducing them all.

mod support;

use serde_json::{json, Value};
use support::{text, TestLedger, CHONGQING_POLICY};

fn chongqing() -> Value {
    serde_json::from_str(&std::fs::read_to_string(CHONGQING_POLICY).unwrap()).unwrap()
}

/// Chongqing from 2025 with the 2024 widening of family sharing and at most one relative bound.
fn chongqing_2025() -> Value {
    let mut policy = chongqing();
    policy["version"] = json!("500000/2025-01-01");
    policy["effective"] = json!("2025-01-01");
    policy["family"] = json!({"relations": ["spouse", "parent", "child", "sibling", "grandparent", "grandchild"], "relatives_max": 1});
    policy
}

/// A second region, with Chongqing's figures, where holders may not set limits for relatives.
fn region_110000() -> Value {
    let mut policy = chongqing();
    policy["region"] = json!("110000");
    policy["version"] = json!("110000/2025-01-01");
    policy["effective"] = json!("2025-01-01");
    policy["family"] =
        json!({"relations": ["spouse", "parent", "child"], "yearly_limit_allowed": false});
    policy
}

fn lines(values: &[Value]) -> Vec<String> {
    values.iter().map(Value::to_string).collect()
}

fn pay(id: &str, beneficiary: &str, date: &str, amount: &str) -> Value {
    json!({"cmd":"account_pay","id":id,"holder":"A","beneficiary":beneficiary,"date":date,"purpose":"pharmacy","amount":amount})
}

fn claim(id: &str, date: &str, eligible: &str) -> Value {
    json!({"cmd":"claim","id":id,"member":"A","date":date,"level":2,"channel":"institution","eligible":eligible,"institution":"H1","visit":id})
}

fn contribute(month: &str, base: &str) -> Value {
    json!({"cmd":"contribute","member":"A","month":month,"base":base})
}

/// Runs `lines` and checks each line's outcome: `Ok(fields)` to match in the result, or
/// `Err(code)`.
fn expect_lines(ledger: &TestLedger, steps: &[(Value, Result<Value, &str>)]) {
    let input: Vec<Value> = steps.iter().map(|(line, _)| line.clone()).collect();
    let (_, results) = ledger.apply(&lines(&input));
    assert_eq!(results.len(), steps.len());
    for ((line, expected), result) in steps.iter().zip(&results) {
        match expected {
            Ok(fields) => {
                assert_eq!(result["ok"], true, "{line} -> {result}");
                for (key, value) in fields.as_object().unwrap() {
                    assert_eq!(&result["result"][key], value, "{key} of {line} -> {result}");
                }
            }
            Err(code) => {
                assert_eq!(result["error"]["code"], *code, "{line} -> {result}");
            }
        }
    }
}

fn now_rfc3339() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap()
        .to_rfc3339()
}

#[test]
fn one_member_from_enrolment_to_inheritance() {
    let ledger = TestLedger::new();
    expect_lines(
        &ledger,
        &[
            (
                json!({"cmd":"enroll","member":"A","region":"500000","born":"1980-03-10","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"500.00"}),
                Ok(json!({"balance":"500.00"})),
            ),
            (
                contribute("2024-01", "6000.00"),
                Ok(json!({"credited":"120.00","pooled":"510.00","balance":"620.00"})),
            ),
            (
                json!({"cmd":"bind_family","holder":"A","relative":"S","relation":"spouse","date":"2024-01-15","yearly_limit":"100.00"}),
                Ok(json!({})),
            ),
            (
                pay("P1", "S", "2024-02-01", "80.00"),
                Ok(json!({"balance":"540.00"})),
            ),
            (
                pay("P2", "S", "2024-02-02", "30.00"),
                Err("relative_limit_exceeded"),
            ),
            (
                json!({"cmd":"bind_family","holder":"A","relative":"B","relation":"sibling","date":"2024-02-01"}),
                Err("relation_not_allowed"),
            ),
            // 300 eligible: 200 deductible, 100 x 60% = 60 pooled, 240 from the account.
            (
                claim("K1", "2024-03-01", "300.00"),
                Ok(
                    json!({"deductible_applied":"200.00","ordinary_paid":"60.00","account_paid":"240.00","balance":"300.00"}),
                ),
            ),
            (
                json!({"cmd":"unbind_family","holder":"A","relative":"S","date":"2024-06-01"}),
                Ok(json!({})),
            ),
            (
                pay("P3", "S", "2024-07-01", "10.00"),
                Err("relative_not_bound"),
            ),
            // Dated while S was bound, recorded after the unbinding: allowed, and within the limit.
            (
                pay("P4", "S", "2024-05-01", "20.00"),
                Ok(json!({"balance":"280.00"})),
            ),
            (
                json!({"cmd":"rollover","region":"500000","year":2024}),
                Ok(json!({"accounts_closed":1,"closing_total":"280.00"})),
            ),
            (
                json!({"cmd":"rollover","region":"500000","year":2024}),
                Ok(json!({"accounts_closed":0,"closing_total":"0.00"})),
            ),
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let after_2024 = now_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(20));
    expect_lines(
        &ledger,
        &[
            (
                json!({"cmd":"load_policy","policy":chongqing_2025()}),
                Ok(json!({})),
            ),
            (
                contribute("2025-01", "6000.00"),
                Ok(json!({"balance":"400.00"})),
            ),
            (
                json!({"cmd":"bind_family","holder":"A","relative":"B","relation":"sibling","date":"2025-01-10"}),
                Ok(json!({})),
            ),
            (
                json!({"cmd":"bind_family","holder":"A","relative":"G","relation":"grandparent","date":"2025-01-10"}),
                Err("too_many_relatives"),
            ),
            (
                json!({"cmd":"transfer","member":"A","date":"2025-03-01","to_region":"110000"}),
                Ok(
                    json!({"from_region":"500000","to_region":"110000","balance":"400.00","policy_loaded":false}),
                ),
            ),
            (
                claim("K2", "2025-03-05", "250.00"),
                Err("no_policy_in_force"),
            ),
            // A late claim from before the transfer settles in the old region, against its 2025 counters.
            (
                claim("K3", "2025-02-20", "300.00"),
                Ok(
                    json!({"deductible_applied":"200.00","ordinary_paid":"60.00","account_paid":"240.00","balance":"160.00","policy":"500000/2025-01-01"}),
                ),
            ),
            (
                json!({"cmd":"load_policy","policy":region_110000()}),
                Ok(json!({})),
            ),
            (
                contribute("2025-03", "8000.00"),
                Ok(json!({"credited":"160.00","pooled":"680.00","balance":"320.00"})),
            ),
            // Counters do not move with the member: a fresh deductible in the new region.
            (
                claim("K4", "2025-03-05", "250.00"),
                Ok(
                    json!({"deductible_applied":"200.00","ordinary_paid":"30.00","account_paid":"220.00","balance":"100.00","policy":"110000/2025-01-01"}),
                ),
            ),
            (
                json!({"cmd":"rollover","region":"110000","year":2025}),
                Ok(json!({"accounts_closed":1,"closing_total":"100.00"})),
            ),
            (
                contribute("2026-01", "8000.00"),
                Ok(json!({"balance":"260.00"})),
            ),
            (
                json!({"cmd":"decease","member":"A","date":"2026-02-10"}),
                Ok(json!({"balance":"260.00"})),
            ),
            (pay("P5", "A", "2026-02-11", "1.00"), Err("member_deceased")),
            // The month of death was due: credited. The month after is not.
            (
                contribute("2026-02", "8000.00"),
                Ok(json!({"balance":"420.00"})),
            ),
            (contribute("2026-03", "8000.00"), Err("member_deceased")),
            (
                json!({"cmd":"reverse","id":"K4","date":"2026-02-20","reason":"billed twice"}),
                Ok(json!({"account_refunded":"220.00","pooled_refunded":"30.00"})),
            ),
            (
                json!({"cmd":"inherit","member":"A","date":"2026-03-01","heirs":[{"name":"Alice","share":"0.5"},{"name":"Bob","share":"0.3"}]}),
                Err("shares_not_one"),
            ),
            (
                json!({"cmd":"inherit","member":"A","date":"2026-02-05","heirs":[{"name":"Alice","share":"1"}]}),
                Err("inherit_before_death"),
            ),
            (
                json!({"cmd":"inherit","member":"A","date":"2026-03-01","heirs":[{"name":"Alice","share":"0.5"},{"name":"Bob","share":"0.25"},{"name":"Carol","share":"0.25"}]}),
                Ok(json!({"inherited_balance":"640.00"})),
            ),
            (
                json!({"cmd":"inherit","member":"A","date":"2026-03-02","heirs":[{"name":"Alice","share":"1"}]}),
                Err("already_inherited"),
            ),
            (
                json!({"cmd":"reverse","id":"K3","date":"2026-03-05","reason":"late"}),
                Err("account_closed"),
            ),
            (contribute("2026-01", "8000.00"), Err("account_closed")),
            (
                json!({"cmd":"enroll","member":"R","region":"500000","born":"1950-01-01","status":"retired","scheme":"employer","date":"2024-01-01"}),
                Ok(json!({})),
            ),
            (
                json!({"cmd":"transfer","member":"R","date":"2025-01-01","to_region":"110000"}),
                Err("retiree_not_transferable"),
            ),
            (
                json!({"cmd":"inherit","member":"R","date":"2025-01-01","heirs":[{"name":"Alice","share":"1"}]}),
                Err("not_deceased"),
            ),
            (
                json!({"cmd":"enroll","member":"V","region":"500000","born":"1990-01-01","status":"active","scheme":"employer","date":"2024-01-01"}),
                Ok(json!({})),
            ),
            (
                json!({"cmd":"transfer","member":"V","date":"2025-01-01","to_region":"500000"}),
                Err("same_region"),
            ),
            (
                json!({"cmd":"transfer","member":"V","date":"2023-12-01","to_region":"110000"}),
                Err("before_enrolment"),
            ),
        ],
    );

    let account = ledger.query(&["account", "A"]);
    assert_eq!(account["balance"], "0.00");
    assert_eq!(account["state"], "closed");
    assert_eq!(account["region"], "110000");
    assert_eq!(account["closed_on"], "2026-03-01");

    let inheritance = ledger.query(&["inheritance", "A"]);
    assert_eq!(inheritance["deceased_on"], "2026-02-10");
    // By own dates up to the day of death: 260 before, and February's credit dated 2026-02-01.
    assert_eq!(inheritance["balance_on_death"], "420.00");
    let after: Vec<(&str, &str)> = inheritance["after_death"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["event"].as_str().unwrap(), a["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(
        after,
        vec![("account_credited", "160.00"), ("claim_reversed", "220.00")]
    );
    assert_eq!(inheritance["inherited_balance"], "640.00");
    let payouts: Vec<(&str, &str)> = inheritance["payouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["heir"].as_str().unwrap(), p["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(
        payouts,
        vec![("Alice", "320.00"), ("Bob", "160.00"), ("Carol", "160.00")]
    );

    let transfers = ledger.query(&["transfers", "A"]);
    assert_eq!(transfers["transfers"][0]["from_region"], "500000");
    assert_eq!(transfers["transfers"][0]["to_region"], "110000");
    assert_eq!(transfers["transfers"][0]["balance"], "400.00");
    assert_eq!(transfers["transfers"].as_array().unwrap().len(), 1);

    let year_2024 = ledger.query(&["year", "A", "2024"]);
    assert_eq!(
        (
            &year_2024["region"],
            &year_2024["deductible_used"],
            &year_2024["ordinary_paid"]
        ),
        (&json!("500000"), &json!("200.00"), &json!("60.00"))
    );
    let year_2025_old = ledger.query(&["year", "A", "2025", "--region", "500000"]);
    assert_eq!(
        (
            &year_2025_old["deductible_used"],
            &year_2025_old["ordinary_paid"],
            &year_2025_old["claims"]
        ),
        (&json!("200.00"), &json!("60.00"), &json!(1))
    );
    // K4 was reversed: the new region's 2025 counters are back to zero.
    let year_2025_new = ledger.query(&["year", "A", "2025"]);
    assert_eq!(
        (
            &year_2025_new["region"],
            &year_2025_new["deductible_used"],
            &year_2025_new["claims"]
        ),
        (&json!("110000"), &json!("0.00"), &json!(0))
    );

    let funds_old = ledger.query(&["fund", "500000"]);
    assert_eq!(
        (
            &funds_old["pooled"]["inflow"],
            &funds_old["pooled"]["outflow"]
        ),
        (&json!("1020.00"), &json!("120.00"))
    );
    let funds_new = ledger.query(&["fund", "110000"]);
    assert_eq!(
        (
            &funds_new["pooled"]["inflow"],
            &funds_new["pooled"]["outflow"]
        ),
        (&json!("2040.00"), &json!("0.00"))
    );

    // As of a day, by the events' own dates.
    let answers_as_of = |args: &[&str]| ledger.query(args);
    let before_transfer = answers_as_of(&["account", "A", "--as-of", "2025-02-28"]);
    assert_eq!(
        (&before_transfer["balance"], &before_transfer["region"]),
        (&json!("160.00"), &json!("500000"))
    );
    assert_eq!(
        answers_as_of(&["account", "A", "--as-of", "2024-06-30"])["balance"],
        "280.00"
    );
    // As the ledger stood when 2024 was done, and both times together.
    assert_eq!(
        answers_as_of(&["account", "A", "--recorded-before", &after_2024])["balance"],
        "280.00"
    );
    assert_eq!(
        answers_as_of(&[
            "account",
            "A",
            "--recorded-before",
            &after_2024,
            "--as-of",
            "2024-04-30"
        ])["balance"],
        "300.00"
    );
    let year_before_reversal = answers_as_of(&["year", "A", "2025", "--as-of", "2026-01-31"]);
    assert_eq!(
        (
            &year_before_reversal["deductible_used"],
            &year_before_reversal["ordinary_paid"]
        ),
        (&json!("200.00"), &json!("30.00"))
    );
    let frozen = answers_as_of(&["inheritance", "A", "--as-of", "2026-02-15"]);
    assert_eq!(
        (&frozen["state"], &frozen["balance"]),
        (&json!("deceased"), &json!("420.00"))
    );
    assert_eq!(frozen["after_death"].as_array().unwrap().len(), 1);
    assert_eq!(frozen["payouts"].as_array().unwrap().len(), 0);
    assert_eq!(
        answers_as_of(&["transfers", "A", "--as-of", "2025-02-28"])["transfers"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let out = ledger.run(&["account", "A", "--as-of", "2023-12-31"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Replaying the log from the start reproduces every answer, as-of ones included.
    let queries: Vec<Vec<&str>> = vec![
        vec!["account", "A"],
        vec!["inheritance", "A"],
        vec!["transfers", "A"],
        vec!["year", "A", "2025", "--region", "500000"],
        vec!["account", "A", "--as-of", "2025-02-28"],
        vec!["account", "A", "--recorded-before", &after_2024],
        vec!["inheritance", "A", "--as-of", "2026-02-15"],
        vec!["fund", "110000"],
    ];
    let before: Vec<Value> = queries.iter().map(|q| ledger.query(q)).collect();
    let out = ledger.run(&["rebuild"]);
    assert!(out.status.success(), "{}", text(&out));
    let after: Vec<Value> = queries.iter().map(|q| ledger.query(q)).collect();
    assert_eq!(before, after);
}

#[test]
fn bindings_are_one_way() {
    let ledger = TestLedger::new();
    let enroll = |m: &str| json!({"cmd":"enroll","member":m,"region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"100.00"});
    let bind = |holder: &str, relative: &str| json!({"cmd":"bind_family","holder":holder,"relative":relative,"relation":"spouse","date":"2024-02-01"});
    expect_lines(
        &ledger,
        &[
            (enroll("H"), Ok(json!({}))),
            (enroll("X"), Ok(json!({}))),
            (enroll("Y"), Ok(json!({}))),
            (bind("H", "X"), Ok(json!({}))),
            // X is H's relative: nobody else may bind X, and X may bind nobody.
            (bind("Y", "X"), Err("relative_bound_elsewhere")),
            (bind("X", "Y"), Err("holder_is_relative")),
            // H is a holder: H cannot become someone's relative.
            (bind("Y", "H"), Err("relative_is_holder")),
            (
                json!({"cmd":"unbind_family","holder":"H","relative":"X","date":"2024-03-01"}),
                Ok(json!({})),
            ),
            (bind("Y", "X"), Ok(json!({}))),
        ],
    );
}

#[test]
fn a_region_may_forbid_yearly_limits() {
    let ledger = TestLedger::new();
    expect_lines(
        &ledger,
        &[
            (
                json!({"cmd":"load_policy","policy":region_110000()}),
                Ok(json!({})),
            ),
            (
                json!({"cmd":"enroll","member":"Q","region":"110000","born":"1980-01-01","status":"active","scheme":"employer","date":"2025-01-01"}),
                Ok(json!({})),
            ),
            (
                json!({"cmd":"bind_family","holder":"Q","relative":"Z","relation":"child","date":"2025-02-01","yearly_limit":"50.00"}),
                Err("yearly_limit_not_allowed"),
            ),
            (
                json!({"cmd":"bind_family","holder":"Q","relative":"Z","relation":"child","date":"2025-02-01"}),
                Ok(json!({})),
            ),
        ],
    );
}

/// Member A in Chongqing from 2024 with a claim, a family payment and a reversed claim, then
/// moved to 110000 on 2025-03-01, and a claim dated before the transfer recorded after it.
fn clerk_ledger() -> TestLedger {
    let ledger = TestLedger::new();
    ledger.apply_ok(&lines(&[
        json!({"cmd":"enroll","member":"A","region":"500000","born":"1980-03-10","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"500.00"}),
        json!({"cmd":"bind_family","holder":"A","relative":"S","relation":"spouse","date":"2024-01-15"}),
        pay("P001", "S", "2024-02-01", "20.00"),
        claim("K1", "2024-03-01", "300.00"),
        claim("K2", "2024-04-01", "300.00"),
        json!({"cmd":"reverse","id":"K2","date":"2024-04-10","reason":"duplicate"}),
        json!({"cmd":"load_policy","policy":chongqing_2025()}),
        json!({"cmd":"transfer","member":"A","date":"2025-03-01","to_region":"110000"}),
        claim("K3", "2025-02-20", "300.00"),
    ]));
    ledger
}

/// Runs a query that must fail with exit 1; returns its stderr.
fn refused(ledger: &TestLedger, args: &[&str]) -> String {
    let out = ledger.run(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn year_of_a_region_never_belonged_to_or_of_no_year_is_refused() {
    let ledger = clerk_ledger();
    let said = refused(&ledger, &["year", "A", "2024", "--region", "310000"]);
    assert!(
        said.contains("member A never belonged to region 310000"),
        "{said}"
    );
    let said = refused(&ledger, &["year", "A", "24"]);
    assert!(
        said.contains("year 24 is not a year the ledger can hold"),
        "{said}"
    );
    // Both regions the member belonged to still answer.
    for region in ["500000", "110000"] {
        let out = ledger.run(&["year", "A", "2025", "--region", region, "--json"]);
        assert!(out.status.success(), "{region}: {}", text(&out));
    }
}

#[test]
fn explain_names_a_reversal_and_sends_a_payment_to_history() {
    let ledger = clerk_ledger();
    let explained = ledger.query(&["explain", "K2"]);
    let reversal = &explained["reversed"];
    assert_eq!(reversal["date"], "2024-04-10", "{explained}");
    assert_eq!(reversal["reason"], "duplicate");
    assert!(reversal["recorded_at"].as_str().unwrap().ends_with('Z'));
    let position = reversal["position"].as_u64().unwrap();
    let out = ledger.run(&["explain", "K2", "--lang", "en"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("REVERSED on 2024-04-10 (duplicate): event ")
            && said.contains(&format!("at position {position}, recorded ")),
        "{said}"
    );
    assert!(ledger.query(&["explain", "K1"])["reversed"].is_null());
    let said = refused(&ledger, &["explain", "P001"]);
    assert!(
        said.contains("P001 is a payment from the account of member A, not a claim")
            && said.contains("gongji history A"),
        "{said}"
    );
}

#[test]
fn history_text_shows_position_date_recorded_time_kind_and_id_in_aligned_columns() {
    let ledger = clerk_ledger();
    let out = ledger
        .command(&["history", "A", "--lang", "en"])
        .env_remove("GONGJI_TZ_OFFSET")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<&str> = said.lines().collect();
    let header = rows[0];
    let columns = ["position", "date", "recorded at", "event", "id", "details"];
    let starts: Vec<usize> = columns.iter().map(|c| header.find(c).unwrap()).collect();
    let json: Vec<Value> = support::parse_lines(&ledger.run(&["history", "A", "--json"]).stdout);
    assert_eq!(rows.len(), json.len() + 1, "{said}");
    for (row, entry) in rows[1..].iter().zip(&json) {
        let cell = |i: usize| row[starts[i]..].split_whitespace().next().unwrap();
        assert_eq!(cell(0), format!("#{}", entry["position"]), "{row}");
        assert_eq!(cell(1), entry["own_date"], "{row}");
        // The recorded time in the ledger's zone (UTC+08:00 by default), to the second.
        let recorded = row[starts[2]..]
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let utc =
            chrono::DateTime::parse_from_rfc3339(entry["recorded_at"].as_str().unwrap()).unwrap();
        let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let local = utc
            .with_timezone(&beijing)
            .format("%Y-%m-%d %H:%M:%S +08:00");
        assert_eq!(recorded, local.to_string(), "{row}");
        let event = row[starts[3]..].split_whitespace().next().unwrap();
        assert_eq!(event, entry["event"], "{row}");
        let id = [&entry["id"], &entry["settlement"]["claim"]]
            .into_iter()
            .find_map(Value::as_str)
            .unwrap_or("-");
        assert_eq!(cell(4), id, "{row}");
    }
    assert!(said.contains("account_paid"), "{said}");
    assert!(
        rows.iter()
            .any(|r| r.contains("claim_reversed") && r.contains(" K2 ")),
        "{said}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("account_paid") && r.contains(" P001 ")),
        "{said}"
    );
}

#[test]
fn transfers_say_the_balance_moved_was_as_recorded_and_list_later_recorded_movements() {
    let ledger = clerk_ledger();
    let transfers = ledger.query(&["transfers", "A"]);
    let moved = &transfers["transfers"][0];
    let as_of = ledger.query(&["account", "A", "--as-of", "2025-03-01"]);
    assert_ne!(moved["balance"], as_of["balance"], "{transfers}");
    assert_eq!(moved["balance_as_of_date"], as_of["balance"], "{transfers}");
    let later = moved["later_recorded"].as_array().unwrap();
    assert_eq!(later.len(), 1, "{transfers}");
    assert_eq!(later[0]["id"], "K3");
    assert_eq!(later[0]["date"], "2025-02-20");
    assert!(later[0]["recorded_at"].as_str().unwrap() > moved["recorded_at"].as_str().unwrap());
    let out = ledger.run(&["transfers", "A"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("the balance as recorded when the transfer was"),
        "{said}"
    );
}

#[test]
fn inheritance_late_movements_carry_their_ids_and_recorded_times() {
    let ledger = clerk_ledger();
    ledger.apply_ok(&lines(&[
        json!({"cmd":"decease","member":"A","date":"2025-03-10"}),
        json!({"cmd":"reverse","id":"K3","date":"2025-03-12","reason":"billed twice"}),
    ]));
    let inheritance = ledger.query(&["inheritance", "A"]);
    let late = &inheritance["after_death"][0];
    assert_eq!(late["event"], "claim_reversed", "{inheritance}");
    assert_eq!(late["id"], "K3", "{inheritance}");
    assert!(late["recorded_at"].as_str().unwrap().ends_with('Z'));
    assert!(!late["event_id"].as_str().unwrap().is_empty());
    let out = ledger.run(&["inheritance", "A", "--lang", "en"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("\nmovements after death\n  1. event claim_reversed, id K3, date 2025-03-12"),
        "{said}"
    );
}
