//! The HTTP surface: poem-openapi APIs (one module per tag), the docs pages, and the layers
//! every request passes through. Only this module imports poem.

pub mod admin_users;
pub mod api_keys;
pub mod audit_logs;
pub mod auth;
pub mod auth_user;
pub mod authn;
pub mod backup;
pub mod body;
pub mod catalog;
pub mod console;
pub mod deployment_exec;
pub mod environments;
pub mod error;
pub mod health;
pub mod import_export;
pub mod json_out;
pub mod metrics;
pub mod middleware;
pub mod monitor;
pub mod organizations;
pub mod paging;
pub mod pats;
pub mod projects;
pub mod protos;
pub mod request_id;
pub mod request_log;
pub mod schema_accept;
pub mod secrets_support;
pub mod security;
pub mod spec_fixups;
pub mod staff_keys;
pub mod tags;
pub mod tokens;
pub mod two_factor;
pub mod unstract;
pub mod validation;
pub mod variable_json;
pub mod variables;

use std::sync::Arc;

use poem::endpoint::make_sync;
use poem::http::StatusCode;
use poem::middleware::{NormalizePath, TrailingSlash};
use poem::web::{Html, Query};
use poem::{get, handler, Endpoint, EndpointExt, IntoEndpoint, Response, Route};
use poem_openapi::OpenApiService;

use crate::services::Services;
use catalog::{AliasPrefix, ApiCatalog, API_KEYS_ALIAS, MONITOR_ALIAS, PROTO_FILES_ALIAS};
use middleware::{BodyLimit, Edge, EdgeSettings};

/// Every API of the document, and the only list of them: each API struct derives `Default`, so
/// `Apis::default()` builds the whole tuple. A new API is its module (a `Default` struct whose
/// `#[OpenApi]` names an `ApiTags` variant) plus one entry here; the catalog reads its
/// operations, tag (`service_name`) and security out of the document. Nested tuples:
/// poem-openapi implements `OpenApi` for tuples of limited length only.
pub type Apis = (
    health::HealthApi,
    IdentityApis,
    SecretsApis,
    (monitor::MonitorApi, audit_logs::AuditLogsApi, protos::ProtoFilesApi),
    metrics::MetricsApi,
    (unstract::workflows::WorkflowsApi, unstract::deployments::ApiDeploymentsApi),
);

/// The identity area's APIs.
pub type IdentityApis = (
    auth::AuthApi,
    auth_user::AuthUserApi,
    tokens::TokenApi,
    organizations::OrganizationsApi,
    api_keys::ApiKeysApi,
    staff_keys::StaffApiKeysApi,
    pats::PatsApi,
    admin_users::AdminUsersApi,
    backup::BackupApi,
    two_factor::TwoFactorApi,
);

/// Projects, environments, variables, import/export.
pub type SecretsApis = (
    projects::ProjectsApi,
    environments::EnvironmentsApi,
    variables::VariablesApi,
    import_export::ImportExportApi,
);

/// Serves a path of the document under another prefix (django-cfg's real `/cfg/grpc/…`
/// mount beside the documented `/api/grpc/…`), without adding it to the document.
struct Alias<E> {
    prefix: AliasPrefix,
    inner: Arc<E>,
}

impl<E: Endpoint> Endpoint for Alias<E> {
    type Output = E::Output;

    async fn call(&self, mut req: poem::Request) -> poem::Result<Self::Output> {
        let path = req.uri().path();
        let rest = path.strip_prefix(self.prefix.from).unwrap_or(path);
        let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        let target = format!("{}{rest}{query}", self.prefix.to);
        let uri = target.parse().map_err(|_| poem::Error::from_status(StatusCode::BAD_REQUEST))?;
        *req.uri_mut() = uri;
        self.inner.call(req).await
    }
}

/// Sends `/deployment/…` to the execution routes and everything else on.
struct ByPrefix<D, C, E> {
    deployments: D,
    console: C,
    rest: E,
}

impl<D, C, E> Endpoint for ByPrefix<D, C, E>
where
    D: Endpoint<Output = Response>,
    C: Endpoint<Output = Response>,
    E: Endpoint<Output = Response>,
{
    type Output = Response;

    async fn call(&self, req: poem::Request) -> poem::Result<Response> {
        let path = req.uri().path();
        if deployment_exec::owns(path) {
            self.deployments.call(req).await
        } else if console::owns(path) {
            self.console.call(req).await
        } else {
            self.rest.call(req).await
        }
    }
}

/// The OpenAPI service (document title, version, and every operation).
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(Apis::default(), "Gatehouse API", crate::VERSION).description(
        "Secrets, API credentials, request monitoring and published APIs in one appliance. \
             Compatible with the KeyNest, django-cfg gRPC, Pegasus, ShellUI metrics and \
             Unstract API v2 REST documents.",
    )
}

/// The OpenAPI document as JSON (also printed by `gatehouse openapi`).
pub fn spec_json() -> String {
    spec_fixups::apply(openapi_service().spec())
}

/// The OpenAPI document as YAML: the JSON document re-encoded, so both carry the same
/// declarations; poem's own YAML if that fails (it cannot for a document that parsed).
fn spec_yaml(json: &str, service: &OpenApiService<Apis, ()>) -> String {
    spec_fixups::to_yaml(json).unwrap_or_else(|| service.spec_yaml())
}

#[derive(serde::Deserialize)]
struct SchemaQuery {
    format: Option<String>,
}

#[handler]
fn schema_endpoint(
    Query(q): Query<SchemaQuery>,
    docs: poem::web::Data<&Arc<Docs>>,
    req: &poem::Request,
) -> Response {
    if q.format.is_none() {
        let accept = req.headers().get(poem::http::header::ACCEPT).and_then(|v| v.to_str().ok());
        let (format, content_type) = schema_accept::negotiate(accept);
        let body = match format {
            schema_accept::Format::Json => docs.json.clone(),
            schema_accept::Format::Yaml => docs.yaml.clone(),
        };
        return Response::builder().content_type(content_type).body(body);
    }
    match q.format.as_deref() {
        Some("yaml" | "yml") => {
            Response::builder().content_type("application/yaml").body(docs.yaml.clone())
        }
        None | Some("json" | "openapi" | "openapi-json") => {
            Response::builder().content_type("application/json").body(docs.json.clone())
        }
        Some(_) => error::error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Unknown schema format.",
            Some(serde_json::Value::String("Use format=json or format=yaml.".into())),
        ),
    }
}

/// The line of poem-openapi's Redoc page that loads fonts from Google.
const REDOC_FONTS: &str = "<link href=\"https://fonts.googleapis.com/css?family=Montserrat:300,400,700|Roboto:300,400,700\" rel=\"stylesheet\">";

struct Docs {
    json: String,
    yaml: String,
}

/// The whole application endpoint: routes, docs and every layer.
pub fn build(state: Arc<Services>) -> impl Endpoint<Output = Response> {
    let service = openapi_service();
    let json = spec_json();
    let yaml = spec_yaml(&json, &service);
    let docs = Arc::new(Docs { json, yaml });
    // The one reading of the document (the first server of the process builds it).
    let catalog = ApiCatalog::shared();
    let swagger = service.swagger_ui();
    let swagger_again = service.swagger_ui();
    // Redoc's page as poem-openapi writes it, less its Google Fonts stylesheet: an appliance's
    // docs must not depend on (or tell) a third-party site, and offline the failed load is a
    // console error on every visit. Redoc falls back to the system fonts.
    let redoc_html = service.redoc_html().replacen(REDOC_FONTS, "", 1);
    let redoc = Route::new().at("/", make_sync(move |_| Html(redoc_html.clone())));
    let settings = Arc::new(EdgeSettings {
        trusted_proxies: state.config.trusted_proxies().unwrap_or_default(),
        max_body_bytes: state.config.server.max_body_bytes,
        max_upload_bytes: state.config.server.max_upload_bytes,
        tls: !state.config.server.insecure_http,
        request_timeout: std::time::Duration::from_secs(
            state.config.server.request_timeout_seconds,
        ),
    });
    let api = Arc::new(service.into_endpoint());
    let route = Route::new()
        .at("/api/schema", get(schema_endpoint.data(docs)))
        .nest("/api/schema/swagger-ui", swagger)
        .nest("/api/docs", swagger_again)
        .nest("/api/schema/redoc", redoc)
        // No icon, and no failed load in every browser's console either.
        .at("/favicon.ico", make_sync(|_| StatusCode::NO_CONTENT))
        .nest_no_strip(
            API_KEYS_ALIAS.from,
            Alias { prefix: API_KEYS_ALIAS, inner: Arc::clone(&api) },
        )
        .nest_no_strip(
            PROTO_FILES_ALIAS.from,
            Alias { prefix: PROTO_FILES_ALIAS, inner: Arc::clone(&api) },
        )
        .nest(MONITOR_ALIAS.from, monitor::alias::routes(catalog))
        .nest("/", api);
    // Bodies are limited and buffered inside authentication and rate limiting: a request that
    // is refused there is answered before its body is read.
    let limited = BodyLimit::new(
        route.with(NormalizePath::new(TrailingSlash::Trim)).data(Arc::clone(&state)),
        Arc::clone(&settings),
    );
    let app = authn::AuthLayer::new(limited, Arc::clone(&state), catalog);
    // API deployments' execution routes carry their own key: they bypass account
    // authentication (and its limits), never the edge or the request log. The console has
    // its own layer (pages, not JSON, for every refusal).
    let app = ByPrefix {
        deployments: deployment_exec::DeploymentRoutes::new(Arc::clone(&state)),
        console: console::endpoint(Arc::clone(&state)),
        rest: app,
    };
    // The request log sits just inside `Edge` (request id, client address) and outside
    // authentication and rate limiting, so refused requests are logged too.
    let mut log_settings = request_log::RequestLogSettings::new(catalog, settings.request_timeout);
    log_settings.enabled = state.config.logs.request_log_enabled;
    log_settings.metrics = Some(Arc::clone(&state.metrics));
    let log_settings = Arc::new(log_settings);
    let logged = request_log::RequestLogLayer::new(app, Arc::clone(&state.logs), log_settings);
    Edge::new(logged, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Redoc page is served without its Google Fonts line: if poem-openapi rewrites that
    /// line, the replacement would silently stop removing it.
    #[test]
    fn redoc_page_has_the_fonts_line_to_remove() {
        let html = openapi_service().redoc_html();
        assert!(html.contains(REDOC_FONTS));
        assert!(!html.replacen(REDOC_FONTS, "", 1).contains("fonts.googleapis.com"));
    }
}
