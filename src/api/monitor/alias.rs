//! django-cfg as deployed serves the monitor under `/cfg/grpc/monitor/…`. These plain poem
//! routes answer there with the same views; they are left out of the OpenAPI document (the
//! docs/api.md lists them) so generated clients see each operation once. Each route is
//! recorded under the documented operation it stands for, found in the [`ApiCatalog`].

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::Method;
use poem::web::{Data, Json, Query};
use poem::{get, handler, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::types::ToJSON;
use poem_openapi::OperationId;

use super::params::MonitorParams;
use super::views;
use crate::api::catalog::{ApiCatalog, MONITOR_ALIAS};
use crate::api::error::{ApiError, ApiResult};
use crate::domain::{Error, Principal};
use crate::services::Services;

fn principal(req: &Request) -> Result<Principal, ApiError> {
    req.extensions().get::<Principal>().cloned().ok_or_else(|| {
        Error::unauthenticated("Authentication credentials were not provided.").into()
    })
}

/// The operationId of the documented operation a route stands for, given to its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Documented(Option<&'static str>);

fn respond<T: ToJSON>(op: Documented, result: ApiResult<T>) -> Response {
    let mut resp = match result {
        Ok(body) => Json(body.to_json()).into_response(),
        Err(e) => e.into_response(),
    };
    if let Documented(Some(op)) = op {
        resp.set_data(OperationId(op));
    }
    resp
}

#[handler]
async fn requests(
    req: &Request,
    state: Data<&Arc<Services>>,
    op: Data<&Documented>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let out = async {
        let p = principal(req)?;
        let params = MonitorParams::from_map(&q)?;
        views::list(&state, req, &p, &params).await
    };
    respond(*op.0, out.await)
}

#[derive(serde::Deserialize)]
struct IngestBody {
    requests: Vec<serde_json::Value>,
}

#[handler]
async fn ingest(
    req: &Request,
    state: Data<&Arc<Services>>,
    op: Data<&Documented>,
    body: poem::Result<Json<IngestBody>>,
) -> Response {
    let out = async {
        let p = principal(req)?;
        let Ok(Json(body)) = body else {
            return Err(Error::invalid("requests", "Expected {\"requests\": [...]}.").into());
        };
        super::ingest::ingest(&state.logs, &state.metrics, &state.store, &p, &body.requests).await
    };
    let mut resp = respond(*op.0, out.await);
    if resp.status().is_success() {
        resp.set_status(poem::http::StatusCode::CREATED);
    }
    resp
}

#[handler]
async fn health(req: &Request, state: Data<&Arc<Services>>, op: Data<&Documented>) -> Response {
    let out = async { views::health(&state, &principal(req)?).await };
    respond(*op.0, out.await)
}

macro_rules! stats_alias {
    ($name:ident, $view:path) => {
        #[handler]
        async fn $name(
            req: &Request,
            state: Data<&Arc<Services>>,
            op: Data<&Documented>,
            Query(q): Query<HashMap<String, String>>,
        ) -> Response {
            let out = async {
                let p = principal(req)?;
                let params = MonitorParams::from_map(&q)?;
                $view(&state, &p, &params).await
            };
            respond(*op.0, out.await)
        }
    };
}

stats_alias!(overview, views::overview);
stats_alias!(services, views::services);
stats_alias!(methods, views::methods);
stats_alias!(timeline, views::timeline);

/// The documented operation `method <prefix><path>` stands for.
fn documented(catalog: &'static ApiCatalog, method: Method, path: &str) -> Documented {
    let op = catalog.aliased(MONITOR_ALIAS, method.as_str(), path);
    if op.is_none() {
        tracing::error!(path, %method, "a monitor alias route has no documented operation");
    }
    Documented(op.and_then(|op| op.operation_id.as_deref()))
}

/// The `/cfg/grpc/monitor/…` routes (paths without trailing slash; the app trims it), each
/// with its documented operation.
pub fn routes(catalog: &'static ApiCatalog) -> Route {
    let op = |method, path| documented(catalog, method, path);
    Route::new()
        .at(
            "/requests",
            get(requests.data(op(Method::GET, "/requests")))
                .post(ingest.data(op(Method::POST, "/requests"))),
        )
        .at("/health", get(health.data(op(Method::GET, "/health"))))
        .at("/overview", get(overview.data(op(Method::GET, "/overview"))))
        .at("/services", get(services.data(op(Method::GET, "/services"))))
        .at("/methods", get(methods.data(op(Method::GET, "/methods"))))
        .at("/timeline", get(timeline.data(op(Method::GET, "/timeline"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_stands_for_its_documented_operation() {
        let catalog = ApiCatalog::shared();
        for (method, path, id) in [
            (Method::GET, "/requests", "grpc_monitor_requests_list"),
            (Method::POST, "/requests", "grpc_monitor_requests_create"),
            (Method::GET, "/health", "grpc_monitor_health_retrieve"),
            (Method::GET, "/overview", "grpc_monitor_overview_retrieve"),
            (Method::GET, "/services", "grpc_monitor_services_retrieve"),
            (Method::GET, "/methods", "grpc_monitor_methods_retrieve"),
            (Method::GET, "/timeline", "grpc_monitor_timeline_retrieve"),
        ] {
            assert_eq!(documented(catalog, method, path), Documented(Some(id)), "{path}");
        }
        assert_eq!(documented(catalog, Method::GET, "/nothing"), Documented(None));
    }
}
