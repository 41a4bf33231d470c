//! Fund supervision live: `GET /v1/flags` (the flags of a monitoring rules version over the log
//! as it stands, filtered) and `POST /v1/flags/{id}/decision` (an auditor's decision recorded in
//! the log, under the token's name).
//!
//! The server keeps one [`Live`] per rules version asked for ([`Monitors`]): the records made
//! durable are observed by the same detectors `gongji monitor run` runs, [`STEP_RECORDS`] at a
//! time under the read view's guard, by the request that finds it behind and by a task that
//! follows the durable position the command streams report ([`follow`]), so a version asked for
//! once stays level with the change feed. An answer is the flags of a pass over every record
//! durable when the request arrived: exactly what `monitor run --rules VERSION --with-dismissed`
//! lists there, then filtered.
//!
//! Over a region map both routes answer 501 (each region's ledger has its own supervision
//! stream: ask the region's own server).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use gongji_domain::types::FlagDecision;
use gongji_domain::Command;
use gongji_ledger::{now_micros, LineOutcome};
use gongji_monitor::live::{self, Live};
use gongji_monitor::{Flag, MonitorRules, NotChosen, Tally};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::app::{App, Identity, Placement};
use crate::bulk::logged_about;
use crate::error::{path, query, ApiError, ErrorBody};
use crate::members::Asker;
use crate::reads::Reads;
use crate::routes::whole;
use crate::schemas::{FlagDecidedAnswer, FlagsAnswer};

/// Records a monitor observes under the read view's guard at a time (a few tens of
/// milliseconds); between two steps the view's follower gets in.
const STEP_RECORDS: u64 = 1 << 16;

/// Flags in an answer when the request does not say.
const FLAGS_DEFAULT: u64 = 1000;

/// Flags in an answer at most (more is refused).
const FLAGS_MAX: u64 = 10_000;

/// How often the follower looks at the durable position.
const FOLLOW_TICK: Duration = Duration::from_secs(1);

/// The live monitors, one per rules version asked for (region, version).
#[derive(Default)]
pub struct Monitors {
    lives: Mutex<HashMap<(String, String), Live>>,
}

/// What a monitor gives a request: its rules, the records observed and the flags.
struct Current {
    rules: MonitorRules,
    records: u64,
    flags: Arc<Vec<Flag>>,
}

fn not_chosen(why: NotChosen) -> ApiError {
    match why {
        NotChosen::Unknown(why) => ApiError::not_found(why),
        NotChosen::Unclear(why) => ApiError::bad_request(why),
        NotChosen::Ledger(error) => ApiError::of_ledger(error),
    }
}

fn lives(monitors: &Monitors) -> std::sync::MutexGuard<'_, HashMap<(String, String), Live>> {
    monitors
        .lives
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The flags of the rules `region` and `version` choose (as `monitor run` chooses them) over
/// every record durable when the request arrived. The monitor steps under the read view's
/// guard; its flags are judged from a copy after the guard is let go. Within the service's
/// read bound, or 503 (the monitor keeps what it read: asking again goes on from there).
async fn current(
    app: &App,
    reads: &Reads,
    region: Option<String>,
    version: Option<String>,
) -> Result<Current, ApiError> {
    let target = app.metrics.durable_position.load(Ordering::Acquire);
    let deadline = tokio::time::Instant::now() + app.limits.read_max;
    loop {
        let monitors = app.monitors.clone();
        let (region, version) = (region.clone(), version.clone());
        let step = reads
            .run(
                move |ledger| -> Result<(MonitorRules, Option<(u64, live::Current)>), ApiError> {
                    let chosen =
                        gongji_monitor::choose(ledger, region.as_deref(), version.as_deref())
                            .map_err(not_chosen)?;
                    let key = (chosen.rules.region.clone(), chosen.rules.version.clone());
                    let mut lives = lives(&monitors);
                    let live = lives
                        .entry(key)
                        .or_insert_with(|| Live::new(chosen.rules.clone()));
                    if live.position() < target {
                        live.step(ledger, STEP_RECORDS)
                            .map_err(ApiError::of_ledger)?;
                    }
                    let level = live.position() >= target.min(ledger.log().durable_end());
                    Ok((
                        chosen.rules,
                        level.then(|| (live.position(), live.current())),
                    ))
                },
            )
            .await??;
        match step {
            (rules, Some((records, live::Current::Ready(flags)))) => {
                return Ok(Current {
                    rules,
                    records,
                    flags,
                });
            }
            (rules, Some((_, live::Current::Judge(snapshot)))) => {
                let position = snapshot.position;
                let flags = tokio::task::spawn_blocking(move || Arc::new(snapshot.flags()))
                    .await
                    .map_err(ApiError::ledger)?;
                if let Some(live) = lives(&app.monitors).get_mut(&rules_key(&rules)) {
                    live.judged(position, Arc::clone(&flags));
                }
                return Ok(Current {
                    rules,
                    records: position,
                    flags,
                });
            }
            (_, None) if tokio::time::Instant::now() >= deadline => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    format!(
                        "the monitor has not read the whole log within {} s; ask again (it \
                         goes on from where it is)",
                        app.limits.read_max.as_secs_f64()
                    ),
                ))
            }
            (_, None) => {}
        }
    }
}

fn rules_key(rules: &MonitorRules) -> (String, String) {
    (rules.region.clone(), rules.version.clone())
}

/// Keeps every monitor asked for level with the durable position the command streams report,
/// until the server stops: a monitor's flags are ready when asked, as the change feed's events
/// are. Each monitor steps under a read guard of its own.
pub async fn follow(app: App) {
    let Placement::One { reads, .. } = &app.placement else {
        return;
    };
    let mut shutdown = app.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_TICK) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let durable = app.metrics.durable_position.load(Ordering::Acquire);
        // Never waits on the runtime's thread: a monitor busy with a request is left to it.
        let behind: Vec<(String, String)> = match app.monitors.lives.try_lock() {
            Ok(lives) => lives
                .iter()
                .filter(|(_, live)| live.position() < durable)
                .map(|(key, _)| key.clone())
                .collect(),
            Err(_) => continue,
        };
        for key in behind {
            // Step by step (each under a read guard of its own) up to the durable end seen.
            loop {
                let monitors = app.monitors.clone();
                let key = key.clone();
                let stepped = reads
                    .run(move |ledger| match lives(&monitors).get_mut(&key) {
                        Some(live) => live
                            .step(ledger, STEP_RECORDS)
                            .map(|read| read > 0 && live.position() < durable),
                        None => Ok(false),
                    })
                    .await;
                match stepped {
                    Ok(Ok(true)) => continue,
                    Ok(Ok(false)) => break,
                    Ok(Err(e)) => {
                        // A request asking for flags gets the error itself; the follower tries
                        // again at its next tick.
                        eprintln!("gongji serve: monitoring cannot follow the log: {e}");
                        break;
                    }
                    Err(e) => {
                        eprintln!(
                            "gongji serve: monitoring cannot follow the log: {}",
                            e.message
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// Prometheus text: the records each live monitor has observed (`gongji_monitor_records`, by
/// region and rules version), beside `gongji_durable_position`. Empty while none was asked for.
pub fn metrics(app: &App) -> String {
    let Ok(lives) = app.monitors.lives.try_lock() else {
        return String::new();
    };
    if lives.is_empty() {
        return String::new();
    }
    let mut keys: Vec<&(String, String)> = lives.keys().collect();
    keys.sort();
    let mut text = String::from(
        "# HELP gongji_monitor_records Records a live monitoring rules version has observed.\n\
         # TYPE gongji_monitor_records gauge\n",
    );
    for key in keys {
        let (region, version) = key;
        text += &format!(
            "gongji_monitor_records{{region=\"{}\",rules=\"{}\"}} {}\n",
            label(region),
            label(version),
            lives[key].position()
        );
    }
    text
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `?rules=&region=&rule=&member=&institution=&decision=&offset=&limit=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagsQuery {
    /// The rules version (as `gongji monitor rules list` shows it); without it, the latest
    /// loaded for the region (the shipped Chongqing defaults where none is).
    rules: Option<String>,
    /// The pooling region whose rules to run.
    region: Option<String>,
    /// Only flags of this rule (`splitting`, `frequency/institution_claims_per_day`, …), or of
    /// every rule of a kind (`frequency`, `timing`, …).
    rule: Option<String>,
    /// Only flags about this member.
    member: Option<String>,
    /// Only flags about this institution.
    institution: Option<String>,
    /// `undecided`, `confirmed`, `dismissed`, or `any`; without it, every flag but the
    /// dismissed ones (as `monitor run` lists them).
    #[param(pattern = "^(undecided|confirmed|dismissed|any)$")]
    decision: Option<String>,
    /// Flags of the filtered list to skip (default 0).
    #[param(value_type = Option<u32>, maximum = 2147483647)]
    offset: Option<String>,
    /// Most flags in the answer (default 1000, at most 10000: more is refused).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

/// Which decisions a listing keeps.
#[derive(Clone, Copy)]
enum Decided {
    NotDismissed,
    Undecided,
    Is(FlagDecision),
    Any,
}

impl Decided {
    fn parse(text: Option<&str>) -> Result<Decided, ApiError> {
        Ok(match text {
            None => Decided::NotDismissed,
            Some("undecided") => Decided::Undecided,
            Some("confirmed") => Decided::Is(FlagDecision::Confirmed),
            Some("dismissed") => Decided::Is(FlagDecision::Dismissed),
            Some("any") => Decided::Any,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "decision={other:?}: undecided, confirmed, dismissed or any"
                )))
            }
        })
    }

    fn keeps(self, flag: &Flag) -> bool {
        let decision = flag.decision.as_ref().map(|d| d.decision);
        match self {
            Decided::NotDismissed => decision != Some(FlagDecision::Dismissed),
            Decided::Undecided => decision.is_none(),
            Decided::Is(wanted) => decision == Some(wanted),
            Decided::Any => true,
        }
    }
}

/// The flags of a monitoring rules version over every record durable when the request
/// arrived, filtered (the flags `gongji monitor run --json` lists, with the dismissed ones when
/// asked); `total` counts the filtered list, `flags` is its page.
#[utoipa::path(get, path = "/v1/flags", tag = "supervision",
    params(FlagsQuery),
    responses((status = 200, description = "The rules version, the records read, the count per rule, the filtered flags' count and a page of them", body = FlagsAnswer),
        (status = 400, description = "A parameter does not read, or several regions have rules and none was named", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 404, description = "No such rules version is loaded", body = ErrorBody),
        (status = 501, description = "This server serves a region map: ask the region's own ledger", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn flags(
    State(app): State<App>,
    asker: Asker,
    q: Result<Query<FlagsQuery>, QueryRejection>,
) -> Response {
    let member = q.as_ref().ok().and_then(|Query(q)| q.member.clone());
    let answer = listing(&app, q).await.map(|v| Json(v).into_response());
    logged_about(&app, asker, "/v1/flags", member, answer).await
}

async fn listing(
    app: &App,
    q: Result<Query<FlagsQuery>, QueryRejection>,
) -> Result<Value, ApiError> {
    let q = query(q)?;
    let decided = Decided::parse(q.decision.as_deref())?;
    let offset = whole("offset", q.offset, 0, 0, i32::MAX as u64)?;
    let limit = whole("limit", q.limit, FLAGS_DEFAULT, 1, FLAGS_MAX)?;
    let (offset, limit) = (offset as usize, limit as usize);
    let reads = app.one_ledger("/v1/flags")?.clone();
    let current = current(app, &reads, q.region, q.rules).await?;
    let tally = Tally::of(&current.rules, &current.flags);
    let rule_fits = |flag: &Flag| {
        q.rule.as_deref().is_none_or(|rule| {
            flag.rule == rule
                || flag
                    .rule
                    .strip_prefix(rule)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    };
    let kept: Vec<&Flag> = current
        .flags
        .iter()
        .filter(|flag| {
            decided.keeps(flag)
                && rule_fits(flag)
                && q.member
                    .as_deref()
                    .is_none_or(|m| flag.member.as_deref() == Some(m))
                && q.institution
                    .as_deref()
                    .is_none_or(|i| flag.institution.as_deref() == Some(i))
        })
        .collect();
    let page: Vec<&Flag> = kept.iter().skip(offset).take(limit).copied().collect();
    Ok(json!({
        "rules_version": current.rules.version,
        "region": current.rules.region,
        "records": current.records,
        "by_rule": tally.by_rule,
        "confirmed": tally.confirmed,
        "dismissed": tally.dismissed,
        "total": kept.len(),
        "offset": offset,
        "flags": page,
    }))
}

/// The body of a decision.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `confirmed` (the pattern is misuse) or `dismissed` (it is not).
    #[schema(pattern = "^(confirmed|dismissed)$")]
    decision: String,
    /// Why: one line of printable text, 1 to 1024 bytes.
    reason: String,
    /// The rules version whose flag it is (as for `GET /v1/flags`); without it, the latest
    /// loaded for `region`.
    rules: Option<String>,
    /// The pooling region whose rules raised the flag (needed without `rules` when several
    /// regions have rules loaded).
    region: Option<String>,
}

/// Records an auditor's decision on a flag in the log (a `flag_decided` event on the region's
/// supervision stream), under the token's name and today's date (China Standard Time); the
/// flag must be one the rules raise over the log as it stands. Answers the outcome (the `result`
/// of `gongji monitor decide --json`).
#[utoipa::path(post, path = "/v1/flags/{id}/decision", tag = "supervision",
    params(("id" = String, Path, description = "The flag's id, as GET /v1/flags gives it")),
    request_body = DecisionBody,
    responses((status = 200, description = "The decision, recorded and durable", body = FlagDecidedAnswer),
        (status = 400, description = "The body does not read, or the decision is refused (its code says why: invalid_value, reason_too_long, …)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 404, description = "The rules raise no such flag over the log, or no such rules version is loaded", body = ErrorBody),
        (status = 501, description = "This server serves a region map: ask the region's own ledger", body = ErrorBody),
        (status = 503, description = "The ledger was busy, its store out of reach, or the answer took too long", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn decide(
    State(app): State<App>,
    Extension(identity): Extension<Identity>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path(id)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let decision = match body.decision.as_str() {
        "confirmed" => FlagDecision::Confirmed,
        "dismissed" => FlagDecision::Dismissed,
        other => {
            return Err(ApiError::bad_request(format!(
                "decision {other:?}: confirmed or dismissed"
            )))
        }
    };
    let (reads, writer) = match &app.placement {
        Placement::One { reads, writer } => (reads.clone(), writer.clone()),
        Placement::Map(_) => {
            return Err(app
                .one_ledger("/v1/flags/{id}/decision")
                .err()
                .expect("a map"))
        }
    };
    let current = current(&app, &reads, body.region.clone(), body.rules.clone()).await?;
    let flag = current
        .flags
        .iter()
        .find(|flag| flag.id == id)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "rules {} raise no flag {id} over the log",
                current.rules.version
            ))
        })?;
    let command = Command::DecideFlag {
        flag: flag.id,
        region: flag.region,
        decision,
        reason: body.reason,
        by: identity.name,
        date: crate::answers::today_in_china(),
    };
    let mut held = writer.hold().await?;
    let metrics = app.metrics.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let ledger = held.ledger();
        let applied = ledger
            .apply_parsed(Ok(command), now_micros())
            .and_then(|()| ledger.commit());
        let end = ledger.log().durable_end();
        metrics.durable_position.fetch_max(end, Ordering::AcqRel);
        held.finish();
        applied
    })
    .await
    .map_err(ApiError::ledger)?
    .map_err(ApiError::of_ledger)?;
    match outcome.into_iter().next() {
        Some(LineOutcome::Applied(result)) => Ok(Json(json!(result))),
        Some(LineOutcome::Rejected(rejection)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            rejection.code.as_str(),
            rejection.message,
        )),
        None => Err(ApiError::ledger("the decision had no outcome")),
    }
}
