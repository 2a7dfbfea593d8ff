//! API deployments of an organization (editors and admins): workflows (name, template,
//! output format) and deployments — create (the key shown once, with its endpoint), rotate
//! the key, and each deployment's recent executions. The domain checks every role.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use serde_json::{json, Value};

use super::form::Form;
use super::page::{field_errors, is_form_error, redirect, with_status, Ctx};
use crate::clock::rfc3339_from_unix;
use crate::domain::deployments::api_deployments::{self, DeploymentInput, DeploymentView};
use crate::domain::deployments::executions;
use crate::domain::deployments::workflows::{self, WorkflowInput};
use crate::domain::secrets::Caller;
use crate::domain::{orgs, Error};
use crate::services::Services;

/// Executions listed on a deployment's page.
const RECENT_EXECUTIONS: usize = 50;

fn caller(ctx: &Ctx, req: &Request) -> Result<Caller, Response> {
    ctx.signed_in(req).map(|p| Caller::new(p, ctx.ip))
}

fn deployment_row(state: &Services, v: &DeploymentView) -> Value {
    let d = &v.deployment;
    let usage = state.deployments.usage_of(&d.usage, d.id);
    json!({"id": d.id, "api_name": d.api_name, "display_name": d.display_name,
        "workflow": v.workflow_name, "active": d.is_active, "masked": d.masked_key,
        "rate": d.rate_limit_per_minute, "requests": usage.request_count,
        "errors": usage.error_count,
        "last_used": usage.last_used_at.map(rfc3339_from_unix)})
}

#[handler]
pub fn list(req: &Request, state: Data<&Arc<Services>>, Path(org): Path<String>) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let org = page!(ctx.path_id(&org));
    list_page(&ctx, &state, &c, org, json!({}), None)
}

/// The page; `extra` carries a created key or the forms sent back, `e` their refusal.
fn list_page(
    ctx: &Ctx,
    state: &Services,
    c: &Caller,
    org: u64,
    extra: Value,
    e: Option<&Error>,
) -> Response {
    let loaded = state.store.read(|tx| {
        let deployments = api_deployments::list(tx, c, org)?;
        let flows = workflows::list(tx, c, org)?;
        let name = orgs::get(tx, &c.principal, org)?.org.name;
        Ok::<_, Error>((deployments, flows, name))
    });
    let (deployments, flows, name) = match loaded {
        Ok(v) => v,
        Err(e) => return ctx.error_page(&e),
    };
    let rows: Vec<Value> = deployments.iter().map(|v| deployment_row(state, v)).collect();
    let flows: Vec<Value> = flows
        .iter()
        .map(|w| {
            json!({"id": w.id, "name": w.name, "format": w.output_format.as_str(),
                "type": w.workflow_type.as_str()})
        })
        .collect();
    let mut data = json!({"title": "API deployments", "org": {"id": org, "name": name},
        "deployments": rows, "workflows": flows, "wform": {}, "dform": {},
        "errs": e.map(field_errors)});
    if let (Value::Object(d), Value::Object(x)) = (&mut data, extra) {
        d.extend(x);
    }
    let status = e.map_or(StatusCode::OK, |e| crate::api::error::status_of(e.code));
    ctx.render(status, "deployments.html", "home", data)
}

#[handler]
pub async fn create_workflow(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(org): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let org = page!(ctx.path_id(&org));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let input = WorkflowInput {
        name: Some(f.get("workflow_name").to_string()),
        description: f.opt("description"),
        workflow_type: None,
        environment: None,
        template: Some(f.get("template").to_string()),
        output_format: f.opt("output_format"),
    };
    let sent = json!({"workflow_name": f.get("workflow_name"), "template": f.get("template"),
        "output_format": f.get("output_format")});
    let who = c.clone();
    match state.store.write(move |tx| workflows::create(tx, &who, org, &input)).await {
        Ok(_) => redirect(&format!("/admin/orgs/{org}/deployments/")),
        Err(e) if is_form_error(&e) => {
            list_page(&ctx, &state, &c, org, json!({"wform": sent}), Some(&e))
        }
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub async fn create(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(org): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let org = page!(ctx.path_id(&org));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let sent = json!({"api_name": f.get("api_name"), "display_name": f.get("display_name"),
        "workflow": f.get("workflow").parse::<u64>().ok(),
        "rate_limit_per_minute": f.get("rate_limit_per_minute")});
    let created = async {
        let number = |field: &str| {
            f.opt(field)
                .map(|v| v.parse::<u64>())
                .transpose()
                .map_err(|_| Error::invalid(field, "A whole number."))
        };
        let input = DeploymentInput {
            api_name: Some(f.get("api_name").to_string()),
            display_name: f.opt("display_name"),
            description: None,
            workflow: number("workflow")?,
            is_active: Some(true),
            rate_limit_per_minute: number("rate_limit_per_minute")?,
            ip_allowlist: None,
            max_input_bytes: None,
            timeout_seconds: None,
        };
        let limits = state.deployments.limits();
        // Made outside the closure, which may run more than once.
        let key = Arc::new(api_deployments::new_key()?);
        let (who, k) = (c.clone(), Arc::clone(&key));
        let v = state
            .store
            .write(move |tx| api_deployments::create(tx, &who, org, &input, limits, &k))
            .await?;
        Ok::<_, Error>((v, key.key.clone()))
    }
    .await;
    match created {
        // The key is on this answer only: no redirect, so a reload does not show it again.
        Ok((v, key)) => {
            let extra = json!({"created": {"name": v.deployment.api_name,
                "endpoint": format!("/deployment/{key}/"), "key": key}});
            with_status(list_page(&ctx, &state, &c, org, extra, None), StatusCode::CREATED)
        }
        Err(e) if is_form_error(&e) => {
            list_page(&ctx, &state, &c, org, json!({"dform": sent}), Some(&e))
        }
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub fn detail(
    req: &Request,
    state: Data<&Arc<Services>>,
    Path((org, id)): Path<(String, String)>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let (org, id) = (page!(ctx.path_id(&org)), page!(ctx.path_id(&id)));
    detail_page(&ctx, &state, &c, org, id, json!({}))
}

fn detail_page(
    ctx: &Ctx,
    state: &Services,
    c: &Caller,
    org: u64,
    id: u64,
    extra: Value,
) -> Response {
    let loaded = state.store.read(|tx| {
        let v = api_deployments::get(tx, c, org, id)?;
        let runs = executions::recent(tx, id, RECENT_EXECUTIONS)?;
        Ok::<_, Error>((v, runs))
    });
    let (v, runs) = match loaded {
        Ok(x) => x,
        Err(e) => return ctx.error_page(&e),
    };
    let now_ms = crate::clock::unix_now_ms();
    // Status, timing and the error only: inputs and results may hold secret values.
    let runs: Vec<Value> = runs
        .iter()
        .map(|e| {
            json!({"id": e.uuid, "status": e.status.as_str(),
                "created": rfc3339_from_unix(e.created_at_ms.div_euclid(1000)),
                "seconds": format!("{:.3}", e.elapsed_seconds(now_ms)), "error": e.error})
        })
        .collect();
    let mut data = json!({"title": v.deployment.display_name, "org": {"id": org},
        "d": deployment_row(state, &v), "runs": runs});
    if let (Value::Object(d), Value::Object(x)) = (&mut data, extra) {
        d.extend(x);
    }
    ctx.render(StatusCode::OK, "deployment.html", "home", data)
}

/// A new key (shown once); the old one keeps working for the chosen grace period.
#[handler]
pub async fn rotate(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path((org, id)): Path<(String, String)>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let (org, id) = (page!(ctx.path_id(&org)), page!(ctx.path_id(&id)));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let rotated = async {
        let grace = match f.opt("grace_seconds") {
            None => 0,
            Some(g) => g
                .parse::<u64>()
                .map_err(|_| Error::invalid("grace_seconds", "A whole number of seconds."))?,
        };
        let key = Arc::new(api_deployments::new_key()?);
        let (who, k) = (c.clone(), Arc::clone(&key));
        state
            .store
            .write(move |tx| api_deployments::rotate_key(tx, &who, org, id, grace, &k))
            .await?;
        Ok::<_, Error>(key.key.clone())
    }
    .await;
    match rotated {
        Ok(key) => {
            let extra = json!({"created": {"endpoint": format!("/deployment/{key}/"), "key": key}});
            detail_page(&ctx, &state, &c, org, id, extra)
        }
        Err(e) => ctx.error_page(&e),
    }
}
