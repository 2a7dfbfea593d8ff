//! Versioned records: one version byte, then a body — JSON unless the record brings its own
//! compact body (hot records read by the hundred per request, see [`super::binary`]). Old
//! versions stay decodable for ever through [`Record::upgrade`]; new JSON fields use
//! `#[serde(default)]` so most changes need no new version at all.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// A persisted value.
pub trait Record: Serialize + DeserializeOwned {
    /// The format version written by this binary.
    const VERSION: u8;
    /// Table name for error messages.
    const NAME: &'static str;

    /// Versions up to this one were JSON bodies of the same fields (records that later moved to
    /// a binary body); the default upgrade reads them. 0: no such versions.
    const JSON_UNTIL: u8 = 0;

    /// Decodes a body written with an older `version`: by default JSON up to
    /// [`Record::JSON_UNTIL`], nothing else.
    fn upgrade(version: u8, body: &[u8]) -> Result<Self, StoreError> {
        if version <= Self::JSON_UNTIL {
            return json_body(Self::NAME, body);
        }
        Err(StoreError::codec(Self::NAME, format!("unknown record version {version}")))
    }

    /// Writes the body of the current version (JSON unless overridden).
    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        serde_json::to_writer(out, self).map_err(|e| StoreError::codec(Self::NAME, e))
    }

    /// Reads a body written by [`Record::write_body`] of the current version.
    fn read_body(body: &[u8]) -> Result<Self, StoreError> {
        json_body(Self::NAME, body)
    }
}

fn json_body<T: DeserializeOwned>(table: &str, body: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(body).map_err(|e| StoreError::codec(table, e))
}

pub fn encode<T: Record>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(128);
    out.push(T::VERSION);
    value.write_body(&mut out)?;
    Ok(out)
}

pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, StoreError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(StoreError::codec(T::NAME, "empty record"));
    };
    if version == T::VERSION {
        return T::read_body(body);
    }
    T::upgrade(version, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        name: String,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        name: String,
        tags: Vec<String>,
    }
    impl Record for V1 {
        const VERSION: u8 = 1;
        const NAME: &'static str = "thing";
    }
    impl Record for V2 {
        const VERSION: u8 = 2;
        const NAME: &'static str = "thing";
        fn upgrade(version: u8, body: &[u8]) -> Result<Self, StoreError> {
            match version {
                1 => {
                    let old: V1 =
                        serde_json::from_slice(body).map_err(|e| StoreError::codec("thing", e))?;
                    Ok(V2 { name: old.name, tags: Vec::new() })
                }
                v => Err(StoreError::codec("thing", format!("unknown version {v}"))),
            }
        }
    }

    #[test]
    fn round_trip_and_upgrade() {
        let bytes = encode(&V1 { name: "a".into() }).unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(decode::<V1>(&bytes).unwrap(), V1 { name: "a".into() });
        assert_eq!(decode::<V2>(&bytes).unwrap(), V2 { name: "a".into(), tags: vec![] });
        assert!(decode::<V1>(&[]).is_err());
        assert!(decode::<V1>(&[9, b'{']).is_err());
        assert!(decode::<V1>(&[1, b'{']).is_err());
    }
}
