//! Variables: validation, create/update/delete (each a new sealed version, with audit), and
//! the lists, which open values under the organization's data key.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use serde_json::json;

use crate::clock::unix_now;
use crate::domain::audit::{self, AuditEvent};
use crate::domain::dotenv::{is_valid_key, MAX_KEY_LEN, MAX_VALUE_BYTES};
use crate::domain::effects::{self, Counted};
use crate::domain::secrets::records::{Environment, Sealed, Variable, VariableRef};
use crate::domain::secrets::sealing::{self, Opener, Slot};
use crate::domain::secrets::tables::{
    DELETED_VARIABLES, DELETED_VARIABLES_BY_ENV, ENVIRONMENTS, VARIABLES, VARIABLES_BY_ENV,
    VARIABLES_BY_ORG, VARIABLE_KEYS,
};
use crate::domain::secrets::{environments, history, Caller, UserNames, Vault};
use crate::domain::{Error, Role};
use crate::store::{Reader, WriteTx, Writer as _};

/// A variable with its opened value and the names the API shows.
#[derive(Debug, Clone)]
pub struct VariableView {
    pub variable: Variable,
    /// The plaintext, or [`sealing::DECRYPTION_ERROR`].
    pub value: String,
    pub environment_name: String,
    pub created_by_name: String,
}

/// What an update sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct VariableChange {
    pub key: Option<String>,
    pub value: Option<String>,
    /// Must be the variable's own environment if given (variables do not move).
    pub environment: Option<u64>,
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`, at most 256 characters.
pub fn validate_key(raw: &str) -> Result<(), Error> {
    if raw.len() > MAX_KEY_LEN {
        return Err(Error::invalid("key", "Ensure this field has no more than 256 characters."));
    }
    if !is_valid_key(raw) {
        return Err(Error::invalid(
            "key",
            "Variable key must start with a letter or underscore and contain only letters, numbers, and underscores.",
        ));
    }
    Ok(())
}

/// Any UTF-8 without NUL, at most 64 KiB.
pub fn validate_value(raw: &str) -> Result<(), Error> {
    if raw.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid("value", "Ensure this value has at most 65536 bytes."));
    }
    if raw.contains('\0') {
        return Err(Error::invalid("value", "Null characters are not allowed."));
    }
    Ok(())
}

/// `"<environment id>/<KEY>"`, the unique-key lookup.
pub fn key_lookup(env: u64, key: &str) -> String {
    format!("{env}/{key}")
}

pub(crate) fn slot(v: &Variable) -> Slot {
    slot_of(&v.as_ref())
}

fn slot_of(v: &VariableRef<'_>) -> Slot {
    Slot { org: v.organization_id, env: v.environment_id, variable: v.id, version: v.version }
}

/// Loads a live variable the caller can see (404 otherwise) and checks `min`.
pub fn load(tx: &impl Reader, caller: &Caller, id: u64, min: Role) -> Result<Variable, Error> {
    let var = tx
        .get(VARIABLES, id)?
        .filter(|v| v.deleted_at.is_none())
        .ok_or_else(|| Error::not_found("Variable"))?;
    caller.require(var.organization_id, min, "Variable")?;
    Ok(var)
}

/// Inserts a new variable at version 1 in `env` (no permission check, no audit: the callers
/// — [`create`] and the import — do both). The key must be valid and free.
pub(crate) fn insert(
    tx: &WriteTx,
    key: &sealing::DataKey,
    env: &Environment,
    name: &str,
    value: &str,
    user: u64,
) -> Result<Option<Variable>, Error> {
    let id = tx.next_id("variables")?;
    if !tx.claim(VARIABLE_KEYS, &key_lookup(env.id, name), id)? {
        return Ok(None);
    }
    let now = unix_now();
    let mut var = Variable {
        id,
        organization_id: env.organization_id,
        project_id: env.project_id,
        environment_id: env.id,
        key: name.to_string(),
        sealed: Sealed::default(),
        version: 1,
        created_by: user,
        created_at: now,
        updated_by: user,
        updated_at: now,
        deleted_at: None,
        deleted_by: None,
    };
    var.sealed = sealing::seal_value(key, slot(&var), value)?;
    tx.put(VARIABLES, id, &var)?;
    tx.link(VARIABLES_BY_ENV, env.id, id)?;
    tx.link(VARIABLES_BY_ORG, env.organization_id, id)?;
    effects::count(tx, env.organization_id, Counted::Variables, 1);
    Ok(Some(var))
}

/// Replaces a variable's value with a new version, keeping the old one in its history.
pub(crate) fn set_value(
    tx: &WriteTx,
    vault: &Vault,
    key: &sealing::DataKey,
    var: &mut Variable,
    value: &str,
    user: u64,
) -> Result<(), Error> {
    history::push(tx, vault, var)?;
    var.version = var.version.saturating_add(1);
    var.sealed = sealing::seal_value(key, slot(var), value)?;
    var.updated_by = user;
    var.updated_at = unix_now();
    Ok(())
}

/// Creates a variable (editor or admin); 409 if the key exists in the environment.
pub fn create(
    tx: &WriteTx,
    caller: &Caller,
    vault: &Vault,
    env_id: u64,
    name: &str,
    value: &str,
) -> Result<VariableView, Error> {
    let env = environments::load(tx, caller, env_id, Role::Viewer)?;
    caller.require_write(env.organization_id, Role::Editor, "Environment")?;
    let key = sealing::data_key(tx, &vault.master, &vault.keys, env.organization_id)?;
    let Some(var) = insert(tx, &key, &env, name, value, caller.principal.user_id)? else {
        return Err(Error::conflict(
            "A variable with this key already exists in this environment.",
        ));
    };
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(env.organization_id),
            action: "variable_created",
            target_type: "variable",
            target_id: var.id.to_string(),
            details: json!({ "variable_key": var.key, "environment_name": env.name, "environment_id": env.id }),
        },
    )?;
    Ok(VariableView {
        variable: var,
        value: value.to_string(),
        environment_name: env.name,
        created_by_name: caller.principal.full_name.clone(),
    })
}

/// Renames and/or sets a new value (editor or admin).
pub fn update(
    tx: &WriteTx,
    caller: &Caller,
    vault: &Vault,
    id: u64,
    change: &VariableChange,
) -> Result<VariableView, Error> {
    let mut var = load(tx, caller, id, Role::Viewer)?;
    caller.require_write(var.organization_id, Role::Editor, "Variable")?;
    if change.environment.is_some_and(|e| e != var.environment_id) {
        return Err(Error::invalid(
            "environment",
            "A variable cannot be moved to another environment.",
        ));
    }
    let env_name = tx.get(ENVIRONMENTS, var.environment_id)?.map(|e| e.name).unwrap_or_default();
    let old_key = var.key.clone();
    if let Some(name) = change.key.as_deref().filter(|k| *k != var.key) {
        if !tx.claim(VARIABLE_KEYS, &key_lookup(var.environment_id, name), id)? {
            return Err(Error::conflict(
                "A variable with this key already exists in this environment.",
            ));
        }
        tx.release(VARIABLE_KEYS, &key_lookup(var.environment_id, &var.key))?;
        var.key = name.to_string();
        var.updated_at = unix_now();
    }
    let key = sealing::data_key(tx, &vault.master, &vault.keys, var.organization_id)?;
    let value = match &change.value {
        Some(v) => {
            set_value(tx, vault, &key, &mut var, v, caller.principal.user_id)?;
            v.clone()
        }
        None => sealing::open_or_marker(Some(&key), slot(&var), &var.sealed),
    };
    tx.put(VARIABLES, id, &var)?;
    let mut details = json!({
        "variable_key": var.key,
        "environment_name": env_name,
        "value_updated": change.value.is_some(),
        "version": var.version,
    });
    if let (true, Some(fields)) = (old_key != var.key, details.as_object_mut()) {
        fields.insert("previous_key".into(), json!(old_key));
    }
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(var.organization_id),
            action: "variable_updated",
            target_type: "variable",
            target_id: id.to_string(),
            details,
        },
    )?;
    let mut names = UserNames::default();
    names.seed(caller.principal.user_id, &caller.principal.full_name);
    let created_by_name = names.name(tx, var.created_by)?;
    Ok(VariableView { variable: var, value, environment_name: env_name, created_by_name })
}

/// Deletes a variable (editor or admin). Its record and history stay, readable by admins, for
/// the retention period; its key becomes free at once.
pub fn delete(tx: &WriteTx, caller: &Caller, vault: &Vault, id: u64) -> Result<(), Error> {
    let mut var = load(tx, caller, id, Role::Viewer)?;
    caller.require_write(var.organization_id, Role::Editor, "Variable")?;
    let now = unix_now();
    tx.unlink(VARIABLES_BY_ENV, var.environment_id, id)?;
    tx.unlink(VARIABLES_BY_ORG, var.organization_id, id)?;
    effects::count(tx, var.organization_id, Counted::Variables, -1);
    tx.release(VARIABLE_KEYS, &key_lookup(var.environment_id, &var.key))?;
    var.deleted_at = Some(now);
    var.deleted_by = Some(caller.principal.user_id);
    tx.put(VARIABLES, id, &var)?;
    tx.link(DELETED_VARIABLES_BY_ENV, var.environment_id, id)?;
    tx.link(DELETED_VARIABLES, 0, id)?;
    history::prune_environment(tx, vault, var.environment_id, now)?;
    let env_name = tx.get(ENVIRONMENTS, var.environment_id)?.map(|e| e.name).unwrap_or_default();
    audit::record(
        tx,
        AuditEvent {
            actor: &caller.actor,
            organization_id: Some(var.organization_id),
            action: "variable_deleted",
            target_type: "variable",
            target_id: id.to_string(),
            details: json!({ "variable_key": var.key, "environment_name": env_name, "version": var.version }),
        },
    )?;
    Ok(())
}

/// One row of a list page, borrowed from the stored bytes and the page's caches.
#[derive(Debug, Clone, Copy)]
pub struct VariableRow<'a> {
    pub variable: VariableRef<'a>,
    /// The plaintext, or [`sealing::DECRYPTION_ERROR`].
    pub value: &'a str,
    pub environment_name: &'a str,
    pub created_by_name: &'a str,
}

impl VariableRow<'_> {
    pub fn to_view(&self) -> VariableView {
        VariableView {
            variable: self.variable.to_owned(),
            value: self.value.to_string(),
            environment_name: self.environment_name.to_string(),
            created_by_name: self.created_by_name.to_string(),
        }
    }
}

/// Where a list page goes, row by row, while the read snapshot is open: the API writes each
/// row's JSON straight from the stored bytes, so a page allocates nothing per row.
pub trait PageSink {
    /// The number of rows in the whole list, before the page's rows.
    fn total(&mut self, total: u64) -> Result<(), Error>;
    fn row(&mut self, row: &VariableRow<'_>) -> Result<(), Error>;
}

/// A [`PageSink`] that keeps owned views: `(total, rows)`.
#[derive(Debug, Default)]
pub struct Collected(pub u64, pub Vec<VariableView>);

impl PageSink for Collected {
    fn total(&mut self, total: u64) -> Result<(), Error> {
        self.0 = total;
        Ok(())
    }

    fn row(&mut self, row: &VariableRow<'_>) -> Result<(), Error> {
        self.1.push(row.to_view());
        Ok(())
    }
}

/// Opens values and adds names for a batch of variables, caching per-organization keys and
/// per-environment and per-user names.
struct Viewer<'a> {
    vault: &'a Vault,
    // Three lookups per row by small integer ids: FxHash, not SipHash (no attacker chooses
    // these keys, and SipHash was 4 % of a 100-variable list).
    keys: FxHashMap<u64, Option<sealing::DataKey>>,
    envs: FxHashMap<u64, String>,
    names: UserNames,
    opener: Opener,
}

impl<'a> Viewer<'a> {
    fn new(vault: &'a Vault) -> Self {
        Self {
            vault,
            keys: FxHashMap::default(),
            envs: FxHashMap::default(),
            names: UserNames::default(),
            opener: Opener::default(),
        }
    }

    fn with_row<R>(
        &mut self,
        tx: &impl Reader,
        var: VariableRef<'_>,
        f: impl FnOnce(&VariableRow<'_>) -> R,
    ) -> Result<R, Error> {
        let org = var.organization_id;
        if !self.keys.contains_key(&org) {
            let k = sealing::read_data_key(tx, &self.vault.master, &self.vault.keys, org)?;
            self.keys.insert(org, k);
        }
        if let Entry::Vacant(slot) = self.envs.entry(var.environment_id) {
            slot.insert(
                tx.get(ENVIRONMENTS, var.environment_id)?.map(|e| e.name).unwrap_or_default(),
            );
        }
        self.names.load(tx, var.created_by)?;
        let key = self.keys.get(&org).and_then(Option::as_ref);
        let slot = slot_of(&var);
        let row = VariableRow {
            variable: var,
            value: self.opener.open(key, slot, var.sealed),
            environment_name: self.envs.get(&var.environment_id).map_or("", String::as_str),
            created_by_name: self.names.get(var.created_by),
        };
        Ok(f(&row))
    }

    fn view(&mut self, tx: &impl Reader, var: &Variable) -> Result<VariableView, Error> {
        self.with_row(tx, var.as_ref(), |row| row.to_view())
    }

    /// Sends `total`, then the rows of `ids[offset..offset + limit]`.
    fn page(
        &mut self,
        tx: &impl Reader,
        ids: &[u64],
        offset: usize,
        limit: usize,
        sink: &mut impl PageSink,
    ) -> Result<(), Error> {
        sink.total(ids.len() as u64)?;
        let from = offset.min(ids.len());
        let page = ids.get(from..from.saturating_add(limit).min(ids.len())).unwrap_or_default();
        tx.visit_many(VARIABLES, page, |_, stored| {
            VariableRef::with(stored, |var| self.with_row(tx, var, |row| sink.row(row)))??
        })
    }
}

/// One live variable the caller can see, with its value.
pub fn get(
    tx: &impl Reader,
    caller: &Caller,
    vault: &Vault,
    id: u64,
) -> Result<VariableView, Error> {
    let var = load(tx, caller, id, Role::Viewer)?;
    Viewer::new(vault).view(tx, &var)
}

/// A page of the variables of one environment (404 if the caller cannot see it).
pub fn list_for_env(
    tx: &impl Reader,
    caller: &Caller,
    vault: &Vault,
    env_id: u64,
    offset: usize,
    limit: usize,
    sink: &mut impl PageSink,
) -> Result<(), Error> {
    let env = environments::load(tx, caller, env_id, Role::Viewer)?;
    let ids = tx.children(VARIABLES_BY_ENV, env.id)?;
    let mut viewer = Viewer::new(vault);
    viewer.envs.insert(env.id, env.name);
    viewer.page(tx, &ids, offset, limit, sink)
}

/// A page of every variable the caller may read, or of those of `environment` (empty if not
/// visible).
pub fn list(
    tx: &impl Reader,
    caller: &Caller,
    vault: &Vault,
    environment: Option<u64>,
    offset: usize,
    limit: usize,
    sink: &mut impl PageSink,
) -> Result<(), Error> {
    let ids = match environment {
        Some(e) => {
            let visible = tx
                .get(ENVIRONMENTS, e)?
                .is_some_and(|env| caller.principal.role_in(env.organization_id).is_some());
            if visible {
                tx.children(VARIABLES_BY_ENV, e)?
            } else {
                Vec::new()
            }
        }
        None => {
            let mut ids = Vec::new();
            for org in caller.principal.visible_orgs() {
                ids.extend(tx.children(VARIABLES_BY_ORG, org)?);
            }
            ids.sort_unstable();
            ids
        }
    };
    Viewer::new(vault).page(tx, &ids, offset, limit, sink)
}

/// `(key, value)` pairs that opened, and the keys whose values did not.
pub type EnvValues = (Vec<(String, String)>, Vec<String>);

/// All live variables of an environment as `(key, value)`, for the export. Values that fail
/// to open are left out and their keys returned separately.
pub fn all_values(tx: &impl Reader, vault: &Vault, env: &Environment) -> Result<EnvValues, Error> {
    let key = sealing::read_data_key(tx, &vault.master, &vault.keys, env.organization_id)?;
    let ids = tx.children(VARIABLES_BY_ENV, env.id)?;
    let mut out = Vec::with_capacity(ids.len());
    let mut failed = Vec::new();
    let mut opener = Opener::default();
    tx.visit_many(VARIABLES, &ids, |_, stored| -> Result<(), Error> {
        VariableRef::with(stored, |var| {
            match opener.try_open(key.as_ref(), slot_of(&var), var.sealed) {
                Some(value) => out.push((var.key.to_string(), value.to_string())),
                None => failed.push(var.key.to_string()),
            }
        })?;
        Ok(())
    })?;
    Ok((out, failed))
}
