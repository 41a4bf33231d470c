//! The auditor's whole-log routes: `POST /v1/audit/verify`, `GET /v1/audit/replay` and
//! `GET /v1/audit/export`. Verify and replay answer the JSON `gongji audit verify --json` and
//! `gongji audit replay --json` print (the same reports); export answers the archive itself,
//! the file `gongji audit export` writes, streamed.
//!
//! Replay here folds the log afresh in memory ([`Ledger::audit_replay_in_memory`]) and leaves
//! the stored projections alone: an auditor writes nothing, and the answer is the report the
//! command line's replay (which rebuilds them) prints for the same log. A report that records a
//! failure (verify's `failure`) is still the answer: 200.
//!
//! Export writes the archive as the command line does, into a private scratch directory
//! ([`Scratch`]), opens it, removes the directory, and streams the open file to the client (the
//! space is freed when the stream ends or the client goes away); the archive is in the access
//! log (it holds every member's events) before it is sent.

use std::fs::File;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gongji_ledger::archive::{ArchiveFilter, ExportRefusal};
use gongji_ledger::Ledger;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::app::{App, Placement};
use crate::bulk::{file_body, logged, scratch_file};
use crate::error::{query, ApiError, ErrorBody};
use crate::members::{day, Asker};
use crate::openapi;
use crate::schemas::{AuditReplayAnswer, AuditVerifyAnswer};

/// Runs `job` on the read side: the module's one way to the ledger.
async fn ask<T: Send + 'static>(
    app: &App,
    route: &str,
    job: impl FnOnce(&Ledger) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    app.one_ledger(route)?.run(job).await?
}

/// Checks the log's chain, folds it checking the invariants, and compares the projections
/// with that fold (as `gongji audit verify --json`).
#[utoipa::path(post, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, description = "The report: records, digest, failure (null when everything verified)", body = AuditVerifyAnswer),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 503, description = "The ledger was busy, its store out of reach, or the answer took too long", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn verify(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    if let Placement::Map(map) = &app.placement {
        return Ok(Json(map.verify().await?));
    }
    let report = ask(&app, "/v1/audit/verify", |ledger| {
        let report = ledger.audit_verify(&mut |_, _, _| {});
        report.map(|r| json!(r)).map_err(ApiError::of_ledger)
    });
    Ok(Json(report.await?))
}

/// Folds the whole log afresh, in memory: the records, the digest of the state and the totals
/// per region (as `gongji audit replay --json`; the stored projections are not touched).
#[utoipa::path(get, path = "/v1/audit/replay", tag = "audit",
    responses((status = 200, description = "The report: records, digest, regions", body = AuditReplayAnswer),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 503, description = "The ledger was busy, its store out of reach, or the answer took too long", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    if let Placement::Map(map) = &app.placement {
        return Ok(Json(map.replay().await?));
    }
    let report = ask(&app, "/v1/audit/replay", |ledger| {
        let report = ledger.audit_replay_in_memory(&mut |_, _| {});
        report.map(|r| json!(r)).map_err(ApiError::of_ledger)
    });
    Ok(Json(report.await?))
}

/// `?region=&from=&to=`, as `gongji audit export` takes them.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only events of this region (a member's events count for the region it belonged to then).
    region: Option<String>,
    /// Only events whose own date is on or after this day (YYYY-MM-DD, 1900 to 2200).
    #[param(value_type = Option<openapi::DayParam>, inline)]
    from: Option<String>,
    /// Only events whose own date is on or before this day (YYYY-MM-DD, 1900 to 2200).
    #[param(value_type = Option<openapi::DayParam>, inline)]
    to: Option<String>,
}

impl ExportQuery {
    fn filter(self) -> Result<ArchiveFilter, ApiError> {
        Ok(ArchiveFilter {
            from: day("from", self.from.as_deref())?,
            to: day("to", self.to.as_deref())?,
            region: self.region,
        })
    }
}

/// The audit archive of the log, or the part the parameters select, streamed: the file
/// `gongji audit export` writes (JSON Lines: a header, the policies, the records, the manifest).
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit",
    params(ExportQuery),
    responses((status = 200, description = "The archive, JSON Lines, as `gongji audit export` writes it", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A parameter does not read", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 404, description = "No policy was loaded for the region", body = ErrorBody),
        (status = 503, description = "The ledger was busy, its store out of reach, or the export took too long", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(app): State<App>,
    asker: Asker,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Response {
    let answer = archive(&app, q).await;
    logged(&app, asker, "/v1/audit/export", answer).await
}

async fn archive(
    app: &App,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut filter = query(q)?.filter()?;
    // Over a region map, the region names the ledger, whose whole archive is the region's.
    let reads = match (&app.placement, filter.region.take()) {
        (Placement::One { reads, .. }, region) => {
            filter.region = region;
            reads.clone()
        }
        (Placement::Map(map), Some(region)) => map.region_reads(&region)?,
        (Placement::Map(_), None) => {
            return Err(ApiError::bad_request(
                "this server serves a region map: give ?region=R for that region's archive \
                 (each region's ledger has its own)",
            ))
        }
    };
    let (file, bytes) = reads
        .run(move |ledger| write_archive(ledger, &filter))
        .await??;
    let body = file_body(file, app.limits.answer_stall_max);
    let headers = [
        (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
        (header::CONTENT_LENGTH, bytes.to_string()),
        (
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"gongji-archive.jsonl\"".to_string(),
        ),
    ];
    Ok((headers, body).into_response())
}

/// Exports the archive into a scratch directory and returns it open, with its length
/// ([`scratch_file`]).
fn write_archive(ledger: &Ledger, filter: &ArchiveFilter) -> Result<(File, u64), ApiError> {
    scratch_file("archive.jsonl", |path| {
        match ledger.export_refusal(path, filter, false) {
            Ok(Some(refusal @ ExportRefusal::UnknownRegion(_))) => {
                return Err(ApiError::not_found(refusal.to_string()))
            }
            Ok(Some(refusal)) => return Err(ApiError::ledger(refusal)),
            Ok(None) => {}
            Err(e) => return Err(ApiError::of_ledger(e)),
        }
        ledger
            .export_archive(path, filter, false, &mut |_, _, _| {})
            .map(|_| ())
            .map_err(ApiError::of_ledger)
    })
}
