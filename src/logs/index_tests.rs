//! The index is rebuilt when its schema is not this binary's: an index written with the
//! previous schema (version 1: `created` indexed, norms, positions in `text`) whose watermark
//! claims every record is indexed must be thrown away and rebuilt from redb.

use std::path::Path;

use tantivy::schema::{Schema, FAST, INDEXED, STRING, TEXT};
use tantivy::{doc, Index};

use super::{LogIndex, Watermark, SCHEMA_VERSION};

/// The schema of version 1, as the previous release built it.
fn schema_v1() -> Schema {
    let mut b = Schema::builder();
    b.add_u64_field("kind", INDEXED);
    b.add_u64_field("order", FAST);
    b.add_i64_field("created", INDEXED | FAST);
    for name in ["service", "method", "status"] {
        b.add_text_field(name, STRING);
    }
    b.add_u64_field("user", INDEXED);
    b.add_u64_field("api_key", INDEXED);
    b.add_text_field("action", STRING);
    b.add_text_field("target_type", STRING);
    b.add_u64_field("org", INDEXED);
    b.add_text_field("text", TEXT);
    b.build()
}

/// Writes an index with `schema` holding one request document, committed with `payload`.
pub(crate) fn write_index(dir: &Path, schema: Schema, payload: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let kind = schema.get_field("kind").unwrap();
    let order = schema.get_field("order").unwrap();
    let index = Index::create_in_dir(dir, schema).unwrap();
    let mut w: tantivy::IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
    w.add_document(doc!(kind => 0u64, order => 1u64)).unwrap();
    let mut prepared = w.prepare_commit().unwrap();
    prepared.set_payload(payload);
    prepared.commit().unwrap();
}

/// An index written with the previous schema (the payload claiming all is indexed).
pub(crate) fn write_v1_index(dir: &Path, request_seq: u64) {
    let payload = format!(r#"{{"schema":1,"request_seq":{request_seq},"audit_seq":0}}"#);
    write_index(dir, schema_v1(), &payload);
}

#[test]
fn an_index_of_the_previous_schema_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    write_v1_index(&path, 42);
    let (index, wm) = LogIndex::open(&path).unwrap();
    assert_eq!(wm, Watermark { schema: SCHEMA_VERSION, request_seq: 0, audit_seq: 0 });
    assert_eq!(index.reader.searcher().num_docs(), 0);
    assert_eq!(index.index.schema(), super::schema().0);
}

#[test]
fn a_watermark_of_another_schema_version_is_rebuilt_and_a_current_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    write_index(&path, super::schema().0, r#"{"schema":1,"request_seq":9,"audit_seq":2}"#);
    let (_, wm) = LogIndex::open(&path).unwrap();
    assert_eq!((wm.request_seq, wm.audit_seq), (0, 0));

    std::fs::remove_dir_all(&path).unwrap();
    let current = format!(r#"{{"schema":{SCHEMA_VERSION},"request_seq":9,"audit_seq":2}}"#);
    write_index(&path, super::schema().0, &current);
    let (index, wm) = LogIndex::open(&path).unwrap();
    assert_eq!((wm.schema, wm.request_seq, wm.audit_seq), (SCHEMA_VERSION, 9, 2));
    assert_eq!(index.reader.searcher().num_docs(), 1);
}
