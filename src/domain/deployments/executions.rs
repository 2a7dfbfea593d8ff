//! Executions: created on submission, started and finished by a worker, stopped on request,
//! ended by a restart, and swept after their retention. Results are sealed under the
//! organization's data key (a template may put secret values in them).

use base64::Engine as _;

use super::records::{ExecStatus, Execution};
use super::tables::{
    EXECUTIONS, EXECUTIONS_ACTIVE, EXECUTIONS_BY_DEPLOYMENT, EXECUTION_IDS, IDEMPOTENCY_KEYS,
};
use crate::domain::secrets::{sealing, Vault};
use crate::domain::Error;
use crate::store::{Reader, WriteTx, Writer as _};

/// The error of an execution a restart interrupted.
pub const INTERRUPTED: &str = "interrupted by restart";
/// Longest `Idempotency-Key`, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A submission, before it is stored.
#[derive(Debug, Clone)]
pub struct Submission {
    pub uuid: String,
    pub deployment_id: u64,
    pub organization_id: u64,
    pub input: serde_json::Value,
    pub parameters: serde_json::Value,
    pub idempotency_key: Option<String>,
    pub now_ms: i64,
}

fn idempotency_lookup(deployment: u64, key: &str) -> String {
    format!("{deployment}/{key}")
}

/// Stores a new execution as `PENDING`; with an idempotency key already used on this
/// deployment, returns the first execution instead (`false`: nothing new to run).
pub fn create(tx: &WriteTx, s: &Submission) -> Result<(Execution, bool), Error> {
    if let Some(k) = &s.idempotency_key {
        if let Some(id) = tx.lookup(IDEMPOTENCY_KEYS, &idempotency_lookup(s.deployment_id, k))? {
            if let Some(first) = tx.get(EXECUTIONS, id)? {
                return Ok((first, false));
            }
        }
    }
    let id = tx.next_id("executions")?;
    let e = Execution {
        id,
        uuid: s.uuid.clone(),
        deployment_id: s.deployment_id,
        organization_id: s.organization_id,
        status: ExecStatus::Pending,
        input: s.input.clone(),
        parameters: s.parameters.clone(),
        created_at_ms: s.now_ms,
        started_at_ms: None,
        finished_at_ms: None,
        result_sealed: None,
        error: None,
        idempotency_key: s.idempotency_key.clone(),
    };
    if !tx.claim(EXECUTION_IDS, &e.uuid, id)? {
        return Err(Error::internal("a new execution id collided with a stored one"));
    }
    if let Some(k) = &s.idempotency_key {
        tx.set_lookup(IDEMPOTENCY_KEYS, &idempotency_lookup(s.deployment_id, k), id)?;
    }
    tx.put(EXECUTIONS, id, &e)?;
    tx.link(EXECUTIONS_BY_DEPLOYMENT, s.deployment_id, id)?;
    tx.link(EXECUTIONS_ACTIVE, 0, id)?;
    Ok((e, true))
}

/// The execution `uuid` of `deployment` (`None` for an unknown id or another deployment's).
pub fn get(tx: &impl Reader, deployment: u64, uuid: &str) -> Result<Option<Execution>, Error> {
    let Some(id) = tx.lookup(EXECUTION_IDS, uuid)? else { return Ok(None) };
    Ok(tx.get(EXECUTIONS, id)?.filter(|e| e.deployment_id == deployment))
}

/// Moves a pending execution to `EXECUTING`; `None` if it is no longer pending (stopped while
/// it waited, or gone).
pub fn start(tx: &WriteTx, id: u64, now_ms: i64) -> Result<Option<Execution>, Error> {
    let Some(mut e) = tx.get(EXECUTIONS, id)? else { return Ok(None) };
    if e.status != ExecStatus::Pending {
        return Ok(None);
    }
    e.status = ExecStatus::Executing;
    e.started_at_ms = Some(now_ms);
    tx.put(EXECUTIONS, id, &e)?;
    Ok(Some(e))
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Completed(serde_json::Value),
    Failed(String),
}

/// Records the end of a run, unless the execution was stopped (or removed) meanwhile. Returns
/// the execution as stored (`None` if nothing was recorded).
pub fn finish(
    tx: &WriteTx,
    vault: &Vault,
    id: u64,
    outcome: &Outcome,
    now_ms: i64,
) -> Result<Option<Execution>, Error> {
    let Some(mut e) = tx.get(EXECUTIONS, id)? else { return Ok(None) };
    if e.status.is_final() {
        return Ok(None);
    }
    match outcome {
        Outcome::Completed(value) => {
            e.status = ExecStatus::Completed;
            e.result_sealed = Some(seal_result(tx, vault, &e, value)?);
        }
        Outcome::Failed(message) => {
            e.status = ExecStatus::Error;
            e.error = Some(message.clone());
        }
    }
    e.finished_at_ms = Some(now_ms);
    tx.put(EXECUTIONS, id, &e)?;
    tx.unlink(EXECUTIONS_ACTIVE, 0, id)?;
    Ok(Some(e))
}

/// Stops an execution that has not finished (`STOPPED`); a final one is returned unchanged
/// (`false`: nothing was stopped).
pub fn stop(
    tx: &WriteTx,
    deployment: u64,
    uuid: &str,
    now_ms: i64,
) -> Result<(Execution, bool), Error> {
    let mut e = get(tx, deployment, uuid)?.ok_or_else(|| Error::not_found("Execution"))?;
    if e.status.is_final() {
        return Ok((e, false));
    }
    e.status = ExecStatus::Stopped;
    e.finished_at_ms = Some(now_ms);
    tx.put(EXECUTIONS, e.id, &e)?;
    tx.unlink(EXECUTIONS_ACTIVE, 0, e.id)?;
    Ok((e, true))
}

/// Ends every execution a previous process left pending or running (at start, before any
/// worker runs): `ERROR`, "interrupted by restart". Returns how many.
pub fn interrupt_unfinished(tx: &WriteTx, now_ms: i64) -> Result<usize, Error> {
    let ids = tx.children(EXECUTIONS_ACTIVE, 0)?;
    for id in &ids {
        if let Some(mut e) = tx.get(EXECUTIONS, *id)? {
            if !e.status.is_final() {
                e.status = ExecStatus::Error;
                e.error = Some(INTERRUPTED.to_string());
                e.finished_at_ms = Some(now_ms);
                tx.put(EXECUTIONS, *id, &e)?;
            }
        }
        tx.unlink(EXECUTIONS_ACTIVE, 0, *id)?;
    }
    Ok(ids.len())
}

fn remove(tx: &WriteTx, e: &Execution) -> Result<(), Error> {
    tx.remove(EXECUTIONS, e.id)?;
    tx.release(EXECUTION_IDS, &e.uuid)?;
    tx.unlink(EXECUTIONS_BY_DEPLOYMENT, e.deployment_id, e.id)?;
    tx.unlink(EXECUTIONS_ACTIVE, 0, e.id)?;
    if let Some(k) = &e.idempotency_key {
        tx.release(IDEMPOTENCY_KEYS, &idempotency_lookup(e.deployment_id, k))?;
    }
    Ok(())
}

/// Removes every execution of a deployment (its deletion); returns how many.
pub fn remove_for_deployment(tx: &WriteTx, deployment: u64) -> Result<usize, Error> {
    let ids = tx.children(EXECUTIONS_BY_DEPLOYMENT, deployment)?;
    for e in tx.get_many(EXECUTIONS, &ids)? {
        remove(tx, &e)?;
    }
    Ok(ids.len())
}

/// Removes up to `limit` final executions created before `cutoff_ms`, oldest first; returns
/// how many went. Ids grow with time, so the scan stops at the first younger one.
pub fn sweep(tx: &WriteTx, cutoff_ms: i64, limit: usize) -> Result<usize, Error> {
    let mut removed = 0;
    for (_, e) in tx.scan(EXECUTIONS, 1..=u64::MAX, limit, false)? {
        if e.created_at_ms >= cutoff_ms {
            break;
        }
        if e.status.is_final() {
            remove(tx, &e)?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn result_aad(e: &Execution) -> Vec<u8> {
    format!("gatehouse/execution_result/v1/org:{}/execution:{}", e.organization_id, e.uuid)
        .into_bytes()
}

fn seal_result(
    tx: &WriteTx,
    vault: &Vault,
    e: &Execution,
    value: &serde_json::Value,
) -> Result<String, Error> {
    let key = sealing::data_key(tx, &vault.master, &vault.keys, e.organization_id)?;
    let plain = serde_json::to_vec(value).map_err(|_| Error::internal("result encoding"))?;
    let sealed = key.current.seal(&result_aad(e), &plain).map_err(Error::from)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
}

/// True when the execution's sealed result opens under `key` (for `gatehouse check`).
pub fn result_opens(key: &sealing::DataKey, e: &Execution) -> bool {
    let Some(sealed) = &e.result_sealed else { return true };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(sealed) else {
        return false;
    };
    let aad = result_aad(e);
    key.current.open(&aad, &bytes).is_ok()
        || key.previous.as_ref().is_some_and(|p| p.open(&aad, &bytes).is_ok())
}

/// The result of a completed execution, opened; `Err` if it does not open (the organization's
/// data key was rotated past it).
pub fn open_result(
    tx: &impl Reader,
    vault: &Vault,
    e: &Execution,
) -> Result<Option<serde_json::Value>, Error> {
    let Some(sealed) = &e.result_sealed else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|_| Error::internal("a stored result is not base64"))?;
    let key = sealing::read_data_key(tx, &vault.master, &vault.keys, e.organization_id)?
        .ok_or_else(|| Error::internal("the organization has no data key"))?;
    let aad = result_aad(e);
    let plain = key
        .current
        .open(&aad, &bytes)
        .or_else(|err| key.previous.as_ref().map_or(Err(err), |p| p.open(&aad, &bytes)))
        .map_err(|_| Error::internal("a stored result does not open"))?;
    let value = serde_json::from_slice(&plain)
        .map_err(|_| Error::internal("a stored result is not JSON"))?;
    Ok(Some(value))
}

/// The newest `limit` executions of `deployment`, newest first (the console's list).
pub fn recent(tx: &impl Reader, deployment: u64, limit: usize) -> Result<Vec<Execution>, Error> {
    let ids = tx.children(EXECUTIONS_BY_DEPLOYMENT, deployment)?;
    let newest: Vec<u64> = ids.into_iter().rev().take(limit).collect();
    Ok(tx.get_many(EXECUTIONS, &newest)?)
}
