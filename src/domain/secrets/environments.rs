//! Environments of projects: validation, create/update/delete with audit, and the lists.

use serde_json::json;

use crate::clock::unix_now;
use crate::domain::audit::{self, AuditEvent};
use crate::domain::effects::{self, Counted};
use crate::domain::secrets::records::Environment;
use crate::domain::secrets::tables::{
    ENVIRONMENTS, ENVIRONMENTS_BY_ORG, ENVIRONMENTS_BY_PROJECT, ENVIRONMENT_NAMES, PROJECTS,
    VARIABLES_BY_ENV,
};
use crate::domain::secrets::{cascade, page_of, projects, Caller, UserNames, ENVIRONMENT_TYPES};
use crate::domain::{Error, Role};
use crate::store::{Reader, WriteTx, Writer as _};

/// An environment with the names and counts the API shows.
#[derive(Debug, Clone)]
pub struct EnvironmentView {
    pub environment: Environment,
    pub project_name: String,
    pub created_by_name: String,
    pub variable_count: u64,
}

/// Which environments to list.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentFilter {
    pub project: Option<u64>,
    pub environment_type: Option<String>,
}

/// What a create or update sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentChange {
    pub name: Option<String>,
    pub environment_type: Option<String>,
    pub description: Option<Option<String>>,
}

/// KeyNest's rules: `[A-Za-z0-9_-]`, 2 to 100 characters; stored lower-cased.
pub fn validate_name(raw: &str) -> Result<String, Error> {
    if raw.is_empty() || !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::invalid(
            "name",
            "Environment name can only contain letters, numbers, hyphens, and underscores.",
        ));
    }
    if raw.len() < 2 {
        return Err(Error::invalid("name", "Environment name must be at least 2 characters long."));
    }
    if raw.len() > 100 {
        return Err(Error::invalid("name", "Ensure this field has no more than 100 characters."));
    }
    Ok(raw.to_ascii_lowercase())
}

/// One of [`ENVIRONMENT_TYPES`].
pub fn validate_type(raw: &str) -> Result<String, Error> {
    if ENVIRONMENT_TYPES.contains(&raw) {
        Ok(raw.to_string())
    } else {
        Err(Error::invalid("environment_type", format!("\"{raw}\" is not a valid choice.")))
    }
}

fn name_key(project: u64, name: &str) -> String {
    format!("{project}/{name}")
}

/// Loads an environment the caller can see (404 otherwise) and checks `min`.
pub fn load(tx: &impl Reader, caller: &Caller, id: u64, min: Role) -> Result<Environment, Error> {
    let env = tx.get(ENVIRONMENTS, id)?.ok_or_else(|| Error::not_found("Environment"))?;
    caller.require(env.organization_id, min, "Environment")?;
    Ok(env)
}

/// Adds names and counts.
pub fn view(
    tx: &impl Reader,
    names: &mut UserNames,
    environment: Environment,
) -> Result<EnvironmentView, Error> {
    let project_name =
        tx.get(PROJECTS, environment.project_id)?.map(|p| p.name).unwrap_or_default();
    Ok(EnvironmentView {
        project_name,
        created_by_name: names.name(tx, environment.created_by)?,
        variable_count: tx.count_children(VARIABLES_BY_ENV, environment.id)?,
        environment,
    })
}

fn audit_env(
    tx: &WriteTx,
    caller: &Caller,
    action: &str,
    env: &Environment,
    project_name: &str,
) -> Result<(), Error> {
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(env.organization_id),
            action,
            target_type: "environment",
            target_id: env.id.to_string(),
            details: json!({
                "name": env.name,
                "environment_type": env.environment_type,
                "project": project_name,
            }),
        },
    )?;
    Ok(())
}

/// Creates an environment in `project` (editor or admin).
pub fn create(
    tx: &WriteTx,
    caller: &Caller,
    project_id: u64,
    name: &str,
    environment_type: &str,
    description: Option<String>,
) -> Result<EnvironmentView, Error> {
    let project = projects::load(tx, caller, project_id, Role::Viewer)?;
    caller.require_write(project.organization_id, Role::Editor, "Project")?;
    let id = tx.next_id("environments")?;
    if !tx.claim(ENVIRONMENT_NAMES, &name_key(project.id, name), id)? {
        return Err(Error::conflict(
            "An environment with this name already exists in this project.",
        ));
    }
    let now = unix_now();
    let env = Environment {
        id,
        organization_id: project.organization_id,
        project_id: project.id,
        name: name.to_string(),
        environment_type: environment_type.to_string(),
        description,
        created_by: caller.principal.user_id,
        created_at: now,
        updated_at: now,
    };
    tx.put(ENVIRONMENTS, id, &env)?;
    tx.link(ENVIRONMENTS_BY_PROJECT, project.id, id)?;
    tx.link(ENVIRONMENTS_BY_ORG, project.organization_id, id)?;
    effects::count(tx, project.organization_id, Counted::Environments, 1);
    audit_env(tx, caller, "environment_created", &env, &project.name)?;
    Ok(EnvironmentView {
        environment: env,
        project_name: project.name,
        created_by_name: caller.principal.full_name.clone(),
        variable_count: 0,
    })
}

/// Applies `change` (editor or admin).
pub fn update(
    tx: &WriteTx,
    caller: &Caller,
    id: u64,
    change: &EnvironmentChange,
) -> Result<EnvironmentView, Error> {
    let mut env = load(tx, caller, id, Role::Viewer)?;
    caller.require_write(env.organization_id, Role::Editor, "Environment")?;
    if let Some(name) = change.name.as_deref().filter(|n| *n != env.name) {
        if !tx.claim(ENVIRONMENT_NAMES, &name_key(env.project_id, name), id)? {
            return Err(Error::conflict(
                "An environment with this name already exists in this project.",
            ));
        }
        tx.release(ENVIRONMENT_NAMES, &name_key(env.project_id, &env.name))?;
        env.name = name.to_string();
    }
    if let Some(t) = &change.environment_type {
        env.environment_type.clone_from(t);
    }
    if let Some(d) = &change.description {
        env.description.clone_from(d);
    }
    env.updated_at = unix_now();
    tx.put(ENVIRONMENTS, id, &env)?;
    let mut names = UserNames::default();
    let v = view(tx, &mut names, env)?;
    audit_env(tx, caller, "environment_updated", &v.environment, &v.project_name)?;
    Ok(v)
}

/// Deletes an environment with its variables and their history (editor or admin).
pub fn delete(tx: &WriteTx, caller: &Caller, id: u64) -> Result<(), Error> {
    let env = load(tx, caller, id, Role::Viewer)?;
    caller.require_write(env.organization_id, Role::Editor, "Environment")?;
    let project_name = tx.get(PROJECTS, env.project_id)?.map(|p| p.name).unwrap_or_default();
    let removed = cascade::delete_environment(tx, &env)?;
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(env.organization_id),
            action: "environment_deleted",
            target_type: "environment",
            target_id: env.id.to_string(),
            details: json!({
                "name": env.name,
                "project": project_name,
                "variables_deleted": removed.variables,
            }),
        },
    )?;
    Ok(())
}

/// One environment the caller can see.
pub fn get(tx: &impl Reader, caller: &Caller, id: u64) -> Result<EnvironmentView, Error> {
    let env = load(tx, caller, id, Role::Viewer)?;
    let mut names = UserNames::default();
    view(tx, &mut names, env)
}

/// The environments of one project (404 if the caller cannot see it).
pub fn list_for_project(
    tx: &impl Reader,
    caller: &Caller,
    project_id: u64,
    offset: usize,
    limit: usize,
) -> Result<(u64, Vec<EnvironmentView>), Error> {
    projects::load(tx, caller, project_id, Role::Viewer)?;
    let filter = EnvironmentFilter { project: Some(project_id), environment_type: None };
    list(tx, caller, &filter, offset, limit)
}

/// The caller's environments, by id, filtered: `(total, page)`.
pub fn list(
    tx: &impl Reader,
    caller: &Caller,
    filter: &EnvironmentFilter,
    offset: usize,
    limit: usize,
) -> Result<(u64, Vec<EnvironmentView>), Error> {
    let mut ids = Vec::new();
    if let Some(pid) = filter.project {
        let visible = tx
            .get(PROJECTS, pid)?
            .is_some_and(|p| caller.principal.role_in(p.organization_id).is_some());
        if visible {
            ids = tx.children(ENVIRONMENTS_BY_PROJECT, pid)?;
        }
    } else {
        for org in caller.principal.visible_orgs() {
            ids.extend(tx.children(ENVIRONMENTS_BY_ORG, org)?);
        }
        ids.sort_unstable();
    }
    let mut names = UserNames::default();
    let Some(kind) = filter.environment_type.as_deref() else {
        let mut out = Vec::new();
        for id in page_of(&ids, offset, limit) {
            if let Some(e) = tx.get(ENVIRONMENTS, id)? {
                out.push(view(tx, &mut names, e)?);
            }
        }
        return Ok((ids.len() as u64, out));
    };
    let mut matching = Vec::new();
    for id in ids {
        if let Some(e) = tx.get(ENVIRONMENTS, id)? {
            if e.environment_type == kind {
                matching.push(e);
            }
        }
    }
    let total = matching.len() as u64;
    let mut out = Vec::new();
    for e in matching.into_iter().skip(offset).take(limit) {
        out.push(view(tx, &mut names, e)?);
    }
    Ok((total, out))
}
