//! The routes that are not about one member: health, the OpenAPI document, metrics, a
//! region's funds, the policies loaded, the access log, and the answer to a path that is no
//! route. Fund and policy answers are the command line's `--json` ones (the same calls, the
//! same [`answers`] shaping).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::access_log::{Page, PAGE_ENTRIES_MAX};
use crate::answers;
use crate::app::{App, Identity, Placement};
use crate::error::{path, query, ApiError, ErrorBody};
use crate::members::AsOfQuery;
use crate::openapi::Answer;
use crate::roles::ROUTES;
use crate::schemas::{FundAnswer, PolicyListItemAnswer};

/// Whether the server is up (no token needed).
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "Up", body = Answer)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// This document (no token needed).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI document", body = Answer)))]
pub async fn openapi(State(app): State<App>) -> Response {
    let document = app.openapi.get().cloned().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// Who the token is: its name, its role and the routes the role may use (the web page shows
/// only those; the guard refuses the rest whatever a page asks), and the zone the ledger reads
/// and shows recorded times in (`+08:00` unless `GONGJI_TZ_OFFSET` says otherwise).
#[utoipa::path(get, path = "/v1/me", tag = "service",
    responses((status = 200, description = "The token's name, role and routes", body = Answer),
        (status = 401, description = "No valid token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(Extension(identity): Extension<Identity>) -> Json<Value> {
    let routes: Vec<Value> = ROUTES
        .iter()
        .filter(|(_, _, kind)| kind.allows(identity.role))
        .map(|(method, path, _)| json!({"method": method, "path": path}))
        .collect();
    let zone = answers::ledger_zone().map_or_else(|_| Value::Null, |z| Value::from(z.to_string()));
    Json(
        json!({"name": identity.name, "role": identity.role.as_str(), "routes": routes,
        "time_zone": zone}),
    )
}

/// Requests by route and status, command lines applied and refused, the durable position, and
/// the records each live monitoring rules version has observed.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain", body = String),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn metrics(State(app): State<App>) -> Response {
    let mut text = app.metrics.render();
    text += &crate::flags::metrics(&app);
    let kind = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, kind)], text).into_response()
}

/// A region's pooled and large-amount funds (as `gongji fund --json`).
#[utoipa::path(get, path = "/v1/funds/{region}", tag = "funds",
    params(("region" = String, Path, description = "The pooling region's code"), AsOfQuery),
    responses((status = 200, description = "The funds", body = FundAnswer),
        (status = 400, description = "A parameter does not read", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 404, description = "No fund or policy for the region", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn fund(
    State(app): State<App>,
    region: Result<Path<String>, PathRejection>,
    q: Result<Query<AsOfQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let region = path(region)?;
    let asked = query(q)?.asked()?;
    let reads = match &app.placement {
        Placement::One { reads, .. } => reads.clone(),
        Placement::Map(map) => map.region_reads(&region)?,
    };
    let view = reads
        .run(move |ledger| {
            let view = ledger.fund_at(&region, &asked.as_of);
            view.map(|v| {
                v.map(|v| asked.stated(v))
                    .ok_or_else(|| answers::no_fund(&region))
            })
        })
        .await?;
    let value = view.map_err(ApiError::of_ledger)?;
    value.map(Json).map_err(ApiError::not_found)
}

/// Every region's policy versions (the objects `gongji policy list --json` prints).
#[utoipa::path(get, path = "/v1/policies", tag = "policies",
    responses((status = 200, description = "The versions, by region", body = Vec<PolicyListItemAnswer>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn policies(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    let lines = match &app.placement {
        Placement::One { reads, .. } => reads.run(answers::policy_lines).await?,
        Placement::Map(map) => map.policy_lines().await?,
    };
    Ok(Json(Value::Array(lines.map_err(ApiError::of_ledger)?)))
}

/// Entries in a page of the access log when the request does not say.
const PAGE_ENTRIES_DEFAULT: u64 = 100;

/// The largest entry number a request may name: the document's `int64`.
const ENTRY_NUMBER_MAX: u64 = i64::MAX as u64;

/// `?from=&limit=` or `?last=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The first entry's number (from 0)
    #[param(value_type = Option<u64>, maximum = 9223372036854775807_i64)]
    from: Option<String>,
    /// Most entries (default 100, at most 1000: more is refused)
    #[param(value_type = Option<u32>, maximum = 1000)]
    limit: Option<String>,
    /// Instead of the first entries from `from`: the last this many (at most 1000, and at most
    /// `limit` if given) of those from `from` on
    #[param(value_type = Option<u32>, maximum = 1000)]
    last: Option<String>,
}

/// Who read whose data: the access log's entries from `from` (0 is the first), at most `limit`
/// (100 unless given; more than [`PAGE_ENTRIES_MAX`] is refused, 400); `next` is where the next
/// page starts; or, with `last`, the latest entries and `next` the number of entries.
#[utoipa::path(get, path = "/v1/access-log", tag = "audit",
    params(PageQuery),
    responses((status = 200, description = "A page of entries, and where the next starts", body = Page),
        (status = 400, description = "A parameter does not read", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn access_log(
    State(app): State<App>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let q = query(q)?;
    if let Some(last) = q.last {
        let from = whole("from", q.from, 0, 0, ENTRY_NUMBER_MAX)?;
        let count = whole("last", Some(last), 0, 0, PAGE_ENTRIES_MAX as u64)?;
        let limit = whole("limit", q.limit, count, 0, PAGE_ENTRIES_MAX as u64)?;
        let count = usize::try_from(count.min(limit)).map_err(ApiError::ledger)?;
        let access = app.access.clone();
        let page = tokio::task::spawn_blocking(move || access.last(from, count))
            .await
            .map_err(ApiError::ledger)?
            .map_err(|e| ApiError::ledger(format!("the access log cannot be read: {e}")))?;
        return Ok(Json(page));
    }
    let from = whole("from", q.from, 0, 0, ENTRY_NUMBER_MAX)?;
    let limit = whole(
        "limit",
        q.limit,
        PAGE_ENTRIES_DEFAULT,
        0,
        PAGE_ENTRIES_MAX as u64,
    )?;
    let limit = usize::try_from(limit).map_err(ApiError::ledger)?;
    let access = app.access.clone();
    let page = tokio::task::spawn_blocking(move || access.page(from, limit))
        .await
        .map_err(ApiError::ledger)?
        .map_err(|e| ApiError::ledger(format!("the access log cannot be read: {e}")))?;
    Ok(Json(page))
}

/// A whole-number parameter `name` from `min` to `max` as given, `default` when absent, or 400
/// saying why it does not read.
pub(crate) fn whole(
    name: &str,
    text: Option<String>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let number = text
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("{name}: '{text}' is not a whole number")))?;
    if number > max {
        return Err(ApiError::bad_request(format!(
            "{name}: {number} is more than {max}, the most it may be"
        )));
    }
    if number < min {
        return Err(ApiError::bad_request(format!(
            "{name}: {number} is less than {min}, the least it may be"
        )));
    }
    Ok(number)
}

/// A route asked with a method it does not answer.
pub async fn no_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not answer this method: see /v1/openapi.json",
    )
}

/// A path that is no route.
pub async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route: see /v1/openapi.json",
    )
}
