//! Cascading deletes: an environment takes its variables (live and deleted) and their history;
//! a project takes its environments; an organization takes its projects and its data key.
//! Everything runs inside the caller's transaction, so a cascade commits whole or not at all.

use serde_json::json;

use crate::domain::audit::{self, AuditEvent};
use crate::domain::effects::{self, Counted};
use crate::domain::secrets::records::{Environment, Project};
use crate::domain::secrets::tables::{
    DELETED_VARIABLES_BY_ENV, ENVIRONMENTS, ENVIRONMENTS_BY_ORG, ENVIRONMENTS_BY_PROJECT,
    ENVIRONMENT_NAMES, ORG_DATA_KEYS, PROJECTS, PROJECTS_BY_ORG, PROJECT_NAMES, VARIABLES,
    VARIABLES_BY_ENV, VARIABLES_BY_ORG, VARIABLE_KEYS,
};
use crate::domain::secrets::variables::key_lookup;
use crate::domain::secrets::{history, Caller};
use crate::domain::Error;
use crate::store::{Reader, WriteTx, Writer as _};

/// What a cascade removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub projects: u64,
    pub environments: u64,
    /// Live variables removed.
    pub variables: u64,
    /// Names of the environments removed (for the audit record).
    pub environment_names: Vec<String>,
}

/// Deletes an environment, its variables (live and retained-deleted) and their history.
pub fn delete_environment(tx: &WriteTx, env: &Environment) -> Result<Removed, Error> {
    let mut removed = Removed { environments: 1, ..Removed::default() };
    for id in tx.children(VARIABLES_BY_ENV, env.id)? {
        if let Some(var) = tx.get(VARIABLES, id)? {
            tx.release(VARIABLE_KEYS, &key_lookup(env.id, &var.key))?;
            tx.unlink(VARIABLES_BY_ORG, var.organization_id, id)?;
            effects::count(tx, var.organization_id, Counted::Variables, -1);
            history::purge(tx, &var)?;
            removed.variables += 1;
        }
        tx.unlink(VARIABLES_BY_ENV, env.id, id)?;
    }
    for id in tx.children(DELETED_VARIABLES_BY_ENV, env.id)? {
        match tx.get(VARIABLES, id)? {
            Some(var) => history::purge(tx, &var)?,
            None => tx.unlink(DELETED_VARIABLES_BY_ENV, env.id, id)?,
        }
    }
    tx.release(ENVIRONMENT_NAMES, &format!("{}/{}", env.project_id, env.name))?;
    tx.unlink(ENVIRONMENTS_BY_PROJECT, env.project_id, env.id)?;
    tx.unlink(ENVIRONMENTS_BY_ORG, env.organization_id, env.id)?;
    effects::count(tx, env.organization_id, Counted::Environments, -1);
    tx.remove(ENVIRONMENTS, env.id)?;
    removed.environment_names.push(env.name.clone());
    Ok(removed)
}

/// Deletes a project and everything under it.
pub fn delete_project(tx: &WriteTx, project: &Project) -> Result<Removed, Error> {
    let mut removed = Removed { projects: 1, ..Removed::default() };
    for id in tx.children(ENVIRONMENTS_BY_PROJECT, project.id)? {
        if let Some(env) = tx.get(ENVIRONMENTS, id)? {
            let r = delete_environment(tx, &env)?;
            removed.environments += r.environments;
            removed.variables += r.variables;
            removed.environment_names.extend(r.environment_names);
        } else {
            tx.unlink(ENVIRONMENTS_BY_PROJECT, project.id, id)?;
        }
    }
    tx.release(
        PROJECT_NAMES,
        &format!("{}/{}", project.organization_id, project.name.to_lowercase()),
    )?;
    tx.unlink(PROJECTS_BY_ORG, project.organization_id, project.id)?;
    effects::count(tx, project.organization_id, Counted::Projects, -1);
    tx.remove(PROJECTS, project.id)?;
    Ok(removed)
}

/// Deletes every project of an organization and its data key; returns counts by kind.
pub fn delete_organization(tx: &WriteTx, org: u64) -> Result<Removed, Error> {
    let mut removed = Removed::default();
    for id in tx.children(PROJECTS_BY_ORG, org)? {
        if let Some(p) = tx.get(PROJECTS, id)? {
            let r = delete_project(tx, &p)?;
            removed.projects += r.projects;
            removed.environments += r.environments;
            removed.variables += r.variables;
        } else {
            tx.unlink(PROJECTS_BY_ORG, org, id)?;
        }
    }
    tx.remove(ORG_DATA_KEYS, org)?;
    Ok(removed)
}

/// The audit records of a project deletion: one per kind of object removed.
pub fn audit_cascade(
    tx: &WriteTx,
    caller: &Caller,
    project: &Project,
    removed: &Removed,
) -> Result<(), Error> {
    let org = Some(project.organization_id);
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: org,
            action: "project_deleted",
            target_type: "project",
            target_id: project.id.to_string(),
            details: json!({
                "name": project.name,
                "environments_deleted": removed.environments,
                "variables_deleted": removed.variables,
            }),
        },
    )?;
    if removed.environments > 0 {
        audit::record(
            tx,
            AuditEvent {
                actor: &caller.actor,
                organization_id: org,
                action: "environment_deleted",
                target_type: "environment",
                target_id: String::new(),
                details: json!({
                    "project": project.name,
                    "count": removed.environments,
                    "names": removed.environment_names,
                    "cascade": true,
                }),
            },
        )?;
    }
    if removed.variables > 0 {
        audit::record(
            tx,
            AuditEvent {
                actor: &caller.actor,
                organization_id: org,
                action: "variable_deleted",
                target_type: "variable",
                target_id: String::new(),
                details: json!({
                    "project": project.name,
                    "count": removed.variables,
                    "environments": removed.environment_names,
                    "cascade": true,
                }),
            },
        )?;
    }
    Ok(())
}
