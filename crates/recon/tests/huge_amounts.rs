//! Sums past `i64` fen: an institution whose claims, each within the bound on one amount, add
//! up to more than `i64::MAX` fen in a month. The statement and the totals reconciliation
//! refuse to total them (an error naming the figure, exit status 2), never panic; the detail reconciliation,
//! which sums nothing, still reports.

mod common;

use common::{claim, enroll, write, Fixture};
use gongji_domain::money::AMOUNT_FEN_MAX;
use gongji_domain::{Day, Money};
use gongji_recon::{
    reconcile_detail, reconcile_totals, settlement_statement, DetailOptions, ReconError,
};

/// Members, and claims each: 47 x 1000 claims of 2 x AMOUNT_FEN_MAX fen of total cost (each
/// member's year stays far within the ledger's running-total bound) sum to 9.4e18 fen.
const MEMBERS: usize = 47;
const CLAIMS_PER_MEMBER: usize = 1000;

fn huge_month() -> Fixture {
    let mut fixture = Fixture::new();
    let largest = Money::from_fen(AMOUNT_FEN_MAX).to_string();
    let extra = format!(r#","uncovered":"{largest}","institution":"H1""#);
    for member in 0..MEMBERS {
        let id = format!("M{member}");
        let mut lines = vec![enroll(&id, "0.00")];
        for n in 0..CLAIMS_PER_MEMBER {
            let date = format!("2024-03-{:02}", 1 + n % 28);
            lines.push(claim(
                &format!("C{member}-{n}"),
                &id,
                &date,
                &largest,
                &extra,
            ));
        }
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        fixture.apply(&lines);
    }
    let total: i128 = (MEMBERS * CLAIMS_PER_MEMBER) as i128 * 2 * i128::from(AMOUNT_FEN_MAX);
    assert!(total > i128::from(i64::MAX));
    fixture
}

#[test]
fn sums_past_i64_are_an_error_never_a_panic() {
    let f = huge_month();
    let march = "2024-03".parse().unwrap();
    let refused = settlement_statement(&f.ledger, "H1", march, &mut |_, _| {}).unwrap_err();
    let said = refused.to_string();
    assert!(matches!(refused, ReconError::Overflow(_)), "{said}");
    assert!(
        said.contains("too large to total") && said.contains("H1"),
        "{said}"
    );
    assert_eq!(refused.exit_code(), 2);

    write(
        &f.path("totals.csv"),
        b"fixmedins_code,stmt_begndate,stmt_enddate,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,fixmedins_setl_cnt\n\
          H1,2024-03-01,2024-03-31,1.00,0.00,0.00,1.00,1\n",
    );
    let refused = reconcile_totals(&f.ledger, &f.path("totals.csv"), &mut |_, _| {}).unwrap_err();
    let said = refused.to_string();
    assert!(matches!(refused, ReconError::Overflow(_)), "{said}");
    assert!(
        said.starts_with("line 2: ") && said.contains("institution H1 from 2024-03-01"),
        "{said}"
    );

    write(
        &f.path("detail.csv"),
        b"setl_id,mdtrt_id,psn_no,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,refd_setl_flag\n\
          C0-0,,M0,1000000000000.00,0.00,0.00,1000000000000.00,0\n",
    );
    let day = |text: &str| text.parse::<Day>().unwrap();
    let report = reconcile_detail(
        &f.ledger,
        &f.path("detail.csv"),
        "H1",
        day("2024-03-01"),
        day("2024-03-31"),
        &DetailOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(
        report.counts.fields_differ, 1,
        "{:?}",
        report.differences[0]
    );
    assert_eq!(
        report.counts.in_ledger_not_in_file,
        (MEMBERS * CLAIMS_PER_MEMBER - 1) as u64
    );
}
