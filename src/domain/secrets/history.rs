//! Variable history: superseded values as numbered versions (the newest
//! `storage.variable_versions` kept), rollback to one of them, and deleted variables whose
//! history stays readable by organization admins for `storage.deleted_retention_days`.

use serde_json::json;

use crate::clock::unix_now;
use crate::domain::audit::{self, AuditEvent};
use crate::domain::secrets::records::{Variable, VariableVersion};
use crate::domain::secrets::sealing::{self, Slot};
use crate::domain::secrets::tables::{
    DELETED_VARIABLES, DELETED_VARIABLES_BY_ENV, ENVIRONMENTS, VARIABLES, VARIABLE_VERSIONS,
    VERSIONS_BY_VARIABLE,
};
use crate::domain::secrets::variables::{self, slot, VariableView};
use crate::domain::secrets::{environments, Caller, UserNames, Vault};
use crate::domain::{Error, Role};
use crate::store::{Reader, WriteTx, Writer as _};

/// One version of a variable's value.
#[derive(Debug, Clone)]
pub struct VersionView {
    pub version: u32,
    pub key: String,
    pub value: String,
    pub created_at: i64,
    pub created_by: u64,
    pub created_by_name: String,
    pub is_current: bool,
}

/// A deleted variable whose history is still retained.
#[derive(Debug, Clone)]
pub struct DeletedView {
    pub variable: Variable,
    pub environment_name: String,
    pub deleted_by_name: String,
    /// When its history will be purged (unix seconds).
    pub purge_at: i64,
}

/// Moves the variable's current value into its history and drops the oldest beyond the limit.
pub(crate) fn push(tx: &WriteTx, vault: &Vault, var: &Variable) -> Result<(), Error> {
    let id = tx.next_id("variable_versions")?;
    let row = VariableVersion {
        id,
        variable_id: var.id,
        version: var.version,
        key: var.key.clone(),
        sealed: var.sealed.clone(),
        created_by: var.updated_by,
        created_at: var.updated_at,
    };
    tx.put(VARIABLE_VERSIONS, id, &row)?;
    tx.link(VERSIONS_BY_VARIABLE, var.id, id)?;
    let rows = tx.children(VERSIONS_BY_VARIABLE, var.id)?;
    let excess = rows.len().saturating_sub(vault.versions_kept);
    for old in rows.into_iter().take(excess) {
        tx.remove(VARIABLE_VERSIONS, old)?;
        tx.unlink(VERSIONS_BY_VARIABLE, var.id, old)?;
    }
    Ok(())
}

/// Removes every trace of a variable: its history, its record and its deleted markers.
pub(crate) fn purge(tx: &WriteTx, var: &Variable) -> Result<(), Error> {
    for row in tx.children(VERSIONS_BY_VARIABLE, var.id)? {
        tx.remove(VARIABLE_VERSIONS, row)?;
        tx.unlink(VERSIONS_BY_VARIABLE, var.id, row)?;
    }
    if var.deleted_at.is_some() {
        tx.unlink(DELETED_VARIABLES_BY_ENV, var.environment_id, var.id)?;
        tx.unlink(DELETED_VARIABLES, 0, var.id)?;
    }
    tx.remove(VARIABLES, var.id)?;
    Ok(())
}

fn expired(vault: &Vault, var: &Variable, now: i64) -> bool {
    var.deleted_at.is_some_and(|d| d.saturating_add(vault.retention_secs) <= now)
}

/// Purges the deleted variables of one environment whose retention has run out.
pub(crate) fn prune_environment(
    tx: &WriteTx,
    vault: &Vault,
    env: u64,
    now: i64,
) -> Result<usize, Error> {
    let mut n = 0;
    for id in tx.children(DELETED_VARIABLES_BY_ENV, env)? {
        if let Some(var) = tx.get(VARIABLES, id)? {
            if expired(vault, &var, now) {
                purge(tx, &var)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Purges up to `limit` expired deleted variables anywhere (the background sweeper).
pub fn sweep(tx: &WriteTx, vault: &Vault, now: i64, limit: usize) -> Result<usize, Error> {
    let mut n = 0;
    for id in tx.children(DELETED_VARIABLES, 0)? {
        if n >= limit {
            break;
        }
        match tx.get(VARIABLES, id)? {
            Some(var) if expired(vault, &var, now) => {
                purge(tx, &var)?;
                n += 1;
            }
            Some(_) => {}
            None => tx.unlink(DELETED_VARIABLES, 0, id)?,
        }
    }
    Ok(n)
}

/// A variable whose history the caller may read: live (any member) or deleted and retained
/// (admins only). Everything else is 404.
fn load_any(tx: &impl Reader, caller: &Caller, vault: &Vault, id: u64) -> Result<Variable, Error> {
    let var = tx.get(VARIABLES, id)?.ok_or_else(|| Error::not_found("Variable"))?;
    if var.deleted_at.is_none() {
        caller.require(var.organization_id, Role::Viewer, "Variable")?;
        return Ok(var);
    }
    if expired(vault, &var, unix_now())
        || caller.principal.role_in(var.organization_id) != Some(Role::Admin)
    {
        return Err(Error::not_found("Variable"));
    }
    Ok(var)
}

/// Every retained version, newest first (the current value first).
pub fn versions(
    tx: &impl Reader,
    caller: &Caller,
    vault: &Vault,
    id: u64,
) -> Result<Vec<VersionView>, Error> {
    let var = load_any(tx, caller, vault, id)?;
    let key = sealing::read_data_key(tx, &vault.master, &vault.keys, var.organization_id)?;
    let mut names = UserNames::default();
    let mut out = vec![VersionView {
        version: var.version,
        key: var.key.clone(),
        value: sealing::open_or_marker(key.as_ref(), slot(&var), &var.sealed),
        created_at: var.updated_at,
        created_by: var.updated_by,
        created_by_name: names.name(tx, var.updated_by)?,
        is_current: var.deleted_at.is_none(),
    }];
    let mut rows = tx.children(VERSIONS_BY_VARIABLE, var.id)?;
    rows.reverse();
    for row in rows {
        let Some(v) = tx.get(VARIABLE_VERSIONS, row)? else { continue };
        let s = Slot { version: v.version, ..slot(&var) };
        out.push(VersionView {
            version: v.version,
            value: sealing::open_or_marker(key.as_ref(), s, &v.sealed),
            created_by_name: names.name(tx, v.created_by)?,
            key: v.key,
            created_at: v.created_at,
            created_by: v.created_by,
            is_current: false,
        });
    }
    Ok(out)
}

/// Restores `version`'s value as a new version (editor or admin).
pub fn rollback(
    tx: &WriteTx,
    caller: &Caller,
    vault: &Vault,
    id: u64,
    version: u32,
) -> Result<VariableView, Error> {
    let mut var = variables::load(tx, caller, id, Role::Viewer)?;
    caller.require_write(var.organization_id, Role::Editor, "Variable")?;
    if version == var.version {
        return Err(Error::invalid("version", format!("Version {version} is the current value.")));
    }
    let mut found = None;
    for row in tx.children(VERSIONS_BY_VARIABLE, var.id)? {
        if let Some(v) = tx.get(VARIABLE_VERSIONS, row)? {
            if v.version == version {
                found = Some(v);
            }
        }
    }
    let Some(old) = found else {
        return Err(Error::invalid(
            "version",
            format!("Version {version} does not exist or is no longer kept."),
        ));
    };
    let key = sealing::data_key(tx, &vault.master, &vault.keys, var.organization_id)?;
    let s = Slot { version: old.version, ..slot(&var) };
    let value = sealing::open_value(&key, s, &old.sealed)
        .ok_or(sealing::SealError::ValueDoesNotOpen { variable: id, version })?;
    let from = var.version;
    variables::set_value(tx, vault, &key, &mut var, &value, caller.principal.user_id)?;
    tx.put(VARIABLES, id, &var)?;
    let env_name = tx.get(ENVIRONMENTS, var.environment_id)?.map(|e| e.name).unwrap_or_default();
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(var.organization_id),
            action: "variable_rolled_back",
            target_type: "variable",
            target_id: id.to_string(),
            details: json!({
                "variable_key": var.key,
                "environment_name": env_name,
                "restored_version": version,
                "previous_version": from,
                "version": var.version,
            }),
        },
    )?;
    let mut names = UserNames::default();
    let created_by_name = names.name(tx, var.created_by)?;
    Ok(VariableView { variable: var, value, environment_name: env_name, created_by_name })
}

/// The deleted variables of an environment still within retention (admins only), newest
/// deletion first.
pub fn deleted(
    tx: &impl Reader,
    caller: &Caller,
    vault: &Vault,
    env_id: u64,
) -> Result<Vec<DeletedView>, Error> {
    let env = environments::load(tx, caller, env_id, Role::Viewer)?;
    caller.require(env.organization_id, Role::Admin, "Environment")?;
    let now = unix_now();
    let mut names = UserNames::default();
    let mut out = Vec::new();
    for id in tx.children(DELETED_VARIABLES_BY_ENV, env.id)? {
        let Some(var) = tx.get(VARIABLES, id)? else { continue };
        let Some(at) = var.deleted_at else { continue };
        if expired(vault, &var, now) {
            continue;
        }
        out.push(DeletedView {
            deleted_by_name: names.name(tx, var.deleted_by.unwrap_or_default())?,
            environment_name: env.name.clone(),
            purge_at: at.saturating_add(vault.retention_secs),
            variable: var,
        });
    }
    out.sort_by(|a, b| {
        b.variable.deleted_at.cmp(&a.variable.deleted_at).then(b.variable.id.cmp(&a.variable.id))
    });
    Ok(out)
}
