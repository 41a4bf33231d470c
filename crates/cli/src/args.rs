//! The command line: every subcommand and its arguments, as clap parses them, and the parsing
//! of the values clap hands over as text (days, months). An as-of question (`--as-of`,
//! `--recorded-before`) is read by [`Asked::parse`], which the service shares: it says how
//! recording times are read in the ledger's zone, and an answer states it ([`Asked::state`]).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use gongji_domain::{Day, Month};
use gongji_recon::words::{Lang, LANG_VAR};

#[derive(Parser)]
#[command(
    name = "gongji",
    version,
    about = "Gongji (共济): an event-sourced ledger for employee medical insurance accounts and funds"
)]
pub struct Cli {
    /// Where the ledger is: its data directory, or a PostgreSQL connection URI
    /// (`postgres://…` or `postgresql://…`, multi-host allowed, e.g. what `tools/pg-ha up`
    /// prints), the log in it named by --pg-log. Only `apply`, `policy load` and `audit
    /// import` create a ledger. A URI's password is never printed.
    #[arg(long, global = true, value_name = "DIR|URI")]
    pub data: Option<PathBuf>,
    /// Instead of --data: a region map, a JSON object of region codes to stores (a directory
    /// relative to the map, each region's ledger in STORE/REGION, or a PostgreSQL URI, each
    /// region's log named by its code), e.g. {"500000": "cq", "340100": "hf"}. With it: apply,
    /// relay, audit verify and the member queries (see docs/regions.md).
    #[arg(long, global = true, value_name = "MAP", conflicts_with = "data")]
    pub regions: Option<PathBuf>,
    /// With a PostgreSQL --data: the name of the ledger's log in that database (default
    /// `gongji`); several ledgers share a database under different names.
    #[arg(long, global = true, value_name = "NAME")]
    pub pg_log: Option<String>,
    /// Where the projections are kept: `runs` (sorted run files of the log's own, the default)
    /// or `sled` (a sled tree, the earlier store; kept as a baseline). Each keeps its own
    /// checkpoint, so switching costs at most a rebuild at the next open. For the benchmark's
    /// baseline only: hidden from the help.
    #[arg(long, global = true, value_enum, default_value = "runs", hide = true)]
    pub projections: Projections,
    /// The language of text output: `zh` (Chinese, the default) or `en` (English); without it,
    /// GONGJI_LANG. `--json` is the same in both.
    #[arg(long, global = true, value_name = "LANG", value_parser = ["zh", "en"])]
    pub lang: Option<String>,

    /// For commands that write (apply, policy load, rebuild, audit replay, audit
    /// clear-quarantine): if another command is writing to the ledger, wait for it to finish
    /// instead of refusing at once. Queries never need it: they run beside a writer.
    #[arg(long, global = true)]
    pub wait: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

impl Cli {
    /// The language of text output: `--lang`, else `GONGJI_LANG`, else Chinese.
    pub fn lang(&self) -> Result<Lang, String> {
        let from_env = std::env::var(LANG_VAR);
        let (text, source) = match (&self.lang, &from_env) {
            (Some(text), _) => (text.as_str(), "--lang"),
            (None, Ok(text)) => (text.as_str(), LANG_VAR),
            (None, Err(std::env::VarError::NotPresent)) => return Ok(Lang::Zh),
            (None, Err(std::env::VarError::NotUnicode(_))) => ("(not UTF-8)", LANG_VAR),
        };
        Lang::parse(text)
            .ok_or_else(|| format!("{source}: '{text}' is not a language; allowed: zh, en"))
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Projections {
    Runs,
    Sled,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Apply commands from a JSON Lines file (`-` for standard input), one command a line.
    Apply(ApplyArgs),
    /// A member's personal account.
    Account(MemberArgs),
    /// A member's standing in one insurance year: deductible, ordinary limit, fund payments.
    Year(YearArgs),
    /// A deceased member's account: balance on the day of death, later movements, payouts.
    Inheritance(MemberArgs),
    /// A member's transfers between pooling regions, with the balances moved.
    Transfers(MemberArgs),
    /// A region's pooled and large-amount funds.
    Fund(FundArgs),
    /// A member's events, in order, from the log.
    History(HistoryArgs),
    /// A member's events with what each changed in the account and the balance after it, and
    /// the balance by day (what the web page's timeline and chart show).
    Timeline(MemberArgs),
    /// Why a claim settled as it did: policy figures, positions before and after, every event.
    Explain(ExplainArgs),
    /// For auditors: replay, verify, export, check, import.
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// Reconcile the ledger against institutions' settlement files (3202 detail, 3201 totals).
    Reconcile {
        #[command(subcommand)]
        action: ReconcileCmd,
    },
    /// What the funds owe an institution for a month: pooled and large-amount funds, reversals
    /// netted.
    Settlement(SettlementArgs),
    /// Policy versions: load one from a file, check a file, or list those loaded.
    Policy {
        #[command(subcommand)]
        action: PolicyCmd,
    },
    /// What a proposed policy version would have cost: every claim of its region (and period)
    /// settled again under it, in memory, the ledger untouched (see docs/whatif.md)
    Whatif(WhatIfArgs),
    /// Fund supervision (智能监控): run the monitoring rules over the log, or show a flag's
    /// evidence (see docs/supervision.md).
    Monitor {
        #[command(subcommand)]
        action: MonitorCmd,
    },
    /// For auditors' own tools: the settlements (one row per settled claim and per reversal),
    /// every event, or the funds by month, of the log or of a region and period, as CSV or
    /// Parquet, each figure its own typed column (see docs/exports.md).
    Export(TableExportArgs),
    /// Drop every projection and rebuild them from the log.
    Rebuild {
        /// The result as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// With --regions: carry every transfer a region's ledger sent and its destination's has
    /// not received, until none is in transit (or none can land); exit 1 if some remain.
    Relay {
        /// The report as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Serve the ledger over HTTP, as its only writer (see docs/service.md).
    Serve(crate::serve::ServeArgs),
    /// The service's tokens: add one (printed once), list them, revoke one.
    Token {
        #[command(subcommand)]
        action: crate::serve::TokenCmd,
    },
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The commands, one JSON object a line (`-` for standard input).
    pub file: String,
    /// One JSON object per input line on standard output (the refusals' tally on standard error).
    #[arg(long)]
    pub json: bool,
    /// Print only the rejected lines (then, in text, the summary and the tally of refusals).
    #[arg(long)]
    pub quiet: bool,
    /// Most lines decided before their events are made durable together (group commit).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_lines: u32,
    /// Store the projections once this many entities are dirty (default 140,000). For
    /// tests that want the background projection writer at work on small inputs.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub store_after_dirty: Option<u32>,
}

/// A query about one member, now or as of a past time.
#[derive(clap::Args)]
pub struct MemberArgs {
    /// The member's id.
    pub member: String,
    /// One JSON object on standard output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub as_of: AsOfArgs,
}

#[derive(clap::Args)]
pub struct YearArgs {
    /// The member's id.
    pub member: String,
    /// The insurance year (YYYY).
    pub year: i32,
    /// The region whose counters to show (default: where the member was at the year's end).
    #[arg(long)]
    pub region: Option<String>,
    /// One JSON object on standard output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub as_of: AsOfArgs,
}

#[derive(clap::Args)]
pub struct FundArgs {
    /// The pooling region's code (e.g. 500000).
    pub region: String,
    /// One JSON object on standard output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub as_of: AsOfArgs,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// The member's id.
    pub member: String,
    /// One JSON object per event on standard output (JSON Lines).
    #[arg(long)]
    pub json: bool,
    /// Only events whose own date is on or after this day.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Only events whose own date is on or before this day.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The claim's id.
    pub claim: String,
    /// One JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct SettlementArgs {
    /// The institution's code (as in its settlement files).
    pub institution: String,
    /// The month settled (YYYY-MM).
    pub month: String,
    /// One JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

/// The two times of an as-of answer.
#[derive(clap::Args)]
pub struct AsOfArgs {
    /// Only events whose own date is on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    as_of: Option<String>,
    /// Only events the ledger had recorded before this time: RFC 3339 with an offset (honoured),
    /// a local time YYYY-MM-DDTHH:MM:SS, or a day YYYY-MM-DD meaning its midnight. Local times
    /// and days are in UTC+08:00 (China Standard Time) unless GONGJI_TZ_OFFSET says otherwise
    /// (e.g. GONGJI_TZ_OFFSET=+00:00).
    #[arg(long, value_name = "TIMESTAMP")]
    recorded_before: Option<String>,
}

pub use gongji_server::answers::Asked;

impl AsOfArgs {
    pub fn parse(&self) -> Result<Asked, String> {
        Asked::parse(
            self.as_of.as_deref(),
            self.recorded_before.as_deref(),
            gongji_server::answers::FLAG_NAMES,
        )
    }
}

pub use gongji_server::answers::ledger_zone;

/// A day given with `flag`, if given.
pub fn day(flag: &str, text: &Option<String>) -> Result<Option<Day>, String> {
    text.as_ref()
        .map(|t| t.parse().map_err(|e| format!("{flag}: {e}")))
        .transpose()
}

/// A day `flag` requires.
pub fn required_day(flag: &str, text: &str) -> Result<Day, String> {
    text.parse().map_err(|e| format!("{flag}: {e}"))
}

/// A month (YYYY-MM) given as the argument `name`.
pub fn month(name: &str, text: &str) -> Result<Month, String> {
    text.parse().map_err(|e| format!("{name}: {e}"))
}

#[derive(Subcommand)]
pub enum ReconcileCmd {
    /// Match an institution's detail file (3202) against the ledger, settlement by settlement.
    Detail(DetailArgs),
    /// Check a totals file (3201: one row per institution and period) against the ledger.
    Totals {
        /// The totals file (UTF-8 or GB18030).
        file: PathBuf,
        /// The report as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct DetailArgs {
    /// The institution's settlement detail file (UTF-8 or GB18030).
    pub file: PathBuf,
    /// The institution whose settlements are matched.
    #[arg(long)]
    pub institution: String,
    /// First day of the period matched (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last day of the period matched (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// The report as JSON on standard output.
    #[arg(long)]
    pub json: bool,
    /// Write every difference to this CSV file, one row per difference.
    #[arg(long, value_name = "OUT")]
    pub csv: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Rebuild every projection from the first record; print the state's digest and the
    /// totals per region.
    Replay {
        /// The report as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Check every record's checksum and the hash chain, the ledger's invariants, and that the
    /// live projections equal a fresh rebuild; name the first failure and exit 1.
    Verify {
        /// The report as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Write the log (or the part selected) to one self-describing archive file.
    Export(ExportArgs),
    /// Check an archive with no ledger: every line, the chain, the manifest; replay a complete
    /// archive to its digest and totals. Exit 1 if it fails, naming where.
    Check {
        /// The archive file.
        file: PathBuf,
        /// The report as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Check several regions' complete archives, each alone as `check` does, then against each
    /// other: every transfer received matches the one sent, every fund event owed between them
    /// landed as owed, and the money they hold with what is in transit equals what entered
    /// minus what left. No ledger needed. Exit 1 if it fails.
    CheckTransfers {
        /// Each archive with the region whose ledger it is: REGION=FILE (two or more).
        #[arg(required = true, num_args = 2.., value_name = "REGION=FILE")]
        archives: Vec<String>,
        /// The report as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Lift the quarantine a damaged record put on the ledger, once the whole log verifies
    /// again (restore the damaged segment from a backup first).
    ClearQuarantine {
        /// The result as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Restore a ledger into an empty --data directory from a complete archive that passes the
    /// check.
    Import {
        /// The archive file.
        file: PathBuf,
        /// The result as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The archive file to write.
    pub file: PathBuf,
    /// Only events whose own date is on or after this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Only events whose own date is on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Only events of this region.
    #[arg(long)]
    pub region: Option<String>,
    /// Replace FILE if it already exists (without it, an existing FILE is refused).
    #[arg(long)]
    pub force: bool,
    /// The manifest as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct TableExportArgs {
    /// What to export: `settlements` (one row per settled claim and per reversal, its figures
    /// negated), `events` (one row per log record), `funds` (one row per region and month:
    /// the pooled and large-amount funds' inflows, outflows and balance at the month's end) or
    /// `accounts` (one row per personal account as it stands now; no --from or --to).
    #[arg(value_enum)]
    pub what: ExportWhat,
    /// Only rows of this region (a member's events count for the region the member belonged
    /// to then; a transfer for both regions).
    #[arg(long)]
    pub region: Option<String>,
    /// Only rows whose own date is on or after this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_day)]
    pub from: Option<gongji_domain::Day>,
    /// Only rows whose own date is on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_day)]
    pub to: Option<gongji_domain::Day>,
    /// The file format: `csv` or `parquet`.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write: replaced only once the export is complete (nothing is left when it
    /// fails).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// A CSV file's text: `utf8` (with a byte-order mark, which Excel needs; the default) or
    /// `gb18030`.
    #[arg(long, value_enum)]
    pub encoding: Option<ExportEncoding>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportWhat {
    Settlements,
    Events,
    Funds,
    Accounts,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportEncoding {
    Utf8,
    Gb18030,
}

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Load a policy version (JSON) into the ledger.
    Load {
        /// The policy version (one JSON file, see policies/).
        file: PathBuf,
        /// The outcome as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Check a policy file, with no ledger: its rules as a clerk reads them and what the
    /// lint finds (rules that never apply, claims no rule covers, …); exit 1 if it finds
    /// anything. `policy load` refuses what it finds.
    Check {
        /// The policy version (one JSON file, see policies/ and docs/policies.md).
        file: PathBuf,
        /// The rules and the findings as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// List the policy versions loaded, per region.
    List {
        /// One JSON object per version on standard output (JSON Lines).
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct WhatIfArgs {
    /// The proposed policy version (a policy file, as `policy load` takes).
    #[arg(long)]
    pub policy: PathBuf,
    /// The region to try it on: the proposal's own (anything else is refused).
    #[arg(long)]
    pub region: Option<String>,
    /// Only claims whose own date is on or after this day (YYYY-MM-DD).
    #[arg(long, value_parser = parse_day)]
    pub from: Option<gongji_domain::Day>,
    /// Only claims whose own date is on or before this day (YYYY-MM-DD).
    #[arg(long, value_parser = parse_day)]
    pub to: Option<gongji_domain::Day>,
    /// Also write one CSV row per claim and reversal, with both settlements, to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// The whole report as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum MonitorCmd {
    /// One pass of the rules over the whole log: every flag with its rule, member or
    /// institution, period, figures and evidence; a count per rule.
    Run(MonitorRunArgs),
    /// A flag of `run` (same rules) with its evidence events, as `history` shows them.
    Explain(MonitorExplainArgs),
    /// Record an auditor's decision on a flag of `run` (same rules) in the log: confirmed or
    /// dismissed, with the reason and who decided. A dismissed flag is not listed again
    /// (unless `run --with-dismissed`); new evidence makes a new flag.
    Decide(MonitorDecideArgs),
    /// Monitoring rules versions: load a file into the log (flags then name that version),
    /// or list what is loaded.
    Rules {
        #[command(subcommand)]
        action: MonitorRulesCmd,
    },
}

#[derive(Subcommand)]
pub enum MonitorRulesCmd {
    /// Read and check a rules file (JSON, see policies/monitor/) and record it in the log as
    /// its region's next version; loading the same rules again does nothing.
    Load(MonitorRulesLoadArgs),
    /// The versions loaded, region by region in the order they were loaded (the latest is
    /// the one `monitor run` uses without --rules).
    List {
        /// One JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct MonitorRulesLoadArgs {
    /// The rules file.
    pub file: PathBuf,
    /// Who loads them (a name or staff number, recorded with the version).
    #[arg(long)]
    pub by: String,
    /// The day of loading (YYYY-MM-DD); today in China Standard Time without it.
    #[arg(long, value_parser = parse_day)]
    pub date: Option<gongji_domain::Day>,
    /// The outcome as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct MonitorDecideArgs {
    /// The flag's id (as `monitor run` printed it).
    pub flag: String,
    /// `confirmed` (the pattern is misuse) or `dismissed` (it is not).
    #[arg(long)]
    pub decision: String,
    /// Why (recorded with the decision; required).
    #[arg(long)]
    pub reason: String,
    /// Who decided (the auditor's name or staff number).
    #[arg(long)]
    pub by: String,
    /// The day of the decision (YYYY-MM-DD); today in China Standard Time without it.
    #[arg(long, value_parser = parse_day)]
    pub date: Option<gongji_domain::Day>,
    #[command(flatten)]
    pub rules: MonitorRulesArg,
    /// The region whose rules raised the flag (as for `run`).
    #[arg(long)]
    pub region: Option<String>,
    /// The outcome as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct MonitorRulesArg {
    /// The monitoring rules version to run, as loaded into the ledger (`monitor rules
    /// list`); without it, the latest loaded for the region, or the Chongqing defaults shipped
    /// with gongji where none is loaded for Chongqing.
    #[arg(long, value_name = "VERSION")]
    pub rules: Option<String>,
    /// A rules file not loaded into the ledger, to try a draft (no decision can be recorded
    /// on its flags).
    #[arg(long, value_name = "FILE", conflicts_with = "rules")]
    pub rules_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct MonitorRunArgs {
    #[command(flatten)]
    pub rules: MonitorRulesArg,
    /// The region to watch: the latest rules version loaded for it (with --rules, its
    /// version of that name).
    #[arg(long)]
    pub region: Option<String>,
    /// Only claims and payments whose own date is on or after this day (YYYY-MM-DD).
    #[arg(long, value_parser = parse_day)]
    pub from: Option<gongji_domain::Day>,
    /// Only claims and payments whose own date is on or before this day (YYYY-MM-DD).
    #[arg(long, value_parser = parse_day)]
    pub to: Option<gongji_domain::Day>,
    /// Also write one CSV row per flag to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// List the flags an auditor dismissed too.
    #[arg(long)]
    pub with_dismissed: bool,
    /// The whole report as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct MonitorExplainArgs {
    /// The flag's id (as `monitor run` printed it).
    pub flag: String,
    #[command(flatten)]
    pub rules: MonitorRulesArg,
    /// The region whose rules raised the flag (as for `run`).
    #[arg(long)]
    pub region: Option<String>,
    /// The flag and its evidence as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

fn parse_day(text: &str) -> Result<gongji_domain::Day, String> {
    text.parse()
}
