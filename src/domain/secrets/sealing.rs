//! Envelope encryption of variable values: each organization has a random 256-bit data key,
//! sealed by the master key (AAD names the organization) and created on first use; each value
//! is sealed with AES-256-GCM under that key with associated data binding it to its
//! organization, environment, variable id and version, so a ciphertext copied to any other
//! row, or to another version slot of the same variable, fails to open.

use std::collections::HashMap;

use base64::Engine as _;
use parking_lot::RwLock;

use crate::crypto::{SecretKey, KEY_LEN};
use crate::domain::secrets::records::{OrgDataKey, Sealed};
use crate::domain::{push_decimal, Error};
use crate::store::tables::ORG_DATA_KEYS;
use crate::store::{Reader, WriteTx, Writer as _};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Shown instead of a value whose ciphertext does not open (damaged or moved row).
pub const DECRYPTION_ERROR: &str = "[DECRYPTION_ERROR]";

/// Associated data of an organization's data key.
pub fn data_key_aad(org: u64) -> Vec<u8> {
    format!("gatehouse/org_data_key/v1/{org}").into_bytes()
}

/// Associated data of one value: organization, environment, variable id and version —
/// `gatehouse/variable/v1/org:{org}/env:{env}/var:{variable}/version:{version}`, written
/// without `format!` (a list opens a hundred values per request).
pub fn value_aad(org: u64, env: u64, variable: u64, version: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(112);
    push_value_aad(&mut out, Slot { org, env, variable, version });
    out
}

fn push_value_aad(out: &mut Vec<u8>, slot: Slot) {
    out.extend_from_slice(b"gatehouse/variable/v1/org:");
    push_decimal(out, slot.org);
    out.extend_from_slice(b"/env:");
    push_decimal(out, slot.env);
    out.extend_from_slice(b"/var:");
    push_decimal(out, slot.variable);
    out.extend_from_slice(b"/version:");
    push_decimal(out, u64::from(slot.version));
}

/// Opened data keys, remembered with the sealed text they came from: a hit requires the stored
/// record to hold exactly that text, so an entry can never outlive or disagree with its row
/// (even one written by a transaction that was later rolled back).
#[derive(Default)]
pub struct DataKeyCache(RwLock<HashMap<u64, (String, SecretKey)>>);

impl DataKeyCache {
    fn get(&self, org: u64, sealed: &str) -> Option<SecretKey> {
        let map = self.0.read();
        map.get(&org).filter(|(s, _)| s == sealed).map(|(_, k)| k.clone())
    }

    fn put(&self, org: u64, sealed: &str, key: &SecretKey) {
        self.0.write().insert(org, (sealed.to_string(), key.clone()));
    }

    /// Forgets an organization's key (after the organization is deleted).
    pub fn forget(&self, org: u64) {
        self.0.write().remove(&org);
    }
}

fn open_data_key(
    master: &SecretKey,
    cache: &DataKeyCache,
    rec: &OrgDataKey,
) -> Result<SecretKey, Error> {
    if let Some(k) = cache.get(rec.organization_id, &rec.sealed) {
        return Ok(k);
    }
    let sealed = B64
        .decode(&rec.sealed)
        .map_err(|_| Error::internal("organization data key is not valid base64"))?;
    let plain = master
        .open(&data_key_aad(rec.organization_id), &sealed)
        .map_err(|_| Error::internal("organization data key does not open with the master key"))?;
    let bytes: [u8; KEY_LEN] =
        plain.try_into().map_err(|_| Error::internal("organization data key has a bad length"))?;
    let key = SecretKey::from_bytes(bytes);
    cache.put(rec.organization_id, &rec.sealed, &key);
    Ok(key)
}

/// The organization's data key, if it has one yet.
pub fn read_data_key(
    tx: &impl Reader,
    master: &SecretKey,
    cache: &DataKeyCache,
    org: u64,
) -> Result<Option<SecretKey>, Error> {
    match tx.get(ORG_DATA_KEYS, org)? {
        Some(rec) => open_data_key(master, cache, &rec).map(Some),
        None => Ok(None),
    }
}

/// The organization's data key, created (and sealed by the master key) on first use.
pub fn data_key(
    tx: &WriteTx,
    master: &SecretKey,
    cache: &DataKeyCache,
    org: u64,
) -> Result<SecretKey, Error> {
    if let Some(rec) = tx.get(ORG_DATA_KEYS, org)? {
        return open_data_key(master, cache, &rec);
    }
    let key = SecretKey::generate().map_err(|e| Error::internal(e.to_string()))?;
    let sealed = master
        .seal(&data_key_aad(org), key.expose())
        .map_err(|e| Error::internal(e.to_string()))?;
    let rec = OrgDataKey {
        organization_id: org,
        sealed: B64.encode(sealed),
        created_at: crate::domain::unix_now(),
    };
    tx.put(ORG_DATA_KEYS, org, &rec)?;
    Ok(key)
}

/// Re-seals an organization's data key record from `old` to `new` master key.
pub fn reseal_data_key(
    rec: &OrgDataKey,
    old: &SecretKey,
    new: &SecretKey,
) -> Result<OrgDataKey, Error> {
    let aad = data_key_aad(rec.organization_id);
    let sealed = B64
        .decode(&rec.sealed)
        .map_err(|_| Error::internal("organization data key is not valid base64"))?;
    let plain = old.open(&aad, &sealed).map_err(|_| {
        Error::internal(format!(
            "the data key of organization {} does not open with the current master key",
            rec.organization_id
        ))
    })?;
    let resealed = new.seal(&aad, &plain).map_err(|e| Error::internal(e.to_string()))?;
    Ok(OrgDataKey { sealed: B64.encode(resealed), ..rec.clone() })
}

/// Where a value lives; the associated data of its ciphertext.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub org: u64,
    pub env: u64,
    pub variable: u64,
    pub version: u32,
}

impl Slot {
    fn aad(self) -> Vec<u8> {
        value_aad(self.org, self.env, self.variable, self.version)
    }
}

/// Seals `value` for `slot`, as base64 text.
pub fn seal_value(key: &SecretKey, slot: Slot, value: &str) -> Result<Sealed, Error> {
    let sealed =
        key.seal(&slot.aad(), value.as_bytes()).map_err(|e| Error::internal(e.to_string()))?;
    Ok(Sealed(sealed))
}

/// Opens a value sealed for `slot`; `None` if it does not open (wrong row, tampered, bad key).
pub fn open_value(key: &SecretKey, slot: Slot, sealed: &Sealed) -> Option<String> {
    Opener::default().try_open(Some(key), slot, &sealed.0).map(str::to_string)
}

/// Opens a value, or logs and returns [`DECRYPTION_ERROR`] (the value itself never logged).
pub fn open_or_marker(key: Option<&SecretKey>, slot: Slot, sealed: &Sealed) -> String {
    Opener::default().open(key, slot, &sealed.0).to_string()
}

/// Opens values one after another into reused buffers: a list page opens a hundred, and an
/// allocation for each value's associated data and plaintext would cost about as much as the
/// decryption itself.
#[derive(Default)]
pub struct Opener {
    aad: Vec<u8>,
    plain: Vec<u8>,
}

impl Opener {
    /// The value sealed for `slot`, or [`DECRYPTION_ERROR`] (logged, without the value) if it
    /// does not open or is not UTF-8.
    pub fn open(&mut self, key: Option<&SecretKey>, slot: Slot, sealed: &[u8]) -> &str {
        match self.try_open(key, slot, sealed) {
            Some(text) => text,
            None => {
                tracing::error!(
                    organization = slot.org,
                    environment = slot.env,
                    variable = slot.variable,
                    version = slot.version,
                    "variable value failed to decrypt"
                );
                DECRYPTION_ERROR
            }
        }
    }

    /// The value sealed for `slot`; `None` if it does not open (wrong row, tampered, bad key)
    /// or is not UTF-8.
    pub fn try_open(&mut self, key: Option<&SecretKey>, slot: Slot, sealed: &[u8]) -> Option<&str> {
        self.aad.clear();
        push_value_aad(&mut self.aad, slot);
        let plain = key?.open_into(&self.aad, sealed, &mut self.plain).ok()?;
        std::str::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_aad_is_the_documented_text() {
        for (o, e, v, n) in [(0, 0, 0, 0), (1, 22, 333, 4), (u64::MAX, 10, 1_000_000, u32::MAX)] {
            let text = format!("gatehouse/variable/v1/org:{o}/env:{e}/var:{v}/version:{n}");
            assert_eq!(value_aad(o, e, v, n), text.into_bytes());
        }
    }
}
