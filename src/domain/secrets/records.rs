//! The persisted shapes of the secrets area: projects, environments, variables (with the
//! current sealed value), superseded versions, deleted-variable markers and organization data
//! keys. Variables, read by the hundred per list request, have a compact binary body (record
//! version 2; version 1 was JSON and still reads); the others are JSON, with sealed bytes as
//! base64 text.

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::store::binary::{self, put_bytes, put_i64, put_str, put_u64};
use crate::store::{Record, StoreError};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Sealed bytes (nonce ‖ ciphertext ‖ tag); base64 text in JSON bodies.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sealed(pub Vec<u8>);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        B64.decode(text.as_bytes()).map(Sealed).map_err(serde::de::Error::custom)
    }
}

/// A project of an organization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Project {
    pub id: u64,
    pub organization_id: u64,
    /// Stripped; unique (case-insensitively) within the organization.
    pub name: String,
    pub description: Option<String>,
    pub created_by: u64,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for Project {
    const VERSION: u8 = 1;
    const NAME: &'static str = "projects";
}

/// An environment of a project. `organization_id` is copied from the project so that every
/// permission check needs one read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    pub id: u64,
    pub organization_id: u64,
    pub project_id: u64,
    /// Lower-cased (as KeyNest stores it); unique within the project.
    pub name: String,
    /// `development`, `staging`, `production` or `testing`.
    pub environment_type: String,
    pub description: Option<String>,
    pub created_by: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for Environment {
    const VERSION: u8 = 1;
    const NAME: &'static str = "environments";
}

/// A variable and its current value, sealed under the organization's data key with the
/// associated data of (organization, environment, variable id, `version`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Variable {
    pub id: u64,
    pub organization_id: u64,
    pub project_id: u64,
    pub environment_id: u64,
    pub key: String,
    pub sealed: Sealed,
    /// Version of the current value; starts at 1, +1 on every value change or rollback.
    pub version: u32,
    pub created_by: u64,
    pub created_at: i64,
    /// Who wrote the current value, and when.
    pub updated_by: u64,
    pub updated_at: i64,
    /// Set when the variable is deleted; its record and history stay for the retention period.
    #[serde(default)]
    pub deleted_at: Option<i64>,
    #[serde(default)]
    pub deleted_by: Option<u64>,
}

impl Record for Variable {
    const VERSION: u8 = 2;
    const NAME: &'static str = "variables";

    // Version 1: the same fields as JSON.
    const JSON_UNTIL: u8 = 1;

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        out.push(u8::from(self.deleted_at.is_some()) | (u8::from(self.deleted_by.is_some()) << 1));
        for n in [self.id, self.organization_id, self.project_id, self.environment_id] {
            put_u64(out, n);
        }
        put_str(out, &self.key);
        put_bytes(out, &self.sealed.0);
        put_u64(out, u64::from(self.version));
        put_u64(out, self.created_by);
        put_i64(out, self.created_at);
        put_u64(out, self.updated_by);
        put_i64(out, self.updated_at);
        if let Some(at) = self.deleted_at {
            put_i64(out, at);
        }
        if let Some(by) = self.deleted_by {
            put_u64(out, by);
        }
        Ok(())
    }

    fn read_body(body: &[u8]) -> Result<Self, StoreError> {
        VariableRef::parse(body).map(|v| v.to_owned())
    }
}

/// A variable read in place from its stored bytes (record version 2): list pages use it to
/// read a hundred rows without allocating a record, a key and a ciphertext for each.
#[derive(Debug, Clone, Copy)]
pub struct VariableRef<'a> {
    pub id: u64,
    pub organization_id: u64,
    pub project_id: u64,
    pub environment_id: u64,
    pub key: &'a str,
    pub sealed: &'a [u8],
    pub version: u32,
    pub created_by: u64,
    pub created_at: i64,
    pub updated_by: u64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub deleted_by: Option<u64>,
}

impl<'a> VariableRef<'a> {
    /// Reads a version-2 body (after the version byte).
    pub fn parse(body: &'a [u8]) -> Result<Self, StoreError> {
        let mut r = binary::Reader::new(body, Variable::NAME);
        let flags = r.u8()?;
        if flags > 3 {
            return Err(r.error("bad flags"));
        }
        let v = VariableRef {
            id: r.u64()?,
            organization_id: r.u64()?,
            project_id: r.u64()?,
            environment_id: r.u64()?,
            key: r.str()?,
            sealed: r.bytes()?,
            version: u32::try_from(r.u64()?).map_err(|_| r.error("bad version"))?,
            created_by: r.u64()?,
            created_at: r.i64()?,
            updated_by: r.u64()?,
            updated_at: r.i64()?,
            deleted_at: if flags & 1 != 0 { Some(r.i64()?) } else { None },
            deleted_by: if flags & 2 != 0 { Some(r.u64()?) } else { None },
        };
        r.finish()?;
        Ok(v)
    }

    /// Calls `f` with the variable in `stored` (version byte included), reading the current
    /// version in place and older ones through [`Variable`]'s upgrade.
    pub fn with<R>(stored: &[u8], f: impl FnOnce(VariableRef<'_>) -> R) -> Result<R, StoreError> {
        match stored.split_first() {
            Some((&Variable::VERSION, body)) => Ok(f(VariableRef::parse(body)?)),
            _ => {
                let owned: Variable = crate::store::decode(stored)?;
                Ok(f(owned.as_ref()))
            }
        }
    }

    pub fn to_owned(self) -> Variable {
        Variable {
            id: self.id,
            organization_id: self.organization_id,
            project_id: self.project_id,
            environment_id: self.environment_id,
            key: self.key.to_string(),
            sealed: Sealed(self.sealed.to_vec()),
            version: self.version,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_by: self.updated_by,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
            deleted_by: self.deleted_by,
        }
    }
}

impl Variable {
    /// The same variable, borrowed.
    pub fn as_ref(&self) -> VariableRef<'_> {
        VariableRef {
            id: self.id,
            organization_id: self.organization_id,
            project_id: self.project_id,
            environment_id: self.environment_id,
            key: &self.key,
            sealed: &self.sealed.0,
            version: self.version,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_by: self.updated_by,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
            deleted_by: self.deleted_by,
        }
    }
}

/// A superseded value of a variable. Its sealed bytes are moved unchanged from the variable
/// record, so they open with the same associated data they were written with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VariableVersion {
    pub id: u64,
    pub variable_id: u64,
    pub version: u32,
    /// The key the variable had while this value was current.
    pub key: String,
    pub sealed: Sealed,
    /// Who wrote this value, and when.
    pub created_by: u64,
    pub created_at: i64,
}

impl Record for VariableVersion {
    const VERSION: u8 = 1;
    const NAME: &'static str = "variable_versions";
}

/// An organization's data key, sealed by the master key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgDataKey {
    pub organization_id: u64,
    /// Base64 of the master-key-sealed 32-byte key (the current one: it seals new values).
    pub sealed: String,
    /// When the current key was made.
    pub created_at: i64,
    /// 1 for the first key, +1 per data-key rotation (records written before rotation
    /// existed read as 1).
    #[serde(default = "first_generation")]
    pub generation: u32,
    /// While a rotation is under way: the key it replaces (sealed like `sealed`), which still
    /// opens the values not re-sealed yet. Cleared once every value is re-sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

fn first_generation() -> u32 {
    1
}

impl Record for OrgDataKey {
    const VERSION: u8 = 1;
    const NAME: &'static str = "org_data_keys";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{decode, encode};

    fn sample() -> Variable {
        Variable {
            id: 7,
            organization_id: 1,
            project_id: 2,
            environment_id: 3,
            key: "DATABASE_URL".into(),
            sealed: Sealed(vec![0, 1, 2, 250, 255]),
            version: 4,
            created_by: 9,
            created_at: 1_700_000_000,
            updated_by: 10,
            updated_at: 1_700_000_100,
            deleted_at: Some(1_700_000_200),
            deleted_by: None,
        }
    }

    #[test]
    fn variable_binary_body_round_trips_and_rejects_damage() {
        let v = sample();
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(decode::<Variable>(&bytes).unwrap(), v);
        for cut in 1..bytes.len() {
            assert!(decode::<Variable>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(decode::<Variable>(&longer).is_err());
    }

    #[test]
    fn version_one_json_variables_still_read() {
        // Exactly what the previous binary wrote: version byte 1, JSON, base64 sealed bytes.
        let v1 = br#"{"id":7,"organization_id":1,"project_id":2,"environment_id":3,"key":"DATABASE_URL","sealed":"AAEC+v8=","version":4,"created_by":9,"created_at":1700000000,"updated_by":10,"updated_at":1700000100,"deleted_at":1700000200,"deleted_by":null}"#;
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(v1);
        assert_eq!(decode::<Variable>(&bytes).unwrap(), sample());
        // Version 1 without the optional fields (they were added with serde defaults).
        let old = br#"{"id":7,"organization_id":1,"project_id":2,"environment_id":3,"key":"K","sealed":"","version":1,"created_by":9,"created_at":1,"updated_by":9,"updated_at":1}"#;
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(old);
        let got = decode::<Variable>(&bytes).unwrap();
        assert_eq!((got.deleted_at, got.sealed), (None, Sealed(Vec::new())));
        assert!(decode::<Variable>(&[3, 0]).is_err());
    }

    #[test]
    fn variables_read_in_place_equal_decoded_ones_in_every_version() {
        let v = sample();
        let v2 = encode(&v).unwrap();
        assert_eq!(VariableRef::with(&v2, |r| r.to_owned()).unwrap(), v);
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&serde_json::to_vec(&v).unwrap());
        assert_eq!(VariableRef::with(&v1, |r| r.to_owned()).unwrap(), v);
        assert!(VariableRef::with(&v2[..v2.len() - 1], |_| ()).is_err());
        assert!(VariableRef::with(&[], |_| ()).is_err());
    }

    #[test]
    fn sealed_is_base64_in_json_records() {
        let version = VariableVersion {
            id: 1,
            variable_id: 7,
            version: 1,
            key: "K".into(),
            sealed: Sealed(vec![0, 1, 2, 250, 255]),
            created_by: 9,
            created_at: 1,
        };
        let json = serde_json::to_string(&version).unwrap();
        assert!(json.contains(r#""sealed":"AAEC+v8=""#), "{json}");
        assert_eq!(serde_json::from_str::<VariableVersion>(&json).unwrap(), version);
        assert!(serde_json::from_str::<Sealed>(r#""not base64!""#).is_err());
    }
}
