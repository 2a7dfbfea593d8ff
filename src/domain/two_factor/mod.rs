//! Two-factor authentication with TOTP (RFC 6238): enrolment, activation with a first code
//! and ten single-use recovery codes, checking a second factor at login, and disabling.
//!
//! The secret is sealed like a variable value (envelope encryption): a random 256-bit key,
//! sealed by the master key in the `meta` row `totp_key` (re-sealed by master key rotation),
//! seals each secret with associated data naming its user, so a sealed secret copied to
//! another user's row does not open. Recovery codes are kept as SHA-256 digests only.

pub mod base32;
pub mod code;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::crypto::{Secret, SecretKey, KEY_LEN};
use crate::domain::accounts::actor_for;
use crate::domain::audit::{self, AuditEvent};
use crate::domain::effects::Effect;
use crate::domain::records::User;
use crate::domain::secrets::sealing::SealError;
use crate::domain::{Error, ErrorCode};
use crate::store::{get_meta, put_meta, Reader, Record, StoreError, WriteTx, Writer as _};

use tables::TOTP_DEVICES;

/// The `meta` row holding the TOTP sealing key, and its associated data.
pub const KEY_META_ROW: &str = "totp_key";
pub const KEY_META_AAD: &[u8] = b"gatehouse/meta/totp_key";

/// Issuer shown by authenticator apps.
pub const ISSUER: &str = "Gatehouse";
/// Recovery codes handed out at activation.
pub const RECOVERY_CODES: usize = 10;
/// Random bytes of a TOTP secret (RFC 4226 recommends 160 bits).
const SECRET_LEN: usize = 20;

/// A user's TOTP device: pending until activated with a first code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TotpDevice {
    pub user_id: u64,
    /// The secret sealed under the TOTP key (nonce, ciphertext, tag).
    pub sealed_secret: Vec<u8>,
    /// Active: logins ask for a code.
    pub enabled: bool,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    /// The last time step whose code was accepted: that code and older ones are refused.
    pub last_step: Option<u64>,
    /// SHA-256 hex digests of the recovery codes not used yet.
    pub recovery_digests: Vec<String>,
}

impl Record for TotpDevice {
    const VERSION: u8 = 1;
    const NAME: &'static str = "totp_devices";
}

/// What an account's 2FA looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub enabled: bool,
    /// Enrolled but not activated yet.
    pub pending: bool,
    pub recovery_codes_left: usize,
}

/// Which second factor a check accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Totp,
    RecoveryCode,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::RecoveryCode => "recovery_code",
        }
    }
}

/// A new enrolment: the secret (base32) and its `otpauth://` URI, shown once.
pub struct Enrolment {
    pub secret: Secret<String>,
    pub uri: Secret<String>,
}

/// Pegasus's wrong-code answer (`{"status": "invalid_otp", "detail": "Invalid OTP code"}`), in
/// `details` of the error format.
pub fn invalid_otp() -> Error {
    Error::new(ErrorCode::Invalid, "Invalid OTP code")
        .with_details(json!({"status": "invalid_otp", "detail": "Invalid OTP code"}))
}

/// Whether logins of `user_id` ask for a second factor.
pub fn is_enabled(tx: &impl Reader, user_id: u64) -> Result<bool, StoreError> {
    Ok(tx.get(TOTP_DEVICES, user_id)?.is_some_and(|d| d.enabled))
}

/// The account's 2FA status.
pub fn status(tx: &impl Reader, user_id: u64) -> Result<Status, StoreError> {
    Ok(match tx.get(TOTP_DEVICES, user_id)? {
        Some(d) => Status {
            enabled: d.enabled,
            pending: !d.enabled,
            recovery_codes_left: if d.enabled { d.recovery_digests.len() } else { 0 },
        },
        None => Status { enabled: false, pending: false, recovery_codes_left: 0 },
    })
}

/// The TOTP sealing key, created (and sealed by the master key) on first use.
fn sealing_key(tx: &WriteTx, master: &SecretKey) -> Result<SecretKey, Error> {
    if let Some(sealed) = get_meta(tx, KEY_META_ROW)?.filter(|s| !s.is_empty()) {
        let plain = master
            .open(KEY_META_AAD, &sealed)
            .map_err(|source| SealError::MetaRowDoesNotOpen { row: KEY_META_ROW, source })?;
        let bytes: [u8; KEY_LEN] =
            plain.try_into().map_err(|_| Error::internal("TOTP key has a bad length"))?;
        return Ok(SecretKey::from_bytes(bytes));
    }
    let key = SecretKey::generate()?;
    put_meta(tx, KEY_META_ROW, &master.seal(KEY_META_AAD, key.expose())?)?;
    Ok(key)
}

fn secret_aad(user_id: u64) -> Vec<u8> {
    format!("gatehouse/totp/v1/user:{user_id}").into_bytes()
}

fn open_secret(tx: &WriteTx, master: &SecretKey, d: &TotpDevice) -> Result<Vec<u8>, Error> {
    let key = sealing_key(tx, master)?;
    key.open(&secret_aad(d.user_id), &d.sealed_secret)
        .map_err(|_| Error::internal("a TOTP secret does not open"))
}

/// `otpauth://totp/Gatehouse:<email>?secret=…&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(email: &str, secret_b32: &str) -> String {
    let label: String =
        form_urlencoded::byte_serialize(format!("{ISSUER}:{email}").as_bytes()).collect();
    // The label's `:` stays readable (Google's key-uri format); `+` would mean a space.
    let label = label.replace("%3A", ":").replace('+', "%20");
    format!(
        "otpauth://totp/{label}?secret={secret_b32}&issuer={ISSUER}&algorithm=SHA1&digits={}&period={}",
        code::DIGITS,
        code::PERIOD
    )
}

/// Starts (or restarts) an enrolment: a new secret, not active until [`activate`]. Refused
/// while 2FA is on (disable it first).
pub fn enrol(
    tx: &WriteTx,
    master: &SecretKey,
    user: &User,
    ip: Option<std::net::IpAddr>,
) -> Result<Enrolment, Error> {
    if is_enabled(tx, user.id)? {
        return Err(Error::conflict(
            "Two-factor authentication is already enabled; disable it first to enrol again.",
        ));
    }
    let mut raw = [0u8; SECRET_LEN];
    crate::crypto::fill_random(&mut raw)?;
    let key = sealing_key(tx, master)?;
    let device = TotpDevice {
        user_id: user.id,
        sealed_secret: key.seal(&secret_aad(user.id), &raw)?,
        enabled: false,
        created_at: crate::clock::unix_now(),
        activated_at: None,
        last_step: None,
        recovery_digests: Vec::new(),
    };
    tx.put(TOTP_DEVICES, user.id, &device)?;
    audited(tx, user, ip, "totp_enrolment_started", json!({"method": "totp"}))?;
    let secret = base32::encode(&raw);
    let uri = otpauth_uri(&user.email, &secret);
    Ok(Enrolment { secret: Secret::new(secret), uri: Secret::new(uri) })
}

/// Activates a pending enrolment with a first valid code; returns the recovery codes (shown
/// once). `Ok(None)`: the code is wrong.
pub fn activate(
    tx: &WriteTx,
    master: &SecretKey,
    user: &User,
    otp: &str,
    now: i64,
    ip: Option<std::net::IpAddr>,
) -> Result<Option<Vec<Secret<String>>>, Error> {
    let mut device = match tx.get(TOTP_DEVICES, user.id)? {
        Some(d) if d.enabled => {
            return Err(Error::conflict("Two-factor authentication is already enabled."))
        }
        Some(d) => d,
        None => {
            return Err(Error::invalid(
                "non_field_errors",
                "No TOTP enrolment in progress: POST /api/auth/2fa/totp/ first.",
            ))
        }
    };
    let secret = open_secret(tx, master, &device)?;
    let Some(step) = code::matching_step(&secret, otp.trim(), now, device.last_step) else {
        return Ok(None);
    };
    let codes = new_recovery_codes()?;
    device.enabled = true;
    device.activated_at = Some(now);
    device.last_step = Some(step);
    device.recovery_digests = codes.iter().map(|c| recovery_digest(c.expose())).collect();
    tx.put(TOTP_DEVICES, user.id, &device)?;
    // Cached HTTP Basic resolutions of this account must now be refused.
    tx.on_commit(Effect::CredentialsChanged);
    audited(tx, user, ip, "totp_enabled", json!({"recovery_codes": RECOVERY_CODES}))?;
    Ok(Some(codes))
}

/// Checks a second factor of an enabled device: a TOTP code not used before, or an unused
/// recovery code (then spent). `Ok(None)`: wrong code; an error when 2FA is not on.
pub fn check(
    tx: &WriteTx,
    master: &SecretKey,
    user_id: u64,
    otp: &str,
    now: i64,
) -> Result<Option<Factor>, Error> {
    let Some(mut device) = tx.get(TOTP_DEVICES, user_id)?.filter(|d| d.enabled) else {
        return Err(Error::invalid(
            "non_field_errors",
            "Two-factor authentication is not enabled.",
        ));
    };
    let otp = otp.trim();
    if otp.len() == code::DIGITS as usize && otp.bytes().all(|b| b.is_ascii_digit()) {
        let secret = open_secret(tx, master, &device)?;
        let Some(step) = code::matching_step(&secret, otp, now, device.last_step) else {
            return Ok(None);
        };
        device.last_step = Some(step);
        tx.put(TOTP_DEVICES, user_id, &device)?;
        return Ok(Some(Factor::Totp));
    }
    let digest = recovery_digest(otp);
    let Some(at) = device
        .recovery_digests
        .iter()
        .position(|d| crate::crypto::ct_eq(d.as_bytes(), digest.as_bytes()))
    else {
        return Ok(None);
    };
    device.recovery_digests.remove(at);
    tx.put(TOTP_DEVICES, user_id, &device)?;
    Ok(Some(Factor::RecoveryCode))
}

/// Audits a recovery code spent at login (how many are left, never the code).
pub fn record_recovery_use(
    tx: &WriteTx,
    user: &User,
    ip: Option<std::net::IpAddr>,
) -> Result<(), Error> {
    let left = tx.get(TOTP_DEVICES, user.id)?.map(|d| d.recovery_digests.len()).unwrap_or(0);
    audited(tx, user, ip, "totp_recovery_code_used", json!({"recovery_codes_left": left}))
}

/// Turns 2FA off with a current code or a recovery code. `Ok(false)`: the code is wrong.
pub fn disable(
    tx: &WriteTx,
    master: &SecretKey,
    user: &User,
    otp: &str,
    now: i64,
    ip: Option<std::net::IpAddr>,
) -> Result<bool, Error> {
    let Some(factor) = check(tx, master, user.id, otp, now)? else { return Ok(false) };
    tx.remove(TOTP_DEVICES, user.id)?;
    tx.on_commit(Effect::CredentialsChanged);
    audited(tx, user, ip, "totp_disabled", json!({"with": factor.as_str()}))?;
    Ok(true)
}

fn audited(
    tx: &WriteTx,
    user: &User,
    ip: Option<std::net::IpAddr>,
    action: &str,
    details: serde_json::Value,
) -> Result<(), Error> {
    let actor = actor_for(user, ip);
    audit::record(
        tx,
        AuditEvent {
            actor: &actor,
            organization_id: None,
            action,
            target_type: "user",
            target_id: user.id.to_string(),
            details,
        },
    )?;
    Ok(())
}

/// A recovery code as typed: dashes and spaces dropped, lower case.
fn normalise_recovery(code: &str) -> String {
    code.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect::<String>().to_lowercase()
}

fn recovery_digest(code: &str) -> String {
    crate::crypto::sha256_hex(normalise_recovery(code).as_bytes())
}

/// Ten codes of 50 random bits each, `xxxxx-xxxxx` in base32 (lower case, no digits 0/1
/// to confuse with letters).
fn new_recovery_codes() -> Result<Vec<Secret<String>>, Error> {
    let mut out = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut raw = [0u8; 7];
        crate::crypto::fill_random(&mut raw)?;
        let text = base32::encode(&raw).to_lowercase();
        out.push(Secret::new(format!("{}-{}", &text[..5], &text[5..10])));
    }
    Ok(out)
}

/// Two-factor devices, one per account.
pub mod tables {
    use crate::store::schema::TableInfo;
    use crate::store::RecordTable;

    /// `user id → TotpDevice`.
    pub const TOTP_DEVICES: RecordTable<super::TotpDevice> = RecordTable::new("totp_devices");

    /// This area's tables, for the schema registry.
    pub const TABLES: &[TableInfo] = &[TOTP_DEVICES.info()];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otpauth_uri_has_the_documented_shape() {
        let uri = otpauth_uri("a+b@example.com", "GEZDGNBV");
        assert_eq!(
            uri,
            "otpauth://totp/Gatehouse:a%2Bb%40example.com?secret=GEZDGNBV&issuer=Gatehouse\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalised() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let set: std::collections::BTreeSet<_> = codes.iter().map(|c| c.expose().clone()).collect();
        assert_eq!(set.len(), RECOVERY_CODES);
        let c = codes[0].expose();
        assert_eq!(c.len(), 11);
        assert_eq!(recovery_digest(c), recovery_digest(&c.to_uppercase().replace('-', " ")));
    }
}
