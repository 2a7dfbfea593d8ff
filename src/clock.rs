//! Wall-clock time and its RFC 3339 text: the one place that reads the clock and formats
//! timestamps (every API object carries two, so the list paths format them by hand).

/// Current time as RFC 3339 UTC with whole seconds (`2025-08-30T10:30:00Z`).
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

pub fn format_rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&fmt).unwrap_or_default()
}

/// Epoch seconds as `20261201T013000Z`: RFC 3339's basic form, for file names (no colons,
/// sorts by time).
pub fn compact_utc(secs: i64) -> String {
    rfc3339_from_unix(secs).chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Milliseconds since the Unix epoch (execution times of API deployments).
pub fn unix_now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// Seconds since the Unix epoch with the fraction (proto files show times as django-cfg's
/// `os.stat` floats).
pub fn unix_now_f64() -> f64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    // f64 keeps microseconds for the next few centuries; the seconds are exact.
    nanos as f64 / 1e9
}

/// Formats epoch seconds as RFC 3339 UTC (`2025-08-30T10:30:00Z`).
///
/// Every listed object carries two timestamps, and `time`'s general formatter cost ~2 000
/// instructions each (6 % of a 100-variable list in a profile), so years 0–9999 take this
/// direct civil-calendar conversion; anything else falls back to `time`.
pub fn rfc3339_from_unix(secs: i64) -> String {
    match rfc3339_digits(secs) {
        Some(buf) => std::str::from_utf8(&buf).map(str::to_owned).unwrap_or_default(),
        None => {
            time::OffsetDateTime::from_unix_timestamp(secs).map(format_rfc3339).unwrap_or_default()
        }
    }
}

/// The 20 ASCII bytes of [`rfc3339_from_unix`] for years 0–9999 (`None` outside), written
/// digit by digit: list responses carry two per object, and serialisers can copy them
/// without allocating.
pub fn rfc3339_digits(secs: i64) -> Option<[u8; 20]> {
    const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(MIN..=MAX).contains(&secs) {
        return None;
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for slot in out.iter_mut().skip(at).take(width).rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, rem / 3600, 2);
    put(14, (rem % 3600) / 60, 2);
    put(17, rem % 60, 2);
    Some(out)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod time_tests {
    use super::*;

    fn reference(secs: i64) -> String {
        time::OffsetDateTime::from_unix_timestamp(secs).map(format_rfc3339).unwrap()
    }

    #[test]
    fn fast_rfc3339_matches_the_time_crate() {
        for secs in [0, 1, 59, 60, 86_399, 86_400, 951_782_400, 951_868_800, 1_756_549_800] {
            assert_eq!(rfc3339_from_unix(secs), reference(secs), "{secs}");
        }
        // Every day boundary ±1 s from 1900 to 2200 (leap years, centuries, 2000) and a
        // stride through the whole supported range.
        let mut secs = -2_208_988_800;
        while secs < 7_258_118_400 {
            for s in [secs - 1, secs, secs + 43_261] {
                assert_eq!(rfc3339_from_unix(s), reference(s), "{s}");
            }
            secs += 86_400;
        }
        let mut secs = -62_167_219_200;
        while secs <= 253_402_300_799 {
            assert_eq!(rfc3339_from_unix(secs), reference(secs), "{secs}");
            secs += 9_876_543;
        }
        assert_eq!(rfc3339_from_unix(-62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}
