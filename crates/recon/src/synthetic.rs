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
    enroll(&mut applier, policy_json, month, members)?;
    let mut out = DetailFile::create(file, members)?;
    let mut start = 0u64;
    while start < settlements {
        let end = (start + BATCH_LINES as u64).min(settlements);
        for (claim, outcome) in settle(&mut applier, institution, month, members, start..end)? {
            out.settlement(&claim, &outcome)?;
            if claim.n % 100 == 7 && claim.day < month.last_day() {
                let reverse_on = Day::from_date(claim.day.date().succ_opt().ok_or("bad day")?);
                applier.apply(&format!(
                    r#"{{"cmd":"reverse","id":"S{:09}","date":"{reverse_on}","reason":"refund"}}"#,
                    claim.n
                ))?;
                out.reversal(&claim, &outcome, reverse_on)?;
            }
        }
        applier.commit()?;
        applier.outcomes.clear();
        start = end;
    }
    let (file_rows, reversals) = (out.rows, out.reversals);
    out.finish()?;
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

/// Loads the policy and enrolls `members` members the January of the year before `month`.
fn enroll(
    applier: &mut Applier<'_>,
    policy_json: &str,
    month: Month,
    members: u64,
) -> Result<(), String> {
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
    Ok(())
}

/// One generated claim: its number, day and total in fen.
struct Claim {
    n: u64,
    day: Day,
    total_fen: u64,
}

/// Applies and commits claims `numbers`, returning each with its outcome.
fn settle(
    applier: &mut Applier<'_>,
    institution: &str,
    month: Month,
    members: u64,
    numbers: std::ops::Range<u64>,
) -> Result<Vec<(Claim, Value)>, String> {
    let days = (month.last_day().date() - month.first_day().date()).num_days() as u64 + 1;
    let mut claims = Vec::with_capacity(BATCH_LINES);
    for n in numbers {
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
        claims.push(Claim {
            n,
            day,
            total_fen: eligible_fen + uncovered_fen,
        });
    }
    applier.commit()?;
    let outcomes = std::mem::take(&mut applier.outcomes);
    Ok(claims.into_iter().zip(outcomes).collect())
}

/// The 3202 detail file being written: one row per settlement and per reversal.
struct DetailFile {
    out: BufWriter<File>,
    path: std::path::PathBuf,
    members: u64,
    rows: u64,
    reversals: u64,
}

impl DetailFile {
    fn create(path: &Path, members: u64) -> Result<DetailFile, String> {
        let out =
            File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut file = DetailFile {
            out: BufWriter::new(out),
            path: path.to_path_buf(),
            members,
            rows: 0,
            reversals: 0,
        };
        file.row(format_args!(
            "setl_id,mdtrt_id,psn_no,medfee_sumamt,fund_pay_sumamt,acct_pay,cash_payamt,refd_setl_flag,setl_time"
        ))?;
        Ok(file)
    }

    fn row(&mut self, row: std::fmt::Arguments<'_>) -> Result<(), String> {
        writeln!(self.out, "{row}")
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn settlement(&mut self, claim: &Claim, outcome: &Value) -> Result<(), String> {
        let (total, fund, account, cash) = figures(claim, outcome)?;
        let (n, member) = (claim.n, claim.n % self.members);
        self.row(format_args!(
            "S{n:09},V{n:09},M{member:07},{total},{fund},{account},{cash},0,{} 10:00:00",
            claim.day
        ))?;
        self.rows += 1;
        Ok(())
    }

    fn reversal(&mut self, claim: &Claim, outcome: &Value, on: Day) -> Result<(), String> {
        let (total, fund, account, cash) = figures(claim, outcome)?;
        let (n, member) = (claim.n, claim.n % self.members);
        self.row(format_args!(
            "S{n:09},V{n:09},M{member:07},-{total},-{fund},-{account},-{cash},1,{on} 11:00:00"
        ))?;
        self.rows += 1;
        self.reversals += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<(), String> {
        self.out
            .flush()
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// A claim's total and its fund, account and cash parts, as the file writes them.
fn figures(claim: &Claim, outcome: &Value) -> Result<(String, String, String, String), String> {
    let total = format!("{}.{:02}", claim.total_fen / 100, claim.total_fen % 100);
    Ok((
        total,
        amount(outcome, "fund_paid")?,
        amount(outcome, "account_paid")?,
        amount(outcome, "cash_paid")?,
    ))
}
