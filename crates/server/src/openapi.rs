//! The OpenAPI document: built from the handlers' `#[utoipa::path]` annotations as the router
//! is built ([`router`]), so that a route cannot be served without being documented, and
//! served at `GET /v1/openapi.json`; and the schemas of the parameters that are days, months,
//! years and recording times ([`DayParam`], [`MonthParam`], [`YearParam`],
//! [`RecordedTimeParam`]) and the reconciliation files ([`institution_file`]).
//!
//! Invariant: a parameter's schema admits only values its handler accepts (a day in the years
//! [`YEAR_MIN`]..=[`YEAR_MAX`], not merely a string), so that a client, or schemathesis's
//! positive-data check, can take the document at its word; the tests below hold the patterns to
//! the parsers.

use axum::middleware;
use axum::Router;
use gongji_domain::time::{YEAR_MAX, YEAR_MIN};
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, LicenseBuilder, ObjectBuilder, RefOr, Schema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{guard, App};
use crate::{audit_routes, commands, export_routes, feed, flags, members, recon_routes, routes};

/// The years [`YEAR_MIN`]..=[`YEAR_MAX`] (1900 to 2200) as four digits, the part of a day's or
/// a month's pattern that `format` cannot say.
const YEARS: &str = "(19[0-9]{2}|2[01][0-9]{2}|2200)";

/// A string parameter's schema.
fn text(format: Option<KnownFormat>, pattern: String) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(format.map(SchemaFormat::KnownFormat))
        .pattern(Some(pattern))
}

/// An institution's file as a request body: text whose first line is the header naming
/// `columns` (the server also takes them in any order and case, among others, after blank
/// lines, and the file in GB18030), then the rows, each of which the report judges.
pub fn institution_file(columns: &[&str]) -> RefOr<Schema> {
    let pattern = format!("^{}(\\n[\\s\\S]*)?$", columns.join(","));
    let described = "The institution's file: a header line naming the columns, then the rows";
    text(None, pattern).description(Some(described)).into()
}

/// Marker types, each standing in a handler's annotation for the schema its expression builds
/// (`body = DetailFile`, `#[param(value_type = Option<openapi::DayParam>, inline)]`): the one
/// way this crate names a schema utoipa cannot derive.
macro_rules! schema_markers {
    ($($(#[$doc:meta])* $marker:ident => $schema:expr;)*) => {
        $(
            $(#[$doc])*
            pub struct $marker;

            impl utoipa::PartialSchema for $marker {
                fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                    $schema.into()
                }
            }

            impl utoipa::ToSchema for $marker {}
        )*
    };
}
pub(crate) use schema_markers;

schema_markers! {
    /// An answer whose fields are those of the command line's `--json` answer to the same
    /// question (the ledger's view structs); described here as an object.
    Answer => ObjectBuilder::new().description(Some(
        "The fields of the command line's --json answer to the same question; amounts are \
         decimal strings",
    ));
    /// A day parameter (`as_of`, `from`, `to`).
    DayParam => day();
    /// A month parameter.
    MonthParam => month();
    /// An insurance year parameter.
    YearParam => year();
    /// `recorded_before`.
    RecordedTimeParam => recorded_time();
}

/// A day parameter (`as_of`, `from`, `to`): YYYY-MM-DD, a real date, in the years a day may
/// name (what [`gongji_domain::Day`] reads).
fn day() -> ObjectBuilder {
    let pattern = format!("^{YEARS}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$");
    text(Some(KnownFormat::Date), pattern)
}

/// A month parameter: YYYY-MM in the years a month may name (what [`gongji_domain::Month`]
/// reads).
fn month() -> ObjectBuilder {
    text(None, format!("^{YEARS}-(0[1-9]|1[0-2])$"))
}

/// An insurance year parameter: a whole number in the years the ledger can hold.
fn year() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(YEAR_MIN))
        .maximum(Some(YEAR_MAX))
}

/// `recorded_before`: an RFC 3339 time with its offset, a local time (read in the ledger's
/// zone), or a day (its midnight there), as [`crate::answers::Asked::parse`] reads them. The
/// local form's pattern admits days 01 to 28 only, being unable to say which month has more:
/// the server also takes the 29th to the 31st where the month has them.
fn recorded_time() -> AnyOfBuilder {
    let rfc3339 = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    let local = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?$";
    AnyOfBuilder::new()
        .item(rfc3339)
        .item(text(None, local.to_string()))
        .item(day())
}

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
        .routes(routes!(crate::web::index))
        .routes(routes!(crate::web::asset))
        .routes(routes!(routes::me))
        .routes(routes!(routes::metrics))
        .routes(routes!(commands::post_commands))
        .routes(routes!(members::account))
        .routes(routes!(members::year))
        .routes(routes!(members::history))
        .routes(routes!(members::inheritance))
        .routes(routes!(members::transfers))
        .routes(routes!(members::timeline))
        .routes(routes!(members::explain))
        .routes(routes!(routes::fund))
        .routes(routes!(routes::policies))
        .routes(routes!(routes::access_log))
        .routes(routes!(feed::events))
        .routes(routes!(audit_routes::verify))
        .routes(routes!(audit_routes::replay))
        .routes(routes!(audit_routes::export))
        .routes(routes!(export_routes::export))
        .routes(routes!(recon_routes::detail))
        .routes(routes!(recon_routes::totals))
        .routes(routes!(recon_routes::statement))
        .routes(routes!(flags::flags))
        .routes(routes!(flags::decide))
        .split_for_parts()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongji_domain::{Day, Month};

    #[test]
    fn the_years_of_the_patterns_are_the_years_a_day_or_month_may_name() {
        // YEARS spells 1900 to 2200 digit by digit: it must change with the bounds.
        assert_eq!((YEAR_MIN, YEAR_MAX), (1900, 2200));
        assert_eq!(YEARS, "(19[0-9]{2}|2[01][0-9]{2}|2200)");
        for (text, reads) in [
            ("1899-12-31", false),
            ("1900-01-01", true),
            ("2200-12-31", true),
            ("2201-01-01", false),
        ] {
            assert_eq!(text.parse::<Day>().is_ok(), reads, "{text}");
            assert_eq!(text[..7].parse::<Month>().is_ok(), reads, "{text}");
        }
    }

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
