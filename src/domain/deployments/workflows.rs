//! Workflows: a template bound to one environment of the organization. Managed by editors and
//! admins; the template is compiled when saved, so a syntax error is refused then, not at the
//! first call.

use serde_json::json;

use super::records::{OutputFormat, Workflow, WorkflowType};
use super::tables::{DEPLOYMENTS_BY_WORKFLOW, WORKFLOWS, WORKFLOWS_BY_ORG, WORKFLOW_NAMES};
use super::template;
use crate::clock::unix_now;
use crate::domain::audit::{self, AuditEvent};
use crate::domain::secrets::tables::ENVIRONMENTS;
use crate::domain::secrets::Caller;
use crate::domain::{Error, Role};
use crate::store::{Reader, WriteTx, Writer as _};

/// Longest workflow name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// A create or update; `None` leaves a field as it is (update) or takes its default (create).
#[derive(Debug, Clone, Default)]
pub struct WorkflowInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub workflow_type: Option<String>,
    /// `Some(None)` unbinds the environment.
    pub environment: Option<Option<u64>>,
    pub template: Option<String>,
    pub output_format: Option<String>,
}

fn name_key(org: u64, name: &str) -> String {
    format!("{org}/{}", name.to_lowercase())
}

fn validate_name(raw: &str) -> Result<String, Error> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::invalid("workflow_name", "This field may not be blank."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            "workflow_name",
            format!("Ensure this field has no more than {MAX_NAME_CHARS} characters."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid("workflow_name", "Control characters are not allowed."));
    }
    Ok(name.to_string())
}

fn validate_description(raw: &str) -> Result<String, Error> {
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            "description",
            format!("Ensure this field has no more than {MAX_DESCRIPTION_CHARS} characters."),
        ));
    }
    Ok(raw.to_string())
}

fn validate_type(raw: &str) -> Result<WorkflowType, Error> {
    WorkflowType::parse(raw).ok_or_else(|| {
        Error::invalid("workflow_type", format!("\"{raw}\" is not a valid choice: task or etl."))
    })
}

fn validate_format(raw: &str) -> Result<OutputFormat, Error> {
    OutputFormat::parse(raw).ok_or_else(|| {
        Error::invalid("output_format", format!("\"{raw}\" is not a valid choice: text or json."))
    })
}

/// Compiles the template: a syntax error names its line and column.
pub fn validate_template(raw: &str) -> Result<String, Error> {
    template::compile(raw).map_err(|e| Error::invalid("template", e.to_string()))?;
    Ok(raw.to_string())
}

/// The environment must belong to the workflow's organization.
fn check_environment(tx: &impl Reader, org: u64, env: Option<u64>) -> Result<(), Error> {
    let Some(env) = env else { return Ok(()) };
    match tx.get(ENVIRONMENTS, env)? {
        Some(e) if e.organization_id == org => Ok(()),
        _ => Err(Error::invalid("environment", "No such environment in this organization.")),
    }
}

/// The workflows of `org` (editor or above), in id order.
pub fn list(tx: &impl Reader, caller: &Caller, org: u64) -> Result<Vec<Workflow>, Error> {
    caller.require(org, Role::Editor, "Organization")?;
    Ok(tx.get_many(WORKFLOWS, &tx.children(WORKFLOWS_BY_ORG, org)?)?)
}

/// One workflow of `org` (404 for another organization's).
pub fn get(tx: &impl Reader, caller: &Caller, org: u64, id: u64) -> Result<Workflow, Error> {
    caller.require(org, Role::Editor, "Organization")?;
    load(tx, org, id)
}

/// A workflow of `org`, without a caller check (the execution path).
pub fn load(tx: &impl Reader, org: u64, id: u64) -> Result<Workflow, Error> {
    match tx.get(WORKFLOWS, id)? {
        Some(w) if w.organization_id == org => Ok(w),
        _ => Err(Error::not_found("Workflow")),
    }
}

/// Creates a workflow (editor or above); `workflow_name` and `template` are required.
pub fn create(
    tx: &WriteTx,
    caller: &Caller,
    org: u64,
    input: &WorkflowInput,
) -> Result<Workflow, Error> {
    caller.require_write(org, Role::Editor, "Organization")?;
    let name = validate_name(
        input
            .name
            .as_deref()
            .ok_or_else(|| Error::invalid("workflow_name", "This field is required."))?,
    )?;
    let template = validate_template(
        input
            .template
            .as_deref()
            .ok_or_else(|| Error::invalid("template", "This field is required."))?,
    )?;
    let description = validate_description(input.description.as_deref().unwrap_or(""))?;
    let workflow_type = validate_type(input.workflow_type.as_deref().unwrap_or("task"))?;
    let output_format = validate_format(input.output_format.as_deref().unwrap_or("text"))?;
    let environment_id = input.environment.flatten();
    check_environment(tx, org, environment_id)?;
    let id = tx.next_id("workflows")?;
    if !tx.claim(WORKFLOW_NAMES, &name_key(org, &name), id)? {
        return Err(Error::conflict(
            "A workflow with this name already exists in this organization.",
        ));
    }
    let now = unix_now();
    let workflow = Workflow {
        id,
        organization_id: org,
        name,
        description,
        workflow_type,
        environment_id,
        template,
        output_format,
        created_by: caller.principal.user_id,
        created_at: now,
        updated_at: now,
    };
    tx.put(WORKFLOWS, id, &workflow)?;
    tx.link(WORKFLOWS_BY_ORG, org, id)?;
    record(tx, caller, &workflow, "workflow_created", json!({"workflow_name": workflow.name}))?;
    Ok(workflow)
}

/// Changes a workflow (editor or above). `full` (PUT) requires `workflow_name` and `template`.
pub fn update(
    tx: &WriteTx,
    caller: &Caller,
    org: u64,
    id: u64,
    input: &WorkflowInput,
    full: bool,
) -> Result<Workflow, Error> {
    caller.require_write(org, Role::Editor, "Organization")?;
    let mut w = load(tx, org, id)?;
    if full && input.name.is_none() {
        return Err(Error::invalid("workflow_name", "This field is required."));
    }
    if full && input.template.is_none() {
        return Err(Error::invalid("template", "This field is required."));
    }
    let mut changed = Vec::new();
    if let Some(raw) = &input.name {
        let name = validate_name(raw)?;
        if name != w.name {
            let (old, new) = (name_key(org, &w.name), name_key(org, &name));
            if old != new {
                if !tx.claim(WORKFLOW_NAMES, &new, id)? {
                    return Err(Error::conflict(
                        "A workflow with this name already exists in this organization.",
                    ));
                }
                tx.release(WORKFLOW_NAMES, &old)?;
            }
            w.name = name;
            changed.push("workflow_name");
        }
    }
    if let Some(raw) = &input.template {
        let t = validate_template(raw)?;
        if t != w.template {
            w.template = t;
            changed.push("template");
        }
    }
    if let Some(raw) = &input.description {
        let description = validate_description(raw)?;
        if description != w.description {
            w.description = description;
            changed.push("description");
        }
    }
    if let Some(raw) = &input.workflow_type {
        let t = validate_type(raw)?;
        if t != w.workflow_type {
            w.workflow_type = t;
            changed.push("workflow_type");
        }
    }
    if let Some(raw) = &input.output_format {
        let f = validate_format(raw)?;
        if f != w.output_format {
            w.output_format = f;
            changed.push("output_format");
        }
    }
    if let Some(env) = input.environment {
        check_environment(tx, org, env)?;
        if env != w.environment_id {
            w.environment_id = env;
            changed.push("environment");
        }
    }
    w.updated_at = unix_now();
    tx.put(WORKFLOWS, id, &w)?;
    record(
        tx,
        caller,
        &w,
        "workflow_updated",
        json!({"workflow_name": w.name, "changed": changed}),
    )?;
    Ok(w)
}

/// Deletes a workflow with its deployments and their executions (editor or above).
pub fn delete(tx: &WriteTx, caller: &Caller, org: u64, id: u64) -> Result<(), Error> {
    caller.require_write(org, Role::Editor, "Organization")?;
    let w = load(tx, org, id)?;
    let deployments = tx.children(DEPLOYMENTS_BY_WORKFLOW, id)?;
    for d in &deployments {
        super::api_deployments::remove(tx, *d)?;
    }
    remove(tx, &w)?;
    record(
        tx,
        caller,
        &w,
        "workflow_deleted",
        json!({"workflow_name": w.name, "deployments_removed": deployments.len()}),
    )
}

/// Removes a workflow's rows (its deployments are the caller's).
pub(super) fn remove(tx: &WriteTx, w: &Workflow) -> Result<(), Error> {
    tx.remove(WORKFLOWS, w.id)?;
    tx.unlink(WORKFLOWS_BY_ORG, w.organization_id, w.id)?;
    tx.release(WORKFLOW_NAMES, &name_key(w.organization_id, &w.name))?;
    Ok(())
}

fn record(
    tx: &WriteTx,
    caller: &Caller,
    w: &Workflow,
    action: &'static str,
    details: serde_json::Value,
) -> Result<(), Error> {
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(w.organization_id),
            action,
            target_type: "workflow",
            target_id: w.id.to_string(),
            details,
        },
    )?;
    Ok(())
}
