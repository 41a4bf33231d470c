//! A generated hospital month for benchmarks and tests: a ledger with many settlements of one
//! institution, and the 3202 detail file that matches it row for row.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use gongji_domain::{Day, Month};
use gongji_ledger::{Ledger, LineOutcome};
use serde_json::Value;

/// Lines applied between two commits while building.
const BATCH_LINES: usize = 1000;

/// What was generated.
#[derive(Clone, Debug)]
pub struct SyntheticMonth {
    pub settlements: u64,
    pub reversals: u64,
    pub members: u64,
    pub file_rows: u64,
    pub file_bytes: u64,
}

fn amount(outcome: &Value, field: &str) -> Result<String, String> {
    outcome
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("claim outcome has no {field}: {outcome}"))
}

/// Applies lines, committing every [`BATCH_LINES`]; every outcome must be `Applied`.
struct Applier<'a> {
    ledger: &'a mut Ledger,
    pending: usize,
    outcomes: Vec<Value>,
}

impl Applier<'_> {
    fn apply(&mut self, line: &str) -> Result<(), String> {
        self.ledger
            .apply_line(line, 0)
            .map_err(|e| format!("applying {line}: {e}"))?;
        self.pending += 1;
        if self.pending >= BATCH_LINES {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), String> {
        self.pending = 0;
        for outcome in self.ledger.commit().map_err(|e| e.to_string())? {
            match outcome {
                LineOutcome::Applied(outcome) => self
                    .outcomes
                    .push(serde_json::to_value(outcome).map_err(|e| e.to_string())?),
                LineOutcome::Rejected(rejection) => {
                    return Err(format!("a generated line was rejected: {rejection}"))
                }
            }
        }
        Ok(())
    }
}

/// Builds, in the ledger at `ledger_dir` (with `policy_json` loaded, region 500000),
/// `settlements` claims of `institution` spread over `month` (one member per ten claims, every
/// hundredth claim reversed later in the month), and writes the matching 3202 file to `file`.
pub fn build_hospital_month(
    ledger_dir: &Path,
    policy_json: &str,
    institution: &str,
    month: Month,
    settlements: u64,
    file: &Path,
) -> Result<SyntheticMonth, String> {
    let mut ledger = Ledger::open(ledger_dir).map_err(|e| e.to_string())?;
    let members = settlements.div_ceil(10).max(1);
    let mut applier = Applier {
        ledger: &mut ledger,
        pending: 0,
        outcomes: Vec::new(),
    };
    applier.apply(&format!(
        r#"{{"cmd":"load_policy","policy":{policy_json}}}"#
    ))?;
    let enrolled_on = Day::from_ymd(month.year() - 1, 1, 1).ok_or("month too early")?;
    for m in 0..members {
        applier.apply(&format!(
            r#"{{"cmd":"enroll","member":"M{m:07}","region":"500000","born":"1970-01-01","status":"active","scheme":"employer","date":"{enrolled_on}","opening_balance":"{}.00"}}"#,
            500 + m % 3000
        ))?;
    }
    applier.commit()?;
    applier.outcomes.clear();

    let days = (month.last_day().date() - month.first_day().date()).num_days() as u64 + 1;
    let out = File::create(file).map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    let mut out = BufWriter::new(out);
    let write_err = |e: std::io::Error| format!("cannot write {}: {e}", file.display());
    writeln!(
        out,
        "setl_id,mdtrt_id,psn_no,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,refd_setl_flag,setl_time"
    )
    .map_err(write_err)?;
    let mut file_rows = 0u64;
    let mut reversals = 0u64;
    let mut start = 0u64;
    while start < settlements {
        let end = (start + BATCH_LINES as u64).min(settlements);
        let mut rows = Vec::with_capacity(BATCH_LINES);
        for n in start..end {
            let day = Day::from_ymd(month.year(), month.month_of_year(), (n % days) as u32 + 1)
                .ok_or("bad day")?;
            let eligible_fen = 5_000 + (n * 7_919) % 200_000;
            let uncovered_fen = (n % 5) * 310;
            let line = format!(
                r#"{{"cmd":"claim","id":"S{n:09}","member":"M{:07}","date":"{day}","level":{},"channel":"institution","eligible":"{}.{:02}","uncovered":"{}.{:02}","institution":"{institution}","visit":"V{n:09}"}}"#,
                n % members,
                n % 3 + 1,
                eligible_fen / 100,
                eligible_fen % 100,
                uncovered_fen / 100,
                uncovered_fen % 100
            );
            applier.apply(&line)?;
            rows.push((n, day, eligible_fen + uncovered_fen));
        }
        applier.commit()?;
        let outcomes = std::mem::take(&mut applier.outcomes);
        for ((n, day, total_fen), outcome) in rows.into_iter().zip(outcomes) {
            let fund = amount(&outcome, "fund_paid")?;
            let account = amount(&outcome, "account_paid")?;
            let cash = amount(&outcome, "cash_paid")?;
            let total = format!("{}.{:02}", total_fen / 100, total_fen % 100);
            writeln!(
                out,
                "S{n:09},V{n:09},M{:07},{total},{fund},{account},{cash},0,{day} 10:00:00",
                n % members
            )
            .map_err(write_err)?;
            file_rows += 1;
            if n % 100 == 7 && day < month.last_day() {
                let reverse_on = Day::from_date(day.date().succ_opt().ok_or("bad day")?);
                applier.apply(&format!(
                    r#"{{"cmd":"reverse","id":"S{n:09}","date":"{reverse_on}","reason":"refund"}}"#
                ))?;
                writeln!(
                    out,
                    "S{n:09},V{n:09},M{:07},-{total},-{fund},-{account},-{cash},1,{reverse_on} 11:00:00",
                    n % members
                )
                .map_err(write_err)?;
                file_rows += 1;
                reversals += 1;
            }
        }
        applier.commit()?;
        applier.outcomes.clear();
        start = end;
    }
    out.flush().map_err(write_err)?;
    drop(out);
    ledger.close().map_err(|e| e.to_string())?;
    let file_bytes = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    Ok(SyntheticMonth {
        settlements,
        reversals,
        members,
        file_rows,
        file_bytes,
    })
}
