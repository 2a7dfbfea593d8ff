//! A compact binary body for hot records: fixed little-endian integers and length-prefixed
//! byte strings, in field order. Decoding checks every length against the input, so a damaged
//! record is a codec error, never a panic or an over-read.

use super::StoreError;

/// Appends fields to a record body.
pub struct BodyWriter<'a>(pub &'a mut Vec<u8>);

impl BodyWriter<'_> {
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Bytes with a u32 length prefix. Record fields are bounded far below 4 GiB (values by
    /// 64 KiB); a longer one is refused rather than cut.
    pub fn bytes(&mut self, v: &[u8]) -> Result<&mut Self, StoreError> {
        let len = u32::try_from(v.len())
            .map_err(|_| StoreError::Other("record field longer than 4 GiB".into()))?;
        self.u32(len);
        self.0.extend_from_slice(v);
        Ok(self)
    }

    pub fn opt_i64(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(x) => {
                self.0.push(1);
                self.i64(x)
            }
            None => {
                self.0.push(0);
                self
            }
        }
    }

    pub fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            Some(x) => {
                self.0.push(1);
                self.u64(x)
            }
            None => {
                self.0.push(0);
                self
            }
        }
    }
}

/// Reads fields back in the order they were written.
pub struct BodyReader<'a> {
    rest: &'a [u8],
    table: &'static str,
}

impl<'a> BodyReader<'a> {
    pub fn new(body: &'a [u8], table: &'static str) -> Self {
        Self { rest: body, table }
    }

    fn err(&self, what: &str) -> StoreError {
        StoreError::Codec { table: self.table.to_string(), message: what.to_string() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(self.err("record body is truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u64(&mut self) -> Result<u64, StoreError> {
        self.array().map(u64::from_le_bytes)
    }

    pub fn i64(&mut self) -> Result<i64, StoreError> {
        self.array().map(i64::from_le_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, StoreError> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let len = usize::try_from(self.u32()?).map_err(|_| self.err("bad field length"))?;
        self.take(len)
    }

    pub fn string(&mut self) -> Result<String, StoreError> {
        let raw = self.bytes()?;
        std::str::from_utf8(raw).map(str::to_string).map_err(|_| self.err("text is not UTF-8"))
    }

    fn flag(&mut self) -> Result<bool, StoreError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.err("bad option flag")),
        }
    }

    pub fn opt_i64(&mut self) -> Result<Option<i64>, StoreError> {
        if self.flag()? {
            self.i64().map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn opt_u64(&mut self) -> Result<Option<u64>, StoreError> {
        if self.flag()? {
            self.u64().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails if bytes are left over (a body of another shape).
    pub fn finish(&self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.err("record body has trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut buf = Vec::new();
        BodyWriter(&mut buf).u64(7).i64(-3).u32(9).opt_i64(None).opt_u64(Some(5));
        BodyWriter(&mut buf).bytes("héllo".as_bytes()).unwrap();
        let mut r = BodyReader::new(&buf, "t");
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.i64().unwrap(), -3);
        assert_eq!(r.u32().unwrap(), 9);
        assert_eq!(r.opt_i64().unwrap(), None);
        assert_eq!(r.opt_u64().unwrap(), Some(5));
        assert_eq!(r.string().unwrap(), "héllo");
        r.finish().unwrap();

        // Every truncation is an error, never a panic.
        for cut in 0..buf.len() {
            let mut r = BodyReader::new(&buf[..cut], "t");
            let all = (|| {
                r.u64()?;
                r.i64()?;
                r.u32()?;
                r.opt_i64()?;
                r.opt_u64()?;
                r.string()?;
                r.finish()
            })();
            assert!(all.is_err(), "cut at {cut}");
        }
        // A huge length prefix does not over-read.
        let mut r = BodyReader::new(&[0xff, 0xff, 0xff, 0xff, 1], "t");
        assert!(r.bytes().is_err());
        let mut r = BodyReader::new(&[2], "t");
        assert!(r.opt_u64().is_err());
    }
}
