//! A checker for the subset of JSON Schema (2020-12) that `docs/schemas/answers.schema.json`
//! uses: `type` (a name or a list), `properties` with `required` and `additionalProperties:
//! false`, `items`, `enum`, `const`, `anyOf`, `$ref` to `#/$defs/NAME`, and `format` (`date`,
//! `date-time`, and the two of this ledger: `decimal`, an amount like `-12.30`, and `month`,
//! `2024-03`). A keyword outside the subset is refused, so the schemas cannot say more than is
//! checked. One rule beyond JSON Schema: an object's keys must come in the order its schema's
//! `properties` lists them (the order of the answer is part of its shape).
#![allow(dead_code)]

use serde_json::{Map, Value};

/// The keywords this checker understands (annotations included).
const KEYWORDS: [&str; 15] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "$ref",
    "format",
    "description",
    "title",
    "$comment",
    "$schema",
    "$defs",
];

/// A document of schemas whose `$defs` hold every answer's schema.
pub struct Schemas {
    root: Value,
}

impl Schemas {
    pub fn load(path: &std::path::Path) -> Schemas {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        Schemas { root }
    }

    /// The names in `$defs`.
    pub fn names(&self) -> Vec<String> {
        self.root["$defs"]
            .as_object()
            .map(|defs| defs.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Checks `value` against `$defs/name`: every way it fails, or nothing.
    pub fn check(&self, name: &str, value: &Value) -> Result<(), Vec<String>> {
        let schema = self.definition(name);
        let mut faults = Vec::new();
        self.walk(schema, value, "$", &mut faults);
        if faults.is_empty() {
            Ok(())
        } else {
            Err(faults)
        }
    }

    /// Panics, saying where, unless `value` fits `$defs/name`.
    pub fn assert_fits(&self, name: &str, value: &Value) {
        if let Err(faults) = self.check(name, value) {
            panic!(
                "the answer does not fit schema {name}:\n  {}\nanswer: {value}",
                faults.join("\n  ")
            );
        }
    }

    fn definition(&self, name: &str) -> &Value {
        self.root["$defs"]
            .get(name)
            .unwrap_or_else(|| panic!("no schema named {name} in $defs"))
    }

    fn walk(&self, schema: &Value, value: &Value, at: &str, faults: &mut Vec<String>) {
        let Some(schema) = schema.as_object() else {
            panic!("the schema at {at} is not an object: {schema}");
        };
        if let Some(keyword) = schema.keys().find(|k| !KEYWORDS.contains(&k.as_str())) {
            panic!("the schema at {at} uses `{keyword}`, which this checker does not check");
        }
        if let Some(target) = schema.get("$ref") {
            let name = target
                .as_str()
                .and_then(|t| t.strip_prefix("#/$defs/"))
                .unwrap_or_else(|| panic!("$ref {target} at {at}: only #/$defs/NAME"));
            self.walk(self.definition(name), value, at, faults);
        }
        if let Some(types) = schema.get("type") {
            check_type(types, value, at, faults);
        }
        if let Some(Value::Array(allowed)) = schema.get("enum") {
            if !allowed.contains(value) {
                faults.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        if let Some(constant) = schema.get("const") {
            if constant != value {
                faults.push(format!("{at}: {value} is not {constant}"));
            }
        }
        if let (Some(Value::String(format)), Value::String(text)) = (schema.get("format"), value) {
            if !fits_format(format, text) {
                faults.push(format!("{at}: {text:?} is not a {format}"));
            }
        }
        if let Some(Value::Array(branches)) = schema.get("anyOf") {
            self.any_of(branches, value, at, faults);
        }
        if let (Some(items), Value::Array(elements)) = (schema.get("items"), value) {
            for (i, element) in elements.iter().enumerate() {
                self.walk(items, element, &format!("{at}[{i}]"), faults);
            }
        }
        if let Value::Object(object) = value {
            self.object(schema, object, at, faults);
        }
    }

    fn any_of(&self, branches: &[Value], value: &Value, at: &str, faults: &mut Vec<String>) {
        let mut reasons = Vec::new();
        for (i, branch) in branches.iter().enumerate() {
            let mut branch_faults = Vec::new();
            self.walk(branch, value, at, &mut branch_faults);
            if branch_faults.is_empty() {
                return;
            }
            reasons.push(format!("branch {i}: {}", branch_faults.join("; ")));
        }
        faults.push(format!(
            "{at}: fits none of anyOf ({})",
            reasons.join(" | ")
        ));
    }

    /// `properties`, `required`, `additionalProperties: false`, and the keys' order.
    fn object(
        &self,
        schema: &Map<String, Value>,
        object: &Map<String, Value>,
        at: &str,
        faults: &mut Vec<String>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    faults.push(format!("{at}: `{key}` is missing"));
                }
            }
        }
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        let Some(properties) = properties else {
            return;
        };
        let mut last_index = None;
        for (key, inner) in object {
            let Some(index) = properties.keys().position(|k| k == key) else {
                if closed {
                    faults.push(format!("{at}: `{key}` is not in the schema"));
                }
                continue;
            };
            if last_index.is_some_and(|last| index < last) {
                faults.push(format!(
                    "{at}: `{key}` comes after a key the schema lists after it"
                ));
            }
            last_index = Some(index);
            self.walk(&properties[key], inner, &format!("{at}.{key}"), faults);
        }
    }
}

fn check_type(types: &Value, value: &Value, at: &str, faults: &mut Vec<String>) {
    let names: Vec<&str> = match types {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        other => panic!("type {other} at {at}"),
    };
    let fits = names.iter().any(|name| match *name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => panic!("unknown type {other} at {at}"),
    });
    if !fits {
        faults.push(format!("{at}: {value} is not of type {names:?}"));
    }
}

fn digits(text: &str, count: usize) -> bool {
    text.len() == count && text.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD`.
fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 3 && digits(parts[0], 4) && digits(parts[1], 2) && digits(parts[2], 2)
}

fn fits_format(format: &str, text: &str) -> bool {
    match format {
        "date" => is_date(text),
        "month" => {
            let parts: Vec<&str> = text.split('-').collect();
            parts.len() == 2 && digits(parts[0], 4) && digits(parts[1], 2)
        }
        "date-time" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        "decimal" => {
            let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
            let unsigned = text.strip_prefix('-').unwrap_or(text);
            match unsigned.split_once('.') {
                Some((whole, fraction)) => all_digits(whole) && all_digits(fraction),
                None => all_digits(unsigned),
            }
        }
        other => panic!("format {other} is not one this checker knows"),
    }
}
