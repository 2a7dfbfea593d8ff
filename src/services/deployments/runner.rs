//! One execution's run: read what it needs in one snapshot (the deployment, its workflow, the
//! bound environment's variables, opened only here), render on a blocking thread under fuel
//! and the deployment's time limit, and record the outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::domain::deployments::records::{Execution, OutputFormat, WorkflowType};
use crate::domain::deployments::template::{self, Limits, Renderer};
use crate::domain::deployments::{api_deployments, executions::Outcome, workflows};
use crate::domain::secrets::tables::ENVIRONMENTS;
use crate::domain::secrets::{variables, Vault};
use crate::domain::Error;

/// Everything a render needs, read once. `env` holds opened secret values: it lives only for
/// the run and is never logged.
pub struct RunContext {
    pub template: String,
    pub workflow_type: WorkflowType,
    pub output_format: OutputFormat,
    pub timeout: Duration,
    pub input: Value,
    pub parameters: Value,
    pub env: BTreeMap<String, String>,
}

/// Reads the run's context; a deployment, workflow or environment removed since submission is
/// the run's failure, with a message that says which.
pub fn context(
    tx: &impl crate::store::Reader,
    vault: &Vault,
    e: &Execution,
) -> Result<Result<RunContext, String>, Error> {
    let Some(d) = api_deployments::by_id(tx, e.deployment_id)? else {
        return Ok(Err("the deployment was deleted".into()));
    };
    let Ok(w) = workflows::load(tx, d.organization_id, d.workflow_id) else {
        return Ok(Err("the deployment's workflow was deleted".into()));
    };
    let mut env = BTreeMap::new();
    if let Some(env_id) = w.environment_id {
        let Some(environment) = tx.get(ENVIRONMENTS, env_id)? else {
            return Ok(Err("the workflow's environment was deleted".into()));
        };
        let (values, failed) = variables::all_values(tx, vault, &environment)?;
        if !failed.is_empty() {
            return Ok(Err(format!(
                "{} variable(s) of the environment could not be decrypted",
                failed.len()
            )));
        }
        env.extend(values);
    }
    Ok(Ok(RunContext {
        template: w.template,
        workflow_type: w.workflow_type,
        output_format: w.output_format,
        timeout: Duration::from_secs(d.timeout_seconds),
        input: e.input.clone(),
        parameters: e.parameters.clone(),
        env,
    }))
}

fn format_of(f: OutputFormat) -> template::OutputFormat {
    match f {
        OutputFormat::Text => template::OutputFormat::Text,
        OutputFormat::Json => template::OutputFormat::Json,
    }
}

/// Renders the run (blocking: call on a blocking thread). `task`: the output; `etl`: one item
/// per record, each rendered on its own so a bad record fails only itself.
pub fn render(ctx: &RunContext, limits: Limits) -> Outcome {
    let renderer = match Renderer::new(&ctx.template, limits) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("template: {e}")),
    };
    let format = format_of(ctx.output_format);
    let one = |input: &Value| -> Result<Value, String> {
        let text = renderer.render(input, &ctx.parameters, &ctx.env).map_err(|e| e.to_string())?;
        template::finish(format, text).map_err(|e| e.to_string())
    };
    match ctx.workflow_type {
        WorkflowType::Task => match one(&ctx.input) {
            Ok(v) => Outcome::Completed(v),
            Err(e) => Outcome::Failed(e),
        },
        WorkflowType::Etl => {
            let Some(records) = ctx.input.as_array() else {
                return Outcome::Failed("input_data must be a list of records".into());
            };
            let items = records
                .iter()
                .enumerate()
                .map(|(index, record)| match one(record) {
                    Ok(v) => {
                        json!({"index": index, "status": "Success", "result": v, "error": null})
                    }
                    Err(e) => {
                        json!({"index": index, "status": "Failed", "result": null, "error": e})
                    }
                })
                .collect();
            Outcome::Completed(Value::Array(items))
        }
    }
}
