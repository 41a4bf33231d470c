//! `gongji`: the command-line program. It parses arguments, reads input, and prints; every
//! decision and every byte stored is `gongji-ledger`'s.

mod output;

/// mimalloc rather than the system allocator: `apply` and `rebuild` allocate and free small
/// strings and buffers by the million (about a fifth of their instructions went to glibc's
/// malloc and free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use gongji_ledger::archive::ArchiveFilter;
use gongji_ledger::{
    now_micros, AsOf, DurableGroup, Ledger, LedgerError, LogOptions, ProjectionBackend,
    StreamError, StreamOptions,
};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "gongji",
    version,
    about = "Gongji (共济): an event-sourced ledger for employee medical insurance accounts and funds"
)]
struct Cli {
    /// The ledger's data directory (created on first use).
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Where the projections are kept: `runs` (sorted run files of the log's own, the default)
    /// or `sled` (a sled tree, the earlier store; kept as a baseline). Each keeps its own
    /// checkpoint, so switching costs at most a rebuild at the next open.
    #[arg(long, global = true, value_enum, default_value = "runs")]
    projections: Projections,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Projections {
    Runs,
    Sled,
}

/// The projection store chosen on the command line, for every ledger this process opens.
static PROJECTIONS: std::sync::OnceLock<ProjectionBackend> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Cmd {
    /// Apply commands from a JSON Lines file (`-` for standard input), one command a line.
    Apply {
        file: String,
        /// One JSON object per input line on standard output.
        #[arg(long)]
        json: bool,
        /// Most lines decided before their events are made durable together (group commit).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_lines: u32,
        /// Store the projections once this many entities are dirty (default 140,000). For
        /// tests that want the background projection writer at work on small inputs.
        #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..))]
        store_after_dirty: Option<u32>,
    },
    /// A member's personal account.
    Account {
        member: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        as_of: AsOfArgs,
    },
    /// A member's standing in one insurance year: deductible, ordinary limit, fund payments.
    Year {
        member: String,
        year: i32,
        /// The region whose counters to show (default: where the member was at the year's end).
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        as_of: AsOfArgs,
    },
    /// A deceased member's account: balance on the day of death, later movements, payouts.
    Inheritance {
        member: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        as_of: AsOfArgs,
    },
    /// A member's transfers between pooling regions, with the balances moved.
    Transfers {
        member: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        as_of: AsOfArgs,
    },
    /// A region's pooled and large-amount funds.
    Fund {
        region: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        as_of: AsOfArgs,
    },
    /// A member's events, in order, from the log.
    History {
        member: String,
        #[arg(long)]
        json: bool,
        /// Only events whose own date is on or after this day.
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Only events whose own date is on or before this day.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
    },
    /// Why a claim settled as it did: policy figures, positions before and after, every event.
    Explain {
        claim: String,
        #[arg(long)]
        json: bool,
    },
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
    Settlement {
        institution: String,
        /// YYYY-MM.
        month: String,
        #[arg(long)]
        json: bool,
    },
    /// Policy versions: load one from a file, or list those loaded.
    Policy {
        #[command(subcommand)]
        action: PolicyCmd,
    },
    /// Drop every projection and rebuild them from the log.
    Rebuild,
}

/// The two times of an as-of answer.
#[derive(clap::Args)]
struct AsOfArgs {
    /// Only events whose own date is on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    as_of: Option<String>,
    /// Only events the ledger had recorded before this time (RFC 3339, or a UTC day YYYY-MM-DD
    /// meaning its midnight).
    #[arg(long, value_name = "TIMESTAMP")]
    recorded_before: Option<String>,
}

impl AsOfArgs {
    fn parse(&self) -> Result<AsOf, String> {
        let date = match &self.as_of {
            Some(text) => Some(
                text.parse::<gongji_domain::Day>()
                    .map_err(|e| format!("--as-of: {e}"))?,
            ),
            None => None,
        };
        let recorded_before_micros = match &self.recorded_before {
            Some(text) => Some(parse_timestamp(text)?),
            None => None,
        };
        Ok(AsOf {
            date,
            recorded_before_micros,
        })
    }
}

fn parse_timestamp(text: &str) -> Result<i64, String> {
    let bad = || {
        format!("--recorded-before: '{text}' is not a time like 2024-07-01T08:00:00Z or a day like 2024-07-01")
    };
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_micros());
    }
    let day: gongji_domain::Day = text.parse().map_err(|_| bad())?;
    let midnight = day.date().and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    Ok(midnight.and_utc().timestamp_micros())
}

#[derive(Subcommand)]
enum ReconcileCmd {
    /// Match an institution's detail file (3202) against the ledger, settlement by settlement.
    Detail {
        file: PathBuf,
        #[arg(long)]
        institution: String,
        #[arg(long, value_name = "DATE")]
        from: String,
        #[arg(long, value_name = "DATE")]
        to: String,
        #[arg(long)]
        json: bool,
        /// Write every difference to this CSV file, one row per difference.
        #[arg(long, value_name = "OUT")]
        csv: Option<PathBuf>,
    },
    /// Check a totals file (3201: one row per institution and period) against the ledger.
    Totals {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Rebuild every projection from the first record; print the state's digest and the
    /// totals per region.
    Replay {
        #[arg(long)]
        json: bool,
    },
    /// Check every record's checksum and the hash chain, the ledger's invariants, and that the
    /// live projections equal a fresh rebuild; name the first failure and exit 1.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Write the log (or the part selected) to one self-describing archive file.
    Export {
        file: PathBuf,
        /// Only events whose own date is on or after / on or before these days.
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// Only events of this region.
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check an archive with no ledger: every line, the chain, the manifest; replay a complete
    /// archive to its digest and totals. Exit 1 if it fails, naming where.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Lift the quarantine a damaged record put on the ledger, once the whole log verifies
    /// again (restore the damaged segment from a backup first).
    ClearQuarantine,
    /// Restore a ledger into an empty --data directory from a complete archive that passes the
    /// check.
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Load a policy version (JSON) into the ledger.
    Load {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the policy versions loaded, per region.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `audit check` needs no ledger at all.
    if let Cmd::Audit {
        action: AuditCmd::Check { file, json },
    } = &cli.command
    {
        return match audit_check(file, *json) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("gongji: {error}");
                ExitCode::from(2)
            }
        };
    }
    PROJECTIONS.get_or_init(|| match cli.projections {
        Projections::Runs => ProjectionBackend::Runs,
        Projections::Sled => ProjectionBackend::Sled,
    });
    let Some(data) = cli.data.clone() else {
        eprintln!("gongji: --data DIR is required: the ledger's data directory");
        return ExitCode::from(2);
    };
    match run(&data, cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("gongji: {error}");
            ExitCode::from(2)
        }
    }
}

fn log_options() -> LogOptions {
    LogOptions {
        projections: PROJECTIONS.get().copied().unwrap_or_default(),
        ..LogOptions::default()
    }
}

fn open(data: &Path) -> Result<Ledger, String> {
    Ledger::open_with(data, log_options())
        .map_err(|e| format!("cannot open ledger at {}: {e}", data.display()))
}

/// For `rebuild` and `audit replay`: opened without folding onto the projections they replace
/// (which may be what is damaged).
fn open_to_rebuild(data: &Path) -> Result<Ledger, String> {
    Ledger::open_to_rebuild(data, log_options())
        .map_err(|e| format!("cannot open ledger at {}: {e}", data.display()))
}

fn run(data: &Path, command: Cmd) -> Result<ExitCode, String> {
    match command {
        Cmd::Apply {
            file,
            json,
            batch_lines,
            store_after_dirty,
        } => apply(data, &file, json, batch_lines as usize, store_after_dirty),
        Cmd::Account {
            member,
            json,
            as_of,
        } => member_view(data, &member, json, &as_of, |ledger, as_of| {
            ledger.account_at(&member, as_of)
        }),
        Cmd::Year {
            member,
            year,
            region,
            json,
            as_of,
        } => member_view(data, &member, json, &as_of, |ledger, as_of| {
            ledger.year_at(&member, year, region.as_deref(), as_of)
        }),
        Cmd::Inheritance {
            member,
            json,
            as_of,
        } => member_view(data, &member, json, &as_of, |ledger, as_of| {
            ledger.inheritance(&member, as_of)
        }),
        Cmd::Transfers {
            member,
            json,
            as_of,
        } => member_view(data, &member, json, &as_of, |ledger, as_of| {
            ledger.transfers(&member, as_of)
        }),
        Cmd::Fund {
            region,
            json,
            as_of,
        } => {
            let as_of = as_of.parse()?;
            let ledger = open(data)?;
            let view = ledger.fund_at(&region, &as_of).map_err(|e| e.to_string())?;
            found(
                view.map(|v| json!(v)),
                json,
                &format!("region {region} has no fund or policy in this ledger"),
            )
        }
        Cmd::History {
            member,
            json,
            from,
            to,
        } => {
            let day =
                |flag: &str, text: &Option<String>| -> Result<Option<gongji_domain::Day>, String> {
                    text.as_ref()
                        .map(|t| t.parse().map_err(|e| format!("{flag}: {e}")))
                        .transpose()
                };
            let (from, to) = (day("--from", &from)?, day("--to", &to)?);
            let ledger = open(data)?;
            let entries = ledger.history(&member).map_err(|e| e.to_string())?;
            if entries.is_empty() {
                return found(None, json, &format!("member {member} has no events"));
            }
            let entries = entries.into_iter().filter(|e| {
                let date = e.event.date();
                from.is_none_or(|f| date >= f) && to.is_none_or(|t| date <= t)
            });
            let mut out = io::stdout().lock();
            for entry in entries {
                let value = json!(entry);
                let line = if json {
                    value.to_string()
                } else {
                    output::history_line(&value)
                };
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Reconcile {
            action:
                ReconcileCmd::Detail {
                    file,
                    institution,
                    from,
                    to,
                    json,
                    csv,
                },
        } => {
            let ledger = open(data)?;
            let mut bar = output::Progress::new("reconcile", io::stderr().is_terminal());
            let printed = gongji_recon::cli::detail(
                &ledger,
                &file,
                &institution,
                &from,
                &to,
                json,
                csv.as_deref(),
                &mut |done, total| bar.show(done, total),
            )?;
            bar.finish();
            print!("{}", printed.text);
            Ok(ExitCode::from(printed.exit_code))
        }
        Cmd::Reconcile {
            action: ReconcileCmd::Totals { file, json },
        } => {
            let ledger = open(data)?;
            let mut bar = output::Progress::new("reconcile", io::stderr().is_terminal());
            let printed =
                gongji_recon::cli::totals(&ledger, &file, json, &mut |d, t| bar.show(d, t))?;
            bar.finish();
            print!("{}", printed.text);
            Ok(ExitCode::from(printed.exit_code))
        }
        Cmd::Settlement {
            institution,
            month,
            json,
        } => {
            let ledger = open(data)?;
            let mut bar = output::Progress::new("settlement", io::stderr().is_terminal());
            let printed =
                gongji_recon::cli::statement(&ledger, &institution, &month, json, &mut |d, t| {
                    bar.show(d, t)
                })?;
            bar.finish();
            print!("{}", printed.text);
            Ok(ExitCode::from(printed.exit_code))
        }
        Cmd::Explain { claim, json } => {
            let ledger = open(data)?;
            let view = ledger.explain(&claim).map_err(|e| e.to_string())?;
            let Some(view) = view else {
                return found(None, json, &format!("no settled claim has id {claim}"));
            };
            if json {
                println!("{}", json!(view));
            } else {
                println!("{}", output::explanation(&json!(view)));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit {
            action: AuditCmd::Replay { json },
        } => {
            let mut ledger = open_to_rebuild(data)?;
            let mut bar = output::Progress::new("replay", io::stderr().is_terminal());
            let report = ledger
                .audit_replay(&mut |done, total| bar.show(done, total))
                .map_err(|e| e.to_string())?;
            bar.finish();
            ledger.close().map_err(|e| e.to_string())?;
            Ok(print_report(
                &json!(report),
                json,
                output::audit_replay,
                false,
            ))
        }
        Cmd::Audit {
            action: AuditCmd::Verify { json },
        } => {
            let ledger = open(data)?;
            let mut bar = output::Progress::new("verify", io::stderr().is_terminal());
            let report = ledger
                .audit_verify(&mut |_, done, total| bar.show(done, total))
                .map_err(|e| e.to_string())?;
            bar.finish();
            Ok(print_report(
                &json!(report),
                json,
                output::audit_verify,
                report.failure.is_some(),
            ))
        }
        Cmd::Audit {
            action:
                AuditCmd::Export {
                    file,
                    from,
                    to,
                    region,
                    json,
                },
        } => {
            let day =
                |flag: &str, text: &Option<String>| -> Result<Option<gongji_domain::Day>, String> {
                    text.as_ref()
                        .map(|t| t.parse().map_err(|e| format!("{flag}: {e}")))
                        .transpose()
                };
            let filter = ArchiveFilter {
                from: day("--from", &from)?,
                to: day("--to", &to)?,
                region,
            };
            let ledger = open(data)?;
            let mut bar = output::Progress::new("export", io::stderr().is_terminal());
            let manifest = ledger
                .export_archive(&file, &filter, &mut |done, total| bar.show(done, total))
                .map_err(|e| e.to_string())?;
            bar.finish();
            let value = json!(manifest);
            if json {
                println!("{value}");
            } else {
                println!("wrote {}\n{}", file.display(), output::readable(&value));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit {
            action: AuditCmd::Check { .. },
        } => unreachable!("audit check runs before any ledger is opened"),
        Cmd::Audit {
            action: AuditCmd::ClearQuarantine,
        } => match Ledger::clear_quarantine(data).map_err(|e| e.to_string())? {
            Some(marker) => {
                println!(
                    "the log verifies again: quarantine of record {} ({}) lifted",
                    marker.position, marker.reason
                );
                Ok(ExitCode::SUCCESS)
            }
            None => {
                println!("the ledger at {} is not quarantined", data.display());
                Ok(ExitCode::SUCCESS)
            }
        },
        Cmd::Audit {
            action: AuditCmd::Import { file, json },
        } => {
            let (report, ledger) =
                gongji_ledger::archive::import_archive(data, &file, &mut |_, _| {})
                    .map_err(|e| e.to_string())?;
            let Some(ledger) = ledger else {
                print_report(&json!(report), json, output::archive_check, true);
                eprintln!(
                    "gongji: {} was not imported: it fails the check or is not a complete archive",
                    file.display()
                );
                return Ok(ExitCode::from(1));
            };
            let digest = ledger.digest().map_err(|e| e.to_string())?;
            ledger.close().map_err(|e| e.to_string())?;
            if json {
                println!("{}", json!({"imported": report.manifest, "digest": digest}));
            } else {
                println!(
                    "imported {} into {}; digest {digest}",
                    file.display(),
                    data.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Policy {
            action: PolicyCmd::Load { file, json },
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let policy: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
            let line = json!({"cmd": "load_policy", "policy": policy}).to_string();
            let mut ledger = open(data)?;
            ledger
                .apply_line(&line, now_micros())
                .map_err(|e| e.to_string())?;
            let outcome = ledger.commit().map_err(|e| e.to_string())?;
            ledger.close().map_err(|e| e.to_string())?;
            let mut out = io::stdout().lock();
            let rejected = output::print_outcomes(&mut out, &[(1, outcome[0].clone())], json)
                .map_err(|e| e.to_string())?;
            Ok(if rejected > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Policy {
            action: PolicyCmd::List { json },
        } => {
            let ledger = open(data)?;
            let mut out = io::stdout().lock();
            for region in ledger.policy_regions().map_err(|e| e.to_string())? {
                for policy in ledger.policies(&region).map_err(|e| e.to_string())? {
                    let value = json!({"region": region, "version": policy.version, "effective": policy.effective, "year_start": policy.year_start});
                    let line = if json {
                        value.to_string()
                    } else {
                        format!(
                            "{region}  {}  effective {}",
                            policy.version, policy.effective
                        )
                    };
                    writeln!(out, "{line}").map_err(|e| e.to_string())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Rebuild => {
            let mut ledger = open_to_rebuild(data)?;
            let started = Instant::now();
            let mut bar = output::Progress::new("rebuild", io::stderr().is_terminal());
            let folded = ledger
                .rebuild(&mut |done, total| bar.show(done, total))
                .map_err(|e| e.to_string())?;
            bar.finish();
            ledger.close().map_err(|e| e.to_string())?;
            println!(
                "rebuilt projections from {folded} records in {:.2?}",
                started.elapsed()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn audit_check(file: &Path, json: bool) -> Result<ExitCode, String> {
    let mut bar = output::Progress::new("check", io::stderr().is_terminal());
    let report = gongji_ledger::archive::check_archive(file, &mut |done| bar.show(done, 0))
        .map_err(|e| e.to_string())?;
    bar.finish();
    Ok(print_report(
        &json!(report),
        json,
        output::archive_check,
        report.failure.is_some(),
    ))
}

/// Prints a report as JSON or as text; exit status 1 when it records a failure.
fn print_report(
    value: &Value,
    json: bool,
    readable: fn(&Value) -> String,
    failed: bool,
) -> ExitCode {
    println!(
        "{}",
        if json {
            value.to_string()
        } else {
            readable(value)
        }
    );
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Answers a query about one member, now or as of a past time: JSON or text, exit 1 if the
/// member was not enrolled then.
fn member_view<T: serde::Serialize>(
    data: &Path,
    member: &str,
    json: bool,
    as_of: &AsOfArgs,
    query: impl FnOnce(&Ledger, &AsOf) -> Result<Option<T>, LedgerError>,
) -> Result<ExitCode, String> {
    let as_of = as_of.parse()?;
    let ledger = open(data)?;
    let view = query(&ledger, &as_of).map_err(|e| e.to_string())?;
    found(view.map(|v| json!(v)), json, &not_enrolled(member, &as_of))
}

fn not_enrolled(member: &str, as_of: &AsOf) -> String {
    if as_of.is_now() {
        format!("member {member} is not enrolled")
    } else {
        format!("member {member} was not enrolled as of the time asked")
    }
}

fn found(value: Option<Value>, json: bool, missing: &str) -> Result<ExitCode, String> {
    match value {
        Some(value) => {
            let text = if json {
                value.to_string()
            } else {
                output::readable(&value)
            };
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("gongji: {missing}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Inputs smaller than this get no progress bar (they are done before one would help).
const PROGRESS_INPUT_BYTES_MIN: u64 = 4 * 1024 * 1024;

/// `gongji apply`: [`Ledger::apply_stream`] with a sink that prints each group's outcomes (it
/// is given a group only once the group is durable) and counts them for the summary.
fn apply(
    data: &Path,
    file: &str,
    json: bool,
    batch_lines: usize,
    store_after_dirty: Option<u32>,
) -> Result<ExitCode, String> {
    let (source, size_bytes): (Box<dyn Read + Send>, Option<u64>) = if file == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let handle = File::open(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        let size = handle.metadata().ok().map(|m| m.len());
        (Box::new(handle), size)
    };
    let mut ledger = open(data)?;
    if let Some(dirty) = store_after_dirty {
        ledger.set_deferred_dirty_max(dirty as usize);
    }
    let show_progress =
        io::stderr().is_terminal() && size_bytes.is_some_and(|s| s > PROGRESS_INPUT_BYTES_MIN);
    let mut bar = output::Progress::new("apply", show_progress);
    let started = Instant::now();
    let mut out = io::BufWriter::new(io::stdout());
    let mut totals = output::Totals::default();
    let mut print = |group: &DurableGroup| -> io::Result<()> {
        let rejected = output::print_outcomes(&mut out, group.lines(), json)?;
        out.flush()?;
        totals.add(group.lines().len(), rejected);
        Ok(())
    };
    let options = StreamOptions {
        batch_lines,
        ..StreamOptions::default()
    };
    let streamed = ledger.apply_stream(source, &options, &mut print, &mut |read_bytes| {
        bar.show(read_bytes, size_bytes.unwrap_or(0))
    });
    bar.finish();
    let unreadable = match streamed {
        Ok(_) => None,
        Err(StreamError::Unreadable { after_line, error }) => Some(format!(
            "reading {file} failed after line {after_line}: {error}"
        )),
        Err(StreamError::Sink(error)) => return Err(format!("writing results failed: {error}")),
        Err(error) => return Err(error.to_string()),
    };
    ledger.close().map_err(|e| e.to_string())?;
    if let Some(message) = unreadable {
        eprintln!("gongji: {message}");
        return Ok(ExitCode::from(2));
    }
    if !json {
        let mut out = io::stdout().lock();
        writeln!(out, "{}", totals.summary(started.elapsed())).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(if totals.rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
