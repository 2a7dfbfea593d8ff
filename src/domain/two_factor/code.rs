//! HOTP (RFC 4226) and TOTP (RFC 6238) codes: HMAC-SHA1, 6 digits, 30-second steps, one
//! step of clock drift either way.

/// Seconds per time step.
pub const PERIOD: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted before and after the current one (clock drift).
pub const DRIFT: i64 = 1;

/// The RFC 4226 code of `counter`, with `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mac = crate::crypto::hmac_sha1_for_totp(secret, &counter.to_be_bytes());
    // Dynamic truncation (RFC 4226 §5.3): the low nibble of the last byte picks 4 bytes;
    // offset ≤ 15, so they always lie within the 20-byte MAC.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    if let Some(bytes) = mac.get(offset..offset + 4) {
        word.copy_from_slice(bytes);
    }
    let binary = u32::from_be_bytes(word) & 0x7fff_ffff;
    binary % 10u32.pow(digits)
}

/// The time step of a Unix time (0 before the epoch).
pub fn step_at(unix: i64) -> u64 {
    u64::try_from(unix.div_euclid(PERIOD)).unwrap_or(0)
}

/// The code of step `step`, as the six digits an app shows.
pub fn code_at_step(secret: &[u8], step: u64) -> String {
    format!("{:0width$}", hotp(secret, step, DIGITS), width = DIGITS as usize)
}

/// The step, within the drift around `now`, whose code is `code` — only steps after
/// `after` (the last step accepted), so a code is never accepted twice. Compares every
/// candidate in constant time.
pub fn matching_step(secret: &[u8], code: &str, now: i64, after: Option<u64>) -> Option<u64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now);
    let mut found = None;
    for delta in -DRIFT..=DRIFT {
        let Some(step) = current.checked_add_signed(delta) else { continue };
        let candidate = code_at_step(secret, step);
        if crate::crypto::ct_eq(candidate.as_bytes(), code.as_bytes())
            && after.is_none_or(|last| step > last)
            && found.is_none()
        {
            found = Some(step);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238 appendix B, SHA-1: (time, 8-digit code).
    const VECTORS: &[(i64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_vectors_eight_and_six_digits() {
        for (time, code) in VECTORS {
            let step = step_at(*time);
            assert_eq!(format!("{:08}", hotp(SECRET, step, 8)), *code, "t={time}");
            assert_eq!(code_at_step(SECRET, step), code[2..], "t={time}");
        }
        assert_eq!(code_at_step(SECRET, step_at(59)), "287082");
        assert_eq!(code_at_step(SECRET, step_at(1_111_111_109)), "081804");
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [755_224, 287_082, 359_152, 969_429, 338_314];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(SECRET, counter as u64, 6), *code);
        }
    }

    #[test]
    fn accepts_one_step_of_drift_only() {
        let now = 1_111_111_109;
        let step = step_at(now);
        for delta in [-1i64, 0, 1] {
            let s = step.checked_add_signed(delta).unwrap();
            assert_eq!(matching_step(SECRET, &code_at_step(SECRET, s), now, None), Some(s));
        }
        for delta in [-2i64, 2] {
            let s = step.checked_add_signed(delta).unwrap();
            assert_eq!(matching_step(SECRET, &code_at_step(SECRET, s), now, None), None);
        }
    }

    #[test]
    fn a_code_is_never_accepted_twice() {
        let now = 1_234_567_890;
        let code = code_at_step(SECRET, step_at(now));
        let step = matching_step(SECRET, &code, now, None).unwrap();
        assert_eq!(matching_step(SECRET, &code, now, Some(step)), None);
        assert_eq!(matching_step(SECRET, &code, now + 29, Some(step)), None);
        // An older code after a newer one was used is refused too.
        let previous = code_at_step(SECRET, step - 1);
        assert_eq!(matching_step(SECRET, &previous, now, Some(step)), None);
    }

    #[test]
    fn malformed_codes_never_match() {
        for code in ["", "12345", "1234567", "abcdef", "28708 ", "２８７０８２"] {
            assert_eq!(matching_step(SECRET, code, 59, None), None, "{code:?}");
        }
    }
}
