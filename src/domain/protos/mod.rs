//! The proto-file registry (django-cfg's `/cfg/grpc/proto-files/`): one `.proto` text per
//! `app_label`, kept in redb (nothing touches the file system by a caller's name). Anyone
//! signed in may list and download; uploads, deletes and generation are staff-only and
//! audited in the same transaction.

pub mod archive;
pub mod parse;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::{Error, Principal};
use crate::store::{Reader, Record, StoreError, WriteTx, Writer as _};
pub use parse::{summarize, Summary};
use tables::{PROTO_FILES, PROTO_FILES_BY_LABEL, PROTO_SOURCES};

/// Uploads are at most this many bytes (the limit; the body limit of the server is
/// separate and larger for text uploads).
pub const MAX_PROTO_BYTES: usize = 1024 * 1024;

/// Where the list says the files are: they live in the data file, not in a directory.
pub const PROTO_DIR: &str = "redb://proto_files";

/// `generate` is a route of its own (`POST …/generate/`), so it can never name a file.
const RESERVED_LABELS: [&str; 1] = ["generate"];

/// One file's metadata as the list shows it; the text is in [`tables::PROTO_SOURCES`] under
/// the same id, so listing never reads the texts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProtoFile {
    pub id: u64,
    pub app_label: String,
    pub size_bytes: u64,
    pub package: String,
    pub messages_count: u64,
    pub services_count: u64,
    /// Epoch seconds with the fraction.
    pub created_at: f64,
    pub modified_at: f64,
    /// `true` when written by `generate` (the last write decides).
    #[serde(default)]
    pub generated: bool,
}

impl ProtoFile {
    /// `<app_label>.proto`.
    pub fn filename(&self) -> String {
        format!("{}.proto", self.app_label)
    }
}

impl Record for ProtoFile {
    const VERSION: u8 = 1;
    const NAME: &'static str = "proto_files";
}

/// A file's text, stored as its raw UTF-8 bytes after the version byte (no JSON escaping of a
/// megabyte of text).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProtoSource(pub String);

impl Record for ProtoSource {
    const VERSION: u8 = 1;
    const NAME: &'static str = "proto_sources";

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(())
    }

    fn read_body(body: &[u8]) -> Result<Self, StoreError> {
        String::from_utf8(body.to_vec()).map(Self).map_err(|e| StoreError::codec(Self::NAME, e))
    }
}

/// `^[a-z][a-z0-9_]{0,63}$`, and not a route name.
pub fn validate_label(label: &str) -> Result<(), Error> {
    let mut chars = label.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || label.len() > 64 {
        return Err(Error::invalid(
            "app_label",
            "Must match ^[a-z][a-z0-9_]{0,63}$ (a lower-case letter, then up to 63 lower-case \
             letters, digits or underscores).",
        ));
    }
    if RESERVED_LABELS.contains(&label) {
        return Err(Error::invalid("app_label", format!("\"{label}\" is reserved.")));
    }
    Ok(())
}

/// Every file, by app label.
pub fn list(tx: &impl Reader) -> Result<Vec<ProtoFile>, Error> {
    let mut files: Vec<ProtoFile> = tx
        .scan(PROTO_FILES, 0..=u64::MAX, usize::MAX, false)?
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    files.sort_by(|a, b| a.app_label.cmp(&b.app_label));
    Ok(files)
}

/// One file and its text, or 404.
pub fn get(tx: &impl Reader, label: &str) -> Result<(ProtoFile, String), Error> {
    validate_label(label)?;
    let not_found = || Error::not_found("Proto file");
    let id = tx.lookup(PROTO_FILES_BY_LABEL, label)?.ok_or_else(not_found)?;
    let file = tx.get(PROTO_FILES, id)?.ok_or_else(not_found)?;
    let text = tx.get(PROTO_SOURCES, id)?.ok_or_else(not_found)?;
    Ok((file, text.0))
}

/// A file to store: its label, text and what [`summarize`] read from it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub app_label: String,
    pub text: String,
    pub summary: Summary,
}

/// Creates or replaces a file (staff). Returns it and whether it was created.
pub fn put(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    upload: &Upload,
) -> Result<(ProtoFile, bool), Error> {
    p.require_staff()?;
    validate_label(&upload.app_label)?;
    let (file, created) = write_file(tx, upload, false)?;
    let action = if created { "proto_file_created" } else { "proto_file_updated" };
    audit_file(tx, actor, action, &file)?;
    Ok((file, created))
}

/// Deletes a file (staff), or 404.
pub fn delete(tx: &WriteTx, p: &Principal, actor: &Actor, label: &str) -> Result<(), Error> {
    p.require_staff()?;
    let (file, _) = get(tx, label)?;
    tx.remove(PROTO_FILES, file.id)?;
    tx.remove(PROTO_SOURCES, file.id)?;
    tx.release(PROTO_FILES_BY_LABEL, &file.app_label)?;
    audit_file(tx, actor, "proto_file_deleted", &file)
}

/// Stores generated files (staff): a file whose stored text is already the same is left as it
/// is unless `force`. Returns the labels written, in the order given; one audit record names
/// them.
pub fn store_generated(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    files: &[Upload],
    force: bool,
) -> Result<Vec<String>, Error> {
    p.require_staff()?;
    let mut written = Vec::new();
    for upload in files {
        validate_label(&upload.app_label)?;
        if !force && current_text(tx, &upload.app_label)?.as_deref() == Some(upload.text.as_str()) {
            continue;
        }
        write_file(tx, upload, true)?;
        written.push(upload.app_label.clone());
    }
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: None,
            action: "proto_files_generated",
            target_type: "proto_file",
            target_id: String::new(),
            details: json!({"generated": written, "force": force,
                "requested": files.iter().map(|f| &f.app_label).collect::<Vec<_>>()}),
        },
    )?;
    Ok(written)
}

fn current_text(tx: &WriteTx, label: &str) -> Result<Option<String>, Error> {
    let Some(id) = tx.lookup(PROTO_FILES_BY_LABEL, label)? else { return Ok(None) };
    Ok(tx.get(PROTO_SOURCES, id)?.map(|s| s.0))
}

/// Writes the record and text under the label's id (a new id for a new label).
fn write_file(tx: &WriteTx, upload: &Upload, generated: bool) -> Result<(ProtoFile, bool), Error> {
    let now = crate::clock::unix_now_f64();
    let existing = match tx.lookup(PROTO_FILES_BY_LABEL, &upload.app_label)? {
        Some(id) => tx.get(PROTO_FILES, id)?,
        None => None,
    };
    let created = existing.is_none();
    let (id, created_at) = match existing {
        Some(f) => (f.id, f.created_at),
        None => {
            let id = tx.next_id("proto_files")?;
            tx.set_lookup(PROTO_FILES_BY_LABEL, &upload.app_label, id)?;
            (id, now)
        }
    };
    let file = ProtoFile {
        id,
        app_label: upload.app_label.clone(),
        size_bytes: upload.text.len() as u64,
        package: upload.summary.package.clone(),
        messages_count: upload.summary.messages_count,
        services_count: upload.summary.services_count,
        created_at,
        modified_at: now,
        generated,
    };
    tx.put(PROTO_FILES, id, &file)?;
    tx.put(PROTO_SOURCES, id, &ProtoSource(upload.text.clone()))?;
    Ok((file, created))
}

fn audit_file(tx: &WriteTx, actor: &Actor, action: &str, file: &ProtoFile) -> Result<(), Error> {
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: None,
            action,
            target_type: "proto_file",
            target_id: file.app_label.clone(),
            details: json!({"app_label": file.app_label, "size_bytes": file.size_bytes,
                "package": file.package}),
        },
    )?;
    Ok(())
}

/// The registry's tables. Keys and values are described on each line.
pub mod tables {
    use crate::store::schema::TableInfo;
    use crate::store::{LookupTable, RecordTable};

    /// `file id → ProtoFile` (metadata only); ids from the sequence `proto_files`.
    pub const PROTO_FILES: RecordTable<super::ProtoFile> = RecordTable::new("proto_files");
    /// `file id → ProtoSource`: the text of the file with the same id.
    pub const PROTO_SOURCES: RecordTable<super::ProtoSource> = RecordTable::new("proto_sources");
    /// `app_label → file id`: one file per label.
    pub const PROTO_FILES_BY_LABEL: LookupTable = LookupTable::new("proto_files_by_label");

    /// This area's tables, for the schema registry (backup, check, dumps).
    pub const TABLES: &[TableInfo] =
        &[PROTO_FILES.info(), PROTO_SOURCES.info(), PROTO_FILES_BY_LABEL.info()];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "crypto", "api_keys", "x9", &"a".repeat(64)] {
            assert!(validate_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "9a", "_a", "a-b", "a.b", "../x", "é", &"a".repeat(65), "generate"] {
            assert!(validate_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_are_raw_bytes() {
        let src = ProtoSource("syntax = \"proto3\";\n// é\n".into());
        let bytes = crate::store::encode(&src).unwrap();
        assert_eq!(bytes.get(1..), Some(src.0.as_bytes()));
        assert_eq!(crate::store::decode::<ProtoSource>(&bytes).unwrap(), src);
    }
}
