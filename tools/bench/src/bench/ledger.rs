//! The ledger as whole processes: a generated year applied with `gongji apply`, queries, and
//! `gongji rebuild`, each measured from outside.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gongji_log::Log;
use gongji_tools::gen::{generate_planted, Config};
use gongji_tools::plant::{plant, score, Planted};
use gongji_tools::rng::Rng;

use super::figures::{dir_bytes, emit, median_ms, note, rate, run_measured};
use super::options::Options;
use super::POLICY;

/// Stage 4, the ledger as whole processes: a generated year applied, queried and rebuilt, with the
/// projections in run files and then in sled (the same-run baseline), and optionally a large
/// ledger for queries. `pg_scan`: PostgreSQL's scan rate, if measured.
pub fn whole_ledger(o: &Options, work: &Path, pg_scan: Option<f64>) -> Result<(), String> {
    let gongji = match &o.gongji {
        Some(g) => g.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("gongji"),
    };
    if !gongji.exists() {
        note(&format!(
            "{} not found: build it (cargo build --release -p gongji-cli) or pass --gongji; \
             apply, replay and query figures skipped",
            gongji.display()
        ));
        return Ok(());
    }
    note(&format!("gongji apply of a {}-member year", o.members));
    let year = Year::generate(work, "year", o.members, PLANT_RATE)?;
    let (ledger, applied) = apply_year(&gongji, work, "ledger", &year, "runs", Some(""))?;
    let runs = if o.quick { 3 } else { 21 };
    bench_queries(&ledger, o.members, runs, "")?;
    bench_whatif(&ledger, work, &applied)?;
    let replay_rate = bench_rebuild(&ledger, pg_scan, "")?;
    bench_monitor(&ledger, &year, replay_rate)?;
    let _ = std::fs::remove_dir_all(&ledger.data);
    // The same year with the projections in sled (the store before issue 6's own), as the
    // same-run baseline of the projection store.
    note("the same year with --projections sled (baseline)");
    let (sled, sled_applied) =
        apply_year(&gongji, work, "ledger-sled", &year, "sled", Some("sled_"))?;
    emit(
        "apply_vs_sled_projections",
        rate(applied.lines, applied.elapsed) / rate(sled_applied.lines, sled_applied.elapsed),
        "ratio",
    );
    bench_queries(&sled, o.members, runs, "sled_")?;
    let sled_replay = bench_rebuild(&sled, None, "sled_")?;
    emit(
        "replay_vs_sled_projections",
        replay_rate / sled_replay,
        "ratio",
    );
    let _ = std::fs::remove_dir_all(&sled.data);
    if o.query_members > 0 {
        note(&format!("a {}-member ledger for queries", o.query_members));
        let big_year = Year::generate(work, "big", o.query_members, 0.0)?;
        let (big, _) = apply_year(&gongji, work, "big-ledger", &big_year, "runs", None)?;
        emit("big_ledger_events", big.events()? as f64, "events");
        bench_queries(&big, o.query_members, runs, "big_")?;
        let _ = std::fs::remove_dir_all(&big.data);
    }
    Ok(())
}

// ---- the ledger as whole processes -----------------------------------------

struct Ledger<'a> {
    gongji: &'a Path,
    data: PathBuf,
    /// `gongji --projections`: `runs` (the default) or `sled` (the baseline).
    projections: &'static str,
}

impl Ledger<'_> {
    fn command(&self) -> Command {
        let mut c = Command::new(self.gongji);
        c.arg("--data")
            .arg(&self.data)
            .arg("--projections")
            .arg(self.projections);
        c
    }

    fn load_policy(&self) -> Result<(), String> {
        let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(POLICY);
        let status = self
            .command()
            .args(["policy", "load"])
            .arg(&policy)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("gongji policy load failed".into());
        }
        Ok(())
    }

    fn events(&self) -> Result<u64, String> {
        let log = Log::open(&self.data).map_err(|e| e.to_string())?;
        Ok(log.durable_end())
    }
}

/// Misuse planted in the year (issue 19): half a case per thousand members of each pattern.
const PLANT_RATE: f64 = 0.0005;

fn generate_file(
    path: &Path,
    members: u64,
    seed: u64,
    plant_rate: f64,
) -> Result<(u64, Vec<Planted>), String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let config = Config {
        members,
        seed,
        ..Config::default()
    };
    let start = Instant::now();
    let planting = plant(&config, plant_rate);
    let stats = generate_planted(&config, &planting, &mut out).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    emit(
        "gen_lines_per_second",
        rate(stats.lines, start.elapsed()),
        "lines/s",
    );
    note(&format!("generated {}: {stats:?}", path.display()));
    Ok((stats.lines, planting.cases))
}

/// What `apply_year` measured.
struct Applied {
    lines: u64,
    elapsed: Duration,
}

/// `gongji monitor run` over the applied year: its rate (issue 19's target: a million records
/// a second) against the same ledger's replay, its peak memory, and each rule's recall of the
/// planted misuse with the flags on ordinary members.
fn bench_monitor(ledger: &Ledger, year: &Year, replay_rate: f64) -> Result<(), String> {
    let report_path = ledger.data.with_extension("monitor.json");
    let (code, elapsed, peak) = run_measured(
        ledger
            .command()
            .args(["monitor", "run", "--json"])
            .stdout(File::create(&report_path).map_err(|e| e.to_string())?),
    )?;
    if code != 0 {
        return Err(format!("gongji monitor run exited with {code}"));
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).map_err(|e| e.to_string())?)
            .map_err(|e| format!("monitor report: {e}"))?;
    let records = report["records"].as_u64().unwrap_or(0);
    let monitor_rate = rate(records, elapsed);
    emit("monitor_records_per_second", monitor_rate, "records/s");
    emit("monitor_vs_replay", monitor_rate / replay_rate, "ratio");
    emit("monitor_peak_rss", peak as f64 / (1 << 20) as f64, "MiB");
    let rules: Vec<String> = report["by_rule"]
        .as_object()
        .ok_or("the monitor report has no by_rule")?
        .keys()
        .cloned()
        .collect();
    let flags = report["flags"].as_array().cloned().unwrap_or_default();
    emit("monitor_flags", flags.len() as f64, "flags");
    for scored in score(&rules, &year.planted, &flags) {
        let name = scored.rule.replace('/', "_");
        if let Some(recall) = scored.recall() {
            emit(&format!("monitor_recall_{name}"), recall, "ratio");
            if scored.found < scored.planted {
                note(&format!(
                    "monitor: {} of {} planted {} cases not flagged",
                    scored.planted - scored.found,
                    scored.planted,
                    scored.rule
                ));
            }
        } else {
            note(&format!("monitor: nothing planted for {}", scored.rule));
        }
        emit(
            &format!("monitor_unplanted_{name}"),
            scored.unplanted as f64,
            "flags",
        );
    }
    Ok(())
}

/// `gongji whatif` over the applied year, with the policy in force (which must change no
/// claim) and with a proposal (deductibles halved, ratios 10 points higher), each against
/// the same year's `apply` (issue 18's target: re-settling at least 10 times faster).
fn bench_whatif(ledger: &Ledger, work: &Path, applied: &Applied) -> Result<(), String> {
    let policy_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(POLICY);
    let text = std::fs::read_to_string(&policy_path).map_err(|e| e.to_string())?;
    let mut proposal: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    proposal["version"] = "500000/bench-proposal".into();
    for rule in proposal["outpatient"]["deductibles"]
        .as_array_mut()
        .ok_or("the policy has no deductibles")?
    {
        let amount: f64 = rule["amount"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or(0.0);
        rule["amount"] = format!("{:.2}", amount / 2.0).into();
    }
    for rule in proposal["outpatient"]["ratios"]
        .as_array_mut()
        .ok_or("the policy has no ratios")?
    {
        for band in rule["bands"]
            .as_array_mut()
            .ok_or("a ratio rule has no bands")?
        {
            let ratio: f64 = band["ratio"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0.0);
            band["ratio"] = format!("{:.2}", (ratio + 0.10).min(1.0)).into();
        }
    }
    let proposal_path = work.join("proposal.json");
    std::fs::write(&proposal_path, proposal.to_string()).map_err(|e| e.to_string())?;
    for (name, policy) in [("in_force", &policy_path), ("proposal", &proposal_path)] {
        let report_path = work.join(format!("whatif-{name}.json"));
        let (code, elapsed, peak) = run_measured(
            ledger
                .command()
                .arg("whatif")
                .arg("--policy")
                .arg(policy)
                .arg("--json")
                .stdout(File::create(&report_path).map_err(|e| e.to_string())?),
        )?;
        if code != 0 {
            return Err(format!("gongji whatif exited with {code}"));
        }
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&report_path).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("whatif report: {e}"))?;
        let claims = report["total"]["claims"].as_f64().unwrap_or(0.0);
        let changed = report["total"]["changed"].as_f64().unwrap_or(0.0);
        if name == "in_force" && changed != 0.0 {
            return Err(format!(
                "whatif with the policy in force changed {changed} claims"
            ));
        }
        emit(
            &format!("whatif_{name}_seconds"),
            elapsed.as_secs_f64(),
            "s",
        );
        emit(&format!("whatif_{name}_claims"), claims, "claims");
        emit(&format!("whatif_{name}_changed_claims"), changed, "claims");
        emit(
            &format!("whatif_{name}_peak_rss"),
            peak as f64 / (1 << 20) as f64,
            "MiB",
        );
        emit(
            &format!("whatif_{name}_vs_apply"),
            applied.elapsed.as_secs_f64() / elapsed.as_secs_f64(),
            "ratio",
        );
        if name == "proposal" {
            note(&format!(
                "whatif proposal: pooled fund {} recorded, {} proposed",
                report["total"]["recorded"]["pooled"], report["total"]["proposed"]["pooled"]
            ));
        }
    }
    Ok(())
}

/// A generated year: its command file and how many lines it has.
struct Year {
    file: PathBuf,
    members: u64,
    lines: u64,
    /// The misuse planted in it.
    planted: Vec<Planted>,
}

impl Year {
    fn generate(work: &Path, name: &str, members: u64, plant_rate: f64) -> Result<Year, String> {
        let file = work.join(format!("{name}.jsonl"));
        let (lines, planted) = generate_file(&file, members, 1, plant_rate)?;
        Ok(Year {
            file,
            members,
            lines,
            planted,
        })
    }
}

/// `policy load` + `apply` of a generated year; returns the ledger. Figures are printed when
/// `report` says so: `Some("")` for the ledger as it runs, `Some("sled_")` for the baseline.
fn apply_year<'a>(
    gongji: &'a Path,
    work: &Path,
    name: &str,
    year: &Year,
    projections: &'static str,
    report: Option<&str>,
) -> Result<(Ledger<'a>, Applied), String> {
    let ledger = Ledger {
        gongji,
        data: work.join(name),
        projections,
    };
    let _ = std::fs::remove_dir_all(&ledger.data);
    ledger.load_policy()?;
    let results = work.join(format!("{name}.results"));
    let (code, elapsed, peak) = run_measured(
        ledger
            .command()
            .arg("apply")
            .arg(&year.file)
            .arg("--json")
            .stdout(File::create(&results).map_err(|e| e.to_string())?),
    )?;
    if code != 0 && code != 1 {
        return Err(format!("gongji apply exited with {code}"));
    }
    let rejected = BufReader::new(File::open(&results).map_err(|e| e.to_string())?)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("\"ok\":false"))
        .count();
    let run = ApplyRun {
        lines: year.lines,
        members: year.members,
        rejected: rejected as u64,
        events: ledger.events()?,
        elapsed,
        peak_bytes: peak,
    };
    match report {
        Some("sled_") => run.emit_sled(&ledger.data),
        Some(_) => run.emit(&ledger.data),
        None => {}
    }
    let applied = Applied {
        lines: year.lines,
        elapsed,
    };
    Ok((ledger, applied))
}

/// What one `gongji apply` of a year measured.
struct ApplyRun {
    lines: u64,
    members: u64,
    rejected: u64,
    events: u64,
    elapsed: Duration,
    peak_bytes: u64,
}

impl ApplyRun {
    fn peak_mib(&self) -> f64 {
        self.peak_bytes as f64 / (1 << 20) as f64
    }

    /// The figures of the sled baseline.
    fn emit_sled(&self, data: &Path) {
        emit(
            "sled_projections_apply_commands_per_second",
            rate(self.lines, self.elapsed),
            "commands/s",
        );
        emit("sled_projections_apply_peak_rss", self.peak_mib(), "MiB");
        emit(
            "sled_projections_footprint_total_bytes_per_event",
            (dir_bytes(&data.join("segments")) + dir_bytes(&data.join("index"))) as f64
                / self.events as f64,
            "bytes/event",
        );
    }

    /// The figures of the ledger as it runs.
    fn emit(&self, data: &Path) {
        let (lines, events, elapsed) = (self.lines, self.events, self.elapsed);
        emit("apply_members", self.members as f64, "members");
        emit("apply_lines", lines as f64, "commands");
        emit("apply_rejected_lines", self.rejected as f64, "commands");
        emit("apply_events", events as f64, "events");
        emit("apply_seconds", elapsed.as_secs_f64(), "s");
        emit(
            "apply_commands_per_second",
            rate(lines, elapsed),
            "commands/s",
        );
        emit("apply_events_per_second", rate(events, elapsed), "events/s");
        emit("apply_peak_rss", self.peak_mib(), "MiB");
        emit(
            "apply_vs_target_300k_commands_per_second",
            rate(lines, elapsed) / 300_000.0,
            "ratio",
        );
        emit(
            "apply_vs_target_250k_commands_per_second",
            rate(lines, elapsed) / 250_000.0,
            "ratio",
        );
        let segments = dir_bytes(&data.join("segments"));
        let index = dir_bytes(&data.join("index"));
        emit(
            "footprint_segments_bytes_per_event",
            segments as f64 / events as f64,
            "bytes/event",
        );
        emit(
            "footprint_index_and_projections_bytes_per_event",
            index as f64 / events as f64,
            "bytes/event",
        );
        emit(
            "footprint_stream_index_bytes_per_event",
            dir_bytes(&data.join("index").join("streams")) as f64 / events as f64,
            "bytes/event",
        );
        emit(
            "footprint_projections_bytes_per_event",
            dir_bytes(&data.join("index").join("projections")) as f64 / events as f64,
            "bytes/event",
        );
        emit(
            "footprint_total_bytes_per_event",
            (segments + index) as f64 / events as f64,
            "bytes/event",
        );
        emit(
            "footprint_vs_target_110_bytes_per_event",
            (segments + index) as f64 / events as f64 / 110.0,
            "ratio (at most 1 meets it)",
        );
    }
}

fn bench_queries(ledger: &Ledger<'_>, members: u64, runs: u64, prefix: &str) -> Result<(), String> {
    let mut rng = Rng::new(9);
    for (label, args) in [
        ("account", vec!["account"]),
        ("year", vec!["year"]),
        ("account_as_of", vec!["account", "--as-of", "2024-06-30"]),
    ] {
        let mut samples = Vec::new();
        let mut peak_max = 0;
        for _ in 0..runs {
            let member = format!("M{:07}", rng.below(members));
            let mut c = ledger.command();
            c.args(&args).arg(&member);
            if label == "year" {
                c.arg("2024");
            }
            let (code, elapsed, peak) =
                run_measured(c.stdout(Stdio::null()).stderr(Stdio::null()))?;
            if code > 1 {
                return Err(format!("gongji {label} {member} exited with {code}"));
            }
            samples.push(elapsed);
            peak_max = peak_max.max(peak);
        }
        emit(
            &format!("{prefix}query_{label}_median"),
            median_ms(samples.clone()),
            "ms",
        );
        emit(
            &format!("{prefix}query_{label}_max"),
            samples.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            "ms",
        );
    }
    // history reads the member's stream from the log.
    let mut samples = Vec::new();
    for _ in 0..runs {
        let member = format!("M{:07}", rng.below(members));
        let (code, elapsed, _) = run_measured(
            ledger
                .command()
                .args(["history", &member])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        if code > 1 {
            return Err(format!("gongji history {member} exited with {code}"));
        }
        samples.push(elapsed);
    }
    emit(
        &format!("{prefix}query_history_median"),
        median_ms(samples),
        "ms",
    );
    Ok(())
}

/// `gongji rebuild`; returns events a second. Figures are printed unless `prefix` is `sled_`
/// (the baseline, whose rate the caller compares).
fn bench_rebuild(
    ledger: &Ledger<'_>,
    scan_baseline: Option<f64>,
    prefix: &str,
) -> Result<f64, String> {
    let events = ledger.events()?;
    let (code, elapsed, peak) = run_measured(
        ledger
            .command()
            .arg("rebuild")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    if code != 0 {
        return Err(format!("gongji rebuild exited with {code}"));
    }
    let events_rate = rate(events, elapsed);
    if prefix == "sled_" {
        emit(
            "sled_projections_replay_events_per_second",
            events_rate,
            "events/s",
        );
        return Ok(events_rate);
    }
    emit("replay_events", events as f64, "events");
    emit("replay_events_per_second", events_rate, "events/s");
    emit("replay_peak_rss", peak as f64 / (1 << 20) as f64, "MiB");
    emit(
        "replay_vs_target_3m_events_per_second",
        events_rate / 3e6,
        "ratio",
    );
    emit(
        "replay_vs_target_2m_events_per_second",
        events_rate / 2e6,
        "ratio",
    );
    if let Some(pg) = scan_baseline {
        emit("replay_vs_postgres_scan", events_rate / pg, "ratio");
    }
    Ok(events_rate)
}
