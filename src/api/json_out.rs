//! JSON written by hand into a byte buffer, for the hot list pages: exactly the bytes
//! `serde_json` writes for the same values (the tests hold them equal), without its per-call
//! machinery. Strings are checked for characters that need escaping eight bytes at a time.

/// Appends `s` as a JSON string, escaped as `serde_json` escapes it: `"`, `\` and control
/// characters; everything else (including non-ASCII) as is.
// Every index is below `bytes.len()` by the loop conditions, and `clean_from <= i` holds
// throughout; this is the list pages' inner loop, so it stays plain indexing.
#[allow(clippy::indexing_slicing)]
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut clean_from = 0;
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        if needs_escape(u64::from_le_bytes(word)) {
            for i in at..at + 8 {
                if let Some(esc) = escape(bytes[i]) {
                    out.extend_from_slice(&bytes[clean_from..i]);
                    push_escape(out, bytes[i], esc);
                    clean_from = i + 1;
                }
            }
        }
        at += 8;
    }
    for (i, &b) in bytes.iter().enumerate().skip(at) {
        if let Some(esc) = escape(b) {
            out.extend_from_slice(&bytes[clean_from..i]);
            push_escape(out, b, esc);
            clean_from = i + 1;
        }
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

/// Appends an optional string (`null` for `None`).
pub fn push_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

const LANES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes is below 0x20, a quote or a backslash (the classic
/// "has a zero byte" and "has a byte less than n" word tricks; exact, no false negatives).
fn needs_escape(word: u64) -> bool {
    let control = word.wrapping_sub(LANES * 0x20) & !word;
    let q = word ^ (LANES * u64::from(b'"'));
    let quote = q.wrapping_sub(LANES) & !q;
    let b = word ^ (LANES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LANES) & !b;
    (control | quote | backslash) & HIGH_BITS != 0
}

/// `serde_json`'s escape for a byte: the short form's letter, `u` for `\u00XX`, or none.
fn escape(b: u8) -> Option<u8> {
    match b {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        0x08 => Some(b'b'),
        0x0c => Some(b'f'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        0..=0x1f => Some(b'u'),
        _ => None,
    }
}

// `b >> 4` and `b & 0xf` are below 16, the length of `HEX`.
#[allow(clippy::indexing_slicing)]
fn push_escape(out: &mut Vec<u8>, b: u8, esc: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'\\');
    out.push(esc);
    if esc == b'u' {
        out.extend_from_slice(b"00");
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let mut corpus: Vec<String> = [
            "",
            "plain",
            "exactly8",
            "sixteen bytes ok",
            "\"",
            "\\",
            "a\"b\\c",
            "tab\there",
            "line1\nline2\r\n",
            "\u{7f} del stays",
            "unicode é ü 漢字 \u{1F600} \u{2028}",
            "quote at the end of a word\"",
            "       \"",
            "ends with backslash \\",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every control character, alone and at every offset of a word.
        for c in 0u8..0x20 {
            let ch = char::from(c);
            corpus.push(ch.to_string());
            for pad in 0..17 {
                corpus.push(format!("{}{ch}{}", "x".repeat(pad), "y".repeat(17 - pad)));
            }
        }
        // Bytes just around the escaped ones must not be escaped.
        for c in [0x1fu8, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f] {
            corpus.push(char::from(c).to_string().repeat(9));
        }
        for s in &corpus {
            let mut out = Vec::new();
            push_str(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        let mut out = Vec::new();
        push_opt_str(&mut out, None);
        push_opt_str(&mut out, Some("x"));
        assert_eq!(out, b"null\"x\"");
    }

    #[test]
    fn the_word_check_finds_every_escaped_byte_in_every_lane() {
        for lane in 0..8 {
            for b in 0u8..=255 {
                let mut word = [b'a'; 8];
                word[lane] = b;
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    escape(b).is_some(),
                    "byte {b:#x} in lane {lane}"
                );
            }
        }
    }
}
