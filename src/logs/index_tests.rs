//! The index is rebuilt when its schema is not this binary's: an index written with an older
//! schema (version 1: `created` indexed, norms, positions in `text`; version 2: no full `id`)
//! whose watermark claims every record is indexed must be thrown away and rebuilt from redb.
//! Also: full 64-bit ids (L12) and bounded deep pages (H1) at the index itself.

use std::path::Path;

use tantivy::schema::{Schema, FAST, INDEXED, STRING, TEXT};
use tantivy::{doc, Index};

use super::{
    AuditFilter, AuditScope, IndexError, LogIndex, Pending, RequestFilter, RequestLog, Watermark,
    MAX_WINDOW, SCHEMA_VERSION,
};

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

/// The schema of version 2 (this one without the `id` field), as the previous release built it.
fn schema_v2() -> Schema {
    let (current, _) = super::schema();
    let mut b = Schema::builder();
    for (_, entry) in current.fields() {
        if entry.name() != "id" {
            b.add_field(entry.clone());
        }
    }
    b.build()
}

/// An index written with schema 2 whose payload claims every record is indexed.
pub(crate) fn write_v2_index(dir: &Path, request_seq: u64, audit_seq: u64) {
    let payload = format!(r#"{{"schema":2,"request_seq":{request_seq},"audit_seq":{audit_seq}}}"#);
    write_index(dir, schema_v2(), &payload);
}

#[test]
fn an_index_of_schema_2_without_full_ids_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    write_v2_index(&path, 42, 7);
    let (index, wm) = LogIndex::open(&path).unwrap();
    assert_eq!(wm, Watermark { schema: SCHEMA_VERSION, request_seq: 0, audit_seq: 0 });
    assert_eq!(index.reader.searcher().num_docs(), 0);
    assert!(index.index.schema().get_field("id").is_ok());
}

/// An index in `dir` holding `audits` (committed) and `requests` (committed, own ids).
fn index_with(
    dir: &Path,
    audits: &[crate::domain::audit::AuditRecord],
    requests: &[(u64, RequestLog)],
) -> LogIndex {
    let (index, _) = LogIndex::open(dir).unwrap();
    let mut w = index.writer(15_000_000).unwrap();
    for a in audits {
        w.add_document(index.audit_doc(a)).unwrap();
    }
    for (id, r) in requests {
        w.add_document(index.request_doc_as(r, *id)).unwrap();
    }
    w.commit().unwrap();
    index.reload().unwrap();
    index
}

fn audit(id: u64, at: i64) -> crate::domain::audit::AuditRecord {
    crate::domain::audit::AuditRecord {
        id,
        user_id: Some(1),
        user_name: "u".into(),
        user_email: "u@x".into(),
        organization_id: None,
        action: "a".into(),
        target_type: "t".into(),
        target_id: "1".into(),
        details: serde_json::json!({}),
        ip_address: None,
        timestamp: at,
    }
}

fn request(at: i64) -> RequestLog {
    RequestLog {
        service_name: "s".into(),
        method_name: "m".into(),
        status: "success".into(),
        created_at: at,
        ..RequestLog::default()
    }
}

fn every_audit() -> AuditFilter {
    AuditFilter {
        scope: AuditScope::All,
        user: None,
        action: None,
        target_type: None,
        from: None,
        to: None,
        search: None,
    }
}

/// L12: ids past 2^32 come back whole (the `order` key keeps only their low half), for
/// committed documents and for pending records alike.
#[test]
fn record_ids_past_two_to_the_32_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let big = 1u64 << 32;
    let audits = [audit(5, 1000), audit(big + 5, 1001), audit(u64::MAX - 1, 1002)];
    let requests = [(7, request(2000)), (big + 7, request(2001)), (3 * big + 9, request(2002))];
    let index = index_with(&dir.path().join("index"), &audits, &requests);

    let (n, ids) = index.search_audit(&every_audit(), 0, 10).unwrap();
    assert_eq!((n, ids), (3, vec![u64::MAX - 1, big + 5, 5]));
    let (_, ids) = index.search_audit(&every_audit(), 1, 1).unwrap();
    assert_eq!(ids, vec![big + 5]);

    let (n, ids) = index.search_requests(&RequestFilter::default(), 0, 10).unwrap();
    assert_eq!((n, ids), (3, vec![3 * big + 9, big + 7, 7]));

    // Pending records (numbered from the writer's sequence) merge in with their full ids.
    let pending = std::sync::Arc::new(vec![request(3000), request(3001)]);
    index.add_pending(Pending::numbered(5 * big, pending));
    let (n, ids) = index.search_requests(&RequestFilter::default(), 0, 3).unwrap();
    assert_eq!((n, ids), (5, vec![5 * big + 1, 5 * big, 3 * big + 9]));
    let (_, ids) = index.search_requests(&RequestFilter::default(), 3, 10).unwrap();
    assert_eq!(ids, vec![big + 7, 7]);
}

/// H1 at the index: a window past MAX_WINDOW is refused before tantivy sees it (its top-k
/// collector would reserve `2 × (offset + limit)` slots up front), and a page past the last hit
/// is answered from the count alone.
#[test]
fn deep_offsets_are_bounded_before_collecting() {
    let dir = tempfile::tempdir().unwrap();
    let audits: Vec<_> = (1..=5).map(|i| audit(i, 1000 + i as i64)).collect();
    let requests: Vec<_> = (1..=5).map(|i| (i, request(2000 + i as i64))).collect();
    let index = index_with(&dir.path().join("index"), &audits, &requests);
    let filter = RequestFilter::default();
    // What aborted the process: page 10^10 of 1000 rows.
    let abort_offset = 9_999_999_999_000usize;
    for (offset, limit) in [(abort_offset, 1000), (usize::MAX, 1000), (MAX_WINDOW, 1)] {
        assert!(matches!(
            index.search_audit(&every_audit(), offset, limit),
            Err(IndexError::TooDeep)
        ));
        assert!(matches!(index.search_requests(&filter, offset, limit), Err(IndexError::TooDeep)));
    }
    // Inside the window but past the end: the count, no rows.
    assert_eq!(index.search_audit(&every_audit(), MAX_WINDOW - 1000, 1000).unwrap(), (5, vec![]));
    assert_eq!(index.search_requests(&filter, MAX_WINDOW - 1000, 1000).unwrap(), (5, vec![]));
    assert_eq!(index.search_audit(&every_audit(), 5, 10).unwrap(), (5, vec![]));
    assert_eq!(index.search_audit(&every_audit(), 4, 10).unwrap(), (5, vec![1]));
    assert_eq!(index.search_requests(&filter, 4, 10).unwrap(), (5, vec![1]));
}
