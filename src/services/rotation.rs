//! Master key rotation: re-seals what the master key seals directly — the organization data
//! keys, the master check value and the sealed `meta` rows — in one transaction. Values stay
//! sealed under their (unchanged) data keys, so rotation costs one re-seal per organization.

use crate::crypto::SecretKey;
use crate::domain::secrets::records::OrgDataKey;
use crate::domain::secrets::sealing::{self, SealError};
use crate::domain::secrets::tables::ORG_DATA_KEYS;
use crate::domain::Error;
use crate::store::{get_meta, put_meta, reseal_master_check, Reader, WriteTx, Writer as _};

/// Every `meta` row sealed directly by the master key, with its associated data. A new sealed
/// row must be added here, or rotation would leave it unreadable.
pub const SEALED_META_ROWS: &[(&str, &[u8])] = &[
    ("tls_ca_key", b"gatehouse/meta/tls_ca_key"),
    ("tls_leaf_key", b"gatehouse/meta/tls_leaf_key"),
    // Files from before JWT key ids; blank once the key moved into the `jwt_keys` ring.
    ("jwt_signing_key", b"gatehouse/meta/jwt_signing_key"),
    // The key that seals TOTP secrets (issue 18).
    (crate::domain::two_factor::KEY_META_ROW, crate::domain::two_factor::KEY_META_AAD),
];

/// What a rotation re-sealed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    pub data_keys: usize,
    pub meta_rows: Vec<String>,
}

/// Re-seals everything under `new`; fails (changing nothing) if anything does not open with
/// `old`.
pub fn rotate_master_key(
    tx: &WriteTx,
    old: &SecretKey,
    new: &SecretKey,
) -> Result<RotationReport, Error> {
    reseal_master_check(tx, old, new)?;
    let mut report = RotationReport::default();
    let keys: Vec<(u64, OrgDataKey)> = tx.scan(ORG_DATA_KEYS, 0..=u64::MAX, usize::MAX, false)?;
    for (org, rec) in keys {
        let resealed = sealing::reseal_data_key(&rec, old, new)?;
        tx.put(ORG_DATA_KEYS, org, &resealed)?;
        report.data_keys += 1;
    }
    for (name, aad) in SEALED_META_ROWS {
        let Some(sealed) = get_meta(tx, name)? else { continue };
        if sealed.is_empty() {
            continue;
        }
        let plain = old
            .open(aad, &sealed)
            .map_err(|source| SealError::MetaRowDoesNotOpen { row: name, source })?;
        let resealed = new.seal(aad, &plain)?;
        put_meta(tx, name, &resealed)?;
        report.meta_rows.push((*name).to_string());
    }
    // The JWT key ring seals each key under its own kid, so it is re-sealed key by key.
    if crate::auth::jwt::reseal_ring(tx, old, new)? {
        report.meta_rows.push(crate::auth::jwt::RING_META_KEY.to_string());
    }
    Ok(report)
}
