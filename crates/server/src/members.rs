//! The reads of one member's data: account, year, history, inheritance, transfers, a claim's
//! explanation. Each answers the JSON the command line's `--json` prints for the same question
//! (the same ledger call, the same view, the same [`answers`] shaping) and is written to the
//! access log, synced, before the answer is sent ([`App::member_read`]).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use gongji_domain::time::{YEAR_MAX, YEAR_MIN};
use gongji_domain::Day;
use gongji_ledger::{not_enrolled, AsOf, Ledger, LedgerError};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::access_log::AccessEntry;
use crate::answers::{self, Asked, QUERY_NAMES};
use crate::app::{App, Identity, Placement};
use crate::error::{path, query, ApiError, ErrorBody};
use crate::openapi;
use crate::schemas::{
    AccountAnswer, ExplainAnswer, HistoryEntryAnswer, InheritanceAnswer, TimelineAnswer,
    TransfersAnswer, YearAnswer,
};

/// `?as_of=&recorded_before=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// Only events dated on or before this day (YYYY-MM-DD, 1900 to 2200).
    #[param(value_type = Option<openapi::DayParam>, inline)]
    pub as_of: Option<String>,
    /// Only events recorded before this time: RFC 3339 with an offset, or a local time
    /// (YYYY-MM-DDTHH:MM:SS) or a day in the ledger's zone.
    #[param(value_type = Option<openapi::RecordedTimeParam>, inline)]
    pub recorded_before: Option<String>,
}

impl AsOfQuery {
    pub fn asked(&self) -> Result<Asked, ApiError> {
        ask(&self.as_of, &self.recorded_before)
    }
}

/// A member's id from the path and an as-of question from the query (the question's error is
/// answered after the access log has it).
pub struct AsOfRead {
    id: String,
    asked: Result<Asked, ApiError>,
}

impl<S: Send + Sync> FromRequestParts<S> for AsOfRead {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<AsOfRead, ApiError> {
        let id = path(Path::<String>::from_request_parts(parts, state).await)?;
        let q = Query::<AsOfQuery>::from_request_parts(parts, state).await;
        let asked = query(q).and_then(|q| q.asked());
        Ok(AsOfRead { id, asked })
    }
}

/// An as-of question from a URL's parameters, or 400 saying why it does not read.
fn ask(as_of: &Option<String>, recorded_before: &Option<String>) -> Result<Asked, ApiError> {
    Asked::parse(as_of.as_deref(), recorded_before.as_deref(), QUERY_NAMES)
        .map_err(ApiError::bad_request)
}

/// `/v1/members/{id}/years/{year}`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct YearPath {
    /// The member's id
    id: String,
    /// The insurance year (YYYY, 1900 to 2200)
    #[param(value_type = openapi::YearParam, inline)]
    year: String,
}

/// The year a path names, or 400 if it is not a whole number in the years the ledger holds.
fn insurance_year(text: &str) -> Result<i32, ApiError> {
    text.parse()
        .ok()
        .filter(|year| (YEAR_MIN..=YEAR_MAX).contains(year))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "year: '{text}' is not a year from {YEAR_MIN} to {YEAR_MAX}"
            ))
        })
}

/// `?region=&as_of=&recorded_before=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct YearQuery {
    /// The region whose counters to show (default: where the member was at the year's end).
    region: Option<String>,
    /// Only events dated on or before this day (YYYY-MM-DD, 1900 to 2200).
    #[param(value_type = Option<openapi::DayParam>, inline)]
    as_of: Option<String>,
    /// Only events recorded before this time (as for the account).
    #[param(value_type = Option<openapi::RecordedTimeParam>, inline)]
    recorded_before: Option<String>,
}

/// `?from=&to=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only events dated on or after this day (YYYY-MM-DD, 1900 to 2200).
    #[param(value_type = Option<openapi::DayParam>, inline)]
    from: Option<String>,
    /// Only events dated on or before this day (YYYY-MM-DD, 1900 to 2200).
    #[param(value_type = Option<openapi::DayParam>, inline)]
    to: Option<String>,
}

/// What a read is about, for the access log.
enum Subject {
    Member(String),
    Claim(String),
}

/// The request as the access log records it.
pub struct Asker {
    identity: Identity,
    method: Method,
    uri: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Asker {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Asker, ApiError> {
        let Extension(identity) = Extension::<Identity>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::ledger(format!("no identity on a guarded route: {e}")))?;
        Ok(Asker {
            identity,
            method: parts.method.clone(),
            uri: parts.uri.to_string(),
        })
    }
}

impl Asker {
    /// The access log's entry of this request through `route`, about `member` (or `claim`),
    /// answered with `status`, now.
    pub(crate) fn entry(
        self,
        route: &'static str,
        member: Option<String>,
        claim: Option<String>,
        status: u16,
    ) -> AccessEntry {
        AccessEntry {
            at: AccessEntry::now(),
            token: self.identity.name,
            role: self.identity.role.as_str(),
            method: self.method.to_string(),
            route,
            member,
            claim,
            uri: self.uri,
            status,
        }
    }
}

impl App {
    /// Answers a read of one member's data with `query`'s answer, once the read is in the
    /// access log (synced); if it cannot be logged, the answer is not sent.
    async fn member_read(
        &self,
        asker: Asker,
        route: &'static str,
        subject: Subject,
        on: Result<Option<Day>, ApiError>,
        query: impl FnOnce(&Ledger) -> Result<Value, ApiError> + Send + 'static,
    ) -> Response {
        // A member's reads need the view's log at the acknowledged end, not its projections
        // (`Reads::run_member`); a claim's explanation finds its member in the projections.
        // Over a region map, the view is the ledger of the region that holds the member (on
        // the day asked, the one that held it then), or that holds the claim.
        // Over a map, parameters that do not read are refused before any region is asked, as
        // the one ledger's query refuses them.
        let reads = match (&self.placement, &subject, on) {
            (Placement::One { reads, .. }, _, _) => Ok(reads.clone()),
            (Placement::Map(_), _, Err(error)) => Err(error),
            (Placement::Map(map), Subject::Member(id), Ok(on)) => map.member_reads(id, on).await,
            (Placement::Map(map), Subject::Claim(id), Ok(_)) => map.claim_reads(id).await,
        };
        let asked = match (reads, &subject) {
            (Err(error), _) => Ok(Err(error)),
            (Ok(reads), Subject::Member(_)) => reads.run_member(query).await,
            (Ok(reads), Subject::Claim(_)) => reads.run(query).await,
        };
        let answer = match asked {
            Ok(answer) => answer,
            Err(error) => Err(error),
        };
        let (member, claim) = match subject {
            Subject::Member(id) => (Some(id), None),
            Subject::Claim(id) => {
                let member = answer.as_ref().ok().and_then(|v| v["member"].as_str());
                (member.map(str::to_string), Some(id))
            }
        };
        let status = match &answer {
            Ok(_) => 200,
            Err(error) => error.status.as_u16(),
        };
        let entry = asker.entry(route, member, claim, status);
        match (self.access.record(&entry).await, answer) {
            (Ok(()), Ok(value)) => Json(value).into_response(),
            (Ok(()), Err(error)) => error.into_response(),
            (Err(e), _) => {
                ApiError::ledger(format!("the access log cannot be written: {e}")).into_response()
            }
        }
    }
}

/// A view of a member as of a time.
type AsOfView<T> = fn(&Ledger, &str, &AsOf) -> Result<Option<T>, LedgerError>;

impl App {
    /// Answers `view` of member `id` as `asked`, or 404 saying the member was not enrolled
    /// then; through [`App::member_read`].
    async fn as_of_read<T: serde::Serialize + 'static>(
        &self,
        asker: Asker,
        route: &'static str,
        AsOfRead { id, asked }: AsOfRead,
        view: AsOfView<T>,
    ) -> Response {
        let subject = Subject::Member(id.clone());
        let on = asked.as_ref().map(|a| a.as_of.date).map_err(Clone::clone);
        self.member_read(asker, route, subject, on, move |ledger| {
            let asked = asked?;
            match view(ledger, &id, &asked.as_of).map_err(ApiError::of_ledger)? {
                Some(view) => Ok(asked.stated(view)),
                None => Err(ApiError::not_found(not_enrolled(&id, &asked.as_of))),
            }
        })
        .await
    }
}

/// A member's personal account (as `gongji account --json`).
#[utoipa::path(get, path = "/v1/members/{id}", tag = "members",
    params(("id" = String, Path, description = "The member's id"), AsOfQuery),
    responses((status = 200, description = "The account", body = AccountAnswer),
        (status = 400, description = "A parameter does not read", body = ErrorBody),
        (status = 404, description = "Not enrolled then", body = ErrorBody),
        (status = 409, description = "Over a region map: the member's account is in transit between two regions' ledgers", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn account(State(app): State<App>, asker: Asker, read: AsOfRead) -> Response {
    let route = "/v1/members/{id}";
    app.as_of_read(asker, route, read, Ledger::account_at).await
}

/// A deceased member's account (as `gongji inheritance --json`).
#[utoipa::path(get, path = "/v1/members/{id}/inheritance", tag = "members",
    params(("id" = String, Path, description = "The member's id"), AsOfQuery),
    responses((status = 200, description = "The inheritance", body = InheritanceAnswer),
        (status = 400, description = "A parameter does not read", body = ErrorBody),
        (status = 404, description = "Not enrolled then", body = ErrorBody),
        (status = 409, description = "Over a region map: the member's account is in transit between two regions' ledgers", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn inheritance(State(app): State<App>, asker: Asker, read: AsOfRead) -> Response {
    let route = "/v1/members/{id}/inheritance";
    app.as_of_read(asker, route, read, Ledger::inheritance)
        .await
}

/// A member's transfers between regions (as `gongji transfers --json`).
#[utoipa::path(get, path = "/v1/members/{id}/transfers", tag = "members",
    params(("id" = String, Path, description = "The member's id"), AsOfQuery),
    responses((status = 200, description = "The transfers", body = TransfersAnswer),
        (status = 400, description = "A parameter does not read", body = ErrorBody),
        (status = 404, description = "Not enrolled then", body = ErrorBody),
        (status = 409, description = "Over a region map: the member's account is in transit between two regions' ledgers", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn transfers(State(app): State<App>, asker: Asker, read: AsOfRead) -> Response {
    let route = "/v1/members/{id}/transfers";
    app.as_of_read(asker, route, read, Ledger::transfers).await
}

/// A member's events with what each changed in the account and the balance after it, and the
/// balance by day (as `gongji timeline --json`).
#[utoipa::path(get, path = "/v1/members/{id}/timeline", tag = "members",
    params(("id" = String, Path, description = "The member's id"), AsOfQuery),
    responses((status = 200, description = "The timeline", body = TimelineAnswer),
        (status = 400, description = "A parameter does not read", body = ErrorBody),
        (status = 404, description = "Not enrolled then", body = ErrorBody),
        (status = 409, description = "Over a region map: the member's account is in transit between two regions' ledgers", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn timeline(State(app): State<App>, asker: Asker, read: AsOfRead) -> Response {
    let route = "/v1/members/{id}/timeline";
    app.as_of_read(asker, route, read, Ledger::timeline).await
}

/// A member's standing in one insurance year (as `gongji year --json`).
#[utoipa::path(get, path = "/v1/members/{id}/years/{year}", tag = "members",
    params(YearPath, YearQuery),
    responses((status = 200, description = "The year", body = YearAnswer),
        (status = 400, description = "A parameter does not read", body = ErrorBody),
        (status = 404, description = "Nothing to show for that year", body = ErrorBody),
        (status = 409, description = "Over a region map: the member's account is in transit between two regions' ledgers", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn year(
    State(app): State<App>,
    asker: Asker,
    ids: Result<Path<YearPath>, PathRejection>,
    q: Result<Query<YearQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let YearPath { id, year } = path(ids)?;
    let q = query(q);
    let subject = Subject::Member(id.clone());
    let on = match &q {
        Ok(q) => insurance_year(&year)
            .and_then(|_| ask(&q.as_of, &q.recorded_before))
            .map(|asked| asked.as_of.date),
        Err(error) => Err(error.clone()),
    };
    Ok(app
        .member_read(
            asker,
            "/v1/members/{id}/years/{year}",
            subject,
            on,
            move |ledger| {
                let q = q?;
                let asked = ask(&q.as_of, &q.recorded_before)?;
                let year = insurance_year(&year)?;
                let answer = ledger
                    .year_answer(&id, year, q.region.as_deref(), &asked.as_of)
                    .map_err(ApiError::of_ledger)?;
                answer
                    .map(|view| asked.stated(view))
                    .map_err(ApiError::not_found)
            },
        )
        .await)
}

/// A member's events in order (the objects `gongji history --json` prints, as an array).
#[utoipa::path(get, path = "/v1/members/{id}/history", tag = "members",
    params(("id" = String, Path, description = "The member's id"), HistoryQuery),
    responses((status = 200, description = "The events, oldest first", body = Vec<HistoryEntryAnswer>),
        (status = 400, description = "A parameter does not read", body = ErrorBody),
        (status = 404, description = "The member has no events", body = ErrorBody),
        (status = 409, description = "Over a region map: the member's account is in transit between two regions' ledgers", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn history(
    State(app): State<App>,
    asker: Asker,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path(id)?;
    let q = query(q);
    let subject = Subject::Member(id.clone());
    let on = match &q {
        Ok(q) => (day("from", q.from.as_deref()))
            .and_then(|_| day("to", q.to.as_deref()))
            .map(|_| None),
        Err(error) => Err(error.clone()),
    };
    Ok(app
        .member_read(
            asker,
            "/v1/members/{id}/history",
            subject,
            on,
            move |ledger| {
                let q = q?;
                let from = day("from", q.from.as_deref())?;
                let to = day("to", q.to.as_deref())?;
                let entries =
                    answers::history_between(ledger, &id, from, to).map_err(ApiError::of_ledger)?;
                entries.map(Value::Array).map_err(ApiError::not_found)
            },
        )
        .await)
}

pub(crate) fn day(name: &str, text: Option<&str>) -> Result<Option<Day>, ApiError> {
    text.map(|t| {
        t.parse()
            .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
    })
    .transpose()
}

/// Why a claim settled as it did (as `gongji explain --json`).
#[utoipa::path(get, path = "/v1/claims/{id}/explain", tag = "members",
    params(("id" = String, Path, description = "The claim's id")),
    responses((status = 200, description = "The explanation", body = ExplainAnswer),
        (status = 404, description = "No settled claim has this id", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn explain(
    State(app): State<App>,
    asker: Asker,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path(id)?;
    let subject = Subject::Claim(id.clone());
    Ok(app
        .member_read(
            asker,
            "/v1/claims/{id}/explain",
            subject,
            Ok(None),
            move |ledger| {
                let view = ledger.explain(&id).map_err(ApiError::of_ledger)?;
                view.map(|view| json!(view)).map_err(ApiError::not_found)
            },
        )
        .await)
}
