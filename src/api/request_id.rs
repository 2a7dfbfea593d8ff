//! Request ids: random version-4 UUIDs from a per-thread generator seeded once from the
//! system's random source. They label log lines and responses and need to be unique, not
//! secret, so a system call per request (what `Uuid::new_v4` costs) buys nothing.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if crate::crypto::fill_random(&mut bytes).is_err() {
        // No system randomness: time and thread identity still give distinct sequences
        // (nothing secret depends on request ids).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let digest =
            crate::crypto::sha256(format!("{nanos}/{:?}", std::thread::current().id()).as_bytes());
        bytes.copy_from_slice(&digest[..8]);
    }
    u64::from_le_bytes(bytes)
}

/// SplitMix64: a full-period 64-bit generator with well-mixed output.
fn next() -> u64 {
    STATE.with(|s| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A new request id: a random (version 4, RFC 4122 variant) UUID in its usual text form.
pub fn new_request_id() -> String {
    let bits = (u128::from(next()) << 64) | u128::from(next());
    uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v4_uuids_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = new_request_id();
            let parsed = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            assert!(seen.insert(id));
        }
        // Another thread has its own sequence.
        let other = std::thread::spawn(new_request_id).join().unwrap();
        assert!(!seen.contains(&other));
    }
}
