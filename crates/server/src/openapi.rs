//! The OpenAPI document: built from the handlers' `#[utoipa::path]` annotations as the router
//! is built ([`router`]), so that a route cannot be served without being documented, and
//! served at `GET /v1/openapi.json`.

use axum::middleware;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, LicenseBuilder, ObjectBuilder, RefOr, Schema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{guard, App};
use crate::{audit_routes, commands, feed, members, recon_routes, routes};

/// An answer whose fields are those of the command line's `--json` answer to the same
/// question (the ledger's view structs); described here as an object.
pub struct Answer;

impl utoipa::PartialSchema for Answer {
    fn schema() -> RefOr<Schema> {
        let object = ObjectBuilder::new().description(Some(
            "The fields of the command line's --json answer to the same question; amounts are \
             decimal strings",
        ));
        RefOr::T(Schema::Object(object.build()))
    }
}

impl utoipa::ToSchema for Answer {}

/// The service's routes, guarded, with the OpenAPI document built from them and stored in
/// `app` for `GET /v1/openapi.json`.
pub fn router(app: App) -> Router {
    let (router, mut api) = routed();
    api.info = InfoBuilder::new()
        .title("Gongji")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some("The ledger as a service: see docs/service.md"))
        .license(Some(LicenseBuilder::new().name("MIT").build()))
        .build();
    let bearer = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("bearer", bearer);
    let document =
        crate::schemas::document(&api).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    let _ = app.openapi.set(document);
    router
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::no_method)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Every route with its part of the document: the one list of what the server serves (the
/// guard refuses a matched route that the permission table does not name; a test holds this
/// list equal to it).
fn routed() -> (axum::Router<App>, utoipa::openapi::OpenApi) {
    OpenApiRouter::<App>::new()
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::openapi))
        .routes(routes!(routes::metrics))
        .routes(routes!(commands::post_commands))
        .routes(routes!(members::account))
        .routes(routes!(members::year))
        .routes(routes!(members::history))
        .routes(routes!(members::inheritance))
        .routes(routes!(members::transfers))
        .routes(routes!(members::explain))
        .routes(routes!(routes::fund))
        .routes(routes!(routes::policies))
        .routes(routes!(routes::access_log))
        .routes(routes!(feed::events))
        .routes(routes!(audit_routes::verify))
        .routes(routes!(audit_routes::replay))
        .routes(routes!(audit_routes::export))
        .routes(routes!(recon_routes::detail))
        .routes(routes!(recon_routes::totals))
        .routes(routes!(recon_routes::statement))
        .split_for_parts()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_served_is_in_the_permission_table_and_every_entry_is_served() {
        let (_, api) = routed();
        let served: std::collections::BTreeSet<&str> =
            api.paths.paths.keys().map(String::as_str).collect();
        let table: std::collections::BTreeSet<&str> = crate::roles::ROUTES
            .iter()
            .map(|(_, path, _)| *path)
            .collect();
        assert_eq!(served, table);
    }
}
