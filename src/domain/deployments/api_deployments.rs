//! API deployments: a workflow published under an `api_name` with its own key, limits and
//! usage. The key (`unst_` + 32 random bytes, URL-safe base64, as the seed says) is shown once;
//! only its SHA-256 is kept.

use serde_json::json;

use super::records::{Deployment, Usage};
use super::tables::{
    DEPLOYMENTS, DEPLOYMENTS_BY_ORG, DEPLOYMENTS_BY_WORKFLOW, DEPLOYMENT_KEYS, DEPLOYMENT_NAMES,
};
use super::{executions, workflows};
use crate::clock::unix_now;
use crate::crypto::{random_token, sha256_hex};
use crate::domain::audit::{self, AuditEvent};
use crate::domain::secrets::Caller;
use crate::domain::{Error, Role};
use crate::store::{Reader, WriteTx, Writer as _};

/// The prefix every deployment key carries (the seed's `unst_`).
pub const KEY_PREFIX: &str = "unst_";
/// Most CIDRs in one allow-list.
pub const MAX_ALLOWLIST: usize = 100;
/// Highest per-minute rate a deployment may set.
pub const MAX_RATE_PER_MINUTE: u64 = 1_000_000;
/// Longest grace a rotation may give the old key: a week.
pub const MAX_GRACE_SECONDS: u64 = 7 * 86_400;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 128;

/// Server-wide limits a deployment's own settings default to and may not exceed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub rate_limit_per_minute: u64,
    pub max_input_bytes: u64,
    pub max_run_seconds: u64,
}

/// A create or update; `None` keeps a field (update) or takes its default (create).
#[derive(Debug, Clone, Default)]
pub struct DeploymentInput {
    pub api_name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub workflow: Option<u64>,
    pub is_active: Option<bool>,
    pub rate_limit_per_minute: Option<u64>,
    pub ip_allowlist: Option<Vec<String>>,
    pub max_input_bytes: Option<u64>,
    pub timeout_seconds: Option<u64>,
}

/// A deployment with the names the API shows beside it.
#[derive(Debug, Clone)]
pub struct DeploymentView {
    pub deployment: Deployment,
    pub deployment_type: &'static str,
    pub workflow_name: String,
}

/// A freshly made key: the secret (shown once) and what is kept of it.
pub struct NewKey {
    pub key: String,
    pub digest: String,
    pub masked: String,
}

/// A new random key.
pub fn new_key() -> Result<NewKey, Error> {
    let key = format!("{KEY_PREFIX}{}", random_token(32).map_err(Error::from)?);
    Ok(NewKey { digest: sha256_hex(key.as_bytes()), masked: mask(&key), key })
}

/// `unst_AbCd...wXyZ`: enough to tell keys apart, too little to use.
pub fn mask(key: &str) -> String {
    let body = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
    let head: String = body.chars().take(4).collect();
    let tail: String = body.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{KEY_PREFIX}{head}...{tail}")
}

fn name_key(org: u64, api_name: &str) -> String {
    format!("{org}/{api_name}")
}

/// `^[a-z0-9][a-z0-9-]{1,62}$`.
pub fn validate_api_name(raw: &str) -> Result<String, Error> {
    let ok = (2..=63).contains(&raw.len())
        && raw
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && b == b'-'));
    if !ok {
        return Err(Error::invalid(
            "api_name",
            "2 to 63 characters: lower-case letters, digits and hyphens, not starting with a hyphen.",
        ));
    }
    Ok(raw.to_string())
}

fn validate_display_name(raw: &str) -> Result<String, Error> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::invalid("display_name", "This field may not be blank."));
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(Error::invalid(
            "display_name",
            format!("Ensure this field has no more than {MAX_DISPLAY_NAME_CHARS} characters."),
        ));
    }
    Ok(name.to_string())
}

fn validate_description(raw: &str) -> Result<String, Error> {
    if raw.chars().count() > workflows::MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            "description",
            "Ensure this field has no more than 10000 characters.",
        ));
    }
    Ok(raw.to_string())
}

/// Each entry a CIDR or a bare address (one host); stored normalised.
pub fn validate_allowlist(raw: &[String]) -> Result<Vec<String>, Error> {
    if raw.len() > MAX_ALLOWLIST {
        return Err(Error::invalid("ip_allowlist", format!("At most {MAX_ALLOWLIST} entries.")));
    }
    raw.iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<ipnet::IpNet>()
                .map(|n| n.trunc().to_string())
                .or_else(|_| {
                    entry.parse::<std::net::IpAddr>().map(|a| ipnet::IpNet::from(a).to_string())
                })
                .map_err(|_| {
                    Error::invalid(
                        "ip_allowlist",
                        format!("\"{entry}\" is not an IP address or CIDR."),
                    )
                })
        })
        .collect()
}

/// Whether `ip` may call a deployment with this allow-list (empty: anyone).
pub fn allows(allowlist: &[String], ip: Option<std::net::IpAddr>) -> bool {
    if allowlist.is_empty() {
        return true;
    }
    let Some(ip) = ip else { return false };
    allowlist.iter().filter_map(|c| c.parse::<ipnet::IpNet>().ok()).any(|net| net.contains(&ip))
}

fn in_range(field: &str, value: u64, max: u64) -> Result<u64, Error> {
    if value == 0 || value > max {
        return Err(Error::invalid(field, format!("Ensure this value is between 1 and {max}.")));
    }
    Ok(value)
}

fn view(tx: &impl Reader, deployment: Deployment) -> Result<DeploymentView, Error> {
    let w = tx.get(super::tables::WORKFLOWS, deployment.workflow_id)?;
    Ok(DeploymentView {
        deployment_type: w.as_ref().map_or("TASK", |w| w.workflow_type.deployment_type()),
        workflow_name: w.map(|w| w.name).unwrap_or_default(),
        deployment,
    })
}

/// The deployments of `org` (editor or above), in id order.
pub fn list(tx: &impl Reader, caller: &Caller, org: u64) -> Result<Vec<DeploymentView>, Error> {
    caller.require(org, Role::Editor, "Organization")?;
    let ids = tx.children(DEPLOYMENTS_BY_ORG, org)?;
    tx.get_many(DEPLOYMENTS, &ids)?.into_iter().map(|d| view(tx, d)).collect()
}

/// One deployment of `org` (404 for another organization's).
pub fn get(tx: &impl Reader, caller: &Caller, org: u64, id: u64) -> Result<DeploymentView, Error> {
    caller.require(org, Role::Editor, "Organization")?;
    view(tx, load(tx, org, id)?)
}

/// A deployment by id, whatever its organization (the execution path, which has no caller).
pub fn by_id(tx: &impl Reader, id: u64) -> Result<Option<Deployment>, Error> {
    Ok(tx.get(DEPLOYMENTS, id)?)
}

fn load(tx: &impl Reader, org: u64, id: u64) -> Result<Deployment, Error> {
    match tx.get(DEPLOYMENTS, id)? {
        Some(d) if d.organization_id == org => Ok(d),
        _ => Err(Error::not_found("API deployment")),
    }
}

/// Creates a deployment with a new key; returns it with the key (shown this once).
pub fn create(
    tx: &WriteTx,
    caller: &Caller,
    org: u64,
    input: &DeploymentInput,
    limits: Limits,
    key: &NewKey,
) -> Result<DeploymentView, Error> {
    caller.require_write(org, Role::Editor, "Organization")?;
    let api_name = validate_api_name(
        input
            .api_name
            .as_deref()
            .ok_or_else(|| Error::invalid("api_name", "This field is required."))?,
    )?;
    let workflow_id =
        input.workflow.ok_or_else(|| Error::invalid("workflow", "This field is required."))?;
    workflows::load(tx, org, workflow_id)
        .map_err(|_| Error::invalid("workflow", "No such workflow in this organization."))?;
    let display_name = validate_display_name(input.display_name.as_deref().unwrap_or(&api_name))?;
    let description = validate_description(input.description.as_deref().unwrap_or(""))?;
    let rate = in_range(
        "rate_limit_per_minute",
        input.rate_limit_per_minute.unwrap_or(limits.rate_limit_per_minute),
        MAX_RATE_PER_MINUTE,
    )?;
    let max_input_bytes = in_range(
        "max_input_bytes",
        input.max_input_bytes.unwrap_or(limits.max_input_bytes),
        limits.max_input_bytes,
    )?;
    let timeout_seconds = in_range(
        "timeout_seconds",
        input.timeout_seconds.unwrap_or(limits.max_run_seconds),
        limits.max_run_seconds,
    )?;
    let ip_allowlist = validate_allowlist(input.ip_allowlist.as_deref().unwrap_or(&[]))?;
    let id = tx.next_id("api_deployments")?;
    if !tx.claim(DEPLOYMENT_NAMES, &name_key(org, &api_name), id)? {
        return Err(Error::invalid(
            "api_name",
            "This API name is already in use. Please select a different name.",
        ));
    }
    if !tx.claim(DEPLOYMENT_KEYS, &key.digest, id)? {
        return Err(Error::internal("a new deployment key collided with a stored one"));
    }
    let now = unix_now();
    let d = Deployment {
        id,
        organization_id: org,
        workflow_id,
        api_name,
        display_name,
        description,
        is_active: input.is_active.unwrap_or(true),
        rate_limit_per_minute: rate,
        ip_allowlist,
        max_input_bytes,
        timeout_seconds,
        key_digest: key.digest.clone(),
        masked_key: key.masked.clone(),
        previous_key_digest: None,
        previous_key_until: None,
        created_by: caller.principal.user_id,
        created_at: now,
        updated_at: now,
        usage: Usage::default(),
    };
    tx.put(DEPLOYMENTS, id, &d)?;
    tx.link(DEPLOYMENTS_BY_ORG, org, id)?;
    tx.link(DEPLOYMENTS_BY_WORKFLOW, workflow_id, id)?;
    record(tx, caller, &d, "api_deployment_created", json!({"api_name": d.api_name}))?;
    view(tx, d)
}

/// Changes a deployment (editor or above). `full` (PUT) requires `api_name` and `workflow`.
pub fn update(
    tx: &WriteTx,
    caller: &Caller,
    org: u64,
    id: u64,
    input: &DeploymentInput,
    limits: Limits,
    full: bool,
) -> Result<DeploymentView, Error> {
    caller.require_write(org, Role::Editor, "Organization")?;
    let mut d = load(tx, org, id)?;
    if full && input.api_name.is_none() {
        return Err(Error::invalid("api_name", "This field is required."));
    }
    if full && input.workflow.is_none() {
        return Err(Error::invalid("workflow", "This field is required."));
    }
    let mut changed = Vec::new();
    if let Some(raw) = &input.api_name {
        let name = validate_api_name(raw)?;
        if name != d.api_name {
            if !tx.claim(DEPLOYMENT_NAMES, &name_key(org, &name), id)? {
                return Err(Error::invalid(
                    "api_name",
                    "This API name is already in use. Please select a different name.",
                ));
            }
            tx.release(DEPLOYMENT_NAMES, &name_key(org, &d.api_name))?;
            d.api_name = name;
            changed.push("api_name");
        }
    }
    if let Some(w) = input.workflow.filter(|w| *w != d.workflow_id) {
        workflows::load(tx, org, w)
            .map_err(|_| Error::invalid("workflow", "No such workflow in this organization."))?;
        tx.unlink(DEPLOYMENTS_BY_WORKFLOW, d.workflow_id, id)?;
        tx.link(DEPLOYMENTS_BY_WORKFLOW, w, id)?;
        d.workflow_id = w;
        changed.push("workflow");
    }
    if let Some(raw) = &input.display_name {
        let name = validate_display_name(raw)?;
        if name != d.display_name {
            d.display_name = name;
            changed.push("display_name");
        }
    }
    if let Some(raw) = &input.description {
        let description = validate_description(raw)?;
        if description != d.description {
            d.description = description;
            changed.push("description");
        }
    }
    if let Some(active) = input.is_active.filter(|a| *a != d.is_active) {
        d.is_active = active;
        changed.push("is_active");
    }
    if let Some(rate) = input.rate_limit_per_minute {
        let rate = in_range("rate_limit_per_minute", rate, MAX_RATE_PER_MINUTE)?;
        if rate != d.rate_limit_per_minute {
            d.rate_limit_per_minute = rate;
            changed.push("rate_limit_per_minute");
        }
    }
    if let Some(list) = &input.ip_allowlist {
        let list = validate_allowlist(list)?;
        if list != d.ip_allowlist {
            d.ip_allowlist = list;
            changed.push("ip_allowlist");
        }
    }
    if let Some(n) = input.max_input_bytes {
        let n = in_range("max_input_bytes", n, limits.max_input_bytes)?;
        if n != d.max_input_bytes {
            d.max_input_bytes = n;
            changed.push("max_input_bytes");
        }
    }
    if let Some(n) = input.timeout_seconds {
        let n = in_range("timeout_seconds", n, limits.max_run_seconds)?;
        if n != d.timeout_seconds {
            d.timeout_seconds = n;
            changed.push("timeout_seconds");
        }
    }
    d.updated_at = unix_now();
    tx.put(DEPLOYMENTS, id, &d)?;
    record(
        tx,
        caller,
        &d,
        "api_deployment_updated",
        json!({"api_name": d.api_name, "changed": changed}),
    )?;
    view(tx, d)
}

/// Replaces the key; the old one keeps working for `grace_seconds` (0: stops at once).
pub fn rotate_key(
    tx: &WriteTx,
    caller: &Caller,
    org: u64,
    id: u64,
    grace_seconds: u64,
    key: &NewKey,
) -> Result<DeploymentView, Error> {
    caller.require_write(org, Role::Editor, "Organization")?;
    if grace_seconds > MAX_GRACE_SECONDS {
        return Err(Error::invalid(
            "grace_seconds",
            format!("Ensure this value is between 0 and {MAX_GRACE_SECONDS}."),
        ));
    }
    let mut d = load(tx, org, id)?;
    if let Some(older) = d.previous_key_digest.take() {
        tx.release(DEPLOYMENT_KEYS, &older)?;
    }
    let now = unix_now();
    if grace_seconds == 0 {
        tx.release(DEPLOYMENT_KEYS, &d.key_digest)?;
        d.previous_key_until = None;
    } else {
        d.previous_key_digest = Some(d.key_digest.clone());
        d.previous_key_until = Some(now.saturating_add(i64::try_from(grace_seconds).unwrap_or(0)));
    }
    if !tx.claim(DEPLOYMENT_KEYS, &key.digest, id)? {
        return Err(Error::internal("a new deployment key collided with a stored one"));
    }
    d.key_digest = key.digest.clone();
    d.masked_key = key.masked.clone();
    d.updated_at = now;
    tx.put(DEPLOYMENTS, id, &d)?;
    record(
        tx,
        caller,
        &d,
        "api_deployment_key_rotated",
        json!({"api_name": d.api_name, "grace_seconds": grace_seconds}),
    )?;
    view(tx, d)
}

/// Deletes a deployment with its executions (editor or above).
pub fn delete(tx: &WriteTx, caller: &Caller, org: u64, id: u64) -> Result<(), Error> {
    caller.require_write(org, Role::Editor, "Organization")?;
    let d = load(tx, org, id)?;
    let executions = remove(tx, id)?;
    record(
        tx,
        caller,
        &d,
        "api_deployment_deleted",
        json!({"api_name": d.api_name, "executions_removed": executions}),
    )
}

/// Removes a deployment's rows, keys and executions; returns how many executions went.
pub(super) fn remove(tx: &WriteTx, id: u64) -> Result<usize, Error> {
    let Some(d) = tx.get(DEPLOYMENTS, id)? else { return Ok(0) };
    let removed = executions::remove_for_deployment(tx, id)?;
    tx.remove(DEPLOYMENTS, id)?;
    tx.unlink(DEPLOYMENTS_BY_ORG, d.organization_id, id)?;
    tx.unlink(DEPLOYMENTS_BY_WORKFLOW, d.workflow_id, id)?;
    tx.release(DEPLOYMENT_NAMES, &name_key(d.organization_id, &d.api_name))?;
    tx.release(DEPLOYMENT_KEYS, &d.key_digest)?;
    if let Some(prev) = &d.previous_key_digest {
        tx.release(DEPLOYMENT_KEYS, prev)?;
    }
    Ok(removed)
}

/// The deployment a presented key opens (`None`: no such key, or a rotated-out key past its
/// grace). Active or not: the caller tells 401 from 404.
pub fn by_key(tx: &impl Reader, key: &str, now: i64) -> Result<Option<Deployment>, Error> {
    if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
        return Ok(None);
    }
    let digest = sha256_hex(key.as_bytes());
    let Some(id) = tx.lookup(DEPLOYMENT_KEYS, &digest)? else { return Ok(None) };
    let Some(d) = tx.get(DEPLOYMENTS, id)? else { return Ok(None) };
    if d.key_digest == digest {
        return Ok(Some(d));
    }
    let in_grace = d.previous_key_digest.as_deref() == Some(digest.as_str())
        && d.previous_key_until.is_some_and(|until| now < until);
    Ok(in_grace.then_some(d))
}

/// Adds batched usage increments to their deployments (gone ones are skipped).
pub fn add_usage(tx: &WriteTx, deltas: &[(u64, Usage)]) -> Result<(), Error> {
    for (id, delta) in deltas {
        if let Some(mut d) = tx.get(DEPLOYMENTS, *id)? {
            d.usage.add(delta);
            tx.put(DEPLOYMENTS, *id, &d)?;
        }
    }
    Ok(())
}

/// Deletes every deployment, workflow and execution of an organization (its deletion).
pub fn delete_for_org(tx: &WriteTx, org: u64) -> Result<usize, Error> {
    let ids = tx.children(DEPLOYMENTS_BY_ORG, org)?;
    for id in &ids {
        remove(tx, *id)?;
    }
    let wf =
        tx.get_many(super::tables::WORKFLOWS, &tx.children(super::tables::WORKFLOWS_BY_ORG, org)?)?;
    for w in &wf {
        workflows::remove(tx, w)?;
    }
    Ok(ids.len())
}

fn record(
    tx: &WriteTx,
    caller: &Caller,
    d: &Deployment,
    action: &'static str,
    details: serde_json::Value,
) -> Result<(), Error> {
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(d.organization_id),
            action,
            target_type: "api_deployment",
            target_id: d.id.to_string(),
            details,
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names() {
        for ok in ["ab", "a-b", "0abc", "x".repeat(63).as_str()] {
            assert!(validate_api_name(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "-ab", "Ab", "a_b", "a b", "x".repeat(64).as_str(), "ab/"] {
            assert!(validate_api_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowlists() {
        let list = validate_allowlist(&["10.1.2.3/8".into(), "192.168.1.5".into()]).unwrap();
        assert_eq!(list, ["10.0.0.0/8", "192.168.1.5/32"]);
        assert!(allows(&list, "10.9.9.9".parse().ok()));
        assert!(allows(&list, "192.168.1.5".parse().ok()));
        assert!(!allows(&list, "192.168.1.6".parse().ok()));
        assert!(!allows(&list, None));
        assert!(allows(&[], None));
        assert!(validate_allowlist(&["10.0.0.0/33".into()]).is_err());
        assert!(validate_allowlist(&["nope".into()]).is_err());
    }

    #[test]
    fn keys_are_prefixed_hashed_and_masked() {
        let k = new_key().unwrap();
        assert!(k.key.starts_with("unst_") && k.key.len() == 5 + 43, "{}", k.key);
        assert_eq!(k.digest, sha256_hex(k.key.as_bytes()));
        assert!(!k.masked.contains(&k.key[5..20]));
        assert!(k.masked.starts_with("unst_") && k.masked.contains("..."));
    }
}
