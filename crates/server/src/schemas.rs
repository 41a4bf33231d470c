//! The answers' shapes in the OpenAPI document. The service answers with the command line's
//! `--json` answers unchanged, and those are described once, in
//! `docs/schemas/answers.schema.json` (which `tests/json_shapes.rs` checks every command's answer
//! against): the document takes its `$defs` into its components as they are, and a handler's
//! annotation names the answer it gives by a marker type below (`body = AccountAnswer`).
//!
//! Also here: the statuses the guard and the ledger's lock may answer on any guarded route
//! (401, 403, and 503 for ledger routes), added to each guarded operation that does not list
//! them, so that every status the service can give is in the document.
//!
//! Invariant: every `$ref` in the served document resolves (the answers' own `#/$defs/` refs are
//! rewritten to `#/components/schemas/`), and a marker names a `$defs` entry that exists
//! (checked by the test below).

use serde_json::{json, Map, Value};
use utoipa::openapi::{OpenApi, Ref};

/// The command line's answer schemas (JSON Schema 2020-12, as OpenAPI 3.1 reads them).
const ANSWERS: &str = include_str!("../../../docs/schemas/answers.schema.json");

/// A marker type for a handler annotation's `body`: the answer schema `$defs/NAME`.
macro_rules! answers {
    ($($(#[$doc:meta])* $marker:ident => $def:literal;)*) => {
        crate::openapi::schema_markers! {
            $($(#[$doc])* $marker => Ref::new(concat!("#/components/schemas/", $def));)*
        }

        /// The `$defs` entries the markers name.
        #[cfg(test)]
        const MARKED: &[&str] = &[$($def),*];
    };
}

answers! {
    /// `gongji account --json`.
    AccountAnswer => "account";
    /// `gongji year --json`.
    YearAnswer => "year";
    /// One line of `gongji history --json`.
    HistoryEntryAnswer => "history_entry";
    /// `gongji inheritance --json`.
    InheritanceAnswer => "inheritance";
    /// `gongji transfers --json`.
    TransfersAnswer => "transfers";
    /// `gongji timeline --json`.
    TimelineAnswer => "timeline";
    /// `gongji explain --json`.
    ExplainAnswer => "explain";
    /// `gongji fund --json`.
    FundAnswer => "fund";
    /// One line of `gongji policy list --json`.
    PolicyListItemAnswer => "policy_list_item";
    /// `gongji audit verify --json`.
    AuditVerifyAnswer => "audit_verify";
    /// `gongji audit replay --json`.
    AuditReplayAnswer => "audit_replay";
    /// `gongji reconcile detail FILE --json`.
    ReconcileDetailAnswer => "reconcile_detail";
    /// `gongji reconcile totals FILE --json`.
    ReconcileTotalsAnswer => "reconcile_totals";
    /// `gongji settlement INSTITUTION MONTH --json`.
    StatementAnswer => "settlement_statement";
    /// `GET /v1/flags`.
    FlagsAnswer => "flags_page";
    /// `POST /v1/flags/{id}/decision`.
    FlagDecidedAnswer => "flag_decision_recorded";
}

/// The answers' `$defs`, their references pointing into the document's components.
fn answer_schemas() -> Result<Map<String, Value>, String> {
    let text = ANSWERS.replace("\"#/$defs/", "\"#/components/schemas/");
    let mut schema: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    match schema.get_mut("$defs").map(Value::take) {
        Some(Value::Object(defs)) => Ok(defs),
        _ => Err("answers.schema.json has no $defs".to_string()),
    }
}

/// The statuses any guarded route may answer besides its own.
fn guarded_statuses(ledger: bool) -> Vec<(&'static str, &'static str)> {
    let mut statuses = vec![
        ("401", "No valid token (`unauthorized`)"),
        ("403", "Not for this role (`forbidden`)"),
    ];
    if ledger {
        statuses.push((
            "503",
            "The ledger was held past the read timeout (`busy`, `timeout`) or is unavailable",
        ));
    }
    statuses
}

/// The document served at `GET /v1/openapi.json`: `api` with the answers' schemas in its
/// components and the guard's statuses on every guarded operation.
pub fn document(api: &OpenApi) -> Result<String, String> {
    let mut document = serde_json::to_value(api).map_err(|e| e.to_string())?;
    let schemas = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .ok_or("the document has no components")?;
    for (name, schema) in answer_schemas()? {
        schemas.entry(name).or_insert(schema);
    }
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let paths = document.get_mut("paths").and_then(Value::as_object_mut);
    for operation in paths.into_iter().flat_map(|p| p.values_mut()) {
        for operation in operation
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let guarded = operation.get("security").is_some();
            let ledger = operation["tags"] != json!(["service"]);
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (status, description) in guarded_statuses(ledger).into_iter().filter(|_| guarded) {
                responses
                    .entry(status)
                    .or_insert_with(|| json!({"description": description, "content": error}));
            }
        }
    }
    serde_json::to_string(&document).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_names_an_answer_schema_and_no_reference_is_left_dangling() {
        let defs = answer_schemas().unwrap();
        for name in MARKED {
            assert!(defs.contains_key(*name), "{name}");
        }
        let text = serde_json::to_string(&defs).unwrap();
        assert!(!text.contains("#/$defs/"));
        for reference in text.split("#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(defs.contains_key(name), "{name}");
        }
    }
}
