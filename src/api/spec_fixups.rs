//! Declarations the OpenAPI document needs but poem-openapi cannot derive from Rust types: the
//! range of each integer type, the paging bounds `PageRequest` enforces, `nullable` on the
//! optional fields poem writes as `null`, and the domain's rules on request fields (issue 16).
//! Applied once to the generated document, so every operation (and every other engineer's new
//! one) gets them without per-handler attributes.
//!
//! The field rules are declared here rather than with `#[oai(validator(…))]` on purpose: a
//! poem-openapi validator would also enforce them, ahead of the domain, and replace KeyNest's
//! messages (`"Project name must be at least 2 characters long."`) with generic ones. The domain
//! stays the one place that enforces; the document states the same rule.

use serde::ser::{Serialize, SerializeMap as _, Serializer};
use serde_json::{json, Map, Value};

use crate::api::paging::{MAX_DEPTH, MAX_PAGE_SIZE};
use crate::domain::api_keys::KEY_TYPES;
use crate::domain::dotenv::MAX_KEY_LEN;
use crate::domain::secrets::ENVIRONMENT_TYPES;
use crate::logs::record::STATUSES;

/// The last page reachable at every page size: pages end at most [`MAX_DEPTH`] rows deep, a
/// bound on `page × page_size` that a per-parameter schema cannot state, so the document
/// declares the part that holds whatever `page_size` is (100 with the defaults).
const MAX_PAGE: u64 = MAX_DEPTH / MAX_PAGE_SIZE;

/// The generated document with the declarations added; the input unchanged if it is not JSON.
pub fn apply(document: String) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(&document) else { return document };
    walk(&mut doc);
    field_rules(&mut doc);
    replace_bodies(&mut doc);
    json_export_schema(&mut doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                paging_bounds(op);
            }
        }
    }
    ordered_json(&doc).unwrap_or(document)
}

/// The top-level keys in the order poem writes them (and readers expect: `openapi` first);
/// any other key after them. `serde_json`'s map is sorted, so the order is restored here.
const TOP_LEVEL: [&str; 6] = ["openapi", "info", "servers", "tags", "paths", "components"];

fn top_level(doc: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    let known = TOP_LEVEL.iter().filter_map(|k| doc.get_key_value(*k));
    known.chain(doc.iter().filter(|(k, _)| !TOP_LEVEL.contains(&k.as_str())))
}

/// A document object that serializes its top-level keys in [`TOP_LEVEL`] order.
struct Ordered<'a>(&'a Map<String, Value>);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in top_level(self.0) {
            map.serialize_entry(k, &Node { value: v, is_content: false })?;
        }
        map.end()
    }
}

/// The media type an operation answers when the client names none: first in its `content`,
/// which is where generated clients (openapi-python-client) take the one they parse.
const DEFAULT_MEDIA: &str = "text/plain";

/// A value below the top level; a `content` map lists the plain-text default first, as poem
/// wrote it (the sorted map would put `application/json` first and make a client parse an
/// `.env` export as JSON).
struct Node<'a> {
    value: &'a Value,
    is_content: bool,
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Object(m) => {
                let mut map = serializer.serialize_map(Some(m.len()))?;
                let plain = |k: &String| self.is_content && k.starts_with(DEFAULT_MEDIA);
                let first = m.iter().filter(|(k, _)| plain(k));
                for (k, v) in first.chain(m.iter().filter(|(k, _)| !plain(k))) {
                    map.serialize_entry(k, &Node { value: v, is_content: k == "content" })?;
                }
                map.end()
            }
            Value::Array(items) => {
                serializer.collect_seq(items.iter().map(|value| Node { value, is_content: false }))
            }
            other => other.serialize(serializer),
        }
    }
}

/// Pretty-printed, as poem writes it.
fn ordered_json(doc: &Value) -> Option<String> {
    serde_json::to_string_pretty(&Ordered(doc.as_object()?)).ok()
}

/// The JSON document as YAML with the same declarations and top-level order; `None` if it is
/// not a JSON object.
pub fn to_yaml(json: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(json).ok()?;
    serde_norway::to_string(&Ordered(doc.as_object()?)).ok()
}

/// The inclusive range of an integer `format`, as the server's parser enforces it: a value
/// outside is a 400 ("number too large to fit in target type" or a negative unsigned).
fn integer_range(format: &str) -> Option<(i128, i128)> {
    Some(match format {
        "uint8" => (0, u8::MAX.into()),
        "uint16" => (0, u16::MAX.into()),
        "uint32" => (0, u32::MAX.into()),
        "uint64" => (0, u64::MAX.into()),
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

fn number(n: i128) -> Value {
    if let Ok(u) = u64::try_from(n) {
        Value::from(u)
    } else {
        i64::try_from(n).map_or(Value::Null, Value::from)
    }
}

/// Every schema in the document: integer ranges everywhere, `nullable` on optional properties.
fn walk(value: &mut Value) {
    match value {
        Value::Object(map) => {
            integer_bounds(map);
            nullable_optionals(map);
            for v in map.values_mut() {
                walk(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        _ => {}
    }
}

fn integer_bounds(schema: &mut Map<String, Value>) {
    if schema.get("type").and_then(Value::as_str) != Some("integer") {
        return;
    }
    let Some((lo, hi)) = schema.get("format").and_then(Value::as_str).and_then(integer_range)
    else {
        return;
    };
    schema.entry("minimum").or_insert_with(|| number(lo));
    schema.entry("maximum").or_insert_with(|| number(hi));
}

/// poem-openapi writes an `Option` field as `null` when it is `None` and reads `null` as
/// `None`, but declares it only as not required: OpenAPI 3.0 needs `nullable` for the `null`.
fn nullable_optionals(schema: &mut Map<String, Value>) {
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return;
    }
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, prop) in props.iter_mut() {
        if required.contains(name) {
            continue;
        }
        let Some(prop) = prop.as_object_mut() else { continue };
        if prop.contains_key("$ref") {
            // A sibling of `$ref` is ignored in 3.0: the reference goes under `allOf`.
            let reference = std::mem::take(prop);
            prop.insert("allOf".into(), Value::Array(vec![Value::Object(reference)]));
        }
        prop.insert("nullable".into(), Value::Bool(true));
    }
}

/// 1 ≤ `page` ≤ [`MAX_PAGE`] and 1 ≤ `page_size` ≤ 1000, as `PageRequest::new` enforces; the
/// [`parameter_rule`] of every other parameter that has one.
fn paging_bounds(op: &mut Value) {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else { return };
    for p in params.iter_mut() {
        let Some(name) = p.get("name").and_then(Value::as_str) else { continue };
        if let Some(rule) = parameter_rule(name) {
            if let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) {
                schema.extend(
                    rule.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())),
                );
            }
            continue;
        }
        let bounds = match name {
            "page" => (1, Some(MAX_PAGE)),
            "page_size" => (1, Some(MAX_PAGE_SIZE)),
            _ => continue,
        };
        let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) else { continue };
        if schema.get("type").and_then(Value::as_str) != Some("integer") {
            continue;
        }
        schema.insert("minimum".into(), Value::from(bounds.0));
        if let Some(max) = bounds.1 {
            schema.insert("maximum".into(), Value::from(max));
        }
    }
}

/// The rules the handlers enforce on path and query parameters, by parameter name (each name
/// means one thing wherever it appears).
fn parameter_rule(name: &str) -> Option<Value> {
    Some(match name {
        "app_label" => json!({"pattern": APP_LABEL}),
        // A day, or (also accepted) an RFC 3339 instant; the document names the day.
        "date_from" | "date_to" => json!({"format": "date"}),
        "format" => json!({"enum": ["env", "json", "yaml"]}),
        "grant_type" => json!({"enum": ["refresh_token"]}),
        "status" => json!({"enum": STATUSES}),
        "environment_type" => json!({"enum": ENVIRONMENT_TYPES}),
        _ => return None,
    })
}

/// `domain::protos::validate_label`'s rule.
const APP_LABEL: &str = "^[a-z][a-z0-9_]{0,63}$";
/// Two characters that are whitespace neither to Rust's `str::trim` nor to ECMA `\s`: a name
/// that matches keeps at least two characters once trimmed.
const TWO_AFTER_TRIM: &str = r"[^\s\u0085][\s\S]*[^\s\u0085]";
/// One character that is whitespace neither to `str::trim` nor to ECMA `\s`.
const NOT_BLANK: &str = r"[^\s\u0085]";
/// KeyNest's project names: letters, digits, spaces, `-`, `_`, `.`, two of them not spaces.
const PROJECT_NAME: &str =
    r"^[A-Za-z0-9 ._-]*[A-Za-z0-9._-][A-Za-z0-9 ._-]*[A-Za-z0-9._-][A-Za-z0-9 ._-]*$";
const ROLES: [&str; 3] = ["admin", "editor", "viewer"];
/// Usernames: 3–150 letters, digits, `_`, `-` or `.` (`accounts::valid_username`).
const USERNAME: &str = "^[A-Za-z0-9_.-]{3,150}$";

/// The rules the domain enforces on request fields (`components.schemas.<schema>.<field>`), each
/// as exact as a schema can say it, or narrower (a value the document admits is never refused).
fn rules() -> Vec<(&'static str, &'static str, Value)> {
    let org_name = json!({"pattern": TWO_AFTER_TRIM, "maxLength": 255});
    let project_name = json!({"pattern": PROJECT_NAME, "maxLength": 255});
    let env_name = json!({"pattern": "^[A-Za-z0-9_-]{2,100}$"});
    let env_type = json!({"enum": ENVIRONMENT_TYPES});
    let key = json!({"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": MAX_KEY_LEN});
    let role = json!({"enum": ROLES});
    let email = json!({"format": "email"});
    vec![
        ("OrganizationCreateRequest", "name", org_name.clone()),
        ("OrganizationPatchRequest", "name", org_name),
        ("ProjectCreateRequest", "name", project_name.clone()),
        ("ProjectUpdateRequest", "name", project_name),
        ("EnvironmentCreateRequest", "name", env_name.clone()),
        ("EnvironmentUpdateRequest", "name", env_name),
        ("EnvironmentCreateRequest", "environment_type", env_type.clone()),
        ("EnvironmentUpdateRequest", "environment_type", env_type),
        ("VariableCreateRequest", "key", key.clone()),
        ("VariableUpdateRequest", "key", key),
        ("InviteMemberRequest", "role", role.clone()),
        ("MemberRoleRequest", "role", role.clone()),
        ("UpdateMemberRoleRequest", "role", role),
        ("InviteMemberRequest", "email", json!({"pattern": NOT_BLANK, "format": "email"})),
        ("ProfileUpdateRequest", "email", email.clone()),
        ("ProfileUpdateRequest", "username", json!({"pattern": USERNAME})),
        ("AdminUserCreateRequest", "email", email),
        ("AdminUserCreateRequest", "username", json!({"pattern": USERNAME})),
        ("GrpcApiKeyUpdate", "expires_at", json!({"format": "date-time"})),
        ("GrpcApiKeyUpdate", "key_type", json!({"enum": KEY_TYPES})),
        // The default `auth.password_min_length`.
        ("AdminUserCreateRequest", "password", json!({"minLength": 10})),
        ("ApiKeyCreateRequest", "name", json!({"pattern": NOT_BLANK, "maxLength": 255})),
        ("ApiKeyCreateRequest", "key_type", json!({"enum": KEY_TYPES})),
        (
            "IngestRequest",
            "requests",
            json!({"minItems": 1, "maxItems": 1000, "items": {
            "type": "object", "required": ["service_name", "method_name"],
            "properties": {"service_name": {"type": "string", "pattern": NOT_BLANK},
                "method_name": {"type": "string", "pattern": NOT_BLANK}}}}),
        ),
        (
            "ProtoGenerateRequest",
            "apps",
            json!({"items": {"type": "string", "pattern": APP_LABEL}}),
        ),
        ("PatCreateRequest", "expires_in_days", json!({"minimum": 1, "maximum": 3650})),
    ]
}

/// Adds [`rules`] to the component schemas; an enum on a nullable field also admits `null`.
fn field_rules(doc: &mut Value) {
    for (schema, field, rule) in rules() {
        let pointer = format!("/components/schemas/{schema}/properties/{field}");
        let Some(prop) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
            tracing::warn!(schema, field, "a field rule names no field of the document");
            continue;
        };
        let nullable = prop.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        for (k, mut v) in rule.as_object().into_iter().flatten().map(|(k, v)| (k, v.clone())) {
            if let (true, Some(values)) = (nullable && k == "enum", v.as_array_mut()) {
                values.push(Value::Null);
            }
            prop.insert(k.clone(), v);
        }
    }
}

/// PUT replaces: the fields a PUT must send, by the body schema it shares with PATCH (where
/// every field is optional). The PUT operation gets a copy of that schema with them required,
/// named `…ReplaceRequest`, so that PATCH clients keep their type.
const PUT_REQUIRED: [(&str, &str, &[&str]); 3] = [
    ("ProjectUpdateRequest", "ProjectReplaceRequest", &["name"]),
    ("EnvironmentUpdateRequest", "EnvironmentReplaceRequest", &["name"]),
    ("VariableUpdateRequest", "VariableReplaceRequest", &["key"]),
];

/// `?format=json` on the export sends the variables as one JSON object of strings; the
/// handler's `PlainText` payload is documented as a string under every media type.
fn json_export_schema(doc: &mut Value) {
    let export = "/paths/~1api~1environments~1{id}~1export/get/responses/200/content/\
                  application~1json/schema";
    if let Some(schema) = doc.pointer_mut(export) {
        *schema = json!({"type": "object", "additionalProperties": {"type": "string"}});
    }
}

fn replace_bodies(doc: &mut Value) {
    // A proto file upload is not empty (`The proto file is empty.`).
    let proto = "/paths/~1api~1grpc~1proto-files~1{app_label}/put/requestBody/content";
    if let Some(content) = doc.pointer_mut(proto).and_then(Value::as_object_mut) {
        for media in content.values_mut() {
            if let Some(schema) = media.get_mut("schema").and_then(Value::as_object_mut) {
                schema.insert("minLength".into(), Value::from(1));
            }
        }
    }
    for (shared, replace, required) in PUT_REQUIRED {
        let Some(mut schema) = doc.pointer(&format!("/components/schemas/{shared}")).cloned()
        else {
            tracing::warn!(shared, "a PUT body names no schema of the document");
            continue;
        };
        if let Some(obj) = schema.as_object_mut() {
            // Generators name a model by its title: two schemas with one title become one
            // model, and the operations using the other lose their body.
            obj.insert("title".into(), Value::from(replace));
            obj.insert("required".into(), json!(required));
            if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
                for field in required {
                    if let Some(p) = props.get_mut(*field).and_then(Value::as_object_mut) {
                        p.remove("nullable");
                    }
                }
            }
        }
        let target = json!({"$ref": format!("#/components/schemas/{replace}")});
        let from = format!("#/components/schemas/{shared}");
        let mut used = false;
        if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
            for item in paths.values_mut() {
                let Some(content) =
                    item.pointer_mut("/put/requestBody/content").and_then(Value::as_object_mut)
                else {
                    continue;
                };
                for media in content.values_mut() {
                    if media.pointer("/schema/$ref").and_then(Value::as_str) == Some(&from) {
                        media["schema"] = target.clone();
                        used = true;
                    }
                }
            }
        }
        if let (true, Some(schemas)) =
            (used, doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut))
        {
            schemas.insert(replace.to_string(), schema);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_plain_text_default_stays_first_in_a_content_map() {
        let doc = json!({"openapi": "3.0.0", "paths": {"/x": {"get": {"responses": {"200": {
            "content": {"text/plain; charset=utf-8": {}, "application/json": {}}}}}}}});
        let out = super::apply(doc.to_string());
        let plain = out.find("text/plain").unwrap();
        assert!(plain < out.find("application/json").unwrap(), "{out}");
        assert!(out.trim_start().starts_with("{\n  \"openapi\""), "{out}");
    }

    use super::*;

    #[test]
    fn declares_ranges_paging_and_nullables() {
        let doc = serde_json::json!({
            "paths": {"/x": {"get": {"parameters": [
                {"name": "page", "in": "query", "schema": {"type": "integer", "format": "uint64"}},
                {"name": "page_size", "in": "query",
                 "schema": {"type": "integer", "format": "uint64"}}
            ]}}},
            "components": {"schemas": {"P": {"type": "object", "required": ["count"],
                "properties": {
                    "count": {"type": "integer", "format": "int32"},
                    "next": {"type": "string"},
                    "owner": {"$ref": "#/components/schemas/U"}
                }}}}
        });
        let out: Value = serde_json::from_str(&apply(doc.to_string())).unwrap();
        let params = &out["paths"]["/x"]["get"]["parameters"];
        assert_eq!(params[0]["schema"]["minimum"], 1);
        assert_eq!(params[0]["schema"]["maximum"], MAX_PAGE);
        assert_eq!(params[1]["schema"]["maximum"], MAX_PAGE_SIZE);
        let p = &out["components"]["schemas"]["P"]["properties"];
        assert_eq!(p["count"]["minimum"], i32::MIN);
        assert!(p["count"].get("nullable").is_none());
        assert_eq!(p["next"]["nullable"], true);
        assert_eq!(p["owner"]["allOf"][0]["$ref"], "#/components/schemas/U");
        assert_eq!(p["owner"]["nullable"], true);
    }

    #[test]
    fn every_field_rule_reaches_a_field_of_the_served_document() {
        let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        for (schema, field, rule) in rules() {
            let prop = &doc["components"]["schemas"][schema]["properties"][field];
            for (k, v) in rule.as_object().unwrap() {
                let declared = &prop[k.as_str()];
                let same = declared == v
                    || declared.as_array().is_some_and(|d| d.starts_with(v.as_array().unwrap()));
                assert!(same, "{schema}.{field}.{k}: {declared}");
            }
        }
        // A nullable enum admits the `null` poem reads as absent.
        let role = &doc["components"]["schemas"]["InviteMemberRequest"]["properties"]["role"];
        assert_eq!(role["enum"], json!(["admin", "editor", "viewer", null]));
        // The patterns hold for the names the domain accepts and refuse what it refuses.
        let re = |p: &str| regex::Regex::new(p).unwrap();
        assert!(re(PROJECT_NAME).is_match(" My app 2.0 "));
        assert!(!re(PROJECT_NAME).is_match(" a "));
        assert!(!re(PROJECT_NAME).is_match("a/b"));
        assert!(re(TWO_AFTER_TRIM).is_match(" ok "));
        assert!(!re(TWO_AFTER_TRIM).is_match("\u{85}x\u{3000}"));
    }

    #[test]
    fn a_put_requires_what_it_replaces_and_patch_keeps_its_schema() {
        let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        let body = |path: &str, method: &str| {
            doc["paths"][path][method]["requestBody"]["content"]["application/json; charset=utf-8"]
                ["schema"]["$ref"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        for (path, shared, replace, field) in [
            ("/api/projects/{id}", "ProjectUpdateRequest", "ProjectReplaceRequest", "name"),
            ("/api/variables/{id}", "VariableUpdateRequest", "VariableReplaceRequest", "key"),
        ] {
            assert_eq!(body(path, "patch"), format!("#/components/schemas/{shared}"));
            assert_eq!(body(path, "put"), format!("#/components/schemas/{replace}"));
            let s = &doc["components"]["schemas"];
            assert_eq!(s[replace]["required"], json!([field]));
            assert!(s[shared].get("required").is_none_or(|r| !r.to_string().contains(field)));
        }
    }

    #[test]
    fn a_json_export_is_an_object_of_strings() {
        let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        let content =
            &doc["paths"]["/api/environments/{id}/export"]["get"]["responses"]["200"]["content"];
        assert_eq!(content["application/json"]["schema"]["type"], "object", "{content}");
        assert_eq!(content["text/plain; charset=utf-8"]["schema"]["type"], "string");
    }

    #[test]
    fn no_two_schemas_share_a_title() {
        // openapi-python-client names a model by its title and drops the operations whose
        // body refers to the schema that lost the name.
        let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut titles = std::collections::HashMap::new();
        for (name, schema) in schemas {
            if let Some(title) = schema.get("title").and_then(Value::as_str) {
                if let Some(other) = titles.insert(title, name) {
                    panic!("{name} and {other} are both titled {title}");
                }
            }
        }
        assert!(titles.contains_key("ProjectReplaceRequest"), "{titles:?}");
    }

    #[test]
    fn openapi_comes_first_in_json_and_yaml() {
        let doc = r#"{"paths": {}, "openapi": "3.0.0", "components": {}, "info": {"title": "t"}}"#;
        let json = apply(doc.into());
        assert!(json.starts_with("{\n  \"openapi\": \"3.0.0\",\n  \"info\":"), "{json}");
        let yaml = to_yaml(&json).unwrap();
        assert!(yaml.starts_with("openapi: 3.0.0\ninfo:"), "{yaml}");
    }

    #[test]
    fn a_document_that_is_not_json_is_kept() {
        assert_eq!(apply("not json".into()), "not json");
    }
}
