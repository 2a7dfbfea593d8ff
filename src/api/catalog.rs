//! The OpenAPI document, read once: each operation's method, path template (compiled into a
//! matcher), operationId, first tag, whether it needs a credential and its JSON request-body
//! schema, plus the document's component schemas. The authentication layer (401 before the
//! body), the request log (operation and `service_name`), validation details and the
//! `/cfg/grpc/…` aliases look things up here; nothing else reads the document's JSON.
//!
//! The document is fixed when the binary is compiled, so one catalog serves every server of the
//! process ([`ApiCatalog::shared`], built by `api::build` at start). Lookups borrow from it for
//! `'static`: the request log records operation and service names without copying them.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::api::tags::ApiTags;

/// The methods an OpenAPI path item can hold; a method's position is its slot in the matcher.
const METHODS: [&str; 8] = ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"];

fn method_slot(method: &str) -> Option<usize> {
    METHODS.iter().position(|m| *m == method)
}

/// The non-empty segments of a path: runs of `/` and a trailing one do not count, as for the
/// router behind `NormalizePath`.
fn segments(path: &str) -> impl Iterator<Item = &str> + Clone {
    path.split('/').filter(|s| !s.is_empty())
}

/// One segment of a path template. The derived order puts literals before parameters, the
/// router's preference when two templates fit a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Literal(String),
    Param,
}

impl Segment {
    fn parse(text: &str) -> Self {
        if text.starts_with('{') && text.ends_with('}') {
            Self::Param
        } else {
            Self::Literal(text.to_string())
        }
    }

    fn accepts(&self, text: &str) -> bool {
        match self {
            Self::Literal(l) => l == text,
            Self::Param => true,
        }
    }
}

/// One documented operation.
#[derive(Debug)]
pub struct Operation {
    /// Upper case, as on the wire (`GET`).
    pub method: String,
    /// The template as documented (`/api/projects/{id}`).
    pub path: String,
    pub operation_id: Option<String>,
    /// The first tag.
    pub tag: Option<String>,
    /// `gatehouse.<tag>`: the request log's `service_name` for this operation.
    pub service_name: Option<String>,
    /// The operation requires a credential: it declares security requirements and none of
    /// them is the empty one (`{}` would make the credential optional).
    pub protected: bool,
    /// The schema of a JSON request body, if the operation takes one.
    pub body_schema: Option<Value>,
    /// The request body in its first content type, whatever that is (proto generation).
    pub request_body: Option<Content>,
    /// Path and query parameters, in document order.
    pub parameters: Vec<Parameter>,
    /// The first 2xx response's content (`None` for an empty body such as a 204).
    pub success: Option<Content>,
    segments: Vec<Segment>,
}

/// A body of a request or response: its content type and schema.
#[derive(Debug, Clone)]
pub struct Content {
    pub content_type: String,
    pub schema: Value,
}

/// A path or query parameter.
#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    /// `path` or `query`.
    pub location: String,
    pub required: bool,
    pub schema: Value,
}

impl Operation {
    /// Whether the template fits a path of the same segment count.
    fn fits<'p>(&self, path: impl Iterator<Item = &'p str>) -> bool {
        self.segments.iter().zip(path).all(|(t, s)| t.accepts(s))
    }
}

/// A prefix under which some documented routes are also served, outside the document:
/// django-cfg as deployed answers under `/cfg/grpc/…` beside the documented `/api/grpc/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliasPrefix {
    pub from: &'static str,
    pub to: &'static str,
}

/// Staff's view of every API key (the document's `/api/grpc/api-keys/…`).
pub const API_KEYS_ALIAS: AliasPrefix =
    AliasPrefix { from: "/cfg/grpc/api-keys", to: "/api/grpc/api-keys" };

/// Request monitoring (the document's `/api/grpc/monitor/…`).
pub const MONITOR_ALIAS: AliasPrefix =
    AliasPrefix { from: "/cfg/grpc/monitor", to: "/api/grpc/monitor" };

/// The proto-file registry. django-cfg documents it only under `/cfg/grpc/proto-files/`; the
/// document names it `/api/grpc/proto-files/` like the other django-cfg routes.
pub const PROTO_FILES_ALIAS: AliasPrefix =
    AliasPrefix { from: "/cfg/grpc/proto-files", to: "/api/grpc/proto-files" };

/// Every alias prefix the app serves.
pub const ALIASES: [AliasPrefix; 3] = [API_KEYS_ALIAS, MONITOR_ALIAS, PROTO_FILES_ALIAS];

/// The alias prefix `path` is under, and the rest of it: the prefix must end at a segment
/// boundary, so `/cfg/grpc/api-keysX` is under none.
fn alias_of(path: &str) -> Option<(&'static AliasPrefix, &str)> {
    ALIASES.iter().find_map(|a| {
        let rest = path.strip_prefix(a.from)?;
        (rest.is_empty() || rest.starts_with('/')).then_some((a, rest))
    })
}

/// Every operation of the document, and the lookups the layers need.
#[derive(Debug, Default)]
pub struct ApiCatalog {
    /// In the router's order of preference (literal segments before parameters).
    operations: Vec<Operation>,
    /// Method slot → segment count → indices into `operations`, in that order: a lookup
    /// tries only templates of the request's method and length, and hashes nothing.
    routes: [Vec<Vec<usize>>; METHODS.len()],
    by_id: HashMap<String, usize>,
    components: Map<String, Value>,
}

impl ApiCatalog {
    /// The catalog of this binary's own document, built on first use (`api::build`, at start).
    pub fn shared() -> &'static Self {
        static CATALOG: OnceLock<ApiCatalog> = OnceLock::new();
        CATALOG.get_or_init(|| Self::from_document(&crate::api::spec_json()))
    }

    /// Reads an OpenAPI 3 document (JSON): `paths.*.*` and `components.schemas`. A document
    /// that does not parse gives an empty catalog.
    pub fn from_document(document: &str) -> Self {
        let doc: Value = match serde_json::from_str(document) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::error!(error = %e, "the OpenAPI document is not JSON");
                return Self::default();
            }
        };
        let mut operations = Vec::new();
        for (path, item) in doc.get("paths").and_then(Value::as_object).into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let method = method.to_ascii_uppercase();
                if method_slot(&method).is_some() {
                    operations.push(operation(method, path, op));
                }
            }
        }
        // Stable: equal templates (impossible for one method in a valid document) keep their
        // document order.
        operations.sort_by(|a, b| a.segments.cmp(&b.segments));
        let mut routes: [Vec<Vec<usize>>; METHODS.len()] = Default::default();
        let mut by_id = HashMap::new();
        for (i, op) in operations.iter().enumerate() {
            if let Some(by_len) = method_slot(&op.method).and_then(|slot| routes.get_mut(slot)) {
                let n = op.segments.len();
                if by_len.len() <= n {
                    by_len.resize_with(n + 1, Vec::new);
                }
                if let Some(bucket) = by_len.get_mut(n) {
                    bucket.push(i);
                }
            }
            if let Some(id) = &op.operation_id {
                by_id.insert(id.clone(), i);
            }
        }
        let components = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Self { operations, routes, by_id, components }
    }

    /// Every operation, in the router's order of preference.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation with this operationId.
    pub fn operation(&self, operation_id: &str) -> Option<&Operation> {
        self.by_id.get(operation_id).and_then(|&i| self.operations.get(i))
    }

    /// The first tag of an operation.
    pub fn tag_of(&self, operation_id: &str) -> Option<&str> {
        self.operation(operation_id)?.tag.as_deref()
    }

    /// The request log's `service_name` of an operation (`gatehouse.<tag>`).
    pub fn service_name_of(&self, operation_id: &str) -> Option<&str> {
        self.operation(operation_id)?.service_name.as_deref()
    }

    /// The operation `method path` reaches: of the templates that fit, the one the router
    /// prefers (at the first segment where two differ, a literal wins over a parameter).
    pub fn match_route(&self, method: &str, path: &str) -> Option<&Operation> {
        self.first_fit(method, segments(path))
    }

    /// The documented operation `method <alias.from><rest>` stands for: the one
    /// `method <alias.to><rest>` reaches.
    pub fn aliased(&self, alias: AliasPrefix, method: &str, rest: &str) -> Option<&Operation> {
        self.first_fit(method, segments(alias.to).chain(segments(rest)))
    }

    /// Whether `method path` certainly needs a credential: some template fits and every one
    /// that fits is protected. A path that also fits a public operation is never claimed, so
    /// the early 401 cannot refuse a request the router would give to a public one.
    /// An alias prefix is read as the path it stands for.
    pub fn is_protected(&self, method: &str, path: &str) -> bool {
        match alias_of(path) {
            Some((alias, rest)) => {
                self.only_protected_fit(method, segments(alias.to).chain(segments(rest)))
            }
            None => self.only_protected_fit(method, segments(path)),
        }
    }

    fn only_protected_fit<'p>(
        &self,
        method: &str,
        path: impl Iterator<Item = &'p str> + Clone,
    ) -> bool {
        let n = path.clone().count();
        let mut fitting = self.candidates(method, n).filter(|op| op.fits(path.clone()));
        let Some(first) = fitting.next() else { return false };
        first.protected && fitting.all(|op| op.protected)
    }

    /// The methods of the resource at `path` (the `Allow` of a 405, RFC 9110 §15.5.6): those of
    /// the template the router picks for it (a literal segment wins over a parameter), an alias
    /// prefix read as the path it stands for; HEAD wherever GET is, since the router answers
    /// HEAD with the GET route. Empty when no template fits.
    pub fn allowed_methods(&self, path: &str) -> Vec<&'static str> {
        let target: Vec<&str> = match alias_of(path) {
            Some((a, rest)) => segments(a.to).chain(segments(rest)).collect(),
            None => segments(path).collect(),
        };
        let Some(template) = self
            .operations
            .iter()
            .find(|op| op.segments.len() == target.len() && op.fits(target.iter().copied()))
            .map(|op| &op.segments)
        else {
            return Vec::new();
        };
        let mut allowed: Vec<&'static str> = METHODS
            .into_iter()
            .filter(|m| {
                self.operations.iter().any(|op| op.method == *m && op.segments == *template)
            })
            .collect();
        if allowed.contains(&"GET") && !allowed.contains(&"HEAD") {
            allowed.push("HEAD");
        }
        allowed
    }

    /// The JSON request-body schema of the operation `method path` reaches.
    pub fn body_schema(&self, method: &str, path: &str) -> Option<&Value> {
        self.match_route(method, path)?.body_schema.as_ref()
    }

    /// A schema of `components.schemas`, by name (what a `$ref` points to).
    pub fn component(&self, name: &str) -> Option<&Value> {
        self.components.get(name)
    }

    fn candidates(&self, method: &str, n: usize) -> impl Iterator<Item = &Operation> {
        let bucket = method_slot(method)
            .and_then(|slot| self.routes.get(slot))
            .and_then(|by_len| by_len.get(n))
            .map(Vec::as_slice)
            .unwrap_or_default();
        bucket.iter().filter_map(|&i| self.operations.get(i))
    }

    fn first_fit<'p>(
        &self,
        method: &str,
        path: impl Iterator<Item = &'p str> + Clone,
    ) -> Option<&Operation> {
        let n = path.clone().count();
        self.candidates(method, n).find(|op| op.fits(path.clone()))
    }
}

/// One operation of the document (`method` already upper case).
fn operation(method: String, path: &str, op: &Value) -> Operation {
    let operation_id = op.get("operationId").and_then(Value::as_str).map(str::to_string);
    let tag = op.pointer("/tags/0").and_then(Value::as_str).map(str::to_string);
    let protected = op.get("security").and_then(Value::as_array).is_some_and(|reqs| {
        !reqs.is_empty() && reqs.iter().all(|r| r.as_object().is_none_or(|r| !r.is_empty()))
    });
    let body_schema = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
        .and_then(|content| content.iter().find(|(ct, _)| ct.contains("json")))
        .and_then(|(_, media)| media.get("schema"))
        .cloned();
    let first_content = |at: Option<&Value>| {
        let content = at?.get("content")?.as_object()?;
        let (ct, media) = content.iter().next()?;
        let schema = media.get("schema").cloned().unwrap_or(Value::Null);
        Some(Content { content_type: ct.clone(), schema })
    };
    let success = op
        .get("responses")
        .and_then(Value::as_object)
        .and_then(|r| r.iter().find(|(status, _)| status.starts_with('2')))
        .and_then(|(_, resp)| first_content(Some(resp)));
    let parameters = op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let location = p.get("in").and_then(Value::as_str)?;
            Some(Parameter {
                name: p.get("name").and_then(Value::as_str)?.to_string(),
                location: location.to_string(),
                required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                schema: p.get("schema").cloned().unwrap_or(Value::Null),
            })
        })
        .filter(|p| p.location == "path" || p.location == "query")
        .collect();
    Operation {
        request_body: first_content(op.get("requestBody")),
        parameters,
        success,
        service_name: tag.as_deref().map(ApiTags::service_name),
        segments: segments(path).map(Segment::parse).collect(),
        method,
        path: path.to_string(),
        operation_id,
        tag,
        protected,
        body_schema,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_operations() {
        let catalog = ApiCatalog::shared();
        let project = catalog.match_route("GET", "/api/projects/7/").unwrap();
        assert_eq!(project.operation_id.as_deref(), Some("projects_retrieve"));
        assert_eq!(project.tag.as_deref(), Some("Projects"));
        assert_eq!(project.path, "/api/projects/{id}");
        assert!(project.protected);
        assert!(catalog.is_protected("GET", "/api/projects/7"));
        assert_eq!(catalog.service_name_of("projects_retrieve"), Some("gatehouse.Projects"));

        let health = catalog.match_route("GET", "/health/").unwrap();
        assert_eq!(health.operation_id.as_deref(), Some("health_retrieve"));
        assert_eq!(catalog.tag_of("health_retrieve"), Some("Health"));
        assert!(!health.protected);
        assert!(!catalog.is_protected("GET", "/health/"));
        assert!(!catalog.is_protected("POST", "/api/auth/login/"));
        // django-cfg's /cfg/grpc/… aliases are as protected as the routes they stand for.
        assert!(catalog.is_protected("GET", "/cfg/grpc/api-keys/"));
        assert!(catalog.is_protected("GET", "/cfg/grpc/monitor/overview/"));
        assert!(catalog.is_protected("GET", "/cfg/grpc/proto-files/"));
        assert!(!catalog.is_protected("GET", "/cfg/grpc/api-keysX/"));

        // A literal segment wins over a parameter, as in the router.
        let stats = catalog.match_route("GET", "/api/grpc/api-keys/stats/").unwrap();
        assert_eq!(stats.operation_id.as_deref(), Some("grpc_api_keys_stats_retrieve"));
        assert!(catalog.match_route("GET", "/api/projects/7/nothing").is_none());
        assert!(catalog.match_route("BREW", "/api/projects/7/").is_none());
        // Request bodies and the schemas their `$ref`s point to.
        let body = catalog.body_schema("POST", "/api/projects/").unwrap();
        let name = body["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        assert!(catalog.component(name).is_some(), "{name}");
        assert!(catalog.body_schema("GET", "/api/projects/").is_none());
    }

    #[test]
    fn every_operation_has_an_id_and_a_tag_with_a_service() {
        let catalog = ApiCatalog::shared();
        assert!(catalog.operations().len() > 50, "{}", catalog.operations().len());
        for op in catalog.operations() {
            let id = op.operation_id.as_deref().unwrap_or_else(|| panic!("{}", op.path));
            let tag = op.tag.as_deref().unwrap_or_else(|| panic!("{id} has no tag"));
            assert_eq!(catalog.operation(id).map(|o| &o.path), Some(&op.path), "{id}");
            assert_eq!(op.service_name, Some(ApiTags::service_name(tag)), "{id}");
            // The route table finds each operation by its own template.
            let concrete = op.path.replace('{', "x").replace('}', "");
            let found = catalog.match_route(&op.method, &concrete).unwrap();
            assert_eq!(found.operation_id.as_deref(), Some(id), "{}", op.path);
        }
    }

    #[test]
    fn aliases_stand_for_documented_operations() {
        let catalog = ApiCatalog::shared();
        for alias in ALIASES {
            assert!(catalog.operations().iter().any(|op| op.path.starts_with(alias.to)));
            assert!(catalog.match_route("GET", alias.from).is_none(), "{alias:?} is documented");
        }
        let op = catalog.aliased(API_KEYS_ALIAS, "GET", "/5/").unwrap();
        assert_eq!(op.operation_id.as_deref(), Some("grpc_api_keys_retrieve"));
        let op = catalog.aliased(MONITOR_ALIAS, "POST", "/requests").unwrap();
        assert_eq!(op.operation_id.as_deref(), Some("grpc_monitor_requests_create"));
        assert!(catalog.aliased(MONITOR_ALIAS, "DELETE", "/requests").is_none());
    }

    #[test]
    fn protected_operations_from_the_spec() {
        let spec = r#"{"paths": {
            "/api/projects/{id}/": {"get": {"operationId": "p", "security": [{"Token": []}]}},
            "/api/auth/login/": {"post": {"operationId": "login"}},
            "/api/import/": {"post": {"operationId": "i", "security": [{"Token": []}, {"bearerAuth": []}]}},
            "/api/open/": {"get": {"operationId": "o", "security": [{}]}},
            "/api/projects/stats/": {"get": {"operationId": "s"}}
        }}"#;
        let r = ApiCatalog::from_document(spec);
        assert!(r.is_protected("GET", "/api/projects/7/"));
        assert!(r.is_protected("GET", "/api/projects/7"));
        assert!(r.is_protected("POST", "/api/import"));
        assert!(!r.is_protected("POST", "/api/projects/7/"));
        assert!(!r.is_protected("POST", "/api/auth/login/"));
        assert!(!r.is_protected("GET", "/api/open/"));
        assert!(!r.is_protected("GET", "/api/projects/7/x"));
        assert!(!r.is_protected("GET", "/nothing"));
        assert!(!r.is_protected("GET", "/api/projects/stats"));
    }

    #[test]
    fn the_router_order_decides_between_templates() {
        // Listed the other way round: the literal segment still wins, wherever it is.
        let spec = r#"{"paths": {
            "/a/{x}/c/d": {"get": {"operationId": "late_literal"}},
            "/a/b/{y}/{z}": {"get": {"operationId": "early_literal"}},
            "/{p}/b": {"put": {"operationId": "param"}},
            "/a/b": {"put": {"operationId": "literal"}}
        }}"#;
        let c = ApiCatalog::from_document(spec);
        let id = |m, p| c.match_route(m, p).and_then(|o| o.operation_id.as_deref());
        assert_eq!(id("GET", "/a/b/c/d"), Some("early_literal"));
        assert_eq!(id("GET", "/a/q/c/d"), Some("late_literal"));
        assert_eq!(id("PUT", "//a/b/"), Some("literal"));
        assert_eq!(id("PUT", "/z/b"), Some("param"));
        assert_eq!(id("GET", "/a/b/c"), None);
    }

    #[test]
    fn a_broken_document_is_an_empty_catalog() {
        let c = ApiCatalog::from_document("{not json");
        assert!(c.operations().is_empty());
        assert!(c.match_route("GET", "/health").is_none());
        assert!(!c.is_protected("GET", "/api/projects/1"));
    }
}
