//! Errors as every route answers them: an HTTP status and `{"error":{"code","message"}}`, the
//! code stable and machine-readable, the message a sentence a person can act on.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gongji_ledger::LedgerError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `unauthorized`, `forbidden`, `not_found`, `bad_request`, `unsupported_media_type`,
    /// `method_not_allowed`, `busy`, `timeout`, `unavailable`, `stream_ended` (the last line of a
    /// command stream that ended early, the last event of a change feed), `ledger_error`,
    /// `too_large` (a body past its route's bound), `bad_input` (a file a job cannot use).
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }

    pub fn ledger(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ledger_error",
            error.to_string(),
        )
    }

    /// A ledger's error as answered. Its store out of reach ([`LogError::is_unreachable`]: a
    /// database connection lost under the read, a failover in progress or the database cut
    /// off) is 503 `unavailable`, worth asking again; anything else is 500 `ledger_error`.
    ///
    /// [`LogError::is_unreachable`]: gongji_log::LogError::is_unreachable
    pub fn of_ledger(error: LedgerError) -> ApiError {
        match &error {
            LedgerError::Log(e) if e.is_unreachable() => ApiError::unreachable(error),
            _ => ApiError::ledger(error),
        }
    }

    /// 503 `unavailable`: the ledger's store could not be reached (`why`); worth asking again.
    pub fn unreachable(why: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the ledger's store cannot be reached now; ask again ({why})"),
        )
    }

    /// The error body as one JSON line (the last line of a command stream that failed).
    pub fn json_line(&self) -> String {
        let body = self.body();
        format!("{}\n", serde_json::to_string(&body).unwrap_or_default())
    }

    fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// A path's parameters, or 400 saying why they do not read.
pub fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(value)| value)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// A query's parameters, or 400 saying why they do not read.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}
