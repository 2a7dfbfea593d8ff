//! Turning request-payload parse failures into DRF-like `{"field": ["message"]}` details.
//!
//! poem-openapi's own message loses the field name ("failed to parse X: ..."), so when a JSON
//! body fails to parse, the edge re-reads the body it kept and checks it against the
//! operation's request schema from the OpenAPI document (as read into the [`ApiCatalog`]):
//! required, type, enum, maxLength, minLength, pattern, maximum, minimum, maxItems, minItems,
//! nested objects and arrays.

use std::collections::HashMap;
use std::sync::OnceLock;

use poem::http::Method;
use serde_json::{Map, Value};

use crate::api::catalog::ApiCatalog;

/// The JSON body of the request being served, kept by the edge so that a parse failure can
/// be explained wherever it is turned into a response (any layer may call
/// `convert_poem_error`).
pub struct KeptBody {
    pub method: Method,
    pub path: String,
    pub body: bytes::Bytes,
}

tokio::task_local! {
    static KEPT: Option<KeptBody>;
}

/// Runs `fut` (the rest of the request) with `kept` available to [`kept_body_details`].
pub async fn with_kept_body<F: std::future::Future>(kept: Option<KeptBody>, fut: F) -> F::Output {
    KEPT.scope(kept, fut).await
}

/// For a JSON payload poem-openapi could not parse, the field-level details found by checking
/// the kept body against the operation's request schema; `None` if there is nothing to add.
/// Errors are converted wherever they surface, with no handle on the app, so this reads the
/// process's [`ApiCatalog::shared`] (the one `api::build` serves).
pub fn kept_body_details(err: &poem::Error) -> Option<Value> {
    err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>()?;
    KEPT.try_with(|kept| {
        let kept = kept.as_ref()?;
        let catalog = ApiCatalog::shared();
        let schema = catalog.body_schema(kept.method.as_str(), &kept.path)?;
        details(catalog, &kept.body, schema)
    })
    .ok()
    .flatten()
}

/// Booleans where the operation's request schema says string, as field details: poem-openapi's
/// `String` reads `true` as `"true"`, DRF's `CharField` refuses it ("Not a valid string.").
/// A number stays accepted as its text, as in DRF. `None` when there is none, when the
/// operation has no JSON body schema, or when the body is not JSON (the handler says why).
pub fn booleans_for_strings(
    catalog: &ApiCatalog,
    method: &str,
    path: &str,
    body: &[u8],
) -> Option<Value> {
    let has = |word: &[u8]| body.windows(word.len()).any(|w| w == word);
    if !has(b"true") && !has(b"false") {
        return None;
    }
    let schema = catalog.body_schema(method, path)?;
    let value: Value = serde_json::from_slice(body).ok()?;
    match (Checker { catalog }).boolean_for_string(&value, schema, 0)? {
        Problem::Messages(m) => Some(non_field_list(m)),
        Problem::Nested(v) => Some(v),
    }
}

/// Field errors of `body` against `schema` (whose `$ref`s point into `catalog`'s components):
/// `Some({"field": [...]})`, or `Some({"non_field_errors": [...]})` for malformed JSON or a
/// non-object body; `None` if the schema finds nothing wrong.
pub fn details(catalog: &ApiCatalog, body: &[u8], schema: &Value) -> Option<Value> {
    Checker { catalog }.details(body, schema)
}

/// Checks values against the schemas of one document.
struct Checker<'a> {
    catalog: &'a ApiCatalog,
}

impl Checker<'_> {
    fn details(&self, body: &[u8], schema: &Value) -> Option<Value> {
        let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
            // As DRF: an empty body is an empty object, so each required field is reported.
            Value::Object(Map::new())
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return Some(non_field(format!("JSON parse error - {e}"))),
            }
        };
        let schema = self.resolve(schema);
        let expects_object = schema.get("type").and_then(Value::as_str) == Some("object")
            || schema.get("properties").is_some();
        if expects_object && !value.is_object() {
            return Some(non_field(format!(
                "Invalid data. Expected a dictionary, but got {}.",
                type_name(&value)
            )));
        }
        match self.check(&value, schema, 0) {
            Some(Problem::Messages(m)) => Some(non_field_list(m)),
            Some(Problem::Nested(v)) => Some(v),
            None => None,
        }
    }

    /// Follows `$ref` and single-element `allOf` wrappers to the schema itself.
    fn resolve<'s>(&'s self, mut schema: &'s Value) -> &'s Value {
        for _ in 0..16 {
            if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or(r);
                match self.catalog.component(name) {
                    Some(s) => schema = s,
                    None => return schema,
                }
            } else if let Some([only]) =
                schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice)
            {
                schema = only;
            } else {
                return schema;
            }
        }
        schema
    }

    fn check(&self, value: &Value, schema: &Value, depth: usize) -> Option<Problem> {
        if depth > 32 {
            return None;
        }
        let schema = self.resolve(schema);
        if value.is_null() {
            let nullable = schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
            return (!nullable).then(|| msg("This field may not be null."));
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
            if !choices.contains(value) {
                let shown = value.as_str().map_or_else(|| value.to_string(), str::to_string);
                return Some(msg(format!("\"{shown}\" is not a valid choice.")));
            }
        }
        if let Some(variants) = schema.get("oneOf").or_else(|| schema.get("anyOf")) {
            let variants = variants.as_array().map(Vec::as_slice).unwrap_or_default();
            let ok = variants.iter().any(|v| self.check(value, v, depth + 1).is_none());
            return (!ok && !variants.is_empty()).then(|| msg("Invalid value."));
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => check_string(value, schema),
            Some("integer") => check_number(value, schema, true),
            Some("number") => check_number(value, schema, false),
            Some("boolean") => (!value.is_boolean()).then(|| msg("Must be a valid boolean.")),
            Some("array") => self.check_array(value, schema, depth),
            Some("object") => self.check_object(value, schema, depth),
            _ if schema.get("properties").is_some() => self.check_object(value, schema, depth),
            _ => None,
        }
    }

    /// Only the booleans given for strings (see [`booleans_for_strings`]); a schema with
    /// `oneOf`/`anyOf` is not judged.
    fn boolean_for_string(&self, value: &Value, schema: &Value, depth: usize) -> Option<Problem> {
        if depth > 32 {
            return None;
        }
        let schema = self.resolve(schema);
        if schema.get("oneOf").or_else(|| schema.get("anyOf")).is_some() {
            return None;
        }
        let errors: Map<String, Value> = match value {
            Value::Bool(_) => {
                let is_string = schema.get("type").and_then(Value::as_str) == Some("string");
                return is_string.then(|| msg("Not a valid string."));
            }
            Value::Array(items) => {
                let item_schema = schema.get("items")?;
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        let p = self.boolean_for_string(item, item_schema, depth + 1)?;
                        Some((i.to_string(), p.into_value()))
                    })
                    .collect()
            }
            Value::Object(obj) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let extra = schema.get("additionalProperties").filter(|a| a.is_object());
                obj.iter()
                    .filter_map(|(name, v)| {
                        let field = props.and_then(|p| p.get(name)).or(extra)?;
                        let p = self.boolean_for_string(v, field, depth + 1)?;
                        Some((name.clone(), p.into_value()))
                    })
                    .collect()
            }
            _ => return None,
        };
        (!errors.is_empty()).then_some(Problem::Nested(Value::Object(errors)))
    }

    fn check_object(&self, value: &Value, schema: &Value, depth: usize) -> Option<Problem> {
        let Some(obj) = value.as_object() else {
            return Some(msg(format!(
                "Expected a dictionary of items but got type \"{}\".",
                type_name(value)
            )));
        };
        let props = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut errors = Map::new();
        for name in &required {
            if !obj.contains_key(*name) {
                errors.insert((*name).to_string(), Value::from(vec!["This field is required."]));
            }
        }
        for (name, field_value) in obj {
            let Some(prop) = props.and_then(|p| p.get(name)) else {
                if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                    errors.insert(name.clone(), Value::from(vec!["Unknown field."]));
                } else if let Some(extra) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    if let Some(p) = self.check(field_value, extra, depth + 1) {
                        errors.insert(name.clone(), p.into_value());
                    }
                }
                continue;
            };
            let prop = self.resolve(prop);
            if prop.get("readOnly").and_then(Value::as_bool).unwrap_or(false) {
                errors.insert(name.clone(), Value::from(vec!["This field is read only."]));
                continue;
            }
            if field_value.is_null() && !required.contains(&name.as_str()) {
                continue;
            }
            if let Some(p) = self.check(field_value, prop, depth + 1) {
                errors.insert(name.clone(), p.into_value());
            }
        }
        (!errors.is_empty()).then_some(Problem::Nested(Value::Object(errors)))
    }

    fn check_array(&self, value: &Value, schema: &Value, depth: usize) -> Option<Problem> {
        let Some(items) = value.as_array() else {
            return Some(msg(format!(
                "Expected a list of items but got type \"{}\".",
                type_name(value)
            )));
        };
        let len = u64::try_from(items.len()).unwrap_or(u64::MAX);
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64).filter(|m| len > *m) {
            return Some(msg(format!("Ensure this field has no more than {max} elements.")));
        }
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64).filter(|m| len < *m) {
            return Some(msg(if min == 1 {
                "This list may not be empty.".to_string()
            } else {
                format!("Ensure this field has at least {min} elements.")
            }));
        }
        let item_schema = schema.get("items")?;
        let mut errors = Map::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(p) = self.check(item, item_schema, depth + 1) {
                errors.insert(i.to_string(), p.into_value());
            }
        }
        (!errors.is_empty()).then_some(Problem::Nested(Value::Object(errors)))
    }
}

/// What is wrong with one value: messages for it, or errors of its members.
enum Problem {
    Messages(Vec<String>),
    Nested(Value),
}

impl Problem {
    fn into_value(self) -> Value {
        match self {
            Self::Messages(m) => Value::from(m),
            Self::Nested(v) => v,
        }
    }
}

fn msg(m: impl Into<String>) -> Problem {
    Problem::Messages(vec![m.into()])
}

fn non_field(m: String) -> Value {
    non_field_list(vec![m])
}

fn non_field_list(m: Vec<String>) -> Value {
    serde_json::json!({ "non_field_errors": m })
}

fn check_string(value: &Value, schema: &Value) -> Option<Problem> {
    // DRF's CharField takes a number as its text, not a boolean.
    let text;
    let s = match value {
        Value::String(s) => s.as_str(),
        Value::Number(_) => {
            text = value.to_string();
            text.as_str()
        }
        _ => return Some(msg("Not a valid string.")),
    };
    let chars = u64::try_from(s.chars().count()).unwrap_or(u64::MAX);
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64).filter(|m| chars > *m) {
        return Some(msg(format!("Ensure this field has no more than {max} characters.")));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64).filter(|m| chars < *m) {
        return Some(msg(if min == 1 {
            "This field may not be blank.".to_string()
        } else {
            format!("Ensure this field has at least {min} characters.")
        }));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        if !pattern_matches(pattern, s) {
            return Some(msg("This value does not match the required pattern."));
        }
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("uuid") if uuid::Uuid::parse_str(s).is_err() => Some(msg("Must be a valid UUID.")),
        Some("email") if !looks_like_email(s) => Some(msg("Enter a valid email address.")),
        Some("date-time")
            if time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .is_err() =>
        {
            Some(msg(
                "Datetime has wrong format. Use YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            ))
        }
        _ => None,
    }
}

fn check_number(value: &Value, schema: &Value, integer: bool) -> Option<Problem> {
    let Some(n) = value.as_f64() else {
        return Some(msg(if integer {
            "A valid integer is required."
        } else {
            "A valid number is required."
        }));
    };
    if integer && !(value.is_i64() || value.is_u64()) {
        return Some(msg("A valid integer is required."));
    }
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    if format.starts_with("uint") && n < 0.0 {
        return Some(msg("Ensure this value is greater than or equal to 0."));
    }
    if let Some(max) = schema.get("maximum").filter(|m| m.as_f64().is_some_and(|m| n > m)) {
        let max = show(max);
        return Some(msg(format!("Ensure this value is less than or equal to {max}.")));
    }
    if let Some(min) = schema.get("minimum").filter(|m| m.as_f64().is_some_and(|m| n < m)) {
        let min = show(min);
        return Some(msg(format!("Ensure this value is greater than or equal to {min}.")));
    }
    let bounds = match format {
        "int8" => Some((f64::from(i8::MIN), f64::from(i8::MAX))),
        "int16" => Some((f64::from(i16::MIN), f64::from(i16::MAX))),
        "int32" => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
        "uint8" => Some((0.0, f64::from(u8::MAX))),
        "uint16" => Some((0.0, f64::from(u16::MAX))),
        "uint32" => Some((0.0, f64::from(u32::MAX))),
        _ => None,
    };
    match bounds {
        Some((_, hi)) if n > hi => {
            Some(msg(format!("Ensure this value is less than or equal to {hi}.")))
        }
        Some((lo, _)) if n < lo => {
            Some(msg(format!("Ensure this value is greater than or equal to {lo}.")))
        }
        _ => None,
    }
}

/// A bound as DRF prints it: `10`, not `10.0`.
fn show(bound: &Value) -> String {
    match bound.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{f:.0}"),
        _ => bound.to_string(),
    }
}

/// Patterns come from our own document; a cache keeps each compiled once.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    static CACHE: OnceLock<parking_lot::Mutex<HashMap<String, Option<regex::Regex>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = cache.lock();
    let re = guard.entry(pattern.to_string()).or_insert_with(|| regex::Regex::new(pattern).ok());
    // An uncompilable pattern cannot be the reason; don't invent an error.
    re.as_ref().is_none_or(|re| re.is_match(s))
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !s.contains(' ')
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Extracts `(field, message)` from a poem-openapi parse message when it names a field.
pub fn field_of(reason: &str) -> Option<(String, String)> {
    if let Some(field) = between(reason, "unknown field `", "`") {
        return Some((field.to_string(), "Unknown field.".to_string()));
    }
    if let Some(field) = between(reason, "properties `", "` is read only") {
        return Some((field.to_string(), "This field is read only.".to_string()));
    }
    None
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let rest = s.get(from..)?;
    let to = rest.find(end)?;
    rest.get(..to)
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
