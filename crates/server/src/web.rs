//! The web page for clerks and auditors: one page and its script and style sheet, embedded in
//! the binary and served without a token. They hold no data: the page asks the user for a
//! token and reads only the API (`/v1/…`) with it, so every answer it shows passed the same
//! guard and permission table as any other client's (a clerk's page asking for a fund gets the
//! API's 403 and says so).
//!
//! Invariant: nothing the page loads comes from another host (operators' networks are closed
//! intranets): the Content-Security-Policy sent with each file allows this origin only.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use gongji_recon::words::{self, Vocabulary};
use serde_json::{Map, Value};

use crate::error::{path, ApiError, ErrorBody};
use crate::openapi::Answer;

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/app.css");

/// This origin only: no outside script, style, image, font or connection.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
    frame-ancestors 'none'";

fn file(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body.into(),
    )
        .into_response()
}

/// The web page (no token needed to load it; it asks for one). See docs/web.md.
#[utoipa::path(get, path = "/", tag = "web",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

/// The codes the answers use with their Chinese names, as the command line's text shows them
/// (`gongji_recon::words`): the page names events, statuses and the rest from these, in one
/// place with the command line.
fn vocabularies() -> String {
    let named: [(&str, Vocabulary); 11] = [
        ("event", words::EVENT),
        ("status", words::STATUS),
        ("scheme", words::SCHEME),
        ("channel", words::CHANNEL),
        ("institution_kind", words::INSTITUTION_KIND),
        ("purpose", words::PURPOSE),
        ("relation", words::RELATION),
        ("fund", words::FUND),
        ("state", words::STATE),
        ("credit_source", words::CREDIT_SOURCE),
        ("reversal_kind", words::REVERSAL_KIND),
    ];
    let object: Map<String, Value> = named
        .into_iter()
        .map(|(name, vocabulary)| {
            let codes = vocabulary
                .iter()
                .map(|(code, zh)| (code.to_string(), Value::from(*zh)))
                .collect();
            (name.to_string(), Value::Object(codes))
        })
        .collect();
    Value::Object(object).to_string()
}

/// The page's script, style sheet and the names of the codes in its answers (`words.json`).
#[utoipa::path(get, path = "/ui/{file}", tag = "web",
    params(("file" = String, Path, description = "app.js, app.css or words.json", pattern = "^(app\\.(js|css)|words\\.json)$")),
    responses((status = 200, description = "The file",
            content((String = "text/javascript"), (String = "text/css"), (Answer = "application/json"))),
        (status = 404, description = "No such file", body = ErrorBody)))]
pub async fn asset(name: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    match path(name)?.as_str() {
        "app.js" => Ok(file("text/javascript; charset=utf-8", SCRIPT)),
        "app.css" => Ok(file("text/css; charset=utf-8", STYLE)),
        "words.json" => Ok(file("application/json", vocabularies())),
        other => Err(ApiError::not_found(format!(
            "no file {other} in the page's assets"
        ))),
    }
}
