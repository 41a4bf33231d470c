//! Reconciliation and statements: `POST /v1/reconcile/detail`, `POST /v1/reconcile/totals`
//! (the body is the institution's file, UTF-8 or GB18030, at most [`RECON_BODY_BYTES_MAX`]) and
//! `GET /v1/statements/{institution}/{month}`. Each answers the JSON `gongji reconcile detail
//! --json`, `reconcile totals --json` and `settlement --json` print: the same `gongji-recon`
//! report functions, the same text. A report with differences (or a statement of nothing) is
//! still the answer: 200.
//!
//! `gongji-recon` reads a file by its path (twice: once to find its encoding); the body is
//! therefore written to a new file (`O_EXCL`, mode 0600) in a private scratch directory
//! ([`Scratch`]), which is removed once the report is made. The report names the file it read
//! as `request body`, as do its errors. A detail reconciliation lists members' settlements:
//! it is in the access log before it is answered.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use gongji_domain::{Day, Month};
use gongji_ledger::Ledger;
use gongji_recon::detail::DETAIL_COLUMNS;
use gongji_recon::report::{self, Form, Printed};
use gongji_recon::totals::TOTALS_COLUMNS;
use gongji_recon::ReconError;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::App;
use crate::bulk::{body_to_file, logged, renamed, Scratch};
use crate::error::{path, query, ApiError, ErrorBody};
use crate::members::{day, Asker};
use crate::openapi;
use crate::schemas::{ReconcileDetailAnswer, ReconcileTotalsAnswer, StatementAnswer};

/// The longest institution's file taken (written to scratch as it arrives, never held whole).
pub const RECON_BODY_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// What a report calls the file it read.
const BODY_NAME: &str = "request body";

/// Runs a report job on the read side (the module's one way to the ledger) and answers its
/// JSON; `file` is the scratch file it read, named [`BODY_NAME`] in what it says.
async fn answer(
    app: &App,
    route: &str,
    file: Option<PathBuf>,
    job: impl FnOnce(&Ledger) -> Result<Printed, ReconError> + Send + 'static,
) -> Result<Response, ApiError> {
    let printed = app.one_ledger(route)?.run(job).await?;
    let said = |text: &str| match &file {
        Some(file) => renamed(text, file, BODY_NAME),
        None => text.to_string(),
    };
    match printed {
        Ok(printed) => {
            let json = said(printed.text.trim_end());
            Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
        }
        Err(error) => Err(recon_error(&error, said(&error.to_string()))),
    }
}

/// A job that could not run, as the command line's code says it, with its HTTP status.
fn recon_error(error: &ReconError, message: String) -> ApiError {
    let (status, code) = match error {
        ReconError::Request(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        ReconError::Header { .. } | ReconError::TooLarge { .. } | ReconError::Overflow(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "bad_input")
        }
        ReconError::LogIo {
            unreachable: true, ..
        } => return ApiError::unreachable(message),
        ReconError::Io { .. }
        | ReconError::Output(_)
        | ReconError::Ledger(_)
        | ReconError::LogIo { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "ledger_error"),
    };
    ApiError::new(status, code, message)
}

/// Writes the body to a new scratch file: the directory (removed when dropped) and the path.
async fn body_file(body: Body) -> Result<(Scratch, PathBuf), ApiError> {
    let scratch = Scratch::create()
        .map_err(|e| ApiError::ledger(format!("cannot make a scratch directory: {e}")))?;
    let name = "institution-file";
    let file = scratch
        .create_file(name)
        .map_err(|e| ApiError::ledger(format!("cannot make a scratch file: {e}")))?;
    body_to_file(body, file, RECON_BODY_BYTES_MAX).await?;
    let path = scratch.path(name);
    Ok((scratch, path))
}

/// Runs `job` on the body, written to scratch first; the scratch is removed once the job ends.
async fn on_body(
    app: &App,
    route: &str,
    body: Body,
    job: impl FnOnce(&Ledger, &Path) -> Result<Printed, ReconError> + Send + 'static,
) -> Result<Response, ApiError> {
    app.one_ledger(route)?;
    let (scratch, file) = body_file(body).await?;
    let read = file.clone();
    answer(app, route, Some(file), move |ledger| {
        let printed = job(ledger, &read);
        drop(scratch); // here, so that a job past its deadline still has its file
        printed
    })
    .await
}

openapi::schema_markers! {
    /// The body of `POST /v1/reconcile/detail`: a settlement detail file (3202).
    DetailFile => openapi::institution_file(&DETAIL_COLUMNS);
    /// The body of `POST /v1/reconcile/totals`: a settlement totals file (3201).
    TotalsFile => openapi::institution_file(&TOTALS_COLUMNS);
}

/// `?institution=&from=&to=`, as `gongji reconcile detail` takes them.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    /// The institution whose settlements are matched.
    #[param(required = true, value_type = String)]
    institution: Option<String>,
    /// First day of the period matched (YYYY-MM-DD, 1900 to 2200).
    #[param(required = true, value_type = openapi::DayParam, inline)]
    from: Option<String>,
    /// Last day of the period matched (YYYY-MM-DD, 1900 to 2200; not before `from`).
    #[param(required = true, value_type = openapi::DayParam, inline)]
    to: Option<String>,
}

impl DetailQuery {
    fn read(self) -> Result<(String, RangeInclusive<Day>), ApiError> {
        let missing = |name: &str| ApiError::bad_request(format!("{name} is required"));
        let institution = self.institution.ok_or_else(|| missing("institution"))?;
        let from = day("from", self.from.as_deref())?.ok_or_else(|| missing("from"))?;
        let to = day("to", self.to.as_deref())?.ok_or_else(|| missing("to"))?;
        Ok((institution, from..=to))
    }
}

/// Matches an institution's settlement detail file (3202), the body, against the ledger (as
/// `gongji reconcile detail FILE --json`).
#[utoipa::path(post, path = "/v1/reconcile/detail", tag = "reconcile",
    params(DetailQuery),
    request_body(content = DetailFile, content_type = "text/csv",
        description = "The institution's detail file, UTF-8 or GB18030"),
    responses((status = 200, description = "The report (status `match` or `differences`)", body = ReconcileDetailAnswer),
        (status = 400, description = "A parameter does not read, or is missing", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 413, description = "The file is longer than the route takes", body = ErrorBody),
        (status = 422, description = "The file cannot be used (no usable header)", body = ErrorBody),
        (status = 501, description = "Over a region map: asked of one region's own ledger instead", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn detail(
    State(app): State<App>,
    asker: Asker,
    q: Result<Query<DetailQuery>, QueryRejection>,
    body: Body,
) -> Response {
    let answered = async {
        let (institution, period) = query(q)?.read()?;
        on_body(&app, "/v1/reconcile/detail", body, move |ledger, file| {
            report::detail(
                ledger,
                file,
                &institution,
                period,
                Form::Json,
                None,
                &mut |_, _| {},
            )
        })
        .await
    };
    let answered = answered.await;
    logged(&app, asker, "/v1/reconcile/detail", answered).await
}

/// Checks a totals file (3201), the body, against the ledger (as `gongji reconcile totals FILE
/// --json`).
#[utoipa::path(post, path = "/v1/reconcile/totals", tag = "reconcile",
    request_body(content = TotalsFile, content_type = "text/csv",
        description = "The totals file, UTF-8 or GB18030"),
    responses((status = 200, description = "The report (status `match` or `differences`)", body = ReconcileTotalsAnswer),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 413, description = "The file is longer than the route takes", body = ErrorBody),
        (status = 422, description = "The file cannot be used (no usable header, too many rows)", body = ErrorBody),
        (status = 501, description = "Over a region map: asked of one region's own ledger instead", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn totals(State(app): State<App>, body: Body) -> Result<Response, ApiError> {
    on_body(&app, "/v1/reconcile/totals", body, |ledger, file| {
        report::totals(ledger, file, Form::Json, &mut |_, _| {})
    })
    .await
}

/// `/v1/statements/{institution}/{month}`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StatementPath {
    /// The institution's code
    institution: String,
    /// The month (YYYY-MM, 1900 to 2200)
    #[param(value_type = openapi::MonthParam, inline)]
    month: String,
}

/// An institution's settlement statement for a month (as `gongji settlement INSTITUTION MONTH
/// --json`).
#[utoipa::path(get, path = "/v1/statements/{institution}/{month}", tag = "reconcile",
    params(StatementPath),
    responses((status = 200, description = "The statement (all zeros when the institution settled nothing in the month)", body = StatementAnswer),
        (status = 400, description = "The month does not read", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 501, description = "Over a region map: asked of one region's own ledger instead", body = ErrorBody),
        (status = 503, description = "The answer took too long, or the ledger's store was out of reach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn statement(
    State(app): State<App>,
    asked: Result<UrlPath<StatementPath>, PathRejection>,
) -> Result<Response, ApiError> {
    let StatementPath { institution, month } = path(asked)?;
    let month: Month = month
        .parse()
        .map_err(|e| ApiError::bad_request(format!("month: {e}")))?;
    answer(
        &app,
        "/v1/statements/{institution}/{month}",
        None,
        move |ledger| report::statement(ledger, &institution, month, Form::Json, &mut |_, _| {}),
    )
    .await
}
