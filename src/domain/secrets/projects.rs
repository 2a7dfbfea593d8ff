//! Projects: validation, create/update/delete with their audit records, and the visible list.

use serde_json::json;

use crate::clock::unix_now;
use crate::domain::audit::{self, AuditEvent};
use crate::domain::effects::{self, Counted};
use crate::domain::orgs::tables::ORGANIZATIONS;
use crate::domain::records::organization_name;
use crate::domain::secrets::records::Project;
use crate::domain::secrets::tables::{
    ENVIRONMENTS_BY_PROJECT, PROJECTS, PROJECTS_BY_ORG, PROJECT_NAMES,
};
use crate::domain::secrets::{cascade, matches_search, page_of, Caller, UserNames};
use crate::domain::{Error, Role};
use crate::store::{Reader, WriteTx, Writer as _};

/// Longest project name, in characters (KeyNest's column size).
pub const MAX_NAME_CHARS: usize = 255;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// A project with the names and counts the API shows.
#[derive(Debug, Clone)]
pub struct ProjectView {
    pub project: Project,
    pub organization_name: String,
    pub created_by_name: String,
    pub environment_count: u64,
}

/// Which projects to list.
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    pub organization: Option<u64>,
    /// Case-insensitive substring of name or description.
    pub search: Option<String>,
}

/// KeyNest's rules: letters, digits, whitespace, `-`, `_`, `.`; at least 2 characters after
/// trimming; at most 255. Returns the trimmed name.
pub fn validate_name(raw: &str) -> Result<String, Error> {
    let ok_chars =
        raw.chars().all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || "-_.".contains(c));
    if !ok_chars {
        return Err(Error::invalid(
            "name",
            "Project name can only contain letters, numbers, spaces, hyphens, underscores, and periods.",
        ));
    }
    let name = raw.trim();
    if name.chars().count() < 2 {
        return Err(Error::invalid("name", "Project name must be at least 2 characters long."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid("name", "Ensure this field has no more than 255 characters."));
    }
    Ok(name.to_string())
}

/// Checks a description's length; blank becomes `None`.
pub fn validate_description(raw: Option<String>) -> Result<Option<String>, Error> {
    match raw {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(Error::invalid(
            "description",
            "Ensure this field has no more than 10000 characters.",
        )),
        other => Ok(other),
    }
}

fn name_key(org: u64, name: &str) -> String {
    format!("{org}/{}", name.to_lowercase())
}

/// Loads a project the caller can see (404 otherwise) and checks `min`.
pub fn load(tx: &impl Reader, caller: &Caller, id: u64, min: Role) -> Result<Project, Error> {
    let project = tx.get(PROJECTS, id)?.ok_or_else(|| Error::not_found("Project"))?;
    caller.require(project.organization_id, min, "Project")?;
    Ok(project)
}

/// Adds names and counts.
pub fn view(
    tx: &impl Reader,
    names: &mut UserNames,
    project: Project,
) -> Result<ProjectView, Error> {
    Ok(ProjectView {
        organization_name: organization_name(tx, project.organization_id)?,
        created_by_name: names.name(tx, project.created_by)?,
        environment_count: tx.count_children(ENVIRONMENTS_BY_PROJECT, project.id)?,
        project,
    })
}

/// Creates a project in `org` (editor or admin).
pub fn create(
    tx: &WriteTx,
    caller: &Caller,
    org: u64,
    name: &str,
    description: Option<String>,
) -> Result<ProjectView, Error> {
    caller.require_write(org, Role::Editor, "Organization")?;
    let org_name = match tx.get(ORGANIZATIONS, org)? {
        Some(o) => o.name,
        None => return Err(Error::not_found("Organization")),
    };
    let id = tx.next_id("projects")?;
    if !tx.claim(PROJECT_NAMES, &name_key(org, name), id)? {
        return Err(Error::conflict(
            "A project with this name already exists in this organization.",
        ));
    }
    let now = unix_now();
    let project = Project {
        id,
        organization_id: org,
        name: name.to_string(),
        description,
        created_by: caller.principal.user_id,
        created_at: now,
        updated_at: now,
    };
    tx.put(PROJECTS, id, &project)?;
    tx.link(PROJECTS_BY_ORG, org, id)?;
    effects::count(tx, org, Counted::Projects, 1);
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(org),
            action: "project_created",
            target_type: "project",
            target_id: id.to_string(),
            details: json!({ "name": project.name, "organization": org_name }),
        },
    )?;
    Ok(ProjectView {
        project,
        organization_name: org_name,
        created_by_name: caller.principal.full_name.clone(),
        environment_count: 0,
    })
}

/// Changes a project's name and/or description (editor or admin). `description: Some(None)`
/// clears it.
pub fn update(
    tx: &WriteTx,
    caller: &Caller,
    id: u64,
    name: Option<&str>,
    description: Option<Option<String>>,
) -> Result<ProjectView, Error> {
    let mut project = load(tx, caller, id, Role::Viewer)?;
    caller.require_write(project.organization_id, Role::Editor, "Project")?;
    let mut changed = Vec::new();
    if let Some(name) = name.filter(|n| *n != project.name) {
        let old_key = name_key(project.organization_id, &project.name);
        let new_key = name_key(project.organization_id, name);
        if new_key != old_key {
            if !tx.claim(PROJECT_NAMES, &new_key, id)? {
                return Err(Error::conflict(
                    "A project with this name already exists in this organization.",
                ));
            }
            tx.release(PROJECT_NAMES, &old_key)?;
        }
        project.name = name.to_string();
        changed.push("name");
    }
    if let Some(d) = description {
        if d != project.description {
            project.description = d;
            changed.push("description");
        }
    }
    project.updated_at = unix_now();
    tx.put(PROJECTS, id, &project)?;
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(project.organization_id),
            action: "project_updated",
            target_type: "project",
            target_id: id.to_string(),
            details: json!({ "name": project.name, "changed": changed }),
        },
    )?;
    let mut names = UserNames::default();
    view(tx, &mut names, project)
}

/// Deletes a project with its environments, variables and history (admin).
pub fn delete(tx: &WriteTx, caller: &Caller, id: u64) -> Result<(), Error> {
    let project = load(tx, caller, id, Role::Viewer)?;
    caller.require_write(project.organization_id, Role::Admin, "Project")?;
    let removed = cascade::delete_project(tx, &project)?;
    cascade::audit_cascade(tx, caller, &project, &removed)?;
    Ok(())
}

/// One project the caller can see.
pub fn get(tx: &impl Reader, caller: &Caller, id: u64) -> Result<ProjectView, Error> {
    let project = load(tx, caller, id, Role::Viewer)?;
    let mut names = UserNames::default();
    view(tx, &mut names, project)
}

/// The caller's projects, by id, filtered: `(total, page)`.
pub fn list(
    tx: &impl Reader,
    caller: &Caller,
    filter: &ProjectFilter,
    offset: usize,
    limit: usize,
) -> Result<(u64, Vec<ProjectView>), Error> {
    let orgs: Vec<u64> = match filter.organization {
        Some(o) if caller.principal.role_in(o).is_some() => vec![o],
        Some(_) => Vec::new(),
        None => caller.principal.visible_orgs(),
    };
    let mut ids = Vec::new();
    for org in orgs {
        ids.extend(tx.children(PROJECTS_BY_ORG, org)?);
    }
    ids.sort_unstable();
    let mut names = UserNames::default();
    let needle = filter.search.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty());
    let Some(needle) = needle else {
        let mut out = Vec::new();
        for id in page_of(&ids, offset, limit) {
            if let Some(p) = tx.get(PROJECTS, id)? {
                out.push(view(tx, &mut names, p)?);
            }
        }
        return Ok((ids.len() as u64, out));
    };
    let mut matching = Vec::new();
    for id in ids {
        if let Some(p) = tx.get(PROJECTS, id)? {
            if matches_search(&needle, &[Some(&p.name), p.description.as_deref()]) {
                matching.push(p);
            }
        }
    }
    let total = matching.len() as u64;
    let mut out = Vec::new();
    for p in matching.into_iter().skip(offset).take(limit) {
        out.push(view(tx, &mut names, p)?);
    }
    Ok((total, out))
}
