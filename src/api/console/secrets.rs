//! Projects → environments → variables: lists, create forms, values masked until revealed,
//! edit, delete, version history with rollback, `.env` import with its per-line report, and
//! export. Every read and write is the domain's, under the signed-in user's [`Caller`].

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::web::{Data, Multipart, Path, Query};
use poem::{handler, Body, FromRequest, Request, RequestBody, Response};
use serde_json::{json, Value};

use super::form::{self, Form};
use super::page::{field_errors, is_form_error, redirect, Ctx};
use crate::clock::rfc3339_from_unix;
use crate::domain::accounts;
use crate::domain::secrets::history;
use crate::domain::secrets::projects::{self, ProjectFilter};
use crate::domain::secrets::variables::{self, Collected, VariableChange};
use crate::domain::secrets::{environments, transfer, Caller, Vault};
use crate::domain::{Error, Role};
use crate::services::Services;
use crate::store::{ReadTx, WriteTx};

const PAGE_SIZE: usize = 100;

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    page: Option<String>,
    organization: Option<String>,
    reveal: Option<String>,
}

impl ListQuery {
    /// The 1-based page asked for (anything unreadable is the first).
    fn page(&self) -> usize {
        self.page.as_deref().and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1)
    }
}

/// What a form page shows besides its data: the values sent back and their errors.
#[derive(Default)]
struct Sent {
    form: Value,
    errs: Option<std::collections::BTreeMap<String, Vec<String>>>,
    status: Option<StatusCode>,
}

impl Sent {
    fn failed(form: Value, e: &Error) -> Self {
        let status = crate::api::error::status_of(e.code);
        Self { form, errs: Some(field_errors(e)), status: Some(status) }
    }
}

fn pages(total: u64) -> u64 {
    total.div_ceil(PAGE_SIZE as u64).max(1)
}

fn read<T>(
    state: &Services,
    f: impl FnOnce(&ReadTx, &Vault) -> Result<T, Error>,
) -> Result<T, Error> {
    let vault = &state.secrets;
    state.store.read(|tx| f(tx, vault))
}

async fn write<T, F>(state: &Arc<Services>, caller: Caller, f: F) -> Result<T, Error>
where
    F: Fn(&WriteTx, &Caller, &Vault) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    let vault = Arc::clone(&state.secrets);
    state.store.write(move |tx| f(tx, &caller, &vault)).await
}

/// The signed-in caller, or the answer to give instead.
fn caller(ctx: &Ctx, req: &Request) -> Result<Caller, Response> {
    ctx.signed_in(req).map(|p| Caller::new(p, ctx.ip))
}

// ---- projects ----

#[handler]
pub fn project_list(
    req: &Request,
    state: Data<&Arc<Services>>,
    Query(q): Query<ListQuery>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    projects_page(&ctx, &state, &c, &q, Sent::default())
}

fn projects_page(ctx: &Ctx, state: &Services, c: &Caller, q: &ListQuery, sent: Sent) -> Response {
    let page = q.page();
    let filter = ProjectFilter {
        organization: q.organization.as_deref().and_then(|o| o.parse().ok()),
        search: None,
    };
    let offset = (page - 1).saturating_mul(PAGE_SIZE);
    let listed = read(state, |tx, _| {
        let (total, rows) = projects::list(tx, c, &filter, offset, PAGE_SIZE)?;
        let orgs = accounts::organizations_of(tx, c.principal.user_id)?;
        Ok((total, rows, orgs))
    });
    let (total, rows, orgs) = match listed {
        Ok(v) => v,
        Err(e) => return ctx.error_page(&e),
    };
    let projects: Vec<Value> = rows
        .iter()
        .map(|p| {
            json!({"id": p.project.id, "name": p.project.name,
                "organization": p.organization_name, "environments": p.environment_count})
        })
        .collect();
    let writable: Vec<Value> = orgs
        .iter()
        .filter(|(o, r)| *r >= Role::Editor && c.principal.role_in(o.id).is_some())
        .map(|(o, _)| json!({"id": o.id, "name": o.name}))
        .collect();
    let data = json!({"title": "Projects", "projects": projects, "total": total, "page": page,
        "pages": pages(total), "writable_orgs": writable, "form": sent.form, "errs": sent.errs});
    ctx.render(sent.status.unwrap_or(StatusCode::OK), "projects.html", "projects", data)
}

#[handler]
pub async fn create_project(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let sent = json!({"organization": f.get("organization").parse::<u64>().ok(),
        "name": f.get("name"), "description": f.get("description")});
    let created = async {
        let org = f
            .get("organization")
            .parse::<u64>()
            .map_err(|_| Error::invalid("organization", "Choose an organization."))?;
        let name = projects::validate_name(f.get("name"))?;
        let description = projects::validate_description(f.opt("description"))?;
        write(&state, c.clone(), move |tx, c, _| {
            projects::create(tx, c, org, &name, description.clone())
        })
        .await
    }
    .await;
    match created {
        Ok(p) => redirect(&format!("/admin/projects/{}/", p.project.id)),
        Err(e) if is_form_error(&e) => {
            projects_page(&ctx, &state, &c, &ListQuery::default(), Sent::failed(sent, &e))
        }
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub fn project_detail(
    req: &Request,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let id = page!(ctx.path_id(&id));
    project_page(&ctx, &state, &c, id, Sent::default())
}

fn project_page(ctx: &Ctx, state: &Services, c: &Caller, id: u64, sent: Sent) -> Response {
    let loaded = read(state, |tx, _| {
        let p = projects::get(tx, c, id)?;
        let (_, envs) = environments::list_for_project(tx, c, id, 0, 1000)?;
        Ok((p, envs))
    });
    let (p, envs) = match loaded {
        Ok(v) => v,
        Err(e) => return ctx.error_page(&e),
    };
    let environments: Vec<Value> = envs
        .iter()
        .map(|e| {
            json!({"id": e.environment.id, "name": e.environment.name,
                "type": e.environment.environment_type, "variables": e.variable_count})
        })
        .collect();
    let can_edit = can_edit(c, p.project.organization_id);
    let mut form = sent.form;
    if form.is_null() {
        form = json!({"environment_type": "development"});
    }
    let data = json!({"title": p.project.name, "project": {"id": p.project.id,
        "name": p.project.name, "description": p.project.description},
        "environments": environments, "can_edit": can_edit, "form": form, "errs": sent.errs});
    ctx.render(sent.status.unwrap_or(StatusCode::OK), "project.html", "projects", data)
}

/// Whether the page shows edit controls (the domain refuses the action anyway).
fn can_edit(c: &Caller, org: u64) -> bool {
    !c.principal.read_only && c.principal.role_in(org).is_some_and(|r| r >= Role::Editor)
}

#[handler]
pub async fn create_environment(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let project = page!(ctx.path_id(&id));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let sent = json!({"name": f.get("name"), "environment_type": f.get("environment_type"),
        "description": f.get("description")});
    let created = async {
        let name = environments::validate_name(f.get("name"))?;
        let kind = environments::validate_type(f.get("environment_type"))?;
        let description = projects::validate_description(f.opt("description"))?;
        write(&state, c.clone(), move |tx, c, _| {
            environments::create(tx, c, project, &name, &kind, description.clone())
        })
        .await
    }
    .await;
    match created {
        Ok(e) => redirect(&format!("/admin/environments/{}/", e.environment.id)),
        Err(e) if is_form_error(&e) => {
            project_page(&ctx, &state, &c, project, Sent::failed(sent, &e))
        }
        Err(e) => ctx.error_page(&e),
    }
}

// ---- environments and variables ----

/// Which values the environment page shows in clear.
enum Reveal {
    None,
    All,
    One(u64),
}

impl Reveal {
    fn of(q: &ListQuery) -> Self {
        match q.reveal.as_deref() {
            Some("all") => Reveal::All,
            Some(id) => id.parse().map(Reveal::One).unwrap_or(Reveal::None),
            None => Reveal::None,
        }
    }

    fn shows(&self, id: u64) -> bool {
        match self {
            Reveal::None => false,
            Reveal::All => true,
            Reveal::One(one) => *one == id,
        }
    }
}

#[handler]
pub fn environment_detail(
    req: &Request,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let id = page!(ctx.path_id(&id));
    environment_page(&ctx, &state, &c, id, &q, Sent::default(), None)
}

fn environment_page(
    ctx: &Ctx,
    state: &Services,
    c: &Caller,
    id: u64,
    q: &ListQuery,
    sent: Sent,
    report: Option<Value>,
) -> Response {
    let page = q.page();
    let offset = (page - 1).saturating_mul(PAGE_SIZE);
    let loaded = read(state, |tx, vault| {
        let env = environments::get(tx, c, id)?;
        let mut rows = Collected::default();
        variables::list_for_env(tx, c, vault, id, offset, PAGE_SIZE, &mut rows)?;
        Ok((env, rows))
    });
    let (env, Collected(total, rows)) = match loaded {
        Ok(v) => v,
        Err(e) => return ctx.error_page(&e),
    };
    let reveal = Reveal::of(q);
    let variables: Vec<Value> = rows
        .iter()
        .map(|v| {
            let value = reveal.shows(v.variable.id).then_some(v.value.as_str());
            json!({"id": v.variable.id, "key": v.variable.key, "value": value,
                "version": v.variable.version})
        })
        .collect();
    let e = &env.environment;
    let data = json!({"title": e.name,
        "env": {"id": e.id, "name": e.name, "type": e.environment_type,
            "project": env.project_name, "project_id": e.project_id},
        "variables": variables, "total": total, "page": page, "pages": pages(total),
        "revealed_all": matches!(reveal, Reveal::All), "can_edit": can_edit(c, e.organization_id),
        "form": sent.form, "errs": sent.errs, "report": report});
    ctx.render(sent.status.unwrap_or(StatusCode::OK), "environment.html", "projects", data)
}

#[handler]
pub async fn create_variable(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let env = page!(ctx.path_id(&id));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let (key, value) = (f.get("key").trim().to_string(), f.get("value").to_string());
    let created = async {
        variables::validate_key(&key)?;
        variables::validate_value(&value)?;
        let (k, v) = (key.clone(), value.clone());
        write(&state, c.clone(), move |tx, c, vault| variables::create(tx, c, vault, env, &k, &v))
            .await
    }
    .await;
    match created {
        Ok(v) => redirect(&format!("/admin/environments/{env}/?reveal={}", v.variable.id)),
        Err(e) if is_form_error(&e) => {
            // The value typed is sent back into the form (this page is not cached).
            let sent = Sent::failed(json!({"key": key, "value": value}), &e);
            environment_page(&ctx, &state, &c, env, &ListQuery::default(), sent, None)
        }
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub fn variable_detail(
    req: &Request,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let id = page!(ctx.path_id(&id));
    variable_page(&ctx, &state, &c, id, Sent::default())
}

fn variable_page(ctx: &Ctx, state: &Services, c: &Caller, id: u64, sent: Sent) -> Response {
    let loaded = read(state, |tx, vault| {
        let v = variables::get(tx, c, vault, id)?;
        let h = history::versions(tx, c, vault, id)?;
        Ok((v, h))
    });
    let (v, versions) = match loaded {
        Ok(x) => x,
        Err(e) => return ctx.error_page(&e),
    };
    let history: Vec<Value> = versions
        .iter()
        .map(|h| {
            json!({"version": h.version, "key": h.key, "value": h.value,
                "at": rfc3339_from_unix(h.created_at), "by": h.created_by_name,
                "current": h.is_current})
        })
        .collect();
    let mut form = sent.form;
    if form.is_null() {
        form = json!({"key": v.variable.key, "value": v.value});
    }
    let data = json!({"title": v.variable.key,
        "var": {"id": v.variable.id, "key": v.variable.key,
            "environment": v.environment_name, "environment_id": v.variable.environment_id},
        "history": history, "can_edit": can_edit(c, v.variable.organization_id),
        "form": form, "errs": sent.errs});
    ctx.render(sent.status.unwrap_or(StatusCode::OK), "variable.html", "projects", data)
}

#[handler]
pub async fn update_variable(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let id = page!(ctx.path_id(&id));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let (key, value) = (f.get("key").trim().to_string(), f.get("value").to_string());
    let updated = async {
        variables::validate_key(&key)?;
        variables::validate_value(&value)?;
        let change = VariableChange {
            key: Some(key.clone()),
            value: Some(value.clone()),
            environment: None,
        };
        write(&state, c.clone(), move |tx, c, vault| variables::update(tx, c, vault, id, &change))
            .await
    }
    .await;
    match updated {
        Ok(v) => redirect(&format!("/admin/variables/{}/", v.variable.id)),
        Err(e) if is_form_error(&e) => {
            let sent = Sent::failed(json!({"key": key, "value": value}), &e);
            variable_page(&ctx, &state, &c, id, sent)
        }
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub async fn delete_variable(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let id = page!(ctx.path_id(&id));
    page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let env = match read(&state, |tx, _| variables::load(tx, &c, id, Role::Viewer)) {
        Ok(v) => v.environment_id,
        Err(e) => return ctx.error_page(&e),
    };
    match write(&state, c, move |tx, c, vault| variables::delete(tx, c, vault, id)).await {
        Ok(()) => redirect(&format!("/admin/environments/{env}/")),
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub async fn rollback(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let id = page!(ctx.path_id(&id));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let done = async {
        let version = f
            .get("version")
            .parse::<u32>()
            .map_err(|_| Error::invalid("version", "Choose a version to roll back to."))?;
        write(&state, c.clone(), move |tx, c, vault| history::rollback(tx, c, vault, id, version))
            .await
    }
    .await;
    match done {
        Ok(_) => redirect(&format!("/admin/variables/{id}/")),
        Err(e) if is_form_error(&e) => {
            variable_page(&ctx, &state, &c, id, Sent::failed(Value::Null, &e))
        }
        Err(e) => ctx.error_page(&e),
    }
}

// ---- import and export ----

#[handler]
pub async fn export(
    req: &Request,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let id = page!(ctx.path_id(&id));
    let export = match read(&state, |tx, vault| transfer::read_export(tx, &c, vault, id)) {
        Ok(e) => Arc::new(e),
        Err(e) => return ctx.error_page(&e),
    };
    let audited = Arc::clone(&export);
    let recorded =
        write(&state, c, move |tx, c, _| transfer::record_export(tx, c, &audited, "env")).await;
    if let Err(e) = recorded {
        return ctx.error_page(&e);
    }
    Response::builder()
        .content_type("text/plain; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", export.file_name("env")),
        )
        .body(export.env_file(time::OffsetDateTime::now_utc()))
}

/// The import form's fields: a file or pasted text, the overwrite box, the CSRF token.
async fn import_fields(
    req: &Request,
    body: Body,
    limit: u64,
) -> Result<(String, String, bool), Error> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let bytes = body
        .into_bytes_limit(limit)
        .await
        .map_err(|_| Error::invalid("file", "The file is over the upload limit."))?;
    let mut body = RequestBody::new(Body::from_bytes(bytes));
    let mut parts = Multipart::from_request(req, &mut body)
        .await
        .map_err(|_| Error::invalid("file", "Send the form as multipart/form-data."))?;
    let (mut csrf, mut text, mut overwrite) = (String::new(), String::new(), false);
    let unreadable = || Error::invalid("file", "The upload could not be read.");
    while let Some(field) = parts.next_field().await.map_err(|_| unreadable())? {
        let name = field.name().unwrap_or_default().to_string();
        let data = field.bytes().await.map_err(|_| unreadable())?;
        let as_text = || {
            String::from_utf8(data.clone())
                .map_err(|_| Error::invalid("file", "The file must be UTF-8 text."))
        };
        match name.as_str() {
            "csrf" => csrf = as_text()?,
            "file" if !data.is_empty() => text = as_text()?,
            "text" if text.is_empty() => text = as_text()?,
            "overwrite" => overwrite = data.as_slice() != b"false",
            _ => {}
        }
    }
    Ok((csrf, text, overwrite))
}

#[handler]
pub async fn import(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let c = page!(caller(&ctx, req));
    let env = page!(ctx.path_id(&id));
    let limit = state.config.server.max_upload_bytes.saturating_add(64 * 1024);
    let fields = import_fields(req, body, limit).await;
    // The token is checked before anything in the upload is looked at.
    if let Ok((csrf, _, _)) = &fields {
        if !form::token_matches(&ctx, csrf) {
            return form::forged();
        }
    }
    let imported = async {
        let (_, text, overwrite) = fields?;
        if text.trim().is_empty() {
            return Err(Error::invalid("file", "Choose a file or paste some lines."));
        }
        let parsed = tokio::task::spawn_blocking(move || transfer::parse_upload(&text))
            .await
            .map_err(Error::from)?;
        let parsed = Arc::new(parsed);
        write(&state, c.clone(), move |tx, c, vault| {
            transfer::import(tx, c, vault, env, &parsed, overwrite)
        })
        .await
    }
    .await;
    let q = ListQuery::default();
    match imported {
        Ok(s) => {
            let failed: Vec<Value> = s
                .failed_imports
                .iter()
                .map(|f| json!({"line": f.line, "key": f.key, "error": f.error}))
                .collect();
            let report = json!({"imported": s.imported, "updated": s.updated,
                "unchanged": s.unchanged, "kept": s.kept, "failed": failed});
            environment_page(&ctx, &state, &c, env, &q, Sent::default(), Some(report))
        }
        Err(e) if is_form_error(&e) => {
            environment_page(&ctx, &state, &c, env, &q, Sent::failed(Value::Null, &e), None)
        }
        Err(e) => ctx.error_page(&e),
    }
}
