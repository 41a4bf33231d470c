//! What every request shares ([`App`]), and the guard every request passes first
//! ([`guard`]): the token and its role checked against the one
//! permission table ([`RouteKind::access`]), and the request counted for `/metrics`.
//!
//! Invariants: a route that is not public is never run without a valid token whose role the
//! table allows (no token or an unknown one: 401; a role without the right: 403); the handler
//! finds who asked in an [`Identity`] the guard put on the request, and nowhere else.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::error::ApiError;
use crate::map::MapService;
use crate::metrics::Metrics;
use crate::reads::{Reads, Writer};
use crate::roles::{kind_of, Access, Role, ROUTES};
use crate::tokens::TokenSet;

/// The service's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; more wait to be accepted until one closes.
    pub connections_max: usize,
    /// Longest a read takes (it never waits for a command stream), and longest a command
    /// stream waits for another stream to let the ledger go; then 503.
    pub read_max: Duration,
    /// Longest a command stream's answers may wait for the client to read them; then the
    /// stream ends (every line answered before is durable) and the writer is free again.
    pub answer_stall_max: Duration,
    /// Longest a command stream may send no body at all; then it ends likewise.
    pub body_idle_max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: 256,
            read_max: Duration::from_secs(10),
            answer_stall_max: Duration::from_secs(30),
            body_idle_max: Duration::from_secs(60),
        }
    }
}

/// Who sent a request, as its token says.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

/// Where the ledgers are: one ledger, or the ledgers of a region map.
#[derive(Clone)]
pub enum Placement {
    One { reads: Reads, writer: Writer },
    Map(Arc<MapService>),
}

/// What the handlers share.
#[derive(Clone)]
pub struct App {
    pub placement: Placement,
    pub tokens: Arc<TokenSet>,
    pub access: Arc<AccessLog>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Turns true when the server is asked to stop.
    pub shutdown: watch::Receiver<bool>,
    /// The OpenAPI document, set once the router is built.
    pub openapi: Arc<OnceLock<String>>,
    /// The monitoring rules versions watching the log live (`/v1/flags`).
    pub monitors: Arc<crate::flags::Monitors>,
}

impl App {
    pub fn new(
        placement: Placement,
        tokens: Arc<TokenSet>,
        access: Arc<AccessLog>,
        metrics: Arc<Metrics>,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
    ) -> App {
        App {
            placement,
            tokens,
            access,
            metrics,
            limits,
            shutdown,
            openapi: Arc::new(OnceLock::new()),
            monitors: Arc::new(crate::flags::Monitors::default()),
        }
    }

    /// The read side of the one ledger, for a route answered from one ledger's log as a
    /// whole (the change feed, export, reconciliation, statements); over a region map, 501
    /// naming what to do instead.
    pub fn one_ledger(&self, route: &str) -> Result<&Reads, ApiError> {
        match &self.placement {
            Placement::One { reads, .. } => Ok(reads),
            Placement::Map(_) => Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_over_region_map",
                format!(
                    "{route} is answered from one ledger's log; this server serves a region \
                     map: ask it of the region's own ledger (`gongji serve --data` or the \
                     command line with --data on the store the map names)"
                ),
            )),
        }
    }
}

/// The route template a request matched (`unmatched` if none), as the table writes it.
fn route_of(request: &Request) -> &'static str {
    let matched = request.extensions().get::<MatchedPath>();
    matched
        .and_then(|m| ROUTES.iter().find(|(_, path, _)| *path == m.as_str()))
        .map_or("unmatched", |(_, path, _)| path)
}

/// The middleware every request passes.
pub async fn guard(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_of(&request);
    let response = match admit(&app, route, &mut request) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    app.metrics
        .request(route, response.status().as_u16(), started.elapsed());
    response
}

/// Lets a request in, or says why not.
fn admit(app: &App, route: &str, request: &mut Request) -> Result<(), ApiError> {
    let Some(kind) = kind_of(route) else {
        // A route the router matched that the permission table does not name is refused, never
        // served unguarded (fail closed); no route at all is the fallback's 404.
        if request.extensions().get::<MatchedPath>().is_some() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this route is not in the permission table",
            ));
        }
        return Ok(());
    };
    if let Access::Roles(roles) = kind.access() {
        let identity = identify(app, request)?;
        if !roles.contains(&identity.role) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "token {} has the role {}, which may not use {route}",
                    identity.name,
                    identity.role.as_str()
                ),
            ));
        }
        request.extensions_mut().insert(identity);
    }
    Ok(())
}

/// The identity the request's bearer token stands for.
fn identify(app: &App, request: &Request) -> Result<Identity, ApiError> {
    let unauthorized = |message: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            message.to_string(),
        )
    };
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("this route needs a token: Authorization: Bearer TOKEN"))?;
    // The scheme's name is case-insensitive (RFC 9110, 11.1).
    let token = header
        .to_str()
        .ok()
        .and_then(|text| text.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or_else(|| unauthorized("the Authorization header is not 'Bearer TOKEN'"))?;
    let tokens = app.tokens.current();
    let entry = tokens
        .find(token.trim())
        .ok_or_else(|| unauthorized("the token is not known (or was revoked)"))?;
    Ok(Identity {
        name: entry.name.clone(),
        role: entry.role,
    })
}
