//! Tests of the field-level details, against the schema poem-openapi emits for a small API.

use poem::http::Method;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, OpenApiService};
use serde_json::json;

use super::*;

#[derive(Object)]
struct Inner {
    #[oai(validator(minimum(value = "1"), maximum(value = "10")))]
    level: u32,
}

#[derive(Object)]
struct Sample {
    #[oai(validator(max_length = 5))]
    name: String,
    #[oai(validator(min_length = 3, pattern = "^[A-Z_]+$"))]
    key: Option<String>,
    count: i64,
    enabled: Option<bool>,
    tags: Option<Vec<String>>,
    inner: Option<Inner>,
    #[oai(read_only)]
    id: Option<u64>,
}

struct SampleApi;

#[OpenApi]
impl SampleApi {
    #[oai(path = "/api/things/", method = "post", operation_id = "things_create")]
    async fn create(&self, body: Json<Sample>) -> Json<String> {
        Json(body.0.name)
    }

    #[oai(path = "/api/things/:id/", method = "put", operation_id = "things_update")]
    async fn update(&self, id: poem_openapi::param::Path<u64>, body: Json<Inner>) -> Json<u64> {
        Json(id.0 + u64::from(body.0.level))
    }

    #[oai(path = "/api/things/special/", method = "put", operation_id = "things_special")]
    async fn special(&self, body: Json<Sample>) -> Json<String> {
        Json(body.0.name)
    }
}

fn catalog() -> ApiCatalog {
    ApiCatalog::from_document(&OpenApiService::new(SampleApi, "t", "1").spec())
}

fn details(body: &str) -> Value {
    let catalog = catalog();
    let schema = catalog.body_schema("POST", "/api/things/").expect("schema");
    super::details(&catalog, body.as_bytes(), schema).unwrap_or(Value::Null)
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    assert_eq!(details(r#"{"count": 1}"#), json!({"name": ["This field is required."]}));
    assert_eq!(
        details(r#"{"name": [5], "count": "x"}"#),
        json!({"name": ["Not a valid string."], "count": ["A valid integer is required."]})
    );
    assert_eq!(
        details(r#"{"name": "a", "count": 1.5, "enabled": "yes"}"#),
        json!({"count": ["A valid integer is required."], "enabled": ["Must be a valid boolean."]})
    );
    assert_eq!(
        details(r#"{"name": null, "count": 1}"#),
        json!({"name": ["This field may not be null."]})
    );
    // An optional field may be null.
    assert_eq!(details(r#"{"name": "a", "count": 1, "key": null}"#), Value::Null);
}

#[test]
fn length_pattern_and_range_rules() {
    assert_eq!(
        details(r#"{"name": "toolong", "count": 1}"#),
        json!({"name": ["Ensure this field has no more than 5 characters."]})
    );
    assert_eq!(
        details(r#"{"name": "a", "count": 1, "key": "AB"}"#),
        json!({"key": ["Ensure this field has at least 3 characters."]})
    );
    assert_eq!(
        details(r#"{"name": "a", "count": 1, "key": "abc"}"#),
        json!({"key": ["This value does not match the required pattern."]})
    );
    assert_eq!(
        details(r#"{"name": "a", "count": 1, "inner": {"level": 11}}"#),
        json!({"inner": {"level": ["Ensure this value is less than or equal to 10."]}})
    );
    assert_eq!(
        details(r#"{"name": "a", "count": 1, "inner": {}}"#),
        json!({"inner": {"level": ["This field is required."]}})
    );
    assert_eq!(
        details(r#"{"name": "a", "count": 1, "tags": ["x", {}]}"#),
        json!({"tags": {"1": ["Not a valid string."]}})
    );
    assert_eq!(
        details(r#"{"name": "a", "count": 1, "tags": "x"}"#),
        json!({"tags": ["Expected a list of items but got type \"str\"."]})
    );
    assert_eq!(
        details(r#"{"name": "a", "count": 1, "id": 3}"#),
        json!({"id": ["This field is read only."]})
    );
}

#[test]
fn malformed_json_and_non_objects_are_non_field_errors() {
    let d = details(r#"{"name": "#);
    let msg = d["non_field_errors"][0].as_str().unwrap();
    assert!(msg.starts_with("JSON parse error - "), "{msg}");
    assert_eq!(
        details("[1, 2]"),
        json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
    );
    // An empty body is an empty object, as in DRF.
    assert_eq!(
        details(""),
        json!({"name": ["This field is required."], "count": ["This field is required."]})
    );
}

#[test]
fn poem_openapi_rejects_what_the_details_report() {
    // The details explain real parse failures: each body above really fails in poem-openapi.
    use poem_openapi::types::ParseFromJSON as _;
    for body in [
        r#"{"count": 1}"#,
        r#"{"name": {}, "count": 1}"#,
        r#"{"name": "toolong", "count": 1}"#,
        r#"{"name": "a", "count": 1, "key": "abc"}"#,
        r#"{"name": "a", "count": 1, "inner": {"level": 11}}"#,
    ] {
        let v: Value = serde_json::from_str(body).unwrap();
        assert!(Sample::parse_from_json(Some(v)).is_err(), "{body} parsed");
        assert_ne!(details(body), Value::Null, "{body} has no details");
    }
}

#[test]
fn operations_are_found_by_method_and_concrete_path() {
    let catalog = catalog();
    let schema = |method: Method, path| catalog.body_schema(method.as_str(), path);
    let inner = schema(Method::PUT, "/api/things/42/").unwrap();
    assert_eq!(
        super::details(&catalog, br#"{"level": "x"}"#, inner).unwrap(),
        json!({"level": ["A valid integer is required."]})
    );
    // A literal segment wins over a parameter.
    let special = schema(Method::PUT, "/api/things/special").unwrap();
    assert_eq!(
        super::details(&catalog, br#"{"count": 1}"#, special).unwrap(),
        json!({"name": ["This field is required."]})
    );
    assert!(schema(Method::GET, "/api/things/").is_none());
    assert!(schema(Method::POST, "/api/nothing/").is_none());
}

#[test]
fn names_unknown_and_read_only_fields() {
    assert_eq!(
        field_of("failed to parse \"X\": unknown field `colour`."),
        Some(("colour".into(), "Unknown field.".into()))
    );
    assert_eq!(
        field_of("failed to parse \"X\": properties `id` is read only."),
        Some(("id".into(), "This field is read only.".into()))
    );
    assert_eq!(field_of("expected value at line 1"), None);
}

#[test]
fn booleans_for_strings_are_named_and_numbers_pass() {
    let catalog = catalog();
    let check =
        |body: &str| booleans_for_strings(&catalog, "POST", "/api/things/", body.as_bytes());
    assert_eq!(
        check(r#"{"name": true, "count": 1, "enabled": false}"#),
        Some(json!({"name": ["Not a valid string."]}))
    );
    // In lists, by index, as DRF nests them.
    assert_eq!(
        check(r#"{"name": "a", "count": 1, "tags": ["x", false]}"#),
        Some(json!({"tags": {"1": ["Not a valid string."]}}))
    );
    // A boolean where a boolean goes, a number where a string goes, "true" inside a string.
    assert_eq!(check(r#"{"name": 5, "count": 1, "enabled": true}"#), None);
    assert_eq!(check(r#"{"name": "true", "count": 1}"#), None);
    // Malformed JSON and undocumented operations are left to the handler.
    assert_eq!(check(r#"{"name": true"#), None);
    assert_eq!(booleans_for_strings(&catalog, "POST", "/api/other/", br#"{"name": true}"#), None);
    // The full check says the same when poem-openapi's parse fails for another reason.
    assert_eq!(details(r#"{"name": false}"#)["name"], json!(["Not a valid string."]));
}
