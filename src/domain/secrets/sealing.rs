//! Envelope encryption of variable values: each organization has a random 256-bit data key,
//! sealed by the master key (AAD names the organization) and created on first use; each value
//! is sealed with AES-256-GCM under that key with associated data binding it to its
//! organization, environment, variable id and version, so a ciphertext copied to any other
//! row, or to another version slot of the same variable, fails to open.

use std::collections::HashMap;

use base64::Engine as _;
use parking_lot::RwLock;

use crate::crypto::{CryptoError, SecretKey, KEY_LEN};
use crate::domain::secrets::records::{OrgDataKey, Sealed};
use crate::domain::{Error, ErrorCode, ServiceError};

use crate::domain::secrets::tables::ORG_DATA_KEYS;
use crate::store::{Reader, WriteTx, Writer as _};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Shown instead of a value whose ciphertext does not open (damaged or moved row).
pub const DECRYPTION_ERROR: &str = "[DECRYPTION_ERROR]";

/// What the master key and the organizations' data keys fail at: the server's own failures (a
/// damaged row, a wrong master key), never the client's.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the data key of organization {org} is not valid base64")]
    KeyNotBase64 { org: u64 },
    #[error("the data key of organization {org} does not open with the master key")]
    KeyDoesNotOpen { org: u64, source: CryptoError },
    #[error("the data key of organization {org} has a bad length")]
    KeyLength { org: u64 },
    #[error("version {version} of variable {variable} does not open")]
    ValueDoesNotOpen { variable: u64, version: u32 },
    #[error("meta row {row} does not open with the current master key")]
    MetaRowDoesNotOpen { row: &'static str, source: CryptoError },
    #[error("sealing: {0}")]
    Seal(#[from] CryptoError),
}

impl ServiceError for SealError {
    fn error_code(&self) -> ErrorCode {
        match self {
            SealError::KeyNotBase64 { .. }
            | SealError::KeyDoesNotOpen { .. }
            | SealError::KeyLength { .. }
            | SealError::ValueDoesNotOpen { .. }
            | SealError::MetaRowDoesNotOpen { .. }
            | SealError::Seal(_) => ErrorCode::Internal,
        }
    }
}

impl From<SealError> for Error {
    fn from(e: SealError) -> Self {
        Error::from_service("sealing", e)
    }
}

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
    out.extend_from_slice(itoa::Buffer::new().format(slot.org).as_bytes());
    out.extend_from_slice(b"/env:");
    out.extend_from_slice(itoa::Buffer::new().format(slot.env).as_bytes());
    out.extend_from_slice(b"/var:");
    out.extend_from_slice(itoa::Buffer::new().format(slot.variable).as_bytes());
    out.extend_from_slice(b"/version:");
    out.extend_from_slice(itoa::Buffer::new().format(u64::from(slot.version)).as_bytes());
}

/// An organization's opened data key: `current` seals; while a data-key rotation is under
/// way, `previous` still opens the values not yet re-sealed. A value does not record which
/// key sealed it: AES-GCM's tag tells (a value opens under exactly one of them), and the
/// second attempt is only made during a rotation, for rows it has not reached yet.
#[derive(Clone, Debug)]
pub struct DataKey {
    pub current: SecretKey,
    pub previous: Option<SecretKey>,
}

impl DataKey {
    /// A key with no rotation under way.
    pub fn single(current: SecretKey) -> Self {
        Self { current, previous: None }
    }
}

/// Opened data keys, remembered with the sealed text they came from: a hit requires the stored
/// record to hold exactly that text, so an entry can never outlive or disagree with its row
/// (even one written by a transaction that was later rolled back).
#[derive(Default)]
pub struct DataKeyCache(RwLock<HashMap<u64, CachedKey>>);

/// An opened key with the sealed texts (current, previous) it was opened from.
struct CachedKey {
    sealed: String,
    previous: Option<String>,
    key: DataKey,
}

impl DataKeyCache {
    fn get(&self, rec: &OrgDataKey) -> Option<DataKey> {
        let map = self.0.read();
        map.get(&rec.organization_id)
            .filter(|c| c.sealed == rec.sealed && c.previous == rec.previous)
            .map(|c| c.key.clone())
    }

    fn put(&self, rec: &OrgDataKey, key: &DataKey) {
        let cached = CachedKey {
            sealed: rec.sealed.clone(),
            previous: rec.previous.clone(),
            key: key.clone(),
        };
        self.0.write().insert(rec.organization_id, cached);
    }

    /// Forgets an organization's key (after the organization is deleted).
    pub fn forget(&self, org: u64) {
        self.0.write().remove(&org);
    }
}

/// Opens one master-sealed data key (base64 text) of `org`.
pub(crate) fn open_sealed_key(
    master: &SecretKey,
    org: u64,
    sealed_b64: &str,
) -> Result<SecretKey, Error> {
    let sealed = B64.decode(sealed_b64).map_err(|_| SealError::KeyNotBase64 { org })?;
    let plain = master
        .open(&data_key_aad(org), &sealed)
        .map_err(|source| SealError::KeyDoesNotOpen { org, source })?;
    let bytes: [u8; KEY_LEN] = plain.try_into().map_err(|_| SealError::KeyLength { org })?;
    Ok(SecretKey::from_bytes(bytes))
}

/// Seals a data key of `org` under the master key, as base64 text.
pub(crate) fn seal_key(master: &SecretKey, org: u64, key: &SecretKey) -> Result<String, Error> {
    let sealed = master.seal(&data_key_aad(org), key.expose()).map_err(SealError::Seal)?;
    Ok(B64.encode(sealed))
}

fn open_data_key(
    master: &SecretKey,
    cache: &DataKeyCache,
    rec: &OrgDataKey,
) -> Result<DataKey, Error> {
    if let Some(k) = cache.get(rec) {
        return Ok(k);
    }
    let org = rec.organization_id;
    let key = DataKey {
        current: open_sealed_key(master, org, &rec.sealed)?,
        previous: rec.previous.as_deref().map(|p| open_sealed_key(master, org, p)).transpose()?,
    };
    cache.put(rec, &key);
    Ok(key)
}

/// The organization's data key, if it has one yet.
pub fn read_data_key(
    tx: &impl Reader,
    master: &SecretKey,
    cache: &DataKeyCache,
    org: u64,
) -> Result<Option<DataKey>, Error> {
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
) -> Result<DataKey, Error> {
    if let Some(rec) = tx.get(ORG_DATA_KEYS, org)? {
        return open_data_key(master, cache, &rec);
    }
    let key = SecretKey::generate()?;
    let rec = OrgDataKey {
        organization_id: org,
        sealed: seal_key(master, org, &key)?,
        created_at: crate::clock::unix_now(),
        generation: 1,
        previous: None,
    };
    tx.put(ORG_DATA_KEYS, org, &rec)?;
    Ok(DataKey::single(key))
}

/// Re-seals an organization's data key record (and the previous key of a rotation under way)
/// from `old` to `new` master key.
pub fn reseal_data_key(
    rec: &OrgDataKey,
    old: &SecretKey,
    new: &SecretKey,
) -> Result<OrgDataKey, Error> {
    let org = rec.organization_id;
    let reseal = |sealed: &str| -> Result<String, Error> {
        let key = open_sealed_key(old, org, sealed)?;
        seal_key(new, org, &key)
    };
    Ok(OrgDataKey {
        sealed: reseal(&rec.sealed)?,
        previous: rec.previous.as_deref().map(reseal).transpose()?,
        ..rec.clone()
    })
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

/// Seals `value` for `slot` under the current data key.
pub fn seal_value(key: &DataKey, slot: Slot, value: &str) -> Result<Sealed, Error> {
    let sealed = key.current.seal(&slot.aad(), value.as_bytes()).map_err(SealError::Seal)?;
    Ok(Sealed(sealed))
}

/// Opens a value sealed for `slot`; `None` if it does not open (wrong row, tampered, bad key).
pub fn open_value(key: &DataKey, slot: Slot, sealed: &Sealed) -> Option<String> {
    Opener::default().try_open(Some(key), slot, &sealed.0).map(str::to_string)
}

/// Opens a value, or logs and returns [`DECRYPTION_ERROR`] (the value itself never logged).
pub fn open_or_marker(key: Option<&DataKey>, slot: Slot, sealed: &Sealed) -> String {
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
    pub fn open(&mut self, key: Option<&DataKey>, slot: Slot, sealed: &[u8]) -> &str {
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
    pub fn try_open(&mut self, key: Option<&DataKey>, slot: Slot, sealed: &[u8]) -> Option<&str> {
        let key = key?;
        self.aad.clear();
        push_value_aad(&mut self.aad, slot);
        let opened = match key.current.open_into(&self.aad, sealed, &mut self.plain) {
            Ok(plain) => plain.len(),
            Err(_) => {
                key.previous.as_ref()?.open_into(&self.aad, sealed, &mut self.plain).ok()?.len()
            }
        };
        std::str::from_utf8(self.plain.get(..opened)?).ok()
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

    /// A key that does not open is the server's failure, and its cause keeps its type (and the
    /// organization) for the log.
    #[test]
    fn a_key_that_does_not_open_is_an_internal_error_with_its_cause() {
        let master = SecretKey::from_bytes([1; KEY_LEN]);
        let sealed = seal_key(&master, 7, &SecretKey::from_bytes([2; KEY_LEN])).unwrap();
        assert!(open_sealed_key(&master, 7, &sealed).is_ok());
        let e = open_sealed_key(&SecretKey::from_bytes([3; KEY_LEN]), 7, &sealed).unwrap_err();
        assert_eq!(e.code, crate::domain::ErrorCode::Internal);
        let Some(crate::domain::InternalError::Area { source, .. }) = e.cause() else {
            panic!("{e:?}")
        };
        let cause = source.downcast_ref::<SealError>();
        assert!(matches!(cause, Some(SealError::KeyDoesNotOpen { org: 7, .. })), "{cause:?}");
        let e = open_sealed_key(&master, 7, "not base64!").unwrap_err();
        assert_eq!(e.message, "sealing: the data key of organization 7 is not valid base64");
    }
}
