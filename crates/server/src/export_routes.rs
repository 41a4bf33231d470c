//! `GET /v1/export/{table}`: an auditor's export of the settlements or every event, the file
//! `gongji export TABLE --format … --out FILE` writes (`gongji-export`), streamed.
//!
//! As for the audit archive ([`crate::audit_routes`]): the file is written into a private
//! scratch directory on the read side, opened, the directory removed, and the open file
//! streamed (the space is freed when the stream ends or the client goes away); the export is in
//! the access log (it holds members' data) before its first byte is sent. Over a region map,
//! `region` names the ledger.

use std::fs::File;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gongji_export::{Encoding, ExportError, Format, Request, Table};
use gongji_ledger::archive::ArchiveFilter;
use gongji_ledger::Ledger;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::{App, Placement};
use crate::bulk::{file_body, logged, scratch_file};
use crate::error::{path, query, ApiError, ErrorBody};
use crate::members::{day, Asker};
use crate::openapi;

/// `?format=&encoding=&region=&from=&to=`, as `gongji export` takes them.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (the default) or `parquet`.
    #[param(pattern = "^(csv|parquet)$")]
    format: Option<String>,
    /// A CSV file's encoding: `utf8` (the default, with a byte-order mark) or `gb18030`
    /// (ignored for Parquet, whose text is UTF-8).
    #[param(pattern = "^(utf8|gb18030)$")]
    encoding: Option<String>,
    /// Only events of this region (a member's events count for the region it belonged to then).
    region: Option<String>,
    /// Only events whose own date is on or after this day (YYYY-MM-DD, 1900 to 2200).
    #[param(value_type = Option<openapi::DayParam>, inline)]
    from: Option<String>,
    /// Only events whose own date is on or before this day (YYYY-MM-DD, 1900 to 2200).
    #[param(value_type = Option<openapi::DayParam>, inline)]
    to: Option<String>,
}

/// The table a path names.
fn table(name: &str) -> Result<Table, ApiError> {
    match name {
        "settlements" => Ok(Table::Settlements),
        "events" => Ok(Table::Events),
        "funds" => Ok(Table::Funds),
        "accounts" => Ok(Table::Accounts),
        other => Err(ApiError::not_found(format!(
            "no export {other:?}: settlements, events, funds or accounts"
        ))),
    }
}

impl ExportQuery {
    fn format(&self) -> Result<Format, ApiError> {
        let encoding = match self.encoding.as_deref() {
            None | Some("utf8") => Encoding::Utf8Bom,
            Some("gb18030") => Encoding::Gb18030,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "encoding={other:?}: utf8 or gb18030"
                )))
            }
        };
        match self.format.as_deref() {
            None | Some("csv") => Ok(Format::Csv(encoding)),
            // A Parquet file's text is UTF-8 whatever `encoding` says (it is for CSV).
            Some("parquet") => Ok(Format::Parquet),
            Some(other) => Err(ApiError::bad_request(format!(
                "format={other:?}: csv or parquet"
            ))),
        }
    }
}

/// The settlements (one row per settlement and reversal) or the events (one row per log
/// record) of the selection, as `gongji export TABLE` writes them: CSV (UTF-8 with a
/// byte-order mark, or GB18030) or Parquet. See docs/exports.md.
#[utoipa::path(get, path = "/v1/export/{table}", tag = "audit",
    params(("table" = String, Path, description = "settlements, events, funds or accounts", pattern = "^(settlements|events|funds|accounts)$"), ExportQuery),
    responses((status = 200, description = "The file, as `gongji export` writes it: CSV (charset utf-8 or gb18030) or Parquet",
            content((String = "text/csv"), (String = "application/vnd.apache.parquet"))),
        (status = 400, description = "A parameter does not read, or the period ends before it starts", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not for this role", body = ErrorBody),
        (status = 404, description = "No such export, or the region is not known to the ledger", body = ErrorBody),
        (status = 503, description = "The ledger was busy, its store out of reach, or the export took too long", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(app): State<App>,
    asker: Asker,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Response {
    let answer = exported(&app, name, q).await;
    logged(&app, asker, "/v1/export/{table}", answer).await
}

async fn exported(
    app: &App,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let table = table(&path(name)?)?;
    let q = query(q)?;
    let format = q.format()?;
    let mut filter = ArchiveFilter {
        from: day("from", q.from.as_deref())?,
        to: day("to", q.to.as_deref())?,
        region: q.region,
    };
    if table == Table::Accounts && (filter.from.is_some() || filter.to.is_some()) {
        return Err(ApiError::bad_request(
            "from, to: the accounts are exported as they stand now (a period selects \
             movements; an account as of a day is GET /v1/members/{id}?as_of=DAY)",
        ));
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err(ApiError::bad_request(format!(
                "from {from} is after to {to}: nothing could be selected"
            )));
        }
    }
    // Over a region map, the region names the ledger, whose whole export is the region's.
    let reads = match (&app.placement, filter.region.take()) {
        (Placement::One { reads, .. }, region) => {
            filter.region = region;
            reads.clone()
        }
        (Placement::Map(map), Some(region)) => map.region_reads(&region)?,
        (Placement::Map(_), None) => {
            return Err(ApiError::bad_request(
                "this server serves a region map: give ?region=R for that region's export \
                 (each region's ledger has its own)",
            ))
        }
    };
    let (file, bytes) = reads
        .run(move |ledger| write_export(ledger, table, filter, format))
        .await??;
    let body = file_body(file, app.limits.answer_stall_max);
    let (kind, extension) = match format {
        Format::Csv(Encoding::Utf8Bom) => ("text/csv; charset=utf-8", "csv"),
        Format::Csv(Encoding::Gb18030) => ("text/csv; charset=gb18030", "csv"),
        Format::Parquet => ("application/vnd.apache.parquet", "parquet"),
    };
    let headers = [
        (header::CONTENT_TYPE, kind.to_string()),
        (header::CONTENT_LENGTH, bytes.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"gongji-{}.{extension}\"",
                table.name()
            ),
        ),
    ];
    Ok((headers, body).into_response())
}

/// Writes the export into a scratch directory and returns it open, with its length
/// ([`scratch_file`]).
fn write_export(
    ledger: &Ledger,
    table: Table,
    filter: ArchiveFilter,
    format: Format,
) -> Result<(File, u64), ApiError> {
    scratch_file("export", |out| {
        let request = Request {
            table,
            filter,
            format,
            out: out.to_path_buf(),
        };
        gongji_export::export(ledger, &request, &mut |_, _| {})
            .map(|_| ())
            .map_err(|e| match e {
                ExportError::Request(why) => ApiError::not_found(why),
                ExportError::Ledger(error) => ApiError::of_ledger(error),
                // The scratch path is the server's own: never named in an answer.
                ExportError::Write { message, .. } => {
                    ApiError::ledger(format!("cannot write the export: {message}"))
                }
            })
    })
}
