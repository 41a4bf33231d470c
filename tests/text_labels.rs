//! Text output through the real binary: Chinese labels by default in the order a clerk reads
//! (who, their state, the figures, then where the answer comes from), English with `--lang en`
//! or `GONGJI_LANG=en` in the same order, amounts grouped with their unit, codes named, recorded
//! times in the ledger's zone with the offset, and messages in users' words. `--json` is
//! untouched by the language.

mod support;

use std::process::Output;

use support::{examples, march_detail_args, text, TestLedger};

/// Standard output of a command that must succeed (exit 0).
fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).expect("text output is UTF-8")
}

fn zh(ledger: &TestLedger, args: &[&str]) -> String {
    ok(ledger
        .command(args)
        .env_remove("GONGJI_LANG")
        .output()
        .unwrap())
}

fn en(ledger: &TestLedger, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--lang", "en"]);
    ok(ledger
        .command(&all)
        .env_remove("GONGJI_LANG")
        .output()
        .unwrap())
}

/// Each of `labels` is in `said`, in this order.
fn assert_in_order(said: &str, labels: &[&str]) {
    let mut from = 0;
    for label in labels {
        let found = said[from..].find(label).unwrap_or_else(|| {
            panic!("{label:?} missing after byte {from} or out of order:\n{said}")
        });
        from += found + label.len();
    }
}

/// The value on the line whose label is `label` (`label  value`).
fn value_of<'a>(said: &'a str, label: &str) -> &'a str {
    said.lines()
        .find_map(|line| {
            line.trim_start()
                .strip_prefix(label)
                .filter(|rest| rest.starts_with("  "))
        })
        .unwrap_or_else(|| panic!("no line labelled {label:?}:\n{said}"))
        .trim()
}

/// `YYYY-MM-DD HH:MM:SS +HH:MM` somewhere in `said`, with `offset`.
fn has_local_time(said: &str, offset: &str) -> bool {
    said.char_indices().any(|(i, _)| {
        let Some(candidate) = said.get(i..i + 26) else {
            return false;
        };
        let b = candidate.as_bytes();
        let digits = |r: std::ops::Range<usize>| r.clone().all(|j| b[j].is_ascii_digit());
        digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[10] == b' '
            && digits(11..13)
            && b[13] == b':'
            && b[19] == b' '
            && candidate.ends_with(offset)
    })
}

#[test]
fn account_is_labelled_in_chinese_by_default_member_first_amounts_grouped_with_the_unit() {
    let ledger = TestLedger::sample();
    let said = zh(&ledger, &["account", "M001"]);
    let first = said.lines().next().unwrap();
    assert!(
        first.starts_with("参保人") && first.ends_with("M001"),
        "{said}"
    );
    assert_in_order(
        &said,
        &[
            "参保人",
            "参保状态",
            "统筹地区",
            "参保方式",
            "参保日期",
            "个人账户余额",
            "累计划入",
            "累计支出",
            "家庭共济绑定",
        ],
    );
    assert_eq!(value_of(&said, "参保状态"), "正常 (open)");
    assert_eq!(value_of(&said, "参保方式"), "随单位参保 (employer)");
    assert_eq!(value_of(&said, "个人账户余额"), "1,282.00 元");
    assert_eq!(value_of(&said, "累计划入"), "1,905.50 元");
    assert!(said.contains("关系 配偶 (spouse)"), "{said}");
    assert!(
        !said.contains("balance") && !said.contains("credited_total"),
        "{said}"
    );

    let said = en(&ledger, &["account", "M001"]);
    let first = said.lines().next().unwrap();
    assert!(
        first.starts_with("member") && first.ends_with("M001"),
        "{said}"
    );
    assert_in_order(
        &said,
        &[
            "member",
            "account state",
            "region",
            "scheme",
            "enrolled on",
            "account balance",
            "credited in total",
            "paid out in total",
            "family bindings",
        ],
    );
    assert_eq!(value_of(&said, "account balance"), "1,282.00 yuan");
    assert_eq!(value_of(&said, "account state"), "open");

    // JSON keeps its English keys and plain decimal strings in either language.
    let json = ledger.query(&["account", "M001", "--lang", "zh"]);
    assert_eq!(json["balance"], "1282.00");
}

#[test]
fn large_amounts_are_grouped_by_thousands() {
    let ledger = TestLedger::new();
    ledger.apply_ok(&[r#"{"cmd":"enroll","member":"B1","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"95230028.79"}"#.to_string()]);
    let said = zh(&ledger, &["account", "B1"]);
    assert_eq!(value_of(&said, "个人账户余额"), "95,230,028.79 元");
    let said = en(&ledger, &["account", "B1"]);
    assert_eq!(value_of(&said, "account balance"), "95,230,028.79 yuan");
}

#[test]
fn the_language_comes_from_the_flag_then_gongji_lang_and_a_bad_one_is_refused() {
    let ledger = TestLedger::sample();
    let with_env = |lang: &str, args: &[&str]| {
        ledger
            .command(args)
            .env("GONGJI_LANG", lang)
            .output()
            .unwrap()
    };
    let said = ok(with_env("en", &["year", "M001", "2024"]));
    assert!(said.starts_with("member"), "{said}");
    let said = ok(with_env("en", &["year", "M001", "2024", "--lang", "zh"]));
    assert!(said.starts_with("参保人"), "{said}");
    let out = with_env("fr", &["year", "M001", "2024"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GONGJI_LANG: 'fr' is not a language"),
        "{}",
        text(&out)
    );
    let out = ledger.run(&["year", "M001", "2024", "--lang", "fr"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn year_shows_the_member_then_the_counters_with_the_policy_last() {
    let ledger = TestLedger::sample();
    let said = zh(&ledger, &["year", "M001", "2024"]);
    assert_in_order(
        &said,
        &[
            "参保人",
            "统筹地区",
            "人员类别",
            "医保年度",
            "起付线",
            "起付线已累计",
            "起付线剩余",
            "年度限额",
            "普通门诊统筹支付",
            "年度限额剩余",
            "统筹基金支付",
            "大额医疗支付",
            "结算笔数",
            "政策版本",
        ],
    );
    assert_eq!(value_of(&said, "人员类别"), "在职 (active)");
    assert_eq!(value_of(&said, "起付线"), "200.00 元");
    assert_eq!(value_of(&said, "年度限额"), "3,000.00 元");
    let said = en(&ledger, &["year", "M001", "2024"]);
    assert_in_order(
        &said,
        &[
            "member",
            "region",
            "status",
            "insurance year",
            "deductible",
            "annual limit",
            "policy version",
        ],
    );
    assert_eq!(value_of(&said, "annual limit"), "3,000.00 yuan");
}

#[test]
fn inheritance_transfers_and_fund_are_labelled_with_recorded_times_in_the_ledgers_zone() {
    let ledger = TestLedger::sample();
    let said = zh(&ledger, &["inheritance", "M004"]);
    assert_in_order(
        &said,
        &[
            "参保人",
            "参保状态",
            "死亡日期",
            "死亡时余额",
            "继承日期",
            "继承金额",
            "继承支付",
        ],
    );
    assert_eq!(value_of(&said, "继承金额"), "860.00 元");
    assert!(
        said.contains("1. 继承人 Wang Fang，份额 0.6，金额 516.00 元"),
        "{said}"
    );
    let said = en(&ledger, &["inheritance", "M004"]);
    assert_eq!(value_of(&said, "inherited balance"), "860.00 yuan");
    assert!(
        said.contains("1. heir Wang Fang, share 0.6, amount 516.00 yuan"),
        "{said}"
    );

    let transfers = |zone: &str| {
        ok(ledger
            .command(&["transfers", "M005"])
            .env_remove("GONGJI_LANG")
            .env("GONGJI_TZ_OFFSET", zone)
            .output()
            .unwrap())
    };
    let said = transfers("+08:00");
    assert_in_order(
        &said,
        &[
            "参保人",
            "统筹地区",
            "转移接续",
            "转出地区 500000",
            "转入地区 510100",
            "转移金额 420.00 元",
            "记录时间",
        ],
    );
    assert!(has_local_time(&said, "+08:00"), "{said}");
    assert!(!said.contains('Z'), "{said}");
    assert!(has_local_time(&transfers("-05:00"), "-05:00"));
    // JSON keeps the UTC time.
    let json = ledger.query(&["transfers", "M005"]);
    assert!(json["transfers"][0]["recorded_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let said = zh(&ledger, &["fund", "500000"]);
    assert_in_order(
        &said,
        &[
            "统筹地区",
            "统筹基金",
            "收入",
            "1,520.00 元",
            "大额医疗互助基金",
            "个人账户合计",
            "3,405.50 元",
        ],
    );
    let said = en(&ledger, &["fund", "500000"]);
    assert_in_order(
        &said,
        &[
            "region",
            "pooled fund",
            "inflow",
            "1,520.00 yuan",
            "large-amount fund",
            "personal accounts",
        ],
    );
}

#[test]
fn history_and_explain_name_the_event_kinds_with_their_codes_and_local_times() {
    let ledger = TestLedger::sample();
    let said = zh(&ledger, &["history", "M001"]);
    let header: Vec<&str> = said.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["位置", "发生日期", "记录时间", "事件", "单号", "详情"]
    );
    assert!(said.contains("门诊结算 (claim_settled)"), "{said}");
    assert!(said.contains("个人账户支付 (account_paid)"), "{said}");
    assert!(
        said.contains("用途 定点零售药店 (pharmacy)，医保年度 2024，金额 88.00 元"),
        "{said}"
    );
    assert!(has_local_time(&said, "+08:00"), "{said}");
    let said = en(&ledger, &["history", "M001"]);
    let header: Vec<&str> = said.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["position", "date", "recorded", "at", "event", "id", "details"]
    );
    assert!(
        said.contains("purpose pharmacy, insurance year 2024, amount 88.00 yuan"),
        "{said}"
    );

    let said = zh(&ledger, &["explain", "C002"]);
    assert!(
        said.starts_with("结算单 C002：参保人 M001，统筹地区 500000"),
        "{said}"
    );
    assert!(
        said.contains("已冲销：2024-04-15（settled against the wrong visit）"),
        "{said}"
    );
    assert_eq!(
        value_of(&said, "年度限额已用"),
        "0.00 元 -> 300.00 元（限额 3,000.00 元）"
    );
    assert_eq!(value_of(&said, "个人账户余额"), "1,370.00 元 -> 984.50 元");
    assert!(said.contains("  事件：\n    位置  "), "{said}");
    // The steps are told in Chinese from the settlement's figures.
    assert!(said.contains("\n  1. 按政策 500000/2024-01-01：人员类别 在职 (active)，医院等级 3（医院 (hospital)），结算渠道 定点医疗机构 (institution)\n"), "{said}");
    assert!(said.contains("\n  4. （650.00 元 − 50.00 元）× 支付比例 0.5（本年此前普通门诊费用 150.00 元）= 300.00 元，四舍五入到分\n"), "{said}");
    assert!(
        said.contains(
            "\n  5. 年度限额 3,000.00 元，此前已用 0.00 元：普通门诊统筹支付 300.00 元\n"
        ),
        "{said}"
    );
    let said = en(&ledger, &["explain", "C002"]);
    assert!(
        said.starts_with("claim C002 of member M001 in region 500000"),
        "{said}"
    );
    assert_eq!(
        value_of(&said, "account balance"),
        "1,370.00 yuan -> 984.50 yuan"
    );
}

#[test]
fn settlement_and_policy_list_are_labelled() {
    let ledger = TestLedger::sample();
    let said = zh(&ledger, &["settlement", "H500101", "2024-03"]);
    assert_in_order(
        &said,
        &[
            "定点机构",
            "结算月份",
            "结算笔数",
            "冲销笔数",
            "医疗费总额",
            "统筹基金支付",
            "大额医疗支付",
            "基金应付合计",
            "个人账户支付",
            "现金支付",
        ],
    );
    assert_eq!(value_of(&said, "基金应付合计"), "300.00 元");
    let said = en(&ledger, &["settlement", "H500101", "2024-03"]);
    assert_eq!(value_of(&said, "funds owe"), "300.00 yuan");

    let said = zh(&ledger, &["policy", "list"]);
    assert_eq!(
        said.trim(),
        "统筹地区 500000，政策版本 500000/2024-01-01，生效日期 2024-01-01，医保年度起始 01-01"
    );
    let said = en(&ledger, &["policy", "list"]);
    assert_eq!(
        said.trim(),
        "region 500000, version 500000/2024-01-01, effective 2024-01-01, year starts 01-01"
    );
}

#[test]
fn apply_says_each_line_and_the_summary_in_words_and_a_refused_purpose_in_users_words() {
    let ledger = TestLedger::new();
    let sample = examples("sample.jsonl");
    let out = ledger
        .command(&["apply", sample.to_str().unwrap()])
        .env_remove("GONGJI_LANG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.contains("第 1 行：成功  参保人 M001，统筹地区 500000，个人账户余额 1,200.00 元\n"),
        "{said}"
    );
    assert!(
        said.contains(
            "第 16 行：拒绝 purpose_not_allowed：payment P003: purpose fitness is not allowed"
        ),
        "{said}"
    );
    assert!(
        said.contains(
            "第 18 行：成功  单号 C002，冲销类别 门诊结算 (claim)，退回个人账户 385.50 元"
        ),
        "{said}"
    );
    assert!(said.contains("共 24 行：执行 20 行，拒绝 4 行"), "{said}");
    assert!(
        said.contains("拒绝原因：duplicate_id 1，insufficient_balance 1"),
        "{said}"
    );
    assert!(!said.contains("Fitness"), "{said}");

    let again = TestLedger::new();
    let out = again
        .command(&["apply", sample.to_str().unwrap(), "--lang", "en"])
        .output()
        .unwrap();
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.contains("line 1: ok  member M001, region 500000, account balance 1,200.00 yuan\n"),
        "{said}"
    );
    assert!(
        said.contains("line 16: REJECTED purpose_not_allowed: payment P003: purpose fitness is not allowed: a personal account may not pay for public health, fitness or wellness"),
        "{said}"
    );
    assert!(said.contains("24 lines: 20 applied, 4 rejected"), "{said}");
    assert!(!said.contains("Fitness"), "{said}");
}

#[test]
fn audit_reports_are_labelled_with_amounts_grouped() {
    let ledger = TestLedger::sample();
    let said = zh(&ledger, &["audit", "replay"]);
    assert!(said.starts_with("已重放 28 条记录\n摘要 "), "{said}");
    assert!(said.contains("500000    统筹基金"), "{said}");
    assert!(said.contains("1,520.00 元"), "{said}");
    let said = en(&ledger, &["audit", "replay"]);
    assert!(said.starts_with("replayed 28 records\ndigest "), "{said}");
    assert!(said.contains("1,520.00 yuan"), "{said}");

    let said = zh(&ledger, &["audit", "verify"]);
    assert!(said.starts_with("通过：28 条记录；"), "{said}");
    let said = en(&ledger, &["audit", "verify"]);
    assert!(said.starts_with("OK: 28 records;"), "{said}");

    let archive = ledger.dir.path().join("year.arc");
    let archive = archive.to_str().unwrap();
    let said = zh(&ledger, &["audit", "export", archive]);
    assert!(said.starts_with(&format!("已写入 {archive}\n")), "{said}");
    assert_in_order(&said, &["记录数", "政策版本数", "完整档案", "是", "哈希链"]);
    let said = zh(&ledger, &["audit", "check", archive]);
    assert!(
        said.starts_with("通过：28 条记录，1 个政策版本，哈希链 "),
        "{said}"
    );
    assert!(said.contains("\n重放所得摘要 "), "{said}");
    let said = en(&ledger, &["audit", "check", archive]);
    assert!(
        said.starts_with("OK: 28 records, 1 policy versions, chain "),
        "{said}"
    );

    let restored = support::TestLedger::empty();
    let said = zh(&restored, &["audit", "import", archive]);
    assert!(
        said.starts_with(&format!("已将 {archive} 导入 {}；摘要 ", restored.named())),
        "{said}"
    );

    if !support::directory_only(
        "audit clear-quarantine: the quarantine marker is kept in the data directory",
    ) {
        let said = zh(&ledger, &["audit", "clear-quarantine"]);
        assert!(said.trim_end().ends_with("的账本未被隔离"), "{said}");
        let said = en(&ledger, &["audit", "clear-quarantine"]);
        assert!(
            said.starts_with("the ledger at ") && said.trim_end().ends_with(" is not quarantined"),
            "{said}"
        );
    }

    let said = zh(&ledger, &["rebuild"]);
    assert!(said.starts_with("已从 28 条记录重建投影，用时 "), "{said}");
    let said = en(&ledger, &["rebuild"]);
    assert!(
        said.starts_with("rebuilt projections from 28 records in "),
        "{said}"
    );
}

#[test]
fn reconciliation_reports_are_labelled_with_amounts_grouped() {
    let ledger = TestLedger::sample();
    let file = ledger.dir.path().join("march.csv");
    std::fs::write(
        &file,
        "setl_id,mdtrt_id,psn_no,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,refd_setl_flag\nC001,V1,M001,150.00,0.00,140.00,10.00,0\nC002,V2,M001,685.50,300.00,385.50,0.00,0\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = ledger
            .command(&march_detail_args(&file, extra))
            .env_remove("GONGJI_LANG")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let said = run(&[]);
    assert!(said.starts_with("对账："), "{said}");
    assert_in_order(
        &said,
        &[
            "一致",
            "文件有、账本无",
            "账本有、文件无",
            "字段不一致",
            "差异：",
        ],
    );
    assert!(
        said.contains(
            "第 2 行：结算 C001 不一致：个人账户支出 (acct_pay) 文件 140.00 元，账本 150.00 元"
        ),
        "{said}"
    );
    assert!(said.ends_with("\n结果：1 处差异\n"), "{said}");
    let said = run(&["--lang", "en"]);
    assert!(
        said.contains(
            "line 2: settlement C001 differs: acct_pay file 140.00 yuan ledger 150.00 yuan"
        ),
        "{said}"
    );
}

#[test]
fn refusals_name_codes_as_commands_spell_them_never_the_programs_names() {
    let ledger = TestLedger::new();
    let (code, results) = ledger.apply(&[
        r#"{"cmd":"enroll","member":"H1","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01","opening_balance":"100.00"}"#.to_string(),
        r#"{"cmd":"bind_family","holder":"H1","relative":"S1","relation":"sibling","date":"2024-02-01"}"#.to_string(),
        r#"{"cmd":"account_pay","id":"P1","holder":"H1","date":"2024-02-02","purpose":"public_health","amount":"10.00"}"#.to_string(),
    ]);
    assert_eq!(code, 1);
    let message = |i: usize| results[i]["error"]["message"].as_str().unwrap().to_string();
    assert_eq!(
        message(1),
        "relation sibling may not be bound under policy 500000/2024-01-01; allowed: spouse, parent, child"
    );
    assert_eq!(
        message(2),
        "payment P1: purpose public_health is not allowed: a personal account may not pay for public health, fitness or wellness"
    );
}
