//! The compact binary body of hot records (variables, request records, roll-up buckets):
//! LEB128 varints, zig-zag for signed numbers, length-prefixed bytes and UTF-8 strings, in field
//! order. Decoding never panics: truncated or malformed input is a codec error.

use crate::store::StoreError;

/// Appends `v` as a LEB128 varint.
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        #[allow(clippy::cast_possible_truncation)] // the low 7 bits, by construction
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)] // v < 0x80
    out.push(v as u8);
}

/// Appends `v` zig-zag encoded.
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    #[allow(clippy::cast_sign_loss)] // zig-zag: a bit pattern, not a value
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends a length-prefixed string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// Appends length-prefixed bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over a body being decoded.
pub struct Reader<'a> {
    bytes: &'a [u8],
    table: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], table: &'static str) -> Self {
        Self { bytes, table }
    }

    pub fn error(&self, message: &str) -> StoreError {
        StoreError::codec(self.table, message)
    }

    pub fn u8(&mut self) -> Result<u8, StoreError> {
        let (&b, rest) = self.bytes.split_first().ok_or_else(|| self.error("truncated record"))?;
        self.bytes = rest;
        Ok(b)
    }

    pub fn u64(&mut self) -> Result<u64, StoreError> {
        // Most fields (ids, lengths, versions) fit one byte.
        if let Some((&b, rest)) = self.bytes.split_first() {
            if b < 0x80 {
                self.bytes = rest;
                return Ok(u64::from(b));
            }
        }
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.error("varint too long"))
    }

    pub fn i64(&mut self) -> Result<i64, StoreError> {
        let z = self.u64()?;
        #[allow(clippy::cast_possible_wrap)] // zig-zag: a bit pattern, not a value
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let len = usize::try_from(self.u64()?).map_err(|_| self.error("field too long"))?;
        if len > self.bytes.len() {
            return Err(self.error("truncated field"));
        }
        let (b, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(b)
    }

    pub fn str(&mut self) -> Result<&'a str, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.error("string is not UTF-8"))
    }

    pub fn string(&mut self) -> Result<String, StoreError> {
        self.str().map(str::to_string)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), StoreError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.error("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_strings_round_trip() {
        let mut out = Vec::new();
        let nums = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        for n in nums {
            put_u64(&mut out, n);
        }
        let signed = [0, -1, 1, i64::MIN, i64::MAX, -1_700_000_000];
        for n in signed {
            put_i64(&mut out, n);
        }
        put_str(&mut out, "");
        put_str(&mut out, "héllo");
        put_bytes(&mut out, &[0, 255]);
        let mut r = Reader::new(&out, "t");
        for n in nums {
            assert_eq!(r.u64().unwrap(), n);
        }
        for n in signed {
            assert_eq!(r.i64().unwrap(), n);
        }
        assert_eq!(r.str().unwrap(), "");
        assert_eq!(r.str().unwrap(), "héllo");
        assert_eq!(r.bytes().unwrap(), &[0, 255]);
        r.finish().unwrap();
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(Reader::new(&[], "t").u64().is_err());
        assert!(Reader::new(&[0x80], "t").u64().is_err());
        assert!(Reader::new(&[0xff; 11], "t").u64().is_err());
        assert!(Reader::new(&[5, b'a'], "t").str().is_err());
        assert!(Reader::new(&[2, 0xff, 0xfe], "t").str().is_err());
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], "t")
            .str()
            .is_err());
        assert!(Reader::new(&[1], "t").finish().is_err());
    }
}
