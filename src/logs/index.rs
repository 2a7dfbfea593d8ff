//! The tantivy index of request and audit records: a derived cache of redb. One schema for
//! both kinds (`kind` tells them apart); no stored fields — a hit's `order` fast field
//! (`created << 32 | low half of the id`) sorts newest first, its `id` fast field gives the full
//! 64-bit record id, and the record itself is read from redb. The commit payload holds the
//! schema version and the redb sequence numbers indexed so far (see STYLE.md §4.8).
//!
//! Searches are bounded: a page ends at most [`MAX_WINDOW`] hits deep, and a page that starts
//! past the last hit is answered from a count, without collecting anything.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    Term,
};

use super::record::RequestLog;
use crate::domain::audit::AuditRecord;
use crate::domain::{Error, ErrorCode, ServiceError};

/// Bump when the schema or what is indexed changes: an index of another version is rebuilt.
/// 2: `created` is a fast field only (range filters and pruning read the fast field anyway),
/// no field norms, and `text` keeps doc ids only (no frequencies or positions): nothing scores,
/// and every search term is an exact-term match.
/// 3: the full 64-bit record id in its own `id` fast field (`order` kept only the low 32 bits,
/// so past 2^32 records a hit named the wrong row).
pub const SCHEMA_VERSION: u64 = 3;

/// The deepest hit a search may reach (`offset + limit`). tantivy's top-k collector reserves
/// room for twice that many hits per segment before it looks at a document, so an unbounded
/// offset is an unbounded allocation (an abort, not an error, when it fails).
pub const MAX_WINDOW: usize = 100_000;
const KIND_REQUEST: u64 = 0;
const KIND_AUDIT: u64 = 1;

/// What the index holds, stored as the commit payload.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Watermark {
    pub schema: u64,
    /// Request records up to this sequence are indexed.
    pub request_seq: u64,
    /// Audit records up to this id are indexed.
    pub audit_seq: u64,
}

/// What [`LogIndex::inspect`] found.
#[derive(Debug, Clone, Copy)]
pub struct IndexSummary {
    pub watermark: Watermark,
    pub requests: u64,
    pub audit: u64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Fields {
    kind: Field,
    order: Field,
    id: Field,
    created: Field,
    service: Field,
    method: Field,
    status: Field,
    user: Field,
    api_key: Field,
    action: Field,
    target_type: Field,
    org: Field,
    text: Field,
}

/// Only what filters, `search` and ordering need, as cheaply as tantivy allows: exact-match
/// terms without norms, no scoring data, fast fields for the sort key and time ranges.
pub(super) fn schema() -> (Schema, Fields) {
    let id = || NumericOptions::default().set_indexed();
    let raw = || {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_fieldnorms(false)
                .set_index_option(IndexRecordOption::Basic),
        )
    };
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::Basic),
    );
    let mut b = Schema::builder();
    let f = Fields {
        kind: b.add_u64_field("kind", id()),
        order: b.add_u64_field("order", FAST),
        id: b.add_u64_field("id", FAST),
        created: b.add_i64_field("created", FAST),
        service: b.add_text_field("service", raw()),
        method: b.add_text_field("method", raw()),
        status: b.add_text_field("status", raw()),
        user: b.add_u64_field("user", id()),
        api_key: b.add_u64_field("api_key", id()),
        action: b.add_text_field("action", raw()),
        target_type: b.add_text_field("target_type", raw()),
        org: b.add_u64_field("org", id()),
        text: b.add_text_field("text", words),
    };
    (b.build(), f)
}

/// `created << 32 | low half of id`: one u64 that sorts by time, then (within a second) by id,
/// cheaper to collect on than a pair of keys. Not the id: that is the `id` field.
fn order_key(created: i64, id: u64) -> u64 {
    let created = u64::try_from(created.clamp(0, i64::from(u32::MAX))).unwrap_or(0);
    (created << 32) | (id & 0xFFFF_FFFF)
}

/// Filters of the request list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub service: Option<String>,
    pub method: Option<String>,
    pub status: Option<String>,
    pub user_id: Option<u64>,
    pub api_key_id: Option<u64>,
    /// Inclusive unix-second bounds on `created_at`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub search: Option<String>,
}

/// Whose audit records a caller may see.
#[derive(Debug, Clone)]
pub enum AuditScope {
    All,
    /// The caller's own records and those of the organizations they administer.
    Limited {
        user: u64,
        orgs: Vec<u64>,
    },
}

impl AuditScope {
    /// What `p` may see: everything for staff through an unscoped credential, else their own
    /// records and those of the organizations they administer (within the credential's scope).
    pub fn of(p: &crate::domain::Principal) -> Self {
        if p.is_staff && p.org_scope.is_none() {
            return AuditScope::All;
        }
        let admin = |o: &u64| p.role_in(*o) == Some(crate::domain::Role::Admin);
        AuditScope::Limited {
            user: p.user_id,
            orgs: p.visible_orgs().into_iter().filter(admin).collect(),
        }
    }
}

/// Filters of the audit list.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub scope: AuditScope,
    pub user: Option<u64>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub search: Option<String>,
}

impl AuditFilter {
    /// Whether `a` may be shown under this filter (all but `search`): the list checks each row
    /// it reads back, so a wrong hit from the index can never show a row outside the scope.
    pub fn admits(&self, a: &AuditRecord) -> bool {
        let in_scope = match &self.scope {
            AuditScope::All => true,
            AuditScope::Limited { user, orgs } => {
                a.user_id == Some(*user) || a.organization_id.is_some_and(|o| orgs.contains(&o))
            }
        };
        in_scope
            && self.user.is_none_or(|u| a.user_id == Some(u))
            && self.action.as_deref().is_none_or(|x| x == a.action)
            && self.target_type.as_deref().is_none_or(|x| x == a.target_type)
            && self.from.is_none_or(|f| a.timestamp >= f)
            && self.to.is_none_or(|t| a.timestamp <= t)
    }
}

/// Request records added to the index writer but not yet committed, shared with the writer
/// (no copies): either numbered from `first` in order (a fresh batch, whose records carry no id
/// yet) or carrying their own ids (read back from redb).
pub struct Pending {
    first: Option<u64>,
    records: Arc<Vec<RequestLog>>,
    /// Set by retention: records of this chunk created before it are gone (later chunks are
    /// not affected, as the index's delete only affects documents added before it).
    cutoff: i64,
}

impl Pending {
    pub fn numbered(first: u64, records: Arc<Vec<RequestLog>>) -> Self {
        Self { first: Some(first), records, cutoff: i64::MIN }
    }

    pub fn own_ids(records: Arc<Vec<RequestLog>>) -> Self {
        Self { first: None, records, cutoff: i64::MIN }
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &RequestLog)> {
        let (first, cutoff) = (self.first, self.cutoff);
        self.records
            .iter()
            .enumerate()
            .map(move |(i, r)| (first.map_or(r.id, |f| f + i as u64), r))
            .filter(move |(_, r)| r.created_at >= cutoff)
    }
}

/// The pending chunks and how many records they hold.
#[derive(Default)]
struct PendingSet {
    chunks: Vec<Pending>,
    len: usize,
}

/// The index and a reader that is reloaded by the writer right after each commit, plus the
/// request records added since the last commit. Searches merge those in, so a record is
/// searchable as soon as it is in redb, without waiting for (or forcing) a tantivy commit —
/// commits cost tens of milliseconds, and every list would otherwise wait for one.
pub struct LogIndex {
    index: Index,
    reader: IndexReader,
    f: Fields,
    dir: PathBuf,
    pending: Mutex<PendingSet>,
}

/// Why the index could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index directory {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("a page may end at most {MAX_WINDOW} rows deep")]
    TooDeep,
    #[error("search index watermark: {0}")]
    Watermark(#[from] serde_json::Error),
}

impl ServiceError for IndexError {
    fn error_code(&self) -> ErrorCode {
        match self {
            IndexError::TooDeep => ErrorCode::Invalid,
            IndexError::Tantivy(_) | IndexError::Io { .. } | IndexError::Watermark(_) => {
                ErrorCode::Internal
            }
        }
    }
}

/// A search failure as the client sees it: too deep a page is the client's 400 (on `page`),
/// anything else the server's own.
impl From<IndexError> for Error {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::TooDeep => Error::invalid("page", e.to_string()),
            e => Error::from_service("search index", e),
        }
    }
}

/// Refuses a window past [`MAX_WINDOW`] before any search work.
fn check_window(offset: usize, limit: usize) -> Result<(), IndexError> {
    if offset.saturating_add(limit) > MAX_WINDOW {
        return Err(IndexError::TooDeep);
    }
    Ok(())
}

/// Where a hit of the request list comes from: a pending record (its id known) or an indexed
/// document (its id read from the `id` fast field once the page is chosen).
#[derive(Debug, Clone, Copy)]
enum Hit {
    Pending(u64),
    Doc(DocAddress),
}

impl LogIndex {
    /// Opens the index in `dir`, or — when it is missing, unreadable, of another schema, or has
    /// no watermark — wipes the directory and creates an empty one (watermark zero).
    pub fn open(dir: &Path) -> Result<(Self, Watermark), IndexError> {
        match Self::try_open(dir) {
            Ok(found) => Ok(found),
            Err(reason) => {
                tracing::warn!(reason = %reason, path = %dir.display(), "rebuilding search index");
                Ok((
                    Self::create_fresh(dir)?,
                    Watermark { schema: SCHEMA_VERSION, ..Default::default() },
                ))
            }
        }
    }

    fn try_open(dir: &Path) -> Result<(Self, Watermark), String> {
        if !dir.join("meta.json").is_file() {
            return Err("no index".into());
        }
        let index = Index::open_in_dir(dir).map_err(|e| e.to_string())?;
        let (expected, f) = schema();
        if index.schema() != expected {
            return Err("schema changed".into());
        }
        let metas = index.load_metas().map_err(|e| e.to_string())?;
        let wm: Watermark = metas
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .ok_or_else(|| "no watermark".to_string())?;
        if wm.schema != SCHEMA_VERSION {
            return Err(format!("schema version {}", wm.schema));
        }
        let reader = Self::reader_for(&index).map_err(|e| e.to_string())?;
        Ok((
            Self {
                index,
                reader,
                f,
                dir: dir.to_path_buf(),
                pending: Mutex::new(PendingSet::default()),
            },
            wm,
        ))
    }

    /// Removes whatever is in `dir` and creates an empty index there.
    pub fn create_fresh(dir: &Path) -> Result<Self, IndexError> {
        let io = |source| IndexError::Io { path: dir.display().to_string(), source };
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io)?;
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let (s, f) = schema();
        let index = Index::create_in_dir(dir, s)?;
        let reader = Self::reader_for(&index)?;
        Ok(Self {
            index,
            reader,
            f,
            dir: dir.to_path_buf(),
            pending: Mutex::new(PendingSet::default()),
        })
    }

    fn reader_for(index: &Index) -> tantivy::Result<IndexReader> {
        index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The one writer (owned by the log writer thread), gathering documents in `memory_bytes`.
    pub fn writer(&self, memory_bytes: usize) -> Result<IndexWriter, IndexError> {
        Ok(self.index.writer_with_num_threads(1, memory_bytes)?)
    }

    /// Makes the last commit visible to searches and forgets the pending records it holds.
    pub fn reload(&self) -> Result<(), IndexError> {
        let mut pending = self.pending.lock();
        self.reader.reload()?;
        *pending = PendingSet::default();
        Ok(())
    }

    /// Records added to the writer but not yet committed: searchable from now on. Returns how
    /// many are pending.
    pub fn add_pending(&self, records: Pending) -> usize {
        let mut pending = self.pending.lock();
        pending.len += records.records.len();
        pending.chunks.push(records);
        pending.len
    }

    /// Hides the pending records created before `cutoff` (retention).
    pub fn prune_pending(&self, cutoff: i64) {
        for chunk in &mut self.pending.lock().chunks {
            chunk.cutoff = chunk.cutoff.max(cutoff);
        }
    }

    fn tokens(&self, text: &str) -> Vec<String> {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.f.text) else {
            return Vec::new();
        };
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    /// The in-memory twin of `request_query`, for pending records.
    fn matches(&self, r: &RequestLog, q: &RequestFilter, words: &[String]) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&q.service, &r.service_name)
            && eq(&q.method, &r.method_name)
            && eq(&q.status, &r.status)
            && q.user_id.is_none_or(|u| r.user_id == Some(u))
            && q.api_key_id.is_none_or(|k| r.api_key_id == Some(k))
            && q.from.is_none_or(|f| r.created_at >= f)
            && q.to.is_none_or(|t| r.created_at <= t)
            && (words.is_empty() || {
                let have = self.tokens(&format!("{} {}", r.path, r.error_message));
                words.iter().all(|w| have.contains(w))
            })
    }

    /// The document of request record `r` stored under `id`.
    pub fn request_doc_as(&self, r: &RequestLog, id: u64) -> TantivyDocument {
        let f = &self.f;
        let mut d = TantivyDocument::new();
        d.add_u64(f.kind, KIND_REQUEST);
        d.add_u64(f.order, order_key(r.created_at, id));
        d.add_u64(f.id, id);
        d.add_i64(f.created, r.created_at);
        d.add_text(f.service, &r.service_name);
        d.add_text(f.method, &r.method_name);
        d.add_text(f.status, &r.status);
        if let Some(u) = r.user_id {
            d.add_u64(f.user, u);
        }
        if let Some(k) = r.api_key_id {
            d.add_u64(f.api_key, k);
        }
        // Two values of one field: the same words are searchable as with "path message",
        // without building that string for every record.
        d.add_text(f.text, &r.path);
        if !r.error_message.is_empty() {
            d.add_text(f.text, &r.error_message);
        }
        d
    }

    pub fn audit_doc(&self, a: &AuditRecord) -> TantivyDocument {
        let f = &self.f;
        let mut d = TantivyDocument::new();
        d.add_u64(f.kind, KIND_AUDIT);
        d.add_u64(f.order, order_key(a.timestamp, a.id));
        d.add_u64(f.id, a.id);
        d.add_i64(f.created, a.timestamp);
        if let Some(u) = a.user_id {
            d.add_u64(f.user, u);
        }
        if let Some(o) = a.organization_id {
            d.add_u64(f.org, o);
        }
        d.add_text(f.action, &a.action);
        d.add_text(f.target_type, &a.target_type);
        d.add_text(f.text, a.details.to_string());
        d
    }

    fn term_u64(field: Field, v: u64) -> Box<dyn Query> {
        Box::new(TermQuery::new(Term::from_field_u64(field, v), IndexRecordOption::Basic))
    }

    fn term_str(field: Field, v: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(Term::from_field_text(field, v), IndexRecordOption::Basic))
    }

    fn created_range(&self, from: Option<i64>, to: Option<i64>) -> Option<Box<dyn Query>> {
        if from.is_none() && to.is_none() {
            return None;
        }
        let bound = |v: Option<i64>| {
            v.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_i64(self.f.created, v)))
        };
        Some(Box::new(RangeQuery::new(bound(from), bound(to))))
    }

    /// Every token of `text` must occur in the `text` field.
    fn text_terms(&self, text: &str, out: &mut Vec<(Occur, Box<dyn Query>)>) {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.f.text) else { return };
        let mut stream = analyzer.token_stream(text);
        while stream.advance() {
            let term = Term::from_field_text(self.f.text, &stream.token().text);
            out.push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
        }
    }

    fn request_query(&self, q: &RequestFilter) -> BooleanQuery {
        let f = &self.f;
        let mut c: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Self::term_u64(f.kind, KIND_REQUEST))];
        for (field, v) in [(f.service, &q.service), (f.method, &q.method), (f.status, &q.status)] {
            if let Some(v) = v {
                c.push((Occur::Must, Self::term_str(field, v)));
            }
        }
        for (field, v) in [(f.user, q.user_id), (f.api_key, q.api_key_id)] {
            if let Some(v) = v {
                c.push((Occur::Must, Self::term_u64(field, v)));
            }
        }
        if let Some(r) = self.created_range(q.from, q.to) {
            c.push((Occur::Must, r));
        }
        if let Some(s) = &q.search {
            self.text_terms(s, &mut c);
        }
        BooleanQuery::new(c)
    }

    fn audit_query(&self, q: &AuditFilter) -> BooleanQuery {
        let f = &self.f;
        let mut c: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Self::term_u64(f.kind, KIND_AUDIT))];
        if let AuditScope::Limited { user, orgs } = &q.scope {
            let mut any: Vec<(Occur, Box<dyn Query>)> =
                vec![(Occur::Should, Self::term_u64(f.user, *user))];
            for o in orgs {
                any.push((Occur::Should, Self::term_u64(f.org, *o)));
            }
            c.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if let Some(u) = q.user {
            c.push((Occur::Must, Self::term_u64(f.user, u)));
        }
        for (field, v) in [(f.action, &q.action), (f.target_type, &q.target_type)] {
            if let Some(v) = v {
                c.push((Occur::Must, Self::term_str(field, v)));
            }
        }
        if let Some(r) = self.created_range(q.from, q.to) {
            c.push((Occur::Must, r));
        }
        if let Some(s) = &q.search {
            self.text_terms(s, &mut c);
        }
        BooleanQuery::new(c)
    }

    /// The newest `limit` hits after skipping `offset`, as (order key, document). The window is
    /// checked by the callers; the count they hold says it is worth collecting.
    fn top(
        searcher: &Searcher,
        q: &dyn Query,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(u64, DocAddress)>, IndexError> {
        let top = TopDocs::with_limit(limit.max(1))
            .and_offset(offset)
            .order_by_u64_field("order", Order::Desc);
        let hits = searcher.search(q, &top)?;
        Ok(hits.into_iter().filter_map(|(order, doc)| order.map(|o| (o, doc))).collect())
    }

    /// The full record ids of `docs`, read from the `id` fast field (one column per segment);
    /// `None` for a document without one (none of this schema's).
    fn ids_of(
        searcher: &Searcher,
        docs: impl Iterator<Item = DocAddress>,
    ) -> Result<Vec<Option<u64>>, IndexError> {
        let mut columns = std::collections::HashMap::new();
        let mut out = Vec::new();
        for doc in docs {
            let column = match columns.entry(doc.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(searcher.segment_reader(doc.segment_ord).fast_fields().u64("id")?)
                }
            };
            out.push(column.first(doc.doc_id));
        }
        Ok(out)
    }

    /// Matching ids of `q`, newest first, and the total count: page 1 in one pass; a later page
    /// counts first and collects only when it starts before the last hit.
    fn run(
        &self,
        q: &dyn Query,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<u64>), IndexError> {
        check_window(offset, limit)?;
        let searcher = self.reader.searcher();
        let (count, hits) = if offset == 0 {
            let top = TopDocs::with_limit(limit.max(1)).order_by_u64_field("order", Order::Desc);
            let (count, hits) = searcher.search(q, &(Count, top))?;
            (count as u64, hits.into_iter().filter(|(o, _)| o.is_some()).map(|(_, d)| d).collect())
        } else {
            let count = searcher.search(q, &Count)? as u64;
            if offset as u64 >= count {
                return Ok((count, Vec::new()));
            }
            let hits: Vec<DocAddress> =
                Self::top(&searcher, q, offset, limit)?.into_iter().map(|(_, d)| d).collect();
            (count, hits)
        };
        let ids = Self::ids_of(&searcher, hits.into_iter().take(limit))?;
        Ok((count, ids.into_iter().flatten().collect()))
    }

    /// Matching request ids, newest first, and the total count (indexed plus pending records).
    pub fn search_requests(
        &self,
        q: &RequestFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<u64>), IndexError> {
        check_window(offset, limit)?;
        let words = q.search.as_deref().map(|s| self.tokens(s)).unwrap_or_default();
        let (searcher, mut hits) = {
            let pending = self.pending.lock();
            let found: Vec<(u64, Hit)> = pending
                .chunks
                .iter()
                .flat_map(Pending::iter)
                .filter(|(_, r)| self.matches(r, q, &words))
                .map(|(id, r)| (order_key(r.created_at, id), Hit::Pending(id)))
                .collect();
            (self.reader.searcher(), found)
        };
        let pending_count = hits.len() as u64;
        let query = self.request_query(q);
        let want = offset.saturating_add(limit).max(1);
        let top = TopDocs::with_limit(want).order_by_u64_field("order", Order::Desc);
        let (count, indexed) = if offset == 0 {
            let (count, indexed) = searcher.search(&query, &(Count, top))?;
            (count as u64, indexed)
        } else {
            let count = searcher.search(&query, &Count)? as u64;
            if offset as u64 >= count + pending_count {
                return Ok((count + pending_count, Vec::new()));
            }
            (count, searcher.search(&query, &top)?)
        };
        hits.extend(indexed.into_iter().filter_map(|(o, d)| o.map(|o| (o, Hit::Doc(d)))));
        hits.sort_unstable_by_key(|h| std::cmp::Reverse(h.0));
        let page: Vec<Hit> = hits.into_iter().skip(offset).take(limit).map(|(_, h)| h).collect();
        // Ids of the page's indexed hits, read in one go, then put back in page order.
        let docs = page.iter().filter_map(|h| match h {
            Hit::Doc(d) => Some(*d),
            Hit::Pending(_) => None,
        });
        let mut doc_ids = Self::ids_of(&searcher, docs)?.into_iter();
        let ids = page
            .into_iter()
            .filter_map(|h| match h {
                Hit::Pending(id) => Some(id),
                Hit::Doc(_) => doc_ids.next().flatten(),
            })
            .collect();
        Ok((count + pending_count, ids))
    }

    /// Matching audit ids, newest first, and the total count.
    pub fn search_audit(
        &self,
        q: &AuditFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<u64>), IndexError> {
        self.run(&self.audit_query(q), offset, limit)
    }

    /// Opens the index in `dir` without changing it (for `gatehouse check`) and counts its
    /// request and audit documents. `Err` says why it would be rebuilt at the next start.
    pub fn inspect(dir: &Path) -> Result<IndexSummary, String> {
        let (index, watermark) = Self::try_open(dir)?;
        let searcher = index.reader.searcher();
        let count = |kind| {
            searcher.search(&*Self::term_u64(index.f.kind, kind), &Count).map_err(|e| e.to_string())
        };
        Ok(IndexSummary {
            watermark,
            requests: count(KIND_REQUEST)? as u64,
            audit: count(KIND_AUDIT)? as u64,
        })
    }

    /// A query for request records created before `cutoff` (for retention).
    pub fn requests_before(&self, cutoff: i64) -> Box<dyn Query> {
        self.before(KIND_REQUEST, cutoff)
    }

    /// A query for audit records created before `cutoff`.
    pub fn audit_before(&self, cutoff: i64) -> Box<dyn Query> {
        self.before(KIND_AUDIT, cutoff)
    }

    fn before(&self, kind: u64, cutoff: i64) -> Box<dyn Query> {
        let range = RangeQuery::new(
            Bound::Unbounded,
            Bound::Excluded(Term::from_field_i64(self.f.created, cutoff)),
        );
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, Self::term_u64(self.f.kind, kind)),
            (Occur::Must, Box::new(range)),
        ]))
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
pub(crate) mod index_tests;
