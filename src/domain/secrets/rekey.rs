//! Data-key rotation (`gatehouse keys rotate-data-keys`): gives an organization a new data key
//! and re-seals every value and history version under it, so that a stolen copy of the old
//! data key (with the data file) opens nothing written afterwards or re-sealed.
//!
//! It runs in small transactions, with the server stopped (like master rotation): the first
//! one makes the new key current and keeps the old one as `previous`; each batch re-seals the
//! values of a few variables; the last one drops `previous`. Until then every reader tries the
//! current key and then the previous one (`sealing::DataKey`), so an interrupted rotation
//! leaves a file that serves every value, and running the command again resumes it: a value
//! that already opens under the current key is skipped.

use serde_json::json;

use crate::crypto::SecretKey;
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::orgs::tables::ORGANIZATIONS;
use crate::domain::secrets::records::{OrgDataKey, Sealed};
use crate::domain::secrets::sealing::{self, DataKey, Slot};
use crate::domain::secrets::tables::{
    DELETED_VARIABLES, ORG_DATA_KEYS, VARIABLES, VARIABLES_BY_ORG, VARIABLE_VERSIONS,
    VERSIONS_BY_VARIABLE,
};
use crate::domain::Error;
use crate::store::{Reader as _, Store, WriteTx, Writer as _};

/// How a rotation proceeds.
#[derive(Debug, Clone, Copy)]
pub struct RekeyOptions {
    /// Variables (each with its history) re-sealed per transaction.
    pub batch: usize,
    /// Stop after this many batches, leaving the rotation under way (tests of resumption).
    pub max_batches: Option<usize>,
}

impl Default for RekeyOptions {
    fn default() -> Self {
        Self { batch: 100, max_batches: None }
    }
}

/// What a rotation did for one organization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RekeyReport {
    pub organization_id: u64,
    /// Generation of the organization's key afterwards.
    pub generation: u32,
    /// True when this run continued an interrupted rotation instead of starting one.
    pub resumed: bool,
    /// Current values and history versions re-sealed by this run.
    pub values: usize,
    pub versions: usize,
    /// Values that opened under neither key (damaged rows); left as they were.
    pub unreadable: usize,
    /// False when the run stopped early (`max_batches`); run again to finish.
    pub finished: bool,
}

/// Rotates the data key of `org`, or of every organization that has one. Blocking.
pub fn rotate_data_keys(
    store: &Store,
    master: &SecretKey,
    org: Option<u64>,
    opts: RekeyOptions,
) -> Result<Vec<RekeyReport>, Error> {
    let orgs: Vec<u64> = match org {
        Some(id) => {
            let exists = store.read(|tx| tx.get(ORGANIZATIONS, id).map(|o| o.is_some()))?;
            if !exists {
                return Err(Error::not_found("Organization"));
            }
            vec![id]
        }
        None => store.read(|tx| {
            tx.scan(ORG_DATA_KEYS, 0..=u64::MAX, usize::MAX, false)
                .map(|rows| rows.into_iter().map(|(id, _)| id).collect())
        })?,
    };
    let mut reports = Vec::new();
    for org in orgs {
        if let Some(report) = rotate_org(store, master, org, opts)? {
            reports.push(report);
        }
    }
    Ok(reports)
}

/// Rotates one organization's data key; `None` when it has none (it never stored a value).
pub fn rotate_org(
    store: &Store,
    master: &SecretKey,
    org: u64,
    opts: RekeyOptions,
) -> Result<Option<RekeyReport>, Error> {
    let fresh = SecretKey::generate()?;
    let m = master.clone();
    let Some((generation, resumed)) = store.write_blocking(move |tx| begin(tx, &m, org, &fresh))?
    else {
        return Ok(None);
    };
    let mut report =
        RekeyReport { organization_id: org, generation, resumed, ..Default::default() };
    // Every variable of the organization, live or deleted (deleted ones keep their history
    // until purged, and it must not stay under the old key).
    let ids: Vec<u64> = store.read(|tx| -> Result<Vec<u64>, Error> {
        let mut ids = tx.children(VARIABLES_BY_ORG, org)?;
        ids.extend(tx.children(DELETED_VARIABLES, 0)?);
        Ok(ids)
    })?;
    let batch = opts.batch.max(1);
    for (n, chunk) in ids.chunks(batch).enumerate() {
        if opts.max_batches.is_some_and(|max| n >= max) {
            return Ok(Some(report));
        }
        let (m, chunk) = (master.clone(), chunk.to_vec());
        let done = store.write_blocking(move |tx| reseal_batch(tx, &m, org, &chunk))?;
        report.values += done.values;
        report.versions += done.versions;
        report.unreadable += done.unreadable;
    }
    let summary = report.clone();
    store.write_blocking(move |tx| finish(tx, org, &summary))?;
    report.finished = true;
    Ok(Some(report))
}

/// Makes `fresh` the current key (the old one kept as `previous`), unless a rotation is
/// already under way. `(generation, resumed)`, or `None` without a data key.
fn begin(
    tx: &WriteTx,
    master: &SecretKey,
    org: u64,
    fresh: &SecretKey,
) -> Result<Option<(u32, bool)>, Error> {
    let Some(rec) = tx.get(ORG_DATA_KEYS, org)? else { return Ok(None) };
    if rec.previous.is_some() {
        return Ok(Some((rec.generation, true)));
    }
    // The old key must open before it is demoted: a bad master key changes nothing.
    sealing::open_sealed_key(master, org, &rec.sealed)?;
    let next = OrgDataKey {
        sealed: sealing::seal_key(master, org, fresh)?,
        previous: Some(rec.sealed.clone()),
        generation: rec.generation.saturating_add(1),
        created_at: crate::clock::unix_now(),
        ..rec
    };
    tx.put(ORG_DATA_KEYS, org, &next)?;
    Ok(Some((next.generation, false)))
}

#[derive(Default)]
struct BatchDone {
    values: usize,
    versions: usize,
    unreadable: usize,
}

enum Resealed {
    /// Already under the current key.
    Current,
    /// Was under the previous key; here under the current one.
    Moved(Sealed),
    /// Opens under neither.
    Unreadable,
}

fn reseal(key: &DataKey, slot: Slot, sealed: &Sealed) -> Result<Resealed, Error> {
    let aad = sealing::value_aad(slot.org, slot.env, slot.variable, slot.version);
    if key.current.open(&aad, &sealed.0).is_ok() {
        return Ok(Resealed::Current);
    }
    let Some(plain) = key.previous.as_ref().and_then(|p| p.open(&aad, &sealed.0).ok()) else {
        return Ok(Resealed::Unreadable);
    };
    let moved = key.current.seal(&aad, &plain)?;
    Ok(Resealed::Moved(Sealed(moved)))
}

/// Re-seals the current value and the history of each variable of `ids` that belongs to `org`.
fn reseal_batch(
    tx: &WriteTx,
    master: &SecretKey,
    org: u64,
    ids: &[u64],
) -> Result<BatchDone, Error> {
    let mut done = BatchDone::default();
    let Some(rec) = tx.get(ORG_DATA_KEYS, org)? else { return Ok(done) };
    let key = DataKey {
        current: sealing::open_sealed_key(master, org, &rec.sealed)?,
        previous: rec
            .previous
            .as_deref()
            .map(|p| sealing::open_sealed_key(master, org, p))
            .transpose()?,
    };
    for &id in ids {
        let Some(mut var) = tx.get(VARIABLES, id)? else { continue };
        if var.organization_id != org {
            continue;
        }
        let slot = Slot { org, env: var.environment_id, variable: var.id, version: var.version };
        match reseal(&key, slot, &var.sealed)? {
            Resealed::Current => {}
            Resealed::Moved(sealed) => {
                var.sealed = sealed;
                tx.put(VARIABLES, id, &var)?;
                done.values += 1;
            }
            Resealed::Unreadable => done.unreadable += 1,
        }
        for row in tx.children(VERSIONS_BY_VARIABLE, id)? {
            let Some(mut version) = tx.get(VARIABLE_VERSIONS, row)? else { continue };
            match reseal(&key, Slot { version: version.version, ..slot }, &version.sealed)? {
                Resealed::Current => {}
                Resealed::Moved(sealed) => {
                    version.sealed = sealed;
                    tx.put(VARIABLE_VERSIONS, row, &version)?;
                    done.versions += 1;
                }
                Resealed::Unreadable => done.unreadable += 1,
            }
        }
    }
    Ok(done)
}

/// Drops the previous key (every value is under the current one now) and audits the rotation.
fn finish(tx: &WriteTx, org: u64, report: &RekeyReport) -> Result<(), Error> {
    let Some(rec) = tx.get(ORG_DATA_KEYS, org)? else { return Ok(()) };
    tx.put(ORG_DATA_KEYS, org, &OrgDataKey { previous: None, ..rec.clone() })?;
    audit::record(
        tx,
        AuditEvent {
            actor: &Actor::system(),
            organization_id: Some(org),
            action: "data_key_rotated",
            target_type: "organization",
            target_id: org.to_string(),
            details: json!({
                "generation": rec.generation,
                "values_resealed": report.values,
                "versions_resealed": report.versions,
                "unreadable": report.unreadable,
            }),
        },
    )?;
    Ok(())
}
