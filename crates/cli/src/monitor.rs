//! `gongji monitor run|explain`: fund supervision (智能监控), the monitoring rules of
//! `gongji-monitor` run over the ledger's log; the flags as text, `--json` or `--csv FILE`, and
//! one flag's evidence as `history` shows it.

use std::path::Path;
use std::process::ExitCode;

use gongji_domain::types::FlagDecision;
use gongji_domain::Command;
use gongji_ledger::now_micros;
use gongji_ledger::Ledger;
use gongji_monitor::{Chosen, Flag, MonitorReport, MonitorRules, NotChosen, Scope, Source};
use gongji_recon::render::{spreadsheet_safe, terminal_safe};
use gongji_recon::words::Lang;
use gongji_server::answers::today_in_china;
use serde::Serialize;
use serde_json::json;

use crate::args::{
    MonitorDecideArgs, MonitorExplainArgs, MonitorRulesArg, MonitorRulesLoadArgs, MonitorRunArgs,
};
use crate::failure::Failure;
use crate::location::Location;
use crate::open::{open, open_or_create};
use crate::output;
use crate::output::Progress;
use crate::print;
use crate::text::reports::{columns, history_table};
use crate::text::Style;

pub fn run(data: &Location, args: &MonitorRunArgs) -> Result<ExitCode, Failure> {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from > to {
            return Err(Failure::bad_argument(format!(
                "--from {from} is after --to {to}"
            )));
        }
    }
    let ledger = open(data)?;
    let rules = choose_rules(&ledger, &args.rules, args.region.as_deref())?.rules;
    let scope = Scope {
        from: args.from,
        to: args.to,
        with_dismissed: args.with_dismissed,
        sweep_every: None,
    };
    let mut bar = Progress::on_terminal("monitor");
    let report = gongji_monitor::run(&ledger, &rules, scope, &mut |done, total| {
        bar.step("records", done, total)
    })
    .map_err(|e| Failure::ledger("monitor run", &e))?;
    bar.finish();
    if let Some(path) = &args.csv {
        write_csv(path, &report.flags)?;
    }
    let printed = if args.json {
        print::json_line(&serde_json::to_string(&report).expect("a report serializes"))
    } else {
        print::raw(&text(&report, &Style::untimed()))
    };
    printed.map_err(|e| Failure::io(format!("cannot write to standard output: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

pub fn explain(data: &Location, args: &MonitorExplainArgs) -> Result<ExitCode, Failure> {
    let ledger = open(data)?;
    let rules = choose_rules(&ledger, &args.rules, args.region.as_deref())?.rules;
    let mut bar = Progress::on_terminal("monitor");
    let explained = gongji_monitor::explain(&ledger, &rules, &args.flag, &mut |done, total| {
        bar.step("records", done, total)
    })
    .map_err(|e| Failure::ledger("monitor explain", &e));
    bar.finish();
    let explained = explained?.ok_or_else(|| {
        Failure::not_found(format!(
            "rules {} raise no flag {} on this ledger",
            rules.version, args.flag
        ))
    })?;
    if args.json {
        print::json_line(&json!(explained).to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::current().map_err(Failure::bad_argument)?;
    let mut out = flags_table(std::slice::from_ref(&explained.flag), &style).join("\n");
    out.push('\n');
    let entries: Vec<serde_json::Value> = explained.evidence.iter().map(|e| json!(e)).collect();
    for line in history_table(&entries, &style) {
        out += &terminal_safe(&line);
        out.push('\n');
    }
    print::raw(&out).map_err(|e| Failure::io(format!("cannot write to standard output: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// `monitor decide FLAG`: the flag looked up by a pass of the rules (so a mistyped id or one
/// of other rules is refused before anything is written), then the decision (a command no
/// input line can give) committed and its outcome printed.
pub fn decide(data: &Location, args: &MonitorDecideArgs) -> Result<ExitCode, Failure> {
    let decision: FlagDecision = serde_json::from_value(json!(args.decision)).map_err(|_| {
        Failure::bad_argument(format!(
            "--decision {:?}: confirmed or dismissed",
            args.decision
        ))
    })?;
    let (rules, found) = {
        let ledger = open(data)?;
        let chosen = choose_rules(&ledger, &args.rules, args.region.as_deref())?;
        if matches!(chosen.source, Source::Draft) {
            return Err(Failure::bad_argument(format!(
                "rules {} are a file, not loaded into the ledger: load them with `gongji \
                 monitor rules load FILE` before deciding on their flags",
                chosen.rules.version
            )));
        }
        let rules = chosen.rules;
        let mut bar = Progress::on_terminal("monitor");
        let found = gongji_monitor::explain(&ledger, &rules, &args.flag, &mut |done, total| {
            bar.step("records", done, total)
        })
        .map_err(|e| Failure::ledger("monitor decide", &e));
        bar.finish();
        (rules, found?)
    };
    let flag = found
        .ok_or_else(|| {
            Failure::not_found(format!(
                "rules {} raise no flag {} on this ledger",
                rules.version, args.flag
            ))
        })?
        .flag;
    let command = Command::DecideFlag {
        flag: flag.id,
        region: flag.region,
        decision,
        reason: args.reason.clone(),
        by: args.by.clone(),
        date: args.date.unwrap_or_else(today_in_china),
    };
    let ledger = open_or_create(data)?;
    commit_one(ledger, command, args.json)
}

/// The rules a pass uses: the file given (a draft), or the version asked for as loaded, or
/// the latest loaded (the shipped defaults where none is), for `region` when given.
fn choose_rules(
    ledger: &Ledger,
    arg: &MonitorRulesArg,
    region: Option<&str>,
) -> Result<Chosen, Failure> {
    let Some(path) = &arg.rules_file else {
        return gongji_monitor::choose(ledger, region, arg.rules.as_deref()).map_err(
            |why| match why {
                NotChosen::Ledger(error) => Failure::ledger("monitor", &error),
                other => Failure::bad_argument(other.to_string()),
            },
        );
    };
    let rules = MonitorRules::from_file(path).map_err(Failure::bad_input)?;
    if let Some(region) = region.filter(|r| *r != rules.region) {
        return Err(Failure::bad_argument(format!(
            "rules {} are region {}'s; they cannot watch region {region}",
            rules.version, rules.region
        )));
    }
    Ok(Chosen {
        rules,
        source: Source::Draft,
    })
}

/// `monitor rules load FILE`: the file read and checked, then recorded as its region's next
/// version unless the same rules are loaded already.
pub fn load_rules(data: &Location, args: &MonitorRulesLoadArgs) -> Result<ExitCode, Failure> {
    let rules = MonitorRules::from_file(&args.file).map_err(Failure::bad_input)?;
    let ledger = open_or_create(data)?;
    let date = args.date.unwrap_or_else(today_in_china);
    let command = gongji_monitor::load_command(&ledger, &rules, &args.by, date)
        .map_err(Failure::bad_input)?;
    let Some(command) = command else {
        ledger.close()?;
        let result = json!({
            "region": rules.region,
            "version": rules.version,
            "already_loaded": true,
        });
        let note = json!({"line": 1, "ok": true, "result": result});
        if args.json {
            print::json_line(&note.to_string())?;
        } else {
            print::raw(&format!(
                "monitoring rules {} of region {} are loaded already: nothing to do\n",
                terminal_safe(&rules.version),
                terminal_safe(&rules.region)
            ))
            .map_err(|e| Failure::io(format!("cannot write to standard output: {e}")))?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    commit_one(ledger, command, args.json)
}

/// Applies `command` (one no input line can give), commits it, closes the ledger and prints the
/// outcome as `apply` prints a line's; exit 1 if it was refused.
fn commit_one(mut ledger: Ledger, command: Command, json: bool) -> Result<ExitCode, Failure> {
    ledger.apply_parsed(Ok(command), now_micros())?;
    let outcome = ledger.commit()?;
    ledger.close()?;
    let rejected = output::print_outcomes(&mut print::stdout(), &[(1, outcome[0].clone())], json)
        .map_err(|e| Failure::io(format!("cannot write to standard output: {e}")))?;
    Ok(if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `monitor rules list`: every version loaded, in log order, and whether the shipped defaults
/// stand in for Chongqing.
pub fn list_rules(data: &Location, json: bool) -> Result<ExitCode, Failure> {
    let ledger = open(data)?;
    let versions =
        gongji_monitor::loaded::loaded(&ledger).map_err(|e| Failure::ledger("monitor", &e))?;
    let loaded = &versions.loaded;
    let shipped = MonitorRules::chongqing();
    let shipped_used = !loaded.iter().any(|l| l.rules.region == shipped.region);
    if json {
        let listed: Vec<serde_json::Value> = loaded
            .iter()
            .map(|l| {
                json!({
                    "region": l.rules.region,
                    "version": l.rules.version,
                    "effective": l.rules.effective,
                    "position": l.position,
                    "by": l.by,
                    "date": l.date,
                })
            })
            .collect();
        let shipped =
            shipped_used.then(|| json!({"region": shipped.region, "version": shipped.version}));
        let unreadable: Vec<serde_json::Value> = versions
            .unreadable
            .iter()
            .map(|u| json!({"region": u.region, "version": u.version, "position": u.position, "why": u.why}))
            .collect();
        let answer = json!({"versions": listed, "unreadable": unreadable, "shipped_defaults_in_use": shipped});
        print::json_line(&answer.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for l in loaded {
        out += &format!(
            "region {}  version {}  effective {}  loaded {} by {} (position {})\n",
            terminal_safe(&l.rules.region),
            terminal_safe(&l.rules.version),
            l.rules.effective,
            l.date,
            terminal_safe(&l.by),
            l.position
        );
    }
    for u in &versions.unreadable {
        out += &format!(
            "region {}  version {}  (position {}) does not read: {}\n",
            terminal_safe(&u.region),
            terminal_safe(&u.version),
            u.position,
            terminal_safe(&u.why)
        );
    }
    if shipped_used {
        out += &format!(
            "region {}  version {}  (the shipped defaults: no version is loaded for the region)\n",
            shipped.region, shipped.version
        );
    }
    print::raw(&out).map_err(|e| Failure::io(format!("cannot write to standard output: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// A rule's name for people.
fn rule_label(rule: &str, lang: Lang) -> String {
    let (kind, check) = rule.split_once('/').unwrap_or((rule, ""));
    let zh = match (kind, check) {
        ("frequency", _) => "就诊频次异常",
        ("splitting", _) => "分解支付（疑似套现）",
        ("duplicate_visit", "same_visit") => "同一就诊重复结算",
        ("duplicate_visit", _) => "同日多机构就诊",
        ("family", "yearly") => "共济支付年度超额",
        ("family", "pharmacy_day") => "同日为多名亲属购药",
        ("family", _) => "绑定后短期大额共济支付",
        ("timing", "late") => "迟报",
        ("timing", "after_death") => "死亡后记录的费用",
        ("timing", "before_death") => "死亡前集中支付",
        ("timing", _) => "转出前集中支付",
        ("institution", "claims") => "机构结算量异常",
        ("institution", "fund") => "机构基金支付异常",
        ("institution", _) => "恰达起付线或限额占比异常",
        _ => "",
    };
    match lang {
        Lang::Zh if !zh.is_empty() => format!("{zh} {rule}"),
        _ => rule.to_string(),
    }
}

fn flags_table(flags: &[Flag], style: &Style) -> Vec<String> {
    let header: Vec<String> = match style.lang {
        Lang::Zh => [
            "疑点编号",
            "规则",
            "对象",
            "期间",
            "指标（阈值）",
            "证据",
            "审核结论",
        ],
        Lang::En => [
            "flag",
            "rule",
            "subject",
            "period",
            "figures (threshold)",
            "evidence",
            "decision",
        ],
    }
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = flags
        .iter()
        .map(|flag| {
            let subject = [flag.member.as_deref(), flag.institution.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" @ ");
            let figures: Vec<String> = flag
                .figures
                .iter()
                .map(|f| {
                    if f.threshold.is_empty() {
                        format!("{} {}", f.name, f.value)
                    } else {
                        format!("{} {} ({})", f.name, f.value, f.threshold)
                    }
                })
                .collect();
            vec![
                flag.id.clone(),
                rule_label(&flag.rule, style.lang),
                subject,
                format!("{} – {}", flag.from, flag.to),
                figures.join("; "),
                flag.evidence_count.to_string(),
                decision_text(flag, style.lang),
            ]
        })
        .collect();
    columns(&header, &safe_rows(rows), &[5])
}

/// Every cell with what a terminal could act on escaped (ids, names and reasons come from
/// input), before the columns are measured.
fn safe_rows(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|row| {
            row.iter()
                .map(|cell| terminal_safe(cell).into_owned())
                .collect()
        })
        .collect()
}

/// A flag's latest decision for people: what, by whom, when.
fn decision_text(flag: &Flag, lang: Lang) -> String {
    let Some(d) = &flag.decision else {
        return String::new();
    };
    let what = match (d.decision, lang) {
        (FlagDecision::Confirmed, Lang::Zh) => "确认违规",
        (FlagDecision::Dismissed, Lang::Zh) => "排除",
        (FlagDecision::Confirmed, _) => "confirmed",
        (FlagDecision::Dismissed, _) => "dismissed",
    };
    format!("{what} ({} {}): {}", d.by, d.date, d.reason)
}

/// The report for people: the pass, the count per rule, then every flag.
fn text(report: &MonitorReport, style: &Style) -> String {
    let zh = style.lang == Lang::Zh;
    let mut out = if zh {
        format!(
            "智能监控：规则版本 {}，统筹地区 {}，读取日志记录 {} 条，列出疑点 {} 个（已确认 {}，已排除 {}）\n",
            terminal_safe(&report.rules_version),
            terminal_safe(&report.region),
            report.records,
            report.flags.len(),
            report.confirmed,
            report.dismissed
        )
    } else {
        format!(
            "Fund supervision: rules {}, region {}, {} log records read, {} flags listed ({} confirmed, {} dismissed)\n",
            terminal_safe(&report.rules_version),
            terminal_safe(&report.region),
            report.records,
            report.flags.len(),
            report.confirmed,
            report.dismissed
        )
    };
    let header: Vec<String> = if zh {
        vec!["规则".into(), "疑点数".into()]
    } else {
        vec!["rule".into(), "flags".into()]
    };
    let rows: Vec<Vec<String>> = report
        .by_rule
        .iter()
        .map(|(rule, count)| vec![rule_label(rule, style.lang), count.to_string()])
        .collect();
    for line in columns(&header, &safe_rows(rows), &[1]) {
        out += &line;
        out.push('\n');
    }
    if !report.flags.is_empty() {
        out.push('\n');
        for line in flags_table(&report.flags, style) {
            out += &line;
            out.push('\n');
        }
    }
    out
}

/// A CSV cell a spreadsheet will not run as a formula (ids come from input).
fn cell(text: &str) -> String {
    spreadsheet_safe(text).into_owned()
}

/// One CSV row per flag.
#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    rule: String,
    rules_version: String,
    region: String,
    member: String,
    institution: String,
    from: String,
    to: String,
    figures: String,
    evidence_count: u64,
    evidence: String,
    /// The latest decision on the flag, if any: what, by whom, on which day, why.
    decision: &'static str,
    decided_by: String,
    decided_on: String,
    reason: String,
}

fn write_csv(path: &Path, flags: &[Flag]) -> Result<(), Failure> {
    let cannot =
        |e: &dyn std::fmt::Display| Failure::io(format!("cannot write {}: {e}", path.display()));
    let mut writer = csv::Writer::from_path(path).map_err(|e| cannot(&e))?;
    for flag in flags {
        let figures: Vec<String> = flag
            .figures
            .iter()
            .map(|f| {
                format!("{}={} {}", f.name, f.value, f.threshold)
                    .trim_end()
                    .to_string()
            })
            .collect();
        let evidence: Vec<String> = flag.evidence.iter().map(u64::to_string).collect();
        writer
            .serialize(Row {
                id: &flag.id,
                rule: cell(&flag.rule),
                rules_version: cell(&flag.rules_version),
                region: cell(&flag.region),
                member: cell(flag.member.as_deref().unwrap_or("")),
                institution: cell(flag.institution.as_deref().unwrap_or("")),
                from: flag.from.to_string(),
                to: flag.to.to_string(),
                figures: cell(&figures.join("; ")),
                evidence_count: flag.evidence_count,
                evidence: evidence.join(" "),
                decision: match flag.decision.as_ref().map(|d| d.decision) {
                    Some(FlagDecision::Confirmed) => "confirmed",
                    Some(FlagDecision::Dismissed) => "dismissed",
                    None => "",
                },
                decided_by: cell(flag.decision.as_ref().map_or("", |d| d.by.as_str())),
                decided_on: flag
                    .decision
                    .as_ref()
                    .map_or(String::new(), |d| d.date.to_string()),
                reason: cell(flag.decision.as_ref().map_or("", |d| d.reason.as_str())),
            })
            .map_err(|e| cannot(&e))?;
    }
    writer.flush().map_err(|e| cannot(&e))
}
