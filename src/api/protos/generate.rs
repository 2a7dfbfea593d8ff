//! Proto3 definitions of Gatehouse's own API, read from the [`ApiCatalog`] (never from a
//! second parse of the document): one file per tag (app label: the tag in snake case), a
//! service `<Tag>Service` whose rpcs are the tag's operations (`<OperationId>Request` holds
//! the path and query parameters and the body), and a message per component schema they reach.
//! JSON without a fixed shape (free-form objects, unions) becomes a JSON-encoded `string`, so
//! a file imports nothing and `protoc` compiles each one alone.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use serde_json::Value;

use crate::api::catalog::{ApiCatalog, Operation};

/// `PersonalAccessTokens` → `personal_access_tokens`.
pub fn tag_label(tag: &str) -> String {
    let mut out = String::new();
    for (i, c) in tag.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !out.ends_with('_') {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

/// Every tag's file: app label → (tag, proto text), by label.
pub fn generate_all(catalog: &ApiCatalog) -> BTreeMap<String, (String, String)> {
    let mut by_tag: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in catalog.operations() {
        if let Some(tag) = op.tag.as_deref() {
            by_tag.entry(tag).or_default().push(op);
        }
    }
    by_tag
        .into_iter()
        .map(|(tag, mut ops)| {
            ops.sort_by(|a, b| a.operation_id.cmp(&b.operation_id));
            let label = tag_label(tag);
            let text = FileGen::new(catalog).render(tag, &label, &ops);
            (label, (tag.to_string(), text))
        })
        .collect()
}

/// A valid identifier from any text: other characters become `_`, a leading digit gets a prefix.
fn ident(text: &str, prefix: &str) -> String {
    let mut out: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert_str(0, prefix);
    }
    out
}

/// `grpc_proto_files_list` → `GrpcProtoFilesList`.
fn pascal(text: &str) -> String {
    ident(text, "X")
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next().map(|c| c.to_ascii_uppercase().to_string() + cs.as_str()).unwrap_or_default()
        })
        .collect()
}

/// `name`, else `name2`, `name3`, … — the first not in `taken`, which then holds it.
fn unique(taken: &mut BTreeSet<String>, name: String) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{name}{n}");
        n += 1;
    }
    candidate
}

const SCALARS: [&str; 9] =
    ["string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "float", "double"];

/// A field's type.
enum Ty {
    One(String),
    Repeated(String),
    Map(String),
}

/// One field to render: JSON name, schema, whether the schema requires it.
struct FieldSpec {
    name: String,
    schema: Value,
    required: bool,
}

fn object_fields(schema: &Value) -> Vec<FieldSpec> {
    let required: BTreeSet<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, s)| FieldSpec {
            name: name.clone(),
            schema: s.clone(),
            required: required.contains(name.as_str()),
        })
        .collect()
}

struct FileGen<'c> {
    catalog: &'c ApiCatalog,
    /// Top-level names already used in the file.
    names: BTreeSet<String>,
    /// Component → its message name (or, for a component that is no object, its scalar type).
    components: BTreeMap<String, String>,
    queue: VecDeque<String>,
    messages: Vec<String>,
}

impl<'c> FileGen<'c> {
    fn new(catalog: &'c ApiCatalog) -> Self {
        Self {
            catalog,
            names: BTreeSet::new(),
            components: BTreeMap::new(),
            queue: VecDeque::new(),
            messages: Vec::new(),
        }
    }

    fn render(mut self, tag: &str, label: &str, ops: &[&Operation]) -> String {
        let service = unique(&mut self.names, format!("{}Service", pascal(tag)));
        let mut rpcs = String::new();
        for op in ops {
            let id = op.operation_id.clone().unwrap_or_else(|| op.path.clone());
            let rpc = unique(&mut self.names, pascal(&id));
            let request = self.request_message(op, &rpc);
            let response = self.response_message(op, &rpc);
            let _ = writeln!(rpcs, "  // {} {}", op.method, op.path);
            let _ = writeln!(rpcs, "  rpc {rpc}({request}) returns ({response});");
        }
        while let Some(component) = self.queue.pop_front() {
            let name = self.components.get(&component).cloned().unwrap_or_default();
            let schema = self.catalog.component(&component).cloned().unwrap_or(Value::Null);
            let text = self.message(&name, object_fields(&schema), 0);
            self.messages.push(text);
        }
        let mut out = format!(
            "// Generated by Gatehouse from its OpenAPI document: the {tag} API.\n\
             // Each rpc stands for one HTTP operation (its method and path are above it);\n\
             // JSON values without a fixed shape are JSON-encoded strings.\n\
             syntax = \"proto3\";\n\npackage gatehouse.{label};\n\nservice {service} {{\n{rpcs}}}\n"
        );
        for m in &self.messages {
            out.push('\n');
            out.push_str(m);
        }
        out
    }

    fn request_message(&mut self, op: &Operation, rpc: &str) -> String {
        let name = unique(&mut self.names, format!("{rpc}Request"));
        let mut fields: Vec<FieldSpec> = op
            .parameters
            .iter()
            .map(|p| FieldSpec {
                name: p.name.clone(),
                schema: p.schema.clone(),
                required: p.required,
            })
            .collect();
        if let Some(body) = &op.request_body {
            fields.push(FieldSpec {
                name: "body".into(),
                schema: body.schema.clone(),
                required: true,
            });
        }
        let text = self.message(&name, fields, 0);
        self.messages.push(text);
        name
    }

    /// A component message is returned as it is; anything else gets a `<Rpc>Response`.
    fn response_message(&mut self, op: &Operation, rpc: &str) -> String {
        let schema = op.success.as_ref().map(|c| &c.schema);
        if let Some(r) = schema.and_then(|s| s.get("$ref")).and_then(Value::as_str) {
            if let Some(Ty::One(t)) = self.reference(r) {
                if !SCALARS.contains(&t.as_str()) {
                    return t;
                }
            }
        }
        let name = unique(&mut self.names, format!("{rpc}Response"));
        let fields = match op.success.as_ref() {
            Some(c) => {
                let field = if c.content_type.contains("json") { "result" } else { "body" };
                vec![FieldSpec { name: field.into(), schema: c.schema.clone(), required: true }]
            }
            None => Vec::new(),
        };
        let text = self.message(&name, fields, 0);
        self.messages.push(text);
        name
    }

    /// `message <name> { … }` at `depth`, with its inline objects as nested messages.
    fn message(&mut self, name: &str, fields: Vec<FieldSpec>, depth: usize) -> String {
        let pad = "  ".repeat(depth);
        let mut nested = String::new();
        let mut nested_names = BTreeSet::from([name.to_string()]);
        let mut field_names = BTreeSet::new();
        let mut body = String::new();
        for (number, f) in (1..).zip(fields) {
            let field = unique(&mut field_names, ident(&f.name, "f_").to_ascii_lowercase());
            let ty = self.ty(&f.schema, &field, &mut nested, &mut nested_names, depth + 1);
            let line = match ty {
                Ty::One(t) if SCALARS.contains(&t.as_str()) && !f.required => {
                    format!("optional {t} {field} = {number};")
                }
                Ty::One(t) => format!("{t} {field} = {number};"),
                Ty::Repeated(t) => format!("repeated {t} {field} = {number};"),
                Ty::Map(t) => format!("map<string, {t}> {field} = {number};"),
            };
            let _ = writeln!(body, "{pad}  {line}");
        }
        format!("{pad}message {name} {{\n{nested}{body}{pad}}}\n")
    }

    /// The type of a field with `schema`; inline objects are rendered into `nested`.
    fn ty(
        &mut self,
        schema: &Value,
        field: &str,
        nested: &mut String,
        nested_names: &mut BTreeSet<String>,
        depth: usize,
    ) -> Ty {
        let json = || Ty::One("string".into());
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return self.reference(r).unwrap_or_else(json);
        }
        if let Some([only]) = schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            return self.ty(only, field, nested, nested_names, depth);
        }
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        match schema.get("type").and_then(Value::as_str) {
            Some("string") if matches!(format, "binary" | "bytes") => Ty::One("bytes".into()),
            Some("string") => Ty::One("string".into()),
            Some("boolean") => Ty::One("bool".into()),
            Some("integer") => Ty::One(integer(format).into()),
            Some("number") => Ty::One(if format == "float" { "float" } else { "double" }.into()),
            Some("array") => {
                let items = schema.get("items").cloned().unwrap_or(Value::Null);
                match self.ty(&items, field, nested, nested_names, depth) {
                    Ty::One(t) => Ty::Repeated(t),
                    // Proto has no list of lists or of maps: those items travel as JSON.
                    Ty::Repeated(_) | Ty::Map(_) => Ty::Repeated("string".into()),
                }
            }
            Some("object") if schema.get("properties").is_some() => {
                let name = unique(nested_names, pascal(field));
                let text = self.message(&name, object_fields(schema), depth);
                nested.push_str(&text);
                Ty::One(name)
            }
            Some("object") => match schema.get("additionalProperties") {
                Some(v) if v.get("type").is_some() || v.get("$ref").is_some() => {
                    let entry = format!("{field}_value");
                    match self.ty(v, &entry, nested, nested_names, depth) {
                        Ty::One(t) => Ty::Map(t),
                        Ty::Repeated(_) | Ty::Map(_) => Ty::Map("string".into()),
                    }
                }
                _ => json(),
            },
            _ => json(),
        }
    }

    /// The type a `#/components/schemas/<name>` stands for: a message (queued for rendering
    /// the first time), or the scalar of a component that is no object (a string enum).
    fn reference(&mut self, reference: &str) -> Option<Ty> {
        let component = reference.rsplit('/').next()?.to_string();
        if let Some(t) = self.components.get(&component) {
            return Some(Ty::One(t.clone()));
        }
        let schema = self.catalog.component(&component)?.clone();
        let is_message = schema.get("type").and_then(Value::as_str) == Some("object")
            && schema.get("properties").is_some();
        if !is_message {
            let mut scratch = String::new();
            let ty = self.ty(&schema, &component, &mut scratch, &mut BTreeSet::new(), 0);
            if let Ty::One(t) = &ty {
                if SCALARS.contains(&t.as_str()) {
                    self.components.insert(component, t.clone());
                }
            }
            return Some(ty);
        }
        let name = unique(&mut self.names, ident(&component, "M"));
        self.components.insert(component.clone(), name.clone());
        self.queue.push_back(component);
        Some(Ty::One(name))
    }
}

fn integer(format: &str) -> &'static str {
    match format {
        "uint64" | "usize" => "uint64",
        "uint8" | "uint16" | "uint32" => "uint32",
        "int8" | "int16" | "int32" => "int32",
        _ => "int64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_names() {
        assert_eq!(tag_label("PersonalAccessTokens"), "personal_access_tokens");
        assert_eq!(tag_label("Health"), "health");
        assert_eq!(tag_label("ApiKeys"), "api_keys");
        assert_eq!(pascal("grpc_proto_files_list"), "GrpcProtoFilesList");
        assert_eq!(ident("Page<Project>", "M"), "Page_Project_");
        assert_eq!(ident("9x", "f_"), "f_9x");
    }

    #[test]
    fn shapes_without_a_proto_twin_still_compile() {
        let doc = r##"{"paths": {"/x/{id}": {"post": {"operationId": "x_do", "tags": ["Odd Tag"],
            "parameters": [{"name": "id", "in": "path", "required": true,
                            "schema": {"type": "integer", "format": "int32"}},
                           {"name": "9-lives", "in": "query", "schema": {"type": "number"}}],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object",
                "properties": {
                    "grid": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free": {"type": "object"},
                    "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                    "inner": {"type": "object", "properties": {"deep": {"type": "object",
                        "properties": {"v": {"type": "boolean"}}}}},
                    "kind": {"allOf": [{"$ref": "#/components/schemas/Kind"}]},
                    "node": {"$ref": "#/components/schemas/Node<T>"}}}}}},
            "responses": {"200": {"content": {"application/json": {"schema": {"type": "array",
                "items": {"$ref": "#/components/schemas/Node<T>"}}}}}}}}},
            "components": {"schemas": {
                "Kind": {"type": "string", "enum": ["a", "b"]},
                "Node<T>": {"type": "object", "properties": {
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node<T>"}},
                    "by_name": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Node<T>"}}}}}}}"##;
        let catalog = ApiCatalog::from_document(doc);
        let files = generate_all(&catalog);
        let (tag, text) = files.get("odd_tag").unwrap();
        assert_eq!(tag, "Odd Tag");
        let s = crate::domain::protos::summarize("odd_tag.proto", text)
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        // XDoRequest (+ Body, Inner, Deep), XDoResponse, Node_T_.
        assert_eq!(s.messages_count, 6, "{text}");
        for line in [
            "int32 id = 1;",
            "optional double f_9_lives = 2;",
            "repeated string grid = ",
            "map<string, string> tags = ",
            "string free = ",
            "string either = ",
            "optional bool v = 1;",
            "optional string kind = ",
            "Node_T_ node = ",
            "map<string, Node_T_> by_name = ",
            "repeated Node_T_ result = 1;",
            "service OddTagService {",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn every_tag_has_a_file_that_parses() {
        let files = generate_all(ApiCatalog::shared());
        assert!(files.contains_key("projects") && files.contains_key("proto_files"));
        for (label, (tag, text)) in &files {
            crate::domain::protos::validate_label(label).unwrap();
            let s = crate::domain::protos::summarize(&format!("{label}.proto"), text)
                .unwrap_or_else(|e| panic!("{label}: {e:?}\n{text}"));
            assert_eq!(s.package, format!("gatehouse.{label}"), "{tag}");
            assert_eq!(s.services_count, 1);
            assert!(s.messages_count > 0);
        }
        // The same document gives the same text (generation skips unchanged files).
        assert_eq!(files, generate_all(ApiCatalog::shared()));
    }
}
