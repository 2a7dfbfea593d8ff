//! django-cfg as deployed serves the monitor under `/cfg/grpc/monitor/…`. These plain poem
//! routes answer there with the same views; they are left out of the OpenAPI document (the
//! docs/api.md lists them) so generated clients see each operation once.

use std::collections::HashMap;
use std::sync::Arc;

use poem::web::{Data, Json, Query};
use poem::{get, handler, IntoResponse, Request, Response, Route};
use poem_openapi::types::ToJSON;
use poem_openapi::OperationId;

use super::params::MonitorParams;
use super::views;
use crate::api::error::{ApiError, ApiResult};
use crate::domain::{Error, Principal};
use crate::services::Services;

fn principal(req: &Request) -> Result<Principal, ApiError> {
    req.extensions().get::<Principal>().cloned().ok_or_else(|| {
        Error::unauthenticated("Authentication credentials were not provided.").into()
    })
}

fn respond<T: ToJSON>(op: &'static str, result: ApiResult<T>) -> Response {
    let mut resp = match result {
        Ok(body) => Json(body.to_json()).into_response(),
        Err(e) => e.into_response(),
    };
    resp.set_data(OperationId(op));
    resp
}

#[handler]
async fn requests(
    req: &Request,
    state: Data<&Arc<Services>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let out = async {
        let p = principal(req)?;
        let params = MonitorParams::from_map(&q)?;
        views::list(&state, req, &p, &params).await
    };
    respond("grpc_monitor_requests_list", out.await)
}

#[derive(serde::Deserialize)]
struct IngestBody {
    requests: Vec<serde_json::Value>,
}

#[handler]
async fn ingest(
    req: &Request,
    state: Data<&Arc<Services>>,
    body: poem::Result<Json<IngestBody>>,
) -> Response {
    let out = async {
        let p = principal(req)?;
        let Ok(Json(body)) = body else {
            return Err(Error::invalid("requests", "Expected {\"requests\": [...]}.").into());
        };
        super::ingest::ingest(&state.logs, &state.store, &p, &body.requests).await
    };
    let mut resp = respond("grpc_monitor_requests_create", out.await);
    if resp.status().is_success() {
        resp.set_status(poem::http::StatusCode::CREATED);
    }
    resp
}

#[handler]
async fn health(req: &Request, state: Data<&Arc<Services>>) -> Response {
    let out = async { views::health(&state, &principal(req)?).await };
    respond("grpc_monitor_health_retrieve", out.await)
}

macro_rules! stats_alias {
    ($name:ident, $view:path, $op:literal) => {
        #[handler]
        async fn $name(
            req: &Request,
            state: Data<&Arc<Services>>,
            Query(q): Query<HashMap<String, String>>,
        ) -> Response {
            let out = async {
                let p = principal(req)?;
                let params = MonitorParams::from_map(&q)?;
                $view(&state, &p, &params).await
            };
            respond($op, out.await)
        }
    };
}

stats_alias!(overview, views::overview, "grpc_monitor_overview_retrieve");
stats_alias!(services, views::services, "grpc_monitor_services_retrieve");
stats_alias!(methods, views::methods, "grpc_monitor_methods_retrieve");
stats_alias!(timeline, views::timeline, "grpc_monitor_timeline_retrieve");

/// The `/cfg/grpc/monitor/…` routes (paths without trailing slash; the app trims it).
pub fn routes() -> Route {
    Route::new()
        .at("/requests", get(requests).post(ingest))
        .at("/health", get(health))
        .at("/overview", get(overview))
        .at("/services", get(services))
        .at("/methods", get(methods))
        .at("/timeline", get(timeline))
}
